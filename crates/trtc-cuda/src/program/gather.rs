//! The strided gather of data-movement ops (`Step::Gather`): each dim of y reads x along
//! one of x's dims, by an affine map (Slice, Expand, Gather of evenly spaced indices), a
//! modulo (Tile), a shift with padding (Pad) or an index table (Gather); dims of x that y
//! drops are read at fixed coordinates. Kept in logical terms; [`GatherPlan::kernel_dims`]
//! puts it in y's storage order with x's storage strides for the `strided_gather` kernel.

use super::host::logical_strides;
use super::WeightId;

/// The kernel's limit on y's dims.
pub const MAX_DIMS: usize = 6;

/// How a dim of y picks coordinates of x's dim.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pick {
    /// `start + c * step` (step 0 repeats one coordinate, as Expand does).
    Affine { start: i64, step: i64 },
    /// `c % n` (Tile).
    Modulo(usize),
    /// `c - before`, padded outside `[0, n)` (Pad).
    Pad { before: i64, n: usize },
    /// The plan's index table (Gather).
    Table,
}

/// One dim of y.
#[derive(Clone, Debug, PartialEq)]
pub struct GatherDim {
    /// Its length; `None` for the batch.
    pub len: Option<usize>,
    /// The dim of x it reads along.
    pub x_dim: usize,
    pub pick: Pick,
}

/// Pad mode codes of the kernel.
pub const PAD_CONSTANT: i32 = 0;
pub const PAD_REFLECT: i32 = 1;
pub const PAD_EDGE: i32 = 2;

#[derive(Clone, Debug, PartialEq)]
pub struct GatherPlan {
    /// y's dims, in its logical order (a dim of y split in parts, major first, where
    /// `parts` says so).
    pub dims: Vec<GatherDim>,
    /// How many of `dims` each dim of y is (DepthToSpace's `h * b` is two); empty for one
    /// each.
    pub parts: Vec<usize>,
    /// (x dim, coordinate) of the dims of x that y drops.
    pub fixed: Vec<(usize, usize)>,
    /// Pad mode (`PAD_*`) and constant value.
    pub mode: i32,
    pub value: f32,
    /// The i32 indices of a `Pick::Table` dim.
    pub table: Option<WeightId>,
}

/// The kernel's view of a plan at one batch size: y's dims in storage order (outermost
/// first, padded to `MAX_DIMS` with dims of 1) and x's start offset.
#[derive(Debug, PartialEq)]
pub struct KernelDims {
    pub base: i64,
    pub len: [i64; MAX_DIMS],
    pub a: [i64; MAX_DIMS],
    pub b: [i64; MAX_DIMS],
    pub stride: [i64; MAX_DIMS],
    pub kind: [i32; MAX_DIMS],
}

