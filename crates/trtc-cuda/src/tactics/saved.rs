//! Tactics as a plan stores them: for each tuned batch size, what every convolution and
//! Gemm step of the engine runs (cuDNN algorithm and workspace, fused or not, trtc's
//! depthwise kernel, cuBLASLt algorithm). A plan built with them loads without timing
//! anything again; tactics from another GPU model, or that no longer apply, are timed anew.

use crate::error::{cuda_err, Result};
use crate::exec::{ConvRun, DirectForm, Exec, Instance, LtRun};
use crate::program::Step;
use crate::sys::cublaslt::{GemmSpec, LtGemm};
use crate::sys::cudnn as d;
use cudarc::cublaslt::sys as lt_sys;
use cudarc::cudnn::sys::cudnnConvolutionFwdAlgo_t as Algo;
use serde::{Deserialize, Serialize};

/// A cuBLASLt algorithm: its opaque 64 bytes and the workspace it needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LtTactic {
    pub algo: Vec<u64>,
    pub workspace: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConvTactic {
    /// cuDNN's `cudnnConvolutionFwdAlgo_t`.
    pub algo: i32,
    pub workspace: usize,
    pub bias_f32: bool,
    pub unfused: bool,
    pub direct: bool,
    /// trtc's row-tiled depthwise kernel (plans from before: the plain one).
    #[serde(default)]
    pub rows: bool,
    /// trtc's 2-D tiled depthwise kernel (plans from before: another one).
    #[serde(default)]
    pub tiles: bool,
    /// Its form in fp16 arithmetic (with `tiles`; plans from before: the f32 one).
    #[serde(default)]
    pub half2: bool,
    /// trtc's tensor-core image-stem kernel (plans from before: its plain one).
    #[serde(default)]
    pub mma: bool,
    /// trtc's tensor-core 1x1 kernel (plans from before: cuBLASLt or cuDNN).
    #[serde(default)]
    pub pointwise: bool,
    pub lt: Option<LtTactic>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceTactics {
    pub batch: usize,
    /// Read from the plan rather than timed when this engine was built.
    #[serde(default)]
    pub from_plan: bool,
    /// By step index.
    pub convs: Vec<(usize, ConvTactic)>,
    pub gemms: Vec<(usize, LtTactic)>,
    /// The instance's arena, and what its tensors would take without sharing memory.
    #[serde(default)]
    pub arena_bytes: usize,
    #[serde(default)]
    pub tensor_bytes: usize,
    /// Concat inputs computed in place, by slot (`None` in plans from before: all that
    /// qualify).
    #[serde(default)]
    pub views: Option<Vec<usize>>,
    /// Depthwise conv steps that clamp their input, taking over the Clip of the conv
    /// before them (derived from `convs`: those run by trtc's kernel).
    #[serde(default)]
    pub clips_moved: Vec<usize>,
}

/// A CUDA engine's payload in a plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EngineTactics {
    /// The GPU they were timed on (`cuDeviceGetName`).
    pub device: String,
    pub instances: Vec<InstanceTactics>,
}

pub(crate) fn algo_from_i32(v: i32) -> Option<Algo> {
    use Algo::*;
    [
        CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
        CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
        CUDNN_CONVOLUTION_FWD_ALGO_GEMM,
        CUDNN_CONVOLUTION_FWD_ALGO_DIRECT,
        CUDNN_CONVOLUTION_FWD_ALGO_FFT,
        CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING,
        CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD,
        CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED,
    ]
    .into_iter()
    .find(|a| *a as i32 == v)
}

fn lt_tactic(r: &LtRun) -> LtTactic {
    LtTactic {
        algo: r.gemm.algos[r.gemm.chosen].algo.data.to_vec(),
        workspace: r.gemm.workspace_size(),
    }
}

