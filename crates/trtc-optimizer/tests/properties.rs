//! Property tests for the optimizer passes: on random small, valid CNN graphs every pass
//! (alone, in any order, and as the default pipeline) keeps the graph valid and its
//! outputs equal, the pipeline is idempotent, and horizontal fusion merges only convs
//! whose attributes are identical.
//!
//! Graphs are described by small "block descriptors" (plain data that proptest shrinks
//! toward fewer blocks and smaller parameters) and built from them deterministically by
//! plain functions, which track the current tensor's channel count and spatial size so
//! that every description builds a valid graph.

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use std::collections::HashMap;
use trtc_ir::tract_onnx::prelude::{tensor0, tensor1};
use trtc_ir::{ConvAttrs, Graph, GraphBuilder, Op, Outlet, PoolAttrs};
use trtc_optimizer::testing::TOLERANCE;
use trtc_optimizer::verify::{random_tensor, verify};
use trtc_optimizer::{pass_by_name, Pipeline, PASS_NAMES};

// ---------------------------------------------------------------------------------------
// Descriptors
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Group {
    One,
    /// group = C, weights [C, 1, k, k] (group 1 when C is 1).
    Depthwise,
    /// group 2 when the input channels are even (group 1 otherwise).
    Two,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Act {
    None,
    Relu,
    /// Clip(0, 6) with constant scalar bounds.
    Clip,
}

#[derive(Clone, Debug)]
struct ConvD {
    cout: usize,
    /// 0, 1, 2 => kernel 1, 3, 5 (made smaller when it does not fit).
    k: usize,
    stride2: bool,
    /// [top, left, bottom, right]; with `symmetric`, bottom/right copy top/left.
    pads: [i64; 4],
    symmetric: bool,
    group: Group,
    bias: bool,
    /// The weights are `Add(W, D)` of two constants (something for constant folding).
    folded_weights: bool,
    seed: u64,
}

#[derive(Clone, Debug)]
struct Branch {
    cout: usize,
    act: Act,
    bias: bool,
}

#[derive(Clone, Copy, Debug)]
enum Usage {
    /// All siblings feed one Concat(axis 1), in order.
    ConcatInOrder,
    /// All siblings feed one Concat(axis 1), reversed.
    ConcatReversed,
    /// Sibling 0 + sibling 1 (same channels) continues; any third is a graph output.
    AddFirstTwo,
    /// Sibling 0 continues; the others are graph outputs.
    FirstContinues,
}

#[derive(Clone, Debug)]
enum Block {
    Act(Act),
    BatchNorm {
        seed: u64,
    },
    /// Identity or (inference) Dropout.
    NoOp {
        dropout: bool,
    },
    /// A Relu that reaches no output.
    DeadBranch,
    Pool {
        max: bool,
        k3: bool,
        stride2: bool,
    },
    /// Per-channel (or scalar) constant Mul or Add.
    Affine {
        mul: bool,
        scalar: bool,
        seed: u64,
    },
    Conv(ConvD),
    /// x -> conv (size-keeping, C -> C) -> [relu] ; Add(x, that) (or Add(that, x)).
    Residual {
        k3: bool,
        depthwise: bool,
        bias: bool,
        relu: bool,
        x_first: bool,
        seed: u64,
    },
    /// 2-3 convs with identical attributes (1x1, or 3x3 same pads; group 1) reading x.
    Siblings {
        k3: bool,
        branches: Vec<Branch>,
        usage: Usage,
        seed: u64,
    },
    /// A constant-mode Pad of the spatial axes (value 0, or 1 when `nonzero`) before a conv.
    PadConv {
        pads: [i64; 4],
        nonzero: bool,
        conv: ConvD,
    },
}

#[derive(Clone, Debug)]
struct Head {
    classes: usize,
    /// Flatten by `Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 0)), [-1]))` instead of Flatten.
    shape_reshape: bool,
    seed: u64,
}

#[derive(Clone, Debug)]
struct Net {
    c: usize,
    h: usize,
    w: usize,
    blocks: Vec<Block>,
    head: Option<Head>,
}

// ---------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![Just(Act::None), Just(Act::Relu), Just(Act::Clip)]
}

