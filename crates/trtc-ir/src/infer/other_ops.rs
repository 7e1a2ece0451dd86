//! Shapes of standard ONNX ops trtc keeps as `Op::Other` (it has no typed form for them),
//! where the rule is plain: unary elementwise ops keep their input's shape and type;
//! broadcasting ones follow `broadcasting_ops`; the
//! normalizations (`LRN`, `InstanceNormalization`, old-opset `Softmax`, `LogSoftmax`,
//! `LayerNormalization`'s output 0) keep their input's shape; `Reduce*` drop the dims of
//! their axes, or keep them as dims of 1, the axes from the attribute or a constant input;
//! `Tile` and `Expand` follow their constant repeats and target shape; `Resize` and
//! `Upsample` take their sizes (or scales) where those are known at load time;
//! `ConvTranspose` computes its output from its attributes and weights. Any other `Other`
//! op gets unknown shapes, as before (tract's analysis may fill them in).

use super::{broadcast, info, Known, NodeCtx, SymInt};
use crate::dtype::DType;
use crate::error::Result;
use crate::op::OtherOp;
use crate::shape::{Dim, Shape};
use crate::tensor::tensor_to_f32s;
use crate::TensorInfo;
use tract_onnx::pb::AttributeProto;

/// Standard ops whose output has the shape and type of input 0.
pub const UNARY: &[&str] = &[
    "Abs",
    "Celu",
    "Ceil",
    "Elu",
    "Erf",
    "Exp",
    "Floor",
    "Gelu",
    "Hardmax",
    "InstanceNormalization",
    "LRN",
    "Log",
    "LogSoftmax",
    "Mish",
    "Neg",
    "Reciprocal",
    "Selu",
    "Shrink",
    "Sign",
    "Softmax",
    "Softplus",
    "Softsign",
    "Sqrt",
    "ThresholdedRelu",
];

/// Standard ops that normalize their input: output 0 has its shape and type.
pub const NORMALIZING: &[&str] = &[
    "InstanceNormalization",
    "LayerNormalization",
    "LogSoftmax",
    "LRN",
    "Softmax",
];

/// Standard reductions over `axes`.
const REDUCTIONS: &[&str] = &[
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceProd",
    "ReduceSum",
    "ReduceSumSquare",
];

/// Integer attribute `name` of `o`.
fn int_attr(o: &OtherOp, name: &str) -> Option<i64> {
    o.attributes.iter().find(|a| a.name == name).map(|a| a.i)
}

/// The output of a reduction: the axes from the attribute (before opset 18, 13 for
/// ReduceSum) or the constant input 1; none are all of them, or none with
/// `noop_with_empty_axes`.
fn reduction(ctx: &NodeCtx, known: &Known, o: &OtherOp) -> Option<Vec<TensorInfo>> {
    let x = ctx.in_shape(0)?;
    let rank = x.len() as i64;
    let opset = ctx.g.meta.opset();
    let from_input = (o.op_type == "ReduceSum" && opset >= 13) || opset >= 18;
    let axes = if from_input {
        match ctx.outlet(1) {
            Some(a) => known.i64s(Some(a))?,
            None => vec![],
        }
    } else {
        let a = o.attributes.iter().find(|a| a.name == "axes");
        a.map(|a| a.ints.clone()).unwrap_or_default()
    };
    let mut reduced = vec![false; x.len()];
    if axes.is_empty() && int_attr(o, "noop_with_empty_axes") != Some(1) {
        reduced = vec![true; x.len()];
    }
    for a in axes {
        let a = if a < 0 { a + rank } else { a };
        *reduced.get_mut(usize::try_from(a).ok()?)? = true;
    }
    let keep = int_attr(o, "keepdims").unwrap_or(1) != 0;
    let shape = x
        .iter()
        .zip(&reduced)
        .filter(|(_, &r)| keep || !r)
        .map(|(d, &r)| if r { Dim::Known(1) } else { d.clone() })
        .collect();
    Some(vec![info(ctx.in_dt(0), Some(shape))])
}

