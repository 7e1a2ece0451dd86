//! Calibrated scales applied to a graph as QuantizeLinear/DequantizeLinear (QDQ) pairs:
//! an explicitly quantized model, the form TensorRT's explicit quantization and ONNX Runtime
//! consume, and INT8 simulated in f32 ("fake quantization") when it runs on tract.
//!
//! The rule, for each Conv, fused Conv, Gemm, MatMul and ConvTranspose node
//! ([`QdqOptions`] choose the weight granularity and whether residuals are quantized;
//! [`insert_qdq`] is per-channel weights, no residuals):
//!
//! - **weights**: a constant f32 weight (input 1; input 0 is never a weight) with a
//!   per-channel axis ([`channel_axis`]: 0 for Conv, 1 for ConvTranspose, 0 or 1 for Gemm
//!   by `transB`, the last for MatMul) is replaced, for this node, by
//!   `DequantizeLinear(int8 values, scales[C], zero points int8 0, axis)`, quantized
//!   symmetrically per output channel by [`quantize_per_channel`]
//!   ([`WeightScales::PerChannel`]); or, with [`WeightScales::PerTensor`] (what cuDNN's
//!   INT8 convolution takes: one scalar weight scale per layer), by
//!   `DequantizeLinear(int8 values, scale, zero point int8 0)` with one rank-0 scale and no
//!   `axis`, quantized by [`quantize_per_tensor`]; or, with
//!   [`WeightScales::DenseConvsPerTensor`], per tensor for convs of group 1 but those named
//!   in [`QdqOptions::per_channel_convs`], and per channel for the others; or, with
//!   [`WeightScales::Float`], not at all (the engine quantizes what it runs in INT8). A
//!   weight of rank < 2 under MatMul, or one of another type, stays f32.
//! - **activations**: each non-constant f32 input among the node's data inputs (input 0;
//!   for Gemm and MatMul also input 1 when it is not a constant, as in attention) whose
//!   tensor name has a scale `s` in the table is read by this node through
//!   `DequantizeLinear(QuantizeLinear(x, s, int8 0), s, int8 0)`. One pair per tensor,
//!   shared by all the nodes above that read it; other readers of `x` (a residual Add, a
//!   pool) keep reading the f32 tensor. Biases (Gemm's input 2, Conv's input 2) stay f32.
//! - **residuals** (with [`QdqOptions::residual`] only): a fused Conv with a residual reads
//!   its input 3 (`Z`, added before the activation) through the same shared pair when the
//!   tensor has a scale, as an activation input does: the simulated graph then adds the
//!   quantized residual, as an INT8 kernel taking an int8 residual computes. Usually the
//!   pair is the one the block's first conv already reads its input through.
//!
//! When it must not fire: a tensor the table has no scale for is left in f32 (counted in
//! [`QdqReport::unscaled`]) — the node then runs with f32 activations, as TensorRT would
//! run it in higher precision. Nodes named in [`QdqOptions::keep_float`] are left alone
//! (their weights and inputs both). A graph that already holds
//! QuantizeLinear/DequantizeLinear nodes is refused (it is already explicitly quantized;
//! quantizing again would compound the error). A model whose default-domain opset is
//! below 13 is refused: per-axis DequantizeLinear needs opset 13, and raising the opset of
//! a model would change what its older-opset nodes kept verbatim mean. The result is
//! validated before it is returned.
//!
//! [`quantize_per_channel`]: crate::weights::quantize_per_channel
//! [`quantize_per_tensor`]: crate::weights::quantize_per_tensor

use crate::cache::CalibrationTable;
use crate::error::{QuantError, Result};
use crate::weights::{channel_axis, quantize_tensor, quantize_tensor_per_tensor};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use trtc_ir::op::OtherOp;
use trtc_ir::tract_onnx::pb::AttributeProto;
use trtc_ir::{DType, Graph, Node, NodeId, Op, Outlet, Tensor, TensorInfo};

/// The lowest default-domain opset with per-axis DequantizeLinear.
pub const MIN_QDQ_OPSET: i64 = 13;

