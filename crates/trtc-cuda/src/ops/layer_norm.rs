//! `LayerNormalization` (opset 17) over the axes from `axis` on, not the batch: constant
//! scale and optional bias broadcastable to the normalized shape, output 0 only (the Mean
//! and InvStdDev outputs unused); and `InstanceNormalization` (constant scale and bias of
//! one value per channel) over the spatial axes of each (n, c). One reduction kernel
//! (`program/reduce.rs`) per node: the mean, then the variance from a second pass over
//! the values (not E[x^2] - E[x]^2), then the normalized output, all in f32.
//!
//! A LayerNorm decomposed into ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div, Mul, Add
//! (PyTorch's export below opset 17) runs as those ops' steps: the optimizer keeps them,
//! and each has its family here.

use super::reduce::{attr_of, unknown_attr};
use super::rules::{attr, input_rank};
use super::unary::{float_attr, other};
use super::{OpDoc, OpFamily};
use crate::error::{cuda_err, Result};
use crate::program::lowering::Lowering;
use crate::program::{norm_axis, ReduceOp, Step};
use trtc_engine::FallbackReason;
use trtc_ir::tensor::tensor_to_f32s;
use trtc_ir::{Graph, NodeId, Outlet};

pub static FAMILY: OpFamily = OpFamily {
    name: "layer norm",
    ops: &[
        OpDoc {
            op: "LayerNormalization",
            conditions: "not over the batch axis; scale (and bias) constant, broadcastable to the normalized shape; Mean and InvStdDev outputs unused",
        },
        OpDoc {
            op: "InstanceNormalization",
            conditions: "input of 3 or more dims; scale and bias constants of one value per channel",
        },
    ],
    handles: |op| {
        other(op).is_some_and(|o| {
            matches!(
                o.op_type.as_str(),
                "LayerNormalization" | "InstanceNormalization"
            )
        })
    },
    check,
    lower,
};

/// What node `id` computes: its axes, epsilon, scale and bias (f32, expanded to what the
/// kernel indexes) and the parameters' strides along x's dims.
struct Norm {
    axes: Vec<usize>,
    eps: f32,
    scale: Vec<f32>,
    bias: Option<Vec<f32>>,
    strides: Vec<usize>,
}

/// `t`'s values broadcast (numpy's rules, one way) to `shape`.
fn broadcast_to(values: &[f32], from: &[usize], shape: &[usize]) -> Option<Vec<f32>> {
    if from.len() > shape.len() {
        return None;
    }
    let pad = shape.len() - from.len();
    let f: Vec<usize> = std::iter::repeat_n(1, pad)
        .chain(from.iter().copied())
        .collect();
    if f.iter().zip(shape).any(|(&a, &b)| a != 1 && a != b) {
        return None;
    }
    let n: usize = shape.iter().product();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let (mut rest, mut src, mut stride) = (i, 0, 1);
        for d in (0..shape.len()).rev() {
            let c = rest % shape[d];
            rest /= shape[d];
            if f[d] != 1 {
                src += c * stride;
            }
            stride *= f[d];
        }
        out.push(*values.get(src)?);
    }
    Some(out)
}

/// Constant input `slot` broadcast to `shape`; `Ok(None)` where the node has no such input.
fn param(
    g: &Graph,
    id: NodeId,
    slot: usize,
    shape: &[usize],
) -> std::result::Result<Option<Vec<f32>>, FallbackReason> {
    if g.input_outlet(id, slot).is_none() {
        return Ok(None);
    }
    let t = g
        .input_const(id, slot)
        .ok_or_else(|| attr("scale or bias computed at run time"))?;
    let v = tensor_to_f32s(t).ok_or_else(|| attr("scale or bias not float"))?;
    broadcast_to(&v, t.shape(), shape)
        .map(Some)
        .ok_or_else(|| attr("scale or bias not of the normalized shape"))
}

