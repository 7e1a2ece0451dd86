//! trtc: a compiler for neural-network inference. This facade re-exports what a Rust
//! user calls: the IR (`ir`), the optimizer (`optimizer`), and the helpers the CLI uses to
//! feed models (image preprocessing, `.npy` tensors, top-k classification).
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let graph = trtc::ir::load_model("models/efficientnet_lite0.onnx")?;
//! let plan = trtc::backend::compile("effnet", graph, &trtc::backend::CompileOptions::default())?;
//! let model = trtc::backend::HybridModel::new(&plan.graph, &plan.partition, &plan.options)?;
//! let image = std::path::Path::new("data/images/coffee.png");
//! let input = trtc::preprocess::image_to_tensor(image, &Default::default())?;
//! let logits = model.run(vec![input])?;
//! let top = trtc::classify::top_k(&logits[0].to_plain_array_view::<f32>()?.as_slice().unwrap(), 1, None);
//! assert_eq!(top[0].index, 967); // espresso
//! # Ok(())
//! # }
//! ```

pub mod classify;
pub mod npy;
pub mod preprocess;

pub use trtc_backend as backend;
pub use trtc_ir as ir;
pub use trtc_optimizer as optimizer;