/// How weights are quantized.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WeightScales {
    /// One scale per output channel (`DequantizeLinear` with `axis`).
    #[default]
    PerChannel,
    /// One scale for the whole weight (a rank-0 scale, no `axis`): cuDNN's INT8 convolution.
    PerTensor,
    /// Per tensor for dense convs (group 1: what the GPU runs in INT8 on cuDNN, which takes
    /// one weight scale) but those in [`QdqOptions::per_channel_convs`] (which the GPU runs
    /// on its own kernels, taking a scale per output channel); per channel for the other
    /// weights (grouped and depthwise convs, products: the GPU runs them in FP16 on the
    /// dequantized weights, so per-tensor scales would only lose accuracy).
    DenseConvsPerTensor,
    /// Weights stay f32: the engine quantizes those it runs in INT8 itself (TensorRT's
    /// implicit quantization), and a layer it runs in FP16 keeps its exact weights.
    Float,
}

/// What [`insert_qdq_with`] does (the default is [`insert_qdq`]'s: per-channel weights,
/// residuals left f32, every node quantized).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QdqOptions {
    pub weights: WeightScales,
    /// A fused Conv's residual input (3) with a scale is read through its Q/DQ pair too.
    pub residual: bool,
    /// Nodes left in f32 (their weights and inputs both), by name.
    pub keep_float: HashSet<String>,
    /// Dense convs whose weights stay per channel under
    /// [`WeightScales::DenseConvsPerTensor`], by name.
    pub per_channel_convs: HashSet<String>,
}

impl QdqOptions {
    /// What `trtc compile --precision int8` writes for GPU engines: activations and
    /// residuals quantized, weights left f32 (the CUDA engine quantizes a dense conv's
    /// weights per tensor where it runs it in INT8, as cuDNN's INT8 convolution takes one
    /// weight scale; everything it runs in FP16 keeps its exact weights).
    pub fn gpu() -> Self {
        QdqOptions {
            weights: WeightScales::Float,
            residual: true,
            ..QdqOptions::default()
        }
    }
}

impl QdqOptions {
    /// What the GPU's INT8 engines compute for [`QdqOptions::gpu`]'s graph, as a QDQ graph
    /// tract can run: dense convs' weights quantized per tensor (as the engine quantizes
    /// them for cuDNN's INT8 convolution) but those in `per_channel_convs` (the convs the
    /// engine runs on its own kernels, which it quantizes per output channel), the other
    /// weights per channel, residuals quantized. The accuracy guard measures this model.
    pub fn gpu_simulated(per_channel_convs: HashSet<String>) -> Self {
        QdqOptions {
            weights: WeightScales::DenseConvsPerTensor,
            residual: true,
            keep_float: HashSet::new(),
            per_channel_convs,
        }
    }
}

/// What [`insert_qdq`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QdqReport {
    /// Weights replaced by DequantizeLinear (one per node).
    pub weights: usize,
    /// Activation tensors given a Q/DQ pair.
    pub activations: usize,
    /// Fused Conv residual inputs read through a pair (with [`QdqOptions::residual`]).
    pub residuals: usize,
    /// Nodes that read at least one DequantizeLinear (a weight or an input).
    pub layers: usize,
    /// Activation tensors read by a quantizable node that the table has no scale for.
    pub unscaled: Vec<String>,
}

fn qdq_op(op_type: &str, axis: Option<i64>) -> Op {
    Op::Other(OtherOp {
        op_type: op_type.into(),
        domain: String::new(),
        attributes: axis
            .map(|a| AttributeProto {
                name: "axis".into(),
                r#type: 2,
                i: a,
                ..Default::default()
            })
            .into_iter()
            .collect(),
    })
}

fn is_qdq_node(op: &Op) -> bool {
    matches!(op, Op::Other(o) if matches!(o.op_type.as_str(), "QuantizeLinear" | "DequantizeLinear"))
}

/// The data inputs of a quantizable node, or `None` for another node.
pub(crate) fn data_slots(op: &Op) -> Option<&'static [usize]> {
    match op {
        Op::Conv(_) | Op::FusedConv(_) => Some(&[0]),
        Op::Other(o) if o.op_type == "ConvTranspose" && o.domain.is_empty() => Some(&[0]),
        Op::Gemm { .. } | Op::MatMul => Some(&[0, 1]),
        _ => None,
    }
}

/// The inputs of node `op` read through a shared activation pair: its data inputs, and a
/// fused Conv's residual when `residual`.
fn activation_slots(op: &Op, residual: bool) -> Option<Vec<usize>> {
    let mut v = data_slots(op)?.to_vec();
    if let Op::FusedConv(f) = op {
        if residual && f.residual {
            v.push(3);
        }
    }
    Some(v)
}

