//! Pool/conv swap: a channel-reducing 1x1 convolution moves in front of the average pool
//! that feeds it, so the pool averages the conv's fewer channels.
//!
//! Rule: `Conv(AveragePool(x), W, B)` with a 1x1 Conv (kernel all 1, stride 1, dilation 1,
//! no padding, group 1; or a FusedConv with neither activation nor residual)
//! => `AveragePool(Conv(x, W, B))` when the bias commutes with the pool,
//! => `Add(AveragePool(Conv(x, W)), B)` (B as `[C_out,1,..]`) when it does not.
//! The pool keeps all its attributes (kernel, strides, pads, dilations, ceil_mode,
//! count_include_pad, auto_pad).
//!
//! Why it is exact. An average pool computes, for each channel c and output position p,
//! `y[c,p] = sum_q a(p,q) x[c,q]` over the in-bounds positions q of p's window, with
//! weights `a(p,q) = 1 / D(p)` that never depend on c (D(p) is the kernel size with
//! count_include_pad=1, the number of in-bounds elements with count_include_pad=0; pads
//! add zeros to the sum). A bias-free 1x1 conv is a per-position linear map over the
//! channels, `z[o,q] = sum_c W[o,c] x[c,q]`, and maps zero to zero, so the two commute:
//! `Conv_W(AvgPool(x)) = AvgPool(Conv_W(x))` for every pool, padded or not, either
//! count_include_pad, ceil_mode or not. The bias gets `sum_q a(p,q) = N(p) / D(p)` (N(p)
//! the in-bounds count) when pooled, so it commutes exactly when N(p) = D(p) for every
//! window:
//! - count_include_pad=0: always (D = N by definition; padded windows too);
//! - no padding (explicit zero pads or VALID) and ceil_mode=0 (or all strides 1, where
//!   ceil_mode changes nothing): every window lies inside the input, so N = D = kernel
//!   size;
//! - count_include_pad=1 with pads (or SAME_* auto_pad, or ceil_mode with a stride):
//!   border windows may count padded zeros, N < D, the pooled bias shrinks towards 0
//!   there. (How a count_include_pad=1 window that overhangs the padding through
//!   ceil_mode divides has differed between runtimes; tract divides by what it counts.)
//!   The bias then
//!   leaves the conv and is added after the pool (`Add(AvgPool(Conv_W(x)), B)`), which is
//!   exact in every case. A zero bias is simply dropped.
//!
//! InceptionV3's `AvgPool 3x3 s1 p1 count_include_pad=1 -> 1x1 conv (+BN folded into a
//! bias) -> Relu` becomes `1x1 conv -> AvgPool -> Add(bias) -> Relu`.
//!
//! It runs after BN folding (a BN after the conv must fold into it first: once the pool
//! sits between them it no longer could) and before vertical fusion (a fused activation
//! blocks the swap).
//!
//! Must not fire:
//! - when the pool's output has another consumer or is a graph output (it would still be
//!   needed with C_in channels), or the conv reads it anywhere but its data input;
//! - on a conv that is not 1x1, has a stride, dilation or padding other than 1/1/0, or is
//!   grouped (grouped 1x1 convs commute too, but are left alone);
//! - on a FusedConv with an activation (ReLU and the others do not commute with averaging)
//!   or a residual;
//! - when the bias has to move and is not a constant f32 of one value per channel;
//! - when channel counts (from W's shape) are not known, or the pool's spatial sizes are
//!   not known and its attributes do not show it keeps the size (stride 1 and "same"
//!   padding): whether it pays cannot be checked;
//! - when it does not pay: it fires only when the conv reduces the channels (`C_out <
//!   C_in`: never when it widens or keeps them) and, with K the pool's window size, P_in
//!   and P_out the spatial sizes before and after the pool, the cost after the swap
//!   `C_out*P_out*K + C_in*C_out*P_in` (+ `C_out*P_out` for a moved bias) is below the cost
//!   before, `C_in*P_out*K + C_in*C_out*P_out`. For a size-keeping pool (stride 1, "same"
//!   padding, InceptionV3's) the second condition follows from the first; a strided pool
//!   rarely passes, since the conv would run on the un-pooled grid.