fn group() -> impl Strategy<Value = Group> {
    prop_oneof![Just(Group::One), Just(Group::Depthwise), Just(Group::Two)]
}

prop_compose! {
    fn conv_d()(
        cout in 1usize..=6,
        k in 0usize..3,
        stride2 in any::<bool>(),
        pads in proptest::array::uniform4(0i64..=2),
        symmetric in any::<bool>(),
        group in group(),
        bias in any::<bool>(),
        folded_weights in proptest::bool::weighted(0.15),
        seed in 0u64..64,
    ) -> ConvD {
        ConvD { cout, k, stride2, pads, symmetric, group, bias, folded_weights, seed }
    }
}

prop_compose! {
    fn branch()(cout in 1usize..=2, act in act(), bias in any::<bool>()) -> Branch {
        Branch { cout, act, bias }
    }
}

fn usage() -> impl Strategy<Value = Usage> {
    prop_oneof![
        Just(Usage::ConcatInOrder),
        Just(Usage::ConcatReversed),
        Just(Usage::AddFirstTwo),
        Just(Usage::FirstContinues),
    ]
}

fn block() -> impl Strategy<Value = Block> {
    prop_oneof![
        2 => act().prop_map(Block::Act),
        2 => (0u64..64).prop_map(|seed| Block::BatchNorm { seed }),
        1 => any::<bool>().prop_map(|dropout| Block::NoOp { dropout }),
        1 => Just(Block::DeadBranch),
        2 => (any::<bool>(), any::<bool>(), any::<bool>())
            .prop_map(|(max, k3, stride2)| Block::Pool { max, k3, stride2 }),
        1 => (any::<bool>(), any::<bool>(), 0u64..64)
            .prop_map(|(mul, scalar, seed)| Block::Affine { mul, scalar, seed }),
        4 => conv_d().prop_map(Block::Conv),
        2 => (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>(), 0u64..64)
            .prop_map(|(k3, depthwise, bias, relu, x_first, seed)| Block::Residual { k3, depthwise, bias, relu, x_first, seed }),
        3 => (any::<bool>(), proptest::collection::vec(branch(), 2..=3), usage(), 0u64..64)
            .prop_map(|(k3, branches, usage, seed)| Block::Siblings { k3, branches, usage, seed }),
        1 => (proptest::array::uniform4(0i64..=1), proptest::bool::weighted(0.2), conv_d())
            .prop_map(|(pads, nonzero, conv)| Block::PadConv { pads, nonzero, conv }),
    ]
}

prop_compose! {
    fn head()(classes in 1usize..=6, shape_reshape in any::<bool>(), seed in 0u64..64) -> Head {
        Head { classes, shape_reshape, seed }
    }
}

prop_compose! {
    fn net()(
        c in 1usize..=6,
        h in 4usize..=9,
        w in 4usize..=9,
        blocks in proptest::collection::vec(block(), 1..=4),
        head in proptest::option::weighted(0.3, head()),
    ) -> Net {
        Net { c, h, w, blocks, head }
    }
}

// ---------------------------------------------------------------------------------------
// Building graphs from descriptors
// ---------------------------------------------------------------------------------------

/// The builder plus the current tensor and its [1, c, h, w] shape.
struct Ctx {
    b: GraphBuilder,
    x: Outlet,
    input: Outlet,
    c: usize,
    h: usize,
    w: usize,
    extra_outputs: Vec<Outlet>,
}

fn out_size(i: usize, k: usize, s: usize, d: usize, pb: i64, pe: i64) -> i64 {
    let span = i as i64 + pb + pe - (d as i64) * (k as i64 - 1) - 1;
    if span < 0 {
        0
    } else {
        span / s as i64 + 1
    }
}

