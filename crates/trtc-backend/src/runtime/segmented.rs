//! One partitioned graph of known shapes (past the batch): segments run in order, engines
//! and tract models side by side, with tensors handed between them as shared values (no
//! copies).

use crate::engine::{Engine, EngineBuilder, EnginePayload, LayerTiming, TractEngine};
use crate::error::{BackendError, Result};
use crate::options::{BackendChoice, CompileOptions};
use crate::partition::{Partition, SegmentBackend};
use std::collections::BTreeMap;
use std::collections::HashMap;
use trtc_engine::{DeviceBuffer, EngineError, HostStream};
use trtc_ir::eval::check_shapes;
use trtc_ir::tract_onnx::prelude::{IntoTensor, TValue, TVec};
use trtc_ir::{subgraph_io, subgraph_to_model_proto, CpuModel, Graph, Outlet, Tensor, TensorInfo};

pub(crate) struct SegmentRuntime {
    id: usize,
    backend: SegmentBackend,
    inputs: Vec<Outlet>,
    outputs: Vec<Outlet>,
    engine: Box<dyn Engine>,
    /// Values no later segment and no graph output reads, dropped after this one runs.
    drop_after: Vec<Outlet>,
}

impl SegmentRuntime {
    /// An engine error of this segment.
    fn error(&self, source: EngineError) -> BackendError {
        BackendError::Segment {
            segment: self.id,
            backend: self.engine.kind().into(),
            source,
        }
    }
}

/// A partitioned graph ready to run.
pub(crate) struct SegmentedModel {
    inputs: Vec<(Outlet, TensorInfo)>,
    outputs: Vec<(Outlet, TensorInfo)>,
    constants: Vec<(Outlet, TValue)>,
    segments: Vec<SegmentRuntime>,
    max_batch_size: usize,
    /// Things the user should hear once (GPU segments on the CPU, say).
    pub(crate) notes: Vec<String>,
    /// GPU segments whose engine failed to build (they run through tract), with the error.
    build_failures: Vec<(usize, String)>,
}

impl SegmentedModel {
    /// Build every segment's engine, GPU engines from `payloads` (by segment id) where
    /// there is one.
    pub(crate) fn with_payloads(
        g: &Graph,
        p: &Partition,
        opts: &CompileOptions,
        payloads: &BTreeMap<usize, EnginePayload>,
        gpu: &dyn EngineBuilder,
    ) -> Result<SegmentedModel> {
        let mut notes = vec![];
        let mut build_failures = vec![];
        let gpu_segments = p
            .segments
            .iter()
            .filter(|s| s.backend == SegmentBackend::Gpu)
            .count();
        // Only ask for the device (CUDA: context, kernel compilation) when a GPU segment
        // could use it.
        let builder = match opts.backend {
            BackendChoice::Cpu => None,
            _ if gpu_segments == 0 => None,
            _ => match gpu.unavailable() {
                Some(why) => {
                    notes.push(format!(
                        "{gpu_segments} GPU segment(s) run on the CPU through tract: {why}"
                    ));
                    None
                }
                None => Some(gpu),
            },
        };
        let engine_opts = opts.engine_options();
        let mut segments = vec![];
        for s in &p.segments {
            let io = subgraph_io(g, &s.nodes)?;
            let mut engine: Option<Box<dyn Engine>> = None;
            if let (SegmentBackend::Gpu, Some(b)) = (s.backend, &builder) {
                let mut engine_opts = engine_opts.clone();
                if let Some(p) = s.precision {
                    engine_opts.precision = p;
                }
                match b.build(g, &s.nodes, &io, &engine_opts, payloads.get(&s.id)) {
                    Ok(e) => engine = Some(e),
                    Err(e) if opts.backend == BackendChoice::Cuda => {
                        return Err(BackendError::Segment {
                            segment: s.id,
                            backend: s.backend.to_string(),
                            source: e,
                        })
                    }
                    Err(e) => {
                        notes.push(format!(
                            "segment {} runs on the CPU through tract: {e}",
                            s.id
                        ));
                        build_failures.push((s.id, e.to_string()));
                    }
                }
            }
            let engine = match engine {
                Some(e) => e,
                None => {
                    // Only a segment run by tract needs its subgraph (and weights) as ONNX.
                    let (proto, _) = subgraph_to_model_proto(g, &s.nodes)?;
                    let infos =
                        |v: &[Outlet]| v.iter().map(|&o| g.tensor(o).clone()).collect::<Vec<_>>();
                    let model = CpuModel::from_proto(&proto, infos(&io.inputs), infos(&io.outputs))
                        .map_err(|e| BackendError::Segment {
                            segment: s.id,
                            backend: s.backend.to_string(),
                            source: e.into(),
                        })?
                        .with_max_cached_plans(opts.max_cached_engines);
                    Box::new(TractEngine::new(model)) as Box<dyn Engine>
                }
            };
            segments.push(SegmentRuntime {
                id: s.id,
                backend: s.backend,
                inputs: io.inputs,
                outputs: io.outputs,
                engine,
                drop_after: vec![],
            });
        }
        // Free each intermediate value after the last segment that reads it.
        let mut last_use: HashMap<Outlet, usize> = HashMap::new();
        for (i, s) in segments.iter().enumerate() {
            for &o in &s.inputs {
                last_use.insert(o, i);
            }
        }
        for o in g.outputs() {
            last_use.remove(o);
        }
        for (o, i) in last_use {
            segments[i].drop_after.push(o);
        }
        let constants = g
            .outputs()
            .iter()
            .filter_map(|&o| g.const_value(o).map(|t| (o, TValue::from((**t).clone()))))
            .collect();
        Ok(SegmentedModel {
            inputs: g
                .inputs()
                .iter()
                .map(|&i| (Outlet::new(i, 0), g.tensor(Outlet::new(i, 0)).clone()))
                .collect(),
            outputs: g
                .outputs()
                .iter()
                .map(|&o| (o, g.tensor(o).clone()))
                .collect(),
            constants,
            segments,
            max_batch_size: opts.max_batch_size,
            notes,
            build_failures,
        })
    }

