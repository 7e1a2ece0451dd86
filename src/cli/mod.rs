//! Subcommands. Each lives in its own file and returns `anyhow::Result`.

mod bench;
mod bench_accuracy;
mod calibrate;
mod compile;
mod dot;
mod image_args;
mod inspect;
mod logging;
mod optimize;
mod run;
mod run_images;
mod table_source;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "trtc",
    version,
    about = "trtc: compile and run ONNX models (TF-TRT style, in Rust)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// More detail on stderr (-v debug, -vv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Errors only on stderr, no progress bars.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
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
    /// Optimize, partition into GPU/CPU segments, and write a `.trtc` plan.
    Compile(compile::CompileArgs),
    /// Throughput and latency per batch size and precision, plus build time.
    Bench(bench::BenchArgs),
    /// INT8 calibration on sample data: a TensorRT-format calibration cache.
    Calibrate(calibrate::CalibrateArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    logging::init(cli.verbose, cli.quiet);
    match cli.command {
        Command::Inspect(a) => inspect::inspect(a),
        Command::Dot(a) => dot::dot(a),
        Command::Run(a) => run::run(a),
        Command::Optimize(a) => optimize::optimize(a),
        Command::Compile(a) => compile::compile_cmd(a),
        Command::Bench(a) => bench::bench(a),
        Command::Calibrate(a) => calibrate::calibrate(a),
    }
}

/// A model or a compiled plan, by the file's content.
pub enum Loaded {
    Model(Box<trtc::ir::Graph>),
    Plan(Box<trtc::backend::Plan>),
}

pub fn load_any(path: &std::path::Path) -> anyhow::Result<Loaded> {
    use anyhow::Context;
    if trtc::backend::Plan::is_plan_file(path) {
        let plan = trtc::backend::Plan::read(path)
            .with_context(|| format!("loading plan {}", path.display()))?;
        Ok(Loaded::Plan(Box::new(plan)))
    } else {
        Ok(Loaded::Model(Box::new(load(path)?)))
    }
}

/// Something that runs: a model on tract, or a plan on the hybrid runtime.
pub enum Runner {
    Cpu(Box<trtc::ir::CpuModel>),
    Hybrid(Box<trtc::backend::HybridModel>),
}

impl Runner {
    pub fn new(loaded: &Loaded) -> anyhow::Result<Runner> {
        use anyhow::Context;
        Ok(match loaded {
            Loaded::Model(g) => Runner::Cpu(Box::new(
                trtc::ir::CpuModel::new(g).context("preparing the model for tract")?,
            )),
            Loaded::Plan(p) => {
                let h = trtc::backend::HybridModel::from_plan(p, trtc::gpu())
                    .context("preparing the plan")?;
                for note in &h.notes {
                    tracing::warn!("{note}");
                }
                Runner::Hybrid(Box::new(h))
            }
        })
    }

    pub fn inputs(&self) -> Vec<trtc::ir::TensorInfo> {
        match self {
            Runner::Cpu(m) => m.inputs().to_vec(),
            Runner::Hybrid(h) => h.input_infos(),
        }
    }

    pub fn outputs(&self) -> Vec<trtc::ir::TensorInfo> {
        match self {
            Runner::Cpu(m) => m.outputs().to_vec(),
            Runner::Hybrid(h) => h.output_infos(),
        }
    }

    pub fn run(&self, inputs: Vec<trtc::ir::Tensor>) -> anyhow::Result<Vec<trtc::ir::Tensor>> {
        Ok(match self {
            Runner::Cpu(m) => m.run(inputs)?,
            Runner::Hybrid(h) => h.run(inputs)?,
        })
    }
}

/// Load a model, naming the file in the error.
pub fn load(path: &std::path::Path) -> anyhow::Result<trtc::ir::Graph> {
    use anyhow::Context;
    trtc::ir::load_model(path).with_context(|| format!("loading {}", path.display()))
}
