//! Launching an engine's steps: one cuDNN call or NVRTC kernel each, on the engine's stream.

use super::engine::{blocks, cuda_err, CudaEngine, Instance};
use super::kernel;
use super::program::{unsupported, Step};
use crate::error::Result;
use cudarc::cudnn::result as dnn;
use cudarc::driver::{DevicePtr, LaunchConfig, PushKernelArg};

impl CudaEngine {
    pub(super) fn launch_steps(&self, inst: &Instance) -> Result<()> {
        for i in 0..self.program.steps.len() {
            self.launch_step(inst, i)?;
        }
        Ok(())
    }

    /// Launch step `i` alone (the profiler times steps one by one).
    pub(super) fn launch_step(&self, inst: &Instance, i: usize) -> Result<()> {
        let p = &self.program;
        let s = &self.dev.stream;
        let b = inst.batch;
        let ptr = |slot: usize| inst.ptrs[slot];
        let numel = |slot: usize| p.shape(slot, b).iter().product::<usize>();
        {
            let step = &p.steps[i];
            match step {
                Step::Conv {
                    name,
                    x,
                    y,
                    z,
                    w,
                    b: bias,
                    act,
                    ..
                } => {
                    let run = inst
                        .convs
                        .get(&i)
                        .ok_or_else(|| unsupported(name, "no instance"))?;
                    let mut xp = ptr(*x);
                    if let Some((buf, [h, wd, top, left])) = &run.padded {
                        let xs = p.shape(*x, b);
                        let n = xs[0] * xs[1] * h * wd;
                        let dst = buf.device_ptr(s).0;
                        let f = kernel(&self.dev, "pad2d")?;
                        let (nc, ih, iw, oh, ow, t, l) = (
                            (xs[0] * xs[1]) as i64,
                            xs[2] as i32,
                            xs[3] as i32,
                            *h as i32,
                            *wd as i32,
                            *top as i32,
                            *left as i32,
                        );
                        unsafe {
                            s.launch_builder(&f)
                                .arg(&dst)
                                .arg(&xp)
                                .arg(&nc)
                                .arg(&ih)
                                .arg(&iw)
                                .arg(&oh)
                                .arg(&ow)
                                .arg(&t)
                                .arg(&l)
                                .launch(blocks(n, 256))
                        }
                        .map_err(|e| cuda_err(name, e))?;
                        xp = dst;
                    }
                    let (alpha1, alpha2) = (1f32, if z.is_some() { 1f32 } else { 0f32 });
                    let zp = z.map(ptr).unwrap_or(ptr(*y));
                    let (ws_ptr, ws_len) = match &run.workspace {
                        Some(ws) => (ws.device_ptr(s).0, ws.len()),
                        None => (0, 0),
                    };
                    unsafe {
                        dnn::convolution_bias_activation_forward(
                            self.cudnn.0,
                            &alpha1 as *const f32 as *const _,
                            run.x.0,
                            xp as *const _,
                            run.w.0,
                            w.device_ptr(s).0 as *const _,
                            run.conv.0,
                            run.algo,
                            ws_ptr as *mut _,
                            ws_len,
                            &alpha2 as *const f32 as *const _,
                            run.y.0,
                            zp as *const _,
                            run.bias.0,
                            bias.device_ptr(s).0 as *const _,
                            run.act.0,
                            run.y.0,
                            ptr(*y) as *mut _,
                        )
                    }
                    .map_err(|e| cuda_err(name, e))?;
                    match act {
                        Some(a) if !matches!(a, trtc_ir::Activation::Relu) => {
                            self.act(ptr(*y), ptr(*y), numel(*y), super::program::act_code(*a))
                        }
                        _ => Ok(()),
                    }
                }
                Step::Act { x, y, act } => self.act(ptr(*y), ptr(*x), numel(*y), *act),
                Step::Binary { a, b: bb, y, op } => self.binary(
                    ptr(*y),
                    ptr(*a),
                    ptr(*bb),
                    &p.shape(*y, b),
                    &p.shape(*a, b),
                    &p.shape(*bb, b),
                    *op,
                ),
                Step::Pool {
                    x,
                    y,
                    max,
                    kernel: k,
                    stride,
                    pads,
                    count_pad,
                } => {
                    let (xs, ys) = (p.shape(*x, b), p.shape(*y, b));
                    let f = kernel(&self.dev, "pool2d")?;
                    let n = numel(*y);
                    let args = [
                        xs[2] as i32,
                        xs[3] as i32,
                        ys[2] as i32,
                        ys[3] as i32,
                        k[0],
                        k[1],
                        stride[0],
                        stride[1],
                        pads[0],
                        pads[1],
                        pads[2],
                        pads[3],
                        *max as i32,
                        *count_pad as i32,
                    ];
                    let nc = (xs[0] * xs[1]) as i64;
                    let (yp, xp) = (ptr(*y), ptr(*x));
                    let mut l = s.launch_builder(&f);
                    l.arg(&yp).arg(&xp).arg(&nc);
                    for a in &args {
                        l.arg(a);
                    }
                    unsafe { l.launch(blocks(n, 256)) }
                        .map(|_| ())
                        .map_err(|e| cuda_err("pool", e))
                }
                Step::GlobalPool { x, y, max } => {
                    let xs = p.shape(*x, b);
                    let f = kernel(&self.dev, "global_pool")?;
                    let (nc, hw, m) = (
                        (xs[0] * xs[1]) as i64,
                        (xs[2..].iter().product::<usize>()) as i32,
                        *max as i32,
                    );
                    let (yp, xp) = (ptr(*y), ptr(*x));
                    unsafe {
                        s.launch_builder(&f)
                            .arg(&yp)
                            .arg(&xp)
                            .arg(&nc)
                            .arg(&hw)
                            .arg(&m)
                            .launch(blocks(nc as usize * 32, 256))
                    }
                    .map(|_| ())
                    .map_err(|e| cuda_err("global pool", e))
                }
                Step::Concat { inputs, y, axis } => {
                    let ys = p.shape(*y, b);
                    let outer: usize = ys[..*axis].iter().product();
                    let dst_stride: usize = ys[*axis..].iter().product();
                    let mut off = 0usize;
                    for &inp in inputs {
                        let len: usize = p.shape(inp, b)[*axis..].iter().product();
                        self.copy_rows(ptr(*y), ptr(inp), outer, len, len, 0, dst_stride, off)?;
                        off += len;
                    }
                    Ok(())
                }
                Step::Split { x, outputs, axis } => {
                    let xs = p.shape(*x, b);
                    let outer: usize = xs[..*axis].iter().product();
                    let src_stride: usize = xs[*axis..].iter().product();
                    let mut off = 0usize;
                    for &o in outputs {
                        let len: usize = p.shape(o, b)[*axis..].iter().product();
                        self.copy_rows(ptr(o), ptr(*x), outer, len, src_stride, off, len, 0)?;
                        off += len;
                    }
                    Ok(())
                }
                Step::Gemm {
                    a,
                    y,
                    w_kn,
                    bias,
                    n,
                    k,
                    alpha,
                    beta,
                } => {
                    let m = p.shape(*a, b)[0] as i32;
                    let f = kernel(&self.dev, "gemm_kn")?;
                    let (yp, ap, wp) = (ptr(*y), ptr(*a), w_kn.device_ptr(s).0);
                    let bp = bias.as_ref().map(|c| c.device_ptr(s).0).unwrap_or(0);
                    let (ni, ki, has) = (*n as i32, *k as i32, bias.is_some() as i32);
                    let cfg = LaunchConfig {
                        grid_dim: ((*n as u32).div_ceil(128), m.max(1) as u32, 1),
                        block_dim: (128, 1, 1),
                        shared_mem_bytes: 0,
                    };
                    unsafe {
                        s.launch_builder(&f)
                            .arg(&yp)
                            .arg(&ap)
                            .arg(&wp)
                            .arg(&bp)
                            .arg(&m)
                            .arg(&ni)
                            .arg(&ki)
                            .arg(alpha)
                            .arg(beta)
                            .arg(&has)
                            .launch(cfg)
                    }
                    .map(|_| ())
                    .map_err(|e| cuda_err("gemm", e))
                }
                Step::Softmax { x, y } => {
                    let xs = p.shape(*x, b);
                    let cols = *xs.last().unwrap_or(&1) as i32;
                    let rows = (numel(*x) / cols.max(1) as usize) as i64;
                    let f = kernel(&self.dev, "softmax_rows")?;
                    let (yp, xp) = (ptr(*y), ptr(*x));
                    let cfg = LaunchConfig {
                        grid_dim: (rows.max(1) as u32, 1, 1),
                        block_dim: (256, 1, 1),
                        shared_mem_bytes: 0,
                    };
                    unsafe {
                        s.launch_builder(&f)
                            .arg(&yp)
                            .arg(&xp)
                            .arg(&rows)
                            .arg(&cols)
                            .launch(cfg)
                    }
                    .map(|_| ())
                    .map_err(|e| cuda_err("softmax", e))
                }
            }
        }
    }

