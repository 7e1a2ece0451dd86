//! Errors of calibration: every way the data, a model, or a cache file can be wrong. Each
//! names what it is about (the tensor, the node, the cache line).

use trtc_ir::IrError;

#[derive(Debug, thiserror::Error)]
pub enum QuantError {
    /// (`io` is shown in the message, so it is not also a `source`.)
    #[error("cannot {action} {path}: {io}")]
    Io {
        action: &'static str,
        path: String,
        io: std::io::Error,
    },
    /// Loading or running the graph failed (a wrong input shape lands here).
    #[error(transparent)]
    Ir(#[from] IrError),
    #[error(
        "tensor `{tensor}` has {count} non-finite value(s) (NaN or infinity) in calibration batch {batch}: \
         its range cannot be calibrated"
    )]
    NonFinite {
        tensor: String,
        count: u64,
        batch: usize,
    },
    #[error("no calibration batches were given")]
    NoBatches,
    #[error("tensor `{tensor}`: {detail}")]
    Tensor { tensor: String, detail: String },
    #[error("unknown calibrator `{0}`: expected entropy, minmax, percentile or percentile:P (0 < P <= 100)")]
    BadCalibrator(String),
    #[error("calibration cache, line {line}: {detail}")]
    Cache { line: usize, detail: String },
    #[error("weights: {0}")]
    Weights(String),
    #[error("accuracy guard: {0}")]
    Guard(String),
    #[error("node `{node}` ({op}): {detail}")]
    Qdq {
        node: String,
        op: String,
        detail: String,
    },
}

pub type Result<T, E = QuantError> = std::result::Result<T, E>;
