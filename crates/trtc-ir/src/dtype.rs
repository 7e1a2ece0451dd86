//! Element types, numbered as ONNX numbers them.

use serde::Serialize;
use tract_onnx::prelude::DatumType;

/// A tensor's element type. `Other` keeps an ONNX code trtc does not model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum DType {
    F32,
    F16,
    BF16,
    F64,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    Bool,
    String,
    Other(i32),
}

impl DType {
    pub fn from_onnx(code: i32) -> DType {
        match code {
            1 => DType::F32,
            2 => DType::U8,
            3 => DType::I8,
            4 => DType::U16,
            5 => DType::I16,
            6 => DType::I32,
            7 => DType::I64,
            8 => DType::String,
            9 => DType::Bool,
            10 => DType::F16,
            11 => DType::F64,
            12 => DType::U32,
            13 => DType::U64,
            16 => DType::BF16,
            other => DType::Other(other),
        }
    }

    pub fn to_onnx(self) -> i32 {
        match self {
            DType::F32 => 1,
            DType::U8 => 2,
            DType::I8 => 3,
            DType::U16 => 4,
            DType::I16 => 5,
            DType::I32 => 6,
            DType::I64 => 7,
            DType::String => 8,
            DType::Bool => 9,
            DType::F16 => 10,
            DType::F64 => 11,
            DType::U32 => 12,
            DType::U64 => 13,
            DType::BF16 => 16,
            DType::Other(c) => c,
        }
    }

    /// Bytes per element for the fixed-size types.
    pub fn size_of(self) -> Option<usize> {
        Some(match self {
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F16 | DType::BF16 | DType::I16 | DType::U16 => 2,
            DType::F64 | DType::I64 | DType::U64 => 8,
            DType::I8 | DType::U8 | DType::Bool => 1,
            DType::String | DType::Other(_) => return None,
        })
    }

    /// tract's type for this one, if tract has it.
    pub fn to_datum(self) -> Option<DatumType> {
        Some(match self {
            DType::F32 => DatumType::F32,
            DType::F16 => DatumType::F16,
            DType::F64 => DatumType::F64,
            DType::I8 => DatumType::I8,
            DType::I16 => DatumType::I16,
            DType::I32 => DatumType::I32,
            DType::I64 => DatumType::I64,
            DType::U8 => DatumType::U8,
            DType::U16 => DatumType::U16,
            DType::U32 => DatumType::U32,
            DType::U64 => DatumType::U64,
            DType::Bool => DatumType::Bool,
            DType::String => DatumType::String,
            DType::BF16 | DType::Other(_) => return None,
        })
    }

    pub fn from_datum(dt: DatumType) -> Option<DType> {
        Some(match dt {
            DatumType::F32 => DType::F32,
            DatumType::F16 => DType::F16,
            DatumType::F64 => DType::F64,
            DatumType::I8 => DType::I8,
            DatumType::I16 => DType::I16,
            DatumType::I32 => DType::I32,
            DatumType::I64 => DType::I64,
            DatumType::U8 => DType::U8,
            DatumType::U16 => DType::U16,
            DatumType::U32 => DType::U32,
            DatumType::U64 => DType::U64,
            DatumType::Bool => DType::Bool,
            DatumType::String => DType::String,
            _ => return None,
        })
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F16 | DType::BF16 | DType::F64)
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DType::Other(c) => write!(f, "onnx-type-{c}"),
            other => write!(f, "{}", format!("{other:?}").to_lowercase()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onnx_codes_round_trip() {
        for code in 0..25 {
            assert_eq!(DType::from_onnx(code).to_onnx(), code);
        }
        assert_eq!(DType::from_onnx(1), DType::F32);
        assert_eq!(DType::from_onnx(7).size_of(), Some(8));
    }
}
