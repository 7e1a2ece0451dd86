//! ONNX `TensorProto` <-> tract `Tensor`, with every length checked before any byte is read.

use crate::dtype::DType;
use crate::error::{IrError, Result};
use std::path::{Component, Path};
use tract_onnx::pb::TensorProto;
use tract_onnx::prelude::{DatumType, Tensor};

const EXTERNAL: i32 = 1;

fn bad(name: &str, detail: impl Into<String>) -> IrError {
    IrError::BadInitializer {
        name: name.to_string(),
        detail: detail.into(),
    }
}

/// Number of elements, or an error for negative or overflowing dims.
pub(crate) fn element_count(name: &str, dims: &[i64]) -> Result<usize> {
    dims.iter().try_fold(1usize, |acc, &d| {
        if d < 0 {
            return Err(bad(name, format!("negative dimension {d} in {dims:?}")));
        }
        acc.checked_mul(d as usize)
            .ok_or_else(|| bad(name, format!("shape {dims:?} overflows")))
    })
}

/// Convert one initializer. `model_dir` resolves external data; `None` refuses it.
/// Consumes the proto's raw data so the bytes are held once.
pub fn tensor_from_proto(t: &TensorProto, model_dir: Option<&Path>) -> Result<Tensor> {
    let name = t.name.as_str();
    let dtype = DType::from_onnx(t.data_type);
    let datum = dtype
        .to_datum()
        .ok_or_else(|| bad(name, format!("element type {dtype} is not supported")))?;
    let count = element_count(name, &t.dims)?;
    let shape: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
    let is_external = t.data_location == Some(EXTERNAL);

    if dtype == DType::String {
        if t.string_data.len() != count {
            return Err(bad(
                name,
                format!("{} strings for shape {:?}", t.string_data.len(), t.dims),
            ));
        }
        return load_with_tract(t);
    }
    let size = dtype.size_of().unwrap_or(1);
    let expected = count * size;
    let external_bytes;
    let raw: &[u8] = if is_external {
        let dir = model_dir.ok_or_else(|| bad(name, "external data but no model directory"))?;
        external_bytes = read_external(t, dir)?;
        &external_bytes
    } else if !t.raw_data.is_empty() {
        &t.raw_data
    } else {
        let given = match dtype {
            DType::F32 => t.float_data.len(),
            DType::F64 => t.double_data.len(),
            DType::I64 => t.int64_data.len(),
            DType::U64 | DType::U32 => t.uint64_data.len(),
            _ => t.int32_data.len(),
        };
        if given != count {
            return Err(bad(
                name,
                format!("{given} values for shape {:?} ({count} expected)", t.dims),
            ));
        }
        if dtype == DType::U32 {
            let v: Vec<u32> = t.uint64_data.iter().map(|&x| x as u32).collect();
            return Tensor::from_shape(&shape, &v).map_err(IrError::tract);
        }
        return load_with_tract(t);
    };
    if raw.len() != expected {
        return Err(bad(
            name,
            format!(
                "data is {} bytes but shape {:?} of {dtype} needs {expected}",
                raw.len(),
                t.dims
            ),
        ));
    }
    if datum == DatumType::Bool {
        let v: Vec<bool> = raw.iter().map(|&b| b != 0).collect();
        return Tensor::from_shape(&shape, &v).map_err(IrError::tract);
    }
    // Safety: the length was checked against shape and element size above.
    unsafe { Tensor::from_raw_dt(datum, &shape, raw) }.map_err(IrError::tract)
}

fn load_with_tract(t: &TensorProto) -> Result<Tensor> {
    let provider = tract_onnx::data_resolver::FopenDataResolver;
    tract_onnx::tensor::load_tensor(&provider, t, None).map_err(|e| bad(&t.name, format!("{e}")))
}

fn read_external(t: &TensorProto, dir: &Path) -> Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let name = t.name.as_str();
    let get = |key: &str| {
        t.external_data
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.value.as_str())
    };
    let location = get("location").ok_or_else(|| bad(name, "external data without location"))?;
    let rel = Path::new(location);
    if rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(bad(
            name,
            format!("external data location `{location}` leaves the model directory"),
        ));
    }
    let parse = |key: &str| -> Result<Option<u64>> {
        get(key)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| bad(name, format!("external data {key} `{v}`")))
            })
            .transpose()
    };
    let offset = parse("offset")?.unwrap_or(0);
    let path = dir.join(rel);
    let mut f = std::fs::File::open(&path)
        .map_err(|e| bad(name, format!("external data {}: {e}", path.display())))?;
    let file_len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let length = parse("length")?.unwrap_or(file_len.saturating_sub(offset));
    if offset.checked_add(length).is_none_or(|end| end > file_len) {
        return Err(bad(
            name,
            format!(
                "external data {}+{} is past the end of {} ({file_len} bytes)",
                offset,
                length,
                path.display()
            ),
        ));
    }
    let mut buf = vec![0u8; length as usize];
    f.seek(SeekFrom::Start(offset))
        .and_then(|_| f.read_exact(&mut buf))
        .map_err(|e| {
            bad(
                name,
                format!("reading external data {}: {e}", path.display()),
            )
        })?;
    Ok(buf)
}

