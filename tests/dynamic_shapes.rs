//! Models whose inputs have dynamic dims past the batch (TF-TRT's `is_dynamic_op`): engines
//! built per input shape, ahead of time with `--shapes` or when a shape first arrives;
//! results equal to running the model as it is; and bad shapes refused clearly.
//!
//! The model: `x: f32[N,3,H,W]` -> conv 3x3 + relu -> conv 3x3 stride 2 + relu -> Resize
//! back to x's own H and W (sizes computed at run time from `Shape(x)`, as PyTorch's
//! `F.interpolate(size=x.shape[2:])` exports) -> + the first conv's output.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use trtc::backend::{compile, tune_profiles, CompileOptions, HybridModel, Plan};
use trtc::ir::op::OtherOp;
use trtc::ir::tract_onnx::prelude::tensor1;
use trtc::ir::{ConvAttrs, DType, Graph, GraphBuilder, Op, Tensor};

fn dynamic_model() -> Graph {
    let mut b = GraphBuilder::new();
    let x = b.input_with(
        "x",
        DType::F32,
        vec!["N".into(), 3u64.into(), "H".into(), "W".into()],
    );
    let conv = |b: &mut GraphBuilder, x, cin: usize, stride: i64, seed: u64| {
        let w = b.constant(
            &format!("w{seed}"),
            trtc::ir::tensor::random_uniform(&[8, cin, 3, 3], seed),
        );
        let attrs = ConvAttrs {
            kernel_shape: vec![3, 3],
            pads: vec![1, 1, 1, 1],
            strides: vec![stride, stride],
            group: 1,
            ..Default::default()
        };
        let c = b.op(&format!("conv{seed}"), Op::Conv(attrs), &[x, w]);
        b.op(&format!("relu{seed}"), Op::Relu, &[c])
    };
    let a = conv(&mut b, x, 3, 1, 1);
    let d = conv(&mut b, a, 8, 2, 2);
    let shape_d = b.op(
        "shape_d",
        Op::Shape {
            start: None,
            end: None,
        },
        &[d],
    );
    let shape_x = b.op(
        "shape_x",
        Op::Shape {
            start: None,
            end: None,
        },
        &[x],
    );
    let c = |b: &mut GraphBuilder, name: &str, v: &[i64]| b.constant(name, tensor1(v));
    let (zero, two, four) = (
        c(&mut b, "zero", &[0]),
        c(&mut b, "two", &[2]),
        c(&mut b, "four", &[4]),
    );
    let nc = b.op("nc", Op::Slice, &[shape_d, zero, two]);
    let hw = b.op("hw", Op::Slice, &[shape_x, two, four]);
    let sizes = b.op("sizes", Op::Concat { axis: 0 }, &[nc, hw]);
    let roi = b.constant("roi", tensor1(&[0f32; 0]));
    let scales = b.constant("scales", tensor1(&[0f32; 0]));
    let resize = Op::Other(OtherOp {
        op_type: "Resize".into(),
        domain: String::new(),
        attributes: vec![
            string_attr("mode", "nearest"),
            string_attr("coordinate_transformation_mode", "asymmetric"),
            string_attr("nearest_mode", "floor"),
        ],
    });
    let up = b.op("up", resize, &[d, roi, scales, sizes]);
    let y = b.op("sum", Op::Add, &[up, a]);
    b.output(y);
    b.build().unwrap()
}

