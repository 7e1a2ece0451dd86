//! The interface between trtc's backend and its engines.
//!
//! The backend (partitioner, hybrid runtime, plans) knows engines only through the traits
//! here, and an engine crate (`trtc-cuda`) knows the backend not at all: both depend on this
//! crate, and the `trtc` binary hands the one to the other.
//!
//! - [`OpSupport`]: what an engine accepts, node by node, with the [`FallbackReason`] for
//!   what it does not (the partitioner asks it);
//! - [`EngineBuilder`]: builds an [`Engine`] for a segment (from a plan's stored
//!   [`EnginePayload`] where there is one);
//! - [`EngineOptions`]: what a build is asked for (precision, layout, workspace);
//! - [`progress`]: how long work (tactic timing) reports how far it is.

pub mod engine;
pub mod error;
pub mod options;
pub mod progress;
pub mod support;

pub use engine::{
    DeviceBuffer, Engine, EngineBuilder, EnginePayload, HostStream, LayerPrecision, LayerTiming,
    NoEngines,
};
pub use error::{EngineError, Result};
pub use options::{EngineOptions, Layout, Precision};
pub use support::{FallbackReason, MaskSupport, OpSupport};
