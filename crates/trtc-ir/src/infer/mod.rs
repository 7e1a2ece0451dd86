//! Shape and type inference for the CNN op set, with symbolic dims.
//!
//! Nodes are visited in topological order. Small constant sub-computations (the
//! `Shape -> Gather -> Concat -> Reshape` arithmetic exporters write) are evaluated by
//! tract, and integer shape vectors carry symbols (`[N, -1]`), so a dynamic batch
//! survives a Reshape. Whatever is still unknown at the end (ops trtc does not model) is
//! taken from tract's own analysis when tract can analyse the model.

mod broadcasting_ops;
mod other_ops;
mod rules;
mod shape_ops;
mod spatial;
mod tensor_ops;

pub use other_ops::resize_inputs;
pub(crate) use rules::broadcast;

use crate::dtype::DType;
use crate::error::{IrError, Result};
use crate::graph::{Graph, NodeId, Outlet};
use crate::op::{FusedConv, Op};
use crate::shape::{Shape, TensorInfo};
use crate::tensor::tensor_to_i64s;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tract_onnx::prelude::Tensor;

/// Largest constant input (elements) evaluated at load time to learn shapes.
const EVAL_LIMIT: usize = 1 << 16;

/// An integer of a shape vector: a value or a symbol.
#[derive(Clone, Debug, PartialEq)]
pub enum SymInt {
    Int(i64),
    Sym(String),
}

/// What inference knows beyond shapes: constant values and symbolic shape vectors.
#[derive(Default)]
pub(crate) struct Known {
    pub values: HashMap<Outlet, Arc<Tensor>>,
    pub sym_ints: HashMap<Outlet, Vec<SymInt>>,
    /// Outputs of computations on constants left unevaluated: still constants to tract.
    pub unevaluated: HashSet<Outlet>,
    /// One of them is of unknown size, or larger than its inputs and `EVAL_LIMIT` (a
    /// ConstantOfShape of a constant shape can ask for any size): tract's analysis, which
    /// evaluates every constant, is not asked then.
    pub unbounded_constant: bool,
}

impl Known {
    fn ints(&self, o: Option<Outlet>) -> Option<Vec<SymInt>> {
        let o = o?;
        if let Some(v) = self.sym_ints.get(&o) {
            return Some(v.clone());
        }
        let t = self.values.get(&o)?;
        if t.rank() > 1 || !t.datum_type().is_integer() {
            return None;
        }
        Some(tensor_to_i64s(t)?.into_iter().map(SymInt::Int).collect())
    }
    fn i64s(&self, o: Option<Outlet>) -> Option<Vec<i64>> {
        let t = self.values.get(&o?)?;
        tensor_to_i64s(t)
    }
}

/// Outcome of inference: how many tensors are still of unknown shape.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct InferReport {
    pub unknown_shapes: Vec<String>,
    pub from_tract: usize,
}

/// The integer shape vectors the graph computes (`Shape -> Gather -> Concat ...`), with
/// symbols where a dimension is dynamic. Graph shapes must already be inferred.
pub fn shape_values(g: &Graph) -> Result<HashMap<Outlet, Vec<SymInt>>> {
    let mut known = Known::default();
    for id in g.topo_order()? {
        infer_node(g, id, &mut known)?;
    }
    let mut out = known.sym_ints;
    for (o, t) in known.values {
        if t.rank() <= 1 && t.datum_type().is_integer() {
            if let Some(v) = tensor_to_i64s(&t) {
                out.entry(o)
                    .or_insert_with(|| v.into_iter().map(SymInt::Int).collect());
            }
        }
    }
    Ok(out)
}