/// `graph` with Q/DQ inserted by the module rule (per-channel weights, no residuals), and
/// what was done.
pub fn insert_qdq(graph: &Graph, table: &CalibrationTable) -> Result<(Graph, QdqReport)> {
    insert_qdq_with(graph, table, &QdqOptions::default())
}

/// [`insert_qdq`], the nodes named in `keep_float` left in f32 (their weights and their
/// inputs both): the accuracy guard's demoted layers.
pub fn insert_qdq_except(
    graph: &Graph,
    table: &CalibrationTable,
    keep_float: &HashSet<String>,
) -> Result<(Graph, QdqReport)> {
    let opts = QdqOptions {
        keep_float: keep_float.clone(),
        ..QdqOptions::default()
    };
    insert_qdq_with(graph, table, &opts)
}

/// `graph` with Q/DQ inserted by the module rule as `opts` say, and what was done.
pub fn insert_qdq_with(
    graph: &Graph,
    table: &CalibrationTable,
    opts: &QdqOptions,
) -> Result<(Graph, QdqReport)> {
    let opset = graph.meta.opset();
    if opset < MIN_QDQ_OPSET {
        return Err(QuantError::Weights(format!(
            "the model's opset is {opset}: per-channel DequantizeLinear needs opset \
             {MIN_QDQ_OPSET} or later (convert the model to a newer opset first)"
        )));
    }
    let order = graph.topo_order()?;
    if let Some(&id) = order.iter().find(|&&id| is_qdq_node(&graph.node(id).op)) {
        let n = graph.node(id);
        return Err(QuantError::Qdq {
            node: n.name.clone(),
            op: n.op.op_type().into(),
            detail: "the model is already explicitly quantized (it has Q/DQ nodes)".into(),
        });
    }
    let mut g = graph.clone();
    let mut report = QdqReport::default();
    // Activation outlet -> its DequantizeLinear output.
    let mut pairs: HashMap<Outlet, Outlet> = HashMap::new();
    let mut old_weights: Vec<Outlet> = vec![];
    for id in order {
        let Some(slots) = activation_slots(&g.node(id).op, opts.residual) else {
            continue;
        };
        if opts.keep_float.contains(&g.node(id).name) {
            continue;
        }
        let mut quantized = quantize_weight(&mut g, id, opts, &mut report, &mut old_weights)?;
        for slot in slots {
            let Some(x) = g.input_outlet(id, slot) else {
                continue;
            };
            if g.const_value(x).is_some() || is_qdq_node(&g.node(x.node).op) {
                continue;
            }
            let info = g.tensor(x).clone();
            if !matches!(info.dtype, None | Some(DType::F32)) {
                continue;
            }
            let dq = match pairs.get(&x) {
                Some(&dq) => dq,
                None => {
                    let Some(&scale) = table.scales.get(&info.name) else {
                        if !report.unscaled.contains(&info.name) {
                            report.unscaled.push(info.name.clone());
                        }
                        continue;
                    };
                    let dq = activation_pair(&mut g, x, &info, scale)?;
                    report.activations += 1;
                    pairs.insert(x, dq);
                    dq
                }
            };
            g.connect(dq, id, slot)?;
            quantized = true;
            if slot == 3 {
                report.residuals += 1;
            }
        }
        report.layers += usize::from(quantized);
    }
    // Float weights no node reads any more (removed last: ids are reused after removal).
    for w in old_weights {
        if g.contains(w.node)
            && matches!(g.node(w.node).op, Op::Const(_))
            && !g.is_used(w)
            && !g.is_graph_output(w)
        {
            g.remove_node(w.node)?;
        }
    }
    g.validate()?;
    Ok((g, report))
}