fn activation(b: &mut GraphBuilder, name: &str, x: Outlet, act: Act) -> Outlet {
    match act {
        Act::None => x,
        Act::Relu => b.op(name, Op::Relu, &[x]),
        Act::Clip => {
            let lo = b.constant(&format!("{name}_min"), tensor0(0f32));
            let hi = b.constant(&format!("{name}_max"), tensor0(6f32));
            b.op(name, Op::Clip, &[x, lo, hi])
        }
    }
}

/// Weights and bias constants plus the Conv node; returns the conv's output.
#[allow(clippy::too_many_arguments)]
fn conv_node(
    b: &mut GraphBuilder,
    name: &str,
    x: Outlet,
    cin: usize,
    cout: usize,
    k: usize,
    attrs: ConvAttrs,
    bias: bool,
    folded_weights: bool,
    seed: u64,
) -> Outlet {
    let group = attrs.group.max(1) as usize;
    let w_shape = [cout, cin / group, k, k];
    let w = if folded_weights {
        let a = b.constant(&format!("{name}_wa"), random_tensor(&w_shape, seed));
        let d = b.constant(&format!("{name}_wd"), random_tensor(&w_shape, seed + 1000));
        b.op(&format!("{name}_wsum"), Op::Add, &[a, d])
    } else {
        b.constant(&format!("{name}_w"), random_tensor(&w_shape, seed))
    };
    let mut inputs = vec![x, w];
    if bias {
        inputs.push(b.constant(&format!("{name}_b"), random_tensor(&[cout], seed + 2000)));
    }
    b.op(name, Op::Conv(attrs), &inputs)
}

/// A general conv block on the current tensor, clamped so the output is valid and small.
fn add_conv(ctx: &mut Ctx, name: &str, d: &ConvD) {
    let (c, h, w) = (ctx.c, ctx.h, ctx.w);
    let mut pads = d.pads;
    if d.symmetric {
        pads[2] = pads[0];
        pads[3] = pads[1];
    }
    let mut k = [1, 3, 5][d.k];
    while k > 1 && (k as i64 > h as i64 + pads[0] + pads[2] || k as i64 > w as i64 + pads[1] + pads[3]) {
        k -= 2;
    }
    let s = if d.stride2 { 2 } else { 1 };
    let (mut oh, mut ow) = (out_size(h, k, s, 1, pads[0], pads[2]), out_size(w, k, s, 1, pads[1], pads[3]));
    if oh > 9 || ow > 9 {
        pads = [0; 4];
        oh = out_size(h, k, s, 1, 0, 0);
        ow = out_size(w, k, s, 1, 0, 0);
    }
    let (group, cout) = match d.group {
        Group::One => (1, d.cout),
        Group::Depthwise => (c, c),
        Group::Two if c % 2 == 0 => (2, d.cout.div_ceil(2) * 2),
        Group::Two => (1, d.cout),
    };
    let attrs = ConvAttrs {
        group: group as i64,
        kernel_shape: vec![k as i64; 2],
        pads: pads.to_vec(),
        strides: vec![s as i64; 2],
        dilations: vec![1, 1],
        ..Default::default()
    };
    ctx.x = conv_node(&mut ctx.b, name, ctx.x, c, cout, k, attrs, d.bias, d.folded_weights, d.seed);
    ctx.c = cout;
    ctx.h = oh as usize;
    ctx.w = ow as usize;
}

/// Conv attributes that keep the spatial size (1x1, or 3x3 with pads 1), group 1.
fn same_conv(k3: bool, group: usize) -> (usize, ConvAttrs) {
    let (k, p) = if k3 { (3, 1) } else { (1, 0) };
    let attrs = ConvAttrs {
        group: group as i64,
        kernel_shape: vec![k as i64; 2],
        pads: vec![p; 4],
        strides: vec![1, 1],
        dilations: vec![1, 1],
        ..Default::default()
    };
    (k, attrs)
}

