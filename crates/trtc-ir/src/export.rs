//! `Graph` -> ONNX `ModelProto`, for the whole graph or for any set of its nodes.
//!
//! Fused nodes are written back as standard ONNX (FusedConv -> Conv [+ Add] [+ activation]),
//! so any ONNX runtime can run what trtc writes.

use crate::error::Result;
use crate::graph::{Graph, NodeId, Outlet};
use crate::op::{Activation, Op};
use crate::shape::{Dim, TensorInfo};
use crate::tensor::tensor_to_proto;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tract_onnx::pb::{self, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto};
use tract_onnx::prelude::{tensor0, Tensor};

/// The inputs and outputs a subgraph model got: the outlets of the parent graph.
#[derive(Clone, Debug, Default)]
pub struct SubgraphIo {
    pub inputs: Vec<Outlet>,
    pub outputs: Vec<Outlet>,
}

/// How fused nodes are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// Standard ONNX only: FusedConv becomes Conv [+ Add] [+ activation].
    Standard,
    /// trtc's own: FusedConv stays one node of domain `ai.trtc`, and each node's doc string
    /// keeps the original node names and op types. Read back by `from_proto`.
    Trtc,
}

/// The trtc op domain, for fused nodes in plans.
pub const TRTC_DOMAIN: &str = "ai.trtc";

/// The whole graph as a standard ONNX model.
pub fn to_model_proto(g: &Graph) -> Result<ModelProto> {
    to_model_proto_as(g, Flavor::Standard)
}

/// The whole graph as an ONNX model of the given flavor.
pub fn to_model_proto_as(g: &Graph, flavor: Flavor) -> Result<ModelProto> {
    let all: Vec<NodeId> = g.node_ids();
    let order = g.topo_order()?;
    let io = SubgraphIo {
        inputs: g.inputs().iter().map(|&i| Outlet::new(i, 0)).collect(),
        outputs: g.outputs().to_vec(),
    };
    build(g, &all.into_iter().collect(), &order, io, flavor)
}

/// The nodes `set` as a model of their own. Its inputs are the tensors the set reads from
/// outside (constants outside the set are copied in as initializers); its outputs are the
/// tensors the rest of the graph, or the graph's outputs, read from the set.
pub fn subgraph_to_model_proto(g: &Graph, set: &[NodeId]) -> Result<(ModelProto, SubgraphIo)> {
    let io = subgraph_io(g, set)?;
    let set: HashSet<NodeId> = set.iter().copied().collect();
    let proto = build(g, &set, &g.topo_order()?, io.clone(), Flavor::Standard)?;
    Ok((proto, io))
}

/// The inputs and outputs `subgraph_to_model_proto` gives the nodes `set`, without building
/// the model (no weights are copied).
pub fn subgraph_io(g: &Graph, set: &[NodeId]) -> Result<SubgraphIo> {
    let set: HashSet<NodeId> = set.iter().copied().collect();
    let order = g.topo_order()?;
    let mut io = SubgraphIo::default();
    for &id in order.iter().filter(|id| set.contains(id)) {
        if g.node(id).op.is_input() {
            io.inputs.push(Outlet::new(id, 0));
        }
        for o in g.node_inputs(id).into_iter().flatten() {
            if !set.contains(&o.node) && g.const_value(o).is_none() && !io.inputs.contains(&o) {
                io.inputs.push(o);
            }
        }
    }
    for &id in order.iter().filter(|id| set.contains(id)) {
        for slot in 0..g.node(id).outputs.len() {
            let o = Outlet::new(id, slot);
            let read_outside = g.consumers(o).iter().any(|(c, _)| !set.contains(c));
            if (read_outside || g.is_graph_output(o)) && !g.node(id).op.is_const() {
                io.outputs.push(o);
            }
        }
    }
    Ok(io)
}

