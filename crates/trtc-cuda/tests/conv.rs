//! Convolutions on the GPU against tract: plain, grouped, dilated, strided and padded convs, image stems and depthwise convs through trtc's own kernels, fused patterns, 1x1 convs as cuBLASLt products, Clip moved into the depthwise conv.
//! Every case in fp32 NCHW, fp32 NHWC (1e-4 relative) and fp16 (1e-2).
//! Run on a GPU machine: `cargo test -p trtc-cuda --test gpu conv:: -- --ignored`.

use crate::common::*;

#[test]
#[ignore = "needs a CUDA GPU"]
fn convolutions_match_tract() {
    let cases: Vec<(usize, usize, usize, ConvAttrs)> = vec![
        (
            3,
            8,
            3,
            ConvAttrs {
                group: 1,
                pads: vec![1, 1, 1, 1],
                ..Default::default()
            },
        ),
        (
            4,
            6,
            1,
            ConvAttrs {
                group: 1,
                ..Default::default()
            },
        ),
        (
            4,
            4,
            5,
            ConvAttrs {
                group: 1,
                pads: vec![2, 2, 2, 2],
                strides: vec![2, 2],
                ..Default::default()
            },
        ),
        (
            8,
            8,
            3,
            ConvAttrs {
                group: 8,
                pads: vec![1, 1, 1, 1],
                ..Default::default()
            },
        ),
        (
            8,
            4,
            3,
            ConvAttrs {
                group: 2,
                pads: vec![0, 0, 1, 1],
                strides: vec![2, 2],
                ..Default::default()
            },
        ),
        (
            3,
            5,
            3,
            ConvAttrs {
                group: 1,
                dilations: vec![2, 2],
                pads: vec![2, 2, 2, 2],
                ..Default::default()
            },
        ),
        // An image stem: 3 channels, stride 2, asymmetric pads.
        (
            3,
            16,
            3,
            ConvAttrs {
                group: 1,
                pads: vec![0, 0, 1, 1],
                strides: vec![2, 2],
                ..Default::default()
            },
        ),
        // A 7x7 stem of 40 outputs: the direct kernel's two blocks of 32 channels, the
        // second only a quarter full.
        (
            3,
            40,
            7,
            ConvAttrs {
                group: 1,
                pads: vec![3, 2, 2, 3],
                strides: vec![2, 2],
                ..Default::default()
            },
        ),
    ];
    // Through cuDNN, and through trtc's direct kernels where they fit, in NHWC engines: up
    // to 4 input channels with outputs in whole 16-byte vectors (cases 0, 6 and 7), and the
    // depthwise case 3; with `mma`, those stems on tensor cores in fp16 (case 7: 147 taps,
    // 10 k-steps, and a second group of 32 channels only a quarter full; 11 x 9 pixels at
    // batch 3: a last block of pixels only partly full).
    for choice in ["cudnn", "direct", "mma"] {
        std::env::set_var("TRTC_DIRECT", choice);
        for (i, (cin, cout, k, attrs)) in cases.iter().enumerate() {
            for batch in [1, 3] {
                let mut b = GraphBuilder::new();
                let x = b.input_with(
                    "x",
                    trtc_ir::DType::F32,
                    vec!["N".into(), (*cin as u64).into(), 11u64.into(), 9u64.into()],
                );
                let y = conv(&mut b, x, *cin, *cout, *k, attrs.clone(), i as u64 + 1);
                b.output(y);
                let g = b.build().unwrap();
                for (precision, layout, tolerance) in CONFIGS {
                    let opts = opts_for(precision, layout);
                    let inputs = vec![random_tensor(&[batch, *cin, 11, 9], 7)];
                    let (rel, model) = gpu_vs_tract_model(&g, inputs, &opts);
                    let what = format!(
                        "conv case {i} batch {batch} via {choice}, {precision:?} {layout:?}"
                    );
                    assert!(
                        rel <= tolerance,
                        "{what}: relative error {rel} over {tolerance}"
                    );
                    let tactics = tactics_of(&model);
                    let run = &tactics.instances[0].convs[0].1;
                    let few_inputs = *cin <= 4 && cout % 8 == 0 && attrs.group == 1;
                    let depthwise = attrs.group as usize == *cin && cin == cout;
                    let fits = layout.nhwc_for(precision) && (few_inputs || depthwise);
                    assert_eq!(
                        run.direct,
                        fits && choice != "cudnn",
                        "{what}: direct kernel"
                    );
                    let mma = choice == "mma" && few_inputs && precision == Precision::Fp16;
                    assert_eq!(run.mma, mma, "{what}: tensor-core stem kernel");
                }
            }
        }
    }
    std::env::remove_var("TRTC_DIRECT");
}

