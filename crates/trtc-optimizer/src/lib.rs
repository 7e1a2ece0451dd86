//! trtc's graph optimizer: dead-layer elimination, constant folding, BN folding,
//! vertical (conv + bias + activation + residual) and horizontal (sibling conv) fusion,
//! each a small pass over the IR's edit API, run by a pipeline to a fixed point.

pub mod error;
pub mod pass;
pub mod passes;
pub mod pipeline;
pub mod testing;
pub mod util;
pub mod verify;

pub use error::{OptError, Result};
pub use pass::{Pass, PassOutcome, Skip};
pub use pipeline::{pass_by_name, PassReport, Pipeline, PipelineReport, PASS_NAMES};
pub use verify::{verify, Verification};
