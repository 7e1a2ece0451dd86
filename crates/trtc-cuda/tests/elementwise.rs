//! Elementwise ops on the GPU against tract, fused into chain kernels.
//! Every case in fp32 NCHW, fp32 NHWC (1e-4 relative) and fp16 (1e-2).
//! Run on a GPU machine: `cargo test -p trtc-cuda --test gpu elementwise:: -- --ignored`.

use crate::common::*;

/// Elementwise chains run as one kernel each: HardSwish written out (`x * Clip(x + 3, 0, 6)
/// / 6`) then a per-channel Sub and a Sigmoid; and `tanh(x * x)`, whose one input is read
/// once. Checks the values in every configuration and that each chain is one step.
#[test]
#[ignore = "needs a CUDA GPU"]
fn elementwise_chains_run_as_one_kernel_and_match_tract() {
    let mut b = GraphBuilder::new();
    let x = b.input("x", &[2, 8, 6, 6]);
    let three = b.constant("three", tensor0(3f32));
    let six = b.constant("six", tensor0(6f32));
    let zero = b.constant("zero", tensor0(0f32));
    let shifted = b.op("add3", Op::Add, &[x, three]);
    let clipped = b.op("clip", Op::Clip, &[shifted, zero, six]);
    let scaled = b.op("div6", Op::Div, &[clipped, six]);
    let hswish = b.op("mul_x", Op::Mul, &[x, scaled]);
    let per_channel = b.constant("c", random_tensor(&[1, 8, 1, 1], 4));
    let centred = b.op("sub_c", Op::Sub, &[hswish, per_channel]);
    let y1 = b.op("sigmoid", Op::Sigmoid, &[centred]);
    let square = b.op("square", Op::Mul, &[x, x]);
    let y2 = b.op("tanh", Op::Tanh, &[square]);
    b.output(y1);
    b.output(y2);
    let g = b.build().unwrap();
    let inputs = vec![random_tensor(&[2, 8, 6, 6], 3)];
    for (precision, layout, tolerance) in CONFIGS {
        let opts = opts_for(precision, layout);
        let (rel, model) = gpu_vs_tract_model(&g, inputs.clone(), &opts);
        let what = format!("{precision:?} {layout:?}");
        assert!(
            rel <= tolerance,
            "{what}: relative error {rel} over {tolerance}"
        );
        let layers: Vec<String> = model
            .profile(inputs.clone())
            .unwrap()
            .into_iter()
            .filter(|(_, t)| ["elementwise", "activation"].contains(&t.kind))
            .map(|(_, t)| t.layer)
            .collect();
        let mut layers = layers;
        layers.sort();
        assert_eq!(
            layers,
            vec!["sigmoid (+5 fused)", "tanh (+1 fused)"],
            "{what}: one step per chain"
        );
    }
}
