//! Shape rules of the tensor ops: Dropout, the elementwise arithmetic, Concat, Split,
//! Gemm, MatMul, Flatten, Reshape, Transpose and Pad.

use super::rules::{self, norm_axis, product, unknown_dim};
use super::{broadcast, info, Known, NodeCtx, SymInt};
use crate::dtype::DType;
use crate::error::Result;
use crate::shape::{Dim, Shape, TensorInfo};

/// Dropout: the input, plus a Bool mask of the same shape when asked for.
pub(super) fn dropout(ctx: &NodeCtx) -> Vec<TensorInfo> {
    let mut v = ctx.same();
    if ctx.n_out > 1 {
        v.push(info(Some(DType::Bool), ctx.in_shape(0).cloned()));
    }
    v
}

/// Add, Sub, Mul and Div: the broadcast of both inputs.
pub(super) fn elementwise(ctx: &NodeCtx) -> Result<Vec<TensorInfo>> {
    let shape = match (ctx.in_shape(0), ctx.in_shape(1)) {
        (Some(a), Some(b)) => Some(broadcast(a, b).map_err(|e| ctx.err(e))?),
        _ => None,
    };
    Ok(vec![info(ctx.in_dt(0).or(ctx.in_dt(1)), shape)])
}

/// Concat: the inputs joined along `axis`; of 1-D shape vectors, their values joined too.
pub(super) fn concat(ctx: &NodeCtx, known: &mut Known, axis: i64) -> Result<Vec<TensorInfo>> {
    let ins = &ctx.ins;
    let parts: Option<Vec<Vec<SymInt>>> = ins.iter().map(|&o| known.ints(o)).collect();
    if let Some(parts) =
        parts.filter(|_| (0..ins.len()).all(|s| ctx.in_shape(s).is_some_and(|sh| sh.len() == 1)))
    {
        known.sym_ints.insert(ctx.output(0), parts.concat());
    }
    let shapes: Option<Vec<&Shape>> = (0..ins.len()).map(|s| ctx.in_shape(s)).collect();
    let shape = match shapes {
        Some(shapes) if !shapes.is_empty() => {
            let rank = shapes[0].len();
            let ax = norm_axis(axis, rank)
                .ok_or_else(|| ctx.err(format!("axis {axis} out of range")))?;
            let mut out = shapes[0].clone();
            for s in &shapes[1..] {
                if s.len() != rank {
                    return Err(ctx.err("inputs of different ranks"));
                }
                for i in 0..rank {
                    if i != ax {
                        if let (Dim::Known(p), Dim::Known(q)) = (&out[i], &s[i]) {
                            if p != q {
                                return Err(
                                    ctx.err(format!("inputs differ on axis {i}: {p} vs {q}"))
                                );
                            }
                        }
                    }
                }
            }
            out[ax] = match shapes.iter().map(|s| s[ax].known()).sum::<Option<u64>>() {
                Some(v) => Dim::Known(v),
                None => unknown_dim(),
            };
            Some(out)
        }
        _ => None,
    };
    Ok(vec![info(ctx.in_dt(0), shape)])
}

/// Split: sizes from input 1 when known, else equal parts (the last one smaller).
pub(super) fn split(ctx: &NodeCtx, known: &Known, axis: i64) -> Result<Vec<TensorInfo>> {
    let n_out = ctx.n_out;
    let Some(x) = ctx.in_shape(0) else {
        return Ok(vec![info(ctx.in_dt(0), None); n_out]);
    };
    let ax =
        norm_axis(axis, x.len()).ok_or_else(|| ctx.err(format!("axis {axis} out of range")))?;
    let sizes: Option<Vec<u64>> = match known.i64s(ctx.outlet(1)) {
        Some(v) => Some(v.into_iter().map(|s| s.max(0) as u64).collect()),
        None => x[ax].known().map(|total| {
            let part = total.div_ceil(n_out as u64);
            (0..n_out as u64)
                .map(|i| part.min(total.saturating_sub(i * part)))
                .collect()
        }),
    };
    Ok(match sizes {
        Some(sizes) if sizes.len() == n_out => sizes
            .into_iter()
            .map(|s| {
                let mut shape = x.clone();
                shape[ax] = Dim::Known(s);
                info(ctx.in_dt(0), Some(shape))
            })
            .collect(),
        _ => vec![info(ctx.in_dt(0), None); n_out],
    })
}

/// Gemm: `[M, N]` of 2-D inputs, each optionally transposed.
pub(super) fn gemm(ctx: &NodeCtx, trans_a: bool, trans_b: bool) -> Result<Vec<TensorInfo>> {
    let shape = match (ctx.in_shape(0), ctx.in_shape(1)) {
        (Some(a), Some(b)) if a.len() == 2 && b.len() == 2 => {
            let (m, ka) = if trans_a {
                (&a[1], &a[0])
            } else {
                (&a[0], &a[1])
            };
            let (kb, n) = if trans_b {
                (&b[1], &b[0])
            } else {
                (&b[0], &b[1])
            };
            if let (Dim::Known(p), Dim::Known(q)) = (ka, kb) {
                if p != q {
                    return Err(ctx.err(format!("inner dimensions differ: {p} vs {q}")));
                }
            }
            Some(vec![m.clone(), n.clone()])
        }
        (Some(_), Some(_)) => return Err(ctx.err("Gemm needs 2-D inputs")),
        _ => None,
    };
    Ok(vec![info(ctx.in_dt(0), shape)])
}

