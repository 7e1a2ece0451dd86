//! CUDA engines against tract, per op and per fused pattern, in every precision and layout
//! (fp32 within 1e-4 relative, fp16 within 1e-2), and on EfficientNet-Lite0.
//! Run on a GPU machine: `cargo test -p trtc-backend --test cuda -- --ignored`.

use trtc_backend::{
    partition, BackendChoice, CompileOptions, CudaOpTable, HybridModel, Layout, PartitionOptions,
    Precision, SegmentBackend,
};
use trtc_ir::tract_onnx::prelude::tensor0;
use trtc_ir::{
    Activation, ConvAttrs, CpuModel, FusedConv, Graph, GraphBuilder, Op, Outlet, PoolAttrs,
};
use trtc_optimizer::verify::{compare, random_tensor};

const FP32_TOLERANCE: f32 = 1e-4;
const FP16_TOLERANCE: f32 = 1e-2;

/// Every engine configuration, with the relative error it must stay within.
const CONFIGS: [(Precision, Layout, f32); 3] = [
    (Precision::Fp32, Layout::Nchw, FP32_TOLERANCE),
    (Precision::Fp32, Layout::Nhwc, FP32_TOLERANCE),
    (Precision::Fp16, Layout::Auto, FP16_TOLERANCE),
];

fn opts_for(precision: Precision, layout: Layout) -> CompileOptions {
    CompileOptions {
        backend: BackendChoice::Cuda,
        min_segment_size: 1,
        max_batch_size: 8,
        precision,
        layout,
        ..Default::default()
    }
}

/// Run `g` as one CUDA segment in every configuration and compare with tract; panics with
/// `what` and the configuration when one is over its tolerance.
fn check_all_configs(g: &Graph, inputs: Vec<trtc_ir::Tensor>, what: &str) {
    for (precision, layout, tolerance) in CONFIGS {
        let rel = gpu_vs_tract_with(g, inputs.clone(), &opts_for(precision, layout));
        assert!(
            rel <= tolerance,
            "{what}, {precision:?} {layout:?}: relative error {rel} over {tolerance}"
        );
    }
}

/// Run `g` as one CUDA segment and compare with tract; returns the relative error.
fn gpu_vs_tract_with(g: &Graph, inputs: Vec<trtc_ir::Tensor>, opts: &CompileOptions) -> f32 {
    gpu_vs_tract_model(g, inputs, opts).0
}

/// As `gpu_vs_tract_with`, also returning the model that ran.
fn gpu_vs_tract_model(
    g: &Graph,
    inputs: Vec<trtc_ir::Tensor>,
    opts: &CompileOptions,
) -> (f32, HybridModel) {
    let p = partition(
        g,
        &CudaOpTable,
        &PartitionOptions {
            min_segment_size: 1,
            deny_ops: vec![],
            use_gpu: true,
        },
    )
    .unwrap();
    assert!(
        p.segments.iter().all(|s| s.backend == SegmentBackend::Gpu),
        "all on the GPU: {:?}",
        p.fallback
    );
    let hybrid = HybridModel::new(g, &p, opts).unwrap();
    assert!(
        hybrid.engines().iter().all(|(_, _, kind)| kind == "cuda"),
        "{:?}",
        hybrid.notes
    );
    let reference = CpuModel::new(g).unwrap().run(inputs.clone()).unwrap();
    let out = hybrid.run(inputs).unwrap();
    let (_, rel) = compare(&reference, &out).unwrap();
    (rel, hybrid)
}

/// The tactics `model`'s one CUDA engine runs (its plan payload).
fn tactics_of(model: &HybridModel) -> trtc_backend::cuda::EngineTactics {
    let payload = model
        .payloads()
        .into_values()
        .next()
        .expect("a CUDA engine payload");
    serde_json::from_slice(&payload.bytes).expect("tactics")
}

fn conv(
    b: &mut GraphBuilder,
    x: Outlet,
    cin: usize,
    cout: usize,
    k: usize,
    attrs: ConvAttrs,
    seed: u64,
) -> Outlet {
    let g = attrs.group.max(1) as usize;
    let w = b.constant(
        &format!("w{seed}"),
        random_tensor(&[cout, cin / g, k, k], seed),
    );
    let bias = b.constant(&format!("b{seed}"), random_tensor(&[cout], seed + 100));
    b.op(&format!("conv{seed}"), Op::Conv(attrs), &[x, w, bias])
}

