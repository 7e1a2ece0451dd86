use trtc_ir::IrError;

/// What building or running an engine can fail with.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A layer the engine cannot build or run, named.
    #[error("{engine}, layer `{layer}`: {detail}")]
    Layer {
        engine: &'static str,
        layer: String,
        detail: String,
    },
    /// No engine of this kind can be built on this machine (no GPU, a missing library).
    #[error("backend `{0}` is not available: {1}")]
    Unavailable(String, String),
    #[error(transparent)]
    Ir(#[from] IrError),
}

impl EngineError {
    /// A CUDA engine's error at `layer`.
    pub fn cuda(layer: impl Into<String>, detail: impl std::fmt::Display) -> EngineError {
        EngineError::Layer {
            engine: "CUDA",
            layer: layer.into(),
            detail: detail.to_string(),
        }
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
