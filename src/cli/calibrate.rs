//! `trtc calibrate`: INT8 post-training calibration of an ONNX model on sample data, written
//! as a TensorRT-format calibration cache (tensor names as in the model).
//!
//! The data rule: each `--calibration-data` path is a directory (its `.png`, `.jpg`, `.jpeg`
//! and `.npy` files, by name; other files are skipped), an image, or a `.npy` file. Images,
//! preprocessed exactly as `trtc run --image` does with the same flags, form batches of
//! `--batch` in the order given; each `.npy` file is one batch as it is. A model whose
//! batch dimension is fixed takes that batch (another `--batch` is an error) and a last
//! partial batch of images is dropped with a warning. `--calibration-batches N` keeps the
//! first N batches.

use super::image_args::ImageArgs;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use trtc::ir::{Dim, Tensor, TensorInfo};
use trtc::preprocess::images_to_batch;
use trtc::quant::{CalibrationTable, Calibrator, Collector, Tolerance};

#[derive(Args, Debug)]
pub struct CalibrateArgs {
    /// The ONNX model (one input).
    pub model: PathBuf,
    /// Directories of images (.png, .jpg, .jpeg) and .npy batches, images, or .npy files.
    #[arg(long, num_args = 1.., value_name = "DIR_OR_NPY", required_unless_present_any = ["from_qdq", "calibration_cache"])]
    pub calibration_data: Vec<PathBuf>,
    /// entropy (TensorRT's EntropyCalibration2), minmax, percentile (99.99) or percentile:P.
    #[arg(long, default_value = "entropy")]
    pub calibrator: Calibrator,
    /// Use at most this many batches (default: all the data).
    #[arg(long, value_name = "N")]
    pub calibration_batches: Option<usize>,
    /// Images per batch (default: the model's fixed batch, else 1).
    #[arg(long, value_name = "B")]
    pub batch: Option<usize>,
    /// Where to write the calibration cache.
    #[arg(short, long, required_unless_present = "calibration_cache")]
    pub output: Option<PathBuf>,
    /// A TensorRT-format calibration cache: read instead of calibrating when the file
    /// exists (no data needed; its tensor names must be the model's), else calibrated
    /// and written there (as TensorRT's calibrators use `readCalibrationCache`).
    #[arg(long, value_name = "FILE", conflicts_with = "from_qdq")]
    pub calibration_cache: Option<PathBuf>,
    /// Write the scales of the model's own QuantizeLinear/DequantizeLinear nodes instead
    /// of calibrating (no data needed).
    #[arg(long, conflicts_with_all = ["calibration_data", "calibration_batches", "batch"])]
    pub from_qdq: bool,
    /// Also write the model with the calibrated scales applied as QuantizeLinear /
    /// DequantizeLinear pairs and per-channel INT8 weights (an explicitly quantized ONNX
    /// model; on tract it runs INT8 simulated in f32).
    #[arg(long, value_name = "OUT.onnx", conflicts_with = "from_qdq")]
    pub write_qdq: Option<PathBuf>,
    /// With --write-qdq: held-out images or .npy batches (not the calibration data) to
    /// check the quantized model against f32 on (the accuracy guard): while
    /// --accuracy-tolerance fails, the most sensitive layers stay f32.
    #[arg(long, num_args = 1.., value_name = "DIR_OR_NPY", requires = "write_qdq")]
    pub guard_data: Vec<PathBuf>,
    /// What the guard keeps: top1:F (the share of samples with f32's top-1, classifiers)
    /// or rel:F (mean over samples of max |y - y_f32| / max |y_f32|).
    #[arg(long, default_value = "top1:0.99", value_name = "top1:F|rel:F")]
    pub accuracy_tolerance: Tolerance,
    /// Held-out batches the guard measures on, at most.
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub guard_batches: usize,
    #[command(flatten)]
    pub preprocess: ImageArgs,
}

/// One batch to feed: images to preprocess together, or a `.npy` file.
pub(super) enum Batch {
    Images(Vec<PathBuf>),
    Npy(PathBuf),
}

impl Batch {
    pub(super) fn describe(&self) -> String {
        match self {
            Batch::Images(p) if p.len() == 1 => p[0].display().to_string(),
            Batch::Images(p) => format!(
                "{} images from {}",
                p.len(),
                p.first()
                    .map(|f| f.display().to_string())
                    .unwrap_or_default()
            ),
            Batch::Npy(p) => p.display().to_string(),
        }
    }
}

