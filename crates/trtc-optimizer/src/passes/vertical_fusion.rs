//! Vertical fusion: conv + bias + activation, and the residual add, in one node.
//!
//! Rules:
//! - `act(Conv(x, W, B))` => `FusedConv(x, W, B; act)`;
//! - `Add(FusedConv(x, W, B), z)` => `FusedConv(x, W, B, z)` (residual), when the fused
//!   conv has no activation yet;
//! - `act(FusedConv(...))` => the activation joins, when it has none yet;
//!
//! with act one of Relu, Clip (constant bounds), LeakyRelu, Sigmoid, HardSigmoid,
//! HardSwish. A Conv without bias gets a zero bias. The fused node keeps the original
//! node names (`origin`) and op types (`Conv+Add+Relu`).
//!
//! Must not fire: when the conv output is read by anyone else or is a graph output (the
//! pre-activation value would be lost), when the Add broadcasts (z must have the conv
//! output's shape), when Clip's bounds are not constants, or when the weights are not
//! a constant f32 tensor with a static shape.

use crate::error::Result;
use crate::pass::{Pass, PassOutcome};
use crate::util::{activation_of, f32_tensor, sole_consumer};
use std::sync::Arc;
use trtc_ir::tract_onnx::prelude::DatumType;
use trtc_ir::{FusedConv, Graph, NodeId, Op, Outlet};

pub struct VerticalFusion;

/// What follows a conv and can join it.
enum Follower {
    Activation(NodeId, trtc_ir::Activation),
    Residual(NodeId, Outlet),
}

fn follower(g: &Graph, conv: NodeId) -> Option<Follower> {
    let y = Outlet::new(conv, 0);
    let (next, slot) = sole_consumer(g, y)?;
    if let Some(act) = activation_of(g, next) {
        return (slot == 0).then_some(Follower::Activation(next, act));
    }
    if matches!(g.node(next).op, Op::Add) {
        let z = g.input_outlet(next, 1 - slot)?;
        let (ys, zs) = (g.tensor(y).shape.as_ref()?, g.tensor(z).shape.as_ref()?);
        let out = g.tensor(Outlet::new(next, 0)).shape.as_ref()?;
        // Equal shapes, symbolic dims included (the same batch symbol on both sides).
        if z != y && !ys.is_empty() && ys == zs && ys == out {
            return Some(Follower::Residual(next, z));
        }
    }
    None
}

impl VerticalFusion {
    /// Turn a Conv into a FusedConv with an explicit bias.
    fn to_fused(g: &mut Graph, conv: NodeId) -> Result<bool> {
        let Op::Conv(attrs) = g.node(conv).op.clone() else {
            return Ok(false);
        };
        let Some(w) = g.input_const(conv, 1) else {
            return Ok(false);
        };
        if w.datum_type() != DatumType::F32 || w.rank() < 3 {
            return Ok(false);
        }
        let m = w.shape()[0];
        let needs_bias = g.input_outlet(conv, 2).is_none();
        g.set_op(
            conv,
            Op::FusedConv(FusedConv {
                conv: attrs,
                residual: false,
                activation: None,
            }),
            3,
        );
        if needs_bias {
            let name = g.node(conv).name.clone();
            let b = g.add_const(
                format!("{name}::B"),
                Arc::new(f32_tensor(&[m], &vec![0.0; m])?),
            );
            g.connect(b, conv, 2)?;
        }
        Ok(true)
    }

    /// Join what follows `id` into it; true when something joined.
    fn join_next(g: &mut Graph, id: NodeId) -> Result<bool> {
        let (residual, activation) = match &g.node(id).op {
            Op::Conv(_) => (false, None),
            Op::FusedConv(f) => (f.residual, f.activation),
            _ => return Ok(false),
        };
        if activation.is_some() {
            return Ok(false);
        }
        let Some(f) = follower(g, id) else {
            return Ok(false);
        };
        if matches!(f, Follower::Residual(..)) && residual {
            return Ok(false);
        }
        if matches!(g.node(id).op, Op::Conv(_)) && !Self::to_fused(g, id)? {
            return Ok(false);
        }
        let Op::FusedConv(mut fused) = g.node(id).op.clone() else {
            return Ok(false);
        };
        let absorbed = match f {
            Follower::Activation(next, act) => {
                fused.activation = Some(act);
                g.set_op(id, Op::FusedConv(fused), 3 + residual as usize);
                next
            }
            Follower::Residual(next, z) => {
                fused.residual = true;
                g.set_op(id, Op::FusedConv(fused), 4);
                g.connect(z, id, 3)?;
                next
            }
        };
        g.absorb(id, absorbed);
        g.replace_uses(Outlet::new(absorbed, 0), Outlet::new(id, 0))?;
        g.remove_node(absorbed)?;
        Ok(true)
    }
}

