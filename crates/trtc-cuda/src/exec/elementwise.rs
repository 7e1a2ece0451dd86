//! Launches of trtc's own kernels that several steps share: layout and type conversion,
//! bias/activation after a convolution, activations, row copies (concat, split) and
//! broadcasting binary ops.

use super::{Exec, Instance};
use crate::error::{cuda_err, Result};
use crate::program::host::logical_strides;
use crate::program::{ChainOp, MAX_INPUTS, MAX_OPS};
use crate::sys::device::{blocks, kernel};
use cudarc::driver::{DeviceRepr, PushKernelArg};

impl Exec {
    /// `from_host`, `to_host` or `relayout` over an `[n, c, hw]` tensor.
    pub(crate) fn relayout_kernel(
        &self,
        name: &'static str,
        y: u64,
        x: u64,
        [n, c, hw]: [usize; 3],
        nhwc: bool,
    ) -> Result<()> {
        // An image input (few channels) to NHWC: one thread per pixel.
        let pixels = name == "from_host" && nhwc && c <= 4;
        let name = if pixels { "from_host_pixels" } else { name };
        let f = kernel(&self.dev, name, self.program.half)?;
        let args = [n as i32, c as i32, hw as i32, nhwc as i32];
        let mut l = self.dev.stream.launch_builder(&f);
        l.arg(&y).arg(&x);
        for a in &args {
            l.arg(a);
        }
        let threads = if pixels { n * hw } else { n * c * hw };
        unsafe { l.launch(blocks(threads, 256)) }
            .map(|_| ())
            .map_err(|e| cuda_err(name, e))
    }

