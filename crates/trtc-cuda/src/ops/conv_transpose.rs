//! `ConvTranspose`, 2-D: strides, pads, dilations, groups (depthwise included),
//! `output_padding`, constant f32 weights `[C, M / group, kh, kw]` and an optional constant
//! bias; explicit pads only (no `auto_pad`, no `output_shape`).
//!
//! One step, one NVRTC kernel (`conv_transpose2d`, NCHW or NHWC): each output element sums
//! the input pixels and taps that reach it, in f32, with the bias; weights are kept in f32
//! as `[kh][kw][C][M / group]` (neighbouring output channels neighbouring in memory).

use super::rules::{attr, const_input, input_rank, ints_attr, str_attr};
use super::unary::other;
use super::{OpDoc, OpFamily};
use crate::error::{cuda_err, Result};
use crate::program::lowering::Lowering;
use crate::program::Step;
use trtc_engine::FallbackReason;
use trtc_ir::tensor::tensor_to_f32s;
use trtc_ir::tract_onnx::prelude::DatumType;
use trtc_ir::{Graph, NodeId};

pub static FAMILY: OpFamily = OpFamily {
    name: "conv_transpose",
    ops: &[OpDoc {
        op: "ConvTranspose",
        conditions: "2-D; weights a constant f32 tensor; bias constant, one per output channel; explicit pads (no auto_pad, no output_shape); any strides, dilations, groups and output_padding",
    }],
    handles: |op| other(op).is_some_and(|o| o.op_type == "ConvTranspose"),
    check,
    lower,
};

/// A ConvTranspose as the kernel runs it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Deconv {
    /// `[C, M / group, kh, kw]`.
    pub w_dims: [usize; 4],
    pub weights: Vec<f32>,
    pub bias: Option<Vec<f32>>,
    /// top, left, bottom, right
    pub pads: [i64; 4],
    pub stride: [i64; 2],
    pub dilation: [i64; 2],
    pub groups: i64,
}

/// Integer list attribute `name` of `len` values (`default` each when absent).
fn ints(
    o: &trtc_ir::op::OtherOp,
    name: &str,
    len: usize,
    default: i64,
) -> std::result::Result<Vec<i64>, FallbackReason> {
    match ints_attr(o, name) {
        None => Ok(vec![default; len]),
        Some(v) if v.len() == len => Ok(v),
        Some(_) => Err(attr(format!("{name} is not {len} values"))),
    }
}

/// The ConvTranspose of node `id`, or why the engine does not run it.
pub(crate) fn deconv(g: &Graph, id: NodeId) -> std::result::Result<Deconv, FallbackReason> {
    let o = other(&g.node(id).op).ok_or(FallbackReason::UnsupportedOp)?;
    if input_rank(g, id, 0) != Some(4) {
        return Err(attr("only 2-D transposed convolutions"));
    }
    let wt = g
        .input_const(id, 1)
        .filter(|w| w.datum_type() == DatumType::F32 && w.rank() == 4)
        .ok_or_else(|| attr("weights are not a constant 4-D f32 tensor"))?;
    let s = wt.shape();
    let w_dims = [s[0], s[1], s[2], s[3]];
    let weights = tensor_to_f32s(wt).ok_or_else(|| attr("weights are not f32"))?;
    if !matches!(str_attr(o, "auto_pad").as_deref(), None | Some("NOTSET")) {
        return Err(attr("auto_pad (only explicit pads)"));
    }
    if ints_attr(o, "output_shape").is_some() {
        return Err(attr("output_shape (only pads and output_padding)"));
    }
    let groups = o
        .attributes
        .iter()
        .find(|a| a.name == "group")
        .map(|a| a.i)
        .unwrap_or(1);
    let x = g
        .input_info(id, 0)
        .and_then(|t| t.shape.as_ref())
        .ok_or_else(|| attr("input shape unknown"))?;
    let xs: Vec<u64> = x.iter().skip(1).map(|d| d.known().unwrap_or(0)).collect();
    if groups < 1 || xs[0] as usize != w_dims[0] || w_dims[0] % groups as usize != 0 {
        return Err(attr("weights do not fit the input channels and group"));
    }
    if w_dims.contains(&0) {
        return Err(attr("empty weights"));
    }
    let m = w_dims[1] * groups as usize;
    if ints_attr(o, "kernel_shape").is_some_and(|k| k != [w_dims[2] as i64, w_dims[3] as i64]) {
        return Err(attr("kernel_shape differs from the weights"));
    }
    let (stride, dilation) = (ints(o, "strides", 2, 1)?, ints(o, "dilations", 2, 1)?);
    let (pads, out_pad) = (ints(o, "pads", 4, 0)?, ints(o, "output_padding", 2, 0)?);
    if stride.iter().chain(&dilation).any(|&v| v < 1) || pads.iter().chain(&out_pad).any(|&v| v < 0)
    {
        return Err(attr("strides or dilations below 1, or negative pads"));
    }
    const_input(g, id, 2, "bias")?;
    let bias =
        match g.input_const(id, 2) {
            None => None,
            Some(b) => Some(tensor_to_f32s(b).filter(|b| b.len() == m).ok_or_else(|| {
                attr("bias is not a float constant of one value per output channel")
            })?),
        };
    // The output the engine computes is the one the graph says.
    let y = g.node(id).outputs[0]
        .shape
        .as_ref()
        .ok_or_else(|| attr("output shape unknown"))?;
    let want: Vec<i64> = (0..2)
        .map(|i| {
            stride[i] * (xs[1 + i] as i64 - 1)
                + out_pad[i]
                + (w_dims[2 + i] as i64 - 1) * dilation[i]
                + 1
                - pads[i]
                - pads[i + 2]
        })
        .collect();
    let have: Vec<Option<u64>> = y.iter().map(|d| d.known()).collect();
    if have.len() != 4
        || have[1] != Some(m as u64)
        || (0..2).any(|i| have[2 + i].map(|v| v as i64) != Some(want[i]))
    {
        return Err(attr("output shape differs from what the attributes give"));
    }
    Ok(Deconv {
        w_dims,
        weights,
        bias,
        pads: [pads[0], pads[1], pads[2], pads[3]],
        stride: [stride[0], stride[1]],
        dilation: [dilation[0], dilation[1]],
        groups,
    })
}

