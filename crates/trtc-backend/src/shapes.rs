//! Shapes: the `--shapes` profiles a plan is built for ahead of time, and the graph, its
//! optimization and its partition for one concrete set of input shapes (what an engine
//! for a dynamic model is built from, at compile time or when the shape first arrives).

use crate::error::{BackendError, Result};
use crate::options::{BackendChoice, CompileOptions};
use crate::partition::{partition, Partition, PartitionOptions};
use trtc_engine::OpSupport;
use trtc_ir::{reads_symbolic_shape, shape_key, specialize, specialize_batch_too, Graph, Outlet};
use trtc_optimizer::PipelineReport;

/// A graph specialized for one shape key, optimized again and partitioned.
pub struct Specialized {
    /// `x:3x640x640`: each input's dims past the batch (every dim, `x:1x3x224x224`, where
    /// the batch is fixed too).
    pub key: String,
    /// Is the batch fixed too (shape arithmetic reads it)?
    pub batch_too: bool,
    pub graph: Graph,
    pub partition: Partition,
    pub optimizer: PipelineReport,
    /// Layers whose values left the fp16 range on the sample (their segments run in fp32).
    pub fp16_overflows: Vec<crate::fp16_guard::Fp16Overflow>,
}

/// Specialize `g` for `shapes` (one per input, graph order), fold what became constant
/// (shape arithmetic), and partition with `support`'s table. An fp16 plan's range guard
/// runs its sample unless `fp16_known` gives what an earlier shape found.
///
/// The batch is fixed too when `batch_too` says so, or, when it is `None`, where shape
/// arithmetic on the symbolic batch is left once the rest is folded.
pub fn specialize_for(
    g: &Graph,
    shapes: &[Vec<usize>],
    opts: &CompileOptions,
    support: &dyn OpSupport,
    fp16_known: Option<&[crate::fp16_guard::Fp16Overflow]>,
    batch_too: Option<bool>,
) -> Result<Specialized> {
    let optimized = |batch_too: bool| -> Result<(Graph, PipelineReport)> {
        let mut graph = if batch_too {
            specialize_batch_too(g, shapes)?
        } else {
            specialize(g, shapes)?
        };
        let report = opts.pipeline()?.run(&mut graph)?;
        Ok((graph, report))
    };
    let (graph, optimizer, batch_too) = match batch_too {
        Some(b) => {
            let (graph, report) = optimized(b)?;
            (graph, report, b)
        }
        None => {
            let (graph, report) = optimized(false)?;
            if reads_symbolic_shape(&graph) {
                tracing::info!(
                    "shape arithmetic reads the batch: engines are built per batch size"
                );
                let (graph, report) = optimized(true)?;
                (graph, report, true)
            } else {
                (graph, report, false)
            }
        }
    };
    let key = shape_key(g, shapes, batch_too);
    let popts = PartitionOptions {
        min_segment_size: opts.min_segment_size,
        deny_ops: opts.deny_ops.clone(),
        use_gpu: opts.backend != BackendChoice::Cpu,
    };
    let mut partition = partition(&graph, support, &popts)?;
    let fp16_overflows = match fp16_known {
        Some(known) => crate::fp16_guard::apply_known(&graph, &mut partition, opts, known),
        None => crate::fp16_guard::apply(&graph, &mut partition, opts, Some(shapes)),
    };
    Ok(Specialized {
        key,
        batch_too,
        graph,
        partition,
        optimizer,
        fp16_overflows,
    })
}

fn shapes_err(detail: impl Into<String>) -> BackendError {
    BackendError::Shapes(detail.into())
}

