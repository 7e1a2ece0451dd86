//! The typed compile report: optimizer passes, segments, fallback table, boundary bytes.

use crate::options::CompileOptions;
use crate::partition::{Partition, SegmentBackend};
use crate::support::FallbackReason;
use serde::{Deserialize, Serialize};
use trtc_ir::{subgraph_io, Graph, Outlet};
use trtc_optimizer::PipelineReport;

/// A tensor crossing a segment boundary, with its size at batch 1.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BoundaryTensor {
    pub name: String,
    pub tensor: String,
    pub bytes_batch1: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SegmentReport {
    pub id: usize,
    pub backend: SegmentBackend,
    /// Nodes after optimization (a fused node counts once).
    pub nodes: usize,
    /// Nodes of the original model these stand for.
    pub original_nodes: usize,
    pub inputs: Vec<BoundaryTensor>,
    pub outputs: Vec<BoundaryTensor>,
    /// Bytes read and written across the boundary, at batch 1.
    pub boundary_bytes_batch1: u64,
    /// The engine that runs it: "tract" until a GPU engine is built.
    pub engine: String,
    /// Why its GPU engine failed to build, where it did (the segment then runs on tract).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_error: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FallbackReport {
    pub node: String,
    pub op: String,
    pub reason: String,
    pub detail: FallbackReason,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CompileReport {
    pub model: String,
    pub trtc_version: String,
    pub options: CompileOptions,
    pub passes: Vec<trtc_optimizer::PassReport>,
    pub optimizer: PipelineReport,
    pub segments: Vec<SegmentReport>,
    pub fallback: Vec<FallbackReport>,
    pub boundary_bytes_batch1: u64,
    /// A model with dynamic dims past the batch: the report of each `--shapes` profile
    /// built at compile time (the graph specialized for it, optimized and partitioned).
    #[serde(default)]
    pub shapes: Vec<ShapeReport>,
    /// The model's inputs have dynamic dims past the batch (or its shape arithmetic reads
    /// the batch): its engines are built per input shape, and `segments` above is only
    /// the shape-independent partition.
    #[serde(default)]
    pub dynamic: bool,
    /// Layers of an fp16 plan whose values left the fp16 range on sample inputs: their
    /// segments run in fp32 (`fp16_guard`).
    #[serde(default)]
    pub fp16_overflows: Vec<crate::fp16_guard::Fp16Overflow>,
    /// An INT8 plan: what its calibration table quantized (plans of other precisions, and
    /// plans written before INT8, have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int8: Option<Int8Report>,
}

/// What an INT8 compile quantized: the calibration table applied to the optimized graph
/// as Q/DQ pairs (`trtc_quant::insert_qdq_with`, per-tensor weights, quantized residuals).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Int8Report {
    /// The calibration table's header, e.g. `TRT-8600-EntropyCalibration2`.
    pub calibration: String,
    /// Tensors the table has a scale for.
    pub tensors_scaled: usize,
    /// Layers (Conv, fused Conv, Gemm, MatMul, ConvTranspose) reading at least one
    /// DequantizeLinear.
    pub layers_quantized: usize,
    /// Weights given an INT8 DequantizeLinear (per tensor for dense convs, per channel for
    /// the rest).
    pub weights: usize,
    /// Activation tensors given a shared Q/DQ pair.
    pub activations: usize,
    /// Fused Conv residuals read through their pair.
    #[serde(default)]
    pub residuals: usize,
    /// Tensors read by quantizable layers without a scale (they stay f32).
    #[serde(default)]
    pub unscaled: Vec<String>,
    /// Each quantized conv of the GPU segments: the precision its engine runs it in, and
    /// why (the engine builder's `layer_precisions`). An INT8 engine also times an FP16
    /// alternative at each batch size and runs the faster (`trtc bench` shows which).
    #[serde(default)]
    pub layers: Vec<trtc_engine::LayerPrecision>,
    /// Layers the accuracy guard kept in float (no Q/DQ: FP16 on the GPU), by name.
    #[serde(default)]
    pub kept_float: Vec<String>,
    /// The accuracy guard's summary, where one ran.
    #[serde(default)]
    pub guard: Option<String>,
}

