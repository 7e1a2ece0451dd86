//! Shape rules of the spatial ops: Conv and FusedConv, MaxPool and AveragePool,
//! the global pools, and BatchNormalization.

use super::rules::{window, Window};
use super::{info, NodeCtx};
use crate::error::Result;
use crate::op::{ConvAttrs, PoolAttrs};
use crate::shape::{Dim, TensorInfo};

/// Conv and FusedConv: `[N, M, windows..]` from input X and weights W.
pub(super) fn conv(ctx: &NodeCtx, c: &ConvAttrs) -> Result<Vec<TensorInfo>> {
    let (Some(x), Some(w)) = (ctx.in_shape(0), ctx.in_shape(1)) else {
        return Ok(vec![info(ctx.in_dt(0), None)]);
    };
    if x.len() < 3 || w.len() != x.len() {
        return Err(ctx.err(format!(
            "input rank {} and weight rank {} do not fit",
            x.len(),
            w.len()
        )));
    }
    let spatial = x.len() - 2;
    if let (Dim::Known(cin), Dim::Known(wc)) = (&x[1], &w[1]) {
        if *cin != wc * c.group.max(1) as u64 {
            return Err(ctx.err(format!(
                "input has {cin} channels, weights expect {} x group {}",
                wc, c.group
            )));
        }
    }
    let kernel: Vec<i64> = if c.kernel_shape.is_empty() {
        w[2..]
            .iter()
            .map(|d| d.known().map(|v| v as i64).unwrap_or(1))
            .collect()
    } else {
        c.kernel_shape.clone()
    };
    let (s, d, p) = (c.strides(spatial), c.dilations(spatial), c.pads(spatial));
    if kernel.len() != spatial || s.len() != spatial || d.len() != spatial || p.len() != 2 * spatial
    {
        return Err(ctx.err("kernel, strides, dilations or pads do not match the input rank"));
    }
    check_window(ctx, &kernel, &s, &d, &p)?;
    let mut shape = vec![x[0].clone(), w[0].clone()];
    for i in 0..spatial {
        shape.push(window(
            &x[2 + i],
            &Window {
                kernel: kernel[i],
                stride: s[i],
                dilation: d[i],
                pad_begin: p[i],
                pad_end: p[i + spatial],
                auto_pad: c.auto_pad,
                ceil: false,
            },
        ));
    }
    Ok(vec![info(ctx.in_dt(0), Some(shape))])
}

/// MaxPool and AveragePool: `[N, C, windows..]`.
pub(super) fn pool(ctx: &NodeCtx, p: &PoolAttrs) -> Result<Vec<TensorInfo>> {
    let Some(x) = ctx.in_shape(0) else {
        return Ok(vec![info(ctx.in_dt(0), None); ctx.n_out]);
    };
    let spatial = x.len().saturating_sub(2);
    let (s, d, pads) = (p.strides(spatial), p.dilations(spatial), p.pads(spatial));
    if p.kernel_shape.len() != spatial
        || s.len() != spatial
        || d.len() != spatial
        || pads.len() != 2 * spatial
    {
        return Err(ctx.err("kernel, strides, dilations or pads do not match the input rank"));
    }
    check_window(ctx, &p.kernel_shape, &s, &d, &pads)?;
    let mut shape = x[..2].to_vec();
    for i in 0..spatial {
        shape.push(window(
            &x[2 + i],
            &Window {
                kernel: p.kernel_shape[i],
                stride: s[i],
                dilation: d[i],
                pad_begin: pads[i],
                pad_end: pads[i + spatial],
                auto_pad: p.auto_pad,
                ceil: p.ceil_mode != 0,
            },
        ));
    }
    Ok(vec![info(ctx.in_dt(0), Some(shape))])
}

/// A sliding window's kernel, strides and dilations are at least 1, its pads at least 0.
fn check_window(
    ctx: &NodeCtx,
    kernel: &[i64],
    strides: &[i64],
    dilations: &[i64],
    pads: &[i64],
) -> Result<()> {
    for (what, v, min) in [
        ("kernel_shape", kernel, 1),
        ("strides", strides, 1),
        ("dilations", dilations, 1),
        ("pads", pads, 0),
    ] {
        if v.iter().any(|&x| x < min) {
            return Err(ctx.err(format!("{what} {v:?}: each must be at least {min}")));
        }
    }
    Ok(())
}

/// GlobalAveragePool and GlobalMaxPool: every spatial dim becomes 1.
pub(super) fn global_pool(ctx: &NodeCtx) -> Vec<TensorInfo> {
    let shape = ctx.in_shape(0).map(|x| {
        x.iter()
            .enumerate()
            .map(|(i, d)| if i < 2 { d.clone() } else { Dim::Known(1) })
            .collect()
    });
    vec![info(ctx.in_dt(0), shape)]
}

/// BatchNormalization: the input's shape, once the scale fits the channels.
pub(super) fn batch_norm(ctx: &NodeCtx) -> Result<Vec<TensorInfo>> {
    if let (Some(x), Some(sc)) = (ctx.in_shape(0), ctx.in_shape(1)) {
        if let (Some(Dim::Known(c)), Some(Dim::Known(n))) = (x.get(1), sc.first()) {
            if c != n {
                return Err(ctx.err(format!("{c} channels but {n} scale values")));
            }
        }
    }
    Ok(ctx.same())
}
