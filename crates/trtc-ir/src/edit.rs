//! The graph-edit API: the only way passes change a graph.
//!
//! Every rewrite is built from these few operations: add a node or constant, connect an
//! input, move every use of one tensor to another, and remove nodes. Graph outputs keep
//! their names when their producer changes.

use crate::dtype::DType;
use crate::error::{IrError, Result};
use crate::graph::{Edge, Graph, Node, NodeId, Outlet};
use crate::op::Op;
use crate::shape::{shape_of, TensorInfo};
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use std::collections::HashSet;
use std::sync::Arc;
use tract_onnx::prelude::Tensor;

impl Graph {
    /// Add a node; connect its inputs with `connect`.
    pub fn add_node(&mut self, node: Node) -> NodeId {
        self.g.add_node(node)
    }

    /// Add a graph input.
    pub fn add_input(&mut self, info: TensorInfo) -> NodeId {
        let id = self
            .g
            .add_node(Node::new(info.name.clone(), Op::Input, 0, vec![info]));
        self.inputs.push(id);
        id
    }

    /// Add a constant; its tensor info is derived from the value.
    pub fn add_const(&mut self, name: impl Into<String>, value: Arc<Tensor>) -> Outlet {
        let name = self.unique_name(&name.into());
        let info = TensorInfo {
            name: name.clone(),
            dtype: DType::from_datum(value.datum_type()),
            shape: Some(shape_of(value.shape())),
        };
        Outlet::new(
            self.g
                .add_node(Node::new(name, Op::Const(value), 0, vec![info])),
            0,
        )
    }

    /// Mark a tensor as a graph output.
    pub fn add_output(&mut self, o: Outlet) {
        self.outputs.push(o);
    }

    /// Connect `from` to input `slot` of `to`, replacing what was there.
    pub fn connect(&mut self, from: Outlet, to: NodeId, slot: usize) -> Result<()> {
        if !self.g.contains_node(from.node) || !self.g.contains_node(to) {
            return Err(IrError::Invalid("connect: node does not exist".into()));
        }
        if from.slot >= self.g[from.node].outputs.len() || slot >= self.g[to].num_inputs {
            return Err(IrError::Invalid(format!(
                "connect: slot out of range ({} -> {}:{slot})",
                self.g[from.node].name, self.g[to].name
            )));
        }
        self.disconnect(to, slot);
        self.g.add_edge(
            from.node,
            to,
            Edge {
                src_slot: from.slot,
                dst_slot: slot,
            },
        );
        Ok(())
    }

    /// Leave input `slot` of `node` unconnected.
    pub fn disconnect(&mut self, node: NodeId, slot: usize) {
        let old: Vec<_> = self
            .g
            .edges_directed(node, Direction::Incoming)
            .filter(|e| e.weight().dst_slot == slot)
            .map(|e| e.id())
            .collect();
        for e in old {
            self.g.remove_edge(e);
        }
    }

    /// Every consumer of `old` (and the graph output, if `old` is one) reads `new` instead.
    /// A graph output keeps its name: the two tensors swap names.
    pub fn replace_uses(&mut self, old: Outlet, new: Outlet) -> Result<()> {
        if old == new {
            return Ok(());
        }
        for (consumer, slot) in self.consumers(old) {
            self.connect(new, consumer, slot)?;
        }
        if self.outputs.contains(&old) {
            for o in self.outputs.iter_mut().filter(|o| **o == old) {
                *o = new;
            }
            let old_name = self.g[old.node].outputs[old.slot].name.clone();
            let new_name =
                std::mem::replace(&mut self.g[new.node].outputs[new.slot].name, old_name);
            self.g[old.node].outputs[old.slot].name = new_name;
        }
        Ok(())
    }

    /// Remove a node and its edges. Its tensors must no longer be graph outputs.
    pub fn remove_node(&mut self, id: NodeId) -> Result<Node> {
        if self.outputs.iter().any(|o| o.node == id) {
            return Err(IrError::Invalid(format!(
                "cannot remove `{}`: it produces a graph output",
                self.g[id].name
            )));
        }
        self.inputs.retain(|&i| i != id);
        self.g
            .remove_node(id)
            .ok_or_else(|| IrError::Invalid("remove_node: no such node".into()))
    }