/// The outputs of `o`, where the rule is known.
pub(super) fn infer(ctx: &NodeCtx, known: &Known, o: &OtherOp) -> Result<Option<Vec<TensorInfo>>> {
    if !o.domain.is_empty() && o.domain != "ai.onnx" {
        return Ok(None);
    }
    match o.op_type.as_str() {
        "Tile" => return Ok(Some(vec![info(ctx.in_dt(0), tile(ctx, known))])),
        "Expand" => return expand(ctx, known).map(|s| Some(vec![info(ctx.in_dt(0), s)])),
        "Resize" | "Upsample" => {
            let shape = resized_shape(ctx, known, o);
            return Ok(shape.map(|s| vec![info(ctx.in_dt(0), Some(s))]));
        }
        "DepthToSpace" | "SpaceToDepth" => {
            let shape = depth_space_shape(ctx, o);
            return Ok(shape.map(|s| vec![info(ctx.in_dt(0), Some(s))]));
        }
        "ConvTranspose" => {
            let shape = conv_transpose_shape(ctx, o);
            return Ok(shape.map(|s| vec![info(ctx.in_dt(0), Some(s))]));
        }
        // The zero point's type (uint8 without one), the input's shape.
        "QuantizeLinear" => {
            let dt = match ctx.input(2) {
                Some(z) => z.dtype,
                None => Some(DType::U8),
            };
            return Ok(Some(vec![info(dt, ctx.in_shape(0).cloned())]));
        }
        // The scale's type, the input's shape.
        "DequantizeLinear" => {
            return Ok(Some(vec![info(ctx.in_dt(1), ctx.in_shape(0).cloned())]));
        }
        _ => {}
    }
    if UNARY.contains(&o.op_type.as_str()) {
        return Ok(Some(ctx.same()));
    }
    if REDUCTIONS.contains(&o.op_type.as_str()) {
        return Ok(reduction(ctx, known, o));
    }
    if NORMALIZING.contains(&o.op_type.as_str()) {
        let mut out = ctx.same();
        // LayerNormalization's Mean and InvStdDev: 1 along the normalized axes, f32
        // (stash_type 1, the only one).
        if let (Some(x), true) = (ctx.in_shape(0), ctx.n_out > 1) {
            let rank = x.len() as i64;
            let axis = int_attr(o, "axis").unwrap_or(-1);
            let axis = if axis < 0 { axis + rank } else { axis }.clamp(0, rank) as usize;
            let stats: Vec<Dim> = x
                .iter()
                .enumerate()
                .map(|(i, d)| if i < axis { d.clone() } else { Dim::Known(1) })
                .collect();
            out.extend((1..ctx.n_out).map(|_| info(Some(DType::F32), Some(stats.clone()))));
        }
        return Ok(Some(out));
    }
    if let Some(outs) = super::broadcasting_ops::infer(ctx, o)? {
        return Ok(Some(outs));
    }
    Ok(None)
}

/// Tile: each dim times its constant repeat count.
fn tile(ctx: &NodeCtx, known: &Known) -> Option<crate::shape::Shape> {
    let x = ctx.in_shape(0)?;
    let reps = known.i64s(ctx.outlet(1))?;
    if reps.len() != x.len() || reps.iter().any(|&r| r < 0) {
        return None;
    }
    Some(
        x.iter()
            .zip(reps)
            .map(|(d, r)| match (d, r) {
                (_, 1) => d.clone(),
                (Dim::Known(v), r) => Dim::Known(v * r as u64),
                _ => super::rules::unknown_dim(),
            })
            .collect(),
    )
}

/// Expand: the input broadcast with the target shape (input 1, symbols allowed).
fn expand(ctx: &NodeCtx, known: &Known) -> Result<Option<crate::shape::Shape>> {
    let (Some(x), Some(target)) = (ctx.in_shape(0), known.ints(ctx.outlet(1))) else {
        return Ok(None);
    };
    let target: Vec<Dim> = target
        .into_iter()
        .map(|d| match d {
            SymInt::Int(i) if i >= 0 => Dim::Known(i as u64),
            SymInt::Int(_) => super::rules::unknown_dim(),
            SymInt::Sym(s) => Dim::Sym(s),
        })
        .collect();
    broadcast(x, &target).map(Some).map_err(|e| ctx.err(e))
}

