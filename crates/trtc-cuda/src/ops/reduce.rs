//! `ReduceSum`, `ReduceMean`, `ReduceMax`, `ReduceMin`, `ReduceProd`, `ReduceSumSquare`,
//! `ReduceL1`, `ReduceL2` and `ReduceLogSum` over any set of axes but the batch: axes as
//! the attribute, or (ReduceSum from opset 13, the others from opset 18) as a constant
//! second input; `keepdims` 0 or 1; `noop_with_empty_axes` with no axes is a copy (for the
//! reductions that are one then). One kernel walks x as it is stored
//! (`program/reduce.rs`): a warp per output where the reduced dims hold x's contiguous one,
//! else neighbouring threads on neighbouring outputs (the mean over H and W of an NHWC
//! tensor, coalesced over the channels). The sum accumulates in f32.

use super::rules::{attr, input_rank, output_rank};
use super::unary::other;
use super::{OpDoc, OpFamily};
use crate::error::{cuda_err, Result};
use crate::program::lowering::Lowering;
use crate::program::reduce::{MAX_SPLITS, SPLIT_MIN};
use crate::program::{norm_axis, ReduceOp, Step};
use trtc_engine::FallbackReason;
use trtc_ir::op::OtherOp;
use trtc_ir::tensor::tensor_to_i64s;
use trtc_ir::tract_onnx::pb::AttributeProto;
use trtc_ir::{Dim, Graph, NodeId};

pub static FAMILY: OpFamily = OpFamily {
    name: "reduce",
    ops: &[
        OpDoc {
            op: "ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd",
            conditions: "axes (attribute, or constant input where the opset has it) not the batch; at most 4 separate kept and 4 separate reduced dims once neighbours merge",
        },
        OpDoc {
            op: "ReduceSumSquare, ReduceL1, ReduceL2, ReduceLogSum",
            conditions: "as ReduceSum; not noop_with_empty_axes with no axes",
        },
    ],
    handles: |op| other(op).is_some_and(|o| codes(&o.op_type).is_some()),
    check,
    lower,
};

/// The kernels' (pre, combine, post) codes of a reduction (`ReduceOp::Reduce`).
type Codes = (i32, i32, i32);

fn codes(op_type: &str) -> Option<Codes> {
    Some(match op_type {
        "ReduceSum" => (0, 0, 0),
        "ReduceMean" => (0, 0, 1),
        "ReduceMax" => (0, 1, 0),
        "ReduceMin" => (0, 2, 0),
        "ReduceProd" => (0, 3, 0),
        "ReduceSumSquare" => (1, 0, 0),
        "ReduceL1" => (2, 0, 0),
        "ReduceL2" => (1, 0, 2),
        "ReduceLogSum" => (0, 0, 3),
        _ => return None,
    })
}

/// Attribute `name` of `o`.
pub(super) fn attr_of<'a>(o: &'a OtherOp, name: &str) -> Option<&'a AttributeProto> {
    o.attributes.iter().find(|a| a.name == name)
}

/// Integer attribute `name` of `o`, or `default`.
pub(super) fn int_attr(o: &OtherOp, name: &str, default: i64) -> i64 {
    attr_of(o, name).map(|a| a.i).unwrap_or(default)
}

/// An attribute of `o` outside `known`, if any.
pub(super) fn unknown_attr<'a>(o: &'a OtherOp, known: &[&str]) -> Option<&'a str> {
    o.attributes
        .iter()
        .map(|a| a.name.as_str())
        .find(|n| !known.contains(n))
}

