//! Elementwise ops: `Add`, `Sub`, `Mul`, `Div` and `Pow` with broadcasting (tensors of
//! at most 4 dims), and the activations `Relu`, `Sigmoid`, `Tanh`, `LeakyRelu`, `HardSigmoid`,
//! `HardSwish`, `Clip` (constant bounds). Each lowers to one step; the chains pass then
//! fuses neighbours into one kernel (`passes/chains.rs`).

use super::rules::{attr, const_input, output_rank};
use super::{OpDoc, OpFamily};
use crate::error::{cuda_err, Result};
use crate::program::lowering::Lowering;
use crate::program::{act_code, Step};
use trtc_engine::FallbackReason;
use trtc_ir::{Graph, NodeId, Op};

pub static FAMILY: OpFamily = OpFamily {
    name: "elementwise",
    ops: &[
        OpDoc {
            op: "Add, Sub, Mul, Div",
            conditions: "broadcasting over at most 4 dims",
        },
        OpDoc {
            op: "Pow",
            conditions: "as Add; a constant scalar exponent runs as an activation",
        },
        OpDoc {
            op: "Relu, Sigmoid, Tanh, LeakyRelu, HardSigmoid, HardSwish",
            conditions: "",
        },
        OpDoc {
            op: "Clip",
            conditions: "min and max constant (or absent)",
        },
    ],
    handles: |op| binary_code(op).is_some() || is_activation(op),
    check,
    lower,
};

/// The kernels' code of a binary op (`bin_apply`).
fn binary_code(op: &Op) -> Option<i32> {
    Some(match op {
        Op::Add => 0,
        Op::Mul => 1,
        Op::Sub => 2,
        Op::Div => 3,
        _ if super::unary::other(op).is_some_and(|o| o.op_type == "Pow") => 6,
        _ => return None,
    })
}

/// A Pow whose exponent is a constant scalar: the exponent (one activation step).
fn scalar_exponent(g: &Graph, id: NodeId) -> Option<f32> {
    let t = g.input_const(id, 1)?;
    let v = trtc_ir::tensor::tensor_to_f32s(t)?;
    (v.len() == 1).then(|| v[0])
}

fn is_activation(op: &Op) -> bool {
    matches!(
        op,
        Op::Relu
            | Op::Sigmoid
            | Op::Tanh
            | Op::HardSwish
            | Op::LeakyRelu { .. }
            | Op::HardSigmoid { .. }
            | Op::Clip
    )
}

fn check(g: &Graph, id: NodeId) -> std::result::Result<(), FallbackReason> {
    let op = &g.node(id).op;
    if binary_code(op).is_some() {
        let ranks_ok = (0..2).all(|s| {
            g.input_info(id, s)
                .and_then(|t| t.rank())
                .is_some_and(|r| r <= 4)
        });
        if !ranks_ok || output_rank(g, id).is_none_or(|r| r > 4) {
            return Err(attr("elementwise op over more than 4 dims"));
        }
        return Ok(());
    }
    if matches!(op, Op::Clip) {
        const_input(g, id, 1, "Clip min")?;
        const_input(g, id, 2, "Clip max")?;
        if trtc_optimizer::util::activation_of(g, id).is_none() {
            return Err(attr("Clip bounds are not scalar constants"));
        }
    }
    Ok(())
}

fn lower(cx: &mut Lowering, id: NodeId) -> Result<()> {
    let g = cx.g;
    let node = g.node(id);
    let y = cx.output(id, 0);
    let step = match binary_code(&node.op) {
        Some(6) if scalar_exponent(g, id).is_some() => Step::Act {
            x: cx.operand(id, 0)?,
            y,
            act: (22, scalar_exponent(g, id).unwrap_or(1.0), 0.0),
        },
        Some(op) => Step::Binary {
            a: cx.operand(id, 0)?,
            b: cx.operand(id, 1)?,
            y,
            op,
        },
        None => {
            let act = match &node.op {
                Op::Tanh => (7, 0.0, 0.0),
                _ => act_code(
                    trtc_optimizer::util::activation_of(g, id)
                        .ok_or_else(|| cuda_err(&node.name, "Clip bounds are not constants"))?,
                ),
            };
            Step::Act {
                x: cx.operand(id, 0)?,
                y,
                act,
            }
        }
    };
    cx.step(&node.name, step);
    Ok(())
}
