//! Per-run overhead of the hybrid runtime over plain tract, on a CPU-only plan
//! (`--backend cpu`: one CPU segment), InceptionV3 at batch 1.
//!
//! `cargo bench --bench hybrid_overhead [-- ROUNDS]`.

#[path = "support/timing.rs"]
mod timing;

use trtc::backend::{compile, BackendChoice, CompileOptions, HybridModel};
use trtc::ir::{load_model, CpuModel};
use trtc::optimizer::verify::random_tensor;

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(40);
    for (path, size) in [
        (timing::shared_model("inception_v3.onnx"), 299),
        (
            format!(
                "{}/models/efficientnet_lite0.onnx",
                env!("CARGO_MANIFEST_DIR")
            ),
            224,
        ),
    ] {
        let g = match load_model(&path) {
            Ok(g) => g,
            Err(e) => {
                eprintln!("cannot benchmark {path}: {e}");
                std::process::exit(1);
            }
        };
        let plan = compile(
            &path,
            g,
            &CompileOptions {
                backend: BackendChoice::Cpu,
                ..Default::default()
            },
            trtc::gpu(),
        )
        .expect("compile");
        let plain = CpuModel::new(&plan.graph).expect("tract");
        let hybrid = HybridModel::new(&plan.graph, &plan.partition, &plan.options, trtc::gpu())
            .expect("hybrid");
        let x = random_tensor(&[1, 3, size, size], 1);
        let (tp, th) = timing::time_pair(
            3,
            rounds,
            || drop(plain.run(vec![x.clone()]).unwrap()),
            || drop(hybrid.run(vec![x.clone()]).unwrap()),
        );
        let (mp, mh) = (timing::median(&tp), timing::median(&th));
        let name = std::path::Path::new(&path)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        println!(
            "{name}: plain tract {:.2} ms, hybrid {:.2} ms (median of {rounds}, batch 1, {} segment): overhead {:+.2}%",
            mp * 1e3,
            mh * 1e3,
            plan.partition.segments.len(),
            (mh / mp - 1.0) * 100.0
        );
    }
}
