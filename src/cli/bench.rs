use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;
use trtc::backend::{compile, compile_int8, CompileOptions, HybridModel, Layout, Plan, Precision};
use trtc::ir::tract_onnx::prelude::{TValue, TVec};
use trtc::optimizer::verify::{random_inputs, random_inputs_of};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// An ONNX model (compiled first) or a `.trtc` plan.
    pub model: PathBuf,
    /// Batch sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub batch: Vec<usize>,
    /// Precisions, comma-separated (ONNX models only; a plan keeps its own). int8 needs
    /// --calibration-data or --calibration-cache, as `trtc compile --precision int8`.
    #[arg(long, value_delimiter = ',', default_value = "fp32")]
    pub precision: Vec<Precision>,
    #[command(flatten)]
    pub calibration: super::table_source::CalibrationArgs,
    /// Held-out images (not the calibration ones) for an accuracy column: each precision's
    /// top-1 against the FP32 model's (tract) on them, one image at a time (ONNX models
    /// with an f32 image input only).
    #[arg(long, num_args = 1.., value_name = "DIR_OR_IMAGES")]
    pub accuracy_data: Vec<PathBuf>,
    /// With --accuracy-data: at most this many images.
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub accuracy_images: usize,
    /// With --calibration-data or --accuracy-data: centre-crop size of the images.
    #[arg(long, default_value_t = 224)]
    pub size: u32,
    /// With --calibration-data or --accuracy-data: the images' shorter side is resized to
    /// this first.
    #[arg(long, default_value_t = 256)]
    pub resize: u32,
    /// With --calibration-data: mean subtracted from each pixel of the calibration images
    /// (0-255), one value or three comma-separated [default: 127, as `trtc run --image`].
    #[arg(long)]
    pub mean: Option<String>,
    /// With --calibration-data: divisor after the mean (0-255 units), one value or three
    /// comma-separated [default: 128, as `trtc run --image`].
    #[arg(long)]
    pub std: Option<String>,
    /// Timed runs per configuration (after 10 warm-up runs).
    #[arg(long, default_value_t = 50)]
    pub iterations: usize,
    /// Minimum segment size when compiling an ONNX model.
    #[arg(long, default_value_t = 3)]
    pub min_segment_size: usize,
    /// Layout of 4-D tensors inside GPU engines (ONNX models only): auto, nchw or nhwc.
    #[arg(long, default_value = "auto")]
    pub layout: Layout,
    /// What the image input takes when compiling an ONNX model: f32-nchw, or u8-nhwc (8-bit
    /// pixels normalized in the engine's first kernel, with `trtc run --image`'s default
    /// mean and std; `trtc compile --input-format` sets them). A plan keeps its own.
    #[arg(long, default_value = "f32-nchw", value_parser = trtc::backend::InputFormat::parse)]
    pub input_format: trtc::backend::InputFormat,
    /// Leave an optimizer pass out when compiling an ONNX model (repeatable).
    #[arg(long = "skip-pass", value_name = "PASS")]
    pub skip_passes: Vec<String>,
    /// Input shapes for a model with dynamic dims past the batch, `NAME:1x3x640x640`
    /// (inputs joined by `,`); the batch dim is replaced by each `--batch`.
    #[arg(long, value_name = "NAME:DIMS[,NAME:DIMS]")]
    pub shapes: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Also time each GPU layer once and compare it with its floor (FLOPs over
    /// `--peak-tflops`, bytes over `--peak-gbps`).
    #[arg(long)]
    pub profile: bool,
    /// With `--profile`: how many of the slowest layers to list.
    #[arg(long, default_value_t = 10)]
    pub slowest: usize,
    /// Arithmetic peak for the floor, TFLOP/s. Default: the H100 SXM's dense peak for the
    /// precision (fp32 67, tf32 495, fp16 989).
    #[arg(long)]
    pub peak_tflops: Option<f64>,
    /// Memory bandwidth for the floor, GB/s (default: H100 80GB, measured copy 3000; an
    /// H200's measured copy is about 4300).
    #[arg(long, default_value_t = 3000.0)]
    pub peak_gbps: f64,
}

