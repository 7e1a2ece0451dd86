//! The hybrid runtime: a plan's segments run in order, engines and tract side by side.
//!
//! A model whose input shapes are known past the batch runs as one [`SegmentedModel`].
//! A dynamic one (`f32[N,3,?,?]`, or one whose shape arithmetic reads the batch) runs
//! through a [`ShapeCache`]: for each input-shape key
//! that arrives, the graph is specialized, optimized again, partitioned and its engines
//! built (TF-TRT's `is_dynamic_op`), from the tactics the plan stored for that key when
//! it has them; up to `max_cached_engines` keys are kept, least recently used going first.

mod host_copy;
mod pipelined;
mod segmented;
mod shape_cache;

pub use pipelined::{PipelineReport, DEFAULT_DEPTH};

pub(crate) use segmented::SegmentedModel;
pub(crate) use shape_cache::{Ready, ShapeCache};

use crate::engine::{EngineBuilder, EnginePayload, LayerTiming};
use crate::error::Result;
use crate::options::CompileOptions;
use crate::partition::{Partition, SegmentBackend};
use crate::plan::Plan;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use trtc_ir::eval::check_shapes;
use trtc_ir::tract_onnx::prelude::{IntoTensor, TValue, TVec};
use trtc_ir::{needs_specialization, Graph, Outlet, Tensor, TensorInfo};

enum Models {
    Static(SegmentedModel),
    Dynamic(Arc<ShapeCache>),
}

/// A partitioned graph ready to run, for any input shape its inputs allow.
pub struct HybridModel {
    inputs: Vec<TensorInfo>,
    outputs: Vec<TensorInfo>,
    models: Models,
    /// Things the user should hear once (GPU segments on the CPU, say).
    pub notes: Vec<String>,
    /// fp16 engines: outputs are checked for NaN/inf (warned about once).
    fp16: bool,
    warned_non_finite: AtomicBool,
}

/// Engine payloads by shape key, then by segment id: what a plan stores for a dynamic
/// model's specializations.
pub type ShapePayloads = BTreeMap<String, BTreeMap<usize, EnginePayload>>;

impl HybridModel {
    /// Build every segment's engine (GPU engines time their tactics as each batch size
    /// first runs). A graph with dynamic dims past the batch builds them per shape key,
    /// as shapes arrive (`p` is then not used: each key is partitioned on its own).
    pub fn new(
        g: &Graph,
        p: &Partition,
        opts: &CompileOptions,
        gpu: &'static dyn EngineBuilder,
    ) -> Result<HybridModel> {
        Self::with_payloads(g, p, opts, &BTreeMap::new(), &BTreeMap::new(), None, gpu)
    }

    /// The model a plan describes, its GPU engines rebuilt from the tactics it stored.
    pub fn from_plan(plan: &Plan, gpu: &'static dyn EngineBuilder) -> Result<HybridModel> {
        Self::with_payloads(
            &plan.graph,
            &plan.partition,
            &plan.options,
            &plan.engines,
            &plan.shape_engines,
            plan_fp16_known(plan),
            gpu,
        )
    }

    /// [`HybridModel::from_plan`] with `opts` in place of the plan's options (tuning keeps
    /// more shapes cached).
    pub(crate) fn from_plan_with(
        plan: &Plan,
        opts: &CompileOptions,
        gpu: &'static dyn EngineBuilder,
    ) -> Result<HybridModel> {
        Self::with_payloads(
            &plan.graph,
            &plan.partition,
            opts,
            &plan.engines,
            &plan.shape_engines,
            plan_fp16_known(plan),
            gpu,
        )
    }

    fn with_payloads(
        g: &Graph,
        p: &Partition,
        opts: &CompileOptions,
        payloads: &BTreeMap<usize, EnginePayload>,
        shape_payloads: &ShapePayloads,
        fp16_known: Option<Vec<crate::fp16_guard::Fp16Overflow>>,
        gpu: &'static dyn EngineBuilder,
    ) -> Result<HybridModel> {
        let infos = |v: Vec<Outlet>| v.into_iter().map(|o| g.tensor(o).clone()).collect();
        let inputs = infos(g.inputs().iter().map(|&i| Outlet::new(i, 0)).collect());
        let outputs = infos(g.outputs().to_vec());
        let (models, notes) = if needs_specialization(g) {
            let cache = ShapeCache::new(
                g.clone(),
                opts.clone(),
                shape_payloads.clone(),
                gpu,
                fp16_known,
            );
            (Models::Dynamic(Arc::new(cache)), vec![])
        } else {
            let mut m = SegmentedModel::with_payloads(g, p, opts, payloads, gpu)?;
            let notes = std::mem::take(&mut m.notes);
            (Models::Static(m), notes)
        };
        Ok(HybridModel {
            inputs,
            outputs,
            models,
            notes,
            fp16: opts.precision.is_half() && opts.backend != crate::options::BackendChoice::Cpu,
            warned_non_finite: AtomicBool::new(false),
        })
    }

