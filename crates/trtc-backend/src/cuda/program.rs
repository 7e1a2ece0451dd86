//! A GPU segment as a list of steps over numbered tensor slots, translated from the graph
//! once; weights and constants are converted to the engine's element type and layout and
//! uploaded once when the engine is built.
//!
//! Segment inputs and outputs are f32 NCHW, as the rest of trtc sees them; an fp16 or NHWC
//! engine converts them with `Convert` steps at its boundary. Inside, every 4-D tensor is
//! stored in the engine's layout, other tensors in their natural order.

use super::chains::{fuse_elementwise_chains, ChainOp};
use super::clip_into_depthwise::clip_into_depthwise;
use super::direct::{direct_kernel_fits, weights_rsck};
use super::host::{encode, nchw_to_nhwc};
use crate::error::{BackendError, Result};
use crate::options::{CompileOptions, Precision};
use cudarc::driver::{CudaSlice, CudaStream};
use std::collections::HashMap;
use std::sync::Arc;
use trtc_ir::tensor::tensor_to_f32s;
use trtc_ir::{Activation, AutoPad, Dim, Graph, NodeId, Op, Outlet, SubgraphIo};

pub(crate) fn unsupported(node: &str, what: impl Into<String>) -> BackendError {
    BackendError::Cuda {
        layer: node.to_string(),
        detail: what.into(),
    }
}

/// A tensor of the segment: its shape (batch symbolic), where its data lives, how it is
/// stored.
pub(crate) struct Slot {
    pub shape: Vec<Dim>,
    /// A view of another slot (Reshape, Flatten, Identity).
    pub alias_of: Option<usize>,
    /// A constant operand, on the device.
    pub constant: Option<CudaSlice<u8>>,
    /// A 4-D tensor stored NHWC.
    pub nhwc: bool,
    /// Elements are fp16 (else f32).
    pub half: bool,
}

impl Slot {
    pub fn elem_bytes(&self) -> usize {
        if self.half {
            2
        } else {
            4
        }
    }
}

pub(crate) enum Step {
    Conv {
        name: String,
        x: usize,
        y: usize,
        z: Option<usize>,
        w: CudaSlice<u8>,
        w_dims: [i32; 4],
        /// Bias in the engine's element type, and in f32 for fp16 engines (cuDNN is asked
        /// for the first and falls back to the second).
        b: CudaSlice<u8>,
        b_f32: Option<CudaSlice<u8>>,
        /// Weights as `[kh][kw][c][k]`, for trtc's own NHWC kernels (depthwise convs, and
        /// convs of few input channels such as image stems): see `direct::direct_kernel_fits`.
        w_direct: Option<CudaSlice<u8>>,
        pads: [i32; 4],
        stride: [i32; 2],
        dilation: [i32; 2],
        groups: i32,
        act: Option<Activation>,
        /// Clamp trtc's depthwise kernel applies to the input as it loads it, taking over
        /// the producer's Clip (`clip_into_depthwise.rs`).
        x_clamp: Option<(f32, f32)>,
        /// The depthwise conv step that can take over this conv's Clip.
        clip_to: Option<usize>,
    },
    Pool {
        x: usize,
        y: usize,
        max: bool,
        kernel: [i32; 2],
        stride: [i32; 2],
        pads: [i32; 4],
        count_pad: bool,
    },
    GlobalPool {
        x: usize,
        y: usize,
        max: bool,
    },
    Binary {
        a: usize,
        b: usize,
        y: usize,
        op: i32,
    },
    Act {
        x: usize,
        y: usize,
        act: (i32, f32, f32),
    },
    Concat {
        inputs: Vec<usize>,
        y: usize,
        axis: usize,
    },
    Split {
        x: usize,
        outputs: Vec<usize>,
        axis: usize,
    },
    Gemm {
        a: usize,
        y: usize,
        w_kn: CudaSlice<u8>,
        bias: Option<CudaSlice<u8>>,
        n: usize,
        k: usize,
        alpha: f32,
        beta: f32,
    },
    Softmax {
        x: usize,
        y: usize,
    },
    /// Between a segment boundary slot (f32 NCHW) and an engine slot, either way.
    Convert {
        x: usize,
        y: usize,
    },
    /// The same 4-D tensor between NHWC and NCHW storage (around reshapes of NHWC data).
    Relayout {
        x: usize,
        y: usize,
    },
    /// Elementwise ops fused into one kernel (`chains.rs`): the value starts as
    /// `inputs[0]` (broadcast to y's shape) and goes through `ops`.
    Chain {
        inputs: Vec<usize>,
        y: usize,
        ops: Vec<ChainOp>,
    },
}

