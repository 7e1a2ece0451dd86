//! Launching Gather steps (Slice, Gather, Pad, Expand, Tile): trtc's `strided_gather`
//! kernel (`sys/gather_kernels.rs`), one thread per output element.

use super::{Exec, Instance};
use crate::error::{cuda_err, Result};
use crate::program::gather::MAX_DIMS;
use crate::program::Step;
use crate::sys::device::{blocks, kernel};
use cudarc::driver::{DeviceRepr, PushKernelArg};

/// The kernel's argument, laid out as its C struct `GatherArgs`.
#[repr(C)]
#[derive(Clone, Copy)]
struct GatherArgs {
    n: i64,
    base: i64,
    len: [i64; MAX_DIMS],
    a: [i64; MAX_DIMS],
    b: [i64; MAX_DIMS],
    stride: [i64; MAX_DIMS],
    kind: [i32; MAX_DIMS],
    mode: i32,
    value: f32,
    table: u64,
}

// Safety: plain data (numbers and a device address), laid out as the kernel's struct
// (6 * 4 + 4 + 4 bytes of ints before the pointer: 8-aligned, no padding).
unsafe impl DeviceRepr for GatherArgs {}

impl Exec {
    /// Gather step `i`.
    pub(crate) fn launch_gather(&self, inst: &Instance, i: usize) -> Result<()> {
        let p = &self.program;
        let name = &p.names[i];
        let Step::Gather { x, y, plan } = &p.steps[i] else {
            return Err(cuda_err(name, "not a gather step"));
        };
        let xs = p.shape(*x, inst.batch);
        let k = plan
            .kernel_dims(&xs, p.slots[*x].nhwc, p.slots[*y].nhwc, inst.batch)
            .ok_or_else(|| cuda_err(name, "a gather over the kernel's limits"))?;
        let n: i64 = k.len.iter().product();
        if n as usize != p.numel(*y, inst.batch) {
            return Err(cuda_err(
                name,
                "the gather's dims and its output's disagree",
            ));
        }
        let args = GatherArgs {
            n,
            base: k.base,
            len: k.len,
            a: k.a,
            b: k.b,
            stride: k.stride,
            kind: k.kind,
            mode: plan.mode,
            value: plan.value,
            table: plan.table.map(|t| self.wptr(t)).unwrap_or(0),
        };
        let f = kernel(&self.dev, "strided_gather", p.half)?;
        let (yp, xp) = (inst.ptrs[*y], inst.ptrs[*x]);
        unsafe {
            self.dev
                .stream
                .launch_builder(&f)
                .arg(&yp)
                .arg(&xp)
                .arg(&args)
                .launch(blocks(n as usize, 256))
        }
        .map(|_| ())
        .map_err(|e| cuda_err(name, e))
    }
}

#[cfg(test)]
mod tests {
    /// The C struct (`sys/gather_kernels.rs`) is 248 bytes with the table pointer at 240.
    #[test]
    fn gather_args_are_laid_out_as_the_kernel_reads_them() {
        assert_eq!(std::mem::size_of::<super::GatherArgs>(), 248);
        assert_eq!(std::mem::offset_of!(super::GatherArgs, table), 240);
        assert_eq!(std::mem::offset_of!(super::GatherArgs, mode), 232);
    }
}
