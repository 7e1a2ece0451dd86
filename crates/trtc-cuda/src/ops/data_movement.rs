//! Data movement: `Slice` (opset 10+, constant starts/ends/axes/steps, any step but 0, not
//! on a symbolic batch), `Gather` (float data, constant scalar or 1-D indices, axis not a
//! symbolic batch) as one strided read each (`Step::Gather`, the `strided_gather` kernel,
//! NCHW or NHWC); `Squeeze`/`Unsqueeze` (opset 13+, constant axes, not a symbolic batch;
//! dim 0 is a dim like any other where it is known) as views or
//! relayouts the way Reshape is lowered; `Cast` between f32 and f16 as a view (the engine
//! keeps one storage type).

use super::rules::{attr, const_input, dim0_known};
use super::{OpDoc, OpFamily};
use crate::error::{cuda_err, Result};
use crate::program::gather::{GatherDim, GatherPlan, Pick, MAX_DIMS, PAD_CONSTANT};
use crate::program::lowering::Lowering;
use crate::program::{norm_axis, Step};
use trtc_engine::FallbackReason;
use trtc_ir::tensor::tensor_to_i64s;
use trtc_ir::{DType, Dim, Graph, NodeId, Op, Outlet};

pub static FAMILY: OpFamily = OpFamily {
    name: "data movement",
    ops: &[
        OpDoc {
            op: "Slice",
            conditions: "opset 10+; starts, ends, axes, steps constant; a symbolic batch not sliced; at most 6 dims",
        },
        OpDoc {
            op: "Gather",
            conditions: "indices a constant scalar or 1-D tensor; axis not a symbolic batch; at most 6 dims",
        },
        OpDoc {
            op: "Squeeze, Unsqueeze",
            conditions: "opset 13+; axes constant, not a symbolic batch",
        },
        OpDoc {
            op: "Cast",
            conditions: "between f32 and f16 (the engine keeps its own storage type)",
        },
    ],
    handles: |op| {
        matches!(
            op,
            Op::Slice | Op::Gather { .. } | Op::Squeeze | Op::Unsqueeze | Op::Cast { .. }
        )
    },
    check,
    lower,
};

/// Shape of input `slot`; dims past the batch are known (the shared checks).
pub(super) fn in_shape(g: &Graph, id: NodeId, slot: usize) -> Option<&Vec<Dim>> {
    g.input_info(id, slot).and_then(|t| t.shape.as_ref())
}

/// Shape of output 0.
pub(super) fn out_shape(g: &Graph, id: NodeId) -> Option<&Vec<Dim>> {
    g.node(id).outputs.first().and_then(|t| t.shape.as_ref())
}

/// Length of dim `d` of a shape (the batch, unknown, as `None`).
pub(super) fn len(shape: &[Dim], d: usize) -> Option<usize> {
    shape.get(d).and_then(|v| v.known()).map(|v| v as usize)
}

/// A dim of y that reads x's dim `x_dim` as it is (the batch, or an untouched dim).
pub(super) fn same(shape: &[Dim], d: usize, x_dim: usize) -> GatherDim {
    GatherDim {
        len: len(shape, d),
        x_dim,
        pick: Pick::Affine { start: 0, step: 1 },
    }
}

/// A plan of `dims` (no pads, no table).
pub(super) fn plain(dims: Vec<GatherDim>) -> GatherPlan {
    GatherPlan {
        dims,
        parts: vec![],
        fixed: vec![],
        mode: PAD_CONSTANT,
        value: 0.0,
        table: None,
    }
}

/// Constant i64 input `slot`, where present.
fn ints(g: &Graph, id: NodeId, slot: usize) -> Option<Vec<i64>> {
    g.input_const(id, slot).and_then(|t| tensor_to_i64s(t))
}