/// Kernel code and parameters of an activation.
pub(crate) fn act_code(a: Activation) -> (i32, f32, f32) {
    match a {
        Activation::Relu => (1, 0.0, 0.0),
        Activation::Clip { min, max } => (2, min, max),
        Activation::LeakyRelu { alpha } => (3, alpha, 0.0),
        Activation::Sigmoid => (4, 0.0, 0.0),
        Activation::HardSigmoid { alpha, beta } => (5, alpha, beta),
        Activation::HardSwish => (6, 0.0, 0.0),
    }
}

pub(crate) struct Program {
    pub slots: Vec<Slot>,
    pub steps: Vec<Step>,
    /// The node each step comes from.
    pub names: Vec<String>,
    pub inputs: Vec<usize>,
    pub outputs: Vec<usize>,
    pub precision: Precision,
    /// 4-D tensors are stored NHWC.
    pub nhwc: bool,
    /// Tensors are fp16.
    pub half: bool,
}

fn const_f32(g: &Graph, id: NodeId, slot: usize) -> Option<Vec<f32>> {
    g.input_const(id, slot).and_then(|t| tensor_to_f32s(t))
}

impl Program {
    /// Translate the segment's nodes; an op this engine cannot run is an error naming it.
    pub fn build(
        g: &Graph,
        nodes: &[NodeId],
        io: &SubgraphIo,
        stream: &Arc<CudaStream>,
        opts: &CompileOptions,
    ) -> Result<Program> {
        let precision = opts.precision;
        let half = precision == Precision::Fp16;
        let mut p = Program {
            slots: vec![],
            steps: vec![],
            names: vec![],
            inputs: vec![],
            outputs: vec![],
            precision,
            nhwc: opts.layout.nhwc_for(precision),
            half,
        };
        let mut slot_of: HashMap<Outlet, usize> = HashMap::new();
        // Weights in the engine's type; `dims4` reorders a 4-D tensor to NHWC first.
        let upload = |v: &[f32], dims4: Option<[usize; 4]>, half: bool, name: &str| {
            let bytes = match dims4 {
                Some(d) => encode(&nchw_to_nhwc(v, d), half),
                None => encode(v, half),
            };
            stream
                .clone_htod(&bytes)
                .map_err(|e| unsupported(name, format!("upload: {e}")))
        };
        for &o in &io.inputs {
            let host = p.add_boundary_slot(g, o);
            p.inputs.push(host);
            let s = if p.boundary_differs(host) {
                let s = p.add_slot(g, o, None);
                p.names.push(g.tensor(o).name.clone());
                p.steps.push(Step::Convert { x: host, y: s });
                s
            } else {
                host
            };
            slot_of.insert(o, s);
        }
        for &id in nodes {
            let node = g.node(id);
            let name = node.name.as_str();
            // Operands: a slot per tensor input; constants that are data get a device copy.
            let mut operand = |p: &mut Program, slot: usize| -> Result<usize> {
                let o = g
                    .input_outlet(id, slot)
                    .ok_or_else(|| unsupported(name, format!("input {slot} missing")))?;
                if let Some(&s) = slot_of.get(&o) {
                    return Ok(s);
                }
                let v = g
                    .const_value(o)
                    .and_then(|t| tensor_to_f32s(t))
                    .ok_or_else(|| {
                        unsupported(name, "an input is neither computed nor a float constant")
                    })?;
                let s = p.add_slot(g, o, None);
                let dims4 = p.slots[s]
                    .nhwc
                    .then(|| p.shape(s, 1))
                    .map(|d| [d[0], d[1], d[2], d[3]]);
                p.slots[s].constant = Some(upload(&v, dims4, p.half, name)?);
                slot_of.insert(o, s);
                Ok(s)
            };
            let y_out = Outlet::new(id, 0);
            let single_output = !matches!(
                node.op,
                Op::Identity | Op::Flatten { .. } | Op::Reshape { .. } | Op::Split { .. }
            );
            let y = if single_output {
                p.add_slot(g, y_out, None)
            } else {
                usize::MAX
            };
            let step = match &node.op {
                Op::Conv(_) | Op::FusedConv(_) => {
                    let (attrs, act, residual) = match &node.op {
                        Op::FusedConv(f) => (f.conv.clone(), f.activation, f.residual),
                        Op::Conv(c) => (c.clone(), None, false),
                        _ => unreachable!("matched above"),
                    };
                    if attrs.auto_pad != AutoPad::NotSet {
                        return Err(unsupported(name, "auto_pad"));
                    }
                    let wt = g
                        .input_const(id, 1)
                        .ok_or_else(|| unsupported(name, "weights are not constant"))?;
                    if wt.rank() != 4 {
                        return Err(unsupported(name, "only 2-D convolutions"));
                    }
                    let dims: Vec<i32> = wt.shape().iter().map(|&d| d as i32).collect();
                    let w = const_f32(g, id, 1)
                        .ok_or_else(|| unsupported(name, "weights are not f32"))?;
                    let m = dims[0] as usize;
                    let b = match g.input_outlet(id, 2) {
                        None => vec![0.0; m],
                        Some(_) => {
                            const_f32(g, id, 2)
                                .filter(|b| b.len() == m)
                                .ok_or_else(|| {
                                    unsupported(
                                        name,
                                        "bias is not a constant of one value per channel",
                                    )
                                })?
                        }
                    };
                    let x = operand(&mut p, 0)?;
                    let z = if residual {
                        Some(operand(&mut p, 3)?)
                    } else {
                        None
                    };
                    let i32s = |v: Vec<i64>| v.into_iter().map(|x| x as i32).collect::<Vec<_>>();
                    let (pd, st, dl) = (
                        i32s(attrs.pads(2)),
                        i32s(attrs.strides(2)),
                        i32s(attrs.dilations(2)),
                    );
                    let wd = [m, dims[1] as usize, dims[2] as usize, dims[3] as usize];
                    Step::Conv {
                        name: name.to_string(),
                        x,
                        y,
                        z,
                        w: upload(&w, p.nhwc.then_some(wd), p.half, name)?,
                        w_dims: [dims[0], dims[1], dims[2], dims[3]],
                        b: upload(&b, None, p.half, name)?,
                        w_direct: if p.nhwc && direct_kernel_fits(dims_of(&dims), attrs.group) {
                            Some(upload(&weights_rsck(&w, wd), None, p.half, name)?)
                        } else {
                            None
                        },
                        b_f32: if p.half {
                            Some(upload(&b, None, false, name)?)
                        } else {
                            None
                        },
                        pads: [pd[0], pd[1], pd[2], pd[3]],
                        stride: [st[0], st[1]],
                        dilation: [dl[0], dl[1]],
                        groups: attrs.group as i32,
                        act,
                        x_clamp: None,
                        clip_to: None,
                    }
                }
                Op::MaxPool(a) | Op::AveragePool(a) => {
                    if a.auto_pad != AutoPad::NotSet
                        || a.kernel_shape.len() != 2
                        || a.dilations(2).iter().any(|&d| d != 1)
                    {
                        return Err(unsupported(
                            name,
                            "pooling with auto_pad, dilation or not 2-D",
                        ));
                    }
                    let (k, s, pd) = (&a.kernel_shape, a.strides(2), a.pads(2));
                    Step::Pool {
                        x: operand(&mut p, 0)?,
                        y,
                        max: matches!(node.op, Op::MaxPool(_)),
                        kernel: [k[0] as i32, k[1] as i32],
                        stride: [s[0] as i32, s[1] as i32],
                        pads: [pd[0] as i32, pd[1] as i32, pd[2] as i32, pd[3] as i32],
                        count_pad: a.count_include_pad != 0,
                    }
                }
                Op::GlobalAveragePool | Op::GlobalMaxPool => Step::GlobalPool {
                    x: operand(&mut p, 0)?,
                    y,
                    max: matches!(node.op, Op::GlobalMaxPool),
                },
                Op::Add | Op::Mul | Op::Sub | Op::Div => {
                    let op = match node.op {
                        Op::Add => 0,
                        Op::Mul => 1,
                        Op::Sub => 2,
                        _ => 3,
                    };
                    Step::Binary {
                        a: operand(&mut p, 0)?,
                        b: operand(&mut p, 1)?,
                        y,
                        op,
                    }
                }
                Op::Relu
                | Op::Sigmoid
                | Op::Tanh
                | Op::HardSwish
                | Op::LeakyRelu { .. }
                | Op::HardSigmoid { .. }
                | Op::Clip => {
                    let act =
                        match &node.op {
                            Op::Tanh => (7, 0.0, 0.0),
                            _ => act_code(trtc_optimizer::util::activation_of(g, id).ok_or_else(
                                || unsupported(name, "Clip bounds are not constants"),
                            )?),
                        };
                    Step::Act {
                        x: operand(&mut p, 0)?,
                        y,
                        act,
                    }
                }
                Op::Identity | Op::Flatten { .. } | Op::Reshape { .. } => {
                    let x = operand(&mut p, 0)?;
                    let s = p.reshape(g, x, y_out, name);
                    slot_of.insert(y_out, s);
                    continue;
                }
                Op::Concat { axis } => {
                    let rank = g.tensor(y_out).rank().unwrap_or(0);
                    let axis = norm_axis(*axis, rank).ok_or_else(|| unsupported(name, "axis"))?;
                    let inputs = (0..node.num_inputs)
                        .map(|s| operand(&mut p, s))
                        .collect::<Result<Vec<_>>>()?;
                    Step::Concat { inputs, y, axis }
                }
                Op::Split { axis, .. } => {
                    let rank = g.tensor(y_out).rank().unwrap_or(0);
                    let axis = norm_axis(*axis, rank).ok_or_else(|| unsupported(name, "axis"))?;
                    let x = operand(&mut p, 0)?;
                    let mut outputs = vec![];
                    for slot in 0..node.outputs.len() {
                        let s = p.add_slot(g, Outlet::new(id, slot), None);
                        slot_of.insert(Outlet::new(id, slot), s);
                        outputs.push(s);
                    }
                    p.names.push(name.to_string());
                    p.steps.push(Step::Split { x, outputs, axis });
                    continue;
                }
                Op::Gemm {
                    alpha,
                    beta,
                    trans_a,
                    trans_b,
                } => {
                    if *trans_a != 0 {
                        return Err(unsupported(name, "transA"));
                    }
                    let bt = g
                        .input_const(id, 1)
                        .ok_or_else(|| unsupported(name, "B is not constant"))?;
                    let bv =
                        const_f32(g, id, 1).ok_or_else(|| unsupported(name, "B is not f32"))?;
                    let (r, c) = (bt.shape()[0], bt.shape()[1]);
                    let (k, n) = if *trans_b != 0 { (c, r) } else { (r, c) };
                    let w_kn: Vec<f32> = if *trans_b != 0 {
                        (0..k * n).map(|i| bv[(i % n) * k + i / n]).collect()
                    } else {
                        bv
                    };
                    let bias = match g.input_outlet(id, 2) {
                        None => None,
                        Some(_) => {
                            let v = const_f32(g, id, 2)
                                .ok_or_else(|| unsupported(name, "C is not constant"))?;
                            let v = if v.len() == 1 { vec![v[0]; n] } else { v };
                            if v.len() != n {
                                return Err(unsupported(name, "C is not one value per column"));
                            }
                            // beta is folded into the bias (cuBLASLt adds it unscaled).
                            let v: Vec<f32> = v.iter().map(|c| c * beta).collect();
                            Some(upload(&v, None, p.half, name)?)
                        }
                    };
                    Step::Gemm {
                        a: operand(&mut p, 0)?,
                        y,
                        w_kn: upload(&w_kn, None, p.half, name)?,
                        bias,
                        n,
                        k,
                        alpha: *alpha,
                        beta: 1.0,
                    }
                }
                Op::Softmax { axis } => {
                    let rank = g.tensor(y_out).rank().unwrap_or(0);
                    if norm_axis(*axis, rank) != Some(rank.saturating_sub(1)) {
                        return Err(unsupported(
                            name,
                            "softmax over an axis other than the last",
                        ));
                    }
                    if p.nhwc && rank == 4 {
                        return Err(unsupported(name, "softmax of a 4-D tensor stored NHWC"));
                    }
                    Step::Softmax {
                        x: operand(&mut p, 0)?,
                        y,
                    }
                }
                other => {
                    return Err(unsupported(
                        name,
                        format!("op {} has no CUDA kernel yet", other.op_type()),
                    ))
                }
            };
            slot_of.insert(y_out, y);
            p.names.push(name.to_string());
            p.steps.push(step);
        }
        for o in &io.outputs {
            let s = *slot_of.get(o).ok_or_else(|| {
                unsupported(&g.tensor(*o).name, "output not produced by the segment")
            })?;
            let host = p.add_boundary_slot(g, *o);
            if p.boundary_differs(host) || p.slots[s].half || p.slots[s].nhwc {
                p.names.push(g.tensor(*o).name.clone());
                p.steps.push(Step::Convert { x: s, y: host });
                p.outputs.push(host);
            } else {
                p.slots.pop();
                p.outputs.push(s);
            }
        }
        fuse_elementwise_chains(&mut p);
        clip_into_depthwise(&mut p);
        Ok(p)
    }

