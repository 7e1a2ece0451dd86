//! A stream of batches from host memory to host memory with the copies overlapped with
//! the compute (what `trtexec --streams` and TensorRT serving stacks do).
//!
//! `depth` staging slots, each with page-locked host buffers and device buffers for every
//! input and output, and three CUDA streams: uploads, the engine's own stream (compute),
//! downloads. Batch `i` uses slot `i % depth`:
//!
//! ```text
//! upload:   H2D pinned_in -> dev_in                          record up[k]
//! compute:  wait up[k]; dev_in -> instance inputs; replay;
//!           instance outputs -> dev_out                      record done[k]
//! download: wait done[k]; D2H dev_out -> pinned_out          record down[k]
//! ```
//!
//! The host fills slot `k` only after `down[k]` of the batch that used it before has
//! completed (that batch is delivered then), so every buffer of a slot is free when it is
//! reused: while batch `i` computes, batch `i + 1` uploads and batch `i - 1` downloads.
//! The device-to-device copies into and out of the instance's own buffers keep its CUDA
//! graph unchanged (they cost about 1% of a ResNet-50 batch at 128).

use super::CudaEngine;
use crate::error::{cuda_err, Result};
use crate::exec::Instance;
use crate::program::host::decode_f32;
use cudarc::driver::{result as drv, CudaEvent, CudaSlice, CudaStream, DevicePtr};
use cudarc::driver::{PinnedHostSlice, ValidAsZeroBits};
use std::collections::VecDeque;
use std::sync::Arc;
use trtc_engine::HostStream;
use trtc_ir::tract_onnx::prelude::{TVec, Tensor};

/// The buffers and events of one batch in flight.
struct Slot {
    host_in: Vec<PinnedHostSlice<u8>>,
    dev_in: Vec<CudaSlice<u8>>,
    dev_out: Vec<CudaSlice<u8>>,
    host_out: Vec<PinnedHostSlice<u8>>,
    up: CudaEvent,
    done: CudaEvent,
    down: CudaEvent,
    /// The batch in it now: its index, and why it failed to fill if it did.
    batch: Option<(usize, Option<String>)>,
}

fn pinned(ctx: &Arc<cudarc::driver::CudaContext>, bytes: usize) -> Result<PinnedHostSlice<u8>> {
    // Plain page-locked memory (not write-combined: outputs are read on the host).
    // Safety: the bytes are written (inputs by `fill`, outputs by a download) before read.
    unsafe { ctx.alloc_pinned_with_flags::<u8>(bytes.max(1), 0) }
        .map_err(|e| cuda_err("pinned host memory", format!("{bytes} bytes: {e}")))
}

fn host_slice<T: ValidAsZeroBits>(p: &mut PinnedHostSlice<T>) -> Result<&mut [T]> {
    p.as_mut_slice()
        .map_err(|e| cuda_err("pinned host memory", e))
}

impl CudaEngine {
    /// `Engine::run_stream` for CUDA engines (see the module's doc).
    pub(super) fn stream(&self, hs: &mut HostStream<'_>) -> Result<()> {
        let p = &self.exec.program;
        let dev = &self.exec.dev;
        let batch = hs.batch;
        let depth = hs.depth.max(1);
        // Each boundary slot's own element size: f32, or 1 byte for u8 pixels.
        let bytes = |s: usize| p.numel(s, batch) * p.slots[s].elem_bytes();
        let in_bytes: Vec<usize> = p.inputs.iter().map(|&s| bytes(s)).collect();
        let out_bytes: Vec<usize> = p.outputs.iter().map(|&s| bytes(s)).collect();
        let ctx = &dev.ctx;
        ctx.bind_to_thread().map_err(|e| cuda_err("context", e))?;
        let err = |what: &'static str| move |e: cudarc::driver::DriverError| cuda_err(what, e);
        let up_stream = ctx.new_stream().map_err(err("upload stream"))?;
        let down_stream = ctx.new_stream().map_err(err("download stream"))?;
        let event = || ctx.new_event(None).map_err(err("stream event"));
        let alloc = |bytes: usize| {
            dev.stream
                .alloc_zeros::<u8>(bytes.max(1))
                .map_err(|e| cuda_err("staging buffers", format!("{bytes} bytes: {e}")))
        };
        let mut slots = (0..depth)
            .map(|_| {
                Ok(Slot {
                    host_in: in_bytes
                        .iter()
                        .map(|&b| pinned(ctx, b))
                        .collect::<Result<_>>()?,
                    dev_in: in_bytes.iter().map(|&b| alloc(b)).collect::<Result<_>>()?,
                    dev_out: out_bytes.iter().map(|&b| alloc(b)).collect::<Result<_>>()?,
                    host_out: out_bytes
                        .iter()
                        .map(|&b| pinned(ctx, b))
                        .collect::<Result<_>>()?,
                    up: event()?,
                    done: event()?,
                    down: event()?,
                    batch: None,
                })
            })
            .collect::<Result<Vec<Slot>>>()?;
        dev.stream.synchronize().map_err(err("staging buffers"))?;
        self.with_batch(batch, |inst| {
            let mut in_flight: VecDeque<usize> = VecDeque::new();
            let mut i = 0;
            loop {
                let k = i % depth;
                if in_flight.len() == depth {
                    if let Some(oldest) = in_flight.pop_front() {
                        self.deliver(&mut slots[oldest], batch, hs)?;
                    }
                }
                let slot = &mut slots[k];
                let filled = {
                    let mut bufs = slot
                        .host_in
                        .iter_mut()
                        .zip(&in_bytes)
                        .map(|(h, &n)| host_slice(h).map(|s| &mut s[..n]))
                        .collect::<Result<Vec<&mut [u8]>>>()?;
                    (hs.fill)(i, &mut bufs)
                };
                match filled {
                    None => break,
                    Some(Err(why)) => slot.batch = Some((i, Some(why))),
                    Some(Ok(())) => {
                        self.enqueue(slot, inst, &up_stream, &down_stream, &in_bytes, &out_bytes)?;
                        slot.batch = Some((i, None));
                    }
                }
                in_flight.push_back(k);
                i += 1;
            }
            while let Some(k) = in_flight.pop_front() {
                self.deliver(&mut slots[k], batch, hs)?;
            }
            Ok(())
        })
    }

