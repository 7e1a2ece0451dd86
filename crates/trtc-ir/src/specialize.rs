//! Specialization: the graph for concrete input shapes (TF-TRT's `is_dynamic_op`).
//!
//! A model whose inputs have dynamic dims past the batch (`f32[N,3,?,?]`) cannot be
//! lowered as it is: every shape downstream is unknown. [`specialize`] fixes each input's
//! non-batch dims to the sizes that arrived and infers every tensor again, so shape
//! arithmetic (`Shape -> Gather -> Concat -> Reshape`, Resize sizes) becomes constant for
//! the optimizer to fold. The batch (dim 0) stays symbolic: one specialization serves
//! every batch size, as engines already do.
//!
//! Unless the shape arithmetic reads the batch too (a transformer's attention reshapes
//! `[N, 197, 768]` to `[197, N*12, 64]`): [`reads_symbolic_shape`] finds a `Shape` node
//! still reading a symbolic dim once the rest is folded, and such a graph is specialized
//! with its batch fixed as well ([`specialize_batch_too`]), one engine per batch size, as
//! TF-TRT's `is_dynamic_op` builds them.

use crate::error::{IrError, Result};
use crate::graph::{Graph, Outlet};
use crate::shape::{shape_of, shape_to_string, Dim, Shape, TensorInfo};

/// Does any input have a dynamic dim past the batch, or no known rank? Such a graph is
/// specialized for the shapes that arrive before its engines are built.
pub fn has_dynamic_dims(g: &Graph) -> bool {
    g.inputs()
        .iter()
        .any(|&i| input_dynamic_dims(g.tensor(Outlet::new(i, 0))))
}

fn input_dynamic_dims(t: &TensorInfo) -> bool {
    match &t.shape {
        None => true,
        Some(s) => s.iter().skip(1).any(|d| d.known().is_none()),
    }
}

/// Does a `Shape` node read a tensor whose shape is unknown or has a symbolic dim? After
/// the optimizer has folded what the known dims allow, what remains is shape arithmetic
/// on the symbolic ones (the batch), which engines cannot run.
pub fn reads_symbolic_shape(g: &Graph) -> bool {
    g.node_ids().into_iter().any(|id| {
        matches!(g.node(id).op, crate::op::Op::Shape { .. })
            && g.input_outlet(id, 0)
                .is_some_and(|o| match &g.tensor(o).shape {
                    None => true,
                    Some(s) => s.iter().any(|d| d.known().is_none()),
                })
    })
}

/// Must `g` be specialized for the shapes that arrive before engines are built: dynamic
/// dims past the batch, or shape arithmetic on the (symbolic) batch?
pub fn needs_specialization(g: &Graph) -> bool {
    has_dynamic_dims(g) || reads_symbolic_shape(g)
}

