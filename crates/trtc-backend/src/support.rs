//! What an engine backend can run, node by node, and why a node falls back to the CPU.

use serde::{Deserialize, Serialize};
use trtc_ir::shape::known_shape;
use trtc_ir::tract_onnx::prelude::DatumType;
use trtc_ir::{DType, Dim, Graph, NodeId, Op};

/// Why a node runs on the CPU.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum FallbackReason {
    UnsupportedOp,
    UnsupportedAttribute(String),
    UnsupportedDtype(String),
    DynamicShape(String),
    BelowMinSegmentSize { segment_nodes: usize, min: usize },
    DeniedByUser,
    CpuBackendChosen,
}

impl std::fmt::Display for FallbackReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FallbackReason::UnsupportedOp => write!(f, "unsupported op"),
            FallbackReason::UnsupportedAttribute(a) => write!(f, "unsupported attribute: {a}"),
            FallbackReason::UnsupportedDtype(d) => write!(f, "unsupported dtype: {d}"),
            FallbackReason::DynamicShape(s) => write!(f, "dynamic shape: {s}"),
            FallbackReason::BelowMinSegmentSize { segment_nodes, min } => {
                write!(
                    f,
                    "segment of {segment_nodes} node(s) below minimum size {min}"
                )
            }
            FallbackReason::DeniedByUser => write!(f, "denied by user (--deny-op)"),
            FallbackReason::CpuBackendChosen => write!(f, "--backend cpu"),
        }
    }
}

/// A backend's support table.
pub trait OpSupport {
    fn name(&self) -> &'static str;
    /// `Ok` when this backend can run the node; the reason otherwise.
    fn check(&self, g: &Graph, id: NodeId) -> Result<(), FallbackReason>;
}

/// The op set the CUDA engine covers: Conv (fused forms, groups, depthwise), pooling,
/// GlobalAveragePool, Gemm/MatMul, elementwise Add/Mul/Sub/Div, activations, Concat,
/// Split, Flatten/Reshape, Softmax, Resize (nearest/linear), ConvTranspose; f32 or f16
/// tensors whose dims are static except the batch (dim 0).
pub struct CudaOpTable;

fn check_tensors(g: &Graph, id: NodeId) -> Result<(), FallbackReason> {
    let node = g.node(id);
    let mut infos: Vec<&trtc_ir::TensorInfo> = node.outputs.iter().collect();
    for o in g.node_inputs(id).into_iter().flatten() {
        if g.const_value(o).is_none() {
            infos.push(g.tensor(o));
        }
    }
    for t in infos {
        match t.dtype {
            Some(DType::F32) | Some(DType::F16) => {}
            Some(other) => {
                return Err(FallbackReason::UnsupportedDtype(format!(
                    "`{}` is {other}",
                    t.name
                )))
            }
            None => {
                return Err(FallbackReason::UnsupportedDtype(format!(
                    "`{}` has no known type",
                    t.name
                )))
            }
        }
        let Some(shape) = &t.shape else {
            return Err(FallbackReason::DynamicShape(format!(
                "`{}` has no known shape",
                t.name
            )));
        };
        if shape.iter().skip(1).any(|d| matches!(d, Dim::Sym(_))) {
            return Err(FallbackReason::DynamicShape(format!(
                "`{}` is {}",
                t.name,
                t.describe()
            )));
        }
    }
    Ok(())
}

fn const_input(g: &Graph, id: NodeId, slot: usize, what: &str) -> Result<(), FallbackReason> {
    match g.input_outlet(id, slot) {
        Some(_) if g.input_const(id, slot).is_none() => Err(FallbackReason::UnsupportedAttribute(
            format!("{what} is computed at run time"),
        )),
        _ => Ok(()),
    }
}

impl OpSupport for CudaOpTable {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn check(&self, g: &Graph, id: NodeId) -> Result<(), FallbackReason> {
        let node = g.node(id);
        let attr = |s: &str| Err(FallbackReason::UnsupportedAttribute(s.into()));
        match &node.op {
            Op::Conv(c) | Op::FusedConv(trtc_ir::FusedConv { conv: c, .. }) => {
                if g.input_info(id, 0).and_then(|t| t.rank()) != Some(4) {
                    return attr("only 2-D convolutions");
                }
                if g.input_const(id, 1)
                    .is_none_or(|w| w.datum_type() != DatumType::F32)
                {
                    return attr("weights are not a constant f32 tensor");
                }
                const_input(g, id, 2, "bias")?;
                if c.group < 1 {
                    return attr("group < 1");
                }
            }
            Op::MaxPool(p) | Op::AveragePool(p) => {
                if p.kernel_shape.len() != 2 {
                    return attr("only 2-D pooling");
                }
                if p.dilations.iter().any(|&d| d != 1) {
                    return attr("dilated pooling");
                }
            }
            Op::GlobalAveragePool | Op::GlobalMaxPool | Op::Gemm { .. } | Op::MatMul => {}
            Op::Add | Op::Mul | Op::Sub | Op::Div => {}
            Op::Relu
            | Op::Sigmoid
            | Op::Tanh
            | Op::LeakyRelu { .. }
            | Op::HardSigmoid { .. }
            | Op::HardSwish => {}
            Op::Clip => {
                const_input(g, id, 1, "Clip min")?;
                const_input(g, id, 2, "Clip max")?;
            }
            Op::Concat { .. } | Op::Flatten { .. } | Op::Softmax { .. } | Op::Identity => {}
            Op::Split { .. } => const_input(g, id, 1, "split sizes")?,
            Op::Reshape { .. } => {
                if g.input_const(id, 1).is_none() {
                    return Err(FallbackReason::DynamicShape(
                        "Reshape target is computed at run time".into(),
                    ));
                }
            }
            Op::Other(o) if o.op_type == "Resize" && o.domain.is_empty() => {
                let mode = o
                    .attributes
                    .iter()
                    .find(|a| a.name == "mode")
                    .map(|a| String::from_utf8_lossy(&a.s).into_owned());
                if !matches!(mode.as_deref(), None | Some("nearest") | Some("linear")) {
                    return attr("Resize mode other than nearest/linear");
                }
            }
            Op::Other(o) if o.op_type == "ConvTranspose" && o.domain.is_empty() => {
                if g.input_const(id, 1).is_none() {
                    return attr("weights are not constant");
                }
            }
            _ => return Err(FallbackReason::UnsupportedOp),
        }
        check_tensors(g, id)?;
        // Shapes the batch dim aside must be fully static.
        if node.outputs.iter().any(|t| {
            t.shape
                .as_deref()
                .and_then(|s| known_shape(&s[1.min(s.len())..]))
                .is_none()
        }) {
            return Err(FallbackReason::DynamicShape(
                "output shape not static".into(),
            ));
        }
        Ok(())
    }
}

/// A table that supports exactly the nodes a predicate picks (tests, experiments).
pub struct MaskSupport<F: Fn(&Graph, NodeId) -> bool>(pub F);

impl<F: Fn(&Graph, NodeId) -> bool> OpSupport for MaskSupport<F> {
    fn name(&self) -> &'static str {
        "mask"
    }
    fn check(&self, g: &Graph, id: NodeId) -> Result<(), FallbackReason> {
        if (self.0)(g, id) {
            Ok(())
        } else {
            Err(FallbackReason::UnsupportedOp)
        }
    }
}
