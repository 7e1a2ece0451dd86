//! Shape ops on the GPU against tract: reshapes across layouts, concat inputs written in place, split outputs written into their concat.
//! Every case in fp32 NCHW, fp32 NHWC (1e-4 relative) and fp16 (1e-2).
//! Run on a GPU machine: `cargo test -p trtc-cuda --test gpu shape:: -- --ignored`.

use crate::common::*;

/// Reshapes of NHWC data: Flatten of a feature map with many pixels (needs NCHW order),
/// a 2-D tensor reshaped back to 4-D and convolved, an elementwise op between a 4-D
/// tensor and a 3-D constant, and a channel split.
#[test]
#[ignore = "needs a CUDA GPU"]
fn reshapes_and_broadcasts_across_layouts_match_tract() {
    let mut b = GraphBuilder::new();
    let x = b.input("x", &[2, 3, 6, 5]);
    let c1 = conv(
        &mut b,
        x,
        3,
        4,
        3,
        ConvAttrs {
            group: 1,
            pads: vec![1, 1, 1, 1],
            ..Default::default()
        },
        1,
    );
    let k3 = b.constant("k3", random_tensor(&[4, 6, 1], 2));
    let scaled = b.op("scale", Op::Add, &[c1, k3]);
    let flat = b.op("flat", Op::Flatten { axis: 1 }, &[scaled]);
    let shape = b.constant(
        "shape",
        trtc_ir::tract_onnx::prelude::tensor1(&[2i64, 8, 3, 5]),
    );
    let back = b.op("back", Op::Reshape { allowzero: 0 }, &[flat, shape]);
    let c2 = conv(
        &mut b,
        back,
        8,
        4,
        1,
        ConvAttrs {
            group: 1,
            ..Default::default()
        },
        3,
    );
    let parts = b.op_n(
        "split",
        Op::Split {
            axis: 1,
            num_outputs: None,
        },
        &[Some(c2)],
        2,
    );
    let prod = b.op("prod", Op::Mul, &[parts[0], parts[1]]);
    b.output(prod);
    b.output(flat);
    check_all_configs(
        &b.build().unwrap(),
        vec![random_tensor(&[2, 3, 6, 5], 4)],
        "flatten, reshape, split, broadcast over NHWC",
    );
}

/// Concat inputs computed in place (each producer writes its channel slice of the concat's
/// output): a 1x1 conv with ReLU (cuDNN or cuBLASLt), a 3x3 conv (fused or unfused), a
/// max pool, and an activation whose output is still copied. Checks the values in every
/// configuration and that the engine really wrote the slices in place.
#[test]
#[ignore = "needs a CUDA GPU"]
fn concat_inputs_written_in_place_match_tract() {
    let relu_1x1 = one_by_one(false, Some(Activation::Relu));
    let plain_3x3 = FusedConv {
        conv: ConvAttrs {
            group: 1,
            pads: vec![1, 1, 1, 1],
            ..Default::default()
        },
        residual: false,
        activation: None,
    };
    let mut b = GraphBuilder::new();
    let x = b.input_with(
        "x",
        trtc_ir::DType::F32,
        vec!["N".into(), 16u64.into(), 9u64.into(), 9u64.into()],
    );
    let a = fused_conv(&mut b, "a", x, [8, 16, 1, 1], 1, relu_1x1.clone());
    let c3 = fused_conv(&mut b, "b", x, [16, 16, 3, 3], 4, plain_3x3);
    let mp = b.op(
        "mp",
        Op::MaxPool(PoolAttrs {
            kernel_shape: vec![3, 3],
            pads: vec![1, 1, 1, 1],
            ..Default::default()
        }),
        &[x],
    );
    let act = b.op("sig", Op::Sigmoid, &[x]);
    let cat = b.op("cat", Op::Concat { axis: 1 }, &[a, c3, mp, act]);
    let y = fused_conv(&mut b, "head", cat, [8, 56, 1, 1], 5, relu_1x1);
    b.output(y);
    let g = b.build().unwrap();
    for (conv, gemm) in [
        ("fused", "off"),
        ("unfused", "off"),
        ("fused", "cublaslt"),
        ("unfused", "auto"),
    ] {
        std::env::set_var("TRTC_CONV", conv);
        match gemm {
            "auto" => std::env::remove_var("TRTC_GEMM"),
            _ => std::env::set_var("TRTC_GEMM", gemm),
        }
        for batch in [1, 3] {
            for (precision, layout, tolerance) in CONFIGS {
                let opts = opts_for(precision, layout);
                let inputs = vec![random_tensor(&[batch, 16, 9, 9], 3)];
                let (rel, model) = gpu_vs_tract_model(&g, inputs, &opts);
                let what =
                    format!("{conv} convs, gemm {gemm}, batch {batch}, {precision:?} {layout:?}");
                assert!(
                    rel <= tolerance,
                    "{what}: relative error {rel} over {tolerance}"
                );
                // NCHW: both convs write in place (trtc's NCHW pooling writes packed
                // images). NHWC: the pool, and the 1x1 conv as a cuBLASLt product where
                // products are allowed (cuDNN writes no strided NHWC output). The sigmoid's
                // output is always copied.
                let expected = match (layout.nhwc_for(precision), gemm) {
                    (false, _) => 2,
                    (true, "off") => 1,
                    (true, _) => 2,
                };
                let tactics = tactics_of(&model);
                let views = tactics.instances[0].views.clone().unwrap();
                assert_eq!(views.len(), expected, "{what}: {views:?}");
            }
        }
    }
    std::env::remove_var("TRTC_CONV");
    std::env::remove_var("TRTC_GEMM");
}

/// A Split output read only by a concat is copied once, straight into its slice of the
/// concat (as horizontal fusion's Splits feed Inception's concats): `concat(sigmoid(b), a)`
/// where `a, b = split(conv(x))`.
#[test]
#[ignore = "needs a CUDA GPU"]
fn split_outputs_written_into_the_concat_match_tract() {
    let mut b = GraphBuilder::new();
    let x = b.input_with(
        "x",
        trtc_ir::DType::F32,
        vec!["N".into(), 16u64.into(), 7u64.into(), 5u64.into()],
    );
    let plain_1x1 = ConvAttrs {
        group: 1,
        ..Default::default()
    };
    let wide = conv(&mut b, x, 16, 32, 1, plain_1x1, 21);
    let parts = b.op_n(
        "split",
        Op::Split {
            axis: 1,
            num_outputs: None,
        },
        &[Some(wide)],
        2,
    );
    let act = b.op("sig", Op::Sigmoid, &[parts[1]]);
    let cat = b.op("cat", Op::Concat { axis: 1 }, &[act, parts[0]]);
    b.output(cat);
    let g = b.build().unwrap();
    for batch in [1, 3] {
        for (precision, layout, tolerance) in CONFIGS {
            let inputs = vec![random_tensor(&[batch, 16, 7, 5], 22)];
            let (rel, model) = gpu_vs_tract_model(&g, inputs, &opts_for(precision, layout));
            let what = format!("batch {batch}, {precision:?} {layout:?}");
            assert!(
                rel <= tolerance,
                "{what}: relative error {rel} over {tolerance}"
            );
            let tactics = tactics_of(&model);
            let views = tactics.instances[0].views.clone().unwrap();
            assert_eq!(
                views.len(),
                1,
                "{what}: the split's first output in place: {views:?}"
            );
        }
    }
}
