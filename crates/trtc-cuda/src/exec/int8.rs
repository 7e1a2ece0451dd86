//! INT8 steps: `ConvInt8` (cuDNN's fused INT8 convolution on NHWC int8 tensors, or for
//! 1x1 convs trtc's own tensor-core kernel where timing picks it: `tactics/int8.rs`) and
//! the `Quantize` / `Dequantize` kernels around INT8 layers.

use super::{scratch_ptr, Exec, Instance};
use crate::error::{cuda_err, Result};
use crate::program::conv_rules::int8_kernels_take;
use crate::program::Step;
use crate::sys::cudnn::{self as d, ActDesc, ConvDesc, Filter4d, Tensor4d};
use crate::sys::device::{blocks, int8_kernel, kernel};
use cudarc::cudnn::{result as dnn, sys as dnn_sys};
use cudarc::driver::{CudaFunction, CudaSlice, DevicePtr, LaunchConfig, PushKernelArg};

/// What an INT8 convolution needs at one batch size.
pub(crate) struct QConvRun {
    x: Tensor4d,
    w: Filter4d,
    y: Tensor4d,
    bias: Tensor4d,
    conv: ConvDesc,
    act: ActDesc,
    workspace: Option<CudaSlice<u8>>,
    /// The step's requantization scale per output channel, for trtc's kernels (which
    /// take one per channel); present where `own_kernel_fits`.
    alphas: Option<CudaSlice<f32>>,
    /// Run by this one of trtc's kernels instead of cuDNN (`tactics/int8.rs`).
    pub(crate) own: Option<OwnConv>,
}

/// One of trtc's INT8 1x1 kernels (`sys/conv1x1_i8.cu`, which instantiates the same list):
/// `conv1x1_i8_<bm>x<bn>` for any K (a block per BM x BN output tile), or, where `kd` is
/// not 0, the streaming `conv1x1_i8_s<kd>_<bm>x<bn>` for K = kd (the block's weights held
/// in shared memory, pixel tiles streamed through `stages` buffers).
pub(crate) struct OwnKernel {
    pub(crate) name: &'static str,
    kd: usize,
    bm: u32,
    bn: u32,
    threads: u32,
    stages: u32,
}

const fn own(
    name: &'static str,
    kd: usize,
    bm: u32,
    bn: u32,
    threads: u32,
    stages: u32,
) -> OwnKernel {
    OwnKernel {
        name,
        kd,
        bm,
        bn,
        threads,
        stages,
    }
}

/// Every tile shape the tactic times (`benches/probes/conv1x1_i8_probe.cu` timed each on
/// ResNet-50's 1x1 convs); the tiled ones also with split K where their grid is small
/// (`Exec::split_counts`).
pub(crate) const OWN_KERNELS: [OwnKernel; 11] = [
    own("conv1x1_i8_128x128", 0, 128, 128, 256, 2),
    own("conv1x1_i8_128x64", 0, 128, 64, 128, 2),
    own("conv1x1_i8_64x128", 0, 64, 128, 128, 2),
    own("conv1x1_i8_64x64", 0, 64, 64, 128, 2),
    own("conv1x1_i8_128x128_4st", 0, 128, 128, 256, 4),
    own("conv1x1_i8_64x64_4st", 0, 64, 64, 128, 4),
    own("conv1x1_i8_s64_128x64", 64, 128, 64, 256, 3),
    own("conv1x1_i8_s64_128x128", 64, 128, 128, 256, 3),
    own("conv1x1_i8_s128_64x128", 128, 64, 128, 256, 3),
    own("conv1x1_i8_s256_64x64", 256, 64, 64, 128, 3),
    own("conv1x1_i8_s256_64x128", 256, 64, 128, 256, 3),
];

impl OwnKernel {
    /// Bytes of dynamic shared memory (the formulas of `conv1x1_i8.cu`).
    fn smem(&self) -> u32 {
        let (bm, bn, s) = (self.bm, self.bn, self.stages);
        if self.kd == 0 {
            s * (bm + bn) * 80 + bm * (bn + 16)
        } else {
            let ld = self.kd as u32 + 16;
            bn * ld + s * bm * (ld + bn + 16)
        }
    }

