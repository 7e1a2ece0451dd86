//! Convolutions: `Conv` and trtc's `FusedConv` (bias, residual and activation fused by the
//! optimizer), 2-D, any groups (depthwise included), constant f32 weights.
//!
//! Lowered to one `Step::Conv` with its weights in the engine's type and layout (and, for
//! convs trtc's own NHWC kernels can run, also in their `[kh][kw][c][k]` order); the
//! tactics choose per instance between cuDNN (fused or not), cuBLASLt for 1x1 convs, and
//! trtc's kernels. Weights may be a DequantizeLinear of int8 values (a quantized model):
//! the conv reads them dequantized, and keeps the int8 values for `passes/int8_convs.rs`
//! (quantized per tensor, or per output channel where trtc's INT8 kernels take the conv); a
//! dense conv reading a DequantizeLinear with float weights has them quantized here for it:
//! per output channel where trtc's INT8 1x1 kernels take it ([`int8_per_channel`]), else per
//! tensor (cuDNN's INT8 convolution takes one weight scale).

use super::rules::{attr, const_input, input_rank};
use super::{OpDoc, OpFamily};
use crate::error::{cuda_err, Result};
use crate::program::conv_rules::{direct_kernel_fits, int8_kernels_take, weights_rsck};
use crate::program::host::nchw_to_nhwc;
use crate::program::lowering::Lowering;
use crate::program::quant::{qdq_kind, quantized_const, weight_const};
use crate::program::Step;
use std::collections::HashSet;
use trtc_engine::FallbackReason;
use trtc_ir::tensor::tensor_to_f32s;
use trtc_ir::tract_onnx::prelude::DatumType;
use trtc_ir::{AutoPad, ConvAttrs, Graph, NodeId, Op};
use trtc_quant::{quantize_per_channel, quantize_per_tensor};

pub static FAMILY: OpFamily = OpFamily {
    name: "conv",
    ops: &[
        OpDoc {
            op: "Conv",
            conditions: "2-D; weights a constant f32 tensor; bias constant, one per output channel; explicit pads (no auto_pad)",
        },
        OpDoc {
            op: "FusedConv (trtc)",
            conditions: "as Conv; with a residual tensor and/or Relu, Clip, LeakyRelu, Sigmoid, HardSigmoid, HardSwish",
        },
    ],
    handles: |op| matches!(op, Op::Conv(_) | Op::FusedConv(_)),
    check,
    lower,
};

/// The conv's attributes, activation and whether it adds a residual (input 3).
fn parts(op: &Op) -> Option<(&ConvAttrs, Option<trtc_ir::Activation>, bool)> {
    match op {
        Op::Conv(c) => Some((c, None, false)),
        Op::FusedConv(f) => Some((&f.conv, f.activation, f.residual)),
        _ => None,
    }
}

fn check(g: &Graph, id: NodeId) -> std::result::Result<(), FallbackReason> {
    let (c, _, residual) = parts(&g.node(id).op).ok_or(FallbackReason::UnsupportedOp)?;
    if input_rank(g, id, 0) != Some(4) {
        return Err(attr("only 2-D convolutions"));
    }
    let w = weight_const(g, id, 1)
        .filter(|w| w.datum_type() == DatumType::F32)
        .ok_or_else(|| attr("weights are not a constant f32 tensor"))?;
    if w.rank() != 4 {
        return Err(attr("weights are not 4-D"));
    }
    const_input(g, id, 2, "bias")?;
    if g.input_outlet(id, 2).is_some()
        && g.input_const(id, 2)
            .and_then(|b| tensor_to_f32s(b))
            .is_none_or(|b| b.len() != w.shape()[0])
    {
        return Err(attr(
            "bias is not a float constant of one value per output channel",
        ));
    }
    if c.group < 1 {
        return Err(attr("group < 1"));
    }
    if c.auto_pad != AutoPad::NotSet {
        return Err(attr("auto_pad (only explicit pads)"));
    }
    if residual && g.input_outlet(id, 3).is_none() {
        return Err(attr("residual input missing"));
    }
    Ok(())
}

/// Whether node `id` reads its input 0 through a DequantizeLinear.
fn input_dequantized(g: &Graph, id: NodeId) -> bool {
    g.input_outlet(id, 0)
        .is_some_and(|o| qdq_kind(&g.node(o.node).op) == Some(false))
}