    fn act(&self, y: u64, x: u64, n: usize, (kind, a, b): (i32, f32, f32)) -> Result<()> {
        let f = kernel(&self.dev, "act")?;
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
    fn copy_rows(
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
        let f = kernel(&self.dev, "copy_rows")?;
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

    #[allow(clippy::too_many_arguments)]
    fn binary(
        &self,
        y: u64,
        a: u64,
        b: u64,
        ys: &[usize],
        as_: &[usize],
        bs: &[usize],
        op: i32,
    ) -> Result<()> {
        if ys.len() > 4 {
            return Err(unsupported("elementwise", "rank over 4"));
        }
        let pad = |s: &[usize]| -> Vec<usize> {
            std::iter::repeat_n(1, 4 - s.len())
                .chain(s.iter().copied())
                .collect()
        };
        let (y4, a4, b4) = (
            pad(ys),
            pad(&as_[as_.len().saturating_sub(4)..]),
            pad(&bs[bs.len().saturating_sub(4)..]),
        );
        let strides = |s: &[usize]| -> Vec<i64> {
            let mut st = vec![0i64; 4];
            let mut acc = 1i64;
            for i in (0..4).rev() {
                st[i] = if s[i] == 1 && y4[i] != 1 { 0 } else { acc };
                acc *= s[i] as i64;
            }
            st
        };
        let (sa, sb) = (strides(&a4), strides(&b4));
        let n: usize = y4.iter().product();
        let f = kernel(&self.dev, "binary")?;
        let (n64, d1, d2, d3) = (n as i64, y4[1] as i32, y4[2] as i32, y4[3] as i32);
        let mut l = self.dev.stream.launch_builder(&f);
        l.arg(&y)
            .arg(&a)
            .arg(&b)
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