/// The strided read of a Slice, or why not.
fn slice_plan(g: &Graph, id: NodeId) -> std::result::Result<GatherPlan, FallbackReason> {
    for (slot, what) in [(1, "starts"), (2, "ends"), (3, "axes"), (4, "steps")] {
        const_input(g, id, slot, what)?;
    }
    let (xs, ys) = (in_shape(g, id, 0), out_shape(g, id));
    let (Some(xs), Some(ys)) = (xs, ys) else {
        return Err(attr("shapes unknown"));
    };
    let rank = xs.len();
    if ys.len() != rank || rank > MAX_DIMS {
        return Err(attr(format!("rank {rank} (at most {MAX_DIMS})")));
    }
    let (Some(starts), Some(ends)) = (ints(g, id, 1), ints(g, id, 2)) else {
        return Err(attr("starts and ends are not integers"));
    };
    let axes = match g.input_outlet(id, 3) {
        Some(_) => ints(g, id, 3).ok_or_else(|| attr("axes are not integers"))?,
        None => (0..starts.len() as i64).collect(),
    };
    let steps = match g.input_outlet(id, 4) {
        Some(_) => ints(g, id, 4).ok_or_else(|| attr("steps are not integers"))?,
        None => vec![1; starts.len()],
    };
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(attr("starts, ends, axes and steps of different lengths"));
    }
    let mut dims: Vec<GatherDim> = (0..rank).map(|d| same(ys, d, d)).collect();
    let mut seen = vec![false; rank];
    for i in 0..starts.len() {
        let ax = norm_axis(axes[i], rank).ok_or_else(|| attr(format!("axis {}", axes[i])))?;
        if std::mem::replace(&mut seen[ax], true) {
            return Err(attr(format!("axis {ax} sliced twice")));
        }
        let (start, end, step) = (starts[i], ends[i], steps[i]);
        if step == 0 {
            return Err(attr("a step of 0"));
        }
        if ax == 0 && !dim0_known(g, id, 0) {
            if start == 0 && step == 1 && end >= i32::MAX as i64 {
                continue;
            }
            return Err(attr("slices the batch (dim 0)"));
        }
        let n = len(xs, ax).ok_or_else(|| attr("a sliced dim is unknown"))? as i64;
        let norm = |v: i64| if v < 0 { v.saturating_add(n) } else { v };
        let (first, last) = if step > 0 {
            (norm(start).clamp(0, n), norm(end).clamp(0, n))
        } else {
            (norm(start).clamp(-1, n - 1), norm(end).clamp(-1, n - 1))
        };
        let count = if step > 0 {
            (last - first).max(0).div_euclid(step) + i64::from((last - first).max(0) % step != 0)
        } else {
            let m = -step;
            (first - last).max(0).div_euclid(m) + i64::from((first - last).max(0) % m != 0)
        };
        if count == 0 {
            return Err(attr("an empty slice"));
        }
        if len(ys, ax) != Some(count as usize) {
            return Err(attr(format!("output dim {ax} is not the slice's {count}")));
        }
        dims[ax].pick = Pick::Affine { start: first, step };
    }
    if ys[0] != xs[0] && !dim0_known(g, id, 0) {
        return Err(attr("the batch changes"));
    }
    Ok(plain(dims))
}

/// The strided read of a Gather, and its index table (when the indices are not evenly
/// spaced), or why not.
fn gather_plan(
    g: &Graph,
    id: NodeId,
) -> std::result::Result<(GatherPlan, Option<Vec<i32>>), FallbackReason> {
    let Op::Gather { axis } = g.node(id).op else {
        return Err(attr("not a Gather"));
    };
    let xs = in_shape(g, id, 0).ok_or_else(|| attr("data shape unknown"))?;
    let rank = xs.len();
    if rank > MAX_DIMS {
        return Err(attr(format!("rank {rank} (at most {MAX_DIMS})")));
    }
    let ax = norm_axis(axis, rank).ok_or_else(|| attr(format!("axis {axis}")))?;
    if ax == 0 && !dim0_known(g, id, 0) {
        return Err(attr("gathers along the batch (axis 0)"));
    }
    let t = g
        .input_const(id, 1)
        .ok_or_else(|| attr("indices are computed at run time"))?;
    let raw = tensor_to_i64s(t).ok_or_else(|| attr("indices are not integers"))?;
    let n = len(xs, ax).ok_or_else(|| attr("the gathered dim is unknown"))? as i64;
    let idx: Vec<i64> = raw
        .iter()
        .map(|&i| if i < 0 { i + n } else { i })
        .collect::<Vec<_>>();
    if idx.iter().any(|&i| !(0..n).contains(&i)) {
        return Err(attr("an index out of range"));
    }
    let mut dims: Vec<GatherDim> = (0..rank).map(|d| same(xs, d, d)).collect();
    let mut table = None;
    let mut fixed = vec![];
    match t.rank() {
        0 => {
            dims.remove(ax);
            fixed.push((ax, idx[0] as usize));
        }
        1 if !idx.is_empty() => {
            let step = if idx.len() > 1 { idx[1] - idx[0] } else { 1 };
            let even = idx.windows(2).all(|w| w[1] - w[0] == step);
            dims[ax].len = Some(idx.len());
            dims[ax].pick = if even {
                Pick::Affine {
                    start: idx[0],
                    step,
                }
            } else {
                table = Some(idx.iter().map(|&i| i as i32).collect());
                Pick::Table
            };
        }
        r => return Err(attr(format!("indices of rank {r} (0 or 1, not empty)"))),
    }
    let ys = out_shape(g, id).ok_or_else(|| attr("output shape unknown"))?;
    let want: Vec<Option<usize>> = dims.iter().map(|d| d.len).collect();
    let have: Vec<Option<usize>> = (0..ys.len()).map(|d| len(ys, d)).collect();
    if want != have {
        return Err(attr("the output shape is not the gather's"));
    }
    let mut plan = plain(dims);
    plan.fixed = fixed;
    Ok((plan, table))
}

