//! Shapes with symbolic dimensions, and the tensor metadata an edge carries.

use crate::dtype::DType;
use serde::Serialize;
use std::fmt;

/// One dimension: a known size or a named symbol (a dynamic batch `N`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Dim {
    Known(u64),
    Sym(String),
}

impl Dim {
    pub fn known(&self) -> Option<u64> {
        match self {
            Dim::Known(v) => Some(*v),
            Dim::Sym(_) => None,
        }
    }

    /// The size with every symbol taken as 1 (batch 1).
    pub fn at_batch_one(&self) -> u64 {
        self.known().unwrap_or(1)
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Known(v) => write!(f, "{v}"),
            Dim::Sym(s) => write!(f, "{s}"),
        }
    }
}

impl From<u64> for Dim {
    fn from(v: u64) -> Dim {
        Dim::Known(v)
    }
}

impl From<&str> for Dim {
    fn from(s: &str) -> Dim {
        Dim::Sym(s.to_string())
    }
}

pub type Shape = Vec<Dim>;

/// `[N,3,224,224]`.
pub fn shape_to_string(shape: &[Dim]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(","))
}

pub fn known_shape(shape: &[Dim]) -> Option<Vec<usize>> {
    shape
        .iter()
        .map(|d| d.known().map(|v| v as usize))
        .collect()
}

pub fn shape_of(dims: &[usize]) -> Shape {
    dims.iter().map(|&d| Dim::Known(d as u64)).collect()
}

/// A tensor as the graph knows it: name, element type, shape; `None` where not (yet) known.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: Option<DType>,
    pub shape: Option<Shape>,
}

impl TensorInfo {
    pub fn new(name: impl Into<String>) -> TensorInfo {
        TensorInfo {
            name: name.into(),
            dtype: None,
            shape: None,
        }
    }

    pub fn with(name: impl Into<String>, dtype: DType, shape: Shape) -> TensorInfo {
        TensorInfo {
            name: name.into(),
            dtype: Some(dtype),
            shape: Some(shape),
        }
    }

    pub fn rank(&self) -> Option<usize> {
        self.shape.as_ref().map(|s| s.len())
    }

    /// `f32[N,3,224,224]`, with `?` for what is unknown.
    pub fn describe(&self) -> String {
        let dt = self
            .dtype
            .map(|d| d.to_string())
            .unwrap_or_else(|| "?".into());
        let sh = self
            .shape
            .as_deref()
            .map(shape_to_string)
            .unwrap_or_else(|| "[?]".into());
        format!("{dt}{sh}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_symbolic_shapes() {
        let t = TensorInfo::with("x", DType::F32, vec!["N".into(), 3u64.into()]);
        assert_eq!(t.describe(), "f32[N,3]");
        assert_eq!(known_shape(t.shape.as_ref().unwrap()), None);
        assert_eq!(known_shape(&shape_of(&[2, 3])), Some(vec![2, 3]));
        assert_eq!(TensorInfo::new("y").describe(), "?[?]");
    }
}