/// What node `id` reduces: x's axes (sorted, none for a copy) and the kernel codes.
fn reduction(g: &Graph, id: NodeId) -> std::result::Result<(Vec<usize>, Codes), FallbackReason> {
    let o = other(&g.node(id).op).ok_or(FallbackReason::UnsupportedOp)?;
    let code = codes(&o.op_type).ok_or(FallbackReason::UnsupportedOp)?;
    if let Some(n) = unknown_attr(o, &["axes", "keepdims", "noop_with_empty_axes"]) {
        return Err(attr(format!("attribute {n}")));
    }
    let opset = g.meta.opset();
    let axes_input = (o.op_type == "ReduceSum" && opset >= 13) || opset >= 18;
    let has_input = g.input_outlet(id, 1).is_some();
    let raw: Vec<i64> = match (axes_input, attr_of(o, "axes")) {
        (false, Some(a)) if !has_input => a.ints.clone(),
        (false, None) if !has_input => vec![],
        (true, None) if has_input => g
            .input_const(id, 1)
            .and_then(|t| tensor_to_i64s(t))
            .ok_or_else(|| attr("axes computed at run time"))?,
        (true, None) => vec![],
        _ => {
            return Err(attr(
                "axes both an attribute and an input, or where the opset has the other",
            ))
        }
    };
    let rank = input_rank(g, id, 0).ok_or_else(|| attr("input rank unknown"))?;
    let mut axes = raw
        .iter()
        .map(|&a| norm_axis(a, rank))
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| attr("an axis out of range"))?;
    axes.sort_unstable();
    axes.dedup();
    if raw.is_empty() {
        if int_attr(o, "noop_with_empty_axes", 0) == 0 {
            return Err(attr("reduces every axis, the batch too"));
        }
        if code.0 != 0 || code.2 > 1 {
            return Err(attr("noop_with_empty_axes with no axes"));
        }
    }
    if axes.first() == Some(&0) {
        return Err(attr("reduces over the batch axis"));
    }
    let keep = int_attr(o, "keepdims", 1) != 0;
    let want = if keep { rank } else { rank - axes.len() };
    if output_rank(g, id) != Some(want) {
        return Err(attr("output rank is not the reduction's"));
    }
    Ok((axes, code))
}

fn check(g: &Graph, id: NodeId) -> std::result::Result<(), FallbackReason> {
    let (axes, _) = reduction(g, id)?;
    let xs = g
        .input_info(id, 0)
        .and_then(|t| t.shape.as_ref())
        .ok_or_else(|| attr("input shape unknown"))?;
    // Dims but the batch are known (the shared checks); a batch of 2 merges least.
    let xs: Vec<usize> = xs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            d.known()
                .map(|v| v as usize)
                .unwrap_or(if i == 0 { 2 } else { 0 })
        })
        .collect();
    let kept: Vec<usize> = (0..xs.len()).filter(|a| !axes.contains(a)).collect();
    // Either layout: NHWC only reorders 4-D tensors, whose dims are at most 4 anyway.
    if crate::program::reduce::reduce_plan(&xs, false, &axes, Some(&kept), &[]).is_none() {
        return Err(attr("more than 4 separate dims"));
    }
    Ok(())
}

fn lower(cx: &mut Lowering, id: NodeId) -> Result<()> {
    let g = cx.g;
    let name = g.node(id).name.as_str();
    let (axes, (pre, comb, post)) = reduction(g, id).map_err(|e| cuda_err(name, e))?;
    let y = cx.output(id, 0);
    let x = cx.operand(id, 0)?;
    // Room for the partial results of a split reduction, where it is long.
    let xs = cx.p.slots[x].shape.clone();
    let size = |a: usize| xs[a].known().unwrap_or(1) as usize;
    let r: usize = axes.iter().map(|&a| size(a)).product();
    let per_image: usize = (1..xs.len())
        .filter(|a| !axes.contains(a))
        .map(size)
        .product();
    let partial = (r >= SPLIT_MIN).then(|| {
        let shape = vec![
            xs[0].clone(),
            Dim::Known(MAX_SPLITS as u64),
            Dim::Known(per_image as u64),
        ];
        cx.p.push_slot(shape, None, false, false)
    });
    let op = ReduceOp::Reduce {
        pre,
        comb,
        post,
        partial,
    };
    cx.step(name, Step::Reduce { x, y, axes, op });
    Ok(())
}
