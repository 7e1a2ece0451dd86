//! Launching convolutions that trtc's own NHWC kernels run (`run.direct`, a tactic timed
//! against cuDNN), all with bias, residual and activation in the kernel:
//! - depthwise convs in one of four forms (`run.form`): one output pixel per thread; a few
//!   neighbouring pixels of a row per thread, sharing the loads of their windows; 8 x 8
//!   output pixels per block from an input tile in shared memory; or, in fp16 engines,
//!   8 x 8 or 8 x 16 pixels per block with the window summed in fp16 pairs;
//! - ordinary convs of few input channels (image stems): one pixel and 32 channels per
//!   thread, or, in fp16 engines, an implicit GEMM on tensor cores.
//!
//! Weights are `[kh][kw][c][k]` (`weights_rsck`).

use super::{DirectForm, Exec, Instance};
use crate::error::{cuda_err, Result};
use crate::program::conv_rules::is_depthwise;
use crate::program::Step;
use crate::sys::device::{blocks, kernel};
use cudarc::driver::{LaunchConfig, PushKernelArg};

/// trtc's 2-D tiled depthwise kernels (`depthwise_smem_k{K}s{S}`): window and stride. A
/// block of 128 threads computes 8 x 8 output pixels of 32 channels from shared memory.
const TILE_KERNELS: &[(&str, i32, i32)] = &[
    ("depthwise_smem_k3s1", 3, 1),
    ("depthwise_smem_k3s2", 3, 2),
    ("depthwise_smem_k5s1", 5, 1),
    ("depthwise_smem_k5s2", 5, 2),
];

/// The fp16 module's 2-D tiled depthwise kernels that sum the window in fp16 pairs
/// (`depthwise_h2_k{K}s{S}r{RY}`): window, stride, and the rows of output pixels a block
/// computes (2 * RY; 8 columns wide, 32 channels), taller tiles first.
const HALF_TILE_KERNELS: &[(&str, i32, i32, usize)] = &[
    ("depthwise_h2_k3s1r8", 3, 1, 16),
    ("depthwise_h2_k3s1r4", 3, 1, 8),
    ("depthwise_h2_k3s2r4", 3, 2, 8),
    ("depthwise_h2_k5s1r8", 5, 1, 16),
    ("depthwise_h2_k5s1r4", 5, 1, 8),
    ("depthwise_h2_k5s2r4", 5, 2, 8),
];

/// The fp16-arithmetic depthwise kernel for a `k` x `k` window of stride `stride` and `ho`
/// output rows, and the rows of its tiles: the tallest tile (fewer input rows loaded per
/// output row) whose last tile leaves at most a quarter of its rows past the bottom edge
/// (7 rows: 8, not 16), else the shortest.
fn half_tile_kernel(k: i32, stride: i32, ho: usize) -> Option<(&'static str, usize)> {
    let fits: Vec<_> = HALF_TILE_KERNELS
        .iter()
        .filter(|t| (t.1, t.2) == (k, stride))
        .collect();
    let covered = |rows: usize| ho.div_ceil(rows) * rows;
    fits.iter()
        .find(|t| 4 * (covered(t.3) - ho) <= covered(t.3))
        .or(fits.last())
        .map(|t| (t.0, t.3))
}

/// One block per output pixel, its threads over the channels.
pub(crate) fn per_pixel(pixels: usize, channels: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (pixels.max(1) as u32, 1, 1),
        block_dim: (channels.div_ceil(32).clamp(1, 8) as u32 * 32, 1, 1),
        shared_mem_bytes: 0,
    }
}

impl Exec {
    /// Conv step `i` where it is an undilated depthwise conv that trtc's kernels can run:
    /// its channels, window `[kh, kw]` and strides.
    fn undilated_depthwise(&self, i: usize) -> Option<(usize, [i32; 2], [i32; 2])> {
        match &self.program.steps[i] {
            Step::Conv {
                w_dims,
                groups,
                stride,
                dilation,
                w_direct: Some(_),
                ..
            } if is_depthwise(w_dims, *groups) && dilation == &[1, 1] => {
                Some((w_dims[0] as usize, [w_dims[2], w_dims[3]], *stride))
            }
            _ => None,
        }
    }