/// FusedConv `f` of `x`, with random weights of shape `w_shape` (seed `seed`) and bias
/// (seed 2); with a residual, x itself is the added tensor.
fn fused_conv(
    b: &mut GraphBuilder,
    name: &str,
    x: Outlet,
    w_shape: [usize; 4],
    seed: u64,
    f: FusedConv,
) -> Outlet {
    let w = b.constant(&format!("{name}_w"), random_tensor(&w_shape, seed));
    let bias = b.constant(&format!("{name}_b"), random_tensor(&[w_shape[0]], 2));
    let inputs: Vec<Outlet> = if f.residual {
        vec![x, w, bias, x]
    } else {
        vec![x, w, bias]
    };
    b.op(name, Op::FusedConv(f), &inputs)
}

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
    // depthwise case 3.
    for choice in ["cudnn", "direct"] {
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
                    let direct = tactics.instances[0].convs[0].1.direct;
                    let few_inputs = *cin <= 4 && cout % 8 == 0 && attrs.group == 1;
                    let depthwise = attrs.group as usize == *cin && cin == cout;
                    let fits = layout.nhwc_for(precision) && (few_inputs || depthwise);
                    assert_eq!(direct, fits && choice == "direct", "{what}: direct kernel");
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
    std::env::set_var("TRTC_DIRECT", "direct");
    for act in [
        Some(Activation::Clip { min: 0.0, max: 6.0 }),
        Some(Activation::Relu),
        None,
    ] {
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
            let what = format!("stem {act:?}, {precision:?} {layout:?}");
            assert!(
                rel <= tolerance,
                "{what}: relative error {rel} over {tolerance}"
            );
            let tactics = tactics_of(&model);
            let convs = &tactics.instances[0].convs;
            assert_eq!(convs.len(), 2, "{what}: two convs");
            let direct = convs.iter().all(|(_, c)| c.direct);
            assert_eq!(direct, layout.nhwc_for(precision), "{what}: direct kernel");
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
    // group of pixels in a row is short).
    for choice in ["direct", "rows", "cudnn"] {
        std::env::set_var("TRTC_DEPTHWISE", choice);
        for (i, (k, attrs, activation, residual)) in cases.iter().enumerate() {
            for c in [6, 16] {
                let mut b = GraphBuilder::new();
                let x = b.input("x", &[2, c, 9, 11]);
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
                    let inputs = vec![random_tensor(&[2, c, 9, 11], 3)];
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
                    let vec = if precision == Precision::Fp16 { 8 } else { 4 };
                    let fits = layout.nhwc_for(precision)
                        && c % vec == 0
                        && attrs_dilated(&cases[i].1).is_none();
                    assert_eq!(
                        run.rows,
                        choice == "rows" && fits,
                        "{what}: row-tiled kernel"
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

/// Gemm (alpha, beta, transB, batch 1 and 3) through cuBLASLt and through trtc's kernel.
#[test]
#[ignore = "needs a CUDA GPU"]
fn gemms_match_tract() {
    for choice in ["cublaslt", "off"] {
        std::env::set_var("TRTC_GEMM", choice);
        for trans_b in [0, 1] {
            for batch in [1, 3] {
                let mut b = GraphBuilder::new();
                let x = b.input_with("x", trtc_ir::DType::F32, vec!["N".into(), 37u64.into()]);
                let wshape = if trans_b == 1 { [29, 37] } else { [37, 29] };
                let w = b.constant("w", random_tensor(&wshape, 1));
                let c = b.constant("c", random_tensor(&[29], 2));
                let y = b.op(
                    "gemm",
                    Op::Gemm {
                        alpha: 0.5,
                        beta: 2.0,
                        trans_a: 0,
                        trans_b,
                    },
                    &[x, w, c],
                );
                b.output(y);
                check_all_configs(
                    &b.build().unwrap(),
                    vec![random_tensor(&[batch, 37], 3)],
                    &format!("gemm transB {trans_b} batch {batch} via {choice}"),
                );
            }
        }
    }
    std::env::remove_var("TRTC_GEMM");
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

/// Concat inputs computed in place (each producer writes its channel slice of the concat's
/// output): a 1x1 conv with ReLU (cuDNN or cuBLASLt), a 3x3 conv (fused or unfused), a
/// max pool, and an activation whose output is still copied. Checks the values in every
/// configuration and that the engine really wrote the slices in place.
#[test]
#[ignore = "needs a CUDA GPU"]
fn concat_inputs_written_in_place_match_tract() {
    let relu_1x1 = FusedConv {
        conv: ConvAttrs {
            group: 1,
            ..Default::default()
        },
        residual: false,
        activation: Some(Activation::Relu),
    };
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

/// Clip after a conv moved into the depthwise conv that reads it (trtc's kernel clamps the
/// input as it loads it; the conv before it then skips its clip pass): Clip(0, 6) and
/// Clip(-1, 2). Checks the values in every configuration with trtc's depthwise kernel (the
/// clip moves, in NHWC engines) and with cuDNN's (the producer keeps its clip).
#[test]
#[ignore = "needs a CUDA GPU"]
fn clip_moved_into_the_depthwise_conv_matches_tract() {
    for (min, max) in [(0.0, 6.0), (-1.0, 2.0)] {
        let clip = Some(Activation::Clip { min, max });
        let expand = FusedConv {
            conv: ConvAttrs {
                group: 1,
                ..Default::default()
            },
            residual: false,
            activation: clip,
        };
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
        for depthwise_by in ["direct", "rows", "cudnn"] {
            std::env::set_var("TRTC_DEPTHWISE", depthwise_by);
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
                assert_eq!(moved, expected as usize, "{what}: clips moved");
            }
        }
    }
    std::env::remove_var("TRTC_DEPTHWISE");
}
