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

/// What the compiled model's image input takes (`trtc compile --input-format`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case", tag = "format")]
pub enum InputFormat {
    /// The model's inputs as they are (a normalized f32 NCHW image).
    #[default]
    F32Nchw,
    /// The 4-D, 3-channel image input takes 8-bit pixels `[N, H, W, 3]`, normalized inside
    /// the model as `(float(p) - mean[c]) / std[c]` (0-255 units, as `trtc run --image`
    /// normalizes): `trtc_ir::pixels::u8_nhwc_input`. 4x fewer bytes to the GPU.
    U8Nhwc { mean: [f32; 3], std: [f32; 3] },
}

impl InputFormat {
    /// Mean and std of `trtc run --image` (`trtc::preprocess::Preprocess::default`).
    pub const DEFAULT_MEAN: [f32; 3] = [127.0; 3];
    pub const DEFAULT_STD: [f32; 3] = [128.0; 3];

    /// `f32-nchw` or `u8-nhwc` (with the default mean and std).
    pub fn parse(s: &str) -> Result<InputFormat, String> {
        match s.to_ascii_lowercase().as_str() {
            "f32-nchw" => Ok(InputFormat::F32Nchw),
            "u8-nhwc" => Ok(InputFormat::U8Nhwc {
                mean: Self::DEFAULT_MEAN,
                std: Self::DEFAULT_STD,
            }),
            _ => Err(format!("unknown input format `{s}` (f32-nchw, u8-nhwc)")),
        }
    }

    /// `f32-nchw`, or `u8-nhwc (mean [..], std [..])`.
    pub fn describe(&self) -> String {
        match self {
            InputFormat::F32Nchw => "f32-nchw".into(),
            InputFormat::U8Nhwc { mean, std } => {
                format!("u8-nhwc (mean {mean:?}, std {std:?})")
            }
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
    /// What the image input takes: applied to the graph before optimization, so the plan's
    /// model has the u8 input (plans written before this option load as `F32Nchw`).
    #[serde(default)]
    pub input_format: InputFormat,
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
            input_format: InputFormat::F32Nchw,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_formats_parse_and_old_options_load() {
        assert_eq!(InputFormat::parse("f32-nchw"), Ok(InputFormat::F32Nchw));
        assert_eq!(
            InputFormat::parse("U8-NHWC"),
            Ok(InputFormat::U8Nhwc {
                mean: [127.0; 3],
                std: [128.0; 3]
            })
        );
        assert!(InputFormat::parse("rgb").is_err());
        let mut json = serde_json::to_value(CompileOptions::default()).unwrap();
        json.as_object_mut().unwrap().remove("input_format");
        let old: CompileOptions = serde_json::from_value(json).unwrap();
        assert_eq!(old.input_format, InputFormat::F32Nchw);
        let opts = CompileOptions {
            input_format: InputFormat::parse("u8-nhwc").unwrap(),
            ..Default::default()
        };
        let back: CompileOptions =
            serde_json::from_str(&serde_json::to_string(&opts).unwrap()).unwrap();
        assert_eq!(back, opts);
    }
}
