//! Running a program on the GPU: an engine's executor (the device, the program, its
//! weights on the device, the cuDNN and cuBLASLt handles) and, per batch size, an
//! [`Instance`] (buffers, per-layer descriptors and the tactics chosen), with the launches
//! of each step (`launch.rs`, `direct.rs`, `elementwise.rs`, `resample.rs`, `reduce.rs`,
//! `pixels.rs`, `pointwise.rs`, `int8.rs`) and
//! CUDA graph replay.
//!
//! Below: the program (`program/`), its passes' results (`passes/`), the libraries
//! (`sys/`). Above: tactics (which choose what an instance runs), instance building and
//! the engine.

mod batched_matmul;
mod direct;
mod elementwise;
mod gather;
mod int8;
pub(crate) use int8::{own_kernel_fits, per_channel, OwnConv, OwnKernel, OWN_KERNELS};
mod launch;
mod pixels;
mod pointwise;
mod reduce;
mod resample;

use crate::error::{cuda_err, Result};
use crate::passes::concat_views::View;
use crate::program::{Program, WeightId};
use crate::sys::cublaslt::{LtGemm, LtHandle};
use crate::sys::cudnn::{ActDesc, ConvDesc, Filter4d, Handle, Tensor4d};
use crate::sys::device::Device;
use cudarc::cudnn::{result as dnn, sys as dnn_sys};
use cudarc::driver::{CudaEvent, CudaSlice, CudaStream, DevicePtr};
use std::collections::HashMap;
use std::sync::Arc;

/// What runs an engine's program: the device, the program, its weights on the device,
/// and the library handles. One run at a time (the engine holds it under its lock).
pub(crate) struct Exec {
    pub(crate) dev: Arc<Device>,
    pub(crate) program: Program,
    /// `program.weights`, uploaded (indexed by `WeightId`).
    pub(crate) weights: Vec<CudaSlice<u8>>,
    pub(crate) cudnn: Handle,
    /// cuBLASLt, where the library is there.
    pub(crate) lt: Option<LtHandle>,
    pub(crate) workspace_limit: usize,
}

// Safety: the raw cuDNN handle and descriptors are only used by one run at a time (the
// engine's instance lock), on the engine's one stream.
unsafe impl Send for Exec {}
unsafe impl Sync for Exec {}

/// The forms of trtc's own depthwise and image-stem kernels (`direct.rs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum DirectForm {
    /// One output pixel per thread (or per block, for channels not in whole vectors).
    #[default]
    Pixel,
    /// Several output pixels of a row per thread (`Exec::row_tiles`).
    Rows,
    /// 8 x 8 output pixels per block from an input tile in shared memory (`Exec::tiles`).
    Tiles,
    /// `Tiles` in fp16 arithmetic, the window summed in fp16 pairs (`Exec::half_tiles`).
    HalfTiles,
    /// An image stem on tensor cores (`conv_few_inputs_mma`; fp16 engines, sm_80 and later).
    Mma,
}

/// What a convolution needs at one batch size.
pub(crate) struct ConvRun {
    pub(crate) x: Tensor4d,
    pub(crate) w: Filter4d,
    pub(crate) y: Tensor4d,
    pub(crate) bias: Tensor4d,
    /// The bias is passed as f32 (cuDNN refused it in the engine's fp16).
    pub(crate) bias_f32: bool,
    /// cuDNN refused the fused call: the convolution runs alone (with its own fastest
    /// algorithm), bias, residual and activation in a kernel after it.
    pub(crate) unfused: bool,
    /// A depthwise convolution run by trtc's own NHWC kernel, where timing showed it faster
    /// than cuDNN.
    pub(crate) direct: bool,
    /// With `direct`, which form of trtc's depthwise kernel runs it (timing chose it).
    pub(crate) form: DirectForm,
    pub(crate) conv: ConvDesc,
    pub(crate) act: ActDesc,
    pub(crate) algo: dnn_sys::cudnnConvolutionFwdAlgo_t,
    pub(crate) workspace: Option<CudaSlice<u8>>,
    /// A 1x1 convolution of an NHWC engine run as a cuBLASLt product, where timing showed
    /// it faster than cuDNN.
    pub(crate) gemm: Option<LtRun>,
    /// Its output is a slice of a concat's output that cuDNN cannot write (strided NHWC):
    /// only the cuBLASLt product (or `pointwise`) may run it.
    pub(crate) gemm_only: bool,
    /// A 1x1 convolution of an fp16 NHWC engine run by trtc's tensor-core kernel
    /// (`pointwise.rs`), where timing showed it faster than cuBLASLt and cuDNN.
    pub(crate) pointwise: bool,
    /// Asymmetric pads: the input is copied into this zero-padded buffer first
    /// (buffer, padded height and width, top and left pads).
    pub(crate) padded: Option<(CudaSlice<u8>, [usize; 4])>,
}