/// MatMul: numpy rules, 1-D operands promoted and their unit dim dropped again.
pub(super) fn matmul(ctx: &NodeCtx) -> Result<Vec<TensorInfo>> {
    let shape = match (ctx.in_shape(0), ctx.in_shape(1)) {
        (Some(a), Some(b)) if !a.is_empty() && !b.is_empty() => {
            let a2: Shape = if a.len() == 1 {
                vec![Dim::Known(1), a[0].clone()]
            } else {
                a.clone()
            };
            let b2: Shape = if b.len() == 1 {
                vec![b[0].clone(), Dim::Known(1)]
            } else {
                b.clone()
            };
            let (ka, kb) = (&a2[a2.len() - 1], &b2[b2.len() - 2]);
            if let (Dim::Known(p), Dim::Known(q)) = (ka, kb) {
                if p != q {
                    return Err(ctx.err(format!("inner dimensions differ: {p} vs {q}")));
                }
            }
            let batch =
                broadcast(&a2[..a2.len() - 2], &b2[..b2.len() - 2]).map_err(|e| ctx.err(e))?;
            let mut out = batch;
            if a.len() > 1 {
                out.push(a2[a2.len() - 2].clone());
            }
            if b.len() > 1 {
                out.push(b2[b2.len() - 1].clone());
            }
            Some(out)
        }
        _ => None,
    };
    Ok(vec![info(ctx.in_dt(0), shape)])
}

/// Flatten: `[product of dims before axis, product of the rest]`.
pub(super) fn flatten(ctx: &NodeCtx, axis: i64) -> Vec<TensorInfo> {
    let shape = ctx.in_shape(0).map(|x| {
        let ax = if axis < 0 {
            (axis + x.len() as i64).max(0) as usize
        } else {
            (axis as usize).min(x.len())
        };
        vec![product(&x[..ax]), product(&x[ax..])]
    });
    vec![info(ctx.in_dt(0), shape)]
}

/// Reshape to the (symbolic) target of input 1; a 1-D shape vector keeps its values.
pub(super) fn reshape(ctx: &NodeCtx, known: &mut Known, allowzero: bool) -> Vec<TensorInfo> {
    let target = known.ints(ctx.outlet(1));
    let shape = match (ctx.in_shape(0), target) {
        (Some(x), Some(t)) => rules::reshape(x, &t, allowzero),
        _ => None,
    };
    if let (Some(v), Some(o)) = (known.ints(ctx.outlet(0)), shape.as_ref()) {
        if o.len() == 1 {
            known.sym_ints.insert(ctx.output(0), v);
        }
    }
    vec![info(ctx.in_dt(0), shape)]
}

/// Transpose by `perm`, or reversed when absent.
pub(super) fn transpose(ctx: &NodeCtx, perm: Option<&[i64]>) -> Vec<TensorInfo> {
    let shape = ctx.in_shape(0).and_then(|x| {
        let p: Vec<i64> = perm
            .map(<[i64]>::to_vec)
            .unwrap_or_else(|| (0..x.len() as i64).rev().collect());
        p.iter()
            .map(|&a| norm_axis(a, x.len()).map(|a| x[a].clone()))
            .collect::<Option<Shape>>()
            .filter(|s| s.len() == x.len())
    });
    vec![info(ctx.in_dt(0), shape)]
}

/// Pad by the constant pads of input 1, on the axes of input 3 (all when absent).
pub(super) fn pad(ctx: &NodeCtx, known: &Known) -> Result<Vec<TensorInfo>> {
    let pads = known.i64s(ctx.outlet(1));
    let axes = known.i64s(ctx.outlet(3));
    let shape = match (ctx.in_shape(0), pads) {
        (Some(x), Some(p)) => {
            let axes: Vec<usize> = match axes {
                Some(a) => a.iter().filter_map(|&a| norm_axis(a, x.len())).collect(),
                None => (0..x.len()).collect(),
            };
            if p.len() != 2 * axes.len() {
                return Err(ctx.err(format!("{} pads for {} axes", p.len(), axes.len())));
            }
            let mut out = x.clone();
            for (i, &ax) in axes.iter().enumerate() {
                out[ax] = match &x[ax] {
                    Dim::Known(v) => {
                        Dim::Known((*v as i64 + p[i] + p[i + axes.len()]).max(0) as u64)
                    }
                    d if p[i] == 0 && p[i + axes.len()] == 0 => d.clone(),
                    _ => unknown_dim(),
                };
            }
            Some(out)
        }
        _ => None,
    };
    Ok(vec![info(ctx.in_dt(0), shape)])
}
