//! Subcommands. Each lives in its own file and returns `anyhow::Result`.

mod dot;
mod inspect;
mod optimize;
mod run;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "trtc", version, about = "trtc: compile and run ONNX models (TF-TRT style, in Rust)")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Inputs, outputs, op histogram, node and parameter counts, FLOPs at batch 1.
    Inspect(inspect::InspectArgs),
    /// Write the graph as Graphviz DOT.
    Dot(dot::DotArgs),
    /// Run a model on an image (classification) or on .npy tensors.
    Run(run::RunArgs),
    /// Optimize a model and write it back as standard ONNX.
    Optimize(optimize::OptimizeArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Inspect(a) => inspect::inspect(a),
        Command::Dot(a) => dot::dot(a),
        Command::Run(a) => run::run(a),
        Command::Optimize(a) => optimize::optimize(a),
    }
}

/// Load a model, naming the file in the error.
pub fn load(path: &std::path::Path) -> anyhow::Result<trtc::ir::Graph> {
    use anyhow::Context;
    trtc::ir::load_model(path).with_context(|| format!("loading {}", path.display()))
}