use crate::error::Result;
use crate::pass::{Pass, PassOutcome};
use crate::util::{bare_conv, const_f32, f32_tensor, sole_consumer};
use std::sync::Arc;
use trtc_ir::{AutoPad, ConvAttrs, Dim, Graph, Node, NodeId, Op, Outlet, PoolAttrs, TensorInfo};

pub struct PoolConvSwap;

/// What to do with the conv's bias when it moves in front of the pool.
#[derive(Clone, Copy, Debug, PartialEq)]
enum BiasPlan {
    /// No bias, or a zero one: nothing to carry.
    None,
    /// The bias commutes with the pool: it stays in the conv.
    Stays,
    /// The bias is added after the pool.
    After,
}

/// The checked pair: the conv's channel counts and what happens to the bias.
struct Swap {
    pool: NodeId,
    src: Outlet,
    c_out: usize,
    spatial: usize,
    bias: BiasPlan,
    bias_values: Vec<f32>,
}

/// A 1x1, stride 1, dilation 1, unpadded, ungrouped conv.
fn is_pointwise(c: &ConvAttrs, spatial: usize) -> std::result::Result<(), &'static str> {
    if c.group != 1 {
        return Err("grouped conv");
    }
    if !c.kernel_shape.is_empty() && c.kernel_shape.iter().any(|&k| k != 1) {
        return Err("conv kernel is not 1x1");
    }
    if c.strides(spatial).iter().any(|&s| s != 1) {
        return Err("conv stride is not 1");
    }
    if c.dilations(spatial).iter().any(|&d| d != 1) {
        return Err("conv dilation is not 1");
    }
    if c.auto_pad == AutoPad::NotSet && c.pads(spatial).iter().any(|&p| p != 0) {
        return Err("conv is padded");
    }
    Ok(())
}

/// Every window lies inside the input, or its divisor counts only in-bounds elements:
/// the average of a constant is that constant.
fn bias_commutes(p: &PoolAttrs, spatial: usize) -> bool {
    if p.count_include_pad == 0 {
        return true;
    }
    let unpadded = match p.auto_pad {
        AutoPad::Valid => true,
        AutoPad::NotSet => p.pads(spatial).iter().all(|&x| x == 0),
        AutoPad::SameUpper | AutoPad::SameLower => false,
    };
    // ceil_mode adds a last, overhanging window only where a stride skips past the end.
    unpadded && (p.ceil_mode == 0 || p.strides(spatial).iter().all(|&s| s == 1))
}

/// The pool keeps the spatial size whatever it is (stride 1 and "same" padding).
fn keeps_size(p: &PoolAttrs, spatial: usize) -> bool {
    let (s, d, pads) = (p.strides(spatial), p.dilations(spatial), p.pads(spatial));
    if s.iter().any(|&x| x != 1) {
        return false;
    }
    match p.auto_pad {
        AutoPad::SameUpper | AutoPad::SameLower => true,
        AutoPad::Valid => p.kernel_shape.iter().all(|&k| k == 1),
        AutoPad::NotSet => {
            (0..spatial).all(|i| pads[i] + pads[i + spatial] == d[i] * (p.kernel_shape[i] - 1))
        }
    }
}

/// Product of the spatial dims of a tensor, if all known.
fn spatial_size(g: &Graph, o: Outlet) -> Option<u64> {
    let shape = g.tensor(o).shape.as_ref()?;
    shape.get(2..)?.iter().map(Dim::known).product()
}