/// Whether an INT8 engine quantizes conv `id`'s weights per output channel when it runs it
/// in INT8: a conv trtc's INT8 1x1 kernels take (`conv_rules::int8_kernels_take`), which
/// take a scale per channel. The others run on cuDNN's INT8 convolution, per tensor.
pub fn int8_per_channel(g: &Graph, id: NodeId) -> bool {
    let Some((attrs, _, _)) = parts(&g.node(id).op) else {
        return false;
    };
    let Some(Ok(d)) = weight_const(g, id, 1).map(|w| <[usize; 4]>::try_from(w.shape())) else {
        return false;
    };
    int8_kernels_take(
        d,
        attrs.group,
        &attrs.pads(2),
        &attrs.strides(2),
        &attrs.dilations(2),
    )
}

/// The convs of `g` whose weights the CUDA engines quantize per output channel where they
/// run them in INT8 ([`int8_per_channel`]), by name: what the accuracy guard's model of
/// the GPU quantizes the same way (`trtc_quant::QdqOptions::gpu_simulated`).
pub fn int8_per_channel_convs(g: &Graph) -> HashSet<String> {
    g.node_ids()
        .into_iter()
        .filter(|&id| int8_per_channel(g, id))
        .map(|id| g.node(id).name.clone())
        .collect()
}

fn lower(cx: &mut Lowering, id: NodeId) -> Result<()> {
    let g = cx.g;
    let name = g.node(id).name.as_str();
    let (attrs, act, residual) =
        parts(&g.node(id).op).ok_or_else(|| cuda_err(name, "not a convolution"))?;
    let y = cx.output(id, 0);
    let wt = weight_const(g, id, 1).ok_or_else(|| cuda_err(name, "weights are not constant"))?;
    let d: Vec<usize> = wt.shape().to_vec();
    let w = tensor_to_f32s(&wt).ok_or_else(|| cuda_err(name, "weights are not f32"))?;
    let m = d[0];
    let b = match g.input_const(id, 2) {
        None => vec![0.0; m],
        Some(t) => tensor_to_f32s(t)
            .filter(|b| b.len() == m)
            .ok_or_else(|| cuda_err(name, "bias is not one value per channel"))?,
    };
    let x = cx.operand(id, 0)?;
    let z = if residual {
        Some(cx.operand(id, 3)?)
    } else {
        None
    };
    let i32s = |v: Vec<i64>| v.into_iter().map(|x| x as i32).collect::<Vec<_>>();
    let (pd, st, dl) = (
        i32s(attrs.pads(2)),
        i32s(attrs.strides(2)),
        i32s(attrs.dilations(2)),
    );
    let wd = [d[0], d[1], d[2], d[3]];
    let nhwc = cx.p.nhwc;
    let half = cx.p.half;
    // In an fp16 NHWC engine, a conv that may run in INT8 keeps int8 weights too: its own
    // (a DequantizeLinear of int8 values) when they have one scale, or one per output
    // channel where trtc's kernels take the conv; else, where its input is dequantized, its
    // float weights quantized here, per channel or per tensor by the same rule (TensorRT's
    // implicit quantization: the INT8 build's graph keeps float weights).
    let per_channel = int8_per_channel(g, id);
    let int8: Option<(Vec<i8>, Vec<f32>)> =
        match g.input_outlet(id, 1).and_then(|o| quantized_const(g, o)) {
            Some(q) => match q.axis {
                None => Some((q.q, q.scales)),
                Some(0) if per_channel => Some((q.q, q.scales)),
                Some(_) => None,
            },
            // Non-finite weights have no INT8 form: the conv stays fp16.
            None if attrs.group == 1 && input_dequantized(g, id) => {
                if per_channel {
                    quantize_per_channel(&w, &d, 0)
                        .ok()
                        .map(|q| (q.values, q.scales))
                } else {
                    quantize_per_tensor(&w, &d)
                        .ok()
                        .map(|q| (q.values, vec![q.scale]))
                }
            }
            None => None,
        };
    let w_int8 = int8.filter(|_| nhwc && half).map(|(q, scales)| {
        let krsc = nchw_to_nhwc(&q.iter().map(|&v| v as f32).collect::<Vec<_>>(), wd);
        let bytes = krsc.iter().map(|&v| v as i8 as u8).collect();
        (cx.weight_bytes(bytes), scales)
    });
    let step = Step::Conv {
        name: name.to_string(),
        x,
        y,
        z,
        w: cx.weight(&w, nhwc.then_some(wd)),
        w_dims: wd.map(|v| v as i32),
        b: cx.weight(&b, None),
        w_direct: (nhwc && direct_kernel_fits(wd, attrs.group))
            .then(|| cx.weight(&weights_rsck(&w, wd), None)),
        b_f32: half.then(|| cx.weight_f32(&b)),
        pads: [pd[0], pd[1], pd[2], pd[3]],
        stride: [st[0], st[1]],
        dilation: [dl[0], dl[1]],
        groups: attrs.group as i32,
        act,
        x_clamp: None,
        clip_to: None,
        w_int8,
    };
    cx.step(name, step);
    Ok(())
}
