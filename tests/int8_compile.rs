//! `trtc compile --precision int8 --backend cpu`: EfficientNet-Lite0 calibrated (on its
//! optimized graph) on a few natural images, the plan's graph explicitly quantized
//! (activations and residuals; weights stay f32, for the engine to quantize), run on tract
//! and compared with the FP32 plan on held-out images; the calibration cache written then
//! read gives the same plan graph, and the report says which convs the GPU runs in INT8;
//! clear errors.

mod common;
use common::*;
use prost::Message;
use std::path::{Path, PathBuf};
use trtc::backend::{HybridModel, Plan};
use trtc::classify::top1;
use trtc::ir::{Graph, Op};
use trtc::preprocess::{image_to_tensor, Preprocess};

/// `trtc compile EFFICIENTNET -o OUT --backend cpu EXTRA..`.
fn compile(out: &Path, extra: &[&str]) -> std::process::Output {
    compile_for(out, "cpu", extra)
}

/// `trtc compile` of EfficientNet-Lite0 with `--backend backend`.
fn compile_for(out: &Path, backend: &str, extra: &[&str]) -> std::process::Output {
    let model = efficientnet();
    let mut args = vec![
        "compile",
        path(&model),
        "-o",
        path(out),
        "--backend",
        backend,
    ];
    args.extend_from_slice(extra);
    trtc(&args)
}

fn graph_bytes(g: &Graph) -> Vec<u8> {
    trtc::ir::to_model_proto(g).unwrap().encode_to_vec()
}

fn count(g: &Graph, op: &str) -> usize {
    g.node_ids()
        .into_iter()
        .filter(|&id| g.node(id).op.op_type() == op)
        .count()
}

/// Dense (group 1) convs: the layers whose weights an INT8 plan quantizes per tensor.
fn dense_convs(g: &Graph) -> usize {
    g.node_ids()
        .into_iter()
        .filter(|&id| match &g.node(id).op {
            Op::Conv(c) => c.group == 1,
            Op::FusedConv(f) => f.conv.group == 1,
            _ => false,
        })
        .count()
}

/// Conv / fused Conv / Gemm weights read through a DequantizeLinear with one scale and
/// no axis, and those with a per-channel (axis) one.
fn weight_dqs(g: &Graph) -> (usize, usize) {
    let (mut per_tensor, mut per_channel) = (0, 0);
    for id in g.node_ids() {
        if !matches!(
            g.node(id).op,
            Op::Conv(_) | Op::FusedConv(_) | Op::Gemm { .. }
        ) {
            continue;
        }
        let w = g.input_outlet(id, 1).unwrap();
        let Op::Other(o) = &g.node(w.node).op else {
            continue;
        };
        if o.op_type != "DequantizeLinear" {
            continue;
        }
        let scale = g.input_const(w.node, 1).unwrap();
        if scale.len() == 1 && o.attributes.iter().all(|a| a.name != "axis") {
            per_tensor += 1;
        } else {
            per_channel += 1;
        }
    }
    (per_tensor, per_channel)
}