pub(crate) struct Instance {
    pub(crate) batch: usize,
    /// The steps captured as a CUDA graph on the first run, replayed after; `None` with
    /// `graph_failed` when capture is refused (the steps are then launched one by one).
    pub(crate) graph: Option<cudarc::driver::CudaGraph>,
    pub(crate) graph_failed: bool,
    pub(crate) buffers: Vec<Option<CudaSlice<u8>>>,
    pub(crate) ptrs: Vec<u64>,
    pub(crate) convs: HashMap<usize, ConvRun>,
    /// INT8 convolutions' descriptors, by step.
    pub(crate) qconvs: HashMap<usize, int8::QConvRun>,
    /// Gemm steps run by cuBLASLt (the others by trtc's kernel).
    pub(crate) gemms: HashMap<usize, LtRun>,
    /// The internal tensors' memory (owned here; `ptrs` point into it).
    #[allow(dead_code)]
    pub(crate) arena: CudaSlice<u8>,
    /// Arena bytes, and what the same tensors would take without sharing.
    pub(crate) memory: (usize, usize),
    /// Concat inputs their producers write in place, by slot.
    pub(crate) views: HashMap<usize, View>,
}

impl Instance {
    /// Elements between rows of slot `s` (NHWC: pixels, NCHW: images) where it is a slice
    /// of a concat's output.
    pub(crate) fn ld(&self, s: usize) -> Option<usize> {
        self.views.get(&s).map(|v| v.ld)
    }
}

/// A product run by cuBLASLt, with its workspace.
pub(crate) struct LtRun {
    pub(crate) gemm: LtGemm,
    pub(crate) workspace: Option<CudaSlice<u8>>,
}

/// Device pointer and length of an optional scratch buffer ((0, 0) for none).
pub(crate) fn scratch_ptr(ws: &Option<CudaSlice<u8>>, s: &Arc<CudaStream>) -> (u64, usize) {
    ws.as_ref()
        .map(|w| (w.device_ptr(s).0, w.len()))
        .unwrap_or((0, 0))
}

impl Exec {
    /// Zeroed device scratch of `bytes` for layer `name` (a workspace); none for 0 bytes.
    pub(crate) fn scratch(&self, name: &str, bytes: usize) -> Result<Option<CudaSlice<u8>>> {
        if bytes == 0 {
            return Ok(None);
        }
        self.dev
            .stream
            .alloc_zeros::<u8>(bytes)
            .map(Some)
            .map_err(|e| cuda_err(name, e))
    }

    /// Two timing events (start, end); errors name `what`.
    pub(crate) fn event_pair(&self, what: &str) -> Result<(CudaEvent, CudaEvent)> {
        let ev = || {
            self.dev
                .ctx
                .new_event(Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT))
                .map_err(|e| cuda_err(what, e))
        };
        Ok((ev()?, ev()?))
    }

    /// Device pointer of weight `w`.
    pub(crate) fn wptr(&self, w: WeightId) -> u64 {
        self.weights[w.0].device_ptr(&self.dev.stream).0
    }

    /// Upload a program's weights (and drop their host copies) for an engine on `dev`.
    pub(crate) fn new(
        dev: Arc<Device>,
        mut program: Program,
        workspace_limit: usize,
    ) -> Result<Exec> {
        dev.ctx
            .bind_to_thread()
            .map_err(|e| cuda_err("context", e))?;
        let cudnn = Handle(dnn::create_handle().map_err(|e| cuda_err("cudnn", e))?);
        // Safety: the handle is new and the stream outlives it (both held by the engine).
        unsafe { dnn::set_stream(cudnn.0, dev.stream.cu_stream() as *mut _) }
            .map_err(|e| cuda_err("cudnn", e))?;
        let weights = std::mem::take(&mut program.weights)
            .iter()
            .enumerate()
            .map(|(i, bytes)| {
                dev.stream
                    .clone_htod(bytes)
                    .map_err(|e| cuda_err("weights", format!("upload of weight {i}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Exec {
            dev,
            program,
            weights,
            cudnn,
            lt: LtHandle::new(),
            workspace_limit,
        })
    }
}
