//! The graph: a petgraph `StableGraph` (indices survive deletions) of nodes joined by tensors.
//!
//! Node ids stay valid while their node lives, but petgraph hands the id of a removed node
//! to the next node added: a pass must not keep an id across a removal and an addition
//! without checking what it names now (`Graph::contains`, or re-reading the inputs).
//!
//! A node owns the metadata of the tensors it produces (`outputs`); an edge is one use of
//! such a tensor: it names the producer's output slot and the consumer's input slot, and
//! `Graph::edge_tensor` gives its name, element type and shape. Graph inputs are `Input`
//! nodes, weights are `Const` nodes holding an `Arc<Tensor>`: held once, shared by every
//! clone of the graph and every pass.

use crate::error::{IrError, Result};
use crate::op::Op;
use crate::shape::TensorInfo;
use petgraph::stable_graph::{EdgeIndex, NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use std::collections::HashMap;
use std::sync::Arc;
use tract_onnx::prelude::Tensor;

pub type NodeId = NodeIndex;

/// One output slot of one node: a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Outlet {
    pub node: NodeId,
    pub slot: usize,
}

impl Outlet {
    pub fn new(node: NodeId, slot: usize) -> Outlet {
        Outlet { node, slot }
    }
}

#[derive(Clone, Debug)]
pub struct Node {
    pub name: String,
    pub op: Op,
    /// Number of input slots (some optional slots may be unconnected).
    pub num_inputs: usize,
    pub outputs: Vec<TensorInfo>,
    /// Names of the original model's nodes this node stands for (more than one once fused).
    pub origin: Vec<String>,
    /// Op types this node stands for, in order, e.g. `["Conv", "BatchNormalization", "Relu"]`.
    pub fused_ops: Vec<String>,
}

impl Node {
    pub fn new(
        name: impl Into<String>,
        op: Op,
        num_inputs: usize,
        outputs: Vec<TensorInfo>,
    ) -> Node {
        let name = name.into();
        let op_type = op.op_type().to_string();
        Node {
            origin: vec![name.clone()],
            fused_ops: vec![op_type],
            name,
            op,
            num_inputs,
            outputs,
        }
    }

    /// `Conv+BatchNormalization+Relu` for fused nodes, the op type otherwise.
    pub fn label(&self) -> String {
        if self.fused_ops.len() > 1 {
            self.fused_ops.join("+")
        } else {
            self.op.op_type().to_string()
        }
    }
}

/// One use of a tensor: producer output slot -> consumer input slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    pub src_slot: usize,
    pub dst_slot: usize,
}

/// Model-level metadata kept for export.
#[derive(Clone, Debug, Default)]
pub struct ModelMeta {
    pub ir_version: i64,
    pub opset_imports: Vec<(String, i64)>,
    pub producer_name: String,
    pub producer_version: String,
    pub graph_name: String,
}

impl ModelMeta {
    /// The default-domain opset version.
    pub fn opset(&self) -> i64 {
        self.opset_imports
            .iter()
            .find(|(d, _)| d.is_empty() || d == "ai.onnx")
            .map(|(_, v)| *v)
            .unwrap_or(17)
    }
}

#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub(crate) g: StableDiGraph<Node, Edge>,
    pub(crate) inputs: Vec<NodeId>,
    pub(crate) outputs: Vec<Outlet>,
    pub meta: ModelMeta,
}

impl Graph {
    pub fn new(meta: ModelMeta) -> Graph {
        Graph {
            meta,
            ..Default::default()
        }
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.g[id]
    }

    pub fn try_node(&self, id: NodeId) -> Option<&Node> {
        self.g.node_weight(id)
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.g.contains_node(id)
    }

    /// All node ids, in index order.
    pub fn node_ids(&self) -> Vec<NodeId> {
        self.g.node_indices().collect()
    }

    pub fn node_count(&self) -> usize {
        self.g.node_count()
    }

    /// Nodes that compute something: neither inputs nor constants.
    pub fn compute_node_count(&self) -> usize {
        self.g
            .node_weights()
            .filter(|n| !n.op.is_const() && !n.op.is_input())
            .count()
    }

    pub fn inputs(&self) -> &[NodeId] {
        &self.inputs
    }

