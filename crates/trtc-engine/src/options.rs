//! What an engine build is asked for: element type, tensor layout, scratch limits.

use serde::{Deserialize, Serialize};

/// The element type an engine computes in.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    Fp32,
    Tf32,
    Fp16,
    /// FP16 engines whose explicitly quantized layers (QuantizeLinear/DequantizeLinear
    /// around them, inserted from a calibration table) run in INT8 where an INT8 kernel
    /// takes them.
    Int8,
}

impl Precision {
    /// Whether engines of this precision compute in fp16 (INT8 engines are fp16 between
    /// their INT8 layers).
    pub fn is_half(self) -> bool {
        matches!(self, Precision::Fp16 | Precision::Int8)
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "fp32" => Ok(Precision::Fp32),
            "tf32" => Ok(Precision::Tf32),
            "fp16" => Ok(Precision::Fp16),
            "int8" => Ok(Precision::Int8),
            _ => Err(format!("unknown precision `{s}` (fp32, tf32, fp16, int8)")),
        }
    }
}

/// How GPU engines store 4-D tensors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// NHWC for fp16 and int8 (what tensor-core convolutions read), NCHW for fp32 and tf32
    /// (cuDNN's fastest fp32 kernels on the models measured in `benches/RESULTS.md`).
    #[default]
    Auto,
    Nchw,
    Nhwc,
}

impl Layout {
    /// Whether engines of this precision store 4-D tensors NHWC.
    pub fn nhwc_for(self, precision: Precision) -> bool {
        match self {
            Layout::Auto => precision.is_half(),
            Layout::Nchw => false,
            Layout::Nhwc => true,
        }
    }
}

impl std::str::FromStr for Layout {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Layout::Auto),
            "nchw" => Ok(Layout::Nchw),
            "nhwc" => Ok(Layout::Nhwc),
            _ => Err(format!("unknown layout `{s}` (auto, nchw, nhwc)")),
        }
    }
}

/// What a segment's engine is built for (the engine-facing part of the compile options).
#[derive(Clone, Debug, PartialEq)]
pub struct EngineOptions {
    pub precision: Precision,
    pub layout: Layout,
    /// Scratch memory any one layer of an engine may use.
    pub workspace_bytes: u64,
    /// Instances (one per input shape) an engine keeps.
    pub max_cached_engines: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            precision: Precision::Fp32,
            layout: Layout::Auto,
            workspace_bytes: 1 << 30,
            max_cached_engines: 1,
        }
    }
}