/// DepthToSpace: `[n, c, h, w]` to `[n, c / b², h * b, w * b]`; SpaceToDepth the
/// reverse (channels and spatial dims known, divisible).
fn depth_space_shape(ctx: &NodeCtx, o: &OtherOp) -> Option<Shape> {
    let x = ctx.in_shape(0)?;
    let b = attr(o, "blocksize")?.i;
    let [n, Dim::Known(c), Dim::Known(h), Dim::Known(w)] = &x[..] else {
        return None;
    };
    if b < 1 {
        return None;
    }
    let (b, bb) = (b as u64, (b * b) as u64);
    let out = if o.op_type == "DepthToSpace" {
        (c % bb == 0).then(|| [c / bb, h * b, w * b])?
    } else {
        (h % b == 0 && w % b == 0).then(|| [c * bb, h / b, w / b])?
    };
    let mut s = vec![n.clone()];
    s.extend(out.map(Dim::Known));
    Some(s)
}

/// Attribute `name` of `o`.
fn attr<'a>(o: &'a OtherOp, name: &str) -> Option<&'a AttributeProto> {
    o.attributes.iter().find(|a| a.name == name)
}

/// Where the scales and sizes of a Resize or Upsample are: (scales input, sizes input),
/// by the op and the model's opset (`Upsample`-7 holds its scales as an attribute).
pub fn resize_inputs(op_type: &str, opset: i64, n_inputs: usize) -> (Option<usize>, Option<usize>) {
    match op_type {
        "Upsample" => ((n_inputs > 1).then_some(1), None),
        _ if opset <= 10 => (Some(1), None),
        _ => (Some(2), Some(3)),
    }
}

/// A Resize's or Upsample's output: the input with each resized axis `floor(len * scale)`
/// (an integer scale multiplies exactly, as tract does, which keeps a symbolic batch
/// of scale 1), or the sizes given. `None` where the scales or sizes are unknown here.
fn resized_shape(ctx: &NodeCtx, known: &Known, o: &OtherOp) -> Option<Shape> {
    let x = ctx.in_shape(0)?;
    let rank = x.len();
    let (scales_at, sizes_at) = resize_inputs(&o.op_type, ctx.g.meta.opset(), ctx.ins.len());
    // Opset 18's `axes`: the axes scales and sizes describe (all of them by default).
    let axes: Vec<usize> = match attr(o, "axes") {
        Some(a) => a
            .ints
            .iter()
            .map(|&v| super::rules::norm_axis(v, rank))
            .collect::<Option<_>>()?,
        None => (0..rank).collect(),
    };
    let policy = attr(o, "keep_aspect_ratio_policy")
        .map(|a| a.s.as_slice())
        .unwrap_or(b"stretch");
    if let Some(sizes) = sizes_at.and_then(|s| known.ints(ctx.outlet(s))) {
        if !sizes.is_empty() {
            if sizes.len() != axes.len() || policy != b"stretch" {
                return None;
            }
            let mut shape = x.clone();
            for (&a, v) in axes.iter().zip(sizes) {
                shape[a] = match v {
                    SymInt::Int(v) => Dim::Known(u64::try_from(v).ok()?),
                    SymInt::Sym(s) => Dim::Sym(s),
                };
            }
            return Some(shape);
        }
    }
    let scales = match scales_at {
        Some(s) => tensor_to_f32s(known.values.get(&ctx.outlet(s)?)?)?,
        None => attr(o, "scales")?.floats.clone(),
    };
    if scales.len() != axes.len() {
        return None;
    }
    let mut shape = x.clone();
    for (&a, &s) in axes.iter().zip(&scales) {
        shape[a] = match &x[a] {
            _ if s == 1.0 => x[a].clone(),
            Dim::Known(len) if s.round() == s && s > 0.0 => Dim::Known(len * s as u64),
            Dim::Known(len) if s > 0.0 => Dim::Known((*len as f32 * s) as u64),
            _ => return None,
        };
    }
    Some(shape)
}

