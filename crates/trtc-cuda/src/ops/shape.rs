//! Shape ops: `Identity`, `Flatten` and `Reshape` (constant target) as views of their
//! input's memory, with relayouts where NHWC storage gets in the way (`program/views.rs`);
//! `Concat` and `Split` along any axis as row copies, which the concat-views pass turns
//! into in-place writes where producers can write strided rows.

use super::rules::{attr, const_input, output_rank};
use super::{OpDoc, OpFamily};
use crate::error::{cuda_err, Result};
use crate::program::lowering::Lowering;
use crate::program::{norm_axis, Step};
use trtc_engine::FallbackReason;
use trtc_ir::{Graph, NodeId, Op, Outlet};

pub static FAMILY: OpFamily = OpFamily {
    name: "shape",
    ops: &[
        OpDoc {
            op: "Identity, Flatten",
            conditions: "",
        },
        OpDoc {
            op: "Reshape",
            conditions: "target shape constant",
        },
        OpDoc {
            op: "Concat",
            conditions: "",
        },
        OpDoc {
            op: "Split",
            conditions: "split sizes constant (or equal parts)",
        },
    ],
    handles: |op| {
        matches!(
            op,
            Op::Identity
                | Op::Flatten { .. }
                | Op::Reshape { .. }
                | Op::Concat { .. }
                | Op::Split { .. }
        )
    },
    check,
    lower,
};

fn check(g: &Graph, id: NodeId) -> std::result::Result<(), FallbackReason> {
    let rank = output_rank(g, id).unwrap_or(0);
    match &g.node(id).op {
        Op::Reshape { .. } if g.input_const(id, 1).is_none() => Err(FallbackReason::DynamicShape(
            "Reshape target is computed at run time".into(),
        )),
        Op::Concat { axis } | Op::Split { axis, .. } if norm_axis(*axis, rank).is_none() => {
            Err(attr(format!("axis {axis} of a rank-{rank} tensor")))
        }
        Op::Split { .. } => const_input(g, id, 1, "split sizes"),
        _ => Ok(()),
    }
}

fn lower(cx: &mut Lowering, id: NodeId) -> Result<()> {
    let g = cx.g;
    let node = g.node(id);
    let name = node.name.as_str();
    let y_out = Outlet::new(id, 0);
    let rank = g.tensor(y_out).rank().unwrap_or(0);
    let axis_of = |axis: i64| norm_axis(axis, rank).ok_or_else(|| cuda_err(name, "axis"));
    match &node.op {
        Op::Identity | Op::Flatten { .. } | Op::Reshape { .. } => {
            let x = cx.operand(id, 0)?;
            let s = cx.p.reshape(g, x, y_out, name);
            cx.bind(y_out, s);
        }
        Op::Concat { axis } => {
            let y = cx.output(id, 0);
            let axis = axis_of(*axis)?;
            let inputs = (0..node.num_inputs)
                .map(|s| cx.operand(id, s))
                .collect::<Result<Vec<_>>>()?;
            cx.step(name, Step::Concat { inputs, y, axis });
        }
        Op::Split { axis, .. } => {
            let axis = axis_of(*axis)?;
            let x = cx.operand(id, 0)?;
            let outputs = (0..node.outputs.len()).map(|s| cx.output(id, s)).collect();
            cx.step(name, Step::Split { x, outputs, axis });
        }
        _ => return Err(cuda_err(name, "not a shape op")),
    }
    Ok(())
}
