//! Small queries passes share.

use std::sync::Arc;
use trtc_ir::tensor::tensor_to_f32s;
use trtc_ir::tract_onnx::prelude::DatumType;
use trtc_ir::{Activation, Graph, NodeId, Op, Outlet, Tensor};

/// The only consumer of a tensor that is not a graph output.
pub fn sole_consumer(g: &Graph, o: Outlet) -> Option<(NodeId, usize)> {
    if g.is_graph_output(o) {
        return None;
    }
    match g.consumers(o).as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

/// An f32 constant's values.
pub fn const_f32(g: &Graph, id: NodeId, slot: usize) -> Option<(Arc<Tensor>, Vec<f32>)> {
    let t = g.input_const(id, slot)?;
    if t.datum_type() != DatumType::F32 {
        return None;
    }
    let v = tensor_to_f32s(t)?;
    Some((t.clone(), v))
}

/// Inference BatchNormalization as a per-channel affine map `y = x * scale + shift`:
/// `scale = gamma / sqrt(var + eps)`, `shift = beta - mean * scale` (slices of one length).
pub fn batch_norm_affine(
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    epsilon: f32,
) -> (Vec<f32>, Vec<f32>) {
    let scale: Vec<f32> = gamma
        .iter()
        .zip(var)
        .map(|(g, v)| g / (v + epsilon).sqrt())
        .collect();
    let shift = beta
        .iter()
        .zip(mean)
        .zip(&scale)
        .map(|((b, m), s)| b - m * s)
        .collect();
    (scale, shift)
}

/// A scalar f32 constant (any shape with one element).
fn scalar(g: &Graph, id: NodeId, slot: usize) -> Option<f32> {
    let (_, v) = const_f32(g, id, slot)?;
    (v.len() == 1).then(|| v[0])
}

/// The activation a node computes, if it is one trtc fuses (Clip needs constant bounds).
pub fn activation_of(g: &Graph, id: NodeId) -> Option<Activation> {
    Some(match &g.node(id).op {
        Op::Relu => Activation::Relu,
        Op::Clip => {
            let ins = g.node_inputs(id);
            let min = match ins.get(1).copied().flatten() {
                Some(_) => scalar(g, id, 1)?,
                None => f32::NEG_INFINITY,
            };
            let max = match ins.get(2).copied().flatten() {
                Some(_) => scalar(g, id, 2)?,
                None => f32::INFINITY,
            };
            Activation::Clip { min, max }
        }
        Op::LeakyRelu { alpha } => Activation::LeakyRelu { alpha: *alpha },
        Op::Sigmoid => Activation::Sigmoid,
        Op::HardSigmoid { alpha, beta } => Activation::HardSigmoid {
            alpha: *alpha,
            beta: *beta,
        },
        Op::HardSwish => Activation::HardSwish,
        _ => return None,
    })
}

/// Per-channel values of a constant broadcast against an NC... tensor of `channels`
/// channels and rank `rank`: scalars, `[C,1,1]`, `[1,C,1,1]`. `None` for anything else.
pub fn per_channel(t: &Tensor, values: &[f32], channels: usize, rank: usize) -> Option<Vec<f32>> {
    let shape = t.shape();
    if shape.len() > rank {
        return None;
    }
    let padded: Vec<usize> = std::iter::repeat_n(1, rank - shape.len())
        .chain(shape.iter().copied())
        .collect();
    if padded.iter().enumerate().any(|(i, &d)| i != 1 && d != 1) {
        return None;
    }
    match padded.get(1).copied().unwrap_or(1) {
        1 => Some(vec![values[0]; channels]),
        c if c == channels => Some(values.to_vec()),
        _ => None,
    }
}

/// Conv attributes of a Conv or a FusedConv without residual and activation (a bare
/// conv + bias), with the number of output channels.
pub fn bare_conv(g: &Graph, id: NodeId) -> Option<trtc_ir::ConvAttrs> {
    match &g.node(id).op {
        Op::Conv(c) => Some(c.clone()),
        Op::FusedConv(f) if !f.residual && f.activation.is_none() => Some(f.conv.clone()),
        _ => None,
    }
}

/// A new f32 tensor (the shape and values are built together by the passes).
pub fn f32_tensor(shape: &[usize], values: &[f32]) -> crate::error::Result<Tensor> {
    Tensor::from_shape(shape, values).map_err(|e| trtc_ir::IrError::Tract(e.to_string()).into())
}