/// An image stem through trtc's direct kernel with a residual and an activation in the
/// kernel: `Clip(conv(x) + bias + r)`, where `r` is another conv of `x`, so that the added
/// tensor is not the input.
#[test]
#[ignore = "needs a CUDA GPU"]
fn stem_with_residual_through_the_direct_kernel_matches_tract() {
    for (kernel, act) in [
        ("direct", Some(Activation::Clip { min: 0.0, max: 6.0 })),
        ("mma", Some(Activation::Clip { min: 0.0, max: 6.0 })),
        ("direct", Some(Activation::Relu)),
        ("mma", None),
    ] {
        std::env::set_var("TRTC_DIRECT", kernel);
        let mut b = GraphBuilder::new();
        let x = b.input_with(
            "x",
            trtc_ir::DType::F32,
            vec!["N".into(), 3u64.into(), 13u64.into(), 10u64.into()],
        );
        let attrs = ConvAttrs {
            group: 1,
            pads: vec![1, 1, 1, 1],
            ..Default::default()
        };
        let r = conv(&mut b, x, 3, 48, 3, attrs.clone(), 11);
        let w = b.constant("stem_w", random_tensor(&[48, 3, 3, 3], 12));
        let bias = b.constant("stem_b", random_tensor(&[48], 13));
        let f = FusedConv {
            conv: attrs,
            residual: true,
            activation: act,
        };
        let y = b.op("stem", Op::FusedConv(f), &[x, w, bias, r]);
        b.output(y);
        let g = b.build().unwrap();
        for (precision, layout, tolerance) in CONFIGS {
            let inputs = vec![random_tensor(&[2, 3, 13, 10], 14)];
            let (rel, model) = gpu_vs_tract_model(&g, inputs, &opts_for(precision, layout));
            let what = format!("stem {act:?} via {kernel}, {precision:?} {layout:?}");
            assert!(
                rel <= tolerance,
                "{what}: relative error {rel} over {tolerance}"
            );
            let tactics = tactics_of(&model);
            let convs = &tactics.instances[0].convs;
            assert_eq!(convs.len(), 2, "{what}: two convs");
            let direct = convs.iter().all(|(_, c)| c.direct);
            assert_eq!(direct, layout.nhwc_for(precision), "{what}: direct kernel");
            let mma = convs.iter().all(|(_, c)| c.mma);
            let half = precision == Precision::Fp16;
            assert_eq!(mma, kernel == "mma" && half, "{what}: tensor-core kernel");
        }
    }
    std::env::remove_var("TRTC_DIRECT");
}

