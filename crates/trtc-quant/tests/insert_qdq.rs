//! Q/DQ insertion: a small conv + gemm model, calibrated, quantized, run on tract, exported
//! and read back.

use prost::Message;
use trtc_ir::tensor::random_uniform;
use trtc_ir::tract_onnx::prelude::tensor0;
use trtc_ir::{ConvAttrs, CpuModel, Graph, GraphBuilder, Op, Tensor};
use trtc_quant::weights::quantize_tensor;
use trtc_quant::{
    calibrate, insert_qdq, scales_from_qdq, CalibrationTable, Calibrator, QuantError,
};

const W_SHAPE: [usize; 4] = [4, 3, 3, 3];

/// x[1,3,8,8] -> m = 1.5x -> c = conv3x3(m, w, b, pad 1) -> r = relu(c) -> f = flatten(r)
/// -> y = gemm(f, w2^T); outputs c and y.
fn graph() -> Graph {
    let mut b = GraphBuilder::new();
    let x = b.input("x", &[1, 3, 8, 8]);
    let k = b.constant("k", tensor0(1.5f32));
    let m = b.op("m", Op::Mul, &[x, k]);
    let w = b.constant("w", random_uniform(&W_SHAPE, 7));
    let bias = b.constant("b", random_uniform(&[4], 8));
    let conv = ConvAttrs {
        kernel_shape: vec![3, 3],
        pads: vec![1, 1, 1, 1],
        group: 1,
        ..Default::default()
    };
    let c = b.op("c", Op::Conv(conv), &[m, w, bias]);
    let r = b.op("r", Op::Relu, &[c]);
    let f = b.op("f", Op::Flatten { axis: 1 }, &[r]);
    let w2 = b.constant("w2", random_uniform(&[10, 256], 9));
    let y = b.op(
        "y",
        Op::Gemm {
            alpha: 1.0,
            beta: 1.0,
            trans_a: 0,
            trans_b: 1,
        },
        &[f, w2],
    );
    b.output(c);
    b.output(y);
    b.build().unwrap()
}

fn batches() -> Vec<Vec<Tensor>> {
    (0..4)
        .map(|s| vec![random_uniform(&[1, 3, 8, 8], 100 + s)])
        .collect()
}

fn f32s(t: &Tensor) -> Vec<f32> {
    trtc_ir::tensor::tensor_to_f32s(t).unwrap()
}

#[test]
fn conv_output_stays_within_the_quantization_error() {
    let g = graph();
    let table = calibrate(&g, batches(), Calibrator::MinMax, |_, _| {}).unwrap();
    let (q, report) = insert_qdq(&g, &table).unwrap();
    assert_eq!(report.weights, 2, "{report:?}");
    assert_eq!(report.activations, 2, "m and f: {report:?}");
    assert!(report.unscaled.is_empty(), "{report:?}");

    // The bound, per output channel o: |conv(m', w') - conv(m, w)| <= sum over the window
    // of |w| * sm/2 + |m| * sw[o]/2 + sm/2 * sw[o]/2, with |m| <= amax (minmax: no clipping
    // on the calibration data), plus f32 slack.
    let sm = table.scales["m"];
    let amax = sm * 127.0;
    let w = random_uniform(&W_SHAPE, 7);
    let wq = quantize_tensor(&w, 0).unwrap();
    let wv = f32s(&w);
    let per_out = wv.len() / W_SHAPE[0];
    let bound: Vec<f32> = (0..W_SHAPE[0])
        .map(|o| {
            let sw = wq.scales[o];
            let abs_w: f32 = wv[o * per_out..(o + 1) * per_out]
                .iter()
                .map(|v| v.abs())
                .sum();
            let n = per_out as f32;
            abs_w * sm / 2.0 + n * (amax * sw / 2.0 + sm * sw / 4.0) + 1e-4
        })
        .collect();

    let float = CpuModel::new(&g).unwrap();
    let quant = CpuModel::new(&q).unwrap();
    let mut max_diff = 0f32;
    for b in batches() {
        let a = float.run(b.clone()).unwrap();
        let z = quant.run(b).unwrap();
        let (ca, cz) = (f32s(&a[0]), f32s(&z[0]));
        for (i, (u, v)) in ca.iter().zip(&cz).enumerate() {
            let o = i / 64;
            let d = (u - v).abs();
            assert!(d <= bound[o], "element {i}: {u} vs {v}, bound {}", bound[o]);
            max_diff = max_diff.max(d);
        }
        assert!(
            f32s(&a[1]) != f32s(&z[1]),
            "gemm output unchanged by quantization"
        );
    }
    assert!(max_diff > 0.0, "quantization changed nothing");

    // Exported (opset >= 13), read back by the loader, it runs and gives the same outputs,
    // and its Q/DQ nodes give back the table's scales.
    let proto = trtc_ir::to_model_proto(&q).unwrap();
    let opset = proto
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty())
        .unwrap()
        .version;
    assert!(opset >= 13, "opset {opset}");
    let dir = std::env::temp_dir().join(format!("trtc-qdq-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("q.onnx");
    std::fs::write(&path, proto.encode_to_vec()).unwrap();
    let back = trtc_ir::load_model(&path).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let reloaded = CpuModel::new(&back).unwrap();
    for b in batches() {
        let z = quant.run(b.clone()).unwrap();
        let r = reloaded.run(b).unwrap();
        assert_eq!(f32s(&z[0]), f32s(&r[0]));
        assert_eq!(f32s(&z[1]), f32s(&r[1]));
    }
    let rt = scales_from_qdq(&back).unwrap();
    for t in ["m", "f"] {
        assert_eq!(rt.scales.get(t), Some(&table.scales[t]), "{t}: {rt:?}");
    }
    for (t, s) in &rt.scales {
        assert!(
            table.scales.values().any(|v| v == s),
            "{t}: {s} is no table scale"
        );
    }
}

#[test]
fn tensors_without_a_scale_stay_float() {
    let g = graph();
    let table = CalibrationTable::new("TRT-8600-MinMaxCalibration");
    let (q, report) = insert_qdq(&g, &table).unwrap();
    assert_eq!(report.weights, 2);
    assert_eq!(report.activations, 0);
    assert_eq!(report.unscaled, vec!["m".to_string(), "f".to_string()]);
    let n = |g: &Graph, t: &str| {
        g.node_ids()
            .into_iter()
            .filter(|&id| g.node(id).op.op_type() == t)
            .count()
    };
    assert_eq!(n(&q, "QuantizeLinear"), 0);
    assert_eq!(n(&q, "DequantizeLinear"), 2);
    let consts = |g: &Graph| {
        g.node_ids()
            .into_iter()
            .filter(|&id| matches!(g.node(id).op, Op::Const(_)))
            .count()
    };
    assert_eq!(
        consts(&q),
        consts(&g) + 2 * 3 - 2,
        "old f32 weights removed"
    );
}

#[test]
fn refuses_old_opsets_and_quantized_models() {
    let mut g = graph();
    let table = calibrate(&g, batches(), Calibrator::MinMax, |_, _| {}).unwrap();
    let (q, _) = insert_qdq(&g, &table).unwrap();
    let e = insert_qdq(&q, &table).unwrap_err();
    assert!(matches!(e, QuantError::Qdq { .. }), "{e}");
    assert!(e.to_string().contains("already"), "{e}");
    g.meta.opset_imports = vec![(String::new(), 11)];
    let e = insert_qdq(&g, &table).unwrap_err();
    assert!(
        e.to_string().contains("opset 11") || e.to_string().contains("is 11"),
        "{e}"
    );
}
