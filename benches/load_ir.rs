//! Load InceptionV3 into the IR: wall time (first load and median of repeats) and peak RSS.
//!
//! `cargo bench --bench load_ir [-- MODEL.onnx]` (default ../shared/models/inception_v3.onnx).
//! Peak RSS is the process's VmHWM right after the first load, compared with the file size.

use std::time::Instant;

fn status_kb(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let path = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_else(|| {
            format!(
                "{}/../shared/models/inception_v3.onnx",
                env!("CARGO_MANIFEST_DIR")
            )
        });
    let size = match std::fs::metadata(&path) {
        Ok(m) => m.len(),
        Err(e) => {
            eprintln!("cannot benchmark: {path}: {e}");
            std::process::exit(1);
        }
    };
    let rss_before = status_kb("VmRSS:").unwrap_or(0);
    let t = Instant::now();
    let g = trtc::ir::load_model(&path).unwrap_or_else(|e| {
        eprintln!("load failed: {e}");
        std::process::exit(1)
    });
    let first = t.elapsed();
    let peak = status_kb("VmHWM:").unwrap_or(0) * 1024;
    let nodes = g.compute_node_count();
    drop(g);
    let mut times = vec![];
    for _ in 0..9 {
        let t = Instant::now();
        let g = trtc::ir::load_model(&path).expect("loaded once already");
        times.push(t.elapsed().as_secs_f64());
        drop(g);
    }
    times.sort_by(f64::total_cmp);
    let file_mb = size as f64 / 1e6;
    println!("model            {path}");
    println!("file size        {file_mb:.1} MB");
    println!("nodes            {nodes}");
    println!("first load       {:.3} s", first.as_secs_f64());
    println!(
        "median of 9      {:.3} s (min {:.3}, max {:.3})",
        times[4], times[0], times[8]
    );
    println!(
        "RSS before load  {:.1} MB",
        rss_before as f64 * 1024.0 / 1e6
    );
    println!(
        "peak RSS         {:.1} MB = {:.2}x file size",
        peak as f64 / 1e6,
        peak as f64 / size as f64
    );
}