/// Infer every tensor's dtype and shape in place.
pub fn infer_shapes(g: &mut Graph) -> Result<InferReport> {
    let order = g.topo_order()?;
    let mut known = Known::default();
    for &id in &order {
        let inferred = infer_node(g, id, &mut known)?;
        for (slot, info) in inferred.into_iter().enumerate() {
            let o = Outlet::new(id, slot);
            let mut cur = g.tensor(o).clone();
            if info.dtype.is_some() {
                cur.dtype = info.dtype;
            }
            if info.shape.is_some() {
                cur.shape = info.shape;
            }
            g.set_tensor_info(o, cur);
        }
    }
    let missing = |g: &Graph| -> Vec<Outlet> {
        g.node_ids()
            .into_iter()
            .flat_map(|id| (0..g.node(id).outputs.len()).map(move |s| Outlet::new(id, s)))
            .filter(|&o| {
                let t = g.tensor(o);
                !t.name.is_empty() && (t.shape.is_none() || t.dtype.is_none())
            })
            .collect()
    };
    let mut report = InferReport::default();
    let unknown = missing(g);
    if !unknown.is_empty() && !known.unbounded_constant {
        report.from_tract = crate::eval::fill_from_tract_analysis(g, &unknown).unwrap_or(0);
    }
    report.unknown_shapes = missing(g)
        .into_iter()
        .map(|o| g.tensor(o).name.clone())
        .collect();
    Ok(report)
}

fn info(dtype: Option<DType>, shape: Option<Shape>) -> TensorInfo {
    TensorInfo {
        name: String::new(),
        dtype,
        shape,
    }
}

/// The node whose outputs are being inferred, with its inputs: what every shape rule reads.
struct NodeCtx<'a> {
    g: &'a Graph,
    id: NodeId,
    ins: Vec<Option<Outlet>>,
    n_out: usize,
}

impl<'a> NodeCtx<'a> {
    /// The outlet feeding input `slot`, if connected.
    fn outlet(&self, slot: usize) -> Option<Outlet> {
        self.ins.get(slot).copied().flatten()
    }
    fn input(&self, slot: usize) -> Option<&'a TensorInfo> {
        let g = self.g;
        self.outlet(slot).map(|o| g.tensor(o))
    }
    fn in_shape(&self, slot: usize) -> Option<&'a Shape> {
        self.input(slot).and_then(|t| t.shape.as_ref())
    }
    fn in_dt(&self, slot: usize) -> Option<DType> {
        self.input(slot).and_then(|t| t.dtype)
    }
    /// This node's output `slot`.
    fn output(&self, slot: usize) -> Outlet {
        Outlet::new(self.id, slot)
    }
    /// One output with the dtype and shape of input 0.
    fn same(&self) -> Vec<TensorInfo> {
        vec![info(self.in_dt(0), self.in_shape(0).cloned())]
    }
    /// A shape error on this node.
    fn err(&self, detail: impl Into<String>) -> IrError {
        let n = self.g.node(self.id);
        IrError::Shape {
            node: n.name.clone(),
            op: n.op.op_type().to_string(),
            detail: detail.into(),
        }
    }
}

/// Infer the outputs of one node from its inputs' infos (and known constants).
pub(crate) fn infer_node(g: &Graph, id: NodeId, known: &mut Known) -> Result<Vec<TensorInfo>> {
    let node = g.node(id);
    let ins = g.node_inputs(id);
    let n_out = node.outputs.len();

    if let Op::Const(t) = &node.op {
        known.values.insert(Outlet::new(id, 0), t.clone());
        return Ok(vec![info(
            DType::from_datum(t.datum_type()),
            Some(crate::shape::shape_of(t.shape())),
        )]);
    }
    if let Op::Input = node.op {
        return Ok(vec![node.outputs[0].clone()]);
    }

    let ctx = NodeCtx { g, id, ins, n_out };
    let inferred = rule(&ctx, known)?;

    // Small all-constant computations are evaluated to learn their values, when the rule
    // says that their results are small too (a constant shape can ask ConstantOfShape for
    // any size).
    let ins = &ctx.ins;
    let elements = |t: &TensorInfo| {
        let shape = t.shape.as_deref().and_then(crate::shape::known_shape)?;
        shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
    };
    let in_elements = ins
        .iter()
        .flatten()
        .map(|o| match known.values.get(o) {
            Some(t) => Some(t.len()),
            None => elements(g.tensor(*o)),
        })
        .try_fold(0usize, |sum, n| sum.checked_add(n?));
    let out_elements = inferred
        .iter()
        .map(elements)
        .try_fold(0usize, |sum, n| sum.checked_add(n?));
    let derived = !ins.is_empty()
        && ins
            .iter()
            .flatten()
            .all(|o| known.values.contains_key(o) || known.unevaluated.contains(o));
    let all_const = !ins.is_empty() && ins.iter().flatten().all(|o| known.values.contains_key(o));
    let small = in_elements.is_some_and(|n| n <= EVAL_LIMIT)
        && out_elements.is_some_and(|n| n <= EVAL_LIMIT);
    if all_const && small && !matches!(node.op, Op::Other(_)) {
        let args: Vec<Option<Arc<Tensor>>> = ins
            .iter()
            .map(|o| o.and_then(|o| known.values.get(&o).cloned()))
            .collect();
        if let Ok(outs) = crate::eval::eval_node(g, id, &args) {
            let mut infos = vec![];
            for (slot, t) in outs.into_iter().enumerate() {
                infos.push(info(
                    DType::from_datum(t.datum_type()),
                    Some(crate::shape::shape_of(t.shape())),
                ));
                known.values.insert(Outlet::new(id, slot), Arc::new(t));
            }
            return Ok(infos);
        }
    }
    if derived {
        known
            .unevaluated
            .extend((0..n_out).map(|s| Outlet::new(id, s)));
        let bound = in_elements.map(|n| n.max(EVAL_LIMIT));
        if out_elements.zip(bound).is_none_or(|(n, bound)| n > bound) {
            known.unbounded_constant = true;
        }
    }
    Ok(inferred)
}

