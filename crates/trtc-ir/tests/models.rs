//! The IR on the real models: load, shapes, round trip through ONNX equal to tract on the
//! original file, validity.

use std::path::{Path, PathBuf};
use trtc_ir::tract_onnx::prelude::*;
use trtc_ir::{load_model, to_model_proto, CpuModel, Dim, Graph, Op};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn efficientnet() -> PathBuf {
    root().join("models/efficientnet_lite0.onnx")
}

/// InceptionV3 lives in ../shared (103 MB, kept out of git), or where `TRTC_INCEPTION_V3`
/// says. A test that needs it starts with `if !have_inception() { return; }`.
fn inception() -> PathBuf {
    let p = inception_path();
    assert!(
        p.exists(),
        "{} is missing: the InceptionV3 tests need ../shared/models/inception_v3.onnx",
        p.display()
    );
    p
}

fn inception_path() -> PathBuf {
    std::env::var_os("TRTC_INCEPTION_V3")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/models/inception_v3.onnx"))
}

/// Is InceptionV3 there? If not, say the calling test is skipped (on stderr, past the
/// harness's capture) and return false, or panic when `TRTC_REQUIRE_ASSETS=1` (CI); the
/// top-level tests' `have_inception` in tests/common does the same.
fn have_inception() -> bool {
    let p = inception_path();
    if p.exists() {
        return true;
    }
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("test");
    let path = p.display();
    if std::env::var("TRTC_REQUIRE_ASSETS").is_ok_and(|v| !v.is_empty() && v != "0") {
        panic!(
            "{test}: {path} is absent, and TRTC_REQUIRE_ASSETS is set: failing instead of skipping"
        );
    }
    let line =
        format!("skipped {test}: {path} is absent (set TRTC_REQUIRE_ASSETS=1 to fail instead)\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    false
}

fn random_input(shape: &[usize], seed: u64) -> Tensor {
    trtc_ir::tensor::random_uniform(shape, seed)
}

fn tract_on_file(path: &Path, input: &Tensor) -> Tensor {
    let model = onnx()
        .model_for_path(path)
        .unwrap()
        .with_input_fact(0, f32::fact(input.shape()).into())
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    model
        .run(tvec!(input.clone().into()))
        .unwrap()
        .remove(0)
        .into_tensor()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.shape(), b.shape());
    let a = a.to_plain_array_view::<f32>().unwrap();
    let b = b.to_plain_array_view::<f32>().unwrap();
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn check_round_trip(g: &Graph, path: &Path, shape: &[usize]) {
    let input = random_input(shape, 7);
    let reference = tract_on_file(path, &input);
    let ours = CpuModel::new(g)
        .unwrap()
        .run(vec![input])
        .unwrap()
        .remove(0);
    let scale = reference
        .to_plain_array_view::<f32>()
        .unwrap()
        .iter()
        .fold(0f32, |m, x| m.max(x.abs()));
    let diff = max_abs_diff(&ours, &reference);
    assert!(
        diff == 0.0 || diff <= 1e-6 * scale.max(1.0),
        "max abs diff {diff} (scale {scale})"
    );
    // and the exported ONNX re-loads to the same graph size
    let proto = to_model_proto(g).unwrap();
    let again = trtc_ir::from_proto(proto, None).unwrap();
    assert_eq!(again.compute_node_count(), g.compute_node_count());
    again.validate().unwrap();
}

#[test]
fn efficientnet_loads_with_every_shape_known() {
    let g = load_model(efficientnet()).unwrap();
    g.validate().unwrap();
    assert_eq!(g.inputs().len(), 1);
    let out = g.tensor(g.outputs()[0]);
    assert_eq!(
        out.shape,
        Some(vec![Dim::Sym("N".into()), Dim::Known(1000)])
    );
    for id in g.node_ids() {
        for t in &g.node(id).outputs {
            assert!(t.shape.is_some(), "tensor {} has no shape", t.name);
            assert!(t.dtype.is_some(), "tensor {} has no dtype", t.name);
        }
    }
    let convs = g
        .node_ids()
        .into_iter()
        .filter(|&id| matches!(g.node(id).op, Op::Conv(_)))
        .count();
    assert_eq!(convs, 49);
}

#[test]
fn efficientnet_round_trip_equals_tract_on_the_file() {
    let g = load_model(efficientnet()).unwrap();
    check_round_trip(&g, &efficientnet(), &[1, 3, 224, 224]);
}

#[test]
fn inception_round_trip_equals_tract_on_the_file() {
    if !have_inception() {
        return;
    }
    let g = load_model(inception()).unwrap();
    g.validate().unwrap();
    let logits = g.tensor(g.outputs()[0]);
    assert_eq!(
        logits.shape,
        Some(vec![Dim::Sym("N".into()), Dim::Known(1000)])
    );
    check_round_trip(&g, &inception(), &[1, 3, 299, 299]);
}
