//! Unary elementwise ops (kept as `Op::Other` by the IR) and Pow on the GPU against tract,
//! alone and fused into chains with their neighbours.
//! Every case in fp32 NCHW, fp32 NHWC (1e-4 relative) and fp16 (1e-2).
//! Run on a GPU machine: `cargo test -p trtc-cuda --test gpu unary:: -- --ignored`.

use crate::common::*;

/// `op` with attributes `attrs` (name, float value).
pub fn other(op: &str, attrs: &[(&str, f32)]) -> Op {
    Op::Other(trtc_ir::op::OtherOp {
        op_type: op.into(),
        domain: String::new(),
        attributes: attrs
            .iter()
            .map(|(n, f)| trtc_ir::tract_onnx::pb::AttributeProto {
                name: n.to_string(),
                f: *f,
                r#type: trtc_ir::tract_onnx::pb::attribute_proto::AttributeType::Float as i32,
                ..Default::default()
            })
            .collect(),
    })
}

/// The unary ops trtc runs that tract runs too, with attributes.
pub const UNARY: &[(&str, &[(&str, f32)])] = &[
    ("Elu", &[("alpha", 0.7)]),
    ("Selu", &[]),
    ("Softplus", &[]),
    ("Softsign", &[]),
    ("Erf", &[]),
    ("Exp", &[]),
    ("Neg", &[]),
    ("Abs", &[]),
    ("Floor", &[]),
    ("Ceil", &[]),
];

#[test]
#[ignore = "needs a CUDA GPU"]
fn unary_ops_match_tract() {
    for (op, attrs) in UNARY {
        let mut b = GraphBuilder::new();
        let x = b.input_with(
            "x",
            trtc_ir::DType::F32,
            vec!["N".into(), 8u64.into(), 5u64.into(), 5u64.into()],
        );
        let y = b.op(op, other(op, attrs), &[x]);
        b.output(y);
        check_all_configs(
            &b.build().unwrap(),
            vec![random_tensor(&[2, 8, 5, 5], 3)],
            op,
        );
    }
}

/// Sqrt, Log and Reciprocal of positive values, Pow by a constant and by a tensor: one
/// chain of elementwise steps.
#[test]
#[ignore = "needs a CUDA GPU"]
fn positive_domain_ops_and_pow_match_tract() {
    let mut b = GraphBuilder::new();
    let x = b.input_with(
        "x",
        trtc_ir::DType::F32,
        vec!["N".into(), 16u64.into(), 3u64.into(), 3u64.into()],
    );
    let a = b.op("abs", other("Abs", &[]), &[x]);
    let eps = b.constant("eps", tensor0(0.25f32));
    let pos = b.op("pos", Op::Add, &[a, eps]);
    let s = b.op("sqrt", other("Sqrt", &[]), &[pos]);
    let l = b.op("log", other("Log", &[]), &[pos]);
    let r = b.op("recip", other("Reciprocal", &[]), &[pos]);
    let e = b.constant("e", tensor0(1.5f32));
    let p = b.op("pow", other("Pow", &[]), &[pos, e]);
    let sl = b.op("sl", Op::Add, &[s, l]);
    let rp = b.op("rp", Op::Mul, &[r, p]);
    let per_channel = b.constant("k", random_tensor(&[16, 1, 1], 4));
    let pc = b.op("pc", Op::Add, &[per_channel, eps]);
    let pt = b.op("powt", other("Pow", &[]), &[pos, pc]);
    let y = b.op("sum", Op::Add, &[sl, rp]);
    let y = b.op("sum2", Op::Add, &[y, pt]);
    b.output(y);
    check_all_configs(
        &b.build().unwrap(),
        vec![random_tensor(&[2, 16, 3, 3], 5)],
        "sqrt, log, reciprocal, pow",
    );
}
