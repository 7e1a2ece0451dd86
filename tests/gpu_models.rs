//! Whole models on CUDA engines against tract, fp32 and fp16: logits on a random batch, and
//! top-1 on the shared images. Run on a GPU machine:
//! `cargo test --test gpu_models -- --ignored` (InceptionV3 from `../shared/models` or
//! `TRTC_INCEPTION_V3`).

mod common;

use common::{efficientnet, have_inception, inception, root};
use std::path::Path;
use trtc::backend::{compile, BackendChoice, CompileOptions, HybridModel, Precision};
use trtc::classify::top_k;
use trtc::ir::{CpuModel, Tensor};
use trtc::optimizer::verify::{compare, random_tensor};
use trtc::preprocess::{image_to_tensor, Preprocess};

fn logits(t: &Tensor) -> Vec<f32> {
    t.to_plain_array_view::<f32>()
        .unwrap()
        .iter()
        .copied()
        .collect()
}

/// Compile `model` for the GPU in `precision`, check logits on a random batch within
/// `tolerance` (relative to the largest reference logit), and check that top-1 on every
/// shared image agrees with tract wherever tract's margin between its first and second
/// class is wider than that tolerance (a closer pair may swap within the precision).
fn check(model: &Path, pre: &Preprocess, precision: Precision, tolerance: f32) {
    let g = trtc::ir::load_model(model).unwrap();
    let reference = CpuModel::new(&g).unwrap();
    let opts = CompileOptions {
        backend: BackendChoice::Cuda,
        precision,
        max_batch_size: 2,
        ..Default::default()
    };
    let plan = compile("model", g, &opts, trtc::gpu()).unwrap();
    let gpu = HybridModel::new(&plan.graph, &plan.partition, &plan.options, trtc::gpu()).unwrap();
    assert!(
        gpu.engines().iter().any(|(_, _, k)| k == "cuda"),
        "no CUDA engine: {:?}",
        gpu.notes
    );
    let s = pre.size as usize;
    let x = random_tensor(&[2, 3, s, s], 11);
    let want = reference.run(vec![x.clone()]).unwrap();
    let got = gpu.run(vec![x]).unwrap();
    let (abs, rel) = compare(&want, &got).unwrap();
    println!(
        "{} {precision:?}: random batch abs {abs:.3e} rel {rel:.3e}",
        model.display()
    );
    assert!(
        rel <= tolerance,
        "{precision:?} logits: rel {rel} over {tolerance}"
    );

    let mut agreed = 0;
    for entry in std::fs::read_dir(root().join("data/images")).unwrap() {
        let path = entry.unwrap().path();
        let input = image_to_tensor(&path, pre).unwrap();
        let (r, o) = (
            logits(&reference.run(vec![input.clone()]).unwrap()[0]),
            logits(&gpu.run(vec![input]).unwrap()[0]),
        );
        let top_r = top_k(&r, 2, None);
        let top_o = top_k(&o, 1, None);
        let scale = r.iter().fold(0f32, |m, v| m.max(v.abs()));
        let margin = r[top_r[0].index] - r[top_r[1].index];
        println!(
            "  {}: tract {} (margin {margin:.4}), gpu {}",
            path.file_name().unwrap().to_string_lossy(),
            top_r[0].index,
            top_o[0].index
        );
        if top_r[0].index == top_o[0].index {
            agreed += 1;
        } else {
            assert!(
                margin <= tolerance * scale,
                "{}: top-1 {} on the GPU, {} on tract, margin {margin}",
                path.display(),
                top_o[0].index,
                top_r[0].index
            );
        }
    }
    assert!(agreed >= 4, "top-1 agreed on {agreed} images only");
}

fn effnet_pre() -> Preprocess {
    Preprocess::default()
}

