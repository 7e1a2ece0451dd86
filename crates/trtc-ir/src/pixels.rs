//! Image inputs as they arrive: 8-bit NHWC pixels instead of normalized f32 NCHW.
//!
//! Rule: the graph's 4-D f32 input `x` of shape `[N, 3, H, W]` becomes a u8 input of the
//! same name and shape `[N, H, W, 3]`, followed by plain ONNX ops
//! `Div(Sub(Transpose(Cast(x, to=float), perm=[0,3,1,2]), mean), std)` with `mean` and `std`
//! constants of shape `[1, 3, 1, 1]`, which take the input's place for every node that
//! read it. Each pixel `p` of channel `c` becomes `(float(p) - mean[c]) / std[c]`, exactly
//! as `trtc run --image` normalizes an image on the host, so a model compiled this way
//! computes what the f32 model computes on the host-normalized image.
//!
//! Refused (an error naming the input): no 4-D f32 input, several of them, or one whose
//! dim 1 is not 3 channels; a `std` of 0 or a value that is not finite.

use crate::dtype::DType;
use crate::error::{IrError, Result};
use crate::graph::{Graph, Node, Outlet};
use crate::op::Op;
use crate::shape::{Dim, TensorInfo};
use std::sync::Arc;
use tract_onnx::prelude::Tensor;

/// The ops the rewrite puts after the u8 input, in order.
pub const PIXEL_OPS: [&str; 4] = ["Cast", "Transpose", "Sub", "Div"];