impl Int8Report {
    pub fn new(table: &trtc_quant::CalibrationTable, r: &trtc_quant::QdqReport) -> Self {
        Int8Report {
            calibration: table.algorithm.clone(),
            tensors_scaled: table.scales.len(),
            layers_quantized: r.layers,
            weights: r.weights,
            activations: r.activations,
            residuals: r.residuals,
            unscaled: r.unscaled.clone(),
            layers: vec![],
            kept_float: vec![],
            guard: None,
        }
    }
}

impl std::fmt::Display for Int8Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "INT8: {} tensors calibrated ({}), {} layers got Q/DQ ({} INT8 weights, {} \
             activations, {} residuals)",
            self.tensors_scaled,
            self.calibration,
            self.layers_quantized,
            self.weights,
            self.activations,
            self.residuals
        )?;
        if !self.unscaled.is_empty() {
            write!(f, "; {} unscaled tensor(s) stay f32", self.unscaled.len())?;
        }
        if let Some(g) = &self.guard {
            write!(f, "\n  accuracy guard: {g}")?;
        }
        if !self.layers.is_empty() {
            let int8 = self.layers.iter().filter(|l| l.precision == "int8").count();
            write!(
                f,
                "\n  GPU: {int8} of {} quantized convs in INT8",
                self.layers.len()
            )?;
            // The reasons the others are not, most common first.
            let mut why: Vec<(usize, &str)> = vec![];
            for l in self.layers.iter().filter(|l| l.precision != "int8") {
                match why.iter_mut().find(|(_, w)| *w == l.why) {
                    Some((n, _)) => *n += 1,
                    None => why.push((1, &l.why)),
                }
            }
            why.sort_by_key(|w| std::cmp::Reverse(w.0));
            for (n, w) in why {
                write!(f, "\n    {n} in FP16: {w}")?;
            }
        }
        Ok(())
    }
}

/// One input-shape key of a dynamic model, as compiled.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShapeReport {
    /// `x:3x640x640`: each input's dims past the batch.
    pub shapes: String,
    /// Specialization, optimization, partition and engine build (tactic timing excluded).
    pub build_seconds: f64,
    pub report: CompileReport,
}

impl CompileReport {
    /// Nodes of the original model (before fusion) in GPU segments, and in all.
    pub fn gpu_original_nodes(&self) -> (usize, usize) {
        let gpu = self
            .segments
            .iter()
            .filter(|s| s.backend == SegmentBackend::Gpu && s.engine_error.is_none())
            .map(|s| s.original_nodes)
            .sum();
        let all = self.segments.iter().map(|s| s.original_nodes).sum();
        (gpu, all)
    }

    pub fn gpu_segment_count(&self) -> usize {
        self.segments
            .iter()
            .filter(|s| s.backend == SegmentBackend::Gpu && s.engine_error.is_none())
            .count()
    }
}

fn boundary(g: &Graph, outlets: &[Outlet]) -> Vec<BoundaryTensor> {
    outlets
        .iter()
        .map(|&o| {
            let t = g.tensor(o);
            let elems: u64 = t
                .shape
                .as_ref()
                .map(|s| s.iter().map(|d| d.at_batch_one()).product())
                .unwrap_or(0);
            let size = t.dtype.and_then(|d| d.size_of()).unwrap_or(0) as u64;
            BoundaryTensor {
                name: t.name.clone(),
                tensor: t.describe(),
                bytes_batch1: elems * size,
            }
        })
        .collect()
}

impl CompileReport {
    pub fn new(
        model: &str,
        g: &Graph,
        p: &Partition,
        opts: &CompileOptions,
        optimizer: PipelineReport,
    ) -> trtc_ir::Result<Self> {
        let mut segments = vec![];
        for s in &p.segments {
            let io = subgraph_io(g, &s.nodes)?;
            let inputs = boundary(g, &io.inputs);
            let outputs = boundary(g, &io.outputs);
            let bytes = inputs.iter().chain(&outputs).map(|b| b.bytes_batch1).sum();
            segments.push(SegmentReport {
                id: s.id,
                backend: s.backend,
                nodes: s.nodes.len(),
                original_nodes: s.nodes.iter().map(|&n| g.node(n).origin.len().max(1)).sum(),
                inputs,
                outputs,
                boundary_bytes_batch1: bytes,
                engine: "tract".into(),
                engine_error: None,
            });
        }
        let fallback = p
            .fallback
            .iter()
            .map(|f| FallbackReport {
                node: g.node(f.node).name.clone(),
                op: g.node(f.node).label(),
                reason: f.reason.to_string(),
                detail: f.reason.clone(),
            })
            .collect();
        let total = segments
            .iter()
            .map(|s: &SegmentReport| s.boundary_bytes_batch1)
            .sum();
        Ok(CompileReport {
            model: model.into(),
            trtc_version: env!("CARGO_PKG_VERSION").into(),
            options: opts.clone(),
            passes: optimizer.passes.clone(),
            optimizer,
            segments,
            fallback,
            boundary_bytes_batch1: total,
            shapes: vec![],
            dynamic: trtc_ir::needs_specialization(g),
            fp16_overflows: vec![],
            int8: None,
        })
    }
}