fn conv_tactic(r: &ConvRun) -> ConvTactic {
    ConvTactic {
        algo: r.algo as i32,
        workspace: r.workspace.as_ref().map(|w| w.len()).unwrap_or(0),
        bias_f32: r.bias_f32,
        unfused: r.unfused,
        direct: r.direct,
        rows: r.form == DirectForm::Rows,
        tiles: matches!(r.form, DirectForm::Tiles | DirectForm::HalfTiles),
        half2: r.form == DirectForm::HalfTiles,
        mma: r.form == DirectForm::Mma,
        pointwise: r.pointwise,
        lt: r.gemm.as_ref().map(lt_tactic),
    }
}

impl Exec {
    /// What instance `inst` runs, to be stored.
    pub(crate) fn record(&self, inst: &Instance, from_plan: bool) -> InstanceTactics {
        let mut convs: Vec<(usize, ConvTactic)> = inst
            .convs
            .iter()
            .map(|(&i, r)| (i, conv_tactic(r)))
            .collect();
        convs.sort_by_key(|(i, _)| *i);
        let mut gemms: Vec<(usize, LtTactic)> =
            inst.gemms.iter().map(|(&i, r)| (i, lt_tactic(r))).collect();
        gemms.sort_by_key(|(i, _)| *i);
        let clips_moved = convs
            .iter()
            .filter(|(i, c)| {
                c.direct
                    && matches!(
                        self.program.steps[*i],
                        Step::Conv {
                            x_clamp: Some(_),
                            ..
                        }
                    )
            })
            .map(|(i, _)| *i)
            .collect();
        InstanceTactics {
            batch: inst.batch,
            from_plan,
            convs,
            gemms,
            arena_bytes: inst.memory.0,
            tensor_bytes: inst.memory.1,
            views: Some({
                let mut v: Vec<usize> = inst.views.keys().copied().collect();
                v.sort_unstable();
                v
            }),
            clips_moved,
        }
    }
}

impl Exec {
    /// Give a fresh instance the stored tactics, then run it once: a tactic that no longer
    /// applies is an error here (and the caller times anew), never a wrong answer later.
    pub(crate) fn apply(&self, inst: &mut Instance, t: &InstanceTactics) -> Result<()> {
        for (i, c) in &t.convs {
            let name = self.program.names.get(*i).cloned().unwrap_or_default();
            let Some(Step::Conv { w_dims, .. }) = self.program.steps.get(*i) else {
                return Err(cuda_err(
                    &name,
                    "stored tactic for a step that is no convolution",
                ));
            };
            let k = w_dims[0];
            let lt = match &c.lt {
                Some(lt) => {
                    let (spec, bias) = self
                        .conv_gemm_spec(inst, *i)
                        .ok_or_else(|| cuda_err(&name, "stored product for a conv that is none"))?;
                    Some(self.stored_lt(&name, spec, bias, lt)?)
                }
                None => None,
            };
            let run = inst
                .convs
                .get_mut(i)
                .ok_or_else(|| cuda_err(&name, "no conv instance"))?;
            run.unfused = c.unfused;
            run.direct = c.direct;
            let form = match (c.tiles, c.rows) {
                _ if c.mma => DirectForm::Mma,
                (true, _) if c.half2 => DirectForm::HalfTiles,
                (true, _) => DirectForm::Tiles,
                (_, true) => DirectForm::Rows,
                _ => DirectForm::Pixel,
            };
            run.form = if c.direct && self.form_fits(*i, form) {
                form
            } else {
                DirectForm::Pixel
            };
            if c.bias_f32 {
                run.bias =
                    d::tensor4d([1, k, 1, 1], false, false).map_err(|e| cuda_err(&name, e))?;
                run.bias_f32 = true;
            }
            run.gemm = lt;
            run.pointwise = c.pointwise;
        }
        for (i, lt) in &t.gemms {
            let name = self.program.names.get(*i).cloned().unwrap_or_default();
            let (spec, bias) = self
                .gemm_step_spec(*i, inst.batch)
                .ok_or_else(|| cuda_err(&name, "stored product for a step that is no Gemm"))?;
            let run = self.stored_lt(&name, spec, bias, lt)?;
            inst.gemms.insert(*i, run);
        }
        self.launch_steps(inst)?;
        self.dev
            .stream
            .synchronize()
            .map_err(|e| cuda_err("stored tactics", e))
    }

