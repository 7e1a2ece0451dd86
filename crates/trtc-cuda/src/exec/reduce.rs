//! Launching reductions (`Step::Reduce`: `Reduce*`, softmax over any axes, layer and
//! instance normalization) through the plan of `program/reduce.rs`, and LRN.

use super::{Exec, Instance};
use crate::error::{cuda_err, Result};
use crate::program::reduce::{output_order, reduce_plan, ReducePlan, MAX_SPLITS, SPLIT_MIN};
use crate::program::{ReduceOp, Step};
use crate::sys::device::{blocks, kernel};
use cudarc::driver::{DeviceRepr, LaunchConfig, PushKernelArg};

/// The kernels' argument, laid out as their C struct `RedArgs`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct RedArgs {
    gamma: u64,
    beta: u64,
    n_out: u32,
    r: u32,
    kd: [u32; 4],
    ks: [u32; 4],
    kp: [u32; 4],
    rd: [u32; 4],
    rs: [u32; 4],
    rp: [u32; 4],
    nr: i32,
    pre: i32,
    comb: i32,
    post: i32,
    scale: f32,
    eps: f32,
    part: u64,
    chunk: u32,
    unused: i32,
}

// Safety: plain data (numbers and device addresses), laid out as the kernel's struct.
unsafe impl DeviceRepr for RedArgs {}

/// Blocks that keep the GPU busy (about 2 per SM of an H100/H200), for split reductions.
const TARGET_BLOCKS: usize = 264;

fn u32s(v: [usize; 4]) -> [u32; 4] {
    v.map(|d| d as u32)
}

/// Blocks of a `_cols` kernel: 32 outputs each, and rows over the reduced elements (more
/// rows where the outputs are few and the reductions long).
fn cols_config(n_out: usize, r: usize) -> LaunchConfig {
    let blocks = n_out.div_ceil(32).max(1);
    let rows = if blocks < 256 && r >= 256 { 32 } else { 8 };
    LaunchConfig {
        grid_dim: (blocks as u32, 1, 1),
        block_dim: (32, rows, 1),
        shared_mem_bytes: 0,
    }
}

