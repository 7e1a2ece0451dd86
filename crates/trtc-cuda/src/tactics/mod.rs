//! Tactics: which implementation each convolution of an engine instance gets, chosen by
//! timing on the instance's shapes (as TensorRT's builder does). cuDNN's algorithms are
//! timed with `cudnnFindConvolutionForwardAlgorithm` (cached by layer shape across the
//! build); the fused call is timed against the unfused pair, and cuDNN against trtc's own
//! kernels (`direct.rs`, `pointwise.rs`), cuDNN's INT8 convolution against trtc's
//! (`int8.rs`).

mod direct;
mod int8;
mod pointwise;
pub mod saved;

use crate::error::{cuda_err, Result};
use crate::exec::{Exec, Instance, LtRun};
use crate::program::Step;
use crate::sys::cublaslt::{GemmSpec, LtGemm};
use crate::sys::cudnn::{self as d, ConvDesc, Filter4d, Tensor4d};
use cudarc::cudnn::{result as dnn, sys as dnn_sys};
use std::collections::HashMap;
use std::sync::Mutex;
use trtc_engine::Precision;

/// Algorithms already timed, by layer shape (a build-time cache: no layer is timed twice).
pub(crate) fn tactic_cache(
) -> &'static Mutex<HashMap<String, (dnn_sys::cudnnConvolutionFwdAlgo_t, usize)>> {
    static CACHE: std::sync::OnceLock<
        Mutex<HashMap<String, (dnn_sys::cudnnConvolutionFwdAlgo_t, usize)>>,
    > = std::sync::OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

impl Exec {
    /// Run each convolution once, so that a configuration cuDNN refuses is an error naming
    /// the layer at build time. Where cuDNN refuses the fused call, an fp16 bias is passed
    /// as f32; where it still refuses, the convolution runs unfused.
    pub(crate) fn check_convs(&self, inst: &mut Instance) -> Result<()> {
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
            run.workspace = self.scratch(&name, ws)?;
            run.unfused = true;
            self.launch_step(inst, i)?;
        }
        if !force_unfused {
            self.choose_conv_fusion(inst)?;
            self.choose_conv_gemms(inst, false)?;
        }
        self.choose_direct_kernels(inst)?;
        if !force_unfused {
            self.choose_pointwise_kernels(inst)?;
        }
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
            .filter(|(_, r)| !r.unfused && !r.direct && !r.gemm_only)
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
            let workspace = self.scratch(&name, ws)?;
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

    /// The product a Gemm step with a bias is at `batch`, with its bias pointer.
    pub(crate) fn gemm_step_spec(&self, i: usize, batch: usize) -> Option<(GemmSpec, u64)> {
        let p = &self.program;
        let Step::Gemm {
            a,
            n,
            k,
            alpha,
            bias: Some(bias),
            ..
        } = &p.steps[i]
        else {
            return None;
        };
        let spec = GemmSpec {
            m: p.numel(*a, batch) / (*k).max(1),
            n: *n,
            k: *k,
            weights_nk: false,
            half: p.half,
            tf32: p.precision == Precision::Tf32,
            relu: false,
            residual: false,
            alpha: *alpha,
            ld_out: *n,
        };
        Some((spec, self.wptr(*bias)))
    }

    /// The product a 1x1 convolution of an NHWC engine (stride 1, no pads, one group) is at
    /// `batch`, with its bias pointer; ReLU is the product's epilogue, another activation
    /// runs as a kernel after it.
    pub(crate) fn conv_gemm_spec(&self, inst: &Instance, i: usize) -> Option<(GemmSpec, u64)> {
        let (p, batch) = (&self.program, inst.batch);
        let Step::Conv {
            x,
            y,
            z,
            w_dims,
            b,
            act,
            ..
        } = &p.steps[i]
        else {
            return None;
        };
        if !self.pointwise(i) {
            return None;
        }
        let ys = p.shape(*y, batch);
        let spec = GemmSpec {
            m: ys[0] * ys[2] * ys[3],
            n: w_dims[0] as usize,
            k: p.shape(*x, batch)[1],
            weights_nk: true,
            half: p.half,
            tf32: p.precision == Precision::Tf32,
            relu: matches!(act, Some(trtc_ir::Activation::Relu)),
            residual: z.is_some(),
            alpha: 1.0,
            ld_out: inst.ld(*y).unwrap_or(w_dims[0] as usize),
        };
        Some((spec, self.wptr(*b)))
    }