/// One `--shapes` profile, `x:1x3x640x640[,y:1x10]`, as a shape per input in graph order.
/// An input it does not name keeps its declared shape (with the batch of those named, or 1,
/// where the batch is symbolic), which must then be static past the batch.
pub fn parse_profile(g: &Graph, spec: &str) -> Result<Vec<Vec<usize>>> {
    let infos: Vec<_> = g
        .inputs()
        .iter()
        .map(|&i| g.tensor(Outlet::new(i, 0)).clone())
        .collect();
    let names = || {
        infos
            .iter()
            .map(|t| format!("`{}` {}", t.name, t.describe()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut given: Vec<Option<Vec<usize>>> = vec![None; infos.len()];
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, dims) = part.rsplit_once(':').ok_or_else(|| {
            shapes_err(format!(
                "`{part}`: expected NAME:DIMS such as x:1x3x224x224"
            ))
        })?;
        let pos = infos.iter().position(|t| t.name == name).ok_or_else(|| {
            shapes_err(format!(
                "`{name}` is not an input of the model (inputs: {})",
                names()
            ))
        })?;
        let dims = dims
            .split('x')
            .map(|d| d.trim().parse::<usize>().ok().filter(|&v| v > 0))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| {
                shapes_err(format!(
                    "`{part}`: dims must be positive integers joined by x (1x3x224x224)"
                ))
            })?;
        if given[pos].replace(dims).is_some() {
            return Err(shapes_err(format!("`{name}` is given twice in `{spec}`")));
        }
    }
    // Inputs not named share the batch of those named (one batch runs through the model).
    let batch = given
        .iter()
        .flatten()
        .find_map(|d| d.first().copied())
        .unwrap_or(1);
    infos
        .iter()
        .zip(given)
        .map(|(t, g)| match g {
            Some(dims) => Ok(dims),
            None => t
                .shape
                .as_ref()
                .and_then(|s| {
                    s.iter()
                        .enumerate()
                        .map(|(i, d)| d.known().map(|v| v as usize).or((i == 0).then_some(batch)))
                        .collect::<Option<Vec<usize>>>()
                })
                .ok_or_else(|| {
                    shapes_err(format!(
                        "input `{}` is {}, with dims past the batch that only its data can say: \
                         give its shape in --shapes (`{}:1x...`)",
                        t.name,
                        t.describe(),
                        t.name
                    ))
                }),
        })
        .collect()
}

/// Is `key` one that inputs of `g` can have (a plan's stored shape entry)? The shapes
/// it stands for (at batch 1 where the key leaves the batch out), or what is wrong with it.
pub fn parse_key(g: &Graph, key: &str) -> Result<Vec<Vec<usize>>> {
    let bad = |why: &str| shapes_err(format!("shape entry `{key}`: {why}"));
    let parts: Vec<&str> = key.split(',').collect();
    if parts.len() != g.inputs().len() {
        return Err(bad("not one entry per model input"));
    }
    let mut shapes = vec![];
    for (part, &id) in parts.iter().zip(g.inputs()) {
        let info = g.tensor(Outlet::new(id, 0));
        let (name, dims) = part
            .rsplit_once(':')
            .ok_or_else(|| bad("expected NAME:DIMS"))?;
        if name != info.name {
            return Err(bad(&format!("`{name}` where the input is `{}`", info.name)));
        }
        let mut s = vec![];
        if !dims.is_empty() {
            for d in dims.split('x') {
                s.push(
                    d.parse()
                        .ok()
                        .filter(|&v: &usize| v > 0)
                        .ok_or_else(|| bad("bad dims"))?,
                );
            }
        }
        // A key of the batch too has every dim; one past the batch has one fewer.
        let rank = info.shape.as_ref().map(|d| d.len());
        if rank != Some(s.len()) {
            s.insert(0, 1);
        }
        shapes.push(s);
    }
    check_input_shapes(&input_infos(g), &shapes).map_err(|e| bad(&e.to_string()))?;
    Ok(shapes)
}

/// Each input at its declared shape with the batch `batch` (a model static past the
/// batch whose engines are built per batch size).
pub(crate) fn batch_profile(g: &Graph, batch: usize) -> Result<Vec<Vec<usize>>> {
    let mut shapes = parse_profile(g, "")?;
    for s in &mut shapes {
        if let Some(b) = s.first_mut() {
            *b = batch;
        }
    }
    Ok(shapes)
}

/// A batch (dim 0 where the model's is symbolic) is at most `max`.
pub(crate) fn check_batch(g: &Graph, shapes: &[Vec<usize>], max: usize) -> Result<()> {
    check_batch_of(&input_infos(g), shapes, max)
}