    /// Is this a model whose engines are built per input shape?
    pub fn is_dynamic(&self) -> bool {
        matches!(self.models, Models::Dynamic(_))
    }

    pub fn input_infos(&self) -> Vec<TensorInfo> {
        self.inputs.clone()
    }

    pub fn output_infos(&self) -> Vec<TensorInfo> {
        self.outputs.clone()
    }

    /// GPU segments whose engine failed to build (they run through tract): (segment id,
    /// the error). For a dynamic model: those of the shape keys built so far.
    pub fn build_failures(&self) -> Vec<(usize, String)> {
        match &self.models {
            Models::Static(m) => m.build_failures().to_vec(),
            Models::Dynamic(c) => c.build_failures(),
        }
    }

    /// What a plan should store for each segment's engine, by segment id (a model of
    /// static shapes).
    pub fn payloads(&self) -> BTreeMap<usize, EnginePayload> {
        match &self.models {
            Models::Static(m) => m.payloads(),
            Models::Dynamic(_) => BTreeMap::new(),
        }
    }

    /// What a plan should store for each shape key built so far (a dynamic model).
    pub fn shape_payloads(&self) -> ShapePayloads {
        match &self.models {
            Models::Static(_) => BTreeMap::new(),
            Models::Dynamic(c) => c.payloads(),
        }
    }

    /// (segment id, backend, engine kind) for each segment, in run order; for a dynamic
    /// model, those of the shape key used last (none before the first run).
    pub fn engines(&self) -> Vec<(usize, SegmentBackend, String)> {
        match &self.models {
            Models::Static(m) => m.engines(),
            Models::Dynamic(c) => c.last_used().map(|m| m.engines()).unwrap_or_default(),
        }
    }

    /// The shape key of the inputs run or prepared last (a dynamic model).
    pub fn last_shape_key(&self) -> Option<String> {
        match &self.models {
            Models::Static(_) => None,
            Models::Dynamic(c) => c.last_key(),
        }
    }

    /// Build the engines for inputs of these shapes now, without running (a dynamic
    /// model; a static one has its engines already). Shapes are checked as `run` does.
    pub fn prepare(&self, shapes: &[Vec<usize>]) -> Result<()> {
        if let Models::Dynamic(c) = &self.models {
            crate::shapes::check_input_shapes(&self.inputs, shapes)?;
            c.get(shapes)?;
        }
        Ok(())
    }

    /// For a dynamic model, a compile report of each shape key built and kept: (key,
    /// seconds its engines took to build, report).
    pub fn shape_reports(
        &self,
        model_name: &str,
    ) -> Result<Vec<(String, f64, crate::report::CompileReport)>> {
        match &self.models {
            Models::Static(_) => Ok(vec![]),
            Models::Dynamic(c) => c.reports(model_name),
        }
    }

