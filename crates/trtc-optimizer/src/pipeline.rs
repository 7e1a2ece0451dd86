//! A pipeline: a named list of passes run in order, repeatedly, until none rewrites
//! anything (a fixed point) or the iteration cap is reached.

use crate::error::{OptError, Result};
use crate::pass::{Pass, Skip};
use crate::passes::*;
use serde::{Deserialize, Serialize};
use std::time::Instant;
use trtc_ir::Graph;

/// Every pass, in the default pipeline's order.
pub const PASS_NAMES: &[&str] = &[
    "dead-layers",
    "constant-folding",
    "shape-from-input",
    "pad-into-conv",
    "bn-folding",
    "pool-conv-swap",
    "vertical-fusion",
    "horizontal-fusion",
];

pub fn pass_by_name(name: &str) -> Result<Box<dyn Pass>> {
    Ok(match name {
        "dead-layers" => Box::new(DeadLayers),
        "constant-folding" => Box::new(ConstantFolding),
        "shape-from-input" => Box::new(ShapeFromInput),
        "pad-into-conv" => Box::new(PadIntoConv),
        "bn-folding" => Box::new(BnFolding),
        "pool-conv-swap" => Box::new(PoolConvSwap),
        "vertical-fusion" => Box::new(VerticalFusion),
        "horizontal-fusion" => Box::new(HorizontalFusion),
        _ => {
            return Err(OptError::UnknownPass {
                name: name.into(),
                valid: PASS_NAMES.join(", "),
            })
        }
    })
}

/// What one pass did over the whole pipeline run (summed over iterations).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PassReport {
    pub name: String,
    /// Computing nodes before its first run and after its last.
    pub nodes_before: usize,
    pub nodes_after: usize,
    pub rewrites: usize,
    pub ms: f64,
    pub skipped: Vec<Skip>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PipelineReport {
    pub pipeline: String,
    pub iterations: usize,
    pub reached_fixed_point: bool,
    pub nodes_before: usize,
    pub nodes_after: usize,
    pub passes: Vec<PassReport>,
}

pub struct Pipeline {
    pub name: String,
    pub passes: Vec<Box<dyn Pass>>,
    pub max_iterations: usize,
    /// Check graph validity after every pass (on by default in debug builds and tests).
    pub validate_each_pass: bool,
}

impl Pipeline {
    /// The default pipeline: every pass, at most 8 rounds.
    pub fn default_pipeline() -> Pipeline {
        Self::from_names("default", PASS_NAMES).unwrap_or_else(|_| Pipeline::new("default", vec![]))
    }

    pub fn new(name: &str, passes: Vec<Box<dyn Pass>>) -> Pipeline {
        Pipeline {
            name: name.into(),
            passes,
            max_iterations: 8,
            validate_each_pass: cfg!(debug_assertions),
        }
    }

    /// A pipeline of the named passes, in the order given.
    pub fn from_names<S: AsRef<str>>(name: &str, names: &[S]) -> Result<Pipeline> {
        let passes = names
            .iter()
            .map(|n| pass_by_name(n.as_ref().trim()))
            .collect::<Result<Vec<_>>>()?;
        Ok(Pipeline::new(name, passes))
    }

    /// Run to a fixed point; shapes are re-inferred after every pass that rewrote.
    pub fn run(&self, g: &mut Graph) -> Result<PipelineReport> {
        let nodes_before = g.compute_node_count();
        let mut reports: Vec<PassReport> = self
            .passes
            .iter()
            .map(|p| PassReport {
                name: p.name().into(),
                nodes_before: 0,
                nodes_after: 0,
                rewrites: 0,
                ms: 0.0,
                skipped: vec![],
            })
            .collect();
        let mut iterations = 0;
        let mut fixed = false;
        while iterations < self.max_iterations {
            iterations += 1;
            let mut changed = 0;
            for (pass, report) in self.passes.iter().zip(reports.iter_mut()) {
                let before = g.compute_node_count();
                let t = Instant::now();
                let outcome = pass.run(g)?;
                if outcome.rewrites > 0 {
                    trtc_ir::infer_shapes(g).map_err(|e| OptError::InvalidAfterPass {
                        pass: pass.name().into(),
                        source: e,
                    })?;
                }
                report.ms += t.elapsed().as_secs_f64() * 1e3;
                if self.validate_each_pass {
                    g.validate().map_err(|e| OptError::InvalidAfterPass {
                        pass: pass.name().into(),
                        source: e,
                    })?;
                }
                if iterations == 1 {
                    report.nodes_before = before;
                }
                report.nodes_after = g.compute_node_count();
                report.rewrites += outcome.rewrites;
                for s in outcome.skipped {
                    if !report.skipped.contains(&s) {
                        report.skipped.push(s);
                    }
                }
                changed += outcome.rewrites;
            }
            if changed == 0 {
                fixed = true;
                break;
            }
        }
        Ok(PipelineReport {
            pipeline: self.name.clone(),
            iterations,
            reached_fixed_point: fixed,
            nodes_before,
            nodes_after: g.compute_node_count(),
            passes: reports,
        })
    }
}

impl std::fmt::Display for PipelineReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "pipeline `{}`: {} -> {} nodes in {} iteration(s){}",
            self.pipeline,
            self.nodes_before,
            self.nodes_after,
            self.iterations,
            if self.reached_fixed_point {
                ""
            } else {
                " (cap reached before a fixed point)"
            }
        )?;
        writeln!(
            f,
            "  {:<20} {:>7} {:>7} {:>8} {:>9}",
            "pass", "before", "after", "rewrites", "ms"
        )?;
        for p in &self.passes {
            writeln!(
                f,
                "  {:<20} {:>7} {:>7} {:>8} {:>9.1}",
                p.name, p.nodes_before, p.nodes_after, p.rewrites, p.ms
            )?;
            for s in p.skipped.iter().take(5) {
                writeln!(f, "      left `{}` ({}): {}", s.node, s.op, s.reason)?;
            }
            if p.skipped.len() > 5 {
                writeln!(f, "      ... and {} more left alone", p.skipped.len() - 5)?;
            }
        }
        Ok(())
    }
}
