//! tract on the CPU: the original model vs the one `trtc optimize` writes, batch 1.
//!
//! `cargo bench --bench cpu_optimized [-- ROUNDS]`. Both run through the same path
//! (IR -> ONNX -> tract optimized plan); rounds alternate between the two.

#[path = "support/timing.rs"]
mod timing;

use trtc::ir::{load_model, CpuModel};
use trtc::optimizer::verify::random_tensor;
use trtc::optimizer::Pipeline;

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(30);
    let models = [
        (
            format!(
                "{}/models/efficientnet_lite0.onnx",
                env!("CARGO_MANIFEST_DIR")
            ),
            224,
        ),
        (timing::shared_model("inception_v3.onnx"), 299),
    ];
    println!(
        "{:<22} {:>12} {:>12} {:>8}  (median of {rounds} rounds, batch 1)",
        "model", "original ms", "optimized ms", "speedup"
    );
    for (path, size) in models {
        let original = match load_model(&path) {
            Ok(g) => g,
            Err(e) => {
                eprintln!("skipping {path}: {e}");
                continue;
            }
        };
        let mut optimized = original.clone();
        Pipeline::default_pipeline()
            .run(&mut optimized)
            .expect("optimize");
        let a = CpuModel::new(&original).expect("original");
        let b = CpuModel::new(&optimized).expect("optimized");
        let x = random_tensor(&[1, 3, size, size], 1);
        let (ta, tb) = timing::time_pair(
            3,
            rounds,
            || drop(a.run(vec![x.clone()]).unwrap()),
            || drop(b.run(vec![x.clone()]).unwrap()),
        );
        let name = std::path::Path::new(&path)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let (ma, mb) = (timing::median(&ta), timing::median(&tb));
        println!(
            "{name:<22} {:>12.2} {:>12.2} {:>7.3}x",
            ma * 1e3,
            mb * 1e3,
            ma / mb
        );
    }
}
