//! `Resize` (opsets 10 to 19) and `Upsample` (opsets 7 to 9) of the two spatial dims of a
//! 4-D tensor (N and C keep their length), with scales or sizes constant when the engine
//! is built. `nearest` (the four `nearest_mode`s) and `linear` (bilinear) under the
//! `half_pixel`, `pytorch_half_pixel`, `align_corners`, `asymmetric`,
//! `tf_half_pixel_for_nn` and `half_pixel_symmetric` coordinate transforms, computed as
//! tract computes them (f32 coordinates; the scale of an axis is the scale given, or
//! output / input length for sizes). Opset 10's Resize and Upsample map coordinates
//! asymmetrically and round nearest down (ONNX Runtime's rule; they refuse nearest
//! downsampling, which that rule rounds up). Refused: `cubic`, `antialias`,
//! `tf_crop_and_resize`, a `keep_aspect_ratio_policy` other than `stretch`.
//!
//! One step, one NVRTC kernel (`resize2d`: one thread per output element, NCHW or NHWC).

use super::rules::{attr, int_attr, str_attr};
use super::unary::other;
use super::{OpDoc, OpFamily};
use crate::error::{cuda_err, Result};
use crate::program::lowering::Lowering;
use crate::program::Step;
use trtc_engine::FallbackReason;
use trtc_ir::infer::resize_inputs;
use trtc_ir::op::OtherOp;
use trtc_ir::tensor::{tensor_to_f32s, tensor_to_i64s};
use trtc_ir::{Graph, NodeId};

pub static FAMILY: OpFamily = OpFamily {
    name: "resize",
    ops: &[
        OpDoc {
            op: "Resize",
            conditions: "4-D, H and W only; scales or sizes constant; mode nearest (any nearest_mode) or linear; coordinate_transformation_mode half_pixel, pytorch_half_pixel, align_corners, asymmetric, tf_half_pixel_for_nn or half_pixel_symmetric; no antialias; keep_aspect_ratio_policy stretch; opset 10: no nearest downsampling",
        },
        OpDoc {
            op: "Upsample",
            conditions: "4-D, H and W only; scales constant; nearest or linear",
        },
    ],
    handles: |op| other(op).is_some_and(|o| matches!(o.op_type.as_str(), "Resize" | "Upsample")),
    check,
    lower,
};

/// How one Resize runs: the kernel's codes and the scale of H and W.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ResizeSpec {
    pub scale: [f32; 2],
    pub linear: bool,
    /// 0 half_pixel, 1 pytorch_half_pixel, 2 align_corners, 3 asymmetric,
    /// 4 tf_half_pixel_for_nn, 5 half_pixel_symmetric (`rs_coord` in the kernels).
    pub coord: i32,
    /// 0 round_prefer_floor, 1 round_prefer_ceil, 2 floor, 3 ceil.
    pub nearest: i32,
}

/// The known dims of input 0 and output 0, both 4-D (batch as 0 when symbolic).
fn dims4(g: &Graph, id: NodeId) -> std::result::Result<([u64; 4], [u64; 4]), FallbackReason> {
    let four = |s: Option<&Vec<trtc_ir::Dim>>| -> Option<[u64; 4]> {
        let s = s?;
        (s.len() == 4).then(|| {
            let d = |i: usize| s[i].known().unwrap_or(0);
            [d(0), d(1), d(2), d(3)]
        })
    };
    let x = four(g.input_info(id, 0).and_then(|t| t.shape.as_ref()));
    let y = four(g.node(id).outputs.first().and_then(|t| t.shape.as_ref()));
    match (x, y) {
        (Some(x), Some(y)) => Ok((x, y)),
        _ => Err(attr("only 4-D tensors with known output shapes")),
    }
}

