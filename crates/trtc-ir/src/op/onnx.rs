//! Reading ops from ONNX nodes and writing them back: the attribute reader, the
//! attribute builders, and the parsers of standard ops and of trtc's own FusedConv.

use super::{Activation, AutoPad, ConvAttrs, FusedConv, Op, OtherOp, PoolAttrs};
use crate::dtype::DType;
use std::sync::Arc;
use tract_onnx::pb::{AttributeProto, TensorProto};

impl Op {
    /// Parse an ONNX node's op. Anything not fully understood becomes `Other`.
    pub fn from_onnx(op_type: &str, domain: &str, attrs: &[AttributeProto], opset: i64) -> Op {
        let standard = domain.is_empty() || domain == "ai.onnx";
        let parsed = if standard {
            parse_standard(op_type, attrs, opset)
        } else if domain == crate::export::TRTC_DOMAIN && op_type == "FusedConv" {
            parse_fused_conv(attrs)
        } else if domain == crate::export::TRTC_DOMAIN && op_type == "Split" {
            // A plan's Split in its opset-13 form inside an older model (`trtc_node`).
            parse_standard(op_type, attrs, 13)
        } else {
            None
        };
        parsed.unwrap_or_else(|| {
            Op::Other(OtherOp {
                op_type: op_type.to_string(),
                domain: domain.to_string(),
                attributes: attrs.to_vec(),
            })
        })
    }

    /// The ONNX attributes that express this op (not for Input/Const/FusedConv).
    pub fn onnx_attributes(&self) -> Vec<AttributeProto> {
        match self {
            Op::Conv(c) => conv_attrs(c),
            Op::FusedConv(f) => conv_attrs(&f.conv),
            Op::BatchNormalization { epsilon, momentum } => {
                let mut v = vec![attr_float("epsilon", *epsilon)];
                if let Some(m) = momentum {
                    v.push(attr_float("momentum", *m));
                }
                v
            }
            Op::LeakyRelu { alpha } => vec![attr_float("alpha", *alpha)],
            Op::HardSigmoid { alpha, beta } => {
                vec![attr_float("alpha", *alpha), attr_float("beta", *beta)]
            }
            Op::Concat { axis } => vec![attr_int("axis", *axis)],
            Op::Split { axis, num_outputs } => {
                let mut v = vec![attr_int("axis", *axis)];
                if let Some(n) = num_outputs {
                    v.push(attr_int("num_outputs", *n));
                }
                v
            }
            Op::MaxPool(p) => pool_attrs(p, false),
            Op::AveragePool(p) => pool_attrs(p, true),
            Op::Gemm {
                alpha,
                beta,
                trans_a,
                trans_b,
            } => vec![
                attr_float("alpha", *alpha),
                attr_float("beta", *beta),
                attr_int("transA", *trans_a),
                attr_int("transB", *trans_b),
            ],
            Op::Flatten { axis } => vec![attr_int("axis", *axis)],
            Op::Reshape { allowzero } => vec![attr_int("allowzero", *allowzero)],
            Op::Softmax { axis } => vec![attr_int("axis", *axis)],
            Op::Pad { mode } => vec![attr_string("mode", mode)],
            Op::Dropout { seed } => seed.iter().map(|s| attr_int("seed", *s)).collect(),
            Op::Transpose { perm } => perm.iter().map(|p| attr_ints("perm", p)).collect(),
            Op::Cast { to } => vec![attr_int("to", to.to_onnx() as i64)],
            Op::Shape { start, end } => {
                let mut v = vec![];
                if let Some(s) = start {
                    v.push(attr_int("start", *s));
                }
                if let Some(e) = end {
                    v.push(attr_int("end", *e));
                }
                v
            }
            Op::Gather { axis } => vec![attr_int("axis", *axis)],
            Op::ConstantOfShape { value } => value
                .iter()
                .map(|t| AttributeProto {
                    name: "value".into(),
                    r#type: 4,
                    t: Some(crate::tensor::tensor_to_proto("value", t)),
                    ..Default::default()
                })
                .collect(),
            Op::Other(o) => o.attributes.clone(),
            _ => vec![],
        }
    }
}

