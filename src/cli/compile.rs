use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;
use trtc::backend::shapes::parse_profile;
use trtc::backend::{
    compile, tune, tune_profiles, BackendChoice, CompileOptions, InputFormat, Layout, Precision,
};
use trtc::preprocess::parse_triple;

#[derive(Args, Debug)]
pub struct CompileArgs {
    /// An ONNX model.
    pub model: PathBuf,
    /// Where to write the plan (`.trtc`).
    #[arg(short, long)]
    pub output: PathBuf,
    /// fp32, tf32 or fp16 (for GPU engines).
    #[arg(long, default_value = "fp32")]
    pub precision: Precision,
    /// GPU segments of fewer nodes (counted after fusion) run on the CPU.
    #[arg(long, default_value_t = 3)]
    pub min_segment_size: usize,
    /// Largest batch the plan accepts.
    #[arg(long, default_value_t = 1)]
    pub max_batch_size: usize,
    /// Scratch memory any one layer may use, in bytes.
    #[arg(long, default_value_t = 1 << 30)]
    pub workspace: u64,
    /// Engines (and CPU plans) kept per segment, one per input shape.
    #[arg(long, default_value_t = 1)]
    pub max_cached_engines: usize,
    /// Force an op onto the CPU (repeatable).
    #[arg(long = "deny-op", value_name = "OP")]
    pub deny_ops: Vec<String>,
    /// Leave an optimizer pass out (repeatable; `trtc optimize --passes help` lists them).
    #[arg(long = "skip-pass", value_name = "PASS")]
    pub skip_passes: Vec<String>,
    /// A dynamic model: build a new input shape's engines in the background and run its
    /// requests on the CPU meanwhile, instead of waiting (stored in the plan).
    #[arg(long)]
    pub build_in_background: bool,
    /// auto, cuda or cpu.
    #[arg(long, default_value = "auto")]
    pub backend: BackendChoice,
    /// Layout of 4-D tensors inside GPU engines: auto (NHWC for fp16, NCHW otherwise),
    /// nchw or nhwc.
    #[arg(long, default_value = "auto")]
    pub layout: Layout,
    /// What the image input takes: f32-nchw (the model's own input), or u8-nhwc (8-bit
    /// pixels [N,H,W,3], normalized inside the model with --mean and --std).
    #[arg(long, default_value = "f32-nchw", value_parser = InputFormat::parse)]
    pub input_format: InputFormat,
    /// With --input-format u8-nhwc: mean subtracted from each pixel (0-255), one value or
    /// three comma-separated [default: 127, as `trtc run --image`].
    #[arg(long)]
    pub mean: Option<String>,
    /// With --input-format u8-nhwc: divisor after the mean (0-255 units), one value or
    /// three comma-separated [default: 128, as `trtc run --image`].
    #[arg(long)]
    pub std: Option<String>,
    /// Input shapes to build engines for now, for a model with dynamic dims past the
    /// batch (as `trtexec --shapes`): `NAME:1x3x640x640`, inputs of one profile joined by
    /// `,`; repeatable, one profile each. Other shapes get their engines when they first
    /// arrive at run time.
    #[arg(long = "shapes", value_name = "NAME:DIMS[,NAME:DIMS]")]
    pub shapes: Vec<String>,
    /// Write the compile report as JSON.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Write the partitioned graph as DOT.
    #[arg(long)]
    pub dot: Option<PathBuf>,
}

/// The input format with `--mean` and `--std` applied (only u8-nhwc takes them).
fn input_format(a: &CompileArgs) -> Result<InputFormat> {
    match a.input_format {
        InputFormat::U8Nhwc { mut mean, mut std } => {
            if let Some(m) = &a.mean {
                mean = parse_triple(m).context("--mean")?;
            }
            if let Some(s) = &a.std {
                std = parse_triple(s).context("--std")?;
            }
            if std.contains(&0.0) {
                bail!("--std {std:?}: a channel's std is 0");
            }
            Ok(InputFormat::U8Nhwc { mean, std })
        }
        InputFormat::F32Nchw if a.mean.is_some() || a.std.is_some() => {
            bail!("--mean and --std go with --input-format u8-nhwc (the f32 input is normalized already)")
        }
        f => Ok(f),
    }
}

pub fn compile_cmd(a: CompileArgs) -> Result<()> {
    let opts = CompileOptions {
        input_format: input_format(&a)?,
        precision: a.precision,
        min_segment_size: a.min_segment_size,
        max_batch_size: a.max_batch_size.max(1),
        workspace_bytes: a.workspace,
        max_cached_engines: a.max_cached_engines.max(1),
        deny_ops: a.deny_ops.clone(),
        skip_passes: a.skip_passes.clone(),
        build_in_background: a.build_in_background,
        backend: a.backend,
        layout: a.layout,
    };
    let g = super::load(&a.model)?;
    let profiles = a
        .shapes
        .iter()
        .map(|spec| parse_profile(&g, spec).with_context(|| format!("--shapes {spec}")))
        .collect::<Result<Vec<_>>>()?;
    let mut plan =
        compile(&a.model.display().to_string(), g, &opts, trtc::gpu()).context("compiling")?;
    print!("{}", plan.report.optimizer);
    let keys = tune_profiles(&mut plan, &profiles, trtc::gpu()).context("--shapes")?;
    print!("{}", plan.report);
    if !keys.is_empty() {
        println!("engines prepared for input shapes {}", keys.join("; "));
    }
    // GPU engines time their tactics now, at batch 1 and the largest batch, and the plan
    // keeps them: loading it does not time again.
    let mut batches = vec![1, opts.max_batch_size];
    batches.dedup();
    let tuned = tune(&mut plan, &batches, trtc::gpu()).context("timing GPU tactics")?;
    if !tuned.is_empty() {
        println!(
            "GPU tactics timed for batch sizes {tuned:?}, stored for {} engine(s)",
            plan.engines.len()
        );
    }
    plan.write(&a.output)?;
    println!("wrote {}", a.output.display());
    if let Some(path) = &a.report {
        std::fs::write(path, serde_json::to_string_pretty(&plan.report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &a.dot {
        std::fs::write(
            path,
            trtc::backend::dot::plan_to_dot(&plan, &a.model.display().to_string()),
        )
        .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
