//! trtc's graph IR: an ONNX model as a petgraph `StableGraph`, with typed ops, shapes
//! with symbolic dims, shared weights, a validity check, a small edit API for passes,
//! export back to ONNX (whole or any subgraph), DOT, and CPU execution through tract.

pub mod builder;
pub mod dot;
pub mod dtype;
pub mod edit;
pub mod error;
pub mod eval;
pub mod export;
mod export_opset;
pub mod graph;
pub mod infer;
pub mod load;
pub mod op;
pub mod pixels;
pub mod shape;
pub mod specialize;
pub mod stats;
pub mod tensor;
pub mod validate;

pub use builder::GraphBuilder;
pub use dtype::DType;
pub use error::{IrError, Result};
pub use eval::CpuModel;
pub use export::{
    subgraph_io, subgraph_to_model_proto, to_model_proto, to_model_proto_as, Flavor, SubgraphIo,
};
pub use graph::{Edge, Graph, ModelMeta, Node, NodeId, Outlet};
pub use infer::{infer_shapes, shape_values, SymInt};
pub use load::{from_proto, load_model};
pub use op::{Activation, AutoPad, ConvAttrs, FusedConv, Op, PoolAttrs};
pub use shape::{Dim, Shape, TensorInfo};
pub use specialize::{
    has_dynamic_dims, needs_specialization, reads_symbolic_shape, shape_key, specialize,
    specialize_batch_too,
};
pub use tract_onnx;
pub use tract_onnx::prelude::Tensor;
