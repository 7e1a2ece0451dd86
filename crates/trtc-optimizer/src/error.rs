use trtc_ir::IrError;

/// What can go wrong while optimizing.
#[derive(Debug, thiserror::Error)]
pub enum OptError {
    #[error("unknown pass `{name}`; valid passes: {valid}")]
    UnknownPass { name: String, valid: String },
    #[error("pass `{pass}` left an invalid graph: {source}")]
    InvalidAfterPass { pass: String, source: IrError },
    #[error("verification: {0}")]
    Verify(String),
    #[error(transparent)]
    Ir(#[from] IrError),
}

pub type Result<T, E = OptError> = std::result::Result<T, E>;
