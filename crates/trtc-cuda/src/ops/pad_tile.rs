//! Padding, repetition and block moves: `Pad` (opset 11+; pads, constant value and axes
//! constant, none negative; constant, reflect or edge mode; the batch not padded),
//! `Expand`/`Tile` of an activation by a constant shape or repeats that leave the batch
//! alone, and `DepthToSpace` (DCR and CRD) / `SpaceToDepth` of 4-D tensors, each one
//! strided read (`Step::Gather`, the `strided_gather` kernel, NCHW or NHWC).

use super::data_movement::{in_shape, len, out_shape, plain, same};
use super::rules::{attr, const_input, int_attr, str_attr};
use super::{OpDoc, OpFamily};
use crate::error::{cuda_err, Result};
use crate::program::gather::{
    GatherDim, GatherPlan, Pick, MAX_DIMS, PAD_CONSTANT, PAD_EDGE, PAD_REFLECT,
};
use crate::program::lowering::Lowering;
use crate::program::{norm_axis, Step};
use trtc_engine::FallbackReason;
use trtc_ir::op::OtherOp;
use trtc_ir::tensor::{tensor_to_f32s, tensor_to_i64s};
use trtc_ir::{Dim, Graph, NodeId, Op};

pub static FAMILY: OpFamily = OpFamily {
    name: "pad, tile, depth/space",
    ops: &[
        OpDoc {
            op: "Pad",
            conditions: "opset 11+; pads (not negative), value and axes constant; constant, reflect (pads below the dim) or edge mode; the batch not padded; at most 6 dims",
        },
        OpDoc {
            op: "Expand",
            conditions: "shape constant; the batch and the rank stay; at most 6 dims",
        },
        OpDoc {
            op: "Tile",
            conditions: "repeats constant, 1 on the batch; at most 6 dims",
        },
        OpDoc {
            op: "DepthToSpace, SpaceToDepth",
            conditions: "4-D; DCR or CRD mode",
        },
    ],
    handles: |op| match op {
        Op::Pad { .. } => true,
        Op::Other(o) => {
            matches!(
                o.op_type.as_str(),
                "Expand" | "Tile" | "DepthToSpace" | "SpaceToDepth"
            ) && o.domain.is_empty()
        }
        _ => false,
    },
    check,
    lower,
};

fn ints(
    g: &Graph,
    id: NodeId,
    slot: usize,
    what: &str,
) -> std::result::Result<Vec<i64>, FallbackReason> {
    const_input(g, id, slot, what)?;
    g.input_const(id, slot)
        .and_then(|t| tensor_to_i64s(t))
        .ok_or_else(|| attr(format!("{what} missing or not integers")))
}

/// The strided read of the node, or why not.
fn plan(g: &Graph, id: NodeId) -> std::result::Result<GatherPlan, FallbackReason> {
    if g.input_const(id, 0).is_some() {
        return Err(attr("the data is a constant (left to constant folding)"));
    }
    let (Some(xs), Some(ys)) = (in_shape(g, id, 0), out_shape(g, id)) else {
        return Err(attr("shapes unknown"));
    };
    let rank = xs.len();
    if let Op::Other(o) = &g.node(id).op {
        if matches!(o.op_type.as_str(), "DepthToSpace" | "SpaceToDepth") {
            return depth_space(o, xs, ys);
        }
    }
    if ys.len() != rank || rank > MAX_DIMS {
        return Err(attr(format!(
            "rank {rank} to {} (the same, at most {MAX_DIMS})",
            ys.len()
        )));
    }
    if ys[0] != xs[0] {
        return Err(attr("the batch changes"));
    }
    let mut dims: Vec<_> = (0..rank).map(|d| same(ys, d, d)).collect();
    let mut p = match &g.node(id).op {
        Op::Pad { mode } => {
            let code = match mode.as_str() {
                "constant" => PAD_CONSTANT,
                "reflect" => PAD_REFLECT,
                "edge" => PAD_EDGE,
                m => return Err(attr(format!("mode {m}"))),
            };
            let pads = ints(g, id, 1, "pads")?;
            let axes: Vec<usize> = match g.input_outlet(id, 3) {
                Some(_) => ints(g, id, 3, "axes")?
                    .iter()
                    .map(|&a| norm_axis(a, rank).ok_or_else(|| attr(format!("axis {a}"))))
                    .collect::<std::result::Result<_, _>>()?,
                None => (0..rank).collect(),
            };
            if pads.len() != 2 * axes.len() {
                return Err(attr("pads do not match the axes"));
            }
            let value = match g.input_outlet(id, 2) {
                Some(_) => {
                    const_input(g, id, 2, "the constant value")?;
                    g.input_const(id, 2)
                        .and_then(|t| tensor_to_f32s(t))
                        .and_then(|v| v.first().copied())
                        .ok_or_else(|| attr("the constant value is not a float"))?
                }
                None => 0.0,
            };
            for (i, &ax) in axes.iter().enumerate() {
                let (before, after) = (pads[i], pads[i + axes.len()]);
                if before == 0 && after == 0 {
                    continue;
                }
                if ax == 0 {
                    return Err(attr("pads the batch (dim 0)"));
                }
                let n = len(xs, ax).ok_or_else(|| attr("a padded dim is unknown"))?;
                if before < 0 || after < 0 {
                    return Err(attr("negative pads (crops)"));
                }
                if code == PAD_REFLECT && (before.max(after) >= n as i64) {
                    return Err(attr("reflect pads as large as the dim"));
                }
                if len(ys, ax) != Some((n as i64 + before + after).max(0) as usize) {
                    return Err(attr(format!("output dim {ax} is not the padded one")));
                }
                dims[ax].pick = Pick::Pad { before, n };
            }
            let mut p = plain(dims);
            (p.mode, p.value) = (code, value);
            p
        }
        Op::Other(o) if o.op_type == "Expand" => {
            ints(g, id, 1, "the shape")?;
            for (d, dim) in dims.iter_mut().enumerate().skip(1) {
                let (n, m) = (len(xs, d), len(ys, d));
                if n == Some(1) && m != Some(1) {
                    dim.pick = Pick::Affine { start: 0, step: 0 };
                } else if n != m {
                    return Err(attr(format!("dim {d} is neither kept nor broadcast")));
                }
            }
            plain(dims)
        }
        Op::Other(o) if o.op_type == "Tile" => {
            let reps = ints(g, id, 1, "repeats")?;
            if reps.len() != rank || reps[0] != 1 {
                return Err(attr("repeats the batch, or not one repeat per dim"));
            }
            for d in 1..rank {
                let n = len(xs, d).ok_or_else(|| attr("a tiled dim is unknown"))?;
                if len(ys, d) != Some(n * reps[d].max(0) as usize) || reps[d] < 1 {
                    return Err(attr(format!("output dim {d} is not the tiled one")));
                }
                if reps[d] > 1 {
                    dims[d].pick = Pick::Modulo(n);
                }
            }
            plain(dims)
        }
        _ => return Err(FallbackReason::UnsupportedOp),
    };
    p.fixed.clear();
    Ok(p)
}

