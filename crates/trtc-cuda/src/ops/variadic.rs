//! `Sum`, `Max`, `Min` and `Mean` of any number of broadcasting inputs (at most 4 dims):
//! a chain of binary steps into the output's shape (`Mean` then scaled by 1/n), which the
//! chains pass fuses into one kernel. One input is a copy.

use super::rules::{attr, output_rank};
use super::unary::other;
use super::{OpDoc, OpFamily};
use crate::error::{cuda_err, Result};
use crate::program::lowering::Lowering;
use crate::program::Step;
use trtc_engine::FallbackReason;
use trtc_ir::{Graph, NodeId, Op};

pub static FAMILY: OpFamily = OpFamily {
    name: "variadic",
    ops: &[OpDoc {
        op: "Sum, Max, Min, Mean",
        conditions: "any number of inputs, broadcasting over at most 4 dims",
    }],
    handles: |op| code_of(op).is_some(),
    check,
    lower,
};

/// The binary op that folds the inputs together, and whether the result is a mean.
fn code_of(op: &Op) -> Option<(i32, bool)> {
    Some(match other(op)?.op_type.as_str() {
        "Sum" => (0, false),
        "Mean" => (0, true),
        "Max" => (4, false),
        "Min" => (5, false),
        _ => return None,
    })
}

fn check(g: &Graph, id: NodeId) -> std::result::Result<(), FallbackReason> {
    let n = g.node(id).num_inputs;
    let ranks_ok = (0..n).all(|s| {
        g.input_info(id, s)
            .and_then(|t| t.rank())
            .is_some_and(|r| r <= 4)
    });
    if n == 0 || !ranks_ok || output_rank(g, id).is_none_or(|r| r > 4) {
        return Err(attr("inputs missing or over 4 dims"));
    }
    Ok(())
}

fn lower(cx: &mut Lowering, id: NodeId) -> Result<()> {
    let node = cx.g.node(id);
    let name = node.name.as_str();
    let (op, mean) = code_of(&node.op).ok_or_else(|| cuda_err(name, "not a variadic op"))?;
    let n = node.num_inputs;
    let y = cx.output(id, 0);
    let inputs = (0..n)
        .map(|s| cx.operand(id, s))
        .collect::<Result<Vec<_>>>()?;
    if n == 1 && !mean {
        cx.step(
            name,
            Step::Act {
                x: inputs[0],
                y,
                act: (0, 0.0, 0.0),
            },
        );
        return Ok(());
    }
    // Each partial result has the output's shape; the last step writes y.
    let steps = n - 1 + mean as usize;
    let mut acc = inputs[0];
    for (k, &b) in inputs.iter().enumerate().skip(1) {
        let out = if k == steps {
            y
        } else {
            cx.temp_like_output(id)
        };
        cx.step(
            name,
            Step::Binary {
                a: acc,
                b,
                y: out,
                op,
            },
        );
        acc = out;
    }
    if mean {
        let scale = cx.constant(&[], &[1.0 / n as f32]);
        cx.step(
            name,
            Step::Binary {
                a: acc,
                b: scale,
                y,
                op: 1,
            },
        );
    }
    Ok(())
}
