//! `trtc bench MODEL --precision fp32,int8 --calibration-data DIR`: an ONNX model is
//! calibrated and compiled for INT8 as `trtc compile --precision int8` does (here on the
//! CPU: EfficientNet-Lite0 on 3 natural images), with a row per precision and the compile
//! report's INT8 line; the calibration cache it writes is read by the next bench (and
//! `--json` keeps stdout for the JSON); `--accuracy-data` adds each precision's top-1
//! agreement with the FP32 model; without data or cache, a clear error.

mod common;
use common::*;

/// `trtc bench EFFICIENTNET --batch 1 --iterations 1 EXTRA..`.
fn bench(extra: &[&str]) -> std::process::Output {
    let model = efficientnet();
    let mut args = vec!["bench", path(&model), "--batch", "1", "--iterations", "1"];
    args.extend_from_slice(extra);
    trtc(&args)
}

/// The table's row for `precision` at batch 1.
fn has_row(out: &str, precision: &str) -> bool {
    out.lines().any(|l| {
        let mut cols = l.split_whitespace();
        cols.next() == Some(precision) && cols.next() == Some("1")
    })
}

#[test]
fn bench_calibrates_int8_next_to_fp32_and_reuses_the_cache() {
    let dir = temp_dir("bench-int8");
    let calib = dir.join("calib");
    copy_every_nth("data/natural/calib", 24, &calib);
    let cache = dir.join("c.cache");
    std::fs::remove_file(&cache).ok();
    let o = bench(&[
        "--precision",
        "fp32,int8",
        "--calibration-data",
        path(&calib),
        "--calibrator",
        "minmax",
        "--calibration-cache",
        path(&cache),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("calibrated 53 tensors with minmax over 3 batch(es) (3 image(s))"),
        "{out}"
    );
    assert!(
        out.contains(
            "INT8: 53 tensors calibrated (TRT-8600-MinMaxCalibration), 50 layers got Q/DQ"
        ),
        "{out}"
    );
    assert!(has_row(&out, "fp32"), "{out}");
    assert!(has_row(&out, "int8"), "{out}");
    assert!(cache.exists(), "no calibration cache written");

    // The cache is read (no data needed); --json: the calibration lines go to stderr, and
    // stdout is the JSON, its row an int8 one with the INT8 report.
    let o = bench(&[
        "--precision",
        "int8",
        "--calibration-cache",
        path(&cache),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("calibration skipped"), "{}", stderr(&o));
    let rows: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["precision"], "int8");
    assert_eq!(rows[0]["batch"], 1);
    assert_eq!(
        rows[0]["int8"]["calibration"], "TRT-8600-MinMaxCalibration",
        "{}",
        rows[0]
    );
    assert!(rows[0]["images_per_s"].as_f64().unwrap() > 0.0);
    assert!(rows[0].get("top1_vs_fp32").is_none(), "{}", rows[0]);

    // The accuracy column: each precision's top-1 against the FP32 model's on held-out
    // images. FP32 (on tract here, as the reference) agrees on all of them.
    let held = dir.join("held");
    copy_every_nth("data/natural/heldout", 60, &held);
    let o = bench(&[
        "--precision",
        "fp32,int8",
        "--calibration-cache",
        path(&cache),
        "--accuracy-data",
        path(&held),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let top1 = |i: usize| rows[i]["top1_vs_fp32"].as_f64().unwrap();
    assert_eq!(
        (rows[0]["precision"].as_str(), top1(0)),
        (Some("fp32"), 1.0)
    );
    assert!((0.0..=1.0).contains(&top1(1)), "{}", rows[1]);
    assert_clean_failure(
        &bench(&["--accuracy-data", path(&calib.join("absent"))]),
        "--accuracy-data",
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bench_int8_without_calibration_fails_cleanly() {
    let dir = temp_dir("bench-int8-errors");
    assert_clean_failure(
        &bench(&["--precision", "fp32,int8"]),
        "or a calibration table to compile the model with: --calibration-data DIR or \
         --calibration-cache FILE",
    );
    let cache = dir.join("absent.cache");
    assert_clean_failure(
        &bench(&["--precision", "int8", "--calibration-cache", path(&cache)]),
        &format!(
            "no --calibration-data, and no calibration cache at {}",
            cache.display()
        ),
    );
    assert!(!cache.exists());
    // Calibration flags without int8.
    assert_clean_failure(
        &bench(&["--calibration-data", path(&dir)]),
        "--calibration-data and --calibration-cache go with --precision int8",
    );
    std::fs::remove_dir_all(&dir).ok();
}