fn add_block(ctx: &mut Ctx, i: usize, block: &Block) {
    let name = format!("b{i}");
    match block {
        Block::Act(a) => {
            let a = if *a == Act::None { Act::Relu } else { *a };
            ctx.x = activation(&mut ctx.b, &format!("{name}_act"), ctx.x, a);
        }
        Block::BatchNorm { seed } => {
            let c = ctx.c;
            let gamma = ctx.b.constant(&format!("{name}_gamma"), random_tensor(&[c], *seed));
            let beta = ctx.b.constant(&format!("{name}_beta"), random_tensor(&[c], seed + 100));
            let mean = ctx.b.constant(&format!("{name}_mean"), random_tensor(&[c], seed + 200));
            let var_values: Vec<f32> = trtc_ir::tensor::tensor_to_f32s(&random_tensor(&[c], seed + 300))
                .expect("f32")
                .iter()
                .map(|v| v.abs() + 0.5)
                .collect();
            let var = ctx.b.constant(&format!("{name}_var"), tensor1(&var_values));
            ctx.x = ctx.b.op(
                &format!("{name}_bn"),
                Op::BatchNormalization { epsilon: 1e-5, momentum: None },
                &[ctx.x, gamma, beta, mean, var],
            );
        }
        Block::NoOp { dropout } => {
            let op = if *dropout { Op::Dropout { seed: None } } else { Op::Identity };
            ctx.x = ctx.b.op(&format!("{name}_noop"), op, &[ctx.x]);
        }
        Block::DeadBranch => {
            ctx.b.op(&format!("{name}_dead"), Op::Relu, &[ctx.x]);
        }
        Block::Pool { max, k3, stride2 } => {
            let k = (if *k3 { 3 } else { 2 }).min(ctx.h).min(ctx.w);
            let s = if *stride2 { 2 } else { 1 };
            let attrs = PoolAttrs {
                kernel_shape: vec![k as i64; 2],
                strides: vec![s as i64; 2],
                pads: vec![0; 4],
                ..Default::default()
            };
            let op = if *max { Op::MaxPool(attrs) } else { Op::AveragePool(attrs) };
            ctx.x = ctx.b.op(&format!("{name}_pool"), op, &[ctx.x]);
            ctx.h = out_size(ctx.h, k, s, 1, 0, 0) as usize;
            ctx.w = out_size(ctx.w, k, s, 1, 0, 0) as usize;
        }
        Block::Affine { mul, scalar, seed } => {
            let value = if *scalar { random_tensor(&[], *seed) } else { random_tensor(&[ctx.c, 1, 1], *seed) };
            let k = ctx.b.constant(&format!("{name}_k"), value);
            let op = if *mul { Op::Mul } else { Op::Add };
            ctx.x = ctx.b.op(&format!("{name}_affine"), op, &[ctx.x, k]);
        }
        Block::Conv(d) => add_conv(ctx, &format!("{name}_conv"), d),
        Block::Residual { k3, depthwise, bias, relu, x_first, seed } => {
            let c = ctx.c;
            let (k, attrs) = same_conv(*k3, if *depthwise { c } else { 1 });
            let y = conv_node(&mut ctx.b, &format!("{name}_rconv"), ctx.x, c, c, k, attrs, *bias, false, *seed);
            let y = activation(&mut ctx.b, &format!("{name}_ract"), y, if *relu { Act::Relu } else { Act::None });
            let ins = if *x_first { [ctx.x, y] } else { [y, ctx.x] };
            ctx.x = ctx.b.op(&format!("{name}_add"), Op::Add, &ins);
        }
        Block::Siblings { k3, branches, usage, seed } => {
            let x = ctx.x;
            let c = ctx.c;
            let mut outs = vec![];
            let mut couts = vec![];
            for (j, br) in branches.iter().enumerate() {
                // Sibling 1 matches sibling 0's channels when the two are added.
                let cout = if matches!(usage, Usage::AddFirstTwo) && j == 1 { couts[0] } else { br.cout };
                let (k, attrs) = same_conv(*k3, 1);
                let sname = format!("{name}_sib{j}");
                let y = conv_node(&mut ctx.b, &sname, x, c, cout, k, attrs, br.bias, false, seed + 10 * j as u64);
                outs.push(activation(&mut ctx.b, &format!("{sname}_act"), y, br.act));
                couts.push(cout);
            }
            match usage {
                Usage::ConcatInOrder | Usage::ConcatReversed => {
                    if matches!(usage, Usage::ConcatReversed) {
                        outs.reverse();
                    }
                    ctx.x = ctx.b.op(&format!("{name}_cat"), Op::Concat { axis: 1 }, &outs);
                    ctx.c = couts.iter().sum();
                }
                Usage::AddFirstTwo => {
                    ctx.x = ctx.b.op(&format!("{name}_sum"), Op::Add, &[outs[0], outs[1]]);
                    ctx.c = couts[0];
                    ctx.extra_outputs.extend_from_slice(&outs[2..]);
                }
                Usage::FirstContinues => {
                    ctx.x = outs[0];
                    ctx.c = couts[0];
                    ctx.extra_outputs.extend_from_slice(&outs[1..]);
                }
            }
        }
        Block::PadConv { pads, nonzero, conv } => {
            let p = ctx.b.constant(&format!("{name}_pads"), tensor1(&[0, 0, pads[0], pads[1], 0, 0, pads[2], pads[3]]));
            let v = ctx.b.constant(&format!("{name}_padv"), tensor0(if *nonzero { 1f32 } else { 0f32 }));
            ctx.x = ctx.b.op(&format!("{name}_pad"), Op::Pad { mode: "constant".into() }, &[ctx.x, p, v]);
            ctx.h += (pads[0] + pads[2]) as usize;
            ctx.w += (pads[1] + pads[3]) as usize;
            add_conv(ctx, &format!("{name}_conv"), conv);
        }
    }
}

