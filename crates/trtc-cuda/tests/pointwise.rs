//! 1x1 convolutions through trtc's tensor-core kernels (`pointwise_mma_k*`, fp16 NHWC engines,
//! at most 64 input channels; `TRTC_POINTWISE=mma` forces it here) against tract: input
//! channels padded to whole k-steps (24, 40) or not (16, 64), a last block of output
//! channels part full (24, 96), pixels not a whole number of blocks, bias, residual and
//! activations, and outputs written straight into a concat's output (rows 56 channels
//! apart). The fp32 configurations run the other kernels: the choice is checked too.

use crate::common::*;

#[test]
#[ignore = "needs a CUDA GPU"]
fn pointwise_mma_matches_tract() {
    std::env::set_var("TRTC_POINTWISE", "mma");
    let cases = [
        (16, 96, Some(Activation::Clip { min: 0.0, max: 6.0 }), false),
        (24, 24, Some(Activation::Relu), true),
        (40, 24, None, false),
        (64, 64, Some(Activation::HardSwish), true),
        // More input channels than the kernel holds: cuBLASLt or cuDNN.
        (72, 16, None, false),
    ];
    for (k, n, activation, residual) in cases {
        let mut b = GraphBuilder::new();
        let x = b.input("x", &[3, k, 13, 11]);
        let f = one_by_one(residual, activation);
        let y = fused_conv(&mut b, "pw", x, [n, k, 1, 1], 5, f);
        b.output(y);
        let g = b.build().unwrap();
        for (precision, layout, tolerance) in CONFIGS {
            let inputs = vec![random_tensor(&[3, k, 13, 11], 6)];
            let (rel, model) = gpu_vs_tract_model(&g, inputs, &opts_for(precision, layout));
            let what = format!("{k} -> {n}, {activation:?}, residual {residual}, {precision:?}");
            assert!(
                rel <= tolerance,
                "{what}: relative error {rel} over {tolerance}"
            );
            let tactics = tactics_of(&model);
            let run = &tactics.instances[0].convs[0].1;
            let takes = precision == Precision::Fp16 && k <= 64;
            assert_eq!(run.pointwise, takes, "{what}: tensor-core 1x1 kernel");
        }
    }
    std::env::remove_var("TRTC_POINTWISE");
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn pointwise_mma_writes_into_a_concat() {
    std::env::set_var("TRTC_POINTWISE", "mma");
    let mut b = GraphBuilder::new();
    let x = b.input("x", &[2, 16, 9, 7]);
    let plain = one_by_one(false, Some(Activation::Relu));
    let l = fused_conv(&mut b, "left", x, [32, 16, 1, 1], 7, plain.clone());
    let r = fused_conv(&mut b, "right", x, [24, 16, 1, 1], 8, plain);
    let y = b.op("cat", Op::Concat { axis: 1 }, &[l, r]);
    b.output(y);
    let g = b.build().unwrap();
    let inputs = vec![random_tensor(&[2, 16, 9, 7], 9)];
    let opts = opts_for(Precision::Fp16, Layout::Auto);
    let (rel, model) = gpu_vs_tract_model(&g, inputs, &opts);
    assert!(rel <= FP16_TOLERANCE, "relative error {rel}");
    let tactics = tactics_of(&model);
    let inst = &tactics.instances[0];
    assert!(inst.convs.iter().all(|(_, c)| c.pointwise), "{inst:?}");
    assert!(
        inst.views.as_ref().is_some_and(|v| v.len() == 2),
        "both convs write into the concat: {inst:?}"
    );
    std::env::remove_var("TRTC_POINTWISE");
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn pointwise_mma_walks_many_tiles_per_warp() {
    // 180,000 pixels: more 16-pixel tiles than the GPU's resident warps, so each warp walks
    // several (the next tile's loads in flight during the current one's epilogue); 104
    // outputs: a whole chunk of 64 channels and a part chunk of 40; a residual and Clip.
    std::env::set_var("TRTC_POINTWISE", "mma");
    let mut b = GraphBuilder::new();
    let x = b.input("x", &[2, 16, 300, 300]);
    let z = b.input("z", &[2, 104, 300, 300]);
    let w = b.constant("pw_w", random_tensor(&[104, 16, 1, 1], 11));
    let bias = b.constant("pw_b", random_tensor(&[104], 2));
    let f = one_by_one(true, Some(Activation::Clip { min: 0.0, max: 6.0 }));
    let y = b.op("pw", Op::FusedConv(f), &[x, w, bias, z]);
    b.output(y);
    let g = b.build().unwrap();
    let inputs = vec![
        random_tensor(&[2, 16, 300, 300], 12),
        random_tensor(&[2, 104, 300, 300], 13),
    ];
    let (rel, model) = gpu_vs_tract_model(&g, inputs, &opts_for(Precision::Fp16, Layout::Auto));
    assert!(rel <= FP16_TOLERANCE, "relative error {rel}");
    let tactics = tactics_of(&model);
    assert!(tactics.instances[0].convs[0].1.pointwise);
    std::env::remove_var("TRTC_POINTWISE");
}
