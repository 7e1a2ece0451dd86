//! Shape and type inference for the CNN op set, with symbolic dims.
//!
//! Nodes are visited in topological order. Small constant sub-computations (the
//! `Shape -> Gather -> Concat -> Reshape` arithmetic exporters write) are evaluated by
//! tract, and integer shape vectors carry symbols (`[N, -1]`), so a dynamic batch
//! survives a Reshape. Whatever is still unknown at the end (ops trtc does not model) is
//! taken from tract's own analysis when tract can analyse the model.

use crate::dtype::DType;
use crate::error::{IrError, Result};
use crate::graph::{Graph, NodeId, Outlet};
use crate::op::{AutoPad, Op};
use crate::shape::{Dim, Shape, TensorInfo};
use crate::tensor::tensor_to_i64s;
use std::collections::HashMap;
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
    if !unknown.is_empty() {
        report.from_tract = crate::eval::fill_from_tract_analysis(g, &unknown).unwrap_or(0);
    }
    report.unknown_shapes = missing(g)
        .into_iter()
        .map(|o| g.tensor(o).name.clone())
        .collect();
    Ok(report)
}

fn shape_err(g: &Graph, id: NodeId, detail: impl Into<String>) -> IrError {
    let n = g.node(id);
    IrError::Shape {
        node: n.name.clone(),
        op: n.op.op_type().to_string(),
        detail: detail.into(),
    }
}

fn info(dtype: Option<DType>, shape: Option<Shape>) -> TensorInfo {
    TensorInfo {
        name: String::new(),
        dtype,
        shape,
    }
}

fn norm_axis(axis: i64, rank: usize) -> Option<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    (0..rank as i64).contains(&a).then_some(a as usize)
}

fn unknown_dim() -> Dim {
    Dim::Sym("?".into())
}

