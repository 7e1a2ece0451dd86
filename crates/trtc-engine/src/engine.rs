//! Engines: what runs one segment, and what builds them.

use crate::error::Result;
use crate::options::EngineOptions;
use crate::support::{FallbackReason, OpSupport};
use trtc_ir::tract_onnx::prelude::{TValue, TVec, Tensor};
use trtc_ir::{Graph, NodeId, SubgraphIo};

/// One layer's time in a profiled run, with the work it does.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LayerTiming {
    pub layer: String,
    pub kind: &'static str,
    pub ms: f64,
    pub flops: u64,
    /// Bytes the layer must read and write at least (inputs, weights, outputs once).
    pub bytes: u64,
    /// What runs it, where the engine chose among several (cuDNN, cuBLASLt, its own
    /// kernels): empty otherwise.
    pub tactic: String,
}

/// What a plan stores for a segment's engine (for CUDA engines, their tactics), so that
/// loading the plan rebuilds the same engine without timing anything.
#[derive(Clone, Debug, PartialEq)]
pub struct EnginePayload {
    pub kind: String,
    pub bytes: Vec<u8>,
}

/// A tensor in device memory: its address and its size in bytes (dense, row-major, in the
/// shape and type of the engine's input or output it stands for: f32, or u8 for an image
/// input compiled with `--input-format u8-nhwc`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceBuffer {
    pub ptr: u64,
    pub bytes: usize,
}

/// A stream of batches through an engine from host memory to host memory, for
/// [`Engine::run_stream`]: the batches are filled, run and delivered in order; an engine
/// that can overlaps the copies of some batches with the compute of others.
pub struct HostStream<'a> {
    /// The batch size every batch of the stream has.
    pub batch: usize,
    /// Batches in flight at once (staging buffers per batch).
    pub depth: usize,
    /// Writes batch `i`'s inputs into the engine's host buffers (one per engine input, as
    /// long as its bytes at `batch`: dense, row-major); `None` when there are no more
    /// batches. `Some(Err(why))` skips the batch: it is delivered as that error, in its turn.
    #[allow(clippy::type_complexity)]
    pub fill: &'a mut dyn FnMut(usize, &mut [&mut [u8]]) -> Option<std::result::Result<(), String>>,
    /// Takes batch `i`'s outputs, or why it failed, in the order of `i`.
    #[allow(clippy::type_complexity)]
    pub deliver: &'a mut dyn FnMut(usize, std::result::Result<TVec<Tensor>, String>),
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
    /// Run at batch `batch` on inputs already in device memory, writing the outputs to
    /// device memory (no host round trip), where the engine can (GPU engines). Sizes are
    /// checked against the engine's inputs and outputs at this batch.
    ///
    /// # Safety
    /// Each buffer must be device memory of the engine's CUDA context, valid for the bytes
    /// it gives, and not written by anything else until the call returns.
    unsafe fn run_device(
        &self,
        _batch: usize,
        _inputs: &[DeviceBuffer],
        _outputs: &[DeviceBuffer],
    ) -> Option<Result<()>> {
        None
    }
    /// Run a stream of batches, host memory in and out, with the copies of some batches
    /// overlapped with the compute of others, where the engine can (GPU engines: pinned
    /// staging, an upload, a compute and a download stream). An error is returned for what
    /// stops the stream (a CUDA failure); a batch that `fill` refuses is delivered as its
    /// error and the stream goes on.
    fn run_stream(&self, _stream: &mut HostStream<'_>) -> Option<Result<()>> {
        None
    }
}

/// The precision a quantized layer (one reading a DequantizeLinear) runs in, and why: what
/// `EngineBuilder::layer_precisions` reports for INT8 engines.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerPrecision {
    pub layer: String,
    /// `int8`, or the engine's own precision.
    pub precision: String,
    pub why: String,
}

/// Builds engines for segments (when a plan is loaded, from the payload it stored).
pub trait EngineBuilder: Send + Sync {
    fn name(&self) -> &'static str;
    /// What this builder's engines accept, node by node: the partitioner's table. A node
    /// it accepts is one `build` lowers.
    fn support(&self) -> &dyn OpSupport;
    /// Why no engine can be built on this machine, if none can (no GPU, a missing library).
    fn unavailable(&self) -> Option<String>;
    /// Build the engine for a segment's nodes, whose inputs and outputs are `io`.
    fn build(
        &self,
        g: &Graph,
        nodes: &[NodeId],
        io: &SubgraphIo,
        opts: &EngineOptions,
        payload: Option<&EnginePayload>,
    ) -> Result<Box<dyn Engine>>;
    /// The precision each quantized layer of a segment would run in, and why (decided
    /// without a GPU; empty for builders without INT8 layers).
    fn layer_precisions(
        &self,
        _g: &Graph,
        _nodes: &[NodeId],
        _io: &SubgraphIo,
        _opts: &EngineOptions,
    ) -> Result<Vec<LayerPrecision>> {
        Ok(vec![])
    }
}

/// A builder with no engines: every node runs on the CPU (a build without GPU support,
/// and tests of the CPU path).
pub struct NoEngines;

impl OpSupport for NoEngines {
    fn name(&self) -> &'static str {
        "none"
    }
    fn check(&self, _g: &Graph, _id: NodeId) -> std::result::Result<(), FallbackReason> {
        Err(FallbackReason::UnsupportedOp)
    }
}

impl EngineBuilder for NoEngines {
    fn name(&self) -> &'static str {
        "none"
    }
    fn support(&self) -> &dyn OpSupport {
        self
    }
    fn unavailable(&self) -> Option<String> {
        Some("no engine builder in this build".into())
    }
    fn build(
        &self,
        _g: &Graph,
        _nodes: &[NodeId],
        _io: &SubgraphIo,
        _opts: &EngineOptions,
        _payload: Option<&EnginePayload>,
    ) -> Result<Box<dyn Engine>> {
        Err(crate::EngineError::Unavailable(
            "none".into(),
            "no engine builder in this build".into(),
        ))
    }
}