    /// Whether it computes a product over `k` input channels.
    pub(crate) fn takes(&self, k: usize) -> bool {
        self.kd == 0 || self.kd == k
    }

    /// Whether it can split K across blocks (the tiled kernels).
    pub(crate) fn splits_k(&self) -> bool {
        self.kd == 0
    }

    /// The input channel count a streaming kernel is built for.
    pub(crate) fn built_for(&self) -> Option<usize> {
        (self.kd != 0).then_some(self.kd)
    }

    /// The profile's name for it.
    pub(crate) fn tactic(&self) -> String {
        format!("trtc int8 mma {}", &self.name["conv1x1_i8_".len()..])
    }
}

/// A kernel of `OWN_KERNELS` ready to launch on one INT8 conv at one batch size.
pub(crate) struct OwnConv {
    pub(crate) kernel: &'static OwnKernel,
    /// Blocks per output tile, each summing a share of K (1: no split).
    pub(crate) splits: u32,
    func: CudaFunction,
    cfg: LaunchConfig,
    /// With split K: the int32 sums `[P][N]` and one counter per tile, zero between launches
    /// (the last block of each tile puts its part back to zero).
    ws: Option<CudaSlice<i32>>,
}

impl OwnConv {
    /// The profile's name for it.
    pub(crate) fn tactic(&self) -> String {
        match self.splits {
            1 => self.kernel.tactic(),
            s => format!("{} split {s}", self.kernel.tactic()),
        }
    }
}

/// Whether trtc's INT8 kernels take INT8 conv `step` (`conv_rules::int8_kernels_take`:
/// 1x1, stride 1, no pads, input and output channels multiples of 16).
pub(crate) fn own_kernel_fits(step: &Step) -> bool {
    let Step::ConvInt8 {
        w_dims,
        pads,
        stride,
        ..
    } = step
    else {
        return false;
    };
    let i64s = |v: &[i32]| v.iter().map(|&x| i64::from(x)).collect::<Vec<_>>();
    int8_kernels_take(
        w_dims.map(|d| d as usize),
        1,
        &i64s(pads),
        &i64s(stride),
        &[1, 1],
    )
}

