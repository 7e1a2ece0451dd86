//! Pooling: `MaxPool` and `AveragePool` (2-D, explicit pads, no dilation; the pads ONNX
//! counts or not), `GlobalAveragePool` and `GlobalMaxPool`. trtc's own kernels (NCHW, and
//! NHWC with threads over channels), which may write a slice of a concat's output.

use super::rules::{attr, input_rank};
use super::{OpDoc, OpFamily};
use crate::error::{cuda_err, Result};
use crate::program::lowering::Lowering;
use crate::program::Step;
use trtc_engine::FallbackReason;
use trtc_ir::{AutoPad, Graph, NodeId, Op};

pub static FAMILY: OpFamily = OpFamily {
    name: "pooling",
    ops: &[
        OpDoc {
            op: "MaxPool",
            conditions: "2-D; explicit pads (no auto_pad); no dilation",
        },
        OpDoc {
            op: "AveragePool",
            conditions: "as MaxPool; count_include_pad either way",
        },
        OpDoc {
            op: "GlobalAveragePool",
            conditions: "",
        },
        OpDoc {
            op: "GlobalMaxPool",
            conditions: "",
        },
    ],
    handles: |op| {
        matches!(
            op,
            Op::MaxPool(_) | Op::AveragePool(_) | Op::GlobalAveragePool | Op::GlobalMaxPool
        )
    },
    check,
    lower,
};

fn check(g: &Graph, id: NodeId) -> std::result::Result<(), FallbackReason> {
    match &g.node(id).op {
        Op::MaxPool(p) | Op::AveragePool(p) => {
            if p.kernel_shape.len() != 2 || input_rank(g, id, 0) != Some(4) {
                return Err(attr("only 2-D pooling"));
            }
            if p.dilations(2).iter().any(|&d| d != 1) {
                return Err(attr("dilated pooling"));
            }
            if p.auto_pad != AutoPad::NotSet {
                return Err(attr("auto_pad (only explicit pads)"));
            }
            Ok(())
        }
        Op::GlobalAveragePool | Op::GlobalMaxPool => match input_rank(g, id, 0) {
            Some(r) if r >= 3 => Ok(()),
            _ => Err(attr("global pooling of a tensor without spatial dims")),
        },
        _ => Err(FallbackReason::UnsupportedOp),
    }
}

fn lower(cx: &mut Lowering, id: NodeId) -> Result<()> {
    let g = cx.g;
    let node = g.node(id);
    let y = cx.output(id, 0);
    let step = match &node.op {
        Op::MaxPool(a) | Op::AveragePool(a) => {
            let (k, s, pd) = (&a.kernel_shape, a.strides(2), a.pads(2));
            Step::Pool {
                x: cx.operand(id, 0)?,
                y,
                max: matches!(node.op, Op::MaxPool(_)),
                kernel: [k[0] as i32, k[1] as i32],
                stride: [s[0] as i32, s[1] as i32],
                pads: [pd[0] as i32, pd[1] as i32, pd[2] as i32, pd[3] as i32],
                count_pad: a.count_include_pad != 0,
                bias: None,
                act: None,
            }
        }
        Op::GlobalAveragePool | Op::GlobalMaxPool => Step::GlobalPool {
            x: cx.operand(id, 0)?,
            y,
            max: matches!(node.op, Op::GlobalMaxPool),
        },
        _ => return Err(cuda_err(&node.name, "not a pooling op")),
    };
    cx.step(&node.name, step);
    Ok(())
}