/// Make the graph's image input take 8-bit NHWC pixels (see the module's rule). Returns
/// the input's name.
pub fn u8_nhwc_input(g: &mut Graph, mean: [f32; 3], std: [f32; 3]) -> Result<String> {
    if std.iter().chain(&mean).any(|v| !v.is_finite()) || std.contains(&0.0) {
        return Err(IrError::ImageInput(format!(
            "u8-nhwc input: mean {mean:?} and std {std:?} must be finite, std not 0"
        )));
    }
    let candidates: Vec<Outlet> = g
        .inputs()
        .iter()
        .map(|&id| Outlet::new(id, 0))
        .filter(|&o| {
            let t = g.tensor(o);
            t.dtype == Some(DType::F32) && t.rank() == Some(4)
        })
        .collect();
    let described = || {
        g.inputs()
            .iter()
            .map(|&id| {
                let t = g.tensor(Outlet::new(id, 0));
                format!("`{}` {}", t.name, t.describe())
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let x = match candidates.as_slice() {
        [x] => *x,
        [] => {
            return Err(IrError::ImageInput(format!(
                "u8-nhwc input needs a 4-D f32 image input (NCHW, 3 channels); the model's \
                 inputs are {}",
                described()
            )))
        }
        _ => {
            return Err(IrError::ImageInput(format!(
                "u8-nhwc input needs one 4-D f32 image input; the model has several: {}",
                described()
            )))
        }
    };
    let info = g.tensor(x).clone();
    let shape = info.shape.clone().unwrap_or_default();
    if shape.get(1) != Some(&Dim::Known(3)) {
        return Err(IrError::ImageInput(format!(
            "u8-nhwc input: input `{}` is {}, not NCHW with 3 channels (dim 1 must be 3)",
            info.name,
            info.describe()
        )));
    }
    let uses = g.consumers(x);
    let nhwc = vec![
        shape[0].clone(),
        shape[2].clone(),
        shape[3].clone(),
        shape[1].clone(),
    ];
    g.set_tensor_info(x, TensorInfo::with(info.name.clone(), DType::U8, nhwc));

    let base = info.name.clone();
    let cast = chain_node(
        g,
        &format!("{base}_to_float"),
        Op::Cast { to: DType::F32 },
        x,
    )?;
    let perm = Op::Transpose {
        perm: Some(vec![0, 3, 1, 2]),
    };
    let nchw = chain_node(g, &format!("{base}_to_nchw"), perm, cast)?;
    let sub = chain_node(g, &format!("{base}_minus_mean"), Op::Sub, nchw)?;
    let mean_c = channel_const(g, &format!("{base}_mean"), mean)?;
    g.connect(mean_c, sub.node, 1)?;
    let div = chain_node(g, &format!("{base}_over_std"), Op::Div, sub)?;
    let std_c = channel_const(g, &format!("{base}_std"), std)?;
    g.connect(std_c, div.node, 1)?;
    for (consumer, slot) in uses {
        g.connect(div, consumer, slot)?;
    }
    crate::infer::infer_shapes(g)?;
    g.validate()?;
    Ok(info.name)
}

/// A one-output node named `name` reading `from` at input 0 (of `op`'s required inputs).
fn chain_node(g: &mut Graph, name: &str, op: Op, from: Outlet) -> Result<Outlet> {
    let name = g.unique_name(name);
    let n = op.required_inputs().max(1);
    let id = g.add_node(Node::new(name.clone(), op, n, vec![TensorInfo::new(name)]));
    g.connect(from, id, 0)?;
    Ok(Outlet::new(id, 0))
}

/// A `[1, 3, 1, 1]` f32 constant.
fn channel_const(g: &mut Graph, name: &str, v: [f32; 3]) -> Result<Outlet> {
    let t = Tensor::from_shape(&[1, 3, 1, 1], &v).map_err(IrError::tract)?;
    Ok(g.add_const(name, Arc::new(t)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::GraphBuilder;
    use crate::eval::CpuModel;

    fn conv_model(channels: usize) -> Graph {
        let mut b = GraphBuilder::new();
        let x = b.input_with(
            "image",
            DType::F32,
            vec![
                "N".into(),
                Dim::Known(channels as u64),
                4u64.into(),
                5u64.into(),
            ],
        );
        let w = b.constant("w", crate::tensor::random_uniform(&[2, channels, 3, 3], 1));
        let c = b.op(
            "conv",
            Op::Conv(crate::op::ConvAttrs {
                pads: vec![1, 1, 1, 1],
                kernel_shape: vec![3, 3],
                group: 1,
                ..Default::default()
            }),
            &[x, w],
        );
        b.output(c);
        b.build().unwrap()
    }

    #[test]
    fn the_input_becomes_u8_nhwc_and_the_graph_validates() {
        let mut g = conv_model(3);
        let name = u8_nhwc_input(&mut g, [127.0; 3], [128.0; 3]).unwrap();
        assert_eq!(name, "image");
        let t = g.tensor(Outlet::new(g.inputs()[0], 0));
        assert_eq!(t.name, "image");
        assert_eq!(t.describe(), "u8[N,4,5,3]");
        g.validate().unwrap();
        let ops: Vec<String> = g
            .topo_order()
            .unwrap()
            .into_iter()
            .map(|id| g.node(id).op.op_type().to_string())
            .filter(|o| PIXEL_OPS.contains(&o.as_str()))
            .collect();
        assert_eq!(ops, PIXEL_OPS);
        let conv = g.find_node("conv").unwrap();
        let fed = g.input_info(conv, 0).unwrap();
        assert_eq!(fed.describe(), "f32[N,3,4,5]");
    }

    #[test]
    fn it_computes_the_normalized_f32_model() {
        let f32_model = conv_model(3);
        let mut g = f32_model.clone();
        let (mean, std) = ([120.0, 110.0, 100.0], [60.0, 50.0, 40.0]);
        u8_nhwc_input(&mut g, mean, std).unwrap();
        let pixels: Vec<u8> = (0..2 * 4 * 5 * 3).map(|i| (i * 37 % 256) as u8).collect();
        let mut norm = vec![0f32; pixels.len()];
        for n in 0..2 {
            for h in 0..4 {
                for w in 0..5 {
                    for c in 0..3 {
                        let p = pixels[((n * 4 + h) * 5 + w) * 3 + c] as f32;
                        norm[((n * 3 + c) * 4 + h) * 5 + w] = (p - mean[c]) / std[c];
                    }
                }
            }
        }
        let u8_in = Tensor::from_shape(&[2, 4, 5, 3], &pixels).unwrap();
        let f32_in = Tensor::from_shape(&[2, 3, 4, 5], &norm).unwrap();
        let a = CpuModel::new(&g).unwrap().run(vec![u8_in]).unwrap();
        let b = CpuModel::new(&f32_model)
            .unwrap()
            .run(vec![f32_in])
            .unwrap();
        let (a, b) = (
            a[0].to_plain_array_view::<f32>().unwrap(),
            b[0].to_plain_array_view::<f32>().unwrap(),
        );
        assert_eq!(a.shape(), b.shape());
        for (x, y) in a.iter().zip(b.iter()) {
            assert!((x - y).abs() < 1e-4, "{x} vs {y}");
        }
    }

    #[test]
    fn refuses_inputs_that_are_not_three_channel_images() {
        let mut g = conv_model(1);
        let e = u8_nhwc_input(&mut g, [127.0; 3], [128.0; 3]).unwrap_err();
        assert!(
            e.to_string().contains("input `image` is f32[N,1,4,5]"),
            "{e}"
        );
        let mut b = GraphBuilder::new();
        let x = b.input("v", &[1, 8]);
        let r = b.op("relu", Op::Relu, &[x]);
        b.output(r);
        let mut g = b.build().unwrap();
        let e = u8_nhwc_input(&mut g, [127.0; 3], [128.0; 3]).unwrap_err();
        assert!(e.to_string().contains("`v` f32[1,8]"), "{e}");
        let mut g = conv_model(3);
        assert!(u8_nhwc_input(&mut g, [0.0; 3], [1.0, 0.0, 1.0]).is_err());
    }
}
