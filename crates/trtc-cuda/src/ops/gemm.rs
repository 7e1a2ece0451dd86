//! Products: `Gemm` (A not transposed, constant B and C) and `MatMul` of a tensor of any
//! rank from 2 by a constant 2-D matrix (a 4-D one, ConvNeXt's channels-last Linear, goes
//! through plain row-major storage in NHWC engines). One `Step::Gemm` with B stored
//! `[k][n]`; the tactics choose between cuBLASLt (algorithms timed, bias in its epilogue)
//! and trtc's kernel. A `MatMul` whose B is computed (or not a 2-D f32 constant) is a
//! batched product of two tensors: `batched_matmul.rs`.

use super::rules::{attr, input_rank};
use super::{OpDoc, OpFamily};
use crate::error::{cuda_err, Result};
use crate::program::lowering::Lowering;
use crate::program::quant::weight_const;
use crate::program::Step;
use trtc_engine::FallbackReason;
use trtc_ir::tensor::tensor_to_f32s;
use trtc_ir::tract_onnx::prelude::DatumType;
use trtc_ir::{Graph, NodeId, Op};

pub static FAMILY: OpFamily = OpFamily {
    name: "gemm",
    ops: &[
        OpDoc {
            op: "Gemm",
            conditions: "A 2-D, not transposed; B a constant f32 matrix (transB either way); C absent or a constant of one value per column or one in all",
        },
        OpDoc {
            op: "MatMul",
            conditions: "A of rank 2 or more; B a constant f32 matrix, or B computed (batched): dims before the last two the same on both sides or all 1 on one, at most 65535 matrices",
        },
    ],
    handles: |op| matches!(op, Op::Gemm { .. } | Op::MatMul),
    check,
    lower,
};

/// B as a constant f32 matrix: its rows and columns.
fn const_matrix(g: &Graph, id: NodeId) -> Option<(usize, usize)> {
    let b = weight_const(g, id, 1)?;
    (b.datum_type() == DatumType::F32 && b.rank() == 2).then(|| (b.shape()[0], b.shape()[1]))
}

/// A MatMul that is not by a constant 2-D f32 matrix: a batched product of two tensors.
fn batched(g: &Graph, id: NodeId) -> bool {
    matches!(g.node(id).op, Op::MatMul) && const_matrix(g, id).is_none()
}

fn check(g: &Graph, id: NodeId) -> std::result::Result<(), FallbackReason> {
    if batched(g, id) {
        return super::batched_matmul::check(g, id);
    }
    let (r, c) = const_matrix(g, id).ok_or_else(|| attr("B is not a constant f32 matrix"))?;
    match &g.node(id).op {
        Op::Gemm {
            trans_a, trans_b, ..
        } => {
            if *trans_a != 0 {
                return Err(attr("transA"));
            }
            if input_rank(g, id, 0) != Some(2) {
                return Err(attr("A is not 2-D"));
            }
            let n = if *trans_b != 0 { r } else { c };
            if g.input_outlet(id, 2).is_some() {
                let ct = g
                    .input_const(id, 2)
                    .ok_or_else(|| attr("C is computed at run time"))?;
                let per_column = ct.len() == n && (ct.rank() < 2 || ct.shape()[0] == 1);
                if !(ct.len() == 1 || per_column) || tensor_to_f32s(ct).is_none() {
                    return Err(attr("C is not a float constant of one value per column"));
                }
            }
            Ok(())
        }
        Op::MatMul => match input_rank(g, id, 0) {
            Some(r) if r >= 2 => Ok(()),
            _ => Err(attr("A is not of rank 2 or more")),
        },
        _ => Err(FallbackReason::UnsupportedOp),
    }
}

fn lower(cx: &mut Lowering, id: NodeId) -> Result<()> {
    let g = cx.g;
    if batched(g, id) {
        return super::batched_matmul::lower(cx, id);
    }
    let node = g.node(id);
    let name = node.name.as_str();
    let y = cx.output(id, 0);
    let (alpha, beta, trans_b) = match &node.op {
        Op::Gemm {
            alpha,
            beta,
            trans_b,
            ..
        } => (*alpha, *beta, *trans_b != 0),
        _ => (1.0, 0.0, false),
    };
    let bt = weight_const(g, id, 1).ok_or_else(|| cuda_err(name, "B is not constant"))?;
    let bv = tensor_to_f32s(&bt).ok_or_else(|| cuda_err(name, "B is not f32"))?;
    let (r, c) = (bt.shape()[0], bt.shape()[1]);
    let (k, n) = if trans_b { (c, r) } else { (r, c) };
    let w_kn: Vec<f32> = if trans_b {
        (0..k * n).map(|i| bv[(i % n) * k + i / n]).collect()
    } else {
        bv
    };
    let bias = match (&node.op, g.input_const(id, 2)) {
        (Op::Gemm { .. }, Some(ct)) => {
            let v = tensor_to_f32s(ct).ok_or_else(|| cuda_err(name, "C is not f32"))?;
            let v = if v.len() == 1 { vec![v[0]; n] } else { v };
            // beta is folded into the bias (cuBLASLt adds it unscaled).
            let v: Vec<f32> = v.iter().map(|c| c * beta).collect();
            Some(cx.weight(&v, None))
        }
        _ => None,
    };
    // Rows of A are contiguous only in plain storage: a 4-D tensor an NHWC engine keeps
    // channels-last (channels being dim 1) goes through plain copies.
    let mut a = cx.operand(id, 0)?;
    if cx.p.slots[a].nhwc {
        let plain =
            cx.p.push_slot(cx.p.slots[a].shape.clone(), None, false, cx.p.half);
        cx.step(
            &format!("{name} (A to row-major)"),
            Step::Relayout { x: a, y: plain },
        );
        a = plain;
    }
    let y_final = y;
    let y = if cx.p.slots[y].nhwc {
        cx.p.push_slot(cx.p.slots[y].shape.clone(), None, false, cx.p.half)
    } else {
        y
    };
    let step = Step::Gemm {
        a,
        y,
        w_kn: cx.weight(&w_kn, None),
        bias,
        n,
        k,
        alpha,
        beta: 1.0,
    };
    cx.step(name, step);
    if y != y_final {
        cx.step(
            &format!("{name} (to NHWC)"),
            Step::Relayout { x: y, y: y_final },
        );
    }
    Ok(())
}
