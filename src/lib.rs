//! trtc: a compiler for neural-network inference. This facade re-exports what a Rust
//! user calls: the IR (`ir`), the optimizer (`optimizer`), and the helpers the CLI uses to
//! feed models (image preprocessing, `.npy` tensors, top-k classification).
//!
//! ```no_run
//! let graph = trtc::ir::load_model("models/efficientnet_lite0.onnx").unwrap();
//! let model = trtc::ir::CpuModel::new(&graph).unwrap();
//! let input = trtc::preprocess::image_to_tensor(
//!     std::path::Path::new("data/images/coffee.png"),
//!     &trtc::preprocess::Preprocess::default(),
//! ).unwrap();
//! let logits = model.run(vec![input]).unwrap();
//! ```

pub mod classify;
pub mod npy;
pub mod preprocess;

pub use trtc_backend as backend;
pub use trtc_ir as ir;
pub use trtc_optimizer as optimizer;
