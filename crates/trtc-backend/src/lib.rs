//! trtc's backend: which nodes run as engines and which on the CPU (min-segment
//! partitioning), the hybrid runtime that runs them as one model, and the `.trtc` plan.

pub mod compile;
pub mod dot;
pub mod engine;
pub mod error;
pub mod fp16_guard;
pub mod options;
pub mod partition;
pub mod plan;
pub mod report;
pub mod runtime;
pub mod shapes;

pub use compile::{
    compile, compile_int8, compile_int8_with, tune, tune_profiles, CalibrationError, Int8Table,
    INT8_NEEDS_TABLE,
};
pub use engine::{Engine, EngineBuilder, EnginePayload, LayerTiming, NoEngines};
pub use error::{BackendError, Result};
pub use options::{BackendChoice, CompileOptions, InputFormat, Layout, Precision};
pub use partition::{partition, Partition, PartitionOptions, Segment, SegmentBackend};
pub use plan::Plan;
pub use report::{CompileReport, Int8Report};
pub use runtime::{HybridModel, ShapePayloads};
pub use trtc_engine::{
    progress, DeviceBuffer, EngineError, FallbackReason, MaskSupport, OpSupport,
};

/// What an engine backend can run (the interface's support table types).
pub mod support {
    pub use trtc_engine::support::*;
}
