//! What a quantized graph's Q/DQ nodes say, read without a GPU: the scale of a
//! QuantizeLinear or DequantizeLinear, and the values of a DequantizeLinear of a constant
//! (a quantized weight).
//!
//! Only symmetric quantization is read (TensorRT's rule): the zero point, if given, is an
//! int8 constant of zeros; the scale is a constant of positive finite f32 values, one for
//! the tensor or, for a constant, one per slice along `axis` (ONNX's default 1).

use std::sync::Arc;
use trtc_ir::tensor::tensor_to_f32s;
use trtc_ir::tract_onnx::prelude::{DatumType, Tensor};
use trtc_ir::{Graph, NodeId, Op, Outlet};

/// Whether `op` is ONNX's QuantizeLinear (`Some(true)`) or DequantizeLinear (`Some(false)`).
pub fn qdq_kind(op: &Op) -> Option<bool> {
    let Op::Other(o) = op else {
        return None;
    };
    if !o.domain.is_empty() && o.domain != "ai.onnx" {
        return None;
    }
    match o.op_type.as_str() {
        "QuantizeLinear" => Some(true),
        "DequantizeLinear" => Some(false),
        _ => None,
    }
}

/// The scales of Q/DQ node `id`, or why they are not symmetric positive constants.
pub fn scales(g: &Graph, id: NodeId) -> Result<Vec<f32>, String> {
    let s = g
        .input_const(id, 1)
        .filter(|t| t.datum_type() == DatumType::F32)
        .and_then(|t| tensor_to_f32s(t))
        .ok_or("the scale is not a constant f32 tensor")?;
    if s.is_empty() || s.iter().any(|v| !v.is_finite() || *v <= 0.0) {
        return Err("a scale is zero, negative or not finite".into());
    }
    trtc_quant::qdq::check_zero_point(g, id)?;
    Ok(s)
}

/// The one scale of Q/DQ node `id` (per-tensor quantization).
pub fn tensor_scale(g: &Graph, id: NodeId) -> Result<f32, String> {
    match scales(g, id)?.as_slice() {
        [s] => Ok(*s),
        many => Err(format!(
            "{} scales (one per channel): activations take one",
            many.len()
        )),
    }
}

/// A DequantizeLinear of a constant int8 tensor.
pub struct QuantizedConst {
    pub shape: Vec<usize>,
    /// The int8 values, in the tensor's order.
    pub q: Vec<i8>,
    /// One scale for the whole tensor, or one per slice along `axis`.
    pub scales: Vec<f32>,
    /// The axis of per-channel scales (`None`: one scale).
    pub axis: Option<usize>,
    /// `q * scale`, as the model computes it.
    pub values: Vec<f32>,
}

impl QuantizedConst {
    /// The dequantized values as a constant tensor.
    pub fn tensor(&self) -> Option<Arc<Tensor>> {
        Tensor::from_shape(&self.shape, &self.values)
            .ok()
            .map(Arc::new)
    }
}

/// Outlet `o` when it is a DequantizeLinear of a constant int8 tensor with symmetric
/// constant scales (per tensor, or one per slice along its axis).
pub fn quantized_const(g: &Graph, o: Outlet) -> Option<QuantizedConst> {
    if o.slot != 0 || qdq_kind(&g.node(o.node).op) != Some(false) {
        return None;
    }
    let t = g.input_const(o.node, 0)?;
    if t.datum_type() != DatumType::I8 {
        return None;
    }
    let q: Vec<i8> = t
        .to_plain_array_view::<i8>()
        .ok()?
        .iter()
        .copied()
        .collect();
    let shape = t.shape().to_vec();
    let s = scales(g, o.node).ok()?;
    let (values, axis): (Vec<f32>, Option<usize>) = if s.len() == 1 {
        (q.iter().map(|&v| v as f32 * s[0]).collect(), None)
    } else {
        let Op::Other(op) = &g.node(o.node).op else {
            return None;
        };
        let rank = shape.len() as i64;
        let axis = op
            .attributes
            .iter()
            .find(|a| a.name == "axis")
            .map(|a| a.i)
            .unwrap_or(1);
        let axis = if axis < 0 { axis + rank } else { axis };
        if !(0..rank).contains(&axis) || shape[axis as usize] != s.len() {
            return None;
        }
        let inner: usize = shape[axis as usize + 1..].iter().product();
        let values = q
            .iter()
            .enumerate()
            .map(|(i, &v)| v as f32 * s[(i / inner) % s.len()])
            .collect();
        (values, Some(axis as usize))
    };
    Some(QuantizedConst {
        shape,
        q,
        scales: s,
        axis,
        values,
    })
}

/// Input `slot` of node `id` as a constant f32 tensor: a constant, or a dequantized
/// constant (the weights of a quantized layer).
pub fn weight_const(g: &Graph, id: NodeId, slot: usize) -> Option<Arc<Tensor>> {
    if let Some(t) = g.input_const(id, slot) {
        return Some(t.clone());
    }
    quantized_const(g, g.input_outlet(id, slot)?)?.tensor()
}
