//! `trtc calibrate`: a cache from real images that TensorRT's format reader accepts, `.npy`
//! batches, QDQ models, and clear errors (exit 1) for bad data.

mod common;
use common::*;
use trtc::ir::tract_onnx::pb::TensorProto;
use trtc::ir::Tensor;
use trtc::quant::CalibrationTable;

#[test]
fn calibrates_efficientnet_on_the_sample_images() {
    let dir = temp_dir("calib-effnet");
    let cache = dir.join("effnet.cache");
    let images = root().join("data/images");
    let o = trtc(&[
        "calibrate",
        path(&efficientnet()),
        "--calibration-data",
        path(&images),
        "--calibrator",
        "minmax",
        "--batch",
        "2",
        "-o",
        path(&cache),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // 5 images in batches of 2: the model's batch is dynamic, so the last batch holds 1.
    assert!(
        stdout(&o).contains("over 3 batch(es) (5 image(s))"),
        "{}",
        stdout(&o)
    );
    let text = std::fs::read_to_string(&cache).unwrap();
    assert!(text.starts_with("TRT-8600-MinMaxCalibration\n"), "{text}");
    let table = CalibrationTable::parse(&text).unwrap();
    let graph = trtc::ir::load_model(efficientnet()).unwrap();
    let output = graph.tensor(graph.outputs()[0]).name.clone();
    assert!(table.scales.len() > 100, "{} tensors", table.scales.len());
    // (pixel - 127) / 128 of 8-bit images: |x| <= 1, and these photos reach white.
    let input = table.amax("input").unwrap();
    assert!(input > 0.9 && input <= 1.0 + 1e-6, "input amax {input}");
    let logits = table.amax(&output).unwrap();
    assert!(logits > 1.0 && logits.is_finite(), "{output} amax {logits}");
    std::fs::remove_dir_all(&dir).ok();
}

fn write_npy(p: &std::path::Path, dims: &[usize], v: &[f32]) {
    trtc::npy::write_npy(p, &Tensor::from_shape(dims, v).unwrap()).unwrap();
}

#[test]
fn npy_batches_give_the_expected_ranges() {
    // y = relu(x + [0.5, -0.5, 1, -1]).
    let dir = temp_dir("calib-npy");
    let model = write_model(&dir, "m.onnx", &add_relu_model());
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    write_npy(&data.join("a.npy"), &[1, 4], &[1.0, 1.0, -3.0, 4.0]);
    write_npy(&data.join("b.npy"), &[1, 4], &[-5.0, 0.0, 0.5, 0.5]);
    std::fs::write(data.join("notes.txt"), "skipped").unwrap();
    let cache = dir.join("c.txt");
    let o = trtc(&[
        "calibrate",
        path(&model),
        "--calibration-data",
        path(&data),
        "--calibrator",
        "minmax",
        "-o",
        path(&cache),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let t = CalibrationTable::load(&cache).unwrap();
    // x: max |x| = 5; s = x + b: [1.5, 0.5, -2, 3] and [-4.5, -0.5, 1.5, -0.5]: 4.5;
    // y = relu(s): 3.
    assert_eq!(t.scales.len(), 3, "{:?}", t.scales);
    assert_eq!(t.algorithm, "TRT-8600-MinMaxCalibration");
    assert_eq!(t.scale("x"), Some(5.0 / 127.0));
    assert_eq!(t.scale("s"), Some(4.5 / 127.0));
    assert_eq!(t.scale("y"), Some(3.0 / 127.0));
    // --calibration-batches 1 keeps a.npy only (x: 4, s: 3); percentile 100 of a
    // histogram whose range the one batch set is its maximum.
    let o = trtc(&[
        "calibrate",
        path(&model),
        "--calibration-data",
        path(&data),
        "--calibrator",
        "percentile:100",
        "--calibration-batches",
        "1",
        "-o",
        path(&cache),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let t = CalibrationTable::load(&cache).unwrap();
    assert_eq!(t.algorithm, "TRTC-1-PercentileCalibration");
    assert_eq!(t.scale("x"), Some(4.0 / 127.0));
    assert_eq!(t.scale("s"), Some(3.0 / 127.0));
    std::fs::remove_dir_all(&dir).ok();
}

/// `trtc calibrate EFFICIENTNET --calibration-data DATA [-o TEMP] EXTRA..`.
fn calibrate_with(data: &str, extra: &[&str]) -> std::process::Output {
    let out = temp_dir("calib-err").join("never.cache");
    let model = efficientnet();
    let mut args = vec!["calibrate", path(&model), "--calibration-data", data];
    if !extra.contains(&"-o") {
        args.extend(["-o", path(&out)]);
    }
    args.extend_from_slice(extra);
    trtc(&args)
}

#[test]
fn a_missing_directory_is_named() {
    let o = calibrate_with("no/such/images", &[]);
    assert_clean_failure(&o, "calibration data no/such/images");
}

#[test]
fn a_directory_without_images_is_an_error() {
    let dir = temp_dir("calib-empty");
    std::fs::write(dir.join("readme.txt"), "no images here").unwrap();
    let o = calibrate_with(path(&dir), &[]);
    assert_clean_failure(&o, "no images (.png, .jpg, .jpeg) or .npy files");
    assert_clean_failure(
        &calibrate_with("README.md", &[]),
        "not a directory, an image",
    );
}

#[test]
fn an_image_that_does_not_decode_is_named() {
    let dir = temp_dir("calib-corrupt");
    std::fs::copy(image("coffee.png"), dir.join("a.png")).unwrap();
    std::fs::write(dir.join("b.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let o = calibrate_with(path(&dir), &["--calibrator", "minmax"]);
    assert_clean_failure(&o, "cannot read image");
    assert!(stderr(&o).contains("b.png"), "{}", stderr(&o));
}

#[test]
fn wrong_shapes_are_errors() {
    let dir = temp_dir("calib-shape");
    let npy = dir.join("small.npy");
    write_npy(&npy, &[1, 3, 8, 8], &[0.5; 192]);
    let o = calibrate_with(path(&npy), &[]);
    assert_clean_failure(&o, "given f32[1,3,8,8]");
    assert!(stderr(&o).contains("small.npy"), "{}", stderr(&o));
    // Images cropped to another size than the model's 224.
    let o = calibrate_with(
        path(&image("coffee.png")),
        &["--size", "200", "--resize", "256"],
    );
    assert_clean_failure(&o, "given f32[1,3,200,200]");
}

#[test]
fn nan_data_names_the_tensor() {
    let dir = temp_dir("calib-nan");
    let model = write_model(&dir, "m.onnx", &add_relu_model());
    let npy = dir.join("nan.npy");
    write_npy(&npy, &[1, 4], &[1.0, f32::NAN, 0.0, 0.0]);
    let o = trtc(&[
        "calibrate",
        path(&model),
        "--calibration-data",
        path(&npy),
        "-o",
        path(&dir.join("c.txt")),
    ]);
    assert_clean_failure(&o, "tensor `x` has 1 non-finite value(s)");
}

#[test]
fn an_unwritable_output_fails_before_calibrating() {
    let o = trtc(&[
        "calibrate",
        path(&efficientnet()),
        "--calibration-data",
        "data/images",
        "-o",
        "data",
    ]);
    assert_clean_failure(&o, "-o: data: is a directory");
    assert!(stdout(&o).is_empty(), "calibrated anyway: {}", stdout(&o));
    let o = calibrate_with("data/images", &["-o", "no/such/dir/c.cache"]);
    assert_clean_failure(&o, "directory no/such/dir does not exist");
}

#[test]
fn an_unknown_calibrator_is_a_usage_error() {
    let o = calibrate_with("data/images", &["--calibrator", "kl"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("unknown calibrator `kl`"),
        "{}",
        stderr(&o)
    );
}

fn i8_initializer(name: &str, v: i8) -> TensorProto {
    TensorProto {
        name: name.into(),
        data_type: 3,
        raw_data: vec![v as u8],
        ..Default::default()
    }
}

#[test]
fn from_qdq_writes_the_models_own_scales() {
    let dir = temp_dir("calib-qdq");
    let qdq = |zp: i8| {
        model(
            vec![
                node("QuantizeLinear", &["x", "s", "z"], &["q"]),
                node("DequantizeLinear", &["q", "s", "z"], &["d"]),
                node("Relu", &["d"], &["y"]),
            ],
            vec![f32_info("x", &[1, 4])],
            vec![f32_info("y", &[1, 4])],
            vec![f32_initializer("s", &[], &[0.25]), i8_initializer("z", zp)],
        )
    };
    let m = write_model(&dir, "qdq.onnx", &qdq(0));
    let cache = dir.join("qdq.cache");
    let o = trtc(&["calibrate", path(&m), "--from-qdq", "-o", path(&cache)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let t = CalibrationTable::load(&cache).unwrap();
    assert_eq!(t.scale("x"), Some(0.25));
    assert_eq!(t.scale("d"), Some(0.25));
    let m = write_model(&dir, "asym.onnx", &qdq(5));
    let o = trtc(&["calibrate", path(&m), "--from-qdq", "-o", path(&cache)]);
    assert_clean_failure(&o, "zero point 5");
    assert!(stderr(&o).contains("QuantizeLinear"), "{}", stderr(&o));
    // A plain model has no scales of its own.
    let m = write_model(&dir, "plain.onnx", &add_relu_model());
    let o = trtc(&["calibrate", path(&m), "--from-qdq", "-o", path(&cache)]);
    assert_clean_failure(&o, "no QuantizeLinear/DequantizeLinear");
}

/// `--calibration-cache FILE`: calibrated and written when the file is absent, read instead
/// of calibrating when it is there (no data needed); a cache naming tensors the model does
/// not have, a corrupt one, or neither data nor cache: clear errors.
#[test]
fn a_calibration_cache_is_written_then_read_instead_of_calibrating() {
    let dir = temp_dir("calib-cache");
    let model = write_model(&dir, "m.onnx", &add_relu_model());
    let npy = dir.join("a.npy");
    write_npy(&npy, &[1, 4], &[1.0, 1.0, -3.0, 4.0]);
    let cache = dir.join("c.cache");
    std::fs::remove_file(&cache).ok();
    let calibrate = |extra: &[&str]| {
        let mut args = vec![
            "calibrate",
            path(&model),
            "--calibration-cache",
            path(&cache),
        ];
        args.extend_from_slice(extra);
        trtc(&args)
    };
    let o = calibrate(&["--calibration-data", path(&npy), "--calibrator", "minmax"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("calibrated 3 tensors"),
        "{}",
        stdout(&o)
    );
    let written = CalibrationTable::load(&cache).unwrap();
    assert_eq!(written.scale("x"), Some(4.0 / 127.0));
    // Read back: no data, no calibration, the same table also written to -o.
    let copy = dir.join("copy.cache");
    let o = calibrate(&["-o", path(&copy)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("read 3 tensor scales (TRT-8600-MinMaxCalibration)")
            && stdout(&o).contains("calibration skipped"),
        "{}",
        stdout(&o)
    );
    assert_eq!(CalibrationTable::load(&copy).unwrap(), written);
    // Data given as well: the cache still wins (TensorRT's readCalibrationCache).
    let o = calibrate(&["--calibration-data", "no/such/dir"]);
    assert!(o.status.success(), "{}", stderr(&o));

    // A cache made for another model.
    std::fs::write(
        &cache,
        "TRT-8600-EntropyCalibration2\nx: 3c010204\nconv1_out: 3c010204\n",
    )
    .unwrap();
    assert_clean_failure(
        &calibrate(&["-o", path(&copy)]),
        "1 of its 2 tensors are not in the model (made for another model?): `conv1_out`",
    );
    // A corrupt one.
    std::fs::write(&cache, "TRT-8600-EntropyCalibration2\nx: not-hex\n").unwrap();
    let o = calibrate(&["-o", path(&copy)]);
    assert_clean_failure(&o, "calibration cache");
    assert!(stderr(&o).contains("c.cache"), "{}", stderr(&o));
    // Neither data nor a cache.
    std::fs::remove_file(&cache).unwrap();
    assert_clean_failure(
        &calibrate(&[]),
        "no --calibration-data, and no calibration cache at",
    );
    std::fs::remove_dir_all(&dir).ok();
}