fn print_profile(
    timings: &[(usize, trtc::backend::engine::LayerTiming)],
    a: &BenchArgs,
    batch: usize,
    precision: Precision,
) {
    let peak = a.peak_tflops.unwrap_or(match precision {
        Precision::Fp32 => 67.0,
        Precision::Tf32 => 495.0,
        Precision::Fp16 => 989.0,
        Precision::Int8 => 1979.0,
    });
    let floor = |t: &trtc::backend::engine::LayerTiming| {
        (t.flops as f64 / (peak * 1e9)).max(t.bytes as f64 / (a.peak_gbps * 1e6))
    };
    if timings.is_empty() {
        println!("profile, batch {batch}: no GPU layers (every segment runs through tract)");
        return;
    }
    let total: f64 = timings.iter().map(|(_, t)| t.ms).sum();
    let total_floor: f64 = timings.iter().map(|(_, t)| floor(t)).sum();
    println!(
        "profile, batch {batch}: {} GPU layers, {:.3} ms in layers, floor {:.3} ms",
        timings.len(),
        total,
        total_floor
    );
    let mut by_kind: std::collections::BTreeMap<&str, (usize, f64, f64)> = Default::default();
    for (_, t) in timings {
        let e = by_kind.entry(t.kind).or_default();
        e.0 += 1;
        e.1 += t.ms;
        e.2 += floor(t);
    }
    for (kind, (n, ms, fl)) in &by_kind {
        println!(
            "  {kind:<12} {n:>4} layers {ms:>9.3} ms  floor {fl:>8.3} ms  ({:.1}% of layer time)",
            ms / total * 100.0
        );
    }
    let mut top: Vec<&(usize, trtc::backend::engine::LayerTiming)> = timings.iter().collect();
    top.sort_by(|x, y| y.1.ms.total_cmp(&x.1.ms));
    println!(
        "  {:<48} {:>8} {:>9} {:>9} {:>8}  run by",
        "slowest layers", "ms", "GFLOP", "MB", "x floor"
    );
    for (_, t) in top.iter().take(a.slowest) {
        let name: String = t
            .layer
            .chars()
            .rev()
            .take(46)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        println!(
            "  {name:<48} {:>8.3} {:>9.3} {:>9.2} {:>8.1}  {}",
            t.ms,
            t.flops as f64 / 1e9,
            t.bytes as f64 / 1e6,
            t.ms / floor(t).max(1e-9),
            t.tactic
        );
    }
}

/// Each GPU engine's arena at `batch` against its tensors' total without sharing.
fn print_memory(model: &HybridModel, batch: usize) {
    for (id, p) in model.payloads() {
        let Ok(t) = serde_json::from_slice::<trtc::cuda::EngineTactics>(&p.bytes) else {
            continue;
        };
        for i in t.instances.iter().filter(|i| i.batch == batch) {
            println!(
                "  segment {id} memory, batch {batch}: arena {:.1} MB for tensors of {:.1} MB ({:.1}x less)",
                i.arena_bytes as f64 / 1e6,
                i.tensor_bytes as f64 / 1e6,
                i.tensor_bytes as f64 / (i.arena_bytes.max(1)) as f64
            );
        }
    }
}

#[derive(Serialize)]
struct BenchResult {
    precision: Precision,
    /// An INT8 plan: what its calibration table quantized (the compile report's INT8 part).
    #[serde(skip_serializing_if = "Option::is_none")]
    int8: Option<trtc::backend::Int8Report>,
    batch: usize,
    engines: Vec<String>,
    build_s: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    images_per_s: f64,
    /// Engines alone, inputs already on the GPU and outputs left there (only when every
    /// segment runs on the GPU): how GPU-resident serving, and PyTorch's timing, see it.
    resident_p50_ms: Option<f64>,
    resident_images_per_s: Option<f64>,
    /// Host to host through `run_pipelined`, steady state: uploads, compute and downloads
    /// of consecutive batches overlapped where the model is one GPU engine.
    pipelined_images_per_s: f64,
    /// The pipelined run overlapped its copies (else it ran one batch after another).
    pipelined_overlapped: bool,
    /// With --accuracy-data: the share of its images whose top-1 is the FP32 model's.
    #[serde(skip_serializing_if = "Option::is_none")]
    top1_vs_fp32: Option<f64>,
}

/// Random inputs at `batch`: of the `--shapes` profile when given (its batch replaced).
fn bench_inputs(
    g: &trtc::ir::Graph,
    profile: Option<&str>,
    batch: usize,
) -> Result<Vec<trtc::ir::Tensor>> {
    let Some(spec) = profile else {
        return random_inputs(g, batch, 1)
            .context("making inputs (a model with dynamic dims needs --shapes)");
    };
    let mut shapes = trtc::backend::shapes::parse_profile(g, spec)
        .with_context(|| format!("--shapes {spec}"))?;
    for (&id, s) in g.inputs().iter().zip(shapes.iter_mut()) {
        let declared = g.tensor(trtc::ir::Outlet::new(id, 0)).shape.clone();
        let batch_dynamic = declared
            .as_ref()
            .and_then(|d| d.first())
            .is_some_and(|d| d.known().is_none());
        if let (true, Some(first)) = (batch_dynamic, s.first_mut()) {
            *first = batch;
        }
    }
    random_inputs_of(g, &shapes, 1).context("making inputs")
}

