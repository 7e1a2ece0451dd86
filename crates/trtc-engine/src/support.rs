//! What an engine backend can run, node by node, and why a node falls back to the CPU.

use serde::{Deserialize, Serialize};
use trtc_ir::{Graph, NodeId};

/// Why a node runs on the CPU.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum FallbackReason {
    UnsupportedOp,
    UnsupportedAttribute(String),
    UnsupportedDtype(String),
    DynamicShape(String),
    BelowMinSegmentSize {
        segment_nodes: usize,
        min: usize,
    },
    DeniedByUser,
    CpuBackendChosen,
    /// The engine accepted the node but failed to build its segment (named in the detail).
    EngineBuildFailed(String),
}

impl std::fmt::Display for FallbackReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FallbackReason::UnsupportedOp => write!(f, "unsupported op"),
            FallbackReason::UnsupportedAttribute(a) => write!(f, "unsupported attribute: {a}"),
            FallbackReason::UnsupportedDtype(d) => write!(f, "unsupported dtype: {d}"),
            FallbackReason::DynamicShape(s) => write!(f, "dynamic shape: {s}"),
            FallbackReason::BelowMinSegmentSize { segment_nodes, min } => {
                write!(
                    f,
                    "segment of {segment_nodes} node(s) below minimum size {min}"
                )
            }
            FallbackReason::DeniedByUser => write!(f, "denied by user (--deny-op)"),
            FallbackReason::CpuBackendChosen => write!(f, "--backend cpu"),
            FallbackReason::EngineBuildFailed(e) => write!(f, "engine build failed: {e}"),
        }
    }
}

/// A backend's support table.
pub trait OpSupport {
    fn name(&self) -> &'static str;
    /// `Ok` when this backend can run the node; the reason otherwise.
    fn check(&self, g: &Graph, id: NodeId) -> Result<(), FallbackReason>;
}

/// A table that supports exactly the nodes a predicate picks (tests, experiments).
pub struct MaskSupport<F: Fn(&Graph, NodeId) -> bool>(pub F);

impl<F: Fn(&Graph, NodeId) -> bool> OpSupport for MaskSupport<F> {
    fn name(&self) -> &'static str {
        "mask"
    }
    fn check(&self, g: &Graph, id: NodeId) -> Result<(), FallbackReason> {
        if (self.0)(g, id) {
            Ok(())
        } else {
            Err(FallbackReason::UnsupportedOp)
        }
    }
}