impl Pass for VerticalFusion {
    fn name(&self) -> &'static str {
        "vertical-fusion"
    }

    fn run(&self, g: &mut Graph) -> Result<PassOutcome> {
        let mut out = PassOutcome::default();
        for id in g.topo_order()? {
            if !g.contains(id) {
                continue;
            }
            while Self::join_next(g, id)? {
                out.rewrites += 1;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_preserves, random_tensor};
    use trtc_ir::tract_onnx::prelude::tensor0;
    use trtc_ir::{Activation, ConvAttrs, GraphBuilder};

    fn conv(
        b: &mut GraphBuilder,
        name: &str,
        x: Outlet,
        cin: usize,
        cout: usize,
        seed: u64,
    ) -> Outlet {
        let w = b.constant(
            &format!("{name}_w"),
            random_tensor(&[cout, cin, 3, 3], seed),
        );
        let bias = b.constant(&format!("{name}_b"), random_tensor(&[cout], seed + 1));
        b.op(
            name,
            Op::Conv(ConvAttrs {
                group: 1,
                pads: vec![1, 1, 1, 1],
                ..Default::default()
            }),
            &[x, w, bias],
        )
    }

    #[test]
    fn conv_residual_relu_becomes_one_node() {
        let mut b = GraphBuilder::new();
        let x = b.input("x", &[1, 4, 5, 5]);
        let c1 = conv(&mut b, "c1", x, 4, 4, 1);
        let r1 = b.op("r1", Op::Relu, &[c1]);
        let c2 = conv(&mut b, "c2", r1, 4, 4, 3);
        let add = b.op("add", Op::Add, &[x, c2]);
        let r2 = b.op("r2", Op::Relu, &[add]);
        b.output(r2);
        let after = assert_preserves(&VerticalFusion, &b.build().unwrap());
        assert_eq!(after.compute_node_count(), 2);
        let c2 = after.find_node("c2").unwrap();
        let Op::FusedConv(f) = &after.node(c2).op else {
            panic!("c2 not fused")
        };
        assert!(f.residual);
        assert_eq!(f.activation, Some(Activation::Relu));
        assert_eq!(after.node(c2).label(), "Conv+Add+Relu");
        assert_eq!(after.node(c2).origin, vec!["c2", "add", "r2"]);
    }

    #[test]
    fn clip_with_constant_bounds_fuses() {
        let mut b = GraphBuilder::new();
        let x = b.input("x", &[1, 2, 4, 4]);
        let c = conv(&mut b, "c", x, 2, 3, 1);
        let (lo, hi) = (
            b.constant("lo", tensor0(0f32)),
            b.constant("hi", tensor0(6f32)),
        );
        let clip = b.op("clip", Op::Clip, &[c, lo, hi]);
        b.output(clip);
        let after = assert_preserves(&VerticalFusion, &b.build().unwrap());
        assert_eq!(after.compute_node_count(), 1);
    }

    #[test]
    fn a_conv_read_twice_is_not_fused() {
        let mut b = GraphBuilder::new();
        let x = b.input("x", &[1, 2, 4, 4]);
        let c = conv(&mut b, "c", x, 2, 2, 1);
        let r = b.op("r", Op::Relu, &[c]);
        let s = b.op("s", Op::Add, &[r, c]);
        b.output(s);
        let after = assert_preserves(&VerticalFusion, &b.build().unwrap());
        assert!(matches!(
            after.node(after.find_node("c").unwrap()).op,
            Op::Conv(_)
        ));
    }

    /// A dynamic batch is the same symbol on both sides of the Add: it fuses (as in every
    /// exported ResNet); a different symbol may be a different size and does not.
    #[test]
    fn residual_with_a_symbolic_batch_fuses_only_with_the_same_symbol() {
        for (z_batch, fuses) in [("N", true), ("M", false)] {
            let mut b = GraphBuilder::new();
            let dims = |n: &str| -> Vec<trtc_ir::Dim> {
                vec![n.into(), 2u64.into(), 4u64.into(), 4u64.into()]
            };
            let x = b.input_with("x", trtc_ir::DType::F32, dims("N"));
            let z = b.input_with("z", trtc_ir::DType::F32, dims(z_batch));
            let c = conv(&mut b, "c", x, 2, 2, 1);
            let a = b.op("a", Op::Add, &[c, z]);
            b.output(a);
            let mut fused = b.build().unwrap();
            VerticalFusion.run(&mut fused).unwrap();
            let c = fused.find_node("c").unwrap();
            let residual = matches!(&fused.node(c).op, Op::FusedConv(f) if f.residual);
            assert_eq!(residual, fuses, "z batch {z_batch}");
        }
    }

    #[test]
    fn broadcasting_add_is_not_a_residual() {
        let mut b = GraphBuilder::new();
        let x = b.input("x", &[1, 2, 4, 4]);
        let c = conv(&mut b, "c", x, 2, 2, 1);
        let z = b.input("z", &[1, 2, 1, 1]);
        let a = b.op("a", Op::Add, &[c, z]);
        b.output(a);
        let after = assert_preserves(&VerticalFusion, &b.build().unwrap());
        assert_eq!(after.compute_node_count(), 2);
    }
}