fn add_head(ctx: &mut Ctx, head: &Head) {
    let c = ctx.c;
    let pooled = ctx.b.op("head_gap", Op::GlobalAveragePool, &[ctx.x]);
    let flat = if head.shape_reshape {
        let s = ctx.b.op("head_shape", Op::Shape { start: None, end: None }, &[pooled]);
        let zero = ctx.b.constant("head_zero", tensor0(0i64));
        let n = ctx.b.op("head_gather", Op::Gather { axis: 0 }, &[s, zero]);
        let axes = ctx.b.constant("head_axes", tensor1(&[0i64]));
        let n1 = ctx.b.op("head_unsq", Op::Unsqueeze, &[n, axes]);
        let minus1 = ctx.b.constant("head_m1", tensor1(&[-1i64]));
        let target = ctx.b.op("head_target", Op::Concat { axis: 0 }, &[n1, minus1]);
        ctx.b.op("head_reshape", Op::Reshape { allowzero: 0 }, &[pooled, target])
    } else {
        ctx.b.op("head_flatten", Op::Flatten { axis: 1 }, &[pooled])
    };
    let w = ctx.b.constant("head_w", random_tensor(&[head.classes, c], head.seed));
    let bias = ctx.b.constant("head_b", random_tensor(&[head.classes], head.seed + 1));
    ctx.x = ctx.b.op("head_gemm", Op::Gemm { alpha: 1.0, beta: 1.0, trans_a: 0, trans_b: 1 }, &[flat, w, bias]);
}

