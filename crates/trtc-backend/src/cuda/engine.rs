//! The CUDA engine of one segment: per batch size, device buffers and tuned cuDNN
//! convolutions ("instances", cached up to --max-cached-engines), run on one stream.

use super::concat_views::View;
use super::descriptors::{ActDesc, ConvDesc, Filter4d, Handle, Tensor4d};
use super::gemm::{LtGemm, LtHandle};
use super::host::{decode_f32, f32_bytes};
use super::program::{unsupported, Program, Step};
use super::saved::{EngineTactics, InstanceTactics};
use super::Device;
use crate::engine::{Engine, EnginePayload, LayerTiming};
use crate::error::{BackendError, Result};
use cudarc::cudnn::{result as dnn, sys as dnn_sys};
use cudarc::driver::{CudaEvent, CudaSlice, CudaStream, DevicePtr, LaunchConfig};
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use trtc_ir::tract_onnx::prelude::{IntoTValue, TValue, TVec, Tensor};

/// What a convolution needs at one batch size.
pub(super) struct ConvRun {
    pub(super) x: Tensor4d,
    pub(super) w: Filter4d,
    pub(super) y: Tensor4d,
    pub(super) bias: Tensor4d,
    /// The bias is passed as f32 (cuDNN refused it in the engine's fp16).
    pub(super) bias_f32: bool,
    /// cuDNN refused the fused call: the convolution runs alone (with its own fastest
    /// algorithm), bias, residual and activation in a kernel after it.
    pub(super) unfused: bool,
    /// A depthwise convolution run by trtc's own NHWC kernel, where timing showed it faster
    /// than cuDNN.
    pub(super) direct: bool,
    /// With `direct`, a depthwise conv run by the row-tiled form of trtc's kernel (several
    /// output pixels per thread: `direct::row_tiles`), where timing showed it faster.
    pub(super) rows: bool,
    pub(super) conv: ConvDesc,
    pub(super) act: ActDesc,
    pub(super) algo: dnn_sys::cudnnConvolutionFwdAlgo_t,
    pub(super) workspace: Option<CudaSlice<u8>>,
    /// A 1x1 convolution of an NHWC engine run as a cuBLASLt product, where timing showed
    /// it faster than cuDNN.
    pub(super) gemm: Option<LtRun>,
    /// Its output is a slice of a concat's output that cuDNN cannot write (strided NHWC):
    /// only the cuBLASLt product may run it.
    pub(super) gemm_only: bool,
    /// Asymmetric pads: the input is copied into this zero-padded buffer first
    /// (buffer, padded height and width, top and left pads).
    pub(super) padded: Option<(CudaSlice<u8>, [usize; 4])>,
}

pub(super) struct Instance {
    pub(super) batch: usize,
    /// The steps captured as a CUDA graph on the first run, replayed after; `None` with
    /// `graph_failed` when capture is refused (the steps are then launched one by one).
    pub(super) graph: Option<cudarc::driver::CudaGraph>,
    pub(super) graph_failed: bool,
    pub(super) buffers: Vec<Option<CudaSlice<u8>>>,
    pub(super) ptrs: Vec<u64>,
    pub(super) convs: HashMap<usize, ConvRun>,
    /// Gemm steps run by cuBLASLt (the others by trtc's kernel).
    pub(super) gemms: HashMap<usize, LtRun>,
    /// The internal tensors' memory (owned here; `ptrs` point into it).
    #[allow(dead_code)]
    pub(super) arena: CudaSlice<u8>,
    /// Arena bytes, and what the same tensors would take without sharing.
    pub(super) memory: (usize, usize),
    /// Concat inputs their producers write in place, by slot.
    pub(super) views: HashMap<usize, View>,
}

impl Instance {
    /// Elements between rows of slot `s` (NHWC: pixels, NCHW: images) where it is a slice
    /// of a concat's output.
    pub(super) fn ld(&self, s: usize) -> Option<usize> {
        self.views.get(&s).map(|v| v.ld)
    }
}

/// A product run by cuBLASLt, with its workspace.
pub(super) struct LtRun {
    pub(super) gemm: LtGemm,
    pub(super) workspace: Option<CudaSlice<u8>>,
}