    /// The model for these inputs: checked against the graph's inputs, then for a
    /// dynamic model the specialization of their shape key (built now if new).
    fn model_for(&self, inputs: &TVec<TValue>) -> Result<ModelRef<'_>> {
        self.shaped(&self.checked_shapes(inputs)?)
    }

    /// The model for inputs of `shapes` (a dynamic model's specialization, built now if new).
    fn shaped(&self, shapes: &[Vec<usize>]) -> Result<ModelRef<'_>> {
        Ok(match &self.models {
            Models::Static(m) => ModelRef::Borrowed(m),
            Models::Dynamic(c) => ModelRef::Shared(c.get(shapes)?),
        })
    }

    /// The inputs' shapes, checked (with their dtypes) against the graph's inputs.
    fn checked_shapes(&self, inputs: &TVec<TValue>) -> Result<Vec<Vec<usize>>> {
        let shapes: Vec<Vec<usize>> = inputs.iter().map(|t| t.shape().to_vec()).collect();
        let dts: Vec<_> = inputs.iter().map(|t| t.datum_type()).collect();
        check_shapes(&self.inputs, &shapes, &dts)?;
        Ok(shapes)
    }

    /// Run once and time every layer of the engines that can say (GPU engines): (segment
    /// id, timing) in run order. Segments that cannot are run but not listed.
    pub fn profile(&self, inputs: Vec<Tensor>) -> Result<Vec<(usize, LayerTiming)>> {
        let inputs: TVec<TValue> = inputs.into_iter().map(TValue::from).collect();
        self.model_for(&inputs)?.get().profile(inputs)
    }

    /// Per-iteration milliseconds of the engines alone, inputs and outputs left on the
    /// device, summed over segments; `None` when a segment cannot be timed that way (it
    /// runs through tract, so the model is not GPU-resident).
    pub fn time_resident(
        &self,
        inputs: Vec<Tensor>,
        iterations: usize,
    ) -> Result<Option<Vec<f64>>> {
        let inputs: TVec<TValue> = inputs.into_iter().map(TValue::from).collect();
        self.model_for(&inputs)?
            .get()
            .time_resident(inputs, iterations)
    }

    /// Run the model: inputs checked (shapes, dtypes, batch up to the maximum).
    pub fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>> {
        self.run_values(inputs.into_iter().map(TValue::from).collect())
    }

    /// Requests of a dynamic model built with `build_in_background` that ran on the CPU
    /// while their shape's engines were building.
    pub fn cpu_runs_while_building(&self) -> usize {
        match &self.models {
            Models::Static(_) => 0,
            Models::Dynamic(c) => c.cpu_runs(),
        }
    }

    /// Are engines of a dynamic model building in the background now?
    pub fn building_in_background(&self) -> bool {
        match &self.models {
            Models::Static(_) => false,
            Models::Dynamic(c) => c.building(),
        }
    }

    /// Run on inputs already in device memory, writing the outputs to device memory: no
    /// host round trip, for a service that keeps its tensors on the GPU. `shapes` are the
    /// inputs' shapes (checked as `run` checks them; the buffers hold dense, row-major
    /// data of those shapes in the inputs' types: f32, or u8 pixels for a plan compiled
    /// with `--input-format u8-nhwc`); the outputs' buffers must have the outputs' sizes
    /// at that batch ([`HybridModel::output_infos`]). Only for a model that runs as one GPU
    /// segment from its inputs to its outputs; anything else is an error saying why.
    ///
    /// # Safety
    /// Each buffer must be device memory of trtc's CUDA context (device 0's primary
    /// context, `trtc_cuda::cuda_context`), valid for the bytes it gives, its inputs'
    /// writes finished (the stream that wrote them synchronized), and not touched by
    /// anything else until the call returns.
    pub unsafe fn run_device(
        &self,
        shapes: &[Vec<usize>],
        inputs: &[trtc_engine::DeviceBuffer],
        outputs: &[trtc_engine::DeviceBuffer],
    ) -> Result<()> {
        // The buffers hold each input's own type (u8 for an `--input-format u8-nhwc` image).
        crate::shapes::check_input_shapes(&self.inputs, shapes)?;
        let model = self.shaped(shapes)?;
        // Safety: passed on from the caller.
        unsafe { model.get().run_device(shapes, inputs, outputs) }
    }

    /// `run` on shared tract values: callers that keep their inputs pass them without a copy.
    pub fn run_values(&self, inputs: TVec<TValue>) -> Result<Vec<Tensor>> {
        let outputs = match &self.models {
            Models::Dynamic(c) if c.background() => {
                match c.get_or_cpu(&self.checked_shapes(&inputs)?)? {
                    Ready::Built(m) => m.run_values(inputs)?,
                    Ready::Cpu(cpu) => cpu
                        .run_values(inputs)?
                        .into_iter()
                        .map(|v| v.into_tensor())
                        .collect(),
                }
            }
            _ => self.model_for(&inputs)?.get().run_values(inputs)?,
        };
        self.warn_non_finite(&outputs);
        Ok(outputs)
    }

    /// fp16 engines: say once when outputs are not finite.
    pub(crate) fn warn_non_finite(&self, outputs: &[Tensor]) {
        if self.fp16 && !self.warned_non_finite.load(Ordering::Relaxed) {
            let names: Vec<String> = self.outputs.iter().map(|t| t.name.clone()).collect();
            if crate::fp16_guard::warn_non_finite(&names, outputs) {
                self.warned_non_finite.store(true, Ordering::Relaxed);
            }
        }
    }
}

/// What the fp16 range guard found at compile time for a dynamic plan's `--shapes`
/// (`None` when no shape was built then: the first one to arrive runs the sample).
fn plan_fp16_known(plan: &Plan) -> Option<Vec<crate::fp16_guard::Fp16Overflow>> {
    let shapes = &plan.report.shapes;
    (!shapes.is_empty()).then(|| {
        shapes
            .iter()
            .flat_map(|s| s.report.fp16_overflows.iter().cloned())
            .collect()
    })
}

enum ModelRef<'a> {
    Borrowed(&'a SegmentedModel),
    Shared(Arc<SegmentedModel>),
}

impl ModelRef<'_> {
    fn get(&self) -> &SegmentedModel {
        match self {
            ModelRef::Borrowed(m) => m,
            ModelRef::Shared(m) => m,
        }
    }
}
