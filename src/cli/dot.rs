use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct DotArgs {
    /// An ONNX model.
    pub model: PathBuf,
    /// Where to write the DOT file.
    #[arg(short, long)]
    pub output: PathBuf,
}

pub fn dot(a: DotArgs) -> Result<()> {
    let g = super::load(&a.model)?;
    let opts = trtc::ir::dot::DotOptions { title: Some(a.model.display().to_string()), ..Default::default() };
    let text = trtc::ir::dot::to_dot(&g, &opts);
    std::fs::write(&a.output, text).with_context(|| format!("writing {}", a.output.display()))?;
    eprintln!("wrote {} ({} nodes)", a.output.display(), g.compute_node_count());
    Ok(())
}
