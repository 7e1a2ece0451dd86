//! Launching an engine's steps: one cuDNN call or NVRTC kernel each, on the engine's stream.

use super::direct::per_pixel;
use super::{scratch_ptr, Exec, Instance};
use crate::error::{cuda_err, Result};
use crate::program::host::{storage_axis, storage_shape, transpose_plan};
use crate::program::{act_code, Step};
use crate::sys::device::{blocks, kernel};
use cudarc::cudnn::result as dnn;
use cudarc::driver::{DevicePtr, LaunchConfig, PushKernelArg};

impl Exec {
    /// The activation conv step `i` applies in this instance: none where its Clip moved
    /// into the depthwise conv that reads it (which then runs trtc's kernel).
    pub(crate) fn conv_act(&self, inst: &Instance, i: usize) -> Option<trtc_ir::Activation> {
        match &self.program.steps[i] {
            Step::Conv {
                clip_to: Some(j), ..
            } if inst.convs.get(j).is_some_and(|r| r.direct) => None,
            Step::Conv { act, .. } => *act,
            _ => None,
        }
    }

    pub(crate) fn launch_steps(&self, inst: &Instance) -> Result<()> {
        for i in 0..self.program.steps.len() {
            self.launch_step(inst, i)?;
        }
        Ok(())
    }

