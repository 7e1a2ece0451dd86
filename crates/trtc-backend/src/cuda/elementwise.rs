//! Launches of trtc's own kernels that several steps share: layout and type conversion,
//! bias/activation after a convolution, activations, row copies (concat, split) and
//! broadcasting binary ops.

use super::engine::{blocks, cuda_err, CudaEngine, Instance};
use super::host::logical_strides;
use super::kernel;
use super::program::unsupported;
use crate::error::Result;
use cudarc::driver::PushKernelArg;

impl CudaEngine {
    /// `from_host`, `to_host` or `relayout` over an `[n, c, hw]` tensor.
    pub(super) fn relayout_kernel(
        &self,
        name: &'static str,
        y: u64,
        x: u64,
        [n, c, hw]: [usize; 3],
        nhwc: bool,
    ) -> Result<()> {
        let f = kernel(&self.dev, name, self.program.half)?;
        let args = [n as i32, c as i32, hw as i32, nhwc as i32];
        let mut l = self.dev.stream.launch_builder(&f);
        l.arg(&y).arg(&x);
        for a in &args {
            l.arg(a);
        }
        unsafe { l.launch(blocks(n * c * hw, 256)) }
            .map(|_| ())
            .map_err(|e| cuda_err(name, e))
    }

    /// `y = act(y + bias[channel] (+ z))` in place, after an unfused convolution.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn bias_act(
        &self,
        name: &str,
        y: u64,
        bias: u64,
        z: Option<u64>,
        [n, c, hw]: [usize; 3],
        nhwc: bool,
        (kind, a, b): (i32, f32, f32),
    ) -> Result<()> {
        let v = self.vec();
        if nhwc && c % v == 0 {
            let f = kernel(&self.dev, "bias_act_vec", self.program.half)?;
            let (zp, has_z) = (z.unwrap_or(0), z.is_some() as i32);
            let (nvec, ci) = ((n * c * hw / v) as u32, c as i32);
            return unsafe {
                self.dev
                    .stream
                    .launch_builder(&f)
                    .arg(&y)
                    .arg(&bias)
                    .arg(&zp)
                    .arg(&nvec)
                    .arg(&ci)
                    .arg(&has_z)
                    .arg(&kind)
                    .arg(&a)
                    .arg(&b)
                    .launch(blocks(n * c * hw / v, 256))
            }
            .map(|_| ())
            .map_err(|e| cuda_err(name, e));
        }
        let f = kernel(&self.dev, "bias_act", self.program.half)?;
        let (total, zp, has_z) = ((n * c * hw) as i64, z.unwrap_or(0), z.is_some() as i32);
        let dims = [c as i32, hw as i32, nhwc as i32, has_z, kind];
        let mut l = self.dev.stream.launch_builder(&f);
        l.arg(&y).arg(&bias).arg(&zp).arg(&total);
        for d in &dims {
            l.arg(d);
        }
        l.arg(&a).arg(&b);
        unsafe { l.launch(blocks(n * c * hw, 256)) }
            .map(|_| ())
            .map_err(|e| cuda_err(name, e))
    }

    /// Elements per 16-byte vector in this engine's type.
    fn vec(&self) -> usize {
        if self.program.half {
            8
        } else {
            4
        }
    }

    pub(super) fn act(
        &self,
        y: u64,
        x: u64,
        n: usize,
        (kind, a, b): (i32, f32, f32),
    ) -> Result<()> {
        let v = self.vec();
        if n.is_multiple_of(v) {
            let f = kernel(&self.dev, "act_vec", self.program.half)?;
            let nvec = (n / v) as u32;
            return unsafe {
                self.dev
                    .stream
                    .launch_builder(&f)
                    .arg(&y)
                    .arg(&x)
                    .arg(&nvec)
                    .arg(&kind)
                    .arg(&a)
                    .arg(&b)
                    .launch(blocks(n / v, 256))
            }
            .map(|_| ())
            .map_err(|e| cuda_err("activation", e));
        }
        let f = kernel(&self.dev, "act", self.program.half)?;
        let n64 = n as i64;
        unsafe {
            self.dev
                .stream
                .launch_builder(&f)
                .arg(&y)
                .arg(&x)
                .arg(&n64)
                .arg(&kind)
                .arg(&a)
                .arg(&b)
                .launch(blocks(n, 256))
        }
        .map(|_| ())
        .map_err(|e| cuda_err("activation", e))
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn copy_rows(
        &self,
        dst: u64,
        src: u64,
        outer: usize,
        len: usize,
        src_stride: usize,
        src_off: usize,
        dst_stride: usize,
        dst_off: usize,
    ) -> Result<()> {
        let f = kernel(&self.dev, "copy_rows", self.program.half)?;
        let v = [
            outer as i64,
            len as i64,
            src_stride as i64,
            src_off as i64,
            dst_stride as i64,
            dst_off as i64,
        ];
        let mut l = self.dev.stream.launch_builder(&f);
        l.arg(&dst).arg(&src);
        for x in &v {
            l.arg(x);
        }
        unsafe { l.launch(blocks(outer * len, 256)) }
            .map(|_| ())
            .map_err(|e| cuda_err("copy", e))
    }

    /// `y = a (op) b` with broadcasting, each tensor read as it is stored: strides are
    /// taken per logical dim from each operand's storage and walked in y's storage order.
    pub(super) fn binary(
        &self,
        inst: &Instance,
        y: usize,
        a: usize,
        b: usize,
        op: i32,
    ) -> Result<()> {
        let p = &self.program;
        let batch = inst.batch;
        let ys = p.shape(y, batch);
        if ys.len() > 4 {
            return Err(unsupported("elementwise", "rank over 4"));
        }
        let pad = |s: Vec<usize>| -> Vec<usize> {
            std::iter::repeat_n(1, 4usize.saturating_sub(s.len()))
                .chain(s)
                .collect()
        };
        let y4 = pad(ys.clone());
        // y's storage order over the padded logical dims.
        let order: [usize; 4] = if p.slots[y].nhwc {
            [0, 2, 3, 1]
        } else {
            [0, 1, 2, 3]
        };
        let strides = |slot: usize| -> Vec<i64> {
            let shape = p.shape(slot, batch);
            let logical = logical_strides(&shape, p.slots[slot].nhwc);
            let (s4, st4) = (
                pad(shape),
                std::iter::repeat_n(0, 4usize.saturating_sub(logical.len()))
                    .chain(logical)
                    .collect::<Vec<usize>>(),
            );
            order
                .iter()
                .map(|&d| {
                    if s4[d] == 1 && y4[d] != 1 {
                        0
                    } else {
                        st4[d] as i64
                    }
                })
                .collect()
        };
        let (sa, sb) = (strides(a), strides(b));
        let yd: Vec<usize> = order.iter().map(|&d| y4[d]).collect();
        let n: usize = yd.iter().product();
        let f = kernel(&self.dev, "binary", p.half)?;
        let (n64, d1, d2, d3) = (n as i64, yd[1] as i32, yd[2] as i32, yd[3] as i32);
        let (yp, ap, bp) = (inst.ptrs[y], inst.ptrs[a], inst.ptrs[b]);
        let mut l = self.dev.stream.launch_builder(&f);
        l.arg(&yp)
            .arg(&ap)
            .arg(&bp)
            .arg(&n64)
            .arg(&op)
            .arg(&d1)
            .arg(&d2)
            .arg(&d3);
        for v in sa.iter().chain(&sb) {
            l.arg(v);
        }
        unsafe { l.launch(blocks(n, 256)) }
            .map(|_| ())
            .map_err(|e| cuda_err("elementwise", e))
    }
}
