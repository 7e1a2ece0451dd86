//! Compile options, mirroring TF-TRT's conversion parameters.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    Fp32,
    Tf32,
    Fp16,
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "fp32" => Ok(Precision::Fp32),
            "tf32" => Ok(Precision::Tf32),
            "fp16" => Ok(Precision::Fp16),
            _ => Err(format!("unknown precision `{s}` (fp32, tf32, fp16)")),
        }
    }
}

/// Which engine backend GPU segments get.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// CUDA engines where a GPU and the builder are there, tract otherwise.
    Auto,
    /// CUDA engines, or an error.
    Cuda,
    /// No engines: the whole model runs on the CPU through tract.
    Cpu,
}

impl std::str::FromStr for BackendChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(BackendChoice::Auto),
            "cuda" => Ok(BackendChoice::Cuda),
            "cpu" => Ok(BackendChoice::Cpu),
            _ => Err(format!("unknown backend `{s}` (auto, cuda, cpu)")),
        }
    }
}

/// How GPU engines store 4-D tensors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// NHWC for fp16 (what tensor-core convolutions read), NCHW for fp32 and tf32
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
            Layout::Auto => precision == Precision::Fp16,
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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompileOptions {
    pub precision: Precision,
    /// Segments of fewer nodes than this run on the CPU. Nodes are counted after
    /// optimization: a fused Conv+BN+Relu counts as one (reports give both counts).
    pub min_segment_size: usize,
    pub max_batch_size: usize,
    /// Scratch memory any one layer of an engine may use.
    pub workspace_bytes: u64,
    /// Engines (and CPU plans) kept per segment, one per input shape.
    pub max_cached_engines: usize,
    /// Ops forced onto the CPU (a fused node containing one is too).
    pub deny_ops: Vec<String>,
    pub backend: BackendChoice,
    /// Layout of 4-D tensors inside GPU engines (segment inputs and outputs stay NCHW).
    #[serde(default)]
    pub layout: Layout,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            precision: Precision::Fp32,
            min_segment_size: 3,
            max_batch_size: 1,
            workspace_bytes: 1 << 30,
            max_cached_engines: 1,
            deny_ops: vec![],
            backend: BackendChoice::Auto,
            layout: Layout::Auto,
        }
    }
}