    /// Launch step `i` alone (the profiler times steps one by one).
    pub(crate) fn launch_step(&self, inst: &Instance, i: usize) -> Result<()> {
        let p = &self.program;
        let s = &self.dev.stream;
        let b = inst.batch;
        let ptr = |slot: usize| inst.ptrs[slot];
        let numel = |slot: usize| p.shape(slot, b).iter().product::<usize>();
        let half = p.half;
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
                    b_f32,
                    ..
                } => {
                    let run = inst
                        .convs
                        .get(&i)
                        .ok_or_else(|| cuda_err(name, "no instance"))?;
                    let act = &self.conv_act(inst, i);
                    if run.pointwise {
                        return self.launch_pointwise_mma(inst, i, *act);
                    }
                    if run.gemm_only && run.gemm.is_none() {
                        return Err(cuda_err(name, "a strided NHWC output needs cuBLASLt"));
                    }
                    if let (Some(g), Some(h)) = (&run.gemm, &self.lt) {
                        let ws = scratch_ptr(&g.workspace, s);
                        g.gemm
                            .launch(
                                h,
                                s.cu_stream() as _,
                                self.wptr(*w),
                                ptr(*x),
                                z.map(ptr),
                                ptr(*y),
                                ws,
                            )
                            .map_err(|e| cuda_err(name, e))?;
                        return match act {
                            Some(a) if !matches!(a, trtc_ir::Activation::Relu) => {
                                self.act(ptr(*y), ptr(*y), numel(*y), act_code(*a))
                            }
                            _ => Ok(()),
                        };
                    }
                    if run.direct {
                        return self.launch_direct(inst, i, *act);
                    }
                    let mut xp = ptr(*x);
                    if let Some((buf, [h, wd, top, left])) = &run.padded {
                        let xs = p.shape(*x, b);
                        let n = xs[0] * xs[1] * h * wd;
                        let dst = buf.device_ptr(s).0;
                        let f = kernel(&self.dev, "pad2d", half)?;
                        let args = [
                            xs[0] as i32,
                            xs[1] as i32,
                            xs[2] as i32,
                            xs[3] as i32,
                            *h as i32,
                            *wd as i32,
                            *top as i32,
                            *left as i32,
                            p.slots[*x].nhwc as i32,
                        ];
                        let mut l = s.launch_builder(&f);
                        l.arg(&dst).arg(&xp);
                        for a in &args {
                            l.arg(a);
                        }
                        unsafe { l.launch(blocks(n, 256)) }.map_err(|e| cuda_err(name, e))?;
                        xp = dst;
                    }
                    let (ws_ptr, ws_len) = scratch_ptr(&run.workspace, s);
                    if run.unfused {
                        // cuDNN's convolution alone, then bias, residual and activation in
                        // one kernel.
                        let (one, zero) = (1f32, 0f32);
                        unsafe {
                            dnn::convolution_forward(
                                self.cudnn.0,
                                &one as *const f32 as *const _,
                                run.x.0,
                                xp as *const _,
                                run.w.0,
                                self.wptr(*w) as *const _,
                                run.conv.0,
                                run.algo,
                                ws_ptr as *mut _,
                                ws_len,
                                &zero as *const f32 as *const _,
                                run.y.0,
                                ptr(*y) as *mut _,
                            )
                        }
                        .map_err(|e| cuda_err(name, e))?;
                        let ys = p.shape(*y, b);
                        let code = act.map(act_code).unwrap_or((0, 0.0, 0.0));
                        return self.bias_act(
                            name,
                            ptr(*y),
                            self.wptr(*bias),
                            z.map(ptr),
                            [ys[0], ys[1], ys[2] * ys[3]],
                            p.slots[*y].nhwc,
                            inst.ld(*y),
                            code,
                        );
                    }
                    let (alpha1, alpha2) = (1f32, if z.is_some() { 1f32 } else { 0f32 });
                    let zp = z.map(ptr).unwrap_or(ptr(*y));
                    let bias_ptr = match (run.bias_f32, b_f32) {
                        (true, Some(b32)) => self.wptr(*b32),
                        _ => self.wptr(*bias),
                    };
                    unsafe {
                        dnn::convolution_bias_activation_forward(
                            self.cudnn.0,
                            &alpha1 as *const f32 as *const _,
                            run.x.0,
                            xp as *const _,
                            run.w.0,
                            self.wptr(*w) as *const _,
                            run.conv.0,
                            run.algo,
                            ws_ptr as *mut _,
                            ws_len,
                            &alpha2 as *const f32 as *const _,
                            run.y.0,
                            zp as *const _,
                            run.bias.0,
                            bias_ptr as *const _,
                            run.act.0,
                            run.y.0,
                            ptr(*y) as *mut _,
                        )
                    }
                    .map_err(|e| cuda_err(name, e))?;
                    match act {
                        Some(a) if !matches!(a, trtc_ir::Activation::Relu) => {
                            self.act(ptr(*y), ptr(*y), numel(*y), act_code(*a))
                        }
                        _ => Ok(()),
                    }
                }
                Step::Act { x, y, act } => self.act(ptr(*y), ptr(*x), numel(*y), *act),
                Step::Binary { a, b: bb, y, op } => self.binary(inst, *y, *a, *bb, *op),
                Step::Chain { inputs, y, ops } => self.chain(&p.names[i], inst, inputs, *y, ops),
                Step::Pool {
                    x,
                    y,
                    max,
                    kernel: k,
                    stride,
                    pads,
                    count_pad,
                    bias,
                    act,
                } => {
                    let (xs, ys) = (p.shape(*x, b), p.shape(*y, b));
                    // The epilogue: a null bias adds nothing, activation code 0 is none.
                    let bp: u64 = bias.map(ptr).unwrap_or(0);
                    let (act_kind, act_a, act_b) = act.unwrap_or((0, 0.0, 0.0));
                    if p.slots[*x].nhwc {
                        let ldy = inst.ld(*y).unwrap_or(ys[1]);
                        let v = self.vec();
                        let vectors = ys[1].is_multiple_of(v) && ldy.is_multiple_of(v);
                        let f = kernel(
                            &self.dev,
                            ["pool2d_nhwc", "pool2d_nhwc_vec"][vectors as usize],
                            half,
                        )?;
                        let args = [
                            xs[1] as i32,
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
                            ldy as i32,
                        ];
                        let (yp, xp) = (ptr(*y), ptr(*x));
                        let mut l = s.launch_builder(&f);
                        l.arg(&yp).arg(&xp).arg(&bp);
                        for a in &args {
                            l.arg(a);
                        }
                        let pixels = ys[0] * ys[2] * ys[3];
                        let total = (pixels * ys[1] / v) as u32;
                        if vectors {
                            l.arg(&total);
                        }
                        l.arg(&act_kind).arg(&act_a).arg(&act_b);
                        let cfg = match vectors {
                            true => blocks(total as usize, 128),
                            false => per_pixel(pixels, ys[1]),
                        };
                        return unsafe { l.launch(cfg) }
                            .map(|_| ())
                            .map_err(|e| cuda_err("pool", e));
                    }
                    let f = kernel(&self.dev, "pool2d", half)?;
                    let n = numel(*y);
                    let args = [
                        xs[0] as i32,
                        xs[1] as i32,
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
                        p.slots[*x].nhwc as i32,
                    ];
                    let (yp, xp) = (ptr(*y), ptr(*x));
                    let mut l = s.launch_builder(&f);
                    l.arg(&yp).arg(&xp).arg(&bp);
                    for a in &args {
                        l.arg(a);
                    }
                    l.arg(&act_kind).arg(&act_a).arg(&act_b);
                    unsafe { l.launch(blocks(n, 256)) }
                        .map(|_| ())
                        .map_err(|e| cuda_err("pool", e))
                }
                Step::GlobalPool { x, y, max } if p.slots[*x].nhwc => {
                    let xs = p.shape(*x, b);
                    let f = kernel(&self.dev, "global_pool_nhwc", half)?;
                    let args = [
                        xs[0] as i32,
                        xs[1] as i32,
                        (xs[2] * xs[3]) as i32,
                        *max as i32,
                    ];
                    let (yp, xp) = (ptr(*y), ptr(*x));
                    let mut l = s.launch_builder(&f);
                    l.arg(&yp).arg(&xp);
                    for a in &args {
                        l.arg(a);
                    }
                    unsafe { l.launch(blocks(xs[0] * xs[1], 128)) }
                        .map(|_| ())
                        .map_err(|e| cuda_err("global pool", e))
                }
                Step::GlobalPool { x, y, max } => {
                    let xs = p.shape(*x, b);
                    let f = kernel(&self.dev, "global_pool", half)?;
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
                    let nhwc = p.slots[*y].nhwc;
                    let ys = storage_shape(&p.shape(*y, b), nhwc);
                    let axis = &storage_axis(*axis, ys.len(), nhwc);
                    let outer: usize = ys[..*axis].iter().product();
                    let dst_stride: usize = ys[*axis..].iter().product();
                    let mut off = 0usize;
                    for &inp in inputs {
                        let len: usize = storage_shape(&p.shape(inp, b), nhwc)[*axis..]
                            .iter()
                            .product();
                        // An input computed in place is already there.
                        if !inst.views.contains_key(&inp) {
                            self.copy_rows(ptr(*y), ptr(inp), outer, len, len, 0, dst_stride, off)?;
                        }
                        off += len;
                    }
                    Ok(())
                }
                Step::Split { x, outputs, axis } => {
                    let nhwc = p.slots[*x].nhwc;
                    let xs = storage_shape(&p.shape(*x, b), nhwc);
                    let axis = &storage_axis(*axis, xs.len(), nhwc);
                    let outer: usize = xs[..*axis].iter().product();
                    let src_stride: usize = xs[*axis..].iter().product();
                    let mut off = 0usize;
                    for &o in outputs {
                        let len: usize = storage_shape(&p.shape(o, b), nhwc)[*axis..]
                            .iter()
                            .product();
                        // An output computed in place has rows `ld` apart in the concat.
                        let dst_stride = inst.ld(o).unwrap_or(len);
                        self.copy_rows(
                            ptr(o),
                            ptr(*x),
                            outer,
                            len,
                            src_stride,
                            off,
                            dst_stride,
                            0,
                        )?;
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
                    if let (Some(g), Some(h)) = (inst.gemms.get(&i), &self.lt) {
                        let ws = scratch_ptr(&g.workspace, s);
                        return g
                            .gemm
                            .launch(
                                h,
                                s.cu_stream() as _,
                                self.wptr(*w_kn),
                                ptr(*a),
                                None,
                                ptr(*y),
                                ws,
                            )
                            .map_err(|e| cuda_err(&p.names[i], e));
                    }
                    let m = (p.numel(*a, b) / (*k).max(1)) as i32;
                    let f = kernel(&self.dev, "gemm_kn", half)?;
                    let (yp, ap, wp) = (ptr(*y), ptr(*a), self.wptr(*w_kn));
                    let bp = bias.map(|c| self.wptr(c)).unwrap_or(0);
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
                    let f = kernel(&self.dev, "softmax_rows", half)?;
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
                Step::Convert { x, y } => {
                    // One side is the f32 NCHW boundary; the other is the engine's tensor.
                    let (to_host, inner) = if p.inputs.contains(x) {
                        (false, *y)
                    } else {
                        (true, *x)
                    };
                    let shape = p.shape(inner, b);
                    let (n, c, hw, nhwc) = match shape.as_slice() {
                        [n, c, h, w] => (*n, *c, h * w, p.slots[inner].nhwc),
                        _ => (numel(inner), 1, 1, false),
                    };
                    let name = if to_host { "to_host" } else { "from_host" };
                    self.relayout_kernel(name, ptr(*y), ptr(*x), [n, c, hw], nhwc)
                }
                Step::Transpose { x, y, perm } => {
                    let name = &p.names[i];
                    let (dims, strides) =
                        transpose_plan(&p.shape(*x, b), p.slots[*x].nhwc, p.slots[*y].nhwc, perm)
                            .ok_or_else(|| {
                            cuda_err(name, "a transpose of more than 4 separate dims")
                        })?;
                    self.chain_with(name, inst, &[*x], *y, &[], dims, vec![strides])
                }
                Step::Resize { .. } => self.launch_resize(inst, i),
                Step::Pixels { .. } => self.launch_pixels(inst, i),
                Step::ConvTranspose { .. } => self.launch_conv_transpose(inst, i),
                Step::Reduce { .. } => self.launch_reduce(inst, i),
                Step::Lrn { .. } => self.launch_lrn(inst, i),
                Step::ConvInt8 { .. } => self.launch_conv_int8(inst, i),
                Step::Quantize { .. } | Step::Dequantize { .. } => self.launch_quantize(inst, i),
                Step::Gather { .. } => self.launch_gather(inst, i),
                Step::BatchedMatMul { .. } => self.launch_batched_matmul(inst, i),
                Step::Relayout { x, y } => {
                    let sh = p.shape(*x, b);
                    let n = [sh[0], sh[1], sh[2] * sh[3]];
                    self.relayout_kernel("relayout", ptr(*y), ptr(*x), n, p.slots[*y].nhwc)
                }
            }
        }
    }
}

impl Exec {
    /// Launch the steps through the instance's CUDA graph, capturing it on first use.
    pub(crate) fn replay(&self, inst: &mut Instance) -> Result<()> {
        use cudarc::driver::sys::{CUgraphInstantiate_flags, CUstreamCaptureMode};
        let s = &self.dev.stream;
        if inst.graph.is_none() && !inst.graph_failed {
            s.begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED)
                .map_err(|e| cuda_err("graph capture", e))?;
            let launched = self.launch_steps(inst);
            let captured = s.end_capture(CUgraphInstantiate_flags(0));
            match (launched, captured) {
                (Ok(()), Ok(Some(g))) => inst.graph = Some(g),
                (Err(e), _) => return Err(e),
                (Ok(()), other) => {
                    inst.graph_failed = true;
                    let why = match other {
                        Err(e) => e.to_string(),
                        _ => "nothing captured".into(),
                    };
                    tracing::warn!(
                        "batch {}: CUDA graph capture failed ({why}); layers launch one by one",
                        inst.batch
                    );
                }
            }
        }
        match &inst.graph {
            Some(g) => g.launch().map_err(|e| cuda_err("graph launch", e)),
            None => self.launch_steps(inst),
        }
    }
}
