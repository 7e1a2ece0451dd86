//! Scales read from an explicitly quantized (QDQ) model.

use trtc_ir::op::OtherOp;
use trtc_ir::tract_onnx::pb::AttributeProto;
use trtc_ir::{Graph, GraphBuilder, Op, Tensor};
use trtc_quant::qdq::QDQ_HEADER;
use trtc_quant::{scales_from_qdq, QuantError};

fn other(op_type: &str, attributes: Vec<AttributeProto>) -> Op {
    Op::Other(OtherOp {
        op_type: op_type.into(),
        domain: String::new(),
        attributes,
    })
}

fn axis(a: i64) -> AttributeProto {
    AttributeProto {
        name: "axis".into(),
        r#type: 2,
        i: a,
        ..Default::default()
    }
}

fn i8s(dims: &[usize], v: &[i8]) -> Tensor {
    Tensor::from_shape(dims, v).unwrap()
}

/// x[1,4] -> Q(scale, zp) -> DQ(0.5, 0) -> relu -> MatMul with an int8 weight through a
/// per-channel DQ -> MatMul with an f32 weight through a per-channel Q -> DQ.
fn qdq_graph(scale: Tensor, zp: Option<Tensor>) -> Graph {
    let mut b = GraphBuilder::new();
    let x = b.input("x", &[1, 4]);
    let s = b.constant("s", scale);
    let z = zp.map(|z| b.constant("z", z));
    let q = b.op_n(
        "q",
        other("QuantizeLinear", vec![]),
        &[Some(x), Some(s), z],
        1,
    )[0];
    let s2 = b.constant("s2", Tensor::from(0.5f32));
    let z2 = b.constant("z2", Tensor::from(0i8));
    let dq = b.op("dq", other("DequantizeLinear", vec![]), &[q, s2, z2]);
    let relu = b.op("relu", Op::Relu, &[dq]);
    let w = b.constant("w", i8s(&[4, 2], &[1, -2, 3, 4, 5, 6, 7, 127]));
    let ws = b.constant("ws", Tensor::from_shape(&[2], &[0.1f32, 0.2]).unwrap());
    let wz = b.constant("wz", i8s(&[2], &[0, 0]));
    let wd = b.op(
        "wdq",
        other("DequantizeLinear", vec![axis(1)]),
        &[w, ws, wz],
    );
    let mm = b.op("mm", Op::MatMul, &[relu, wd]);
    // f32 weights quantized in the graph, per channel: Q -> DQ on a constant.
    let fw = b.constant(
        "fw",
        Tensor::from_shape(&[2, 3], &[0.5f32, -1.0, 2.0, 0.25, 0.1, -0.3]).unwrap(),
    );
    let fs = b.constant(
        "fs",
        Tensor::from_shape(&[3], &[0.004f32, 0.008, 0.016]).unwrap(),
    );
    let fz = b.constant("fz", i8s(&[3], &[0, 0, 0]));
    let fq = b.op("fq", other("QuantizeLinear", vec![axis(1)]), &[fw, fs, fz]);
    let fd = b.op(
        "fdq",
        other("DequantizeLinear", vec![axis(1)]),
        &[fq, fs, fz],
    );
    let mm2 = b.op("mm2", Op::MatMul, &[mm, fd]);
    b.output(mm2);
    b.build().unwrap()
}

#[test]
fn reads_activation_scales_and_skips_weights() {
    let g = qdq_graph(Tensor::from(0.5f32), Some(Tensor::from(0i8)));
    let t = scales_from_qdq(&g).unwrap();
    assert_eq!(t.algorithm, QDQ_HEADER);
    assert_eq!(t.scales.len(), 2, "{:?}", t.scales);
    assert_eq!(t.scale("x"), Some(0.5));
    assert_eq!(t.scale("dq"), Some(0.5));
    // Without a zero point it is symmetric too.
    assert_eq!(
        scales_from_qdq(&qdq_graph(Tensor::from(0.5f32), None))
            .unwrap()
            .scale("x"),
        Some(0.5)
    );
}

fn qdq_error(g: &Graph) -> String {
    match scales_from_qdq(g) {
        Err(e @ QuantError::Qdq { .. }) => e.to_string(),
        other => panic!("expected a QDQ error, got {other:?}"),
    }
}

#[test]
fn asymmetric_bad_and_mismatched_scales_are_errors_naming_the_node() {
    let e = qdq_error(&qdq_graph(Tensor::from(0.5f32), Some(Tensor::from(3i8))));
    assert!(e.contains("node `q`") && e.contains("zero point 3"), "{e}");
    let e = qdq_error(&qdq_graph(Tensor::from(0.5f32), Some(Tensor::from(0u8))));
    assert!(e.contains("node `q`") && e.contains("int8"), "{e}");
    let e = qdq_error(&qdq_graph(Tensor::from(-1f32), None));
    assert!(e.contains("not a positive"), "{e}");
    // Q quantizes x with 0.25, its DQ dequantizes with 0.5: the pair disagrees.
    let e = qdq_error(&qdq_graph(Tensor::from(0.25f32), None));
    assert!(e.contains("node `dq`") && e.contains("0.25"), "{e}");
}

#[test]
fn per_channel_activation_scales_are_refused() {
    let mut b = GraphBuilder::new();
    let x = b.input("x", &[1, 2]);
    let s = b.constant("s", Tensor::from_shape(&[2], &[0.1f32, 0.2]).unwrap());
    let q = b.op("quant", other("QuantizeLinear", vec![axis(1)]), &[x, s]);
    b.output(q);
    let g = b.build().unwrap();
    let e = qdq_error(&g);
    assert!(
        e.contains("node `quant`") && e.contains("per-channel"),
        "{e}"
    );
}

#[test]
fn one_tensor_with_two_scales_is_an_error() {
    let mut b = GraphBuilder::new();
    let x = b.input("x", &[1, 2]);
    let s1 = b.constant("s1", Tensor::from(0.1f32));
    let s2 = b.constant("s2", Tensor::from(0.2f32));
    let q1 = b.op("q1", other("QuantizeLinear", vec![]), &[x, s1]);
    let q2 = b.op("q2", other("QuantizeLinear", vec![]), &[x, s2]);
    b.output(q1);
    b.output(q2);
    let g = b.build().unwrap();
    let e = qdq_error(&g);
    assert!(e.contains("already has scale"), "{e}");
}
