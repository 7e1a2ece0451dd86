//! Top-1 agreement of two classifiers on a directory of images, on tract: how often an
//! INT8-simulated (QDQ) model picks the same class as the f32 model it was made from.
//!
//! Usage: `cargo run --example top1_agreement -- FLOAT.onnx QDQ.onnx IMAGE_DIR [--limit N]`
//!
//! Each image (`.jpg`, `.jpeg`, `.png`, by name) is preprocessed as `trtc run --image` does
//! with its default flags (shorter side to 256, centre crop 224, `(p - 127) / 128`), run
//! through both models one at a time, and the argmax of output 0 compared. Prints
//! `agreement A/N (P%)` over all images and over those where the f32 model is confident
//! (top-1 softmax probability >= 0.5), and the images where the two disagree.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use trtc::classify::top1;
use trtc::ir::{load_model, CpuModel};
use trtc::preprocess::{image_to_tensor, Preprocess};

/// The f32 model's top-1 probability from which an image counts as confident.
const CONFIDENT: f32 = 0.5;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut pos, mut limit) = (vec![], usize::MAX);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--limit" {
            limit = it.next().context("--limit N")?.parse()?;
        } else {
            pos.push(a.clone());
        }
    }
    let [float, qdq, dir] = pos.as_slice() else {
        bail!("usage: top1_agreement FLOAT.onnx QDQ.onnx IMAGE_DIR [--limit N]");
    };
    let fm = CpuModel::new(&load_model(float)?)?;
    let qm = CpuModel::new(&load_model(qdq)?)?;
    let mut images: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    images.retain(|p| {
        matches!(
            p.extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("jpg" | "jpeg" | "png")
        )
    });
    images.sort();
    images.truncate(limit);
    let pre = Preprocess::default();
    let (mut same, mut n) = (0, 0);
    let (mut conf_same, mut conf_n) = (0, 0);
    for p in &images {
        let x = image_to_tensor(p, &pre)?;
        let a = fm.run(vec![x.clone()])?;
        let b = qm.run(vec![x])?;
        let la = trtc::ir::tensor::tensor_to_f32s(&a[0]).context("f32 output")?;
        let (ta, pa) = top1(&la);
        let confident = pa >= CONFIDENT;
        let (tb, _) = top1(&trtc::ir::tensor::tensor_to_f32s(&b[0]).context("f32 output")?);
        n += 1;
        conf_n += usize::from(confident);
        if ta == tb {
            same += 1;
            conf_same += usize::from(confident);
        } else {
            println!("differs: {} (f32 {ta} p={pa:.2}, int8 {tb})", p.display());
        }
    }
    if n == 0 {
        bail!("no images in {dir}");
    }
    println!(
        "agreement {same}/{n} ({:.1}%); on the {conf_n} where f32's top-1 p >= {CONFIDENT}: \
         {conf_same}/{conf_n} ({:.1}%)",
        100.0 * same as f64 / n as f64,
        100.0 * conf_same as f64 / conf_n.max(1) as f64
    );
    Ok(())
}
