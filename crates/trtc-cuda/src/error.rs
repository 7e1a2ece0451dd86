//! Errors of the CUDA engine: every one names the layer (or the part of the engine) it is
//! about.

pub use trtc_engine::{EngineError, Result};

/// A CUDA engine's error at `layer`.
pub(crate) fn cuda_err(layer: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError::cuda(layer, e)
}
