//! `.npy` files <-> tensors, checked against the dtype the model expects.

use ndarray::ArrayD;
use ndarray_npy::{ReadNpyExt, WriteNpyExt};
use std::path::Path;
use trtc_ir::tract_onnx::prelude::DatumType;
use trtc_ir::{DType, Tensor};

#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    /// The I/O error is in the message, not a `source` (anyhow would print it twice).
    #[error("cannot open {path}: {cause}")]
    Open { path: String, cause: std::io::Error },
    #[error("{path} is not a {expected} .npy file ({detail})")]
    Read {
        path: String,
        expected: String,
        detail: String,
    },
    #[error("cannot write {path}: {detail}")]
    Write { path: String, detail: String },
    #[error("element type {0} cannot be read from or written to .npy")]
    Unsupported(String),
}

fn read_as<T: ndarray_npy::ReadableElement + trtc_ir::tract_onnx::prelude::Datum>(
    path: &Path,
    dtype: DType,
) -> Result<Tensor, NpyError> {
    let f = std::fs::File::open(path).map_err(|cause| NpyError::Open {
        path: path.display().to_string(),
        cause,
    })?;
    let arr = ArrayD::<T>::read_npy(std::io::BufReader::new(f)).map_err(|e| NpyError::Read {
        path: path.display().to_string(),
        expected: dtype.to_string(),
        detail: e.to_string(),
    })?;
    Ok(Tensor::from(arr))
}

/// Read a `.npy` holding elements of `dtype` (its header must say so).
pub fn read_npy(path: &Path, dtype: DType) -> Result<Tensor, NpyError> {
    match dtype {
        DType::F32 => read_as::<f32>(path, dtype),
        DType::F64 => read_as::<f64>(path, dtype),
        DType::I64 => read_as::<i64>(path, dtype),
        DType::I32 => read_as::<i32>(path, dtype),
        DType::U8 => read_as::<u8>(path, dtype),
        DType::I8 => read_as::<i8>(path, dtype),
        DType::Bool => read_as::<bool>(path, dtype),
        other => Err(NpyError::Unsupported(other.to_string())),
    }
}

fn write_as<T: ndarray_npy::WritableElement + trtc_ir::tract_onnx::prelude::Datum>(
    path: &Path,
    t: &Tensor,
) -> Result<(), NpyError> {
    let err = |detail: String| NpyError::Write {
        path: path.display().to_string(),
        detail,
    };
    let view = t
        .to_plain_array_view::<T>()
        .map_err(|e| err(e.to_string()))?;
    let f = std::fs::File::create(path).map_err(|e| err(e.to_string()))?;
    view.write_npy(std::io::BufWriter::new(f))
        .map_err(|e| err(e.to_string()))
}

pub fn write_npy(path: &Path, t: &Tensor) -> Result<(), NpyError> {
    match t.datum_type() {
        DatumType::F32 => write_as::<f32>(path, t),
        DatumType::F64 => write_as::<f64>(path, t),
        DatumType::I64 => write_as::<i64>(path, t),
        DatumType::I32 => write_as::<i32>(path, t),
        DatumType::U8 => write_as::<u8>(path, t),
        DatumType::I8 => write_as::<i8>(path, t),
        DatumType::Bool => write_as::<bool>(path, t),
        other => Err(NpyError::Unsupported(format!("{other:?}"))),
    }
}

/// An output name as a file name: anything but letters, digits, `.`, `_`, `-` becomes `_`.
pub fn sanitize_file_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.chars().all(|c| c == '.') {
        format!("_{s}")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_the_wrong_dtype() {
        let dir = std::env::temp_dir().join(format!("trtc-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.npy");
        let t = Tensor::from_shape(&[2, 2], &[1f32, 2., 3., 4.]).unwrap();
        write_npy(&path, &t).unwrap();
        assert_eq!(read_npy(&path, DType::F32).unwrap(), t);
        let err = read_npy(&path, DType::I64).unwrap_err().to_string();
        assert!(err.contains("is not a i64 .npy"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn file_names_are_sanitized() {
        assert_eq!(sanitize_file_name("logits"), "logits");
        assert_eq!(sanitize_file_name("/a/b:0"), "_a_b_0");
        assert_eq!(sanitize_file_name(".."), "_..");
    }
}
