//! `Softmax` over the last axis (in every opset: there the opset-13 and the older
//! flattening semantics agree). trtc's row kernel; a 4-D tensor of an NHWC engine is put in
//! NCHW order around it (its last axis is then W, as ONNX means).

use super::rules::{attr, output_rank};
use super::{OpDoc, OpFamily};
use crate::error::{cuda_err, Result};
use crate::program::lowering::Lowering;
use crate::program::{norm_axis, Step};
use trtc_engine::FallbackReason;
use trtc_ir::{Graph, NodeId, Op};

pub static FAMILY: OpFamily = OpFamily {
    name: "softmax",
    ops: &[OpDoc {
        op: "Softmax",
        conditions: "over the last axis",
    }],
    handles: |op| matches!(op, Op::Softmax { .. }),
    check,
    lower,
};

fn check(g: &Graph, id: NodeId) -> std::result::Result<(), FallbackReason> {
    let Op::Softmax { axis } = &g.node(id).op else {
        return Err(FallbackReason::UnsupportedOp);
    };
    let rank = output_rank(g, id).unwrap_or(0);
    if rank == 0 || norm_axis(*axis, rank) != Some(rank - 1) {
        return Err(attr("softmax over an axis other than the last"));
    }
    Ok(())
}

fn lower(cx: &mut Lowering, id: NodeId) -> Result<()> {
    let g = cx.g;
    let name = g.node(id).name.as_str();
    if !matches!(g.node(id).op, Op::Softmax { .. }) {
        return Err(cuda_err(name, "not a softmax"));
    }
    let y = cx.output(id, 0);
    let x = cx.operand(id, 0)?;
    if !cx.p.slots[x].nhwc {
        cx.step(name, Step::Softmax { x, y });
        return Ok(());
    }
    // NHWC storage: rows of W are not contiguous. Softmax in NCHW order, between relayouts.
    let (shape, half) = (cx.p.slots[x].shape.clone(), cx.p.half);
    let xt = cx.p.push_slot(shape.clone(), None, false, half);
    let yt = cx.p.push_slot(shape, None, false, half);
    cx.step(&format!("{name} (to NCHW)"), Step::Relayout { x, y: xt });
    cx.step(name, Step::Softmax { x: xt, y: yt });
    cx.step(&format!("{name} (to NHWC)"), Step::Relayout { x: yt, y });
    Ok(())
}