impl PoolConvSwap {
    /// Whether `conv` reads a pool it can swap with; `Err` when it reads a pool but must
    /// stay, `Ok(None)` when it does not read an AveragePool at all.
    fn check(g: &Graph, conv: NodeId) -> std::result::Result<Option<Swap>, String> {
        let Some(attrs) = bare_conv(g, conv) else {
            if let Some(x) = g.input_outlet(conv, 0) {
                if matches!(g.node(x.node).op, Op::AveragePool(_))
                    && matches!(g.node(conv).op, Op::FusedConv(_))
                {
                    return Err("the conv has a fused activation or residual".into());
                }
            }
            return Ok(None);
        };
        let Some(y) = g.input_outlet(conv, 0) else {
            return Ok(None);
        };
        let Op::AveragePool(p) = &g.node(y.node).op else {
            return Ok(None);
        };
        if sole_consumer(g, y) != Some((conv, 0)) {
            return Err("the pool's output has other consumers or is a graph output".into());
        }
        let src = g.input_outlet(y.node, 0).ok_or("the pool has no input")?;
        let w = g
            .input_info(conv, 1)
            .and_then(|t| t.shape.as_ref())
            .ok_or("the weights' shape is not known")?;
        let spatial = w
            .len()
            .checked_sub(2)
            .filter(|&s| s >= 1)
            .ok_or("weights rank < 3")?;
        if p.kernel_shape.len() != spatial {
            return Err("pool and conv ranks differ".into());
        }
        if w[2..].iter().any(|d| d.known() != Some(1)) {
            return Err("conv kernel is not 1x1".into());
        }
        is_pointwise(&attrs, spatial)?;
        let (Some(c_out), Some(c_in)) = (w[0].known(), w[1].known()) else {
            return Err("channel counts are not known".into());
        };
        let (c_out, c_in) = (c_out as u128, c_in as u128);
        // None: no bias; Some(None): a bias that is not a constant f32.
        let bias_values = g
            .input_outlet(conv, 2)
            .map(|_| const_f32(g, conv, 2).map(|(_, v)| v));
        let bias = match bias_values.as_ref() {
            None => BiasPlan::None,
            Some(Some(v)) if v.iter().all(|&b| b == 0.0) => BiasPlan::None,
            Some(_) if bias_commutes(p, spatial) => BiasPlan::Stays,
            Some(_) => BiasPlan::After,
        };
        let values = match (bias, bias_values) {
            (BiasPlan::After, Some(Some(v))) if v.len() as u128 == c_out => v,
            (BiasPlan::After, _) => {
                return Err(
                    "the bias must move after the pool but is not a constant f32 \
                     of one value per channel"
                        .into(),
                )
            }
            _ => vec![],
        };
        let window: u128 = p.kernel_shape.iter().map(|&k| k.max(1) as u128).product();
        let pays = match (spatial_size(g, src), spatial_size(g, y)) {
            (Some(p_in), Some(p_out)) => {
                let (p_in, p_out) = (p_in as u128, p_out as u128);
                let before = c_in * p_out * window + c_in * c_out * p_out;
                let add = if bias == BiasPlan::After {
                    c_out * p_out
                } else {
                    0
                };
                let after = c_out * p_out * window + c_in * c_out * p_in + add;
                c_out < c_in && after < before
            }
            _ if keeps_size(p, spatial) => c_out < c_in,
            _ => return Err("spatial sizes are not known: cannot tell whether it pays".into()),
        };
        if !pays {
            return Err(format!(
                "does not pay: {c_in} -> {c_out} channels{}",
                if c_out < c_in {
                    ", but the conv would run on a larger grid"
                } else {
                    ""
                }
            ));
        }
        Ok(Some(Swap {
            pool: y.node,
            src,
            c_out: c_out as usize,
            spatial,
            bias,
            bias_values: values,
        }))
    }

