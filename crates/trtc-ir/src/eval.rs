//! CPU execution through tract: evaluate one node (for constant folding and shape
//! inference), borrow tract's shape analysis, and run a whole graph.
//!
//! The path is always IR -> ONNX -> tract, so tract sees exactly what trtc writes.

use crate::dtype::DType;
use crate::error::{IrError, Result};
use crate::export::to_model_proto;
use crate::graph::{Graph, NodeId, Outlet};
use crate::op::Op;
use crate::shape::{shape_to_string, Dim, TensorInfo};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

fn onnx_framework() -> &'static tract_onnx::Onnx {
    static ONNX: OnceLock<tract_onnx::Onnx> = OnceLock::new();
    ONNX.get_or_init(tract_onnx::onnx)
}

/// Run `f`, which hands tract a graph read from a file. tract panics on some invalid graphs
/// (a constant index out of range, an axis past the rank) instead of failing; such a panic
/// is an error here, as tract's own errors are.
fn contain<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("no message");
        Err(IrError::Tract(format!("panicked on this graph: {msg}")))
    })
}

/// Ops tract can run: the standard ones it registers.
pub fn tract_supports(op: &Op) -> bool {
    match op {
        Op::Other(o) => {
            (o.domain.is_empty() || o.domain == "ai.onnx")
                && onnx_framework().op_register.0.contains_key(&o.op_type)
        }
        _ => true,
    }
}

/// Error naming the first node tract cannot run.
pub fn check_tract_supports(g: &Graph) -> Result<()> {
    for id in g.topo_order()? {
        let n = g.node(id);
        if !tract_supports(&n.op) {
            let domain = match &n.op {
                Op::Other(o) => o.domain.clone(),
                _ => String::new(),
            };
            return Err(IrError::UnsupportedByTract {
                node: n.name.clone(),
                op: n.op.op_type().into(),
                domain,
            });
        }
    }
    Ok(())
}

/// Evaluate one node on constant inputs. Returns one tensor per output.
pub fn eval_node(g: &Graph, id: NodeId, inputs: &[Option<Arc<Tensor>>]) -> Result<Vec<Tensor>> {
    let node = g.node(id);
    if !tract_supports(&node.op) {
        return Err(IrError::UnsupportedByTract {
            node: node.name.clone(),
            op: node.op.op_type().into(),
            domain: String::new(),
        });
    }
    // A one-node model whose inputs are initializers and whose outputs are the node's.
    let mut sub = Graph::new(g.meta.clone());
    let mut copy = node.clone();
    copy.num_inputs = inputs.len();
    let new_id = sub.add_node(copy);
    for (slot, value) in inputs.iter().enumerate() {
        if let Some(v) = value {
            let name = g
                .input_info(id, slot)
                .map(|t| t.name.clone())
                .unwrap_or_else(|| format!("in{slot}"));
            let c = sub.add_const(name, v.clone());
            sub.connect(c, new_id, slot)?;
        }
    }
    let outs: Vec<Outlet> = (0..node.outputs.len())
        .filter(|&s| !node.outputs[s].name.is_empty())
        .map(|s| Outlet::new(new_id, s))
        .collect();
    sub.set_outputs(outs.clone());
    let mut proto = to_model_proto(&sub)?;
    // Let tract decide the output facts itself.
    if let Some(gp) = proto.graph.as_mut() {
        for o in gp.output.iter_mut() {
            o.r#type = None;
        }
    }
    contain(|| {
        let model = onnx_framework()
            .model_for_proto_model(&proto)
            .map_err(IrError::tract)?;
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(IrError::tract)?;
        let results = plan.run(tvec!()).map_err(IrError::tract)?;
        results
            .into_iter()
            .map(|v| plain_tensor(v.into_tensor()))
            .collect()
    })
}

/// tract computes shapes as symbolic `TDim`s; ONNX knows them as int64.
fn plain_tensor(t: Tensor) -> Result<Tensor> {
    if t.datum_type() == DatumType::TDim {
        return t
            .cast_to::<i64>()
            .map(|c| c.into_owned())
            .map_err(IrError::tract);
    }
    Ok(t)
}

