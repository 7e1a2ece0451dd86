//! The top layer: the op families the CUDA engine runs, and the one table that holds them.
//!
//! Each family is one file with both faces of its ops, as ONNX Runtime's execution
//! provider op builders have (`IsOpSupported` and `AddToModelBuilder`):
//! - `check`: what the engine accepts, and the fallback reason for what it does not;
//! - `lower`: how an accepted node becomes program steps.
//!
//! [`FAMILIES`] registers them. The partitioner asks [`CudaOpTable`], which asks the
//! family's `check` (after the checks every op shares: f32/f16 tensors, static shapes but
//! the batch); [`lower_segment`] asks the same `check` again and lowers through the same
//! family, so a node the table accepts is one the engine lowers. `docs/ops.md` is
//! generated from the table ([`ops_markdown`]); a test keeps it current.

mod batched_matmul;
mod conv;
mod conv_transpose;
mod data_movement;
mod elementwise;
mod gemm;
mod layer_norm;
mod lrn;
mod normalization;
mod pad_tile;
mod pixels;
mod pool;
mod quantize;
mod reduce;
mod resize;
mod shape;
mod softmax;
mod transpose;
mod unary;
mod variadic;

pub use conv::int8_per_channel_convs;

use crate::error::{cuda_err, Result};
use crate::passes::{
    chains::fuse_elementwise_chains, clip_into_depthwise::clip_into_depthwise,
    int8_convs::int8_convs, pool_epilogue::fuse_pool_epilogues,
};
use crate::program::lowering::Lowering;
use crate::program::Program;
use trtc_engine::{EngineOptions, FallbackReason, OpSupport};
use trtc_ir::shape::known_shape;
use trtc_ir::{DType, Dim, Graph, NodeId, Op, SubgraphIo};

/// One op as the user-facing table describes it.
pub struct OpDoc {
    /// The ONNX op type (or trtc's fused op).
    pub op: &'static str,
    /// What the engine requires of it, beyond what every op needs.
    pub conditions: &'static str,
}

/// A family of ops: what the engine accepts of them and how it lowers them.
pub struct OpFamily {
    pub name: &'static str,
    pub ops: &'static [OpDoc],
    /// Whether `op` belongs to this family.
    pub handles: fn(&Op) -> bool,
    /// `Ok` when the engine runs the node; why not otherwise.
    pub check: fn(&Graph, NodeId) -> std::result::Result<(), FallbackReason>,
    /// Append the node's steps (only called on nodes `check` accepts).
    pub lower: fn(&mut Lowering, NodeId) -> Result<()>,
}

/// Every family, in the order `docs/ops.md` lists them.
pub static FAMILIES: &[&OpFamily] = &[
    &conv::FAMILY,
    &conv_transpose::FAMILY,
    &pool::FAMILY,
    &resize::FAMILY,
    &gemm::FAMILY,
    &normalization::FAMILY,
    &layer_norm::FAMILY,
    &lrn::FAMILY,
    &elementwise::FAMILY,
    &unary::FAMILY,
    &variadic::FAMILY,
    &softmax::FAMILY,
    &reduce::FAMILY,
    &shape::FAMILY,
    &transpose::FAMILY,
    &data_movement::FAMILY,
    &pad_tile::FAMILY,
    &pixels::FAMILY,
    &quantize::FAMILY,
];

/// Precisions every family runs in: fp32 (true FP32), tf32 (tensor cores for convs and
/// products), fp16 (fp16 storage, f32 accumulation), int8 (fp16, but convs between a
/// DequantizeLinear and a QuantizeLinear run in INT8: `passes/int8_convs.rs`).
pub const PRECISIONS: &str = "fp32, tf32, fp16, int8";

/// The family that handles `op`, if any.
pub fn family_of(op: &Op) -> Option<&'static OpFamily> {
    FAMILIES.iter().copied().find(|f| (f.handles)(op))
}

/// The family of node `id`: by its op, but for a Cast of u8 pixels (the pixels family,
/// chosen by the input's type rather than the op).
pub fn family_for(g: &Graph, id: NodeId) -> Option<&'static OpFamily> {
    if pixels::is_pixel_cast(g, id) {
        return Some(&pixels::FAMILY);
    }
    family_of(&g.node(id).op)
}

