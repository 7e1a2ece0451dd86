//! Collecting activation histograms: run a graph on tract over calibration batches and
//! histogram `|x|` of every f32 activation tensor.
//!
//! The rule: the activations are the graph's f32 inputs and every used, named f32 tensor a
//! compute node produces (constants are weights, not activations). They are observed by
//! running, on tract, a copy of the graph whose outputs are all those tensors, one batch
//! at a time, in a single pass (each histogram grows as `AbsHistogram` does). A NaN or an
//! infinity in any of them is an error naming the first such tensor (inputs first, then in
//! graph order) and the batch. The table holds each tensor's range as the calibrator picks
//! it, then shared across data-movement ops (`propagate`). Tensor names are those of the
//! graph given, as in TensorRT's cache (the ONNX model's names when it is loaded as is).

use crate::cache::CalibrationTable;
use crate::calibrator::Calibrator;
use crate::error::{QuantError, Result};
use crate::histogram::AbsHistogram;
use crate::propagate::propagate;
use std::collections::BTreeMap;
use trtc_ir::eval::check_inputs;
use trtc_ir::{CpuModel, DType, Graph, Outlet, Tensor, TensorInfo};

/// The f32 tensors compute nodes produce that are used (read, or a graph output) and
/// named, in graph order. Graph inputs and constants are not among them.
pub fn activation_tensors(g: &Graph) -> Result<Vec<Outlet>> {
    let mut v = vec![];
    for id in g.topo_order()? {
        let node = g.node(id);
        if node.op.is_const() || node.op.is_input() {
            continue;
        }
        for (slot, t) in node.outputs.iter().enumerate() {
            let o = Outlet::new(id, slot);
            if t.dtype == Some(DType::F32) && !t.name.is_empty() && g.is_used(o) {
                v.push(o);
            }
        }
    }
    Ok(v)
}

/// Histograms of a graph's activations, batch after batch.
pub struct Collector {
    graph: Graph,
    /// Runs the graph with every activation as an output; `None` when it has none.
    model: Option<CpuModel>,
    inputs: Vec<TensorInfo>,
    /// The names of the model's outputs, in order.
    outputs: Vec<String>,
    histograms: BTreeMap<String, AbsHistogram>,
    batches: usize,
}

impl Collector {
    /// Prepare to observe `graph` (errors if tract cannot run it).
    pub fn new(graph: &Graph) -> Result<Collector> {
        let acts = activation_tensors(graph)?;
        let mut probe = graph.clone();
        probe.set_outputs(acts.clone());
        let model = if acts.is_empty() {
            None
        } else {
            Some(CpuModel::new(&probe)?.with_max_cached_plans(2))
        };
        let inputs: Vec<TensorInfo> = graph
            .inputs()
            .iter()
            .map(|&i| graph.tensor(Outlet::new(i, 0)).clone())
            .collect();
        let outputs: Vec<String> = acts.iter().map(|&o| graph.tensor(o).name.clone()).collect();
        let mut histograms = BTreeMap::new();
        for name in inputs
            .iter()
            .filter(|t| t.dtype == Some(DType::F32))
            .map(|t| &t.name)
            .chain(&outputs)
        {
            histograms.insert(name.clone(), AbsHistogram::new());
        }
        tracing::debug!(
            "calibrating {} activation tensors ({} inputs)",
            histograms.len(),
            inputs.len()
        );
        Ok(Collector {
            graph: graph.clone(),
            model,
            inputs,
            outputs,
            histograms,
            batches: 0,
        })
    }

    /// The graph's inputs: what each batch must hold, in order.
    pub fn inputs(&self) -> &[TensorInfo] {
        &self.inputs
    }

    /// Batches observed so far.
    pub fn batches(&self) -> usize {
        self.batches
    }

    /// The histograms, by tensor name.
    pub fn histograms(&self) -> &BTreeMap<String, AbsHistogram> {
        &self.histograms
    }

    /// Run one batch (one tensor per graph input) and add every activation to its
    /// histogram.
    pub fn observe(&mut self, inputs: Vec<Tensor>) -> Result<()> {
        check_inputs(&self.inputs, &inputs)?;
        let batch = self.batches + 1;
        let outputs = match &self.model {
            Some(m) => m.run(inputs.clone())?,
            None => vec![],
        };
        let named = self
            .inputs
            .iter()
            .map(|t| &t.name)
            .zip(&inputs)
            .chain(self.outputs.iter().zip(&outputs));
        for (name, t) in named {
            let Some(h) = self.histograms.get_mut(name) else {
                continue;
            };
            let values = t
                .try_as_plain_ram()
                .and_then(|v| v.as_slice::<f32>())
                .map_err(|e| QuantError::Tensor {
                    tensor: name.clone(),
                    detail: format!("expected f32 values: {e}"),
                })?;
            let bad = h.add(values);
            if bad > 0 {
                return Err(QuantError::NonFinite {
                    tensor: name.clone(),
                    count: bad,
                    batch,
                });
            }
        }
        self.batches = batch;
        Ok(())
    }

    /// Each activation's range as `calibrator` picks it, before sharing.
    pub fn ranges(&self, calibrator: Calibrator) -> BTreeMap<String, f32> {
        self.histograms
            .iter()
            .map(|(n, h)| (n.clone(), calibrator.amax(h)))
            .collect()
    }

    /// The calibration table: every activation's range, shared across data-movement ops.
    pub fn table(&self, calibrator: Calibrator) -> Result<CalibrationTable> {
        if self.batches == 0 {
            return Err(QuantError::NoBatches);
        }
        let mut ranges = self.ranges(calibrator);
        propagate(&self.graph, &mut ranges);
        let mut table = CalibrationTable::new(calibrator.cache_header());
        for (name, amax) in ranges {
            tracing::trace!("`{name}`: amax {amax}");
            table.insert_amax(name, amax);
        }
        Ok(table)
    }
}

/// Calibrate `graph` on `batches` (each one tensor per graph input), calling
/// `progress(done, total)` after each batch.
pub fn calibrate<I>(
    graph: &Graph,
    batches: I,
    calibrator: Calibrator,
    mut progress: impl FnMut(usize, usize),
) -> Result<CalibrationTable>
where
    I: IntoIterator<Item = Vec<Tensor>>,
    I::IntoIter: ExactSizeIterator,
{
    let batches = batches.into_iter();
    let total = batches.len();
    let mut c = Collector::new(graph)?;
    for (i, b) in batches.enumerate() {
        c.observe(b)?;
        progress(i + 1, total);
    }
    c.table(calibrator)
}
