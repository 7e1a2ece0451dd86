//! Compile: optimize, partition, describe, and time the engines' tactics. What `trtc
//! compile` does before writing a plan.
//!
//! INT8 ([`compile_int8`]) is explicit quantization, as TensorRT does it: the graph is
//! optimized as for any precision, the caller calibrates the OPTIMIZED graph (so the
//! table's tensor names are its names: a fused conv's output, not the ONNX Conv's), and
//! the table is applied to it as QuantizeLinear/DequantizeLinear pairs on the activations
//! and residuals, weights left f32 (`trtc_quant::QdqOptions::gpu`: the engine quantizes the
//! weights of the convs it runs in INT8), but for the layers the caller's accuracy guard
//! keeps in float ([`Int8Table::keep_float`]). The plan stores that QDQ graph; its engines
//! are fp16 between the INT8 layers, and tract runs it as INT8 simulated in f32.

use crate::error::{BackendError, Result};
use crate::options::{BackendChoice, CompileOptions, InputFormat, Precision};
use crate::partition::{partition, PartitionOptions};
use crate::plan::Plan;
use crate::report::{CompileReport, Int8Report};
use trtc_engine::{EngineBuilder, EngineError};
use trtc_ir::Graph;
use trtc_quant::{insert_qdq_with, CalibrationTable, QdqOptions};

/// What [`compile`] says for INT8 without a calibration table.
pub const INT8_NEEDS_TABLE: &str =
    "INT8 needs a calibration table: --calibration-data or --calibration-cache";

/// The error a calibration callback returns (an `anyhow::Error` converts into it).
pub type CalibrationError = Box<dyn std::error::Error + Send + Sync>;

/// What an INT8 compile's calibration gives ([`compile_int8_with`]): the table, and the
/// layers the accuracy guard keeps in float with what it measured.
pub struct Int8Table {
    pub table: CalibrationTable,
    /// Layers (node names of the optimized graph) left without Q/DQ.
    pub keep_float: std::collections::HashSet<String>,
    /// The guard's summary, where one ran.
    pub guard: Option<String>,
}

/// Optimize `g` with the default pipeline and partition it for `opts`, GPU segments being
/// what `gpu`'s support table accepts (whether or not this machine can build them: the
/// plan may run on another). An `input_format` other than f32 NCHW rewrites the graph's
/// image input first ([`apply_input_format`]). INT8 needs a calibration table: it is an
/// error here ([`INT8_NEEDS_TABLE`]); use [`compile_int8`].
pub fn compile(
    model_name: &str,
    g: Graph,
    opts: &CompileOptions,
    gpu: &dyn EngineBuilder,
) -> Result<Plan> {
    if opts.precision == Precision::Int8 {
        return Err(BackendError::Int8(INT8_NEEDS_TABLE.into()));
    }
    compile_with(model_name, g, opts, gpu, None)
}

/// [`compile`] for `opts.precision == Int8`: after optimization, `calibrate` is given the
/// optimized graph and returns its calibration table (calibrated on it, or read from a
/// cache made for it), which is applied as Q/DQ pairs (module doc) before partitioning.
/// The report's `int8` section says what was quantized. Another precision is an error.
pub fn compile_int8(
    model_name: &str,
    g: Graph,
    opts: &CompileOptions,
    gpu: &dyn EngineBuilder,
    calibrate: impl FnOnce(&Graph) -> std::result::Result<CalibrationTable, CalibrationError>,
) -> Result<Plan> {
    if opts.precision != Precision::Int8 {
        return Err(BackendError::Int8(format!(
            "compile_int8 with precision {:?}",
            opts.precision
        )));
    }
    compile_int8_with(model_name, g, opts, gpu, |g| {
        calibrate(g).map(|table| Int8Table {
            table,
            keep_float: Default::default(),
            guard: None,
        })
    })
}

/// [`compile_int8`], `calibrate` also saying which layers stay float (an accuracy guard's
/// demotions), which the report names.
pub fn compile_int8_with(
    model_name: &str,
    g: Graph,
    opts: &CompileOptions,
    gpu: &dyn EngineBuilder,
    calibrate: impl FnOnce(&Graph) -> std::result::Result<Int8Table, CalibrationError>,
) -> Result<Plan> {
    if opts.precision != Precision::Int8 {
        return Err(BackendError::Int8(format!(
            "compile_int8 with precision {:?}",
            opts.precision
        )));
    }
    compile_with(model_name, g, opts, gpu, Some(Box::new(calibrate)))
}

