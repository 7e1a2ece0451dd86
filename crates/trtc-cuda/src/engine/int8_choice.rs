//! INT8 as a permission, not an order: a segment of an INT8 build is lowered twice, with
//! its quantized convs in INT8 (`passes/int8_convs.rs`) and with its Q/DQ nodes dropped
//! (plain FP16). At each batch size, the first time it runs, both engines are built and
//! timed (resident, between CUDA events, median of a few runs) and the faster one runs
//! that batch from then on: TensorRT's rule that INT8 is used where it is faster. The
//! plan stores both engines' tactics and the choice per batch, so loading it times
//! nothing. `TRTC_INT8_CHOICE=int8` or `fp16` forces one (profiling, accuracy checks).

use super::CudaEngine;
use crate::error::{cuda_err, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Mutex;
use trtc_engine::{DeviceBuffer, Engine, EnginePayload, HostStream, LayerTiming};
use trtc_ir::tract_onnx::prelude::{DatumType, IntoTValue, TValue, TVec, Tensor};

/// The payload kind of an INT8 engine's plan entry.
pub const KIND: &str = "cuda-int8-choice";

/// Batch size -> whether INT8 runs it, with the INT8 and FP16 timings (ms).
type Choices = BTreeMap<usize, (bool, f64, f64)>;

/// What a plan stores for an INT8 engine: each engine's tactics, and the choices.
#[derive(Default, Serialize, Deserialize)]
pub(crate) struct Stored {
    pub(crate) int8: Option<Vec<u8>>,
    pub(crate) fp16: Option<Vec<u8>>,
    pub(crate) chosen: Choices,
}

pub struct Int8Choice {
    int8: CudaEngine,
    fp16: CudaEngine,
    chosen: Mutex<Choices>,
}

impl Int8Choice {
    /// What an `Int8Choice`'s plan payload stored (nothing without one).
    pub(crate) fn read_payload(payload: Option<&[u8]>) -> Result<Stored> {
        match payload {
            None => Ok(Stored::default()),
            Some(bytes) => serde_json::from_slice(bytes)
                .map_err(|e| cuda_err("engine payload", format!("corrupt INT8 choice: {e}"))),
        }
    }

    pub(crate) fn new(int8: CudaEngine, fp16: CudaEngine, chosen: Choices) -> Int8Choice {
        Int8Choice {
            int8,
            fp16,
            chosen: Mutex::new(chosen),
        }
    }

    /// Zero inputs at `batch` (to time a batch size first met through device buffers or a
    /// stream).
    fn zeros(&self, batch: usize) -> TVec<TValue> {
        let p = &self.int8.exec.program;
        p.inputs
            .iter()
            .map(|&s| {
                let shape = p.shape(s, batch);
                let dt = if p.slots[s].pixels {
                    DatumType::U8
                } else {
                    DatumType::F32
                };
                Tensor::zero_dt(dt, &shape)
                    .unwrap_or_else(|_| Tensor::from(0f32))
                    .into_tvalue()
            })
            .collect()
    }

    /// The engine that runs `batch`: chosen by timing both the first time.
    fn pick(&self, batch: usize, inputs: Option<&TVec<TValue>>) -> Result<&CudaEngine> {
        let known = self
            .chosen
            .lock()
            .map_err(|_| cuda_err("engine", "INT8 choice poisoned"))?
            .get(&batch)
            .copied();
        let forced = std::env::var("TRTC_INT8_CHOICE").ok();
        let int8 = match (known, forced.as_deref()) {
            // For profiling and tests: force one (the plan's choice is left as it is).
            (_, Some("int8")) => true,
            (_, Some("fp16")) => false,
            (Some((int8, _, _)), _) => int8,
            (None, _) => {
                let inputs = inputs.cloned().unwrap_or_else(|| self.zeros(batch));
                let median = |e: &CudaEngine| -> Result<f64> {
                    let mut t = e
                        .time_resident(inputs.clone(), 9)
                        .unwrap_or_else(|| Ok(vec![f64::INFINITY]))?;
                    t.sort_by(f64::total_cmp);
                    Ok(t[t.len() / 2])
                };
                let (t8, t16) = (median(&self.int8)?, median(&self.fp16)?);
                let int8 = t8 <= t16;
                tracing::info!(
                    "batch {batch}: INT8 {t8:.3} ms, FP16 {t16:.3} ms: {} runs it",
                    if int8 { "INT8" } else { "FP16" }
                );
                if let Ok(mut c) = self.chosen.lock() {
                    c.insert(batch, (int8, t8, t16));
                }
                int8
            }
        };
        Ok(if int8 { &self.int8 } else { &self.fp16 })
    }

    fn batch_of(inputs: &TVec<TValue>) -> usize {
        inputs
            .first()
            .and_then(|t| t.shape().first().copied())
            .unwrap_or(1)
    }
}

impl Engine for Int8Choice {
    fn kind(&self) -> &str {
        "cuda"
    }

    fn run(&self, inputs: TVec<TValue>) -> trtc_engine::Result<TVec<TValue>> {
        self.pick(Self::batch_of(&inputs), Some(&inputs))?
            .run(inputs)
    }

    fn profile(&self, inputs: TVec<TValue>) -> Option<trtc_engine::Result<Vec<LayerTiming>>> {
        match self.pick(Self::batch_of(&inputs), Some(&inputs)) {
            Ok(e) => e.profile(inputs),
            Err(e) => Some(Err(e)),
        }
    }

    fn payload(&self) -> Option<EnginePayload> {
        let stored = Stored {
            int8: self.int8.payload().map(|p| p.bytes),
            fp16: self.fp16.payload().map(|p| p.bytes),
            chosen: self.chosen.lock().ok()?.clone(),
        };
        Some(EnginePayload {
            kind: KIND.into(),
            bytes: serde_json::to_vec(&stored).ok()?,
        })
    }

    fn time_resident(
        &self,
        inputs: TVec<TValue>,
        iterations: usize,
    ) -> Option<trtc_engine::Result<Vec<f64>>> {
        match self.pick(Self::batch_of(&inputs), Some(&inputs)) {
            Ok(e) => e.time_resident(inputs, iterations),
            Err(e) => Some(Err(e)),
        }
    }

    unsafe fn run_device(
        &self,
        batch: usize,
        inputs: &[DeviceBuffer],
        outputs: &[DeviceBuffer],
    ) -> Option<trtc_engine::Result<()>> {
        match self.pick(batch, None) {
            // Safety: the caller's promise, passed on.
            Ok(e) => unsafe { e.run_device(batch, inputs, outputs) },
            Err(e) => Some(Err(e)),
        }
    }

    fn run_stream(&self, stream: &mut HostStream<'_>) -> Option<trtc_engine::Result<()>> {
        match self.pick(stream.batch, None) {
            Ok(e) => e.run_stream(stream),
            Err(e) => Some(Err(e)),
        }
    }
}
