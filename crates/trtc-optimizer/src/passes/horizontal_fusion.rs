//! Horizontal fusion: sibling convolutions become one wider convolution.
//!
//! Rule: convolutions (Conv, or FusedConv without residual) that read the same tensor with
//! the same kernel, stride, padding, dilation, group (1) and activation
//! => one convolution whose weights and biases are the siblings' concatenated along the
//! output channels, followed by `Split` on the channel axis. When every sibling feeds only
//! one and the same Concat (channel axis), at consecutive inputs, the Split disappears:
//! the merged conv takes the siblings' place in the Concat and writes its slice.
//!
//! Must not fire: on siblings that differ in any attribute or activation, grouped or
//! depthwise convs (merging them would change the grouping), residual convs, weights or
//! biases that are not constant f32, or outputs of unknown channel count.

use crate::error::Result;
use crate::pass::{Pass, PassOutcome};
use crate::util::{const_f32, f32_tensor, sole_consumer};
use std::collections::BTreeMap;
use std::sync::Arc;
use trtc_ir::tract_onnx::prelude::{tensor1, DatumType};
use trtc_ir::{Activation, ConvAttrs, FusedConv, Graph, Node, NodeId, Op, Outlet, TensorInfo};

pub struct HorizontalFusion;

/// Everything that must be equal for two convs to merge, as a comparable key.
#[derive(Clone, Debug, PartialEq)]
struct MergeKey {
    input: Outlet,
    attrs: ConvAttrs,
    kernel: Vec<usize>,
    activation: Option<Activation>,
    fused: bool,
}

fn merge_key(g: &Graph, id: NodeId) -> Option<MergeKey> {
    let (attrs, activation, fused) = match &g.node(id).op {
        Op::Conv(c) => (c.clone(), None, false),
        Op::FusedConv(f) if !f.residual => (f.conv.clone(), f.activation, true),
        _ => return None,
    };
    if attrs.group != 1 {
        return None;
    }
    // Only types and shapes here: the weights are read (and copied) when a group merges.
    let is_f32_const = |slot: usize| {
        g.input_const(id, slot)
            .filter(|t| t.datum_type() == DatumType::F32)
    };
    let w = is_f32_const(1)?;
    if w.rank() < 3 || (g.input_outlet(id, 2).is_some() && is_f32_const(2).is_none()) {
        return None;
    }
    let kernel = w.shape()[2..].to_vec();
    let attrs = ConvAttrs {
        kernel_shape: vec![],
        ..attrs
    };
    Some(MergeKey {
        input: g.input_outlet(id, 0)?,
        attrs,
        kernel,
        activation,
        fused,
    })
}

/// The Concat slot range the siblings fill, in order, if they all feed one Concat on axis 1.
fn concat_slots(g: &Graph, members: &[NodeId]) -> Option<(NodeId, Vec<(usize, NodeId)>)> {
    let mut concat = None;
    let mut slots = vec![];
    for &m in members {
        let (c, slot) = sole_consumer(g, Outlet::new(m, 0))?;
        let Op::Concat { axis } = g.node(c).op else {
            return None;
        };
        let rank = g.tensor(Outlet::new(c, 0)).rank()? as i64;
        if (if axis < 0 { axis + rank } else { axis }) != 1 || concat.is_some_and(|x| x != c) {
            return None;
        }
        concat = Some(c);
        slots.push((slot, m));
    }
    slots.sort();
    let consecutive = slots.windows(2).all(|w| w[1].0 == w[0].0 + 1);
    let concat = concat?;
    consecutive.then_some((concat, slots))
}

