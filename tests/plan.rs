//! `.trtc` plans: round trip, corrupt files, and a model whose ops the GPU table lacks.

mod common;
use common::*;
use trtc::backend::{
    compile, BackendChoice, CompileOptions, FallbackReason, HybridModel, Plan, SegmentBackend,
};
use trtc::ir::tract_onnx::pb;
use trtc::ir::{load_model, CpuModel};
use trtc::optimizer::verify::{compare, random_tensor};

fn efficientnet_plan(opts: &CompileOptions) -> Plan {
    compile(
        "efficientnet",
        load_model(efficientnet()).unwrap(),
        opts,
        trtc::gpu(),
    )
    .unwrap()
}

#[test]
fn plan_round_trip_runs_the_same() {
    let opts = CompileOptions {
        min_segment_size: 1,
        deny_ops: vec!["Add".into()],
        max_batch_size: 4,
        ..Default::default()
    };
    let plan = efficientnet_plan(&opts);
    let bytes = plan.to_bytes().unwrap();
    let back = Plan::from_bytes(&bytes).unwrap();
    assert_eq!(back.options, opts);
    assert_eq!(back.partition.segments.len(), plan.partition.segments.len());
    assert_eq!(
        back.graph.compute_node_count(),
        plan.graph.compute_node_count()
    );
    let fused = |p: &Plan| {
        p.graph
            .node_ids()
            .into_iter()
            .filter(|&n| matches!(p.graph.node(n).op, trtc::ir::Op::FusedConv(_)))
            .count()
    };
    assert_eq!(fused(&back), fused(&plan), "fused nodes survive the plan");
    let input = random_tensor(&[3, 3, 224, 224], 5);
    let a = HybridModel::new(&plan.graph, &plan.partition, &plan.options, trtc::gpu())
        .unwrap()
        .run(vec![input.clone()])
        .unwrap();
    let b = HybridModel::new(&back.graph, &back.partition, &back.options, trtc::gpu())
        .unwrap()
        .run(vec![input])
        .unwrap();
    assert_eq!(compare(&a, &b).unwrap().0, 0.0);
}

/// Engine payloads (a GPU engine's tactics) travel in the plan byte for byte; a machine
/// whose engines cannot use them (no GPU here) still runs the plan.
#[test]
fn engine_payloads_survive_the_plan() {
    let opts = CompileOptions {
        min_segment_size: 1,
        ..Default::default()
    };
    let mut plan = efficientnet_plan(&opts);
    let id = plan.partition.segments[0].id;
    let payload = trtc::backend::engine::EnginePayload {
        kind: "cuda-tactics".into(),
        bytes: br#"{"device":"no such GPU","instances":[]}"#.to_vec(),
    };
    plan.engines.insert(id, payload.clone());
    let back = Plan::from_bytes(&plan.to_bytes().unwrap()).unwrap();
    assert_eq!(back.engines.len(), 1);
    assert_eq!(back.engines.get(&id), Some(&payload));
    let input = random_tensor(&[1, 3, 224, 224], 5);
    let model = HybridModel::from_plan(&back, trtc::gpu()).unwrap();
    let want = CpuModel::new(&load_model(efficientnet()).unwrap())
        .unwrap()
        .run(vec![input.clone()])
        .unwrap();
    let (_, rel) = compare(&want, &model.run(vec![input]).unwrap()).unwrap();
    assert!(rel < 1e-4, "{rel}");
}

