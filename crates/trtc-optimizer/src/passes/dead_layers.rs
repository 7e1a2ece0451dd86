//! Dead-layer elimination.
//!
//! Rules:
//! - a node none of whose outputs reaches a graph output => removed (training-only heads,
//!   unused initializers);
//! - `Identity(x)`, `Dropout(x)` at inference (no `training_mode`, or a constant false, and
//!   the mask unused), `Reshape(x)` to x's own static shape, `Transpose(x)` with the
//!   identity permutation, `Cast(x)` to x's own type => x.
//!
//! Must not fire: on a no-op whose output is a graph output while its input is a graph
//! input or another graph output (the two names would collide); on a Reshape or Transpose
//! whose shapes are not fully static.

use crate::error::Result;
use crate::pass::{Pass, PassOutcome};
use trtc_ir::shape::known_shape;
use trtc_ir::tensor::tensor_to_i64s;
use trtc_ir::{Graph, NodeId, Op, Outlet};

pub struct DeadLayers;

/// The input a no-op node passes through, if `id` is one.
fn no_op_input(g: &Graph, id: NodeId) -> Option<Outlet> {
    let node = g.node(id);
    let x = g.input_outlet(id, 0)?;
    let xi = g.tensor(x);
    let out = &node.outputs[0];
    let same_static_shape = || match (
        xi.shape.as_deref().and_then(known_shape),
        out.shape.as_deref().and_then(known_shape),
    ) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    };
    let fires = match &node.op {
        Op::Identity => true,
        Op::Dropout { .. } => {
            let training_off = match g.input_outlet(id, 2) {
                None => true,
                Some(_) => g
                    .input_const(id, 2)
                    .and_then(|t| tensor_to_i64s(t))
                    .is_some_and(|v| v.iter().all(|&x| x == 0)),
            };
            let mask_unused = node.outputs.len() < 2 || !g.is_used(Outlet::new(id, 1));
            training_off && mask_unused
        }
        Op::Reshape { .. } => same_static_shape(),
        Op::Transpose { perm } => {
            let rank = xi.rank()?;
            match perm {
                Some(p) => p.iter().enumerate().all(|(i, &a)| a == i as i64),
                None => rank <= 1,
            }
        }
        Op::Cast { to } => xi.dtype == Some(*to),
        _ => false,
    };
    fires.then_some(x)
}

impl Pass for DeadLayers {
    fn name(&self) -> &'static str {
        "dead-layers"
    }

    fn run(&self, g: &mut Graph) -> Result<PassOutcome> {
        let mut out = PassOutcome::default();
        for id in g.topo_order()? {
            let Some(x) = no_op_input(g, id) else {
                continue;
            };
            let y = Outlet::new(id, 0);
            if g.is_graph_output(y) && (g.node(x.node).op.is_input() || g.is_graph_output(x)) {
                out.skip(
                    g,
                    id,
                    "its output is a graph output and its input is a graph input or output",
                );
                continue;
            }
            g.replace_uses(y, x)?;
            out.rewrites += 1;
        }
        out.rewrites += g.remove_unreachable().len();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_preserves, random_tensor};
    use trtc_ir::{DType, GraphBuilder};

    #[test]
    fn removes_dead_branches_unused_constants_and_no_ops() {
        let mut b = GraphBuilder::new();
        let x = b.input("x", &[1, 4]);
        let w = b.constant("unused", random_tensor(&[4], 1));
        let _ = w;
        let i = b.op("id", Op::Identity, &[x]);
        let d = b.op_n("drop", Op::Dropout { seed: None }, &[Some(i)], 1)[0];
        let r = b.op("relu", Op::Relu, &[d]);
        let c = b.op("cast", Op::Cast { to: DType::F32 }, &[r]);
        let _dead = b.op("dead_head", Op::Sigmoid, &[r]);
        b.output(c);
        let g = b.build().unwrap();
        let after = assert_preserves(&DeadLayers, &g);
        assert_eq!(after.compute_node_count(), 1, "only relu stays");
        assert_eq!(
            after.node_count(),
            2,
            "input + relu; the unused constant is gone"
        );
        assert_eq!(
            after.tensor(after.outputs()[0]).name,
            "cast",
            "the output keeps its name"
        );
    }

    #[test]
    fn keeps_an_identity_between_input_and_output() {
        let mut b = GraphBuilder::new();
        let x = b.input("x", &[1, 4]);
        let i = b.op("id", Op::Identity, &[x]);
        b.output(i);
        let mut g = b.build().unwrap();
        let out = DeadLayers.run(&mut g).unwrap();
        assert_eq!(out.rewrites, 0);
        assert_eq!(out.skipped.len(), 1);
    }
}
