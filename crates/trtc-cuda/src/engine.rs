//! The CUDA engine of one segment: its executor, and per batch size an instance (buffers
//! and tactics, cached up to --max-cached-engines), built from the plan's tactics where it
//! stored some that still apply, else timed now. The top of the engine: it asks the
//! instance builder (`instance.rs`) below it, and is asked by `CudaBuilder`.

use crate::error::{cuda_err, Result};
use crate::exec::{DirectForm, Exec, Instance};
use crate::program::host::decode_f32;
use crate::program::{Program, Step};
use crate::sys::device::Device;
use crate::tactics::saved::{EngineTactics, InstanceTactics};
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use trtc_engine::{DeviceBuffer, Engine, EnginePayload, HostStream, LayerTiming};
use trtc_ir::tract_onnx::prelude::{DatumType, IntoTValue, TValue, TVec, Tensor};

pub(crate) mod int8_choice;
mod stream;

pub struct CudaEngine {
    exec: Exec,
    max_instances: usize,
    /// Least recently used first.
    instances: Mutex<Vec<Instance>>,
    /// The GPU's name, which stored tactics must match.
    device_name: String,
    /// Tactics read from a plan, by batch size.
    preset: HashMap<usize, InstanceTactics>,
    /// What each batch size built so far runs (timed or from the plan).
    used: Mutex<BTreeMap<usize, InstanceTactics>>,
}

// Safety: instances hold raw cuDNN descriptors and CUDA graphs; they are only used under
// the `instances` lock, one run at a time, on the engine's one stream.
unsafe impl Send for CudaEngine {}
unsafe impl Sync for CudaEngine {}

