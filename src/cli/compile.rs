use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;
use trtc::backend::shapes::parse_profile;
use trtc::backend::{
    compile, compile_int8_with, tune, tune_profiles, BackendChoice, CompileOptions, InputFormat,
    Layout, Precision, INT8_NEEDS_TABLE,
};
use trtc::preprocess::{parse_triple, Preprocess};

#[derive(Args, Debug)]
pub struct CompileArgs {
    /// An ONNX model.
    pub model: PathBuf,
    /// Where to write the plan (`.trtc`).
    #[arg(short, long)]
    pub output: PathBuf,
    /// fp32, tf32, fp16 or int8 (for GPU engines). int8 needs --calibration-data or
    /// --calibration-cache: the optimized graph is calibrated and its quantizable layers
    /// get QuantizeLinear/DequantizeLinear (INT8 weights, per tensor for dense convs).
    #[arg(long, default_value = "fp32")]
    pub precision: Precision,
    #[command(flatten)]
    pub calibration: super::table_source::CalibrationArgs,
    /// With --precision int8: images per calibration batch (default: the model's fixed
    /// batch, else 1).
    #[arg(long, value_name = "B")]
    pub batch: Option<usize>,
    /// With --precision int8: held-out images or .npy batches (not the calibration data)
    /// for the accuracy guard: the INT8 model (as the GPU computes it, simulated on the CPU)
    /// is compared with the float one on them, and while --accuracy-tolerance fails the
    /// most sensitive layers stay in float (FP16 on the GPU); the report names them.
    #[arg(long, num_args = 1.., value_name = "DIR_OR_NPY")]
    pub guard_data: Vec<PathBuf>,
    /// What the guard keeps: top1:F (the share of samples with the float model's top-1,
    /// classifiers) or rel:F (mean over samples of max |y - y_f32| / max |y_f32|).
    #[arg(long, default_value = "top1:0.99", value_name = "top1:F|rel:F")]
    pub accuracy_tolerance: trtc::quant::Tolerance,
    /// Held-out batches the guard measures on, at most.
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub guard_batches: usize,
    /// With --calibration-data: centre-crop size of the calibration images.
    #[arg(long, default_value_t = 224)]
    pub size: u32,
    /// With --calibration-data: the images' shorter side is resized to this first.
    #[arg(long, default_value_t = 256)]
    pub resize: u32,
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
    /// With --input-format u8-nhwc, or the calibration images of --precision int8: mean
    /// subtracted from each pixel (0-255), one value or three comma-separated [default:
    /// 127, as `trtc run --image`].
    #[arg(long)]
    pub mean: Option<String>,
    /// With --input-format u8-nhwc, or the calibration images of --precision int8: divisor
    /// after the mean (0-255 units), one value or three comma-separated [default: 128, as
    /// `trtc run --image`].
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
        InputFormat::F32Nchw
            if (a.mean.is_some() || a.std.is_some())
                && a.calibration.calibration_data.is_empty() =>
        {
            bail!("--mean and --std go with --input-format u8-nhwc (the f32 input is normalized already)")
        }
        f => Ok(f),
    }
}

/// Where `--precision int8` takes its calibration table from; `None` for another
/// precision (which takes no calibration flag).
fn table_source(a: &CompileArgs) -> Result<Option<super::table_source::TableSource>> {
    table_source_of(
        a.precision == Precision::Int8,
        a.input_format,
        &CalibrationFlags {
            args: &a.calibration,
            batch: a.batch,
            size: a.size,
            resize: a.resize,
            mean: a.mean.as_deref(),
            std: a.std.as_deref(),
        },
        INT8_NEEDS_TABLE,
    )
}

/// The image preprocessing of `--size`, `--resize`, `--mean` and `--std` (mean 127 and
/// std 128 by default, as `trtc run --image`).
pub(super) fn preprocess_of(
    size: u32,
    resize: u32,
    mean: Option<&str>,
    std: Option<&str>,
) -> Result<Preprocess> {
    let triple = |v: Option<&str>, default: &str, flag: &str| {
        parse_triple(v.unwrap_or(default)).with_context(|| flag.to_string())
    };
    Ok(Preprocess {
        size,
        resize,
        mean: triple(mean, "127", "--mean")?,
        std: triple(std, "128", "--std")?,
    })
}

/// The INT8 calibration flags as given (`trtc compile`'s, and `trtc bench`'s).
pub(super) struct CalibrationFlags<'a> {
    pub args: &'a super::table_source::CalibrationArgs,
    pub batch: Option<usize>,
    pub size: u32,
    pub resize: u32,
    pub mean: Option<&'a str>,
    pub std: Option<&'a str>,
}

/// Where an INT8 compile (`int8`) takes its calibration table from, checked (`missing`:
/// the error without data or cache); `None` when not INT8 (then no calibration flag may
/// be given).
pub(super) fn table_source_of(
    int8: bool,
    input_format: InputFormat,
    f: &CalibrationFlags,
    missing: &str,
) -> Result<Option<super::table_source::TableSource>> {
    if !int8 {
        if !f.args.calibration_data.is_empty() || f.args.calibration_cache.is_some() {
            bail!("--calibration-data and --calibration-cache go with --precision int8");
        }
        return Ok(None);
    }
    if matches!(input_format, InputFormat::U8Nhwc { .. }) {
        bail!("--precision int8 with --input-format u8-nhwc is not supported yet (calibration feeds f32 images)");
    }
    let source = super::table_source::TableSource {
        data: f.args.calibration_data.clone(),
        cache: f.args.calibration_cache.clone(),
        calibrator: f.args.calibrator,
        batches: f.args.calibration_batches,
        batch: f.batch,
        preprocess: preprocess_of(f.size, f.resize, f.mean, f.std)?,
        notes: Default::default(),
    };
    source.check(missing)?;
    Ok(Some(source))
}

pub fn compile_cmd(a: CompileArgs) -> Result<()> {
    let int8 = table_source(&a)?;
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
    let name = a.model.display().to_string();
    let guard = match (&int8, a.guard_data.is_empty()) {
        (_, true) => None,
        (None, false) => bail!("--guard-data goes with --precision int8"),
        (Some(_), false) => Some(super::table_source::GuardSource {
            data: a.guard_data.clone(),
            batches: a.guard_batches,
            tolerance: a.accuracy_tolerance,
        }),
    };
    let mut plan = match &int8 {
        None => compile(&name, g, &opts, trtc::gpu()),
        Some(source) => compile_int8_with(&name, g, &opts, trtc::gpu(), |g| {
            source.int8_table(g, guard.as_ref()).map_err(Into::into)
        }),
    }
    .context("compiling")?;
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