fn build_net(net: &Net) -> Graph {
    let mut b = GraphBuilder::new();
    let input = b.input("x", &[1, net.c, net.h, net.w]);
    let mut ctx = Ctx { b, x: input, input, c: net.c, h: net.h, w: net.w, extra_outputs: vec![] };
    for (i, block) in net.blocks.iter().enumerate() {
        add_block(&mut ctx, i, block);
    }
    if ctx.x == ctx.input {
        // Never hand the graph input straight back as an output.
        ctx.x = ctx.b.op("final_relu", Op::Relu, &[ctx.x]);
    }
    if let Some(head) = &net.head {
        add_head(&mut ctx, head);
    }
    let mut b = ctx.b;
    b.output(ctx.x);
    for o in ctx.extra_outputs {
        b.output(o);
    }
    b.build().unwrap_or_else(|e| panic!("generator bug: {net:?} does not build: {e}"))
}

// ---------------------------------------------------------------------------------------
// Sibling convs with random attributes (for horizontal fusion)
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
struct SibD {
    /// 0, 1 => kernel 1, 3.
    k: usize,
    stride2: bool,
    pads: [i64; 4],
    dilation2: bool,
    group: Group,
    act: Act,
}

#[derive(Clone, Debug)]
struct Sibling {
    /// Use the shared base attributes (so that some siblings are alike).
    like_base: bool,
    own: SibD,
    cout: usize,
    bias: bool,
}

#[derive(Clone, Debug)]
struct SibNet {
    c: usize,
    h: usize,
    w: usize,
    base: SibD,
    siblings: Vec<Sibling>,
    /// Run vertical fusion first, so activations live inside FusedConvs.
    prefuse: bool,
    /// Concat the siblings (in order) when their outputs have one spatial size.
    concat: bool,
}

/// What must be equal for two convs to be merged.
#[derive(Clone, Debug, PartialEq)]
struct Resolved {
    kernel: Vec<i64>,
    strides: Vec<i64>,
    pads: Vec<i64>,
    dilations: Vec<i64>,
    group: i64,
    activation: Act,
}

prop_compose! {
    fn sib_d()(
        k in 0usize..2,
        stride2 in any::<bool>(),
        pads in proptest::array::uniform4(0i64..=1),
        dilation2 in any::<bool>(),
        group in group(),
        act in act(),
    ) -> SibD {
        SibD { k, stride2, pads, dilation2, group, act }
    }
}

prop_compose! {
    fn sibling()(like_base in proptest::bool::weighted(0.6), own in sib_d(), cout in 1usize..=3, bias in any::<bool>()) -> Sibling {
        Sibling { like_base, own, cout, bias }
    }
}

prop_compose! {
    fn sib_net()(
        c in 1usize..=6,
        h in 4usize..=9,
        w in 4usize..=9,
        base in sib_d(),
        siblings in proptest::collection::vec(sibling(), 2..=4),
        prefuse in any::<bool>(),
        concat in any::<bool>(),
    ) -> SibNet {
        SibNet { c, h, w, base, siblings, prefuse, concat }
    }
}