    /// cuBLASLt's candidate algorithms for `spec`, each timed with `launch` (which runs
    /// the step with the candidate in place); the fastest with its time, or `None` when
    /// cuBLASLt is not there or takes none.
    fn fastest_lt(
        &self,
        name: &str,
        spec: GemmSpec,
        bias: u64,
        time: &mut dyn FnMut(LtRun) -> Result<(f32, LtRun)>,
    ) -> Result<Option<(f32, LtRun)>> {
        let Some(h) = &self.lt else {
            return Ok(None);
        };
        let max_ws = self.workspace_limit.min(32 << 20);
        let Ok(gemm) = LtGemm::new(h, spec, bias, max_ws) else {
            return Ok(None);
        };
        let mut best: Option<(f32, usize)> = None;
        let mut run = LtRun {
            gemm,
            workspace: None,
        };
        for j in 0..run.gemm.algos.len() {
            run.gemm.chosen = j;
            run.workspace = self.scratch(name, run.gemm.workspace_size())?;
            let (ms, back) = time(run)?;
            run = back;
            if ms.is_finite() && best.is_none_or(|(b, _)| ms < b) {
                best = Some((ms, j));
            }
        }
        let Some((ms, j)) = best else {
            return Ok(None);
        };
        run.gemm.chosen = j;
        run.workspace = self.scratch(name, run.gemm.workspace_size())?;
        Ok(Some((ms, run)))
    }

    /// Gemm steps: cuBLASLt's fastest algorithm against trtc's kernel, the faster kept
    /// (`TRTC_GEMM=cublaslt` or `=off` fixes the choice, for tests and comparisons).
    pub(crate) fn choose_gemms(&self, inst: &mut Instance) -> Result<()> {
        let p = &self.program;
        let forced = gemm_choice();
        if forced == Some(false) {
            return Ok(());
        }
        for i in 0..p.steps.len() {
            let Some((spec, bias_ptr)) = self.gemm_step_spec(i, inst.batch) else {
                continue;
            };
            let kernel_ms = if forced == Some(true) {
                f32::INFINITY
            } else {
                self.time_step(inst, i)?
            };
            let name = p.names[i].clone();
            let found = self.fastest_lt(&name, spec, bias_ptr, &mut |run| {
                inst.gemms.insert(i, run);
                let ms = self.time_step(inst, i).unwrap_or(f32::INFINITY);
                let run = inst
                    .gemms
                    .remove(&i)
                    .ok_or_else(|| cuda_err("engine", "gemm vanished"))?;
                Ok((ms, run))
            })?;
            if let Some((ms, run)) = found {
                if ms < kernel_ms {
                    inst.gemms.insert(i, run);
                }
            }
        }
        Ok(())
    }

