//! Reshape targets computed from the input's own shape.
//!
//! Rule: `Reshape(x, s)` where s is computed at run time from `Shape(x)` (the exporter's
//! `x.view(x.size(0), -1)`) and every dynamic entry of s equals x's dimension at the same
//! position => `Reshape(x, c)` with c a constant holding 0 ("copy this dim") at those
//! positions. The Shape/Gather/Unsqueeze/Concat chain then dies.
//!
//! Rule: `Resize(x, roi, scales, s)` with output sizes s computed at run time (PyTorch's
//! `F.interpolate(size=...)` writes `Concat(Shape(x)[:2], [h, w])`) where every dynamic
//! entry of s is x's own dim at that position and every other entry is known, as is x's
//! dim there => `Resize(x, roi, c)` with constant scales c (1 for x's own dims, h/H
//! otherwise). ONNX defines the scales of a sizes-Resize as exactly these ratios, so the
//! coordinate transform is unchanged.
//!
//! Must not fire: with `allowzero` set (0 would mean a zero-sized dim), or when a dynamic
//! entry is not x's own dim at that position; on a Resize whose f32 scale would not give
//! back the same output size (`floor(H * (h / H)) != h` in f32), or whose input dim is
//! dynamic where the size is not.

use crate::error::Result;
use crate::pass::{Pass, PassOutcome};
use std::collections::HashMap;
use std::sync::Arc;
use trtc_ir::tract_onnx::prelude::tensor1;
use trtc_ir::{shape_values, Dim, Graph, NodeId, Op, Outlet, SymInt};

pub struct ShapeFromInput;

impl Pass for ShapeFromInput {
    fn name(&self) -> &'static str {
        "shape-from-input"
    }

    fn run(&self, g: &mut Graph) -> Result<PassOutcome> {
        let mut out = PassOutcome::default();
        let values = shape_values(g)?;
        for id in g.topo_order()? {
            let Op::Reshape { allowzero } = g.node(id).op else {
                continue;
            };
            let (Some(x), Some(s)) = (g.input_outlet(id, 0), g.input_outlet(id, 1)) else {
                continue;
            };
            if g.const_value(s).is_some() {
                continue;
            }
            let Some(v) = values.get(&s) else { continue };
            let Some(xs) = g.tensor(x).shape.clone() else {
                continue;
            };
            if allowzero != 0 {
                out.skip(g, id, "allowzero is set");
                continue;
            }
            let target: Option<Vec<i64>> = v
                .iter()
                .enumerate()
                .map(|(i, e)| match e {
                    SymInt::Int(k) => Some(*k),
                    SymInt::Sym(name)
                        if xs.get(i) == Some(&Dim::Sym(name.clone())) && name != "?" =>
                    {
                        Some(0)
                    }
                    SymInt::Sym(_) => None,
                })
                .collect();
            let Some(target) = target else {
                out.skip(g, id, "a dynamic target dim is not the input's own dim");
                continue;
            };
            let name = g.node(id).name.clone();
            let c = g.add_const(format!("{name}::shape"), Arc::new(tensor1(&target)));
            g.connect(c, id, 1)?;
            out.rewrites += 1;
        }
        for id in g.topo_order()? {
            if resize_sizes_to_scales(g, id, &values, &mut out)? {
                out.rewrites += 1;
            }
        }
        g.remove_unreachable();
        Ok(out)
    }
}

