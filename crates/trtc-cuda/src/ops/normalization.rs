//! `BatchNormalization` on its own (not after a conv or a Gemm, where the optimizer folds
//! it into the weights), inference form, constant parameters: `x * k + s` per channel,
//! with `k = scale / sqrt(var + eps)` and `s = bias - mean * k` folded at lowering. Two
//! broadcasting steps, which the chains pass fuses into one kernel.

use super::rules::{attr, input_rank};
use super::{OpDoc, OpFamily};
use crate::error::{cuda_err, Result};
use crate::program::lowering::Lowering;
use crate::program::Step;
use trtc_engine::FallbackReason;
use trtc_ir::tensor::tensor_to_f32s;
use trtc_ir::{Graph, NodeId, Op};
use trtc_optimizer::util::batch_norm_affine;

pub static FAMILY: OpFamily = OpFamily {
    name: "normalization",
    ops: &[OpDoc {
        op: "BatchNormalization",
        conditions: "inference form (one output); scale, bias, mean and variance constant; input of 2 to 4 dims",
    }],
    handles: |op| matches!(op, Op::BatchNormalization { .. }),
    check,
    lower,
};

/// The per-channel factor and shift, from constant parameters of `channels` values.
fn folded(g: &Graph, id: NodeId, eps: f32) -> Option<(Vec<f32>, Vec<f32>)> {
    let p: Vec<Vec<f32>> = (1..5)
        .map(|s| g.input_const(id, s).and_then(|t| tensor_to_f32s(t)))
        .collect::<Option<_>>()?;
    if p.iter().any(|v| v.len() != p[0].len()) {
        return None;
    }
    Some(batch_norm_affine(&p[0], &p[1], &p[2], &p[3], eps))
}

fn check(g: &Graph, id: NodeId) -> std::result::Result<(), FallbackReason> {
    let node = g.node(id);
    let Op::BatchNormalization { epsilon, .. } = &node.op else {
        return Err(FallbackReason::UnsupportedOp);
    };
    if node.outputs.len() != 1 {
        return Err(attr("training form (running statistics as outputs)"));
    }
    let rank = input_rank(g, id, 0).unwrap_or(0);
    if !(2..=4).contains(&rank) {
        return Err(attr("input not of 2 to 4 dims"));
    }
    let channels = g
        .input_info(id, 0)
        .and_then(|t| t.shape.as_ref())
        .and_then(|s| s[1].known());
    match folded(g, id, *epsilon) {
        Some((k, _)) if Some(k.len() as u64) == channels => Ok(()),
        _ => Err(attr(
            "parameters are not constants of one value per channel",
        )),
    }
}

fn lower(cx: &mut Lowering, id: NodeId) -> Result<()> {
    let g = cx.g;
    let node = g.node(id);
    let name = node.name.as_str();
    let Op::BatchNormalization { epsilon, .. } = &node.op else {
        return Err(cuda_err(name, "not a BatchNormalization"));
    };
    let (k, s) = folded(g, id, *epsilon).ok_or_else(|| cuda_err(name, "parameters"))?;
    let rank = g.input_info(id, 0).and_then(|t| t.rank()).unwrap_or(4);
    // [C, 1, ...]: broadcast over the dims after the channel.
    let mut shape = vec![k.len()];
    shape.resize(rank - 1, 1);
    let y = cx.output(id, 0);
    let x = cx.operand(id, 0)?;
    let (kc, sc) = (cx.constant(&shape, &k), cx.constant(&shape, &s));
    let t = cx.temp_like_output(id);
    cx.step(
        name,
        Step::Binary {
            a: x,
            b: kc,
            y: t,
            op: 1,
        },
    );
    cx.step(
        name,
        Step::Binary {
            a: t,
            b: sc,
            y,
            op: 0,
        },
    );
    Ok(())
}