impl HorizontalFusion {
    /// Merge one group of siblings; false when they no longer share an input.
    fn merge(g: &mut Graph, members: &[NodeId], key: &MergeKey) -> Result<bool> {
        // An earlier merge may have rewired what the siblings read (they read its Split
        // now): take the input from the siblings themselves, never from the stale key.
        let Some(input) = g.input_outlet(members[0], 0) else {
            return Ok(false);
        };
        if members.iter().any(|&m| g.input_outlet(m, 0) != Some(input)) {
            return Ok(false);
        }
        let placement = concat_slots(g, members);
        let members: Vec<NodeId> = match &placement {
            Some((_, slots)) => slots.iter().map(|&(_, m)| m).collect(),
            None => members.to_vec(),
        };
        let mut weights = vec![];
        let mut biases = vec![];
        let mut sizes = vec![];
        let mut w_shape = vec![];
        for &m in &members {
            let (wt, w) = const_f32(g, m, 1)
                .ok_or_else(|| trtc_ir::IrError::Invalid("weights vanished".into()))?;
            let out = wt.shape()[0];
            w_shape = wt.shape().to_vec();
            weights.extend(w);
            biases.extend(
                const_f32(g, m, 2)
                    .map(|(_, b)| b)
                    .unwrap_or_else(|| vec![0.0; out]),
            );
            sizes.push(out);
        }
        let total: usize = sizes.iter().sum();
        w_shape[0] = total;
        let first = g.node(members[0]).clone();
        let name = g.unique_name(&format!("{}+{}", first.name, members.len() - 1));
        let wo = g.add_const(
            format!("{name}::W"),
            Arc::new(f32_tensor(&w_shape, &weights)?),
        );
        let bo = g.add_const(
            format!("{name}::B"),
            Arc::new(f32_tensor(&[total], &biases)?),
        );
        let op = match &first.op {
            Op::FusedConv(f) => Op::FusedConv(FusedConv {
                conv: f.conv.clone(),
                residual: false,
                activation: key.activation,
            }),
            other => other.clone(),
        };
        let mut info = first.outputs[0].clone();
        info.name = name.clone();
        if let Some(shape) = info.shape.as_mut() {
            shape[1] = trtc_ir::Dim::Known(total as u64);
        }
        let mut node = Node::new(name.clone(), op, 3, vec![info.clone()]);
        node.fused_ops = first.fused_ops.clone();
        node.origin.clear();
        let merged = g.add_node(node);
        for &m in &members {
            g.absorb(merged, m);
        }
        g.node_mut(merged).fused_ops = first.fused_ops.clone();
        g.connect(input, merged, 0)?;
        g.connect(wo, merged, 1)?;
        g.connect(bo, merged, 2)?;
        let merged_out = Outlet::new(merged, 0);
        match placement {
            Some((concat, slots)) => {
                // Rebuild the Concat's inputs with the merged conv in the siblings' place.
                let old: Vec<Option<Outlet>> = g.node_inputs(concat);
                let (lo, hi) = (slots[0].0, slots[slots.len() - 1].0);
                let mut new_inputs: Vec<Option<Outlet>> = old[..lo].to_vec();
                new_inputs.push(Some(merged_out));
                new_inputs.extend_from_slice(&old[hi + 1..]);
                let op = g.node(concat).op.clone();
                g.set_op(concat, op.clone(), 0); // drop every input edge
                g.set_op(concat, op, new_inputs.len());
                for (slot, i) in new_inputs.into_iter().enumerate() {
                    if let Some(i) = i {
                        g.connect(i, concat, slot)?;
                    }
                }
            }
            None => {
                let split_name = g.unique_name(&format!("{name}::split"));
                let sizes_c = g.add_const(
                    format!("{split_name}::sizes"),
                    Arc::new(tensor1(
                        &sizes.iter().map(|&s| s as i64).collect::<Vec<_>>(),
                    )),
                );
                let outputs: Vec<TensorInfo> = members
                    .iter()
                    .enumerate()
                    .map(|(i, &m)| TensorInfo {
                        name: format!("{split_name}:{i}"),
                        ..g.tensor(Outlet::new(m, 0)).clone()
                    })
                    .collect();
                let split = g.add_node(Node::new(
                    split_name,
                    Op::Split {
                        axis: 1,
                        num_outputs: None,
                    },
                    2,
                    outputs,
                ));
                g.connect(merged_out, split, 0)?;
                g.connect(sizes_c, split, 1)?;
                for (i, &m) in members.iter().enumerate() {
                    g.replace_uses(Outlet::new(m, 0), Outlet::new(split, i))?;
                }
            }
        }
        for &m in &members {
            g.remove_node(m)?;
        }
        Ok(true)
    }
}