impl GatherPlan {
    /// The kernel's arguments for x of logical shape `xs` (stored NHWC where `x_nhwc`),
    /// y stored NHWC where `y_nhwc`, at batch `batch`; `None` past `MAX_DIMS`.
    pub fn kernel_dims(
        &self,
        xs: &[usize],
        x_nhwc: bool,
        y_nhwc: bool,
        batch: usize,
    ) -> Option<KernelDims> {
        let rank = self.dims.len();
        if rank > MAX_DIMS || self.dims.iter().any(|d| d.x_dim >= xs.len()) {
            return None;
        }
        let parts = if self.parts.is_empty() {
            vec![1; rank]
        } else {
            self.parts.clone()
        };
        if parts.iter().sum::<usize>() != rank {
            return None;
        }
        let xst = logical_strides(xs, x_nhwc);
        let groups: Vec<usize> = if y_nhwc && parts.len() == 4 {
            vec![0, 2, 3, 1]
        } else {
            (0..parts.len()).collect()
        };
        let first = |g: usize| parts[..g].iter().sum::<usize>();
        let order: Vec<usize> = groups
            .iter()
            .flat_map(|&g| first(g)..first(g) + parts[g])
            .collect();
        let pad = MAX_DIMS - rank;
        let mut k = KernelDims {
            base: 0,
            len: [1; MAX_DIMS],
            a: [0; MAX_DIMS],
            b: [0; MAX_DIMS],
            stride: [0; MAX_DIMS],
            kind: [0; MAX_DIMS],
        };
        for &(d, c) in &self.fixed {
            k.base += (c * *xst.get(d)?) as i64;
        }
        for (slot, &d) in order.iter().enumerate() {
            let dim = &self.dims[d];
            let j = pad + slot;
            k.len[j] = dim.len.unwrap_or(batch) as i64;
            k.stride[j] = xst[dim.x_dim] as i64;
            (k.kind[j], k.a[j], k.b[j]) = match dim.pick {
                Pick::Affine { start, step } => (0, start, step),
                Pick::Modulo(n) => (1, n.max(1) as i64, 0),
                Pick::Pad { before, n } => (2, before, n as i64),
                Pick::Table => (3, 0, 0),
            };
        }
        Some(k)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// What the `strided_gather` kernel computes, on the host: y in storage order from x
    /// in storage order.
    pub(crate) fn run_kernel(
        k: &KernelDims,
        mode: i32,
        value: f32,
        table: &[i32],
        x: &[f32],
    ) -> Vec<f32> {
        let n: i64 = k.len.iter().product();
        (0..n)
            .map(|i| {
                let (mut r, mut off, mut inside) = (i, k.base, true);
                for j in (0..MAX_DIMS).rev() {
                    let c = r % k.len[j];
                    r /= k.len[j];
                    let q = match k.kind[j] {
                        1 => c % k.a[j],
                        2 => {
                            let l = k.b[j];
                            let q = c - k.a[j];
                            if (0..l).contains(&q) {
                                q
                            } else if mode == PAD_REFLECT && l > 1 {
                                let p = 2 * (l - 1);
                                let q = q.rem_euclid(p);
                                if q >= l {
                                    p - q
                                } else {
                                    q
                                }
                            } else if mode != PAD_CONSTANT {
                                if q < 0 {
                                    0
                                } else {
                                    l - 1
                                }
                            } else {
                                inside = false;
                                0
                            }
                        }
                        3 => table[c as usize] as i64,
                        _ => k.a[j] + c * k.b[j],
                    };
                    off += q * k.stride[j];
                }
                if inside {
                    x[off as usize]
                } else {
                    value
                }
            })
            .collect()
    }

    fn affine(len: usize, x_dim: usize, start: i64, step: i64) -> GatherDim {
        GatherDim {
            len: Some(len),
            x_dim,
            pick: Pick::Affine { start, step },
        }
    }

    fn plan(dims: Vec<GatherDim>) -> GatherPlan {
        GatherPlan {
            dims,
            parts: vec![],
            fixed: vec![],
            mode: PAD_CONSTANT,
            value: 0.0,
            table: None,
        }
    }

    #[test]
    fn a_channel_slice_reads_the_same_values_in_both_layouts() {
        // x [1, 4, 2, 3] = 0..24 (NCHW order); y = x[:, 2:4].
        let xs = [1, 4, 2, 3];
        let x: Vec<f32> = (0..24).map(|v| v as f32).collect();
        let p = plan(vec![
            GatherDim {
                len: None,
                x_dim: 0,
                pick: Pick::Affine { start: 0, step: 1 },
            },
            affine(2, 1, 2, 1),
            affine(2, 2, 0, 1),
            affine(3, 3, 0, 1),
        ]);
        let nchw = p.kernel_dims(&xs, false, false, 1).unwrap();
        let y = run_kernel(&nchw, 0, 0.0, &[], &x);
        assert_eq!(y, (12..24).map(|v| v as f32).collect::<Vec<_>>());
        // NHWC: x stored [1, 2, 3, 4]; y stored [1, 2, 3, 2].
        let x_nhwc = crate::program::host::nchw_to_nhwc(&x, [1, 4, 2, 3]);
        let k = p.kernel_dims(&xs, true, true, 1).unwrap();
        let y = run_kernel(&k, 0, 0.0, &[], &x_nhwc);
        let want = crate::program::host::nchw_to_nhwc(
            &(12..24).map(|v| v as f32).collect::<Vec<_>>(),
            [1, 2, 2, 3],
        );
        assert_eq!(y, want);
    }

    #[test]
    fn pads_tiles_and_tables_follow_onnx() {
        // x [1, 3] = 1 2 3; reflect pad 2 each side: 3 2 1 2 3 2 1.
        let x = [1f32, 2., 3.];
        let mut p = plan(vec![
            affine(1, 0, 0, 1),
            GatherDim {
                len: Some(7),
                x_dim: 1,
                pick: Pick::Pad { before: 2, n: 3 },
            },
        ]);
        p.mode = PAD_REFLECT;
        let k = p.kernel_dims(&[1, 3], false, false, 1).unwrap();
        assert_eq!(
            run_kernel(&k, p.mode, 0.0, &[], &x),
            [3., 2., 1., 2., 3., 2., 1.]
        );
        let k2 = p.kernel_dims(&[1, 3], false, false, 1).unwrap();
        assert_eq!(
            run_kernel(&k2, PAD_EDGE, 0.0, &[], &x),
            [1., 1., 1., 2., 3., 3., 3.]
        );
        assert_eq!(
            run_kernel(&k2, PAD_CONSTANT, 9.0, &[], &x),
            [9., 9., 1., 2., 3., 9., 9.]
        );
        // Tile twice; gather [2, 0].
        let p = plan(vec![
            affine(1, 0, 0, 1),
            GatherDim {
                len: Some(6),
                x_dim: 1,
                pick: Pick::Modulo(3),
            },
        ]);
        let k = p.kernel_dims(&[1, 3], false, false, 1).unwrap();
        assert_eq!(run_kernel(&k, 0, 0.0, &[], &x), [1., 2., 3., 1., 2., 3.]);
        let p = plan(vec![
            affine(1, 0, 0, 1),
            GatherDim {
                len: Some(2),
                x_dim: 1,
                pick: Pick::Table,
            },
        ]);
        let k = p.kernel_dims(&[1, 3], false, false, 1).unwrap();
        assert_eq!(run_kernel(&k, 0, 0.0, &[2, 0], &x), [3., 1.]);
    }
}
