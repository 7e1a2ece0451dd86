//! Shapes of standard ONNX ops trtc keeps as `Op::Other` (it has no typed form for them),
//! where the rule is plain: unary elementwise ops keep their input's shape and type;
//! variadic ones (`Sum`, `Max`, `Min`, `Mean`) and `Pow` broadcast their inputs. Any other
//! `Other` op gets unknown shapes, as before.

use super::{broadcast, info, NodeCtx};
use crate::error::Result;
use crate::op::OtherOp;
use crate::TensorInfo;

/// Standard ops whose output has the shape and type of input 0.
pub const UNARY: &[&str] = &[
    "Abs",
    "Ceil",
    "Elu",
    "Erf",
    "Exp",
    "Floor",
    "Gelu",
    "Log",
    "Mish",
    "Neg",
    "Reciprocal",
    "Selu",
    "Softplus",
    "Softsign",
    "Sqrt",
];

/// Standard ops whose output is their inputs broadcast together.
pub const BROADCASTING: &[&str] = &["Sum", "Max", "Min", "Mean", "Pow"];

/// The outputs of `o`, where the rule is known.
pub(super) fn infer(ctx: &NodeCtx, o: &OtherOp) -> Result<Option<Vec<TensorInfo>>> {
    if !o.domain.is_empty() && o.domain != "ai.onnx" {
        return Ok(None);
    }
    if UNARY.contains(&o.op_type.as_str()) {
        return Ok(Some(ctx.same()));
    }
    if BROADCASTING.contains(&o.op_type.as_str()) && !ctx.ins.is_empty() {
        let mut shape = ctx.in_shape(0).cloned();
        for s in 1..ctx.ins.len() {
            shape = match (shape, ctx.in_shape(s)) {
                (Some(a), Some(b)) => Some(broadcast(&a, b).map_err(|e| ctx.err(e))?),
                _ => None,
            };
        }
        // Pow's type is its base's; the others' inputs share one type.
        return Ok(Some(vec![info(ctx.in_dt(0), shape)]));
    }
    Ok(None)
}