fn extension(p: &Path) -> String {
    p.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

fn is_image(p: &Path) -> bool {
    matches!(extension(p).as_str(), "png" | "jpg" | "jpeg")
}

/// The images and `.npy` files the paths name (see the module rule); errors call them
/// `what` ("calibration data", "--image").
pub(super) fn gather(paths: &[PathBuf], what: &str) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let (mut images, mut npys) = (vec![], vec![]);
    for path in paths {
        let meta = std::fs::metadata(path).with_context(|| format!("{what} {}", path.display()))?;
        if meta.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("reading {what} directory {}", path.display()))?
                .map(|e| e.map(|e| e.path()))
                .collect::<std::io::Result<_>>()
                .with_context(|| format!("reading {what} directory {}", path.display()))?;
            files.sort();
            let before = images.len() + npys.len();
            for f in files.into_iter().filter(|f| f.is_file()) {
                if is_image(&f) {
                    images.push(f);
                } else if extension(&f) == "npy" {
                    npys.push(f);
                } else {
                    tracing::debug!("skipping {} (not an image or .npy)", f.display());
                }
            }
            if images.len() + npys.len() == before {
                bail!(
                    "no images (.png, .jpg, .jpeg) or .npy files in {what} directory {}",
                    path.display()
                );
            }
        } else if is_image(path) {
            images.push(path.clone());
        } else if extension(path) == "npy" {
            npys.push(path.clone());
        } else {
            bail!(
                "{what} {}: not a directory, an image (.png, .jpg, .jpeg) or a .npy file",
                path.display()
            );
        }
    }
    Ok((images, npys))
}

/// The batch size: `--batch`, or the model's fixed batch, or 1. Also whether it is fixed.
fn batch_size(input: &TensorInfo, given: Option<usize>) -> Result<(usize, bool)> {
    let fixed = match input.shape.as_deref().and_then(|s| s.first()) {
        Some(Dim::Known(n)) => Some(*n as usize),
        _ => None,
    };
    match (given, fixed) {
        (Some(0), _) => bail!("--batch must be at least 1"),
        (Some(b), Some(n)) if b != n => bail!(
            "--batch {b}: model input `{}` ({}) takes batches of exactly {n}",
            input.name,
            input.describe()
        ),
        (Some(b), f) => Ok((b, f.is_some())),
        (None, Some(n)) => Ok((n.max(1), true)),
        (None, None) => Ok((1, false)),
    }
}

fn batches(a: &CalibrateArgs, input: &TensorInfo) -> Result<Vec<Batch>> {
    batches_of(&a.calibration_data, a.calibration_batches, a.batch, input)
}

/// The batches `data` makes (at most `limit`), of `batch` images each.
pub(super) fn batches_of(
    data: &[PathBuf],
    limit: Option<usize>,
    batch: Option<usize>,
    input: &TensorInfo,
) -> Result<Vec<Batch>> {
    let (images, npys) = gather(data, "calibration data")?;
    let (size, fixed) = batch_size(input, batch)?;
    let mut out: Vec<Batch> = images
        .chunks(size)
        .map(|c| Batch::Images(c.to_vec()))
        .collect();
    if fixed && images.len() % size != 0 {
        out.pop();
        tracing::warn!(
            "the last {} image(s) are left out: model input `{}` takes batches of exactly {size}",
            images.len() % size,
            input.name
        );
    }
    out.extend(npys.into_iter().map(Batch::Npy));
    if let Some(n) = limit {
        if n == 0 {
            bail!("a batch count must be at least 1");
        }
        if n > out.len() {
            tracing::warn!("{n} batches asked: the data makes only {}", out.len());
        }
        out.truncate(n);
    }
    if out.is_empty() {
        bail!("no batch: {} image(s) for batches of {size}", images.len());
    }
    Ok(out)
}

