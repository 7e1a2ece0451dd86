//! LayerNormalization, InstanceNormalization, LRN and a decomposed LayerNorm (PyTorch's
//! export below opset 17) on the GPU against tract, in odd sizes.
//! Every case in fp32 NCHW, fp32 NHWC and fp16 (NHWC).
//! Run on a GPU machine: `cargo test -p trtc-cuda --test gpu layer_norm:: -- --ignored`.

use crate::common::*;
use crate::reduce::{check_printed, input, op, A};

#[test]
#[ignore = "needs a CUDA GPU"]
fn layer_norm_matches_tract() {
    // Over the last axis (scale and bias) and over the last two (scale only); values
    // off zero, so that the mean matters.
    let mut b = GraphBuilder::new();
    let x = input(&mut b, &[5, 37]);
    let k = b.constant("k", tensor0(3f32));
    let xs = b.op("shift", Op::Add, &[x, k]);
    let s = b.constant("s", random_tensor(&[37], 1));
    let bias = b.constant("bias", random_tensor(&[37], 2));
    let ln = b.op("ln", op("LayerNormalization", &[]), &[xs, s, bias]);
    b.output(ln);
    let s2 = b.constant("s2", random_tensor(&[5, 37], 3));
    let attrs = [("axis", A::I(1)), ("epsilon", A::F(1e-3))];
    let ln1 = b.op("ln1", op("LayerNormalization", &attrs), &[xs, s2]);
    b.output(ln1);
    check_printed(
        &b.build().unwrap(),
        vec![random_tensor(&[2, 5, 37], 4)],
        "layer norm of [2, 5, 37]",
    );
    // A 4-D input over C, H, W (NHWC in fp16: a strided walk) and over W.
    let mut b = GraphBuilder::new();
    let x = input(&mut b, &[37, 7, 7]);
    let s = b.constant("s", random_tensor(&[37, 7, 7], 5));
    let ln = b.op(
        "ln_chw",
        op("LayerNormalization", &[("axis", A::I(1))]),
        &[x, s],
    );
    b.output(ln);
    let s1 = b.constant("s1", random_tensor(&[7], 6));
    let b1 = b.constant("b1", random_tensor(&[7], 7));
    let lw = b.op("ln_w", op("LayerNormalization", &[]), &[x, s1, b1]);
    b.output(lw);
    check_printed(
        &b.build().unwrap(),
        vec![random_tensor(&[2, 37, 7, 7], 8)],
        "layer norm of [2, 37, 7, 7]",
    );
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn instance_norm_and_lrn_match_tract() {
    let mut b = GraphBuilder::new();
    let x = input(&mut b, &[37, 7, 7]);
    let s = b.constant("s", random_tensor(&[37], 1));
    let bias = b.constant("bias", random_tensor(&[37], 2));
    let n = b.op("in", op("InstanceNormalization", &[]), &[x, s, bias]);
    b.output(n);
    let attrs = [
        ("size", A::I(5)),
        ("alpha", A::F(0.01)),
        ("beta", A::F(0.75)),
        ("bias", A::F(2.0)),
    ];
    let l = b.op("lrn", op("LRN", &attrs), &[x]);
    b.output(l);
    let l2 = b.op(
        "lrn2",
        op("LRN", &[("size", A::I(4)), ("alpha", A::F(0.5))]),
        &[x],
    );
    b.output(l2);
    check_printed(
        &b.build().unwrap(),
        vec![random_tensor(&[2, 37, 7, 7], 3)],
        "instance norm and LRN of [2, 37, 7, 7]",
    );
    // A 3-D instance norm (one spatial dim).
    let mut b = GraphBuilder::new();
    let x = input(&mut b, &[6, 50]);
    let s = b.constant("s", random_tensor(&[6], 1));
    let bias = b.constant("bias", random_tensor(&[6], 2));
    let n = b.op("in", op("InstanceNormalization", &[]), &[x, s, bias]);
    b.output(n);
    check_printed(
        &b.build().unwrap(),
        vec![random_tensor(&[2, 6, 50], 4)],
        "instance norm of [2, 6, 50]",
    );
}

/// PyTorch's LayerNorm below opset 17: ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div,
/// Mul, Add, each its own step on the GPU.
#[test]
#[ignore = "needs a CUDA GPU"]
fn decomposed_layer_norm_matches_tract() {
    let mut b = GraphBuilder::new();
    let x = input(&mut b, &[7, 48]);
    let axes = [("axes", A::Is(vec![-1]))];
    let mean = b.op("mean", op("ReduceMean", &axes), &[x]);
    let d = b.op("sub", Op::Sub, &[x, mean]);
    let two = b.constant("two", tensor0(2f32));
    let sq = b.op("pow", op("Pow", &[]), &[d, two]);
    let var = b.op("var", op("ReduceMean", &axes), &[sq]);
    let eps = b.constant("eps", tensor0(1e-5f32));
    let ve = b.op("add_eps", Op::Add, &[var, eps]);
    let sd = b.op("sqrt", op("Sqrt", &[]), &[ve]);
    let n = b.op("div", Op::Div, &[d, sd]);
    let w = b.constant("w", random_tensor(&[48], 1));
    let m = b.op("mul", Op::Mul, &[n, w]);
    let bias = b.constant("b", random_tensor(&[48], 2));
    let y = b.op("add", Op::Add, &[m, bias]);
    b.output(y);
    check_printed(
        &b.build().unwrap(),
        vec![random_tensor(&[2, 7, 48], 3)],
        "decomposed layer norm of [2, 7, 48]",
    );
}