/// A tract tensor as an ONNX initializer (raw little-endian data).
pub fn tensor_to_proto(name: &str, t: &Tensor) -> TensorProto {
    let dtype = DType::from_datum(t.datum_type()).unwrap_or(DType::Other(0));
    let mut p = TensorProto {
        name: name.to_string(),
        dims: t.shape().iter().map(|&d| d as i64).collect(),
        data_type: dtype.to_onnx(),
        ..Default::default()
    };
    if dtype == DType::String {
        if let Ok(view) = t.to_plain_array_view::<String>() {
            p.string_data = view.iter().map(|s| s.as_bytes().to_vec()).collect();
        }
    } else if dtype == DType::Bool {
        if let Ok(view) = t.to_plain_array_view::<bool>() {
            p.raw_data = view.iter().map(|&b| b as u8).collect();
        }
    } else {
        p.raw_data = t.as_bytes().to_vec();
    }
    p
}

/// The values of a small integer tensor as i64 (for shapes, pads, axes).
pub fn tensor_to_i64s(t: &Tensor) -> Option<Vec<i64>> {
    let cast = t.cast_to::<i64>().ok()?;
    let view = cast.to_plain_array_view::<i64>().ok()?;
    Some(view.iter().copied().collect())
}

/// The values of a float tensor as f32.
pub fn tensor_to_f32s(t: &Tensor) -> Option<Vec<f32>> {
    if !t.datum_type().is_float() {
        return None;
    }
    let cast = t.cast_to::<f32>().ok()?;
    let view = cast.to_plain_array_view::<f32>().ok()?;
    Some(view.iter().copied().collect())
}

/// Uniform values in [-1, 1) from a seed (xorshift): the random inputs and weights of
/// tests, benchmarks and `--verify`, the same on every machine.
pub fn random_uniform(shape: &[usize], seed: u64) -> Tensor {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    Tensor::from_shape(shape, &v).expect("as many values as the shape holds")
}

/// Bytes from a seed, as `random_uniform` draws them: the random u8 inputs (images) of
/// tests and benchmarks.
pub fn random_bytes(shape: &[usize], seed: u64) -> Tensor {
    let floats = random_uniform(shape, seed);
    let v: Vec<u8> = floats
        .to_plain_array_view::<f32>()
        .map(|a| a.iter().map(|&x| ((x + 1.0) * 128.0) as u8).collect())
        .unwrap_or_default();
    Tensor::from_shape(shape, &v).expect("as many values as the shape holds")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32_proto(dims: &[i64], raw: Vec<u8>) -> TensorProto {
        TensorProto {
            name: "w".into(),
            dims: dims.to_vec(),
            data_type: 1,
            raw_data: raw,
            ..Default::default()
        }
    }

    #[test]
    fn raw_f32_round_trips() {
        let t = Tensor::from_shape(&[2, 2], &[1f32, 2., 3., 4.]).unwrap();
        let p = tensor_to_proto("w", &t);
        let back = tensor_from_proto(&p, None).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn byte_length_must_match_shape() {
        let err = tensor_from_proto(&f32_proto(&[2, 3], vec![0; 20]), None).unwrap_err();
        assert!(err.to_string().contains("20 bytes"), "{err}");
        assert!(err.to_string().contains("needs 24"), "{err}");
    }

    #[test]
    fn typed_field_count_must_match_shape() {
        let p = TensorProto {
            name: "w".into(),
            dims: vec![3],
            data_type: 1,
            float_data: vec![1.0],
            ..Default::default()
        };
        assert!(tensor_from_proto(&p, None)
            .unwrap_err()
            .to_string()
            .contains("1 values"));
        let p = TensorProto {
            float_data: vec![1.0, 2.0, 3.0],
            ..p
        };
        assert_eq!(
            tensor_to_f32s(&tensor_from_proto(&p, None).unwrap()),
            Some(vec![1.0, 2.0, 3.0])
        );
    }

    #[test]
    fn negative_dims_and_unknown_types_are_errors() {
        assert!(tensor_from_proto(&f32_proto(&[-1], vec![]), None).is_err());
        let p = TensorProto {
            name: "c".into(),
            dims: vec![1],
            data_type: 14,
            raw_data: vec![0; 8],
            ..Default::default()
        };
        assert!(tensor_from_proto(&p, None)
            .unwrap_err()
            .to_string()
            .contains("not supported"));
    }

    #[test]
    fn external_data_is_read_and_checked() {
        let dir = std::env::temp_dir().join(format!("trtc-ext-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let vals = [1f32, 2., 3.];
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(dir.join("w.bin"), [vec![9u8; 4], bytes].concat()).unwrap();
        let kv = |k: &str, v: &str| tract_onnx::pb::StringStringEntryProto {
            key: k.into(),
            value: v.into(),
        };
        let mut p = f32_proto(&[3], vec![]);
        p.data_location = Some(EXTERNAL);
        p.external_data = vec![
            kv("location", "w.bin"),
            kv("offset", "4"),
            kv("length", "12"),
        ];
        let t = tensor_from_proto(&p, Some(&dir)).unwrap();
        assert_eq!(tensor_to_f32s(&t), Some(vals.to_vec()));
        p.external_data[2] = kv("length", "16");
        assert!(tensor_from_proto(&p, Some(&dir))
            .unwrap_err()
            .to_string()
            .contains("past the end"));
        p.external_data[0] = kv("location", "../w.bin");
        assert!(tensor_from_proto(&p, Some(&dir)).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
