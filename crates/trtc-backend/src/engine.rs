//! Engines: what runs one segment. Every segment can run through tract; GPU engine
//! builders plug in through `EngineBuilder`.

use crate::error::Result;
use crate::options::CompileOptions;
use trtc_ir::tract_onnx::prelude::{TValue, TVec};
use trtc_ir::{CpuModel, Graph, IrError, NodeId};

/// A built segment, ready to run.
pub trait Engine: Send + Sync {
    /// "tract", "cuda", ...
    fn kind(&self) -> &str;
    fn run(&self, inputs: TVec<TValue>) -> Result<TVec<TValue>, IrError>;
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
    fn run(&self, inputs: TVec<TValue>) -> Result<TVec<TValue>, IrError> {
        self.model.run_values(inputs)
    }
}

/// Builds GPU engines for segments (the CUDA builder implements this).
pub trait EngineBuilder: Send + Sync {
    fn name(&self) -> &'static str;
    /// Why no engine can be built on this machine, if none can (no GPU, a missing library).
    fn unavailable(&self) -> Option<String>;
    /// Build the engine for a segment's nodes; the payload goes into the plan.
    fn build(&self, g: &Graph, nodes: &[NodeId], opts: &CompileOptions) -> Result<Vec<u8>>;
    /// Load an engine from its payload.
    fn load(&self, payload: &[u8], opts: &CompileOptions) -> Result<Box<dyn Engine>>;
}

/// The GPU engine builders this build of trtc has: none yet. GPU segments then run on the
/// CPU through tract, and `HybridModel::notes` says so.
pub fn gpu_builder() -> Option<Box<dyn EngineBuilder>> {
    None
}

/// Why GPU segments will run through tract here.
pub fn gpu_unavailable_reason() -> String {
    match gpu_builder() {
        Some(b) => b.unavailable().unwrap_or_default(),
        None => "this build of trtc has no CUDA engine builder yet".into(),
    }
}