    /// Queue one filled slot's upload, run and download.
    fn enqueue(
        &self,
        slot: &mut Slot,
        inst: &mut Instance,
        up: &Arc<CudaStream>,
        down: &Arc<CudaStream>,
        in_bytes: &[usize],
        out_bytes: &[usize],
    ) -> Result<()> {
        let p = &self.exec.program;
        let compute = &self.exec.dev.stream;
        let err = |what: &'static str| move |e: cudarc::driver::DriverError| cuda_err(what, e);
        for ((h, d), &n) in slot.host_in.iter_mut().zip(&slot.dev_in).zip(in_bytes) {
            let src = &host_slice(h)?[..n];
            // Safety: `d` holds at least `n` bytes; the host buffer stays untouched until
            // this slot's `down` event has completed.
            unsafe { drv::memcpy_htod_async(d.device_ptr(up).0, src, up.cu_stream()) }
                .map_err(err("upload"))?;
        }
        slot.up.record(up).map_err(err("upload"))?;
        compute.wait(&slot.up).map_err(err("upload"))?;
        let dtod = |dst: u64, src: u64, bytes: usize, what: &'static str| {
            // Safety: both buffers are live device memory of at least `bytes`.
            unsafe { drv::memcpy_dtod_async(dst, src, bytes, compute.cu_stream()) }
                .map_err(err(what))
        };
        for ((&s, d), &n) in p.inputs.iter().zip(&slot.dev_in).zip(in_bytes) {
            dtod(inst.ptrs[s], d.device_ptr(compute).0, n, "staged input")?;
        }
        self.exec.replay(inst)?;
        for ((&s, d), &n) in p.outputs.iter().zip(&slot.dev_out).zip(out_bytes) {
            dtod(d.device_ptr(compute).0, inst.ptrs[s], n, "staged output")?;
        }
        slot.done.record(compute).map_err(err("run"))?;
        down.wait(&slot.done).map_err(err("download"))?;
        for ((h, d), &n) in slot.host_out.iter_mut().zip(&slot.dev_out).zip(out_bytes) {
            let dst = &mut host_slice(h)?[..n];
            // Safety: as the upload; the host reads it after `down` has completed.
            unsafe { drv::memcpy_dtoh_async(dst, d.device_ptr(down).0, down.cu_stream()) }
                .map_err(err("download"))?;
        }
        slot.down.record(down).map_err(err("download"))
    }

    /// Wait for a slot's batch and hand its outputs (or its fill error) over.
    fn deliver(&self, slot: &mut Slot, batch: usize, hs: &mut HostStream<'_>) -> Result<()> {
        let Some((i, failed)) = slot.batch.take() else {
            return Ok(());
        };
        if let Some(why) = failed {
            (hs.deliver)(i, Err(why));
            return Ok(());
        }
        slot.down
            .synchronize()
            .map_err(|e| cuda_err("download", format!("batch {i}: {e}")))?;
        let p = &self.exec.program;
        let mut outs = TVec::new();
        for (&s, h) in p.outputs.iter().zip(slot.host_out.iter_mut()) {
            let shape = p.shape(s, batch);
            let n: usize = shape.iter().product();
            let values = decode_f32(&host_slice(h)?[..n * 4]);
            let t = Tensor::from_shape(&shape, &values).map_err(|e| cuda_err("output", e))?;
            outs.push(t);
        }
        (hs.deliver)(i, Ok(outs));
        Ok(())
    }
}
