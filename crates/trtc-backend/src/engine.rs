//! Engines: what runs one segment. Every segment can run through tract ([`TractEngine`]);
//! GPU engines come from an `EngineBuilder` (the interface is `trtc-engine`'s: the backend
//! knows no engine crate).

use trtc_engine::Result;
pub use trtc_engine::{Engine, EngineBuilder, EnginePayload, LayerTiming, NoEngines};
use trtc_ir::tract_onnx::prelude::{TValue, TVec};
use trtc_ir::CpuModel;

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
