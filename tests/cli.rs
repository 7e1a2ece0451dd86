//! The CLI on the bundled model and images: the README's commands work.

mod common;
use common::*;

fn top1(image_name: &str) -> (usize, String) {
    let o = trtc(&[
        "run",
        efficientnet().to_str().unwrap(),
        "--image",
        image(image_name).to_str().unwrap(),
        "--top",
        "3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("1."))
        .unwrap_or_else(|| panic!("no top-1 line: {out}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields[1].parse().unwrap(), fields[3..].join(" "))
}

#[test]
fn coffee_is_espresso() {
    assert_eq!(top1("coffee.png"), (967, "espresso".to_string()));
}

#[test]
fn flower_is_daisy() {
    assert_eq!(top1("flower.jpg"), (985, "daisy".to_string()));
}

#[test]
fn chelsea_is_a_cat() {
    let (class, name) = top1("chelsea.png");
    assert!(
        (281..=285).contains(&class),
        "class {class} {name} is not a cat"
    );
}

#[test]
fn inspect_json_describes_the_model() {
    let o = trtc(&["inspect", efficientnet().to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["inputs"][0]["name"], "input");
    assert_eq!(v["inputs"][0]["shape"][0]["Sym"], "N");
    assert_eq!(v["outputs"][0]["shape"][1]["Known"], 1000);
    assert_eq!(v["op_histogram"]["Conv"], 49);
    assert_eq!(v["parameters"], 4631290);
    let flops = v["flops_batch1"].as_u64().unwrap();
    assert!(
        (700_000_000..900_000_000).contains(&flops),
        "EfficientNet-Lite0 is about 0.4 GMAC: {flops}"
    );
}

#[test]
fn run_npy_writes_every_output() {
    let dir = temp_dir("npy");
    let p = write_model(&dir, "m.onnx", &add_relu_model());
    let x = dir.join("x.npy");
    trtc::npy::write_npy(
        &x,
        &trtc::ir::Tensor::from_shape(&[1, 4], &[1f32, 1., -3., 4.]).unwrap(),
    )
    .unwrap();
    let out_dir = dir.join("out");
    let o = trtc(&[
        "run",
        p.to_str().unwrap(),
        "--input",
        &format!("x={}", x.display()),
        "--output-dir",
        out_dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let y = trtc::npy::read_npy(&out_dir.join("y.npy"), trtc::ir::DType::F32).unwrap();
    let y: Vec<f32> = y
        .to_plain_array_view::<f32>()
        .unwrap()
        .iter()
        .copied()
        .collect();
    assert_eq!(y, vec![1.5, 0.5, 0.0, 3.0]);
}

/// Graphviz renders the DOT of InceptionV3. Needs `dot` (apt-get install graphviz).
#[test]
fn dot_renders_with_graphviz() {
    if !have_inception() || !have_graphviz() {
        return;
    }
    let dir = temp_dir("dot");
    let out = dir.join("inception.dot");
    let o = trtc(&[
        "dot",
        inception().to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.starts_with("digraph"));
    assert!(text.contains("k=3x3 s=2x2"), "conv attributes are shown");
    assert!(text.contains("[N,32,149,149]"), "edge shapes are shown");
    let svg = dir.join("inception.svg");
    let r = std::process::Command::new("dot")
        .args(["-Tsvg", out.to_str().unwrap(), "-o", svg.to_str().unwrap()])
        .output()
        .expect("graphviz `dot` is needed for this test: apt-get install graphviz");
    assert!(
        r.status.success(),
        "dot failed: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(
        String::from_utf8_lossy(&r.stderr).trim().is_empty(),
        "dot warned: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(std::fs::metadata(&svg).unwrap().len() > 10_000);
}

#[test]
fn skip_pass_leaves_a_pass_out_and_an_unknown_one_is_named() {
    let dir = temp_dir("skippass");
    let plan = dir.join("e.trtc");
    let report = dir.join("e.json");
    let (m, p, r) = (
        efficientnet().display().to_string(),
        plan.display().to_string(),
        report.display().to_string(),
    );
    let o = trtc(&[
        "compile",
        &m,
        "-o",
        &p,
        "--report",
        &r,
        "--skip-pass",
        "horizontal-fusion",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let passes: Vec<&str> = json["passes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(passes.contains(&"vertical-fusion"), "{passes:?}");
    assert!(!passes.contains(&"horizontal-fusion"), "{passes:?}");
    assert_clean_failure(
        &trtc(&["compile", &m, "-o", &p, "--skip-pass", "no-such-pass"]),
        "unknown pass `no-such-pass`",
    );
}

/// `trtc bench --json` gives each batch size's three throughputs: one run at a time, the
/// pipelined stream (here on the CPU: one batch after another, so not overlapped) and,
/// with a GPU, the engines alone.
#[test]
fn bench_reports_one_at_a_time_and_pipelined_throughput() {
    let dir = temp_dir("bench_json");
    let m = write_model(&dir, "add_relu.onnx", &add_relu_model());
    let o = trtc(&[
        "bench",
        &m.display().to_string(),
        "--iterations",
        "2",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let row = &rows.as_array().unwrap()[0];
    assert_eq!(row["batch"], 1);
    assert!(row["images_per_s"].as_f64().unwrap() > 0.0, "{row}");
    assert!(
        row["pipelined_images_per_s"].as_f64().unwrap() > 0.0,
        "{row}"
    );
    if row["resident_images_per_s"].is_null() {
        // No GPU engine: the stream ran one batch after another.
        assert_eq!(row["pipelined_overlapped"], false, "{row}");
    }
    // u8 pixels need a 4-D, 3-channel image input: refused, naming the problem.
    let o = trtc(&[
        "bench",
        &m.display().to_string(),
        "--input-format",
        "u8-nhwc",
    ]);
    assert_clean_failure(&o, "u8-nhwc input needs a 4-D f32 image input");
}