/// DepthToSpace or SpaceToDepth of `[n, c, h, w]` with block `b`: y's channel and
/// spatial dims split into parts, each read along one of x's dims.
fn depth_space(
    o: &OtherOp,
    xs: &[Dim],
    ys: &[Dim],
) -> std::result::Result<GatherPlan, FallbackReason> {
    let b = int_attr(o, "blocksize").ok_or_else(|| attr("no blocksize"))?;
    let dims: Option<Vec<usize>> = (1..4).map(|d| len(xs, d)).collect();
    let (Some(&[c, h, w]), true) = (dims.as_deref(), xs.len() == 4 && ys.len() == 4) else {
        return Err(attr("not 4-D with known C, H, W"));
    };
    let bu = b.max(1) as usize;
    let divides = if o.op_type == "DepthToSpace" {
        c % (bu * bu) == 0
    } else {
        h % bu == 0 && w % bu == 0
    };
    if b < 1 || !divides || xs[0] != ys[0] {
        return Err(attr(format!("blocksize {b}")));
    }
    let at = |len: usize, x_dim: usize, step: i64| GatherDim {
        len: Some(len),
        x_dim,
        pick: Pick::Affine { start: 0, step },
    };
    let batch = same(ys, 0, 0);
    let (dims, parts, want) = if o.op_type == "DepthToSpace" {
        let co = c / (bu * bu);
        let (sc, si, sj) = match str_attr(o, "mode").as_deref() {
            None | Some("DCR") => (1, b * co as i64, co as i64),
            Some("CRD") => (b * b, b, 1),
            Some(m) => return Err(attr(format!("mode {m}"))),
        };
        let dims = vec![
            batch,
            at(co, 1, sc),
            at(h, 2, 1),
            at(bu, 1, si),
            at(w, 3, 1),
            at(bu, 1, sj),
        ];
        (dims, vec![1, 1, 2, 2], [co, h * bu, w * bu])
    } else {
        let (ho, wo) = (h / bu, w / bu);
        let dims = vec![
            batch,
            at(bu, 2, 1),
            at(bu, 3, 1),
            at(c, 1, 1),
            at(ho, 2, b),
            at(wo, 3, b),
        ];
        (dims, vec![1, 3, 1, 1], [c * bu * bu, ho, wo])
    };
    let have: Vec<Option<usize>> = (1..4).map(|d| len(ys, d)).collect();
    if have != want.map(Some) || want.contains(&0) {
        return Err(attr("the output shape is not the block move's"));
    }
    let mut p = plain(dims);
    p.parts = parts;
    Ok(p)
}

fn check(g: &Graph, id: NodeId) -> std::result::Result<(), FallbackReason> {
    plan(g, id).map(|_| ())
}

fn lower(cx: &mut Lowering, id: NodeId) -> Result<()> {
    let g = cx.g;
    let name = g.node(id).name.as_str();
    let plan = plan(g, id).map_err(|r| cuda_err(name, r))?;
    let x = cx.operand(id, 0)?;
    let y = cx.output(id, 0);
    cx.step(name, Step::Gather { x, y, plan });
    Ok(())
}
