//! Shapes of the standard ONNX ops kept as `Op::Other` whose output is their inputs
//! broadcast together (numpy rules): the variadic `Sum`, `Max`, `Min`, `Mean`, and `Pow`
//! and `Mod` (type of input 0); the comparisons and logic ops (`Equal`, `Less`, `And`, ...:
//! bool); `Where(cond, a, b)` (type of `a`). Shape arithmetic in exported transformers
//! (`Mod`, `Equal`, `Where` on shape vectors) folds to constants once these are known.
//!
//! Must not answer: for inputs whose shapes do not broadcast (an error naming the node),
//! or where an input's shape is unknown (the output's stays unknown).

use super::{broadcast, info, NodeCtx};
use crate::dtype::DType;
use crate::error::Result;
use crate::op::OtherOp;
use crate::TensorInfo;

/// Broadcasting ops whose output type is input 0's.
pub const BROADCASTING: &[&str] = &["Sum", "Max", "Min", "Mean", "Pow", "Mod"];

/// Broadcasting ops whose output is bool.
pub const COMPARING: &[&str] = &[
    "Equal",
    "Less",
    "LessOrEqual",
    "Greater",
    "GreaterOrEqual",
    "And",
    "Or",
    "Xor",
];

/// The output of `o`, where it broadcasts its inputs; `None` for any other op.
pub(super) fn infer(ctx: &NodeCtx, o: &OtherOp) -> Result<Option<Vec<TensorInfo>>> {
    let op = o.op_type.as_str();
    let dtype = if BROADCASTING.contains(&op) {
        ctx.in_dt(0)
    } else if COMPARING.contains(&op) {
        Some(DType::Bool)
    } else if op == "Where" {
        ctx.in_dt(1)
    } else if op == "Not" {
        return Ok(Some(vec![info(
            Some(DType::Bool),
            ctx.in_shape(0).cloned(),
        )]));
    } else {
        return Ok(None);
    };
    if ctx.ins.is_empty() {
        return Ok(None);
    }
    let mut shape = ctx.in_shape(0).cloned();
    for s in 1..ctx.ins.len() {
        shape = match (shape, ctx.in_shape(s)) {
            (Some(a), Some(b)) => Some(broadcast(&a, b).map_err(|e| ctx.err(e))?),
            _ => None,
        };
    }
    Ok(Some(vec![info(dtype, shape)]))
}

#[cfg(test)]
mod tests {
    use crate::dtype::DType;
    use crate::op::{Op, OtherOp};
    use crate::GraphBuilder;
    use tract_onnx::prelude::tensor1;

    fn other(op: &str) -> Op {
        Op::Other(OtherOp {
            op_type: op.into(),
            domain: String::new(),
            attributes: vec![],
        })
    }

    #[test]
    fn comparisons_are_bool_and_where_takes_its_branches_type() {
        let mut b = GraphBuilder::new();
        let x = b.input_with("x", DType::F32, vec![2u64.into(), 1u64.into(), 4u64.into()]);
        let y = b.input_with("y", DType::F32, vec![3u64.into(), 1u64.into()]);
        let eq = b.op("eq", other("Equal"), &[x, y]);
        let w = b.op("where", other("Where"), &[eq, x, y]);
        let m = b.op("mod", other("Mod"), &[x, y]);
        b.output(w).output(m);
        let g = b.build().unwrap();
        assert_eq!(g.tensor(eq).describe(), "bool[2,3,4]");
        assert_eq!(g.tensor(w).describe(), "f32[2,3,4]");
        assert_eq!(g.tensor(m).describe(), "f32[2,3,4]");
    }

    #[test]
    fn constant_shape_arithmetic_is_known() {
        // `Mod(768, 12)` of i64 constants, as an exported attention block computes its
        // head size check: known, so folding can evaluate it.
        let mut b = GraphBuilder::new();
        let a = b.constant("a", tensor1(&[768i64]));
        let h = b.constant("h", tensor1(&[12i64]));
        let m = b.op("mod", other("Mod"), &[a, h]);
        b.output(m);
        let g = b.build().unwrap();
        assert_eq!(g.tensor(m).describe(), "i64[1]");
    }

    #[test]
    fn shapes_that_do_not_broadcast_are_an_error() {
        let mut b = GraphBuilder::new();
        let x = b.input_with("x", DType::F32, vec![2u64.into(), 3u64.into()]);
        let y = b.input_with("y", DType::F32, vec![4u64.into()]);
        let eq = b.op("eq", other("Equal"), &[x, y]);
        b.output(eq);
        assert!(b.build().is_err());
    }
}