impl Exec {
    /// Reduce step `i`.
    pub(crate) fn launch_reduce(&self, inst: &Instance, i: usize) -> Result<()> {
        let p = &self.program;
        let name = &p.names[i];
        let Step::Reduce { x, y, axes, op } = &p.steps[i] else {
            return Err(cuda_err(name, "not a reduction"));
        };
        let (xs, x_nhwc) = (p.shape(*x, inst.batch), p.slots[*x].nhwc);
        let same_storage = p.slots[*x].nhwc == p.slots[*y].nhwc;
        if !matches!(op, ReduceOp::Reduce { .. }) && !same_storage {
            return Err(cuda_err(
                name,
                "input and output stored in different layouts",
            ));
        }
        let mut a = RedArgs::default();
        // Kernels by task: (thread per output, warp per output).
        let (plan, names): (Option<ReducePlan>, [&'static str; 2]) = match op {
            ReduceOp::Reduce {
                pre, comb, post, ..
            } => {
                let ys = &p.slots[*y];
                let order = output_order(xs.len(), axes, ys.shape.len(), ys.nhwc);
                (a.pre, a.comb, a.post) = (*pre, *comb, *post);
                (
                    reduce_plan(&xs, x_nhwc, axes, Some(&order), &[]),
                    ["reduce_cols", "reduce_warp"],
                )
            }
            ReduceOp::Softmax { log } => {
                a.post = *log as i32;
                (
                    reduce_plan(&xs, x_nhwc, axes, None, &[]),
                    ["softmax_cols", "softmax_warp"],
                )
            }
            ReduceOp::Norm {
                eps,
                scale,
                bias,
                param_strides,
            } => {
                a.eps = *eps;
                a.gamma = self.wptr(*scale);
                a.beta = bias.map(|b| self.wptr(b)).unwrap_or(0);
                (
                    reduce_plan(&xs, x_nhwc, axes, None, param_strides),
                    ["norm_cols", "norm_warp"],
                )
            }
        };
        let plan = plan.ok_or_else(|| cuda_err(name, "more than 4 separate dims"))?;
        let (n_out, r) = (plan.kept.count(), plan.reduced.count());
        if n_out == 0 {
            return Ok(());
        }
        (a.n_out, a.r, a.nr) = (n_out as u32, r as u32, plan.reduced.len as i32);
        a.scale = 1.0 / r.max(1) as f32;
        (a.kd, a.ks, a.kp) = (
            u32s(plan.kept.dims),
            u32s(plan.kept.strides),
            u32s(plan.kept.params),
        );
        (a.rd, a.rs, a.rp) = (
            u32s(plan.reduced.dims),
            u32s(plan.reduced.strides),
            u32s(plan.reduced.params),
        );
        // A long reduction of few outputs: split over more blocks (partial results
        // combined by `reduce_finish`) until about 2 blocks per SM.
        let per_block = if plan.warp { 8 } else { 32 };
        let blocks_x = n_out.div_ceil(per_block);
        let partial = match op {
            ReduceOp::Reduce {
                partial: Some(t), ..
            } if r >= SPLIT_MIN => Some(*t),
            _ => None,
        };
        let mut splits = partial.map_or(1, |_| {
            TARGET_BLOCKS
                .div_ceil(blocks_x)
                .min(MAX_SPLITS)
                .min(r / 256)
        });
        let mut chunk = r;
        if splits >= 2 {
            chunk = r.div_ceil(splits);
            splits = r.div_ceil(chunk);
        }
        if let (Some(t), true) = (partial, splits >= 2) {
            (a.part, a.chunk) = (inst.ptrs[t], chunk as u32);
        }
        let mut cfg = if plan.warp {
            LaunchConfig {
                grid_dim: (blocks_x as u32, 1, 1),
                block_dim: (32, 8, 1),
                shared_mem_bytes: 0,
            }
        } else {
            cols_config(n_out, chunk)
        };
        cfg.grid_dim.1 = if a.part != 0 { splits as u32 } else { 1 };
        let f = kernel(&self.dev, names[plan.warp as usize], p.half)?;
        let (yp, xp) = (inst.ptrs[*y], inst.ptrs[*x]);
        unsafe {
            self.dev
                .stream
                .launch_builder(&f)
                .arg(&yp)
                .arg(&xp)
                .arg(&a)
                .launch(cfg)
        }
        .map_err(|e| cuda_err(name, e))?;
        if a.part == 0 {
            return Ok(());
        }
        let f = kernel(&self.dev, "reduce_finish", p.half)?;
        let (n, s) = (n_out as u32, splits as i32);
        unsafe {
            self.dev
                .stream
                .launch_builder(&f)
                .arg(&yp)
                .arg(&a.part)
                .arg(&n)
                .arg(&s)
                .arg(&a.comb)
                .arg(&a.post)
                .arg(&a.scale)
                .launch(blocks(n_out, 256))
        }
        .map(|_| ())
        .map_err(|e| cuda_err(name, e))
    }

    /// LRN step `i`.
    pub(crate) fn launch_lrn(&self, inst: &Instance, i: usize) -> Result<()> {
        let p = &self.program;
        let name = &p.names[i];
        let Step::Lrn {
            x,
            y,
            size,
            alpha,
            beta,
            bias,
        } = &p.steps[i]
        else {
            return Err(cuda_err(name, "not an LRN"));
        };
        let xs = p.shape(*x, inst.batch);
        let total: usize = xs.iter().product();
        let c = xs.get(1).copied().unwrap_or(1) as i32;
        let inner = xs.iter().skip(2).product::<usize>() as u32;
        let nhwc = p.slots[*x].nhwc as i32;
        let f = kernel(&self.dev, "lrn", p.half)?;
        let (yp, xp, t) = (inst.ptrs[*y], inst.ptrs[*x], total as u32);
        unsafe {
            self.dev
                .stream
                .launch_builder(&f)
                .arg(&yp)
                .arg(&xp)
                .arg(&t)
                .arg(&c)
                .arg(&inner)
                .arg(&nhwc)
                .arg(size)
                .arg(alpha)
                .arg(beta)
                .arg(bias)
                .launch(blocks(total, 256))
        }
        .map(|_| ())
        .map_err(|e| cuda_err(name, e))
    }
}
