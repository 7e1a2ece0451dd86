//! Reshape targets computed from the input's own shape.
//!
//! Rule: `Reshape(x, s)` where s is computed at run time from `Shape(x)` (the exporter's
//! `x.view(x.size(0), -1)`) and every dynamic entry of s equals x's dimension at the same
//! position => `Reshape(x, c)` with c a constant holding 0 ("copy this dim") at those
//! positions. The Shape/Gather/Unsqueeze/Concat chain then dies.
//!
//! Must not fire: with `allowzero` set (0 would mean a zero-sized dim), or when a dynamic
//! entry is not x's own dim at that position.

use crate::error::Result;
use crate::pass::{Pass, PassOutcome};
use std::sync::Arc;
use trtc_ir::tract_onnx::prelude::tensor1;
use trtc_ir::{shape_values, Dim, Graph, Op, SymInt};

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
        g.remove_unreachable();
        Ok(out)
    }
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
}