    fn swap(g: &mut Graph, conv: NodeId, s: Swap) -> Result<()> {
        let conv_out = Outlet::new(conv, 0);
        let pool_out = Outlet::new(s.pool, 0);
        // Shapes: the conv now runs on the pool's input grid, the pool on C_out channels.
        let with_c_out = |shape: &Option<Vec<Dim>>| {
            shape.clone().map(|mut sh| {
                sh[1] = Dim::Known(s.c_out as u64);
                sh
            })
        };
        let conv_shape = with_c_out(&g.tensor(s.src).shape);
        let pool_shape = with_c_out(&g.tensor(pool_out).shape);
        // The conv's readers move to the pool (or the bias add) before the pool reads it.
        let end = match s.bias {
            BiasPlan::After => {
                let name = g.node(conv).name.clone();
                let rank = pool_shape.as_ref().map_or(2 + s.spatial, Vec::len);
                let mut shape = vec![s.c_out];
                shape.extend(std::iter::repeat_n(1, rank.saturating_sub(2)));
                let b = g.add_const(
                    format!("{name}::B"),
                    Arc::new(f32_tensor(&shape, &s.bias_values)?),
                );
                let add_name = g.unique_name(&format!("{name}::bias"));
                let add_info = TensorInfo {
                    name: add_name.clone(),
                    shape: pool_shape.clone(),
                    ..g.tensor(pool_out).clone()
                };
                let add = g.add_node(Node::new(add_name, Op::Add, 2, vec![add_info]));
                g.connect(pool_out, add, 0)?;
                g.connect(b, add, 1)?;
                Outlet::new(add, 0)
            }
            _ => pool_out,
        };
        // `end` does not read the conv yet, so only the conv's old readers move.
        g.replace_uses(conv_out, end)?;
        let op = match (&g.node(conv).op, s.bias) {
            (Op::FusedConv(f), BiasPlan::Stays) => Op::FusedConv(f.clone()),
            (Op::FusedConv(f), _) => Op::Conv(f.conv.clone()),
            (op, _) => op.clone(),
        };
        let num_inputs = if s.bias == BiasPlan::Stays { 3 } else { 2 };
        g.set_op(conv, op, num_inputs);
        g.connect(s.src, conv, 0)?;
        g.connect(conv_out, s.pool, 0)?;
        // Names stay where `replace_uses` put them (a graph output keeps its name).
        for (o, shape) in [(conv_out, conv_shape), (pool_out, pool_shape)] {
            let info = TensorInfo {
                shape,
                ..g.tensor(o).clone()
            };
            g.set_tensor_info(o, info);
        }
        Ok(())
    }
}

