//! `trtc run MODEL --image A --image DIR ... --batch N`: many images, one line each.
//!
//! The images (directories give their `.png`, `.jpg` and `.jpeg` files, by name) are
//! classified in batches of `--batch`, in order. A plan streams them through
//! `HybridModel::run_pipelined_with`: each batch's images are decoded and copied into
//! their rows of the stream's (pinned) input buffers while earlier batches compute, and on a model that is one GPU
//! engine uploads, compute and downloads overlap. A batch with an image that does not decode
//! is reported with its images and the rest still run; the command then exits with 1. A last
//! batch of fewer images is filled up with blank images (their rows dropped), so that every
//! batch has the shape the stream's engines were built for. An ONNX model runs the batches
//! one after another through tract.

use super::run::{image_input, read_labels, RunArgs};
use super::Runner;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use trtc::ir::Tensor;

/// The image files `paths` name: files as given, directories' images by name.
pub fn image_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let (images, npys) = super::calibrate::gather(paths, "--image")?;
    if let Some(npy) = npys.first() {
        bail!(
            "--image {}: a .npy file (give it with --input NAME=FILE.npy)",
            npy.display()
        );
    }
    Ok(images)
}

/// Classify every image, `batch` at a time, printing `path  class  probability  label`.
pub fn classify_many(model: &Runner, images: &[PathBuf], batch: usize, a: &RunArgs) -> Result<()> {
    if batch == 0 {
        bail!("--batch must be at least 1");
    }
    let pre = a.preprocess.preprocess()?;
    // Each image of a batch as the model takes it ([1, ..]).
    let decode = |paths: &[PathBuf]| -> Result<Vec<Tensor>> {
        paths.iter().map(|p| image_input(model, p, &pre)).collect()
    };
    // The batch's input for tract: the images stacked on axis 0, and blank images after
    // the last ones up to `batch` (their rows are dropped).
    let load = |paths: &[PathBuf]| -> Result<Tensor> {
        let mut each = decode(paths)?;
        if let Some(first) = each.first() {
            let blank = Tensor::zero_dt(first.datum_type(), first.shape())
                .context("a blank image for the last batch")?;
            each.resize(batch.max(each.len()), blank);
        }
        Tensor::stack_tensors(0, &each).context("stacking the batch")
    };
    let full: Vec<&[PathBuf]> = images.chunks(batch).collect();
    let mut failed = 0usize;
    let mut labels: Option<Option<Vec<String>>> = None;
    let mut report = |paths: &[PathBuf], r: Result<Vec<Tensor>>| -> Result<()> {
        let logits = match r {
            Ok(outs) => outs.into_iter().next().context("the model has no output")?,
            Err(e) => {
                failed += paths.len();
                let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                eprintln!("error: {} not classified: {e:#}", names.join(", "));
                return Ok(());
            }
        };
        let view = logits
            .to_plain_array_view::<f32>()
            .context("the first output is not f32 logits")?;
        // One row per image of the batch, blank ones included.
        let rows = logits.shape().first().copied().unwrap_or(1);
        let per_image = view.len() / rows.max(1);
        let values: Vec<f32> = view.iter().copied().collect();
        if labels.is_none() {
            labels = Some(read_labels(a.labels.as_deref(), per_image)?);
        }
        let names = labels.as_ref().and_then(|l| l.as_deref());
        for (path, row) in paths.iter().zip(values.chunks(per_image.max(1))) {
            let top = trtc::classify::top_k(row, 1, names);
            if let Some(s) = top.first() {
                println!(
                    "{}  {:>5}  {:.4}  {}",
                    path.display(),
                    s.index,
                    s.probability,
                    s.label.as_deref().unwrap_or("")
                );
            }
        }
        Ok(())
    };
    let mut printed: Result<()> = Ok(());
    match model {
        Runner::Hybrid(h) if !full.is_empty() => {
            let first = decode(full[0]);
            let shapes = vec![match first.as_ref().ok().and_then(|e| e.first()) {
                Some(t) => [&[batch], &t.shape()[1..]].concat(),
                None => batch_shape(model, batch, &pre),
            }];
            let mut first = Some(first);
            let pipelined = h.run_pipelined_with(
                &shapes,
                trtc::backend::runtime::DEFAULT_DEPTH,
                |i, bufs| {
                    let paths = full.get(i)?;
                    let each = match first.take() {
                        Some(each) => each,
                        None => decode(paths),
                    };
                    Some(match each {
                        Ok(each) => write_rows(bufs[0], &each, batch),
                        Err(e) => Err(format!("{e:#}")),
                    })
                },
                |i, r| {
                    if printed.is_ok() {
                        printed = report(full[i], r.map_err(anyhow::Error::from));
                    }
                },
            );
            pipelined.context("classifying the images")?;
        }
        _ => {
            for paths in full {
                let r = load(paths).and_then(|t| model.run(vec![t]));
                report(paths, r)?;
            }
        }
    }
    printed?;
    if failed > 0 {
        bail!(
            "{failed} of {} images could not be classified",
            images.len()
        );
    }
    Ok(())
}

/// Each image's bytes into its row of the stream's input buffer `dst` (`batch` rows), the
/// rows after the last image zeroed (blank images, their outputs dropped).
fn write_rows(dst: &mut [u8], each: &[Tensor], batch: usize) -> std::result::Result<(), String> {
    let row = dst.len() / batch.max(1);
    for (t, d) in each.iter().zip(dst.chunks_mut(row.max(1))) {
        let src = t.as_bytes();
        if src.len() != d.len() {
            return Err(format!("an image of shape {:?}", t.shape()));
        }
        d.copy_from_slice(src);
    }
    let used = (each.len() * row).min(dst.len());
    dst[used..].fill(0);
    Ok(())
}

/// The input shape of a batch of `batch` images for `model`: `[batch, 3, size, size]`, or
/// `[batch, size, size, 3]` for a model that takes u8 pixels.
fn batch_shape(model: &Runner, batch: usize, pre: &trtc::preprocess::Preprocess) -> Vec<usize> {
    let s = pre.size as usize;
    match model.inputs().first().and_then(|i| i.dtype) {
        Some(trtc::ir::DType::U8) => vec![batch, s, s, 3],
        _ => vec![batch, 3, s, s],
    }
}
