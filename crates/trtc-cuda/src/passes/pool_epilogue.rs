//! A per-channel bias and an activation applied by the pool kernel as it stores:
//! `Pool(avg or max) -> t -> Add(t, per-channel constant bias) [-> u -> activation]`
//! `=>` `Pool` with a bias+act epilogue, and `Pool -> t -> activation` `=>` `Pool` with an
//! act epilogue. The fused step writes the last fused op's output, where the pool was.
//!
//! InceptionV3's `AveragePool -> 1x1 Conv(+bias) -> Relu`, which `pool-conv-swap` turns
//! into `1x1 Conv -> AveragePool -> Add(bias) -> Relu`, leaves the Add and the Relu as a
//! second pass over the pooled tensor; the pool kernel can add `bias[channel]` and apply
//! the activation in registers before its store (`pool_epilogue` in `sys/kernels.rs`).
//! Valid for max pooling as for average pooling: the epilogue follows the pooled value.
//!
//! Runs before the chains pass (`passes/chains.rs`), so the Add and the activation are
//! still separate `Binary` and `Act` steps.
//!
//! Must not fire (the epilogue stops before the op) when the tensor it would take over
//! (`t`, or `u` for the activation) is a segment output, is viewed by a reshape, or is read
//! by another step too (or twice by one); when the Add's other operand is not a constant of
//! exactly C values broadcast along the channel dim (shape `[1, C, 1, 1]`, or `[C, 1, 1]`,
//! stored in the engine's element type: one value per channel in NHWC and NCHW storage
//! alike), or the op is not an Add; when the activation is one the pool kernels cannot
//! apply (codes 1 to 7 of `act_apply`); or when the op's output has another shape, layout
//! or element type than the pooled tensor. A pool with an epilogue already is left alone.

use super::arena::step_slots;
use crate::program::{Program, Step};

/// One pool and the steps its epilogue takes over.
struct Fusion {
    pool: usize,
    bias: Option<usize>,
    act: Option<(i32, f32, f32)>,
    y: usize,
    members: Vec<usize>,
}

/// Activation codes the pool kernels apply (`act_apply`: Relu .. Tanh).
fn pool_can_apply(code: i32) -> bool {
    (1..=7).contains(&code)
}

/// Whether slot `b` is a constant of one value per channel of the 4-D tensor `y`: its
/// shape, right-aligned to 4 dims, is `[1, C, 1, 1]`, and it is stored in `y`'s type.
fn per_channel_bias(p: &Program, b: usize, y: usize) -> bool {
    let (bs, ys) = (&p.slots[b], &p.slots[y]);
    let Some(c) = ys.shape.get(1).and_then(|d| d.known()) else {
        return false;
    };
    if ys.shape.len() != 4
        || bs.constant.is_none()
        || bs.alias_of.is_some()
        || bs.pixels
        || bs.half != ys.half
        || bs.shape.len() > 4
    {
        return false;
    }
    let want = [1, c, 1, 1];
    let pad = 4 - bs.shape.len();
    bs.shape
        .iter()
        .enumerate()
        .all(|(k, d)| d.known() == Some(want[k + pad]))
}