/// Host-to-host throughput of a stream of `batches` batches of `inputs` through
/// `run_pipelined` (images/s in the steady state: from the first batch delivered to the
/// last, so staging allocation and the pipeline's fill are left out), and whether the
/// copies overlapped the compute.
fn time_pipelined(
    model: &HybridModel,
    inputs: &[trtc::ir::Tensor],
    batches: usize,
) -> Result<(f64, bool)> {
    let shapes: Vec<Vec<usize>> = inputs.iter().map(|t| t.shape().to_vec()).collect();
    let batch = shapes.first().and_then(|s| s.first()).copied().unwrap_or(1);
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    let mut failed = None;
    let report = model
        .run_pipelined(
            &shapes,
            std::iter::repeat_n(inputs, batches.max(2)),
            trtc::backend::runtime::DEFAULT_DEPTH,
            |_, r| {
                let now = Instant::now();
                first.get_or_insert(now);
                last = now;
                if let Err(e) = r {
                    failed.get_or_insert(e);
                }
            },
        )
        .context("pipelined run")?;
    if let Some(e) = failed {
        return Err(e).context("pipelined run");
    }
    let span = first.map_or(0.0, |f| (last - f).as_secs_f64());
    let rate = (report.delivered.saturating_sub(1) * batch) as f64 / span.max(1e-9);
    Ok((rate, report.sequential_because.is_none()))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub fn bench(a: BenchArgs) -> Result<()> {
    let max_batch = a.batch.iter().copied().max().unwrap_or(1);
    let loaded = super::load_any(&a.model)?;
    // The accuracy column's images and the FP32 model's top-1 on them, computed once.
    let accuracy = match (&loaded, a.accuracy_data.is_empty()) {
        (_, true) => None,
        (super::Loaded::Plan(_), false) => {
            bail!("--accuracy-data needs the ONNX model (its FP32 reference), not a plan")
        }
        (super::Loaded::Model(g), false) => {
            if a.input_format != trtc::backend::InputFormat::F32Nchw {
                bail!("--accuracy-data takes an f32 image input (not --input-format u8-nhwc)");
            }
            let pre = super::compile::preprocess_of(
                a.size,
                a.resize,
                a.mean.as_deref(),
                a.std.as_deref(),
            )?;
            let images =
                super::bench_accuracy::load_images(&a.accuracy_data, a.accuracy_images, &pre)?;
            let reference = super::bench_accuracy::reference_top1(g, &images)?;
            Some((images, reference))
        }
    };
    let plans: Vec<(Plan, f64)> = match loaded {
        super::Loaded::Plan(p) => vec![(*p, 0.0)],
        super::Loaded::Model(g) => {
            let int8 = super::compile::table_source_of(
                a.precision.contains(&Precision::Int8),
                a.input_format,
                &super::compile::CalibrationFlags {
                    args: &a.calibration,
                    batch: None,
                    size: a.size,
                    resize: a.resize,
                    mean: a.mean.as_deref(),
                    std: a.std.as_deref(),
                },
                "bench --precision int8 needs a plan (from `trtc compile --precision int8`), \
                 or a calibration table to compile the model with: --calibration-data DIR or \
                 --calibration-cache FILE",
            )?
            .map(|source| super::table_source::TableSource {
                // With --json, stdout is the JSON's alone.
                notes: if a.json {
                    super::calibrate::Notes::Stderr
                } else {
                    super::calibrate::Notes::Stdout
                },
                ..source
            });
            a.precision
                .iter()
                .map(|&precision| {
                    let t = Instant::now();
                    let opts = CompileOptions {
                        precision,
                        max_batch_size: max_batch,
                        min_segment_size: a.min_segment_size,
                        max_cached_engines: a.batch.len(),
                        layout: a.layout,
                        skip_passes: a.skip_passes.clone(),
                        input_format: a.input_format,
                        ..Default::default()
                    };
                    let name = a.model.display().to_string();
                    let plan = match (&int8, precision) {
                        (Some(source), Precision::Int8) => {
                            compile_int8(&name, (*g).clone(), &opts, trtc::gpu(), |g| {
                                source.table(g).map_err(Into::into)
                            })
                        }
                        _ => compile(&name, (*g).clone(), &opts, trtc::gpu()),
                    }
                    .context("compiling")?;
                    if let (Some(r), false) = (&plan.report.int8, a.json) {
                        println!("{r}");
                    }
                    Ok((plan, t.elapsed().as_secs_f64()))
                })
                .collect::<Result<_>>()?
        }
    };
    let mut results = vec![];
    for (mut plan, compile_s) in plans {
        plan.options.max_batch_size = plan.options.max_batch_size.max(max_batch);
        plan.options.max_cached_engines = plan.options.max_cached_engines.max(a.batch.len());
        let t = Instant::now();
        // A plan's engines come back with the tactics it stored (no timing).
        let model = HybridModel::from_plan(&plan, trtc::gpu()).context("building engines")?;
        let engines_s = t.elapsed().as_secs_f64();
        for note in &model.notes {
            tracing::warn!("{note}");
        }
        let top1 = accuracy
            .as_ref()
            .map(|(images, reference)| {
                super::bench_accuracy::top1_agreement(&model, images, reference)
            })
            .transpose()
            .context("--accuracy-data")?;
        for &batch in &a.batch {
            let inputs = bench_inputs(&plan.graph, a.shapes.as_deref(), batch)?;
            // Shared values: the timed runs do not include copying the inputs on the host.
            let values: TVec<TValue> = inputs.iter().cloned().map(TValue::from).collect();
            let t = Instant::now();
            model.run_values(values.clone())?; // builds the engines for this batch size
            let first_s = t.elapsed().as_secs_f64();
            for _ in 0..10 {
                model.run_values(values.clone())?;
            }
            let mut times: Vec<f64> = (0..a.iterations.max(1))
                .map(|_| {
                    let t = Instant::now();
                    model
                        .run_values(values.clone())
                        .map(|_| t.elapsed().as_secs_f64() * 1e3)
                })
                .collect::<std::result::Result<_, _>>()?;
            times.sort_by(f64::total_cmp);
            let p50 = percentile(&times, 0.5);
            let resident = model
                .time_resident(inputs.clone(), a.iterations.max(1))?
                .map(|mut t| {
                    t.sort_by(f64::total_cmp);
                    percentile(&t, 0.5)
                });
            let pipelined = time_pipelined(&model, &inputs, 3 * a.iterations.max(10))?;
            if a.profile && !a.json {
                print_profile(
                    &model.profile(inputs.clone())?,
                    &a,
                    batch,
                    plan.options.precision,
                );
                print_memory(&model, batch);
            }
            results.push(BenchResult {
                precision: plan.options.precision,
                int8: plan.report.int8.clone(),
                batch,
                engines: model
                    .engines()
                    .iter()
                    .map(|(id, b, k)| format!("{id}:{b}:{k}"))
                    .collect(),
                build_s: compile_s + engines_s + first_s,
                p50_ms: p50,
                p90_ms: percentile(&times, 0.9),
                p99_ms: percentile(&times, 0.99),
                images_per_s: batch as f64 / (p50 / 1e3),
                resident_p50_ms: resident,
                resident_images_per_s: resident.map(|ms| batch as f64 / (ms / 1e3)),
                pipelined_images_per_s: pipelined.0,
                pipelined_overlapped: pipelined.1,
                top1_vs_fp32: top1,
            });
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        println!(
            "{}  ({} timed runs each; p50..images/s: wall clock, one run at a time, host inputs and outputs included; pipelined: host to host, {} batches in flight (copies overlapped with compute where the model is one GPU engine, marked *); gpu columns: the engines alone between CUDA events, data on the GPU)",
            a.model.display(),
            a.iterations,
            trtc::backend::runtime::DEFAULT_DEPTH
        );
        if let Some((images, _)) = &accuracy {
            println!(
                "  (top-1 vs fp32: agreement with the FP32 model on {} held-out image(s))",
                images.len()
            );
        }
        println!(
            "{:<9} {:>6} {:>10} {:>10} {:>10} {:>12} {:>13} {:>9} {:>12} {:>12}  engines",
            "precision",
            "batch",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "images/s",
            "pipelined/s",
            "build s",
            "gpu p50 ms",
            "gpu images/s"
        );
        for r in &results {
            let kinds: std::collections::BTreeSet<&str> = r
                .engines
                .iter()
                .filter_map(|e| e.rsplit(':').next())
                .collect();
            let opt = |v: Option<f64>, prec: usize| {
                v.map(|v| format!("{v:.prec$}"))
                    .unwrap_or_else(|| "-".into())
            };
            println!(
                "{:<9} {:>6} {:>10.3} {:>10.3} {:>10.3} {:>12.1} {:>13} {:>9.2} {:>12} {:>12}  {}",
                format!("{:?}", r.precision).to_lowercase(),
                r.batch,
                r.p50_ms,
                r.p90_ms,
                r.p99_ms,
                r.images_per_s,
                format!(
                    "{:.1}{}",
                    r.pipelined_images_per_s,
                    if r.pipelined_overlapped { "*" } else { "" }
                ),
                r.build_s,
                opt(r.resident_p50_ms, 3),
                opt(r.resident_images_per_s, 1),
                kinds.into_iter().collect::<Vec<_>>().join("+")
                    + &r.top1_vs_fp32
                        .map(|t| format!("  top-1 vs fp32 {:.1}%", 100.0 * t))
                        .unwrap_or_default()
            );
        }
    }
    Ok(())
}