fn conv_attrs(c: &ConvAttrs) -> Vec<AttributeProto> {
    let mut v = vec![attr_int("group", c.group)];
    if c.auto_pad != AutoPad::NotSet {
        v.push(attr_string("auto_pad", c.auto_pad.as_str()));
    }
    for (name, val) in [
        ("dilations", &c.dilations),
        ("kernel_shape", &c.kernel_shape),
        ("pads", &c.pads),
        ("strides", &c.strides),
    ] {
        if !val.is_empty() {
            v.push(attr_ints(name, val));
        }
    }
    v
}

fn pool_attrs(p: &PoolAttrs, average: bool) -> Vec<AttributeProto> {
    let mut v = vec![
        attr_int("ceil_mode", p.ceil_mode),
        attr_ints("kernel_shape", &p.kernel_shape),
    ];
    if p.auto_pad != AutoPad::NotSet {
        v.push(attr_string("auto_pad", p.auto_pad.as_str()));
    }
    if average {
        v.push(attr_int("count_include_pad", p.count_include_pad));
    }
    for (name, val) in [
        ("dilations", &p.dilations),
        ("pads", &p.pads),
        ("strides", &p.strides),
    ] {
        if !val.is_empty() {
            v.push(attr_ints(name, val));
        }
    }
    v
}

pub(crate) fn attr_int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: 2,
        i,
        ..Default::default()
    }
}
pub(crate) fn attr_float(name: &str, f: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: 1,
        f,
        ..Default::default()
    }
}
pub(crate) fn attr_ints(name: &str, ints: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: 7,
        ints: ints.to_vec(),
        ..Default::default()
    }
}
pub(crate) fn attr_string(name: &str, s: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: 3,
        s: s.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// Reads attributes by name and type, remembering which were read: a node with an
/// attribute nobody read is not fully understood.
pub(crate) struct AttrReader<'a> {
    attrs: &'a [AttributeProto],
    used: Vec<bool>,
    bad: bool,
}

impl<'a> AttrReader<'a> {
    pub(crate) fn new(attrs: &'a [AttributeProto]) -> Self {
        AttrReader {
            attrs,
            used: vec![false; attrs.len()],
            bad: false,
        }
    }
    fn get(&mut self, name: &str, ty: i32) -> Option<&'a AttributeProto> {
        let i = self.attrs.iter().position(|a| a.name == name)?;
        self.used[i] = true;
        let a = &self.attrs[i];
        // type 0 (UNDEFINED) is written by some old exporters; accept it.
        if a.r#type != ty && a.r#type != 0 {
            self.bad = true;
            return None;
        }
        Some(a)
    }
    pub(crate) fn int(&mut self, name: &str) -> Option<i64> {
        self.get(name, 2).map(|a| a.i)
    }
    pub(crate) fn float(&mut self, name: &str) -> Option<f32> {
        self.get(name, 1).map(|a| a.f)
    }
    pub(crate) fn ints(&mut self, name: &str) -> Option<Vec<i64>> {
        self.get(name, 7).map(|a| a.ints.clone())
    }
    pub(crate) fn floats(&mut self, name: &str) -> Option<Vec<f32>> {
        self.get(name, 6).map(|a| a.floats.clone())
    }
    pub(crate) fn string(&mut self, name: &str) -> Option<String> {
        self.get(name, 3)
            .map(|a| String::from_utf8_lossy(&a.s).into_owned())
    }
    pub(crate) fn tensor(&mut self, name: &str) -> Option<&'a TensorProto> {
        self.get(name, 4).and_then(|a| a.t.as_ref())
    }
    /// Every attribute was read, with the type expected.
    pub(crate) fn complete(&self) -> bool {
        !self.bad && self.used.iter().all(|&u| u)
    }
}

/// The `ai.trtc` FusedConv that trtc writes into its plans.
fn parse_fused_conv(attrs: &[AttributeProto]) -> Option<Op> {
    let conv_attrs: Vec<AttributeProto> = attrs
        .iter()
        .filter(|a| {
            !matches!(
                a.name.as_str(),
                "residual" | "activation" | "activation_params"
            )
        })
        .cloned()
        .collect();
    let Some(Op::Conv(conv)) = parse_standard("Conv", &conv_attrs, 17) else {
        return None;
    };
    let mut a = AttrReader::new(attrs);
    let residual = a.int("residual").unwrap_or(0) != 0;
    let params = a.floats("activation_params").unwrap_or_default();
    let p = |i: usize| params.get(i).copied();
    let activation = match a.string("activation").as_deref() {
        None => None,
        Some("Relu") => Some(Activation::Relu),
        Some("Clip") => Some(Activation::Clip {
            min: p(0)?,
            max: p(1)?,
        }),
        Some("LeakyRelu") => Some(Activation::LeakyRelu { alpha: p(0)? }),
        Some("Sigmoid") => Some(Activation::Sigmoid),
        Some("HardSigmoid") => Some(Activation::HardSigmoid {
            alpha: p(0)?,
            beta: p(1)?,
        }),
        Some("HardSwish") => Some(Activation::HardSwish),
        Some(_) => return None,
    };
    Some(Op::FusedConv(FusedConv {
        conv,
        residual,
        activation,
    }))
}

