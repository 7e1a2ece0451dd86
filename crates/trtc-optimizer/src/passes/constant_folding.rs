//! Constant folding.
//!
//! Rules:
//! - a node whose inputs are all constants => its outputs, computed by tract, as constants;
//! - `Shape(x)` of a statically shaped x, and any integer shape arithmetic whose value is
//!   fully known (`Gather(Shape(x), 1)` where dim 1 is static) => constants.
//!
//! Must not fire: on nodes with no inputs (generators), on ops tract cannot evaluate (the
//! report says so), on results over 16M elements (they would bloat the model).

use crate::error::Result;
use crate::pass::{Pass, PassOutcome};
use std::sync::Arc;
use trtc_ir::eval::{eval_node, tract_supports};
use trtc_ir::{shape_values, Graph, Outlet, SymInt, Tensor};

pub struct ConstantFolding;

const MAX_FOLDED_ELEMENTS: usize = 16 << 20;

impl Pass for ConstantFolding {
    fn name(&self) -> &'static str {
        "constant-folding"
    }

    fn run(&self, g: &mut Graph) -> Result<PassOutcome> {
        let mut out = PassOutcome::default();
        for id in g.topo_order()? {
            let node = g.node(id);
            if node.op.is_const() || node.op.is_input() {
                continue;
            }
            let inputs = g.node_inputs(id);
            if inputs.iter().all(|i| i.is_none())
                || !inputs.iter().flatten().all(|&o| g.const_value(o).is_some())
            {
                continue;
            }
            if !tract_supports(&node.op) {
                out.skip(g, id, "tract cannot evaluate this op");
                continue;
            }
            // What inference says of the result's size: a constant shape can ask for any.
            let too_large = node.outputs.iter().filter(|t| !t.name.is_empty()).any(|t| {
                t.shape
                    .as_deref()
                    .and_then(trtc_ir::shape::known_shape)
                    .and_then(|s| s.iter().try_fold(1usize, |n, &d| n.checked_mul(d)))
                    .is_none_or(|n| n > MAX_FOLDED_ELEMENTS)
            });
            if too_large {
                out.skip(
                    g,
                    id,
                    "result too large (or of unknown size) to store as a constant",
                );
                continue;
            }
            let args: Vec<Option<Arc<Tensor>>> = inputs
                .iter()
                .map(|i| i.and_then(|o| g.const_value(o).cloned()))
                .collect();
            let values = match eval_node(g, id, &args) {
                Ok(v) => v,
                Err(e) => {
                    out.skip(g, id, format!("evaluation failed: {e}"));
                    continue;
                }
            };
            if values.iter().any(|v| v.len() > MAX_FOLDED_ELEMENTS) {
                out.skip(g, id, "result too large to store as a constant");
                continue;
            }
            let used: Vec<usize> = (0..g.node(id).outputs.len())
                .filter(|&s| !g.node(id).outputs[s].name.is_empty())
                .collect();
            for (slot, value) in used.into_iter().zip(values) {
                let name = g.tensor(Outlet::new(id, slot)).name.clone();
                let c = g.add_const(format!("{name}::folded"), Arc::new(value));
                g.replace_uses(Outlet::new(id, slot), c)?;
            }
            out.rewrites += 1;
        }
        // Integer shape arithmetic whose value is fully known, though its inputs are not all
        // constant (Shape of a static tensor, Gather of a static dim of a dynamic shape).
        let values = shape_values(g)?;
        let mut folded_shapes: Vec<(Outlet, Vec<i64>)> = vec![];
        for (o, v) in values {
            if g.node(o.node).op.is_const()
                || !g.is_used(o)
                || g.tensor(o).dtype != Some(trtc_ir::DType::I64)
            {
                continue;
            }
            let ints: Option<Vec<i64>> = v
                .iter()
                .map(|x| match x {
                    SymInt::Int(i) => Some(*i),
                    SymInt::Sym(_) => None,
                })
                .collect();
            if let Some(ints) = ints {
                folded_shapes.push((o, ints));
            }
        }
        folded_shapes.sort();
        for (o, ints) in folded_shapes {
            let rank0 = g.tensor(o).rank() == Some(0);
            let t = if rank0 && ints.len() == 1 {
                trtc_ir::tract_onnx::prelude::tensor0(ints[0])
            } else {
                trtc_ir::tract_onnx::prelude::tensor1(&ints)
            };
            if trtc_ir::shape::shape_of(t.shape()) != g.tensor(o).shape.clone().unwrap_or_default()
            {
                continue;
            }
            let name = g.tensor(o).name.clone();
            let c = g.add_const(format!("{name}::folded"), Arc::new(t));
            g.replace_uses(o, c)?;
            out.rewrites += 1;
        }
        g.remove_unreachable();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_preserves, random_tensor};
    use trtc_ir::tract_onnx::prelude::tensor1;
    use trtc_ir::Op;
    use trtc_ir::{DType, Dim, GraphBuilder};

    #[test]
    fn folds_constant_subgraphs_and_static_shapes() {
        let mut b = GraphBuilder::new();
        let x = b.input_with(
            "x",
            DType::F32,
            vec![Dim::Sym("N".into()), Dim::Known(2), Dim::Known(3)],
        );
        let c1 = b.constant("c1", random_tensor(&[3], 1));
        let c2 = b.constant("c2", random_tensor(&[3], 2));
        let s = b.op("sum", Op::Add, &[c1, c2]);
        let y = b.op("add", Op::Add, &[x, s]);
        // Reshape to [N, 6] using a shape built from Shape(x): dim 0 dynamic, -1 inferred.
        let shape = b.op(
            "shape",
            Op::Shape {
                start: Some(1),
                end: None,
            },
            &[x],
        );
        let _ = shape;
        let t = b.constant("target", tensor1(&[0i64, -1]));
        let r = b.op("reshape", Op::Reshape { allowzero: 0 }, &[y, t]);
        b.output(r);
        let g = b.build().unwrap();
        let after = assert_preserves(&ConstantFolding, &g);
        assert_eq!(
            after.compute_node_count(),
            2,
            "sum folded; the unused Shape is dead"
        );
    }

    #[test]
    fn shape_of_a_static_tensor_becomes_a_constant() {
        let mut b = GraphBuilder::new();
        let x = b.input("x", &[2, 3, 4]);
        let s = b.op(
            "shape",
            Op::Shape {
                start: None,
                end: None,
            },
            &[x],
        );
        let r = b.op("reshape", Op::Reshape { allowzero: 0 }, &[x, s]);
        b.output(r);
        let g = b.build().unwrap();
        let after = assert_preserves(&ConstantFolding, &g);
        assert!(after
            .node_ids()
            .iter()
            .all(|&id| !matches!(after.node(id).op, Op::Shape { .. })));
    }

    /// Old exporters make weights with `ConstantOfShape`, `Tile` and `Expand` of
    /// constants; they must end up as plain constants, or the Gemm reading them cannot
    /// run on an engine ("B is not constant").
    #[test]
    fn weights_made_by_constant_of_shape_tile_and_expand_are_folded() {
        let mut b = GraphBuilder::new();
        let x = b.input("x", &[2, 4]);
        let shape = b.constant("shape", tensor1(&[4i64, 3]));
        let value = Arc::new(tensor1(&[0.5f32]));
        let w = b.op("cos", Op::ConstantOfShape { value: Some(value) }, &[shape]);
        let row = b.constant("row", random_tensor(&[1, 3], 3));
        let reps = b.constant("reps", tensor1(&[4i64, 1]));
        let tiled = b.op(
            "tile",
            Op::Other(trtc_ir::op::OtherOp {
                op_type: "Tile".into(),
                domain: String::new(),
                attributes: vec![],
            }),
            &[row, reps],
        );
        let bias_shape = b.constant("bias_shape", tensor1(&[3i64]));
        let one = b.constant("one", random_tensor(&[1], 4));
        let bias = b.op(
            "expand",
            Op::Other(trtc_ir::op::OtherOp {
                op_type: "Expand".into(),
                domain: String::new(),
                attributes: vec![],
            }),
            &[one, bias_shape],
        );
        let wsum = b.op("wsum", Op::Add, &[w, tiled]);
        let gemm = b.op(
            "gemm",
            Op::Gemm {
                alpha: 1.0,
                beta: 1.0,
                trans_a: 0,
                trans_b: 0,
            },
            &[x, wsum, bias],
        );
        b.output(gemm);
        let g = b.build().unwrap();
        let after = assert_preserves(&ConstantFolding, &g);
        let gemm = after
            .node_ids()
            .into_iter()
            .find(|&id| matches!(after.node(id).op, Op::Gemm { .. }))
            .unwrap();
        for slot in [1, 2] {
            assert!(
                after.input_const(gemm, slot).is_some(),
                "Gemm input {slot} is not a constant after folding"
            );
        }
        assert_eq!(after.compute_node_count(), 1, "only the Gemm is left");
    }
}
