//! The optimizer on the real models, through `trtc optimize`, and its bad-input behaviour.

mod common;
use common::*;
use std::collections::HashMap;

fn histogram(path: &std::path::Path) -> HashMap<String, u64> {
    let o = trtc(&["inspect", path.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    v["op_histogram"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, n)| (k.clone(), n.as_u64().unwrap()))
        .collect()
}

#[test]
fn inception_loses_bn_and_aux_head_and_merges_siblings() {
    if !have_inception() {
        return;
    }
    let dir = temp_dir("optinc");
    let out = dir.join("inception_opt.onnx");
    let report = dir.join("report.json");
    let dot = dir.join("g.dot");
    let o = trtc(&[
        "optimize",
        inception().to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--dot",
        dot.to_str().unwrap(),
        "--verify",
    ]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("max relative error"), "{}", stdout(&o));
    let before = histogram(&inception());
    let after = histogram(&out);
    assert_eq!(before["BatchNormalization"], 96);
    assert_eq!(
        after.get("BatchNormalization"),
        None,
        "no BatchNormalization left"
    );
    // 96 convs, 2 in the dead auxiliary head, 19 merged by horizontal fusion
    assert_eq!(before["Conv"], 96);
    assert_eq!(after["Conv"], 96 - 2 - 19, "{after:?}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let pass = |name: &str| {
        r["passes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(pass("bn-folding")["rewrites"], 94);
    assert_eq!(pass("horizontal-fusion")["rewrites"], 19);
    // The nine InceptionA/C/E pool branches (AvgPool 3x3 s1 p1 count_include_pad=1 ->
    // 1x1 conv reducing the channels): conv first, the bias added after the pool.
    assert_eq!(pass("pool-conv-swap")["rewrites"], 9);
    assert_eq!(after["Add"], 9, "the moved biases");
    assert_eq!(after["AveragePool"], 9);
    assert!(
        pass("dead-layers")["rewrites"].as_u64().unwrap() >= 10,
        "the aux head goes"
    );
    for key in ["name", "nodes_before", "nodes_after", "rewrites", "ms"] {
        assert!(
            pass("vertical-fusion").get(key).is_some(),
            "report has {key}"
        );
    }
    assert!(r["verification"]["max_rel"].as_f64().unwrap() <= 1e-4);
    let d = std::fs::read_to_string(&dot).unwrap();
    assert!(d.contains("Conv+BN+Relu"), "fused nodes show their parts");
    assert!(!d.contains("AuxLogits"), "the auxiliary head is gone");
}

#[test]
fn efficientnet_loses_its_shape_arithmetic() {
    let dir = temp_dir("opteff");
    let out = dir.join("e.onnx");
    let o = trtc(&[
        "optimize",
        efficientnet().to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--verify",
    ]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let after = histogram(&out);
    for op in [
        "Shape",
        "ConstantOfShape",
        "Slice",
        "Pad",
        "Gather",
        "Concat",
        "Cast",
        "Transpose",
    ] {
        assert_eq!(after.get(op), None, "{op} left: {after:?}");
    }
    assert_eq!(after["Conv"], 49);
    // and the optimized file still classifies the coffee as espresso
    let o = trtc(&[
        "run",
        out.to_str().unwrap(),
        "--image",
        image("coffee.png").to_str().unwrap(),
    ]);
    assert!(stdout(&o).contains("espresso"), "{}", stdout(&o));
}

#[test]
fn unknown_pass_lists_the_valid_ones() {
    let o = trtc(&[
        "optimize",
        efficientnet().to_str().unwrap(),
        "-o",
        "/tmp/never.onnx",
        "--passes",
        "dead-layers,fold-everything",
    ]);
    assert_clean_failure(
        &o,
        "unknown pass `fold-everything`; valid passes: dead-layers, constant-folding",
    );
}

#[test]
fn passes_can_be_chosen() {
    if !have_inception() {
        return;
    }
    let dir = temp_dir("optsome");
    let out = dir.join("i.onnx");
    let o = trtc(&[
        "optimize",
        inception().to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--passes",
        "dead-layers,bn-folding",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let after = histogram(&out);
    assert_eq!(after.get("BatchNormalization"), None);
    assert_eq!(after["Conv"], 94, "no horizontal fusion asked for");
}

#[test]
fn ops_a_pass_does_not_understand_are_left_alone_with_a_reason() {
    use trtc::ir::tract_onnx::prelude::Tensor;
    use trtc::ir::{ConvAttrs, GraphBuilder, Op};
    let mut b = GraphBuilder::new();
    let x = b.input("x", &[1, 2, 4, 4]);
    let w = b.constant(
        "w",
        trtc::optimizer::verify::random_tensor(&[2, 2, 1, 1], 1),
    );
    let c = b.op(
        "conv",
        Op::Conv(ConvAttrs {
            group: 1,
            ..Default::default()
        }),
        &[x, w],
    );
    // BN statistics in f64: the fold does not handle them and must say so
    let stat = |v: f64| Tensor::from_shape(&[2], &[v, v]).unwrap();
    let (s, bb, m, v) = (
        b.constant("s", stat(1.0)),
        b.constant("b", stat(0.0)),
        b.constant("m", stat(0.0)),
        b.constant("v", stat(1.0)),
    );
    let bn = b.op(
        "bn",
        Op::BatchNormalization {
            epsilon: 1e-5,
            momentum: None,
        },
        &[c, s, bb, m, v],
    );
    let mystery = trtc::ir::op::OtherOp {
        op_type: "MysteryOp".into(),
        domain: "com.example".into(),
        attributes: vec![],
    };
    let k = b.constant("k", trtc::optimizer::verify::random_tensor(&[2], 2));
    let other = b.op("mystery", Op::Other(mystery), &[k]);
    let add = b.op("add", Op::Add, &[bn, other]);
    b.output(add);
    let mut g = b.build().unwrap();
    let report = trtc::optimizer::Pipeline::default_pipeline()
        .run(&mut g)
        .unwrap();
    let skipped = |pass: &str| {
        report
            .passes
            .iter()
            .find(|p| p.name == pass)
            .unwrap()
            .skipped
            .clone()
    };
    assert!(
        g.find_node("bn").is_some() && g.find_node("mystery").is_some(),
        "nothing is dropped"
    );
    let bn_skip = skipped("bn-folding");
    assert!(
        bn_skip
            .iter()
            .any(|s| s.node == "bn" && s.reason.contains("not constant f32")),
        "{bn_skip:?}"
    );
    let cf_skip = skipped("constant-folding");
    assert!(
        cf_skip
            .iter()
            .any(|s| s.node == "mystery" && s.reason.contains("tract cannot evaluate")),
        "{cf_skip:?}"
    );
}
