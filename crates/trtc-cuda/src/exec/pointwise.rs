//! Launching 1x1 convolutions of few input channels on trtc's tensor-core kernels
//! (`pointwise_mma_k1` .. `_k4` in `sys/conv_kernels_fp16.rs`, by the number of 16-wide
//! k-steps; `run.pointwise`, a tactic timed against cuBLASLt's product and cuDNN): the
//! expand convs of mobile networks, whose thin products (K of 16 to 64, outputs 4-6 times
//! the input) the libraries run well below the copy rate (cuBLASLt at 1.9-2.3x the byte
//! floor on EfficientNet-Lite0's, these at 1.2-1.6x; `benches/RESULTS.md`). Bias, residual
//! and activation in the kernel. Weights are cuDNN's NHWC filter, `[k][c]`. The grid is as
//! many blocks as the GPU holds at once; each warp walks 16-pixel tiles.

use super::{Exec, Instance};
use crate::error::{cuda_err, Result};
use crate::program::Step;
use crate::sys::device::kernel;
use cudarc::driver::sys::CUfunction_attribute;
use cudarc::driver::{LaunchConfig, PushKernelArg};

/// Most input channels `pointwise_mma` takes (four k-steps of 16, its A fragments held in
/// registers).
pub(crate) const POINTWISE_MMA_MAX_K: usize = 64;

/// Threads of a `pointwise_mma` block (8 warps).
const POINTWISE_MMA_THREADS: u32 = 256;

/// Most shared memory a `pointwise_mma` block may take (N up to 418 at K = 64).
const POINTWISE_MMA_MAX_SMEM: usize = 72 * 1024;

/// Bytes of shared memory `pointwise_mma` takes for `n` outputs of `k` inputs: the weights
/// in B-fragment order (K padded to whole k-steps of 16), the bias as floats, and each
/// warp's [16][72] fp16 staging of its outputs.
pub(crate) fn pointwise_mma_smem(k: usize, n: usize) -> usize {
    n * k.div_ceil(16) * 16 * 2 + n * 4 + 8 * 16 * 72 * 2
}

/// The kernel for `k` input channels: one per number of k-steps of 16, so that each holds
/// only the A fragments it needs in registers.
fn pointwise_kernel_name(k: usize) -> &'static str {
    [
        "pointwise_mma_k1",
        "pointwise_mma_k2",
        "pointwise_mma_k3",
        "pointwise_mma_k4",
    ][k.div_ceil(16).clamp(1, 4) - 1]
}

impl Exec {
    /// Whether `pointwise_mma` can run conv step `i` of `inst`: an fp16 NHWC engine on
    /// sm_80 or later; a 1x1 conv of one group, stride 1, no pads; input and output channels
    /// whole 16-byte vectors, at most 64 inputs; an input of whole rows, output and residual
    /// with pixels whole vectors apart (concat slices may not be).
    pub(crate) fn pointwise_mma_fits(&self, inst: &Instance, i: usize) -> bool {
        let p = &self.program;
        let Step::Conv {
            x,
            y,
            z,
            w_dims,
            pads,
            stride,
            groups,
            ..
        } = &p.steps[i]
        else {
            return false;
        };
        let (n, k) = (w_dims[0] as usize, w_dims[1] as usize);
        let whole = |slot: usize, own: usize| inst.ld(slot).unwrap_or(own).is_multiple_of(8);
        p.half
            && p.nhwc
            && self.dev.has_mma_f16()
            && w_dims[2..] == [1, 1]
            && *groups == 1
            && stride == &[1, 1]
            && pads.iter().all(|&v| v == 0)
            && k.is_multiple_of(8)
            && k <= POINTWISE_MMA_MAX_K
            && n.is_multiple_of(8)
            && pointwise_mma_smem(k, n) <= POINTWISE_MMA_MAX_SMEM
            && inst.ld(*x).is_none_or(|ld| ld == k)
            && whole(*y, n)
            && z.is_none_or(|z| whole(z, n))
    }

