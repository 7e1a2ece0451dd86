use trtc_engine::EngineError;
use trtc_ir::IrError;
use trtc_optimizer::OptError;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("plan {path}: {detail}")]
    Plan { path: String, detail: String },
    #[error("input `{name}` has batch {batch}, over --max-batch-size {max}")]
    BatchTooLarge {
        name: String,
        batch: usize,
        max: usize,
    },
    #[error("segment {segment} ({backend}): {source}")]
    Segment {
        segment: usize,
        backend: String,
        source: EngineError,
    },
    /// Building or running an engine outside any one segment (a missing GPU, say).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A `--shapes` profile that does not fit the model, or a model whose dynamic dims
    /// no profile resolves.
    #[error("shapes: {0}")]
    Shapes(String),
    #[error("partition: {0}")]
    Partition(String),
    /// The device-memory API on a model that is not one GPU engine from inputs to outputs.
    #[error("device buffers: {0}")]
    NotResident(String),
    /// One batch of a pipelined run failed (the others still ran).
    #[error("batch {index}: {reason}")]
    Batch { index: usize, reason: String },
    #[error("{0}")]
    Io(String),
    /// INT8: no calibration table, or calibrating (or reading the cache) failed, or the
    /// table's scales could not be applied.
    #[error("INT8: {0}")]
    Int8(String),
    #[error("calibrating the optimized graph for INT8")]
    Calibration(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    Ir(#[from] IrError),
    #[error(transparent)]
    Opt(#[from] OptError),
}

pub type Result<T, E = BackendError> = std::result::Result<T, E>;
