//! `trtc compile --input-format u8-nhwc`: the plan takes 8-bit NHWC pixels and normalizes
//! them itself. On the CPU (tract) here; the GPU path is in `crates/trtc-cuda/tests/pixels.rs`.

mod common;
use common::*;
use std::path::PathBuf;
use trtc::backend::{compile, CompileOptions, HybridModel, InputFormat, SegmentBackend};
use trtc::ir::{load_model, CpuModel, DType, Outlet};
use trtc::preprocess::{image_to_pixels, image_to_tensor, Preprocess};

/// The repo's images, and `../shared/data/images` where it is there.
fn images() -> Vec<PathBuf> {
    let mut v = vec![];
    for dir in [
        root().join("data/images"),
        root().join("../shared/data/images"),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        v.extend(files);
    }
    assert!(!v.is_empty(), "no images under data/images");
    v
}

fn u8_options() -> CompileOptions {
    CompileOptions {
        input_format: InputFormat::parse("u8-nhwc").unwrap(),
        ..Default::default()
    }
}

fn floats(t: &trtc::ir::Tensor) -> Vec<f32> {
    trtc::ir::tensor::tensor_to_f32s(t).unwrap()
}

fn argmax(v: &[f32]) -> usize {
    trtc::classify::top_k(v, 1, None)[0].index
}