fn check(g: &Graph, id: NodeId) -> std::result::Result<(), FallbackReason> {
    deconv(g, id).map(|_| ())
}

/// `[C][M/g][kh][kw]` weights reordered to `[kh][kw][C][M/g]`.
pub(crate) fn weights_rsco(w: &[f32], [c, mg, kh, kw]: [usize; 4]) -> Vec<f32> {
    let mut t = vec![0.0; w.len()];
    for ci in 0..c {
        for mo in 0..mg {
            for r in 0..kh {
                for s in 0..kw {
                    t[((r * kw + s) * c + ci) * mg + mo] = w[((ci * mg + mo) * kh + r) * kw + s];
                }
            }
        }
    }
    t
}

fn lower(cx: &mut Lowering, id: NodeId) -> Result<()> {
    let g = cx.g;
    let name = g.node(id).name.as_str();
    let d = deconv(g, id).map_err(|r| cuda_err(name, r))?;
    let y = cx.output(id, 0);
    let x = cx.operand(id, 0)?;
    let w = cx.weight_f32(&weights_rsco(&d.weights, d.w_dims));
    let b = d.bias.as_deref().map(|b| cx.weight_f32(b));
    let i = |v: i64| v as i32;
    cx.step(
        name,
        Step::ConvTranspose {
            x,
            y,
            w,
            b,
            w_dims: d.w_dims.map(|v| v as i32),
            pads: d.pads.map(i),
            stride: d.stride.map(i),
            dilation: d.dilation.map(i),
            groups: i(d.groups),
        },
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{accepted_nodes_lower, graph_of, reason};
    use super::*;
    use trtc_ir::tract_onnx::pb::AttributeProto;
    use trtc_ir::{Op, Outlet};
    use trtc_optimizer::verify::random_tensor;

    fn ints(name: &str, v: &[i64]) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: 7,
            ints: v.to_vec(),
            ..Default::default()
        }
    }

    fn group(g: i64) -> AttributeProto {
        AttributeProto {
            name: "group".into(),
            r#type: 2,
            i: g,
            ..Default::default()
        }
    }

    /// A graph of one ConvTranspose `ct` of an `[N, c, 5, 5]` input, weights `w`.
    fn deconv_graph(c: usize, w: [usize; 4], bias: bool, attrs: Vec<AttributeProto>) -> Graph {
        graph_of(&[c, 5, 5], |b, x| {
            let wt = b.constant("w", random_tensor(&w, 1));
            let mut ins: Vec<Outlet> = vec![x, wt];
            if bias {
                let m = w[1]
                    * attrs
                        .iter()
                        .find(|a| a.name == "group")
                        .map_or(1, |a| a.i as usize);
                ins.push(b.constant("b", random_tensor(&[m], 2)));
            }
            let op = Op::Other(trtc_ir::op::OtherOp {
                op_type: "ConvTranspose".into(),
                domain: String::new(),
                attributes: attrs,
            });
            b.op("ct", op, &ins)
        })
    }

    /// Input channels, weight dims, bias, attributes, output dims but the batch.
    type Case = (usize, [usize; 4], bool, Vec<AttributeProto>, [u64; 3]);

    #[test]
    fn transposed_convolutions_are_accepted_and_lower() {
        let s2 = || ints("strides", &[2, 2]);
        let p1 = || ints("pads", &[1, 1, 1, 1]);
        let cases: Vec<Case> = vec![
            // U-Net's 2x2 stride 2, DCGAN's 4x4 stride 2 pad 1.
            (8, [8, 4, 2, 2], true, vec![s2()], [4, 10, 10]),
            (8, [8, 3, 4, 4], false, vec![s2(), p1()], [3, 10, 10]),
            // 3x3 stride 2 pad 1 output_padding 1; grouped; depthwise; dilated.
            (
                6,
                [6, 4, 3, 3],
                true,
                vec![s2(), p1(), ints("output_padding", &[1, 1])],
                [4, 10, 10],
            ),
            (8, [8, 3, 3, 3], true, vec![s2(), group(2)], [6, 11, 11]),
            (
                8,
                [8, 1, 3, 3],
                false,
                vec![s2(), p1(), group(8)],
                [8, 9, 9],
            ),
            (
                3,
                [3, 5, 3, 3],
                true,
                vec![ints("dilations", &[2, 2])],
                [5, 9, 9],
            ),
        ];
        for (c, w, bias, attrs, want) in cases {
            let g = deconv_graph(c, w, bias, attrs.clone());
            assert!(
                reason(&g, "ct").is_none(),
                "{attrs:?}: {:?}",
                reason(&g, "ct")
            );
            let id = super::super::tests::node(&g, "ct");
            let shape = g.node(id).outputs[0].shape.clone().unwrap();
            let got: Vec<u64> = shape[1..].iter().map(|d| d.known().unwrap()).collect();
            assert_eq!(got, want, "{attrs:?}");
            assert_eq!(accepted_nodes_lower(&g), 1);
        }
    }

    #[test]
    fn transposed_convolutions_the_kernel_does_not_run_are_refused() {
        let refused = |attrs: Vec<AttributeProto>, want: &str| {
            let g = deconv_graph(8, [8, 4, 3, 3], false, attrs);
            match reason(&g, "ct") {
                Some(FallbackReason::UnsupportedAttribute(d)) if d.contains(want) => {}
                other => panic!("{want}: {other:?}"),
            }
        };
        let same = AttributeProto {
            name: "auto_pad".into(),
            r#type: 3,
            s: b"SAME_UPPER".to_vec(),
            ..Default::default()
        };
        refused(vec![same], "auto_pad");
        refused(
            vec![ints("strides", &[2, 2]), ints("output_shape", &[11, 11])],
            "output_shape",
        );
        // Weights computed by the graph.
        let g = graph_of(&[8, 5, 5], |b, x| {
            let w = b.constant("w", random_tensor(&[8, 4, 3, 3], 1));
            let w = b.op("wr", Op::Relu, &[w]);
            let op = Op::Other(trtc_ir::op::OtherOp {
                op_type: "ConvTranspose".into(),
                domain: String::new(),
                attributes: vec![],
            });
            b.op("ct", op, &[x, w])
        });
        assert!(
            matches!(reason(&g, "ct"), Some(FallbackReason::UnsupportedAttribute(d)) if d.contains("weights"))
        );
    }

    #[test]
    fn weights_put_output_channels_last() {
        // c = 2, m/g = 3, 1x2 taps: w[c][m][0][s] = 100c + 10m + s.
        let w: Vec<f32> = (0..2)
            .flat_map(|c| {
                (0..3).flat_map(move |m| (0..2).map(move |s| (100 * c + 10 * m + s) as f32))
            })
            .collect();
        let t = weights_rsco(&w, [2, 3, 1, 2]);
        assert_eq!(&t[..6], &[0.0, 10.0, 20.0, 100.0, 110.0, 120.0]);
        assert_eq!(&t[6..], &[1.0, 11.0, 21.0, 101.0, 111.0, 121.0]);
    }
}