/// Product of dims: known, a lone symbol, or a symbolic product.
fn product(dims: &[Dim]) -> Dim {
    let known: u64 = dims.iter().filter_map(|d| d.known()).product();
    let syms: Vec<String> = dims
        .iter()
        .filter_map(|d| match d {
            Dim::Sym(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    match (syms.len(), known) {
        (0, k) => Dim::Known(k),
        (1, 1) => Dim::Sym(syms[0].clone()),
        _ if syms.iter().any(|s| s == "?") => unknown_dim(),
        _ => Dim::Sym(format!("{}*{}", syms.join("*"), known)),
    }
}

pub(crate) fn broadcast(a: &[Dim], b: &[Dim]) -> std::result::Result<Shape, String> {
    let rank = a.len().max(b.len());
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            Some(&a[i + a.len() - rank])
        } else {
            None
        };
        let db = if i + b.len() >= rank {
            Some(&b[i + b.len() - rank])
        } else {
            None
        };
        out.push(match (da, db) {
            (Some(x), None) | (None, Some(x)) => x.clone(),
            (Some(x), Some(y)) => match (x, y) {
                (Dim::Known(1), o) | (o, Dim::Known(1)) => o.clone(),
                (Dim::Known(p), Dim::Known(q)) if p != q => {
                    return Err(format!(
                        "cannot broadcast {} with {}",
                        crate::shape::shape_to_string(a),
                        crate::shape::shape_to_string(b)
                    ))
                }
                (Dim::Known(_), _) => x.clone(),
                (_, Dim::Known(_)) => y.clone(),
                _ => x.clone(),
            },
            (None, None) => unknown_dim(),
        });
    }
    Ok(out)
}

/// Output size of a sliding window along one axis.
fn window(i: &Dim, k: i64, s: i64, d: i64, pb: i64, pe: i64, auto: AutoPad, ceil: bool) -> Dim {
    let Dim::Known(i) = i else {
        return unknown_dim();
    };
    let i = *i as i64;
    let s = s.max(1);
    let out = match auto {
        AutoPad::SameUpper | AutoPad::SameLower => (i + s - 1) / s,
        _ => {
            let (pb, pe) = if auto == AutoPad::Valid {
                (0, 0)
            } else {
                (pb, pe)
            };
            let span = i + pb + pe - d * (k - 1) - 1;
            if span < 0 {
                return Dim::Known(0);
            }
            let mut o = if ceil {
                (span + s - 1) / s + 1
            } else {
                span / s + 1
            };
            if ceil && (o - 1) * s >= i + pb {
                o -= 1;
            }
            o
        }
    };
    Dim::Known(out.max(0) as u64)
}

/// Infer the outputs of one node from its inputs' infos (and known constants).
pub(crate) fn infer_node(g: &Graph, id: NodeId, known: &mut Known) -> Result<Vec<TensorInfo>> {
    let node = g.node(id);
    let ins = g.node_inputs(id);
    let n_out = node.outputs.len();
    let input = |slot: usize| -> Option<&TensorInfo> {
        ins.get(slot).copied().flatten().map(|o| g.tensor(o))
    };
    let in_shape = |slot: usize| -> Option<&Shape> { input(slot).and_then(|t| t.shape.as_ref()) };
    let in_dt = |slot: usize| input(slot).and_then(|t| t.dtype);
    let same = || vec![info(in_dt(0), in_shape(0).cloned())];

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

    // Small all-constant computations are evaluated to learn their values.
    let all_const = !ins.is_empty() && ins.iter().flatten().all(|o| known.values.contains_key(o));
    let small = ins
        .iter()
        .flatten()
        .map(|o| known.values.get(o).map_or(0, |t| t.len()))
        .sum::<usize>()
        <= EVAL_LIMIT;
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

    let out: Vec<TensorInfo> = match &node.op {
        Op::Input | Op::Const(_) => unreachable!("handled above"),
        Op::Conv(c) | Op::FusedConv(crate::op::FusedConv { conv: c, .. }) => {
            let (Some(x), Some(w)) = (in_shape(0), in_shape(1)) else {
                return Ok(vec![info(in_dt(0), None)]);
            };
            if x.len() < 3 || w.len() != x.len() {
                return Err(shape_err(
                    g,
                    id,
                    format!(
                        "input rank {} and weight rank {} do not fit",
                        x.len(),
                        w.len()
                    ),
                ));
            }
            let spatial = x.len() - 2;
            if let (Dim::Known(cin), Dim::Known(wc)) = (&x[1], &w[1]) {
                if *cin != wc * c.group.max(1) as u64 {
                    return Err(shape_err(
                        g,
                        id,
                        format!(
                            "input has {cin} channels, weights expect {} x group {}",
                            wc, c.group
                        ),
                    ));
                }
            }
            let kernel: Vec<i64> = if c.kernel_shape.is_empty() {
                w[2..]
                    .iter()
                    .map(|d| d.known().map(|v| v as i64).unwrap_or(1))
                    .collect()
            } else {
                c.kernel_shape.clone()
            };
            let (s, d, p) = (c.strides(spatial), c.dilations(spatial), c.pads(spatial));
            if kernel.len() != spatial
                || s.len() != spatial
                || d.len() != spatial
                || p.len() != 2 * spatial
            {
                return Err(shape_err(
                    g,
                    id,
                    "kernel, strides, dilations or pads do not match the input rank",
                ));
            }
            let mut shape = vec![x[0].clone(), w[0].clone()];
            for i in 0..spatial {
                shape.push(window(
                    &x[2 + i],
                    kernel[i],
                    s[i],
                    d[i],
                    p[i],
                    p[i + spatial],
                    c.auto_pad,
                    false,
                ));
            }
            vec![info(in_dt(0), Some(shape))]
        }
        Op::MaxPool(p) | Op::AveragePool(p) => {
            let Some(x) = in_shape(0) else {
                return Ok(vec![info(in_dt(0), None); n_out]);
            };
            let spatial = x.len().saturating_sub(2);
            let (s, d, pads) = (p.strides(spatial), p.dilations(spatial), p.pads(spatial));
            if p.kernel_shape.len() != spatial || s.len() != spatial || pads.len() != 2 * spatial {
                return Err(shape_err(
                    g,
                    id,
                    "kernel, strides or pads do not match the input rank",
                ));
            }
            let mut shape = x[..2].to_vec();
            for i in 0..spatial {
                shape.push(window(
                    &x[2 + i],
                    p.kernel_shape[i],
                    s[i],
                    d[i],
                    pads[i],
                    pads[i + spatial],
                    p.auto_pad,
                    p.ceil_mode != 0,
                ));
            }
            vec![info(in_dt(0), Some(shape))]
        }
        Op::GlobalAveragePool | Op::GlobalMaxPool => {
            let shape = in_shape(0).map(|x| {
                x.iter()
                    .enumerate()
                    .map(|(i, d)| if i < 2 { d.clone() } else { Dim::Known(1) })
                    .collect()
            });
            vec![info(in_dt(0), shape)]
        }
        Op::BatchNormalization { .. } => {
            if let (Some(x), Some(sc)) = (in_shape(0), in_shape(1)) {
                if let (Some(Dim::Known(c)), Some(Dim::Known(n))) = (x.get(1), sc.first()) {
                    if c != n {
                        return Err(shape_err(
                            g,
                            id,
                            format!("{c} channels but {n} scale values"),
                        ));
                    }
                }
            }
            same()
        }
        Op::Relu
        | Op::Sigmoid
        | Op::Tanh
        | Op::HardSwish
        | Op::LeakyRelu { .. }
        | Op::HardSigmoid { .. }
        | Op::Clip
        | Op::Identity
        | Op::Softmax { .. } => same(),
        Op::Dropout { .. } => {
            let mut v = same();
            if n_out > 1 {
                v.push(info(Some(DType::Bool), in_shape(0).cloned()));
            }
            v
        }
        Op::Add | Op::Sub | Op::Mul | Op::Div => {
            let shape = match (in_shape(0), in_shape(1)) {
                (Some(a), Some(b)) => Some(broadcast(a, b).map_err(|e| shape_err(g, id, e))?),
                _ => None,
            };
            vec![info(in_dt(0).or(in_dt(1)), shape)]
        }
        Op::Concat { axis } => {
            let parts: Option<Vec<Vec<SymInt>>> = ins.iter().map(|&o| known.ints(o)).collect();
            if let Some(parts) = parts
                .filter(|_| (0..ins.len()).all(|s| in_shape(s).is_some_and(|sh| sh.len() == 1)))
            {
                known.sym_ints.insert(Outlet::new(id, 0), parts.concat());
            }
            let shapes: Option<Vec<&Shape>> = (0..ins.len()).map(in_shape).collect();
            let shape = match shapes {
                Some(shapes) if !shapes.is_empty() => {
                    let rank = shapes[0].len();
                    let ax = norm_axis(*axis, rank)
                        .ok_or_else(|| shape_err(g, id, format!("axis {axis} out of range")))?;
                    let mut out = shapes[0].clone();
                    for s in &shapes[1..] {
                        if s.len() != rank {
                            return Err(shape_err(g, id, "inputs of different ranks"));
                        }
                        for i in 0..rank {
                            if i != ax {
                                if let (Dim::Known(p), Dim::Known(q)) = (&out[i], &s[i]) {
                                    if p != q {
                                        return Err(shape_err(
                                            g,
                                            id,
                                            format!("inputs differ on axis {i}: {p} vs {q}"),
                                        ));
                                    }
                                }
                            }
                        }
                    }
                    out[ax] = match shapes.iter().map(|s| s[ax].known()).sum::<Option<u64>>() {
                        Some(v) => Dim::Known(v),
                        None => unknown_dim(),
                    };
                    Some(out)
                }
                _ => None,
            };
            vec![info(in_dt(0), shape)]
        }
        Op::Split { axis, .. } => {
            let Some(x) = in_shape(0) else {
                return Ok(vec![info(in_dt(0), None); n_out]);
            };
            let ax = norm_axis(*axis, x.len())
                .ok_or_else(|| shape_err(g, id, format!("axis {axis} out of range")))?;
            let sizes: Option<Vec<u64>> = match known.i64s(ins.get(1).copied().flatten()) {
                Some(v) => Some(v.into_iter().map(|s| s.max(0) as u64).collect()),
                None => x[ax].known().map(|total| {
                    let part = total.div_ceil(n_out as u64);
                    (0..n_out as u64)
                        .map(|i| part.min(total.saturating_sub(i * part)))
                        .collect()
                }),
            };
            match sizes {
                Some(sizes) if sizes.len() == n_out => sizes
                    .into_iter()
                    .map(|s| {
                        let mut shape = x.clone();
                        shape[ax] = Dim::Known(s);
                        info(in_dt(0), Some(shape))
                    })
                    .collect(),
                _ => vec![info(in_dt(0), None); n_out],
            }
        }
        Op::Gemm {
            trans_a, trans_b, ..
        } => {
            let shape = match (in_shape(0), in_shape(1)) {
                (Some(a), Some(b)) if a.len() == 2 && b.len() == 2 => {
                    let (m, ka) = if *trans_a != 0 {
                        (&a[1], &a[0])
                    } else {
                        (&a[0], &a[1])
                    };
                    let (kb, n) = if *trans_b != 0 {
                        (&b[1], &b[0])
                    } else {
                        (&b[0], &b[1])
                    };
                    if let (Dim::Known(p), Dim::Known(q)) = (ka, kb) {
                        if p != q {
                            return Err(shape_err(
                                g,
                                id,
                                format!("inner dimensions differ: {p} vs {q}"),
                            ));
                        }
                    }
                    Some(vec![m.clone(), n.clone()])
                }
                (Some(_), Some(_)) => return Err(shape_err(g, id, "Gemm needs 2-D inputs")),
                _ => None,
            };
            vec![info(in_dt(0), shape)]
        }
        Op::MatMul => {
            let shape = match (in_shape(0), in_shape(1)) {
                (Some(a), Some(b)) if !a.is_empty() && !b.is_empty() => {
                    let a2: Shape = if a.len() == 1 {
                        vec![Dim::Known(1), a[0].clone()]
                    } else {
                        a.clone()
                    };
                    let b2: Shape = if b.len() == 1 {
                        vec![b[0].clone(), Dim::Known(1)]
                    } else {
                        b.clone()
                    };
                    let (ka, kb) = (&a2[a2.len() - 1], &b2[b2.len() - 2]);
                    if let (Dim::Known(p), Dim::Known(q)) = (ka, kb) {
                        if p != q {
                            return Err(shape_err(
                                g,
                                id,
                                format!("inner dimensions differ: {p} vs {q}"),
                            ));
                        }
                    }
                    let batch = broadcast(&a2[..a2.len() - 2], &b2[..b2.len() - 2])
                        .map_err(|e| shape_err(g, id, e))?;
                    let mut out = batch;
                    if a.len() > 1 {
                        out.push(a2[a2.len() - 2].clone());
                    }
                    if b.len() > 1 {
                        out.push(b2[b2.len() - 1].clone());
                    }
                    Some(out)
                }
                _ => None,
            };
            vec![info(in_dt(0), shape)]
        }
        Op::Flatten { axis } => {
            let shape = in_shape(0).map(|x| {
                let ax = if *axis < 0 {
                    (*axis + x.len() as i64).max(0) as usize
                } else {
                    (*axis as usize).min(x.len())
                };
                vec![product(&x[..ax]), product(&x[ax..])]
            });
            vec![info(in_dt(0), shape)]
        }
        Op::Reshape { allowzero } => {
            let target = known.ints(ins.get(1).copied().flatten());
            let shape = match (in_shape(0), target) {
                (Some(x), Some(t)) => reshape(x, &t, *allowzero != 0),
                _ => None,
            };
            if let (Some(v), Some(o)) = (known.ints(ins.first().copied().flatten()), shape.as_ref())
            {
                if o.len() == 1 {
                    known.sym_ints.insert(Outlet::new(id, 0), v);
                }
            }
            vec![info(in_dt(0), shape)]
        }
        Op::Transpose { perm } => {
            let shape = in_shape(0).and_then(|x| {
                let p: Vec<i64> = perm
                    .clone()
                    .unwrap_or_else(|| (0..x.len() as i64).rev().collect());
                p.iter()
                    .map(|&a| norm_axis(a, x.len()).map(|a| x[a].clone()))
                    .collect::<Option<Shape>>()
                    .filter(|s| s.len() == x.len())
            });
            vec![info(in_dt(0), shape)]
        }
        Op::Pad { .. } => {
            let pads = known.i64s(ins.get(1).copied().flatten());
            let axes = known.i64s(ins.get(3).copied().flatten());
            let shape = match (in_shape(0), pads) {
                (Some(x), Some(p)) => {
                    let axes: Vec<usize> = match axes {
                        Some(a) => a.iter().filter_map(|&a| norm_axis(a, x.len())).collect(),
                        None => (0..x.len()).collect(),
                    };
                    if p.len() != 2 * axes.len() {
                        return Err(shape_err(
                            g,
                            id,
                            format!("{} pads for {} axes", p.len(), axes.len()),
                        ));
                    }
                    let mut out = x.clone();
                    for (i, &ax) in axes.iter().enumerate() {
                        out[ax] = match &x[ax] {
                            Dim::Known(v) => {
                                Dim::Known((*v as i64 + p[i] + p[i + axes.len()]).max(0) as u64)
                            }
                            d if p[i] == 0 && p[i + axes.len()] == 0 => d.clone(),
                            _ => unknown_dim(),
                        };
                    }
                    Some(out)
                }
                _ => None,
            };
            vec![info(in_dt(0), shape)]
        }
        Op::Cast { to } => {
            if let Some(v) = known.ints(ins.first().copied().flatten()) {
                if to.to_datum().is_some_and(|d| d.is_integer()) {
                    known.sym_ints.insert(Outlet::new(id, 0), v);
                }
            }
            vec![info(Some(*to), in_shape(0).cloned())]
        }
        Op::Shape { start, end } => {
            let Some(x) = in_shape(0) else {
                return Ok(vec![info(Some(DType::I64), None)]);
            };
            let r = x.len() as i64;
            let clampi = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
            let (s, e) = (clampi(start.unwrap_or(0)), clampi(end.unwrap_or(r)));
            let dims = if s < e { &x[s..e] } else { &x[0..0] };
            known.sym_ints.insert(
                Outlet::new(id, 0),
                dims.iter()
                    .map(|d| match d {
                        Dim::Known(v) => SymInt::Int(*v as i64),
                        Dim::Sym(s) => SymInt::Sym(s.clone()),
                    })
                    .collect(),
            );
            vec![info(
                Some(DType::I64),
                Some(vec![Dim::Known(dims.len() as u64)]),
            )]
        }
        Op::Gather { axis } => {
            let idx_out = ins.get(1).copied().flatten();
            if let (Some(v), Some(idx)) = (
                known.ints(ins.first().copied().flatten()),
                known.i64s(idx_out),
            ) {
                let picked: Option<Vec<SymInt>> = idx
                    .iter()
                    .map(|&i| {
                        let i = if i < 0 { i + v.len() as i64 } else { i };
                        v.get(i as usize).cloned()
                    })
                    .collect();
                if let Some(p) = picked {
                    known.sym_ints.insert(Outlet::new(id, 0), p);
                }
            }
            let shape = match (in_shape(0), in_shape(1)) {
                (Some(x), Some(i)) => {
                    let ax = norm_axis(*axis, x.len())
                        .ok_or_else(|| shape_err(g, id, format!("axis {axis} out of range")))?;
                    Some([&x[..ax], &i[..], &x[ax + 1..]].concat())
                }
                _ => None,
            };
            vec![info(in_dt(0), shape)]
        }
        Op::Unsqueeze => {
            if let Some(v) = known.ints(ins.first().copied().flatten()) {
                known.sym_ints.insert(Outlet::new(id, 0), v);
            }
            let shape = match (in_shape(0), known.i64s(ins.get(1).copied().flatten())) {
                (Some(x), Some(axes)) => {
                    let r = x.len() + axes.len();
                    let mut axes: Vec<usize> =
                        axes.iter().filter_map(|&a| norm_axis(a, r)).collect();
                    axes.sort();
                    let mut out = x.clone();
                    for a in axes {
                        out.insert(a.min(out.len()), Dim::Known(1));
                    }
                    Some(out)
                }
                _ => None,
            };
            vec![info(in_dt(0), shape)]
        }
        Op::Squeeze => {
            let axes = known.i64s(ins.get(1).copied().flatten());
            let shape = in_shape(0).map(|x| {
                let drop: Vec<usize> = match &axes {
                    Some(a) => a.iter().filter_map(|&a| norm_axis(a, x.len())).collect(),
                    None => (0..x.len()).filter(|&i| x[i] == Dim::Known(1)).collect(),
                };
                x.iter()
                    .enumerate()
                    .filter(|(i, _)| !drop.contains(i))
                    .map(|(_, d)| d.clone())
                    .collect()
            });
            vec![info(in_dt(0), shape)]
        }
        Op::Slice => {
            let get = |s: usize| known.i64s(ins.get(s).copied().flatten());
            let shape = match (in_shape(0), get(1), get(2)) {
                (Some(x), Some(starts), Some(ends)) => {
                    let axes = get(3).unwrap_or_else(|| (0..starts.len() as i64).collect());
                    let steps = get(4).unwrap_or_else(|| vec![1; starts.len()]);
                    let mut out = x.clone();
                    for i in 0..starts
                        .len()
                        .min(axes.len())
                        .min(ends.len())
                        .min(steps.len())
                    {
                        let Some(ax) = norm_axis(axes[i], x.len()) else {
                            continue;
                        };
                        out[ax] = match &x[ax] {
                            Dim::Known(n) => {
                                Dim::Known(slice_len(*n as i64, starts[i], ends[i], steps[i]))
                            }
                            d if starts[i] == 0 && ends[i] >= i32::MAX as i64 && steps[i] == 1 => {
                                d.clone()
                            }
                            _ => unknown_dim(),
                        };
                    }
                    Some(out)
                }
                _ => None,
            };
            vec![info(in_dt(0), shape)]
        }
        Op::ConstantOfShape { value } => {
            let dt = value
                .as_ref()
                .and_then(|v| DType::from_datum(v.datum_type()))
                .or(Some(DType::F32));
            let shape = known.ints(ins.first().copied().flatten()).map(|v| {
                v.into_iter()
                    .map(|d| match d {
                        SymInt::Int(i) => Dim::Known(i.max(0) as u64),
                        SymInt::Sym(s) => Dim::Sym(s),
                    })
                    .collect()
            });
            vec![info(dt, shape)]
        }
        Op::Other(_) => vec![info(None, None); n_out],
    };
    Ok(out)
}

fn slice_len(n: i64, start: i64, end: i64, step: i64) -> u64 {
    if step == 0 {
        return 0;
    }
    let clamp = |v: i64, lo: i64, hi: i64| v.clamp(lo, hi);
    let norm = |v: i64| if v < 0 { v + n } else { v };
    let (s, e) = if step > 0 {
        (clamp(norm(start), 0, n), clamp(norm(end), 0, n))
    } else {
        (clamp(norm(start), -1, n - 1), clamp(norm(end), -1, n - 1))
    };
    let len = if step > 0 {
        (e - s + step - 1) / step
    } else {
        (s - e + (-step) - 1) / (-step)
    };
    len.max(0) as u64
}

/// Output shape of Reshape to `target` (0 copies, -1 infers), keeping symbols.
fn reshape(x: &[Dim], target: &[SymInt], allowzero: bool) -> Option<Shape> {
    let mut out: Vec<Option<Dim>> = Vec::with_capacity(target.len());
    let mut infer_at = None;
    for (i, t) in target.iter().enumerate() {
        out.push(match t {
            SymInt::Int(0) if !allowzero => Some(x.get(i)?.clone()),
            SymInt::Int(-1) => {
                infer_at = Some(i);
                None
            }
            SymInt::Int(v) if *v >= 0 => Some(Dim::Known(*v as u64)),
            SymInt::Int(_) => return None,
            SymInt::Sym(s) => Some(Dim::Sym(s.clone())),
        });
    }
    if let Some(at) = infer_at {
        let mut in_syms: Vec<String> = vec![];
        let mut in_known = 1u64;
        for d in x {
            match d {
                Dim::Known(v) => in_known *= v,
                Dim::Sym(s) => in_syms.push(s.clone()),
            }
        }
        let mut out_known = 1u64;
        for d in out.iter().flatten() {
            match d {
                Dim::Known(v) => out_known *= v,
                Dim::Sym(s) => {
                    let pos = in_syms.iter().position(|x| x == s && x != "?")?;
                    in_syms.remove(pos);
                }
            }
        }
        if out_known == 0 || in_known % out_known != 0 {
            return None;
        }
        let rest = in_known / out_known;
        out[at] = Some(match in_syms.as_slice() {
            [] => Dim::Known(rest),
            [s] if rest == 1 && s != "?" => Dim::Sym(s.clone()),
            _ => unknown_dim(),
        });
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_follow_onnx_rules() {
        let d = Dim::Known(299);
        assert_eq!(
            window(&d, 3, 2, 1, 0, 0, AutoPad::NotSet, false),
            Dim::Known(149)
        );
        assert_eq!(
            window(&Dim::Known(224), 3, 2, 1, 0, 1, AutoPad::NotSet, false),
            Dim::Known(112)
        );
        assert_eq!(
            window(&Dim::Known(7), 3, 2, 1, 0, 0, AutoPad::SameUpper, false),
            Dim::Known(4)
        );
        assert_eq!(
            window(&Dim::Known(6), 3, 2, 1, 0, 0, AutoPad::NotSet, true),
            Dim::Known(3)
        );
        assert_eq!(
            window(&Dim::Sym("H".into()), 3, 1, 1, 1, 1, AutoPad::NotSet, false),
            unknown_dim()
        );
    }

    #[test]
    fn reshape_keeps_the_batch_symbol() {
        let x = vec![
            Dim::Sym("N".into()),
            Dim::Known(1280),
            Dim::Known(1),
            Dim::Known(1),
        ];
        let t = vec![SymInt::Sym("N".into()), SymInt::Int(-1)];
        assert_eq!(
            reshape(&x, &t, false),
            Some(vec![Dim::Sym("N".into()), Dim::Known(1280)])
        );
        let t = vec![SymInt::Int(0), SymInt::Int(-1)];
        assert_eq!(
            reshape(&x, &t, false),
            Some(vec![Dim::Sym("N".into()), Dim::Known(1280)])
        );
        let t = vec![SymInt::Int(-1)];
        assert_eq!(reshape(&x, &t, false), Some(vec![unknown_dim()]));
    }

    #[test]
    fn broadcasting() {
        let a = vec![Dim::Sym("N".into()), Dim::Known(3), Dim::Known(1)];
        let b = vec![Dim::Known(4)];
        assert_eq!(
            broadcast(&a, &b).unwrap(),
            vec![Dim::Sym("N".into()), Dim::Known(3), Dim::Known(4)]
        );
        assert!(broadcast(&[Dim::Known(3)], &[Dim::Known(4)]).is_err());
    }

    #[test]
    fn slices() {
        assert_eq!(slice_len(10, 0, i64::MAX, 1), 10);
        assert_eq!(slice_len(10, -1, i64::MIN, -1), 10);
        assert_eq!(slice_len(10, 2, 8, 3), 2);
    }
}