/// The CUDA engine's support table: the families' checks, and the checks every op shares.
pub struct CudaOpTable;

impl OpSupport for CudaOpTable {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn check(&self, g: &Graph, id: NodeId) -> std::result::Result<(), FallbackReason> {
        if pixels::is_pixel_cast(g, id) {
            // Its input is u8: the family checks its tensors itself.
            return pixels::check(g, id);
        }
        let family = family_of(&g.node(id).op).ok_or(FallbackReason::UnsupportedOp)?;
        if std::ptr::eq(family, &quantize::FAMILY) {
            // One side of each is int8: the family checks its tensors itself.
            return quantize::check(g, id);
        }
        check_tensors(g, id)?;
        (family.check)(g, id)
    }
}

/// Tensors every op needs: f32 or f16, shapes static but the batch (dim 0).
fn check_tensors(g: &Graph, id: NodeId) -> std::result::Result<(), FallbackReason> {
    let node = g.node(id);
    let mut infos: Vec<&trtc_ir::TensorInfo> = node.outputs.iter().collect();
    for o in g.node_inputs(id).into_iter().flatten() {
        if g.const_value(o).is_none() {
            infos.push(g.tensor(o));
        }
    }
    check_infos(&infos)
}

/// `check_tensors` on these tensors.
pub(crate) fn check_infos(
    infos: &[&trtc_ir::TensorInfo],
) -> std::result::Result<(), FallbackReason> {
    for &t in infos {
        match t.dtype {
            Some(DType::F32) | Some(DType::F16) => {}
            Some(other) => {
                return Err(FallbackReason::UnsupportedDtype(format!(
                    "`{}` is {other}",
                    t.name
                )))
            }
            None => {
                return Err(FallbackReason::UnsupportedDtype(format!(
                    "`{}` has no known type",
                    t.name
                )))
            }
        }
        let Some(shape) = &t.shape else {
            return Err(FallbackReason::DynamicShape(format!(
                "`{}` has no known shape",
                t.name
            )));
        };
        if shape.iter().skip(1).any(|d| matches!(d, Dim::Sym(_)))
            || known_shape(&shape[1.min(shape.len())..]).is_none()
        {
            return Err(FallbackReason::DynamicShape(format!(
                "`{}` is {}",
                t.name,
                t.describe()
            )));
        }
    }
    Ok(())
}

/// Lower a segment's nodes into a program, then run the program passes over it. A node
/// the table does not accept is an error naming it (the partitioner never sends one).
pub fn lower_segment(
    g: &Graph,
    nodes: &[NodeId],
    io: &SubgraphIo,
    opts: &EngineOptions,
) -> Result<Program> {
    lower_segment_as(g, nodes, io, opts, false)
}

/// [`lower_segment`], with `drop_qdq`: the activations' QuantizeLinear and
/// DequantizeLinear pass their input through (an INT8 engine's FP16 alternative).
pub fn lower_segment_as(
    g: &Graph,
    nodes: &[NodeId],
    io: &SubgraphIo,
    opts: &EngineOptions,
    drop_qdq: bool,
) -> Result<Program> {
    if let Some(o) = io
        .inputs
        .iter()
        .chain(&io.outputs)
        .find(|&&o| g.tensor(o).dtype == Some(DType::I8))
    {
        return Err(cuda_err(
            &g.tensor(*o).name,
            "an int8 tensor crosses the segment boundary (its QuantizeLinear and DequantizeLinear must run in one engine)",
        ));
    }
    let mut cx = Lowering::new(g, nodes, io, opts);
    cx.drop_qdq = drop_qdq;
    for &id in nodes {
        if cx.taken(id) {
            continue;
        }
        let node = g.node(id);
        let family = family_for(g, id).ok_or_else(|| {
            cuda_err(
                &node.name,
                format!("op {} has no CUDA lowering", node.op.op_type()),
            )
        })?;
        CudaOpTable
            .check(g, id)
            .map_err(|reason| cuda_err(&node.name, reason))?;
        (family.lower)(&mut cx, id)?;
    }
    let mut p = cx.finish(io)?;
    // First: the INT8 convs take over the Quantize / Dequantize steps around them.
    p.precisions = int8_convs(&mut p);
    for l in &p.precisions {
        tracing::debug!("{}: {} ({})", l.layer, l.precision, l.why);
    }
    // Before the chains: the pools take over the separate Add and activation steps.
    fuse_pool_epilogues(&mut p);
    fuse_elementwise_chains(&mut p);
    clip_into_depthwise(&mut p);
    Ok(p)
}