fn string_attr(name: &str, v: &str) -> trtc::ir::tract_onnx::pb::AttributeProto {
    trtc::ir::tract_onnx::pb::AttributeProto {
        name: name.into(),
        r#type: 3,
        s: v.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn write_dynamic_model(dir: &Path) -> PathBuf {
    let proto = trtc::ir::export::to_model_proto(&dynamic_model()).unwrap();
    write_model(dir, "dynamic.onnx", &proto)
}

fn input(shape: &[usize], seed: u64) -> Tensor {
    trtc::ir::tensor::random_uniform(shape, seed)
}

fn npy(dir: &Path, name: &str, t: &Tensor) -> String {
    let p = dir.join(name);
    trtc::npy::write_npy(&p, t).unwrap();
    format!("x={}", p.display())
}

/// `trtc run` of `model` (a plan or the ONNX file) on `x`; the output as f32s.
fn run_cli(model: &Path, dir: &Path, x: &str, tag: &str) -> Vec<f32> {
    let out = dir.join(tag);
    let o = trtc(&[
        "run",
        model.to_str().unwrap(),
        "--input",
        x,
        "--output-dir",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{tag}: {}", stderr(&o));
    let y = trtc::npy::read_npy(&out.join("sum.npy"), DType::F32).unwrap();
    y.to_plain_array_view::<f32>()
        .unwrap()
        .iter()
        .copied()
        .collect()
}

fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn compile_with_shapes_then_run_those_and_a_new_shape() {
    let dir = temp_dir("dynshapes");
    let model = write_dynamic_model(&dir);
    let plan = dir.join("dyn.trtc");
    let report = dir.join("report.json");
    let o = trtc(&[
        "compile",
        model.to_str().unwrap(),
        "-o",
        plan.to_str().unwrap(),
        "--max-batch-size",
        "2",
        "--shapes",
        "x:1x3x16x16",
        "--shapes",
        "x:2x3x24x20",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("engines are built per input shape; 2 built now"),
        "{out}"
    );
    assert!(out.contains("input shapes x:3x16x16:"), "{out}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let shapes = r["shapes"].as_array().unwrap();
    assert_eq!(shapes.len(), 2);
    for s in shapes {
        // Once H and W are known, the Shape/Slice/Concat arithmetic folds away: every
        // node left is one the GPU table takes (on a machine without a GPU it runs on
        // the CPU, but the partition is the same).
        let fallback = s["report"]["fallback"].as_array().unwrap();
        assert!(fallback.is_empty(), "{}: {fallback:?}", s["shapes"]);
    }
    // The two compiled shapes and one that arrives only now, against the ONNX file run
    // as it is.
    for (i, shape) in [[1, 3, 16, 16], [2, 3, 24, 20], [1, 3, 10, 14]]
        .iter()
        .enumerate()
    {
        let x = npy(&dir, &format!("x{i}.npy"), &input(shape, i as u64 + 10));
        let want = run_cli(&model, &dir, &x, &format!("ref{i}"));
        let got = run_cli(&plan, &dir, &x, &format!("plan{i}"));
        let d = max_rel_diff(&got, &want);
        assert!(d < 1e-4, "shape {shape:?}: max relative difference {d}");
    }
}

#[test]
fn engines_per_shape_are_cached_least_recently_used_first() {
    let g = dynamic_model();
    let opts = CompileOptions {
        max_cached_engines: 2,
        max_batch_size: 4,
        ..Default::default()
    };
    let plan = compile("dyn", g, &opts, trtc::gpu()).unwrap();
    let model = HybridModel::from_plan(&plan, trtc::gpu()).unwrap();
    assert!(model.is_dynamic());
    let keys = |m: &HybridModel| -> Vec<String> {
        m.shape_reports("dyn")
            .unwrap()
            .into_iter()
            .map(|(k, _, _)| k)
            .collect()
    };
    for (shape, want) in [
        ([1, 3, 8, 8], vec!["x:3x8x8"]),
        ([2, 3, 8, 8], vec!["x:3x8x8"]), // another batch: the same engines
        ([1, 3, 12, 8], vec!["x:3x8x8", "x:3x12x8"]),
        ([1, 3, 8, 8], vec!["x:3x12x8", "x:3x8x8"]), // used again: most recent
        ([1, 3, 6, 6], vec!["x:3x8x8", "x:3x6x6"]),  // 12x8 was least recent: dropped
    ] {
        let y = model.run(vec![input(&shape, 1)]).unwrap();
        assert_eq!(y[0].shape(), &[shape[0], 8, shape[2], shape[3]]);
        assert_eq!(keys(&model), want, "after {shape:?}");
    }
}

#[test]
fn bad_shapes_are_refused_naming_the_input() {
    let dir = temp_dir("dynbad");
    let model = write_dynamic_model(&dir);
    let m = model.to_str().unwrap();
    let plan = dir.join("p.trtc");
    let p = plan.to_str().unwrap();
    for (spec, says) in [
        ("x:1x3x16", "input `x`"),    // rank
        ("x:1x4x16x16", "input `x`"), // a static dim that does not match
        ("y:1x3x16x16", "`y` is not an input of the model"),
        ("x:1x3x0x16", "positive integers"),
        ("x:9x3x16x16", "batch"), // over --max-batch-size
        ("x:1x3xbadx16", "positive integers"),
    ] {
        let o = trtc(&["compile", m, "-o", p, "--shapes", spec]);
        assert_clean_failure(&o, says);
    }
    // A plan whose input shapes are dynamic, run on inputs of the wrong rank or dtype.
    let o = trtc(&["compile", m, "-o", p]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("engines are built for each input shape when it first"),
        "{out}"
    );
    let x = npy(&dir, "rank3.npy", &input(&[1, 3, 16], 1));
    assert_clean_failure(&trtc(&["run", p, "--input", &x]), "input `x`");
    let x = npy(&dir, "big.npy", &input(&[5, 3, 8, 8], 1));
    assert_clean_failure(&trtc(&["run", p, "--input", &x]), "batch");
}

#[test]
fn a_plan_with_a_corrupt_shape_entry_is_refused() {
    let g = dynamic_model();
    let opts = CompileOptions::default();
    let mut plan = compile("dyn", g, &opts, trtc::gpu()).unwrap();
    let keys = tune_profiles(&mut plan, &[vec![vec![1, 3, 8, 8]]], trtc::gpu()).unwrap();
    assert_eq!(keys, vec!["x:3x8x8".to_string()]);
    let good = plan.to_bytes().unwrap();
    let back = Plan::from_bytes(&good).unwrap();
    assert!(back.shape_engines.contains_key("x:3x8x8"));
    for bad in ["x:3x8", "x:4x8x8", "y:3x8x8", "x:3x8x0", "x:3x8x8,x:3x8x8"] {
        let mut p = compile("dyn", dynamic_model(), &opts, trtc::gpu()).unwrap();
        p.shape_engines = [(bad.to_string(), Default::default())]
            .into_iter()
            .collect();
        let e = Plan::from_bytes(&p.to_bytes().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("shape entry"), "{bad}: {e}");
    }
}

#[test]
fn a_model_static_past_the_batch_accepts_its_own_shape_only() {
    let dir = temp_dir("staticshapes");
    let p = write_model(&dir, "m.onnx", &add_relu_model());
    let plan = dir.join("m.trtc");
    let args = |spec: &str| {
        vec![
            "compile".to_string(),
            p.display().to_string(),
            "-o".into(),
            plan.display().to_string(),
            "--shapes".into(),
            spec.to_string(),
        ]
    };
    let run = |spec: &str| {
        let a = args(spec);
        trtc(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let o = run("x:1x4");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_clean_failure(&run("x:1x5"), "input `x`");
}

/// `x: f32[N,3,4,4]` -> relu -> `Reshape(_, Concat(Shape(_)[0:1] * 3, [-1]))` (a batch
/// folded into rows, as attention's `[N*heads, L, d]`) -> MatMul by a constant -> reshape
/// back to `[N, -1]`: static past the batch, but its shape arithmetic reads the batch.
fn batch_reading_model() -> Graph {
    let mut b = GraphBuilder::new();
    let x = b.input_with(
        "x",
        DType::F32,
        vec!["N".into(), 3u64.into(), 4u64.into(), 4u64.into()],
    );
    let r = b.op("relu", Op::Relu, &[x]);
    let n = b.op(
        "n",
        Op::Shape {
            start: Some(0),
            end: Some(1),
        },
        &[r],
    );
    let rest = b.constant("rest", tensor1(&[-1i64]));
    let three = b.constant("three", tensor1(&[3i64]));
    let rows = b.op("rows", Op::Mul, &[n, three]);
    let target = b.op("target", Op::Concat { axis: 0 }, &[rows, rest]);
    let flat = b.op("flat", Op::Reshape { allowzero: 0 }, &[r, target]);
    let w = b.constant("w", trtc::ir::tensor::random_uniform(&[16, 5], 2));
    let fc = b.op("fc", Op::MatMul, &[flat, w]);
    let back = b.op("back", Op::Concat { axis: 0 }, &[n, rest]);
    let y = b.op("unflat", Op::Reshape { allowzero: 0 }, &[fc, back]);
    b.output(y);
    b.build().unwrap()
}

#[test]
fn shape_arithmetic_on_the_batch_builds_engines_per_batch_size() {
    let g = batch_reading_model();
    assert!(!trtc::ir::has_dynamic_dims(&g));
    let opts = CompileOptions {
        max_batch_size: 4,
        ..Default::default()
    };
    let mut plan = compile("flat", g.clone(), &opts, trtc::gpu()).unwrap();
    assert!(
        plan.report.dynamic,
        "the report says engines are built per shape"
    );
    let keys = tune_profiles(&mut plan, &[vec![vec![2, 3, 4, 4]]], trtc::gpu()).unwrap();
    assert_eq!(
        keys,
        vec!["x:2x3x4x4".to_string()],
        "the batch is part of the key"
    );
    let shape = &plan.report.shapes[0];
    let (gpu, all) = shape.report.gpu_original_nodes();
    assert_eq!(
        gpu, all,
        "every node is in a GPU segment once the batch is known"
    );
    let back = Plan::from_bytes(&plan.to_bytes().unwrap()).unwrap();
    let model = HybridModel::from_plan(&back, trtc::gpu()).unwrap();
    assert!(model.is_dynamic());
    let reference = trtc::ir::eval::CpuModel::new(&g).unwrap();
    for batch in [2, 3, 2] {
        let x = input(&[batch, 3, 4, 4], batch as u64);
        let want = reference.run(vec![x.clone()]).unwrap();
        let got = model.run(vec![x]).unwrap();
        assert_eq!(got[0].shape(), &[batch, 15]);
        let (a, b) = (
            got[0].to_plain_array_view::<f32>().unwrap(),
            want[0].to_plain_array_view::<f32>().unwrap(),
        );
        let d = max_rel_diff(a.as_slice().unwrap(), b.as_slice().unwrap());
        assert!(d < 1e-5, "batch {batch}: {d}");
    }
    assert_eq!(model.last_shape_key().as_deref(), Some("x:2x3x4x4"));
    let e = model
        .run(vec![input(&[5, 3, 4, 4], 1)])
        .unwrap_err()
        .to_string();
    assert!(e.contains("batch"), "over --max-batch-size: {e}");
}

#[test]
fn a_new_shape_runs_on_the_cpu_while_its_engines_build_in_the_background() {
    let g = dynamic_model();
    let opts = CompileOptions {
        build_in_background: true,
        max_cached_engines: 4,
        ..Default::default()
    };
    let plan = compile("dyn", g.clone(), &opts, trtc::gpu()).unwrap();
    let back = Plan::from_bytes(&plan.to_bytes().unwrap()).unwrap();
    assert!(
        back.options.build_in_background,
        "the plan keeps the option"
    );
    let model = HybridModel::from_plan(&back, trtc::gpu()).unwrap();
    let reference = trtc::ir::eval::CpuModel::new(&g).unwrap();
    let x = input(&[1, 3, 16, 12], 3);
    let want = reference.run(vec![x.clone()]).unwrap();
    let values = |t: &Tensor| -> Vec<f32> {
        t.to_plain_array_view::<f32>()
            .unwrap()
            .iter()
            .copied()
            .collect()
    };
    let first = model.run(vec![x.clone()]).unwrap();
    assert_eq!(
        model.cpu_runs_while_building(),
        1,
        "the first request did not wait"
    );
    assert!(max_rel_diff(&values(&first[0]), &values(&want[0])) < 1e-5);
    let start = std::time::Instant::now();
    while model.building_in_background() && start.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!model.building_in_background(), "the build ends");
    let second = model.run(vec![x]).unwrap();
    assert_eq!(
        model.cpu_runs_while_building(),
        1,
        "once built, the shape's engines run it"
    );
    assert_eq!(model.last_shape_key().as_deref(), Some("x:3x16x12"));
    assert!(max_rel_diff(&values(&second[0]), &values(&want[0])) < 1e-5);
    // Shapes over the limits are still refused at once.
    let e = model
        .run(vec![input(&[2, 3, 16, 12], 1)])
        .unwrap_err()
        .to_string();
    assert!(e.contains("batch"), "{e}");
}