fn build(
    g: &Graph,
    set: &HashSet<NodeId>,
    order: &[NodeId],
    io: SubgraphIo,
    flavor: Flavor,
) -> Result<ModelProto> {
    let mut gp = GraphProto {
        name: g.meta.graph_name.clone(),
        ..Default::default()
    };
    let mut initialized: HashSet<String> = HashSet::new();
    for &o in &io.inputs {
        gp.input.push(value_info(g.tensor(o)));
    }
    for &id in order.iter().filter(|id| set.contains(id)) {
        let node = g.node(id);
        match &node.op {
            Op::Input => {}
            Op::Const(t) => {
                if initialized.insert(node.outputs[0].name.clone()) {
                    gp.initializer
                        .push(tensor_to_proto(&node.outputs[0].name, t));
                }
            }
            _ => {
                let mut inputs = vec![];
                for input in g.node_inputs(id) {
                    let Some(o) = input else {
                        inputs.push(String::new());
                        continue;
                    };
                    let name = g.tensor(o).name.clone();
                    if let Some(t) = g.const_value(o) {
                        if !set.contains(&o.node) && initialized.insert(name.clone()) {
                            gp.initializer.push(tensor_to_proto(&name, t));
                        }
                    }
                    inputs.push(name);
                }
                match flavor {
                    Flavor::Standard => emit_node(g, id, inputs, &mut gp)?,
                    Flavor::Trtc => gp.node.push(trtc_node(g, id, inputs)),
                }
            }
        }
    }
    for &o in &io.outputs {
        gp.output.push(value_info(g.tensor(o)));
    }
    if flavor == Flavor::Trtc {
        // Plans keep every tensor's type and shape, so a plan reloads with what was
        // inferred at compile time (tract's analysis cannot run on `ai.trtc` ops).
        let boundary: HashSet<&str> = gp
            .input
            .iter()
            .chain(&gp.output)
            .map(|v| v.name.as_str())
            .collect();
        let mut infos = vec![];
        for &id in order.iter().filter(|id| set.contains(id)) {
            let node = g.node(id);
            if node.op.is_input() || node.op.is_const() {
                continue;
            }
            for t in &node.outputs {
                if !t.name.is_empty()
                    && (t.dtype.is_some() || t.shape.is_some())
                    && !boundary.contains(t.name.as_str())
                {
                    infos.push(value_info(t));
                }
            }
        }
        gp.value_info = infos;
    }
    let mut opset_import = opsets(g);
    if flavor == Flavor::Trtc {
        opset_import.push(pb::OperatorSetIdProto {
            domain: TRTC_DOMAIN.into(),
            version: 1,
        });
    }
    Ok(ModelProto {
        ir_version: if g.meta.ir_version > 0 {
            g.meta.ir_version
        } else {
            8
        },
        opset_import,
        producer_name: "trtc".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(gp),
        ..Default::default()
    })
}

fn opsets(g: &Graph) -> Vec<pb::OperatorSetIdProto> {
    let mut v: Vec<pb::OperatorSetIdProto> = g
        .meta
        .opset_imports
        .iter()
        .map(|(domain, version)| pb::OperatorSetIdProto {
            domain: domain.clone(),
            version: *version,
        })
        .collect();
    if !v
        .iter()
        .any(|o| o.domain.is_empty() || o.domain == "ai.onnx")
    {
        v.push(pb::OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        });
    }
    v
}

pub(crate) fn value_info(t: &TensorInfo) -> ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    let shape = t.shape.as_ref().map(|s| pb::TensorShapeProto {
        dim: s
            .iter()
            .map(|d| Dimension {
                denotation: String::new(),
                value: match d {
                    Dim::Known(v) => Some(Value::DimValue(*v as i64)),
                    Dim::Sym(s) if s != "?" => Some(Value::DimParam(s.clone())),
                    Dim::Sym(_) => None,
                },
            })
            .collect(),
    });
    ValueInfoProto {
        name: t.name.clone(),
        r#type: Some(pb::TypeProto {
            denotation: String::new(),
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: t.dtype.map(|d| d.to_onnx()).unwrap_or(0),
                shape,
            })),
        }),
        doc_string: String::new(),
    }
}

fn node_proto(name: &str, op: &Op, inputs: Vec<String>, outputs: Vec<String>) -> NodeProto {
    let domain = match op {
        Op::Other(o) => o.domain.clone(),
        _ => String::new(),
    };
    NodeProto {
        name: name.to_string(),
        op_type: op.op_type().to_string(),
        domain,
        input: inputs,
        output: outputs,
        attribute: op.onnx_attributes(),
        doc_string: String::new(),
    }
}

/// Node metadata kept in a trtc-flavored node's doc string.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct NodeMeta {
    pub origin: Vec<String>,
    pub fused_ops: Vec<String>,
}

pub(crate) const META_PREFIX: &str = "trtc:";