fn inception_pre() -> Preprocess {
    Preprocess {
        size: 299,
        resize: 342,
        mean: [127.5; 3],
        std: [127.5; 3],
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn efficientnet_fp32_matches_tract() {
    check(&efficientnet(), &effnet_pre(), Precision::Fp32, 1e-4);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn efficientnet_fp16_matches_tract() {
    check(&efficientnet(), &effnet_pre(), Precision::Fp16, 1e-2);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn inception_fp32_matches_tract() {
    if !have_inception() {
        return;
    }
    check(&inception(), &inception_pre(), Precision::Fp32, 1e-4);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn inception_fp16_matches_tract() {
    if !have_inception() {
        return;
    }
    check(&inception(), &inception_pre(), Precision::Fp16, 1e-2);
}

/// Tactics timed at compile time go into the plan; the plan loads without timing again
/// (every instance comes from the plan) and computes what tract does. Tactics from another
/// GPU model are timed anew.
#[test]
#[ignore = "needs a CUDA GPU"]
fn plan_tactics_load_without_timing() {
    let g = trtc::ir::load_model(efficientnet()).unwrap();
    let reference = CpuModel::new(&g).unwrap();
    let opts = CompileOptions {
        backend: BackendChoice::Cuda,
        precision: Precision::Fp16,
        max_batch_size: 4,
        max_cached_engines: 2,
        ..Default::default()
    };
    let mut plan = compile("effnet", g, &opts, trtc::gpu()).unwrap();
    assert_eq!(
        trtc::backend::tune(&mut plan, &[1, 4], trtc::gpu()).unwrap(),
        vec![1, 4]
    );
    assert!(!plan.engines.is_empty());
    let back = trtc::backend::Plan::from_bytes(&plan.to_bytes().unwrap()).unwrap();
    let x = random_tensor(&[4, 3, 224, 224], 12);
    let want = reference.run(vec![x.clone()]).unwrap();
    let tactics = |m: &HybridModel| -> Vec<trtc::cuda::EngineTactics> {
        m.payloads()
            .values()
            .map(|p| serde_json::from_slice(&p.bytes).unwrap())
            .collect()
    };

    let loaded = HybridModel::from_plan(&back, trtc::gpu()).unwrap();
    let (_, rel) = compare(&want, &loaded.run(vec![x.clone()]).unwrap()).unwrap();
    assert!(rel <= 1e-2, "loaded plan: rel {rel}");
    let used = tactics(&loaded);
    assert!(!used.is_empty());
    for t in &used {
        assert!(
            t.instances.iter().all(|i| i.from_plan && i.batch == 4),
            "{t:?}"
        );
    }
    let stored: Vec<trtc::cuda::EngineTactics> = back
        .engines
        .values()
        .map(|p| serde_json::from_slice(&p.bytes).unwrap())
        .collect();
    let same = |a: &trtc::cuda::InstanceTactics, b: &trtc::cuda::InstanceTactics| {
        a.convs == b.convs && a.gemms == b.gemms
    };
    for (u, s) in used.iter().zip(&stored) {
        let s4 = s.instances.iter().find(|i| i.batch == 4).unwrap();
        assert!(
            same(&u.instances[0], s4),
            "the loaded engine runs the stored tactics"
        );
    }

    // Tactics from another GPU: timed again, still correct.
    let mut other = back.clone();
    for p in other.engines.values_mut() {
        let mut t: trtc::cuda::EngineTactics = serde_json::from_slice(&p.bytes).unwrap();
        t.device = "some other GPU".into();
        p.bytes = serde_json::to_vec(&t).unwrap();
    }
    let retimed = HybridModel::from_plan(&other, trtc::gpu()).unwrap();
    let (_, rel) = compare(&want, &retimed.run(vec![x]).unwrap()).unwrap();
    assert!(rel <= 1e-2, "re-timed: rel {rel}");
    for t in tactics(&retimed) {
        assert!(t.instances.iter().all(|i| !i.from_plan), "{t:?}");
    }
}
