//! Compile options, mirroring TF-TRT's conversion parameters.

use serde::{Deserialize, Serialize};

pub use trtc_engine::{EngineOptions, Layout, Precision};

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

/// The compile options, as TF-TRT's conversion parameters.
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
    /// Optimizer passes left out of the default pipeline (`--skip-pass`).
    #[serde(default)]
    pub skip_passes: Vec<String>,
    /// A dynamic model's new input shape: build its engines on a thread of their own and
    /// run the requests of that shape on the CPU meanwhile, instead of waiting.
    #[serde(default)]
    pub build_in_background: bool,
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
            skip_passes: vec![],
            build_in_background: false,
        }
    }
}

impl CompileOptions {
    /// The optimizer pipeline these options run: every pass but the skipped ones (an
    /// unknown name is an error listing the passes).
    pub fn pipeline(&self) -> trtc_optimizer::Result<trtc_optimizer::Pipeline> {
        for name in &self.skip_passes {
            trtc_optimizer::pass_by_name(name)?;
        }
        let names: Vec<&str> = trtc_optimizer::PASS_NAMES
            .iter()
            .copied()
            .filter(|n| !self.skip_passes.iter().any(|s| s == n))
            .collect();
        trtc_optimizer::Pipeline::from_names("default", &names)
    }

    /// What the segments' engines are built for.
    pub fn engine_options(&self) -> EngineOptions {
        EngineOptions {
            precision: self.precision,
            layout: self.layout,
            workspace_bytes: self.workspace_bytes,
            max_cached_engines: self.max_cached_engines,
        }
    }
}
