//! Pixels: a u8 image input (`--input-format u8-nhwc`) converted inside the engine.
//!
//! Rule: `Cast(x, to=float)` of a u8 segment input `x` of shape `[N,H,W,C]` (C at most
//! [`MAX_CHANNELS`], dims past the batch known) runs on the GPU. Lowered with what follows
//! it into ONE `Step::Pixels` kernel that reads the bytes and writes the engine's tensor
//! (its element type and layout): the Cast; then, where it is the Cast's only reader and
//! in the segment, a `Transpose` with perm `[0,3,1,2]`; then up to [`MAX_OPS`] `Add`, `Sub`,
//! `Mul`, `Div` of a per-channel f32 constant (the running value on the left for Sub and
//! Div; a scalar, or a constant that is 1 along every dim but the channel's), each the
//! previous one's only reader and in the segment. That is the chain
//! `trtc_ir::pixels::u8_nhwc_input` writes, so an image arrives as 1 byte per value and
//! is normalized and laid out by the engine's first kernel.
//!
//! The family is chosen by the Cast's input type, not by op (`ops::family_for`); other
//! Casts are data movement's.

use super::{check_infos, OpDoc, OpFamily};
use crate::error::{cuda_err, Result};
use crate::program::lowering::Lowering;
use crate::program::Step;
use trtc_engine::FallbackReason;
use trtc_ir::tensor::tensor_to_f32s;
use trtc_ir::{DType, Dim, Graph, NodeId, Op, Outlet};

/// Channels a pixel may have.
pub const MAX_CHANNELS: usize = 4;
/// Per-channel ops one `Pixels` step applies (the kernel's arguments hold this many).
pub const MAX_OPS: usize = 4;

pub static FAMILY: OpFamily = OpFamily {
    name: "pixels",
    ops: &[OpDoc {
        op: "Cast (u8 to f32)",
        conditions: "of a u8 segment input [N,H,W,C] (`--input-format u8-nhwc`), C at most 4; one kernel with the Transpose (perm 0,3,1,2) and up to 4 per-channel constant Add/Sub/Mul/Div after it",
    }],
    // Chosen by `family_for` (the input's type), never by op alone.
    handles: |_| false,
    check,
    lower,
};

/// A Cast to f32 of a u8 tensor.
pub fn is_pixel_cast(g: &Graph, id: NodeId) -> bool {
    matches!(g.node(id).op, Op::Cast { to: DType::F32 })
        && g.input_info(id, 0).and_then(|t| t.dtype) == Some(DType::U8)
}

pub(super) fn check(g: &Graph, id: NodeId) -> std::result::Result<(), FallbackReason> {
    let x = g
        .input_info(id, 0)
        .ok_or_else(|| FallbackReason::UnsupportedAttribute("no input".into()))?;
    let shape = x.shape.as_ref().filter(|s| s.len() == 4).ok_or_else(|| {
        FallbackReason::UnsupportedAttribute(format!(
            "u8 input `{}` is {}, not [N,H,W,C]",
            x.name,
            x.describe()
        ))
    })?;
    if shape[1..].iter().any(|d| d.known().is_none()) {
        return Err(FallbackReason::DynamicShape(format!(
            "`{}` is {}",
            x.name,
            x.describe()
        )));
    }
    if shape[3].known().is_none_or(|c| c as usize > MAX_CHANNELS) {
        return Err(FallbackReason::UnsupportedAttribute(format!(
            "u8 input `{}` has more than {MAX_CHANNELS} channels",
            x.name
        )));
    }
    let outs: Vec<&trtc_ir::TensorInfo> = g.node(id).outputs.iter().collect();
    check_infos(&outs)
}

/// What one `Pixels` step computes: the last tensor it writes, whether it transposes, and
/// its ops with their per-channel values.
struct PixelChain {
    last: Outlet,
    nchw: bool,
    ops: Vec<(i32, Vec<f32>)>,
    taken: Vec<NodeId>,
}

