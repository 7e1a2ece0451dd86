//! Building an engine instance for one batch size: buffers (the arena and the boundary
//! tensors), cuDNN descriptors and algorithms per convolution, then tactics, timed or
//! taken from the plan.

use crate::error::{cuda_err, Result};
use crate::exec::{ConvRun, Exec, Instance};
use crate::passes::arena;
use crate::passes::concat_views::concat_views;
use crate::program::Step;
use crate::sys::cudnn::{self as d, Math};
use crate::tactics::saved::{algo_from_i32, InstanceTactics};
use crate::tactics::tactic_cache;
use cudarc::cudnn::{result as dnn, sys as dnn_sys};
use cudarc::driver::{CudaSlice, DevicePtr};
use std::collections::HashMap;
use trtc_engine::{progress, Precision};

impl Exec {
    pub(crate) fn build_instance(
        &self,
        batch: usize,
        preset: Option<&InstanceTactics>,
        use_views: bool,
    ) -> Result<Instance> {
        let p = &self.program;
        let stream = &self.dev.stream;
        // Concat inputs computed in place: the plan's choice where it has one.
        let mut views = if use_views {
            concat_views(p)
        } else {
            HashMap::new()
        };
        if let Some(keep) = preset.and_then(|t| t.views.as_ref()) {
            views.retain(|s, _| keep.contains(s));
        }
        // Convolutions first (descriptors and algorithms need no memory): one whose output
        // is a view that cuDNN cannot write gets a packed output, copied by the concat.
        let mut convs = HashMap::new();
        for (i, step) in p.steps.iter().enumerate() {
            let Step::Conv { name, y, .. } = step else {
                continue;
            };
            let stored = match preset {
                Some(t) => {
                    let c = t
                        .convs
                        .iter()
                        .find(|(s, _)| *s == i)
                        .map(|(_, c)| c)
                        .ok_or_else(|| cuda_err(name, "no stored tactic"))?;
                    let algo = algo_from_i32(c.algo)
                        .ok_or_else(|| cuda_err(name, "unknown stored algorithm"))?;
                    Some((algo, c.workspace))
                }
                None => None,
            };
            let run = match self.conv_run(i, batch, views.get(y).map(|v| v.ld), stored) {
                // cuDNN writes no strided NHWC output: a 1x1 conv can still write its slice
                // as a cuBLASLt product; another conv writes packed memory, copied.
                Err(_) if views.contains_key(y) && stored.is_none() => {
                    let mut run = self.conv_run(i, batch, None, stored)?;
                    if self.pointwise(i) {
                        run.gemm_only = true;
                    } else {
                        views.remove(y);
                    }
                    run
                }
                other => other?,
            };
            convs.insert(i, run);
        }
        let mut qconvs = HashMap::new();
        for (i, step) in p.steps.iter().enumerate() {
            if matches!(step, Step::ConvInt8 { .. }) {
                qconvs.insert(i, self.qconv_run(i, batch)?);
            }
        }

        // Internal tensors live in one arena, placed by lifetime.
        let life = arena::lifetimes(p, &views);
        let bytes_of = |s: usize| -> usize {
            p.shape(s, batch).iter().product::<usize>().max(1) * p.slots[s].elem_bytes()
        };
        let intervals: Vec<arena::Interval> = life
            .iter()
            .map(|&(s, first, last)| arena::Interval {
                bytes: bytes_of(s),
                first,
                last,
            })
            .collect();
        let (offsets, arena_bytes) = arena::place(&intervals);
        let tensor_bytes: usize = intervals
            .iter()
            .map(|t| t.bytes.div_ceil(arena::ALIGN) * arena::ALIGN)
            .sum();
        let arena_buf = stream
            .alloc_zeros::<u8>(arena_bytes.max(1))
            .map_err(|e| cuda_err("arena", format!("{arena_bytes} bytes: {e}")))?;
        let arena_base = arena_buf.device_ptr(stream).0;
        let mut arena_offset: HashMap<usize, usize> = HashMap::new();
        for (&(s, _, _), &o) in life.iter().zip(&offsets) {
            arena_offset.insert(s, o);
        }
        // Segment inputs and outputs have buffers of their own; slots no step uses any
        // more (inside fused chains) have none.
        let boundary: Vec<usize> = p
            .inputs
            .iter()
            .chain(&p.outputs)
            .map(|&s| p.storage(s))
            .collect();
        let mut buffers: Vec<Option<CudaSlice<u8>>> = Vec::with_capacity(p.slots.len());
        for (s, slot) in p.slots.iter().enumerate() {
            let elsewhere = slot.alias_of.is_some()
                || slot.constant.is_some()
                || views.contains_key(&s)
                || !boundary.contains(&s);
            buffers.push(if elsewhere || arena_offset.contains_key(&s) {
                None
            } else {
                let n: usize = p.shape(s, batch).iter().product();
                if n >= u32::MAX as usize {
                    return Err(cuda_err(
                        "engine",
                        format!(
                            "a tensor of {n} elements at batch {batch}: kernels index with 32 bits"
                        ),
                    ));
                }
                Some(
                    stream
                        .alloc_zeros::<u8>(n.max(1) * slot.elem_bytes())
                        .map_err(|e| cuda_err("alloc", e))?,
                )
            });
        }
        let ptr_of = |buf: &CudaSlice<u8>| buf.device_ptr(stream).0;
        let own_ptr = |s: usize| -> u64 {
            let st = p.storage(s);
            match (&buffers[st], &p.slots[st].constant, arena_offset.get(&st)) {
                (Some(b), _, _) => ptr_of(b),
                (None, Some(c), _) => ptr_of(&self.weights[c.0]),
                (None, None, Some(&o)) => arena_base + o as u64,
                _ => 0,
            }
        };
        let ptrs: Vec<u64> = (0..p.slots.len())
            .map(|s| match views.get(&p.storage(s)) {
                Some(v) => own_ptr(v.base) + (v.offset * p.slots[s].elem_bytes()) as u64,
                None => own_ptr(s),
            })
            .collect();
        let mut inst = Instance {
            batch,
            graph: None,
            graph_failed: false,
            buffers,
            ptrs,
            convs,
            qconvs,
            gemms: HashMap::new(),
            arena: arena_buf,
            memory: (arena_bytes, tensor_bytes),
            views,
        };
        // INT8 convs: cuDNN's kernel or trtc's, timed here with or without a plan.
        self.choose_int8_kernels(&mut inst)?;
        match preset {
            Some(t) => self.apply(&mut inst, t)?,
            None => {
                let bar = progress::start(&format!("timing tactics, batch {batch}"), 3);
                bar.message("1x1 convs as products");
                self.choose_conv_gemms(&mut inst, true)?;
                bar.advance(1);
                bar.message("convolutions");
                self.check_convs(&mut inst)?;
                bar.advance(1);
                bar.message("products");
                self.choose_gemms(&mut inst)?;
                bar.advance(1);
            }
        }
        Ok(inst)
    }

