//! Compile: optimize, partition, describe, and time the engines' tactics. What `trtc
//! compile` does before writing a plan.

use crate::error::Result;
use crate::options::{BackendChoice, CompileOptions, InputFormat};
use crate::partition::{partition, PartitionOptions};
use crate::plan::Plan;
use crate::report::CompileReport;
use trtc_engine::{EngineBuilder, EngineError};
use trtc_ir::Graph;

/// Optimize `g` with the default pipeline and partition it for `opts`, GPU segments being
/// what `gpu`'s support table accepts (whether or not this machine can build them: the
/// plan may run on another). An `input_format` other than f32 NCHW rewrites the graph's
/// image input first ([`apply_input_format`]).
pub fn compile(
    model_name: &str,
    mut g: Graph,
    opts: &CompileOptions,
    gpu: &dyn EngineBuilder,
) -> Result<Plan> {
    if opts.backend == BackendChoice::Cuda {
        if let Some(why) = gpu.unavailable() {
            return Err(EngineError::Unavailable(gpu.name().into(), why).into());
        }
    }
    apply_input_format(&mut g, opts.input_format)?;
    let optimizer = opts.pipeline()?.run(&mut g)?;
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
    Ok(Plan {
        graph: g,
        partition: p,
        options: opts.clone(),
        report,
        engines: Default::default(),
        shape_engines: Default::default(),
    })
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
