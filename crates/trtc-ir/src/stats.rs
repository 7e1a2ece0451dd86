//! What `trtc inspect` prints: inputs, outputs, op histogram, node and parameter counts,
//! and estimated FLOPs at batch 1 (a multiply-add counts 2; symbols are taken as 1).

use crate::graph::{Graph, NodeId, Outlet};
use crate::op::Op;
use crate::shape::TensorInfo;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Serialize)]
pub struct ModelSummary {
    pub inputs: Vec<TensorInfo>,
    pub outputs: Vec<TensorInfo>,
    pub op_histogram: BTreeMap<String, usize>,
    /// Computing nodes (inputs and constants not counted).
    pub nodes: usize,
    pub initializers: usize,
    pub parameters: usize,
    pub flops_batch1: u64,
    pub opset: i64,
    pub producer: String,
}

fn elems(t: &TensorInfo) -> u64 {
    t.shape
        .as_ref()
        .map(|s| s.iter().map(|d| d.at_batch_one()).product())
        .unwrap_or(0)
}

/// Estimated FLOPs of one node at batch 1.
pub fn node_flops(g: &Graph, id: NodeId) -> u64 {
    let n = g.node(id);
    let out = n.outputs.first().map(elems).unwrap_or(0);
    let input = |s: usize| g.input_info(id, s);
    match &n.op {
        Op::Conv(_) | Op::FusedConv(_) => {
            let per_out = input(1)
                .and_then(|w| w.shape.as_ref())
                .map(|w| w.iter().skip(1).map(|d| d.at_batch_one()).product::<u64>())
                .unwrap_or(0);
            let extra = match &n.op {
                Op::FusedConv(f) => 1 + f.residual as u64 + f.activation.is_some() as u64,
                _ => input(2).is_some() as u64,
            };
            out * (2 * per_out + extra)
        }
        Op::Gemm { trans_a, .. } => {
            let k = input(0)
                .and_then(|a| a.shape.as_ref())
                .and_then(|a| {
                    a.get(if *trans_a != 0 { 0 } else { 1 })
                        .map(|d| d.at_batch_one())
                })
                .unwrap_or(0);
            out * (2 * k + input(2).is_some() as u64)
        }
        Op::MatMul => {
            let k = input(0)
                .and_then(|a| a.shape.as_ref())
                .and_then(|a| a.last().map(|d| d.at_batch_one()))
                .unwrap_or(0);
            out * 2 * k
        }
        Op::MaxPool(p) | Op::AveragePool(p) => {
            out * p.kernel_shape.iter().product::<i64>().max(1) as u64
        }
        Op::GlobalAveragePool | Op::GlobalMaxPool => input(0).map(elems).unwrap_or(0),
        Op::BatchNormalization { .. } => 2 * out,
        Op::Softmax { .. } => 3 * out,
        Op::Relu
        | Op::Sigmoid
        | Op::Tanh
        | Op::HardSwish
        | Op::LeakyRelu { .. }
        | Op::HardSigmoid { .. }
        | Op::Clip
        | Op::Add
        | Op::Sub
        | Op::Mul
        | Op::Div => out,
        _ => 0,
    }
}

pub fn summarize(g: &Graph) -> ModelSummary {
    let mut hist = BTreeMap::new();
    let mut flops = 0;
    let mut initializers = 0;
    for id in g.node_ids() {
        let n = g.node(id);
        match n.op {
            Op::Input => {}
            Op::Const(_) => initializers += 1,
            _ => {
                *hist.entry(n.label()).or_insert(0) += 1;
                flops += node_flops(g, id);
            }
        }
    }
    ModelSummary {
        inputs: g
            .inputs()
            .iter()
            .map(|&i| g.tensor(Outlet::new(i, 0)).clone())
            .collect(),
        outputs: g.outputs().iter().map(|&o| g.tensor(o).clone()).collect(),
        nodes: g.compute_node_count(),
        op_histogram: hist,
        initializers,
        parameters: g.parameter_count(),
        flops_batch1: flops,
        opset: g.meta.opset(),
        producer: g.meta.producer_name.clone(),
    }
}

impl std::fmt::Display for ModelSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "opset {}  producer {}",
            self.opset,
            if self.producer.is_empty() {
                "?"
            } else {
                &self.producer
            }
        )?;
        writeln!(f, "inputs:")?;
        for t in &self.inputs {
            writeln!(f, "  {:<24} {}", t.name, t.describe())?;
        }
        writeln!(f, "outputs:")?;
        for t in &self.outputs {
            writeln!(f, "  {:<24} {}", t.name, t.describe())?;
        }
        writeln!(
            f,
            "nodes: {}  initializers: {}  parameters: {}",
            self.nodes, self.initializers, self.parameters
        )?;
        writeln!(
            f,
            "estimated FLOPs (batch 1): {} ({:.2} GFLOP)",
            self.flops_batch1,
            self.flops_batch1 as f64 / 1e9
        )?;
        writeln!(f, "ops:")?;
        let mut ops: Vec<_> = self.op_histogram.iter().collect();
        ops.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (op, n) in ops {
            writeln!(f, "  {op:<24} {n}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::GraphBuilder;
    use crate::op::ConvAttrs;
    use tract_onnx::prelude::Tensor;

    #[test]
    fn conv_flops_count_multiply_adds_twice() {
        let mut b = GraphBuilder::new();
        let x = b.input("x", &[1, 3, 8, 8]);
        let w = b.constant("w", Tensor::zero::<f32>(&[4, 3, 3, 3]).unwrap());
        let c = b.op(
            "conv",
            Op::Conv(ConvAttrs {
                group: 1,
                pads: vec![1, 1, 1, 1],
                ..Default::default()
            }),
            &[x, w],
        );
        let r = b.op("relu", Op::Relu, &[c]);
        b.output(r);
        let s = summarize(&b.build().unwrap());
        // 4*8*8 outputs x 27 MACs x 2, plus one relu per output.
        assert_eq!(s.flops_batch1, 256 * 54 + 256);
        assert_eq!(s.parameters, 108);
        assert_eq!(s.nodes, 2);
        assert_eq!(s.op_histogram.get("Conv"), Some(&1));
    }
}