    /// A cuBLASLt product with a stored algorithm (no candidates timed).
    fn stored_lt(&self, name: &str, spec: GemmSpec, bias: u64, t: &LtTactic) -> Result<LtRun> {
        let h = self
            .lt
            .as_ref()
            .ok_or_else(|| cuda_err(name, "cuBLASLt is not there"))?;
        let mut gemm =
            LtGemm::new(h, spec, bias, t.workspace.max(1)).map_err(|e| cuda_err(name, e))?;
        let data: [u64; 8] = t
            .algo
            .as_slice()
            .try_into()
            .map_err(|_| cuda_err(name, "stored cuBLASLt algorithm is not 64 bytes"))?;
        // Safety: a plain C struct; every field is set below or is a reserved zero.
        let mut chosen: lt_sys::cublasLtMatmulHeuristicResult_t = unsafe { std::mem::zeroed() };
        chosen.algo.data = data;
        chosen.workspaceSize = t.workspace;
        chosen.state = lt_sys::cublasStatus_t::CUBLAS_STATUS_SUCCESS;
        gemm.algos = vec![chosen];
        gemm.chosen = 0;
        let workspace = self.scratch(name, t.workspace)?;
        Ok(LtRun { gemm, workspace })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithms_round_trip_through_their_numbers() {
        for v in 0..8 {
            assert_eq!(algo_from_i32(v).map(|a| a as i32), Some(v));
        }
        assert!(algo_from_i32(8).is_none());
        assert!(algo_from_i32(-1).is_none());
    }

    #[test]
    fn tactics_serialize_and_parse() {
        let t = EngineTactics {
            device: "NVIDIA H100 80GB HBM3".into(),
            instances: vec![InstanceTactics {
                batch: 8,
                from_plan: false,
                convs: vec![(
                    3,
                    ConvTactic {
                        algo: 1,
                        workspace: 1024,
                        bias_f32: false,
                        unfused: true,
                        direct: false,
                        rows: false,
                        tiles: true,
                        half2: true,
                        mma: false,
                        pointwise: true,
                        lt: Some(LtTactic {
                            algo: vec![1, 2, 3, 4, 5, 6, 7, 8],
                            workspace: 0,
                        }),
                    },
                )],
                gemms: vec![],
                arena_bytes: 1 << 20,
                tensor_bytes: 3 << 20,
                views: Some(vec![5, 9]),
                clips_moved: vec![3],
            }],
        };
        let bytes = serde_json::to_vec(&t).unwrap();
        assert_eq!(serde_json::from_slice::<EngineTactics>(&bytes).unwrap(), t);
        // Plans written before views were stored still load (every view that qualifies).
        let old = String::from_utf8(bytes)
            .unwrap()
            .replace(r#","views":[5,9]"#, "");
        let parsed = serde_json::from_str::<EngineTactics>(&old).unwrap();
        assert_eq!(parsed.instances[0].views, None);
        // Plans written before the fp16 depthwise and tensor-core stem and 1x1 kernels:
        // their tiled convs run the f32 tile kernel, nothing runs the tensor-core kernels.
        let old = old
            .replace(r#","half2":true"#, "")
            .replace(r#","mma":false"#, "")
            .replace(r#","pointwise":true"#, "");
        assert!(!old.contains("half2") && !old.contains("mma") && !old.contains("pointwise"));
        let parsed = serde_json::from_str::<EngineTactics>(&old).unwrap();
        let conv = &parsed.instances[0].convs[0].1;
        assert!(conv.tiles && !conv.half2 && !conv.mma && !conv.pointwise);
    }
}