pub struct CudaEngine {
    pub(super) dev: Arc<Device>,
    pub(super) program: Program,
    pub(super) cudnn: Handle,
    /// cuBLASLt, where the library is there.
    pub(super) lt: Option<LtHandle>,
    pub(super) workspace_limit: usize,
    max_instances: usize,
    instances: Mutex<Vec<Instance>>,
    /// The GPU's name, which stored tactics must match.
    device_name: String,
    /// Tactics read from a plan, by batch size.
    preset: HashMap<usize, InstanceTactics>,
    /// What each batch size built so far runs (timed or from the plan).
    used: Mutex<BTreeMap<usize, InstanceTactics>>,
}

// Safety: the raw cuDNN handle and descriptors are only used under the `instances` lock,
// one run at a time, on the engine's one stream.
unsafe impl Send for CudaEngine {}
unsafe impl Sync for CudaEngine {}

pub(super) fn cuda_err(layer: &str, e: impl std::fmt::Display) -> BackendError {
    BackendError::Cuda {
        layer: layer.to_string(),
        detail: e.to_string(),
    }
}

/// Device pointer and length of an optional scratch buffer ((0, 0) for none).
pub(super) fn scratch_ptr(ws: &Option<CudaSlice<u8>>, s: &Arc<CudaStream>) -> (u64, usize) {
    ws.as_ref()
        .map(|w| (w.device_ptr(s).0, w.len()))
        .unwrap_or((0, 0))
}

pub(super) fn blocks(n: usize, threads: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: ((n as u32).div_ceil(threads).max(1), 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

impl CudaEngine {
    /// Zeroed device scratch of `bytes` for layer `name` (a workspace); none for 0 bytes.
    pub(super) fn scratch(&self, name: &str, bytes: usize) -> Result<Option<CudaSlice<u8>>> {
        if bytes == 0 {
            return Ok(None);
        }
        self.dev
            .stream
            .alloc_zeros::<u8>(bytes)
            .map(Some)
            .map_err(|e| cuda_err(name, e))
    }

    /// Two timing events (start, end); errors name `what`.
    pub(super) fn event_pair(&self, what: &str) -> Result<(CudaEvent, CudaEvent)> {
        let ev = || {
            self.dev
                .ctx
                .new_event(Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT))
                .map_err(|e| cuda_err(what, e))
        };
        Ok((ev()?, ev()?))
    }

    pub(crate) fn new(
        dev: Arc<Device>,
        program: Program,
        workspace_limit: usize,
        max_instances: usize,
        payload: Option<&[u8]>,
    ) -> Result<Self> {
        dev.ctx
            .bind_to_thread()
            .map_err(|e| cuda_err("context", e))?;
        let handle = Handle(dnn::create_handle().map_err(|e| cuda_err("cudnn", e))?);
        unsafe { dnn::set_stream(handle.0, dev.stream.cu_stream() as *mut _) }
            .map_err(|e| cuda_err("cudnn", e))?;
        let device_name = dev.ctx.name().unwrap_or_default();
        let mut preset = HashMap::new();
        if let Some(bytes) = payload {
            let stored: EngineTactics = serde_json::from_slice(bytes)
                .map_err(|e| cuda_err("engine payload", format!("corrupt tactics: {e}")))?;
            if stored.device == device_name {
                preset = stored.instances.into_iter().map(|t| (t.batch, t)).collect();
            } else {
                eprintln!(
                    "trtc: the plan's tactics were timed on {}, this is {device_name}: timing again",
                    stored.device
                );
            }
        }
        Ok(CudaEngine {
            dev,
            program,
            cudnn: handle,
            lt: LtHandle::new(),
            workspace_limit,
            max_instances: max_instances.max(1),
            instances: Mutex::new(vec![]),
            device_name,
            preset,
            used: Mutex::new(BTreeMap::new()),
        })
    }

    /// The instance for `batch`: with the plan's tactics where it has some that still
    /// apply, else with tactics timed now.
    fn instance(&self, batch: usize) -> Result<Instance> {
        if let Some(t) = self.preset.get(&batch) {
            match self.build_instance(batch, Some(t), true) {
                Ok(inst) => {
                    self.remember(&inst, true);
                    return Ok(inst);
                }
                Err(e) => eprintln!(
                    "trtc: the plan's tactics for batch {batch} do not apply here ({e}): timing again"
                ),
            }
        }
        // A tactic that refuses a concat input computed in place: build again without.
        let inst = match self.build_instance(batch, None, true) {
            Ok(inst) => inst,
            Err(_) => self.build_instance(batch, None, false)?,
        };
        self.remember(&inst, false);
        Ok(inst)
    }

    fn remember(&self, inst: &Instance, from_plan: bool) {
        let t = self.record(inst, from_plan);
        if let Ok(mut used) = self.used.lock() {
            used.insert(inst.batch, t);
        }
    }
}

impl CudaEngine {
    /// Launch the steps through the instance's CUDA graph, capturing it on first use.
    fn replay(&self, inst: &mut Instance) -> Result<()> {
        use cudarc::driver::sys::{CUgraphInstantiate_flags, CUstreamCaptureMode};
        let s = &self.dev.stream;
        if inst.graph.is_none() && !inst.graph_failed {
            s.begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED)
                .map_err(|e| cuda_err("graph capture", e))?;
            let launched = self.launch_steps(inst);
            let captured = s.end_capture(CUgraphInstantiate_flags(0));
            match (launched, captured) {
                (Ok(()), Ok(Some(g))) => inst.graph = Some(g),
                (Err(e), _) => return Err(e),
                (Ok(()), other) => {
                    inst.graph_failed = true;
                    let why = match other {
                        Err(e) => e.to_string(),
                        _ => "nothing captured".into(),
                    };
                    eprintln!(
                        "trtc: batch {}: CUDA graph capture failed ({why}); layers launch one by one",
                        inst.batch
                    );
                }
            }
        }
        match &inst.graph {
            Some(g) => g.launch().map_err(|e| cuda_err("graph launch", e)),
            None => self.launch_steps(inst),
        }
    }
}