/// A 2-D (or N-D) ConvTranspose's output `[N, W[1] * group, ..]`, each spatial length
/// `stride * (in - 1) + output_padding + (kernel - 1) * dilation + 1 - pads`, `in * stride`
/// under SAME auto_pad, or `output_shape` where given. `None` where a length is unknown.
fn conv_transpose_shape(ctx: &NodeCtx, o: &OtherOp) -> Option<Shape> {
    let (x, w) = (ctx.in_shape(0)?, ctx.in_shape(1)?);
    if x.len() < 3 || w.len() != x.len() {
        return None;
    }
    let n = x.len() - 2;
    let ints = |name: &str, default: i64, len: usize| -> Option<Vec<i64>> {
        match attr(o, name) {
            Some(a) if a.ints.len() == len => Some(a.ints.clone()),
            Some(_) => None,
            None => Some(vec![default; len]),
        }
    };
    let group = attr(o, "group").map(|a| a.i).unwrap_or(1);
    let channels = match &w[1] {
        Dim::Known(c) if group >= 1 => Dim::Known(c * group as u64),
        _ => return None,
    };
    let mut shape = vec![x[0].clone(), channels];
    if let Some(a) = attr(o, "output_shape") {
        let spatial = a.ints.get(a.ints.len().checked_sub(n)?..)?;
        for &v in spatial {
            shape.push(Dim::Known(u64::try_from(v).ok()?));
        }
        return Some(shape);
    }
    let kernel: Vec<i64> = match attr(o, "kernel_shape") {
        Some(a) => a.ints.clone(),
        None => w[2..]
            .iter()
            .map(|d| d.known().map(|v| v as i64))
            .collect::<Option<_>>()?,
    };
    let (strides, dilations) = (ints("strides", 1, n)?, ints("dilations", 1, n)?);
    let (pads, out_pad) = (ints("pads", 0, 2 * n)?, ints("output_padding", 0, n)?);
    let auto_pad = attr(o, "auto_pad")
        .map(|a| a.s.as_slice())
        .unwrap_or(b"NOTSET");
    if kernel.len() != n {
        return None;
    }
    for i in 0..n {
        let len = x[2 + i].known()? as i64;
        let out = match auto_pad {
            b"SAME_UPPER" | b"SAME_LOWER" => len * strides[i],
            b"VALID" => strides[i] * (len - 1) + out_pad[i] + (kernel[i] - 1) * dilations[i] + 1,
            _ => {
                strides[i] * (len - 1) + out_pad[i] + (kernel[i] - 1) * dilations[i] + 1
                    - pads[i]
                    - pads[i + n]
            }
        };
        shape.push(Dim::Known(u64::try_from(out).ok().filter(|&v| v > 0)?));
    }
    Some(shape)
}

#[cfg(test)]
mod tests {
    use crate::op::{Op, OtherOp};
    use crate::shape::Dim;
    use crate::{DType, GraphBuilder, Outlet};
    use tract_onnx::pb::AttributeProto;
    use tract_onnx::prelude::Tensor;

    fn other(op: &str, attributes: Vec<AttributeProto>) -> Op {
        Op::Other(OtherOp {
            op_type: op.into(),
            domain: String::new(),
            attributes,
        })
    }

