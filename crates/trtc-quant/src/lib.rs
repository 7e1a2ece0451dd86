//! INT8 post-training calibration, the CPU half of trtc's INT8 path (TensorRT's implicit
//! quantization, as NVIDIA describes it and pytorch-quantization implements it):
//!
//! - [`AbsHistogram`]: a histogram of `|x|` per activation tensor, grown as batches come;
//! - [`Calibrator`]: an activation's range (`amax`) from its histogram: entropy (TensorRT's
//!   EntropyCalibration2), min-max, or a percentile; the scale is `amax / 127`;
//! - [`Collector`] / [`calibrate`]: run a graph on tract over calibration batches and
//!   histogram every f32 activation, then share one range across data-movement ops;
//! - [`CalibrationTable`]: TensorRT's text calibration cache (`TRT-8600-EntropyCalibration2`,
//!   then `tensor: <f32 scale bits in hex>`), written and read;
//! - [`quantize_per_channel`] / [`quantize_per_tensor`]: symmetric INT8 weights, one scale
//!   per output channel or one for the whole tensor (what cuDNN's INT8 convolution takes);
//! - [`scales_from_qdq`]: the scales of an explicitly quantized (QDQ) model as a table;
//! - [`insert_qdq`] / [`insert_qdq_with`]: the reverse: a table's scales and INT8 weights
//!   (per channel, or per tensor with [`QdqOptions`]) applied to a graph as
//!   QuantizeLinear/DequantizeLinear pairs (simulated INT8 on tract, or a QDQ model).

pub mod cache;
pub mod calibrator;
pub mod collect;
pub mod error;
pub mod guard;
pub mod histogram;
pub mod insert_qdq;
pub mod propagate;
pub mod qdq;
pub mod weights;

pub use cache::CalibrationTable;
pub use calibrator::Calibrator;
pub use collect::{calibrate, Collector};
pub use error::{QuantError, Result};
pub use guard::{guard, guard_with, GuardReport, LayerSensitivity, Tolerance};
pub use histogram::AbsHistogram;
pub use insert_qdq::{
    insert_qdq, insert_qdq_except, insert_qdq_with, QdqOptions, QdqReport, WeightScales,
};
pub use qdq::{check_qdq, scales_from_qdq};
pub use weights::{
    channel_axis, quantize_per_channel, quantize_per_tensor, QuantizedWeights,
    TensorQuantizedWeights,
};

/// The INT8 range: symmetric, `[-127, 127]` (TensorRT never uses -128).
pub const INT8_MAX: f32 = 127.0;