impl CudaEngine {
    /// Find or build the instance for the inputs' batch, upload the inputs, and call `f`.
    fn with_instance<R>(
        &self,
        inputs: &TVec<TValue>,
        f: impl FnOnce(&mut Instance) -> Result<R>,
    ) -> Result<R> {
        let p = &self.program;
        let batch = inputs
            .first()
            .and_then(|t| t.shape().first().copied())
            .unwrap_or(1);
        self.dev
            .ctx
            .bind_to_thread()
            .map_err(|e| cuda_err("context", e))?;
        let mut cache = self
            .instances
            .lock()
            .map_err(|_| cuda_err("engine", "instance cache poisoned"))?;
        if !cache.iter().any(|i| i.batch == batch) {
            if cache.len() >= self.max_instances {
                cache.remove(0);
            }
            let inst = self.instance(batch)?;
            cache.push(inst);
        }
        let inst = cache
            .iter_mut()
            .find(|i| i.batch == batch)
            .ok_or_else(|| cuda_err("engine", "instance vanished"))?;
        let s = &self.dev.stream;
        for (&slot, t) in p.inputs.iter().zip(inputs.iter()) {
            let want = p.shape(slot, batch);
            if t.shape() != want.as_slice() {
                return Err(unsupported(
                    "input",
                    format!("shape {:?}, engine built for {want:?}", t.shape()),
                ));
            }
            let host = t
                .to_plain_array_view::<f32>()
                .map_err(|e| cuda_err("input", e))?;
            let host = host
                .as_slice()
                .ok_or_else(|| cuda_err("input", "not contiguous"))?;
            let buf = inst.buffers[p.storage(slot)]
                .as_mut()
                .ok_or_else(|| cuda_err("input", "no buffer"))?;
            s.memcpy_htod(f32_bytes(host), buf)
                .map_err(|e| cuda_err("upload", e))?;
        }
        f(inst)
    }