impl CudaEngine {
    pub(crate) fn new(
        dev: Arc<Device>,
        program: Program,
        workspace_limit: usize,
        max_instances: usize,
        payload: Option<&[u8]>,
    ) -> Result<Self> {
        let device_name = dev.ctx.name().unwrap_or_default();
        let mut preset = HashMap::new();
        if let Some(bytes) = payload {
            let stored: EngineTactics = serde_json::from_slice(bytes)
                .map_err(|e| cuda_err("engine payload", format!("corrupt tactics: {e}")))?;
            if stored.device == device_name {
                preset = stored.instances.into_iter().map(|t| (t.batch, t)).collect();
            } else {
                tracing::warn!(
                    "the plan's tactics were timed on {}, this is {device_name}: timing again",
                    stored.device
                );
            }
        }
        Ok(CudaEngine {
            exec: Exec::new(dev, program, workspace_limit)?,
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
        let ex = &self.exec;
        if let Some(t) = self.preset.get(&batch) {
            match ex.build_instance(batch, Some(t), true) {
                Ok(inst) => {
                    self.remember(&inst, true);
                    return Ok(inst);
                }
                Err(e) => tracing::warn!(
                    "the plan's tactics for batch {batch} do not apply here ({e}): timing again"
                ),
            }
        }
        // A tactic that refuses a concat input computed in place: build again without.
        let inst = match ex.build_instance(batch, None, true) {
            Ok(inst) => inst,
            Err(e) => {
                tracing::debug!(
                    "batch {batch}: {e}; building again without in-place concat inputs"
                );
                ex.build_instance(batch, None, false)?
            }
        };
        self.remember(&inst, false);
        Ok(inst)
    }

    fn remember(&self, inst: &Instance, from_plan: bool) {
        let t = self.exec.record(inst, from_plan);
        if let Ok(mut used) = self.used.lock() {
            used.insert(inst.batch, t);
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
        let p = &self.exec.program;
        let batch = inputs
            .first()
            .and_then(|t| t.shape().first().copied())
            .unwrap_or(1);
        self.with_batch(batch, |inst| {
            let s = &self.exec.dev.stream;
            for (&slot, t) in p.inputs.iter().zip(inputs.iter()) {
                let want = p.shape(slot, batch);
                if t.shape() != want.as_slice() {
                    return Err(cuda_err(
                        "input",
                        format!("shape {:?}, engine built for {want:?}", t.shape()),
                    ));
                }
                // A u8 input (8-bit pixels) goes up as its bytes, anything else as f32.
                let want_dt = match p.slots[slot].pixels {
                    true => DatumType::U8,
                    false => DatumType::F32,
                };
                if t.datum_type() != want_dt {
                    return Err(cuda_err(
                        "input",
                        format!("{:?} data, the engine takes {want_dt:?}", t.datum_type()),
                    ));
                }
                let host = t.as_bytes();
                let buf = inst.buffers[p.storage(slot)]
                    .as_mut()
                    .ok_or_else(|| cuda_err("input", "no buffer"))?;
                s.memcpy_htod(host, buf)
                    .map_err(|e| cuda_err("upload", e))?;
            }
            f(inst)
        })
    }

    /// Find or build the instance for `batch` and call `f` with it.
    fn with_batch<R>(&self, batch: usize, f: impl FnOnce(&mut Instance) -> Result<R>) -> Result<R> {
        self.exec
            .dev
            .ctx
            .bind_to_thread()
            .map_err(|e| cuda_err("context", e))?;
        let mut cache = self
            .instances
            .lock()
            .map_err(|_| cuda_err("engine", "instance cache poisoned"))?;
        match cache.iter().position(|i| i.batch == batch) {
            // Least recently used first: a hit moves to the back.
            Some(pos) => {
                let inst = cache.remove(pos);
                cache.push(inst);
            }
            None => {
                if cache.len() >= self.max_instances {
                    let old = cache.remove(0);
                    tracing::info!(
                        "engine cache full (--max-cached-engines {}): dropping the instance of batch {}",
                        self.max_instances,
                        old.batch
                    );
                }
                let inst = self.instance(batch)?;
                cache.push(inst);
            }
        }
        let inst = cache
            .last_mut()
            .ok_or_else(|| cuda_err("engine", "instance vanished"))?;
        f(inst)
    }

    /// FLOPs and minimum bytes moved by step `i` at batch `b`.
    fn step_work(&self, i: usize, b: usize) -> (&'static str, u64, u64) {
        let p = &self.exec.program;
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
            Step::ConvInt8 {
                x, y, z, w_dims, ..
            } => {
                let per_out = (w_dims[1] * w_dims[2] * w_dims[3]) as u64;
                let w = w_dims.iter().map(|&d| d as u64).product::<u64>();
                (
                    "conv_int8",
                    2 * n(*y) * per_out,
                    n(*x) + n(*y) + w + z.map(n).unwrap_or(0),
                )
            }
            Step::Quantize { x, .. } => ("quantize", n(*x), (e + 1) * n(*x)),
            Step::Dequantize { x, .. } => ("dequantize", n(*x), (e + 1) * n(*x)),
            Step::Pool {
                x,
                y,
                kernel,
                bias,
                act,
                ..
            } => {
                let epilogue = bias.is_some() as u64 + act.is_some() as u64;
                (
                    "pool",
                    n(*y) * ((kernel[0] * kernel[1]) as u64 + epilogue),
                    e * (n(*x) + n(*y) + bias.map(n).unwrap_or(0)),
                )
            }
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
                let m = (p.numel(*a, b) / (*k).max(1)) as u64;
                (
                    "gemm",
                    2 * m * *cols as u64 * *k as u64,
                    e * (n(*a) + (*k * *cols) as u64 + n(*y)),
                )
            }
            Step::Softmax { x, y } => ("softmax", 3 * n(*x), e * (n(*x) + n(*y))),
            Step::BatchedMatMul { a, b: bm, y, k, .. } => (
                "batched_matmul",
                2 * n(*y) * *k as u64,
                e * (n(*a) + n(*bm) + n(*y)),
            ),
            Step::Convert { x, .. } => ("convert", 0, (4 + e) * n(*x)),
            Step::Pixels { x, y, ops, .. } => {
                ("pixels", n(*y) * ops.len() as u64, n(*x) + e * n(*y))
            }
            Step::Relayout { x, .. } => ("relayout", 0, 2 * e * n(*x)),
            Step::Transpose { x, .. } => ("transpose", 0, 2 * e * n(*x)),
            Step::Gather { y, .. } => ("gather", 0, 2 * e * n(*y)),
            Step::Resize { x, y, linear, .. } => (
                "resize",
                if *linear { 6 * n(*y) } else { 0 },
                e * (n(*x) + n(*y)),
            ),
            Step::ConvTranspose { x, y, w_dims, .. } => {
                let w = w_dims.iter().map(|&d| d as u64).product::<u64>();
                // Each input element meets every tap of its group's output channels.
                let per_in = (w_dims[1] * w_dims[2] * w_dims[3]) as u64;
                (
                    "conv_transpose",
                    2 * n(*x) * per_in,
                    e * (n(*x) + n(*y)) + 4 * w,
                )
            }
            Step::Reduce { x, y, .. } => ("reduce", 3 * n(*x), e * (n(*x) + n(*y))),
            Step::Lrn { x, y, size, .. } => {
                ("lrn", n(*x) * (2 * *size as u64 + 8), e * (n(*x) + n(*y)))
            }
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
        let p = &self.exec.program;
        self.with_instance(&inputs, |inst| {
            self.exec.replay(inst)?;
            let s = &self.exec.dev.stream;
            let mut out = TVec::new();
            for &slot in &p.outputs {
                let st = p.storage(slot);
                let bytes: Vec<u8> = match (&inst.buffers[st], &p.slots[st].constant) {
                    (Some(b), _) => s.clone_dtoh(b),
                    (None, Some(c)) => s.clone_dtoh(&self.exec.weights[c.0]),
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
            let s = &self.exec.dev.stream;
            let err = |e: cudarc::driver::DriverError| cuda_err("timing", e);
            let (start, end) = self.exec.event_pair("timing")?;
            let mut times = Vec::with_capacity(iterations);
            for i in 0..iterations + 3 {
                start.record(s).map_err(err)?;
                self.exec.replay(inst)?;
                end.record(s).map_err(err)?;
                end.synchronize().map_err(err)?;
                if i >= 3 {
                    times.push(start.elapsed_ms(&end).map_err(err)? as f64);
                }
            }
            Ok(times)
        }))
    }

    unsafe fn run_device(
        &self,
        batch: usize,
        inputs: &[DeviceBuffer],
        outputs: &[DeviceBuffer],
    ) -> Option<Result<()>> {
        let p = &self.exec.program;
        let check = |what: &str, slots: &[usize], bufs: &[DeviceBuffer]| -> Result<()> {
            if slots.len() != bufs.len() {
                return Err(cuda_err(
                    "device buffers",
                    format!(
                        "{} {what}s given, the engine has {}",
                        bufs.len(),
                        slots.len()
                    ),
                ));
            }
            for (i, (&slot, b)) in slots.iter().zip(bufs).enumerate() {
                // Each slot's own element size: 1 byte for a u8 (pixels) input.
                let elem = p.slots[slot].elem_bytes();
                let want = p.numel(slot, batch) * elem;
                if b.bytes != want || b.ptr == 0 {
                    return Err(cuda_err(
                        "device buffers",
                        format!(
                            "{what} {i}: {} bytes at {:#x}, the engine takes {want} ({}{:?}{})",
                            b.bytes,
                            b.ptr,
                            if elem == 1 { "u8" } else { "f32" },
                            p.shape(slot, batch),
                            if b.ptr == 0 {
                                ", and a null address"
                            } else {
                                ""
                            }
                        ),
                    ));
                }
            }
            Ok(())
        };
        if let Err(e) = check("input", &p.inputs, inputs).and(check("output", &p.outputs, outputs))
        {
            return Some(Err(e));
        }
        Some(self.with_batch(batch, |inst| {
            let s = &self.exec.dev.stream;
            let copy = |dst: u64, src: u64, bytes: usize, what: &str| {
                // Safety: the caller vouches for its buffers; the instance's are its own.
                unsafe { cudarc::driver::result::memcpy_dtod_async(dst, src, bytes, s.cu_stream()) }
                    .map_err(|e| cuda_err(what, e))
            };
            for (&slot, b) in p.inputs.iter().zip(inputs) {
                copy(inst.ptrs[slot], b.ptr, b.bytes, "device input")?;
            }
            self.exec.replay(inst)?;
            for (&slot, b) in p.outputs.iter().zip(outputs) {
                copy(b.ptr, inst.ptrs[slot], b.bytes, "device output")?;
            }
            s.synchronize().map_err(|e| cuda_err("run", e))
        }))
    }

    fn run_stream(&self, stream: &mut HostStream<'_>) -> Option<Result<()>> {
        Some(self.stream(stream))
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
            for i in 0..self.exec.program.steps.len() {
                let ms = self.exec.time_step(inst, i)? as f64;
                let (kind, flops, bytes) = self.step_work(i, inst.batch);
                out.push(LayerTiming {
                    layer: self.exec.program.names[i].clone(),
                    kind,
                    ms,
                    flops,
                    bytes,
                    tactic: tactic_name(inst, i),
                });
            }
            Ok(out)
        }))
    }
}

/// What runs step `i` of `inst`, where a tactic chose it (convs, products).
fn tactic_name(inst: &Instance, i: usize) -> String {
    if let Some(r) = inst.convs.get(&i) {
        if r.pointwise {
            return "trtc pointwise mma".into();
        }
        if r.direct {
            return match r.form {
                DirectForm::Pixel => "trtc direct",
                DirectForm::Rows => "trtc rows",
                DirectForm::Tiles => "trtc tiles",
                DirectForm::HalfTiles => "trtc half2 tiles",
                DirectForm::Mma => "trtc mma",
            }
            .into();
        }
        return match (&r.gemm, r.unfused) {
            (Some(_), _) => "cublaslt".into(),
            (None, true) => format!("cudnn algo {} + epilogue", r.algo as i32),
            (None, false) => format!("cudnn algo {} fused", r.algo as i32),
        };
    }
    if inst.gemms.contains_key(&i) {
        return "cublaslt".into();
    }
    if let Some(r) = inst.qconvs.get(&i) {
        return match &r.own {
            Some(own) => own.tactic(),
            None => "cudnn int8 fused".into(),
        };
    }
    String::new()
}
