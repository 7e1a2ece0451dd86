//! BatchNorm and per-channel affine folding.
//!
//! Rules (s = gamma / sqrt(var + eps)):
//! - `BatchNormalization(Conv(x, W, B))` => `Conv(x, W * s, (B - mean) * s + beta)`;
//! - `BatchNormalization(Gemm(a, W, C))` => Gemm with columns of W scaled and C folded;
//! - `Mul(Conv(x, W, B), c)` => `Conv(x, W * c, B * c)`, `Div` likewise with 1/c;
//! - `Add(Conv(x, W, B), c)` => `Conv(x, W, B + c)`, `Sub(conv, c)` likewise with -c;
//!
//! where c is a constant per output channel (`[C,1,1]`, `[1,C,1,1]`) or a scalar.
//!
//! Must not fire: when the Conv/Gemm output is read by anyone else (the unscaled value
//! would be lost), when weights or statistics are not constant f32 (the report says so),
//! when the constant broadcasts along spatial axes, or on a FusedConv with an activation
//! or residual (the affine map would apply after them).

use crate::error::Result;
use crate::pass::{Pass, PassOutcome};
use crate::util::{
    bare_conv, batch_norm_affine, const_f32, f32_tensor, per_channel, sole_consumer,
};
use std::sync::Arc;
use trtc_ir::{Graph, NodeId, Op, Outlet};

pub struct BnFolding;

/// Per-output-channel affine map y = x * scale + shift.
struct Affine {
    scale: Vec<f32>,
    shift: Vec<f32>,
}

/// The affine map `node` applies to its input `from` with `channels` channels on axis 1.
fn affine_of(
    g: &Graph,
    node: NodeId,
    from: Outlet,
    channels: usize,
    rank: usize,
) -> std::result::Result<Affine, String> {
    let op = g.node(node).op.clone();
    if let Op::BatchNormalization { epsilon, .. } = op {
        if g.input_outlet(node, 0) != Some(from) {
            return Err("reads the conv as a statistic".into());
        }
        let stat = |slot: usize| {
            const_f32(g, node, slot)
                .map(|(_, v)| v)
                .filter(|v| v.len() == channels)
        };
        let (Some(gamma), Some(beta), Some(mean), Some(var)) = (stat(1), stat(2), stat(3), stat(4))
        else {
            return Err("statistics are not constant f32 of one value per channel".into());
        };
        let (scale, shift) = batch_norm_affine(&gamma, &beta, &mean, &var, epsilon);
        return Ok(Affine { scale, shift });
    }
    let (x_slot, c_slot) = match g.input_outlet(node, 0) == Some(from) {
        true => (0, 1),
        false => (1, 0),
    };
    if g.input_outlet(node, x_slot) != Some(from) || g.input_outlet(node, c_slot) == Some(from) {
        return Err("is not an affine map of the conv".into());
    }
    let Some((t, v)) = const_f32(g, node, c_slot) else {
        return Err("the other operand is not a constant f32".into());
    };
    let Some(c) = per_channel(&t, &v, channels, rank) else {
        return Err("the constant is not per-channel".into());
    };
    let ones = vec![1.0; channels];
    let zeros = vec![0.0; channels];
    match (op, x_slot) {
        (Op::Mul, _) => Ok(Affine {
            scale: c,
            shift: zeros,
        }),
        (Op::Add, _) => Ok(Affine {
            scale: ones,
            shift: c,
        }),
        (Op::Sub, 0) => Ok(Affine {
            scale: ones,
            shift: c.iter().map(|x| -x).collect(),
        }),
        (Op::Div, 0) if c.iter().all(|&x| x != 0.0) => Ok(Affine {
            scale: c.iter().map(|x| 1.0 / x).collect(),
            shift: zeros,
        }),
        _ => Err("not a foldable affine op".into()),
    }
}

fn is_affine_candidate(op: &Op) -> bool {
    matches!(
        op,
        Op::BatchNormalization { .. } | Op::Mul | Op::Add | Op::Sub | Op::Div
    )
}