/// Fill in unknown tensor infos from tract's analysis of the whole model. Returns how many
/// tensors were completed; an error if tract cannot analyse the model.
pub(crate) fn fill_from_tract_analysis(g: &mut Graph, unknown: &[Outlet]) -> Result<usize> {
    check_tract_supports(g)?;
    let proto = to_model_proto(g)?;
    let model = contain(|| {
        let mut model = onnx_framework()
            .model_for_proto_model(&proto)
            .map_err(IrError::tract)?;
        let _ = model.analyse(false);
        Ok(model)
    })?;
    let mut by_label: HashMap<String, OutletId> = HashMap::new();
    for node in model.nodes() {
        for slot in 0..node.outputs.len() {
            let o = OutletId::new(node.id, slot);
            if let Some(l) = model.outlet_label(o) {
                by_label.insert(l.to_string(), o);
            }
        }
    }
    let mut filled = 0;
    for &o in unknown {
        let mut info = g.tensor(o).clone();
        let Some(&to) = by_label.get(&info.name) else {
            continue;
        };
        let Ok(fact) = model.outlet_fact(to) else {
            continue;
        };
        if info.dtype.is_none() {
            info.dtype = fact.datum_type.concretize().and_then(DType::from_datum);
        }
        if info.shape.is_none() {
            info.shape = fact.shape.concretize().map(|dims| {
                dims.iter()
                    .map(|d| match d.to_i64() {
                        Ok(v) if v >= 0 => Dim::Known(v as u64),
                        _ => Dim::Sym(d.to_string()),
                    })
                    .collect()
            });
        }
        if info.shape.is_some() && info.dtype.is_some() {
            filled += 1;
        }
        g.set_tensor_info(o, info);
    }
    Ok(filled)
}

/// Check run-time inputs against the graph's inputs: count, dtype, rank, known dims, and a
/// symbol bound to one value across inputs.
pub fn check_inputs(expected: &[TensorInfo], given: &[Tensor]) -> Result<()> {
    let shapes: Vec<Vec<usize>> = given.iter().map(|t| t.shape().to_vec()).collect();
    let dts: Vec<DatumType> = given.iter().map(|t| t.datum_type()).collect();
    check_shapes(expected, &shapes, &dts)
}