fn norm(g: &Graph, id: NodeId) -> std::result::Result<Norm, FallbackReason> {
    let node = g.node(id);
    let o = other(&node.op).ok_or(FallbackReason::UnsupportedOp)?;
    let rank = input_rank(g, id, 0).ok_or_else(|| attr("input rank unknown"))?;
    let xs: Vec<Option<usize>> = g
        .input_info(id, 0)
        .and_then(|t| t.shape.as_ref())
        .ok_or_else(|| attr("input shape unknown"))?
        .iter()
        .map(|d| d.known().map(|v| v as usize))
        .collect();
    let known = |r: std::ops::Range<usize>| -> std::result::Result<Vec<usize>, FallbackReason> {
        xs[r]
            .iter()
            .map(|d| d.ok_or_else(|| attr("dims unknown")))
            .collect()
    };
    if o.op_type == "LayerNormalization" {
        if let Some(n) = unknown_attr(o, &["axis", "epsilon", "stash_type"]) {
            return Err(attr(format!("attribute {n}")));
        }
        let given = attr_of(o, "axis").map(|a| a.i).unwrap_or(-1);
        let axis = norm_axis(given, rank).ok_or_else(|| attr("axis out of range"))?;
        if axis == 0 {
            return Err(attr("normalizes over the batch axis"));
        }
        if (1..node.outputs.len()).any(|s| g.is_used(Outlet::new(id, s))) {
            return Err(attr("Mean or InvStdDev output used"));
        }
        let shape = known(axis..rank)?;
        let scale = param(g, id, 1, &shape)?.ok_or_else(|| attr("no scale"))?;
        let mut strides = vec![0; rank];
        let mut s = 1;
        for a in (axis..rank).rev() {
            strides[a] = s;
            s *= xs[a].unwrap_or(1);
        }
        return Ok(Norm {
            axes: (axis..rank).collect(),
            eps: float_attr(o, "epsilon", 1e-5),
            scale,
            bias: param(g, id, 2, &shape)?,
            strides,
        });
    }
    if let Some(n) = unknown_attr(o, &["epsilon"]) {
        return Err(attr(format!("attribute {n}")));
    }
    if rank < 3 {
        return Err(attr("input of fewer than 3 dims"));
    }
    let c = known(1..2)?;
    let mut strides = vec![0; rank];
    strides[1] = 1;
    let scale = param(g, id, 1, &c)?.ok_or_else(|| attr("no scale"))?;
    let bias = param(g, id, 2, &c)?.ok_or_else(|| attr("no bias"))?;
    Ok(Norm {
        axes: (2..rank).collect(),
        eps: float_attr(o, "epsilon", 1e-5),
        scale,
        bias: Some(bias),
        strides,
    })
}

fn check(g: &Graph, id: NodeId) -> std::result::Result<(), FallbackReason> {
    norm(g, id).map(|_| ())
}

fn lower(cx: &mut Lowering, id: NodeId) -> Result<()> {
    let g = cx.g;
    let name = g.node(id).name.as_str();
    let n = norm(g, id).map_err(|e| cuda_err(name, e))?;
    let y = cx.output(id, 0);
    let x = cx.operand(id, 0)?;
    let scale = cx.weight_f32(&n.scale);
    let bias = n.bias.as_deref().map(|b| cx.weight_f32(b));
    let op = ReduceOp::Norm {
        eps: n.eps,
        scale,
        bias,
        param_strides: n.strides,
    };
    cx.step(
        name,
        Step::Reduce {
            x,
            y,
            axes: n.axes,
            op,
        },
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::broadcast_to;

    #[test]
    fn parameters_broadcast_to_the_normalized_shape() {
        assert_eq!(
            broadcast_to(&[1.0, 2.0], &[2, 1], &[2, 3]).unwrap(),
            [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]
        );
        assert_eq!(
            broadcast_to(&[1.0, 2.0, 3.0], &[3], &[2, 3]).unwrap(),
            [1.0, 2.0, 3.0, 1.0, 2.0, 3.0]
        );
        assert!(broadcast_to(&[1.0, 2.0], &[2], &[2, 3]).is_none());
    }
}
