//! A fluent builder for small graphs, for tests and for users assembling models in code.
//!
//! ```
//! use trtc_ir::{GraphBuilder, Op};
//! let mut b = GraphBuilder::new();
//! let x = b.input("x", &[1, 8]);
//! let y = b.op("relu", Op::Relu, &[x]);
//! b.output(y);
//! let g = b.build().unwrap();
//! assert_eq!(g.compute_node_count(), 1);
//! ```

use crate::dtype::DType;
use crate::error::Result;
use crate::graph::{Graph, ModelMeta, Node, Outlet};
use crate::op::Op;
use crate::shape::{shape_of, Shape, TensorInfo};
use std::sync::Arc;
use tract_onnx::prelude::Tensor;

pub struct GraphBuilder {
    g: Graph,
}

impl Default for GraphBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl GraphBuilder {
    /// An empty graph at opset 17.
    pub fn new() -> Self {
        GraphBuilder {
            g: Graph::new(ModelMeta {
                ir_version: 8,
                opset_imports: vec![(String::new(), 17)],
                producer_name: "trtc-builder".into(),
                graph_name: "built".into(),
                ..Default::default()
            }),
        }
    }

    /// A float32 input of a static shape.
    pub fn input(&mut self, name: &str, dims: &[usize]) -> Outlet {
        self.input_with(name, DType::F32, shape_of(dims))
    }

    /// An input of any type and (symbolic) shape.
    pub fn input_with(&mut self, name: &str, dtype: DType, shape: Shape) -> Outlet {
        Outlet::new(self.g.add_input(TensorInfo::with(name, dtype, shape)), 0)
    }

    pub fn constant(&mut self, name: &str, value: Tensor) -> Outlet {
        self.g.add_const(name, Arc::new(value))
    }

    /// A node with one output named after the node.
    pub fn op(&mut self, name: &str, op: Op, inputs: &[Outlet]) -> Outlet {
        let inputs: Vec<Option<Outlet>> = inputs.iter().copied().map(Some).collect();
        self.op_n(name, op, &inputs, 1)[0]
    }

    /// A node with optional inputs and `n_outputs` outputs (`name`, `name:1`, ...).
    pub fn op_n(
        &mut self,
        name: &str,
        op: Op,
        inputs: &[Option<Outlet>],
        n_outputs: usize,
    ) -> Vec<Outlet> {
        let name = self.g.unique_name(name);
        let outputs = (0..n_outputs)
            .map(|i| {
                TensorInfo::new(if i == 0 {
                    name.clone()
                } else {
                    format!("{name}:{i}")
                })
            })
            .collect();
        let id = self.g.add_node(Node::new(name, op, inputs.len(), outputs));
        for (slot, i) in inputs.iter().enumerate() {
            if let Some(i) = i {
                // Slots are in range by construction.
                let _ = self.g.connect(*i, id, slot);
            }
        }
        (0..n_outputs).map(|s| Outlet::new(id, s)).collect()
    }

    pub fn output(&mut self, o: Outlet) -> &mut Self {
        self.g.add_output(o);
        self
    }

    /// Infer shapes, validate, and hand over the graph.
    pub fn build(mut self) -> Result<Graph> {
        crate::infer::infer_shapes(&mut self.g)?;
        self.g.validate()?;
        Ok(self.g)
    }
}
