//! Helpers shared by the integration tests: paths, the trtc binary, small ONNX models.
#![allow(dead_code)]

use prost::Message;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use trtc::ir::tract_onnx::pb::{
    self, AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto,
};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn efficientnet() -> PathBuf {
    root().join("models/efficientnet_lite0.onnx")
}

/// InceptionV3 stays out of git: `../shared/models/inception_v3.onnx`, or the copy that
/// `TRTC_INCEPTION_V3` names (on a GPU machine without `../shared`). A test that needs it
/// starts with `if !have_inception() { return; }`.
pub fn inception() -> PathBuf {
    let p = inception_path();
    assert!(
        p.exists(),
        "{} is missing: InceptionV3 (103 MB) is read from ../shared/models, see README",
        p.display()
    );
    p
}

fn inception_path() -> PathBuf {
    std::env::var_os("TRTC_INCEPTION_V3")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/models/inception_v3.onnx"))
}

/// Set to 1 (CI does), a test whose asset is absent fails instead of being skipped.
pub const REQUIRE_ASSETS: &str = "TRTC_REQUIRE_ASSETS";

/// An asset the calling test needs is absent (`why`): say the test is skipped (on stderr,
/// past the harness's capture, so a plain `cargo test` shows it) and return false, or
/// panic when `TRTC_REQUIRE_ASSETS=1`.
fn absent(why: &str) -> bool {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("test");
    if std::env::var(REQUIRE_ASSETS).is_ok_and(|v| !v.is_empty() && v != "0") {
        panic!("{test}: {why}, and {REQUIRE_ASSETS} is set: failing instead of skipping");
    }
    let line = format!("skipped {test}: {why} (set {REQUIRE_ASSETS}=1 to fail instead)\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    false
}

/// Is InceptionV3 there? If not, the caller returns early (see `absent`).
pub fn have_inception() -> bool {
    let p = inception_path();
    p.exists() || absent(&format!("{} is absent", p.display()))
}

/// Is graphviz's `dot` on PATH? If not, the caller returns early (see `absent`).
pub fn have_graphviz() -> bool {
    let ok = Command::new("dot")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    ok || absent("graphviz's `dot` is not on PATH (apt-get install graphviz)")
}

pub fn image(name: &str) -> PathBuf {
    root().join("data/images").join(name)
}

/// A path as the `&str` a command line takes.
pub fn path(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// The `.jpg` files of `dir` (from the project root) whose names `keep` accepts, sorted.
pub fn jpg_images(dir: &str, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .filter(|p| keep(p.file_name().unwrap().to_str().unwrap()))
        .collect();
    v.sort();
    v
}

/// Folder `dir` created, holding copies of `files` (a test's own small image set).
pub fn copy_into<'a>(dir: &std::path::Path, files: impl IntoIterator<Item = &'a PathBuf>) {
    std::fs::create_dir_all(dir).unwrap();
    for f in files {
        std::fs::copy(f, dir.join(f.file_name().unwrap())).unwrap();
    }
}

/// Folder `to` created, holding copies of every `step`-th image (name order) of `from`.
pub fn copy_every_nth(from: &str, step: usize, to: &std::path::Path) {
    copy_into(to, jpg_images(from, |_| true).iter().step_by(step));
}

pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("trtc-test-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Run the trtc binary from the project root.
pub fn trtc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trtc"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("spawn trtc")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The command failed cleanly: non-zero exit, no panic, and the message says `needle`.
pub fn assert_clean_failure(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(
        !o.status.success(),
        "expected failure, got success; stdout: {}",
        stdout(o)
    );
    assert_eq!(o.status.code(), Some(1), "exit code; stderr: {err}");
    assert!(!err.contains("panicked"), "panicked: {err}");
    assert!(
        err.contains(needle),
        "stderr should mention `{needle}`: {err}"
    );
}

pub fn f32_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            denotation: String::new(),
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: 1,
                shape: Some(pb::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| Dimension {
                            denotation: String::new(),
                            value: Some(Value::DimValue(d)),
                        })
                        .collect(),
                }),
            })),
        }),
        doc_string: String::new(),
    }
}

pub fn node(op: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        name: format!("{op}_{}", outputs.first().unwrap_or(&"")),
        op_type: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

pub fn f32_initializer(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 1,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

pub fn model(
    nodes: Vec<NodeProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    inits: Vec<TensorProto>,
) -> ModelProto {
    ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        graph: Some(GraphProto {
            node: nodes,
            input: inputs,
            output: outputs,
            initializer: inits,
            name: "test".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn write_model(dir: &Path, name: &str, m: &ModelProto) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, m.encode_to_vec()).unwrap();
    p
}

pub fn int_attr(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: 2,
        i,
        ..Default::default()
    }
}

/// `y = relu(x + b)` on `[1, 4]`.
pub fn add_relu_model() -> ModelProto {
    model(
        vec![
            node("Add", &["x", "b"], &["s"]),
            node("Relu", &["s"], &["y"]),
        ],
        vec![f32_info("x", &[1, 4])],
        vec![f32_info("y", &[1, 4])],
        vec![f32_initializer("b", &[4], &[0.5, -0.5, 1.0, -1.0])],
    )
}