/// The sibling graph and each conv's resolved attributes, by node name.
fn build_sib_net(net: &SibNet) -> (Graph, HashMap<String, Resolved>) {
    let mut b = GraphBuilder::new();
    let (c, h, w) = (net.c, net.h, net.w);
    let x = b.input("x", &[1, c, h, w]);
    let mut attrs_by_name = HashMap::new();
    let mut outs = vec![];
    let mut sizes = vec![];
    for (j, sib) in net.siblings.iter().enumerate() {
        let d = if sib.like_base { &net.base } else { &sib.own };
        let mut k = if d.k == 1 { 3 } else { 1 };
        let mut dil = if d.dilation2 { 2 } else { 1 };
        let fits = |k: usize, dil: usize| {
            let eff = (dil * (k - 1) + 1) as i64;
            eff <= h as i64 + d.pads[0] + d.pads[2] && eff <= w as i64 + d.pads[1] + d.pads[3]
        };
        if !fits(k, dil) {
            dil = 1;
        }
        if !fits(k, dil) {
            k = 1;
        }
        let s = if d.stride2 { 2 } else { 1 };
        let (group, cout) = match d.group {
            Group::One => (1, sib.cout),
            Group::Depthwise => (c, c),
            Group::Two if c % 2 == 0 => (2, sib.cout.div_ceil(2) * 2),
            Group::Two => (1, sib.cout),
        };
        let attrs = ConvAttrs {
            group: group as i64,
            kernel_shape: vec![k as i64; 2],
            pads: d.pads.to_vec(),
            strides: vec![s as i64; 2],
            dilations: vec![dil as i64; 2],
            ..Default::default()
        };
        let name = format!("s{j}");
        attrs_by_name.insert(
            name.clone(),
            Resolved {
                kernel: attrs.kernel_shape.clone(),
                strides: attrs.strides.clone(),
                pads: attrs.pads.clone(),
                dilations: attrs.dilations.clone(),
                group: attrs.group,
                activation: d.act,
            },
        );
        let y = conv_node(&mut b, &name, x, c, cout, k, attrs, sib.bias, false, 7 * j as u64 + 1);
        outs.push(activation(&mut b, &format!("{name}_act"), y, d.act));
        sizes.push((out_size(h, k, s, dil, d.pads[0], d.pads[2]), out_size(w, k, s, dil, d.pads[1], d.pads[3])));
    }
    if net.concat && sizes.iter().all(|s| *s == sizes[0]) {
        let cat = b.op("cat", Op::Concat { axis: 1 }, &outs);
        b.output(cat);
    } else {
        for o in outs {
            b.output(o);
        }
    }
    let g = b.build().unwrap_or_else(|e| panic!("generator bug: {net:?} does not build: {e}"));
    (g, attrs_by_name)
}

// ---------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------

const VERIFY_SEED: u64 = 7;

/// `cases` per property, or `PROPTEST_CASES` from the environment for a longer hunt.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases);
    // No regression files: failures print their shrunk input instead.
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Re-infer shapes and validate after a pass run directly.
fn revalidate(g: &mut Graph, pass: &str) -> Result<(), TestCaseError> {
    trtc_ir::infer_shapes(g).map_err(|e| TestCaseError::fail(format!("{pass}: shape inference failed afterwards: {e}")))?;
    g.validate().map_err(|e| TestCaseError::fail(format!("{pass} left an invalid graph: {e}")))
}