    /// The row-tiled depthwise kernel that fits conv step `i`, and the output pixels each
    /// of its threads computes: 3x3 and 5x5 windows of horizontal stride 1 or 2, no
    /// dilation, channels in whole 16-byte vectors (`depthwise_nhwc_k{3,5}s{1,2}`).
    pub(crate) fn row_tiles(&self, i: usize) -> Option<(&'static str, usize)> {
        let (c, [_, kw], [_, sw]) = self.undilated_depthwise(i)?;
        if !c.is_multiple_of(self.vec()) {
            return None;
        }
        match (kw, sw) {
            (3, 1) => Some(("depthwise_nhwc_k3s1", 4)),
            (3, 2) => Some(("depthwise_nhwc_k3s2", 2)),
            (5, 1) => Some(("depthwise_nhwc_k5s1", 4)),
            (5, 2) => Some(("depthwise_nhwc_k5s2", 2)),
            _ => None,
        }
    }

    /// The 2-D tiled depthwise kernel that fits conv step `i`: square 3x3 and 5x5 windows
    /// of equal strides 1 or 2 both ways, no dilation, channels in whole quads.
    pub(crate) fn tiles(&self, i: usize) -> Option<&'static str> {
        let (c, [kh, kw], [sh, sw]) = self.undilated_depthwise(i)?;
        if kh != kw || sh != sw || !c.is_multiple_of(4) {
            return None;
        }
        TILE_KERNELS
            .iter()
            .find(|t| (t.1, t.2) == (kw, sw))
            .map(|t| t.0)
    }

    /// The fp16-arithmetic 2-D tiled depthwise kernel that fits conv step `i`, and the
    /// output rows of its blocks: an fp16 engine, the windows and strides of `tiles`,
    /// channels in whole 16-byte vectors; the tile height by `half_tile_kernel`'s rule.
    pub(crate) fn half_tiles(&self, i: usize) -> Option<(&'static str, usize)> {
        let (c, [kh, kw], [sh, sw]) = self.undilated_depthwise(i)?;
        if !self.program.half || kh != kw || sh != sw || !c.is_multiple_of(8) {
            return None;
        }
        let Step::Conv { y, .. } = &self.program.steps[i] else {
            return None;
        };
        let ho = *self.program.shape(*y, 1).get(2)?;
        half_tile_kernel(kw, sw, ho)
    }

    /// Whether the tensor-core stem kernel (`conv_few_inputs_mma`) can run conv step `i`:
    /// an fp16 engine on sm_80 or later, a conv trtc's kernels take that is not depthwise
    /// (few input channels, outputs in whole vectors: `direct_kernel_fits`).
    pub(crate) fn stem_mma(&self, i: usize) -> bool {
        matches!(&self.program.steps[i],
            Step::Conv { w_dims, groups, w_direct: Some(_), .. } if !is_depthwise(w_dims, *groups))
            && self.program.half
            && self.dev.has_mma_f16()
    }

    /// Whether `form` of trtc's kernel can run conv step `i` (the per-pixel form can run
    /// every conv the direct kernels take).
    pub(crate) fn form_fits(&self, i: usize, form: DirectForm) -> bool {
        match form {
            DirectForm::Pixel => true,
            DirectForm::Rows => self.row_tiles(i).is_some(),
            DirectForm::Tiles => self.tiles(i).is_some(),
            DirectForm::HalfTiles => self.half_tiles(i).is_some(),
            DirectForm::Mma => self.stem_mma(i),
        }
    }

    /// Conv step `i` through trtc's kernel, applying `act` (the step's activation as this
    /// instance runs it).
    pub(crate) fn launch_direct(
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
        let code = act.map(crate::program::act_code).unwrap_or((0, 0.0, 0.0));
        let w = w_direct.ok_or_else(|| cuda_err(name, "no weights for trtc's direct kernel"))?;
        let ptr = |slot: usize| inst.ptrs[slot];
        let (yp, xp, wp, bp, zp) = (
            ptr(*y),
            ptr(*x),
            self.wptr(w),
            self.wptr(*bias),
            z.map(ptr).unwrap_or(0),
        );
        let depthwise = is_depthwise(w_dims, *groups);
        let v = self.vec();
        let vectors = ys[1].is_multiple_of(v);
        let form = inst.convs.get(&i).map(|r| r.form);
        let rows = (form == Some(DirectForm::Rows))
            .then(|| self.row_tiles(i))
            .flatten();
        // 2-D tiles: the kernel and the output rows of its blocks (8 columns, 32 channels).
        let tiles = match form {
            Some(DirectForm::Tiles) => self.tiles(i).map(|t| (t, 8)),
            Some(DirectForm::HalfTiles) => self.half_tiles(i),
            _ => None,
        };
        let mma = form == Some(DirectForm::Mma) && self.stem_mma(i);
        let kernel_name = match (depthwise, vectors, tiles, rows) {
            (false, true, ..) if mma => "conv_few_inputs_mma",
            (true, _, Some((t, _)), _) => t,
            (true, true, None, Some((tiled, _))) => tiled,
            (true, false, None, _) => "depthwise_nhwc",
            (true, true, None, None) => "depthwise_nhwc_vec",
            (false, true, ..) => "conv_few_inputs_nhwc",
            (false, false, ..) => return Err(cuda_err(name, "outputs are not whole vectors")),
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
        let total = match (depthwise, tiles, rows) {
            // Unused: blocks of 8 columns of pixels and 32 channels.
            (true, Some(_), _) => 0,
            (true, None, Some((_, px))) => (ys[0] * ys[2] * ys[3].div_ceil(px) * ys[1] / v) as u32,
            (true, None, None) => (pixels * ys[1] / v) as u32,
            (false, ..) => pixels as u32,
        };
        let counted = vectors || tiles.is_some();
        if counted {
            l.arg(&total);
        }
        let cfg = match (depthwise, counted, tiles) {
            // `rows` x 8 pixels of 32 channels per block.
            (true, _, Some((_, rows))) => LaunchConfig {
                grid_dim: (
                    (ys[0] * ys[2].div_ceil(rows) * ys[3].div_ceil(8) * ys[1].div_ceil(32)) as u32,
                    1,
                    1,
                ),
                block_dim: (128, 1, 1),
                shared_mem_bytes: 0,
            },
            (true, true, None) => blocks(total as usize, 128),
            (true, false, None) => per_pixel(pixels, ys[1]),
            // 128 pixels and 32 channels per block, the block's weights in shared memory.
            (false, ..) => {
                let taps = (w_dims[1] * w_dims[2] * w_dims[3]) as u32;
                let padded = taps.div_ceil(16) * 16;
                LaunchConfig {
                    grid_dim: (total.div_ceil(128), (ys[1] as u32).div_ceil(32), 1),
                    block_dim: (128, 1, 1),
                    shared_mem_bytes: if mma {
                        // fp16 pairs along the taps padded to 16 (rows of 4 words more),
                        // then a tap table of 16 bytes per padded tap.
                        32 * (padded / 2 + 4) * 4 + padded * 16
                    } else {
                        // 32 floats per tap.
                        taps * 32 * 4
                    },
                }
            }
        };
        unsafe { l.launch(cfg) }
            .map(|_| ())
            .map_err(|e| cuda_err(name, e))
    }
}

