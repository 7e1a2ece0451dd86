//! Check that two graphs compute the same outputs, through tract on random inputs.

use crate::error::{OptError, Result};
use serde::Serialize;
use trtc_ir::{CpuModel, DType, Dim, Graph, Outlet, Tensor};

/// Largest differences between two runs over all outputs. `max_rel` is the largest
/// absolute difference divided by the largest magnitude of the reference output.
#[derive(Clone, Debug, Serialize)]
pub struct Verification {
    pub max_abs: f32,
    pub max_rel: f32,
    pub outputs: usize,
    pub batch: usize,
}

pub use trtc_ir::tensor::random_uniform as random_tensor;

/// Random f32 inputs for every graph input; symbolic dims take `batch`.
pub fn random_inputs(g: &Graph, batch: usize, seed: u64) -> Result<Vec<Tensor>> {
    let shapes =
        g.inputs()
            .iter()
            .map(|&id| {
                let info = g.tensor(Outlet::new(id, 0));
                let shape = info.shape.as_ref().ok_or_else(|| {
                    OptError::Verify(format!("input `{}` has no shape", info.name))
                })?;
                shape
                    .iter()
                    .enumerate()
                    .map(|(pos, d)| match d {
                        Dim::Known(v) => Ok(*v as usize),
                        Dim::Sym(_) if pos == 0 => Ok(batch),
                        Dim::Sym(s) => Err(OptError::Verify(format!(
                            "input `{}` is {}: its dim `{s}` is dynamic, so give the shape to use",
                            info.name,
                            info.describe()
                        ))),
                    })
                    .collect::<Result<Vec<usize>>>()
            })
            .collect::<Result<Vec<_>>>()?;
    random_inputs_of(g, &shapes, seed)
}

/// Random inputs of the given shapes (one per graph input, in order): f32 in [-1, 1), or
/// random bytes for a u8 input (an image compiled with `--input-format u8-nhwc`).
pub fn random_inputs_of(g: &Graph, shapes: &[Vec<usize>], seed: u64) -> Result<Vec<Tensor>> {
    g.inputs()
        .iter()
        .zip(shapes)
        .enumerate()
        .map(|(i, (&id, dims))| {
            let info = g.tensor(Outlet::new(id, 0));
            let seed = seed.wrapping_add(i as u64 * 7919);
            match info.dtype {
                Some(DType::F32) => Ok(random_tensor(dims, seed)),
                Some(DType::U8) => Ok(trtc_ir::tensor::random_bytes(dims, seed)),
                _ => Err(OptError::Verify(format!(
                    "input `{}` is {}; only f32 and u8 inputs are generated",
                    info.name,
                    info.describe()
                ))),
            }
        })
        .collect()
}

/// Largest absolute and relative differences between two sets of outputs.
pub fn compare(reference: &[Tensor], other: &[Tensor]) -> Result<(f32, f32)> {
    if reference.len() != other.len() {
        return Err(OptError::Verify(format!(
            "{} outputs vs {}",
            reference.len(),
            other.len()
        )));
    }
    let (mut max_abs, mut max_rel) = (0f32, 0f32);
    for (r, o) in reference.iter().zip(other) {
        if r.shape() != o.shape() {
            return Err(OptError::Verify(format!(
                "output shapes differ: {:?} vs {:?}",
                r.shape(),
                o.shape()
            )));
        }
        let (Some(rv), Some(ov)) = (
            trtc_ir::tensor::tensor_to_f32s(r),
            trtc_ir::tensor::tensor_to_f32s(o),
        ) else {
            if r != o {
                return Err(OptError::Verify("non-float outputs differ".into()));
            }
            continue;
        };
        let scale = rv.iter().fold(0f32, |m, x| m.max(x.abs()));
        let abs = rv
            .iter()
            .zip(&ov)
            .map(|(a, b)| {
                if a.is_nan() || b.is_nan() {
                    f32::INFINITY
                } else {
                    (a - b).abs()
                }
            })
            .fold(0f32, f32::max);
        max_abs = max_abs.max(abs);
        max_rel = max_rel.max(if scale > 0.0 { abs / scale } else { abs });
    }
    Ok((max_abs, max_rel))
}

/// Run both graphs through tract on the same random inputs and compare.
pub fn verify(
    original: &Graph,
    optimized: &Graph,
    batch: usize,
    seed: u64,
) -> Result<Verification> {
    let inputs = random_inputs(original, batch, seed)?;
    let a = CpuModel::new(original)?.run(inputs.clone())?;
    let b = CpuModel::new(optimized)?.run(inputs)?;
    let (max_abs, max_rel) = compare(&a, &b)?;
    Ok(Verification {
        max_abs,
        max_rel,
        outputs: a.len(),
        batch,
    })
}