/// `check_inputs` on shapes and types (for callers holding shared tract values).
pub fn check_shapes(
    expected: &[TensorInfo],
    shapes: &[Vec<usize>],
    dts: &[DatumType],
) -> Result<()> {
    if expected.len() != shapes.len() {
        return Err(IrError::InputMismatch {
            name: "(inputs)".into(),
            expected: format!("{} inputs", expected.len()),
            given: format!("{}", shapes.len()),
        });
    }
    let mut symbols: HashMap<String, usize> = HashMap::new();
    for ((e, shape_given), dt) in expected.iter().zip(shapes).zip(dts) {
        let given_dt = DType::from_datum(*dt);
        let given_desc = format!(
            "{}{}",
            given_dt
                .map(|d| d.to_string())
                .unwrap_or_else(|| format!("{dt:?}")),
            shape_to_string(&crate::shape::shape_of(shape_given))
        );
        let mismatch = || IrError::InputMismatch {
            name: e.name.clone(),
            expected: e.describe(),
            given: given_desc.clone(),
        };
        if e.dtype.is_some() && e.dtype != given_dt {
            return Err(mismatch());
        }
        if let Some(shape) = &e.shape {
            if shape.len() != shape_given.len() {
                return Err(mismatch());
            }
            for (d, &n) in shape.iter().zip(shape_given) {
                match d {
                    Dim::Known(k) if *k as usize != n => return Err(mismatch()),
                    Dim::Sym(s) if s != "?" && *symbols.entry(s.clone()).or_insert(n) != n => {
                        return Err(mismatch());
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

type Plan = Arc<TypedRunnableModel>;

/// Plans kept per input shape, oldest evicted first.
struct PlanCache {
    plans: Vec<(Vec<Vec<usize>>, Plan)>,
    capacity: usize,
}

/// A graph ready to run on the CPU through tract, with one optimized plan per input shape
/// (up to `max_cached_plans` of them).
pub struct CpuModel {
    model: InferenceModel,
    inputs: Vec<TensorInfo>,
    outputs: Vec<TensorInfo>,
    cache: Mutex<PlanCache>,
}

impl CpuModel {
    pub fn new(g: &Graph) -> Result<CpuModel> {
        check_tract_supports(g)?;
        let proto = to_model_proto(g)?;
        Self::from_proto(
            &proto,
            g.inputs()
                .iter()
                .map(|&i| g.tensor(Outlet::new(i, 0)).clone())
                .collect(),
            g.outputs().iter().map(|&o| g.tensor(o).clone()).collect(),
        )
    }

    /// A model from an exported (sub)graph and the infos of its inputs and outputs.
    pub fn from_proto(
        proto: &ModelProto,
        inputs: Vec<TensorInfo>,
        outputs: Vec<TensorInfo>,
    ) -> Result<CpuModel> {
        let model = contain(|| {
            onnx_framework()
                .model_for_proto_model(&with_placeholder_input_types(proto))
                .map_err(IrError::tract)
        })?;
        Ok(CpuModel {
            model,
            inputs,
            outputs,
            cache: Mutex::new(PlanCache {
                plans: vec![],
                capacity: 8,
            }),
        })
    }

    /// Keep at most `n` optimized plans (one per input shape).
    pub fn with_max_cached_plans(self, n: usize) -> CpuModel {
        if let Ok(mut c) = self.cache.lock() {
            c.capacity = n.max(1);
        }
        self
    }

    pub fn inputs(&self) -> &[TensorInfo] {
        &self.inputs
    }

    pub fn outputs(&self) -> &[TensorInfo] {
        &self.outputs
    }

    fn plan(&self, shapes: Vec<Vec<usize>>, dts: &[DatumType]) -> Result<Plan> {
        {
            let cache = self
                .cache
                .lock()
                .map_err(|_| IrError::Tract("plan cache poisoned".into()))?;
            if let Some((_, p)) = cache.plans.iter().find(|(s, _)| *s == shapes) {
                return Ok(p.clone());
            }
        }
        let mut m = self.model.clone();
        for (i, (s, dt)) in shapes.iter().zip(dts).enumerate() {
            m.set_input_fact(i, InferenceFact::dt_shape(*dt, s.clone()))
                .map_err(IrError::tract)?;
        }
        let plan = contain(|| {
            m.into_optimized()
                .and_then(|m| m.into_runnable())
                .map_err(IrError::tract)
        })?;
        if let Ok(mut cache) = self.cache.lock() {
            if cache.plans.len() >= cache.capacity {
                cache.plans.remove(0);
            }
            cache.plans.push((shapes, plan.clone()));
        }
        Ok(plan)
    }

    /// Run on tract values (shared, not copied), checked against the input infos.
    pub fn run_values(&self, inputs: TVec<TValue>) -> Result<TVec<TValue>> {
        let shapes: Vec<Vec<usize>> = inputs.iter().map(|t| t.shape().to_vec()).collect();
        let dts: Vec<DatumType> = inputs.iter().map(|t| t.datum_type()).collect();
        check_shapes(&self.inputs, &shapes, &dts)?;
        let plan = self.plan(shapes, &dts)?;
        contain(|| plan.run(inputs).map_err(IrError::tract))
    }

    /// Run on the given inputs (checked against the graph's input shapes first).
    pub fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>> {
        let outs = self.run_values(inputs.into_iter().map(|t| t.into()).collect())?;
        Ok(outs.into_iter().map(|v| v.into_tensor()).collect())
    }
}

/// `proto` with a placeholder type (f32) on inputs whose type is unknown (a segment
/// reading the output of an op neither trtc nor tract could type). tract refuses inputs
/// without a type at parse time; the real type replaces the placeholder when a plan is
/// made for the values that arrive (`CpuModel::plan` sets every input's fact).
fn with_placeholder_input_types(proto: &ModelProto) -> std::borrow::Cow<'_, ModelProto> {
    use tract_onnx::pb::type_proto::Value;
    let untyped =
        |v: &tract_onnx::pb::ValueInfoProto| match v.r#type.as_ref().and_then(|t| t.value.as_ref())
        {
            Some(Value::TensorType(t)) => t.elem_type == 0,
            _ => true,
        };
    let Some(g) = proto.graph.as_ref() else {
        return std::borrow::Cow::Borrowed(proto);
    };
    if !g.input.iter().any(untyped) {
        return std::borrow::Cow::Borrowed(proto);
    }
    let mut p = proto.clone();
    if let Some(g) = p.graph.as_mut() {
        for v in g.input.iter_mut().filter(|v| untyped(v)) {
            let shape = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
                Some(Value::TensorType(t)) => t.shape.clone(),
                _ => None,
            };
            v.r#type = Some(tract_onnx::pb::TypeProto {
                denotation: String::new(),
                value: Some(Value::TensorType(tract_onnx::pb::type_proto::Tensor {
                    elem_type: 1,
                    shape,
                })),
            });
        }
    }
    std::borrow::Cow::Owned(p)
}
