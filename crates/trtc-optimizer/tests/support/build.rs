//! Building graphs from the generator's descriptors, deterministically, by plain
//! functions which track the current tensor's channel count and spatial size so that
//! every description builds a valid graph.

use super::generator::{Act, Block, ConvD, Group, Head, Net, Usage};
use trtc_ir::tract_onnx::prelude::{tensor0, tensor1};
use trtc_ir::{ConvAttrs, Graph, GraphBuilder, Op, Outlet, PoolAttrs};
use trtc_optimizer::verify::random_tensor;

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

pub fn out_size(i: usize, k: usize, s: usize, d: usize, pb: i64, pe: i64) -> i64 {
    let span = i as i64 + pb + pe - (d as i64) * (k as i64 - 1) - 1;
    if span < 0 {
        0
    } else {
        span / s as i64 + 1
    }
}

pub fn activation(b: &mut GraphBuilder, name: &str, x: Outlet, act: Act) -> Outlet {
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
pub fn conv_node(
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
    while k > 1
        && (k as i64 > h as i64 + pads[0] + pads[2] || k as i64 > w as i64 + pads[1] + pads[3])
    {
        k -= 2;
    }
    let s = if d.stride2 { 2 } else { 1 };
    let (mut oh, mut ow) = (
        out_size(h, k, s, 1, pads[0], pads[2]),
        out_size(w, k, s, 1, pads[1], pads[3]),
    );
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
    ctx.x = conv_node(
        &mut ctx.b,
        name,
        ctx.x,
        c,
        cout,
        k,
        attrs,
        d.bias,
        d.folded_weights,
        d.seed,
    );
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
            let gamma = ctx
                .b
                .constant(&format!("{name}_gamma"), random_tensor(&[c], *seed));
            let beta = ctx
                .b
                .constant(&format!("{name}_beta"), random_tensor(&[c], seed + 100));
            let mean = ctx
                .b
                .constant(&format!("{name}_mean"), random_tensor(&[c], seed + 200));
            let var_values: Vec<f32> =
                trtc_ir::tensor::tensor_to_f32s(&random_tensor(&[c], seed + 300))
                    .expect("f32")
                    .iter()
                    .map(|v| v.abs() + 0.5)
                    .collect();
            let var = ctx.b.constant(&format!("{name}_var"), tensor1(&var_values));
            ctx.x = ctx.b.op(
                &format!("{name}_bn"),
                Op::BatchNormalization {
                    epsilon: 1e-5,
                    momentum: None,
                },
                &[ctx.x, gamma, beta, mean, var],
            );
        }
        Block::NoOp { dropout } => {
            let op = if *dropout {
                Op::Dropout { seed: None }
            } else {
                Op::Identity
            };
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
            let op = if *max {
                Op::MaxPool(attrs)
            } else {
                Op::AveragePool(attrs)
            };
            ctx.x = ctx.b.op(&format!("{name}_pool"), op, &[ctx.x]);
            ctx.h = out_size(ctx.h, k, s, 1, 0, 0) as usize;
            ctx.w = out_size(ctx.w, k, s, 1, 0, 0) as usize;
        }
        Block::Affine { mul, scalar, seed } => {
            let value = if *scalar {
                random_tensor(&[], *seed)
            } else {
                random_tensor(&[ctx.c, 1, 1], *seed)
            };
            let k = ctx.b.constant(&format!("{name}_k"), value);
            let op = if *mul { Op::Mul } else { Op::Add };
            ctx.x = ctx.b.op(&format!("{name}_affine"), op, &[ctx.x, k]);
        }
        Block::Conv(d) => add_conv(ctx, &format!("{name}_conv"), d),
        Block::Residual {
            k3,
            depthwise,
            bias,
            relu,
            x_first,
            seed,
        } => {
            let c = ctx.c;
            let (k, attrs) = same_conv(*k3, if *depthwise { c } else { 1 });
            let y = conv_node(
                &mut ctx.b,
                &format!("{name}_rconv"),
                ctx.x,
                c,
                c,
                k,
                attrs,
                *bias,
                false,
                *seed,
            );
            let y = activation(
                &mut ctx.b,
                &format!("{name}_ract"),
                y,
                if *relu { Act::Relu } else { Act::None },
            );
            let ins = if *x_first { [ctx.x, y] } else { [y, ctx.x] };
            ctx.x = ctx.b.op(&format!("{name}_add"), Op::Add, &ins);
        }
        Block::Siblings {
            k3,
            branches,
            usage,
            seed,
        } => {
            let x = ctx.x;
            let c = ctx.c;
            let mut outs = vec![];
            let mut couts = vec![];
            for (j, br) in branches.iter().enumerate() {
                // Sibling 1 matches sibling 0's channels when the two are added.
                let cout = if matches!(usage, Usage::AddFirstTwo) && j == 1 {
                    couts[0]
                } else {
                    br.cout
                };
                let (k, attrs) = same_conv(*k3, 1);
                let sname = format!("{name}_sib{j}");
                let y = conv_node(
                    &mut ctx.b,
                    &sname,
                    x,
                    c,
                    cout,
                    k,
                    attrs,
                    br.bias,
                    false,
                    seed + 10 * j as u64,
                );
                outs.push(activation(&mut ctx.b, &format!("{sname}_act"), y, br.act));
                couts.push(cout);
            }
            match usage {
                Usage::ConcatInOrder | Usage::ConcatReversed => {
                    if matches!(usage, Usage::ConcatReversed) {
                        outs.reverse();
                    }
                    ctx.x = ctx
                        .b
                        .op(&format!("{name}_cat"), Op::Concat { axis: 1 }, &outs);
                    ctx.c = couts.iter().sum();
                }
                Usage::AddFirstTwo => {
                    ctx.x = ctx
                        .b
                        .op(&format!("{name}_sum"), Op::Add, &[outs[0], outs[1]]);
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
        Block::PadConv {
            pads,
            nonzero,
            conv,
        } => {
            let p = ctx.b.constant(
                &format!("{name}_pads"),
                tensor1(&[0, 0, pads[0], pads[1], 0, 0, pads[2], pads[3]]),
            );
            let v = ctx.b.constant(
                &format!("{name}_padv"),
                tensor0(if *nonzero { 1f32 } else { 0f32 }),
            );
            ctx.x = ctx.b.op(
                &format!("{name}_pad"),
                Op::Pad {
                    mode: "constant".into(),
                },
                &[ctx.x, p, v],
            );
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
        let s = ctx.b.op(
            "head_shape",
            Op::Shape {
                start: None,
                end: None,
            },
            &[pooled],
        );
        let zero = ctx.b.constant("head_zero", tensor0(0i64));
        let n = ctx.b.op("head_gather", Op::Gather { axis: 0 }, &[s, zero]);
        let axes = ctx.b.constant("head_axes", tensor1(&[0i64]));
        let n1 = ctx.b.op("head_unsq", Op::Unsqueeze, &[n, axes]);
        let minus1 = ctx.b.constant("head_m1", tensor1(&[-1i64]));
        let target = ctx
            .b
            .op("head_target", Op::Concat { axis: 0 }, &[n1, minus1]);
        ctx.b.op(
            "head_reshape",
            Op::Reshape { allowzero: 0 },
            &[pooled, target],
        )
    } else {
        ctx.b.op("head_flatten", Op::Flatten { axis: 1 }, &[pooled])
    };
    let w = ctx
        .b
        .constant("head_w", random_tensor(&[head.classes, c], head.seed));
    let bias = ctx
        .b
        .constant("head_b", random_tensor(&[head.classes], head.seed + 1));
    ctx.x = ctx.b.op(
        "head_gemm",
        Op::Gemm {
            alpha: 1.0,
            beta: 1.0,
            trans_a: 0,
            trans_b: 1,
        },
        &[flat, w, bias],
    );
}

pub fn build_net(net: &Net) -> Graph {
    let mut b = GraphBuilder::new();
    let input = b.input("x", &[1, net.c, net.h, net.w]);
    let mut ctx = Ctx {
        b,
        x: input,
        input,
        c: net.c,
        h: net.h,
        w: net.w,
        extra_outputs: vec![],
    };
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
    b.build()
        .unwrap_or_else(|e| panic!("generator bug: {net:?} does not build: {e}"))
}