/// The key of a specialization: each input's dims past the batch, `x:3x640x640`, joined
/// by `,`. Inputs in graph order; shapes as they arrive (already checked against the
/// graph's inputs). With `batch_too` (a graph specialized by [`specialize_batch_too`]),
/// every dim: `x:1x3x224x224`.
pub fn shape_key(g: &Graph, shapes: &[Vec<usize>], batch_too: bool) -> String {
    let skip = usize::from(!batch_too);
    g.inputs()
        .iter()
        .zip(shapes)
        .map(|(&i, s)| {
            let dims: Vec<String> = s.iter().skip(skip).map(|d| d.to_string()).collect();
            format!("{}:{}", g.tensor(Outlet::new(i, 0)).name, dims.join("x"))
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A copy of `g` with each input's dims past the batch fixed to `shapes` (one per input,
/// in graph order; dim 0 of each stays as the graph has it) and every other tensor's
/// shape inferred again. Errors name the input whose shape does not fit.
pub fn specialize(g: &Graph, shapes: &[Vec<usize>]) -> Result<Graph> {
    specialize_dims(g, shapes, false)
}

/// [`specialize`] with each input's batch fixed too: every shape in the graph is then
/// concrete, for shape arithmetic that reads the batch.
pub fn specialize_batch_too(g: &Graph, shapes: &[Vec<usize>]) -> Result<Graph> {
    specialize_dims(g, shapes, true)
}

fn specialize_dims(g: &Graph, shapes: &[Vec<usize>], batch_too: bool) -> Result<Graph> {
    if shapes.len() != g.inputs().len() {
        return Err(IrError::InputMismatch {
            name: "(inputs)".into(),
            expected: format!("{} inputs", g.inputs().len()),
            given: format!("{}", shapes.len()),
        });
    }
    let mut s = g.clone();
    for (&id, given) in g.inputs().iter().zip(shapes) {
        let o = Outlet::new(id, 0);
        let info = g.tensor(o).clone();
        let mismatch = || IrError::InputMismatch {
            name: info.name.clone(),
            expected: info.describe(),
            given: shape_to_string(&shape_of(given)),
        };
        let shape: Shape = match &info.shape {
            None => shape_of(given),
            Some(declared) => {
                if declared.len() != given.len() {
                    return Err(mismatch());
                }
                let mut out = Vec::with_capacity(given.len());
                for (pos, (d, &n)) in declared.iter().zip(given).enumerate() {
                    match d {
                        Dim::Known(k) if *k as usize != n => return Err(mismatch()),
                        Dim::Known(_) => out.push(d.clone()),
                        Dim::Sym(_) if pos == 0 && !batch_too => out.push(d.clone()),
                        Dim::Sym(_) => out.push(Dim::Known(n as u64)),
                    }
                }
                out
            }
        };
        s.set_tensor_info(
            o,
            TensorInfo {
                shape: Some(shape),
                ..info.clone()
            },
        );
    }
    // Every shape below the inputs was inferred from the dynamic ones: forget them all
    // (dtypes stay), so nothing symbolic survives where the sizes are now known.
    for id in s.node_ids() {
        let node = s.node(id);
        if node.op.is_input() || node.op.is_const() {
            continue;
        }
        for slot in 0..node.outputs.len() {
            let o = Outlet::new(id, slot);
            let mut t = s.tensor(o).clone();
            if !t.name.is_empty() {
                t.shape = None;
                s.set_tensor_info(o, t);
            }
        }
    }
    crate::infer::infer_shapes(&mut s)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;
    use crate::op::Op;
    use crate::GraphBuilder;

    fn dynamic_hw() -> Graph {
        let mut b = GraphBuilder::new();
        let x = b.input_with(
            "x",
            DType::F32,
            vec!["N".into(), 3u64.into(), "H".into(), "W".into()],
        );
        let y = b.op("relu", Op::Relu, &[x]);
        b.output(y);
        b.build().unwrap()
    }

    #[test]
    fn fixes_the_dims_past_the_batch_and_infers_again() {
        let g = dynamic_hw();
        assert!(has_dynamic_dims(&g));
        let s = specialize(&g, &[vec![2, 3, 64, 48]]).unwrap();
        assert!(!has_dynamic_dims(&s));
        assert_eq!(
            s.tensor(s.outputs()[0]).describe(),
            "f32[N,3,64,48]",
            "the batch stays symbolic, H and W are known"
        );
        assert_eq!(shape_key(&g, &[vec![2, 3, 64, 48]], false), "x:3x64x48");
        let s = specialize_batch_too(&g, &[vec![2, 3, 64, 48]]).unwrap();
        assert_eq!(s.tensor(s.outputs()[0]).describe(), "f32[2,3,64,48]");
        assert_eq!(shape_key(&g, &[vec![2, 3, 64, 48]], true), "x:2x3x64x48");
    }

    /// `Reshape(x, Concat(Shape(x)[0], -1))`: the batch read as data.
    fn flatten_by_batch() -> Graph {
        let mut b = GraphBuilder::new();
        let x = b.input_with("x", DType::F32, vec!["N".into(), 3u64.into(), 4u64.into()]);
        let shape = b.op(
            "shape",
            Op::Shape {
                start: Some(0),
                end: Some(1),
            },
            &[x],
        );
        let rest = b.constant("rest", tract_onnx::prelude::tensor1(&[-1i64]));
        let target = b.op("target", Op::Concat { axis: 0 }, &[shape, rest]);
        let y = b.op("flat", Op::Reshape { allowzero: 0 }, &[x, target]);
        b.output(y);
        b.build().unwrap()
    }

    #[test]
    fn shape_arithmetic_on_the_batch_needs_the_batch_fixed() {
        let g = flatten_by_batch();
        assert!(!has_dynamic_dims(&g), "static past the batch");
        assert!(reads_symbolic_shape(&g));
        assert!(needs_specialization(&g));
        let s = specialize_batch_too(&g, &[vec![5, 3, 4]]).unwrap();
        assert!(
            !reads_symbolic_shape(&s),
            "every shape is known once the batch is"
        );
        assert!(!needs_specialization(&dynamic_hw_specialized()));
    }

    fn dynamic_hw_specialized() -> Graph {
        specialize(&dynamic_hw(), &[vec![1, 3, 8, 8]]).unwrap()
    }

    #[test]
    fn a_shape_that_does_not_fit_names_the_input() {
        let g = dynamic_hw();
        let e = specialize(&g, &[vec![1, 4, 64, 64]])
            .unwrap_err()
            .to_string();
        assert!(e.contains("`x`") || e.contains("x"), "{e}");
        assert!(specialize(&g, &[vec![1, 3, 64]]).is_err(), "rank");
        assert!(specialize(&g, &[]).is_err(), "input count");
    }
}
