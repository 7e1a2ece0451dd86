use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct DotArgs {
    /// An ONNX model or a `.trtc` plan (drawn with one cluster per segment).
    pub model: PathBuf,
    /// Where to write the DOT file.
    #[arg(short, long)]
    pub output: PathBuf,
}

pub fn dot(a: DotArgs) -> Result<()> {
    let title = a.model.display().to_string();
    let (text, nodes) = match super::load_any(&a.model)? {
        super::Loaded::Model(g) => {
            let opts = trtc::ir::dot::DotOptions {
                title: Some(title),
                ..Default::default()
            };
            (trtc::ir::dot::to_dot(&g, &opts), g.compute_node_count())
        }
        super::Loaded::Plan(p) => (
            trtc::backend::dot::plan_to_dot(&p, &title),
            p.graph.compute_node_count(),
        ),
    };
    std::fs::write(&a.output, text).with_context(|| format!("writing {}", a.output.display()))?;
    tracing::info!("wrote {} ({nodes} nodes)", a.output.display());
    Ok(())
}
