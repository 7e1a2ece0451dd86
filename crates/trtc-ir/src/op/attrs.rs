//! Attribute types of the typed ops: padding, Conv and pooling attributes, the
//! activation a fused node carries, FusedConv itself, and the verbatim `OtherOp`.

use super::Op;
use serde::Serialize;
use tract_onnx::pb::AttributeProto;

/// `auto_pad` of Conv and pooling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Default)]
pub enum AutoPad {
    #[default]
    NotSet,
    SameUpper,
    SameLower,
    Valid,
}

impl AutoPad {
    pub(super) fn parse(s: &str) -> Option<AutoPad> {
        Some(match s {
            "NOTSET" | "" => AutoPad::NotSet,
            "SAME_UPPER" => AutoPad::SameUpper,
            "SAME_LOWER" => AutoPad::SameLower,
            "VALID" => AutoPad::Valid,
            _ => return None,
        })
    }
    pub(super) fn as_str(self) -> &'static str {
        match self {
            AutoPad::NotSet => "NOTSET",
            AutoPad::SameUpper => "SAME_UPPER",
            AutoPad::SameLower => "SAME_LOWER",
            AutoPad::Valid => "VALID",
        }
    }
}

/// Attributes of Conv. Empty vectors mean "absent" (the ONNX default).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Default)]
pub struct ConvAttrs {
    pub auto_pad: AutoPad,
    pub dilations: Vec<i64>,
    pub group: i64,
    pub kernel_shape: Vec<i64>,
    pub pads: Vec<i64>,
    pub strides: Vec<i64>,
}

impl ConvAttrs {
    /// Strides for `spatial` spatial dims (default 1).
    pub fn strides(&self, spatial: usize) -> Vec<i64> {
        or_fill(&self.strides, spatial, 1)
    }
    pub fn dilations(&self, spatial: usize) -> Vec<i64> {
        or_fill(&self.dilations, spatial, 1)
    }
    /// Explicit pads `[b1, b2, .., e1, e2, ..]` (default 0). Meaningless with auto_pad SAME_*.
    pub fn pads(&self, spatial: usize) -> Vec<i64> {
        or_fill(&self.pads, 2 * spatial, 0)
    }
}

/// Attributes of MaxPool and AveragePool.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Default)]
pub struct PoolAttrs {
    pub auto_pad: AutoPad,
    pub ceil_mode: i64,
    pub dilations: Vec<i64>,
    pub kernel_shape: Vec<i64>,
    pub pads: Vec<i64>,
    pub strides: Vec<i64>,
    /// AveragePool only.
    pub count_include_pad: i64,
}

impl PoolAttrs {
    pub fn strides(&self, spatial: usize) -> Vec<i64> {
        or_fill(&self.strides, spatial, 1)
    }
    pub fn dilations(&self, spatial: usize) -> Vec<i64> {
        or_fill(&self.dilations, spatial, 1)
    }
    pub fn pads(&self, spatial: usize) -> Vec<i64> {
        or_fill(&self.pads, 2 * spatial, 0)
    }
}

fn or_fill(v: &[i64], n: usize, fill: i64) -> Vec<i64> {
    if v.is_empty() {
        vec![fill; n]
    } else {
        v.to_vec()
    }
}

/// An activation folded into a fused node.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum Activation {
    Relu,
    Clip { min: f32, max: f32 },
    LeakyRelu { alpha: f32 },
    Sigmoid,
    HardSigmoid { alpha: f32, beta: f32 },
    HardSwish,
}

impl Activation {
    pub fn name(&self) -> &'static str {
        match self {
            Activation::Relu => "Relu",
            Activation::Clip { .. } => "Clip",
            Activation::LeakyRelu { .. } => "LeakyRelu",
            Activation::Sigmoid => "Sigmoid",
            Activation::HardSigmoid { .. } => "HardSigmoid",
            Activation::HardSwish => "HardSwish",
        }
    }

    /// The activation as a standalone op (Clip's bounds become inputs when exported).
    pub fn to_op(self) -> Op {
        match self {
            Activation::Relu => Op::Relu,
            Activation::Clip { .. } => Op::Clip,
            Activation::LeakyRelu { alpha } => Op::LeakyRelu { alpha },
            Activation::Sigmoid => Op::Sigmoid,
            Activation::HardSigmoid { alpha, beta } => Op::HardSigmoid { alpha, beta },
            Activation::HardSwish => Op::HardSwish,
        }
    }

    /// Scalar reference semantics, used by tests and the CPU fallback of fused ops.
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Relu => x.max(0.0),
            Activation::Clip { min, max } => x.max(min).min(max),
            Activation::LeakyRelu { alpha } => {
                if x < 0.0 {
                    alpha * x
                } else {
                    x
                }
            }
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Activation::HardSigmoid { alpha, beta } => (alpha * x + beta).clamp(0.0, 1.0),
            Activation::HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
        }
    }
}

/// Conv + bias (+ residual add) (+ activation), made by the optimizer's vertical fusion.
/// Inputs: X, W, B, and Z (the residual) when `residual`. Computes `act(conv(X, W) + B + Z)`.
/// Written back to ONNX as Conv (+ Add) (+ activation).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FusedConv {
    pub conv: ConvAttrs,
    pub residual: bool,
    pub activation: Option<Activation>,
}

/// A raw ONNX op trtc does not model: kept verbatim.
#[derive(Clone, Debug, PartialEq)]
pub struct OtherOp {
    pub op_type: String,
    pub domain: String,
    pub attributes: Vec<AttributeProto>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activations_compute_their_formulas() {
        assert_eq!(Activation::Relu.apply(-2.0), 0.0);
        assert_eq!(Activation::Clip { min: 0.0, max: 6.0 }.apply(7.0), 6.0);
        assert_eq!(Activation::LeakyRelu { alpha: 0.1 }.apply(-2.0), -0.2);
        assert_eq!(Activation::HardSwish.apply(3.0), 3.0);
        assert!((Activation::Sigmoid.apply(0.0) - 0.5).abs() < 1e-7);
    }
}
