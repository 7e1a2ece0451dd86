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

/// `Pool -> Add(per-channel constant) -> Relu` (what `pool-conv-swap` leaves InceptionV3),
/// then a concat the fused pool may write its slice of: the Add and the Relu run in the
/// pool kernel's epilogue (one `pool` layer, no elementwise one), average and max pooling,
/// 32 channels (16-byte vector kernel), 20 (vector in f32, per-pixel in fp16) and 6
/// (per-pixel), in fp32 NCHW, fp32 NHWC and fp16 NHWC.
#[test]
#[ignore = "needs a CUDA GPU"]
fn pool_bias_relu_run_as_one_pool_kernel_and_match_tract() {
    let configs = [
        (Precision::Fp32, Layout::Nchw, FP32_TOLERANCE),
        (Precision::Fp32, Layout::Nhwc, FP32_TOLERANCE),
        (Precision::Fp16, Layout::Nhwc, FP16_TOLERANCE),
    ];
    for max in [false, true] {
        for c in [32, 20, 6] {
            let g = pool_bias_relu(max, c);
            let inputs = vec![random_tensor(&[2, c, 9, 9], 11)];
            for (precision, layout, tolerance) in configs {
                let what = format!("max {max}, {c} channels, {precision:?} {layout:?}");
                let (rel, model) =
                    gpu_vs_tract_model(&g, inputs.clone(), &opts_for(precision, layout));
                assert!(
                    rel <= tolerance,
                    "{what}: relative error {rel} over {tolerance}"
                );
                let layers: Vec<(String, &str)> = model
                    .profile(inputs.clone())
                    .unwrap()
                    .into_iter()
                    .map(|(_, t)| (t.layer, t.kind))
                    .collect();
                let pools: Vec<&String> = layers
                    .iter()
                    .filter(|(_, k)| *k == "pool")
                    .map(|(l, _)| l)
                    .collect();
                assert_eq!(pools, vec!["pool (+2 fused)"], "{what}: {layers:?}");
                assert!(
                    !layers
                        .iter()
                        .any(|(_, k)| ["elementwise", "activation"].contains(k)),
                    "{what}: {layers:?}"
                );
            }
        }
    }
}

/// `Concat(Relu(Pool(x) + bias), x)` on `x: f32[2, c, 9, 9]`: a 3x3 window, stride 1,
/// pads 1 (counted in the average); the bias `[c, 1, 1]` for the average pool (as
/// `pool-conv-swap` writes it), `[1, c, 1, 1]` for the max pool.
fn pool_bias_relu(max: bool, c: usize) -> Graph {
    let mut b = GraphBuilder::new();
    let x = b.input("x", &[2, c, 9, 9]);
    let attrs = PoolAttrs {
        kernel_shape: vec![3, 3],
        strides: vec![1, 1],
        pads: vec![1, 1, 1, 1],
        count_include_pad: (!max) as i64,
        ..Default::default()
    };
    let op = match max {
        true => Op::MaxPool(attrs),
        false => Op::AveragePool(attrs),
    };
    let pooled = b.op("pool", op, &[x]);
    let bias_shape: &[usize] = if max { &[1, c, 1, 1] } else { &[c, 1, 1] };
    let bias = b.constant("bias", random_tensor(bias_shape, 12));
    let added = b.op("add", Op::Add, &[pooled, bias]);
    let relu = b.op("relu", Op::Relu, &[added]);
    let cat = b.op("cat", Op::Concat { axis: 1 }, &[relu, x]);
    b.output(cat);
    b.build().unwrap()
}
