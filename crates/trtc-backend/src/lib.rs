//! trtc's backend: which nodes run as engines and which on the CPU (min-segment
//! partitioning), the hybrid runtime that runs them as one model, and the `.trtc` plan.

pub mod compile;
pub mod cuda;
pub mod dot;
pub mod engine;
pub mod error;
pub mod options;
pub mod partition;
pub mod plan;
pub mod report;
pub mod runtime;
pub mod support;

pub use compile::{compile, tune};
pub use error::{BackendError, Result};
pub use options::{BackendChoice, CompileOptions, Layout, Precision};
pub use partition::{partition, Partition, PartitionOptions, Segment, SegmentBackend};
pub use plan::Plan;
pub use report::CompileReport;
pub use runtime::HybridModel;
pub use support::{CudaOpTable, FallbackReason, OpSupport};
