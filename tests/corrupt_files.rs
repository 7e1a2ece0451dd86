//! Mutated model and plan files: truncated, bits flipped, bytes overwritten, a slice
//! duplicated, a range zeroed. Each one loads to a clean error or to a valid model that
//! then validates, compiles and runs (or fails cleanly doing so): never a panic, never a
//! hang. Cases come from a fixed seed, so every run sees the same files;
//! `TRTC_CORRUPT_SEED=<n>` picks others and `TRTC_CORRUPT_CASES=<n>` runs more (or fewer)
//! cases per test. A failure names the seed, the case and its mutation, and leaves the
//! file in the temp directory.

mod common;
use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use trtc::backend::{compile, CompileOptions, HybridModel, Plan};
use trtc::ir::tract_onnx::pb::{self, AttributeProto, ModelProto};
use trtc::ir::{load_model, CpuModel, DType, Dim, Graph, Tensor};
use trtc::optimizer::verify::random_tensor;

/// Longer than any case takes (well under a second each); a case past it hangs.
const TIMEOUT: Duration = Duration::from_secs(10);

fn seed() -> u64 {
    std::env::var("TRTC_CORRUPT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_202)
}

fn cases(default: usize) -> usize {
    std::env::var("TRTC_CORRUPT_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------
// The inputs

fn ints_attr(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: 7,
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn float_attr(name: &str, f: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: 1,
        f,
        ..Default::default()
    }
}

fn with_attrs(mut n: pb::NodeProto, attrs: Vec<AttributeProto>) -> pb::NodeProto {
    n.attribute = attrs;
    n
}

fn i64_initializer(name: &str, values: &[i64]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: vec![values.len() as i64],
        data_type: 7,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn i64_scalar(name: &str, value: i64) -> pb::TensorProto {
    pb::TensorProto {
        dims: vec![],
        ..i64_initializer(name, &[value])
    }
}

fn ramp(n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|i| ((i % 7) as f32 - 3.0) * scale).collect()
}

/// The value's first dimension as the symbol `N`, as the real models have it.
fn batch_n(mut vi: pb::ValueInfoProto) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::dimension::Value;
    if let Some(pb::type_proto::Value::TensorType(t)) =
        vi.r#type.as_mut().and_then(|t| t.value.as_mut())
    {
        t.shape.as_mut().unwrap().dim[0].value = Some(Value::DimParam("N".into()));
    }
    vi
}

/// A small CNN of the ops the real models use, a couple of kilobytes, so that most
/// mutations land in graph structure (names, attributes, shapes) rather than in weights:
/// Conv, BatchNormalization, Relu, MaxPool, Add, Concat, GlobalAveragePool, a Reshape
/// whose target shape is computed (Shape, Gather, Unsqueeze, Concat), Gemm, Softmax, and a
/// ConstantOfShape of a constant shape.
fn small_cnn() -> ModelProto {
    model(
        vec![
            with_attrs(
                node("Conv", &["x", "w", "wb"], &["c"]),
                vec![
                    ints_attr("kernel_shape", &[3, 3]),
                    ints_attr("pads", &[1, 1, 1, 1]),
                    ints_attr("strides", &[1, 1]),
                ],
            ),
            with_attrs(
                node(
                    "BatchNormalization",
                    &["c", "bn_s", "bn_b", "bn_m", "bn_v"],
                    &["bn"],
                ),
                vec![float_attr("epsilon", 1e-5)],
            ),
            node("Relu", &["bn"], &["r"]),
            with_attrs(
                node("MaxPool", &["r"], &["p"]),
                vec![
                    ints_attr("kernel_shape", &[2, 2]),
                    ints_attr("strides", &[2, 2]),
                ],
            ),
            node("Add", &["p", "shift"], &["a"]),
            with_attrs(
                node("Concat", &["a", "p"], &["cat"]),
                vec![int_attr("axis", 1)],
            ),
            node("GlobalAveragePool", &["cat"], &["gap"]),
            node("Shape", &["gap"], &["shp"]),
            with_attrs(
                node("Gather", &["shp", "zero"], &["batch"]),
                vec![int_attr("axis", 0)],
            ),
            node("Unsqueeze", &["batch", "axes0"], &["batch1"]),
            with_attrs(
                node("Concat", &["batch1", "minus1"], &["flat_shape"]),
                vec![int_attr("axis", 0)],
            ),
            node("Reshape", &["gap", "flat_shape"], &["flat"]),
            with_attrs(
                node("Gemm", &["flat", "fc_w", "fc_b"], &["logits"]),
                vec![int_attr("transB", 1)],
            ),
            with_attrs(
                node("Softmax", &["logits"], &["prob"]),
                vec![int_attr("axis", 1)],
            ),
            node("ConstantOfShape", &["bias_shape"], &["bias"]),
            node("Add", &["prob", "bias"], &["y"]),
        ],
        vec![batch_n(f32_info("x", &[1, 3, 8, 8]))],
        vec![batch_n(f32_info("y", &[1, 5]))],
        vec![
            f32_initializer("w", &[4, 3, 3, 3], &ramp(108, 0.1)),
            f32_initializer("wb", &[4], &[0.1, -0.1, 0.2, 0.0]),
            f32_initializer("bn_s", &[4], &[1.0, 0.5, 2.0, 1.5]),
            f32_initializer("bn_b", &[4], &[0.0, 0.1, -0.1, 0.2]),
            f32_initializer("bn_m", &[4], &[0.1, 0.0, -0.2, 0.3]),
            f32_initializer("bn_v", &[4], &[1.0, 0.9, 1.1, 0.5]),
            f32_initializer("shift", &[1, 4, 1, 1], &[0.5, -0.5, 0.25, 0.0]),
            i64_scalar("zero", 0),
            i64_initializer("axes0", &[0]),
            i64_initializer("minus1", &[-1]),
            f32_initializer("fc_w", &[5, 8], &ramp(40, 0.05)),
            f32_initializer("fc_b", &[5], &[0.0, 0.1, 0.2, 0.3, 0.4]),
            i64_initializer("bias_shape", &[1, 5]),
        ],
    )
}

fn small_cnn_bytes() -> Vec<u8> {
    use prost::Message;
    small_cnn().encode_to_vec()
}

/// Options that cut the small CNN into several segments, so that the plan has a
/// partition worth corrupting.
fn plan_options() -> CompileOptions {
    CompileOptions {
        min_segment_size: 1,
        deny_ops: vec!["Concat".into()],
        max_batch_size: 2,
        ..Default::default()
    }
}

fn small_plan_bytes() -> Vec<u8> {
    let g = trtc::ir::from_proto(small_cnn(), None).unwrap();
    let plan = compile("small", g, &plan_options(), trtc::gpu()).unwrap();
    assert!(plan.partition.segments.len() >= 2, "{:?}", plan.partition);
    plan.to_bytes().unwrap()
}

// ---------------------------------------------------------------------------------------
// Mutations

/// One mutation of `bytes`, at offsets in `region` (truncation anywhere), and what it did.
fn mutate(rng: &mut StdRng, bytes: &[u8], region: Range<usize>) -> (Vec<u8>, String) {
    let mut out = bytes.to_vec();
    let at = |rng: &mut StdRng| rng.gen_range(region.clone());
    let what = match rng.gen_range(0..5) {
        0 => {
            let len = rng.gen_range(0..bytes.len());
            out.truncate(len);
            format!("truncated to {len} bytes")
        }
        1 => {
            let n = rng.gen_range(1..=4);
            let flips: Vec<(usize, u8)> = (0..n).map(|_| (at(rng), rng.gen_range(0..8))).collect();
            for &(o, b) in &flips {
                out[o] ^= 1 << b;
            }
            format!("bits flipped (offset, bit): {flips:?}")
        }
        2 => {
            let n = rng.gen_range(1..=8);
            let sets: Vec<(usize, u8)> = (0..n).map(|_| (at(rng), rng.gen())).collect();
            for &(o, v) in &sets {
                out[o] = v;
            }
            format!("bytes set (offset, value): {sets:?}")
        }
        3 => {
            let start = at(rng);
            let len = rng.gen_range(1..=64).min(region.end - start);
            let to = at(rng);
            let slice = bytes[start..start + len].to_vec();
            out.splice(to..to, slice);
            format!("{len} bytes from offset {start} inserted again at {to}")
        }
        _ => {
            let start = at(rng);
            let len = rng.gen_range(1..=256).min(region.end - start);
            out[start..start + len].fill(0);
            format!("{len} bytes zeroed from offset {start}")
        }
    };
    (out, what)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A plan's content (all but its checksum) mutated, then sealed with a checksum that
/// matches, so that the header and the body are read rather than refused at the checksum.
fn mutate_sealed(rng: &mut StdRng, plan: &[u8]) -> (Vec<u8>, String) {
    let content = &plan[..plan.len() - 8];
    let header_end = 20 + u64::from_le_bytes(plan[12..20].try_into().unwrap()) as usize;
    // half in the fixed fields and the JSON header, half in the graph and payloads
    let region = if rng.gen_bool(0.5) {
        0..header_end
    } else {
        header_end..content.len()
    };
    let (mut out, what) = mutate(rng, content, region.clone());
    let sum = fnv1a(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    (out, format!("{what} (in {region:?}), checksum resealed"))
}

// ---------------------------------------------------------------------------------------
// Running a case

/// How far a case got: refused at `stage` with an error, valid all the way, or valid but
/// not run because it asks for tensors too large to compute here.
#[derive(Debug)]
enum Outcome {
    Refused(&'static str, String),
    Valid,
    TooLargeToRun,
}

/// Largest tensor (elements) a case may ask for and still be run.
const RUN_LIMIT: u64 = 1 << 22;

/// Does every tensor of `g` have a shape of at most `RUN_LIMIT` elements at batch 1?
fn small_enough_to_run(g: &Graph) -> bool {
    g.node_ids().into_iter().all(|id| {
        g.node(id).outputs.iter().all(|t| {
            t.shape.as_ref().is_none_or(|s| {
                s.iter()
                    .try_fold(1u64, |n, d| n.checked_mul(d.at_batch_one()))
                    .is_some_and(|n| n <= RUN_LIMIT)
            })
        })
    })
}

/// Where the error came from, for the tally.
fn stage<T, E: std::fmt::Display>(name: &'static str, r: Result<T, E>) -> Result<T, Outcome> {
    r.map_err(|e| Outcome::Refused(name, e.to_string()))
}

/// An input the graph accepts: its first input's shape, symbolic dimensions as `batch`,
/// small random values; `None` where that input is not a small f32 tensor of known rank.
fn input_for(g: &Graph, batch: usize) -> Option<Tensor> {
    let info = g.tensor(trtc::ir::Outlet::new(*g.inputs().first()?, 0));
    if info.dtype != Some(DType::F32) {
        return None;
    }
    let dims: Vec<usize> = info
        .shape
        .as_ref()?
        .iter()
        .map(|d| match d {
            Dim::Known(n) => *n as usize,
            _ => batch,
        })
        .collect();
    let count = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d))?;
    (count as u64 <= RUN_LIMIT).then(|| random_tensor(&dims, 3))
}

/// A mutated ONNX model: load; if that works, validate, run on the CPU, compile, and run
/// the compiled model.
fn onnx_case(path: &Path) -> Result<Outcome, Outcome> {
    let g = stage("load", load_model(path))?;
    stage("validate", g.validate())?;
    if !small_enough_to_run(&g) {
        return Ok(Outcome::TooLargeToRun);
    }
    let input = input_for(&g, 1).ok_or(Outcome::Refused("input", "no small f32 input".into()))?;
    let cpu = stage("cpu model", CpuModel::new(&g))?;
    stage("cpu run", cpu.run(vec![input.clone()]))?;
    let plan = stage(
        "compile",
        compile("mutated", g, &plan_options(), trtc::gpu()),
    )?;
    let hybrid = stage("hybrid model", HybridModel::from_plan(&plan, trtc::gpu()))?;
    stage("hybrid run", hybrid.run(vec![input]))?;
    Ok(Outcome::Valid)
}

/// A mutated plan: read; if that works, build its hybrid model and run it.
fn plan_case(path: &Path) -> Result<Outcome, Outcome> {
    let plan = stage("read", Plan::read(path))?;
    stage("validate", plan.graph.validate())?;
    if !small_enough_to_run(&plan.graph) {
        return Ok(Outcome::TooLargeToRun);
    }
    let input =
        input_for(&plan.graph, 1).ok_or(Outcome::Refused("input", "no small f32 input".into()))?;
    let model = stage("hybrid model", HybridModel::from_plan(&plan, trtc::gpu()))?;
    stage("hybrid run", model.run(vec![input]))?;
    Ok(Outcome::Valid)
}

/// Run `case` on its own thread, with a time limit; a panic or a hang is a failure.
fn guarded(
    label: &str,
    case: impl FnOnce() -> Result<Outcome, Outcome> + Send + 'static,
) -> Result<Outcome, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(label.to_string())
        .spawn(move || {
            let r = catch_unwind(AssertUnwindSafe(case));
            let _ = tx.send(r);
        })
        .expect("spawn a case thread");
    match rx.recv_timeout(TIMEOUT) {
        Ok(Ok(r)) => Ok(r.unwrap_or_else(|refused| refused)),
        Ok(Err(payload)) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "(no message)".into());
            Err(format!("panicked: {msg}"))
        }
        Err(mpsc::RecvTimeoutError::Timeout) => Err(format!("no result after {TIMEOUT:?}: hangs")),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err("the case thread vanished".into()),
    }
}