type Calibrate<'a> =
    Box<dyn FnOnce(&Graph) -> std::result::Result<Int8Table, CalibrationError> + 'a>;

fn compile_with(
    model_name: &str,
    mut g: Graph,
    opts: &CompileOptions,
    gpu: &dyn EngineBuilder,
    calibrate: Option<Calibrate<'_>>,
) -> Result<Plan> {
    if opts.backend == BackendChoice::Cuda {
        if let Some(why) = gpu.unavailable() {
            return Err(EngineError::Unavailable(gpu.name().into(), why).into());
        }
    }
    apply_input_format(&mut g, opts.input_format)?;
    // An explicitly quantized model: symmetric, positive scales, or a clear error now
    // (tract would divide by a zero scale without a word).
    trtc_quant::check_qdq(&g).map_err(|e| {
        BackendError::Int8(format!("the model's QuantizeLinear/DequantizeLinear: {e}"))
    })?;
    let optimizer = opts.pipeline()?.run(&mut g)?;
    let int8 = match calibrate {
        Some(calibrate) => {
            let Int8Table {
                table,
                keep_float,
                guard,
            } = calibrate(&g).map_err(BackendError::Calibration)?;
            let qdq = QdqOptions {
                keep_float: keep_float.clone(),
                ..QdqOptions::gpu()
            };
            let (q, report) = insert_qdq_with(&g, &table, &qdq)
                .map_err(|e| BackendError::Int8(format!("inserting Q/DQ: {e}")))?;
            if !report.unscaled.is_empty() {
                tracing::warn!(
                    "{} tensor(s) read by quantizable layers have no scale and stay f32: {}",
                    report.unscaled.len(),
                    report.unscaled.join(", ")
                );
            }
            g = q;
            let mut r = Int8Report::new(&table, &report);
            r.kept_float = keep_float.into_iter().collect();
            r.kept_float.sort();
            r.guard = guard;
            Some(r)
        }
        None => None,
    };
    let popts = PartitionOptions {
        min_segment_size: opts.min_segment_size,
        deny_ops: opts.deny_ops.clone(),
        use_gpu: opts.backend != BackendChoice::Cpu,
    };
    let mut p = partition(&g, gpu.support(), &popts)?;
    // A dynamic model's sample needs its shape: each one's guard runs when it is built.
    let overflows = if trtc_ir::needs_specialization(&g) {
        vec![]
    } else {
        crate::fp16_guard::apply(&g, &mut p, opts, None)
    };
    let mut report = CompileReport::new(model_name, &g, &p, opts, optimizer)?;
    report.fp16_overflows = overflows;
    report.int8 = int8.map(|mut r| {
        r.layers = layer_precisions(&g, &p, opts, gpu);
        r
    });
    Ok(Plan {
        graph: g,
        partition: p,
        options: opts.clone(),
        report,
        engines: Default::default(),
        shape_engines: Default::default(),
    })
}

/// What precision each quantized conv of the GPU segments runs in, and why (decided by
/// lowering, no GPU needed). A segment the builder cannot lower says nothing here: its
/// build error is the report's.
fn layer_precisions(
    g: &Graph,
    p: &crate::partition::Partition,
    opts: &CompileOptions,
    gpu: &dyn EngineBuilder,
) -> Vec<trtc_engine::LayerPrecision> {
    let engine = opts.engine_options();
    p.segments
        .iter()
        .filter(|s| s.backend == crate::partition::SegmentBackend::Gpu)
        .filter_map(|s| {
            let io = trtc_ir::subgraph_io(g, &s.nodes).ok()?;
            gpu.layer_precisions(g, &s.nodes, &io, &engine).ok()
        })
        .flatten()
        .collect()
}

/// Make `g`'s image input take what `format` says (nothing to do for f32 NCHW). The
/// normalization it adds (Sub, Div before the first conv) stays as it is through the
/// optimizer: no pass folds an affine map into the conv that reads it (with padding it
/// would be inexact at the borders).
pub fn apply_input_format(g: &mut Graph, format: InputFormat) -> Result<()> {
    match format {
        InputFormat::F32Nchw => Ok(()),
        InputFormat::U8Nhwc { mean, std } => {
            let name = trtc_ir::pixels::u8_nhwc_input(g, mean, std)?;
            tracing::info!(
                "input `{name}` takes u8 NHWC pixels ({})",
                format.describe()
            );
            Ok(())
        }
    }
}