/// The Resize or Upsample of node `id` as the kernel runs it, or why the engine does not.
pub(crate) fn spec(g: &Graph, id: NodeId) -> std::result::Result<ResizeSpec, FallbackReason> {
    let o: &OtherOp = other(&g.node(id).op).ok_or(FallbackReason::UnsupportedOp)?;
    let (xd, yd) = dims4(g, id)?;
    if g.input_info(id, 0)
        .and_then(|t| t.shape.as_ref())
        .map(|s| &s[0])
        != g.node(id).outputs[0].shape.as_ref().map(|s| &s[0])
        || xd[1] != yd[1]
    {
        return Err(attr("resizes N or C (only H and W)"));
    }
    let opset = g.meta.opset();
    let legacy = o.op_type == "Upsample" || opset <= 10;
    let mode = str_attr(o, "mode").unwrap_or_else(|| "nearest".into());
    let linear = match mode.as_str() {
        "nearest" => false,
        "linear" | "bilinear" => true,
        other => return Err(attr(format!("mode {other}"))),
    };
    if int_attr(o, "antialias").unwrap_or(0) != 0 {
        return Err(attr("antialias"));
    }
    let coord = if legacy {
        3
    } else {
        match str_attr(o, "coordinate_transformation_mode").as_deref() {
            None | Some("half_pixel") => 0,
            Some("pytorch_half_pixel") => 1,
            Some("align_corners") => 2,
            Some("asymmetric") => 3,
            Some("tf_half_pixel_for_nn") => 4,
            Some("half_pixel_symmetric") => 5,
            Some(other) => return Err(attr(format!("coordinate_transformation_mode {other}"))),
        }
    };
    let nearest = if legacy {
        2
    } else {
        match str_attr(o, "nearest_mode").as_deref() {
            None | Some("round_prefer_floor") => 0,
            Some("round_prefer_ceil") => 1,
            Some("floor") => 2,
            Some("ceil") => 3,
            Some(other) => return Err(attr(format!("nearest_mode {other}"))),
        }
    };
    // Scales, or sizes, over the full rank (opset 18's `axes` says which they describe).
    let axes: Vec<usize> = match o.attributes.iter().find(|a| a.name == "axes") {
        Some(a) => a
            .ints
            .iter()
            .map(|&v| crate::program::norm_axis(v, 4))
            .collect::<Option<_>>()
            .ok_or_else(|| attr("axes out of range"))?,
        None => (0..4).collect(),
    };
    let (scales_at, sizes_at) = resize_inputs(&o.op_type, opset, g.node_inputs(id).len());
    let constant = |slot: Option<usize>, what: &str| match slot.map(|s| (s, g.input_outlet(id, s)))
    {
        Some((s, Some(_))) => match g.input_const(id, s) {
            Some(t) => Ok(Some(t.clone())),
            None => Err(attr(format!("{what} computed at run time"))),
        },
        _ => Ok(None),
    };
    let scales = constant(scales_at, "scales")?.filter(|t| t.len() > 0);
    let sizes = constant(sizes_at, "sizes")?.filter(|t| t.len() > 0);
    let mut scale = [1f32; 4];
    if let Some(t) = sizes {
        let v = tensor_to_i64s(&t).ok_or_else(|| attr("sizes are not integers"))?;
        if v.len() != axes.len() {
            return Err(attr("sizes do not match the axes"));
        }
        if str_attr(o, "keep_aspect_ratio_policy").is_some_and(|p| p != "stretch") {
            return Err(attr("keep_aspect_ratio_policy other than stretch"));
        }
        for &a in &axes {
            scale[a] = yd[a] as f32 / xd[a] as f32;
        }
    } else {
        let v = match scales {
            Some(t) => tensor_to_f32s(&t).ok_or_else(|| attr("scales are not floats"))?,
            None if scales_at.is_none() => o
                .attributes
                .iter()
                .find(|a| a.name == "scales")
                .map(|a| a.floats.clone())
                .ok_or_else(|| attr("no scales"))?,
            None => return Err(attr("neither scales nor sizes")),
        };
        if v.len() != axes.len() {
            return Err(attr("scales do not match the axes"));
        }
        for (&a, &s) in axes.iter().zip(&v) {
            scale[a] = s;
        }
    }
    if scale[0] != 1.0 || scale[1] != 1.0 {
        return Err(attr("resizes N or C (only H and W)"));
    }
    if scale[2] <= 0.0 || scale[3] <= 0.0 || !scale.iter().all(|s| s.is_finite()) {
        return Err(attr("scales not positive"));
    }
    if legacy && !linear && (scale[2] < 1.0 || scale[3] < 1.0) {
        return Err(attr("nearest downsampling of Upsample / opset-10 Resize"));
    }
    if yd[2] == 0 || yd[3] == 0 || xd[2] == 0 || xd[3] == 0 {
        return Err(attr("empty tensor"));
    }
    Ok(ResizeSpec {
        scale: [scale[2], scale[3]],
        linear,
        coord,
        nearest,
    })
}

