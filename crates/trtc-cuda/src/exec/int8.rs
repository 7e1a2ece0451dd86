//! INT8 steps: `ConvInt8` (cuDNN's fused INT8 convolution on NHWC int8 tensors, or for
//! 1x1 convs trtc's own tensor-core kernel where timing picks it: `tactics/int8.rs`) and
//! the `Quantize` / `Dequantize` kernels around INT8 layers.

use super::{scratch_ptr, Exec, Instance};
use crate::error::{cuda_err, Result};
use crate::program::Step;
use crate::sys::cudnn::{self as d, ActDesc, ConvDesc, Filter4d, Tensor4d};
use crate::sys::device::{blocks, int8_kernel, kernel};
use cudarc::cudnn::{result as dnn, sys as dnn_sys};
use cudarc::driver::{CudaSlice, PushKernelArg};

/// What an INT8 convolution needs at one batch size.
pub(crate) struct QConvRun {
    x: Tensor4d,
    w: Filter4d,
    y: Tensor4d,
    bias: Tensor4d,
    conv: ConvDesc,
    act: ActDesc,
    workspace: Option<CudaSlice<u8>>,
    /// Run by trtc's `conv1x1_i8` kernel instead of cuDNN.
    pub(crate) own: bool,
}

/// Whether trtc's `conv1x1_i8` kernel takes INT8 conv `step`: 1x1, stride 1, no pads,
/// input channels a multiple of 64, output channels of 8.
pub(crate) fn own_kernel_fits(step: &Step) -> bool {
    matches!(step, Step::ConvInt8 { w_dims, pads, stride, .. }
        if w_dims[2] == 1 && w_dims[3] == 1 && *pads == [0, 0] && *stride == [1, 1]
            && w_dims[1] % 64 == 0 && w_dims[0] % 8 == 0)
}

/// cuDNN's one algorithm for fused INT8 NHWC convolutions (the only one that takes an
/// identity activation; the fastest on every layer the probe timed, `benches/probes`).
const ALGO: dnn_sys::cudnnConvolutionFwdAlgo_t =
    dnn_sys::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;

impl Exec {
    /// Descriptors and workspace of INT8 conv step `i` at `batch`.
    pub(crate) fn qconv_run(&self, i: usize, batch: usize) -> Result<QConvRun> {
        let p = &self.program;
        let Step::ConvInt8 {
            name,
            x,
            y,
            w_dims,
            pads,
            stride,
            relu,
            ..
        } = &p.steps[i]
        else {
            return Err(cuda_err(
                "engine",
                "qconv_run of a step that is no INT8 conv",
            ));
        };
        let e = |err: dnn::CudnnError| cuda_err(name, format!("cuDNN INT8 convolution: {err}"));
        let dims = |v: Vec<usize>| [v[0] as i32, v[1] as i32, v[2] as i32, v[3] as i32];
        let run = QConvRun {
            x: d::tensor4d_int8(dims(p.shape(*x, batch))).map_err(e)?,
            w: d::filter4d_int8(*w_dims).map_err(e)?,
            y: d::tensor4d_int8(dims(p.shape(*y, batch))).map_err(e)?,
            bias: d::tensor4d([1, w_dims[0], 1, 1], true, false).map_err(e)?,
            conv: d::conv2d(*pads, *stride, [1, 1], 1, d::Math::Int8).map_err(e)?,
            act: d::activation(*relu).map_err(e)?,
            workspace: None,
            own: false,
        };
        // Safety: the descriptors are valid and the handle is the engine's.
        let bytes = unsafe {
            dnn::get_convolution_forward_workspace_size(
                self.cudnn.0,
                run.x.0,
                run.w.0,
                run.conv.0,
                run.y.0,
                ALGO,
            )
        }
        .map_err(e)?;
        Ok(QConvRun {
            workspace: self.scratch(name, bytes)?,
            ..run
        })
    }

