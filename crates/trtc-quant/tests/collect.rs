//! Collecting activation ranges on small graphs whose ranges are known.

use trtc_ir::tract_onnx::prelude::tensor0;
use trtc_ir::{Graph, GraphBuilder, Op, PoolAttrs, Tensor};
use trtc_quant::{calibrate, Calibrator, Collector, QuantError};

/// x[1,1,2,4] -> m = 3x -> r = relu(m) -> p = maxpool(r, 1x1 kernel, stride 1x2: columns 0
/// and 2) -> f = flatten(p); and c = concat(x, m).
fn graph() -> Graph {
    let mut b = GraphBuilder::new();
    let x = b.input("x", &[1, 1, 2, 4]);
    let k = b.constant("k", tensor0(3f32));
    let m = b.op("m", Op::Mul, &[x, k]);
    let r = b.op("r", Op::Relu, &[m]);
    let p = b.op(
        "p",
        Op::MaxPool(PoolAttrs {
            kernel_shape: vec![1, 1],
            strides: vec![1, 2],
            ..Default::default()
        }),
        &[r],
    );
    let f = b.op("f", Op::Flatten { axis: 1 }, &[p]);
    let c = b.op("c", Op::Concat { axis: 1 }, &[x, m]);
    b.output(f);
    b.output(c);
    b.build().unwrap()
}

fn batch(v: [f32; 8]) -> Vec<Tensor> {
    vec![Tensor::from_shape(&[1, 1, 2, 4], &v).unwrap()]
}

/// The batches and each tensor's own max |value| over them, computed by hand.
fn batches() -> Vec<Vec<Tensor>> {
    vec![
        // max|x| 4; m up to 9 (col 3); p sees cols 0, 2: max relu = 6.
        batch([-1.0, 0.5, 2.0, -4.0, 1.0, 1.0, 0.0, 3.0]),
        // max|x| 6 (grows the histograms); m = -18; relu 15 (col 1); p: 7.5 (col 2).
        batch([0.25, 5.0, -0.5, 0.1, -6.0, 1.0, 2.5, 0.0]),
    ]
}

#[test]
fn minmax_ranges_are_the_maxima_shared_across_movers() {
    let mut c = Collector::new(&graph()).unwrap();
    for b in batches() {
        c.observe(b).unwrap();
    }
    let names: Vec<&str> = c.histograms().keys().map(|s| s.as_str()).collect();
    assert_eq!(names, ["c", "f", "m", "p", "r", "x"]);
    // Before sharing: each tensor's own maximum.
    let own = c.ranges(Calibrator::MinMax);
    let expect_own = [
        ("x", 6.0),
        ("m", 18.0),
        ("r", 15.0),
        ("p", 7.5),
        ("f", 7.5),
        ("c", 18.0),
    ];
    for (n, v) in expect_own {
        assert_eq!(own[n], v, "own range of {n}");
    }
    // After: the max-pool chain takes its output's range (7.5, not relu's 15), the
    // concat's input x takes the concat's (18, not its own 6); m was 18 already.
    let t = c.table(Calibrator::MinMax).unwrap();
    assert_eq!(t.algorithm, "TRT-8600-MinMaxCalibration");
    let expect = [
        ("x", 18.0),
        ("m", 18.0),
        ("c", 18.0),
        ("r", 7.5),
        ("p", 7.5),
        ("f", 7.5),
    ];
    for (n, v) in expect {
        assert_eq!(t.scale(n), Some(v / 127.0), "scale of {n}");
    }
    assert_eq!(t.scales.len(), 6);
    assert_eq!(c.histograms()["x"].finite_count(), 16);
    // The first batch's range was [0, 4]; the second appended bins of the same width.
    assert_eq!(c.histograms()["x"].bin_width(), 4.0 / 2048.0);
    assert_eq!(c.histograms()["x"].range_max(), 6.0);
}

#[test]
fn calibrate_reports_progress_and_every_calibrator_works() {
    for cal in [
        Calibrator::Entropy,
        Calibrator::MinMax,
        Calibrator::Percentile(99.0),
    ] {
        let mut seen = vec![];
        let t = calibrate(&graph(), batches(), cal, |d, n| seen.push((d, n))).unwrap();
        assert_eq!(seen, [(1, 2), (2, 2)]);
        assert_eq!(t.algorithm, cal.cache_header());
        assert_eq!(t.scales.len(), 6);
        // The shared groups hold whatever the calibrator picked, the same for all.
        assert_eq!(t.scale("r"), t.scale("f"));
        assert_eq!(t.scale("x"), t.scale("c"));
        for (n, s) in &t.scales {
            assert!(s.is_finite() && *s > 0.0 && *s <= 18.01 / 127.0, "{n}: {s}");
        }
    }
}

#[test]
fn nan_input_is_an_error_naming_the_tensor() {
    let mut c = Collector::new(&graph()).unwrap();
    c.observe(batches().remove(0)).unwrap();
    let e = c
        .observe(batch([0.0, f32::NAN, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]))
        .unwrap_err();
    match &e {
        QuantError::NonFinite {
            tensor,
            count,
            batch,
        } => {
            assert_eq!((tensor.as_str(), *count, *batch), ("x", 1, 2));
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("`x`"), "{e}");
}

#[test]
fn an_infinity_inside_the_graph_names_its_tensor() {
    let mut b = GraphBuilder::new();
    let x = b.input("x", &[1, 3]);
    let zero = b.constant("zero", tensor0(0f32));
    let d = b.op("div", Op::Div, &[x, zero]);
    let r = b.op("relu", Op::Relu, &[d]);
    b.output(r);
    let g = b.build().unwrap();
    let one = vec![Tensor::from_shape(&[1, 3], &[1f32, 2., 3.]).unwrap()];
    let e = calibrate(&g, vec![one], Calibrator::MinMax, |_, _| {}).unwrap_err();
    assert!(
        matches!(&e, QuantError::NonFinite { tensor, batch: 1, .. } if tensor == "div"),
        "{e}"
    );
}

#[test]
fn wrong_shapes_and_no_batches_are_errors() {
    let mut c = Collector::new(&graph()).unwrap();
    let wrong = vec![Tensor::from_shape(&[1, 1, 3, 3], &[0f32; 9]).unwrap()];
    let e = c.observe(wrong).unwrap_err().to_string();
    assert!(e.contains("input `x`") && e.contains("[1,1,2,4]"), "{e}");
    assert!(matches!(
        c.table(Calibrator::Entropy),
        Err(QuantError::NoBatches)
    ));
    let none: Vec<Vec<Tensor>> = vec![];
    assert!(matches!(
        calibrate(&graph(), none, Calibrator::MinMax, |_, _| {}),
        Err(QuantError::NoBatches)
    ));
}