fn check(g: &Graph, id: NodeId) -> std::result::Result<(), FallbackReason> {
    spec(g, id).map(|_| ())
}

fn lower(cx: &mut Lowering, id: NodeId) -> Result<()> {
    let g = cx.g;
    let name = g.node(id).name.as_str();
    let s = spec(g, id).map_err(|r| cuda_err(name, r))?;
    let y = cx.output(id, 0);
    let x = cx.operand(id, 0)?;
    cx.step(
        name,
        Step::Resize {
            x,
            y,
            scale: s.scale,
            linear: s.linear,
            coord: s.coord,
            nearest: s.nearest,
        },
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{accepted_nodes_lower, graph_of, node, reason};
    use super::*;
    use trtc_ir::tract_onnx::pb::AttributeProto;
    use trtc_ir::tract_onnx::prelude::Tensor;
    use trtc_ir::{GraphBuilder, Op, Outlet};

    pub(crate) fn text(name: &str, v: &str) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: 3,
            s: v.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    fn op(op_type: &str, attributes: Vec<AttributeProto>) -> Op {
        Op::Other(OtherOp {
            op_type: op_type.into(),
            domain: String::new(),
            attributes,
        })
    }

    /// `Resize` (opset 13 inputs) of x by constant scales or sizes.
    fn resize(
        b: &mut GraphBuilder,
        x: Outlet,
        scales: Option<&[f32]>,
        sizes: Option<&[i64]>,
        attrs: Vec<AttributeProto>,
    ) -> Outlet {
        let s = scales.map(|v| b.constant("s", Tensor::from_shape(&[v.len()], v).unwrap()));
        let z = sizes.map(|v| b.constant("z", Tensor::from_shape(&[v.len()], v).unwrap()));
        b.op_n("r", op("Resize", attrs), &[Some(x), None, s, z], 1)[0]
    }

    /// Scales, sizes and attributes of a Resize.
    type Case<'a> = (Option<&'a [f32]>, Option<&'a [i64]>, Vec<AttributeProto>);

    #[test]
    fn resizes_of_h_and_w_are_accepted_and_lower() {
        let cases: Vec<Case> = vec![
            // PyTorch's nearest.
            (
                Some(&[1., 1., 2., 2.]),
                None,
                vec![
                    text("coordinate_transformation_mode", "asymmetric"),
                    text("nearest_mode", "floor"),
                ],
            ),
            (None, Some(&[2, 3, 16, 20]), vec![]),
            (None, Some(&[2, 3, 16, 20]), vec![text("mode", "linear")]),
            (
                Some(&[1., 1., 2., 2.]),
                None,
                vec![
                    text("mode", "linear"),
                    text("coordinate_transformation_mode", "pytorch_half_pixel"),
                ],
            ),
            (
                Some(&[1., 1., 0.6, 0.75]),
                None,
                vec![
                    text("mode", "linear"),
                    text("coordinate_transformation_mode", "align_corners"),
                ],
            ),
        ];
        for (scales, sizes, attrs) in cases {
            let mut b = GraphBuilder::new();
            let x = b.input("x", &[2, 3, 7, 9]);
            let y = resize(&mut b, x, scales, sizes, attrs.clone());
            b.output(y);
            let g = b.build().unwrap();
            assert!(
                reason(&g, "r").is_none(),
                "{attrs:?}: {:?}",
                reason(&g, "r")
            );
            assert_eq!(accepted_nodes_lower(&g), 1);
        }
        // Sizes give the scale the coordinates use: 16 / 7 and 20 / 9.
        let mut b = GraphBuilder::new();
        let x = b.input("x", &[2, 3, 7, 9]);
        let y = resize(
            &mut b,
            x,
            None,
            Some(&[2, 3, 16, 20]),
            vec![text("nearest_mode", "ceil")],
        );
        b.output(y);
        let g = b.build().unwrap();
        let s = spec(&g, node(&g, "r")).unwrap();
        assert_eq!(s.scale, [16.0 / 7.0, 20.0 / 9.0]);
        assert_eq!((s.linear, s.coord, s.nearest), (false, 0, 3));
        // Upsample, scales as an input (opset 9) and as an attribute (opset 7).
        let g = graph_of(&[3, 4, 5], |b, x| {
            let s = b.constant("s", Tensor::from_shape(&[4], &[1f32, 1., 2., 3.]).unwrap());
            b.op("u", op("Upsample", vec![]), &[x, s])
        });
        let s = spec(&g, node(&g, "u")).unwrap();
        assert_eq!((s.scale, s.coord, s.nearest), ([2.0, 3.0], 3, 2));
        let scales = AttributeProto {
            name: "scales".into(),
            r#type: 6,
            floats: vec![1., 1., 2., 2.],
            ..Default::default()
        };
        let g = graph_of(&[3, 4, 5], |b, x| {
            b.op(
                "u",
                op("Upsample", vec![scales, text("mode", "linear")]),
                &[x],
            )
        });
        assert_eq!(accepted_nodes_lower(&g), 1);
        // Opset 10's Resize: (X, scales), asymmetric.
        let mut b = GraphBuilder::new();
        let x = b.input("x", &[2, 3, 7, 9]);
        let s = b.constant("s", Tensor::from_shape(&[4], &[1f32, 1., 2., 2.]).unwrap());
        let y = b.op("r", op("Resize", vec![text("mode", "linear")]), &[x, s]);
        b.output(y);
        let mut g = b.build().unwrap();
        g.meta.opset_imports = vec![(String::new(), 10)];
        trtc_ir::infer_shapes(&mut g).unwrap();
        let s = spec(&g, node(&g, "r")).unwrap();
        assert_eq!((s.scale, s.coord, s.linear), ([2.0, 2.0], 3, true));
        assert_eq!(accepted_nodes_lower(&g), 1);
    }

    #[test]
    fn resizes_the_kernel_does_not_run_are_refused_with_a_reason() {
        let refused = |scales: &[f32], attrs: Vec<AttributeProto>, want: &str| {
            let g = graph_of(&[3, 8, 8], |b, x| resize(b, x, Some(scales), None, attrs));
            match reason(&g, "r") {
                Some(FallbackReason::UnsupportedAttribute(d)) if d.contains(want) => {}
                other => panic!("{want}: {other:?}"),
            }
        };
        let two = [1f32, 1., 2., 2.];
        refused(&two, vec![text("mode", "cubic")], "cubic");
        let aa = AttributeProto {
            name: "antialias".into(),
            r#type: 2,
            i: 1,
            ..Default::default()
        };
        refused(
            &[1., 1., 0.5, 0.5],
            vec![text("mode", "linear"), aa],
            "antialias",
        );
        refused(
            &two,
            vec![text("coordinate_transformation_mode", "tf_crop_and_resize")],
            "tf_crop_and_resize",
        );
        refused(&[1., 2., 2., 2.], vec![], "N or C");
        // Sizes that fix the batch of an input whose batch is dynamic.
        let g = graph_of(&[3, 8, 8], |b, x| {
            resize(b, x, None, Some(&[2, 3, 16, 16]), vec![])
        });
        assert!(
            matches!(reason(&g, "r"), Some(FallbackReason::UnsupportedAttribute(d)) if d.contains("N or C"))
        );
        // Scales computed by the graph.
        let g = graph_of(&[3, 8, 8], |b, x| {
            let s = b.constant("s0", Tensor::from_shape(&[4], &two).unwrap());
            let s = b.op("s", Op::Relu, &[s]);
            b.op_n("r", op("Resize", vec![]), &[Some(x), None, Some(s)], 1)[0]
        });
        assert!(reason(&g, "r").is_some());
    }
}
