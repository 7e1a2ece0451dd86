//! FP16 range guard: a GPU segment whose values leave the fp16 range runs in fp32.
//!
//! Rule: in an fp16 plan, the optimized graph runs once in f32 on tract over sample
//! inputs (seeded uniform [0, 1) values at batch 1, the concrete shape for dynamic
//! models), and the largest magnitude of every f32 tensor a GPU segment computes is
//! recorded. A segment where one exceeds [`FP16_SAFE_MAX`] (half of fp16's largest finite
//! value, 65504: a sample is not the user's data) or is not finite where the inputs were
//! builds in fp32 instead; the report names each such layer with the value it reached.
//!
//! Must not fire: on plans of another precision, or on segments that run on the CPU
//! (tract computes in f32). It is a sample: values that only real data pushes out of
//! range are not seen, which is why outputs are also checked at run time
//! ([`warn_non_finite`]).

use crate::error::Result;
use crate::options::{BackendChoice, CompileOptions, Precision};
use crate::partition::{Partition, SegmentBackend};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use trtc_ir::{CpuModel, DType, Graph, Outlet, Tensor};
use trtc_optimizer::verify::{random_inputs, random_inputs_of};

/// Magnitudes above this, on sample inputs, keep a segment out of fp16.
pub const FP16_SAFE_MAX: f32 = 32752.0;

/// A layer whose output left the fp16 range on the sample inputs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Fp16Overflow {
    /// The node (after optimization) and the tensor it computes.
    pub node: String,
    pub tensor: String,
    /// Largest magnitude reached (infinite or NaN where the f32 value was not finite).
    pub max_abs: f32,
    /// The segment that therefore runs in fp32.
    pub segment: usize,
}

/// Run `g` on `inputs` in f32 and list the GPU segments' tensors beyond the fp16 range.
pub fn fp16_overflows(g: &Graph, p: &Partition, inputs: Vec<Tensor>) -> Result<Vec<Fp16Overflow>> {
    let mut watched: Vec<(Outlet, usize)> = vec![];
    for s in p
        .segments
        .iter()
        .filter(|s| s.backend == SegmentBackend::Gpu)
    {
        for &id in &s.nodes {
            for (slot, t) in g.node(id).outputs.iter().enumerate() {
                if !t.name.is_empty() && t.dtype == Some(DType::F32) {
                    watched.push((Outlet::new(id, slot), s.id));
                }
            }
        }
    }
    if watched.is_empty() {
        return Ok(vec![]);
    }
    let mut probe = g.clone();
    probe.set_outputs(watched.iter().map(|(o, _)| *o).collect());
    let values = CpuModel::new(&probe)?.run(inputs)?;
    let mut out = vec![];
    for ((o, segment), v) in watched.into_iter().zip(values) {
        let Ok(view) = v.to_plain_array_view::<f32>() else {
            continue;
        };
        let max_abs = view.iter().fold(0f32, |m, x| {
            if x.is_finite() && m.is_finite() {
                m.max(x.abs())
            } else {
                f32::INFINITY
            }
        });
        if max_abs > FP16_SAFE_MAX {
            out.push(Fp16Overflow {
                node: g.node(o.node).name.clone(),
                tensor: g.tensor(o).name.clone(),
                max_abs,
                segment,
            });
        }
    }
    Ok(out)
}

/// In an fp16 plan, run the sample (at batch 1; `shapes` for a dynamic model) and set
/// the segments that leave the fp16 range to fp32. Returns the layers that did. A model
/// the sample cannot be made or run for is left as it is, with a warning.
pub fn apply(
    g: &Graph,
    p: &mut Partition,
    opts: &CompileOptions,
    shapes: Option<&[Vec<usize>]>,
) -> Vec<Fp16Overflow> {
    let gpu_segments = p.segments.iter().any(|s| s.backend == SegmentBackend::Gpu);
    if !opts.precision.is_half() || opts.backend == BackendChoice::Cpu || !gpu_segments {
        return vec![];
    }
    let inputs = match shapes {
        Some(s) => {
            // Batch 1 where the batch is symbolic; a graph specialized with its batch
            // fixed takes that batch.
            let infos = crate::shapes::input_infos(g);
            let batch1: Vec<Vec<usize>> = s
                .iter()
                .zip(&infos)
                .map(|(d, t)| {
                    let fixed = t
                        .shape
                        .as_ref()
                        .and_then(|s| s.first())
                        .is_some_and(|d0| d0.known().is_some());
                    d.iter()
                        .enumerate()
                        .map(|(i, &v)| if i == 0 && !fixed { 1 } else { v })
                        .collect()
                })
                .collect();
            random_inputs_of(g, &batch1, SAMPLE_SEED)
        }
        None => random_inputs(g, 1, SAMPLE_SEED),
    };
    let found = inputs
        .map_err(|e| e.to_string())
        .and_then(|inputs| fp16_overflows(g, p, inputs).map_err(|e| e.to_string()));
    match found {
        Ok(o) => {
            let fp32 = fp32_segments(&o);
            for s in p.segments.iter_mut().filter(|s| fp32.contains(&s.id)) {
                s.precision = Some(Precision::Fp32);
            }
            o
        }
        Err(e) => {
            tracing::warn!("fp16 range guard skipped (the sample run failed): {e}");
            vec![]
        }
    }
}

