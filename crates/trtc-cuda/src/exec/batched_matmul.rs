//! Launching `Step::BatchedMatMul` (MatMul of two computed tensors): trtc's
//! `batched_matmul` kernel (`sys/matmul_kernels.rs`), a 16x16 block per output tile and
//! one grid layer per matrix pair.

use super::{Exec, Instance};
use crate::error::{cuda_err, Result};
use crate::program::{Step, MAX_BATCHED_MATRICES};
use crate::sys::device::kernel;
use cudarc::driver::{LaunchConfig, PushKernelArg};

impl Exec {
    /// Batched MatMul step `i`.
    pub(crate) fn launch_batched_matmul(&self, inst: &Instance, i: usize) -> Result<()> {
        let p = &self.program;
        let name = &p.names[i];
        let Step::BatchedMatMul {
            a,
            b,
            y,
            m,
            k,
            n,
            a_bcast,
            b_bcast,
        } = &p.steps[i]
        else {
            return Err(cuda_err(name, "not a batched MatMul"));
        };
        let (m, k, n) = (*m, *k, *n);
        let count = p.numel(*y, inst.batch) / (m * n).max(1);
        if count == 0 || count > MAX_BATCHED_MATRICES {
            return Err(cuda_err(
                name,
                format!("{count} matrices (1 to {MAX_BATCHED_MATRICES} per launch)"),
            ));
        }
        let dim = |v: usize| {
            i32::try_from(v).map_err(|_| cuda_err(name, format!("a dim of {v} over i32")))
        };
        let (mi, ki, ni) = (dim(m)?, dim(k)?, dim(n)?);
        let sa: i64 = if *a_bcast { 0 } else { (m * k) as i64 };
        let sb: i64 = if *b_bcast { 0 } else { (k * n) as i64 };
        let cfg = LaunchConfig {
            grid_dim: (n.div_ceil(16) as u32, m.div_ceil(16) as u32, count as u32),
            block_dim: (16, 16, 1),
            shared_mem_bytes: 0,
        };
        let f = kernel(&self.dev, "batched_matmul", p.half)?;
        let (yp, ap, bp) = (inst.ptrs[*y], inst.ptrs[*a], inst.ptrs[*b]);
        unsafe {
            self.dev
                .stream
                .launch_builder(&f)
                .arg(&yp)
                .arg(&ap)
                .arg(&bp)
                .arg(&mi)
                .arg(&ki)
                .arg(&ni)
                .arg(&sa)
                .arg(&sb)
                .launch(cfg)
        }
        .map(|_| ())
        .map_err(|e| cuda_err(name, e))
    }
}
