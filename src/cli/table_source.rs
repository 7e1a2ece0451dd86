//! Where `trtc compile --precision int8` and `trtc bench` take an INT8 calibration table
//! from: a TensorRT-format cache when it exists, else calibration data (as `trtc calibrate`
//! runs it, `calibrate.rs`), then optionally the accuracy guard on held-out data.

use super::calibrate::{
    batches_of, check_output, guard_samples, read_cache, run_calibration, run_guard, write, Notes,
};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;
use trtc::quant::{CalibrationTable, Calibrator, Collector, Tolerance};

/// The INT8 calibration flags `trtc compile` and `trtc bench` share.
#[derive(Args, Debug, Clone)]
pub struct CalibrationArgs {
    /// With --precision int8: directories of images (.png, .jpg, .jpeg) and .npy batches,
    /// images, or .npy files to calibrate on (as `trtc calibrate`).
    #[arg(long, num_args = 1.., value_name = "DIR_OR_NPY")]
    pub calibration_data: Vec<PathBuf>,
    /// With --precision int8: a TensorRT-format calibration cache of the optimized graph,
    /// read instead of calibrating when the file exists, else calibrated and written there.
    #[arg(long, value_name = "FILE")]
    pub calibration_cache: Option<PathBuf>,
    /// With --precision int8: entropy, minmax, percentile (99.99) or percentile:P.
    #[arg(long, default_value = "entropy")]
    pub calibrator: Calibrator,
    /// With --precision int8: use at most this many calibration batches.
    #[arg(long, value_name = "N")]
    pub calibration_batches: Option<usize>,
}

/// Where a compile's calibration table comes from (`trtc compile --precision int8`): the
/// cache when it exists, else the data (then written to the cache, if one is named).
pub(super) struct TableSource {
    pub data: Vec<PathBuf>,
    pub cache: Option<PathBuf>,
    pub calibrator: Calibrator,
    pub batches: Option<usize>,
    pub batch: Option<usize>,
    pub preprocess: trtc::preprocess::Preprocess,
    /// Where its progress lines go.
    pub notes: Notes,
}

impl TableSource {
    /// Check what can be checked before compiling: data or an existing cache, and a cache
    /// path that can be written.
    pub(super) fn check(&self, missing: &str) -> Result<()> {
        match &self.cache {
            Some(c) if c.exists() => Ok(()),
            Some(c) if self.data.is_empty() => bail!(
                "{missing}: no --calibration-data, and no calibration cache at {}",
                c.display()
            ),
            Some(c) => check_output(c).context("--calibration-cache"),
            None if self.data.is_empty() => bail!("{missing}"),
            None => Ok(()),
        }
    }

    /// `graph`'s calibration table (its tensor names are `graph`'s): read from the cache
    /// when it exists (every name must be in `graph`), else calibrated on the data as
    /// `trtc calibrate` does, and written to the cache when one is named.
    pub(super) fn table(&self, graph: &trtc::ir::Graph) -> Result<CalibrationTable> {
        if let Some(path) = self.cache.as_ref().filter(|p| p.exists()) {
            return read_cache(path, graph, self.notes);
        }
        let mut collector = Collector::new(graph).context("preparing the model for calibration")?;
        let input = match collector.inputs() {
            [one] => one.clone(),
            many => bail!("calibration feeds one input; the model has {}", many.len()),
        };
        let dtype = input.dtype.unwrap_or(trtc::ir::DType::F32);
        let batches = batches_of(&self.data, self.batches, self.batch, &input)?;
        let table = run_calibration(
            &mut collector,
            &batches,
            &self.preprocess,
            dtype,
            self.calibrator,
            self.notes,
        )?;
        if let Some(path) = &self.cache {
            write(&table, path, self.notes)?;
        }
        Ok(table)
    }
}

/// Held-out data for `trtc compile --precision int8`'s accuracy guard.
pub(super) struct GuardSource {
    pub data: Vec<PathBuf>,
    pub batches: usize,
    pub tolerance: Tolerance,
}

impl TableSource {
    /// [`TableSource::table`], then, with `guard`, the accuracy guard on what the GPU's
    /// INT8 engines compute (`QdqOptions::gpu_simulated`, with the weights of the convs
    /// `trtc_cuda::int8_per_channel_convs` names per channel, on tract): the layers it keeps
    /// in float, and its summary.
    pub(super) fn int8_table(
        &self,
        graph: &trtc::ir::Graph,
        guard: Option<&GuardSource>,
    ) -> Result<trtc::backend::Int8Table> {
        let table = self.table(graph)?;
        let Some(gs) = guard else {
            return Ok(trtc::backend::Int8Table {
                table,
                keep_float: Default::default(),
                guard: None,
            });
        };
        let input = match graph.inputs() {
            [one] => graph.tensor(trtc::ir::Outlet::new(*one, 0)).clone(),
            many => bail!(
                "the accuracy guard feeds one input; the model has {}",
                many.len()
            ),
        };
        let samples = guard_samples(&gs.data, gs.batches, self.batch, &input, &self.preprocess)?;
        // The dense convs the engine runs on its own kernels have per-channel weights.
        let per_channel = trtc::cuda::int8_per_channel_convs(graph);
        let opts = trtc::quant::QdqOptions::gpu_simulated(per_channel);
        let (_, _, report, summary) = run_guard(graph, &table, &samples, gs.tolerance, &opts)?;
        Ok(trtc::backend::Int8Table {
            table,
            keep_float: report.demoted.into_iter().collect(),
            guard: Some(summary),
        })
    }
}