const SAMPLE_SEED: u64 = 0x16;

/// `apply` without the sample run, from what an earlier run of the same model found
/// (another input shape of a dynamic model): segments holding a layer named in `known`
/// run in fp32. The sample costs a whole CPU inference (11 s for FCN-ResNet50 at
/// 512x512), too much for each shape that arrives at run time.
pub fn apply_known(
    g: &Graph,
    p: &mut Partition,
    opts: &CompileOptions,
    known: &[Fp16Overflow],
) -> Vec<Fp16Overflow> {
    if !opts.precision.is_half() || opts.backend == BackendChoice::Cpu {
        return vec![];
    }
    let mut out = vec![];
    for s in p
        .segments
        .iter_mut()
        .filter(|s| s.backend == SegmentBackend::Gpu)
    {
        for &id in &s.nodes {
            for o in known.iter().filter(|o| o.node == g.node(id).name) {
                s.precision = Some(Precision::Fp32);
                out.push(Fp16Overflow {
                    segment: s.id,
                    ..o.clone()
                });
            }
        }
    }
    out
}

/// The segments `overflows` name, which run in fp32.
pub fn fp32_segments(overflows: &[Fp16Overflow]) -> HashSet<usize> {
    overflows.iter().map(|o| o.segment).collect()
}

/// Warn, naming the output, when a plan of fp16 engines returned NaN or infinite values
/// (the sample run at build time did not see them, so the data did).
/// Returns whether it warned.
pub fn warn_non_finite(names: &[String], outputs: &[Tensor]) -> bool {
    let mut warned = false;
    for (name, t) in names.iter().zip(outputs) {
        let Ok(view) = t.to_plain_array_view::<f32>() else {
            continue;
        };
        let bad = view.iter().filter(|x| !x.is_finite()).count();
        if bad > 0 {
            tracing::warn!(
                "output `{name}` has {bad} NaN or infinite value(s) from fp16 engines: the \
                 values left the fp16 range; compile with --precision fp32 (or tf32) for this \
                 input"
            );
            warned = true;
        }
    }
    warned
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::{partition, PartitionOptions};
    use trtc_engine::{FallbackReason, OpSupport};
    use trtc_ir::tract_onnx::prelude::tensor1;
    use trtc_ir::{GraphBuilder, NodeId, Op};

    struct All;
    impl OpSupport for All {
        fn name(&self) -> &'static str {
            "all"
        }
        fn check(&self, _: &Graph, _: NodeId) -> std::result::Result<(), FallbackReason> {
            Ok(())
        }
    }

    #[test]
    fn a_layer_beyond_the_fp16_range_is_named_with_its_segment() {
        let mut b = GraphBuilder::new();
        let x = b.input("x", &[1, 4]);
        let big = b.constant("big", tensor1(&[1.0e5f32, 1.0, 1.0, 1.0]));
        let small = b.constant("small", tensor1(&[1.0e-5f32; 4]));
        let m = b.op("scale_up", Op::Mul, &[x, big]);
        let d = b.op("scale_down", Op::Mul, &[m, small]);
        let y = b.op("relu", Op::Relu, &[d]);
        b.output(y);
        let g = b.build().unwrap();
        let popts = PartitionOptions {
            min_segment_size: 1,
            deny_ops: vec![],
            use_gpu: true,
        };
        let p = partition(&g, &All, &popts).unwrap();
        let x = Tensor::from_shape(&[1, 4], &[0.9f32, 0.5, 0.5, 0.5]).unwrap();
        let o = fp16_overflows(&g, &p, vec![x.clone()]).unwrap();
        assert_eq!(o.len(), 1, "{o:?}");
        assert_eq!(o[0].node, "scale_up");
        assert!((o[0].max_abs - 9.0e4).abs() < 1.0, "{}", o[0].max_abs);
        assert_eq!(fp32_segments(&o), [p.segments[0].id].into_iter().collect());
        // Within range: nothing named.
        let x = Tensor::from_shape(&[1, 4], &[0.1f32, 0.5, 0.5, 0.5]).unwrap();
        assert!(fp16_overflows(&g, &p, vec![x]).unwrap().is_empty());
        // `apply` on an fp16 plan (uniform [0, 1) samples reach 1e5 * x > 32752 once x
        // passes 0.33): the segment goes to fp32; on an fp32 plan nothing is run.
        let mut p16 = p.clone();
        let fp16 = CompileOptions {
            precision: Precision::Fp16,
            ..Default::default()
        };
        let named = apply(&g, &mut p16, &fp16, None);
        assert_eq!(named.len(), 1, "{named:?}");
        assert_eq!(p16.segments[0].precision, Some(Precision::Fp32));
        let mut p32 = p.clone();
        assert!(apply(&g, &mut p32, &CompileOptions::default(), None).is_empty());
        assert_eq!(p32.segments[0].precision, None);
    }
}