/// The Resize rule: true when node `id` was rewritten.
fn resize_sizes_to_scales(
    g: &mut Graph,
    id: NodeId,
    values: &HashMap<Outlet, Vec<SymInt>>,
    out: &mut PassOutcome,
) -> Result<bool> {
    let Op::Other(o) = &g.node(id).op else {
        return Ok(false);
    };
    if o.op_type != "Resize" || !o.domain.is_empty() || g.node(id).num_inputs != 4 {
        return Ok(false);
    }
    let (Some(x), Some(sizes)) = (g.input_outlet(id, 0), g.input_outlet(id, 3)) else {
        return Ok(false);
    };
    if g.const_value(sizes).is_some() {
        return Ok(false);
    }
    let (Some(v), Some(xs)) = (values.get(&sizes), g.tensor(x).shape.clone()) else {
        return Ok(false);
    };
    if v.len() != xs.len() {
        return Ok(false);
    }
    let mut scales = vec![];
    for (i, (e, d)) in v.iter().zip(&xs).enumerate() {
        let scale = match (e, d) {
            (SymInt::Sym(name), Dim::Sym(own)) if name == own && name != "?" => 1.0f32,
            (SymInt::Int(k), Dim::Known(n)) if *k > 0 && *n > 0 => {
                let scale = *k as f32 / *n as f32;
                if (*n as f32 * scale).floor() as i64 != *k {
                    out.skip(
                        g,
                        id,
                        format!("size {k} of dim {i} is not exact as an f32 scale"),
                    );
                    return Ok(false);
                }
                scale
            }
            _ => {
                out.skip(g, id, "a size is dynamic and not the input's own dim");
                return Ok(false);
            }
        };
        scales.push(scale);
    }
    let name = g.node(id).name.clone();
    let c = g.add_const(format!("{name}::scales"), Arc::new(tensor1(&scales)));
    g.connect(c, id, 2)?;
    g.disconnect(id, 3);
    let mut op = g.node(id).op.clone();
    if let Op::Other(o) = &mut op {
        // Only the scales are left: the node has three inputs now.
        o.attributes.retain(|a| a.name != "sizes");
    }
    g.set_op(id, op, 3);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::assert_preserves;
    use trtc_ir::tract_onnx::prelude::{tensor0, tensor1};
    use trtc_ir::{DType, GraphBuilder};

    #[test]
    fn view_batch_minus_one_becomes_a_constant() {
        let mut b = GraphBuilder::new();
        let x = b.input_with(
            "x",
            DType::F32,
            vec![Dim::Sym("N".into()), Dim::Known(3), Dim::Known(2)],
        );
        let s = b.op(
            "shape",
            Op::Shape {
                start: None,
                end: None,
            },
            &[x],
        );
        let zero = b.constant("zero", tensor0(0i64));
        let n = b.op("gather", Op::Gather { axis: 0 }, &[s, zero]);
        let axes = b.constant("axes", tensor1(&[0i64]));
        let n1 = b.op("unsq", Op::Unsqueeze, &[n, axes]);
        let minus1 = b.constant("m1", tensor1(&[-1i64]));
        let cat = b.op("cat", Op::Concat { axis: 0 }, &[n1, minus1]);
        let r = b.op("reshape", Op::Reshape { allowzero: 0 }, &[x, cat]);
        b.output(r);
        let g = b.build().unwrap();
        assert_eq!(
            g.tensor(r).shape,
            Some(vec![Dim::Sym("N".into()), Dim::Known(6)])
        );
        let after = assert_preserves(&ShapeFromInput, &g);
        assert_eq!(after.compute_node_count(), 1, "only the Reshape is left");
    }

    fn resize(b: &mut GraphBuilder, x: trtc_ir::Outlet, sizes: trtc_ir::Outlet) -> trtc_ir::Outlet {
        let roi = b.constant("roi", tensor1(&[0f32; 0]));
        let scales = b.constant("scales", tensor1(&[0f32; 0]));
        let op = Op::Other(trtc_ir::op::OtherOp {
            op_type: "Resize".into(),
            domain: String::new(),
            attributes: vec![],
        });
        b.op("resize", op, &[x, roi, scales, sizes])
    }

    /// `F.interpolate(x, size=y.shape[2:])`: sizes = Concat(Shape(x)[:2], Shape(y)[2:]).
    fn interpolate_to(y_hw: [u64; 2]) -> trtc_ir::Graph {
        let mut b = GraphBuilder::new();
        let n = || Dim::Sym("N".into());
        let x = b.input_with(
            "x",
            DType::F32,
            vec![n(), Dim::Known(2), Dim::Known(7), Dim::Known(9)],
        );
        let y = b.input_with(
            "y",
            DType::F32,
            vec![n(), Dim::Known(2), Dim::Known(y_hw[0]), Dim::Known(y_hw[1])],
        );
        let shape = |b: &mut GraphBuilder, t, name: &str| {
            b.op(
                name,
                Op::Shape {
                    start: None,
                    end: None,
                },
                &[t],
            )
        };
        let sx = shape(&mut b, x, "sx");
        let sy = shape(&mut b, y, "sy");
        let c = |b: &mut GraphBuilder, name: &str, v: &[i64]| b.constant(name, tensor1(v));
        let (z, two, end) = (
            c(&mut b, "z", &[0]),
            c(&mut b, "two", &[2]),
            c(&mut b, "end", &[4]),
        );
        let head = b.op("head", Op::Slice, &[sx, z, two]);
        let tail = b.op("tail", Op::Slice, &[sy, two, end]);
        let sizes = b.op("sizes", Op::Concat { axis: 0 }, &[head, tail]);
        let r = resize(&mut b, x, sizes);
        b.output(r);
        b.build().unwrap()
    }

    #[test]
    fn resize_to_another_tensors_size_gets_constant_scales() {
        let g = interpolate_to([16, 20]);
        let after = assert_preserves(&ShapeFromInput, &g);
        assert_eq!(after.compute_node_count(), 1, "only the Resize is left");
        let id = after.find_node("resize").unwrap();
        let scales = after.input_const(id, 2).unwrap();
        let v: Vec<f32> = scales
            .to_plain_array_view::<f32>()
            .unwrap()
            .iter()
            .copied()
            .collect();
        assert_eq!(v, vec![1.0, 1.0, 16.0 / 7.0, 20.0 / 9.0]);
        assert_eq!(
            after.tensor(after.outputs()[0]).shape,
            Some(vec![
                Dim::Sym("N".into()),
                Dim::Known(2),
                Dim::Known(16),
                Dim::Known(20)
            ])
        );
    }
}
