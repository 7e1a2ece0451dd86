//! Engines: what runs one segment. Every segment can run through tract; GPU engine
//! builders plug in through `EngineBuilder`.

use crate::error::Result;
use crate::options::CompileOptions;
use trtc_ir::tract_onnx::prelude::{TValue, TVec};
use trtc_ir::{CpuModel, Graph, NodeId, SubgraphIo};

/// One layer's time in a profiled run, with the work it does.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LayerTiming {
    pub layer: String,
    pub kind: &'static str,
    pub ms: f64,
    pub flops: u64,
    /// Bytes the layer must read and write at least (inputs, weights, outputs once).
    pub bytes: u64,
}

/// What a plan stores for a segment's engine (for CUDA engines, their tactics), so that
/// loading the plan rebuilds the same engine without timing anything.
#[derive(Clone, Debug, PartialEq)]
pub struct EnginePayload {
    pub kind: String,
    pub bytes: Vec<u8>,
}

/// A built segment, ready to run.
pub trait Engine: Send + Sync {
    /// "tract", "cuda", ...
    fn kind(&self) -> &str;
    fn run(&self, inputs: TVec<TValue>) -> Result<TVec<TValue>>;
    /// Time each layer of one run, where the engine can (GPU engines).
    fn profile(&self, _inputs: TVec<TValue>) -> Option<Result<Vec<LayerTiming>>> {
        None
    }
    /// What a plan should store to rebuild this engine as it is now, where there is
    /// anything (GPU engines: the tactics of every batch size run so far).
    fn payload(&self) -> Option<EnginePayload> {
        None
    }
    /// Milliseconds of each of `iterations` runs with the inputs already on the device and
    /// the outputs left there (what a GPU-resident pipeline sees), timed on the device
    /// between events, where the engine can say (GPU engines).
    fn time_resident(&self, _inputs: TVec<TValue>, _iterations: usize) -> Option<Result<Vec<f64>>> {
        None
    }
}

/// A segment run on the CPU by tract (its subgraph exported as ONNX).
pub struct TractEngine {
    model: CpuModel,
}

impl TractEngine {
    pub fn new(model: CpuModel) -> Self {
        TractEngine { model }
    }
}

impl Engine for TractEngine {
    fn kind(&self) -> &str {
        "tract"
    }
    fn run(&self, inputs: TVec<TValue>) -> Result<TVec<TValue>> {
        Ok(self.model.run_values(inputs)?)
    }
}

/// Builds GPU engines for segments (when a plan is loaded, from the payload it stored).
pub trait EngineBuilder: Send + Sync {
    fn name(&self) -> &'static str;
    /// Why no engine can be built on this machine, if none can (no GPU, a missing library).
    fn unavailable(&self) -> Option<String>;
    /// Build the engine for a segment's nodes, whose inputs and outputs are `io`.
    fn build(
        &self,
        g: &Graph,
        nodes: &[NodeId],
        io: &SubgraphIo,
        opts: &CompileOptions,
        payload: Option<&EnginePayload>,
    ) -> Result<Box<dyn Engine>>;
}

/// The GPU engine builder, when this machine can build engines.
pub fn gpu_builder() -> Option<Box<dyn EngineBuilder>> {
    let b = crate::cuda::CudaBuilder;
    b.unavailable()
        .is_none()
        .then(|| Box::new(b) as Box<dyn EngineBuilder>)
}

/// Why GPU segments will run through tract here.
pub fn gpu_unavailable_reason() -> String {
    crate::cuda::CudaBuilder.unavailable().unwrap_or_default()
}
