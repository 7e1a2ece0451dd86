//! `LRN` (local response normalization across channels, as ONNX defines it: each value
//! divided by `(bias + alpha / size * square sum)^beta`, the sum over a window of `size`
//! channels around its own), of an input of 3 or more dims, NCHW or NHWC: one thread per
//! value, reading its window along the channels.

use super::reduce::{int_attr, unknown_attr};
use super::rules::{attr, input_rank};
use super::unary::{float_attr, other};
use super::{OpDoc, OpFamily};
use crate::error::{cuda_err, Result};
use crate::program::lowering::Lowering;
use crate::program::Step;
use trtc_engine::FallbackReason;
use trtc_ir::{Graph, NodeId};

pub static FAMILY: OpFamily = OpFamily {
    name: "lrn",
    ops: &[OpDoc {
        op: "LRN",
        conditions: "input of 3 or more dims; size of at least 1",
    }],
    handles: |op| other(op).is_some_and(|o| o.op_type == "LRN"),
    check,
    lower,
};

/// size, alpha, beta, bias.
fn params(g: &Graph, id: NodeId) -> std::result::Result<(i32, f32, f32, f32), FallbackReason> {
    let o = other(&g.node(id).op).ok_or(FallbackReason::UnsupportedOp)?;
    if let Some(n) = unknown_attr(o, &["size", "alpha", "beta", "bias"]) {
        return Err(attr(format!("attribute {n}")));
    }
    let size = int_attr(o, "size", 0);
    if !(1..=i32::MAX as i64).contains(&size) {
        return Err(attr("size missing or below 1"));
    }
    if input_rank(g, id, 0).unwrap_or(0) < 3 {
        return Err(attr("input of fewer than 3 dims"));
    }
    Ok((
        size as i32,
        float_attr(o, "alpha", 1e-4),
        float_attr(o, "beta", 0.75),
        float_attr(o, "bias", 1.0),
    ))
}

fn check(g: &Graph, id: NodeId) -> std::result::Result<(), FallbackReason> {
    params(g, id).map(|_| ())
}

fn lower(cx: &mut Lowering, id: NodeId) -> Result<()> {
    let g = cx.g;
    let name = g.node(id).name.as_str();
    let (size, alpha, beta, bias) = params(g, id).map_err(|e| cuda_err(name, e))?;
    let y = cx.output(id, 0);
    let x = cx.operand(id, 0)?;
    cx.step(
        name,
        Step::Lrn {
            x,
            y,
            size,
            alpha,
            beta,
            bias,
        },
    );
    Ok(())
}
