//! INT8 convolutions: a conv between a `Dequantize` and a `Quantize` becomes one INT8
//! convolution that reads and writes the int8 tensors.
//!
//! The rule: a `Step::Conv` whose weights were quantized (`w_int8`: int8 values `q_w`,
//! scale `s_w`, or `s_w[c]` per output channel where trtc's INT8 1x1 kernels take the
//! conv: `ops/conv.rs`), whose input x is the output of a `Dequantize` of int8 `q_x` (scale
//! `s_x`), whose output y is read by exactly one step, a `Quantize` into `q_y` (scale
//! `s_y`), and whose residual z, if it has one, is the output of a `Dequantize` of `q_z`
//! (scale `s_z`), becomes a `Step::ConvInt8` reading `q_x` (and `q_z`) and writing `q_y`:
//! `alpha[c] = s_x s_w[c] / s_y`, `alpha_z = s_z / s_y`, the bias divided by `s_y`. cuDNN fuses
//! ReLU only: a Clip(0, m) is a ReLU where `m / s_y >= 127`, int8 saturation clipping
//! first (a ReLU6 whose output range was calibrated at most 6).
//! This is what the QDQ graph computes (int8 products summed exactly in int32, the result
//! rounded to int8 by `q_y`'s scale), but for the rounding of ties and of the fp16 bias.
//! The `Quantize` step goes, and so does a `Dequantize` whose output nothing reads any more.
//!
//! When it must not fire (what cuDNN's INT8 NHWC convolutions take): an engine that is not
//! fp16 NHWC; grouped or dilated convs; input or output channels not a multiple of 4;
//! asymmetric pads; an activation other than ReLU or Clip(0, m) with `m / s_y >= 127`; a Clip moved
//! into the depthwise conv after it; y read by anything but the one `Quantize`, a view of
//! y, or y a program output. Those convs stay fp16 convs of the dequantized input, which
//! is what the QDQ graph computes for them.

use super::arena::step_slots;
use crate::program::{Program, Step, WeightId};
use std::collections::{HashMap, HashSet};
use trtc_engine::LayerPrecision;
use trtc_ir::Activation;

/// Whether the INT8 conv applies `act` as a ReLU (`Some(true)`), as nothing
/// (`Some(false)`), or cannot apply it (`None`).
fn relu_of(act: Option<Activation>, s_y: f32) -> Option<bool> {
    match act {
        None => Some(false),
        Some(Activation::Relu) => Some(true),
        // Saturation at 127 clips before the bound does.
        Some(Activation::Clip { min, max }) if min == 0.0 && max / s_y >= 127.0 => Some(true),
        Some(_) => None,
    }
}

