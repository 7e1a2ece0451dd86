//! `MatMul` of two computed tensors (attention's `Q @ K^T` and `P @ V`), part of the gemm
//! family: `A [..., m, k] @ B [..., k, n]` where the dims before the last two are the same
//! on both sides (the batch too), or all 1 on one side (that side is broadcast). One
//! `Step::BatchedMatMul`: trtc's tiled `batched_matmul` kernel, one block row per matrix,
//! f32 accumulation in either storage type.
//!
//! Refused: other broadcasts (a dim of 1 against a larger one on the other side, batch dims
//! of different ranks unless one side's are all 1), operands of rank below 2, and more
//! than 65535 matrices (the kernel's grid).

use super::rules::attr;
use crate::error::{cuda_err, Result};
use crate::program::lowering::Lowering;
use crate::program::Step;
use trtc_engine::FallbackReason;
use trtc_ir::{Dim, Graph, NodeId};

use crate::program::MAX_BATCHED_MATRICES as MAX_MATRICES;

/// `m`, `k`, `n`, and which side is broadcast (a: `true` when A's batch dims are all 1,
/// b likewise).
pub(super) struct Dims {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub a_bcast: bool,
    pub b_bcast: bool,
}

fn known(d: &Dim) -> Option<usize> {
    d.known().map(|v| v as usize)
}

pub(super) fn dims(g: &Graph, id: NodeId) -> std::result::Result<Dims, FallbackReason> {
    let shape = |slot| {
        g.input_info(id, slot)
            .and_then(|t| t.shape.clone())
            .ok_or_else(|| attr("an operand's shape is unknown"))
    };
    let (a, b) = (shape(0)?, shape(1)?);
    if a.len() < 2 || b.len() < 2 {
        return Err(attr("an operand of rank below 2"));
    }
    let (ra, rb) = (a.len(), b.len());
    let (m, k) = (known(&a[ra - 2]), known(&a[ra - 1]));
    let (k2, n) = (known(&b[rb - 2]), known(&b[rb - 1]));
    let (Some(m), Some(k), Some(k2), Some(n)) = (m, k, k2, n) else {
        return Err(attr("a matrix dim is unknown"));
    };
    if k != k2 {
        return Err(attr(format!("inner dims {k} and {k2} differ")));
    }
    let ones = |s: &[Dim]| s.iter().all(|d| d.known() == Some(1));
    let (ba, bb) = (&a[..ra - 2], &b[..rb - 2]);
    let (a_bcast, b_bcast) = if ba == bb {
        (false, false)
    } else if ones(bb) {
        (false, true)
    } else if ones(ba) {
        (true, false)
    } else {
        return Err(attr("batch dims that broadcast partly"));
    };
    // Matrices per batch element (a symbolic batch multiplies them at run time).
    let side = if a_bcast { bb } else { ba };
    let fixed: usize = side.iter().filter_map(known).product();
    if fixed > MAX_MATRICES {
        return Err(attr(format!("{fixed} matrices (at most {MAX_MATRICES})")));
    }
    Ok(Dims {
        m,
        k,
        n,
        a_bcast,
        b_bcast,
    })
}

pub(super) fn check(g: &Graph, id: NodeId) -> std::result::Result<(), FallbackReason> {
    dims(g, id).map(|_| ())
}

pub(super) fn lower(cx: &mut Lowering, id: NodeId) -> Result<()> {
    let g = cx.g;
    let name = g.node(id).name.as_str();
    let d = dims(g, id).map_err(|r| cuda_err(name, r))?;
    // Rows are contiguous only in plain storage: NHWC-kept 4-D tensors go through copies.
    let plain = |cx: &mut Lowering, s: usize, what: &str| {
        if !cx.p.slots[s].nhwc {
            return s;
        }
        let t =
            cx.p.push_slot(cx.p.slots[s].shape.clone(), None, false, cx.p.half);
        cx.step(
            &format!("{name} ({what} to row-major)"),
            Step::Relayout { x: s, y: t },
        );
        t
    };
    let a = cx.operand(id, 0)?;
    let a = plain(cx, a, "A");
    let b = cx.operand(id, 1)?;
    let b = plain(cx, b, "B");
    let y_final = cx.output(id, 0);
    let y = if cx.p.slots[y_final].nhwc {
        cx.p.push_slot(cx.p.slots[y_final].shape.clone(), None, false, cx.p.half)
    } else {
        y_final
    };
    cx.step(
        name,
        Step::BatchedMatMul {
            a,
            b,
            y,
            m: d.m,
            k: d.k,
            n: d.n,
            a_bcast: d.a_bcast,
            b_bcast: d.b_bcast,
        },
    );
    if y != y_final {
        cx.step(
            &format!("{name} (to NHWC)"),
            Step::Relayout { x: y, y: y_final },
        );
    }
    Ok(())
}