    /// Conv step `i` through `pointwise_mma`, applying `act` (the step's activation as this
    /// instance runs it).
    pub(crate) fn launch_pointwise_mma(
        &self,
        inst: &Instance,
        i: usize,
        act: Option<trtc_ir::Activation>,
    ) -> Result<()> {
        let p = &self.program;
        let Step::Conv {
            name,
            x,
            y,
            z,
            w,
            b: bias,
            w_dims,
            ..
        } = &p.steps[i]
        else {
            return Err(cuda_err(
                "engine",
                "pointwise launch of a step that is no convolution",
            ));
        };
        if !self.pointwise_mma_fits(inst, i) {
            return Err(cuda_err(
                name,
                "trtc's 1x1 tensor-core kernel does not take this conv",
            ));
        }
        let ys = p.shape(*y, inst.batch);
        let pixels = ys[0] * ys[2] * ys[3];
        let (n, k) = (w_dims[0] as usize, w_dims[1] as usize);
        let ld_y = inst.ld(*y).unwrap_or(n);
        let ld_z = z.and_then(|z| inst.ld(z)).unwrap_or(n);
        let code = act.map(crate::program::act_code).unwrap_or((0, 0.0, 0.0));
        let ptr = |slot: usize| inst.ptrs[slot];
        let (yp, xp, wp, bp, zp) = (
            ptr(*y),
            ptr(*x),
            self.wptr(*w),
            self.wptr(*bias),
            z.map(ptr).unwrap_or(0),
        );
        let f = kernel(&self.dev, pointwise_kernel_name(k), true)?;
        let err = |e: cudarc::driver::DriverError| cuda_err(name, e);
        let smem = pointwise_mma_smem(k, n);
        f.set_attribute(
            CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
            smem as i32,
        )
        .map_err(err)?;
        // As many blocks as the GPU holds at once, each warp walking tiles of 16 pixels.
        let per_sm = f
            .occupancy_max_active_blocks_per_multiprocessor(POINTWISE_MMA_THREADS, smem, None)
            .map_err(err)?
            .max(1);
        let sms = self.sm_count().map_err(err)?;
        let warp_tiles = pixels.div_ceil(16) as u32;
        let blocks = (sms * per_sm).min(warp_tiles.div_ceil(8)).max(1);
        let ints = [k, n, ld_y, ld_z].map(|v| v as i32);
        let (m, has_z) = (pixels as u32, z.is_some() as i32);
        let mut l = self.dev.stream.launch_builder(&f);
        l.arg(&yp).arg(&xp).arg(&wp).arg(&bp).arg(&zp).arg(&m);
        for v in &ints {
            l.arg(v);
        }
        l.arg(&has_z).arg(&code.0).arg(&code.1).arg(&code.2);
        let cfg = LaunchConfig {
            grid_dim: (blocks, 1, 1),
            block_dim: (POINTWISE_MMA_THREADS, 1, 1),
            shared_mem_bytes: smem as u32,
        };
        unsafe { l.launch(cfg) }
            .map(|_| ())
            .map_err(|e| cuda_err(name, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_memory_and_kernel_follow_k_and_n() {
        // EfficientNet-Lite0's `_blocks.1` expand conv, 16 -> 96: one k-step.
        assert_eq!(pointwise_mma_smem(16, 96), 96 * 32 + 96 * 4 + 18_432);
        assert_eq!(pointwise_kernel_name(16), "pointwise_mma_k1");
        // 24 and 40 inputs are padded to whole k-steps (2 and 3).
        assert_eq!(pointwise_mma_smem(24, 144), 144 * 64 + 144 * 4 + 18_432);
        assert_eq!(pointwise_kernel_name(24), "pointwise_mma_k2");
        assert_eq!(pointwise_kernel_name(40), "pointwise_mma_k3");
        assert_eq!(pointwise_kernel_name(64), "pointwise_mma_k4");
        // MobileNetV2's 64 -> 384 expand fits the limit; 448 outputs at K = 64 do not.
        assert!(pointwise_mma_smem(64, 384) <= POINTWISE_MMA_MAX_SMEM);
        assert!(pointwise_mma_smem(64, 448) > POINTWISE_MMA_MAX_SMEM);
    }
}
