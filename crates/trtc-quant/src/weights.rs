//! Symmetric INT8 weights, as TensorRT quantizes them: per output channel, or per tensor.
//!
//! The rule: for each output channel `c` (a slice along `axis`), `scale[c] = max|w| / 127`
//! and `q = clamp(round_half_even(w / scale[c]), -127, 127)` (never -128). A channel of
//! zeros gets scale [`ZERO_CHANNEL_SCALE`] (1.0) and values 0, so no scale is 0, NaN or
//! infinite. Dequantized, `q * scale[c]` is within half a step of `w`
//! ([`QuantizedWeights::error_bound`]). The output-channel axis is 0 for Conv and for Gemm
//! with `transB`, 1 for ConvTranspose and Gemm without `transB`, the last for MatMul
//! ([`channel_axis`]). A non-finite weight is an error.
//!
//! Per tensor ([`quantize_per_tensor`]: what cuDNN's INT8 convolution takes, one scalar
//! weight scale per layer): the same rule with the whole tensor as one channel, `scale =
//! max|w| / 127` over all of it, [`ZERO_CHANNEL_SCALE`] when it is all zeros.

use crate::error::{QuantError, Result};
use crate::INT8_MAX;
use trtc_ir::{Op, Tensor};

/// The scale of an all-zero channel (its values are all 0).
pub const ZERO_CHANNEL_SCALE: f32 = 1.0;

/// INT8 weights with one scale per channel along `axis`.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizedWeights {
    /// In `[-127, 127]`, in the layout of the f32 weights.
    pub values: Vec<i8>,
    /// One per channel: `max|w| / 127`, or `ZERO_CHANNEL_SCALE`.
    pub scales: Vec<f32>,
    pub shape: Vec<usize>,
    pub axis: usize,
}

impl QuantizedWeights {
    pub fn channels(&self) -> usize {
        self.shape[self.axis]
    }

    /// The channel of the element at `flat` (row-major).
    pub fn channel_of(&self, flat: usize) -> usize {
        channel_index(&self.shape, self.axis, flat)
    }

    /// `q * scale` per element.
    pub fn dequantize(&self) -> Vec<f32> {
        self.values
            .iter()
            .enumerate()
            .map(|(i, &q)| f32::from(q) * self.scales[self.channel_of(i)])
            .collect()
    }

    /// The largest `|w - q * scale|` in `channel`: half a step, `scale / 2`, plus f32
    /// rounding of `w / scale` and `q * scale` (`2^-23 * max|w|`).
    pub fn error_bound(&self, channel: usize) -> f32 {
        let s = self.scales[channel];
        s * (0.5 + INT8_MAX * f32::EPSILON)
    }
}

fn channel_index(shape: &[usize], axis: usize, flat: usize) -> usize {
    let inner: usize = shape[axis + 1..].iter().product();
    (flat / inner.max(1)) % shape[axis].max(1)
}

/// `weights` holds as many values as `shape` has elements.
fn check_count(weights: &[f32], shape: &[usize]) -> Result<()> {
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| QuantError::Weights(format!("shape {shape:?} overflows")))?;
    if count != weights.len() {
        return Err(QuantError::Weights(format!(
            "{} values for shape {shape:?} ({count} elements)",
            weights.len()
        )));
    }
    Ok(())
}

/// Quantize `weights` (row-major, of `shape`) per channel along `axis`.
pub fn quantize_per_channel(
    weights: &[f32],
    shape: &[usize],
    axis: usize,
) -> Result<QuantizedWeights> {
    if axis >= shape.len() {
        return Err(QuantError::Weights(format!(
            "channel axis {axis} is past the rank of shape {shape:?}"
        )));
    }
    check_count(weights, shape)?;
    if let Some(i) = weights.iter().position(|w| !w.is_finite()) {
        return Err(QuantError::Weights(format!(
            "element {i} is {} (channel {})",
            weights[i],
            channel_index(shape, axis, i)
        )));
    }
    let mut max = vec![0f32; shape[axis]];
    for (i, w) in weights.iter().enumerate() {
        let c = channel_index(shape, axis, i);
        max[c] = max[c].max(w.abs());
    }
    let scales: Vec<f32> = max
        .iter()
        .map(|&m| {
            let s = m / INT8_MAX;
            // A subnormal max can give scale 0: treat it as a zero channel too.
            if s > 0.0 {
                s
            } else {
                ZERO_CHANNEL_SCALE
            }
        })
        .collect();
    let values = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            let s = scales[channel_index(shape, axis, i)];
            (w / s).round_ties_even().clamp(-INT8_MAX, INT8_MAX) as i8
        })
        .collect();
    Ok(QuantizedWeights {
        values,
        scales,
        shape: shape.to_vec(),
        axis,
    })
}

/// INT8 weights with one scale for the whole tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorQuantizedWeights {
    /// In `[-127, 127]`, in the layout of the f32 weights.
    pub values: Vec<i8>,
    /// `max|w| / 127`, or `ZERO_CHANNEL_SCALE` for an all-zero tensor.
    pub scale: f32,
    pub shape: Vec<usize>,
}

