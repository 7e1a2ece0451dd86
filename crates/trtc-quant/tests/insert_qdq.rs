//! Q/DQ insertion: a small conv + gemm model, calibrated, quantized, run on tract, exported
//! and read back.

use prost::Message;
use trtc_ir::tensor::random_uniform;
use trtc_ir::tract_onnx::prelude::tensor0;
use trtc_ir::{
    Activation, ConvAttrs, CpuModel, FusedConv, Graph, GraphBuilder, NodeId, Op, Tensor,
};
use trtc_quant::weights::quantize_tensor;
use trtc_quant::{
    calibrate, insert_qdq, insert_qdq_with, scales_from_qdq, CalibrationTable, Calibrator,
    QdqOptions, QuantError, WeightScales,
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

const RES_W: [usize; 4] = [4, 4, 3, 3];

fn conv3x3() -> ConvAttrs {
    ConvAttrs {
        kernel_shape: vec![3, 3],
        pads: vec![1, 1, 1, 1],
        group: 1,
        ..Default::default()
    }
}

/// A residual block as the optimizer leaves it: x[1,4,8,8] -> m = 1.5x ->
/// c1 = relu(conv(m, w1, b1)) -> c2 = relu(conv(c1, w2, b2) + m) (a FusedConv with
/// residual m).
fn residual_graph() -> Graph {
    let mut b = GraphBuilder::new();
    let x = b.input("x", &[1, 4, 8, 8]);
    let k = b.constant("k", tensor0(1.5f32));
    let m = b.op("m", Op::Mul, &[x, k]);
    let w1 = b.constant("w1", random_uniform(&RES_W, 11));
    let b1 = b.constant("b1", random_uniform(&[4], 12));
    let fused = |residual| {
        Op::FusedConv(FusedConv {
            conv: conv3x3(),
            residual,
            activation: Some(Activation::Relu),
        })
    };
    let c1 = b.op("c1", fused(false), &[m, w1, b1]);
    let w2 = b.constant("w2", random_uniform(&RES_W, 13));
    let b2 = b.constant("b2", random_uniform(&[4], 14));
    let c2 = b.op("c2", fused(true), &[c1, w2, b2, m]);
    b.output(c2);
    b.build().unwrap()
}

fn residual_batches() -> Vec<Vec<Tensor>> {
    (0..3)
        .map(|s| vec![random_uniform(&[1, 4, 8, 8], 200 + s)])
        .collect()
}

fn node_named(g: &Graph, name: &str) -> NodeId {
    g.node_ids()
        .into_iter()
        .find(|&id| g.node(id).name == name)
        .unwrap_or_else(|| panic!("no node {name}"))
}

fn gpu_opts() -> QdqOptions {
    QdqOptions {
        weights: WeightScales::PerTensor,
        residual: true,
        ..Default::default()
    }
}

#[test]
fn per_tensor_weights_have_one_scale_and_stay_within_half_a_step() {
    let g = residual_graph();
    let table = calibrate(&g, residual_batches(), Calibrator::MinMax, |_, _| {}).unwrap();
    let (q, report) = insert_qdq_with(&g, &table, &gpu_opts()).unwrap();
    assert_eq!(report.weights, 2, "{report:?}");
    assert_eq!(report.layers, 2, "{report:?}");
    q.validate().unwrap();
    for (conv, seed) in [("c1", 11), ("c2", 13)] {
        let id = node_named(&q, conv);
        let dq = q.input_outlet(id, 1).unwrap().node;
        let n = q.node(dq);
        assert_eq!(n.op.op_type(), "DequantizeLinear");
        let Op::Other(o) = &n.op else { unreachable!() };
        assert!(
            o.attributes.iter().all(|a| a.name != "axis"),
            "per-tensor DQ has an axis"
        );
        let scale = q.input_const(dq, 1).unwrap();
        assert!(scale.rank() == 0 || scale.shape() == [1], "{scale:?}");
        let s = f32s(scale)[0];
        let zp = q.input_const(dq, 2).unwrap();
        assert_eq!(zp.len(), 1);
        assert_eq!(zp.datum_type(), trtc_ir::tract_onnx::prelude::DatumType::I8);
        let values = q.input_const(dq, 0).unwrap();
        assert_eq!(values.shape(), RES_W);
        let v = values
            .try_as_plain_ram()
            .and_then(|r| r.as_slice::<i8>())
            .unwrap();
        assert!(v.iter().all(|&x| (-127..=127).contains(&x)));
        let w = f32s(&random_uniform(&RES_W, seed));
        let max = w.iter().fold(0f32, |m, x| m.max(x.abs()));
        assert_eq!(s, max / 127.0);
        for (qv, wv) in v.iter().zip(&w) {
            let d = (f32::from(*qv) * s - wv).abs();
            assert!(d <= s * (0.5 + 1e-5), "{qv} * {s} vs {wv}");
        }
    }
    // It runs on tract, and quantization moves the output a little.
    let (float, quant) = (CpuModel::new(&g).unwrap(), CpuModel::new(&q).unwrap());
    for b in residual_batches() {
        let (a, z) = (
            f32s(&float.run(b.clone()).unwrap()[0]),
            f32s(&quant.run(b).unwrap()[0]),
        );
        let amax = a.iter().fold(0f32, |m, x| m.max(x.abs()));
        let d = a
            .iter()
            .zip(&z)
            .fold(0f32, |m, (u, v)| m.max((u - v).abs()));
        assert!(d > 0.0 && d < 0.1 * amax, "max diff {d}, amax {amax}");
    }
}

#[test]
fn the_residual_reads_the_shared_pair_of_its_tensor() {
    let g = residual_graph();
    let table = calibrate(&g, residual_batches(), Calibrator::MinMax, |_, _| {}).unwrap();
    let (q, report) = insert_qdq_with(&g, &table, &gpu_opts()).unwrap();
    assert_eq!(report.residuals, 1, "{report:?}");
    assert_eq!(report.activations, 2, "m and c1: {report:?}");
    let (c1, c2) = (node_named(&q, "c1"), node_named(&q, "c2"));
    let z = q.input_outlet(c2, 3).unwrap();
    assert_eq!(z, q.input_outlet(c1, 0).unwrap(), "one pair for m");
    assert_eq!(q.node(z.node).op.op_type(), "DequantizeLinear");
    let qn = q.input_outlet(z.node, 0).unwrap().node;
    assert_eq!(q.node(qn).op.op_type(), "QuantizeLinear");
    assert_eq!(q.tensor(q.input_outlet(qn, 0).unwrap()).name, "m");
    assert_eq!(
        q.node_ids()
            .into_iter()
            .filter(|&id| q.node(id).op.op_type() == "QuantizeLinear")
            .count(),
        2
    );
    q.validate().unwrap();
    // keep_float leaves c2 alone: its weight and residual read f32.
    let mut opts = gpu_opts();
    opts.keep_float.insert("c2".into());
    let (k, report) = insert_qdq_with(&g, &table, &opts).unwrap();
    assert_eq!((report.weights, report.residuals, report.layers), (1, 0, 1));
    let c2 = node_named(&k, "c2");
    assert_eq!(k.tensor(k.input_outlet(c2, 3).unwrap()).name, "m");
}

#[test]
fn the_defaults_are_per_channel_weights_and_float_residuals() {
    let g = residual_graph();
    let table = calibrate(&g, residual_batches(), Calibrator::MinMax, |_, _| {}).unwrap();
    let (a, ra) = insert_qdq(&g, &table).unwrap();
    let (b, rb) = insert_qdq_with(&g, &table, &QdqOptions::default()).unwrap();
    assert_eq!(ra, rb);
    assert_eq!(ra.residuals, 0);
    let bytes = |g: &Graph| trtc_ir::to_model_proto(g).unwrap().encode_to_vec();
    assert_eq!(bytes(&a), bytes(&b));
    let c2 = node_named(&a, "c2");
    assert_eq!(a.tensor(a.input_outlet(c2, 3).unwrap()).name, "m");
    let dq = a.input_outlet(c2, 1).unwrap().node;
    let Op::Other(o) = &a.node(dq).op else {
        panic!("weight is not dequantized")
    };
    assert!(o.attributes.iter().any(|x| x.name == "axis" && x.i == 0));
    assert_eq!(a.input_const(dq, 1).unwrap().shape(), [4]);
}

#[test]
fn dense_convs_named_per_channel_keep_a_scale_per_output_channel() {
    // What the GPU computes: cuDNN's convs per tensor, trtc's 1x1 kernels' per channel.
    let g = residual_graph();
    let table = calibrate(&g, residual_batches(), Calibrator::MinMax, |_, _| {}).unwrap();
    let opts = QdqOptions::gpu_simulated(["c1".to_string()].into());
    let (q, report) = insert_qdq_with(&g, &table, &opts).unwrap();
    assert_eq!((report.weights, report.residuals), (2, 1), "{report:?}");
    let scales = |conv: &str| {
        let dq = q.input_outlet(node_named(&q, conv), 1).unwrap().node;
        let Op::Other(o) = &q.node(dq).op else {
            panic!("{conv}'s weight is not dequantized")
        };
        let axis = o.attributes.iter().find(|a| a.name == "axis").map(|a| a.i);
        (axis, f32s(q.input_const(dq, 1).unwrap()))
    };
    let (axis, s1) = scales("c1");
    assert_eq!(axis, Some(0));
    // Each output channel's own max |w| / 127.
    let w = f32s(&random_uniform(&RES_W, 11));
    let per = w.len() / RES_W[0];
    for (c, s) in s1.iter().enumerate() {
        let max = w[c * per..(c + 1) * per]
            .iter()
            .fold(0f32, |m, x| m.max(x.abs()));
        assert_eq!(*s, max / 127.0, "channel {c}");
    }
    let (axis, s2) = scales("c2");
    assert_eq!((axis, s2.len()), (None, 1), "c2 stays per tensor");
}