/// Time the GPU engines' tactics at each of `batches` (random inputs) and store them in
/// the plan, so that loading it builds the same engines without timing. Returns the batch
/// sizes tuned: none where no GPU engine can be built here.
pub fn tune(
    plan: &mut Plan,
    batches: &[usize],
    gpu: &'static dyn EngineBuilder,
) -> Result<Vec<usize>> {
    if plan.options.backend == BackendChoice::Cpu
        || gpu.unavailable().is_some()
        || trtc_ir::has_dynamic_dims(&plan.graph)
    {
        return Ok(vec![]);
    }
    if trtc_ir::needs_specialization(&plan.graph) {
        // Static past the batch, but shape arithmetic reads the batch: engines per batch
        // size, each a shape key of its own.
        // Batch sizes `--shapes` built already keep what they have.
        let mut profiles = vec![];
        for &b in batches {
            let profile = crate::shapes::batch_profile(&plan.graph, b)?;
            let key = trtc_ir::shape_key(&plan.graph, &profile, true);
            if !plan.shape_engines.contains_key(&key) {
                profiles.push(profile);
            }
        }
        tune_profiles(plan, &profiles, gpu)?;
        return Ok(batches.to_vec());
    }
    let mut opts = plan.options.clone();
    opts.max_cached_engines = opts.max_cached_engines.max(batches.len());
    let model = crate::runtime::HybridModel::new(&plan.graph, &plan.partition, &opts, gpu)?;
    // A segment the engine could not build runs on the CPU: the report says why.
    plan.report
        .note_engine_failures(&plan.graph, &plan.partition, &model.build_failures());
    let mut tuned = vec![];
    for &batch in batches {
        tracing::info!("timing tactics at batch {batch}");
        let inputs = trtc_optimizer::verify::random_inputs(&plan.graph, batch, 1)?;
        model.run(inputs)?;
        tuned.push(batch);
    }
    plan.engines = model.payloads();
    Ok(tuned)
}

/// For a model with dynamic dims past the batch (or shape arithmetic on the batch):
/// specialize, partition and build the engines for each profile (a shape per input, as
/// `shapes::parse_profile` gives), time their tactics at that shape where a GPU is here,
/// and add them and each shape's report to the plan. Returns the shape keys prepared.
pub fn tune_profiles(
    plan: &mut Plan,
    profiles: &[Vec<Vec<usize>>],
    gpu: &'static dyn EngineBuilder,
) -> Result<Vec<String>> {
    if profiles.is_empty() {
        return Ok(vec![]);
    }
    for shapes in profiles {
        crate::shapes::check_batch(&plan.graph, shapes, plan.options.max_batch_size)?;
    }
    if !trtc_ir::needs_specialization(&plan.graph) {
        // A static model's one shape (trtexec accepts it too): check it, build nothing more.
        let infos = crate::shapes::input_infos(&plan.graph);
        for shapes in profiles {
            crate::shapes::check_input_shapes(&infos, shapes)?;
        }
        tracing::info!(
            "the model's input shapes are static past the batch: its engines serve every \
             --shapes given (the batch is bounded by --max-batch-size)"
        );
        return Ok(vec![]);
    }
    let mut opts = plan.options.clone();
    opts.max_cached_engines = opts.max_cached_engines.max(profiles.len());
    // With what the plan has: shapes built before keep their tactics, and the fp16 range
    // guard's finding is reused.
    let model = crate::runtime::HybridModel::from_plan_with(plan, &opts, gpu)?;
    let time_here = opts.backend != BackendChoice::Cpu && gpu.unavailable().is_none();
    let mut keys = vec![];
    for shapes in profiles {
        if time_here {
            tracing::info!("timing tactics for input shapes {shapes:?}");
            let inputs = trtc_optimizer::verify::random_inputs_of(&plan.graph, shapes, 1)?;
            model.run(inputs)?;
        } else {
            model.prepare(shapes)?;
        }
        keys.extend(model.last_shape_key());
    }
    plan.shape_engines.extend(model.shape_payloads());
    for (shapes, build_seconds, report) in model.shape_reports(&plan.report.model)? {
        plan.report.shapes.retain(|s| s.shapes != shapes);
        plan.report.shapes.push(crate::report::ShapeReport {
            shapes,
            build_seconds,
            report,
        });
    }
    Ok(keys)
}