/// The f32 values of a weight stored as f32 bytes.
fn f32s(p: &Program, w: WeightId) -> Vec<f32> {
    p.weights[w.0]
        .chunks_exact(4)
        .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Who writes and who reads each slot.
struct Uses {
    producer: HashMap<usize, usize>,
    readers: HashMap<usize, Vec<usize>>,
}

impl Uses {
    fn of(p: &Program) -> Uses {
        let mut u = Uses {
            producer: HashMap::new(),
            readers: HashMap::new(),
        };
        for (i, step) in p.steps.iter().enumerate() {
            let (r, w) = step_slots(step);
            for s in w {
                u.producer.insert(s, i);
            }
            for s in r {
                u.readers.entry(s).or_default().push(i);
            }
        }
        u
    }

    /// The int8 slot and scale slot `s` was dequantized from, where a `Dequantize` wrote it.
    fn dequantized(&self, p: &Program, s: usize) -> Option<(usize, f32)> {
        match self.producer.get(&s).map(|&j| &p.steps[j]) {
            Some(Step::Dequantize { x, scale, .. }) => Some((*x, *scale)),
            _ => None,
        }
    }
}

fn viewed(p: &Program, s: usize) -> bool {
    p.slots.iter().any(|t| t.alias_of == Some(s))
}

/// Conv step `i` as an INT8 conv (with the `Quantize` step it absorbs and its bias in
/// `s_y` units), or why not. `bias` is the weight id the bias will have.
fn as_int8(
    p: &Program,
    uses: &Uses,
    i: usize,
    bias: WeightId,
) -> Result<(usize, Step, Vec<f32>), &'static str> {
    let Step::Conv {
        name,
        x,
        y,
        z,
        w_dims,
        b_f32,
        pads,
        stride,
        dilation,
        groups,
        act,
        w_int8,
        ..
    } = &p.steps[i]
    else {
        return Err("not a convolution");
    };
    let (q_x, s_x) = uses.dequantized(p, *x).ok_or("input not quantized")?;
    if *groups != 1 {
        return Err("grouped or depthwise (cuDNN's INT8 convolution is dense only)");
    }
    let (wq, s_w) = w_int8.as_ref().ok_or("weights not quantized")?;
    let b32 = b_f32.ok_or("no f32 bias")?;
    if *dilation != [1, 1] {
        return Err("dilated");
    }
    if w_dims[0] % 4 != 0 || w_dims[1] % 4 != 0 {
        return Err("channels in or out not a multiple of 4");
    }
    if pads[0] != pads[2] || pads[1] != pads[3] {
        return Err("asymmetric pads");
    }
    let q_z = match z {
        None => None,
        Some(z) => Some(uses.dequantized(p, *z).ok_or("residual not quantized")?),
    };
    let reader = match uses.readers.get(y).map(Vec::as_slice) {
        Some(&[j]) if !p.outputs.contains(y) && !viewed(p, *y) => j,
        _ => return Err("output read in float (not only by one QuantizeLinear)"),
    };
    let Step::Quantize {
        y: q_y, scale: s_y, ..
    } = p.steps[reader]
    else {
        return Err("output read in float (not only by one QuantizeLinear)");
    };
    let relu = relu_of(*act, s_y)
        .ok_or("an activation cuDNN's INT8 convolution cannot fuse (ReLU, or ReLU6 with its range calibrated to 6 at most)")?;
    let step = Step::ConvInt8 {
        name: name.clone(),
        x: q_x,
        y: q_y,
        z: q_z.map(|(q, _)| q),
        w: *wq,
        w_dims: *w_dims,
        bias,
        alpha: s_w.iter().map(|s| s_x * s / s_y).collect(),
        alpha_z: q_z.map(|(_, s)| s / s_y).unwrap_or(0.0),
        pads: [pads[0], pads[1]],
        stride: *stride,
        relu,
    };
    let bias: Vec<f32> = f32s(p, b32).iter().map(|b| b / s_y).collect();
    Ok((reader, step, bias))
}

