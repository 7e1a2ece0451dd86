//! Shape rules of the ops that compute shapes: Cast, Shape, Gather, Unsqueeze, Squeeze,
//! Slice and ConstantOfShape. They also carry the integer shape vectors they compute
//! (`Shape -> Gather -> Concat ...`) in `Known`, with symbols where a dim is dynamic.

use super::rules::{norm_axis, slice_len, unknown_dim};
use super::{info, Known, NodeCtx, SymInt};
use crate::dtype::DType;
use crate::error::Result;
use crate::shape::{Dim, TensorInfo};
use tract_onnx::prelude::Tensor;

/// Cast: the input's shape as `to`; an integer shape vector stays known.
pub(super) fn cast(ctx: &NodeCtx, known: &mut Known, to: DType) -> Vec<TensorInfo> {
    if let Some(v) = known.ints(ctx.outlet(0)) {
        if to.to_datum().is_some_and(|d| d.is_integer()) {
            known.sym_ints.insert(ctx.output(0), v);
        }
    }
    vec![info(Some(to), ctx.in_shape(0).cloned())]
}

/// Shape: the input's dims `start..end` as an I64 vector, and as known values.
pub(super) fn shape(
    ctx: &NodeCtx,
    known: &mut Known,
    start: Option<i64>,
    end: Option<i64>,
) -> Vec<TensorInfo> {
    let Some(x) = ctx.in_shape(0) else {
        return vec![info(Some(DType::I64), None)];
    };
    let r = x.len() as i64;
    let clampi = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let (s, e) = (clampi(start.unwrap_or(0)), clampi(end.unwrap_or(r)));
    let dims = if s < e { &x[s..e] } else { &x[0..0] };
    known.sym_ints.insert(
        ctx.output(0),
        dims.iter()
            .map(|d| match d {
                Dim::Known(v) => SymInt::Int(*v as i64),
                Dim::Sym(s) => SymInt::Sym(s.clone()),
            })
            .collect(),
    );
    vec![info(
        Some(DType::I64),
        Some(vec![Dim::Known(dims.len() as u64)]),
    )]
}

/// Gather: the indices' shape in place of `axis`; picks from a known shape vector.
pub(super) fn gather(ctx: &NodeCtx, known: &mut Known, axis: i64) -> Result<Vec<TensorInfo>> {
    let idx_out = ctx.outlet(1);
    if let (Some(v), Some(idx)) = (known.ints(ctx.outlet(0)), known.i64s(idx_out)) {
        let picked: Option<Vec<SymInt>> = idx
            .iter()
            .map(|&i| {
                let i = if i < 0 { i + v.len() as i64 } else { i };
                v.get(i as usize).cloned()
            })
            .collect();
        if let Some(p) = picked {
            known.sym_ints.insert(ctx.output(0), p);
        }
    }
    let shape = match (ctx.in_shape(0), ctx.in_shape(1)) {
        (Some(x), Some(i)) => {
            let ax = norm_axis(axis, x.len())
                .ok_or_else(|| ctx.err(format!("axis {axis} out of range")))?;
            if let (Dim::Known(n), Some(idx)) = (&x[ax], known.i64s(idx_out)) {
                let n = *n as i64;
                if let Some(bad) = idx.iter().find(|&&i| i < -n || i >= n) {
                    return Err(ctx.err(format!(
                        "index {bad} out of range for axis {ax} of size {n}"
                    )));
                }
            }
            Some([&x[..ax], &i[..], &x[ax + 1..]].concat())
        }
        _ => None,
    };
    Ok(vec![info(ctx.in_dt(0), shape)])
}

/// Unsqueeze: unit dims inserted at the constant axes of input 1.
pub(super) fn unsqueeze(ctx: &NodeCtx, known: &mut Known) -> Result<Vec<TensorInfo>> {
    if let Some(v) = known.ints(ctx.outlet(0)) {
        known.sym_ints.insert(ctx.output(0), v);
    }
    let shape = match (ctx.in_shape(0), known.i64s(ctx.outlet(1))) {
        (Some(x), Some(axes)) => {
            let r = x.len() + axes.len();
            let mut axes = norm_axes(ctx, &axes, r)?;
            axes.sort();
            let mut out = x.clone();
            for a in axes {
                out.insert(a.min(out.len()), Dim::Known(1));
            }
            Some(out)
        }
        _ => None,
    };
    Ok(vec![info(ctx.in_dt(0), shape)])
}

/// Squeeze: the axes of input 1 dropped, or every unit dim when absent.
pub(super) fn squeeze(ctx: &NodeCtx, known: &Known) -> Result<Vec<TensorInfo>> {
    let axes = known.i64s(ctx.outlet(1));
    let shape = match ctx.in_shape(0) {
        Some(x) => {
            let drop: Vec<usize> = match &axes {
                Some(a) => norm_axes(ctx, a, x.len())?,
                None => (0..x.len()).filter(|&i| x[i] == Dim::Known(1)).collect(),
            };
            if let Some(&a) = drop
                .iter()
                .find(|&&a| matches!(x[a], Dim::Known(n) if n != 1))
            {
                return Err(ctx.err(format!("axis {a} is of size {}, not 1", x[a])));
            }
            Some(
                x.iter()
                    .enumerate()
                    .filter(|(i, _)| !drop.contains(i))
                    .map(|(_, d)| d.clone())
                    .collect(),
            )
        }
        None => None,
    };
    Ok(vec![info(ctx.in_dt(0), shape)])
}