    pub(crate) fn input_infos(&self) -> Vec<TensorInfo> {
        self.inputs.iter().map(|(_, i)| i.clone()).collect()
    }

    /// GPU segments whose engine failed to build (they run through tract): (segment id,
    /// the error).
    pub(crate) fn build_failures(&self) -> &[(usize, String)] {
        &self.build_failures
    }

    /// What a plan should store for each segment's engine, by segment id.
    pub(crate) fn payloads(&self) -> BTreeMap<usize, EnginePayload> {
        self.segments
            .iter()
            .filter_map(|s| s.engine.payload().map(|p| (s.id, p)))
            .collect()
    }

    /// (segment id, backend, engine kind) for each segment, in run order.
    pub(crate) fn engines(&self) -> Vec<(usize, SegmentBackend, String)> {
        self.segments
            .iter()
            .map(|s| (s.id, s.backend, s.engine.kind().to_string()))
            .collect()
    }

    /// Run once and time every layer of the engines that can say (GPU engines): (segment
    /// id, timing) in run order. Segments that cannot are run but not listed.
    pub(crate) fn profile(&self, inputs: TVec<TValue>) -> Result<Vec<(usize, LayerTiming)>> {
        let mut timings = vec![];
        self.run_with(inputs, |s, args| {
            if let Some(t) = s.engine.profile(args) {
                timings.extend(t?.into_iter().map(|l| (s.id, l)));
            }
            Ok(())
        })?;
        Ok(timings)
    }

    /// Per-iteration milliseconds of the engines alone, inputs and outputs left on the
    /// device, summed over segments; `None` when a segment cannot be timed that way (it
    /// runs through tract, so the model is not GPU-resident).
    pub(crate) fn time_resident(
        &self,
        inputs: TVec<TValue>,
        iterations: usize,
    ) -> Result<Option<Vec<f64>>> {
        let mut total: Option<Vec<f64>> = Some(vec![0.0; iterations]);
        self.run_with(inputs, |s, args| {
            match s.engine.time_resident(args, iterations) {
                Some(t) => {
                    if let Some(acc) = total.as_mut() {
                        for (a, v) in acc.iter_mut().zip(t?) {
                            *a += v;
                        }
                    }
                }
                None => total = None,
            }
            Ok(())
        })?;
        Ok(total)
    }

    /// Run on device memory holding inputs of `shapes` (checked against the graph's
    /// inputs), outputs written to device memory: a model that is one GPU segment from the
    /// graph's inputs to its outputs, in their order.
    ///
    /// # Safety
    /// As [`trtc_engine::Engine::run_device`].
    pub(crate) unsafe fn run_device(
        &self,
        shapes: &[Vec<usize>],
        inputs: &[DeviceBuffer],
        outputs: &[DeviceBuffer],
    ) -> Result<()> {
        let not = |why: String| Err(BackendError::NotResident(why));
        crate::shapes::check_batch_of(&self.input_infos(), shapes, self.max_batch_size)?;
        let batch = shapes.first().and_then(|s| s.first()).copied().unwrap_or(1);
        let seg = match self.resident_segment() {
            Ok(seg) => seg,
            Err(why) => return not(why),
        };
        // Safety: passed on from the caller.
        match unsafe { seg.engine.run_device(batch, inputs, outputs) } {
            Some(r) => r.map_err(|e| seg.error(e)),
            None => not(format!(
                "segment {} runs on {}, which cannot take device memory",
                seg.id,
                seg.engine.kind()
            )),
        }
    }