/// The one reader of `o`, where it is in the segment and `o` is no graph output.
fn sole_reader(cx: &Lowering, o: Outlet) -> Option<(NodeId, usize)> {
    match cx.g.consumers(o).as_slice() {
        [(id, slot)] if cx.in_segment(*id) && !cx.g.is_graph_output(o) => Some((*id, *slot)),
        _ => None,
    }
}

/// `c` as `channels` values, where it is a scalar or varies only along `axis` (of a rank-4
/// tensor, the constant's dims aligned to the right).
fn per_channel(c: &trtc_ir::Tensor, axis: usize, channels: usize) -> Option<Vec<f32>> {
    let v = tensor_to_f32s(c)?;
    let dims = c.shape();
    if dims.len() > 4 {
        return None;
    }
    let pad = 4 - dims.len();
    let varies = (0..dims.len())
        .filter(|&i| dims[i] != 1)
        .collect::<Vec<_>>();
    match (varies.as_slice(), v.len()) {
        ([], 1) => Some(vec![v[0]; channels]),
        ([d], n) if d + pad == axis && n == channels => Some(v),
        _ => None,
    }
}

/// The nodes after the pixel Cast `id` that its step can compute too.
fn chain(cx: &Lowering, id: NodeId, channels: usize) -> PixelChain {
    let g = cx.g;
    let mut out = PixelChain {
        last: Outlet::new(id, 0),
        nchw: false,
        ops: vec![],
        taken: vec![],
    };
    if let Some((t, 0)) = sole_reader(cx, out.last) {
        if matches!(&g.node(t).op, Op::Transpose { perm: Some(p) } if p == &[0, 3, 1, 2]) {
            out.last = Outlet::new(t, 0);
            out.nchw = true;
            out.taken.push(t);
        }
    }
    let axis = if out.nchw { 1 } else { 3 };
    while out.ops.len() < MAX_OPS {
        let Some((n, slot)) = sole_reader(cx, out.last) else {
            break;
        };
        let code = match (&g.node(n).op, slot) {
            (Op::Add, _) => 0,
            (Op::Mul, _) => 1,
            (Op::Sub, 0) => 2,
            (Op::Div, 0) => 3,
            _ => break,
        };
        let same_shape = g.node(n).outputs[0].shape == g.tensor(out.last).shape;
        let values = g
            .input_const(n, 1 - slot)
            .and_then(|c| per_channel(c, axis, channels));
        let Some(values) = values.filter(|_| same_shape) else {
            break;
        };
        out.ops.push((code, values));
        out.last = Outlet::new(n, 0);
        out.taken.push(n);
    }
    out
}

fn lower(cx: &mut Lowering, id: NodeId) -> Result<()> {
    let g = cx.g;
    let name = g.node(id).name.as_str();
    check(g, id).map_err(|r| cuda_err(name, r))?;
    let channels = g
        .input_info(id, 0)
        .and_then(|t| t.shape.as_ref())
        .and_then(|s| s.get(3))
        .and_then(Dim::known)
        .ok_or_else(|| cuda_err(name, "channels unknown"))? as usize;
    let x = cx.operand(id, 0)?;
    if !cx.p.slots[x].pixels {
        return Err(cuda_err(name, "the u8 input is not a segment input"));
    }
    let c = chain(cx, id, channels);
    let params: Vec<f32> = c.ops.iter().flat_map(|(_, v)| v.iter().copied()).collect();
    let params = (!params.is_empty()).then(|| cx.weight_f32(&params));
    for &n in &c.taken {
        cx.take(n);
    }
    let y = cx.output(c.last.node, c.last.slot);
    cx.step(
        name,
        Step::Pixels {
            x,
            y,
            nchw: c.nchw,
            ops: c.ops.iter().map(|(code, _)| *code).collect(),
            params,
        },
    );
    Ok(())
}

#[cfg(test)]
#[path = "pixels_tests.rs"]
mod tests;
