//! The reduce, softmax, layer norm and LRN families: what their checks accept and refuse
//! (with the reason), and that every accepted form lowers in every precision and layout.

use super::tests::{accepted_nodes_lower, graph_of, node, opts, reason, CONFIGS};
use super::*;
use crate::program::{ReduceOp, Step};
use trtc_ir::tract_onnx::pb::attribute_proto::AttributeType;
use trtc_ir::tract_onnx::pb::AttributeProto;
use trtc_ir::tract_onnx::prelude::{tensor1, Tensor};
use trtc_ir::{subgraph_io, GraphBuilder, Op, Outlet};
use trtc_optimizer::verify::random_tensor;

/// An attribute of an ONNX node.
enum A {
    I(i64),
    F(f32),
    Is(Vec<i64>),
}

/// `op` as the IR keeps it, with attributes.
fn op(op_type: &str, attrs: &[(&str, A)]) -> Op {
    let attributes = attrs
        .iter()
        .map(|(name, a)| {
            let mut p = AttributeProto {
                name: name.to_string(),
                ..Default::default()
            };
            match a {
                A::I(i) => (p.i, p.r#type) = (*i, AttributeType::Int as i32),
                A::F(f) => (p.f, p.r#type) = (*f, AttributeType::Float as i32),
                A::Is(v) => (p.ints, p.r#type) = (v.clone(), AttributeType::Ints as i32),
            }
            p
        })
        .collect();
    Op::Other(trtc_ir::op::OtherOp {
        op_type: op_type.into(),
        domain: String::new(),
        attributes,
    })
}

fn refused_for(g: &Graph, name: &str, why: &str) {
    match reason(g, name) {
        Some(FallbackReason::UnsupportedAttribute(d)) if d.contains(why) => {}
        other => panic!("{name}: {other:?}, not a refusal for `{why}`"),
    }
}

#[test]
fn reductions_over_any_axes_but_the_batch_are_accepted_and_lower() {
    let g = graph_of(&[37, 7, 7], |b, x| {
        let mut acc: Vec<Outlet> = vec![];
        let se = b.op(
            "se_mean",
            op("ReduceMean", &[("axes", A::Is(vec![2, 3]))]),
            &[x],
        );
        acc.push(se);
        let forms: [(&str, Vec<i64>, i64); 9] = [
            ("ReduceMean", vec![-1], 0),
            ("ReduceMax", vec![1, 3], 1),
            ("ReduceMin", vec![2], 0),
            ("ReduceProd", vec![1], 1),
            ("ReduceSumSquare", vec![3, 1], 0),
            ("ReduceL1", vec![2, 3], 1),
            ("ReduceL2", vec![1, 2, 3], 0),
            ("ReduceLogSum", vec![3], 1),
            ("ReduceMax", vec![1, 2, 3], 1),
        ];
        for (k, (t, axes, keep)) in forms.into_iter().enumerate() {
            let attrs = [("axes", A::Is(axes)), ("keepdims", A::I(keep))];
            let y = b.op(&format!("r{k}"), op(t, &attrs), &[x]);
            acc.push(y);
        }
        // ReduceSum at opset 17: axes as an input.
        let axes = b.constant("axes", tensor1(&[1i64]));
        let s = b.op("sum", op("ReduceSum", &[("keepdims", A::I(0))]), &[x, axes]);
        acc.push(s);
        // No axes, noop_with_empty_axes: a copy.
        let noop = op("ReduceMean", &[("noop_with_empty_axes", A::I(1))]);
        acc.push(b.op("noop", noop, &[x]));
        for y in &acc[1..] {
            b.output(*y);
        }
        acc[0]
    });
    assert_eq!(accepted_nodes_lower(&g), 12);
    // The SE mean of an NHWC engine reads x as it is stored: no relayout.
    let id = node(&g, "se_mean");
    let io = subgraph_io(&g, &[id]).unwrap();
    let p = lower_segment(
        &g,
        &[id],
        &io,
        &opts(trtc_engine::Precision::Fp16, Default::default()),
    )
    .unwrap();
    let reduces: Vec<&Step> = p
        .steps
        .iter()
        .filter(|s| !matches!(s, Step::Convert { .. }))
        .collect();
    assert!(matches!(
        reduces.as_slice(),
        [Step::Reduce { axes, op: ReduceOp::Reduce { pre: 0, comb: 0, post: 1, .. }, .. }] if axes == &[2, 3]
    ));
}

#[test]
fn reductions_refused_say_why() {
    let g = graph_of(&[6, 5], |b, x| {
        b.op("batch", op("ReduceSum", &[]), &[x]);
        let a = b.constant("a0", tensor1(&[0i64, 1]));
        b.op("batch2", op("ReduceMax", &[]), &[x, a]);
        let noop = [("noop_with_empty_axes", A::I(1))];
        b.op("l2", op("ReduceL2", &noop), &[x]);
        b.op(
            "odd",
            op("ReduceMean", &[("select_last_index", A::I(1))]),
            &[x],
        )
    });
    refused_for(&g, "batch", "batch");
    // ReduceMax at opset 17 takes its axes as an attribute, not as an input.
    refused_for(&g, "batch2", "opset");
    refused_for(&g, "l2", "noop_with_empty_axes");
    refused_for(&g, "odd", "select_last_index");
    // Opset 18: the axes input of every reduction, the attribute of none.
    let mut g = graph_of(&[6, 5], |b, x| {
        let a = b.constant("a", tensor1(&[-1i64]));
        b.op("input", op("ReduceMax", &[]), &[x, a]);
        b.op("attr", op("ReduceMean", &[("axes", A::Is(vec![1]))]), &[x])
    });
    g.meta.opset_imports = vec![(String::new(), 18)];
    assert_eq!(reason(&g, "input"), None);
    refused_for(&g, "attr", "opset");
}

#[test]
fn softmax_of_every_opset_and_axis_is_accepted_and_lowers() {
    let build = || {
        graph_of(&[6, 5, 7], |b, x| {
            let s1 = b.op("axis1", Op::Softmax { axis: 1 }, &[x]);
            let s2 = b.op("axis2", op("Softmax", &[("axis", A::I(2))]), &[s1]);
            let l = b.op("log", op("LogSoftmax", &[]), &[s2]);
            b.op("log1", op("LogSoftmax", &[("axis", A::I(1))]), &[l])
        })
    };
    let g = build();
    assert_eq!(accepted_nodes_lower(&g), 4);
    // Opset 11: over the axes from `axis` on (default 1): every axis but the batch.
    let mut g = build();
    g.meta.opset_imports = vec![(String::new(), 11)];
    assert_eq!(accepted_nodes_lower(&g), 4);
    let id = node(&g, "log");
    let io = subgraph_io(&g, &[id]).unwrap();
    let p = lower_segment(
        &g,
        &[id],
        &io,
        &opts(trtc_engine::Precision::Fp32, trtc_engine::Layout::Nchw),
    )
    .unwrap();
    assert!(matches!(
        p.steps.as_slice(),
        [Step::Reduce { axes, op: ReduceOp::Softmax { log: true }, .. }] if axes == &[1, 2, 3]
    ));
    // The batch axis, in either form.
    let mut g = graph_of(&[6], |b, x| {
        b.op("old0", op("Softmax", &[("axis", A::I(0))]), &[x])
    });
    g.meta.opset_imports = vec![(String::new(), 11)];
    refused_for(&g, "old0", "batch");
    let g = graph_of(&[6], |b, x| {
        b.op("ls0", op("LogSoftmax", &[("axis", A::I(-2))]), &[x])
    });
    refused_for(&g, "ls0", "batch");
}

fn constant(b: &mut GraphBuilder, name: &str, shape: &[usize], seed: u64) -> Outlet {
    b.constant(name, random_tensor(shape, seed))
}

#[test]
fn layer_and_instance_norms_are_accepted_and_lower_with_their_reasons() {
    let g = graph_of(&[5, 37], |b, x| {
        let (s, bias) = (constant(b, "s", &[37], 1), constant(b, "bias", &[37], 2));
        let ln = b.op("ln", op("LayerNormalization", &[]), &[x, s, bias]);
        let s2 = constant(b, "s2", &[5, 1], 3);
        let attrs = [("axis", A::I(1)), ("epsilon", A::F(1e-3))];
        b.op("ln1", op("LayerNormalization", &attrs), &[ln, s2])
    });
    assert_eq!(accepted_nodes_lower(&g), 2);
    let g = graph_of(&[37, 7, 7], |b, x| {
        let (s, bias) = (constant(b, "s", &[37], 1), constant(b, "bias", &[37], 2));
        b.op("in", op("InstanceNormalization", &[]), &[x, s, bias])
    });
    assert_eq!(accepted_nodes_lower(&g), 1);
    // Over the batch; a scale of the wrong shape; a scale computed at run time.
    let g = graph_of(&[5], |b, x| {
        let s = constant(b, "s", &[5], 1);
        b.op(
            "ln0",
            op("LayerNormalization", &[("axis", A::I(0))]),
            &[x, s],
        );
        let s3 = constant(b, "s3", &[3], 1);
        b.op("shape", op("LayerNormalization", &[]), &[x, s3]);
        b.op("computed", op("LayerNormalization", &[]), &[x, x])
    });
    refused_for(&g, "ln0", "batch");
    refused_for(&g, "shape", "normalized shape");
    refused_for(&g, "computed", "run time");
    // The Mean output used.
    let mut b = GraphBuilder::new();
    let x = b.input_with(
        "x",
        trtc_ir::DType::F32,
        vec![trtc_ir::Dim::Sym("N".into()), trtc_ir::Dim::Known(8)],
    );
    let s = constant(&mut b, "s", &[8], 1);
    let outs = b.op_n("ln", op("LayerNormalization", &[]), &[Some(x), Some(s)], 3);
    b.output(outs[0]).output(outs[1]);
    let g = b.build().unwrap();
    assert!(reason(&g, "ln").is_some());
    // Instance norm of a 2-D input.
    let g = graph_of(&[5], |b, x| {
        let (s, bias) = (constant(b, "s", &[5], 1), constant(b, "bias", &[5], 2));
        b.op("in2", op("InstanceNormalization", &[]), &[x, s, bias])
    });
    assert!(reason(&g, "in2").is_some());
}

#[test]
fn lrn_is_accepted_and_lowers_and_needs_its_size() {
    let g = graph_of(&[37, 7, 7], |b, x| {
        let attrs = [
            ("size", A::I(5)),
            ("alpha", A::F(1e-3)),
            ("beta", A::F(0.5)),
        ];
        let l = b.op("lrn", op("LRN", &attrs), &[x]);
        b.op("lrn2", op("LRN", &[("size", A::I(2))]), &[l])
    });
    assert_eq!(accepted_nodes_lower(&g), 2);
    let g = graph_of(&[37, 7, 7], |b, x| b.op("nosize", op("LRN", &[]), &[x]));
    refused_for(&g, "nosize", "size");
}

/// PyTorch's LayerNorm below opset 17, after the optimizer: every node on the GPU.
#[test]
fn a_decomposed_layer_norm_runs_as_its_steps() {
    let mut g = graph_of(&[5, 16], |b, x| {
        let axes = [("axes", A::Is(vec![-1]))];
        let mean = b.op("mean", op("ReduceMean", &axes), &[x]);
        let d = b.op("sub", Op::Sub, &[x, mean]);
        let two = b.constant("two", Tensor::from(2f32));
        let sq = b.op("pow", op("Pow", &[]), &[d, two]);
        let var = b.op("var", op("ReduceMean", &axes), &[sq]);
        let eps = b.constant("eps", Tensor::from(1e-5f32));
        let ve = b.op("add_eps", Op::Add, &[var, eps]);
        let sd = b.op("sqrt", op("Sqrt", &[]), &[ve]);
        let n = b.op("div", Op::Div, &[d, sd]);
        let w = constant(b, "w", &[16], 1);
        let m = b.op("mul", Op::Mul, &[n, w]);
        let bias = constant(b, "b", &[16], 2);
        b.op("add", Op::Add, &[m, bias])
    });
    trtc_optimizer::Pipeline::default_pipeline()
        .run(&mut g)
        .unwrap();
    let compute = g
        .node_ids()
        .into_iter()
        .filter(|&id| !matches!(g.node(id).op, Op::Input | Op::Const(_)))
        .count();
    assert_eq!(accepted_nodes_lower(&g), compute);
    // The optimizer keeps the nine ops (ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div,
    // Mul, Add): no pattern is matched.
    assert_eq!(compute, 9);
    let _ = CONFIGS;
}
