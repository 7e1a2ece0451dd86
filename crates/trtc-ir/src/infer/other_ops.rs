//! Shapes of standard ONNX ops trtc keeps as `Op::Other` (it has no typed form for them),
//! where the rule is plain: unary elementwise ops (and `LRN`, the old-opset
//! `Softmax`/`LogSoftmax`/`Hardmax`, `InstanceNormalization`) keep their input's shape and type;
//! variadic ones (`Sum`, `Max`, `Min`, `Mean`) and `Pow` broadcast their inputs. Any other
//! `Other` op gets unknown shapes, as before.

use super::{broadcast, info, Known, NodeCtx, SymInt};
use crate::error::Result;
use crate::op::OtherOp;
use crate::shape::Dim;
use crate::TensorInfo;

/// Standard ops whose output has the shape and type of input 0.
pub const UNARY: &[&str] = &[
    "Abs",
    "Celu",
    "Ceil",
    "Elu",
    "Erf",
    "Exp",
    "Floor",
    "Gelu",
    "Hardmax",
    "InstanceNormalization",
    "LRN",
    "Log",
    "LogSoftmax",
    "Mish",
    "Neg",
    "Reciprocal",
    "Selu",
    "Shrink",
    "Sign",
    "Softmax",
    "Softplus",
    "Softsign",
    "Sqrt",
    "ThresholdedRelu",
];

/// Standard ops whose output is their inputs broadcast together.
pub const BROADCASTING: &[&str] = &["Sum", "Max", "Min", "Mean", "Pow"];

/// The outputs of `o`, where the rule is known.
pub(super) fn infer(ctx: &NodeCtx, known: &Known, o: &OtherOp) -> Result<Option<Vec<TensorInfo>>> {
    if !o.domain.is_empty() && o.domain != "ai.onnx" {
        return Ok(None);
    }
    match o.op_type.as_str() {
        "Tile" => return Ok(Some(vec![info(ctx.in_dt(0), tile(ctx, known))])),
        "Expand" => return expand(ctx, known).map(|s| Some(vec![info(ctx.in_dt(0), s)])),
        _ => {}
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

/// Tile: each dim times its constant repeat count.
fn tile(ctx: &NodeCtx, known: &Known) -> Option<crate::shape::Shape> {
    let x = ctx.in_shape(0)?;
    let reps = known.i64s(ctx.outlet(1))?;
    if reps.len() != x.len() || reps.iter().any(|&r| r < 0) {
        return None;
    }
    Some(
        x.iter()
            .zip(reps)
            .map(|(d, r)| match (d, r) {
                (_, 1) => d.clone(),
                (Dim::Known(v), r) => Dim::Known(v * r as u64),
                _ => super::rules::unknown_dim(),
            })
            .collect(),
    )
}

/// Expand: the input broadcast with the target shape (input 1, symbols allowed).
fn expand(ctx: &NodeCtx, known: &Known) -> Result<Option<crate::shape::Shape>> {
    let (Some(x), Some(target)) = (ctx.in_shape(0), known.ints(ctx.outlet(1))) else {
        return Ok(None);
    };
    let target: Vec<Dim> = target
        .into_iter()
        .map(|d| match d {
            SymInt::Int(i) if i >= 0 => Dim::Known(i as u64),
            SymInt::Int(_) => super::rules::unknown_dim(),
            SymInt::Sym(s) => Dim::Sym(s),
        })
        .collect();
    broadcast(x, &target).map(Some).map_err(|e| ctx.err(e))
}