/// Give pools of `p` the bias and activation that follow them as an epilogue, removing
/// those steps; returns how many pools took an epilogue.
pub fn fuse_pool_epilogues(p: &mut Program) -> usize {
    let mut readers: Vec<Vec<usize>> = vec![vec![]; p.slots.len()];
    for (i, step) in p.steps.iter().enumerate() {
        for s in step_slots(step).0 {
            readers[s].push(i);
        }
    }
    let output = |s: usize| p.outputs.iter().any(|&o| p.storage(o) == s);
    let viewed = |s: usize| p.slots.iter().any(|t| t.alias_of == Some(s));
    let same = |a: usize, b: usize| {
        let (a, b) = (&p.slots[a], &p.slots[b]);
        a.shape == b.shape && a.nhwc == b.nhwc && a.half == b.half && a.pixels == b.pixels
    };
    // The one step after `i` that reads `v`, when `v` can stay in registers.
    let sole_reader = |v: usize, i: usize| -> Option<usize> {
        let [j] = readers[v][..] else { return None };
        (j > i && !output(v) && !viewed(v)).then_some(j)
    };
    let mut fusions = vec![];
    for (i, step) in p.steps.iter().enumerate() {
        let Step::Pool {
            y,
            bias: None,
            act: None,
            ..
        } = step
        else {
            continue;
        };
        let mut f = Fusion {
            pool: i,
            bias: None,
            act: None,
            y: *y,
            members: vec![],
        };
        if let Some(j) = sole_reader(f.y, i) {
            if let Step::Binary { a, b, y: u, op: 0 } = p.steps[j] {
                let other = if a == f.y { b } else { a };
                if (a == f.y) != (b == f.y) && per_channel_bias(p, other, f.y) && same(u, f.y) {
                    f.bias = Some(other);
                    f.members.push(j);
                    f.y = u;
                }
            }
        }
        if let Some(j) = sole_reader(f.y, i) {
            if let Step::Act { x, y: u, act } = p.steps[j] {
                if x == f.y && pool_can_apply(act.0) && same(u, f.y) {
                    f.act = Some(act);
                    f.members.push(j);
                    f.y = u;
                }
            }
        }
        if !f.members.is_empty() {
            fusions.push(f);
        }
    }
    let count = fusions.len();
    if count == 0 {
        return 0;
    }
    let mut removed = vec![false; p.steps.len()];
    for f in &fusions {
        f.members.iter().for_each(|&m| removed[m] = true);
        if let Step::Pool { y, bias, act, .. } = &mut p.steps[f.pool] {
            *y = f.y;
            *bias = f.bias;
            *act = f.act;
        }
        p.names[f.pool] = format!("{} (+{} fused)", p.names[f.pool], f.members.len());
    }
    let steps = std::mem::take(&mut p.steps);
    let names = std::mem::take(&mut p.names);
    for ((step, name), gone) in steps.into_iter().zip(names).zip(removed) {
        if !gone {
            p.steps.push(step);
            p.names.push(name);
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::program::{Slot, WeightId};
    use trtc_engine::Precision;
    use trtc_ir::Dim;

    const RELU: (i32, f32, f32) = (1, 0.0, 0.0);

    fn slot(shape: &[u64], constant: bool) -> Slot {
        Slot {
            shape: shape.iter().map(|&d| Dim::Known(d)).collect(),
            alias_of: None,
            constant: constant.then_some(WeightId(0)),
            nhwc: true,
            half: true,
            pixels: false,
            int8: false,
        }
    }

    fn pool(x: usize, y: usize) -> Step {
        Step::Pool {
            x,
            y,
            max: false,
            kernel: [3, 3],
            stride: [1, 1],
            pads: [1; 4],
            count_pad: true,
            bias: None,
            act: None,
        }
    }

    fn relu(x: usize, y: usize) -> Step {
        Step::Act { x, y, act: RELU }
    }

    /// Slots 0 x, 1 t = pool(x), 2 the bias (a `[8, 1, 1]` constant), 3 u = t + bias,
    /// 4 relu(u), the output; `extra` steps (and their slots) after.
    fn program(extra: Vec<Step>, extra_slots: usize) -> Program {
        let shape = [2, 8, 6, 6];
        let mut slots = vec![
            slot(&shape, false),
            slot(&shape, false),
            slot(&[8, 1, 1], true),
            slot(&shape, false),
            slot(&shape, false),
        ];
        slots.extend((0..extra_slots).map(|_| slot(&shape, false)));
        let mut steps = vec![
            pool(0, 1),
            Step::Binary {
                a: 1,
                b: 2,
                y: 3,
                op: 0,
            },
            relu(3, 4),
        ];
        steps.extend(extra);
        Program {
            names: (0..steps.len()).map(|i| format!("op{i}")).collect(),
            slots,
            steps,
            inputs: vec![0],
            outputs: vec![4],
            weights: vec![vec![0; 16]],
            precision: Precision::Fp16,
            nhwc: true,
            half: true,
            precisions: vec![],
        }
    }

    /// The pool step's output slot, bias and activation.
    fn epilogue(p: &Program) -> (usize, Option<usize>, Option<(i32, f32, f32)>) {
        match p.steps.first() {
            Some(Step::Pool { y, bias, act, .. }) => (*y, *bias, *act),
            _ => panic!("the first step is not the pool"),
        }
    }

    #[test]
    fn a_pool_takes_over_its_bias_add_and_relu() {
        let mut p = program(vec![], 0);
        assert_eq!(fuse_pool_epilogues(&mut p), 1);
        assert_eq!(p.steps.len(), 1);
        assert_eq!(p.names, vec!["op0 (+2 fused)"]);
        assert_eq!(epilogue(&p), (4, Some(2), Some(RELU)));
        // The bias is an input of the fused step (the arena and the views see it).
        assert_eq!(step_slots(&p.steps[0]), (vec![0, 2], vec![4]));

        // The bias on the left of the Add; a 4-D [1, 8, 1, 1] bias; a max pool.
        let mut p = program(vec![], 0);
        p.steps[1] = Step::Binary {
            a: 2,
            b: 1,
            y: 3,
            op: 0,
        };
        p.slots[2] = slot(&[1, 8, 1, 1], true);
        if let Step::Pool { max, .. } = &mut p.steps[0] {
            *max = true;
        }
        assert_eq!(fuse_pool_epilogues(&mut p), 1);
        assert_eq!(epilogue(&p), (4, Some(2), Some(RELU)));
    }

    #[test]
    fn an_activation_alone_or_a_bias_alone_is_taken_over_too() {
        // Pool -> Relu.
        let mut p = program(vec![], 0);
        p.steps = vec![pool(0, 1), relu(1, 4)];
        p.names.truncate(2);
        assert_eq!(fuse_pool_epilogues(&mut p), 1);
        assert_eq!(epilogue(&p), (4, None, Some(RELU)));
        // The Add's output is read again: the Relu stays.
        let mut p = program(vec![relu(3, 5)], 1);
        p.outputs.push(5);
        assert_eq!(fuse_pool_epilogues(&mut p), 1);
        assert_eq!(epilogue(&p), (3, Some(2), None));
        assert_eq!(p.steps.len(), 3);
        // An activation the pool kernels do not apply (Elu): the Add alone.
        let mut p = program(vec![], 0);
        p.steps[2] = Step::Act {
            x: 3,
            y: 4,
            act: (8, 1.0, 0.0),
        };
        assert_eq!(fuse_pool_epilogues(&mut p), 1);
        assert_eq!(epilogue(&p), (3, Some(2), None));
    }

    #[test]
    fn no_epilogue_when_the_pooled_tensor_has_another_reader_or_is_an_output_or_a_view() {
        let untouched = |mut p: Program, what: &str| {
            let steps = p.steps.len();
            assert_eq!(fuse_pool_epilogues(&mut p), 0, "{what}");
            assert_eq!(p.steps.len(), steps, "{what}");
            assert_eq!(epilogue(&p), (1, None, None), "{what}");
        };
        let mut p = program(vec![relu(1, 5)], 1);
        p.outputs.push(5);
        untouched(p, "t read twice");
        let mut p = program(vec![], 0);
        p.outputs.push(1);
        untouched(p, "t a segment output");
        let mut p = program(vec![], 1);
        p.slots[5].alias_of = Some(1);
        untouched(p, "t viewed by a reshape");
    }

    #[test]
    fn no_bias_but_a_per_channel_constant_in_the_engines_type() {
        let no_bias = |mut p: Program, what: &str| {
            fuse_pool_epilogues(&mut p);
            assert_eq!(p.steps.len(), 3, "{what}");
            assert_eq!(epilogue(&p), (1, None, None), "{what}");
        };
        /// A change of the test program that must keep the Add out of the pool.
        type Change = fn(&mut Program);
        let variants: [(&str, Change); 7] = [
            ("not a constant", |p| p.slots[2].constant = None),
            ("along W", |p| p.slots[2] = slot(&[1, 1, 1, 8], true)),
            ("one value per element", |p| {
                p.slots[2] = slot(&[1, 8, 6, 6], true)
            }),
            ("f32 in an fp16 engine", |p| p.slots[2].half = false),
            ("a Sub", |p| {
                p.steps[1] = Step::Binary {
                    a: 1,
                    b: 2,
                    y: 3,
                    op: 2,
                }
            }),
            ("a Mul", |p| {
                p.steps[1] = Step::Binary {
                    a: 1,
                    b: 2,
                    y: 3,
                    op: 1,
                }
            }),
            ("the Add's output of another shape", |p| {
                p.slots[3] = slot(&[2, 8, 6, 7], false);
                p.slots[4] = slot(&[2, 8, 6, 7], false);
            }),
        ];
        for (what, change) in variants {
            let mut p = program(vec![], 0);
            change(&mut p);
            no_bias(p, what);
        }
    }

    #[test]
    fn a_fused_pool_writes_its_slice_of_the_concat_that_reads_the_relu() {
        // relu(t + bias) (slot 4) and x (slot 0) concatenated into slot 5.
        let mut p = program(
            vec![Step::Concat {
                inputs: vec![4, 0],
                y: 5,
                axis: 1,
            }],
            1,
        );
        p.slots[5] = slot(&[2, 16, 6, 6], false);
        p.outputs = vec![5];
        assert_eq!(fuse_pool_epilogues(&mut p), 1);
        let views = crate::passes::concat_views::concat_views(&p);
        let view = views.get(&4).map(|v| (v.base, v.offset, v.ld));
        assert_eq!(view, Some((5, 0, 16)));
    }

    /// Through the lowering: `AveragePool -> Add([C, 1, 1] constant) -> Relu`, as
    /// `pool-conv-swap` leaves InceptionV3, is one pool step (between the boundary's
    /// conversions) in every precision and layout.
    #[test]
    fn a_lowered_pool_add_relu_is_one_step() {
        use crate::ops::lower_segment;
        use trtc_engine::{EngineOptions, Layout};
        use trtc_ir::{subgraph_io, GraphBuilder, Op, PoolAttrs};
        use trtc_optimizer::verify::random_tensor;

        let mut b = GraphBuilder::new();
        let x = b.input("x", &[2, 8, 6, 6]);
        let t = b.op(
            "ap",
            Op::AveragePool(PoolAttrs {
                kernel_shape: vec![3, 3],
                pads: vec![1, 1, 1, 1],
                count_include_pad: 1,
                ..Default::default()
            }),
            &[x],
        );
        let bias = b.constant("bias", random_tensor(&[8, 1, 1], 1));
        let u = b.op("add", Op::Add, &[t, bias]);
        let r = b.op("relu", Op::Relu, &[u]);
        b.output(r);
        let g = b.build().unwrap();
        let ids: Vec<_> = g
            .topo_order()
            .unwrap()
            .into_iter()
            .filter(|&id| !matches!(g.node(id).op, Op::Input | Op::Const(_)))
            .collect();
        let io = subgraph_io(&g, &ids).unwrap();
        for (precision, layout) in [
            (Precision::Fp32, Layout::Nchw),
            (Precision::Fp32, Layout::Nhwc),
            (Precision::Fp16, Layout::Auto),
        ] {
            let opts = EngineOptions {
                precision,
                layout,
                ..Default::default()
            };
            let p = lower_segment(&g, &ids, &io, &opts).unwrap();
            let pools: Vec<_> = p
                .steps
                .iter()
                .filter_map(|s| match s {
                    Step::Pool { bias, act, .. } => Some((bias.is_some(), *act)),
                    _ => None,
                })
                .collect();
            assert_eq!(pools, vec![(true, Some(RELU))], "{precision:?} {layout:?}");
            let others = p
                .steps
                .iter()
                .all(|s| matches!(s, Step::Pool { .. } | Step::Convert { .. }));
            assert!(
                others,
                "{precision:?} {layout:?}: only the pool and conversions"
            );
        }
    }
}
