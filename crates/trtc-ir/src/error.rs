//! Errors of the IR crate: every way a model file or a graph can be wrong.

use std::path::PathBuf;

/// What went wrong while loading, checking, exporting or running a graph.
#[derive(Debug, thiserror::Error)]
pub enum IrError {
    /// The I/O error is part of the message, not a `source`: callers that print the
    /// chain (anyhow's `{:#}`) would say it twice.
    #[error("cannot read model file {path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path} is not a valid ONNX protobuf (truncated or not a model): {detail}")]
    Decode { path: PathBuf, detail: String },
    #[error("the model has no graph")]
    NoGraph,
    #[error("node `{node}` reads tensor `{tensor}`, which no node, input or initializer produces")]
    DanglingInput { node: String, tensor: String },
    #[error("graph output `{0}` is produced by no node, input or initializer")]
    DanglingOutput(String),
    #[error("tensor `{0}` is produced twice")]
    DuplicateTensor(String),
    #[error("the graph has a cycle through node `{0}`")]
    Cycle(String),
    #[error("initializer `{name}`: {detail}")]
    BadInitializer { name: String, detail: String },
    #[error("node `{node}` ({op}): {detail}")]
    BadNode {
        node: String,
        op: String,
        detail: String,
    },
    #[error("shape error at node `{node}` ({op}): {detail}")]
    Shape {
        node: String,
        op: String,
        detail: String,
    },
    #[error("invalid graph: {0}")]
    Invalid(String),
    #[error("tract cannot run op `{op}` (node `{node}`, domain `{domain}`)")]
    UnsupportedByTract {
        node: String,
        op: String,
        domain: String,
    },
    #[error("input `{name}`: expected {expected}, given {given}")]
    InputMismatch {
        name: String,
        expected: String,
        given: String,
    },
    /// An image input that cannot take the format asked for (`pixels::u8_nhwc_input`).
    #[error("image input: {0}")]
    ImageInput(String),
    #[error("tract: {0}")]
    Tract(String),
}

impl IrError {
    pub(crate) fn tract(e: impl std::fmt::Display + std::fmt::Debug) -> Self {
        IrError::Tract(format!("{e:?}"))
    }
}

pub type Result<T, E = IrError> = std::result::Result<T, E>;
