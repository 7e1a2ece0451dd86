//! CUDA engines against tract, per op and per fused pattern, and on EfficientNet-Lite0.
//! Run on a GPU machine: `cargo test -p trtc-backend --test cuda -- --ignored`.

use trtc_backend::{
    compile, partition, BackendChoice, CompileOptions, CudaOpTable, HybridModel, PartitionOptions,
    SegmentBackend,
};
use trtc_ir::tract_onnx::prelude::tensor0;
use trtc_ir::{
    Activation, ConvAttrs, CpuModel, FusedConv, Graph, GraphBuilder, Op, Outlet, PoolAttrs,
};
use trtc_optimizer::verify::{compare, random_tensor};

const FP32_TOLERANCE: f32 = 1e-4;

fn opts() -> CompileOptions {
    CompileOptions {
        backend: BackendChoice::Cuda,
        min_segment_size: 1,
        max_batch_size: 8,
        ..Default::default()
    }
}

/// Run `g` as one CUDA segment and compare with tract; returns the relative error.
fn gpu_vs_tract(g: &Graph, inputs: Vec<trtc_ir::Tensor>) -> f32 {
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
    let hybrid = HybridModel::new(g, &p, &opts()).unwrap();
    assert!(
        hybrid.engines().iter().all(|(_, _, kind)| kind == "cuda"),
        "{:?}",
        hybrid.notes
    );
    let reference = CpuModel::new(g).unwrap().run(inputs.clone()).unwrap();
    let out = hybrid.run(inputs).unwrap();
    let (_, rel) = compare(&reference, &out).unwrap();
    rel
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
    ];
    for (i, (cin, cout, k, attrs)) in cases.into_iter().enumerate() {
        for batch in [1, 3] {
            let mut b = GraphBuilder::new();
            let x = b.input_with(
                "x",
                trtc_ir::DType::F32,
                vec!["N".into(), (cin as u64).into(), 11u64.into(), 9u64.into()],
            );
            let y = conv(&mut b, x, cin, cout, k, attrs.clone(), i as u64 + 1);
            b.output(y);
            let rel = gpu_vs_tract(
                &b.build().unwrap(),
                vec![random_tensor(&[batch, cin, 11, 9], 7)],
            );
            assert!(rel <= FP32_TOLERANCE, "case {i} batch {batch}: {rel}");
        }
    }
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
    for act in acts {
        for residual in [false, true] {
            let mut b = GraphBuilder::new();
            let x = b.input("x", &[2, 6, 8, 8]);
            let w = b.constant("w", random_tensor(&[6, 6, 3, 3], 1));
            let bias = b.constant("b", random_tensor(&[6], 2));
            let f = FusedConv {
                conv: ConvAttrs {
                    group: 1,
                    pads: vec![1, 1, 1, 1],
                    ..Default::default()
                },
                residual,
                activation: act,
            };
            let inputs: Vec<Outlet> = if residual {
                vec![x, w, bias, x]
            } else {
                vec![x, w, bias]
            };
            let y = b.op("fused", Op::FusedConv(f), &inputs);
            b.output(y);
            let rel = gpu_vs_tract(&b.build().unwrap(), vec![random_tensor(&[2, 6, 8, 8], 3)]);
            assert!(
                rel <= FP32_TOLERANCE,
                "act {act:?} residual {residual}: {rel}"
            );
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn pools_elementwise_concat_gemm_softmax_match_tract() {
    let mut b = GraphBuilder::new();
    let x = b.input("x", &[2, 4, 10, 10]);
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
    let k = b.constant("k", random_tensor(&[1, 12, 1, 1], 4));
    let m = b.op("mul", Op::Mul, &[cat, k]);
    let lo = b.constant("lo", tensor0(-0.2f32));
    let hi = b.constant("hi", tensor0(0.5f32));
    let c = b.op("clip", Op::Clip, &[m, lo, hi]);
    let gap = b.op("gap", Op::GlobalAveragePool, &[c]);
    let flat = b.op("flat", Op::Flatten { axis: 1 }, &[gap]);
    let w = b.constant("gw", random_tensor(&[10, 12], 5));
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
    let rel = gpu_vs_tract(&b.build().unwrap(), vec![random_tensor(&[2, 4, 10, 10], 8)]);
    assert!(rel <= FP32_TOLERANCE, "{rel}");
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn efficientnet_on_the_gpu_matches_tract() {
    let path = format!(
        "{}/../../models/efficientnet_lite0.onnx",
        env!("CARGO_MANIFEST_DIR")
    );
    let g = trtc_ir::load_model(&path).unwrap();
    let x = random_tensor(&[4, 3, 224, 224], 9);
    let reference = CpuModel::new(&g).unwrap().run(vec![x.clone()]).unwrap();
    let plan = compile("effnet", g, &opts()).unwrap();
    let hybrid = HybridModel::new(&plan.graph, &plan.partition, &plan.options).unwrap();
    assert!(
        hybrid.engines().iter().any(|(_, _, k)| k == "cuda"),
        "{:?}",
        hybrid.notes
    );
    let out = hybrid.run(vec![x]).unwrap();
    let (abs, rel) = compare(&reference, &out).unwrap();
    assert!(rel <= FP32_TOLERANCE, "logits differ: abs {abs} rel {rel}");
}