impl BnFolding {
    /// Fold into a Conv: W rows scaled, bias = bias * scale + shift.
    fn fold_conv(g: &mut Graph, conv: NodeId, a: &Affine) -> Result<bool> {
        let (Some((wt, w)), bias) = (const_f32(g, conv, 1), const_f32(g, conv, 2)) else {
            return Ok(false);
        };
        let m = a.scale.len();
        if wt.shape().first() != Some(&m) {
            return Ok(false);
        }
        let per_row = w.len() / m;
        let new_w: Vec<f32> = w
            .iter()
            .enumerate()
            .map(|(i, x)| x * a.scale[i / per_row])
            .collect();
        let b = match (bias, g.input_outlet(conv, 2)) {
            (Some((_, b)), _) if b.len() == m => b,
            (None, None) => vec![0.0; m],
            _ => return Ok(false),
        };
        let new_b: Vec<f32> = (0..m).map(|c| b[c] * a.scale[c] + a.shift[c]).collect();
        let name = g.node(conv).name.clone();
        let wo = g.add_const(
            format!("{name}::W"),
            Arc::new(f32_tensor(wt.shape(), &new_w)?),
        );
        let bo = g.add_const(format!("{name}::B"), Arc::new(f32_tensor(&[m], &new_b)?));
        let op = g.node(conv).op.clone();
        g.set_op(conv, op, g.node(conv).num_inputs.max(3));
        g.connect(wo, conv, 1)?;
        g.connect(bo, conv, 2)?;
        Ok(true)
    }

    /// Fold into a Gemm (y = alpha * A B' + beta * C): columns of B' scaled, C folded, beta = 1.
    fn fold_gemm(g: &mut Graph, gemm: NodeId, a: &Affine) -> Result<bool> {
        let Op::Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
        } = g.node(gemm).op.clone()
        else {
            return Ok(false);
        };
        let Some((bt, bv)) = const_f32(g, gemm, 1) else {
            return Ok(false);
        };
        let n = a.scale.len();
        let shape = bt.shape().to_vec();
        if shape.len() != 2 || shape[if trans_b != 0 { 0 } else { 1 }] != n {
            return Ok(false);
        }
        let new_b: Vec<f32> = bv
            .iter()
            .enumerate()
            .map(|(i, x)| {
                x * a.scale[if trans_b != 0 {
                    i / shape[1]
                } else {
                    i % shape[1]
                }]
            })
            .collect();
        let c: Vec<f32> = match (g.input_outlet(gemm, 2), const_f32(g, gemm, 2)) {
            (None, _) => vec![0.0; n],
            (Some(_), Some((ct, cv))) if ct.len() == 1 => vec![cv[0]; n],
            (Some(_), Some((ct, cv))) if ct.len() == n && ct.shape().last() == Some(&n) => cv,
            _ => return Ok(false),
        };
        let new_c: Vec<f32> = (0..n)
            .map(|j| a.scale[j] * beta * c[j] + a.shift[j])
            .collect();
        let name = g.node(gemm).name.clone();
        let bo = g.add_const(format!("{name}::B"), Arc::new(f32_tensor(&shape, &new_b)?));
        let co = g.add_const(format!("{name}::C"), Arc::new(f32_tensor(&[n], &new_c)?));
        g.set_op(
            gemm,
            Op::Gemm {
                alpha,
                beta: 1.0,
                trans_a,
                trans_b,
            },
            3,
        );
        g.connect(bo, gemm, 1)?;
        g.connect(co, gemm, 2)?;
        Ok(true)
    }
}

impl BnFolding {
    /// Fold the op after `id` into it, if it is an affine map; true when folded.
    fn fold_next(g: &mut Graph, id: NodeId, out: &mut PassOutcome) -> Result<bool> {
        let is_gemm = matches!(g.node(id).op, Op::Gemm { .. });
        if bare_conv(g, id).is_none() && !is_gemm {
            return Ok(false);
        }
        let y = Outlet::new(id, 0);
        let Some((next, _)) = sole_consumer(g, y) else {
            return Ok(false);
        };
        if !is_affine_candidate(&g.node(next).op) {
            return Ok(false);
        }
        let Some(shape) = g.tensor(y).shape.clone() else {
            return Ok(false);
        };
        let Some(channels) = shape.get(1).and_then(|d| d.known()) else {
            out.skip(g, next, "channel count is not static");
            return Ok(false);
        };
        let next_out = Outlet::new(next, 0);
        if g.tensor(next_out).shape.as_ref() != Some(&shape) {
            return Ok(false); // the op broadcasts the conv output to a larger shape
        }
        let affine = match affine_of(g, next, y, channels as usize, shape.len()) {
            Ok(a) => a,
            Err(why) => {
                if matches!(g.node(next).op, Op::BatchNormalization { .. }) {
                    out.skip(g, next, why);
                }
                return Ok(false);
            }
        };
        let folded = if is_gemm {
            Self::fold_gemm(g, id, &affine)?
        } else {
            Self::fold_conv(g, id, &affine)?
        };
        if !folded {
            out.skip(
                g,
                id,
                "weights or bias are not constant f32 of the expected shape",
            );
            return Ok(false);
        }
        g.absorb(id, next);
        g.replace_uses(next_out, y)?;
        g.remove_node(next)?;
        Ok(true)
    }
}