/// Depthwise convolutions through trtc's own NHWC kernel and through cuDNN (the engine
/// times both and keeps the faster; `TRTC_DEPTHWISE` fixes the choice here), with
/// asymmetric pads, strides, dilation, residual and activations.
#[test]
#[ignore = "needs a CUDA GPU"]
fn depthwise_kernels_match_tract() {
    let cases: Vec<(usize, ConvAttrs, Option<Activation>, bool)> = vec![
        (
            3,
            ConvAttrs {
                group: 6,
                pads: vec![1, 1, 1, 1],
                ..Default::default()
            },
            Some(Activation::Clip { min: 0.0, max: 6.0 }),
            true,
        ),
        (
            5,
            ConvAttrs {
                group: 6,
                pads: vec![1, 1, 2, 2],
                strides: vec![2, 2],
                ..Default::default()
            },
            Some(Activation::Relu),
            false,
        ),
        (
            3,
            ConvAttrs {
                group: 6,
                pads: vec![2, 2, 2, 2],
                dilations: vec![2, 2],
                ..Default::default()
            },
            None,
            false,
        ),
        (
            3,
            ConvAttrs {
                group: 6,
                pads: vec![0, 0, 1, 1],
                strides: vec![2, 2],
                ..Default::default()
            },
            Some(Activation::HardSwish),
            false,
        ),
        (
            5,
            ConvAttrs {
                group: 6,
                pads: vec![2, 2, 2, 2],
                ..Default::default()
            },
            Some(Activation::Sigmoid),
            true,
        ),
    ];
    // 6 channels: trtc's per-pixel kernel; 16: its 16-byte vector form, and (`rows`) its
    // row-tiled forms for 3x3 and 5x5 windows of stride 1 and 2 (11 columns: the last
    // group of pixels in a row is short); (`tiles`) its 2-D tiled forms, for 16 channels
    // and 12 (whole quads, not whole fp16 vectors; 9 rows: the last group of rows is short);
    // (`half2`) the fp16 engine's 2-D tiled forms in fp16 arithmetic, for whole 16-byte
    // vectors (9 rows: 8-row tiles, the last one's lower threads past the edge); 40 channels
    // over 30 x 21 pixels: a short last chunk of channels, more than one tile each way, and
    // 16-row tiles at stride 1.
    for choice in ["direct", "rows", "tiles", "half2", "cudnn"] {
        std::env::set_var("TRTC_DEPTHWISE", choice);
        for (i, (k, attrs, activation, residual)) in cases.iter().enumerate() {
            for c in [6, 16, 12, 40] {
                let (h, w) = if c == 40 { (30, 21) } else { (9, 11) };
                let mut b = GraphBuilder::new();
                let x = b.input("x", &[2, c, h, w]);
                let attrs = ConvAttrs {
                    group: c as i64,
                    ..attrs.clone()
                };
                let y = fused_conv(
                    &mut b,
                    "dw",
                    x,
                    [c, 1, *k, *k],
                    i as u64 + 1,
                    FusedConv {
                        conv: attrs,
                        residual: *residual,
                        activation: *activation,
                    },
                );
                b.output(y);
                let g = b.build().unwrap();
                for (precision, layout, tolerance) in CONFIGS {
                    let inputs = vec![random_tensor(&[2, c, h, w], 3)];
                    let (rel, model) = gpu_vs_tract_model(&g, inputs, &opts_for(precision, layout));
                    let what = format!(
                        "depthwise case {i}, {c} channels, via {choice}, {precision:?} {layout:?}"
                    );
                    assert!(
                        rel <= tolerance,
                        "{what}: relative error {rel} over {tolerance}"
                    );
                    let tactics = tactics_of(&model);
                    let run = &tactics.instances[0].convs[0].1;
                    // Whole vectors: 8 fp16 or 4 f32 channels; no dilation.
                    let half = precision == Precision::Fp16;
                    let vec = if half { 8 } else { 4 };
                    let undilated = attrs_dilated(&cases[i].1).is_none();
                    let fits = layout.nhwc_for(precision) && c % vec == 0 && undilated;
                    assert_eq!(
                        run.rows,
                        choice == "rows" && fits,
                        "{what}: row-tiled kernel"
                    );
                    let quads = layout.nhwc_for(precision) && c % 4 == 0 && undilated;
                    let half2 = choice == "half2" && half && fits;
                    assert_eq!(run.half2, half2, "{what}: fp16-arithmetic tiled kernel");
                    assert_eq!(
                        run.tiles,
                        (choice == "tiles" && quads) || half2,
                        "{what}: 2-D tiled kernel"
                    );
                }
            }
        }
    }
    std::env::remove_var("TRTC_DEPTHWISE");
}

