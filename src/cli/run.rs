use super::Runner;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use trtc::ir::Tensor;
use trtc::preprocess::{image_to_pixels, image_to_tensor};

#[derive(Args, Debug)]
pub struct RunArgs {
    /// An ONNX model or a `.trtc` plan.
    pub model: PathBuf,
    /// Classify this image (the model's single input gets the preprocessed image). Give
    /// several, or directories, to classify many: in batches of --batch, streamed through
    /// the pipelined runner, one line each (path, class, probability, label).
    #[arg(long, num_args = 1.., conflicts_with = "input")]
    pub image: Vec<PathBuf>,
    /// Images per batch when classifying several (at most the plan's --max-batch-size).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    #[command(flatten)]
    pub preprocess: super::image_args::ImageArgs,
    /// Class names, one per line (default: data/imagenet_classes.txt when the model has 1000 classes).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// How many classes to print.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// NAME=FILE.npy for each model input.
    #[arg(long, value_name = "NAME=FILE.npy")]
    pub input: Vec<String>,
    /// Where `--input` runs write each output as `<output name>.npy`.
    #[arg(long, default_value = ".")]
    pub output_dir: PathBuf,
}

pub fn run(a: RunArgs) -> Result<()> {
    let loaded = super::load_any(&a.model)?;
    let model = Runner::new(&loaded)?;
    if let [image] = a.image.as_slice() {
        if !image.is_dir() {
            return classify(&model, image, &a);
        }
    }
    if !a.image.is_empty() {
        if model.inputs().len() != 1 {
            bail!(
                "--image needs a model with one input; this one has {}",
                model.inputs().len()
            );
        }
        let images = super::run_images::image_files(&a.image)?;
        warn_unused_normalization(&model, &a);
        super::run_images::classify_many(&model, &images, a.batch, &a)
    } else if !a.input.is_empty() {
        run_tensors(&model, &a)
    } else {
        bail!("give --image FILE or --input NAME=FILE.npy")
    }
}

fn classify(model: &Runner, image: &Path, a: &RunArgs) -> Result<()> {
    if model.inputs().len() != 1 {
        bail!(
            "--image needs a model with one input; this one has {}",
            model.inputs().len()
        );
    }
    let pre = a.preprocess.preprocess()?;
    warn_unused_normalization(model, a);
    let input = image_input(model, image, &pre)?;
    let out = model.run(vec![input])?;
    let logits = out.first().context("the model has no output")?;
    let view = logits
        .to_plain_array_view::<f32>()
        .context("the first output is not f32 logits")?;
    let logits: Vec<f32> = view.iter().copied().collect();
    let labels = read_labels(a.labels.as_deref(), logits.len())?;
    println!("{}  ({} classes)", image.display(), logits.len());
    for (rank, s) in trtc::classify::top_k(&logits, a.top, labels.as_deref())
        .iter()
        .enumerate()
    {
        println!(
            "{:>2}. {:>5}  {:.4}  {}",
            rank + 1,
            s.index,
            s.probability,
            s.label.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

/// One image as `model`'s input (`[1, ..]`): a plan compiled with `--input-format u8-nhwc`
/// takes the pixels and normalizes them itself (with the mean and std given at compile
/// time), anything else the normalized f32 NCHW image.
pub(super) fn image_input(
    model: &Runner,
    image: &Path,
    pre: &trtc::preprocess::Preprocess,
) -> Result<Tensor> {
    Ok(match model.inputs().first().and_then(|i| i.dtype) {
        Some(trtc::ir::DType::U8) => image_to_pixels(image, pre)?,
        _ => image_to_tensor(image, pre)?,
    })
}

/// Say once that `--mean`/`--std` go unused on a model that takes u8 pixels.
pub(super) fn warn_unused_normalization(model: &Runner, a: &RunArgs) {
    let u8_input = model.inputs().first().and_then(|i| i.dtype) == Some(trtc::ir::DType::U8);
    if u8_input && (a.preprocess.mean != "127" || a.preprocess.std != "128") {
        tracing::warn!(
            "--mean and --std are not used: this model takes u8 pixels and normalizes \
             them with the mean and std given to `trtc compile`"
        );
    }
}

pub(super) fn read_labels(path: Option<&Path>, classes: usize) -> Result<Option<Vec<String>>> {
    let default = Path::new("data/imagenet_classes.txt");
    let path = match path {
        Some(p) => p,
        None if classes == 1000 && default.exists() => default,
        None => return Ok(None),
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading labels {}", path.display()))?;
    Ok(Some(text.lines().map(|l| l.trim().to_string()).collect()))
}

fn run_tensors(model: &Runner, a: &RunArgs) -> Result<()> {
    let mut given = std::collections::HashMap::new();
    for spec in &a.input {
        let (name, file) = spec
            .split_once('=')
            .with_context(|| format!("--input `{spec}`: expected NAME=FILE.npy"))?;
        given.insert(name.to_string(), PathBuf::from(file));
    }
    let mut inputs: Vec<Tensor> = vec![];
    for info in model.inputs() {
        let file = given.remove(&info.name).with_context(|| {
            format!(
                "no --input for model input `{}` ({})",
                info.name,
                info.describe()
            )
        })?;
        let dtype = info.dtype.unwrap_or(trtc::ir::DType::F32);
        let t = match trtc::npy::read_npy(&file, dtype) {
            Ok(t) => t,
            Err(e) => {
                // A file of another type the model could have taken (f32 for a plan
                // compiled with `--input-format u8-nhwc`, say): say which.
                use trtc::ir::DType::*;
                for other in [F32, U8, F64, I64, I32, I8, Bool] {
                    let read = (other != dtype).then(|| trtc::npy::read_npy(&file, other));
                    if let Some(Ok(t)) = read {
                        let shape = trtc::ir::shape::shape_of(t.shape());
                        bail!(
                            "input `{}`: expected {}, given {other}{} ({} is not a {dtype} .npy file)",
                            info.name,
                            info.describe(),
                            trtc::ir::shape::shape_to_string(&shape),
                            file.display()
                        );
                    }
                }
                return Err(e).with_context(|| format!("input `{}`", info.name));
            }
        };
        inputs.push(t);
    }
    if let Some(extra) = given.keys().next() {
        bail!("--input `{extra}`: the model has no input of that name");
    }
    let outputs = model.run(inputs)?;
    std::fs::create_dir_all(&a.output_dir)
        .with_context(|| format!("creating {}", a.output_dir.display()))?;
    for (info, t) in model.outputs().iter().zip(&outputs) {
        let path = a
            .output_dir
            .join(format!("{}.npy", trtc::npy::sanitize_file_name(&info.name)));
        trtc::npy::write_npy(&path, t)?;
        println!("{} {:?} -> {}", info.name, t.shape(), path.display());
    }
    Ok(())
}
