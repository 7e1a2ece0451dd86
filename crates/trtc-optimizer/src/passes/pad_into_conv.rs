//! Pad folding.
//!
//! Rule: `Conv(Pad(x, pads, 0), W, B)` with a constant zero-valued `constant`-mode Pad
//! of the spatial axes only => `Conv(x, W, B)` with the pads added to the Conv's own.
//! (The same for FusedConv.) The Pad goes once no one else reads it.
//!
//! Must not fire: on reflect/edge padding, a non-zero pad value, padding of the batch or
//! channel axis, negative pads, an `axes` input, non-constant pads, or a Conv with
//! `auto_pad` SAME_*/VALID. Never into pooling: MaxPool pads with -inf and AveragePool may
//! exclude pads from its count, so a zero Pad is not the same.

use crate::error::Result;
use crate::pass::{Pass, PassOutcome};
use trtc_ir::tensor::{tensor_to_f32s, tensor_to_i64s};
use trtc_ir::{AutoPad, Graph, NodeId, Op, Outlet};

pub struct PadIntoConv;

/// The spatial pads `[b.., e..]` a Pad node adds, if it is a plain zero pad of spatial axes.
fn zero_spatial_pads(g: &Graph, pad: NodeId) -> std::result::Result<Vec<i64>, &'static str> {
    let Op::Pad { mode } = &g.node(pad).op else {
        return Err("not a Pad");
    };
    if mode != "constant" {
        return Err("not constant-mode padding");
    }
    if g.input_outlet(pad, 3).is_some() {
        return Err("has an axes input");
    }
    if g.input_outlet(pad, 2).is_some() {
        let v = g
            .input_const(pad, 2)
            .and_then(|t| tensor_to_f32s(t))
            .ok_or("pad value is not a constant")?;
        if v.iter().any(|&x| x != 0.0) {
            return Err("pad value is not zero");
        }
    }
    let pads = g
        .input_const(pad, 1)
        .and_then(|t| tensor_to_i64s(t))
        .ok_or("pads are not constant")?;
    let rank = pads.len() / 2;
    if rank < 3 || pads.len() != 2 * rank {
        return Err("pads do not describe an N,C,spatial tensor");
    }
    if pads[0] != 0 || pads[1] != 0 || pads[rank] != 0 || pads[rank + 1] != 0 {
        return Err("pads the batch or channel axis");
    }
    if pads.iter().any(|&p| p < 0) {
        return Err("negative pads crop");
    }
    Ok(pads[2..rank]
        .iter()
        .chain(&pads[rank + 2..])
        .copied()
        .collect())
}

impl Pass for PadIntoConv {
    fn name(&self) -> &'static str {
        "pad-into-conv"
    }

    fn run(&self, g: &mut Graph) -> Result<PassOutcome> {
        let mut out = PassOutcome::default();
        for conv in g.topo_order()? {
            let attrs = match &g.node(conv).op {
                Op::Conv(c) => c.clone(),
                Op::FusedConv(f) => f.conv.clone(),
                _ => continue,
            };
            let Some(x) = g.input_outlet(conv, 0) else {
                continue;
            };
            if !matches!(g.node(x.node).op, Op::Pad { .. }) {
                continue;
            }
            let extra = match zero_spatial_pads(g, x.node) {
                Ok(p) => p,
                Err(why) => {
                    out.skip(
                        g,
                        x.node,
                        format!("not folded into `{}`: {why}", g.node(conv).name),
                    );
                    continue;
                }
            };
            if attrs.auto_pad != AutoPad::NotSet {
                out.skip(g, conv, "auto_pad is set; explicit pads cannot be added");
                continue;
            }
            let spatial = extra.len() / 2;
            let mut attrs = attrs;
            attrs.pads = attrs
                .pads(spatial)
                .iter()
                .zip(&extra)
                .map(|(a, b)| a + b)
                .collect();
            let Some(src) = g.input_outlet(x.node, 0) else {
                continue;
            };
            let num_inputs = g.node(conv).num_inputs;
            let op = match &g.node(conv).op {
                Op::FusedConv(f) => Op::FusedConv(trtc_ir::FusedConv {
                    conv: attrs,
                    ..f.clone()
                }),
                _ => Op::Conv(attrs),
            };
            g.set_op(conv, op, num_inputs);
            g.connect(src, conv, 0)?;
            g.absorb(conv, x.node);
            if !g.is_used(Outlet::new(x.node, 0)) {
                g.remove_node(x.node)?;
            }
            out.rewrites += 1;
        }
        g.remove_unreachable();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_preserves, random_tensor};
    use trtc_ir::tract_onnx::prelude::{tensor0, tensor1};
    use trtc_ir::{ConvAttrs, GraphBuilder};

    fn padded_conv(pads: &[i64], value: f32, mode: &str) -> Graph {
        let mut b = GraphBuilder::new();
        let x = b.input("x", &[1, 2, 6, 6]);
        let p = b.constant("pads", tensor1(pads));
        let v = b.constant("value", tensor0(value));
        let padded = b.op("pad", Op::Pad { mode: mode.into() }, &[x, p, v]);
        let w = b.constant("w", random_tensor(&[3, 2, 3, 3], 3));
        let c = b.op(
            "conv",
            Op::Conv(ConvAttrs {
                group: 1,
                pads: vec![1, 0, 0, 1],
                ..Default::default()
            }),
            &[padded, w],
        );
        b.output(c);
        b.build().unwrap()
    }

    #[test]
    fn zero_pad_joins_the_conv() {
        let g = padded_conv(&[0, 0, 1, 2, 0, 0, 0, 1], 0.0, "constant");
        let after = assert_preserves(&PadIntoConv, &g);
        assert_eq!(after.compute_node_count(), 1);
        let conv = after.find_node("conv").unwrap();
        let Op::Conv(c) = &after.node(conv).op else {
            panic!()
        };
        assert_eq!(c.pads, vec![2, 2, 0, 2]);
    }

    #[test]
    fn other_pads_stay() {
        for (pads, value, mode) in [
            (vec![0, 0, 1, 1, 0, 0, 1, 1], 1.0, "constant"),
            (vec![0, 0, 1, 1, 0, 0, 1, 1], 0.0, "reflect"),
            (vec![1, 0, 1, 1, 0, 0, 1, 1], 0.0, "constant"),
        ] {
            let g = padded_conv(&pads, value, mode);
            let after = assert_preserves(&PadIntoConv, &g);
            assert_eq!(after.compute_node_count(), 2, "{pads:?} {value} {mode}");
        }
    }
}