impl CompileReport {
    /// Record GPU segments whose engine failed to build, `(segment id, error)`: each runs on
    /// tract, and each of its nodes gets the failure as its fallback reason.
    pub fn note_engine_failures(&mut self, g: &Graph, p: &Partition, failures: &[(usize, String)]) {
        for (id, error) in failures {
            if let Some(s) = self.segments.iter_mut().find(|s| s.id == *id) {
                s.engine = "tract".into();
                s.engine_error = Some(error.clone());
            }
            let Some(seg) = p.segments.iter().find(|s| s.id == *id) else {
                continue;
            };
            for &n in &seg.nodes {
                let reason = FallbackReason::EngineBuildFailed(error.clone());
                self.fallback.push(FallbackReport {
                    node: g.node(n).name.clone(),
                    op: g.node(n).label(),
                    reason: reason.to_string(),
                    detail: reason,
                });
            }
        }
    }
}

impl std::fmt::Display for CompileReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.options.input_format != crate::options::InputFormat::F32Nchw {
            writeln!(f, "input format: {}", self.options.input_format.describe())?;
        }
        if let Some(int8) = &self.int8 {
            writeln!(f, "{int8}")?;
        }
        if !self.shapes.is_empty() {
            writeln!(
                f,
                "input shapes decide the graph: engines are built per input shape; {} built now",
                self.shapes.len()
            )?;
            for s in &self.shapes {
                let (gpu, all) = s.report.gpu_original_nodes();
                writeln!(
                    f,
                    "input shapes {}: {gpu}/{all} original nodes on the GPU in {} GPU segment(s), built in {:.2} s",
                    s.shapes,
                    s.report.gpu_segment_count(),
                    s.build_seconds
                )?;
                write!(f, "{}", s.report)?;
            }
            return Ok(());
        }
        if self.dynamic {
            writeln!(
                f,
                "input shapes decide the graph (dynamic dims, or shape arithmetic on the batch): \
                 engines are built for each input shape when it first arrives (give --shapes \
                 to build them now)"
            )?;
            return Ok(());
        }
        writeln!(
            f,
            "{} segment(s), min segment size {} (nodes counted after fusion)",
            self.segments.len(),
            self.options.min_segment_size
        )?;
        writeln!(
            f,
            "  {:>3} {:<4} {:>6} {:>9} {:>12}  inputs -> outputs",
            "id", "on", "nodes", "original", "bytes(b=1)"
        )?;
        for s in &self.segments {
            let names = |v: &[BoundaryTensor]| {
                v.iter()
                    .map(|b| b.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let mut io = format!("{} -> {}", names(&s.inputs), names(&s.outputs));
            if io.len() > 70 {
                io = format!("{}…", io.chars().take(69).collect::<String>());
            }
            writeln!(
                f,
                "  {:>3} {:<4} {:>6} {:>9} {:>12}  {io}",
                s.id,
                s.backend.to_string(),
                s.nodes,
                s.original_nodes,
                s.boundary_bytes_batch1
            )?;
        }
        if self.fallback.is_empty() {
            writeln!(f, "no node falls back to the CPU")?;
        } else {
            writeln!(f, "CPU fallback ({} nodes):", self.fallback.len())?;
            for fb in &self.fallback {
                writeln!(f, "  {:<40} {:<22} {}", fb.node, fb.op, fb.reason)?;
            }
        }
        if !self.fp16_overflows.is_empty() {
            writeln!(
                f,
                "fp16 range: {} layer(s) left it on sample inputs; their segments run in fp32:",
                self.fp16_overflows.len()
            )?;
            for o in &self.fp16_overflows {
                writeln!(
                    f,
                    "  {:<40} reached |x| = {:.3e} (segment {})",
                    o.node, o.max_abs, o.segment
                )?;
            }
        }
        Ok(())
    }
}
