//! Writing nodes in the form the model's own opset defines.
//!
//! trtc's typed ops keep one form (attributes of the newest opset that has them; inputs
//! where newer opsets moved an attribute to an input), and passes create nodes in that
//! form (horizontal fusion's `Split` with its sizes as an input, a Reshape with
//! `allowzero = 0`). Written back as they are, they would be invalid in an older opset:
//! `onnx.checker` rejects `allowzero` below opset 14, a two-input Split below 13, a Clip
//! with bound inputs below 11. Each rule here rewrites a node proto to its opset's form,
//! leaving attributes at their default out, which every opset reads the same way.

use crate::error::{IrError, Result};
use crate::graph::{Graph, NodeId};
use crate::op::onnx::{attr_float, attr_ints};
use crate::op::{Activation, Op};
use crate::tensor::tensor_to_i64s;
use tract_onnx::pb::{GraphProto, NodeProto};

/// Drop the attribute `name` of `p` when it is the integer `default`.
fn drop_default_int(p: &mut NodeProto, name: &str, default: i64) {
    p.attribute
        .retain(|a| !(a.name == name && a.r#type == 2 && a.i == default));
}

/// Rewrite node `id`'s proto `p` (written in trtc's form) to the form of `opset`.
pub(crate) fn fit_to_opset(g: &Graph, id: NodeId, p: &mut NodeProto, opset: i64) -> Result<()> {
    let node = g.node(id);
    let unfit = |detail: String| IrError::BadNode {
        node: node.name.clone(),
        op: node.op.op_type().to_string(),
        detail,
    };
    match &node.op {
        Op::Reshape { allowzero } => {
            drop_default_int(p, "allowzero", 0);
            if *allowzero != 0 && opset < 14 {
                return Err(unfit(format!(
                    "allowzero=1 does not exist in opset {opset}"
                )));
            }
        }
        Op::MaxPool(_) | Op::AveragePool(_) => {
            drop_default_int(p, "ceil_mode", 0);
            drop_default_int(p, "count_include_pad", 0);
        }
        Op::Split { .. } if opset < 13 && p.input.len() > 1 => {
            let sizes = g
                .node_inputs(id)
                .get(1)
                .copied()
                .flatten()
                .and_then(|o| g.const_value(o))
                .and_then(|t| tensor_to_i64s(t))
                .ok_or_else(|| {
                    unfit(format!(
                        "split sizes computed at run time cannot be written in opset {opset}"
                    ))
                })?;
            p.input.truncate(1);
            p.attribute.push(attr_ints("split", &sizes));
        }
        _ => {}
    }
    Ok(())
}

/// A fused conv's activation written as its own node `p`: below opset 11 Clip takes its
/// bounds as attributes, so the bound initializers `p` reads are dropped from `gp`.
pub(crate) fn fit_activation_to_opset(
    p: &mut NodeProto,
    act: Activation,
    gp: &mut GraphProto,
    opset: i64,
) {
    if let (Activation::Clip { min, max }, true) = (act, opset < 11) {
        let bounds: Vec<String> = p.input.drain(1..).collect();
        gp.initializer.retain(|t| !bounds.contains(&t.name));
        p.attribute.push(attr_float("min", min));
        p.attribute.push(attr_float("max", max));
    }
}

#[cfg(test)]
mod tests {
    use crate::export::to_model_proto;
    use crate::op::onnx::attr_int;
    use crate::op::Op;
    use crate::GraphBuilder;
    use tract_onnx::prelude::tensor1;

    fn attrs_of(m: &tract_onnx::pb::ModelProto, op: &str) -> Vec<String> {
        m.graph
            .iter()
            .flat_map(|g| g.node.iter())
            .filter(|n| n.op_type == op)
            .flat_map(|n| n.attribute.iter().map(|a| a.name.clone()))
            .collect()
    }

    #[test]
    fn reshape_and_pool_defaults_are_left_out() {
        let mut b = GraphBuilder::new();
        let x = b.input("x", &[1, 4, 8, 8]);
        let pool = crate::op::Op::from_onnx(
            "MaxPool",
            "",
            &[
                crate::op::onnx::attr_ints("kernel_shape", &[2, 2]),
                attr_int("ceil_mode", 0),
            ],
            11,
        );
        let p = b.op("pool", pool, &[x]);
        let shape = b.constant("shape", tensor1(&[1i64, -1]));
        let r = b.op("reshape", Op::Reshape { allowzero: 0 }, &[p, shape]);
        b.output(r);
        let mut g = b.build().unwrap();
        g.meta.opset_imports = vec![(String::new(), 11)];
        let m = to_model_proto(&g).unwrap();
        assert!(
            attrs_of(&m, "Reshape").is_empty(),
            "{:?}",
            attrs_of(&m, "Reshape")
        );
        assert_eq!(attrs_of(&m, "MaxPool"), vec!["kernel_shape".to_string()]);
    }

    #[test]
    fn split_sizes_become_an_attribute_below_opset_13() {
        let mut b = GraphBuilder::new();
        let x = b.input("x", &[1, 6, 4, 4]);
        let sizes = b.constant("sizes", tensor1(&[2i64, 4]));
        let s = b.op_n(
            "split",
            Op::Split {
                axis: 1,
                num_outputs: None,
            },
            &[Some(x), Some(sizes)],
            2,
        );
        b.output(s[0]).output(s[1]);
        let mut g = b.build().unwrap();
        for (opset, inputs, attrs) in [(11, 1, vec!["axis", "split"]), (13, 2, vec!["axis"])] {
            g.meta.opset_imports = vec![(String::new(), opset)];
            let m = to_model_proto(&g).unwrap();
            let node = &m.graph.as_ref().unwrap().node[0];
            assert_eq!(node.input.len(), inputs, "opset {opset}");
            let names: Vec<&str> = node.attribute.iter().map(|a| a.name.as_str()).collect();
            assert_eq!(names, attrs, "opset {opset}");
            if opset == 11 {
                assert_eq!(node.attribute[1].ints, vec![2, 4]);
            }
        }
        // A plan of the opset-11 model reads the Split back typed, and its standard
        // export runs on tract (the opset-9 GoogLeNet plan that compiled, then failed:
        // "Split: Rules expect 1 input, node has 2").
        g.meta.opset_imports = vec![(String::new(), 11)];
        let plan = crate::export::to_model_proto_as(&g, crate::export::Flavor::Trtc).unwrap();
        let back = crate::load::from_proto(plan, None).unwrap();
        let split = back.find_node("split").unwrap();
        assert!(
            matches!(back.node(split).op, Op::Split { .. }),
            "{:?}",
            back.node(split).op
        );
        let x = crate::tensor::random_uniform(&[1, 6, 4, 4], 1);
        let y = crate::eval::CpuModel::new(&back)
            .unwrap()
            .run(vec![x])
            .unwrap();
        assert_eq!(y[1].shape(), &[1, 4, 4, 4]);
    }
}
