//! Scales of an explicitly quantized (QDQ) model, as a calibration table.
//!
//! The rule: every `QuantizeLinear` whose input is an activation (not a constant) gives its
//! input tensor the node's scale, and every `DequantizeLinear` whose input is not a
//! constant gives its output tensor the node's scale (which must equal the scale of the
//! `QuantizeLinear` feeding it, if one does). Q/DQ nodes on constants, and a DQ of a
//! quantized constant, quantize weights and are left to weight handling (they may be
//! per-channel). As TensorRT requires,
//! quantization is symmetric: the zero point, if given, must be int8 and all 0; an
//! activation's scale must be one positive finite number (per-tensor) held in a constant.
//! Anything else is an error naming the node. A tensor given two different scales is an
//! error too.

use crate::cache::CalibrationTable;
use crate::error::{QuantError, Result};
use trtc_ir::tract_onnx::prelude::DatumType;
use trtc_ir::{Graph, NodeId, Op, Outlet};

/// The cache header of a table read from a QDQ model.
pub const QDQ_HEADER: &str = "TRTC-1-ExplicitQuantization";

fn is_qdq(op: &Op) -> Option<bool> {
    let Op::Other(o) = op else {
        return None;
    };
    if !matches!(o.domain.as_str(), "" | "ai.onnx" | "com.microsoft") {
        return None;
    }
    match o.op_type.as_str() {
        "QuantizeLinear" => Some(true),
        "DequantizeLinear" => Some(false),
        _ => None,
    }
}

/// The model's own activation scales (see the module rule). The table is empty when the
/// model has no Q/DQ node on an activation.
pub fn scales_from_qdq(g: &Graph) -> Result<CalibrationTable> {
    let mut table = CalibrationTable::new(QDQ_HEADER);
    for id in g.topo_order()? {
        let node = g.node(id);
        let Some(quantize) = is_qdq(&node.op) else {
            continue;
        };
        let err = |detail: String| QuantError::Qdq {
            node: node.name.clone(),
            op: node.op.op_type().to_string(),
            detail,
        };
        let Some(x) = g.input_outlet(id, 0) else {
            return Err(err("input 0 is not connected".into()));
        };
        check_zero_point(g, id).map_err(&err)?;
        if on_weights(g, x) {
            continue;
        }
        let scale = activation_scale(g, id).map_err(&err)?;
        let tensor = if quantize {
            g.tensor(x).name.clone()
        } else {
            let producer = g.node(x.node);
            if is_qdq(&producer.op) == Some(true) {
                let q = activation_scale(g, x.node).map_err(&err)?;
                if q != scale {
                    return Err(err(format!(
                        "dequantizes with scale {scale} what `{}` quantized with scale {q}",
                        producer.name
                    )));
                }
            }
            match node.outputs.first() {
                Some(t) => t.name.clone(),
                None => return Err(err("no output".into())),
            }
        };
        match table.scales.get(&tensor) {
            Some(&s) if s != scale => {
                return Err(err(format!(
                    "tensor `{tensor}` already has scale {s}, this node gives it {scale}"
                )))
            }
            _ => {
                table.scales.insert(tensor, scale);
            }
        }
    }
    Ok(table)
}

/// Check a model's Q/DQ nodes before it is compiled: what [`scales_from_qdq`] checks (a
/// symmetric zero point, one positive finite scale per activation, one scale per tensor),
/// and for Q/DQ nodes on weights a constant scale of positive finite values. The first
/// node that fails is an error naming it.
pub fn check_qdq(g: &Graph) -> Result<()> {
    scales_from_qdq(g)?;
    for id in g.topo_order()? {
        let node = g.node(id);
        if is_qdq(&node.op).is_none() {
            continue;
        }
        let Some(x) = g.input_outlet(id, 0) else {
            continue;
        };
        if !on_weights(g, x) {
            continue;
        }
        let scales = g
            .input_const(id, 1)
            .and_then(|t| trtc_ir::tensor::tensor_to_f32s(t));
        let bad = match &scales {
            None => Some("the scale (input 1) is not a constant float tensor".to_string()),
            Some(v) => v
                .iter()
                .find(|s| !s.is_finite() || **s <= 0.0)
                .map(|s| format!("weight scale {s} is not a positive finite number")),
        };
        if let Some(detail) = bad {
            return Err(QuantError::Qdq {
                node: node.name.clone(),
                op: node.op.op_type().to_string(),
                detail,
            });
        }
    }
    Ok(())
}

/// `x` is a constant, or a constant's quantized form (`QuantizeLinear` of a constant).
fn on_weights(g: &Graph, x: Outlet) -> bool {
    let quantized_const = is_qdq(&g.node(x.node).op) == Some(true)
        && g.input_outlet(x.node, 0)
            .is_some_and(|w| g.const_value(w).is_some());
    g.const_value(x).is_some() || quantized_const
}

/// The per-tensor scale (input 1) of a Q/DQ node on an activation.
fn activation_scale(g: &Graph, id: NodeId) -> std::result::Result<f32, String> {
    let t = g
        .input_const(id, 1)
        .ok_or("the scale (input 1) is not a constant")?;
    let f = t
        .cast_to::<f32>()
        .map_err(|e| format!("scale of type {:?}: {e}", t.datum_type()))?;
    let v = f
        .try_as_plain_ram()
        .and_then(|v| v.as_slice::<f32>())
        .map_err(|e| format!("scale: {e}"))?;
    match v {
        [s] if s.is_finite() && *s > 0.0 => Ok(*s),
        [s] => Err(format!("scale {s} is not a positive finite number")),
        _ => Err(format!(
            "per-channel scale ({} values) on an activation: only per-tensor is supported",
            v.len()
        )),
    }
}

/// The zero point (input 2) of Q/DQ node `id`, if it has one, is an int8 constant of
/// zeros (symmetric quantization), or why not.
pub fn check_zero_point(g: &Graph, id: NodeId) -> std::result::Result<(), String> {
    let Some(zp) = g.input_outlet(id, 2) else {
        return Ok(());
    };
    let t = g
        .const_value(zp)
        .ok_or("the zero point (input 2) is not a constant")?;
    if t.datum_type() != DatumType::I8 {
        return Err(format!(
            "zero point of type {:?}: symmetric INT8 needs an int8 zero point of 0",
            t.datum_type()
        ));
    }
    let z = t
        .try_as_plain_ram()
        .and_then(|v| v.as_slice::<i8>())
        .map_err(|e| format!("zero point: {e}"))?;
    match z.iter().find(|&&v| v != 0) {
        Some(v) => Err(format!(
            "zero point {v}: only symmetric quantization (zero point 0) is supported"
        )),
        None => Ok(()),
    }
}
