//! trtc: a compiler for neural-network inference. This facade re-exports what a Rust
//! user calls: the IR (`ir`), the optimizer (`optimizer`), the backend (`backend`:
//! partitioner, hybrid runtime, plans), the CUDA engines (`cuda`) and the interface
//! between the two (`engine`), INT8 calibration (`quant`), [`gpu`] (the engine builder
//! to hand the backend), and the helpers the CLI uses to feed models (image
//! preprocessing, `.npy` tensors, top-k classification).
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let graph = trtc::ir::load_model("models/efficientnet_lite0.onnx")?;
//! let plan = trtc::backend::compile("effnet", graph, &trtc::backend::CompileOptions::default(), trtc::gpu())?;
//! let model = trtc::backend::HybridModel::new(&plan.graph, &plan.partition, &plan.options, trtc::gpu())?;
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
pub use trtc_cuda as cuda;
pub use trtc_engine as engine;
pub use trtc_ir as ir;
pub use trtc_optimizer as optimizer;
pub use trtc_quant as quant;

/// The GPU engine builder trtc ships: CUDA engines, and the CUDA op table that decides
/// which nodes are GPU segments (on any machine; without a GPU they run through tract).
pub fn gpu() -> &'static dyn backend::EngineBuilder {
    &cuda::CudaBuilder
}