fn assert_same_outputs(original: &Graph, optimized: &Graph, what: &str) -> Result<(), TestCaseError> {
    let v = verify(original, optimized, 1, VERIFY_SEED).map_err(|e| TestCaseError::fail(format!("{what}: verify failed: {e}")))?;
    prop_assert!(v.max_rel <= TOLERANCE, "{} changed the outputs: {:?}", what, v);
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn every_pass_preserves_outputs(net in net()) {
        let g = build_net(&net);
        for &name in PASS_NAMES {
            let pass = pass_by_name(name).unwrap();
            let mut after = g.clone();
            pass.run(&mut after).map_err(|e| TestCaseError::fail(format!("{name} failed: {e}")))?;
            revalidate(&mut after, name)?;
            assert_same_outputs(&g, &after, name)?;
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn pipeline_preserves_outputs_and_is_idempotent(net in net()) {
        let g = build_net(&net);
        let pipeline = Pipeline::default_pipeline();
        let mut after = g.clone();
        pipeline.run(&mut after).map_err(|e| TestCaseError::fail(format!("pipeline failed: {e}")))?;
        after.validate().map_err(|e| TestCaseError::fail(format!("pipeline left an invalid graph: {e}")))?;
        assert_same_outputs(&g, &after, "the default pipeline")?;

        let nodes = after.compute_node_count();
        let mut again = after.clone();
        let report = pipeline.run(&mut again).map_err(|e| TestCaseError::fail(format!("second pipeline run failed: {e}")))?;
        let rewrites: usize = report.passes.iter().map(|p| p.rewrites).sum();
        let by_pass: Vec<(String, usize)> = report.passes.iter().filter(|p| p.rewrites > 0).map(|p| (p.name.clone(), p.rewrites)).collect();
        prop_assert_eq!(rewrites, 0, "second run rewrote: {:?}", by_pass);
        prop_assert_eq!(again.compute_node_count(), nodes);
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn every_pass_leaves_a_valid_graph(
        net in net(),
        order in proptest::collection::vec(0..PASS_NAMES.len(), 1..=10),
    ) {
        let g = build_net(&net);
        let mut after = g.clone();
        for &i in &order {
            let name = PASS_NAMES[i];
            let pass = pass_by_name(name).unwrap();
            pass.run(&mut after).map_err(|e| TestCaseError::fail(format!("{name} failed: {e}")))?;
            revalidate(&mut after, name)?;
        }
        let names: Vec<&str> = order.iter().map(|&i| PASS_NAMES[i]).collect();
        assert_same_outputs(&g, &after, &format!("passes {names:?}"))?;
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn horizontal_fusion_never_merges_different_convs(net in sib_net()) {
        let (g, attrs) = build_sib_net(&net);
        let mut after = g.clone();
        if net.prefuse {
            let pass = pass_by_name("vertical-fusion").unwrap();
            pass.run(&mut after).map_err(|e| TestCaseError::fail(format!("vertical-fusion failed: {e}")))?;
            revalidate(&mut after, "vertical-fusion")?;
        }
        let pass = pass_by_name("horizontal-fusion").unwrap();
        pass.run(&mut after).map_err(|e| TestCaseError::fail(format!("horizontal-fusion failed: {e}")))?;
        revalidate(&mut after, "horizontal-fusion")?;

        for id in after.node_ids() {
            let node = after.node(id);
            let convs: Vec<&String> = node.origin.iter().filter(|n| attrs.contains_key(*n)).collect();
            if convs.len() < 2 {
                continue;
            }
            let first = &attrs[convs[0]];
            for other in &convs[1..] {
                let a = &attrs[*other];
                // A separate activation node stays behind the merged conv's Split, so
                // activations only have to agree when they were fused into the convs.
                let same = first.kernel == a.kernel
                    && first.strides == a.strides
                    && first.pads == a.pads
                    && first.dilations == a.dilations
                    && first.group == a.group
                    && (!net.prefuse || first.activation == a.activation);
                prop_assert!(
                    same,
                    "`{}` merged {} ({:?}) with {} ({:?})",
                    node.name, convs[0], first, other, a
                );
            }
        }
        assert_same_outputs(&g, &after, "horizontal-fusion")?;
    }
}

/// The shrunk counterexample the properties found first, kept as a plain test so that it
/// fails every run until fixed: two sibling groups where the second reads the output of a
/// conv the first group merges. Horizontal fusion then wires the second merged conv to the
/// removed conv's (stale, reused) node index, here one of its own new weight constants.
#[test]
fn horizontal_fusion_chained_sibling_groups() {
    let branch = || Branch { cout: 1, act: Act::None, bias: false };
    let net = Net {
        c: 1,
        h: 4,
        w: 4,
        blocks: vec![
            Block::Siblings { k3: false, branches: vec![branch(), branch()], usage: Usage::FirstContinues, seed: 0 },
            Block::Siblings { k3: false, branches: vec![branch(), branch()], usage: Usage::ConcatInOrder, seed: 0 },
        ],
        head: None,
    };
    let g = build_net(&net);
    let mut after = g.clone();
    pass_by_name("horizontal-fusion").unwrap().run(&mut after).unwrap();
    trtc_ir::infer_shapes(&mut after).unwrap();
    after.validate().unwrap();
    let v = verify(&g, &after, 1, VERIFY_SEED).unwrap();
    assert!(v.max_rel <= TOLERANCE, "horizontal-fusion changed the outputs: {v:?}");
}
