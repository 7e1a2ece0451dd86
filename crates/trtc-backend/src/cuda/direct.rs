//! Launching convolutions that trtc's own NHWC kernels run (`run.direct`, a tactic timed
//! against cuDNN): depthwise convs (one output pixel per thread, or `run.rows`: a few
//! neighbouring pixels of a row per thread, sharing the loads of their windows), and
//! ordinary convs of few input channels (image stems), all with bias, residual and
//! activation in the kernel. Weights are `[kh][kw][c][k]`
//! (`weights_rsck`).

use super::engine::{blocks, cuda_err, CudaEngine, Instance};
use super::kernel;
use super::program::{unsupported, Step};
use crate::error::Result;
use cudarc::driver::{DevicePtr, LaunchConfig, PushKernelArg};

/// One block per output pixel, its threads over the channels.
pub(super) fn per_pixel(pixels: usize, channels: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (pixels.max(1) as u32, 1, 1),
        block_dim: (channels.div_ceil(32).clamp(1, 8) as u32 * 32, 1, 1),
        shared_mem_bytes: 0,
    }
}

impl CudaEngine {
    /// The row-tiled depthwise kernel that fits conv step `i`, and the output pixels each
    /// of its threads computes: 3x3 and 5x5 windows of horizontal stride 1 or 2, no
    /// dilation, channels in whole 16-byte vectors (`depthwise_nhwc_k{3,5}s{1,2}`).
    pub(super) fn row_tiles(&self, i: usize) -> Option<(&'static str, usize)> {
        let Step::Conv {
            w_dims,
            groups,
            stride,
            dilation,
            w_direct: Some(_),
            ..
        } = &self.program.steps[i]
        else {
            return None;
        };
        if !is_depthwise(w_dims, *groups)
            || !(w_dims[0] as usize).is_multiple_of(self.vec())
            || dilation != &[1, 1]
        {
            return None;
        }
        match (w_dims[3], stride[1]) {
            (3, 1) => Some(("depthwise_nhwc_k3s1", 4)),
            (3, 2) => Some(("depthwise_nhwc_k3s2", 2)),
            (5, 1) => Some(("depthwise_nhwc_k5s1", 4)),
            (5, 2) => Some(("depthwise_nhwc_k5s2", 2)),
            _ => None,
        }
    }

    /// Conv step `i` through trtc's kernel, applying `act` (the step's activation as this
    /// instance runs it).
    pub(super) fn launch_direct(
        &self,
        inst: &Instance,
        i: usize,
        act: Option<trtc_ir::Activation>,
    ) -> Result<()> {
        let p = &self.program;
        let s = &self.dev.stream;
        let Step::Conv {
            name,
            x,
            y,
            z,
            b: bias,
            w_direct,
            w_dims,
            pads,
            stride,
            dilation,
            groups,
            x_clamp,
            ..
        } = &p.steps[i]
        else {
            return Err(cuda_err(
                "engine",
                "direct launch of a step that is no convolution",
            ));
        };
        let (xs, ys) = (p.shape(*x, inst.batch), p.shape(*y, inst.batch));
        let code = act.map(super::program::act_code).unwrap_or((0, 0.0, 0.0));
        let w = w_direct
            .as_ref()
            .ok_or_else(|| unsupported(name, "no weights for trtc's direct kernel"))?;
        let ptr = |slot: usize| inst.ptrs[slot];
        let (yp, xp, wp, bp, zp) = (
            ptr(*y),
            ptr(*x),
            w.device_ptr(s).0,
            bias.device_ptr(s).0,
            z.map(ptr).unwrap_or(0),
        );
        let depthwise = is_depthwise(w_dims, *groups);
        let v = self.vec();
        let vectors = ys[1].is_multiple_of(v);
        let rows = inst
            .convs
            .get(&i)
            .filter(|r| r.rows)
            .and_then(|_| self.row_tiles(i));
        let kernel_name = match (depthwise, vectors, rows) {
            (true, true, Some((tiled, _))) => tiled,
            (true, false, _) => "depthwise_nhwc",
            (true, true, None) => "depthwise_nhwc_vec",
            (false, true, _) => "conv_few_inputs_nhwc",
            (false, false, _) => return Err(unsupported(name, "outputs are not whole vectors")),
        };
        let f = kernel(&self.dev, kernel_name, p.half)?;
        let mut dims = vec![
            xs[1] as i32,
            xs[2] as i32,
            xs[3] as i32,
            ys[2] as i32,
            ys[3] as i32,
        ];
        if !depthwise {
            dims.push(ys[1] as i32);
        }
        dims.extend([
            w_dims[2],
            w_dims[3],
            stride[0],
            stride[1],
            pads[0],
            pads[1],
            dilation[0],
            dilation[1],
            z.is_some() as i32,
            code.0,
        ]);
        let mut l = s.launch_builder(&f);
        l.arg(&yp).arg(&xp).arg(&wp).arg(&bp).arg(&zp);
        for d in &dims {
            l.arg(d);
        }
        l.arg(&code.1).arg(&code.2);
        let (lo, hi) = x_clamp.unwrap_or((0.0, 0.0));
        let has_clamp = x_clamp.is_some() as i32;
        if depthwise {
            l.arg(&has_clamp).arg(&lo).arg(&hi);
        }
        let pixels = ys[0] * ys[2] * ys[3];
        // Threads: one per vector of channels (depthwise), or per pixel and 32 channels.
        let total = match (depthwise, rows) {
            (true, Some((_, px))) => (ys[0] * ys[2] * ys[3].div_ceil(px) * ys[1] / v) as u32,
            (true, None) => (pixels * ys[1] / v) as u32,
            (false, _) => pixels as u32,
        };
        if vectors {
            l.arg(&total);
        }
        let cfg = match (depthwise, vectors) {
            (true, true) => blocks(total as usize, 128),
            (true, false) => per_pixel(pixels, ys[1]),
            (false, _) => LaunchConfig {
                grid_dim: (total.div_ceil(128), (ys[1] as u32).div_ceil(32), 1),
                block_dim: (128, 1, 1),
                // The block's weights: kh * kw * c taps of 32 floats.
                shared_mem_bytes: (w_dims[1] * w_dims[2] * w_dims[3]) as u32 * 32 * 4,
            },
        };
        unsafe { l.launch(cfg) }
            .map(|_| ())
            .map_err(|e| cuda_err(name, e))
    }
}

