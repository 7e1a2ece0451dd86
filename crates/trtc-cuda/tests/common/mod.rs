//! Helpers of the GPU op tests (one file per op family beside this folder): run a graph as
//! one CUDA segment in every precision and layout and compare with tract.
#![allow(dead_code)]

pub use trtc_backend::{
    partition, BackendChoice, CompileOptions, HybridModel, Layout, PartitionOptions, Precision,
    SegmentBackend,
};
pub use trtc_cuda::CudaOpTable;
pub use trtc_ir::tract_onnx::prelude::tensor0;
pub use trtc_ir::{
    Activation, ConvAttrs, CpuModel, FusedConv, Graph, GraphBuilder, Op, Outlet, PoolAttrs,
};
pub use trtc_optimizer::verify::{compare, random_tensor};

pub const FP32_TOLERANCE: f32 = 1e-4;
pub const FP16_TOLERANCE: f32 = 1e-2;

/// Every engine configuration, with the relative error it must stay within.
pub const CONFIGS: [(Precision, Layout, f32); 3] = [
    (Precision::Fp32, Layout::Nchw, FP32_TOLERANCE),
    (Precision::Fp32, Layout::Nhwc, FP32_TOLERANCE),
    (Precision::Fp16, Layout::Auto, FP16_TOLERANCE),
];

pub fn opts_for(precision: Precision, layout: Layout) -> CompileOptions {
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
pub fn check_all_configs(g: &Graph, inputs: Vec<trtc_ir::Tensor>, what: &str) {
    for (precision, layout, tolerance) in CONFIGS {
        let rel = gpu_vs_tract_with(g, inputs.clone(), &opts_for(precision, layout));
        assert!(
            rel <= tolerance,
            "{what}, {precision:?} {layout:?}: relative error {rel} over {tolerance}"
        );
    }
}

/// Run `g` as one CUDA segment and compare with tract; returns the relative error.
pub fn gpu_vs_tract_with(g: &Graph, inputs: Vec<trtc_ir::Tensor>, opts: &CompileOptions) -> f32 {
    gpu_vs_tract_model(g, inputs, opts).0
}

/// As `gpu_vs_tract_with`, also returning the model that ran.
pub fn gpu_vs_tract_model(
    g: &Graph,
    inputs: Vec<trtc_ir::Tensor>,
    opts: &CompileOptions,
) -> (f32, HybridModel) {
    let hybrid = gpu_model(g, opts);
    let reference = CpuModel::new(g).unwrap().run(inputs.clone()).unwrap();
    let out = hybrid.run(inputs).unwrap();
    let (_, rel) = compare(&reference, &out).unwrap();
    (rel, hybrid)
}

/// `g` as one CUDA segment (asserted: every node on the GPU, in a CUDA engine).
pub fn gpu_model(g: &Graph, opts: &CompileOptions) -> HybridModel {
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
    let hybrid = HybridModel::new(g, &p, opts, &trtc_cuda::CudaBuilder).unwrap();
    assert!(
        hybrid.engines().iter().all(|(_, _, kind)| kind == "cuda"),
        "{:?}",
        hybrid.notes
    );
    hybrid
}

/// The tactics `model`'s one CUDA engine runs (its plan payload).
pub fn tactics_of(model: &HybridModel) -> trtc_cuda::EngineTactics {
    let payload = model
        .payloads()
        .into_values()
        .next()
        .expect("a CUDA engine payload");
    serde_json::from_slice(&payload.bytes).expect("tactics")
}

pub fn conv(
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

/// A 1x1 conv of one group (stride 1, no pads) with `residual` and `activation` fused.
pub fn one_by_one(residual: bool, activation: Option<Activation>) -> FusedConv {
    FusedConv {
        conv: ConvAttrs {
            group: 1,
            ..Default::default()
        },
        residual,
        activation,
    }
}

/// FusedConv `f` of `x`, with random weights of shape `w_shape` (seed `seed`) and bias
/// (seed 2); with a residual, x itself is the added tensor.
pub fn fused_conv(
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

/// `GlobalAveragePool(Relu(Conv3x3(x)))` of `c_out` channels on `x: f32[N, 3, hw, hw]`: a
/// small model that is one GPU engine from input to output.
pub fn conv_relu_pool(c_out: usize, hw: u64) -> Graph {
    let mut b = GraphBuilder::new();
    let x = b.input_with(
        "x",
        trtc_ir::DType::F32,
        vec!["N".into(), 3u64.into(), hw.into(), hw.into()],
    );
    let attrs = ConvAttrs {
        kernel_shape: vec![3, 3],
        pads: vec![1, 1, 1, 1],
        group: 1,
        ..Default::default()
    };
    let c = conv(&mut b, x, 3, c_out, 3, attrs, 1);
    let r = b.op("relu", Op::Relu, &[c]);
    let y = b.op("pool", Op::GlobalAveragePool, &[r]);
    b.output(y);
    b.build().unwrap()
}
