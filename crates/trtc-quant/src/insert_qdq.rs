//! Calibrated scales applied to a graph as QuantizeLinear/DequantizeLinear (QDQ) pairs:
//! an explicitly quantized model, the form TensorRT's explicit quantization and ONNX Runtime
//! consume, and INT8 simulated in f32 ("fake quantization") when it runs on tract.
//!
//! The rule, for each Conv, fused Conv, Gemm, MatMul and ConvTranspose node:
//!
//! - **weights**: a constant f32 weight (input 1; input 0 is never a weight) with a
//!   per-channel axis ([`channel_axis`]: 0 for Conv, 1 for ConvTranspose, 0 or 1 for Gemm
//!   by `transB`, the last for MatMul) is replaced, for this node, by
//!   `DequantizeLinear(int8 values, scales[C], zero points int8 0, axis)`, quantized
//!   symmetrically per output channel by [`quantize_per_channel`]. A weight of rank < 2
//!   under MatMul, or one of another type, stays f32.
//! - **activations**: each non-constant f32 input among the node's data inputs (input 0;
//!   for Gemm and MatMul also input 1 when it is not a constant, as in attention) whose
//!   tensor name has a scale `s` in the table is read by this node through
//!   `DequantizeLinear(QuantizeLinear(x, s, int8 0), s, int8 0)`. One pair per tensor,
//!   shared by all the nodes above that read it; other readers of `x` (a residual Add, a
//!   pool) keep reading the f32 tensor. Biases (Gemm's input 2, Conv's input 2) stay f32.
//!
//! When it must not fire: a tensor the table has no scale for is left in f32 (counted in
//! [`QdqReport::unscaled`]) — the node then runs with f32 activations, as TensorRT would
//! run it in higher precision. A graph that already holds QuantizeLinear/DequantizeLinear
//! nodes is refused (it is already explicitly quantized; quantizing again would compound
//! the error). A model whose default-domain opset is below 13 is refused: per-axis
//! DequantizeLinear needs opset 13, and raising the opset of a model would change what
//! its older-opset nodes kept verbatim mean. The result is validated before it is returned.

use crate::cache::CalibrationTable;
use crate::error::{QuantError, Result};
use crate::weights::{channel_axis, quantize_tensor};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use trtc_ir::op::OtherOp;
use trtc_ir::tract_onnx::pb::AttributeProto;
use trtc_ir::{DType, Graph, Node, NodeId, Op, Outlet, Tensor, TensorInfo};

/// The lowest default-domain opset with per-axis DequantizeLinear.
pub const MIN_QDQ_OPSET: i64 = 13;

/// What [`insert_qdq`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QdqReport {
    /// Weights replaced by per-channel DequantizeLinear (one per node).
    pub weights: usize,
    /// Activation tensors given a Q/DQ pair.
    pub activations: usize,
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

/// `graph` with Q/DQ inserted by the module rule, and what was done.
pub fn insert_qdq(graph: &Graph, table: &CalibrationTable) -> Result<(Graph, QdqReport)> {
    insert_qdq_except(graph, table, &HashSet::new())
}

/// [`insert_qdq`], the nodes named in `keep_float` left in f32 (their weights and their
/// inputs both): the accuracy guard's demoted layers.
pub fn insert_qdq_except(
    graph: &Graph,
    table: &CalibrationTable,
    keep_float: &HashSet<String>,
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
        let Some(slots) = data_slots(&g.node(id).op) else {
            continue;
        };
        if keep_float.contains(&g.node(id).name) {
            continue;
        }
        quantize_weight(&mut g, id, &mut report, &mut old_weights)?;
        for &slot in slots {
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
        }
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

/// Replace node `id`'s constant f32 weight (input 1) by a per-channel DequantizeLinear.
fn quantize_weight(
    g: &mut Graph,
    id: NodeId,
    report: &mut QdqReport,
    old_weights: &mut Vec<Outlet>,
) -> Result<()> {
    let Some(w) = g.input_outlet(id, 1) else {
        return Ok(());
    };
    let Some(value) = g.const_value(w).cloned() else {
        return Ok(());
    };
    if value.datum_type() != trtc_ir::tract_onnx::prelude::DatumType::F32 {
        return Ok(());
    }
    let Some(axis) = channel_axis(&g.node(id).op, value.rank()) else {
        return Ok(());
    };
    let node_name = g.node(id).name.clone();
    let q = quantize_tensor(&value, axis).map_err(|e| QuantError::Qdq {
        node: node_name.clone(),
        op: g.node(id).op.op_type().into(),
        detail: format!("its weight: {e}"),
    })?;
    let base = g.tensor(w).name.clone();
    let values = tensor(&q.shape, q.values)?;
    let channels = q.scales.len();
    let scales = tensor(&[channels], q.scales)?;
    let zeros = tensor(&[channels], vec![0i8; channels])?;
    let v = g.add_const(format!("{base}_int8"), Arc::new(values));
    let s = g.add_const(format!("{base}_scale"), Arc::new(scales));
    let z = g.add_const(format!("{base}_zero_point"), Arc::new(zeros));
    let out = TensorInfo {
        name: g.unique_name(&format!("{base}_dequantized")),
        ..g.tensor(w).clone()
    };
    let dq_name = g.unique_name(&format!("{node_name}_weight_DequantizeLinear"));
    let dq_op = qdq_op("DequantizeLinear", Some(axis as i64));
    let dq = add_qdq_node(g, dq_name, dq_op, [v, s, z], out)?;
    g.connect(Outlet::new(dq, 0), id, 1)?;
    old_weights.push(w);
    report.weights += 1;
    Ok(())
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