/// Most input channels trtc's direct NHWC kernel takes for an ordinary (one group) conv.
pub(crate) const DIRECT_MAX_INPUT_CHANNELS: usize = 4;

/// Most weight taps (`kh * kw * c`) of such a conv: 32 output channels of them, as float,
/// fill the 48 KiB of shared memory a block gets without asking.
pub(crate) const DIRECT_MAX_TAPS: usize = 384;

/// Whether a conv with weights `w_dims` (`[k, c/groups, kh, kw]`) in `groups` groups is
/// depthwise: one filter per channel.
pub(crate) fn is_depthwise(w_dims: &[i32; 4], groups: i32) -> bool {
    w_dims[1] == 1 && groups == w_dims[0]
}

/// Whether trtc's own NHWC kernels can run a conv with weights `[k, c/groups, kh, kw]`:
/// a depthwise conv, or one group of few input channels (an image stem, which cuDNN's
/// tensor-core kernels run badly) with a whole number of 16-byte vectors of outputs.
pub(crate) fn direct_kernel_fits([k, c, kh, kw]: [usize; 4], groups: i64) -> bool {
    let depthwise = c == 1 && groups as usize == k;
    let few_inputs = groups == 1
        && c <= DIRECT_MAX_INPUT_CHANNELS
        && k.is_multiple_of(8)
        && kh * kw * c <= DIRECT_MAX_TAPS;
    depthwise || few_inputs
}

/// `[k][c][kh][kw]` weights reordered to `[kh][kw][c][k]`: neighbouring output channels
/// neighbouring in memory, as the direct kernels' threads read them.
pub(crate) fn weights_rsck(w: &[f32], [k, c, kh, kw]: [usize; 4]) -> Vec<f32> {
    let mut t = vec![0.0; w.len()];
    for ko in 0..k {
        for ci in 0..c {
            for r in 0..kh {
                for s in 0..kw {
                    t[((r * kw + s) * c + ci) * k + ko] = w[((ko * c + ci) * kh + r) * kw + s];
                }
            }
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_weights_put_output_channels_last() {
        // k = 2, c = 3, 1x2 taps: w[k][c][0][s] = 100k + 10c + s.
        let w: Vec<f32> = (0..2)
            .flat_map(|k| {
                (0..3).flat_map(move |c| (0..2).map(move |s| (100 * k + 10 * c + s) as f32))
            })
            .collect();
        let t = weights_rsck(&w, [2, 3, 1, 2]);
        // [s][c][k]
        assert_eq!(&t[..6], &[0.0, 100.0, 10.0, 110.0, 20.0, 120.0]);
        assert_eq!(&t[6..], &[1.0, 101.0, 11.0, 111.0, 21.0, 121.0]);
        // A depthwise conv's [k][1][kh][kw] becomes [kh][kw][k].
        let dw: Vec<f32> = (0..8).map(|i| i as f32).collect();
        assert_eq!(
            weights_rsck(&dw, [2, 1, 2, 2]),
            vec![0.0, 4.0, 1.0, 5.0, 2.0, 6.0, 3.0, 7.0]
        );
    }

    #[test]
    fn direct_kernels_take_depthwise_convs_and_few_input_channels() {
        assert!(is_depthwise(&[32, 1, 3, 3], 32));
        assert!(!is_depthwise(&[32, 1, 3, 3], 16), "16 groups of 2 channels");
        assert!(!is_depthwise(&[32, 3, 3, 3], 1));
        assert!(direct_kernel_fits([32, 1, 3, 3], 32));
        assert!(direct_kernel_fits([32, 3, 3, 3], 1));
        assert!(
            !direct_kernel_fits([30, 3, 3, 3], 1),
            "outputs not whole vectors"
        );
        assert!(
            !direct_kernel_fits([32, 8, 3, 3], 1),
            "too many input channels"
        );
        assert!(
            !direct_kernel_fits([32, 2, 3, 3], 2),
            "grouped, not depthwise"
        );
        assert!(
            direct_kernel_fits([64, 3, 7, 7], 1),
            "ResNet's stem: 147 taps"
        );
        assert!(
            !direct_kernel_fits([64, 4, 11, 11], 1),
            "484 taps: over the shared memory"
        );
    }
}