/// `docs/ops.md`: every op the CUDA engine runs, its precisions and its conditions.
pub fn ops_markdown() -> String {
    let mut s = String::from(
        "# Ops on the GPU\n\n\
         Generated from the CUDA engine's op table (`crates/trtc-cuda/src/ops/`) by\n\
         `TRTC_UPDATE_DOCS=1 cargo test -p trtc-cuda --lib ops_md`; a test fails when this\n\
         file and the table differ. A node outside this table, or failing its conditions,\n\
         runs on the CPU through tract, and the compile report names the reason.\n\n\
         Every op needs: f32 or f16 tensors (constants excepted), and shapes known except\n\
         the batch (dim 0).\n\n\
         | family | op | precisions | conditions |\n|---|---|---|---|\n",
    );
    for f in FAMILIES {
        for d in f.ops {
            s.push_str(&format!(
                "| {} | {} | {PRECISIONS} | {} |\n",
                f.name, d.op, d.conditions
            ));
        }
    }
    s
}

/// Shared by the families' checks.
pub(crate) mod rules {
    use trtc_engine::FallbackReason;
    use trtc_ir::op::OtherOp;
    use trtc_ir::{Graph, NodeId};

    pub fn attr(what: impl Into<String>) -> FallbackReason {
        FallbackReason::UnsupportedAttribute(what.into())
    }

    /// Input `slot`, where the node has it, must be a constant.
    pub fn const_input(
        g: &Graph,
        id: NodeId,
        slot: usize,
        what: &str,
    ) -> Result<(), FallbackReason> {
        match g.input_outlet(id, slot) {
            Some(_) if g.input_const(id, slot).is_none() => {
                Err(attr(format!("{what} is computed at run time")))
            }
            _ => Ok(()),
        }
    }

    /// Is dim 0 of input `slot` known? Then it is not a batch the engine varies (a graph
    /// specialized with its batch fixed, or a model of one batch size): ops may move,
    /// slice or gather along it like along any other dim.
    pub fn dim0_known(g: &Graph, id: NodeId, slot: usize) -> bool {
        g.input_info(id, slot)
            .and_then(|t| t.shape.as_ref())
            .and_then(|s| s.first())
            .is_some_and(|d| d.known().is_some())
    }

    /// The rank of input `slot`, where known.
    pub fn input_rank(g: &Graph, id: NodeId, slot: usize) -> Option<usize> {
        g.input_info(id, slot).and_then(|t| t.rank())
    }

    /// String attribute `name` of a verbatim ONNX op.
    pub fn str_attr(o: &OtherOp, name: &str) -> Option<String> {
        o.attributes
            .iter()
            .find(|a| a.name == name)
            .map(|a| String::from_utf8_lossy(&a.s).into_owned())
    }

    /// Integer attribute `name` of a verbatim ONNX op.
    pub fn int_attr(o: &OtherOp, name: &str) -> Option<i64> {
        o.attributes.iter().find(|a| a.name == name).map(|a| a.i)
    }

    /// Integer list attribute `name` of a verbatim ONNX op.
    pub fn ints_attr(o: &OtherOp, name: &str) -> Option<Vec<i64>> {
        o.attributes
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.ints.clone())
    }

    /// The rank of output 0, where known.
    pub fn output_rank(g: &Graph, id: NodeId) -> Option<usize> {
        g.node(id).outputs.first().and_then(|t| t.rank())
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_reduce;
