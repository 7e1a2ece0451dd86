//! Unary elementwise ops that trtc keeps as `Op::Other` (ONNX ops with no typed form in
//! the IR): `Elu`, `Selu`, `Softplus`, `Softsign`, `Mish`, `Gelu`, `Erf`, `Sqrt`, `Exp`,
//! `Log`, `Reciprocal`, `Neg`, `Abs`, `Floor`, `Ceil`. Each lowers to one activation step
//! (the kernels' `act_apply` code), which the chains pass fuses with its neighbours.

use super::rules::attr;
use super::{OpDoc, OpFamily};
use crate::error::{cuda_err, Result};
use crate::program::lowering::Lowering;
use crate::program::Step;
use trtc_engine::FallbackReason;
use trtc_ir::op::OtherOp;
use trtc_ir::{Graph, NodeId, Op};

pub static FAMILY: OpFamily = OpFamily {
    name: "unary",
    ops: &[
        OpDoc {
            op: "Elu, Selu, Softplus, Softsign, Mish",
            conditions: "",
        },
        OpDoc {
            op: "Gelu",
            conditions: "approximate none or tanh",
        },
        OpDoc {
            op: "Erf, Sqrt, Exp, Log, Reciprocal, Neg, Abs, Floor, Ceil",
            conditions: "",
        },
    ],
    handles: |op| other(op).is_some_and(|o| code_of(o).is_some()),
    check,
    lower,
};

/// `op` as a standard ONNX op that trtc keeps verbatim.
pub(super) fn other(op: &Op) -> Option<&OtherOp> {
    match op {
        Op::Other(o) if o.domain.is_empty() || o.domain == "ai.onnx" => Some(o),
        _ => None,
    }
}

/// Float attribute `name` of `o`, or `default`.
pub(super) fn float_attr(o: &OtherOp, name: &str, default: f32) -> f32 {
    o.attributes
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.f)
        .unwrap_or(default)
}

/// The kernel code and parameters of `o` (`act_apply` in `sys/kernels.rs`).
fn code_of(o: &OtherOp) -> Option<(i32, f32, f32)> {
    Some(match o.op_type.as_str() {
        "Elu" => (8, float_attr(o, "alpha", 1.0), 0.0),
        "Softplus" => (9, 0.0, 0.0),
        "Mish" => (10, 0.0, 0.0),
        "Erf" => (11, 0.0, 0.0),
        "Sqrt" => (12, 0.0, 0.0),
        "Exp" => (13, 0.0, 0.0),
        "Log" => (14, 0.0, 0.0),
        "Reciprocal" => (15, 0.0, 0.0),
        "Neg" => (16, 0.0, 0.0),
        "Abs" => (17, 0.0, 0.0),
        "Gelu" => match gelu_approximation(o).as_deref() {
            Some("tanh") => (19, 0.0, 0.0),
            _ => (18, 0.0, 0.0),
        },
        "Softsign" => (20, 0.0, 0.0),
        "Selu" => (
            21,
            float_attr(o, "alpha", 1.673_263_2),
            float_attr(o, "gamma", 1.050_701),
        ),
        "Floor" => (23, 0.0, 0.0),
        "Ceil" => (24, 0.0, 0.0),
        _ => return None,
    })
}

fn gelu_approximation(o: &OtherOp) -> Option<String> {
    o.attributes
        .iter()
        .find(|a| a.name == "approximate")
        .map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

fn check(g: &Graph, id: NodeId) -> std::result::Result<(), FallbackReason> {
    let o = other(&g.node(id).op).ok_or(FallbackReason::UnsupportedOp)?;
    if o.op_type == "Gelu"
        && !matches!(
            gelu_approximation(o).as_deref(),
            None | Some("none" | "tanh")
        )
    {
        return Err(attr("Gelu approximation other than none/tanh"));
    }
    Ok(())
}

fn lower(cx: &mut Lowering, id: NodeId) -> Result<()> {
    let node = cx.g.node(id);
    let act = other(&node.op)
        .and_then(code_of)
        .ok_or_else(|| cuda_err(&node.name, "not a unary op"))?;
    let y = cx.output(id, 0);
    let x = cx.operand(id, 0)?;
    cx.step(&node.name, Step::Act { x, y, act });
    Ok(())
}