impl TensorQuantizedWeights {
    /// `q * scale` per element.
    pub fn dequantize(&self) -> Vec<f32> {
        self.values
            .iter()
            .map(|&q| f32::from(q) * self.scale)
            .collect()
    }

    /// The largest `|w - q * scale|`: half a step plus f32 rounding (as
    /// [`QuantizedWeights::error_bound`]).
    pub fn error_bound(&self) -> f32 {
        self.scale * (0.5 + INT8_MAX * f32::EPSILON)
    }
}

/// Quantize `weights` (row-major, of `shape`) with one scale for the whole tensor.
pub fn quantize_per_tensor(weights: &[f32], shape: &[usize]) -> Result<TensorQuantizedWeights> {
    check_count(weights, shape)?;
    if let Some(i) = weights.iter().position(|w| !w.is_finite()) {
        return Err(QuantError::Weights(format!(
            "element {i} is {}",
            weights[i]
        )));
    }
    let max = weights.iter().fold(0f32, |m, w| m.max(w.abs()));
    let s = max / INT8_MAX;
    // A subnormal max can give scale 0: treat it as all zeros too.
    let scale = if s > 0.0 { s } else { ZERO_CHANNEL_SCALE };
    let values = weights
        .iter()
        .map(|&w| (w / scale).round_ties_even().clamp(-INT8_MAX, INT8_MAX) as i8)
        .collect();
    Ok(TensorQuantizedWeights {
        values,
        scale,
        shape: shape.to_vec(),
    })
}

/// Quantize an f32 constant with one scale for the whole tensor.
pub fn quantize_tensor_per_tensor(t: &Tensor) -> Result<TensorQuantizedWeights> {
    let view = t
        .to_plain_array_view::<f32>()
        .map_err(|e| QuantError::Weights(format!("not an f32 tensor: {e}")))?;
    let data: Vec<f32> = view.iter().copied().collect();
    quantize_per_tensor(&data, t.shape())
}

/// Quantize an f32 constant (a Conv's or Gemm's weight) per channel along `axis`.
pub fn quantize_tensor(t: &Tensor, axis: usize) -> Result<QuantizedWeights> {
    let view = t
        .to_plain_array_view::<f32>()
        .map_err(|e| QuantError::Weights(format!("not an f32 tensor: {e}")))?;
    let data: Vec<f32> = view.iter().copied().collect();
    quantize_per_channel(&data, t.shape(), axis)
}

/// The output-channel axis of the weight (input 1) of `op`, for a weight of rank
/// `weight_rank`; `None` for ops without a per-channel weight.
pub fn channel_axis(op: &Op, weight_rank: usize) -> Option<usize> {
    match op {
        Op::Conv(_) | Op::FusedConv(_) => Some(0),
        Op::Gemm { trans_b, .. } => Some(if *trans_b != 0 { 0 } else { 1 }),
        Op::MatMul if weight_rank >= 2 => Some(weight_rank - 1),
        Op::Other(o) if o.op_type == "ConvTranspose" => Some(1),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_tensor_scale_is_the_tensor_max_over_127() {
        // max |w| = 254: scale 2. 5 / 2 = 2.5 -> 2 and 7 / 2 = 3.5 -> 4 (half to even),
        // -1 / 2 = -0.5 -> -0 = 0, 3 / 2 = 1.5 -> 2, 100 / 2 = 50, 127 / 2 = 63.5 -> 64.
        let w = [127.0, 5.0, 7.0, -1.0, 3.0, 100.0, -254.0, 0.0];
        let q = quantize_per_tensor(&w, &[2, 4]).unwrap();
        assert_eq!(q.scale, 2.0);
        assert_eq!(q.values, vec![64, 2, 4, 0, 2, 50, -127, 0]);
        assert_eq!(q.shape, vec![2, 4]);
        for (a, b) in q.dequantize().iter().zip(&w) {
            assert!((a - b).abs() <= q.error_bound(), "{a} vs {b}");
        }
    }

    #[test]
    fn per_tensor_all_zero_weights_get_scale_one() {
        let q = quantize_per_tensor(&[0.0, -0.0, 0.0], &[3]).unwrap();
        assert_eq!(q.scale, ZERO_CHANNEL_SCALE);
        assert_eq!(q.values, vec![0, 0, 0]);
        let tiny = quantize_per_tensor(&[f32::from_bits(1), 0.0], &[2]).unwrap();
        assert!(tiny.scale.is_finite() && tiny.scale > 0.0);
        assert_eq!(tiny.values, vec![0, 0]);
    }

    #[test]
    fn per_tensor_refuses_non_finite_and_wrong_counts() {
        assert!(quantize_per_tensor(&[1.0, f32::NAN], &[2]).is_err());
        assert!(quantize_per_tensor(&[1.0, 2.0], &[3]).is_err());
    }
}
