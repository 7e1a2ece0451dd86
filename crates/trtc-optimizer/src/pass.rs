//! The `Pass` trait and what a pass reports.

use crate::error::Result;
use serde::{Deserialize, Serialize};
use trtc_ir::Graph;

/// A node a pass looked at and left alone, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Skip {
    pub node: String,
    pub op: String,
    pub reason: String,
}

/// What one run of a pass did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PassOutcome {
    pub rewrites: usize,
    pub skipped: Vec<Skip>,
}

impl PassOutcome {
    pub fn skip(&mut self, g: &Graph, id: trtc_ir::NodeId, reason: impl Into<String>) {
        let n = g.node(id);
        self.skipped.push(Skip {
            node: n.name.clone(),
            op: n.op.op_type().into(),
            reason: reason.into(),
        });
    }
}

/// One graph rewrite rule, applied everywhere it matches.
pub trait Pass {
    /// The name used in `--passes` and in reports.
    fn name(&self) -> &'static str;
    /// Rewrite the graph; the graph must stay valid and compute the same outputs.
    fn run(&self, g: &mut Graph) -> Result<PassOutcome>;
}