/// Mutate `original` `n` times with `mutation`, run `case` on each file, and assert that
/// none panicked or hung; print the tally of outcomes.
fn fuzz(
    tag: &str,
    ext: &str,
    original: &[u8],
    n: usize,
    mut mutation: impl FnMut(&mut StdRng, &[u8]) -> (Vec<u8>, String),
    case: impl Fn(PathBuf) -> Result<Outcome, Outcome> + Send + Sync + Copy + 'static,
) {
    let seed = seed();
    // each test its own stream: the seed and the tag say which
    let mut rng = StdRng::seed_from_u64(seed ^ fnv1a(tag.as_bytes()));
    let dir = temp_dir(&format!("corrupt-{tag}"));
    let started = Instant::now();
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = vec![];
    for i in 0..n {
        let (bytes, what) = mutation(&mut rng, original);
        let path = dir.join(format!("case{i}.{ext}"));
        std::fs::write(&path, &bytes).unwrap();
        let label = format!("{tag} seed {seed} case {i}");
        let p = path.clone();
        match guarded(&label, move || case(p)) {
            Ok(o) => {
                let key = match o {
                    // tract's panics, contained by trtc, are errors: counted apart
                    Outcome::Refused(stage, e) if e.contains("tract: panicked") => {
                        format!("error at {stage} (tract panicked)")
                    }
                    Outcome::Refused(stage, _) => format!("error at {stage}"),
                    Outcome::Valid => "valid".into(),
                    Outcome::TooLargeToRun => "valid, too large to run".into(),
                };
                *tally.entry(key).or_default() += 1;
                let _ = std::fs::remove_file(&path);
            }
            Err(e) => failures.push(format!("{label} ({what}; file {}): {e}", path.display())),
        }
    }
    eprintln!(
        "{tag}: {n} cases from seed {seed} in {:.1?}: {tally:?}",
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} of {n} mutated {tag} files panicked or hung (TRTC_CORRUPT_SEED={seed} repeats them):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// The tests

#[test]
fn the_unmutated_inputs_are_valid() {
    let dir = temp_dir("corrupt-clean");
    let onnx = dir.join("small.onnx");
    std::fs::write(&onnx, small_cnn_bytes()).unwrap();
    assert!(matches!(onnx_case(&onnx), Ok(Outcome::Valid)));
    let plan = dir.join("small.trtc");
    std::fs::write(&plan, small_plan_bytes()).unwrap();
    assert!(matches!(plan_case(&plan), Ok(Outcome::Valid)));
    assert!(matches!(onnx_case(&efficientnet()), Ok(Outcome::Valid)));
}

#[test]
fn mutated_small_models_fail_cleanly() {
    let bytes = small_cnn_bytes();
    let whole = 0..bytes.len();
    fuzz(
        "small-onnx",
        "onnx",
        &bytes,
        cases(400),
        move |rng, b| mutate(rng, b, whole.clone()),
        |p| onnx_case(&p),
    );
}

/// Fewer cases on the real model (18 MB); half of them in its first 64 KiB and last 4 KiB,
/// where the nodes, inputs and outputs are, rather than in the weights between.
#[test]
fn mutated_efficientnet_fails_cleanly() {
    let bytes = std::fs::read(efficientnet()).unwrap();
    let len = bytes.len();
    fuzz(
        "efficientnet",
        "onnx",
        &bytes,
        cases(40),
        move |rng, b| {
            let region = match rng.gen_range(0..4) {
                0 => 0..64 << 10,
                1 => len - (4 << 10)..len,
                _ => 0..len,
            };
            mutate(rng, b, region)
        },
        |p| onnx_case(&p),
    );
}

/// Plans as they would arrive altered: the checksum refuses almost all.
#[test]
fn mutated_plans_fail_cleanly() {
    let bytes = small_plan_bytes();
    let whole = 0..bytes.len();
    fuzz(
        "plan",
        "trtc",
        &bytes,
        cases(100),
        move |rng, b| mutate(rng, b, whole.clone()),
        |p| plan_case(&p),
    );
}

/// Plans altered and their checksum made to match: the header and body are read.
#[test]
fn mutated_resealed_plans_fail_cleanly() {
    let bytes = small_plan_bytes();
    fuzz(
        "sealed-plan",
        "trtc",
        &bytes,
        cases(400),
        mutate_sealed,
        |p| plan_case(&p),
    );
}

/// One file, named by `TRTC_CORRUPT_FILE`, run as a case is (without the thread and the
/// time limit, for a debugger): `TRTC_CORRUPT_FILE=/tmp/…/case12.onnx cargo test --test
/// corrupt_files one_file -- --ignored --nocapture`.
#[test]
#[ignore = "reproduces one case: set TRTC_CORRUPT_FILE"]
fn one_file() {
    let path = PathBuf::from(std::env::var_os("TRTC_CORRUPT_FILE").expect("TRTC_CORRUPT_FILE"));
    let outcome = if path.extension().is_some_and(|e| e == "trtc") {
        plan_case(&path)
    } else {
        onnx_case(&path)
    };
    eprintln!("{}: {outcome:?}", path.display());
}

// ---------------------------------------------------------------------------------------
// What the mutations found, each as the smallest model that shows it (seeds 1 to 3 at
// TRTC_CORRUPT_CASES=5000 found them all).

fn from_proto(m: ModelProto) -> trtc::ir::Result<Graph> {
    trtc::ir::from_proto(m, None)
}

/// `y = Gather(Shape(x), index)`: the shape arithmetic of the real models.
fn gather_of_shape(index: i64, gather: pb::NodeProto) -> ModelProto {
    let mut out = f32_info("y", &[]);
    out.r#type = None;
    model(
        vec![node("Shape", &["x"], &["s"]), gather],
        vec![f32_info("x", &[1, 3, 8, 8])],
        vec![out],
        vec![i64_scalar("i", index)],
    )
}

/// A constant index past the end of a shape vector: tract indexed out of bounds
/// (a panic, at load) where trtc now names the index.
#[test]
fn gather_index_out_of_range_is_an_error() {
    let m = gather_of_shape(
        12544,
        with_attrs(
            node("Gather", &["s", "i"], &["y"]),
            vec![int_attr("axis", 0)],
        ),
    );
    let e = from_proto(m).unwrap_err().to_string();
    assert!(
        e.contains("index 12544 out of range for axis 0 of size 4"),
        "{e}"
    );
    let ok = gather_of_shape(-4, node("Gather", &["s", "i"], &["y"]));
    from_proto(ok).unwrap();
}

/// The same Gather with an attribute trtc does not know: kept verbatim (`Op::Other`), so
/// only tract reads it, and tract's panic becomes an error.
#[test]
fn tract_panics_on_ops_trtc_does_not_model_are_errors() {
    let m = gather_of_shape(
        16,
        with_attrs(
            node("Gather", &["s", "i"], &["y"]),
            vec![int_attr("mystery", 0)],
        ),
    );
    let g = from_proto(m).expect("tract's analysis is only a help to loading");
    let x = random_tensor(&[1, 3, 8, 8], 1);
    let e = CpuModel::new(&g)
        .and_then(|cpu| cpu.run(vec![x]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("tract: panicked on this graph"), "{e}");
}

/// A pooling kernel of 0: tract's padding arithmetic underflowed when the model was
/// optimized; now a load error. Strides, dilations and pads are checked the same way.
#[test]
fn zero_sized_windows_are_errors() {
    let pool = |attrs| {
        model(
            vec![with_attrs(node("MaxPool", &["x"], &["y"]), attrs)],
            vec![f32_info("x", &[1, 3, 8, 8])],
            vec![f32_info("y", &[1, 3, 4, 4])],
            vec![],
        )
    };
    let e = from_proto(pool(vec![ints_attr("kernel_shape", &[2, 0])]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("kernel_shape [2, 0]: each must be at least 1"),
        "{e}"
    );
    let e = from_proto(pool(vec![
        ints_attr("kernel_shape", &[2, 2]),
        ints_attr("strides", &[0, 2]),
    ]))
    .unwrap_err()
    .to_string();
    assert!(e.contains("strides [0, 2]"), "{e}");
    let e = from_proto(pool(vec![
        ints_attr("kernel_shape", &[2, 2]),
        ints_attr("dilations", &[1]),
    ]))
    .unwrap_err()
    .to_string();
    assert!(e.contains("do not match the input rank"), "{e}");
}

/// An Unsqueeze axis past the rank: dropped silently by trtc, then tract inserted past the
/// end of its shape (a panic); now a load error. A Squeeze of a dim that is not 1 too.
#[test]
fn unsqueeze_and_squeeze_axes_are_checked() {
    let m = |op: &str, axes: &[i64]| {
        let mut out = f32_info("y", &[]);
        out.r#type = None;
        model(
            vec![node(op, &["x", "axes"], &["y"])],
            vec![f32_info("x", &[1, 4])],
            vec![out],
            vec![i64_initializer("axes", axes)],
        )
    };
    let e = from_proto(m("Unsqueeze", &[32])).unwrap_err().to_string();
    assert!(e.contains("axis 32 out of range for rank 3"), "{e}");
    let e = from_proto(m("Unsqueeze", &[0, -4]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("given twice"), "{e}");
    let e = from_proto(m("Squeeze", &[1])).unwrap_err().to_string();
    assert!(e.contains("axis 1 is of size 4, not 1"), "{e}");
    let g = from_proto(m("Unsqueeze", &[0, -1])).unwrap();
    let y = g.tensor(g.outputs()[0]);
    assert_eq!(
        y.shape,
        Some(vec![
            Dim::Known(1),
            Dim::Known(1),
            Dim::Known(4),
            Dim::Known(1)
        ])
    );
}

/// A ConstantOfShape of a constant shape of 2^36 elements: loading evaluated it (tens of
/// GB written, minutes) to learn its shape, and constant folding would again; both now
/// read the size from the shape and leave it to run time.
#[test]
fn huge_constants_are_not_computed_at_load_or_compile() {
    let m = model(
        vec![
            node("ConstantOfShape", &["shape"], &["c"]),
            node("Add", &["x", "c"], &["y"]),
        ],
        vec![f32_info("x", &[1, 1])],
        vec![f32_info("y", &[1 << 18, 1 << 18])],
        vec![i64_initializer("shape", &[1 << 18, 1 << 18])],
    );
    let started = Instant::now();
    let g = from_proto(m).unwrap();
    g.validate().unwrap();
    let y = g.tensor(g.outputs()[0]);
    assert_eq!(
        y.shape,
        Some(vec![Dim::Known(1 << 18), Dim::Known(1 << 18)])
    );
    let plan = compile(
        "huge",
        g,
        &CompileOptions {
            backend: trtc::backend::BackendChoice::Cpu,
            ..Default::default()
        },
        trtc::gpu(),
    )
    .unwrap();
    assert!(
        plan.report
            .passes
            .iter()
            .any(|p| p.skipped.iter().any(|s| s.reason.contains("too large"))),
        "constant folding says why it left the ConstantOfShape"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
