//! Bad input: a clear error naming the problem, exit code 1, never a panic or a hang.

mod common;
use common::*;
use prost::Message;

#[test]
fn missing_file() {
    let o = trtc(&["inspect", "no/such/model.onnx"]);
    assert_clean_failure(&o, "cannot read model file");
    let e = stderr(&o);
    assert_eq!(
        e.matches("No such file").count(),
        1,
        "the cause is said once: {e}"
    );
}

#[test]
fn a_directory_is_not_a_model() {
    assert_clean_failure(&trtc(&["inspect", "models"]), "is a directory");
}

#[test]
fn not_protobuf() {
    let dir = temp_dir("notpb");
    let p = dir.join("text.onnx");
    std::fs::write(&p, "this is a text file, not a model\n".repeat(20)).unwrap();
    assert_clean_failure(
        &trtc(&["inspect", p.to_str().unwrap()]),
        "not a valid ONNX protobuf",
    );
    let empty = dir.join("empty.onnx");
    std::fs::write(&empty, b"").unwrap();
    assert_clean_failure(&trtc(&["inspect", empty.to_str().unwrap()]), "no graph");
}

#[test]
fn truncated_model() {
    let dir = temp_dir("trunc");
    let bytes = std::fs::read(efficientnet()).unwrap();
    let p = dir.join("half.onnx");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    assert_clean_failure(
        &trtc(&["inspect", p.to_str().unwrap()]),
        "truncated or not a model",
    );
}

#[test]
fn graph_with_a_cycle() {
    let dir = temp_dir("cycle");
    let m = model(
        vec![
            node("Add", &["x", "b"], &["a"]),
            node("Relu", &["a"], &["b"]),
        ],
        vec![f32_info("x", &[1, 4])],
        vec![f32_info("b", &[1, 4])],
        vec![],
    );
    let p = write_model(&dir, "cycle.onnx", &m);
    assert_clean_failure(&trtc(&["inspect", p.to_str().unwrap()]), "cycle");
}

#[test]
fn input_nobody_produces() {
    let dir = temp_dir("dangling");
    let m = model(
        vec![node("Relu", &["ghost"], &["y"])],
        vec![f32_info("x", &[1, 4])],
        vec![f32_info("y", &[1, 4])],
        vec![],
    );
    let p = write_model(&dir, "dangling.onnx", &m);
    let o = trtc(&["inspect", p.to_str().unwrap()]);
    assert_clean_failure(&o, "reads tensor `ghost`");
}

#[test]
fn missing_initializer() {
    let dir = temp_dir("noinit");
    let mut m = add_relu_model();
    m.graph.as_mut().unwrap().initializer.clear();
    let p = write_model(&dir, "noinit.onnx", &m);
    assert_clean_failure(&trtc(&["inspect", p.to_str().unwrap()]), "reads tensor `b`");
}

#[test]
fn initializer_of_the_wrong_length() {
    let dir = temp_dir("badinit");
    let mut m = add_relu_model();
    m.graph.as_mut().unwrap().initializer[0]
        .raw_data
        .truncate(12);
    let p = write_model(&dir, "badinit.onnx", &m);
    let o = trtc(&["inspect", p.to_str().unwrap()]);
    assert_clean_failure(&o, "initializer `b`");
    assert!(stderr(&o).contains("12 bytes"), "{}", stderr(&o));
}

#[test]
fn unknown_op_is_kept_and_running_it_names_it() {
    let dir = temp_dir("unknown");
    let mut m = add_relu_model();
    let g = m.graph.as_mut().unwrap();
    g.node[1].op_type = "FancyGelu".into();
    let p = write_model(&dir, "unknown.onnx", &m);
    let o = trtc(&["inspect", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("FancyGelu"), "{}", stdout(&o));
    let x = dir.join("x.npy");
    trtc::npy::write_npy(
        &x,
        &trtc::ir::Tensor::from_shape(&[1, 4], &[1f32, 2., 3., 4.]).unwrap(),
    )
    .unwrap();
    let o = trtc(&[
        "run",
        p.to_str().unwrap(),
        "--input",
        &format!("x={}", x.display()),
        "--output-dir",
        dir.to_str().unwrap(),
    ]);
    assert_clean_failure(&o, "tract cannot run op `FancyGelu`");
}

#[test]
fn wrong_input_shape_names_input_and_shapes() {
    let dir = temp_dir("shape");
    let p = write_model(&dir, "m.onnx", &add_relu_model());
    let x = dir.join("x.npy");
    trtc::npy::write_npy(
        &x,
        &trtc::ir::Tensor::from_shape(&[2, 3], &[0f32; 6]).unwrap(),
    )
    .unwrap();
    let o = trtc(&[
        "run",
        p.to_str().unwrap(),
        "--input",
        &format!("x={}", x.display()),
    ]);
    assert_clean_failure(&o, "input `x`: expected f32[1,4], given f32[2,3]");
}

#[test]
fn wrong_npy_dtype() {
    let dir = temp_dir("dtype");
    let p = write_model(&dir, "m.onnx", &add_relu_model());
    let x = dir.join("x.npy");
    trtc::npy::write_npy(
        &x,
        &trtc::ir::Tensor::from_shape(&[1, 4], &[1i64, 2, 3, 4]).unwrap(),
    )
    .unwrap();
    let o = trtc(&[
        "run",
        p.to_str().unwrap(),
        "--input",
        &format!("x={}", x.display()),
    ]);
    assert_clean_failure(&o, "is not a f32 .npy file");
}

#[test]
fn missing_and_corrupt_images() {
    let model = efficientnet();
    let o = trtc(&[
        "run",
        model.to_str().unwrap(),
        "--image",
        "data/images/nope.png",
    ]);
    assert_clean_failure(&o, "cannot read image");
    let dir = temp_dir("img");
    let bad = dir.join("bad.jpg");
    let mut bytes = std::fs::read(image("flower.jpg")).unwrap();
    bytes.truncate(200);
    std::fs::write(&bad, bytes).unwrap();
    let o = trtc(&[
        "run",
        model.to_str().unwrap(),
        "--image",
        bad.to_str().unwrap(),
    ]);
    assert_clean_failure(&o, "cannot read image");
}

#[test]
fn library_errors_are_typed() {
    use trtc::ir::IrError;
    let mut m = add_relu_model();
    m.graph.as_mut().unwrap().node[0].input[1] = "nothing".into();
    let err = trtc::ir::from_proto(m, None).unwrap_err();
    assert!(
        matches!(err, IrError::DanglingInput { ref tensor, .. } if tensor == "nothing"),
        "{err}"
    );
    let bytes = add_relu_model().encode_to_vec();
    let err = trtc::ir::tract_onnx::pb::ModelProto::decode(&bytes[..bytes.len() - 3]);
    assert!(err.is_err(), "a cut protobuf does not decode");
}