/// The dilation of `a`, where it has one other than 1.
fn attrs_dilated(a: &ConvAttrs) -> Option<&[i64]> {
    Some(&a.dilations[..]).filter(|d| d.iter().any(|&v| v != 1))
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn fused_patterns_match_tract() {
    let acts = [
        None,
        Some(Activation::Relu),
        Some(Activation::Clip { min: 0.0, max: 6.0 }),
        Some(Activation::HardSwish),
        Some(Activation::Sigmoid),
    ];
    // Fused into cuDNN's call, and unfused (cuDNN's convolution, then trtc's bias kernel:
    // the path for configurations the fused call refuses).
    for mode in ["fused", "unfused"] {
        std::env::set_var("TRTC_CONV", mode);
        // 6 channels: element-wise kernels; 8: their 16-byte vector forms.
        for (act, c) in acts.iter().flat_map(|&a| [(a, 6), (a, 8)]) {
            for residual in [false, true] {
                let mut b = GraphBuilder::new();
                let x = b.input("x", &[2, c, 8, 8]);
                let attrs = ConvAttrs {
                    group: 1,
                    pads: vec![1, 1, 1, 1],
                    ..Default::default()
                };
                let f = FusedConv {
                    conv: attrs,
                    residual,
                    activation: act,
                };
                let y = fused_conv(&mut b, "fused", x, [c, c, 3, 3], 1, f);
                b.output(y);
                check_all_configs(
                    &b.build().unwrap(),
                    vec![random_tensor(&[2, c, 8, 8], 3)],
                    &format!("act {act:?} channels {c} residual {residual} {mode}"),
                );
            }
        }
    }
    std::env::remove_var("TRTC_CONV");
}

/// 1x1 convolutions as cuBLASLt products (NHWC engines), with bias, ReLU, Clip (a kernel
/// after the product) and a residual.
#[test]
#[ignore = "needs a CUDA GPU"]
fn pointwise_convs_as_products_match_tract() {
    std::env::set_var("TRTC_GEMM", "cublaslt");
    for (act, residual) in [
        (None, false),
        (Some(Activation::Relu), true),
        (None, true),
        (Some(Activation::Clip { min: 0.0, max: 6.0 }), false),
    ] {
        for batch in [1, 2] {
            let mut b = GraphBuilder::new();
            let x = b.input_with(
                "x",
                trtc_ir::DType::F32,
                vec!["N".into(), 16u64.into(), 5u64.into(), 7u64.into()],
            );
            let attrs = ConvAttrs {
                group: 1,
                ..Default::default()
            };
            let f = FusedConv {
                conv: attrs,
                residual,
                activation: act,
            };
            let y = fused_conv(&mut b, "pw", x, [16, 16, 1, 1], 1, f);
            b.output(y);
            check_all_configs(
                &b.build().unwrap(),
                vec![random_tensor(&[batch, 16, 5, 7], 3)],
                &format!("1x1 conv act {act:?} residual {residual} batch {batch}"),
            );
        }
    }
    std::env::remove_var("TRTC_GEMM");
}

/// Clip after a conv moved into the depthwise conv that reads it (trtc's kernel clamps the
/// input as it loads it; the conv before it then skips its clip pass): Clip(0, 6) and
/// Clip(-1, 2). Checks the values in every configuration with trtc's depthwise kernel (the
/// clip moves, in NHWC engines) and with cuDNN's (the producer keeps its clip).
#[test]
#[ignore = "needs a CUDA GPU"]
fn clip_moved_into_the_depthwise_conv_matches_tract() {
    for (min, max) in [(0.0, 6.0), (-1.0, 2.0)] {
        let clip = Some(Activation::Clip { min, max });
        let expand = one_by_one(false, clip);
        let depthwise = FusedConv {
            conv: ConvAttrs {
                group: 32,
                pads: vec![1, 1, 1, 1],
                ..Default::default()
            },
            residual: false,
            activation: clip,
        };
        let mut b = GraphBuilder::new();
        let x = b.input("x", &[2, 8, 7, 7]);
        let e = fused_conv(&mut b, "expand", x, [32, 8, 1, 1], 11, expand);
        let d = fused_conv(&mut b, "dw", e, [32, 1, 3, 3], 12, depthwise);
        b.output(d);
        let g = b.build().unwrap();
        // Inputs scaled so that both clip bounds are reached.
        let input = trtc_ir::Tensor::from_shape(
            &[2, 8, 7, 7],
            &trtc_ir::tensor::tensor_to_f32s(&random_tensor(&[2, 8, 7, 7], 13))
                .unwrap()
                .iter()
                .map(|v| v * 8.0)
                .collect::<Vec<f32>>(),
        )
        .unwrap();
        // `auto`: timed, where the 1x1 conv may also become a cuBLASLt product once its Clip
        // has moved (checked for its numbers whatever the timing picks).
        for depthwise_by in ["direct", "rows", "cudnn", "auto"] {
            match depthwise_by {
                "auto" => std::env::remove_var("TRTC_DEPTHWISE"),
                _ => std::env::set_var("TRTC_DEPTHWISE", depthwise_by),
            }
            for (precision, layout, tolerance) in CONFIGS {
                let opts = opts_for(precision, layout);
                let (rel, model) = gpu_vs_tract_model(&g, vec![input.clone()], &opts);
                let what = format!("clip({min}, {max}), {depthwise_by}, {precision:?} {layout:?}");
                assert!(
                    rel <= tolerance,
                    "{what}: relative error {rel} over {tolerance}"
                );
                let tactics = tactics_of(&model);
                let moved = tactics.instances[0].clips_moved.len();
                let expected = layout.nhwc_for(precision) && depthwise_by != "cudnn";
                if depthwise_by != "auto" {
                    assert_eq!(moved, expected as usize, "{what}: clips moved");
                }
            }
        }
    }
    std::env::remove_var("TRTC_DEPTHWISE");
}