/// The shape rule of the node's op.
fn rule(ctx: &NodeCtx, known: &mut Known) -> Result<Vec<TensorInfo>> {
    let node = ctx.g.node(ctx.id);
    let n_out = ctx.n_out;
    match &node.op {
        Op::Input | Op::Const(_) => unreachable!("handled above"),
        Op::Conv(c) | Op::FusedConv(FusedConv { conv: c, .. }) => spatial::conv(ctx, c),
        Op::MaxPool(p) | Op::AveragePool(p) => spatial::pool(ctx, p),
        Op::GlobalAveragePool | Op::GlobalMaxPool => Ok(spatial::global_pool(ctx)),
        Op::BatchNormalization { .. } => spatial::batch_norm(ctx),
        Op::Relu
        | Op::Sigmoid
        | Op::Tanh
        | Op::HardSwish
        | Op::LeakyRelu { .. }
        | Op::HardSigmoid { .. }
        | Op::Clip
        | Op::Identity
        | Op::Softmax { .. } => Ok(ctx.same()),
        Op::Dropout { .. } => Ok(tensor_ops::dropout(ctx)),
        Op::Add | Op::Sub | Op::Mul | Op::Div => tensor_ops::elementwise(ctx),
        Op::Concat { axis } => tensor_ops::concat(ctx, known, *axis),
        Op::Split { axis, .. } => tensor_ops::split(ctx, known, *axis),
        Op::Gemm {
            trans_a, trans_b, ..
        } => tensor_ops::gemm(ctx, *trans_a != 0, *trans_b != 0),
        Op::MatMul => tensor_ops::matmul(ctx),
        Op::Flatten { axis } => Ok(tensor_ops::flatten(ctx, *axis)),
        Op::Reshape { allowzero } => Ok(tensor_ops::reshape(ctx, known, *allowzero != 0)),
        Op::Transpose { perm } => Ok(tensor_ops::transpose(ctx, perm.as_deref())),
        Op::Pad { .. } => tensor_ops::pad(ctx, known),
        Op::Cast { to } => Ok(shape_ops::cast(ctx, known, *to)),
        Op::Shape { start, end } => Ok(shape_ops::shape(ctx, known, *start, *end)),
        Op::Gather { axis } => shape_ops::gather(ctx, known, *axis),
        Op::Unsqueeze => shape_ops::unsqueeze(ctx, known),
        Op::Squeeze => shape_ops::squeeze(ctx, known),
        Op::Slice => Ok(shape_ops::slice(ctx, known)),
        Op::ConstantOfShape { value } => {
            Ok(shape_ops::constant_of_shape(ctx, known, value.as_deref()))
        }
        Op::Other(o) => {
            Ok(other_ops::infer(ctx, known, o)?.unwrap_or_else(|| vec![info(None, None); n_out]))
        }
    }
}