/// Whether INT8 conv `step` has a requantization scale per output channel (weights
/// quantized per channel), which only trtc's kernels take.
pub(crate) fn per_channel(step: &Step) -> bool {
    matches!(step, Step::ConvInt8 { alpha, .. } if alpha.len() > 1)
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
            alpha,
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
            alphas: None,
            own: None,
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
        let alphas = if own_kernel_fits(&p.steps[i]) {
            let per_channel = match alpha.as_slice() {
                [one] => vec![*one; w_dims[0] as usize],
                many => many.to_vec(),
            };
            let d = self.dev.stream.clone_htod(&per_channel);
            Some(d.map_err(|e| cuda_err(name, e))?)
        } else {
            None
        };
        Ok(QConvRun {
            workspace: self.scratch(name, bytes)?,
            alphas,
            ..run
        })
    }

    /// The GPU's SM count.
    pub(super) fn sm_count(&self) -> std::result::Result<u32, cudarc::driver::DriverError> {
        use cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT;
        Ok(self
            .dev
            .ctx
            .attribute(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)? as u32)
    }

    /// INT8 conv step `i` at `batch`: its output pixels, input and output channels.
    fn int8_dims(&self, i: usize, batch: usize) -> Result<(u32, u32, u32)> {
        match &self.program.steps[i] {
            Step::ConvInt8 { y, w_dims, .. } => {
                let ys = self.program.shape(*y, batch);
                let pixels = (ys[0] * ys[2] * ys[3]) as u32;
                Ok((pixels, w_dims[1] as u32, w_dims[0] as u32))
            }
            _ => Err(cuda_err(
                "engine",
                "an INT8 kernel for a step that is no INT8 conv",
            )),
        }
    }

    /// The split counts worth timing for tiled `kernel` on INT8 conv `i` at `batch`: 1, and
    /// 2, 4, 8, 16 while the split grid still leaves SMs idle without it (fewer tiles than
    /// SMs times the split / 2) and each split gets at least two of K's 64-wide steps.
    pub(crate) fn split_counts(
        &self,
        i: usize,
        batch: usize,
        kernel: &OwnKernel,
    ) -> Result<Vec<u32>> {
        if !kernel.splits_k() {
            return Ok(vec![1]);
        }
        let (pixels, k, n) = self.int8_dims(i, batch)?;
        let sms = self
            .sm_count()
            .map_err(|e| cuda_err(&self.program.names[i], e))?;
        let tiles = pixels.div_ceil(kernel.bm) * n.div_ceil(kernel.bn);
        let ksteps = k.div_ceil(64);
        Ok(std::iter::once(1)
            .chain(
                [2, 4, 8, 16]
                    .into_iter()
                    .filter(|&s| tiles * s / 2 < sms && 2 * s <= ksteps),
            )
            .collect())
    }

    /// `kernel` of trtc's INT8 kernels made ready for INT8 conv step `i` at `batch`, with K
    /// split `splits` ways (a tiled kernel; 1 for the others): its shared memory allowed,
    /// its grid (every tile times the splits, or for a streaming kernel as many blocks as
    /// the GPU holds at once, a multiple of the blocks across N), and the split's zeroed
    /// workspace.
    pub(crate) fn own_conv(
        &self,
        i: usize,
        batch: usize,
        kernel: &'static OwnKernel,
        splits: u32,
    ) -> Result<OwnConv> {
        use cudarc::driver::sys::CUfunction_attribute;
        let name = &self.program.names[i];
        let (pixels, _, n) = self.int8_dims(i, batch)?;
        let err = |e: cudarc::driver::DriverError| cuda_err(name, e);
        if splits > 1 && !kernel.splits_k() {
            return Err(cuda_err(name, format!("{} does not split K", kernel.name)));
        }
        let func = int8_kernel(&self.dev, kernel.name).map_err(|e| cuda_err(name, e))?;
        let smem = kernel.smem();
        func.set_attribute(
            CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
            smem as i32,
        )
        .map_err(err)?;
        let across_n = n.div_ceil(kernel.bn);
        let tiles = pixels.div_ceil(kernel.bm) * across_n;
        let blocks = if kernel.kd == 0 {
            tiles * splits
        } else {
            let sms = self.sm_count().map_err(err)?;
            let per_sm = func
                .occupancy_max_active_blocks_per_multiprocessor(kernel.threads, smem as usize, None)
                .map_err(err)?;
            tiles.min((sms * per_sm / across_n).max(1) * across_n)
        };
        let ws = if splits > 1 {
            let len = pixels as usize * n as usize + tiles as usize;
            Some(self.dev.stream.alloc_zeros::<i32>(len).map_err(err)?)
        } else {
            None
        };
        Ok(OwnConv {
            kernel,
            splits,
            func,
            cfg: LaunchConfig {
                grid_dim: (blocks, 1, 1),
                block_dim: (kernel.threads, 1, 1),
                shared_mem_bytes: smem,
            },
            ws,
        })
    }

    /// Launch INT8 conv step `i`: trtc's kernel where the tactic chose it, else cuDNN's.
    pub(crate) fn launch_conv_int8(&self, inst: &Instance, i: usize) -> Result<()> {
        if let Some(run) = inst.qconvs.get(&i).filter(|r| r.own.is_some()) {
            return self.launch_conv1x1_i8(inst, i, run);
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
        // cuDNN takes one scale; the lowering gives more only where trtc's kernels run.
        let [alpha] = alpha.as_slice() else {
            return Err(cuda_err(
                name,
                "weights quantized per channel: cuDNN's INT8 convolution takes one scale",
            ));
        };
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

    /// INT8 conv step `i` by the kernel of trtc's that the tactic chose (`run.own`).
    fn launch_conv1x1_i8(&self, inst: &Instance, i: usize, run: &QConvRun) -> Result<()> {
        let p = &self.program;
        let Step::ConvInt8 {
            name,
            x,
            y,
            z,
            w,
            w_dims,
            bias,
            alpha_z,
            relu,
            ..
        } = &p.steps[i]
        else {
            return Err(cuda_err("engine", "not an INT8 conv"));
        };
        let (Some(own), Some(alphas)) = (&run.own, &run.alphas) else {
            return Err(cuda_err(name, "no INT8 kernel of trtc's prepared"));
        };
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
        let s = &self.dev.stream;
        let ap = alphas.device_ptr(s).0;
        let wsp = own.ws.as_ref().map(|w| w.device_ptr(s).0).unwrap_or(0);
        let splits = own.splits as i32;
        // Safety: x is [pixels][k] int8, w [n][k], z and y [pixels][n], bias and alphas n
        // f32 values (the instance's buffers and the program's weights at this batch); the
        // grid, shared memory and split workspace (pixels * n + tiles int32, zero) are the
        // ones `own_conv` made for this kernel, split and batch.
        unsafe {
            s.launch_builder(&own.func)
                .arg(&yp)
                .arg(&xp)
                .arg(&wp)
                .arg(&bp)
                .arg(&ap)
                .arg(&zp)
                .arg(alpha_z)
                .arg(&relu)
                .arg(&pixels)
                .arg(&k)
                .arg(&n)
                .arg(&wsp)
                .arg(&splits)
                .launch(own.cfg)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::quant_kernels::CONV1X1_SOURCE;

    /// Each kernel of the table is instantiated in `conv1x1_i8.cu` under its name, with the
    /// same tile shape, warps and stages, and its shared memory fits one H100/H200 SM
    /// (227 KiB); every instantiation is in the table.
    #[test]
    fn own_kernels_match_their_instantiations() {
        for k in &OWN_KERNELS {
            let (named, args) = match (k.kd, k.stages) {
                (0, 2) => (
                    format!("conv1x1_i8_{}x{}", k.bm, k.bn),
                    format!("C1_KERNEL({},{},", k.bm, k.bn),
                ),
                (0, s) => (
                    format!("conv1x1_i8_{}x{}_{s}st", k.bm, k.bn),
                    format!("C1_KERNEL_ST({},{},", k.bm, k.bn),
                ),
                (kd, _) => (
                    format!("conv1x1_i8_s{kd}_{}x{}", k.bm, k.bn),
                    format!("C1S_KERNEL({kd},{},{},", k.bm, k.bn),
                ),
            };
            assert_eq!(k.name, named, "the name the macro gives");
            let line = CONV1X1_SOURCE
                .lines()
                .find(|l| {
                    l.replace(' ', "").starts_with(&args) && l.contains(&format!("{})", k.stages))
                })
                .unwrap_or_else(|| panic!("{} is not instantiated", k.name));
            let args: Vec<u32> = line
                .split(['(', ')'])
                .nth(1)
                .unwrap()
                .split(',')
                .map(|a| a.trim().parse().unwrap())
                .collect();
            let (warps, stages) = match args.as_slice() {
                [_, _, wm, wn, s] | [_, _, _, wm, wn, s] => (wm * wn, *s),
                _ => panic!("{line}"),
            };
            assert_eq!(warps * 32, k.threads, "{}: {line}", k.name);
            assert_eq!(stages, k.stages, "{}: {line}", k.name);
            assert!(k.smem() <= 227 * 1024, "{}: {} bytes", k.name, k.smem());
        }
        assert_eq!(
            CONV1X1_SOURCE.matches("\nC1_KERNEL(").count()
                + CONV1X1_SOURCE.matches("\nC1_KERNEL_ST(").count()
                + CONV1X1_SOURCE.matches("\nC1S_KERNEL(").count(),
            OWN_KERNELS.len(),
            "every instantiated kernel is in the table"
        );
    }

    #[test]
    fn streaming_kernels_take_only_their_k() {
        let s = OWN_KERNELS
            .iter()
            .find(|k| k.name == "conv1x1_i8_s128_64x128")
            .unwrap();
        assert!(s.takes(128) && !s.takes(64) && !s.takes(256));
        assert_eq!(s.built_for(), Some(128));
        assert_eq!(s.tactic(), "trtc int8 mma s128_64x128");
        // 128 weight rows of 144 bytes, 3 stages of 64 x rows of 144 and 64 output rows of 144.
        assert_eq!(s.smem(), 128 * 144 + 3 * 64 * (144 + 144));
        let tiled = &OWN_KERNELS[0];
        assert!(tiled.takes(64) && tiled.takes(2048) && tiled.built_for().is_none());
    }
}
