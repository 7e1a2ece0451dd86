//! Shapes of standard ONNX ops trtc keeps as `Op::Other` (it has no typed form for them),
//! where the rule is plain: unary elementwise ops keep their input's shape and type;
//! variadic ones (`Sum`, `Max`, `Min`, `Mean`) and `Pow` broadcast their inputs; the
//! normalizations (`LRN`, `InstanceNormalization`, old-opset `Softmax`, `LogSoftmax`,
//! `LayerNormalization`'s output 0) keep their input's shape; `Reduce*` drop the dims of
//! their axes, or keep them as dims of 1, the axes from the attribute or a constant input.
//! Any other `Other` op gets unknown shapes, as before.

use super::{broadcast, info, Known, NodeCtx};
use crate::dtype::DType;
use crate::error::Result;
use crate::op::OtherOp;
use crate::shape::Dim;
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

/// Standard ops that normalize their input: output 0 has its shape and type.
pub const NORMALIZING: &[&str] = &[
    "InstanceNormalization",
    "LayerNormalization",
    "LogSoftmax",
    "LRN",
    "Softmax",
];

/// Standard reductions over `axes`.
const REDUCTIONS: &[&str] = &[
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceProd",
    "ReduceSum",
    "ReduceSumSquare",
];

/// Integer attribute `name` of `o`.
fn int_attr(o: &OtherOp, name: &str) -> Option<i64> {
    o.attributes.iter().find(|a| a.name == name).map(|a| a.i)
}

/// The output of a reduction: the axes from the attribute (before opset 18, 13 for
/// ReduceSum) or the constant input 1; none are all of them, or none with
/// `noop_with_empty_axes`.
fn reduction(ctx: &NodeCtx, known: &Known, o: &OtherOp) -> Option<Vec<TensorInfo>> {
    let x = ctx.in_shape(0)?;
    let rank = x.len() as i64;
    let opset = ctx.g.meta.opset();
    let from_input = (o.op_type == "ReduceSum" && opset >= 13) || opset >= 18;
    let axes = if from_input {
        match ctx.outlet(1) {
            Some(a) => known.i64s(Some(a))?,
            None => vec![],
        }
    } else {
        let a = o.attributes.iter().find(|a| a.name == "axes");
        a.map(|a| a.ints.clone()).unwrap_or_default()
    };
    let mut reduced = vec![false; x.len()];
    if axes.is_empty() && int_attr(o, "noop_with_empty_axes") != Some(1) {
        reduced = vec![true; x.len()];
    }
    for a in axes {
        let a = if a < 0 { a + rank } else { a };
        *reduced.get_mut(usize::try_from(a).ok()?)? = true;
    }
    let keep = int_attr(o, "keepdims").unwrap_or(1) != 0;
    let shape = x
        .iter()
        .zip(&reduced)
        .filter(|(_, &r)| keep || !r)
        .map(|(d, &r)| if r { Dim::Known(1) } else { d.clone() })
        .collect();
    Some(vec![info(ctx.in_dt(0), Some(shape))])
}

/// Standard ops whose output is their inputs broadcast together.
pub const BROADCASTING: &[&str] = &["Sum", "Max", "Min", "Mean", "Pow"];

/// The outputs of `o`, where the rule is known.
pub(super) fn infer(ctx: &NodeCtx, known: &Known, o: &OtherOp) -> Result<Option<Vec<TensorInfo>>> {
    if !o.domain.is_empty() && o.domain != "ai.onnx" {
        return Ok(None);
    }
    if UNARY.contains(&o.op_type.as_str()) {
        return Ok(Some(ctx.same()));
    }
    if REDUCTIONS.contains(&o.op_type.as_str()) {
        return Ok(reduction(ctx, known, o));
    }
    if NORMALIZING.contains(&o.op_type.as_str()) {
        let mut out = ctx.same();
        // LayerNormalization's Mean and InvStdDev: 1 along the normalized axes, f32
        // (stash_type 1, the only one).
        if let (Some(x), true) = (ctx.in_shape(0), ctx.n_out > 1) {
            let rank = x.len() as i64;
            let axis = int_attr(o, "axis").unwrap_or(-1);
            let axis = if axis < 0 { axis + rank } else { axis }.clamp(0, rank) as usize;
            let stats: Vec<Dim> = x
                .iter()
                .enumerate()
                .map(|(i, d)| if i < axis { d.clone() } else { Dim::Known(1) })
                .collect();
            out.extend((1..ctx.n_out).map(|_| info(Some(DType::F32), Some(stats.clone()))));
        }
        return Ok(Some(out));
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

#[cfg(test)]
mod tests {
    use crate::op::OtherOp;
    use crate::shape::{Dim, Shape};
    use crate::{DType, GraphBuilder, Op};
    use tract_onnx::pb::{attribute_proto::AttributeType, AttributeProto};
    use tract_onnx::prelude::tensor1;

    fn other(op_type: &str, ints: &[(&str, Vec<i64>)]) -> Op {
        let attributes = ints
            .iter()
            .map(|(name, v)| AttributeProto {
                name: name.to_string(),
                ints: v.clone(),
                i: v.first().copied().unwrap_or(0),
                r#type: if *name == "axes" {
                    AttributeType::Ints as i32
                } else {
                    AttributeType::Int as i32
                },
                ..Default::default()
            })
            .collect();
        Op::Other(OtherOp {
            op_type: op_type.into(),
            domain: String::new(),
            attributes,
        })
    }

    #[test]
    fn reductions_and_normalizations_have_shapes_without_tract() {
        let mut b = GraphBuilder::new();
        let shape: Shape = vec![Dim::Sym("N".into()), 8u64.into(), 4u64.into(), 5u64.into()];
        let x = b.input_with("x", DType::F32, shape);
        let m = b.op("m", other("ReduceMean", &[("axes", vec![2, 3])]), &[x]);
        let attrs = [("axes", vec![-1]), ("keepdims", vec![0])];
        let m0 = b.op("m0", other("ReduceMax", &attrs), &[x]);
        let axes = b.constant("axes", tensor1(&[1i64]));
        let s = b.op(
            "s",
            other("ReduceSum", &[("keepdims", vec![0])]),
            &[x, axes],
        );
        let ln = b.op_n(
            "ln",
            other("LayerNormalization", &[("axis", vec![2])]),
            &[Some(x)],
            3,
        );
        let lrn = b.op("lrn", other("LRN", &[("size", vec![3])]), &[x]);
        for o in [m, m0, s, ln[0], ln[1], lrn] {
            b.output(o);
        }
        let g = b.build().unwrap();
        let shape = |o| g.tensor(o).shape.clone().unwrap();
        let n = || Dim::Sym("N".into());
        assert_eq!(shape(m), vec![n(), 8u64.into(), 1u64.into(), 1u64.into()]);
        assert_eq!(shape(m0), vec![n(), 8u64.into(), 4u64.into()]);
        assert_eq!(shape(s), vec![n(), 4u64.into(), 5u64.into()]);
        assert_eq!(shape(ln[0]), shape(x));
        assert_eq!(
            shape(ln[1]),
            vec![n(), 8u64.into(), 1u64.into(), 1u64.into()]
        );
        assert_eq!(g.tensor(ln[1]).dtype, Some(DType::F32));
        assert_eq!(shape(lrn), shape(x));
    }
}