/// Axes of a tensor of rank `rank`, each in range and named once.
fn norm_axes(ctx: &NodeCtx, axes: &[i64], rank: usize) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let n = norm_axis(a, rank)
            .ok_or_else(|| ctx.err(format!("axis {a} out of range for rank {rank}")))?;
        if out.contains(&n) {
            return Err(ctx.err(format!("axis {a} given twice")));
        }
        out.push(n);
    }
    Ok(out)
}

/// Slice by the constant starts, ends, axes and steps of inputs 1 to 4.
pub(super) fn slice(ctx: &NodeCtx, known: &mut Known) -> Vec<TensorInfo> {
    if let Some(picked) = slice_of_shape_vector(ctx, known) {
        let n = picked.len() as u64;
        known.sym_ints.insert(ctx.output(0), picked);
        return vec![info(ctx.in_dt(0), Some(vec![Dim::Known(n)]))];
    }
    let get = |s: usize| known.i64s(ctx.outlet(s));
    vec![info(ctx.in_dt(0), sliced_shape(ctx, &get))]
}

/// A slice of a shape vector (`Shape(x)[2:]`, Resize's sizes) stays a known vector.
fn slice_of_shape_vector(ctx: &NodeCtx, known: &Known) -> Option<Vec<SymInt>> {
    let get = |s: usize| known.i64s(ctx.outlet(s));
    let (v, starts, ends) = (known.ints(ctx.outlet(0))?, get(1)?, get(2)?);
    if !get(3).is_none_or(|a| a == [0] || a == [-1]) {
        return None;
    }
    let step = match get(4) {
        None => 1,
        Some(s) if s.len() == 1 => s[0],
        Some(_) => return None,
    };
    let ([start], [end]) = (&starts[..], &ends[..]) else {
        return None;
    };
    let picked = slice_indices(v.len() as i64, *start, *end, step)?;
    Some(picked.into_iter().map(|i| v[i].clone()).collect())
}

fn sliced_shape(
    ctx: &NodeCtx,
    get: &dyn Fn(usize) -> Option<Vec<i64>>,
) -> Option<crate::shape::Shape> {
    match (ctx.in_shape(0), get(1), get(2)) {
        (Some(x), Some(starts), Some(ends)) => {
            let axes = get(3).unwrap_or_else(|| (0..starts.len() as i64).collect());
            let steps = get(4).unwrap_or_else(|| vec![1; starts.len()]);
            let mut out = x.clone();
            for i in 0..starts
                .len()
                .min(axes.len())
                .min(ends.len())
                .min(steps.len())
            {
                let Some(ax) = norm_axis(axes[i], x.len()) else {
                    continue;
                };
                out[ax] = match &x[ax] {
                    Dim::Known(n) => Dim::Known(slice_len(*n as i64, starts[i], ends[i], steps[i])),
                    d if starts[i] == 0 && ends[i] >= i32::MAX as i64 && steps[i] == 1 => d.clone(),
                    _ => unknown_dim(),
                };
            }
            Some(out)
        }
        _ => None,
    }
}

/// ConstantOfShape: the shape held by input 1, of `value`'s dtype (F32 by default).
pub(super) fn constant_of_shape(
    ctx: &NodeCtx,
    known: &Known,
    value: Option<&Tensor>,
) -> Vec<TensorInfo> {
    let dt = value
        .and_then(|v| DType::from_datum(v.datum_type()))
        .or(Some(DType::F32));
    let shape = known.ints(ctx.outlet(0)).map(|v| {
        v.into_iter()
            .map(|d| match d {
                SymInt::Int(i) => Dim::Known(i.max(0) as u64),
                SymInt::Sym(s) => Dim::Sym(s),
            })
            .collect()
    });
    vec![info(dt, shape)]
}

/// The indices ONNX's Slice picks from a dim of `n` (starts and ends clamped, negative
/// ones counted from the end); `None` for a zero step.
fn slice_indices(n: i64, start: i64, end: i64, step: i64) -> Option<Vec<usize>> {
    if step == 0 {
        return None;
    }
    let norm = |v: i64| if v < 0 { v + n } else { v };
    let (mut i, end) = if step > 0 {
        (norm(start).clamp(0, n), norm(end).clamp(0, n))
    } else {
        (norm(start).clamp(-1, n - 1), norm(end).clamp(-1, n - 1))
    };
    let mut out = vec![];
    while (step > 0 && i < end) || (step < 0 && i > end) {
        out.push(i as usize);
        i += step;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn slice_indices_follow_onnx() {
        use super::slice_indices;
        assert_eq!(slice_indices(4, 2, i64::MAX, 1), Some(vec![2, 3]));
        assert_eq!(slice_indices(4, -2, 4, 1), Some(vec![2, 3]));
        assert_eq!(slice_indices(4, -1, i64::MIN, -1), Some(vec![3, 2, 1, 0]));
        assert_eq!(slice_indices(4, 0, 4, 2), Some(vec![0, 2]));
        assert_eq!(slice_indices(4, 5, 9, 1), Some(vec![]));
        assert_eq!(slice_indices(4, 0, 4, 0), None);
    }
}