    /// A slot for outlet `o` stored as the engine stores its tensors.
    pub(super) fn add_slot(&mut self, g: &Graph, o: Outlet, alias_of: Option<usize>) -> usize {
        let shape = g.tensor(o).shape.clone().unwrap_or_default();
        let nhwc = self.nhwc && shape.len() == 4;
        self.push_slot(shape, alias_of, nhwc, self.half)
    }

    pub(super) fn push_slot(
        &mut self,
        shape: Vec<Dim>,
        alias_of: Option<usize>,
        nhwc: bool,
        half: bool,
    ) -> usize {
        self.slots.push(Slot {
            shape,
            alias_of,
            constant: None,
            nhwc,
            half,
        });
        self.slots.len() - 1
    }

    /// A segment input or output as the rest of trtc holds it: f32, NCHW.
    fn add_boundary_slot(&mut self, g: &Graph, o: Outlet) -> usize {
        let shape = g.tensor(o).shape.clone().unwrap_or_default();
        self.push_slot(shape, None, false, false)
    }

    /// Whether boundary slot `s` is stored differently from the engine's own tensors.
    fn boundary_differs(&self, s: usize) -> bool {
        self.half || (self.nhwc && self.slots[s].shape.len() == 4)
    }

    /// The slot whose memory `s` uses.
    pub fn storage(&self, mut s: usize) -> usize {
        while let Some(a) = self.slots[s].alias_of {
            s = a;
        }
        s
    }

    /// Concrete shape of slot `s` for a batch.
    pub fn shape(&self, s: usize, batch: usize) -> Vec<usize> {
        self.slots[s]
            .shape
            .iter()
            .map(|d| d.known().map(|v| v as usize).unwrap_or(batch))
            .collect()
    }
}

fn dims_of(d: &[i32]) -> [usize; 4] {
    [d[0] as usize, d[1] as usize, d[2] as usize, d[3] as usize]
}

fn norm_axis(axis: i64, rank: usize) -> Option<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    (0..rank as i64).contains(&a).then_some(a as usize)
}
