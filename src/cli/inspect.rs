use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// An ONNX model or a `.trtc` plan.
    pub model: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn inspect(a: InspectArgs) -> Result<()> {
    match super::load_any(&a.model)? {
        super::Loaded::Model(g) => {
            let summary = trtc::ir::stats::summarize(&g);
            if a.json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                print!("{summary}");
            }
        }
        super::Loaded::Plan(p) => {
            if a.json {
                println!("{}", serde_json::to_string_pretty(&p.report)?);
            } else {
                println!(
                    "plan of {} (trtc {})",
                    p.report.model, p.report.trtc_version
                );
                let o = &p.options;
                println!(
                    "precision {:?}, min segment size {}, max batch {}, workspace {} B, cached engines {}, backend {:?}, denied {:?}",
                    o.precision, o.min_segment_size, o.max_batch_size, o.workspace_bytes, o.max_cached_engines, o.backend, o.deny_ops
                );
                print!("{}", trtc::ir::stats::summarize(&p.graph));
                print!("{}", p.report);
            }
        }
    }
    Ok(())
}
