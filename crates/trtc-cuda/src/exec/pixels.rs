//! Launching a Pixels step: trtc's `pixels_in` kernel (`sys/pixel_kernels.rs`), one thread
//! per element of the engine's tensor.

use super::{Exec, Instance};
use crate::error::{cuda_err, Result};
use crate::program::Step;
use crate::sys::device::{blocks, kernel};
use cudarc::driver::PushKernelArg;

/// The kernel's mode for a step writing pixels transposed to NCHW (`nchw`) or not, into a
/// tensor stored NHWC or not (see the kernel).
pub(crate) fn pixels_mode(nchw: bool, y_nhwc: bool) -> i32 {
    match (nchw, y_nhwc) {
        (true, true) | (false, false) => 0,
        (true, false) => 1,
        (false, true) => 2,
    }
}

impl Exec {
    /// Pixels step `i`.
    pub(crate) fn launch_pixels(&self, inst: &Instance, i: usize) -> Result<()> {
        let p = &self.program;
        let name = &p.names[i];
        let Step::Pixels {
            x,
            y,
            nchw,
            ops,
            params,
        } = &p.steps[i]
        else {
            return Err(cuda_err(name, "not a pixels step"));
        };
        let xs = p.shape(*x, inst.batch);
        let [_, h, w, c] = xs[..] else {
            return Err(cuda_err(name, "the pixels are not [N,H,W,C]"));
        };
        if ops.len() > 4 {
            return Err(cuda_err(name, "more than 4 per-channel ops"));
        }
        let total = p.numel(*y, inst.batch) as u32;
        let f = kernel(&self.dev, "pixels_in", p.half)?;
        let mut codes = [0i32; 4];
        codes[..ops.len()].copy_from_slice(ops);
        let args = [
            c as i32,
            h as i32,
            w as i32,
            pixels_mode(*nchw, p.slots[*y].nhwc),
            ops.len() as i32,
            codes[0],
            codes[1],
            codes[2],
            codes[3],
        ];
        let (yp, xp) = (inst.ptrs[*y], inst.ptrs[*x]);
        let pp = params.map(|w| self.wptr(w)).unwrap_or(0);
        let mut l = self.dev.stream.launch_builder(&f);
        l.arg(&yp).arg(&xp).arg(&total);
        for a in &args {
            l.arg(a);
        }
        l.arg(&pp);
        unsafe { l.launch(blocks(total as usize, 256)) }
            .map(|_| ())
            .map_err(|e| cuda_err(name, e))
    }
}