    /// Launch INT8 conv step `i`: trtc's kernel where the tactic chose it, else cuDNN's.
    pub(crate) fn launch_conv_int8(&self, inst: &Instance, i: usize) -> Result<()> {
        if inst.qconvs.get(&i).is_some_and(|r| r.own) {
            return self.launch_conv1x1_i8(inst, i);
        }
        let p = &self.program;
        let Step::ConvInt8 {
            name,
            x,
            y,
            z,
            w,
            bias,
            alpha,
            alpha_z,
            ..
        } = &p.steps[i]
        else {
            return Err(cuda_err("engine", "not an INT8 conv"));
        };
        let run = inst
            .qconvs
            .get(&i)
            .ok_or_else(|| cuda_err(name, "no instance"))?;
        let s = &self.dev.stream;
        let ptr = |slot: usize| inst.ptrs[slot];
        let alpha_z = if z.is_some() { *alpha_z } else { 0.0 };
        let (ws, ws_len) = scratch_ptr(&run.workspace, s);
        let zp = z.map(ptr).unwrap_or(ptr(*y));
        // Safety: pointers are the instance's buffers and the program's weights, of the
        // sizes the descriptors give; the scalars are f32 as INT8 convolutions take them.
        unsafe {
            dnn::convolution_bias_activation_forward(
                self.cudnn.0,
                alpha as *const f32 as *const _,
                run.x.0,
                ptr(*x) as *const _,
                run.w.0,
                self.wptr(*w) as *const _,
                run.conv.0,
                ALGO,
                ws as *mut _,
                ws_len,
                &alpha_z as *const f32 as *const _,
                run.y.0,
                zp as *const _,
                run.bias.0,
                self.wptr(*bias) as *const _,
                run.act.0,
                run.y.0,
                ptr(*y) as *mut _,
            )
        }
        .map_err(|e| cuda_err(name, format!("cuDNN INT8 convolution: {e}")))
    }

    /// INT8 conv step `i` by trtc's `conv1x1_i8` kernel (`own_kernel_fits`).
    fn launch_conv1x1_i8(&self, inst: &Instance, i: usize) -> Result<()> {
        let p = &self.program;
        let Step::ConvInt8 {
            name,
            x,
            y,
            z,
            w,
            w_dims,
            bias,
            alpha,
            alpha_z,
            relu,
            ..
        } = &p.steps[i]
        else {
            return Err(cuda_err("engine", "not an INT8 conv"));
        };
        let f = int8_kernel(&self.dev, "conv1x1_i8").map_err(|e| cuda_err(name, e))?;
        let ys = p.shape(*y, inst.batch);
        let (pixels, k, n) = ((ys[0] * ys[2] * ys[3]) as i32, w_dims[1], w_dims[0]);
        let (yp, xp, wp, bp) = (
            inst.ptrs[*y],
            inst.ptrs[*x],
            self.wptr(*w),
            self.wptr(*bias),
        );
        let zp = z.map(|s| inst.ptrs[s]).unwrap_or(0);
        let relu = *relu as i32;
        let cfg = cudarc::driver::LaunchConfig {
            grid_dim: ((pixels as u32).div_ceil(128), (n as u32).div_ceil(128), 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 2 * 2 * 128 * 80,
        };
        // Safety: x is [pixels][k] int8, w [n][k], z and y [pixels][n], bias n f32 values
        // (the instance's buffers and the program's weights at this batch).
        unsafe {
            self.dev
                .stream
                .launch_builder(&f)
                .arg(&yp)
                .arg(&xp)
                .arg(&wp)
                .arg(&bp)
                .arg(&zp)
                .arg(alpha)
                .arg(alpha_z)
                .arg(&relu)
                .arg(&pixels)
                .arg(&k)
                .arg(&n)
                .launch(cfg)
        }
        .map(|_| ())
        .map_err(|e| cuda_err(name, e))
    }

    /// Launch `Quantize` or `Dequantize` step `i`.
    pub(crate) fn launch_quantize(&self, inst: &Instance, i: usize) -> Result<()> {
        let p = &self.program;
        let (x, y, scale, name) = match &p.steps[i] {
            Step::Quantize { x, y, scale } => (*x, *y, *scale, "quantize_i8"),
            Step::Dequantize { x, y, scale } => (*x, *y, *scale, "dequantize_i8"),
            _ => return Err(cuda_err("engine", "not a Q/DQ step")),
        };
        let n = p.numel(x, inst.batch);
        let vec4 = n.is_multiple_of(4) as i32;
        let threads = if vec4 == 1 { n / 4 } else { n };
        let f = kernel(&self.dev, name, p.half)?;
        let (yp, xp, n32) = (inst.ptrs[y], inst.ptrs[x], n as u32);
        // Safety: x and y hold n elements of their types (int8 on one side).
        unsafe {
            self.dev
                .stream
                .launch_builder(&f)
                .arg(&yp)
                .arg(&xp)
                .arg(&scale)
                .arg(&n32)
                .arg(&vec4)
                .launch(blocks(threads, 256))
        }
        .map(|_| ())
        .map_err(|e| cuda_err(&p.names[i], e))
    }
}