impl Pass for BnFolding {
    fn name(&self) -> &'static str {
        "bn-folding"
    }

    fn run(&self, g: &mut Graph) -> Result<PassOutcome> {
        let mut out = PassOutcome::default();
        for id in g.topo_order()? {
            if !g.contains(id) {
                continue;
            }
            // A conv may absorb a chain (BN, then Mul, then Add): fold until nothing follows.
            while Self::fold_next(g, id, &mut out)? {
                out.rewrites += 1;
            }
        }
        g.remove_unreachable();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_preserves, random_tensor};
    use trtc_ir::tract_onnx::prelude::{tensor1, Tensor};
    use trtc_ir::{ConvAttrs, GraphBuilder};

    fn positive(shape: &[usize], seed: u64) -> Tensor {
        let t = random_tensor(shape, seed);
        let v: Vec<f32> = trtc_ir::tensor::tensor_to_f32s(&t)
            .unwrap()
            .iter()
            .map(|x| x.abs() + 0.5)
            .collect();
        Tensor::from_shape(shape, &v).unwrap()
    }

    #[test]
    fn conv_bn_folds() {
        let mut b = GraphBuilder::new();
        let x = b.input("x", &[1, 3, 5, 5]);
        let w = b.constant("w", random_tensor(&[4, 3, 3, 3], 1));
        let c = b.op(
            "conv",
            Op::Conv(ConvAttrs {
                group: 1,
                ..Default::default()
            }),
            &[x, w],
        );
        let (s, bb, m) = (
            b.constant("s", random_tensor(&[4], 2)),
            b.constant("b", random_tensor(&[4], 3)),
            b.constant("m", random_tensor(&[4], 4)),
        );
        let v = b.constant("v", positive(&[4], 5));
        let bn = b.op(
            "bn",
            Op::BatchNormalization {
                epsilon: 1e-3,
                momentum: None,
            },
            &[c, s, bb, m, v],
        );
        let r = b.op("relu", Op::Relu, &[bn]);
        b.output(r);
        let after = assert_preserves(&BnFolding, &b.build().unwrap());
        assert_eq!(after.compute_node_count(), 2);
        let conv = after.find_node("conv").unwrap();
        assert_eq!(
            after.node(conv).fused_ops,
            vec!["Conv", "BatchNormalization"]
        );
        assert_eq!(after.node(conv).origin, vec!["conv", "bn"]);
    }

    #[test]
    fn per_channel_mul_and_add_fold_but_spatial_ones_do_not() {
        let mut b = GraphBuilder::new();
        let x = b.input("x", &[1, 2, 4, 4]);
        let w = b.constant("w", random_tensor(&[3, 2, 1, 1], 1));
        let c = b.op(
            "conv",
            Op::Conv(ConvAttrs {
                group: 1,
                ..Default::default()
            }),
            &[x, w],
        );
        let k = b.constant("k", random_tensor(&[3, 1, 1], 2));
        let m = b.op("mul", Op::Mul, &[k, c]);
        let a = b.constant("a", random_tensor(&[1, 3, 1, 1], 3));
        let ad = b.op("add", Op::Add, &[m, a]);
        let sp = b.constant("sp", random_tensor(&[1, 1, 4, 4], 4));
        let spm = b.op("spatial", Op::Mul, &[ad, sp]);
        b.output(spm);
        let g = b.build().unwrap();
        let after = assert_preserves(&BnFolding, &g);
        assert_eq!(after.compute_node_count(), 2, "conv + spatial mul");
    }

    #[test]
    fn gemm_bn_folds() {
        let mut b = GraphBuilder::new();
        let x = b.input("x", &[2, 6]);
        let w = b.constant("w", random_tensor(&[4, 6], 1));
        let bias = b.constant("bias", random_tensor(&[4], 9));
        let gm = b.op(
            "gemm",
            Op::Gemm {
                alpha: 0.5,
                beta: 2.0,
                trans_a: 0,
                trans_b: 1,
            },
            &[x, w, bias],
        );
        let (s, bb, m) = (
            b.constant("s", random_tensor(&[4], 2)),
            b.constant("b", random_tensor(&[4], 3)),
            b.constant("m", random_tensor(&[4], 4)),
        );
        let v = b.constant("v", positive(&[4], 5));
        let bn = b.op(
            "bn",
            Op::BatchNormalization {
                epsilon: 1e-5,
                momentum: None,
            },
            &[gm, s, bb, m, v],
        );
        b.output(bn);
        let after = assert_preserves(&BnFolding, &b.build().unwrap());
        assert_eq!(after.compute_node_count(), 1);
        let _ = tensor1(&[0f32]);
    }
}