fn trtc_node(g: &Graph, id: NodeId, inputs: Vec<String>) -> NodeProto {
    let node = g.node(id);
    let outputs = node.outputs.iter().map(|t| t.name.clone()).collect();
    let mut p = node_proto(&node.name, &node.op, inputs, outputs);
    if matches!(node.op, Op::Split { .. }) && g.meta.opset() < 13 {
        // Passes write Split in its opset-13 form (sizes an input), which an older
        // model's opset does not have: the plan marks it as trtc's so it reads back typed.
        p.domain = TRTC_DOMAIN.into();
    }
    if let Op::FusedConv(f) = &node.op {
        p.domain = TRTC_DOMAIN.into();
        p.attribute
            .push(crate::op::attr_int("residual", f.residual as i64));
        if let Some(act) = f.activation {
            p.attribute
                .push(crate::op::attr_string("activation", act.name()));
            let params: Vec<f32> = match act {
                Activation::Clip { min, max } => vec![min, max],
                Activation::LeakyRelu { alpha } => vec![alpha],
                Activation::HardSigmoid { alpha, beta } => vec![alpha, beta],
                _ => vec![],
            };
            if !params.is_empty() {
                p.attribute.push(pb::AttributeProto {
                    name: "activation_params".into(),
                    r#type: 6,
                    floats: params,
                    ..Default::default()
                });
            }
        }
    }
    let meta = NodeMeta {
        origin: node.origin.clone(),
        fused_ops: node.fused_ops.clone(),
    };
    p.doc_string = format!(
        "{META_PREFIX}{}",
        serde_json::to_string(&meta).unwrap_or_default()
    );
    p
}

fn emit_node(g: &Graph, id: NodeId, inputs: Vec<String>, gp: &mut GraphProto) -> Result<()> {
    let node = g.node(id);
    let outputs: Vec<String> = node.outputs.iter().map(|t| t.name.clone()).collect();
    let Op::FusedConv(f) = &node.op else {
        let mut p = node_proto(&node.name, &node.op, inputs, outputs);
        crate::export_opset::fit_to_opset(g, id, &mut p, g.meta.opset())?;
        gp.node.push(p);
        return Ok(());
    };
    let out = outputs[0].clone();
    let conv_out = if f.residual || f.activation.is_some() {
        format!("{out}::conv")
    } else {
        out.clone()
    };
    let conv_inputs = inputs[..3.min(inputs.len())].to_vec();
    gp.node.push(node_proto(
        &node.name,
        &Op::Conv(f.conv.clone()),
        conv_inputs,
        vec![conv_out.clone()],
    ));
    let mut last = conv_out;
    if f.residual {
        let add_out = if f.activation.is_some() {
            format!("{out}::add")
        } else {
            out.clone()
        };
        let z = inputs.get(3).cloned().unwrap_or_default();
        gp.node.push(node_proto(
            &format!("{}::add", node.name),
            &Op::Add,
            vec![last, z],
            vec![add_out.clone()],
        ));
        last = add_out;
    }
    if let Some(act) = f.activation {
        let mut act_inputs = vec![last];
        if let Activation::Clip { min, max } = act {
            for (suffix, v) in [("min", min), ("max", max)] {
                let name = format!("{}::{suffix}", node.name);
                let t: Arc<Tensor> = Arc::new(tensor0(v));
                gp.initializer.push(tensor_to_proto(&name, &t));
                act_inputs.push(name);
            }
        }
        let mut p = node_proto(
            &format!("{}::{}", node.name, act.name()),
            &act.to_op(),
            act_inputs,
            vec![out],
        );
        crate::export_opset::fit_activation_to_opset(&mut p, act, gp, g.meta.opset());
        gp.node.push(p);
    }
    Ok(())
}

/// Names of initializers in a model, for tests and reports.
pub fn initializer_names(m: &ModelProto) -> Vec<String> {
    m.graph
        .iter()
        .flat_map(|g| g.initializer.iter().map(|t: &TensorProto| t.name.clone()))
        .collect()
}

/// Op histogram of an exported model.
pub fn op_histogram(m: &ModelProto) -> HashMap<String, usize> {
    let mut h = HashMap::new();
    for n in m.graph.iter().flat_map(|g| g.node.iter()) {
        *h.entry(n.op_type.clone()).or_insert(0) += 1;
    }
    h
}