#[cfg(test)]
mod tests {
    use super::half_tile_kernel;

    #[test]
    fn half_tiles_are_tall_unless_the_last_tile_would_be_mostly_past_the_edge() {
        let rows = |k, stride, ho| half_tile_kernel(k, stride, ho).map(|t| t.1);
        // 16-row tiles where they waste at most a quarter of the last tile's rows.
        for ho in [14, 28, 30, 56, 112] {
            assert_eq!(rows(3, 1, ho), Some(16), "{ho} rows");
            assert_eq!(rows(5, 1, ho), Some(16), "{ho} rows");
        }
        // 7 rows in 16 would leave 9 idle: 8-row tiles; 9 and 19 rows waste a lot either
        // way: the shorter.
        for ho in [7, 9, 19] {
            assert_eq!(rows(3, 1, ho), Some(8), "{ho} rows");
        }
        // Stride 2 has only 8-row tiles, and other windows or strides none.
        assert_eq!(half_tile_kernel(3, 2, 56), Some(("depthwise_h2_k3s2r4", 8)));
        assert_eq!(half_tile_kernel(5, 1, 7), Some(("depthwise_h2_k5s1r4", 8)));
        assert_eq!(half_tile_kernel(7, 1, 56), None);
        assert_eq!(half_tile_kernel(3, 3, 56), None);
    }
}
