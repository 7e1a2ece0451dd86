//! INT8 convolutions: a conv between a `Dequantize` and a `Quantize` becomes one INT8
//! convolution that reads and writes the int8 tensors.
//!
//! The rule: a `Step::Conv` whose weights were quantized per tensor (`w_int8`: int8 values
//! `q_w`, scale `s_w`), whose input x is the output of a `Dequantize` of int8 `q_x` (scale
//! `s_x`), whose output y is read by exactly one step, a `Quantize` into `q_y` (scale
//! `s_y`), and whose residual z, if it has one, is the output of a `Dequantize` of `q_z`
//! (scale `s_z`), becomes a `Step::ConvInt8` reading `q_x` (and `q_z`) and writing `q_y`:
//! `alpha = s_x s_w / s_y`, `alpha_z = s_z / s_y`, the bias divided by `s_y`. cuDNN fuses
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

/// Rewrite the program's eligible convs (see the module rule); returns how many.
pub fn int8_convs(p: &mut Program) -> usize {
    if !(p.half && p.nhwc) {
        return 0;
    }
    let mut producer: HashMap<usize, usize> = HashMap::new();
    let mut readers: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, step) in p.steps.iter().enumerate() {
        let (r, w) = step_slots(step);
        for s in w {
            producer.insert(s, i);
        }
        for s in r {
            readers.entry(s).or_default().push(i);
        }
    }
    let dequantized = |s: usize| match producer.get(&s).map(|&j| &p.steps[j]) {
        Some(Step::Dequantize { x, scale, .. }) => Some((*x, *scale)),
        _ => None,
    };
    let viewed = |s: usize| p.slots.iter().any(|t| t.alias_of == Some(s));
    // (conv step, its Quantize step, the INT8 step, its bias), the biases pushed as
    // weights in this order after the program's.
    let mut rewrites: Vec<(usize, usize, Step, Vec<f32>)> = vec![];
    let first_bias = p.weights.len();
    for (i, step) in p.steps.iter().enumerate() {
        let Step::Conv {
            name,
            x,
            y,
            z,
            w_dims,
            b_f32: Some(b32),
            pads,
            stride,
            dilation,
            groups,
            act,
            clip_to: None,
            x_clamp: None,
            w_int8: Some((wq, s_w)),
            ..
        } = step
        else {
            continue;
        };
        let shaped = *groups == 1
            && *dilation == [1, 1]
            && w_dims[0] % 4 == 0
            && w_dims[1] % 4 == 0
            && pads[0] == pads[2]
            && pads[1] == pads[3];
        let Some((q_x, s_x)) = dequantized(*x).filter(|_| shaped) else {
            continue;
        };
        let q_z = match z {
            None => None,
            Some(z) => match dequantized(*z) {
                Some(qz) => Some(qz),
                None => continue,
            },
        };
        let only_reader = match readers.get(y).map(Vec::as_slice) {
            Some(&[j]) if !p.outputs.contains(y) && !viewed(*y) => j,
            _ => continue,
        };
        let Step::Quantize {
            y: q_y, scale: s_y, ..
        } = p.steps[only_reader]
        else {
            continue;
        };
        let Some(relu) = relu_of(*act, s_y) else {
            continue;
        };
        let bias: Vec<f32> = f32s(p, *b32).iter().map(|b| b / s_y).collect();
        rewrites.push((
            i,
            only_reader,
            Step::ConvInt8 {
                name: name.clone(),
                x: q_x,
                y: q_y,
                z: q_z.map(|(q, _)| q),
                w: *wq,
                w_dims: *w_dims,
                bias: WeightId(first_bias + rewrites.len()),
                alpha: s_x * s_w / s_y,
                alpha_z: q_z.map(|(_, s)| s / s_y).unwrap_or(0.0),
                pads: [pads[0], pads[1]],
                stride: *stride,
                relu,
            },
            bias,
        ));
    }
    let mut dropped: HashSet<usize> = HashSet::new();
    let count = rewrites.len();
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
            if !read.contains(y) && !p.outputs.contains(y) && !viewed(*y) {
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
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::lower_segment;
    use crate::testing::qdq_conv_graph;
    use trtc_engine::{EngineOptions, Layout, Precision};
    use trtc_ir::subgraph_io;

    fn lowered(precision: Precision, layout: Layout) -> Program {
        let g = qdq_conv_graph(2, true);
        let nodes: Vec<_> = g
            .topo_order()
            .unwrap()
            .into_iter()
            .filter(|&id| !g.node(id).op.is_const() && !g.node(id).op.is_input())
            .collect();
        let io = subgraph_io(&g, &nodes).unwrap();
        let opts = EngineOptions {
            precision,
            layout,
            ..Default::default()
        };
        lower_segment(&g, &nodes, &io, &opts).unwrap()
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
            assert!((alpha - want).abs() < 1e-9, "{alpha} vs {want}");
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
        }
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
        }
    }
}
