//! The calibration cache in TensorRT's text format: writing, reading TensorRT's own files,
//! and errors that name the line.

use trtc_quant::{CalibrationTable, QuantError};

/// `(1 + mantissa / 2^23) * 2^(exponent - 127)`, decoded by hand (no `from_bits`).
fn decode(sign: f64, exponent: i32, mantissa: u32) -> f32 {
    (sign * (1.0 + mantissa as f64 / (1u64 << 23) as f64) * 2f64.powi(exponent - 127)) as f32
}

#[test]
fn reads_a_tensorrt_cache() {
    let text = "TRT-8501-EntropyCalibration2\n\
                input_tensor: 3c010204\n\
                (Unnamed Layer* 3) [Convolution]_output: 3f800000\n\
                conv1: out:0: 3e000000\n\
                zeroed: 0\n";
    let t = CalibrationTable::parse(text).unwrap();
    assert_eq!(t.algorithm, "TRT-8501-EntropyCalibration2");
    assert_eq!(t.algorithm_name(), "EntropyCalibration2");
    // 0x3c010204: exponent 0x78 = 120, mantissa 0x010204.
    assert_eq!(t.scale("input_tensor"), Some(decode(1.0, 120, 0x010204)));
    assert_eq!(
        t.scale("(Unnamed Layer* 3) [Convolution]_output"),
        Some(1.0)
    );
    // The name holds `: `; the scale is after the last one. 0x3e000000 = 2^-3.
    assert_eq!(t.scale("conv1: out:0"), Some(0.125));
    assert_eq!(t.amax("conv1: out:0"), Some(0.125 * 127.0));
    assert_eq!(t.scale("zeroed"), Some(0.0));
    assert_eq!(t.scales.len(), 4);
}

#[test]
fn writes_the_bits_most_significant_digit_first() {
    let mut t = CalibrationTable::new("TRT-8600-MinMaxCalibration");
    t.insert_amax("x", 127.0);
    t.scales.insert("y".into(), 0.125);
    t.scales.insert(
        "(Unnamed Layer* 0) [Constant]_output".into(),
        decode(1.0, 120, 0x010204),
    );
    let text = t.to_text().unwrap();
    assert_eq!(
        text,
        "TRT-8600-MinMaxCalibration\n\
         (Unnamed Layer* 0) [Constant]_output: 3c010204\n\
         x: 3f800000\n\
         y: 3e000000\n"
    );
}

#[test]
fn round_trips_through_a_file() {
    let mut t = CalibrationTable::new("TRT-8600-EntropyCalibration2");
    for (i, name) in ["input", "conv/out:0", "a: b", "logits"].iter().enumerate() {
        t.insert_amax(*name, 0.37 * (i as f32 + 1.0).powi(3));
    }
    t.insert_amax("tiny", 1e-30);
    t.insert_amax("dead", 0.0);
    let dir = std::env::temp_dir().join(format!("trtc-quant-cache-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("calib.cache");
    t.save(&path).unwrap();
    let back = CalibrationTable::load(&path).unwrap();
    assert_eq!(back, t);
    for (name, s) in &t.scales {
        assert_eq!(back.scales[name].to_bits(), s.to_bits(), "{name}");
    }
    let mut buf = vec![];
    t.write_to(&mut buf).unwrap();
    assert_eq!(CalibrationTable::read_from(buf.as_slice()).unwrap(), t);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn tolerates_crlf_blank_lines_and_short_hex() {
    let t = CalibrationTable::parse("TRTC-1-PercentileCalibration\r\na: 3f800000\r\n\r\nb: 1\n\n")
        .unwrap();
    assert_eq!(t.scale("a"), Some(1.0));
    assert_eq!(t.scale("b"), Some(f32::from_bits(1)));
}

fn line_of(text: &str) -> (usize, String) {
    match CalibrationTable::parse(text) {
        Err(e @ QuantError::Cache { line, .. }) => (line, e.to_string()),
        other => panic!("expected a cache error for {text:?}, got {other:?}"),
    }
}

#[test]
fn malformed_caches_name_the_line() {
    let cases: &[(&str, usize, &str)] = &[
        ("", 1, "empty file"),
        ("EntropyCalibration2\nx: 3f800000\n", 1, "header"),
        ("TRT-8600\nx: 3f800000\n", 1, "header"),
        (
            "TRT-8600-MinMaxCalibration\nx: 3f800000\nno scale here\n",
            3,
            "expected `tensor: <hex scale>`",
        ),
        ("TRT-8600-MinMaxCalibration\nx:3f800000\n", 2, "expected"),
        (
            "TRT-8600-MinMaxCalibration\nx: 3f80000g\n",
            2,
            "not 1 to 8 hex digits",
        ),
        (
            "TRT-8600-MinMaxCalibration\nx: 13f800000\n",
            2,
            "not 1 to 8 hex digits",
        ),
        ("TRT-8600-MinMaxCalibration\nx: \n", 2, "expected"),
        (
            "TRT-8600-MinMaxCalibration\n: 3f800000\n",
            2,
            "empty tensor name",
        ),
        (
            "TRT-8600-MinMaxCalibration\na: 1\nx: 7fc00000\n",
            3,
            "not a finite non-negative",
        ),
        (
            "TRT-8600-MinMaxCalibration\nx: 7f800000\n",
            2,
            "not a finite non-negative",
        ),
        (
            "TRT-8600-MinMaxCalibration\nx: bf800000\n",
            2,
            "not a finite non-negative",
        ),
        (
            "TRT-8600-MinMaxCalibration\nx: 1\n\nx: 2\n",
            4,
            "appears twice",
        ),
    ];
    for &(text, line, needle) in cases {
        let (got, msg) = line_of(text);
        assert_eq!(got, line, "{text:?}: {msg}");
        assert!(msg.contains(needle), "{text:?}: {msg}");
        assert!(msg.contains(&format!("line {line}")), "{msg}");
    }
}

#[test]
fn non_utf8_names_its_line() {
    let bytes = b"TRT-8600-MinMaxCalibration\nx: 3f800000\n\xff\xfe: 1\n";
    match CalibrationTable::read_from(&bytes[..]) {
        Err(QuantError::Cache { line: 3, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn unwritable_tables_are_errors() {
    let mut t = CalibrationTable::new("TRT-8600-MinMaxCalibration");
    t.scales.insert("a\nb".into(), 1.0);
    assert!(t.to_text().is_err());
    let mut t = CalibrationTable::new("TRT-8600-MinMaxCalibration");
    t.scales.insert("nan".into(), f32::NAN);
    assert!(t
        .to_text()
        .unwrap_err()
        .to_string()
        .contains("tensor `nan`"));
    assert!(CalibrationTable::new("not a header").to_text().is_err());
}