    /// 1x1 convolutions of NHWC engines (stride 1, no pads, one group): cuBLASLt's fastest
    /// product against the cuDNN choice, the faster kept. `required`: only those whose
    /// output is a slice of a concat's output that cuDNN cannot write, which must run as a
    /// product (an error where cuBLASLt takes none).
    pub(crate) fn choose_conv_gemms(&self, inst: &mut Instance, required: bool) -> Result<()> {
        let p = &self.program;
        let forced = gemm_choice();
        if !p.nhwc || forced == Some(false) {
            return Ok(());
        }
        let ids: Vec<usize> = inst
            .convs
            .iter()
            .filter(|(_, r)| r.gemm.is_none() && (r.gemm_only || !required))
            .map(|(&i, _)| i)
            .collect();
        for i in ids {
            let Some((spec, bias_ptr)) = self.conv_gemm_spec(inst, i) else {
                continue;
            };
            let name = p.names[i].clone();
            let cudnn_ms = if forced == Some(true) || required {
                f32::INFINITY
            } else {
                self.time_step(inst, i)?
            };
            let found = self.fastest_conv_product(inst, i, spec, bias_ptr)?;
            match (found, inst.convs.get_mut(&i)) {
                (Some((ms, run)), Some(r)) if ms < cudnn_ms || required => r.gemm = Some(run),
                _ if required => {
                    return Err(cuda_err(&name, "cuBLASLt takes no product writing a slice"))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether conv step `i` is a plain 1x1 convolution of an NHWC engine, which cuBLASLt
    /// can run as a product.
    pub(crate) fn pointwise(&self, i: usize) -> bool {
        let p = &self.program;
        matches!(&p.steps[i], Step::Conv { w_dims, pads, stride, groups, .. }
            if p.nhwc
                && w_dims[2] == 1
                && w_dims[3] == 1
                && *groups == 1
                && stride == &[1, 1]
                && pads.iter().all(|&v| v == 0))
            && self.lt.is_some()
            && gemm_choice() != Some(false)
    }

    /// Conv step `i` as cuBLASLt's fastest product for `spec`, each candidate timed in
    /// place of the step's current run (which is left as it was): the time and the product.
    pub(super) fn fastest_conv_product(
        &self,
        inst: &mut Instance,
        i: usize,
        spec: GemmSpec,
        bias: u64,
    ) -> Result<Option<(f32, LtRun)>> {
        let name = self.program.names[i].clone();
        self.fastest_lt(&name, spec, bias, &mut |run| {
            let set = |inst: &mut Instance, g: Option<LtRun>| -> Option<LtRun> {
                inst.convs
                    .get_mut(&i)
                    .and_then(|r| std::mem::replace(&mut r.gemm, g))
            };
            set(inst, Some(run));
            let ms = self.time_step(inst, i).unwrap_or(f32::INFINITY);
            let run = set(inst, None).ok_or_else(|| cuda_err("engine", "gemm vanished"))?;
            Ok((ms, run))
        })
    }

    /// Mean milliseconds of step `i` over a few launches, replayed from a CUDA graph.
    pub(crate) fn time_step(&self, inst: &Instance, i: usize) -> Result<f32> {
        self.time_launch(&|| self.launch_step(inst, i))
    }

    /// Mean milliseconds of `launch` over a few runs.
    fn time_launch(&self, launch: &dyn Fn() -> Result<()>) -> Result<f32> {
        use cudarc::driver::sys::{CUgraphInstantiate_flags, CUstreamCaptureMode};
        const RUNS: usize = 5;
        let s = &self.dev.stream;
        let err = |e: cudarc::driver::DriverError| cuda_err("tactic timing", e);
        let (start, end) = self.event_pair("tactic timing")?;
        launch()?;
        // Timed as it will run: replayed from a CUDA graph, so the host's cost of each
        // call (large for some cuDNN paths) does not count.
        s.begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED)
            .map_err(err)?;
        let launched = (0..RUNS).try_for_each(|_| launch());
        let graph = s.end_capture(CUgraphInstantiate_flags(0));
        launched?;
        match graph {
            Ok(Some(g)) => {
                g.launch().map_err(err)?;
                start.record(s).map_err(err)?;
                g.launch().map_err(err)?;
                end.record(s).map_err(err)?;
            }
            _ => {
                start.record(s).map_err(err)?;
                for _ in 0..RUNS {
                    launch()?;
                }
                end.record(s).map_err(err)?;
            }
        }
        end.synchronize().map_err(err)?;
        Ok(start.elapsed_ms(&end).map_err(err)? / RUNS as f32)
    }

    /// cuDNN's algorithms for this layer, timed by cuDNN, fastest first.
    fn find_algorithms(
        &self,
        name: &str,
        x: &Tensor4d,
        w: &Filter4d,
        conv: &ConvDesc,
        y: &Tensor4d,
    ) -> Result<Vec<dnn_sys::cudnnConvolutionFwdAlgoPerf_t>> {
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
        Ok(perf.into_iter().take(count.max(0) as usize).collect())
    }

    /// For an output that is a slice of a wider tensor: the fastest algorithm cuDNN ran
    /// on it, or an error where none did (the caller then writes packed memory).
    pub(crate) fn pick_strided_algorithm(
        &self,
        name: &str,
        x: &Tensor4d,
        w: &Filter4d,
        conv: &ConvDesc,
        y: &Tensor4d,
        relu: bool,
    ) -> Result<(dnn_sys::cudnnConvolutionFwdAlgo_t, usize)> {
        use dnn_sys::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM as PRECOMP;
        self.find_algorithms(name, x, w, conv, y)?
            .into_iter()
            .find(|p| {
                p.status == dnn_sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS
                    && p.memory <= self.workspace_limit
                    && (relu || p.algo == PRECOMP)
            })
            .map(|p| (p.algo, p.memory))
            .ok_or_else(|| cuda_err(name, "cuDNN runs no algorithm writing a strided output"))
    }

    /// Time the algorithms cuDNN offers for this layer and keep the fastest that fits the
    /// workspace. Without ReLU the fused call only takes IMPLICIT_PRECOMP_GEMM.
    pub(crate) fn pick_algorithm(
        &self,
        name: &str,
        x: &Tensor4d,
        w: &Filter4d,
        conv: &ConvDesc,
        y: &Tensor4d,
        relu: bool,
    ) -> Result<(dnn_sys::cudnnConvolutionFwdAlgo_t, usize)> {
        use dnn_sys::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM as PRECOMP;
        for p in self.find_algorithms(name, x, w, conv, y)? {
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
            return Err(cuda_err(
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

/// `TRTC_GEMM`: `cublaslt` takes cuBLASLt wherever it can run a product, `off` never.
fn gemm_choice() -> Option<bool> {
    match std::env::var("TRTC_GEMM").ok().as_deref() {
        Some("cublaslt") => Some(true),
        Some("off") => Some(false),
        _ => None,
    }
}
