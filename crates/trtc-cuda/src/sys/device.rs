//! The GPU device every CUDA engine shares: context, stream, and trtc's NVRTC kernels
//! (a float and an fp16 module, compiled once per machine: `kernel_cache`), with a cache
//! of loaded functions.
//!
//! Libraries are loaded at run time: a machine without CUDA builds and runs trtc, and
//! [`probe`] says why no engine can be built instead of panicking.

use crate::error::{EngineError, Result};
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaStream, LaunchConfig};
use cudarc::nvrtc::Ptx;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// The GPU, its stream and the compiled kernels, shared by every engine.
pub struct Device {
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
    /// The kernels with float (`[0]`) and fp16 (`[1]`) tensors.
    pub(crate) modules: [Arc<CudaModule>; 2],
    pub(crate) functions: Mutex<HashMap<(&'static str, bool), CudaFunction>>,
    /// `sm_XY` of the device.
    arch: &'static str,
    /// The tensor-core INT8 kernels (`quant_kernels::CONV1X1_SOURCE`), compiled the first
    /// time one is asked for: a module of their own, so that an NVRTC failure there costs
    /// those kernels only (the engines then use cuDNN's).
    int8: OnceLock<std::result::Result<Arc<CudaModule>, String>>,
}

impl Device {
    /// Whether the device has fp16 `mma.sync.m16n8k16` (sm_80 and later), which
    /// `conv_few_inputs_mma` needs.
    pub(crate) fn has_mma_f16(&self) -> bool {
        self.arch
            .trim_start_matches("sm_")
            .parse::<u32>()
            .is_ok_and(|sm| sm >= 80)
    }
}

/// Kernel `name` of the tensor-core INT8 module, or why there is none.
pub(crate) fn int8_kernel(dev: &Device, name: &str) -> std::result::Result<CudaFunction, String> {
    let module = dev
        .int8
        .get_or_init(|| {
            load(
                &dev.ctx,
                super::quant_kernels::CONV1X1_SOURCE,
                dev.arch,
                "INT8 kernels",
            )
        })
        .clone()?;
    module.load_function(name).map_err(|e| e.to_string())
}

/// The module of `source`, its machine code from trtc's kernel cache or compiled.
fn load(
    ctx: &Arc<CudaContext>,
    source: &str,
    arch: &str,
    what: &str,
) -> std::result::Result<Arc<CudaModule>, String> {
    let cubin = super::kernel_cache::cubin(source, arch, what)?;
    load_cubin(ctx, source, arch, what, cubin)
}

/// Loads `cubin` (of `source`); a cached file the driver refuses is compiled again once.
fn load_cubin(
    ctx: &Arc<CudaContext>,
    source: &str,
    arch: &str,
    what: &str,
    cubin: Vec<u8>,
) -> std::result::Result<Arc<CudaModule>, String> {
    match ctx.load_module(Ptx::from_binary(cubin)) {
        Ok(m) => Ok(m),
        Err(e) => {
            tracing::debug!("{what}: the cached machine code did not load ({e}); compiling");
            super::kernel_cache::forget(source, arch);
            let cubin = super::kernel_cache::cubin(source, arch, what)?;
            ctx.load_module(Ptx::from_binary(cubin))
                .map_err(|e| format!("loading the {what}: {e}"))
        }
    }
}

/// Kernel `name` of the float or the fp16 module.
pub(crate) fn kernel(dev: &Device, name: &'static str, half: bool) -> Result<CudaFunction> {
    let mut f = dev
        .functions
        .lock()
        .map_err(|_| EngineError::cuda(name, "kernel cache poisoned"))?;
    if let Some(k) = f.get(&(name, half)) {
        return Ok(k.clone());
    }
    let k = dev.modules[half as usize]
        .load_function(name)
        .map_err(|e| EngineError::cuda(name, e))?;
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

pub fn device() -> std::result::Result<Arc<Device>, String> {
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
            // The float and the fp16 module compiled at once: most of a fresh machine's
            // first start.
            let [float_src, fp16_src] = [false, true].map(super::kernels::module_source);
            let (float, fp16) = std::thread::scope(|s| {
                let fp16 = s.spawn(|| super::kernel_cache::cubin(&fp16_src, arch, "kernels"));
                let float = super::kernel_cache::cubin(&float_src, arch, "kernels");
                let fp16 = fp16
                    .join()
                    .unwrap_or_else(|_| Err("NVRTC: compile thread died".into()));
                (float, fp16)
            });
            let modules = [
                load_cubin(&ctx, &float_src, arch, "kernels", float?)?,
                load_cubin(&ctx, &fp16_src, arch, "kernels", fp16?)?,
            ];
            Ok(Arc::new(Device {
                ctx,
                stream,
                modules,
                functions: Mutex::new(HashMap::new()),
                arch,
                int8: OnceLock::new(),
            }))
        })
        .clone()
}

/// One thread per element of `n`, in blocks of `threads`.
pub fn blocks(n: usize, threads: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: ((n as u32).div_ceil(threads).max(1), 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}