    /// Run a stream of batches of inputs of `shapes` (checked against the batch limit)
    /// through the model's one GPU engine, copies overlapped with compute; `Err(why)`
    /// when the model is not one engine that can (the caller runs the batches itself).
    pub(crate) fn run_stream(
        &self,
        shapes: &[Vec<usize>],
        hs: &mut HostStream<'_>,
    ) -> std::result::Result<Result<()>, String> {
        if let Err(e) =
            crate::shapes::check_batch_of(&self.input_infos(), shapes, self.max_batch_size)
        {
            return Ok(Err(e));
        }
        let seg = self.resident_segment()?;
        match seg.engine.run_stream(hs) {
            Some(r) => Ok(r.map_err(|e| seg.error(e))),
            None => Err(format!(
                "segment {} runs on {}, which has no pipelined copies",
                seg.id,
                seg.engine.kind()
            )),
        }
    }

    /// The one GPU segment that takes the graph's inputs and gives its outputs, or why
    /// there is none.
    fn resident_segment(&self) -> std::result::Result<&SegmentRuntime, String> {
        let [seg] = self.segments.as_slice() else {
            return Err(format!(
                "the model runs as {} segments; this needs one GPU segment",
                self.segments.len()
            ));
        };
        let ins: Vec<Outlet> = self.inputs.iter().map(|(o, _)| *o).collect();
        let outs: Vec<Outlet> = self.outputs.iter().map(|(o, _)| *o).collect();
        if seg.inputs != ins || seg.outputs != outs || !self.constants.is_empty() {
            return Err(
                "the GPU segment does not take the model's inputs and give its outputs".into(),
            );
        }
        Ok(seg)
    }

    /// `run` on shared tract values: callers that keep their inputs pass them without a copy.
    pub(crate) fn run_values(&self, inputs: TVec<TValue>) -> Result<Vec<Tensor>> {
        self.run_with(inputs, |_, _| Ok(()))
    }

    fn run_with(
        &self,
        inputs: TVec<TValue>,
        mut before_segment: impl FnMut(&SegmentRuntime, TVec<TValue>) -> Result<()>,
    ) -> Result<Vec<Tensor>> {
        let infos = self.input_infos();
        let shapes: Vec<Vec<usize>> = inputs.iter().map(|t| t.shape().to_vec()).collect();
        let dts: Vec<_> = inputs.iter().map(|t| t.datum_type()).collect();
        check_shapes(&infos, &shapes, &dts)?;
        crate::shapes::check_batch_of(&infos, &shapes, self.max_batch_size)?;
        let mut values: HashMap<Outlet, TValue> = HashMap::new();
        for ((o, _), t) in self.inputs.iter().zip(inputs) {
            values.insert(*o, t);
        }
        for (o, v) in &self.constants {
            values.insert(*o, v.clone());
        }
        for s in &self.segments {
            let args: TVec<TValue> = s
                .inputs
                .iter()
                .map(|o| {
                    values.get(o).cloned().ok_or_else(|| {
                        BackendError::Partition(format!("segment {} input not computed", s.id))
                    })
                })
                .collect::<Result<_>>()?;
            before_segment(s, args.clone())?;
            let outs = s.engine.run(args).map_err(|source| BackendError::Segment {
                segment: s.id,
                backend: s.backend.to_string(),
                source,
            })?;
            for (o, v) in s.outputs.iter().zip(outs) {
                values.insert(*o, v);
            }
            for o in &s.drop_after {
                values.remove(o);
            }
        }
        self.outputs
            .iter()
            .map(|(o, info)| {
                values
                    .get(o)
                    .cloned()
                    .or_else(|| {
                        self.constants
                            .iter()
                            .find(|(c, _)| c == o)
                            .map(|(_, v)| v.clone())
                    })
                    .map(|v| v.into_tensor())
                    .ok_or_else(|| {
                        BackendError::Partition(format!("output `{}` not computed", info.name))
                    })
            })
            .collect()
    }
}