fn parse_standard(op_type: &str, attrs: &[AttributeProto], opset: i64) -> Option<Op> {
    let mut a = AttrReader::new(attrs);
    let op = match op_type {
        "Conv" => Op::Conv(ConvAttrs {
            auto_pad: AutoPad::parse(&a.string("auto_pad").unwrap_or_default())?,
            dilations: a.ints("dilations").unwrap_or_default(),
            group: a.int("group").unwrap_or(1),
            kernel_shape: a.ints("kernel_shape").unwrap_or_default(),
            pads: a.ints("pads").unwrap_or_default(),
            strides: a.ints("strides").unwrap_or_default(),
        }),
        "MaxPool" | "AveragePool" => {
            let p = PoolAttrs {
                auto_pad: AutoPad::parse(&a.string("auto_pad").unwrap_or_default())?,
                ceil_mode: a.int("ceil_mode").unwrap_or(0),
                dilations: a.ints("dilations").unwrap_or_default(),
                kernel_shape: a.ints("kernel_shape")?,
                pads: a.ints("pads").unwrap_or_default(),
                strides: a.ints("strides").unwrap_or_default(),
                count_include_pad: if op_type == "AveragePool" {
                    a.int("count_include_pad").unwrap_or(0)
                } else {
                    0
                },
            };
            if op_type == "MaxPool" {
                if a.int("storage_order").unwrap_or(0) != 0 {
                    return None;
                }
                Op::MaxPool(p)
            } else {
                Op::AveragePool(p)
            }
        }
        "BatchNormalization" => {
            if a.int("training_mode").unwrap_or(0) != 0 {
                return None;
            }
            Op::BatchNormalization {
                epsilon: a.float("epsilon").unwrap_or(1e-5),
                momentum: a.float("momentum"),
            }
        }
        "Relu" => Op::Relu,
        "Sigmoid" => Op::Sigmoid,
        "Tanh" => Op::Tanh,
        "HardSwish" => Op::HardSwish,
        "LeakyRelu" => Op::LeakyRelu {
            alpha: a.float("alpha").unwrap_or(0.01),
        },
        "HardSigmoid" => Op::HardSigmoid {
            alpha: a.float("alpha").unwrap_or(0.2),
            beta: a.float("beta").unwrap_or(0.5),
        },
        "Clip" if opset >= 11 => Op::Clip,
        "Add" => Op::Add,
        "Sub" => Op::Sub,
        "Mul" => Op::Mul,
        "Div" => Op::Div,
        "Concat" => Op::Concat {
            axis: a.int("axis")?,
        },
        "Split" if opset >= 13 => Op::Split {
            axis: a.int("axis").unwrap_or(0),
            num_outputs: a.int("num_outputs"),
        },
        "GlobalAveragePool" => Op::GlobalAveragePool,
        "GlobalMaxPool" => Op::GlobalMaxPool,
        "Gemm" => Op::Gemm {
            alpha: a.float("alpha").unwrap_or(1.0),
            beta: a.float("beta").unwrap_or(1.0),
            trans_a: a.int("transA").unwrap_or(0),
            trans_b: a.int("transB").unwrap_or(0),
        },
        "MatMul" => Op::MatMul,
        "Flatten" => Op::Flatten {
            axis: a.int("axis").unwrap_or(1),
        },
        "Reshape" if opset >= 5 => Op::Reshape {
            allowzero: a.int("allowzero").unwrap_or(0),
        },
        "Softmax" if opset >= 13 => Op::Softmax {
            axis: a.int("axis").unwrap_or(-1),
        },
        "Pad" if opset >= 11 => Op::Pad {
            mode: a.string("mode").unwrap_or_else(|| "constant".into()),
        },
        "Identity" => Op::Identity,
        "Dropout" if opset >= 12 => Op::Dropout {
            seed: a.int("seed"),
        },
        // Older Dropouts (ratio an attribute; before opset 7 also is_test): identity at
        // inference all the same, which is all trtc runs.
        "Dropout" => {
            let _ = a.float("ratio");
            let _ = a.int("is_test");
            Op::Dropout { seed: None }
        }
        "Transpose" => Op::Transpose {
            perm: a.ints("perm"),
        },
        "Cast" => Op::Cast {
            to: DType::from_onnx(a.int("to")? as i32),
        },
        "Shape" => Op::Shape {
            start: a.int("start"),
            end: a.int("end"),
        },
        "Gather" => Op::Gather {
            axis: a.int("axis").unwrap_or(0),
        },
        "Unsqueeze" if opset >= 13 => Op::Unsqueeze,
        "Squeeze" if opset >= 13 => Op::Squeeze,
        "Slice" if opset >= 10 => Op::Slice,
        "ConstantOfShape" => {
            let value = match a.tensor("value") {
                Some(t) => Some(Arc::new(crate::tensor::tensor_from_proto(t, None).ok()?)),
                None => None,
            };
            Op::ConstantOfShape { value }
        }
        _ => return None,
    };
    a.complete().then_some(op)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv_attributes_round_trip() {
        let attrs = vec![
            attr_ints("kernel_shape", &[3, 3]),
            attr_ints("strides", &[2, 2]),
            attr_ints("pads", &[1, 1, 1, 1]),
            attr_int("group", 4),
        ];
        let op = Op::from_onnx("Conv", "", &attrs, 17);
        let Op::Conv(c) = &op else {
            panic!("not a conv: {op:?}")
        };
        assert_eq!(c.group, 4);
        assert_eq!(c.strides(2), vec![2, 2]);
        assert_eq!(c.dilations(2), vec![1, 1]);
        let back = Op::from_onnx("Conv", "", &op.onnx_attributes(), 17);
        assert!(matches!(back, Op::Conv(ref c2) if c2 == c));
        assert_eq!(op.summary(), "k=3x3 s=2x2 g=4");
    }

    #[test]
    fn dropout_of_every_opset_is_the_inference_dropout() {
        // Opset 6: ratio and is_test attributes; opset 10: ratio; opset 13: seed.
        let old = [attr_float("ratio", 0.3), attr_int("is_test", 1)];
        assert!(matches!(
            Op::from_onnx("Dropout", "", &old, 6),
            Op::Dropout { seed: None }
        ));
        let v10 = [attr_float("ratio", 0.3)];
        assert!(matches!(
            Op::from_onnx("Dropout", "", &v10, 10),
            Op::Dropout { seed: None }
        ));
        let v13 = [attr_int("seed", 4)];
        assert!(matches!(
            Op::from_onnx("Dropout", "", &v13, 13),
            Op::Dropout { seed: Some(4) }
        ));
        // An attribute no opset has still keeps the node verbatim.
        let odd = [attr_int("mystery", 1)];
        assert!(matches!(
            Op::from_onnx("Dropout", "", &odd, 10),
            Op::Other(_)
        ));
    }

    #[test]
    fn unknown_attribute_keeps_the_node_verbatim() {
        let attrs = vec![attr_int("group", 1), attr_int("mystery", 7)];
        let op = Op::from_onnx("Conv", "", &attrs, 17);
        let Op::Other(o) = op else {
            panic!("should be Other")
        };
        assert_eq!(o.op_type, "Conv");
        assert_eq!(o.attributes.len(), 2);
    }

    #[test]
    fn attribute_of_wrong_type_is_not_understood() {
        let attrs = vec![attr_float("axis", 1.0)];
        assert!(matches!(
            Op::from_onnx("Concat", "", &attrs, 17),
            Op::Other(_)
        ));
    }

    #[test]
    fn old_opset_forms_stay_other() {
        assert!(matches!(
            Op::from_onnx("Softmax", "", &[], 11),
            Op::Other(_)
        ));
        assert!(matches!(
            Op::from_onnx("Softmax", "", &[], 13),
            Op::Softmax { axis: -1 }
        ));
        assert!(matches!(
            Op::from_onnx("Relu", "com.microsoft", &[], 13),
            Op::Other(_)
        ));
    }
}