    pub fn outputs(&self) -> &[Outlet] {
        &self.outputs
    }

    pub fn tensor(&self, o: Outlet) -> &TensorInfo {
        &self.g[o.node].outputs[o.slot]
    }

    pub fn edge_tensor(&self, e: EdgeIndex) -> Option<&TensorInfo> {
        let (src, _) = self.g.edge_endpoints(e)?;
        let w = self.g.edge_weight(e)?;
        self.g[src].outputs.get(w.src_slot)
    }

    /// The producer of each input slot, in slot order (`None` for an unconnected optional slot).
    pub fn node_inputs(&self, id: NodeId) -> Vec<Option<Outlet>> {
        let mut v = vec![None; self.g[id].num_inputs];
        for e in self.g.edges_directed(id, Direction::Incoming) {
            let w = e.weight();
            if w.dst_slot < v.len() {
                v[w.dst_slot] = Some(Outlet::new(e.source(), w.src_slot));
            }
        }
        v
    }

    pub fn input_outlet(&self, id: NodeId, slot: usize) -> Option<Outlet> {
        self.node_inputs(id).get(slot).copied().flatten()
    }

    /// Info of input `slot` of node `id`.
    pub fn input_info(&self, id: NodeId, slot: usize) -> Option<&TensorInfo> {
        self.input_outlet(id, slot).map(|o| self.tensor(o))
    }

    /// Consumers of a tensor: (node, input slot), sorted.
    pub fn consumers(&self, o: Outlet) -> Vec<(NodeId, usize)> {
        let mut v: Vec<(NodeId, usize)> = self
            .g
            .edges_directed(o.node, Direction::Outgoing)
            .filter(|e| e.weight().src_slot == o.slot)
            .map(|e| (e.target(), e.weight().dst_slot))
            .collect();
        v.sort();
        v
    }

    /// Nodes reading any output of `id`, deduplicated.
    pub fn successors(&self, id: NodeId) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self.g.neighbors_directed(id, Direction::Outgoing).collect();
        v.sort();
        v.dedup();
        v
    }

    pub fn predecessors(&self, id: NodeId) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self.g.neighbors_directed(id, Direction::Incoming).collect();
        v.sort();
        v.dedup();
        v
    }

    pub fn is_graph_output(&self, o: Outlet) -> bool {
        self.outputs.contains(&o)
    }

    /// The tensor is read by someone or is a graph output.
    pub fn is_used(&self, o: Outlet) -> bool {
        self.is_graph_output(o) || !self.consumers(o).is_empty()
    }

    /// The constant behind a tensor, if it is one.
    pub fn const_value(&self, o: Outlet) -> Option<&Arc<Tensor>> {
        match &self.g[o.node].op {
            Op::Const(t) => Some(t),
            _ => None,
        }
    }

    /// The constant feeding input `slot` of `id`.
    pub fn input_const(&self, id: NodeId, slot: usize) -> Option<&Arc<Tensor>> {
        self.input_outlet(id, slot)
            .and_then(|o| self.const_value(o))
    }

    /// Topological order of all nodes, or the cycle error.
    pub fn topo_order(&self) -> Result<Vec<NodeId>> {
        petgraph::algo::toposort(&self.g, None)
            .map_err(|c| IrError::Cycle(self.g[c.node_id()].name.clone()))
    }

    /// Map from tensor name to the outlet producing it.
    pub fn tensor_names(&self) -> HashMap<String, Outlet> {
        let mut m = HashMap::new();
        for id in self.g.node_indices() {
            for (slot, t) in self.g[id].outputs.iter().enumerate() {
                m.insert(t.name.clone(), Outlet::new(id, slot));
            }
        }
        m
    }

    pub fn find_node(&self, name: &str) -> Option<NodeId> {
        self.g.node_indices().find(|&id| self.g[id].name == name)
    }

    /// Parameter count: elements of all constants.
    pub fn parameter_count(&self) -> usize {
        self.g
            .node_weights()
            .map(|n| match &n.op {
                Op::Const(t) => t.len(),
                _ => 0,
            })
            .sum()
    }

    /// Read-only access to the underlying petgraph, for algorithms (never for edits).
    pub fn petgraph(&self) -> &StableDiGraph<Node, Edge> {
        &self.g
    }
}
