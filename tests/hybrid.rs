//! The hybrid runtime equals tract's whole-model output for every partition: min segment
//! sizes 1, 3, 10, 1000 and deny lists that split the graph.

mod common;
use common::*;
use trtc::backend::{
    partition, CompileOptions, FallbackReason, HybridModel, PartitionOptions, SegmentBackend,
};
use trtc::ir::{load_model, CpuModel, Graph, Tensor};
use trtc::optimizer::verify::{compare, random_tensor};
use trtc::optimizer::Pipeline;

fn optimize(g: &Graph) -> Graph {
    let mut o = g.clone();
    Pipeline::default_pipeline().run(&mut o).unwrap();
    o
}

/// Partition `optimized` every way the issue asks and check each hybrid run against the
/// reference output of the original model.
fn check_all_partitions(original: &Graph, input: Tensor) {
    let reference = CpuModel::new(original)
        .unwrap()
        .run(vec![input.clone()])
        .unwrap();
    let optimized = optimize(original);
    let direct = CpuModel::new(&optimized)
        .unwrap()
        .run(vec![input.clone()])
        .unwrap();
    let configs: Vec<(usize, Vec<String>)> = vec![
        (1, vec![]),
        (3, vec![]),
        (10, vec![]),
        (1000, vec![]),
        (3, vec!["Concat".into()]),
        (3, vec!["MaxPool".into()]),
        (2, vec!["Clip".into(), "Add".into()]),
    ];
    let opts = CompileOptions {
        max_batch_size: 2,
        ..Default::default()
    };
    for (min, deny) in configs {
        let popts = PartitionOptions {
            min_segment_size: min,
            deny_ops: deny.clone(),
            use_gpu: true,
        };
        let p = partition(&optimized, trtc::gpu().support(), &popts).unwrap();
        p.check(&optimized, min).unwrap();
        let hybrid = HybridModel::new(&optimized, &p, &opts, trtc::gpu()).unwrap();
        let out = hybrid.run(vec![input.clone()]).unwrap();
        let (abs, rel) = compare(&reference, &out).unwrap();
        assert!(
            rel <= 1e-4,
            "min {min} deny {deny:?}: {} segments, rel {rel} abs {abs}",
            p.segments.len()
        );
        // Different cuts let tract pick different kernels: only rounding may differ. (On a
        // machine with a GPU, CUDA engines run the GPU segments: the check above holds.)
        if hybrid.engines().iter().all(|(_, _, kind)| kind == "tract") {
            let (abs, rel) = compare(&direct, &out).unwrap();
            assert!(rel <= 1e-5, "min {min} deny {deny:?}: hybrid differs from tract on the same graph by {abs} ({rel} relative)");
        }
        if min == 1000 {
            assert!(
                p.segments.iter().all(|s| s.backend == SegmentBackend::Cpu),
                "nothing reaches 1000 nodes"
            );
        }
        for d in &deny {
            for f in p
                .fallback
                .iter()
                .filter(|f| optimized.node(f.node).fused_ops.contains(d))
            {
                assert_eq!(f.reason, FallbackReason::DeniedByUser);
            }
        }
    }
}

#[test]
fn efficientnet_hybrid_equals_tract() {
    let g = load_model(efficientnet()).unwrap();
    check_all_partitions(&g, random_tensor(&[2, 3, 224, 224], 11));
}

#[test]
fn inception_hybrid_equals_tract() {
    if !have_inception() {
        return;
    }
    let g = load_model(inception()).unwrap();
    check_all_partitions(&g, random_tensor(&[1, 3, 299, 299], 12));
}

#[test]
fn deny_concat_splits_inception_into_segments() {
    if !have_inception() {
        return;
    }
    let optimized = optimize(&load_model(inception()).unwrap());
    let popts = PartitionOptions {
        min_segment_size: 3,
        deny_ops: vec!["Concat".into()],
        use_gpu: true,
    };
    let p = partition(&optimized, trtc::gpu().support(), &popts).unwrap();
    let gpu = p
        .segments
        .iter()
        .filter(|s| s.backend == SegmentBackend::Gpu)
        .count();
    assert!(
        gpu >= 10,
        "every Mixed block is cut at its Concat: {gpu} GPU segments"
    );
    let denied = p
        .fallback
        .iter()
        .filter(|f| f.reason == FallbackReason::DeniedByUser)
        .count();
    assert_eq!(denied, 11, "InceptionV3 has 11 Concats");
}

#[test]
fn batch_over_the_maximum_is_refused() {
    let optimized = optimize(&load_model(efficientnet()).unwrap());
    let p = partition(
        &optimized,
        trtc::gpu().support(),
        &PartitionOptions {
            min_segment_size: 3,
            deny_ops: vec![],
            use_gpu: true,
        },
    )
    .unwrap();
    let hybrid = HybridModel::new(
        &optimized,
        &p,
        &CompileOptions {
            max_batch_size: 1,
            ..Default::default()
        },
        trtc::gpu(),
    )
    .unwrap();
    let err = hybrid
        .run(vec![random_tensor(&[2, 3, 224, 224], 1)])
        .unwrap_err()
        .to_string();
    assert!(err.contains("batch 2, over --max-batch-size 1"), "{err}");
    let err = hybrid
        .run(vec![random_tensor(&[1, 3, 200, 224], 1)])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("expected f32[N,3,224,224], given f32[1,3,200,224]"),
        "{err}"
    );
}

/// Device buffers need a GPU engine from the model's inputs to its outputs: without one
/// (here: no CUDA, the GPU segment runs through tract), an error says why, before any
/// address is touched; shapes are checked first, as `run` checks them.
#[test]
fn device_buffers_without_a_gpu_engine_are_refused() {
    let g = load_model(efficientnet()).unwrap();
    let opts = CompileOptions::default();
    let plan = trtc::backend::compile("e", g, &opts, trtc::gpu()).unwrap();
    let model = HybridModel::from_plan(&plan, trtc::gpu()).unwrap();
    let buf = trtc::engine::DeviceBuffer {
        ptr: 0x1000,
        bytes: 3 * 224 * 224 * 4,
    };
    let out = trtc::engine::DeviceBuffer {
        ptr: 0x2000,
        bytes: 1000 * 4,
    };
    if trtc::gpu().unavailable().is_none() {
        return; // a GPU machine: crates/trtc-cuda/tests/device_api.rs covers it
    }
    // Safety: refused before any address is used.
    let e = unsafe { model.run_device(&[vec![1, 3, 224, 224]], &[buf], &[out]) }
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot take device memory"), "{e}");
    let e = unsafe { model.run_device(&[vec![1, 3, 224]], &[buf], &[out]) }
        .unwrap_err()
        .to_string();
    assert!(e.contains("input"), "a shape of the wrong rank: {e}");
}