/// Replace node `id`'s constant f32 weight (input 1) by a DequantizeLinear, per channel or
/// per tensor as `opts` say. Whether it did.
fn quantize_weight(
    g: &mut Graph,
    id: NodeId,
    opts: &QdqOptions,
    report: &mut QdqReport,
    old_weights: &mut Vec<Outlet>,
) -> Result<bool> {
    let Some(w) = g.input_outlet(id, 1) else {
        return Ok(false);
    };
    let Some(value) = g.const_value(w).cloned() else {
        return Ok(false);
    };
    if value.datum_type() != trtc_ir::tract_onnx::prelude::DatumType::F32 {
        return Ok(false);
    }
    let Some(axis) = channel_axis(&g.node(id).op, value.rank()) else {
        return Ok(false);
    };
    let node_name = g.node(id).name.clone();
    let bad = |e: QuantError| QuantError::Qdq {
        node: node_name.clone(),
        op: g.node(id).op.op_type().into(),
        detail: format!("its weight: {e}"),
    };
    let dense_conv = match &g.node(id).op {
        Op::Conv(c) => c.group == 1,
        Op::FusedConv(f) => f.conv.group == 1,
        _ => false,
    };
    let per_tensor = match opts.weights {
        WeightScales::Float => return Ok(false),
        WeightScales::PerChannel => false,
        WeightScales::PerTensor => true,
        WeightScales::DenseConvsPerTensor => {
            dense_conv && !opts.per_channel_convs.contains(&node_name)
        }
    };
    let (values, scales, zeros, axis) = match per_tensor {
        false => {
            let q = quantize_tensor(&value, axis).map_err(bad)?;
            let channels = q.scales.len();
            (
                tensor(&q.shape, q.values)?,
                tensor(&[channels], q.scales)?,
                tensor(&[channels], vec![0i8; channels])?,
                Some(axis as i64),
            )
        }
        true => {
            let q = quantize_tensor_per_tensor(&value).map_err(bad)?;
            (
                tensor(&q.shape, q.values)?,
                Tensor::from(q.scale),
                Tensor::from(0i8),
                None,
            )
        }
    };
    let base = g.tensor(w).name.clone();
    let v = g.add_const(format!("{base}_int8"), Arc::new(values));
    let s = g.add_const(format!("{base}_scale"), Arc::new(scales));
    let z = g.add_const(format!("{base}_zero_point"), Arc::new(zeros));
    let out = TensorInfo {
        name: g.unique_name(&format!("{base}_dequantized")),
        ..g.tensor(w).clone()
    };
    let dq_name = g.unique_name(&format!("{node_name}_weight_DequantizeLinear"));
    let dq_op = qdq_op("DequantizeLinear", axis);
    let dq = add_qdq_node(g, dq_name, dq_op, [v, s, z], out)?;
    g.connect(Outlet::new(dq, 0), id, 1)?;
    old_weights.push(w);
    report.weights += 1;
    Ok(true)
}

/// `x -> QuantizeLinear(scale, 0) -> DequantizeLinear(scale, 0)`; the DQ's output.
fn activation_pair(g: &mut Graph, x: Outlet, info: &TensorInfo, scale: f32) -> Result<Outlet> {
    let base = info.name.clone();
    let s = g.add_const(format!("{base}_scale"), Arc::new(Tensor::from(scale)));
    let z = g.add_const(format!("{base}_zero_point"), Arc::new(Tensor::from(0i8)));
    let q_info = TensorInfo {
        name: g.unique_name(&format!("{base}_quantized")),
        dtype: Some(DType::I8),
        shape: info.shape.clone(),
    };
    let q_name = g.unique_name(&format!("{base}_QuantizeLinear"));
    let q = add_qdq_node(g, q_name, qdq_op("QuantizeLinear", None), [x, s, z], q_info)?;
    let dq_info = TensorInfo {
        name: g.unique_name(&format!("{base}_dequantized")),
        dtype: Some(DType::F32),
        shape: info.shape.clone(),
    };
    let dq_name = g.unique_name(&format!("{base}_DequantizeLinear"));
    let dq_op = qdq_op("DequantizeLinear", None);
    let dq = add_qdq_node(g, dq_name, dq_op, [Outlet::new(q, 0), s, z], dq_info)?;
    Ok(Outlet::new(dq, 0))
}

/// A QuantizeLinear or DequantizeLinear node `name` reading `(x, scale, zero_point)` and
/// giving `out`.
fn add_qdq_node(
    g: &mut Graph,
    name: String,
    op: Op,
    inputs: [Outlet; 3],
    out: TensorInfo,
) -> Result<NodeId> {
    let n = g.add_node(Node::new(name, op, 3, vec![out]));
    for (slot, x) in inputs.into_iter().enumerate() {
        g.connect(x, n, slot)?;
    }
    Ok(n)
}

fn tensor<T: trtc_ir::tract_onnx::prelude::Datum + Copy>(
    shape: &[usize],
    v: Vec<T>,
) -> Result<Tensor> {
    Tensor::from_shape(shape, &v).map_err(|e| QuantError::Weights(format!("{e}")))
}
