//! The operators trtc works with, typed, plus `Other`, which keeps anything else verbatim.
//!
//! A node whose attributes trtc does not fully understand (an attribute it does not model,
//! an old-opset form) is kept as `Other` with its raw attributes, so nothing in a model is lost.

mod attrs;
pub(crate) mod onnx;

pub use attrs::{Activation, AutoPad, ConvAttrs, FusedConv, OtherOp, PoolAttrs};
pub(crate) use onnx::{attr_int, attr_string, AttrReader};
// Not used outside `op` today; re-exported so every attribute builder has the one path.
#[allow(unused_imports)]
pub(crate) use onnx::{attr_float, attr_ints};

use crate::dtype::DType;
use std::sync::Arc;
use tract_onnx::prelude::Tensor;

/// A node's operation.
#[derive(Clone, Debug)]
pub enum Op {
    /// A graph input (no inputs, one output).
    Input,
    /// A constant: initializer or `Constant` node. Shared, never copied.
    Const(Arc<Tensor>),
    Conv(ConvAttrs),
    FusedConv(FusedConv),
    BatchNormalization {
        epsilon: f32,
        momentum: Option<f32>,
    },
    Relu,
    Sigmoid,
    Tanh,
    HardSwish,
    LeakyRelu {
        alpha: f32,
    },
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    /// min and max are inputs 1 and 2 (opset 11+).
    Clip,
    Add,
    Sub,
    Mul,
    Div,
    Concat {
        axis: i64,
    },
    /// Split sizes as input 1 (opset 13+), or `num_outputs` (opset 18+), or equal parts.
    Split {
        axis: i64,
        num_outputs: Option<i64>,
    },
    MaxPool(PoolAttrs),
    AveragePool(PoolAttrs),
    GlobalAveragePool,
    GlobalMaxPool,
    Gemm {
        alpha: f32,
        beta: f32,
        trans_a: i64,
        trans_b: i64,
    },
    MatMul,
    Flatten {
        axis: i64,
    },
    Reshape {
        allowzero: i64,
    },
    Softmax {
        axis: i64,
    },
    Pad {
        mode: String,
    },
    Identity,
    Dropout {
        seed: Option<i64>,
    },
    Transpose {
        perm: Option<Vec<i64>>,
    },
    Cast {
        to: DType,
    },
    Shape {
        start: Option<i64>,
        end: Option<i64>,
    },
    Gather {
        axis: i64,
    },
    /// Axes as input 1 (opset 13+).
    Unsqueeze,
    Squeeze,
    Slice,
    ConstantOfShape {
        value: Option<Arc<Tensor>>,
    },
    Other(OtherOp),
}

impl Op {
    /// The ONNX op type (for FusedConv: "FusedConv").
    pub fn op_type(&self) -> &str {
        match self {
            Op::Input => "Input",
            Op::Const(_) => "Constant",
            Op::Conv(_) => "Conv",
            Op::FusedConv(_) => "FusedConv",
            Op::BatchNormalization { .. } => "BatchNormalization",
            Op::Relu => "Relu",
            Op::Sigmoid => "Sigmoid",
            Op::Tanh => "Tanh",
            Op::HardSwish => "HardSwish",
            Op::LeakyRelu { .. } => "LeakyRelu",
            Op::HardSigmoid { .. } => "HardSigmoid",
            Op::Clip => "Clip",
            Op::Add => "Add",
            Op::Sub => "Sub",
            Op::Mul => "Mul",
            Op::Div => "Div",
            Op::Concat { .. } => "Concat",
            Op::Split { .. } => "Split",
            Op::MaxPool(_) => "MaxPool",
            Op::AveragePool(_) => "AveragePool",
            Op::GlobalAveragePool => "GlobalAveragePool",
            Op::GlobalMaxPool => "GlobalMaxPool",
            Op::Gemm { .. } => "Gemm",
            Op::MatMul => "MatMul",
            Op::Flatten { .. } => "Flatten",
            Op::Reshape { .. } => "Reshape",
            Op::Softmax { .. } => "Softmax",
            Op::Pad { .. } => "Pad",
            Op::Identity => "Identity",
            Op::Dropout { .. } => "Dropout",
            Op::Transpose { .. } => "Transpose",
            Op::Cast { .. } => "Cast",
            Op::Shape { .. } => "Shape",
            Op::Gather { .. } => "Gather",
            Op::Unsqueeze => "Unsqueeze",
            Op::Squeeze => "Squeeze",
            Op::Slice => "Slice",
            Op::ConstantOfShape { .. } => "ConstantOfShape",
            Op::Other(o) => &o.op_type,
        }
    }

    pub fn is_const(&self) -> bool {
        matches!(self, Op::Const(_))
    }

    pub fn is_input(&self) -> bool {
        matches!(self, Op::Input)
    }

    /// Inputs that must be connected (the rest are optional).
    pub fn required_inputs(&self) -> usize {
        match self {
            Op::Input | Op::Const(_) => 0,
            Op::Other(_) => 0,
            Op::FusedConv(f) => 3 + f.residual as usize,
            Op::BatchNormalization { .. } => 5,
            Op::Conv(_)
            | Op::Add
            | Op::Sub
            | Op::Mul
            | Op::Div
            | Op::Gemm { .. }
            | Op::MatMul
            | Op::Reshape { .. }
            | Op::Pad { .. }
            | Op::Gather { .. }
            | Op::Unsqueeze => 2,
            Op::Slice => 3,
            Op::Concat { .. } => 1,
            _ => 1,
        }
    }

    /// Key attributes for labels: kernel, stride, groups, axis.
    pub fn summary(&self) -> String {
        let ints = |v: &[i64]| {
            v.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join("x")
        };
        match self {
            Op::Conv(c) => conv_summary(c),
            Op::FusedConv(f) => conv_summary(&f.conv),
            Op::MaxPool(p) | Op::AveragePool(p) => {
                let mut s = format!("k={}", ints(&p.kernel_shape));
                if !p.strides.is_empty() {
                    s += &format!(" s={}", ints(&p.strides));
                }
                s
            }
            Op::Concat { axis } | Op::Softmax { axis } | Op::Flatten { axis } => {
                format!("axis={axis}")
            }
            Op::Split { axis, .. } | Op::Gather { axis } => format!("axis={axis}"),
            Op::Gemm { trans_b, .. } if *trans_b != 0 => "transB".into(),
            Op::LeakyRelu { alpha } => format!("alpha={alpha}"),
            Op::Pad { mode } => mode.clone(),
            Op::Cast { to } => format!("to={to}"),
            Op::Other(o) if !o.domain.is_empty() => o.domain.clone(),
            _ => String::new(),
        }
    }
}

fn conv_summary(c: &ConvAttrs) -> String {
    let ints = |v: &[i64]| {
        v.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join("x")
    };
    let mut s = String::new();
    if !c.kernel_shape.is_empty() {
        s += &format!("k={}", ints(&c.kernel_shape));
    }
    if c.strides.iter().any(|&x| x != 1) {
        s += &format!(" s={}", ints(&c.strides));
    }
    if c.group != 1 {
        s += &format!(" g={}", c.group);
    }
    s.trim().to_string()
}
