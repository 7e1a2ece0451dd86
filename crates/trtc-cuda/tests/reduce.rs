//! Reductions on the GPU against tract: the squeeze-excite mean over H and W (keepdims 1
//! and 0), means and sums over the last axis, axes apart (C and W), every reducer, the
//! axes input of ReduceSum, long reductions (a thread column per output and a warp per
//! output), 5-D inputs (one reduced to a 4-D output, NHWC in fp16), odd sizes (C = 37,
//! H = W = 7). Every case in fp32 NCHW, fp32 NHWC and fp16 (NHWC).
//! Run on a GPU machine: `cargo test -p trtc-cuda --test gpu reduce:: -- --ignored`.

use crate::common::*;
use trtc_ir::tract_onnx::pb::attribute_proto::AttributeType;
use trtc_ir::tract_onnx::pb::AttributeProto;

/// An attribute of an ONNX node.
pub enum A {
    I(i64),
    F(f32),
    Is(Vec<i64>),
}

/// `op_type` as the IR keeps it, with attributes.
pub fn op(op_type: &str, attrs: &[(&str, A)]) -> Op {
    let attributes = attrs
        .iter()
        .map(|(name, a)| {
            let mut p = AttributeProto {
                name: name.to_string(),
                ..Default::default()
            };
            match a {
                A::I(i) => (p.i, p.r#type) = (*i, AttributeType::Int as i32),
                A::F(f) => (p.f, p.r#type) = (*f, AttributeType::Float as i32),
                A::Is(v) => (p.ints, p.r#type) = (v.clone(), AttributeType::Ints as i32),
            }
            p
        })
        .collect();
    Op::Other(trtc_ir::op::OtherOp {
        op_type: op_type.into(),
        domain: String::new(),
        attributes,
    })
}

/// An input `[N, dims...]`.
pub fn input(b: &mut GraphBuilder, dims: &[usize]) -> Outlet {
    let mut shape: Vec<trtc_ir::Dim> = vec!["N".into()];
    shape.extend(dims.iter().map(|&d| (d as u64).into()));
    b.input_with("x", trtc_ir::DType::F32, shape)
}

/// Every configuration against tract, each one's relative error printed (run with
/// `--nocapture` to see them): fp32 within 1e-4 (they are near 1e-6), fp16 within 1e-2.
pub fn check_printed(g: &Graph, inputs: Vec<trtc_ir::Tensor>, what: &str) {
    for (precision, layout, tolerance) in CONFIGS {
        let rel = gpu_vs_tract_with(g, inputs.clone(), &opts_for(precision, layout));
        eprintln!("{what}, {precision:?} {layout:?}: relative error {rel:.2e}");
        assert!(
            rel <= tolerance,
            "{what}, {precision:?} {layout:?}: relative error {rel} over {tolerance}"
        );
    }
}

/// `t` over `axes` of x, with keepdims `keep`: the axes an attribute (opset 17), or for
/// ReduceSum an input.
fn reduce(b: &mut GraphBuilder, name: &str, t: &str, x: Outlet, axes: &[i64], keep: i64) -> Outlet {
    let y = if t == "ReduceSum" {
        let a = b.constant(
            &format!("{name}_axes"),
            trtc_ir::tract_onnx::prelude::tensor1(axes),
        );
        b.op(name, op(t, &[("keepdims", A::I(keep))]), &[x, a])
    } else {
        let attrs = [("axes", A::Is(axes.to_vec())), ("keepdims", A::I(keep))];
        b.op(name, op(t, &attrs), &[x])
    };
    b.output(y);
    y
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn reductions_of_odd_sizes_match_tract() {
    let mut b = GraphBuilder::new();
    let x = input(&mut b, &[37, 7, 7]);
    // Squeeze-excite: x * sigmoid(mean over H, W), and the same mean without keepdims.
    let m = reduce(&mut b, "se", "ReduceMean", x, &[2, 3], 1);
    let s = b.op("sig", Op::Sigmoid, &[m]);
    let se = b.op("scale", Op::Mul, &[x, s]);
    b.output(se);
    reduce(&mut b, "hw0", "ReduceMean", x, &[2, 3], 0);
    reduce(&mut b, "last0", "ReduceMean", x, &[-1], 0);
    reduce(&mut b, "last1", "ReduceMean", x, &[-1], 1);
    reduce(&mut b, "max", "ReduceMax", x, &[1, 3], 1);
    reduce(&mut b, "min", "ReduceMin", x, &[2], 0);
    reduce(&mut b, "l2", "ReduceL2", x, &[1], 0);
    reduce(&mut b, "ssq", "ReduceSumSquare", x, &[2, 3], 1);
    reduce(&mut b, "l1", "ReduceL1", x, &[3, 1], 0);
    reduce(&mut b, "chw", "ReduceMax", x, &[1, 2, 3], 0);
    // Products of values near 1, logs of sums of positive ones.
    let half = b.constant("half", tensor0(0.5f32));
    let one = b.constant("one", tensor0(1f32));
    let h = b.op("h", Op::Mul, &[x, half]);
    let near1 = b.op("near1", Op::Add, &[h, one]);
    reduce(&mut b, "prod", "ReduceProd", near1, &[3], 1);
    reduce(&mut b, "logsum", "ReduceLogSum", near1, &[1, 2], 0);
    // ReduceSum's axes as an input (opset 13 on), keepdims 0 and 1.
    let axes = b.constant("axes", trtc_ir::tract_onnx::prelude::tensor1(&[1i64]));
    for keep in [0, 1] {
        let y = b.op(
            &format!("sum{keep}"),
            op("ReduceSum", &[("keepdims", A::I(keep))]),
            &[x, axes],
        );
        b.output(y);
    }
    check_printed(
        &b.build().unwrap(),
        vec![random_tensor(&[2, 37, 7, 7], 3)],
        "reductions of [2, 37, 7, 7]",
    );
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn long_reductions_and_5d_inputs_match_tract() {
    // A 56x56 mean (in NHWC: a thread column per channel, 32 rows over the pixels; in
    // NCHW a warp per channel; either split over 12 blocks per output).
    let mut b = GraphBuilder::new();
    let x = input(&mut b, &[32, 56, 56]);
    reduce(&mut b, "se", "ReduceMean", x, &[2, 3], 1);
    reduce(&mut b, "sum_c", "ReduceSum", x, &[1], 1);
    // Split over several blocks per output (few outputs, long reductions).
    reduce(&mut b, "max_hw", "ReduceMax", x, &[2, 3], 0);
    reduce(&mut b, "l2_chw", "ReduceL2", x, &[1, 2, 3], 1);
    check_printed(
        &b.build().unwrap(),
        vec![random_tensor(&[2, 32, 56, 56], 4)],
        "reductions of [2, 32, 56, 56]",
    );
    // Rows of 1000 (a warp per row).
    let mut b = GraphBuilder::new();
    let x = input(&mut b, &[3, 1000]);
    reduce(&mut b, "mean", "ReduceMean", x, &[-1], 0);
    reduce(&mut b, "max", "ReduceMax", x, &[2], 1);
    reduce(&mut b, "sum", "ReduceSum", x, &[1], 0);
    check_printed(
        &b.build().unwrap(),
        vec![random_tensor(&[2, 3, 1000], 5)],
        "reductions of [2, 3, 1000]",
    );
    // 5-D: to a 3-D output, and to a 4-D one (stored NHWC by fp16 engines).
    let mut b = GraphBuilder::new();
    let x = input(&mut b, &[3, 4, 5, 6]);
    reduce(&mut b, "r24", "ReduceMean", x, &[2, 4], 0);
    reduce(&mut b, "r1", "ReduceSum", x, &[1], 0);
    reduce(&mut b, "r3", "ReduceMax", x, &[3], 1);
    check_printed(
        &b.build().unwrap(),
        vec![random_tensor(&[2, 3, 4, 5, 6], 6)],
        "reductions of [2, 3, 4, 5, 6]",
    );
}