    fn ints(name: &str, v: &[i64]) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: 7,
            ints: v.to_vec(),
            ..Default::default()
        }
    }

    /// The shape inferred for what `f` builds on an input `[N, dims..]`.
    fn shape_of(
        dims: &[u64],
        f: impl FnOnce(&mut GraphBuilder, Outlet) -> Outlet,
    ) -> Option<Vec<Dim>> {
        let mut b = GraphBuilder::new();
        let mut shape = vec![Dim::Sym("N".into())];
        shape.extend(dims.iter().map(|&d| Dim::Known(d)));
        let x = b.input_with("x", DType::F32, shape);
        let y = f(&mut b, x);
        b.output(y);
        let g = b.build().unwrap();
        g.tensor(y).shape.clone()
    }

    fn dims(v: &[u64]) -> Option<Vec<Dim>> {
        let mut s = vec![Dim::Sym("N".into())];
        s.extend(v.iter().map(|&d| Dim::Known(d)));
        Some(s)
    }

    #[test]
    fn resize_and_upsample_shapes_come_from_scales_or_sizes() {
        // Scales (no roi): integer scales keep the batch symbol; 7 * 1.5 floors to 10.
        for (scales, want) in [
            ([1f32, 1., 2., 2.], [3, 14, 18]),
            ([1., 1., 1.5, 0.5], [3, 10, 4]),
        ] {
            let got = shape_of(&[3, 7, 9], |b, x| {
                let s = b.constant("s", Tensor::from_shape(&[4], &scales).unwrap());
                b.op_n("r", other("Resize", vec![]), &[Some(x), None, Some(s)], 1)[0]
            });
            assert_eq!(got, dims(&want), "scales {scales:?}");
        }
        // Sizes computed from the input's shape: the batch symbol survives.
        let got = shape_of(&[3, 7, 9], |b, x| {
            let sh = b.op(
                "sh",
                Op::Shape {
                    start: None,
                    end: Some(2),
                },
                &[x],
            );
            let hw = b.constant("hw", Tensor::from_shape(&[2], &[16i64, 20]).unwrap());
            let sizes = b.op("sizes", Op::Concat { axis: 0 }, &[sh, hw]);
            b.op_n(
                "r",
                other("Resize", vec![]),
                &[Some(x), None, None, Some(sizes)],
                1,
            )[0]
        });
        assert_eq!(got, dims(&[3, 16, 20]));
        // Opset 18's axes: sizes of H and W only.
        let got = shape_of(&[3, 7, 9], |b, x| {
            let sizes = b.constant("sz", Tensor::from_shape(&[2], &[5i64, 6]).unwrap());
            let op = other("Resize", vec![ints("axes", &[2, 3])]);
            b.op_n("r", op, &[Some(x), None, None, Some(sizes)], 1)[0]
        });
        assert_eq!(got, dims(&[3, 5, 6]));
        // Upsample-9 (scales input) and Upsample-7 (scales attribute).
        let got = shape_of(&[3, 7, 9], |b, x| {
            let s = b.constant("s", Tensor::from_shape(&[4], &[1f32, 1., 2., 3.]).unwrap());
            b.op("u", other("Upsample", vec![]), &[x, s])
        });
        assert_eq!(got, dims(&[3, 14, 27]));
        let scales = AttributeProto {
            name: "scales".into(),
            r#type: 6,
            floats: vec![1., 1., 2., 2.],
            ..Default::default()
        };
        let got = shape_of(&[3, 7, 9], |b, x| {
            b.op("u", other("Upsample", vec![scales]), &[x])
        });
        assert_eq!(got, dims(&[3, 14, 18]));
    }

    #[test]
    fn conv_transpose_shapes_follow_onnx() {
        let ct = |attrs: Vec<AttributeProto>, w: [usize; 4]| {
            shape_of(&[8, 5, 5], |b, x| {
                let w = b.constant("w", Tensor::zero::<f32>(&w).unwrap());
                b.op("ct", other("ConvTranspose", attrs), &[x, w])
            })
        };
        // U-Net's 2x2 stride 2.
        assert_eq!(
            ct(vec![ints("strides", &[2, 2])], [8, 4, 2, 2]),
            dims(&[4, 10, 10])
        );
        // DCGAN's 4x4 stride 2 pad 1.
        let a = vec![ints("strides", &[2, 2]), ints("pads", &[1, 1, 1, 1])];
        assert_eq!(ct(a, [8, 3, 4, 4]), dims(&[3, 10, 10]));
        // 3x3 stride 2 pad 1 output_padding 1, two groups: 2 * 4 + 1 + 3 - 2 = 10.
        let a = vec![
            ints("strides", &[2, 2]),
            ints("pads", &[1, 1, 1, 1]),
            ints("output_padding", &[1, 1]),
            AttributeProto {
                name: "group".into(),
                r#type: 2,
                i: 2,
                ..Default::default()
            },
        ];
        assert_eq!(ct(a, [8, 3, 3, 3]), dims(&[6, 10, 10]));
        // output_shape given: taken as is.
        let a = vec![ints("strides", &[2, 2]), ints("output_shape", &[11, 11])];
        assert_eq!(ct(a, [8, 4, 3, 3]), dims(&[4, 11, 11]));
    }
}

#[cfg(test)]
#[path = "other_ops_reduction_tests.rs"]
mod reduction_tests;
