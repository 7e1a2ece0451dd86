//! Launching Resize and ConvTranspose steps: trtc's `resize2d` and `conv_transpose2d`
//! kernels (`sys/resample_kernels.rs`), one thread per output element, NCHW or NHWC.

use super::{Exec, Instance};
use crate::error::{cuda_err, Result};
use crate::program::Step;
use crate::sys::device::{blocks, kernel};
use cudarc::driver::PushKernelArg;

impl Exec {
    /// Resize step `i`.
    pub(crate) fn launch_resize(&self, inst: &Instance, i: usize) -> Result<()> {
        let p = &self.program;
        let name = &p.names[i];
        let Step::Resize {
            x,
            y,
            scale,
            linear,
            coord,
            nearest,
        } = &p.steps[i]
        else {
            return Err(cuda_err(name, "not a resize step"));
        };
        let (xs, ys) = (p.shape(*x, inst.batch), p.shape(*y, inst.batch));
        let f = kernel(&self.dev, "resize2d", p.half)?;
        let dims = [xs[0], xs[1], xs[2], xs[3], ys[2], ys[3]].map(|v| v as i32);
        let codes = [*linear as i32, *coord, *nearest, p.slots[*y].nhwc as i32];
        let (yp, xp) = (inst.ptrs[*y], inst.ptrs[*x]);
        let mut l = self.dev.stream.launch_builder(&f);
        l.arg(&yp).arg(&xp);
        for d in &dims {
            l.arg(d);
        }
        l.arg(&scale[0]).arg(&scale[1]);
        for c in &codes {
            l.arg(c);
        }
        unsafe { l.launch(blocks(ys.iter().product(), 256)) }
            .map(|_| ())
            .map_err(|e| cuda_err(name, e))
    }

    /// ConvTranspose step `i`.
    pub(crate) fn launch_conv_transpose(&self, inst: &Instance, i: usize) -> Result<()> {
        let p = &self.program;
        let name = &p.names[i];
        let Step::ConvTranspose {
            x,
            y,
            w,
            b,
            w_dims,
            pads,
            stride,
            dilation,
            groups,
        } = &p.steps[i]
        else {
            return Err(cuda_err(name, "not a transposed convolution step"));
        };
        let (xs, ys) = (p.shape(*x, inst.batch), p.shape(*y, inst.batch));
        let f = kernel(&self.dev, "conv_transpose2d", p.half)?;
        let args = [
            xs[0] as i32,
            xs[1] as i32,
            xs[2] as i32,
            xs[3] as i32,
            ys[1] as i32,
            ys[2] as i32,
            ys[3] as i32,
            w_dims[2],
            w_dims[3],
            stride[0],
            stride[1],
            pads[0],
            pads[1],
            dilation[0],
            dilation[1],
            *groups,
            p.slots[*y].nhwc as i32,
        ];
        let (yp, xp, wp) = (inst.ptrs[*y], inst.ptrs[*x], self.wptr(*w));
        let bp = b.map(|b| self.wptr(b)).unwrap_or(0);
        let mut l = self.dev.stream.launch_builder(&f);
        l.arg(&yp).arg(&xp).arg(&wp).arg(&bp);
        for a in &args {
            l.arg(a);
        }
        unsafe { l.launch(blocks(ys.iter().product(), 128)) }
            .map(|_| ())
            .map_err(|e| cuda_err(name, e))
    }
}
