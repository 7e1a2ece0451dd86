//! Tactics: which implementation each convolution of an engine instance gets, chosen by
//! timing on the instance's shapes (as TensorRT's builder does). cuDNN's algorithms are
//! timed with `cudnnFindConvolutionForwardAlgorithm` (cached by layer shape across the
//! build); the fused call is timed against the unfused pair, and cuDNN against trtc's own
//! depthwise kernel.

use super::descriptors::{self as d, ConvDesc, Filter4d, Tensor4d};
use super::engine::{cuda_err, CudaEngine, Instance};
use super::program::{unsupported, Step};
use crate::error::Result;
use cudarc::cudnn::{result as dnn, sys as dnn_sys};
use std::collections::HashMap;
use std::sync::Mutex;

/// Algorithms already timed, by layer shape (a build-time cache: no layer is timed twice).
pub(super) fn tactic_cache(
) -> &'static Mutex<HashMap<String, (dnn_sys::cudnnConvolutionFwdAlgo_t, usize)>> {
    static CACHE: std::sync::OnceLock<
        Mutex<HashMap<String, (dnn_sys::cudnnConvolutionFwdAlgo_t, usize)>>,
    > = std::sync::OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

impl CudaEngine {
    /// Run each convolution once, so that a configuration cuDNN refuses is an error naming
    /// the layer at build time. Where cuDNN refuses the fused call, an fp16 bias is passed
    /// as f32; where it still refuses, the convolution runs unfused.
    pub(super) fn check_convs(&self, inst: &mut Instance) -> Result<()> {
        let conv_steps: Vec<usize> = inst.convs.keys().copied().collect();
        // TRTC_CONV=unfused takes the unfused path everywhere (for tests and comparisons).
        let force_unfused = std::env::var("TRTC_CONV").is_ok_and(|v| v == "unfused");
        for i in conv_steps {
            if !force_unfused && self.launch_step(inst, i).is_ok() {
                continue;
            }
            let name = self.program.names[i].clone();
            let k = match &self.program.steps[i] {
                Step::Conv { w_dims, .. } => w_dims[0],
                _ => continue,
            };
            if self.program.half && !force_unfused {
                let run = inst
                    .convs
                    .get_mut(&i)
                    .ok_or_else(|| cuda_err("engine", "conv instance vanished"))?;
                run.bias =
                    d::tensor4d([1, k, 1, 1], false, false).map_err(|e| cuda_err(&name, e))?;
                run.bias_f32 = true;
                if self.launch_step(inst, i).is_ok() {
                    continue;
                }
            }
            let run = inst
                .convs
                .get_mut(&i)
                .ok_or_else(|| cuda_err("engine", "conv instance vanished"))?;
            let (algo, ws) = self.pick_algorithm(&name, &run.x, &run.w, &run.conv, &run.y, true)?;
            run.algo = algo;
            run.workspace = if ws > 0 {
                Some(
                    self.dev
                        .stream
                        .alloc_zeros::<u8>(ws)
                        .map_err(|e| cuda_err(&name, e))?,
                )
            } else {
                None
            };
            run.unfused = true;
            self.launch_step(inst, i)?;
        }
        if !force_unfused {
            self.choose_conv_fusion(inst)?;
        }
        self.choose_depthwise_kernels(inst)?;
        self.dev
            .stream
            .synchronize()
            .map_err(|e| cuda_err("engine build", e))
    }

    /// For each convolution cuDNN runs fused, time it against the unfused pair (cuDNN's
    /// fastest plain convolution, then trtc's bias/residual/activation kernel) on this
    /// batch size and keep the faster. The fused call takes only one algorithm for
    /// activations other than ReLU, and is slow for some fp16 shapes.
    fn choose_conv_fusion(&self, inst: &mut Instance) -> Result<()> {
        if std::env::var("TRTC_CONV").is_ok_and(|v| v == "fused") {
            return Ok(());
        }
        let fused: Vec<usize> = inst
            .convs
            .iter()
            .filter(|(_, r)| !r.unfused)
            .map(|(&i, _)| i)
            .collect();
        for i in fused {
            let name = self.program.names[i].clone();
            let fused_ms = self.time_step(inst, i)?;
            let run = inst
                .convs
                .get_mut(&i)
                .ok_or_else(|| cuda_err("engine", "conv instance vanished"))?;
            let (algo, ws) = self.pick_algorithm(&name, &run.x, &run.w, &run.conv, &run.y, true)?;
            let workspace = if ws > 0 {
                Some(
                    self.dev
                        .stream
                        .alloc_zeros::<u8>(ws)
                        .map_err(|e| cuda_err(&name, e))?,
                )
            } else {
                None
            };
            let old_algo = std::mem::replace(&mut run.algo, algo);
            let old_ws = std::mem::replace(&mut run.workspace, workspace);
            run.unfused = true;
            let keep = matches!(self.time_step(inst, i), Ok(ms) if ms < fused_ms);
            if !keep {
                if let Some(run) = inst.convs.get_mut(&i) {
                    run.algo = old_algo;
                    run.workspace = old_ws;
                    run.unfused = false;
                }
            }
        }
        Ok(())
    }