/// For each image: the f32 model's logits (on tract, the image normalized on the host) and
/// `model`'s (given the image's u8 pixels).
fn logits_per_image(
    reference: &CpuModel,
    model: &HybridModel,
) -> Vec<(PathBuf, Vec<f32>, Vec<f32>)> {
    let p = Preprocess::default();
    images()
        .into_iter()
        .map(|path| {
            let want = reference
                .run(vec![image_to_tensor(&path, &p).unwrap()])
                .unwrap();
            let got = model
                .run(vec![image_to_pixels(&path, &p).unwrap()])
                .unwrap();
            let (want, got) = (floats(&want[0]), floats(&got[0]));
            (path, want, got)
        })
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

#[test]
fn u8_plan_gives_the_f32_models_logits_on_every_image() {
    let g = load_model(efficientnet()).unwrap();
    let reference = CpuModel::new(&g).unwrap();
    let plan = compile("efficientnet", g, &u8_options(), trtc::gpu()).unwrap();
    let input = plan.graph.tensor(Outlet::new(plan.graph.inputs()[0], 0));
    assert_eq!(input.name, "input");
    assert_eq!(input.describe(), "u8[N,224,224,3]");
    // The normalization is still there, not folded into the first (padded) conv.
    let ops: Vec<&str> = plan
        .graph
        .node_ids()
        .into_iter()
        .map(|id| plan.graph.node(id).op.op_type())
        .collect();
    for op in ["Cast", "Sub", "Div"] {
        assert!(ops.contains(&op), "{op} missing from {ops:?}");
    }
    // Everything is one GPU segment, the pixel ops included.
    let gpu: Vec<_> = plan
        .partition
        .segments
        .iter()
        .filter(|s| s.backend == SegmentBackend::Gpu)
        .collect();
    assert_eq!(gpu.len(), 1, "{}", plan.report);
    assert!(plan.report.fallback.is_empty(), "{}", plan.report);
    // A quarter of the f32 input's bytes cross into the engine.
    let seg = &plan.report.segments[0];
    assert_eq!(seg.inputs[0].bytes_batch1, 224 * 224 * 3);

    let model = HybridModel::from_plan(&plan, trtc::gpu()).unwrap();
    for (path, want, got) in logits_per_image(&reference, &model) {
        assert_eq!(argmax(&want), argmax(&got), "{}", path.display());
        let diff = max_abs_diff(&want, &got);
        assert!(diff < 1e-3, "{}: logits differ by {diff}", path.display());
    }
}

#[test]
fn f32_input_to_a_u8_plan_is_an_error_naming_both_types() {
    let g = load_model(efficientnet()).unwrap();
    let plan = compile("efficientnet", g, &u8_options(), trtc::gpu()).unwrap();
    let model = HybridModel::from_plan(&plan, trtc::gpu()).unwrap();
    let x = image_to_tensor(&image("coffee.png"), &Preprocess::default()).unwrap();
    let e = model.run(vec![x]).unwrap_err().to_string();
    assert!(e.contains("input `input`"), "{e}");
    assert!(e.contains("expected u8[N,224,224,3]"), "{e}");
    assert!(e.contains("given f32[1,3,224,224]"), "{e}");
    assert_eq!(
        plan.graph
            .tensor(Outlet::new(plan.graph.inputs()[0], 0))
            .dtype,
        Some(DType::U8)
    );
}

/// `trtc compile --input-format u8-nhwc` then `trtc run --image` on the plan.
#[test]
fn cli_compiles_a_u8_plan_that_classifies_images_and_benches() {
    let dir = temp_dir("u8cli");
    let plan = dir.join("e_u8.trtc");
    let (m, p) = (
        efficientnet().display().to_string(),
        plan.display().to_string(),
    );
    let o = trtc(&[
        "compile",
        &m,
        "-o",
        &p,
        "--input-format",
        "u8-nhwc",
        "--mean",
        "127",
        "--std",
        "128,128,128",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("input format: u8-nhwc"),
        "{}",
        stdout(&o)
    );
    let o = trtc(&["inspect", &p]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("u8[N,224,224,3]"), "{}", stdout(&o));
    for (img, class) in [("coffee.png", "967"), ("flower.jpg", "985")] {
        let o = trtc(&["run", &p, "--image", image(img).to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
        let out = stdout(&o);
        let top = out
            .lines()
            .find(|l| l.trim_start().starts_with("1."))
            .unwrap();
        assert_eq!(top.split_whitespace().nth(1), Some(class), "{out}");
    }
    let o = trtc(&["bench", &p, "--iterations", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));

    // `trtc run MODEL --input input=NPY`.
    let run_npy = |model: &str, npy: &PathBuf| {
        let spec = format!("input={}", npy.display());
        trtc(&[
            "run",
            model,
            "--input",
            &spec,
            "--output-dir",
            dir.to_str().unwrap(),
        ])
    };
    // f32 .npy data to the u8 plan: the input, the type it takes and the one given.
    let x = dir.join("x.npy");
    let t = image_to_tensor(&image("coffee.png"), &Preprocess::default()).unwrap();
    trtc::npy::write_npy(&x, &t).unwrap();
    let o = run_npy(&p, &x);
    assert_clean_failure(
        &o,
        "input `input`: expected u8[N,224,224,3], given f32[1,3,224,224]",
    );
    // And u8 pixels to the f32 model.
    let px = dir.join("px.npy");
    let t = image_to_pixels(&image("coffee.png"), &Preprocess::default()).unwrap();
    trtc::npy::write_npy(&px, &t).unwrap();
    let o = run_npy(&m, &px);
    assert_clean_failure(&o, "input `input`: expected f32[N,3,224,224], given u8");
    let o = run_npy(&p, &px);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn u8_format_on_a_model_without_an_image_input_is_a_clear_error() {
    let dir = temp_dir("u8bad");
    let m = write_model(&dir, "addrelu.onnx", &add_relu_model());
    let p = dir.join("x.trtc");
    let (m, p) = (m.display().to_string(), p.display().to_string());
    let o = trtc(&["compile", &m, "-o", &p, "--input-format", "u8-nhwc"]);
    assert_clean_failure(&o, "needs a 4-D f32 image input");
    let o = trtc(&["compile", &m, "-o", &p, "--mean", "120"]);
    assert_clean_failure(&o, "--mean and --std go with --input-format u8-nhwc");
    let o = trtc(&["compile", &m, "-o", &p, "--input-format", "rgb"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("f32-nchw, u8-nhwc"), "{}", stderr(&o));
    let e = trtc(&[
        "compile",
        &efficientnet().display().to_string(),
        "-o",
        &p,
        "--input-format",
        "u8-nhwc",
        "--std",
        "0",
    ]);
    assert_clean_failure(&e, "std is 0");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn compile_defaults_match_run_image_defaults() {
    let p = Preprocess::default();
    assert_eq!(InputFormat::DEFAULT_MEAN, p.mean);
    assert_eq!(InputFormat::DEFAULT_STD, p.std);
}

/// On a GPU machine: the u8 plan as one CUDA engine (the pixels converted in its first
/// kernel), fp32 and fp16, on every image against the f32 model on tract with the image
/// normalized on the host. `cargo test --test input_format -- --ignored`.
#[test]
#[ignore = "needs a CUDA GPU"]
fn gpu_u8_plan_agrees_with_the_f32_model_on_every_image() {
    use trtc::backend::{BackendChoice, Precision};
    let g = load_model(efficientnet()).unwrap();
    let reference = CpuModel::new(&g).unwrap();
    for (precision, tolerance) in [(Precision::Fp32, 1e-3), (Precision::Fp16, 5e-2)] {
        let opts = CompileOptions {
            backend: BackendChoice::Cuda,
            precision,
            ..u8_options()
        };
        let plan = compile("efficientnet", g.clone(), &opts, trtc::gpu()).unwrap();
        let model = HybridModel::from_plan(&plan, trtc::gpu()).unwrap();
        assert!(
            model.engines().iter().all(|(_, _, k)| k == "cuda"),
            "{:?}",
            model.notes
        );
        for (path, want, got) in logits_per_image(&reference, &model) {
            let scale = want.iter().fold(0f32, |m, x| m.max(x.abs()));
            let diff = max_abs_diff(&want, &got);
            assert!(
                diff <= tolerance * scale,
                "{precision:?} {}: logits differ by {diff} (scale {scale})",
                path.display()
            );
            let mut sorted = want.clone();
            sorted.sort_by(|a, b| b.total_cmp(a));
            if sorted[0] - sorted[1] > 2.0 * tolerance * scale {
                assert_eq!(
                    argmax(&want),
                    argmax(&got),
                    "{precision:?} {}",
                    path.display()
                );
            }
        }
    }
}
