//! CUDA engines for GPU segments: cuDNN convolutions with bias, residual and ReLU fused
//! into one call (tactics timed per layer shape), NVRTC kernels for the rest; f32 or fp16
//! tensors (fp16 with f32 accumulation on tensor cores), NCHW or NHWC.
//!
//! Libraries are loaded at run time: a machine without CUDA builds and runs trtc, and
//! `CudaBuilder::probe` says why no engine can be built instead of panicking.

mod arena;
mod chains;
mod clip_into_depthwise;
mod concat_views;
mod conv_kernels;
mod descriptors;
mod direct;
mod elementwise;
mod engine;
mod gemm;
mod host;
mod instance;
mod kernels;
mod launch;
mod program;
mod saved;
mod tactics;
mod views;

use crate::engine::{Engine, EngineBuilder, EnginePayload};
use crate::error::{BackendError, Result};
use crate::options::CompileOptions;
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaStream};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use trtc_ir::{Graph, NodeId, SubgraphIo};

pub use engine::CudaEngine;
pub use saved::{ConvTactic, EngineTactics, InstanceTactics, LtTactic};

/// The GPU, its stream and the compiled kernels, shared by every engine.
pub(crate) struct Device {
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
    /// The kernels with float (`[0]`) and fp16 (`[1]`) tensors.
    modules: [Arc<CudaModule>; 2],
    functions: Mutex<HashMap<(&'static str, bool), CudaFunction>>,
}

/// Kernel `name` of the float or the fp16 module.
pub(crate) fn kernel(dev: &Device, name: &'static str, half: bool) -> Result<CudaFunction> {
    let mut f = dev.functions.lock().map_err(|_| BackendError::Cuda {
        layer: name.into(),
        detail: "kernel cache poisoned".into(),
    })?;
    if let Some(k) = f.get(&(name, half)) {
        return Ok(k.clone());
    }
    let k = dev.modules[half as usize]
        .load_function(name)
        .map_err(|e| BackendError::Cuda {
            layer: name.into(),
            detail: e.to_string(),
        })?;
    f.insert((name, half), k.clone());
    Ok(k)
}

/// Why CUDA engines cannot run here, checked without touching a missing library.
pub fn probe() -> std::result::Result<(), String> {
    // Safety: only tries to dlopen the libraries.
    let present = unsafe {
        [
            (
                "the CUDA driver (libcuda.so)",
                cudarc::driver::sys::is_culib_present(),
            ),
            (
                "NVRTC (libnvrtc.so)",
                cudarc::nvrtc::sys::is_culib_present(),
            ),
            (
                "cuDNN (libcudnn.so)",
                cudarc::cudnn::sys::is_culib_present(),
            ),
        ]
    };
    for (what, ok) in present {
        if !ok {
            return Err(format!("{what} not found"));
        }
    }
    match CudaContext::device_count() {
        Ok(n) if n > 0 => Ok(()),
        Ok(_) => Err("no CUDA device".into()),
        Err(e) => Err(format!("CUDA driver: {e}")),
    }
}

fn device() -> std::result::Result<Arc<Device>, String> {
    static DEVICE: OnceLock<std::result::Result<Arc<Device>, String>> = OnceLock::new();
    DEVICE
        .get_or_init(|| {
            probe()?;
            let ctx = CudaContext::new(0).map_err(|e| format!("CUDA context: {e}"))?;
            // Engines use one stream each and order their own work: no cross-stream events
            // (they would also get in the way of graph capture).
            // Safety: no other stream of this context touches the engines' memory.
            unsafe { ctx.disable_event_tracking() };
            let stream = ctx.new_stream().map_err(|e| format!("CUDA stream: {e}"))?;
            let (major, minor) = ctx.compute_capability().map_err(|e| e.to_string())?;
            let arch: &'static str = Box::leak(format!("sm_{major}{minor}").into_boxed_str());
            let module = |half: bool| {
                let opts = cudarc::nvrtc::CompileOptions {
                    arch: Some(arch),
                    ..Default::default()
                };
                let ptx = cudarc::nvrtc::compile_ptx_with_opts(kernels::module_source(half), opts)
                    .map_err(|e| format!("NVRTC: {e}"))?;
                ctx.load_module(ptx)
                    .map_err(|e| format!("loading kernels: {e}"))
            };
            let modules = [module(false)?, module(true)?];
            Ok(Arc::new(Device {
                ctx,
                stream,
                modules,
                functions: Mutex::new(HashMap::new()),
            }))
        })
        .clone()
}

/// Builds CUDA engines.
pub struct CudaBuilder;

impl EngineBuilder for CudaBuilder {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn unavailable(&self) -> Option<String> {
        device().err()
    }

    fn build(
        &self,
        g: &Graph,
        nodes: &[NodeId],
        io: &SubgraphIo,
        opts: &CompileOptions,
        payload: Option<&EnginePayload>,
    ) -> Result<Box<dyn Engine>> {
        let dev = device().map_err(|e| BackendError::BackendUnavailable("cuda".into(), e))?;
        dev.ctx.bind_to_thread().map_err(|e| BackendError::Cuda {
            layer: "context".into(),
            detail: e.to_string(),
        })?;
        let program = program::Program::build(g, nodes, io, &dev.stream, opts)?;
        Ok(Box::new(CudaEngine::new(
            dev,
            program,
            opts.workspace_bytes as usize,
            opts.max_cached_engines,
            payload
                .filter(|p| p.kind == "cuda-tactics")
                .map(|p| p.bytes.as_slice()),
        )?))
    }
}
