//! The calibration table, in TensorRT's text cache format.
//!
//! The format: the first line is the header `TRT-<version>-<Algorithm>` (trtc writes
//! `TRT-8600-EntropyCalibration2` or `TRT-8600-MinMaxCalibration`, and `TRTC-1-...` for
//! what TensorRT has no calibrator for); then one line per tensor, `name: <hex>`, where
//! `<hex>` is the IEEE-754 bit pattern of the f32 scale `amax / 127` as a number in
//! hexadecimal, most significant digit first (scale 1.0 is `3f800000`; TensorRT and ONNX
//! Runtime read it with `strtoul(hex, 16)`). trtc writes eight lowercase digits and the
//! tensors sorted by name. On reading, a tensor name may contain `: ` (the line is split at
//! the last one), 1 to 8 hex digits are accepted, blank lines and a trailing newline are
//! ignored, and a malformed line, a repeated tensor, or a scale that is negative or not
//! finite is an error naming its line.

use crate::error::{QuantError, Result};
use crate::INT8_MAX;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

/// Per-tensor INT8 scales (`amax / 127`), by tensor name.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CalibrationTable {
    /// The cache's whole header line, e.g. `TRT-8600-EntropyCalibration2`.
    pub algorithm: String,
    pub scales: BTreeMap<String, f32>,
}

impl CalibrationTable {
    /// An empty table under `header` (e.g. `Calibrator::cache_header()`).
    pub fn new(header: impl Into<String>) -> Self {
        CalibrationTable {
            algorithm: header.into(),
            scales: BTreeMap::new(),
        }
    }

    /// The algorithm part of the header: `EntropyCalibration2`.
    pub fn algorithm_name(&self) -> &str {
        self.algorithm
            .splitn(3, '-')
            .nth(2)
            .unwrap_or(&self.algorithm)
    }

    /// Record a tensor's range: its scale is `amax / 127`.
    pub fn insert_amax(&mut self, tensor: impl Into<String>, amax: f32) {
        self.scales.insert(tensor.into(), amax / INT8_MAX);
    }

    pub fn scale(&self, tensor: &str) -> Option<f32> {
        self.scales.get(tensor).copied()
    }

    /// The tensor's range, `scale * 127`.
    pub fn amax(&self, tensor: &str) -> Option<f32> {
        self.scale(tensor).map(|s| s * INT8_MAX)
    }

    /// The table as cache text (header, then one line per tensor, each ending in `\n`).
    pub fn to_text(&self) -> Result<String> {
        let bad = |line: usize, detail: String| QuantError::Cache { line, detail };
        check_header(&self.algorithm).map_err(|d| bad(1, d))?;
        let mut s = format!("{}\n", self.algorithm);
        for (i, (name, &scale)) in self.scales.iter().enumerate() {
            if name.is_empty() || name.contains(['\n', '\r']) {
                return Err(bad(
                    i + 2,
                    format!("tensor name {name:?} cannot be written"),
                ));
            }
            check_scale(scale).map_err(|d| bad(i + 2, format!("tensor `{name}`: {d}")))?;
            s += &format!("{name}: {:08x}\n", scale.to_bits());
        }
        Ok(s)
    }

    pub fn write_to(&self, mut w: impl Write) -> Result<()> {
        let text = self.to_text()?;
        w.write_all(text.as_bytes()).map_err(|io| QuantError::Io {
            action: "write",
            path: "the calibration cache".into(),
            io,
        })
    }

    pub fn read_from(mut r: impl Read) -> Result<Self> {
        let mut bytes = vec![];
        r.read_to_end(&mut bytes).map_err(|io| QuantError::Io {
            action: "read",
            path: "the calibration cache".into(),
            io,
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let before = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            QuantError::Cache {
                line: 1 + before.iter().filter(|&&b| b == b'\n').count(),
                detail: "not UTF-8 text".into(),
            }
        })?;
        Self::parse(&text)
    }

    /// Parse cache text (see the module rule).
    pub fn parse(text: &str) -> Result<Self> {
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim_end()));
        let bad = |line: usize, detail: String| QuantError::Cache { line, detail };
        let header = match lines.next() {
            Some((_, h)) => h,
            None => {
                return Err(bad(
                    1,
                    "empty file: expected a `TRT-<version>-<algorithm>` header".into(),
                ))
            }
        };
        check_header(header).map_err(|d| bad(1, d))?;
        let mut table = CalibrationTable::new(header);
        for (n, line) in lines {
            if line.trim().is_empty() {
                continue;
            }
            let (name, hex) = line
                .rsplit_once(": ")
                .ok_or_else(|| bad(n, format!("expected `tensor: <hex scale>`, found {line:?}")))?;
            let hex = hex.trim();
            if name.is_empty() {
                return Err(bad(n, "empty tensor name".into()));
            }
            if hex.is_empty() || hex.len() > 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad(
                    n,
                    format!("tensor `{name}`: scale `{hex}` is not 1 to 8 hex digits"),
                ));
            }
            let bits = u32::from_str_radix(hex, 16)
                .map_err(|e| bad(n, format!("tensor `{name}`: {e}")))?;
            let scale = f32::from_bits(bits);
            check_scale(scale).map_err(|d| bad(n, format!("tensor `{name}`: {d}")))?;
            if table.scales.insert(name.to_string(), scale).is_some() {
                return Err(bad(n, format!("tensor `{name}` appears twice")));
            }
        }
        Ok(table)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let text = self.to_text()?;
        std::fs::write(path, text).map_err(|io| QuantError::Io {
            action: "write",
            path: path.display().to_string(),
            io,
        })
    }

    pub fn load(path: &Path) -> Result<Self> {
        let f = std::fs::File::open(path).map_err(|io| QuantError::Io {
            action: "open",
            path: path.display().to_string(),
            io,
        })?;
        Self::read_from(std::io::BufReader::new(f))
    }
}

/// `TRT-<version>-<Algorithm>` or `TRTC-<version>-<Algorithm>`, no spaces.
fn check_header(h: &str) -> std::result::Result<(), String> {
    let parts: Vec<&str> = h.splitn(3, '-').collect();
    let ok = matches!(parts.as_slice(), [p, v, a]
        if (*p == "TRT" || *p == "TRTC") && !v.is_empty() && !a.is_empty())
        && !h.contains(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "header {h:?} is not `TRT-<version>-<algorithm>` (or `TRTC-...`)"
        ))
    }
}

fn check_scale(s: f32) -> std::result::Result<(), String> {
    if s.is_finite() && s >= 0.0 {
        Ok(())
    } else {
        Err(format!("scale {s} is not a finite non-negative number"))
    }
}