    /// Descriptors and algorithm of conv step `i` at `batch`; `ld_y` gives its output
    /// rows that stride (a slice of a concat's output), else it is packed.
    fn conv_run(
        &self,
        i: usize,
        batch: usize,
        ld_y: Option<usize>,
        stored: Option<(dnn_sys::cudnnConvolutionFwdAlgo_t, usize)>,
    ) -> Result<ConvRun> {
        let p = &self.program;
        let Step::Conv {
            name,
            x,
            y,
            w_dims,
            pads,
            stride,
            dilation,
            groups,
            act,
            ..
        } = &p.steps[i]
        else {
            return Err(cuda_err(
                "engine",
                "conv_run of a step that is no convolution",
            ));
        };
        let (xs, ys, w_dims, pads, stride, dilation, groups, act) = (
            p.shape(*x, batch),
            p.shape(*y, batch),
            *w_dims,
            *pads,
            *stride,
            *dilation,
            *groups,
            *act,
        );
        let e = |err: dnn::CudnnError| cuda_err(name, err);
        let (nhwc, half) = (self.program.nhwc, self.program.half);
        let symmetric = pads[0] == pads[2] && pads[1] == pads[3];
        let (xs_eff, pad_eff, padded) = if symmetric {
            (xs.clone(), [pads[0], pads[1]], None)
        } else {
            let (h, w) = (
                xs[2] + (pads[0] + pads[2]) as usize,
                xs[3] + (pads[1] + pads[3]) as usize,
            );
            let elem = if half { 2 } else { 4 };
            let buf = self
                .dev
                .stream
                .alloc_zeros::<u8>(xs[0] * xs[1] * h * w * elem)
                .map_err(|err| cuda_err(name, err))?;
            (
                vec![xs[0], xs[1], h, w],
                [0, 0],
                Some((buf, [h, w, pads[0] as usize, pads[1] as usize])),
            )
        };
        let dims = |v: &[usize]| [v[0] as i32, v[1] as i32, v[2] as i32, v[3] as i32];
        let x = d::tensor4d(dims(&xs_eff), nhwc, half).map_err(e)?;
        let y = match ld_y {
            Some(ld) => d::tensor4d_rows(dims(&ys), nhwc, half, ld).map_err(e)?,
            None => d::tensor4d(dims(&ys), nhwc, half).map_err(e)?,
        };
        let w = d::filter4d(w_dims, nhwc, half).map_err(e)?;
        let bias = d::tensor4d([1, w_dims[0], 1, 1], false, half).map_err(e)?;
        let math = match self.program.precision {
            Precision::Fp32 => Math::Fp32,
            Precision::Tf32 => Math::Tf32,
            Precision::Fp16 | Precision::Int8 => Math::Fp16,
        };
        let conv = d::conv2d(pad_eff, stride, dilation, groups, math).map_err(e)?;
        let relu = matches!(act, Some(trtc_ir::Activation::Relu));
        let act_desc = d::activation(relu).map_err(e)?;
        let key = format!(
            "{xs_eff:?}{w_dims:?}{pad_eff:?}{stride:?}{dilation:?}{groups}{relu}{:?}{nhwc}{ld_y:?}",
            self.program.precision
        );
        let cached = stored.or_else(|| {
            tactic_cache()
                .lock()
                .ok()
                .and_then(|c| c.get(&key).copied())
        });
        let (algo, ws) = match cached {
            Some(t) => t,
            None => {
                let t = if ld_y.is_some() {
                    self.pick_strided_algorithm(name, &x, &w, &conv, &y, relu)?
                } else {
                    self.pick_algorithm(name, &x, &w, &conv, &y, relu)?
                };
                if let Ok(mut c) = tactic_cache().lock() {
                    c.insert(key, t);
                }
                t
            }
        };
        let workspace = self.scratch(name, ws)?;
        Ok(ConvRun {
            x,
            w,
            y,
            bias,
            bias_f32: false,
            unfused: false,
            direct: false,
            form: Default::default(),
            gemm_only: false,
            pointwise: false,
            gemm: None,
            conv,
            act: act_desc,
            algo,
            workspace,
            padded,
        })
    }
}