    /// `y = act(y + bias[channel] (+ z))` in place, after an unfused convolution; y's rows
    /// (NHWC: pixels, NCHW: images) are `ld` elements apart, where it is a slice of a
    /// concat's output.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn bias_act(
        &self,
        name: &str,
        y: u64,
        bias: u64,
        z: Option<u64>,
        [n, c, hw]: [usize; 3],
        nhwc: bool,
        ld: Option<usize>,
        (kind, a, b): (i32, f32, f32),
    ) -> Result<()> {
        let v = self.vec();
        let ldy = ld.unwrap_or(if nhwc { c } else { c * hw }) as i32;
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
                    .arg(&ldy)
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
        let dims = [c as i32, hw as i32, nhwc as i32, ldy, has_z, kind];
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
    pub(crate) fn vec(&self) -> usize {
        if self.program.half {
            8
        } else {
            4
        }
    }

    pub(crate) fn act(
        &self,
        y: u64,
        x: u64,
        n: usize,
        (kind, a, b): (i32, f32, f32),
    ) -> Result<()> {
        let v = self.vec();
        let ext = extended_act(kind);
        if n.is_multiple_of(v) && !ext {
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
        let f = kernel(
            &self.dev,
            if ext { "act_ext" } else { "act" },
            self.program.half,
        )?;
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
    pub(crate) fn copy_rows(
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
        let elem = if self.program.half { 2 } else { 4 };
        let v = 16 / elem;
        let whole = [len, src_stride, src_off, dst_stride, dst_off]
            .iter()
            .all(|n| n.is_multiple_of(v))
            && (dst | src).is_multiple_of(16);
        if whole && outer * len / v <= u32::MAX as usize {
            let f = kernel(&self.dev, "copy_rows_vec", self.program.half)?;
            let total = (outer * len / v) as u32;
            let args = [len, src_stride, src_off, dst_stride, dst_off].map(|n| (n / v) as u32);
            let mut l = self.dev.stream.launch_builder(&f);
            l.arg(&dst).arg(&src).arg(&total);
            for a in &args {
                l.arg(a);
            }
            return unsafe { l.launch(blocks(total as usize, 256)) }
                .map(|_| ())
                .map_err(|e| cuda_err("copy", e));
        }
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

    /// y's dims in its storage order (padded to 4) and, for each operand, its strides
    /// along them (0 where it broadcasts): each tensor is read as it is stored.
    fn broadcast(
        &self,
        inst: &Instance,
        y: usize,
        operands: &[usize],
    ) -> Result<([usize; 4], Vec<[i64; 4]>)> {
        let p = &self.program;
        let batch = inst.batch;
        let ys = p.shape(y, batch);
        if ys.len() > 4 || operands.iter().any(|&s| p.slots[s].shape.len() > 4) {
            return Err(cuda_err("elementwise", "rank over 4"));
        }
        let pad = |s: Vec<usize>| -> Vec<usize> {
            std::iter::repeat_n(1, 4usize.saturating_sub(s.len()))
                .chain(s)
                .collect()
        };
        let y4 = pad(ys);
        // y's storage order over the padded logical dims.
        let order: [usize; 4] = if p.slots[y].nhwc {
            [0, 2, 3, 1]
        } else {
            [0, 1, 2, 3]
        };
        let strides = |slot: usize| -> [i64; 4] {
            let shape = p.shape(slot, batch);
            let logical = logical_strides(&shape, p.slots[slot].nhwc);
            let (s4, st4) = (
                pad(shape),
                std::iter::repeat_n(0, 4usize.saturating_sub(logical.len()))
                    .chain(logical)
                    .collect::<Vec<usize>>(),
            );
            order.map(|d| {
                if s4[d] == 1 && y4[d] != 1 {
                    0
                } else {
                    st4[d] as i64
                }
            })
        };
        Ok((
            order.map(|d| y4[d]),
            operands.iter().map(|&s| strides(s)).collect(),
        ))
    }

    /// `y = a (op) b` with broadcasting.
    pub(crate) fn binary(
        &self,
        inst: &Instance,
        y: usize,
        a: usize,
        b: usize,
        op: i32,
    ) -> Result<()> {
        let (yd, st) = self.broadcast(inst, y, &[a, b])?;
        let n: usize = yd.iter().product();
        let name = if extended_binary(op) {
            "binary_ext"
        } else {
            "binary"
        };
        let f = kernel(&self.dev, name, self.program.half)?;
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
        for v in st.iter().flatten() {
            l.arg(v);
        }
        unsafe { l.launch(blocks(n, 256)) }
            .map(|_| ())
            .map_err(|e| cuda_err("elementwise", e))
    }

    /// A fused elementwise chain (`chains.rs`) in one kernel.
    pub(crate) fn chain(
        &self,
        name: &str,
        inst: &Instance,
        inputs: &[usize],
        y: usize,
        ops: &[ChainOp],
    ) -> Result<()> {
        if inputs.len() > MAX_INPUTS || ops.len() > MAX_OPS {
            return Err(cuda_err(name, "chain over the kernel's limits"));
        }
        let (yd, st) = self.broadcast(inst, y, inputs)?;
        self.chain_with(name, inst, inputs, y, ops, yd, st)
    }

    /// The chain kernel over y's 4 storage dims `yd`, each input read with its strides
    /// along them.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn chain_with(
        &self,
        name: &str,
        inst: &Instance,
        inputs: &[usize],
        y: usize,
        ops: &[ChainOp],
        yd: [usize; 4],
        st: Vec<[i64; 4]>,
    ) -> Result<()> {
        let n: usize = yd.iter().product();
        let mut args = ChainArgs {
            n: n as i64,
            d1: yd[1] as i32,
            d2: yd[2] as i32,
            d3: yd[3] as i32,
            nops: ops.len() as i32,
            inputs: [0; MAX_INPUTS],
            strides: [[0; 4]; MAX_INPUTS],
            kind: [0; MAX_OPS],
            input: [0; MAX_OPS],
            value_first: [0; MAX_OPS],
            a: [0.0; MAX_OPS],
            b: [0.0; MAX_OPS],
        };
        for (k, (&s, strides)) in inputs.iter().zip(st).enumerate() {
            args.inputs[k] = inst.ptrs[s];
            args.strides[k] = strides;
        }
        for (k, op) in ops.iter().enumerate() {
            match *op {
                ChainOp::Act((kind, a, b)) => {
                    (args.kind[k], args.a[k], args.b[k]) = (kind, a, b);
                }
                ChainOp::Binary {
                    op,
                    input,
                    value_first,
                } => {
                    args.kind[k] = 100 + op;
                    args.input[k] = input as i32;
                    args.value_first[k] = value_first as i32;
                }
            }
        }
        let ext = ops.iter().any(|op| match *op {
            ChainOp::Act((kind, _, _)) => extended_act(kind),
            ChainOp::Binary { op, .. } => extended_binary(op),
        });
        let f = kernel(
            &self.dev,
            if ext { "chain_ext" } else { "chain" },
            self.program.half,
        )?;
        let yp = inst.ptrs[y];
        unsafe {
            self.dev
                .stream
                .launch_builder(&f)
                .arg(&yp)
                .arg(&args)
                .launch(blocks(n, 256))
        }
        .map(|_| ())
        .map_err(|e| cuda_err(name, e))
    }
}

/// The chain kernel's argument, laid out as its C struct `ChainArgs`.
#[repr(C)]
#[derive(Clone, Copy)]
struct ChainArgs {
    n: i64,
    d1: i32,
    d2: i32,
    d3: i32,
    nops: i32,
    inputs: [u64; MAX_INPUTS],
    strides: [[i64; 4]; MAX_INPUTS],
    /// Activation code, or 100 + binary op.
    kind: [i32; MAX_OPS],
    input: [i32; MAX_OPS],
    value_first: [i32; MAX_OPS],
    a: [f32; MAX_OPS],
    b: [f32; MAX_OPS],
}

// Safety: plain data (numbers and device addresses), laid out as the kernel's struct.
unsafe impl DeviceRepr for ChainArgs {}

/// Activation codes past the CNN core's (Elu and on): only the `_ext` kernels run them.
fn extended_act(kind: i32) -> bool {
    kind >= 8
}

/// Binary op codes past add, mul, sub and div (max, min, pow): only the `_ext` kernels.
fn extended_binary(op: i32) -> bool {
    op >= 4
}