    /// For each depthwise convolution of an NHWC engine, time cuDNN against trtc's own
    /// kernel on this batch size and keep the faster (`TRTC_DEPTHWISE` can fix the choice).
    fn choose_depthwise_kernels(&self, inst: &mut Instance) -> Result<()> {
        if !self.program.nhwc {
            return Ok(());
        }
        let depthwise: Vec<usize> = inst
            .convs
            .keys()
            .copied()
            .filter(|&i| {
                matches!(&self.program.steps[i],
                    Step::Conv { w_dims, groups, .. } if w_dims[1] == 1 && *groups == w_dims[0])
            })
            .collect();
        // TRTC_DEPTHWISE=direct or =cudnn fixes the choice (for tests and comparisons).
        let forced = std::env::var("TRTC_DEPTHWISE").ok();
        for i in depthwise {
            if let Some(choice) = forced
                .as_deref()
                .filter(|c| ["direct", "cudnn"].contains(c))
            {
                if let Some(r) = inst.convs.get_mut(&i) {
                    r.direct = choice == "direct";
                }
                continue;
            }
            let cudnn_ms = self.time_step(inst, i)?;
            let set = |inst: &mut Instance, direct: bool| {
                if let Some(r) = inst.convs.get_mut(&i) {
                    r.direct = direct;
                }
            };
            set(inst, true);
            match self.time_step(inst, i) {
                Ok(ms) if ms < cudnn_ms => {}
                _ => set(inst, false),
            }
        }
        Ok(())
    }

    /// Mean milliseconds of step `i` over a few launches.
    fn time_step(&self, inst: &Instance, i: usize) -> Result<f32> {
        let s = &self.dev.stream;
        let ev = || {
            self.dev
                .ctx
                .new_event(Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT))
                .map_err(|e| cuda_err("tactic timing", e))
        };
        let (start, end) = (ev()?, ev()?);
        self.launch_step(inst, i)?;
        start.record(s).map_err(|e| cuda_err("tactic timing", e))?;
        for _ in 0..5 {
            self.launch_step(inst, i)?;
        }
        end.record(s).map_err(|e| cuda_err("tactic timing", e))?;
        end.synchronize()
            .map_err(|e| cuda_err("tactic timing", e))?;
        Ok(start
            .elapsed_ms(&end)
            .map_err(|e| cuda_err("tactic timing", e))?
            / 5.0)
    }

    /// Time the algorithms cuDNN offers for this layer and keep the fastest that fits the
    /// workspace. Without ReLU the fused call only takes IMPLICIT_PRECOMP_GEMM.
    pub(super) fn pick_algorithm(
        &self,
        name: &str,
        x: &Tensor4d,
        w: &Filter4d,
        conv: &ConvDesc,
        y: &Tensor4d,
        relu: bool,
    ) -> Result<(dnn_sys::cudnnConvolutionFwdAlgo_t, usize)> {
        use dnn_sys::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM as PRECOMP;
        let mut count = 0i32;
        let mut perf: [dnn_sys::cudnnConvolutionFwdAlgoPerf_t; 8] = unsafe { std::mem::zeroed() };
        unsafe {
            dnn_sys::cudnnFindConvolutionForwardAlgorithm(
                self.cudnn.0,
                x.0,
                w.0,
                conv.0,
                y.0,
                8,
                &mut count,
                perf.as_mut_ptr(),
            )
        }
        .result()
        .map_err(|e| cuda_err(name, e))?;
        for p in perf.iter().take(count.max(0) as usize) {
            let ok = p.status == dnn_sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS;
            if ok && p.memory <= self.workspace_limit && (relu || p.algo == PRECOMP) {
                return Ok((p.algo, p.memory));
            }
        }
        let ws = unsafe {
            dnn::get_convolution_forward_workspace_size(
                self.cudnn.0,
                x.0,
                w.0,
                conv.0,
                y.0,
                PRECOMP,
            )
        }
        .map_err(|e| cuda_err(name, e))?;
        if ws > self.workspace_limit {
            return Err(unsupported(
                name,
                format!(
                    "needs {ws} bytes of workspace, over the {} limit",
                    self.workspace_limit
                ),
            ));
        }
        Ok((PRECOMP, ws))
    }
}
