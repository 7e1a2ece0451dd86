//! `trtc bench --accuracy-data`: the accuracy column of the benchmark table. Each
//! precision's plan classifies held-out images one at a time, and its top-1 (argmax of
//! output 0) is compared with the FP32 model's on tract.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use trtc::backend::HybridModel;
use trtc::ir::{CpuModel, Graph, Tensor};
use trtc::preprocess::{image_to_tensor, Preprocess};

/// The held-out images: the first `limit` of `paths` (directories expanded, sorted),
/// preprocessed into `[1, 3, S, S]` tensors.
pub(super) fn load_images(
    paths: &[PathBuf],
    limit: usize,
    preprocess: &Preprocess,
) -> Result<Vec<Tensor>> {
    let (images, npys) = super::calibrate::gather(paths, "--accuracy-data")?;
    if !npys.is_empty() {
        bail!("--accuracy-data takes images, not .npy files");
    }
    if images.is_empty() {
        bail!("--accuracy-data: no images found");
    }
    images
        .iter()
        .take(limit.max(1))
        .map(|p| image_to_tensor(p, preprocess).with_context(|| p.display().to_string()))
        .collect()
}

/// The top-1 class of output 0 (`trtc::classify::top1`, as `trtc run` reports it).
fn argmax(t: &Tensor) -> Result<usize> {
    let v = trtc::ir::tensor::tensor_to_f32s(t).context("output 0 is not a float tensor")?;
    Ok(trtc::classify::top1(&v).0)
}

/// The FP32 model's top-1 for each image (tract, the model as loaded).
pub(super) fn reference_top1(g: &Graph, images: &[Tensor]) -> Result<Vec<usize>> {
    let m = CpuModel::new(g).context("the FP32 reference")?;
    images
        .iter()
        .map(|x| {
            let out = m.run(vec![x.clone()])?;
            argmax(out.first().context("the model has no output")?)
        })
        .collect()
}

/// The share of images whose top-1 through `model` is the reference's.
pub(super) fn top1_agreement(
    model: &HybridModel,
    images: &[Tensor],
    reference: &[usize],
) -> Result<f64> {
    let mut same = 0;
    for (x, &want) in images.iter().zip(reference) {
        let out = model.run(vec![x.clone()])?;
        if argmax(out.first().context("the model has no output")?)? == want {
            same += 1;
        }
    }
    Ok(same as f64 / images.len().max(1) as f64)
}
