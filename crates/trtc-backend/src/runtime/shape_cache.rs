//! Engines per input-shape key for a model with dynamic dims past the batch.
//!
//! Each key (`x:3x640x640`) gets its own specialized graph, partition and engines, built
//! the first time inputs of that shape arrive, from the tactics the plan stored for the
//! key when there are any. At most `max_cached_engines` keys are kept; the least recently
//! used is dropped (with a note) to make room.
//!
//! Where shape arithmetic reads the batch, the batch is part of the key (`x:1x3x224x224`):
//! found when the first shape is specialized, or known from the start for a model static
//! past the batch (nothing else makes it dynamic).

use super::SegmentedModel;
use crate::engine::{EngineBuilder, EnginePayload};
use crate::error::Result;
use crate::options::CompileOptions;
use crate::report::CompileReport;
use crate::shapes::{specialize_for, Specialized};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;
use trtc_ir::{has_dynamic_dims, shape_key, Graph};

struct Entry {
    spec: Arc<Specialized>,
    model: Arc<SegmentedModel>,
    build_seconds: f64,
}

pub(crate) struct ShapeCache {
    graph: Graph,
    opts: CompileOptions,
    stored: BTreeMap<String, BTreeMap<usize, EnginePayload>>,
    gpu: &'static dyn EngineBuilder,
    /// Most recently used last.
    entries: Mutex<Vec<Entry>>,
    /// What the fp16 range guard found for the first shape built (or the plan's shapes):
    /// later shapes reuse it instead of running the sample again.
    fp16_known: Mutex<Option<Vec<crate::fp16_guard::Fp16Overflow>>>,
    /// Is the batch part of the key (shape arithmetic reads it)? Known once a shape has
    /// been specialized.
    batch_too: OnceLock<bool>,
}

impl ShapeCache {
    pub(crate) fn new(
        graph: Graph,
        opts: CompileOptions,
        stored: BTreeMap<String, BTreeMap<usize, EnginePayload>>,
        gpu: &'static dyn EngineBuilder,
        fp16_known: Option<Vec<crate::fp16_guard::Fp16Overflow>>,
    ) -> ShapeCache {
        let batch_too = OnceLock::new();
        if !has_dynamic_dims(&graph) {
            let _ = batch_too.set(true);
        }
        ShapeCache {
            batch_too,
            graph,
            opts,
            stored,
            gpu,
            entries: Mutex::new(vec![]),
            fp16_known: Mutex::new(fp16_known),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Entry>> {
        // A panic while holding the lock leaves whole entries: keep using them.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The model for inputs of these shapes (already checked against the graph's inputs).
    pub(crate) fn get(&self, shapes: &[Vec<usize>]) -> Result<Arc<SegmentedModel>> {
        crate::shapes::check_batch(&self.graph, shapes, self.opts.max_batch_size)?;
        if let Some(&batch_too) = self.batch_too.get() {
            let key = shape_key(&self.graph, shapes, batch_too);
            let mut entries = self.lock();
            if let Some(pos) = entries.iter().position(|e| e.spec.key == key) {
                let e = entries.remove(pos);
                let model = e.model.clone();
                entries.push(e);
                return Ok(model);
            }
        }
        let start = Instant::now();
        let described: Vec<String> = shapes
            .iter()
            .map(|s| {
                s.iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join("x")
            })
            .collect();
        tracing::info!("building engines for input shapes {}", described.join(","));
        let known = self
            .fp16_known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let spec = specialize_for(
            &self.graph,
            shapes,
            &self.opts,
            self.gpu.support(),
            known.as_deref(),
            self.batch_too.get().copied(),
        )?;
        let _ = self.batch_too.set(spec.batch_too);
        let key = spec.key.clone();
        if known.is_none() {
            *self.fp16_known.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(spec.fp16_overflows.clone());
        }
        let none = BTreeMap::new();
        let payloads = self.stored.get(&key).unwrap_or(&none);
        let mut model = SegmentedModel::with_payloads(
            &spec.graph,
            &spec.partition,
            &self.opts,
            payloads,
            self.gpu,
        )?;
        for note in std::mem::take(&mut model.notes) {
            tracing::warn!("input shapes {key}: {note}");
        }
        let build_seconds = start.elapsed().as_secs_f64();
        tracing::info!("engines for input shapes {key} built in {build_seconds:.2} s");
        let model = Arc::new(model);
        let mut entries = self.lock();
        if let Some(pos) = entries.iter().position(|e| e.spec.key == key) {
            // Built meanwhile by another caller: use that one.
            let e = entries.remove(pos);
            let model = e.model.clone();
            entries.push(e);
            return Ok(model);
        }
        let capacity = self.opts.max_cached_engines.max(1);
        while entries.len() >= capacity {
            let old = entries.remove(0);
            tracing::info!(
                "dropping the engines for input shapes {} (--max-cached-engines {capacity})",
                old.spec.key
            );
        }
        entries.push(Entry {
            spec: Arc::new(spec),
            model: model.clone(),
            build_seconds,
        });
        Ok(model)
    }

    pub(crate) fn last_key(&self) -> Option<String> {
        self.lock().last().map(|e| e.spec.key.clone())
    }

    pub(crate) fn last_used(&self) -> Option<Arc<SegmentedModel>> {
        self.lock().last().map(|e| e.model.clone())
    }

    pub(crate) fn build_failures(&self) -> Vec<(usize, String)> {
        self.lock()
            .iter()
            .flat_map(|e| e.model.build_failures().to_vec())
            .collect()
    }

    /// The stored payloads, with those of every key built since in their place.
    pub(crate) fn payloads(&self) -> BTreeMap<String, BTreeMap<usize, EnginePayload>> {
        let mut out = self.stored.clone();
        for e in self.lock().iter() {
            out.insert(e.spec.key.clone(), e.model.payloads());
        }
        out
    }

    /// A compile report for each key built and still kept, with its build time.
    pub(crate) fn reports(&self, model_name: &str) -> Result<Vec<(String, f64, CompileReport)>> {
        self.lock()
            .iter()
            .map(|e| {
                let mut r = CompileReport::new(
                    model_name,
                    &e.spec.graph,
                    &e.spec.partition,
                    &self.opts,
                    e.spec.optimizer.clone(),
                )?;
                r.fp16_overflows = e.spec.fp16_overflows.clone();
                r.note_engine_failures(&e.spec.graph, &e.spec.partition, e.model.build_failures());
                Ok((e.spec.key.clone(), e.build_seconds, r))
            })
            .collect()
    }
}
