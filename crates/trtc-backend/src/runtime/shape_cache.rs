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
//!
//! With `build_in_background`, a shape whose engines are not built yet does not wait for
//! them: its build starts on a thread of its own and the request runs on the CPU through
//! tract (the original graph, any shape), with a note; later requests of that shape use
//! the engines once they are ready. A build that failed is the error of every later
//! request of that shape, as it would have been without the option.

use super::SegmentedModel;
use crate::engine::{EngineBuilder, EnginePayload};
use crate::error::Result;
use crate::options::CompileOptions;
use crate::report::CompileReport;
use crate::shapes::{specialize_for, Specialized};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;
use trtc_ir::eval::CpuModel;
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
    /// Background builds: keys being built, keys whose build failed (and why), the tract
    /// model requests run on meanwhile, and how many did.
    pending: Mutex<HashSet<String>>,
    failed: Mutex<HashMap<String, String>>,
    cpu: OnceLock<std::result::Result<Arc<CpuModel>, String>>,
    cpu_runs: std::sync::atomic::AtomicUsize,
}

/// What a request runs on: the engines of its shape, or (their build under way in the
/// background) the whole model on the CPU.
pub(crate) enum Ready {
    Built(Arc<SegmentedModel>),
    Cpu(Arc<CpuModel>),
}

/// A mutex's value, also after a panic elsewhere while it was held (the values here stay
/// whole: each is replaced or pushed in one step).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
            pending: Mutex::new(HashSet::new()),
            failed: Mutex::new(HashMap::new()),
            cpu: OnceLock::new(),
            cpu_runs: std::sync::atomic::AtomicUsize::new(0),
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
        lock(&self.entries)
    }

    /// The model kept for `key`, made the most recently used.
    fn touch(entries: &mut Vec<Entry>, key: &str) -> Option<Arc<SegmentedModel>> {
        let pos = entries.iter().position(|e| e.spec.key == key)?;
        let e = entries.remove(pos);
        let model = e.model.clone();
        entries.push(e);
        Some(model)
    }

    /// The model for inputs of these shapes (already checked against the graph's inputs).
    pub(crate) fn get(&self, shapes: &[Vec<usize>]) -> Result<Arc<SegmentedModel>> {
        crate::shapes::check_batch(&self.graph, shapes, self.opts.max_batch_size)?;
        if let Some(&batch_too) = self.batch_too.get() {
            let key = shape_key(&self.graph, shapes, batch_too);
            if let Some(model) = Self::touch(&mut self.lock(), &key) {
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
        let known = lock(&self.fp16_known).clone();
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
            *lock(&self.fp16_known) = Some(spec.fp16_overflows.clone());
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
        if let Some(model) = Self::touch(&mut entries, &key) {
            // Built meanwhile by another caller: use that one.
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

    /// The key of `shapes` where it is known before specializing (else each dim, the batch
    /// too: a key no specialization has, so a pending build is never taken for another).
    fn known_key(&self, shapes: &[Vec<usize>]) -> (String, bool) {
        match self.batch_too.get() {
            Some(&b) => (shape_key(&self.graph, shapes, b), true),
            None => (shape_key(&self.graph, shapes, true), false),
        }
    }

    /// The engines of `shapes` when built; else, with `build_in_background`, start their
    /// build on a thread and run this request on the CPU (`get` waits instead).
    pub(crate) fn get_or_cpu(self: &Arc<Self>, shapes: &[Vec<usize>]) -> Result<Ready> {
        if !self.opts.build_in_background {
            return self.get(shapes).map(Ready::Built);
        }
        crate::shapes::check_batch(&self.graph, shapes, self.opts.max_batch_size)?;
        let (key, exact) = self.known_key(shapes);
        if exact {
            if let Some(model) = Self::touch(&mut self.lock(), &key) {
                return Ok(Ready::Built(model));
            }
        }
        if let Some(why) = lock(&self.failed).get(&key) {
            return Err(crate::error::BackendError::Shapes(format!(
                "building the engines for input shapes {key} failed: {why}"
            )));
        }
        let started = lock(&self.pending).insert(key.clone());
        if started {
            tracing::info!(
                "input shapes {key}: engines build in the background; requests of this shape run on the CPU through tract until they are ready"
            );
            let me = Arc::clone(self);
            let owned = shapes.to_vec();
            std::thread::spawn(move || {
                let result = me.get(&owned);
                lock(&me.pending).remove(&key);
                if let Err(e) = result {
                    tracing::warn!("input shapes {key}: the background build failed: {e}");
                    lock(&me.failed).insert(key, e.to_string());
                }
            });
        }
        let cpu = self
            .cpu
            .get_or_init(|| {
                CpuModel::new(&self.graph)
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(|e| crate::error::BackendError::Shapes(format!("the CPU model: {e}")))?;
        self.cpu_runs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Ready::Cpu(cpu))
    }

    /// Does this cache build new shapes in the background?
    pub(crate) fn background(&self) -> bool {
        self.opts.build_in_background
    }

    /// Requests that ran on the CPU while their shape's engines were building.
    pub(crate) fn cpu_runs(&self) -> usize {
        self.cpu_runs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Are background builds under way?
    pub(crate) fn building(&self) -> bool {
        !lock(&self.pending).is_empty()
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
