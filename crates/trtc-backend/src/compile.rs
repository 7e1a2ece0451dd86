//! Compile: optimize, partition, describe. What `trtc compile` does before writing a plan.

use crate::error::Result;
use crate::options::{BackendChoice, CompileOptions};
use crate::partition::{partition, PartitionOptions};
use crate::plan::Plan;
use crate::report::CompileReport;
use trtc_engine::{EngineBuilder, EngineError};
use trtc_ir::Graph;
use trtc_optimizer::Pipeline;

/// Optimize `g` with the default pipeline and partition it for `opts`, GPU segments being
/// what `gpu`'s support table accepts (whether or not this machine can build them: the
/// plan may run on another).
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
    let optimizer = Pipeline::default_pipeline().run(&mut g)?;
    let popts = PartitionOptions {
        min_segment_size: opts.min_segment_size,
        deny_ops: opts.deny_ops.clone(),
        use_gpu: opts.backend != BackendChoice::Cpu,
    };
    let p = partition(&g, gpu.support(), &popts)?;
    let report = CompileReport::new(model_name, &g, &p, opts, optimizer)?;
    Ok(Plan {
        graph: g,
        partition: p,
        options: opts.clone(),
        report,
        engines: Default::default(),
    })
}

/// Time the GPU engines' tactics at each of `batches` (random inputs) and store them in
/// the plan, so that loading it builds the same engines without timing. Returns the batch
/// sizes tuned: none where no GPU engine can be built here.
pub fn tune(plan: &mut Plan, batches: &[usize], gpu: &dyn EngineBuilder) -> Result<Vec<usize>> {
    if plan.options.backend == BackendChoice::Cpu || gpu.unavailable().is_some() {
        return Ok(vec![]);
    }
    let mut opts = plan.options.clone();
    opts.max_cached_engines = opts.max_cached_engines.max(batches.len());
    let model = crate::runtime::HybridModel::new(&plan.graph, &plan.partition, &opts, gpu)?;
    // A segment the engine could not build runs on the CPU: the report says why.
    plan.report
        .note_engine_failures(&plan.graph, &plan.partition, model.build_failures());
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
