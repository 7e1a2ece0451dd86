//! Shape rules of reductions, normalizations and Q/DQ, without tract.
use crate::op::OtherOp;
use crate::shape::{Dim, Shape};
use crate::{DType, GraphBuilder, Op};
use tract_onnx::pb::{attribute_proto::AttributeType, AttributeProto};
use tract_onnx::prelude::tensor1;

fn other(op_type: &str, ints: &[(&str, Vec<i64>)]) -> Op {
    let attributes = ints
        .iter()
        .map(|(name, v)| AttributeProto {
            name: name.to_string(),
            ints: v.clone(),
            i: v.first().copied().unwrap_or(0),
            r#type: if *name == "axes" {
                AttributeType::Ints as i32
            } else {
                AttributeType::Int as i32
            },
            ..Default::default()
        })
        .collect();
    Op::Other(OtherOp {
        op_type: op_type.into(),
        domain: String::new(),
        attributes,
    })
}

#[test]
fn reductions_and_normalizations_have_shapes_without_tract() {
    let mut b = GraphBuilder::new();
    let shape: Shape = vec![Dim::Sym("N".into()), 8u64.into(), 4u64.into(), 5u64.into()];
    let x = b.input_with("x", DType::F32, shape);
    let m = b.op("m", other("ReduceMean", &[("axes", vec![2, 3])]), &[x]);
    let attrs = [("axes", vec![-1]), ("keepdims", vec![0])];
    let m0 = b.op("m0", other("ReduceMax", &attrs), &[x]);
    let axes = b.constant("axes", tensor1(&[1i64]));
    let s = b.op(
        "s",
        other("ReduceSum", &[("keepdims", vec![0])]),
        &[x, axes],
    );
    let ln = b.op_n(
        "ln",
        other("LayerNormalization", &[("axis", vec![2])]),
        &[Some(x)],
        3,
    );
    let lrn = b.op("lrn", other("LRN", &[("size", vec![3])]), &[x]);
    for o in [m, m0, s, ln[0], ln[1], lrn] {
        b.output(o);
    }
    let g = b.build().unwrap();
    let shape = |o| g.tensor(o).shape.clone().unwrap();
    let n = || Dim::Sym("N".into());
    assert_eq!(shape(m), vec![n(), 8u64.into(), 1u64.into(), 1u64.into()]);
    assert_eq!(shape(m0), vec![n(), 8u64.into(), 4u64.into()]);
    assert_eq!(shape(s), vec![n(), 4u64.into(), 5u64.into()]);
    assert_eq!(shape(ln[0]), shape(x));
    assert_eq!(
        shape(ln[1]),
        vec![n(), 8u64.into(), 1u64.into(), 1u64.into()]
    );
    assert_eq!(g.tensor(ln[1]).dtype, Some(DType::F32));
    assert_eq!(shape(lrn), shape(x));
}

#[test]
fn quantize_and_dequantize_keep_the_shape_and_take_the_zero_point_and_scale_types() {
    use tract_onnx::prelude::Tensor;
    let mut b = GraphBuilder::new();
    let shape: Shape = vec![Dim::Sym("N".into()), 8u64.into(), 4u64.into()];
    let x = b.input_with("x", DType::F32, shape.clone());
    let s = b.constant("s", Tensor::from(0.1f32));
    let z = b.constant("z", Tensor::from(0i8));
    let q = b.op("q", other("QuantizeLinear", &[]), &[x, s, z]);
    let dq = b.op("dq", other("DequantizeLinear", &[]), &[q, s, z]);
    let q_u8 = b.op("q_u8", other("QuantizeLinear", &[]), &[x, s]);
    for o in [dq, q_u8] {
        b.output(o);
    }
    let g = b.build().unwrap();
    let t = |o| g.tensor(o).clone();
    assert_eq!(
        (t(q).dtype, t(q).shape),
        (Some(DType::I8), Some(shape.clone()))
    );
    assert_eq!(
        (t(dq).dtype, t(dq).shape),
        (Some(DType::F32), Some(shape.clone()))
    );
    assert_eq!(t(q_u8).dtype, Some(DType::U8));
}