/// Squeeze/Unsqueeze axes, normalized against `rank` (the input's for Squeeze, the
/// output's for Unsqueeze); `None` when they are absent.
fn axes(
    g: &Graph,
    id: NodeId,
    rank: usize,
) -> std::result::Result<Option<Vec<usize>>, FallbackReason> {
    if g.input_outlet(id, 1).is_none() {
        return Ok(None);
    }
    const_input(g, id, 1, "axes")?;
    let a = ints(g, id, 1).ok_or_else(|| attr("axes are not integers"))?;
    a.iter()
        .map(|&v| norm_axis(v, rank).ok_or_else(|| attr(format!("axis {v}"))))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map(Some)
}

fn check(g: &Graph, id: NodeId) -> std::result::Result<(), FallbackReason> {
    if g.input_const(id, 0).is_some() {
        return Err(attr("the data is a constant (left to constant folding)"));
    }
    match &g.node(id).op {
        Op::Slice => slice_plan(g, id).map(|_| ()),
        Op::Gather { .. } => gather_plan(g, id).map(|_| ()),
        Op::Squeeze | Op::Unsqueeze => {
            let (Some(xs), Some(ys)) = (in_shape(g, id, 0), out_shape(g, id)) else {
                return Err(attr("shapes unknown"));
            };
            let squeeze = matches!(g.node(id).op, Op::Squeeze);
            let rank = if squeeze { xs.len() } else { ys.len() };
            let fixed = dim0_known(g, id, 0);
            match axes(g, id, rank)? {
                Some(a) if a.contains(&0) && !fixed => Err(attr("axis 0 (the batch)")),
                None if !squeeze => Err(attr("no axes")),
                _ if xs.first() != ys.first() && !fixed => Err(attr("the batch moves")),
                _ => Ok(()),
            }
        }
        Op::Cast { to } => match to {
            DType::F32 | DType::F16 => Ok(()),
            other => Err(FallbackReason::UnsupportedDtype(format!("Cast to {other}"))),
        },
        _ => Err(FallbackReason::UnsupportedOp),
    }
}

fn lower(cx: &mut Lowering, id: NodeId) -> Result<()> {
    let g = cx.g;
    let name = g.node(id).name.as_str();
    let refused = |r: FallbackReason| cuda_err(name, r);
    let (plan, table) = match &g.node(id).op {
        Op::Squeeze | Op::Unsqueeze | Op::Cast { .. } => {
            let x = cx.operand(id, 0)?;
            let y_out = Outlet::new(id, 0);
            let s = cx.p.reshape(g, x, y_out, name);
            cx.bind(y_out, s);
            return Ok(());
        }
        Op::Slice => (slice_plan(g, id).map_err(refused)?, None),
        Op::Gather { .. } => gather_plan(g, id).map_err(refused)?,
        _ => return Err(cuda_err(name, "not a data-movement op")),
    };
    let mut plan = plan;
    if let Some(t) = table {
        let bytes: Vec<u8> = t.iter().flat_map(|v| v.to_ne_bytes()).collect();
        cx.p.weights.push(bytes);
        plan.table = Some(crate::program::WeightId(cx.p.weights.len() - 1));
    }
    let x = cx.operand(id, 0)?;
    let y = cx.output(id, 0);
    cx.step(name, Step::Gather { x, y, plan });
    Ok(())
}

#[cfg(test)]
#[path = "data_movement_tests.rs"]
mod tests;
