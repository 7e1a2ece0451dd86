//! `Transpose`, any permutation that keeps a symbolic batch first: one strided read through the
//! chain kernel, of at most 4 dims once dims of 1 are dropped and neighbours that stay
//! neighbours are merged (ShuffleNet's 5-D channel shuffle fits).

use super::rules::{attr, dim0_known, input_rank};
use super::{OpDoc, OpFamily};
use crate::error::{cuda_err, Result};
use crate::program::host::transpose_plan;
use crate::program::lowering::Lowering;
use crate::program::Step;
use trtc_engine::FallbackReason;
use trtc_ir::{Graph, NodeId, Op};

pub static FAMILY: OpFamily = OpFamily {
    name: "transpose",
    ops: &[OpDoc {
        op: "Transpose",
        conditions:
            "a symbolic batch stays first; at most 4 dims after merging those that stay neighbours",
    }],
    handles: |op| matches!(op, Op::Transpose { .. }),
    check,
    lower,
};

/// The permutation of node `id` (ONNX's default reverses the dims), when it is one.
fn perm_of(g: &Graph, id: NodeId) -> Option<Vec<usize>> {
    let Op::Transpose { perm } = &g.node(id).op else {
        return None;
    };
    let rank = input_rank(g, id, 0)?;
    let p: Vec<usize> = match perm {
        Some(p) => p
            .iter()
            .map(|&v| usize::try_from(v).ok())
            .collect::<Option<_>>()?,
        None => (0..rank).rev().collect(),
    };
    let mut seen = vec![false; rank];
    for &v in &p {
        if v >= rank || std::mem::replace(&mut seen[v], true) {
            return None;
        }
    }
    (p.len() == rank).then_some(p)
}

fn check(g: &Graph, id: NodeId) -> std::result::Result<(), FallbackReason> {
    let perm = perm_of(g, id).ok_or_else(|| attr("not a permutation of the input's dims"))?;
    if perm.first() != Some(&0) && !dim0_known(g, id, 0) {
        return Err(attr("the batch dim moves"));
    }
    // Dims but the batch are known (the shared checks); a batch of 2 merges least.
    let shape = g
        .input_info(id, 0)
        .and_then(|t| t.shape.as_ref())
        .ok_or_else(|| attr("input shape unknown"))?;
    let xs: Vec<usize> = shape
        .iter()
        .enumerate()
        .map(|(i, d)| {
            d.known()
                .map(|v| v as usize)
                .unwrap_or(if i == 0 { 2 } else { 0 })
        })
        .collect();
    if perm.len() > 4 && transpose_plan(&xs, false, false, &perm).is_none() {
        return Err(attr("more than 4 separate dims"));
    }
    Ok(())
}

fn lower(cx: &mut Lowering, id: NodeId) -> Result<()> {
    let g = cx.g;
    let name = g.node(id).name.as_str();
    let perm = perm_of(g, id).ok_or_else(|| cuda_err(name, "not a permutation"))?;
    let y = cx.output(id, 0);
    let x = cx.operand(id, 0)?;
    cx.step(name, Step::Transpose { x, y, perm });
    Ok(())
}