    /// FLOPs and minimum bytes moved by step `i` at batch `b`.
    fn step_work(&self, i: usize, b: usize) -> (&'static str, u64, u64) {
        let p = &self.program;
        let n = |slot: usize| p.shape(slot, b).iter().product::<usize>() as u64;
        let e = if p.half { 2 } else { 4 };
        match &p.steps[i] {
            Step::Conv {
                x, y, z, w_dims, ..
            } => {
                let per_out = (w_dims[1] * w_dims[2] * w_dims[3]) as u64;
                let w = w_dims.iter().map(|&d| d as u64).product::<u64>();
                (
                    "conv",
                    2 * n(*y) * per_out,
                    e * (n(*x) + n(*y) + w + z.map(n).unwrap_or(0)),
                )
            }
            Step::Pool { x, y, kernel, .. } => (
                "pool",
                n(*y) * (kernel[0] * kernel[1]) as u64,
                e * (n(*x) + n(*y)),
            ),
            Step::GlobalPool { x, y, .. } => ("global_pool", n(*x), e * (n(*x) + n(*y))),
            Step::Binary { a, b: bb, y, .. } => {
                ("elementwise", n(*y), e * (n(*a) + n(*bb) + n(*y)))
            }
            Step::Act { x, y, .. } => ("activation", n(*y), e * (n(*x) + n(*y))),
            Step::Concat { y, .. } => ("concat", 0, 2 * e * n(*y)),
            Step::Split { x, .. } => ("split", 0, 2 * e * n(*x)),
            Step::Gemm {
                a, y, n: cols, k, ..
            } => {
                let m = p.shape(*a, b)[0] as u64;
                (
                    "gemm",
                    2 * m * *cols as u64 * *k as u64,
                    e * (n(*a) + (*k * *cols) as u64 + n(*y)),
                )
            }
            Step::Softmax { x, y } => ("softmax", 3 * n(*x), e * (n(*x) + n(*y))),
            Step::Convert { x, .. } => ("convert", 0, (4 + e) * n(*x)),
            Step::Relayout { x, .. } => ("relayout", 0, 2 * e * n(*x)),
            Step::Chain { inputs, y, ops } => (
                "elementwise",
                n(*y) * ops.len() as u64,
                e * (inputs.iter().map(|&s| n(s)).sum::<u64>() + n(*y)),
            ),
        }
    }
}

impl Engine for CudaEngine {
    fn kind(&self) -> &str {
        "cuda"
    }

    fn run(&self, inputs: TVec<TValue>) -> Result<TVec<TValue>> {
        let p = &self.program;
        self.with_instance(&inputs, |inst| {
            self.replay(inst)?;
            let s = &self.dev.stream;
            let mut out = TVec::new();
            for &slot in &p.outputs {
                let st = p.storage(slot);
                let bytes: Vec<u8> = match (&inst.buffers[st], &p.slots[st].constant) {
                    (Some(b), _) => s.clone_dtoh(b),
                    (None, Some(c)) => s.clone_dtoh(c),
                    _ => return Err(cuda_err("output", "no buffer")),
                }
                .map_err(|e| cuda_err("download", e))?;
                let host = decode_f32(&bytes);
                let shape = p.shape(slot, inst.batch);
                let n: usize = shape.iter().product();
                let t = Tensor::from_shape(&shape, &host[..n.min(host.len())])
                    .map_err(|e| cuda_err("output", e))?;
                out.push(t.into_tvalue());
            }
            s.synchronize().map_err(|e| cuda_err("run", e))?;
            Ok(out)
        })
    }

    fn time_resident(&self, inputs: TVec<TValue>, iterations: usize) -> Option<Result<Vec<f64>>> {
        // GPU time between CUDA events around each replay, as PyTorch's benchmarks measure.
        Some(self.with_instance(&inputs, |inst| {
            let s = &self.dev.stream;
            let err = |e: cudarc::driver::DriverError| cuda_err("timing", e);
            let (start, end) = self.event_pair("timing")?;
            let mut times = Vec::with_capacity(iterations);
            for i in 0..iterations + 3 {
                start.record(s).map_err(err)?;
                self.replay(inst)?;
                end.record(s).map_err(err)?;
                end.synchronize().map_err(err)?;
                if i >= 3 {
                    times.push(start.elapsed_ms(&end).map_err(err)? as f64);
                }
            }
            Ok(times)
        }))
    }

    fn payload(&self) -> Option<EnginePayload> {
        let instances: Vec<InstanceTactics> = self.used.lock().ok()?.values().cloned().collect();
        let t = EngineTactics {
            device: self.device_name.clone(),
            instances,
        };
        Some(EnginePayload {
            kind: "cuda-tactics".into(),
            bytes: serde_json::to_vec(&t).ok()?,
        })
    }

    fn profile(&self, inputs: TVec<TValue>) -> Option<Result<Vec<LayerTiming>>> {
        // Each step replayed from a CUDA graph of a few launches (as tactics are timed), so
        // the host's cost of a call does not count: the layers add up to about the
        // engine's own GPU time.
        Some(self.with_instance(&inputs, |inst| {
            let mut out = vec![];
            for i in 0..self.program.steps.len() {
                let ms = self.time_step(inst, i)? as f64;
                let (kind, flops, bytes) = self.step_work(i, inst.batch);
                out.push(LayerTiming {
                    layer: self.program.names[i].clone(),
                    kind,
                    ms,
                    flops,
                    bytes,
                });
            }
            Ok(out)
        }))
    }
}
