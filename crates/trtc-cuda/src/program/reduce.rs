//! The iteration space of a reduction over some logical axes of a tensor, as trtc's
//! reduction kernels walk it (`sys/reduce_kernels.rs`): the kept dims (one output, or one
//! group of elements normalized together, each) and the reduced dims, each at most 4 once
//! dims of 1 are dropped and neighbours that are neighbours in memory are merged, with
//! their strides in x's storage and in a parameter tensor (LayerNorm's scale, say).
//!
//! The kernels run in one of two forms: a warp per output, its lanes over the reduced
//! elements, where those hold x's contiguous dim (a mean over the last axis, over H and W
//! in NCHW); or a thread per output, neighbouring threads on neighbouring outputs and the
//! block's rows over the reduced elements, where the outputs hold it (a mean over H and W
//! in NHWC: coalesced over the channels).

use super::host::logical_strides;

/// Reductions of at least this many elements per output may be split over several blocks
/// (then combined by a second kernel), when their outputs are too few to fill the GPU.
pub const SPLIT_MIN: usize = 1024;
/// The most blocks one output's reduction is split over.
pub const MAX_SPLITS: usize = 16;

/// Dims a kernel walks (kept or reduced), outermost first, padded to 4 at the front with
/// dims of 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Walk {
    pub dims: [usize; 4],
    /// Elements between neighbours along each dim in x.
    pub strides: [usize; 4],
    /// Elements between neighbours along each dim in the parameters (0: not indexed).
    pub params: [usize; 4],
    /// How many dims are real (the others are the padding).
    pub len: usize,
}

impl Walk {
    /// Dims (size, x stride, parameter stride), outermost first: dims of 1 dropped,
    /// neighbours merged where the outer one steps exactly over the inner one in both x
    /// and the parameters. `None` when more than 4 remain.
    fn merged(dims: impl Iterator<Item = (usize, usize, usize)>) -> Option<Walk> {
        let mut v: Vec<(usize, usize, usize)> = vec![];
        for (n, s, p) in dims {
            if n == 1 {
                continue;
            }
            match v.last_mut() {
                Some(last) if last.1 == s * n && last.2 == p * n => {
                    *last = (last.0 * n, s, p);
                }
                _ => v.push((n, s, p)),
            }
        }
        if v.len() > 4 {
            return None;
        }
        let mut w = Walk {
            dims: [1; 4],
            len: v.len(),
            ..Walk::default()
        };
        let pad = 4 - v.len();
        for (k, (n, s, p)) in v.into_iter().enumerate() {
            (w.dims[pad + k], w.strides[pad + k], w.params[pad + k]) = (n, s, p);
        }
        Some(w)
    }

    pub fn count(&self) -> usize {
        self.dims.iter().product()
    }

    /// Stride of the innermost real dim (0 when there is none).
    fn inner_stride(&self) -> usize {
        if self.len == 0 {
            0
        } else {
            self.strides[3]
        }
    }
}

/// A reduction's plan: what it keeps, what it reduces, and the kernel form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReducePlan {
    pub kept: Walk,
    pub reduced: Walk,
    /// A warp per output (else a thread per output): see the module's doc.
    pub warp: bool,
}

/// The plan of a reduction of x (logical shape `xs`, NHWC storage when `x_nhwc`) over
/// logical `axes`. Outputs are numbered along x's kept axes in the order `kept_order`
/// (for a `Reduce*`, y's storage order; `None`: x's storage order). `params` are the
/// parameters' strides along x's logical axes (empty: no parameters). `None` when more
/// than 4 dims of either kind remain after merging.
pub fn reduce_plan(
    xs: &[usize],
    x_nhwc: bool,
    axes: &[usize],
    kept_order: Option<&[usize]>,
    params: &[usize],
) -> Option<ReducePlan> {
    let xst = logical_strides(xs, x_nhwc);
    let pst = |a: usize| params.get(a).copied().unwrap_or(0);
    let storage: Vec<usize> = if x_nhwc && xs.len() == 4 {
        vec![0, 2, 3, 1]
    } else {
        (0..xs.len()).collect()
    };
    let kept_axes: Vec<usize> = match kept_order {
        Some(o) => o.to_vec(),
        None => storage.into_iter().filter(|a| !axes.contains(a)).collect(),
    };
    let kept = Walk::merged(kept_axes.iter().map(|&a| (xs[a], xst[a], pst(a))))?;
    let mut red_axes = axes.to_vec();
    red_axes.sort_unstable();
    // Parameters are indexed in logical order: the reduced dims are walked in it.
    let reduced = Walk::merged(red_axes.iter().map(|&a| (xs[a], xst[a], pst(a))))?;
    let warp = reduced.inner_stride() == 1 && (reduced.count() >= 8 || kept.inner_stride() != 1);
    Some(ReducePlan {
        kept,
        reduced,
        warp,
    })
}