#[test]
fn cli_compile_run_inspect_dot_on_a_plan() {
    let dir = temp_dir("plancli");
    let plan = dir.join("e.trtc");
    let report = dir.join("r.json");
    let dot = dir.join("g.dot");
    let o = trtc(&[
        "compile",
        efficientnet().to_str().unwrap(),
        "-o",
        plan.to_str().unwrap(),
        "--deny-op",
        "Gemm",
        "--report",
        report.to_str().unwrap(),
        "--dot",
        dot.to_str().unwrap(),
        "--min-segment-size",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert!(r["passes"].as_array().unwrap().len() >= 5);
    assert_eq!(r["passes"][0]["name"], "dead-layers");
    let segs = r["segments"].as_array().unwrap();
    assert_eq!(segs[0]["backend"], "gpu");
    assert!(
        segs[0]["original_nodes"].as_u64() > segs[0]["nodes"].as_u64(),
        "fused nodes stand for several"
    );
    assert!(segs[0]["boundary_bytes_batch1"].as_u64().unwrap() > 600_000);
    assert_eq!(r["fallback"][0]["op"], "Gemm");
    assert_eq!(r["fallback"][0]["reason"], "denied by user (--deny-op)");
    let d = std::fs::read_to_string(&dot).unwrap();
    assert!(
        d.contains("subgraph cluster_0") && d.contains("CPU: denied by user"),
        "segments and reasons in DOT"
    );
    let o = trtc(&[
        "run",
        plan.to_str().unwrap(),
        "--image",
        image("coffee.png").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("espresso"));
    assert!(
        stderr(&o).contains("run on the CPU through tract"),
        "says once that GPU segments run on the CPU"
    );
    let o = trtc(&["inspect", plan.to_str().unwrap()]);
    assert!(
        o.status.success() && stdout(&o).contains("CPU fallback (1 nodes)"),
        "{}",
        stdout(&o)
    );
    let o = trtc(&[
        "dot",
        plan.to_str().unwrap(),
        "-o",
        dir.join("p.dot").to_str().unwrap(),
    ]);
    assert!(o.status.success());
}

#[test]
fn backend_cpu_puts_everything_on_the_cpu() {
    let plan = efficientnet_plan(&CompileOptions {
        backend: BackendChoice::Cpu,
        ..Default::default()
    });
    assert_eq!(plan.partition.segments.len(), 1);
    assert_eq!(plan.partition.segments[0].backend, SegmentBackend::Cpu);
    assert!(plan
        .partition
        .fallback
        .iter()
        .all(|f| f.reason == FallbackReason::CpuBackendChosen));
}

#[test]
fn backend_cuda_without_an_engine_builder_is_a_clear_error() {
    let err = compile(
        "m",
        load_model(efficientnet()).unwrap(),
        &CompileOptions {
            backend: BackendChoice::Cuda,
            ..Default::default()
        },
        trtc::gpu(),
    );
    let msg = err.unwrap_err().to_string();
    assert!(msg.contains("backend `cuda` is not available"), "{msg}");
}

fn corrupt(tag: &str, f: impl Fn(&mut Vec<u8>)) -> std::process::Output {
    let dir = temp_dir(tag);
    let mut bytes = efficientnet_plan(&CompileOptions::default())
        .to_bytes()
        .unwrap();
    f(&mut bytes);
    let p = dir.join("bad.trtc");
    std::fs::write(&p, bytes).unwrap();
    trtc(&[
        "run",
        p.to_str().unwrap(),
        "--image",
        image("coffee.png").to_str().unwrap(),
    ])
}

#[test]
fn truncated_plan() {
    assert_clean_failure(
        &corrupt("ptrunc", |b| b.truncate(b.len() / 2)),
        "checksum mismatch",
    );
    assert_clean_failure(
        &corrupt("ptrunc2", |b| b.truncate(30)),
        "header runs past the end",
    );
}

#[test]
fn altered_plan() {
    assert_clean_failure(
        &corrupt("pflip", |b| {
            let n = b.len() / 3;
            b[n] ^= 0x40;
        }),
        "checksum mismatch",
    );
}

#[test]
fn plan_from_another_version() {
    let o = corrupt("pver", |b| {
        // Same length as the real version, so only the checksum needs redoing.
        let from = format!("\"trtc_version\":\"{}\"", env!("CARGO_PKG_VERSION"));
        let to = format!(
            "\"trtc_version\":\"{}\"",
            "9".repeat(env!("CARGO_PKG_VERSION").len())
        );
        let at = b
            .windows(from.len())
            .position(|w| w == from.as_bytes())
            .unwrap();
        b[at..at + to.len()].copy_from_slice(to.as_bytes());
        let n = b.len() - 8;
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &x in &b[..n] {
            h ^= x as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        b[n..].copy_from_slice(&h.to_le_bytes());
    });
    assert_clean_failure(&o, "compiled by trtc 99999, this is trtc");
}

#[test]
fn a_file_with_the_magic_but_garbage() {
    assert_clean_failure(
        &corrupt("pgarb", |b| {
            b.truncate(8);
            b.extend_from_slice(&[0xff; 100]);
        }),
        "plan format",
    );
}

/// x -> Conv -> Relu -> Round (no GPU lowering) -> Conv -> Relu -> Reshape(to [-1, N], from
/// Shape(x)).
fn model_with_unsupported_ops() -> pb::ModelProto {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    let mut input = f32_info("x", &[1, 3, 8, 8]);
    if let Some(pb::type_proto::Value::TensorType(t)) =
        input.r#type.as_mut().and_then(|t| t.value.as_mut())
    {
        t.shape.as_mut().unwrap().dim[0] = Dimension {
            denotation: String::new(),
            value: Some(Value::DimParam("N".into())),
        };
    }
    let w = |name: &str, o: i64, i: i64| {
        f32_initializer(
            name,
            &[o, i, 3, 3],
            &(0..o * i * 9)
                .map(|k| ((k * 37 % 17) as f32 - 8.0) / 20.0)
                .collect::<Vec<_>>(),
        )
    };
    let mut conv1 = node("Conv", &["x", "w1"], &["c1"]);
    conv1
        .attribute
        .push(trtc::ir::tract_onnx::pb::AttributeProto {
            name: "pads".into(),
            r#type: 7,
            ints: vec![1, 1, 1, 1],
            ..Default::default()
        });
    let mut conv2 = node("Conv", &["l", "w2"], &["c2"]);
    conv2.attribute = conv1.attribute.clone();
    let lrn = node("Round", &["r1"], &["l"]);
    let mut gather = node("Gather", &["s", "zero"], &["n"]);
    gather.attribute.push(int_attr("axis", 0));
    let mut cat = node("Concat", &["m1", "n1"], &["target"]);
    cat.attribute.push(int_attr("axis", 0));
    let int64 = |name: &str, dims: &[i64], v: &[i64]| pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 7,
        int64_data: v.to_vec(),
        ..Default::default()
    };
    let mut out = f32_info("y", &[1, 1]);
    if let Some(pb::type_proto::Value::TensorType(t)) =
        out.r#type.as_mut().and_then(|t| t.value.as_mut())
    {
        t.shape = None;
    }
    model(
        vec![
            conv1,
            node("Relu", &["c1"], &["r1"]),
            lrn,
            conv2,
            node("Relu", &["c2"], &["r2"]),
            node("Shape", &["x"], &["s"]),
            gather,
            node("Unsqueeze", &["n", "axes"], &["n1"]),
            cat,
            node("Reshape", &["r2", "target"], &["y"]),
        ],
        vec![input],
        vec![out],
        vec![
            w("w1", 4, 3),
            w("w2", 4, 4),
            int64("zero", &[], &[0]),
            int64("axes", &[1], &[0]),
            int64("m1", &[1], &[-1]),
        ],
    )
}

#[test]
fn unsupported_ops_give_several_segments_with_reasons_and_run_correctly() {
    let g = trtc::ir::from_proto(model_with_unsupported_ops(), None).unwrap();
    let input = random_tensor(&[2, 3, 8, 8], 3);
    let reference = CpuModel::new(&g).unwrap().run(vec![input.clone()]).unwrap();
    assert_eq!(reference[0].shape(), &[256, 2]);
    let plan = compile(
        "lrn",
        g,
        &CompileOptions {
            min_segment_size: 1,
            max_batch_size: 2,
            ..Default::default()
        },
        trtc::gpu(),
    )
    .unwrap();
    let reason = |op: &str| {
        plan.partition
            .fallback
            .iter()
            .find(|f| plan.graph.node(f.node).op.op_type() == op)
            .map(|f| f.reason.clone())
    };
    assert_eq!(reason("Round"), Some(FallbackReason::UnsupportedOp));
    assert_eq!(reason("Shape"), Some(FallbackReason::UnsupportedOp));
    assert!(
        matches!(reason("Reshape"), Some(FallbackReason::DynamicShape(_))),
        "{:?}",
        reason("Reshape")
    );
    let gpu = plan
        .partition
        .segments
        .iter()
        .filter(|s| s.backend == SegmentBackend::Gpu)
        .count();
    assert_eq!(gpu, 2, "conv+relu before the Round, conv+relu after it");
    let back = Plan::from_bytes(&plan.to_bytes().unwrap()).unwrap();
    let out = HybridModel::new(&back.graph, &back.partition, &back.options, trtc::gpu())
        .unwrap()
        .run(vec![input])
        .unwrap();
    let (_, rel) = compare(&reference, &out).unwrap();
    assert!(rel <= 1e-4, "{rel}");
}
