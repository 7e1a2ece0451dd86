//! The accuracy guard: quantize, measure against f32 on held-out samples, and while the
//! tolerance fails, give the most sensitive layers back their f32 until it holds.
//!
//! The rule:
//! 1. Reference: the f32 graph's outputs on the samples (tract).
//! 2. Sensitivity of each quantizable layer (Conv, Gemm, MatMul, ConvTranspose): the
//!    error of the model with only that layer quantized (its weights and its inputs, as
//!    [`insert_qdq`](crate::insert_qdq) does), as the mean over samples of
//!    `max |y - y_f32| / max |y_f32|` on output 0. Most sensitive first.
//! 3. The whole model quantized; while it misses the tolerance, the next most sensitive
//!    layer stays f32 ([`insert_qdq_except`]), and the model is measured again.
//!
//! Tolerances: [`Tolerance::Top1`] (the share of samples whose output-0 argmax over its last
//! axis matches f32's: classifiers) or [`Tolerance::RelErr`] (the mean relative error
//! above). The report names the demoted layers, the measured value before and after, and
//! whether it held; when even every layer in f32 would not reach it (it always does: that
//! is the f32 model), the guard stops there.
//!
//! Must not run: without samples (an error), or on a graph `insert_qdq` refuses.

use crate::cache::CalibrationTable;
use crate::error::{QuantError, Result};
use crate::insert_qdq::{data_slots, insert_qdq_with, QdqOptions, QdqReport};
use std::collections::HashSet;
use trtc_ir::eval::CpuModel;
use trtc_ir::{Graph, Tensor};

/// What the quantized model must keep of the f32 one on the samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Tolerance {
    /// Share of samples (0..=1) with the same top-1 as f32 (output 0, last axis).
    Top1(f64),
    /// Mean over samples of `max |y - y_f32| / max |y_f32|` on output 0, at most this.
    RelErr(f64),
}

impl std::str::FromStr for Tolerance {
    type Err = QuantError;
    /// `top1:0.99` or `rel:0.05`.
    fn from_str(s: &str) -> Result<Tolerance> {
        let bad = || {
            QuantError::Guard(format!(
                "tolerance `{s}`: expected top1:F (0 < F <= 1) or rel:F (F > 0)"
            ))
        };
        let (kind, v) = s.split_once(':').ok_or_else(bad)?;
        let v: f64 = v.trim().parse().map_err(|_| bad())?;
        match kind.trim() {
            "top1" if v > 0.0 && v <= 1.0 => Ok(Tolerance::Top1(v)),
            "rel" if v > 0.0 && v.is_finite() => Ok(Tolerance::RelErr(v)),
            _ => Err(bad()),
        }
    }
}

/// One layer's sensitivity: the model's error with only this layer quantized.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LayerSensitivity {
    pub layer: String,
    pub rel_err: f64,
}

/// What the guard measured and did.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct GuardReport {
    pub tolerance: String,
    /// Most sensitive first.
    pub sensitivity: Vec<LayerSensitivity>,
    /// Layers left in f32, in the order they were demoted.
    pub demoted: Vec<String>,
    /// The tolerance's measure (top-1 agreement, or mean relative error) of the fully
    /// quantized model, and of the model returned.
    pub before: f64,
    pub after: f64,
    pub met: bool,
}

/// Output 0 of `g` on each sample.
fn outputs(g: &Graph, samples: &[Vec<Tensor>]) -> Result<Vec<Vec<f32>>> {
    let m = CpuModel::new(g)?;
    samples
        .iter()
        .map(|inputs| {
            let out = m.run(inputs.clone())?;
            let t = out
                .first()
                .ok_or_else(|| QuantError::Guard("the model has no output".into()))?;
            let v = t
                .cast_to::<f32>()
                .map_err(|e| QuantError::Guard(format!("output 0: {e}")))?;
            let v = v
                .to_plain_array_view::<f32>()
                .map_err(|e| QuantError::Guard(format!("output 0: {e}")))?;
            Ok(v.iter().copied().collect())
        })
        .collect()
}