/// [`check_batch`] against the inputs `infos`.
pub(crate) fn check_batch_of(
    infos: &[trtc_ir::TensorInfo],
    shapes: &[Vec<usize>],
    max: usize,
) -> Result<()> {
    for (t, s) in infos.iter().zip(shapes) {
        let symbolic = t
            .shape
            .as_ref()
            .and_then(|d| d.first())
            .is_some_and(|d| d.known().is_none());
        if let (true, Some(&batch)) = (symbolic, s.first()) {
            if batch > max {
                return Err(BackendError::BatchTooLarge {
                    name: t.name.clone(),
                    batch,
                    max,
                });
            }
        }
    }
    Ok(())
}

/// The graph's inputs, in order.
pub(crate) fn input_infos(g: &Graph) -> Vec<trtc_ir::TensorInfo> {
    g.inputs()
        .iter()
        .map(|&i| g.tensor(Outlet::new(i, 0)).clone())
        .collect()
}

/// `shapes` (one per input) fit the inputs `infos`, each of its declared type (f32 where
/// none is declared): shapes alone, as `--shapes` and plan shape keys give them.
pub(crate) fn check_input_shapes(
    infos: &[trtc_ir::TensorInfo],
    shapes: &[Vec<usize>],
) -> Result<()> {
    Ok(trtc_ir::eval::check_shapes(
        infos,
        shapes,
        &input_dtypes(infos),
    )?)
}

/// Each input's declared type, f32 where none is declared.
pub(crate) fn input_dtypes(
    infos: &[trtc_ir::TensorInfo],
) -> Vec<trtc_ir::tract_onnx::prelude::DatumType> {
    infos
        .iter()
        .map(|t| {
            t.dtype
                .and_then(|d| d.to_datum())
                .unwrap_or(trtc_ir::tract_onnx::prelude::DatumType::F32)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use trtc_ir::{DType, GraphBuilder, Op};

    fn two_inputs() -> Graph {
        let mut b = GraphBuilder::new();
        let x = b.input_with(
            "x",
            DType::F32,
            vec!["N".into(), 3u64.into(), "H".into(), "W".into()],
        );
        let y = b.input_with("y", DType::F32, vec!["N".into(), 3u64.into()]);
        let r = b.op("relu", Op::Relu, &[x]);
        let s = b.op("sig", Op::Sigmoid, &[y]);
        b.output(r).output(s);
        b.build().unwrap()
    }

    #[test]
    fn parses_profiles_and_fills_static_inputs() {
        let g = two_inputs();
        assert_eq!(
            parse_profile(&g, "x:2x3x64x32").unwrap(),
            vec![vec![2, 3, 64, 32], vec![2, 3]],
            "y takes x's batch"
        );
        assert_eq!(
            parse_profile(&g, "y:4x3, x:1x3x8x8").unwrap(),
            vec![vec![1, 3, 8, 8], vec![4, 3]]
        );
    }

    #[test]
    fn keys_round_trip_and_bad_ones_are_refused() {
        let g = two_inputs();
        let shapes = parse_profile(&g, "x:2x3x64x32").unwrap();
        let key = shape_key(&g, &shapes, false);
        assert_eq!(key, "x:3x64x32,y:3");
        assert_eq!(
            parse_key(&g, &shape_key(&g, &shapes, true)).unwrap(),
            shapes,
            "a key of the batch too keeps it"
        );
        assert_eq!(
            parse_key(&g, &key).unwrap(),
            vec![vec![1, 3, 64, 32], vec![1, 3]]
        );
        for bad in [
            "x:3x64x32",
            "x:4x64x32,y:3",
            "y:3x64x32,x:3",
            "x:3x64,y:3",
            "x:3xax2,y:3",
        ] {
            assert!(parse_key(&g, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_profiles_name_the_problem() {
        let g = two_inputs();
        for (spec, says) in [
            ("", "only its data can say"),
            ("z:1x3", "not an input"),
            ("x:1x3xfoo", "positive integers"),
            ("x:1x3x0x4", "positive integers"),
            ("x1x3", "NAME:DIMS"),
            ("x:1x3x4x4,x:1x3x4x4", "twice"),
        ] {
            let e = parse_profile(&g, spec).unwrap_err().to_string();
            assert!(e.contains(says), "`{spec}`: {e}");
        }
    }
}