#[test]
fn an_int8_plan_quantizes_activations_and_keeps_most_top1() {
    let dir = temp_dir("int8-compile");
    // 6 calibration images: every 12th of data/natural/calib.
    let calib = dir.join("calib");
    copy_every_nth("data/natural/calib", 12, &calib);
    let (plan_path, cache) = (dir.join("int8.trtc"), dir.join("c.cache"));
    std::fs::remove_file(&cache).ok();
    let o = compile(
        &plan_path,
        &[
            "--precision",
            "int8",
            "--calibration-data",
            path(&calib),
            "--calibrator",
            "minmax",
            "--calibration-cache",
            path(&cache),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("calibrated 53 tensors"), "{out}");
    assert!(
        out.contains(
            "INT8: 53 tensors calibrated (TRT-8600-MinMaxCalibration), 50 layers got Q/DQ"
        ),
        "{out}"
    );
    assert!(cache.exists(), "the cache was not written");
    let fp32_path = dir.join("fp32.trtc");
    let o = compile(&fp32_path, &[]);
    assert!(o.status.success(), "{}", stderr(&o));

    let plan = Plan::read(&plan_path).unwrap();
    let int8 = plan
        .report
        .int8
        .as_ref()
        .expect("the report's INT8 section");
    assert_eq!(int8.layers_quantized, 50, "{int8:?}");
    assert!(int8.residuals > 0, "{int8:?}");
    let g = &plan.graph;
    // Weights stay f32 (the engine quantizes the dense convs it runs in INT8 itself).
    assert_eq!(int8.weights, 0, "{int8:?}");
    assert_eq!(weight_dqs(g), (0, 0));
    let dense = dense_convs(g);
    assert!(dense >= 30, "{dense}");
    // On the CPU backend no layer is the GPU's to report.
    assert!(int8.layers.is_empty(), "{:?}", int8.layers);
    assert!(count(g, "QuantizeLinear") >= 40);
    // The residuals read the shared pair: as many Q as activation pairs, no more.
    assert_eq!(count(g, "QuantizeLinear"), int8.activations);

    // The read plan runs on tract; its logits move, its top-1 mostly holds.
    let fp32 = Plan::read(&fp32_path).unwrap();
    assert!(fp32.report.int8.is_none());
    let (fm, qm) = (
        HybridModel::from_plan(&fp32, trtc::gpu()).unwrap(),
        HybridModel::from_plan(&plan, trtc::gpu()).unwrap(),
    );
    // 14 held-out images: the whole-image centre crop of each source.
    let heldout = jpg_images("data/natural/heldout", |n| {
        n.contains("_s100c") && !n.contains("flip")
    });
    assert_eq!(heldout.len(), 14);
    let pre = Preprocess::default();
    let (mut same, mut conf, mut conf_same, mut max_diff) = (0, 0, 0, 0f32);
    for p in &heldout {
        let x = image_to_tensor(p, &pre).unwrap();
        let f = |m: &HybridModel| {
            trtc::ir::tensor::tensor_to_f32s(&m.run(vec![x.clone()]).unwrap()[0]).unwrap()
        };
        let (a, b) = (f(&fm), f(&qm));
        let d = a
            .iter()
            .zip(&b)
            .fold(0f32, |m, (u, v)| m.max((u - v).abs()));
        max_diff = max_diff.max(d);
        let ((ta, pa), (tb, _)) = (top1(&a), top1(&b));
        same += usize::from(ta == tb);
        if pa >= 0.5 {
            conf += 1;
            conf_same += usize::from(ta == tb);
        }
    }
    eprintln!(
        "int8 plan: top-1 agreement {same}/14 ({conf_same}/{conf} where f32 p >= 0.5), \
         max |logit diff| {max_diff}"
    );
    assert!(
        max_diff > 1e-3,
        "INT8 logits equal FP32's: nothing was quantized"
    );
    assert!(same >= MIN_AGREE, "top-1 agreement {same}/14");
    assert!(
        conf >= 2 && conf_same + 1 >= conf,
        "confident: {conf_same}/{conf}"
    );

    // The cache, read instead of calibrating (no data), gives the same plan graph; with
    // GPU segments (planned here, built where there is a GPU) the report says which convs
    // the engine runs in INT8.
    let again = dir.join("again.trtc");
    let o = compile_for(
        &again,
        "auto",
        &["--precision", "int8", "--calibration-cache", path(&cache)],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("calibration skipped"), "{}", stdout(&o));
    let again = Plan::read(&again).unwrap();
    assert!(
        graph_bytes(&again.graph) == graph_bytes(&plan.graph),
        "plan graphs differ"
    );
    let int8 = again
        .report
        .int8
        .as_ref()
        .expect("the report's INT8 section");
    // What the GPU engine would run in INT8, decided by lowering (no GPU needed): the
    // dense convs but the 3-channel stem and the last (its output read in float).
    let int8_layers = int8.layers.iter().filter(|l| l.precision == "int8").count();
    assert_eq!(int8_layers, dense - 2, "{:?}", int8.layers);
    assert!(int8
        .layers
        .iter()
        .filter(|l| l.layer.contains("depthwise"))
        .all(|l| l.precision == "fp16" && l.why.contains("depthwise")));
    std::fs::remove_dir_all(&dir).ok();
}

/// Measured: 12 of 14 (minmax, 6 calibration images, activations quantized, weights f32;
/// most of these images are far from ImageNet, so the f32 model is unsure of them). A
/// broken quantization lands near 0.
const MIN_AGREE: usize = 10;

#[test]
fn int8_without_a_table_or_with_a_bad_one_is_a_clear_error() {
    let dir = temp_dir("int8-errors");
    let out = dir.join("never.trtc");
    assert_clean_failure(
        &compile(&out, &["--precision", "int8"]),
        "INT8 needs a calibration table: --calibration-data or --calibration-cache",
    );
    // A cache absent and no data.
    let absent = dir.join("absent.cache");
    assert_clean_failure(
        &compile(
            &out,
            &["--precision", "int8", "--calibration-cache", path(&absent)],
        ),
        "no calibration cache at",
    );
    // A cache naming tensors the optimized graph does not have.
    let cache = dir.join("other.cache");
    std::fs::write(
        &cache,
        "TRT-8600-EntropyCalibration2\ninput: 3c010204\nconv1_out: 3c010204\n",
    )
    .unwrap();
    assert_clean_failure(
        &compile(
            &out,
            &["--precision", "int8", "--calibration-cache", path(&cache)],
        ),
        "1 of its 2 tensors are not in the model (made for another model?): `conv1_out`",
    );
    // An empty calibration folder.
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert_clean_failure(
        &compile(
            &out,
            &["--precision", "int8", "--calibration-data", path(&empty)],
        ),
        "no images (.png, .jpg, .jpeg) or .npy files in calibration data directory",
    );
    // Calibration flags without int8.
    assert_clean_failure(
        &compile(&out, &["--calibration-data", path(&empty)]),
        "go with --precision int8",
    );
    assert!(!out.exists(), "a plan was written");
    // bench compiles a model itself: not for int8.
    let o = trtc(&["bench", path(&efficientnet()), "--precision", "int8"]);
    assert_clean_failure(&o, "bench --precision int8 needs a plan");
    std::fs::remove_dir_all(&dir).ok();
}

/// `x -> QuantizeLinear(scale) -> DequantizeLinear(scale) -> Relu`, written as an ONNX file.
fn qdq_model(dir: &Path, scale: f32) -> PathBuf {
    use trtc::ir::op::OtherOp;
    use trtc::ir::{GraphBuilder, Tensor};
    let qdq = |t: &str| {
        Op::Other(OtherOp {
            op_type: t.into(),
            domain: String::new(),
            attributes: vec![],
        })
    };
    let mut b = GraphBuilder::new();
    let x = b.input("x", &[1, 4]);
    let s = b.constant("s", Tensor::from(scale));
    let z = b.constant("z", Tensor::from(0i8));
    let q = b.op("q", qdq("QuantizeLinear"), &[x, s, z]);
    let dq = b.op("dq", qdq("DequantizeLinear"), &[q, s, z]);
    let r = b.op("relu", Op::Relu, &[dq]);
    b.output(r);
    let g = b.build().unwrap();
    let p = dir.join(format!("qdq_{scale}.onnx"));
    std::fs::write(&p, graph_bytes(&g)).unwrap();
    p
}

#[test]
fn a_qdq_model_with_a_zero_or_negative_scale_is_a_clear_error() {
    let dir = temp_dir("int8-qdq-scales");
    for scale in [0.0f32, -0.5] {
        let model = qdq_model(&dir, scale);
        let out = dir.join("never.trtc");
        let o = trtc(&["compile", path(&model), "-o", path(&out)]);
        assert_eq!(o.status.code(), Some(1), "scale {scale}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(
            e.contains("node `q`") && e.contains("not a positive finite number"),
            "scale {scale}: {e}"
        );
        assert!(!e.contains("panicked") && !out.exists(), "{e}");
    }
    // A valid one compiles and runs.
    let model = qdq_model(&dir, 0.5);
    let out = dir.join("ok.trtc");
    let o = trtc(&["compile", path(&model), "-o", path(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_accuracy_guard_keeps_the_layers_it_demotes_in_float() {
    // One held-out image and a tolerance of its top-1: the guard measures each layer's
    // sensitivity (on tract, as the GPU's INT8 engines compute), keeps the most sensitive
    // in float until the top-1 holds, and the plan and its report say so.
    let dir = temp_dir("int8-guard");
    let (calib, held) = (dir.join("calib"), dir.join("held"));
    copy_every_nth("data/natural/calib", 24, &calib);
    let one = jpg_images("data/natural/heldout", |n| n.starts_with("astronaut"));
    copy_into(&held, one.iter().take(1));
    let plan_path = dir.join("guarded.trtc");
    let o = compile(
        &plan_path,
        &[
            "--precision",
            "int8",
            "--calibration-data",
            path(&calib),
            "--calibrator",
            "minmax",
            "--guard-data",
            path(&held),
            "--accuracy-tolerance",
            "top1:1.0",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("accuracy guard, Top1(1.0) on 1 held-out batch(es)"),
        "{out}"
    );
    let plan = Plan::read(&plan_path).unwrap();
    let int8 = plan.report.int8.as_ref().expect("the INT8 section");
    let guard = int8.guard.as_deref().expect("the guard's summary");
    assert!(guard.contains("returned 1.0000, met"), "{guard}");
    // Each layer kept in float reads no DequantizeLinear; the others do.
    let g = &plan.graph;
    let reads_dq = |name: &str| {
        let id = g
            .find_node(name)
            .unwrap_or_else(|| panic!("{name} not in the plan"));
        g.node_inputs(id)
            .into_iter()
            .flatten()
            .any(|o| matches!(&g.node(o.node).op, Op::Other(x) if x.op_type == "DequantizeLinear"))
    };
    for l in &int8.kept_float {
        assert!(
            !reads_dq(l),
            "{l} was kept in float but reads a DequantizeLinear"
        );
    }
    assert_eq!(
        int8.layers_quantized + int8.kept_float.len(),
        50,
        "{int8:?}"
    );
    let o = compile(&dir.join("never.trtc"), &["--guard-data", path(&held)]);
    assert_clean_failure(&o, "--guard-data goes with --precision int8");
    std::fs::remove_dir_all(&dir).ok();
}