fn rel_err(y: &[Vec<f32>], reference: &[Vec<f32>]) -> f64 {
    let per: Vec<f64> = y
        .iter()
        .zip(reference)
        .map(|(a, b)| {
            let scale = b.iter().fold(1e-12f64, |m, v| m.max(v.abs() as f64));
            let d = a
                .iter()
                .zip(b)
                .fold(0f64, |m, (x, r)| m.max((x - r).abs() as f64));
            if d.is_finite() {
                d / scale
            } else {
                f64::INFINITY
            }
        })
        .collect();
    per.iter().sum::<f64>() / per.len().max(1) as f64
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &x)| {
            if x > bv {
                (i, x)
            } else {
                (bi, bv)
            }
        })
        .0
}

fn top1(y: &[Vec<f32>], reference: &[Vec<f32>]) -> f64 {
    let same = y
        .iter()
        .zip(reference)
        .filter(|(a, b)| argmax(a) == argmax(b))
        .count();
    same as f64 / y.len().max(1) as f64
}

/// Is `value` (the tolerance's measure) within `tol`?
fn holds(tol: Tolerance, value: f64) -> bool {
    match tol {
        Tolerance::Top1(t) => value >= t,
        Tolerance::RelErr(t) => value <= t,
    }
}

fn measure(tol: Tolerance, y: &[Vec<f32>], reference: &[Vec<f32>]) -> f64 {
    match tol {
        Tolerance::Top1(_) => top1(y, reference),
        Tolerance::RelErr(_) => rel_err(y, reference),
    }
}

/// The quantized graph that keeps `tol` on `samples` (each one input set), what its Q/DQ
/// insertion did, and the guard's report. `progress(done, total)` is called as the layers'
/// sensitivities are measured.
pub fn guard(
    graph: &Graph,
    table: &CalibrationTable,
    samples: &[Vec<Tensor>],
    tol: Tolerance,
    progress: impl FnMut(usize, usize),
) -> Result<(Graph, QdqReport, GuardReport)> {
    guard_with(graph, table, samples, tol, &QdqOptions::default(), progress)
}

/// [`guard`], with the Q/DQ of `opts` (their `keep_float` is the guard's): the model
/// measured is `insert_qdq_with(graph, table, opts)` with the layers demoted so far kept f32.
pub fn guard_with(
    graph: &Graph,
    table: &CalibrationTable,
    samples: &[Vec<Tensor>],
    tol: Tolerance,
    opts: &QdqOptions,
    mut progress: impl FnMut(usize, usize),
) -> Result<(Graph, QdqReport, GuardReport)> {
    let insert_qdq_except = |g: &Graph, t: &CalibrationTable, keep: &HashSet<String>| {
        let o = QdqOptions {
            keep_float: keep.clone(),
            ..opts.clone()
        };
        insert_qdq_with(g, t, &o)
    };
    if samples.is_empty() {
        return Err(QuantError::Guard(
            "no held-out samples to measure on".into(),
        ));
    }
    let reference = outputs(graph, samples)?;
    let layers: Vec<String> = graph
        .topo_order()?
        .into_iter()
        .filter(|&id| data_slots(&graph.node(id).op).is_some())
        .map(|id| graph.node(id).name.clone())
        .collect();
    let all: HashSet<String> = layers.iter().cloned().collect();
    let mut sensitivity = Vec::with_capacity(layers.len());
    for (i, layer) in layers.iter().enumerate() {
        let mut others = all.clone();
        others.remove(layer);
        let (q, _) = insert_qdq_except(graph, table, &others)?;
        sensitivity.push(LayerSensitivity {
            layer: layer.clone(),
            rel_err: rel_err(&outputs(&q, samples)?, &reference),
        });
        progress(i + 1, layers.len());
    }
    sensitivity.sort_by(|a, b| b.rel_err.total_cmp(&a.rel_err));
    let mut keep = HashSet::new();
    let (mut q, mut qdq) = insert_qdq_except(graph, table, &keep)?;
    let before = measure(tol, &outputs(&q, samples)?, &reference);
    let mut after = before;
    let mut demoted = vec![];
    for s in &sensitivity {
        if holds(tol, after) {
            break;
        }
        keep.insert(s.layer.clone());
        demoted.push(s.layer.clone());
        (q, qdq) = insert_qdq_except(graph, table, &keep)?;
        after = measure(tol, &outputs(&q, samples)?, &reference);
        tracing::info!("accuracy guard: {} kept in f32, now {after:.4}", s.layer);
    }
    let report = GuardReport {
        tolerance: format!("{tol:?}"),
        sensitivity,
        demoted,
        before,
        after,
        met: holds(tol, after),
    };
    Ok((q, qdq, report))
}