/// x's kept axes (a `Reduce*` of x, of rank `x_rank`, over `axes`) in the storage order
/// of its output y (of rank `y_rank`: x's rank with keepdims, fewer without).
pub fn output_order(x_rank: usize, axes: &[usize], y_rank: usize, y_nhwc: bool) -> Vec<usize> {
    // y's logical dims, as x's axes (keepdims: all of them, the reduced ones of size 1).
    let y_axes: Vec<usize> = if y_rank == x_rank {
        (0..x_rank).collect()
    } else {
        (0..x_rank).filter(|a| !axes.contains(a)).collect()
    };
    let storage: Vec<usize> = if y_nhwc && y_axes.len() == 4 {
        vec![0, 2, 3, 1]
    } else {
        (0..y_axes.len()).collect()
    };
    storage
        .into_iter()
        .map(|d| y_axes[d])
        .filter(|a| !axes.contains(a))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spatial_mean_in_nchw_is_a_warp_per_row_and_in_nhwc_coalesced_over_channels() {
        // [2, 37, 7, 7] over H, W.
        let p = reduce_plan(&[2, 37, 7, 7], false, &[2, 3], Some(&[0, 1]), &[]).unwrap();
        assert!(p.warp);
        assert_eq!(
            (p.kept.dims, p.kept.strides),
            ([1, 1, 1, 74], [0, 0, 0, 49])
        );
        assert_eq!(
            (p.reduced.dims, p.reduced.strides),
            ([1, 1, 1, 49], [0, 0, 0, 1])
        );
        let order = output_order(4, &[2, 3], 4, true);
        assert_eq!(order, [0, 1]);
        let p = reduce_plan(&[2, 37, 7, 7], true, &[2, 3], Some(&order), &[]).unwrap();
        assert!(!p.warp);
        assert_eq!(
            (p.kept.dims, p.kept.strides),
            ([1, 1, 2, 37], [0, 0, 49 * 37, 1])
        );
        assert_eq!(
            (p.reduced.dims, p.reduced.strides),
            ([1, 1, 1, 49], [0, 0, 0, 37])
        );
    }

    #[test]
    fn axes_apart_stay_apart_and_keepdims_0_orders_outputs_naturally() {
        // [2, 3, 4, 5] NCHW over C and W, keepdims 0: y [2, 4], outputs n, h.
        let order = output_order(4, &[1, 3], 2, false);
        assert_eq!(order, [0, 2]);
        let p = reduce_plan(&[2, 3, 4, 5], false, &[1, 3], Some(&order), &[]).unwrap();
        assert_eq!((p.kept.dims, p.kept.strides), ([1, 1, 2, 4], [0, 0, 60, 5]));
        assert_eq!(
            (p.reduced.dims, p.reduced.strides),
            ([1, 1, 3, 5], [0, 0, 20, 1])
        );
        assert_eq!(p.reduced.len, 2);
        // A 5-D x reduced to a 4-D y of an NHWC engine: y's storage order.
        assert_eq!(output_order(5, &[4], 4, true), [0, 2, 3, 1]);
    }

    #[test]
    fn parameters_follow_the_logical_order() {
        // LayerNorm over the last two axes of an NHWC [2, 3, 4, 5]: scale is [4, 5].
        let p = reduce_plan(&[2, 3, 4, 5], true, &[2, 3], None, &[0, 0, 5, 1]).unwrap();
        assert_eq!(
            (p.reduced.dims, p.reduced.strides),
            ([1, 1, 1, 20], [0, 0, 0, 3])
        );
        assert_eq!(p.reduced.params, [0, 0, 0, 1]);
        // InstanceNorm: the channel indexes the parameters; kept n, c in storage order.
        let p = reduce_plan(&[2, 3, 4, 5], true, &[2, 3], None, &[0, 1, 0, 0]).unwrap();
        assert_eq!((p.kept.dims, p.kept.params), ([1, 1, 2, 3], [0, 0, 0, 1]));
        assert!(!p.warp);
    }
}