impl Pass for HorizontalFusion {
    fn name(&self) -> &'static str {
        "horizontal-fusion"
    }

    fn run(&self, g: &mut Graph) -> Result<PassOutcome> {
        let mut out = PassOutcome::default();
        // Group candidate convs by the tensor they read, then by everything else.
        let mut by_input: BTreeMap<Outlet, Vec<(NodeId, MergeKey)>> = BTreeMap::new();
        for id in g.topo_order()? {
            if let Some(k) = merge_key(g, id) {
                by_input.entry(k.input).or_default().push((id, k));
            }
        }
        for (_, candidates) in by_input {
            let mut groups: Vec<(MergeKey, Vec<NodeId>)> = vec![];
            for (id, k) in candidates {
                match groups.iter_mut().find(|(gk, _)| *gk == k) {
                    Some((_, members)) => members.push(id),
                    None => groups.push((k, vec![id])),
                }
            }
            for (key, members) in groups.into_iter().filter(|(_, m)| m.len() > 1) {
                if Self::merge(g, &members, &key)? {
                    out.rewrites += members.len() - 1;
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_preserves, random_tensor};
    use trtc_ir::GraphBuilder;

    fn conv(
        b: &mut GraphBuilder,
        name: &str,
        x: Outlet,
        cout: usize,
        k: usize,
        seed: u64,
    ) -> Outlet {
        let w = b.constant(&format!("{name}_w"), random_tensor(&[cout, 4, k, k], seed));
        let p = (k / 2) as i64;
        b.op(
            name,
            Op::Conv(ConvAttrs {
                group: 1,
                pads: vec![p; 4],
                ..Default::default()
            }),
            &[x, w],
        )
    }

    #[test]
    fn siblings_into_one_concat_lose_the_split() {
        let mut b = GraphBuilder::new();
        let x = b.input("x", &[1, 4, 5, 5]);
        let a = conv(&mut b, "a", x, 3, 1, 1);
        let c = conv(&mut b, "c", x, 2, 1, 2);
        let k3 = conv(&mut b, "k3", x, 2, 3, 3);
        let cat = b.op("cat", Op::Concat { axis: 1 }, &[k3, a, c]);
        b.output(cat);
        let after = assert_preserves(&HorizontalFusion, &b.build().unwrap());
        assert_eq!(after.compute_node_count(), 3, "k3, merged a+c, concat");
        assert!(after
            .node_ids()
            .iter()
            .all(|&id| !matches!(after.node(id).op, Op::Split { .. })));
    }

    #[test]
    fn siblings_elsewhere_get_a_split() {
        let mut b = GraphBuilder::new();
        let x = b.input("x", &[1, 4, 5, 5]);
        let a = conv(&mut b, "a", x, 3, 1, 1);
        let c = conv(&mut b, "c", x, 2, 1, 2);
        let ra = b.op("ra", Op::Relu, &[a]);
        b.output(ra);
        b.output(c);
        let after = assert_preserves(&HorizontalFusion, &b.build().unwrap());
        let convs = after
            .node_ids()
            .into_iter()
            .filter(|&id| matches!(after.node(id).op, Op::Conv(_)))
            .count();
        assert_eq!(convs, 1);
        assert_eq!(
            after.tensor(after.outputs()[1]).name,
            "c",
            "output names survive"
        );
    }

    #[test]
    fn different_kernels_or_strides_never_merge() {
        let mut b = GraphBuilder::new();
        let x = b.input("x", &[1, 4, 6, 6]);
        let a = conv(&mut b, "a", x, 3, 1, 1);
        let c = conv(&mut b, "c", x, 2, 3, 2);
        let w = b.constant("s_w", random_tensor(&[2, 4, 1, 1], 5));
        let s = b.op(
            "s",
            Op::Conv(ConvAttrs {
                group: 1,
                strides: vec![2, 2],
                ..Default::default()
            }),
            &[x, w],
        );
        b.output(a).output(c).output(s);
        let after = assert_preserves(&HorizontalFusion, &b.build().unwrap());
        assert_eq!(after.compute_node_count(), 3);
    }
}
