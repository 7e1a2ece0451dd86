//! Softmax on the GPU against tract: 2-D rows, and a 4-D tensor over its last axis (an
//! NHWC engine puts it in NCHW order around the row kernel).
//! Every case in fp32 NCHW, fp32 NHWC (1e-4 relative) and fp16 (1e-2).
//! Run on a GPU machine: `cargo test -p trtc-cuda --test gpu softmax:: -- --ignored`.

use crate::common::*;

#[test]
#[ignore = "needs a CUDA GPU"]
fn softmax_over_the_last_axis_matches_tract() {
    for dims in [vec![1000usize], vec![6, 5, 7]] {
        let mut b = GraphBuilder::new();
        let mut shape: Vec<trtc_ir::Dim> = vec!["N".into()];
        shape.extend(dims.iter().map(|&d| (d as u64).into()));
        let x = b.input_with("x", trtc_ir::DType::F32, shape);
        let k = b.constant("k", tensor0(3f32));
        let m = b.op("scale", Op::Mul, &[x, k]);
        let y = b.op("softmax", Op::Softmax { axis: -1 }, &[m]);
        b.output(y);
        let mut in_shape = vec![2usize];
        in_shape.extend(&dims);
        check_all_configs(
            &b.build().unwrap(),
            vec![random_tensor(&in_shape, 3)],
            &format!("softmax of {in_shape:?}"),
        );
    }
}

/// Softmax over a non-last axis, LogSoftmax (opset 13: one axis), in odd sizes; an
/// NHWC engine reads the 4-D tensor strided, with no relayouts.
#[test]
#[ignore = "needs a CUDA GPU"]
fn softmax_and_log_softmax_over_any_axis_match_tract() {
    use crate::reduce::{check_printed, input, op, A};
    let mut b = GraphBuilder::new();
    let x = input(&mut b, &[37, 7, 7]);
    for (k, axis) in [1i64, 2, -1].into_iter().enumerate() {
        let s = b.op(&format!("sm{k}"), Op::Softmax { axis }, &[x]);
        b.output(s);
        let l = b.op(
            &format!("lsm{k}"),
            op("LogSoftmax", &[("axis", A::I(axis))]),
            &[x],
        );
        b.output(l);
    }
    let l = b.op("lsm_default", op("LogSoftmax", &[]), &[x]);
    b.output(l);
    check_printed(
        &b.build().unwrap(),
        vec![random_tensor(&[2, 37, 7, 7], 7)],
        "softmax over axes 1, 2, 3 of [2, 37, 7, 7]",
    );
    // A long row and a long strided column.
    let mut b = GraphBuilder::new();
    let x = input(&mut b, &[1000, 3]);
    let s = b.op("col", Op::Softmax { axis: 1 }, &[x]);
    b.output(s);
    let l = b.op("row", op("LogSoftmax", &[("axis", A::I(-1))]), &[x]);
    b.output(l);
    check_printed(
        &b.build().unwrap(),
        vec![random_tensor(&[2, 1000, 3], 8)],
        "softmax over axes 1 and 2 of [2, 1000, 3]",
    );
}

/// Opset 11: Softmax and LogSoftmax over the tensor coerced to 2-D at `axis`.
#[test]
#[ignore = "needs a CUDA GPU"]
fn old_opset_softmax_flattens_the_tail_as_tract_does() {
    use crate::reduce::{check_printed, input, op, A};
    let mut b = GraphBuilder::new();
    let x = input(&mut b, &[5, 6, 7]);
    let s = b.op("sm_default", op("Softmax", &[]), &[x]);
    b.output(s);
    let s2 = b.op("sm2", op("Softmax", &[("axis", A::I(2))]), &[x]);
    b.output(s2);
    let l = b.op("lsm", op("LogSoftmax", &[("axis", A::I(-1))]), &[x]);
    b.output(l);
    let l1 = b.op("lsm1", op("LogSoftmax", &[]), &[x]);
    b.output(l1);
    let mut g = b.build().unwrap();
    g.meta.opset_imports = vec![(String::new(), 11)];
    check_printed(
        &g,
        vec![random_tensor(&[2, 5, 6, 7], 9)],
        "opset-11 softmax of [2, 5, 6, 7]",
    );
}