/// Rewrite the program's eligible convs (see the module rule); returns, for each conv
/// whose input is dequantized, the precision it runs in and why.
pub fn int8_convs(p: &mut Program) -> Vec<LayerPrecision> {
    let uses = Uses::of(p);
    // What a conv left out of INT8 computes in.
    let engine = match (p.half, p.precision) {
        (true, _) => "fp16",
        (false, trtc_engine::Precision::Tf32) => "tf32",
        (false, _) => "fp32",
    }
    .to_string();
    let mut report = vec![];
    // (conv step, its Quantize step, the INT8 step, its bias), the biases pushed as
    // weights in this order after the program's.
    let mut rewrites: Vec<(usize, usize, Step, Vec<f32>)> = vec![];
    let first_bias = p.weights.len();
    for (i, step) in p.steps.iter().enumerate() {
        let Step::Conv { name, x, .. } = step else {
            continue;
        };
        if uses.dequantized(p, *x).is_none() {
            continue;
        }
        let decided = if p.half && p.nhwc {
            as_int8(p, &uses, i, WeightId(first_bias + rewrites.len()))
        } else {
            Err("not an fp16 NHWC engine: QuantizeLinear/DequantizeLinear run as they are")
        };
        let (precision, why) = match decided {
            Ok((reader, step, bias)) => {
                let why = match &step {
                    Step::ConvInt8 { alpha, .. } if alpha.len() > 1 => {
                        "weights per channel: trtc's INT8 1x1 kernels"
                    }
                    _ => "weights per tensor: cuDNN's INT8 convolution, or trtc's INT8 1x1 kernels",
                };
                rewrites.push((i, reader, step, bias));
                ("int8".to_string(), why.to_string())
            }
            Err(why) => (engine.clone(), why.to_string()),
        };
        report.push(LayerPrecision {
            layer: name.clone(),
            precision,
            why,
        });
    }
    let mut dropped: HashSet<usize> = HashSet::new();
    for (i, quantize, step, bias) in rewrites {
        p.weights
            .push(bias.iter().flat_map(|v| v.to_ne_bytes()).collect());
        p.steps[i] = step;
        dropped.insert(quantize);
    }
    // Dequantize steps nothing reads any more.
    let mut read: HashSet<usize> = HashSet::new();
    for (i, step) in p.steps.iter().enumerate() {
        if !dropped.contains(&i) {
            read.extend(step_slots(step).0);
        }
    }
    for (i, step) in p.steps.iter().enumerate() {
        if let Step::Dequantize { y, .. } = step {
            if !read.contains(y) && !p.outputs.contains(y) && !viewed(p, *y) {
                dropped.insert(i);
            }
        }
    }
    let kept: Vec<(Step, String)> = std::mem::take(&mut p.steps)
        .into_iter()
        .zip(std::mem::take(&mut p.names))
        .enumerate()
        .filter(|(i, _)| !dropped.contains(i))
        .map(|(_, pair)| pair)
        .collect();
    (p.steps, p.names) = kept.into_iter().unzip();
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::lower_segment;
    use crate::testing::qdq_conv_graph;
    use trtc_engine::{EngineOptions, Layout, Precision};
    use trtc_ir::subgraph_io;

    fn lowered(precision: Precision, layout: Layout) -> Program {
        lower_all(&qdq_conv_graph(2, true), precision, layout)
    }

    /// `g`'s nodes as one segment, lowered.
    fn lower_all(g: &trtc_ir::Graph, precision: Precision, layout: Layout) -> Program {
        let nodes: Vec<_> = g
            .topo_order()
            .unwrap()
            .into_iter()
            .filter(|&id| !g.node(id).op.is_const() && !g.node(id).op.is_input())
            .collect();
        let io = subgraph_io(g, &nodes).unwrap();
        let opts = EngineOptions {
            precision,
            layout,
            ..Default::default()
        };
        lower_segment(g, &nodes, &io, &opts).unwrap()
    }

    fn count(p: &Program, f: impl Fn(&Step) -> bool) -> usize {
        p.steps.iter().filter(|s| f(s)).count()
    }

    #[test]
    fn convs_between_dequantize_and_quantize_run_in_int8() {
        for precision in [Precision::Int8, Precision::Fp16] {
            let p = lowered(precision, Layout::Auto);
            let int8: Vec<&Step> = p
                .steps
                .iter()
                .filter(|s| matches!(s, Step::ConvInt8 { .. }))
                .collect();
            assert_eq!(int8.len(), 2, "{precision:?}: {:?}", p.names);
            let Step::ConvInt8 {
                name,
                x,
                alpha,
                z: None,
                relu: true,
                ..
            } = int8[0]
            else {
                panic!("conv1: {:?}", p.names)
            };
            assert_eq!(name, "conv1");
            assert!(p.slots[*x].int8 && p.inputs.len() == 1);
            // s_x s_w / s_y = (1/127) (0.25/127) / (3/127).
            let want = (1.0 / 127.0) * (0.25 / 127.0) / (3.0 / 127.0);
            assert!(
                alpha.len() == 1 && (alpha[0] - want).abs() < 1e-9,
                "{alpha:?} vs {want}"
            );
            let Step::ConvInt8 {
                name,
                x,
                z: Some(z),
                alpha_z,
                relu: true,
                bias,
                ..
            } = int8[1]
            else {
                panic!("conv2")
            };
            // The residual is conv1's int8 output, read as the conv's input too.
            assert_eq!((name.as_str(), x), ("conv2", z));
            assert!((alpha_z - 3.0 / 6.0).abs() < 1e-6, "{alpha_z}");
            // (Clip(0, 6) at scale 6/127: a ReLU, saturation clipping at 6.)
            // The bias in y's units: b / (6 / 127).
            let b = f32s(&p, *bias);
            let b2 = trtc_ir::tensor::random_uniform(&[16], 4);
            let b2 = trtc_ir::tensor::tensor_to_f32s(&b2).unwrap();
            assert!(
                (b[0] - b2[0] * 127.0 / 6.0).abs() < 1e-3,
                "{} {}",
                b[0],
                b2[0]
            );
            // The depthwise conv and the last (unquantized output) stay fp16 convs.
            assert_eq!(count(&p, |s| matches!(s, Step::Conv { .. })), 2);
            // Left: x's and conv3's Quantize, conv2's and conv3's Dequantize.
            assert_eq!(count(&p, |s| matches!(s, Step::Quantize { .. })), 2);
            assert_eq!(count(&p, |s| matches!(s, Step::Dequantize { .. })), 2);
            assert_eq!(p.steps.len(), p.names.len());
            let report: Vec<(&str, &str)> = p
                .precisions
                .iter()
                .map(|l| (l.layer.as_str(), l.precision.as_str()))
                .collect();
            let engine = "fp16";
            assert_eq!(
                report,
                [
                    ("conv1", "int8"),
                    ("conv2", "int8"),
                    ("conv3", engine),
                    ("conv4", engine)
                ]
            );
            assert!(
                p.precisions[2].why.contains("depthwise"),
                "{:?}",
                p.precisions[2]
            );
            assert!(p.precisions[3].why.contains("output read in float"));
        }
    }

    /// A `k x k` conv of `c` channels between fake-quantized tensors (x scale 0.01, y
    /// 0.05), lowered for INT8: its `ConvInt8` step's alphas and int8 weights
    /// (`[c][k][k][c]`), and its float weights' max |w| per output channel.
    fn int8_conv_of(k: usize, c: usize) -> (Vec<f32>, Vec<i8>, Vec<f32>) {
        use crate::testing::fake_quant;
        use trtc_ir::{ConvAttrs, FusedConv, GraphBuilder, Op};
        let mut b = GraphBuilder::new();
        let x = b.input("x", &[1, c, 6, 6]);
        let xq = fake_quant(&mut b, x, 0.01, "x");
        let w = trtc_ir::tensor::random_uniform(&[c, c, k, k], 3);
        let amax: Vec<f32> = trtc_ir::tensor::tensor_to_f32s(&w)
            .unwrap()
            .chunks(c * k * k)
            .map(|ch| ch.iter().fold(0f32, |m, v| m.max(v.abs())))
            .collect();
        let w = b.constant("w", w);
        let bias = b.constant("b", trtc_ir::tensor::random_uniform(&[c], 4));
        let p = (k / 2) as i64;
        let conv = Op::FusedConv(FusedConv {
            conv: ConvAttrs {
                group: 1,
                kernel_shape: vec![k as i64; 2],
                pads: vec![p; 4],
                ..Default::default()
            },
            residual: false,
            activation: Some(Activation::Relu),
        });
        let y = b.op("conv", conv, &[xq, w, bias]);
        let yq = fake_quant(&mut b, y, 0.05, "y");
        let out = b.op("relu", trtc_ir::Op::Relu, &[yq]);
        b.output(out);
        let g = b.build().unwrap();
        let p = lower_all(&g, Precision::Int8, Layout::Auto);
        let Some(Step::ConvInt8 { alpha, w, .. }) =
            p.steps.iter().find(|s| matches!(s, Step::ConvInt8 { .. }))
        else {
            panic!("no INT8 conv: {:?}", p.names)
        };
        let q = p.weights[w.0].iter().map(|&v| v as i8).collect();
        (alpha.clone(), q, amax)
    }

    #[test]
    fn float_weights_of_a_3x3_conv_are_quantized_per_tensor_by_the_engine() {
        let (alpha, q, amax) = int8_conv_of(3, 8);
        let max = amax.iter().fold(0f32, |m, &v| m.max(v));
        let want = 0.01 * (max / 127.0) / 0.05;
        assert_eq!(alpha.len(), 1, "one scale for cuDNN");
        assert!((alpha[0] - want).abs() < 1e-7, "{alpha:?} vs {want}");
        // The weights in int8, the largest at +-127.
        assert_eq!(q.len(), 8 * 8 * 9);
        assert_eq!(q.iter().map(|v| v.unsigned_abs()).max(), Some(127));
    }

    #[test]
    fn float_weights_of_a_1x1_conv_are_quantized_per_output_channel() {
        // 16 channels, 1x1: trtc's INT8 kernels take it, with a scale per channel.
        let (alpha, q, amax) = int8_conv_of(1, 16);
        assert_eq!(alpha.len(), 16);
        for (c, (a, m)) in alpha.iter().zip(&amax).enumerate() {
            let want = 0.01 * (m / 127.0) / 0.05;
            assert!((a - want).abs() < 1e-7, "channel {c}: {a} vs {want}");
            // Each channel's largest weight at +-127.
            let row = &q[c * 16..(c + 1) * 16];
            assert_eq!(row.iter().map(|v| v.unsigned_abs()).max(), Some(127));
        }
    }

    #[test]
    fn a_quantized_models_per_channel_weights_keep_their_scales() {
        // Weights a toolkit quantized per output channel: INT8 where trtc's kernels take the
        // conv (alpha per channel), fp16 where no INT8 kernel takes them (8 outputs).
        let g = crate::testing::qdq_per_channel_graph(1, 5, 5);
        let p = lower_all(&g, Precision::Fp16, Layout::Auto);
        let alphas: Vec<(String, usize)> = p
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::ConvInt8 { name, alpha, .. } => Some((name.clone(), alpha.len())),
                _ => None,
            })
            .collect();
        let want = [("pc1", 32), ("pc2", 80), ("pc3", 16)].map(|(n, k)| (n.to_string(), k));
        assert_eq!(alphas, want);
        // pc1's alphas: x scale 1/127 times its channel scales over its output's 2/127.
        let Some(Step::ConvInt8 { alpha, .. }) = p
            .steps
            .iter()
            .find(|s| matches!(s, Step::ConvInt8 { name, .. } if name == "pc1"))
        else {
            unreachable!()
        };
        for (j, a) in alpha.iter().enumerate() {
            let s_w = 0.3 * (0.1 + 0.9 * j as f32 / 31.0) / 127.0;
            let want = (1.0 / 127.0) * s_w / (2.0 / 127.0);
            assert!(
                (a - want).abs() < 1e-7 * want.max(1.0),
                "channel {j}: {a} vs {want}"
            );
        }
        assert_eq!(
            count(
                &p,
                |s| matches!(s, Step::Conv { name, .. } if name == "pc4")
            ),
            1
        );
    }

    #[test]
    fn a_clip_is_a_relu_only_where_saturation_clips_first() {
        let relu6 = Some(Activation::Clip { min: 0.0, max: 6.0 });
        assert_eq!(relu_of(relu6, 6.0 / 127.0), Some(true));
        assert_eq!(relu_of(relu6, 5.0 / 127.0), Some(true));
        assert_eq!(relu_of(relu6, 8.0 / 127.0), None);
        let shifted = Some(Activation::Clip {
            min: -1.0,
            max: 6.0,
        });
        assert_eq!(relu_of(shifted, 6.0 / 127.0), None);
        assert_eq!(relu_of(Some(Activation::Sigmoid), 0.1), None);
        assert_eq!(relu_of(None, 0.1), Some(false));
    }

    #[test]
    fn fp32_engines_keep_quantize_and_dequantize_steps() {
        for layout in [Layout::Nchw, Layout::Nhwc] {
            let p = lowered(Precision::Fp32, layout);
            assert_eq!(count(&p, |s| matches!(s, Step::ConvInt8 { .. })), 0);
            assert_eq!(count(&p, |s| matches!(s, Step::Conv { .. })), 4);
            assert_eq!(count(&p, |s| matches!(s, Step::Quantize { .. })), 4);
            assert_eq!(count(&p, |s| matches!(s, Step::Dequantize { .. })), 4);
            assert!(p.precisions.iter().all(|l| l.precision == "fp32"));
            assert_eq!(p.precisions.len(), 4);
        }
    }
}
