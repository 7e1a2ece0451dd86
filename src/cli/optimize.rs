use anyhow::{bail, Context, Result};
use clap::Args;
use prost::Message;
use std::path::PathBuf;
use trtc::optimizer::{Pipeline, PipelineReport, Verification};

#[derive(Args, Debug)]
pub struct OptimizeArgs {
    /// An ONNX model.
    pub model: PathBuf,
    /// Where to write the optimized ONNX model.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Comma-separated passes to run, in order (default: all). See `--passes help`.
    #[arg(long, value_delimiter = ',')]
    pub passes: Option<Vec<String>>,
    /// Write the pass report as JSON.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Write the optimized graph as DOT.
    #[arg(long)]
    pub dot: Option<PathBuf>,
    /// Run original and optimized through tract on random inputs; fail above 1e-4 relative.
    #[arg(long)]
    pub verify: bool,
}

#[derive(serde::Serialize)]
struct OptimizeReport<'a> {
    model: String,
    #[serde(flatten)]
    pipeline: &'a PipelineReport,
    verification: Option<&'a Verification>,
}

pub const VERIFY_TOLERANCE: f32 = 1e-4;

pub fn optimize(a: OptimizeArgs) -> Result<()> {
    let pipeline = match &a.passes {
        Some(names) => Pipeline::from_names("custom", names)?,
        None => Pipeline::default_pipeline(),
    };
    let original = super::load(&a.model)?;
    let mut g = original.clone();
    let report = pipeline.run(&mut g).context("optimizing")?;
    print!("{report}");
    let proto = trtc::ir::to_model_proto(&g)?;
    std::fs::write(&a.output, proto.encode_to_vec())
        .with_context(|| format!("writing {}", a.output.display()))?;
    println!("wrote {}", a.output.display());
    if let Some(path) = &a.dot {
        let opts = trtc::ir::dot::DotOptions {
            title: Some(format!("{} (optimized)", a.model.display())),
            ..Default::default()
        };
        std::fs::write(path, trtc::ir::dot::to_dot(&g, &opts))
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    let verification = if a.verify {
        let v = trtc::optimizer::verify(&original, &g, 1, 1).context("verifying")?;
        println!("verify: max abs error {:.3e}, max relative error {:.3e} (tolerance {VERIFY_TOLERANCE:.0e})", v.max_abs, v.max_rel);
        Some(v)
    } else {
        None
    };
    if let Some(path) = &a.report {
        let r = OptimizeReport {
            model: a.model.display().to_string(),
            pipeline: &report,
            verification: verification.as_ref(),
        };
        std::fs::write(path, serde_json::to_string_pretty(&r)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if let Some(v) = verification {
        // NaN fails too.
        if v.max_rel.is_nan() || v.max_rel > VERIFY_TOLERANCE {
            bail!("the optimized model differs from the original: relative error {:.3e} > {VERIFY_TOLERANCE:.0e}", v.max_rel);
        }
    }
    Ok(())
}