pub fn calibrate(a: CalibrateArgs) -> Result<()> {
    let cached = a.calibration_cache.as_ref().filter(|p| p.exists());
    if let Some(out) = &a.output {
        check_output(out).context("-o")?;
    }
    if let (Some(cache), None) = (&a.calibration_cache, cached) {
        check_output(cache).context("--calibration-cache")?;
    }
    if let Some(q) = &a.write_qdq {
        check_output(q).context("--write-qdq")?;
    }
    let graph = super::load(&a.model)?;
    if a.from_qdq {
        let table = trtc::quant::scales_from_qdq(&graph)
            .with_context(|| format!("reading the Q/DQ scales of {}", a.model.display()))?;
        if table.scales.is_empty() {
            bail!(
                "{} has no QuantizeLinear/DequantizeLinear node on an activation",
                a.model.display()
            );
        }
        let out = a.output.as_ref().context("--from-qdq needs -o")?;
        return write(&table, out, Notes::Stdout);
    }
    let mut collector = Collector::new(&graph).context("preparing the model for calibration")?;
    let input = match collector.inputs() {
        [one] => one.clone(),
        many => bail!(
            "calibration feeds one input; {} has {}",
            a.model.display(),
            many.len()
        ),
    };
    let preprocess = a.preprocess.preprocess()?;
    let dtype = input.dtype.unwrap_or(trtc::ir::DType::F32);
    let table = match cached {
        Some(path) => read_cache(path, &graph, Notes::Stdout)?,
        None => {
            if a.calibration_data.is_empty() {
                bail!(
                    "no --calibration-data, and no calibration cache at {}",
                    a.calibration_cache
                        .as_deref()
                        .unwrap_or(Path::new("(none)"))
                        .display()
                );
            }
            let batches = batches(&a, &input)?;
            let table = run_calibration(
                &mut collector,
                &batches,
                &preprocess,
                dtype,
                a.calibrator,
                Notes::Stdout,
            )?;
            if let Some(path) = &a.calibration_cache {
                write(&table, path, Notes::Stdout)?;
            }
            table
        }
    };
    if let Some(out) = &a.output {
        write(&table, out, Notes::Stdout)?;
    }
    if let Some(path) = &a.write_qdq {
        let q = if a.guard_data.is_empty() {
            quantized(&graph, &table)?
        } else {
            let samples =
                guard_samples(&a.guard_data, a.guard_batches, a.batch, &input, &preprocess)?;
            guarded(&graph, &table, &samples, a.accuracy_tolerance)?
        };
        write_qdq(&q, path)?;
    }
    Ok(())
}

/// Where calibration's progress lines go: stdout, or stderr where stdout carries JSON
/// (`trtc bench --json`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Notes {
    #[default]
    Stdout,
    Stderr,
}

impl Notes {
    pub(super) fn say(self, line: std::fmt::Arguments) {
        match self {
            Notes::Stdout => println!("{line}"),
            Notes::Stderr => eprintln!("{line}"),
        }
    }
}

/// Feed every batch through the collector, with a progress bar, and compute the table.
pub(super) fn run_calibration(
    collector: &mut Collector,
    batches: &[Batch],
    preprocess: &trtc::preprocess::Preprocess,
    dtype: trtc::ir::DType,
    calibrator: Calibrator,
    notes: Notes,
) -> Result<CalibrationTable> {
    let progress = trtc::engine::progress::start("calibrating", batches.len() as u64);
    let mut images = 0;
    for (i, b) in batches.iter().enumerate() {
        progress.message(&b.describe());
        let context = || format!("calibration batch {} ({})", i + 1, b.describe());
        if let Batch::Images(paths) = b {
            images += paths.len();
        }
        let tensor = load(b, preprocess, dtype).with_context(context)?;
        collector.observe(vec![tensor]).with_context(context)?;
        progress.advance(1);
    }
    drop(progress);
    let table = collector.table(calibrator)?;
    notes.say(format_args!(
        "calibrated {} tensors with {} over {} batch(es) ({} image(s))",
        table.scales.len(),
        calibrator,
        batches.len(),
        images
    ));
    Ok(table)
}

