//! `Softmax` and `LogSoftmax` of every opset, over any axes but the batch: from opset 13
//! over one axis (default -1), before it over the tensor coerced to 2-D at `axis`
//! (default 1), that is over every axis from `axis` on. A softmax over the last axis of an
//! NCHW-stored tensor runs trtc's row kernel (a block per row); the others the reduction
//! kernels (`program/reduce.rs`), which read x as it is stored (a non-last axis, or an
//! NHWC tensor, is a strided walk; no relayouts).

use super::reduce::unknown_attr;
use super::rules::{attr, output_rank};
use super::unary::other;
use super::{OpDoc, OpFamily};
use crate::error::{cuda_err, Result};
use crate::program::lowering::Lowering;
use crate::program::reduce::reduce_plan;
use crate::program::{norm_axis, ReduceOp, Step};
use trtc_engine::FallbackReason;
use trtc_ir::{Graph, NodeId, Op};

pub static FAMILY: OpFamily = OpFamily {
    name: "softmax",
    ops: &[OpDoc {
        op: "Softmax, LogSoftmax",
        conditions: "any opset (before 13: over the axes from `axis` on); not over the batch axis",
    }],
    handles: |op| {
        matches!(op, Op::Softmax { .. })
            || other(op).is_some_and(|o| matches!(o.op_type.as_str(), "Softmax" | "LogSoftmax"))
    },
    check,
    lower,
};

/// The axes node `id` normalizes over, and whether it is a LogSoftmax.
fn form(g: &Graph, id: NodeId) -> std::result::Result<(Vec<usize>, bool), FallbackReason> {
    let rank = output_rank(g, id).ok_or_else(|| attr("rank unknown"))?;
    let (axes, log) = match &g.node(id).op {
        Op::Softmax { axis } => (norm_axis(*axis, rank).map(|a| vec![a]), false),
        op => {
            let o = other(op).ok_or(FallbackReason::UnsupportedOp)?;
            if let Some(n) = unknown_attr(o, &["axis"]) {
                return Err(attr(format!("attribute {n}")));
            }
            let given = super::reduce::attr_of(o, "axis").map(|a| a.i);
            let axes = if g.meta.opset() < 13 {
                norm_axis(given.unwrap_or(1), rank).map(|a| (a..rank).collect())
            } else {
                norm_axis(given.unwrap_or(-1), rank).map(|a| vec![a])
            };
            (axes, o.op_type == "LogSoftmax")
        }
    };
    let axes = axes.ok_or_else(|| attr("axis out of range"))?;
    if axes.first() == Some(&0) {
        return Err(attr("softmax over the batch axis"));
    }
    Ok((axes, log))
}

fn check(g: &Graph, id: NodeId) -> std::result::Result<(), FallbackReason> {
    let (axes, _) = form(g, id)?;
    let xs: Vec<usize> = g
        .node(id)
        .outputs
        .first()
        .and_then(|t| t.shape.as_ref())
        .ok_or_else(|| attr("shape unknown"))?
        .iter()
        .map(|d| d.known().map(|v| v as usize).unwrap_or(2))
        .collect();
    // The axes are one run: they merge into one dim, unless dims of 1 interleave.
    if reduce_plan(&xs, false, &axes, None, &[]).is_none() {
        return Err(attr("more than 4 separate dims"));
    }
    Ok(())
}

fn lower(cx: &mut Lowering, id: NodeId) -> Result<()> {
    let g = cx.g;
    let name = g.node(id).name.as_str();
    let (axes, log) = form(g, id).map_err(|e| cuda_err(name, e))?;
    let y = cx.output(id, 0);
    let x = cx.operand(id, 0)?;
    let rank = cx.p.slots[x].shape.len();
    if !log && axes == [rank - 1] && !cx.p.slots[x].nhwc {
        cx.step(name, Step::Softmax { x, y });
    } else {
        let op = ReduceOp::Softmax { log };
        cx.step(name, Step::Reduce { x, y, axes, op });
    }
    Ok(())
}
