//! Pipelined runs: a stream of batches from host memory to host memory.
//!
//! A model that is one GPU engine from its inputs to its outputs runs the stream through
//! the engine's pinned staging and copy streams ([`trtc_engine::Engine::run_stream`]):
//! uploads, compute and downloads of consecutive batches overlap. Any other model (CPU
//! segments, no GPU) runs the batches one after another through `run`, with the same
//! contract: outputs in order, each with its index; a batch of the wrong shape or dtype is
//! delivered as its error and the rest still run.

use super::host_copy::copy_parallel;
use super::HybridModel;
use crate::error::{BackendError, Result};
use serde::Serialize;
use trtc_engine::HostStream;
use trtc_ir::eval::check_shapes;
use trtc_ir::tract_onnx::prelude::{DatumType, TVec};
use trtc_ir::Tensor;

/// What a pipelined run did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PipelineReport {
    /// Batches delivered with outputs.
    pub delivered: usize,
    /// Batches delivered as errors.
    pub failed: usize,
    /// Why the copies were not overlapped with the compute (the batches ran one after
    /// another through `run`); `None` when they were.
    pub sequential_because: Option<String>,
}

/// Batches in flight at once when the caller has no preference: one uploading, one
/// computing, one downloading.
pub const DEFAULT_DEPTH: usize = 3;

impl HybridModel {
    /// Run batches of inputs of `shapes` (each batch: one tensor per model input, of
    /// those shapes and the inputs' dtypes; owned or borrowed), host memory to host
    /// memory, and hand each batch's outputs (or why it failed) to `deliver` with its
    /// index, in order. With `depth` batches in flight on a model that is one GPU engine,
    /// the uploads, compute and downloads of consecutive batches overlap. A batch that
    /// does not match `shapes` or the inputs' dtypes is delivered as an error and the rest
    /// still run; `shapes` that do not fit the model (or a batch over the limit) are an
    /// error before any batch runs, and a failure of the GPU itself stops the stream.
    pub fn run_pipelined<I>(
        &self,
        shapes: &[Vec<usize>],
        batches: I,
        depth: usize,
        deliver: impl FnMut(usize, Result<Vec<Tensor>>),
    ) -> Result<PipelineReport>
    where
        I: IntoIterator,
        I::Item: AsRef<[Tensor]>,
    {
        let dts = crate::shapes::input_dtypes(&self.inputs);
        let mut batches = batches.into_iter();
        let fill = |_i: usize, bufs: &mut [&mut [u8]]| {
            let batch = batches.next()?;
            let batch = batch.as_ref();
            Some(self.check_batch(batch, shapes, &dts).and_then(|()| {
                for ((dst, t), info) in bufs.iter_mut().zip(batch).zip(&self.inputs) {
                    let src = t.as_bytes();
                    if dst.len() != src.len() {
                        return Err(format!(
                            "input `{}`: {} bytes, its buffer holds {}",
                            info.name,
                            src.len(),
                            dst.len()
                        ));
                    }
                    copy_parallel(dst, src);
                }
                Ok(())
            }))
        };
        self.run_pipelined_with(shapes, depth, fill, deliver)
    }

    /// [`HybridModel::run_pipelined`] with the inputs written by the caller straight into
    /// the stream's buffers (on the GPU path page-locked staging memory: a producer that
    /// decodes into it saves a copy). `fill(i, buffers)` writes batch `i`: one buffer per
    /// model input, the dense row-major bytes of its dtype at `shapes`; it returns `None`
    /// when there are no more batches, `Some(Err(why))` to have batch `i` delivered as
    /// that error.
    pub fn run_pipelined_with(
        &self,
        shapes: &[Vec<usize>],
        depth: usize,
        mut fill: impl FnMut(usize, &mut [&mut [u8]]) -> Option<std::result::Result<(), String>>,
        mut deliver: impl FnMut(usize, Result<Vec<Tensor>>),
    ) -> Result<PipelineReport> {
        let dts = crate::shapes::input_dtypes(&self.inputs);
        check_shapes(&self.inputs, shapes, &dts)?;
        let model = self.shaped(shapes)?;
        let mut counted = |report: &mut PipelineReport, i: usize, r: Result<Vec<Tensor>>| {
            match &r {
                Ok(outs) => {
                    report.delivered += 1;
                    self.warn_non_finite(outs);
                }
                Err(_) => report.failed += 1,
            }
            deliver(i, r)
        };
        let stream_report = std::cell::RefCell::new(PipelineReport::default());
        let mut on_output = |i: usize, r: std::result::Result<TVec<Tensor>, String>| {
            let r = r
                .map(|outs| outs.into_iter().collect())
                .map_err(|reason| BackendError::Batch { index: i, reason });
            counted(&mut stream_report.borrow_mut(), i, r);
        };
        let mut hs = HostStream {
            batch: shapes.first().and_then(|s| s.first()).copied().unwrap_or(1),
            depth: depth.max(1),
            fill: &mut fill,
            deliver: &mut on_output,
        };
        let mut report = PipelineReport::default();
        match model.get().run_stream(shapes, &mut hs) {
            Ok(r) => {
                r?;
                return Ok(stream_report.into_inner());
            }
            Err(why) => {
                tracing::debug!("pipelined run without overlapped copies: {why}");
                report.sequential_because = Some(why);
            }
        }
        // One after another (`fill` was not called), into tensors of their own.
        for i in 0.. {
            let mut inputs = shapes
                .iter()
                .zip(&dts)
                .map(|(s, &dt)| {
                    Tensor::zero_dt(dt, s).map_err(|e| BackendError::Batch {
                        index: i,
                        reason: e.to_string(),
                    })
                })
                .collect::<Result<Vec<Tensor>>>()?;
            let filled = {
                let mut bufs: Vec<&mut [u8]> =
                    inputs.iter_mut().map(|t| t.as_bytes_mut()).collect();
                fill(i, &mut bufs)
            };
            let r = match filled {
                None => break,
                Some(Err(reason)) => Err(BackendError::Batch { index: i, reason }),
                Some(Ok(())) => self.run(inputs).map_err(|e| batch_error(i, e)),
            };
            counted(&mut report, i, r);
        }
        Ok(report)
    }

    /// Why a batch does not fit the stream's `shapes` and dtypes, if it does not.
    fn check_batch(
        &self,
        batch: &[Tensor],
        shapes: &[Vec<usize>],
        dts: &[DatumType],
    ) -> std::result::Result<(), String> {
        if batch.len() != self.inputs.len() {
            return Err(format!(
                "{} tensors, the model has {} inputs",
                batch.len(),
                self.inputs.len()
            ));
        }
        for ((t, info), (shape, dt)) in batch.iter().zip(&self.inputs).zip(shapes.iter().zip(dts)) {
            if t.shape() != shape.as_slice() || t.datum_type() != *dt {
                return Err(format!(
                    "input `{}` is {:?}{:?}, the stream runs {dt:?}{shape:?}",
                    info.name,
                    t.datum_type(),
                    t.shape()
                ));
            }
        }
        Ok(())
    }
}

/// A failed run of batch `i`, with its index.
fn batch_error(i: usize, e: BackendError) -> BackendError {
    BackendError::Batch {
        index: i,
        reason: e.to_string(),
    }
}
