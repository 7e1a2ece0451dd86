//! Graph validity: acyclic, every required input produced, slots in range, unique tensor
//! names, and shapes consistent with what inference derives from the inputs.

use crate::error::{IrError, Result};
use crate::graph::{Graph, Outlet};
use crate::infer::{infer_node, Known};
use crate::shape::{shape_to_string, Dim};
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use std::collections::HashSet;

impl Graph {
    /// Check the graph; the error names the first problem found.
    pub fn validate(&self) -> Result<()> {
        let order = self.topo_order()?;
        let invalid = |s: String| Err(IrError::Invalid(s));
        for &o in self.outputs() {
            if !self.contains(o.node) || o.slot >= self.node(o.node).outputs.len() {
                return invalid(format!("graph output {o:?} does not exist"));
            }
        }
        for &i in self.inputs() {
            if !self.contains(i) || !self.node(i).op.is_input() {
                return invalid(format!("graph input {i:?} is not an Input node"));
            }
        }
        let mut names = HashSet::new();
        for &id in &order {
            let node = self.node(id);
            for t in &node.outputs {
                if !t.name.is_empty() && !names.insert(t.name.as_str()) {
                    return Err(IrError::DuplicateTensor(t.name.clone()));
                }
            }
            let mut seen = vec![false; node.num_inputs];
            for e in self.g.edges_directed(id, Direction::Incoming) {
                let w = e.weight();
                if w.dst_slot >= node.num_inputs || seen[w.dst_slot] {
                    return invalid(format!(
                        "node `{}`: input slot {} is wired wrongly",
                        node.name, w.dst_slot
                    ));
                }
                seen[w.dst_slot] = true;
                if w.src_slot >= self.node(e.source()).outputs.len() {
                    return invalid(format!(
                        "node `{}` reads a missing output of `{}`",
                        node.name,
                        self.node(e.source()).name
                    ));
                }
            }
            if let Some(slot) =
                (0..node.op.required_inputs().min(node.num_inputs)).find(|&s| !seen[s])
            {
                return invalid(format!(
                    "node `{}` ({}): input {slot} is produced by nobody",
                    node.name,
                    node.op.op_type()
                ));
            }
            if node.op.required_inputs() > node.num_inputs {
                return invalid(format!(
                    "node `{}` ({}) has {} inputs, needs {}",
                    node.name,
                    node.op.op_type(),
                    node.num_inputs,
                    node.op.required_inputs()
                ));
            }
        }
        self.check_shapes(&order)
    }

    /// Stored shapes must agree with shapes inferred from the stored input shapes.
    fn check_shapes(&self, order: &[crate::graph::NodeId]) -> Result<()> {
        let mut known = Known::default();
        for &id in order {
            let inferred = infer_node(self, id, &mut known)?;
            for (slot, inf) in inferred.iter().enumerate() {
                let stored = self.tensor(Outlet::new(id, slot));
                let (Some(a), Some(b)) = (&stored.shape, &inf.shape) else {
                    continue;
                };
                let differ = a.len() != b.len()
                    || a.iter()
                        .zip(b)
                        .any(|(x, y)| matches!((x, y), (Dim::Known(p), Dim::Known(q)) if p != q));
                if differ {
                    let n = self.node(id);
                    return Err(IrError::Shape {
                        node: n.name.clone(),
                        op: n.op.op_type().into(),
                        detail: format!(
                            "tensor `{}` is recorded as {} but its inputs give {}",
                            stored.name,
                            shape_to_string(a),
                            shape_to_string(b)
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::builder::GraphBuilder;
    use crate::graph::Outlet;
    use crate::op::Op;
    use crate::shape::shape_of;

    #[test]
    fn a_recorded_shape_that_disagrees_is_invalid() {
        let mut b = GraphBuilder::new();
        let x = b.input("x", &[1, 4]);
        let r = b.op("relu", Op::Relu, &[x]);
        b.output(r);
        let mut g = b.build().unwrap();
        g.validate().unwrap();
        let mut info = g.tensor(r).clone();
        info.shape = Some(shape_of(&[1, 5]));
        g.set_tensor_info(r, info);
        let err = g.validate().unwrap_err().to_string();
        assert!(err.contains("[1,5]") && err.contains("[1,4]"), "{err}");
    }

    #[test]
    fn a_missing_required_input_is_invalid() {
        let mut b = GraphBuilder::new();
        let x = b.input("x", &[1, 4]);
        let a = b.op("add", Op::Add, &[x, x]);
        b.output(a);
        let mut g = b.build().unwrap();
        g.disconnect(a.node, 1);
        let err = g.validate().unwrap_err().to_string();
        assert!(err.contains("input 1 is produced by nobody"), "{err}");
    }

    #[test]
    fn a_cycle_is_invalid() {
        let mut b = GraphBuilder::new();
        let x = b.input("x", &[1, 4]);
        let a = b.op("add", Op::Add, &[x, x]);
        let r = b.op("relu", Op::Relu, &[a]);
        b.output(r);
        let mut g = b.build().unwrap();
        g.connect(Outlet::new(r.node, 0), a.node, 1).unwrap();
        assert!(g.validate().unwrap_err().to_string().contains("cycle"));
    }
}
