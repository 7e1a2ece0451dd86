//! Pooling on the GPU against tract, in a pipeline of pools, concat, broadcast, clip, global pool, gemm and softmax.
//! Every case in fp32 NCHW, fp32 NHWC (1e-4 relative) and fp16 (1e-2).
//! Run on a GPU machine: `cargo test -p trtc-cuda --test gpu pooling:: -- --ignored`.

use crate::common::*;

#[test]
#[ignore = "needs a CUDA GPU"]
fn pools_elementwise_concat_gemm_softmax_match_tract() {
    // 4 channels: trtc's per-pixel fp16 pooling kernel; 16: its 16-byte vector form.
    for c in [4, 16] {
        pools_etc_for(c);
    }
}

fn pools_etc_for(c: usize) {
    let mut b = GraphBuilder::new();
    let x = b.input("x", &[2, c, 10, 10]);
    let mp = b.op(
        "mp",
        Op::MaxPool(PoolAttrs {
            kernel_shape: vec![3, 3],
            strides: vec![2, 2],
            ceil_mode: 1,
            ..Default::default()
        }),
        &[x],
    );
    let ap = b.op(
        "ap",
        Op::AveragePool(PoolAttrs {
            kernel_shape: vec![3, 3],
            strides: vec![2, 2],
            pads: vec![1, 1, 1, 1],
            count_include_pad: 1,
            ..Default::default()
        }),
        &[x],
    );
    let ap2 = b.op(
        "ap2",
        Op::AveragePool(PoolAttrs {
            kernel_shape: vec![3, 3],
            strides: vec![2, 2],
            pads: vec![1, 1, 1, 1],
            ..Default::default()
        }),
        &[x],
    );
    let cat = b.op("cat", Op::Concat { axis: 1 }, &[mp, ap, ap2]);
    let k = b.constant("k", random_tensor(&[1, 3 * c, 1, 1], 4));
    let m = b.op("mul", Op::Mul, &[cat, k]);
    let lo = b.constant("lo", tensor0(-0.2f32));
    let hi = b.constant("hi", tensor0(0.5f32));
    let clipped = b.op("clip", Op::Clip, &[m, lo, hi]);
    let gap = b.op("gap", Op::GlobalAveragePool, &[clipped]);
    let flat = b.op("flat", Op::Flatten { axis: 1 }, &[gap]);
    let w = b.constant("gw", random_tensor(&[10, 3 * c], 5));
    let gb = b.constant("gb", random_tensor(&[10], 6));
    let gm = b.op(
        "gemm",
        Op::Gemm {
            alpha: 1.0,
            beta: 1.0,
            trans_a: 0,
            trans_b: 1,
        },
        &[flat, w, gb],
    );
    let sm = b.op("softmax", Op::Softmax { axis: -1 }, &[gm]);
    b.output(sm);
    b.output(gm);
    check_all_configs(
        &b.build().unwrap(),
        vec![random_tensor(&[2, c, 10, 10], 8)],
        &format!("pools, concat, broadcast mul, clip, global pool, gemm, softmax; {c} channels"),
    );
}
