//! Pipelined runs: a stream of batches from host memory to host memory.
//!
//! A model that is one GPU engine from its inputs to its outputs runs the stream through
//! the engine's pinned staging and copy streams ([`trtc_engine::Engine::run_stream`]):
//! uploads, compute and downloads of consecutive batches overlap. Any other model (CPU
//! segments, no GPU) runs the batches one after another through `run`, with the same
//! contract: outputs in order, each with its index; a batch of the wrong shape or dtype is
//! delivered as its error and the rest still run.

use super::{HybridModel, Models};
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
    /// memory, and hand each
    /// batch's outputs (or why it failed) to `deliver` with its index, in order. With
    /// `depth` batches in flight on a model that is one GPU engine, the uploads, compute
    /// and downloads of consecutive batches overlap. A batch that does not match `shapes`
    /// or the inputs' dtypes is delivered as an error and the rest still run; `shapes`
    /// that do not fit the model (or a batch over the limit) are an error before any batch
    /// runs, and a failure of the GPU itself stops the stream.
    pub fn run_pipelined<I>(
        &self,
        shapes: &[Vec<usize>],
        batches: I,
        depth: usize,
        mut deliver: impl FnMut(usize, Result<Vec<Tensor>>),
    ) -> Result<PipelineReport>
    where
        I: IntoIterator,
        I::Item: AsRef<[Tensor]>,
    {
        // Each input's dtype (f32 where the graph does not say).
        let dts: Vec<DatumType> = self
            .inputs
            .iter()
            .map(|t| t.dtype.and_then(|d| d.to_datum()).unwrap_or(DatumType::F32))
            .collect();
        check_shapes(&self.inputs, shapes, &dts)?;
        let model = self.shaped(shapes)?;
        let mut report = PipelineReport::default();
        let mut batches = batches.into_iter();
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
        let mut fill = |_i: usize, bufs: &mut [&mut [u8]]| {
            let batch = batches.next()?;
            let batch = batch.as_ref();
            Some(self.check_batch(batch, shapes, &dts).map(|()| {
                for (dst, t) in bufs.iter_mut().zip(batch) {
                    copy_parallel(dst, t.as_bytes());
                }
            }))
        };
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
        // One after another: the fill closure took no batch.
        for (i, batch) in batches.enumerate() {
            let batch = batch.as_ref();
            let r = self
                .check_batch(batch, shapes, &dts)
                .map_err(|reason| BackendError::Batch { index: i, reason })
                .and_then(|()| self.run(batch.to_vec()).map_err(|e| batch_error(i, e)));
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

    /// The model for inputs of `shapes` (a dynamic model's specialization, built now if new).
    fn shaped(&self, shapes: &[Vec<usize>]) -> Result<super::ModelRef<'_>> {
        Ok(match &self.models {
            Models::Static(m) => super::ModelRef::Borrowed(m),
            Models::Dynamic(c) => super::ModelRef::Shared(c.get(shapes)?),
        })
    }
}

/// A failed run of batch `i`, with its index.
fn batch_error(i: usize, e: BackendError) -> BackendError {
    BackendError::Batch {
        index: i,
        reason: e.to_string(),
    }
}

/// `dst.copy_from_slice(src)`, on several threads when it is large (a batch of images is
/// tens of megabytes; one thread copies it slower than PCIe moves it).
fn copy_parallel(dst: &mut [u8], src: &[u8]) {
    const SERIAL: usize = 8 << 20;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    if src.len() <= SERIAL || threads == 1 || dst.len() != src.len() {
        let n = dst.len().min(src.len());
        dst[..n].copy_from_slice(&src[..n]);
        return;
    }
    let per = src.len().div_ceil(threads);
    std::thread::scope(|s| {
        for (d, c) in dst.chunks_mut(per).zip(src.chunks(per)) {
            s.spawn(move || d.copy_from_slice(c));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::copy_parallel;

    #[test]
    fn parallel_copy_copies_every_byte() {
        for n in [0, 7, 8 << 20, (8 << 20) + 1, (20 << 20) + 3] {
            let src: Vec<u8> = (0..n).map(|i| (i * 31 % 251) as u8).collect();
            let mut dst = vec![0u8; n];
            copy_parallel(&mut dst, &src);
            assert!(dst == src, "{n} bytes");
        }
    }
}
