//! Quantization: ONNX's QuantizeLinear and DequantizeLinear, as explicitly quantized (QDQ)
//! models and `trtc compile --precision int8` carry them.
//!
//! - QuantizeLinear of an activation: a `Step::Quantize` into an int8 slot.
//! - DequantizeLinear of an activation: a `Step::Dequantize` back to the engine's type.
//! - DequantizeLinear of a constant (a quantized weight): no step. Its readers see the
//!   dequantized values (`program::quant`); a conv whose weights are quantized per tensor
//!   also keeps the int8 values, and `passes/int8_convs.rs` turns a conv between a
//!   Dequantize and a Quantize into one INT8 convolution.
//!
//! In the FP16 alternative of an INT8 engine (`Lowering::drop_qdq`), Q and DQ of
//! activations pass their input through instead.
//!
//! What runs: symmetric quantization only (no zero point, or an int8 zero point of 0);
//! scales constant, positive and finite; one scale for an activation, one or one per
//! channel for a constant. Anything else falls back to the CPU with the reason.

use super::{check_infos, OpDoc, OpFamily};
use crate::error::{cuda_err, Result};
use crate::program::lowering::Lowering;
use crate::program::quant::{qdq_kind, quantized_const, tensor_scale};
use crate::program::Step;
use trtc_engine::FallbackReason;
use trtc_ir::{DType, Graph, NodeId, Outlet};

pub static FAMILY: OpFamily = OpFamily {
    name: "quantize",
    ops: &[
        OpDoc {
            op: "QuantizeLinear",
            conditions: "of an f32 activation into int8; one positive scale; zero point absent or 0",
        },
        OpDoc {
            op: "DequantizeLinear",
            conditions: "of an int8 activation (one positive scale), or of an int8 constant (one scale, or one per channel); zero point absent or 0",
        },
    ],
    handles: |op| qdq_kind(op).is_some(),
    check,
    lower,
};

fn reason(what: String) -> FallbackReason {
    FallbackReason::UnsupportedAttribute(what)
}

/// The family's whole check: its tensors are int8 on one side, so the shared f32/f16
/// check does not apply (the table calls this instead).
pub(super) fn check(g: &Graph, id: NodeId) -> std::result::Result<(), FallbackReason> {
    let quantize = qdq_kind(&g.node(id).op).ok_or(FallbackReason::UnsupportedOp)?;
    let x = g
        .input_outlet(id, 0)
        .ok_or_else(|| reason("input missing".into()))?;
    if g.const_value(x).is_some() {
        return if quantize {
            Err(reason("quantizes a constant".into()))
        } else if quantized_const(g, Outlet::new(id, 0)).is_none() {
            Err(reason(
                "a constant that is not int8 with valid scales".into(),
            ))
        } else {
            Ok(())
        };
    }
    tensor_scale(g, id).map_err(reason)?;
    if !quantize && qdq_kind(&g.node(x.node).op) != Some(true) {
        return Err(reason(
            "dequantizes a tensor no QuantizeLinear produced".into(),
        ));
    }
    let (want_in, want_out) = if quantize {
        (DType::F32, DType::I8)
    } else {
        (DType::I8, DType::F32)
    };
    let (tin, tout) = (g.tensor(x), &g.node(id).outputs[0]);
    if tin.dtype != Some(want_in) || tout.dtype != Some(want_out) {
        return Err(FallbackReason::UnsupportedDtype(format!(
            "`{}` -> `{}` is {:?} -> {:?} (runs {want_in} -> {want_out})",
            tin.name, tout.name, tin.dtype, tout.dtype
        )));
    }
    // Shapes as every op needs them (the int8 side checked as if it were f32).
    let mut as_float = [tin.clone(), tout.clone()];
    for t in &mut as_float {
        t.dtype = Some(DType::F32);
    }
    check_infos(&[&as_float[0], &as_float[1]])
}

fn lower(cx: &mut Lowering, id: NodeId) -> Result<()> {
    let g = cx.g;
    let name = g.node(id).name.clone();
    let quantize = qdq_kind(&g.node(id).op).ok_or_else(|| cuda_err(&name, "not a Q/DQ"))?;
    if g.const_value(Outlet::new(id, 0)).is_some()
        || g.input_outlet(id, 0)
            .is_some_and(|x| g.const_value(x).is_some())
    {
        // A quantized weight: its readers take the values (`Lowering::operand`).
        return Ok(());
    }
    let scale = tensor_scale(g, id).map_err(|e| cuda_err(&name, e))?;
    let x = cx.operand(id, 0)?;
    if cx.drop_qdq {
        cx.bind(Outlet::new(id, 0), x);
        return Ok(());
    }
    let step = if quantize {
        let y = cx.output_int8(id, 0);
        Step::Quantize { x, y, scale }
    } else {
        let y = cx.output(id, 0);
        Step::Dequantize { x, y, scale }
    };
    cx.step(&name, step);
    Ok(())
}
