//! trtc's CUDA engines: a GPU segment lowered to a program of steps, run with cuDNN
//! convolutions (bias, residual and ReLU fused into one call), cuBLASLt products and
//! trtc's own NVRTC kernels, with tactics timed per layer shape; f32 or fp16 tensors (fp16
//! with f32 accumulation on tensor cores), NCHW or NHWC.
//!
//! Layers, each only looking down:
//!
//! | layer | what |
//! |---|---|
//! | [`CudaBuilder`] (this file) | the backend's `EngineBuilder`: lowers a segment, builds its engine |
//! | `ops/` | op families: what the engine accepts (with the fallback reason) and how it lowers it; one table |
//! | `engine.rs` | `CudaEngine`: instances per batch size (cached), run, profile, plan payload |
//! | `instance.rs` | building an instance: buffers, arena, descriptors, tactics timed or from the plan |
//! | `tactics/` | timing and choosing each layer's implementation; tactics saved in plans |
//! | `exec/` | an engine's executor and per-batch instance: launches of every step, CUDA graphs |
//! | `passes/` | rewrites of a lowered program (elementwise chains, clip into depthwise, concat views) and arena placement |
//! | `program/` | the program: steps over tensor slots, weights as host bytes; the lowering context |
//! | `sys/` | the device, kernel sources, cuDNN and cuBLASLt wrappers |
//!
//! Libraries are loaded at run time: a machine without CUDA builds and runs trtc, and
//! [`probe`] says why no engine can be built instead of panicking.

mod engine;
mod error;
mod exec;
mod instance;
pub mod ops;
pub mod passes;
pub mod program;
pub(crate) mod sys;
mod tactics;
pub mod testing;

use engine::int8_choice::{self, Int8Choice};
pub use engine::CudaEngine;
pub use ops::{int8_per_channel_convs, CudaOpTable, FAMILIES};
use program::Program;
pub use sys::device::probe;
pub use tactics::saved::{ConvTactic, EngineTactics, InstanceTactics, LtTactic};

use sys::device::device;

/// trtc's CUDA context (device 0's primary context): where buffers given to
/// `HybridModel::run_device` must live, or why there is none on this machine.
pub fn cuda_context() -> std::result::Result<std::sync::Arc<cudarc::driver::CudaContext>, String> {
    device().map(|d| d.ctx.clone())
}
use trtc_engine::Result;
use trtc_engine::{
    Engine, EngineBuilder, EngineError, EngineOptions, EnginePayload, LayerPrecision, OpSupport,
    Precision,
};
use trtc_ir::{Graph, NodeId, SubgraphIo};

/// Builds CUDA engines; its support table is [`CudaOpTable`], whether or not a GPU is here
/// (a plan partitioned on a CPU machine runs its GPU segments on a GPU machine).
pub struct CudaBuilder;

impl EngineBuilder for CudaBuilder {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn support(&self) -> &dyn OpSupport {
        &CudaOpTable
    }

    fn unavailable(&self) -> Option<String> {
        device().err()
    }

    fn build(
        &self,
        g: &Graph,
        nodes: &[NodeId],
        io: &SubgraphIo,
        opts: &EngineOptions,
        payload: Option<&EnginePayload>,
    ) -> Result<Box<dyn Engine>> {
        let dev = device().map_err(|e| EngineError::Unavailable("cuda".into(), e))?;
        let program = ops::lower_segment(g, nodes, io, opts)?;
        tracing::debug!(
            "lowered {} node(s) into {} step(s), {} weight(s)",
            nodes.len(),
            program.steps.len(),
            program.weights.len()
        );
        let limit = opts.workspace_bytes as usize;
        let int8 = opts.precision == Precision::Int8
            && program
                .steps
                .iter()
                .any(|s| matches!(s, program::Step::ConvInt8 { .. }));
        if int8 {
            // Precision as a permission: the FP16 alternative too, the faster runs.
            let stored = Int8Choice::read_payload(
                payload
                    .filter(|p| p.kind == int8_choice::KIND)
                    .map(|p| p.bytes.as_slice()),
            )?;
            let fp16 = ops::lower_segment_as(g, nodes, io, opts, true)?;
            let engine = |p: Program, bytes: Option<Vec<u8>>| {
                CudaEngine::new(
                    dev.clone(),
                    p,
                    limit,
                    opts.max_cached_engines,
                    bytes.as_deref(),
                )
            };
            return Ok(Box::new(Int8Choice::new(
                engine(program, stored.int8)?,
                engine(fp16, stored.fp16)?,
                stored.chosen,
            )));
        }
        Ok(Box::new(CudaEngine::new(
            dev,
            program,
            limit,
            opts.max_cached_engines,
            payload
                .filter(|p| p.kind == "cuda-tactics")
                .map(|p| p.bytes.as_slice()),
        )?))
    }

    fn layer_precisions(
        &self,
        g: &Graph,
        nodes: &[NodeId],
        io: &SubgraphIo,
        opts: &EngineOptions,
    ) -> Result<Vec<LayerPrecision>> {
        Ok(ops::lower_segment(g, nodes, io, opts)?.precisions)
    }
}