impl Pass for PoolConvSwap {
    fn name(&self) -> &'static str {
        "pool-conv-swap"
    }

    fn run(&self, g: &mut Graph) -> Result<PassOutcome> {
        let mut out = PassOutcome::default();
        for conv in g.topo_order()? {
            match Self::check(g, conv) {
                Ok(Some(s)) => {
                    Self::swap(g, conv, s)?;
                    out.rewrites += 1;
                }
                Ok(None) => {}
                Err(why) => out.skip(g, conv, why),
            }
        }
        if out.rewrites > 0 {
            // Moved biases leave their old constants behind.
            g.remove_unreachable();
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::{HorizontalFusion, VerticalFusion};
    use crate::pipeline::Pipeline;
    use crate::testing::{assert_preserves, random_tensor};
    use crate::verify::verify;
    use proptest::prelude::*;
    use trtc_ir::{DType, GraphBuilder, Tensor};

    /// Tighter than the crate-wide tolerance: the swap only reorders sums.
    const EXACT: f32 = 1e-5;

    /// Run the pass; assert valid and equal to 1e-5 relative; the graph after.
    fn swapped(g: &Graph) -> (Graph, PassOutcome) {
        let after = assert_preserves(&PoolConvSwap, g);
        let v = verify(g, &after, 2, 7).unwrap();
        assert!(v.max_rel <= EXACT, "outputs differ: {v:?}");
        let outcome = PoolConvSwap.run(&mut g.clone()).unwrap();
        (after, outcome)
    }

    fn pool(k: i64, s: i64, pad: i64, cip: i64) -> PoolAttrs {
        PoolAttrs {
            kernel_shape: vec![k; 2],
            strides: vec![s; 2],
            pads: vec![pad; 4],
            count_include_pad: cip,
            ..Default::default()
        }
    }

    fn pointwise() -> ConvAttrs {
        ConvAttrs {
            group: 1,
            ..Default::default()
        }
    }

    /// x [1, c_in, 7, 7] -> AveragePool -> Conv (W [c_out, c_in/group, k, k], bias) [-> Relu].
    struct Net {
        pool: PoolAttrs,
        c_in: usize,
        c_out: usize,
        conv: ConvAttrs,
        k: usize,
        bias: Option<Tensor>,
        relu: bool,
    }

    impl Net {
        fn new(pool: PoolAttrs, c_in: usize, c_out: usize) -> Net {
            Net {
                pool,
                c_in,
                c_out,
                conv: pointwise(),
                k: 1,
                bias: Some(random_tensor(&[c_out], 5)),
                relu: false,
            }
        }

        fn build(&self) -> Graph {
            let mut b = GraphBuilder::new();
            let x = b.input("x", &[1, self.c_in, 7, 7]);
            let p = b.op("pool", Op::AveragePool(self.pool.clone()), &[x]);
            let group = self.conv.group.max(1) as usize;
            let w = b.constant(
                "w",
                random_tensor(&[self.c_out, self.c_in / group, self.k, self.k], 3),
            );
            let mut ins = vec![p, w];
            if let Some(bias) = &self.bias {
                ins.push(b.constant("b", bias.clone()));
            }
            let mut y = b.op("conv", Op::Conv(self.conv.clone()), &ins);
            if self.relu {
                y = b.op("relu", Op::Relu, &[y]);
            }
            b.output(y);
            b.build().unwrap()
        }
    }

    fn count(g: &Graph, pred: impl Fn(&Op) -> bool) -> usize {
        g.node_ids()
            .into_iter()
            .filter(|&id| pred(&g.node(id).op))
            .count()
    }

    /// The conv reads the graph input and the pool reads the conv.
    fn assert_swapped(g: &Graph) {
        let conv = g.find_node("conv").unwrap();
        let pool = g.find_node("pool").unwrap();
        assert!(matches!(
            g.node(g.input_outlet(conv, 0).unwrap().node).op,
            Op::Input
        ));
        assert_eq!(g.input_outlet(pool, 0), Some(Outlet::new(conv, 0)));
    }

    #[test]
    fn fires_on_the_inception_branch_and_moves_the_bias_after_the_pool() {
        // AvgPool 3x3 s1 p1 count_include_pad=1 -> 1x1 conv with bias -> Relu, 8 -> 3.
        let mut net = Net::new(pool(3, 1, 1, 1), 8, 3);
        net.relu = true;
        let (after, outcome) = swapped(&net.build());
        assert_eq!(outcome.rewrites, 1);
        assert_swapped(&after);
        assert_eq!(count(&after, |op| matches!(op, Op::Add)), 1, "bias add");
        let conv = after.find_node("conv").unwrap();
        assert_eq!(after.node(conv).num_inputs, 2, "the conv lost its bias");
        assert_eq!(after.compute_node_count(), 4, "conv, pool, add, relu");
    }

    /// `Conv(x, W, B) -> AvgPool`, the swap with the bias left in the conv.
    fn naive_swap(net: &Net) -> Graph {
        let mut b = GraphBuilder::new();
        let x = b.input("x", &[1, net.c_in, 7, 7]);
        let w = b.constant("w", random_tensor(&[net.c_out, net.c_in, 1, 1], 3));
        let bias = b.constant("b", net.bias.clone().unwrap());
        let c = b.op("conv", Op::Conv(pointwise()), &[x, w, bias]);
        let p = b.op("pool", Op::AveragePool(net.pool.clone()), &[c]);
        b.output(p);
        b.build().unwrap()
    }

    #[test]
    fn bias_in_the_conv_commutes_only_when_every_divisor_counts_what_it_sums() {
        // count_include_pad=1 with pads: the padded zeros pull a pooled bias towards 0
        // at the borders, so keeping it in the conv would be wrong...
        let cip_padded = Net::new(pool(3, 1, 1, 1), 6, 2);
        let v = verify(&cip_padded.build(), &naive_swap(&cip_padded), 1, 1).unwrap();
        assert!(v.max_abs > 1e-2, "{v:?}");
        // ...and it is exact without padding, or with count_include_pad=0.
        for p in [pool(3, 1, 0, 1), pool(3, 1, 1, 0), pool(2, 2, 1, 0)] {
            let net = Net::new(p.clone(), 6, 2);
            let v = verify(&net.build(), &naive_swap(&net), 1, 1).unwrap();
            assert!(v.max_rel <= EXACT, "{p:?}: {v:?}");
        }
    }

    #[test]
    fn count_include_pad_0_padded_pool_keeps_the_bias_in_the_conv() {
        let (after, outcome) = swapped(&Net::new(pool(3, 1, 1, 0), 8, 3).build());
        assert_eq!(outcome.rewrites, 1);
        assert_swapped(&after);
        assert_eq!(count(&after, |op| matches!(op, Op::Add)), 0);
        let conv = after.find_node("conv").unwrap();
        assert!(after.input_outlet(conv, 2).is_some());
    }

    #[test]
    fn count_include_pad_1_padded_pool_is_exact_with_the_bias_after() {
        for (k, pad) in [(3, 1), (5, 2), (3, 2), (2, 1)] {
            let (after, outcome) = swapped(&Net::new(pool(k, 1, pad, 1), 8, 3).build());
            assert_eq!(outcome.rewrites, 1, "k {k} pad {pad}");
            assert_eq!(count(&after, |op| matches!(op, Op::Add)), 1);
        }
    }

    #[test]
    fn unpadded_pool_keeps_the_bias_and_zero_or_no_bias_adds_nothing() {
        // 2x2 s1 p0 on 7x7 -> 6x6: the conv does 49/36 of its work, the pool 3/8: pays.
        let (after, outcome) = swapped(&Net::new(pool(2, 1, 0, 1), 8, 3).build());
        assert_eq!(outcome.rewrites, 1);
        assert_eq!(count(&after, |op| matches!(op, Op::Add)), 0);
        for bias in [None, Some(Tensor::from_shape(&[3], &[0f32; 3]).unwrap())] {
            let mut net = Net::new(pool(3, 1, 1, 1), 8, 3);
            net.bias = bias;
            let (after, outcome) = swapped(&net.build());
            assert_eq!(outcome.rewrites, 1);
            assert_eq!(count(&after, |op| matches!(op, Op::Add)), 0);
        }
    }

    #[test]
    fn ceil_mode_pools_swap_exactly() {
        // On 7x7: 2x2 s2 ceil adds a 4th window hanging over the end; 3x3 s2 (pad 0 or 1)
        // none; stride 1 never does.
        for (k, s, pad) in [(2, 2, 0), (3, 2, 0), (3, 2, 1), (3, 1, 1)] {
            for cip in [0, 1] {
                let mut p = pool(k, s, pad, cip);
                p.ceil_mode = 1;
                let (after, outcome) = swapped(&Net::new(p, 16, 1).build());
                assert_eq!(outcome.rewrites, 1, "k {k} s {s} cip {cip} pad {pad}");
                let adds = count(&after, |op| matches!(op, Op::Add));
                let moved = cip == 1 && (pad > 0 || s > 1);
                assert_eq!(adds, usize::from(moved), "k {k} s {s} cip {cip} pad {pad}");
            }
        }
        for cip in [0, 1] {
            for pad in [0, 1] {
                let mut p = pool(3, 1, pad, cip);
                p.ceil_mode = 1;
                let (after, outcome) = swapped(&Net::new(p, 8, 2).build());
                assert_eq!(outcome.rewrites, 1, "cip {cip} pad {pad}");
                // With count_include_pad=1 and pads the bias moves out; with stride 1
                // ceil_mode adds no window.
                let adds = count(&after, |op| matches!(op, Op::Add));
                assert_eq!(adds, (cip * pad) as usize, "cip {cip} pad {pad}");
            }
        }
    }

    /// The pass leaves the graph as it was, and says why when it saw the pair.
    fn assert_stays(g: &Graph, why: &str) {
        let mut after = g.clone();
        let outcome = PoolConvSwap.run(&mut after).unwrap();
        assert_eq!(outcome.rewrites, 0, "{why}");
        assert_eq!(after.compute_node_count(), g.compute_node_count());
        assert!(
            outcome.skipped.iter().any(|s| s.reason.contains(why)),
            "{why}: {:?}",
            outcome.skipped
        );
    }

    #[test]
    fn other_consumer_of_the_pool_blocks() {
        let net = Net::new(pool(3, 1, 1, 1), 8, 3);
        let mut g = net.build();
        let p = Outlet::new(g.find_node("pool").unwrap(), 0);
        g.add_output(p);
        assert_stays(&g, "other consumers");
    }

    #[test]
    fn fused_relu_blocks() {
        let mut net = Net::new(pool(3, 1, 1, 1), 8, 3);
        net.relu = true;
        let mut g = net.build();
        VerticalFusion.run(&mut g).unwrap();
        trtc_ir::infer_shapes(&mut g).unwrap();
        assert_eq!(g.compute_node_count(), 2, "pool, conv+relu");
        assert_stays(&g, "fused activation");
    }

    #[test]
    fn widening_or_same_width_conv_does_not_pay() {
        assert_stays(&Net::new(pool(3, 1, 1, 1), 3, 8).build(), "does not pay");
        assert_stays(&Net::new(pool(3, 1, 1, 1), 4, 4).build(), "does not pay");
        // A strided pool: the conv would run on 4x the positions.
        assert_stays(&Net::new(pool(2, 2, 0, 0), 8, 4).build(), "does not pay");
    }

    #[test]
    fn non_pointwise_convs_block() {
        let mut k3 = Net::new(pool(3, 1, 1, 1), 8, 3);
        k3.k = 3;
        k3.conv.pads = vec![1; 4];
        assert_stays(&k3.build(), "not 1x1");
        let mut strided = Net::new(pool(3, 1, 1, 1), 8, 3);
        strided.conv.strides = vec![2, 2];
        assert_stays(&strided.build(), "stride");
        let mut grouped = Net::new(pool(3, 1, 1, 1), 8, 4);
        grouped.conv.group = 2;
        assert_stays(&grouped.build(), "grouped");
        let mut padded = Net::new(pool(3, 1, 1, 1), 8, 3);
        padded.conv.pads = vec![1; 4];
        assert_stays(&padded.build(), "padded");
    }

    /// x [N, 8, H, W] with H, W unknown.
    fn dynamic(p: PoolAttrs) -> Graph {
        let mut b = GraphBuilder::new();
        let x = b.input_with(
            "x",
            DType::F32,
            vec!["N".into(), 8u64.into(), "H".into(), "W".into()],
        );
        let p = b.op("pool", Op::AveragePool(p), &[x]);
        let w = b.constant("w", random_tensor(&[3, 8, 1, 1], 3));
        let bias = b.constant("b", random_tensor(&[3], 4));
        let y = b.op("conv", Op::Conv(pointwise()), &[p, w, bias]);
        b.output(y);
        b.build().unwrap()
    }

    #[test]
    fn unknown_spatial_sizes_fire_only_on_size_keeping_pools() {
        assert_stays(&dynamic(pool(2, 2, 0, 0)), "not known");
        let g = dynamic(pool(3, 1, 1, 1));
        let mut after = g.clone();
        assert_eq!(PoolConvSwap.run(&mut after).unwrap().rewrites, 1);
        trtc_ir::infer_shapes(&mut after).unwrap();
        after.validate().unwrap();
        let inputs = crate::verify::random_inputs_of(&g, &[vec![2, 8, 6, 5]], 9).unwrap();
        let a = trtc_ir::CpuModel::new(&g)
            .unwrap()
            .run(inputs.clone())
            .unwrap();
        let b = trtc_ir::CpuModel::new(&after).unwrap().run(inputs).unwrap();
        let (_, rel) = crate::verify::compare(&a, &b).unwrap();
        assert!(rel <= EXACT, "{rel}");
    }

    #[test]
    fn graph_output_conv_keeps_its_name() {
        let g = Net::new(pool(3, 1, 1, 1), 8, 3).build();
        let name = g.tensor(g.outputs()[0]).name.clone();
        let (after, _) = swapped(&g);
        assert_eq!(after.tensor(after.outputs()[0]).name, name);
    }

    /// An InceptionA-like block: x -> {1x1 a, 1x1 b -> 3x3, avgpool -> 1x1 c} -> concat.
    fn inception_block(relu: bool) -> Graph {
        let mut b = GraphBuilder::new();
        let x = b.input("x", &[1, 16, 9, 9]);
        let conv = |b: &mut GraphBuilder, name: &str, x: Outlet, cin, cout, k: usize| {
            let w = b.constant(&format!("{name}_w"), random_tensor(&[cout, cin, k, k], 1));
            let bias = b.constant(&format!("{name}_b"), random_tensor(&[cout], 2));
            let attrs = ConvAttrs {
                group: 1,
                pads: vec![(k / 2) as i64; 4],
                ..Default::default()
            };
            let y = b.op(name, Op::Conv(attrs), &[x, w, bias]);
            if relu {
                b.op(&format!("{name}_relu"), Op::Relu, &[y])
            } else {
                y
            }
        };
        let a = conv(&mut b, "a", x, 16, 4, 1);
        let b1 = conv(&mut b, "b1", x, 16, 3, 1);
        let b2 = conv(&mut b, "b2", b1, 3, 4, 3);
        let p = b.op("pool", Op::AveragePool(pool(3, 1, 1, 1)), &[x]);
        let c = conv(&mut b, "c", p, 16, 2, 1);
        let cat = b.op("cat", Op::Concat { axis: 1 }, &[a, b2, c]);
        b.output(cat);
        b.build().unwrap()
    }

    fn run_default(g: &Graph) -> (Graph, crate::pipeline::PipelineReport) {
        let mut after = g.clone();
        let report = Pipeline::default_pipeline().run(&mut after).unwrap();
        let v = verify(g, &after, 2, 3).unwrap();
        assert!(v.max_rel <= EXACT, "{v:?}");
        (after, report)
    }

    fn rewrites(r: &crate::pipeline::PipelineReport, pass: &str) -> usize {
        r.passes.iter().find(|p| p.name == pass).unwrap().rewrites
    }

    #[test]
    fn swapped_conv_joins_its_siblings_in_horizontal_fusion() {
        let g = inception_block(false);
        let mut alone = g.clone();
        assert_eq!(
            HorizontalFusion.run(&mut alone).unwrap().rewrites,
            1,
            "a+b1"
        );
        let (after, report) = run_default(&g);
        assert_eq!(rewrites(&report, "pool-conv-swap"), 1);
        assert_eq!(rewrites(&report, "horizontal-fusion"), 2, "a+b1+c");
        let pointwise = count(&after, |op| matches!(op, Op::Conv(_) | Op::FusedConv(_)));
        assert_eq!(pointwise, 2, "the merged 1x1 conv and b2");
    }

    #[test]
    fn swapped_conv_with_relu_after_stays_apart_from_fused_siblings() {
        // The real InceptionV3 shape: Conv+BN+Relu everywhere. The swapped conv ends in
        // Pool -> Add -> Relu, its siblings in a fused Relu: different activations, so
        // horizontal fusion keeps it apart (a+b1 still merge).
        let (after, report) = run_default(&inception_block(true));
        assert_eq!(rewrites(&report, "pool-conv-swap"), 1);
        assert_eq!(rewrites(&report, "horizontal-fusion"), 1);
        let pool = after.find_node("pool").unwrap();
        let conv = after.input_outlet(pool, 0).unwrap().node;
        assert!(matches!(after.node(conv).op, Op::Conv(_)));
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 128,
            failure_persistence: None,
            rng_seed: proptest::test_runner::RngSeed::Fixed(20261203),
            ..ProptestConfig::default()
        })]

        #[test]
        fn any_average_pool_swaps_exactly(
            k in 1i64..=3,
            s in 1i64..=2,
            pads in proptest::array::uniform4(0i64..=2),
            cip in 0i64..=1,
            ceil in 0i64..=1,
            c_in in 1usize..=6,
            c_out in 1usize..=6,
            bias in 0u8..3,
        ) {
            let pads: Vec<i64> = pads.iter().map(|&p| p.min(k - 1)).collect();
            let p = PoolAttrs { pads: pads.clone(), ceil_mode: ceil, ..pool(k, s, 0, cip) };
            let mut net = Net::new(p, c_in, c_out);
            net.bias = match bias {
                0 => None,
                1 => Some(Tensor::from_shape(&[c_out], &vec![0f32; c_out]).unwrap()),
                _ => Some(random_tensor(&[c_out], 11)),
            };
            let g = net.build();
            let (_, outcome) = swapped(&g);
            // A size-keeping pool pays once the channels it no longer averages outweigh
            // a moved bias's Add.
            let keeps = s == 1 && (0..2).all(|i| pads[i] + pads[i + 2] == k - 1);
            let bias_moves = bias == 2 && cip == 1 && pads.iter().any(|&p| p > 0);
            let add = if bias_moves { c_out } else { 0 };
            if keeps && c_out < c_in && (c_in - c_out) * (k * k) as usize > add {
                prop_assert_eq!(outcome.rewrites, 1);
            }
            if c_out >= c_in {
                prop_assert_eq!(outcome.rewrites, 0);
            }
        }
    }
}