/// A calibration cache read instead of calibrating: every tensor it names must be one of
/// the model's (else it was made for another model).
pub(super) fn read_cache(
    path: &Path,
    graph: &trtc::ir::Graph,
    notes: Notes,
) -> Result<CalibrationTable> {
    let what = || format!("calibration cache {}", path.display());
    let text = std::fs::read_to_string(path).with_context(what)?;
    let table = CalibrationTable::parse(&text).with_context(what)?;
    let names = graph.tensor_names();
    let unknown: Vec<&str> = table
        .scales
        .keys()
        .filter(|n| !names.contains_key(n.as_str()))
        .map(|n| n.as_str())
        .collect();
    if !unknown.is_empty() {
        bail!(
            "{}: {} of its {} tensors are not in the model (made for another model?): {}",
            what(),
            unknown.len(),
            table.scales.len(),
            unknown
                .iter()
                .take(3)
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    notes.say(format_args!(
        "read {} tensor scales ({}) from {}: calibration skipped",
        table.scales.len(),
        table.algorithm,
        path.display()
    ));
    Ok(table)
}

/// The accuracy guard's held-out samples (`--guard-data`): at most `limit` batches of
/// `batch` images (or `.npy` files), each the model's one input.
pub(super) fn guard_samples(
    data: &[PathBuf],
    limit: usize,
    batch: Option<usize>,
    input: &TensorInfo,
    preprocess: &trtc::preprocess::Preprocess,
) -> Result<Vec<Vec<Tensor>>> {
    let dtype = input.dtype.unwrap_or(trtc::ir::DType::F32);
    batches_of(data, Some(limit), batch, input)
        .context("--guard-data")?
        .iter()
        .map(|b| {
            load(b, preprocess, dtype)
                .map(|t| vec![t])
                .with_context(|| format!("guard batch {}", b.describe()))
        })
        .collect()
}

/// One batch as the model's input tensor.
pub(super) fn load(
    b: &Batch,
    preprocess: &trtc::preprocess::Preprocess,
    dtype: trtc::ir::DType,
) -> Result<Tensor> {
    Ok(match b {
        Batch::Images(paths) => images_to_batch(paths, preprocess)?,
        Batch::Npy(path) => trtc::npy::read_npy(path, dtype)?,
    })
}

/// The accuracy guard (`trtc::quant::guard_with`, the Q/DQ of `opts`) on the held-out
/// samples, with a progress bar: the QDQ model that keeps the tolerance, what its insertion
/// did, the guard's report, and its summary (printed).
pub(super) fn run_guard(
    graph: &trtc::ir::Graph,
    table: &CalibrationTable,
    samples: &[Vec<Tensor>],
    tol: Tolerance,
    opts: &trtc::quant::QdqOptions,
) -> Result<(
    trtc::ir::Graph,
    trtc::quant::QdqReport,
    trtc::quant::GuardReport,
    String,
)> {
    let mut progress = None;
    let (q, qdq, report) = trtc::quant::guard_with(graph, table, samples, tol, opts, |_, total| {
        progress
            .get_or_insert_with(|| trtc::engine::progress::start("layer sensitivity", total as u64))
            .advance(1);
    })
    .context("the accuracy guard")?;
    drop(progress);
    let most: Vec<String> = report
        .sensitivity
        .iter()
        .take(3)
        .map(|s| format!("{} ({:.3})", s.layer, s.rel_err))
        .collect();
    let summary = format!(
        "{tol:?} on {} held-out batch(es): fully INT8 {:.4}, returned {:.4}, {}; most \
         sensitive: {}; kept in float: {}",
        samples.len(),
        report.before,
        report.after,
        if report.met { "met" } else { "NOT met" },
        most.join(", "),
        if report.demoted.is_empty() {
            "none".to_string()
        } else {
            report.demoted.join(", ")
        }
    );
    println!("accuracy guard, {summary}");
    Ok((q, qdq, report, summary))
}

/// The accuracy guard with `trtc calibrate`'s Q/DQ (per-channel weights): the QDQ model
/// that keeps the tolerance.
fn guarded(
    graph: &trtc::ir::Graph,
    table: &CalibrationTable,
    samples: &[Vec<Tensor>],
    tol: Tolerance,
) -> Result<(trtc::ir::Graph, trtc::quant::QdqReport)> {
    let opts = trtc::quant::QdqOptions::default();
    let (q, qdq, _, _) = run_guard(graph, table, samples, tol, &opts)?;
    Ok((q, qdq))
}

/// The model with `table`'s scales as Q/DQ pairs (`trtc::quant::insert_qdq`).
fn quantized(
    graph: &trtc::ir::Graph,
    table: &CalibrationTable,
) -> Result<(trtc::ir::Graph, trtc::quant::QdqReport)> {
    let (q, report) = trtc::quant::insert_qdq(graph, table)
        .context("inserting QuantizeLinear/DequantizeLinear")?;
    if !report.unscaled.is_empty() {
        tracing::warn!(
            "{} tensor(s) read by Conv/Gemm/MatMul have no scale and stay f32: {}",
            report.unscaled.len(),
            report.unscaled.join(", ")
        );
    }
    Ok((q, report))
}

/// The QDQ model, as ONNX.
fn write_qdq(q: &(trtc::ir::Graph, trtc::quant::QdqReport), path: &Path) -> Result<()> {
    use prost::Message;
    let (q, report) = q;
    let proto = trtc::ir::to_model_proto(q).context("exporting the QDQ model")?;
    std::fs::write(path, proto.encode_to_vec())
        .with_context(|| format!("writing {}", path.display()))?;
    println!(
        "wrote the QDQ model ({} weights per-channel INT8, {} activations quantized) to {}",
        report.weights,
        report.activations,
        path.display()
    );
    Ok(())
}

/// Fail before calibrating, not after, when the cache cannot be written there.
pub(super) fn check_output(path: &Path) -> Result<()> {
    if path.is_dir() {
        bail!("{}: is a directory", path.display());
    }
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => {
            bail!(
                "{}: directory {} does not exist",
                path.display(),
                dir.display()
            )
        }
        _ => Ok(()),
    }
}

pub(super) fn write(table: &CalibrationTable, path: &Path, notes: Notes) -> Result<()> {
    table.save(path).context("writing the calibration cache")?;
    notes.say(format_args!(
        "wrote {} scales ({}) to {}",
        table.scales.len(),
        table.algorithm,
        path.display()
    ));
    Ok(())
}