    /// Remove every node from which no graph output can be reached (keeps graph inputs).
    /// Returns the removed nodes' names.
    pub fn remove_unreachable(&mut self) -> Vec<String> {
        let mut live: HashSet<NodeId> = HashSet::new();
        let mut stack: Vec<NodeId> = self.outputs.iter().map(|o| o.node).collect();
        while let Some(n) = stack.pop() {
            if live.insert(n) {
                stack.extend(self.g.neighbors_directed(n, Direction::Incoming));
            }
        }
        let dead: Vec<NodeId> = self
            .g
            .node_indices()
            .filter(|n| !live.contains(n) && !self.inputs.contains(n))
            .collect();
        dead.into_iter()
            .filter_map(|n| self.g.remove_node(n))
            .map(|n| n.name)
            .collect()
    }

    /// A node or tensor name based on `base` that no node and no tensor uses yet.
    pub fn unique_name(&self, base: &str) -> String {
        let taken = |s: &str| {
            self.g
                .node_weights()
                .any(|n| n.name == s || n.outputs.iter().any(|t| t.name == s))
        };
        if !taken(base) {
            return base.to_string();
        }
        (1..)
            .map(|i| format!("{base}_{i}"))
            .find(|s| !taken(s))
            .unwrap_or_default()
    }

    /// Give a node a new op and number of input slots (slots past the new count are cut).
    pub fn set_op(&mut self, id: NodeId, op: Op, num_inputs: usize) {
        let cut: Vec<_> = self
            .g
            .edges_directed(id, Direction::Incoming)
            .filter(|e| e.weight().dst_slot >= num_inputs)
            .map(|e| e.id())
            .collect();
        for e in cut {
            self.g.remove_edge(e);
        }
        let n = &mut self.g[id];
        n.op = op;
        n.num_inputs = num_inputs;
    }

    /// Record that `target` now also stands for `absorbed` (its names and op types).
    pub fn absorb(&mut self, target: NodeId, absorbed: NodeId) {
        let (origin, ops) = {
            let a = &self.g[absorbed];
            (a.origin.clone(), a.fused_ops.clone())
        };
        let t = &mut self.g[target];
        t.origin.extend(origin);
        t.fused_ops.extend(ops);
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.g[id]
    }

    /// Set a tensor's metadata (shape inference writes through this).
    pub fn set_tensor_info(&mut self, o: Outlet, info: TensorInfo) {
        self.g[o.node].outputs[o.slot] = info;
    }

    /// Order graph inputs / outputs (used by the loader and subgraph extraction).
    pub fn set_outputs(&mut self, outputs: Vec<Outlet>) {
        self.outputs = outputs;
    }
}

#[cfg(test)]
mod tests {
    use crate::builder::GraphBuilder;
    use crate::op::Op;

    #[test]
    fn replace_uses_moves_consumers_and_keeps_output_names() {
        let mut b = GraphBuilder::new();
        let x = b.input("x", &[1, 4]);
        let r = b.op("relu", Op::Relu, &[x]);
        let i = b.op("id", Op::Identity, &[r]);
        b.output(i);
        let mut g = b.build().unwrap();
        let out_name = g.tensor(g.outputs()[0]).name.clone();
        g.replace_uses(i, r).unwrap();
        assert_eq!(g.outputs()[0], r);
        assert_eq!(g.tensor(r).name, out_name);
        let removed = g.remove_unreachable();
        assert_eq!(removed, vec!["id".to_string()]);
        g.validate().unwrap();
    }

    #[test]
    fn cannot_remove_an_output_producer() {
        let mut b = GraphBuilder::new();
        let x = b.input("x", &[2]);
        let r = b.op("relu", Op::Relu, &[x]);
        b.output(r);
        let mut g = b.build().unwrap();
        assert!(g.remove_node(r.node).is_err());
    }

    #[test]
    fn unique_names_avoid_collisions() {
        let mut b = GraphBuilder::new();
        let x = b.input("x", &[2]);
        let r = b.op("relu", Op::Relu, &[x]);
        b.output(r);
        let g = b.build().unwrap();
        assert_eq!(g.unique_name("relu"), "relu_1");
        assert_eq!(g.unique_name("fresh"), "fresh");
    }
}
