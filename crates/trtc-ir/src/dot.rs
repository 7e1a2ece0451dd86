//! Graphviz DOT of a graph: one box per computing node (op, key attributes, name), one
//! edge per tensor use labelled with its shape. Constants are folded into their
//! consumer's label; clusters (segments) and per-node notes can be added by callers.

use crate::graph::{Graph, NodeId};
use crate::op::Op;
use crate::shape::shape_to_string;
use std::collections::HashMap;
use std::fmt::Write;

/// A group of nodes drawn as one `subgraph cluster_*`.
#[derive(Clone, Debug)]
pub struct DotCluster {
    pub label: String,
    pub color: String,
    pub nodes: Vec<NodeId>,
}

#[derive(Clone, Debug, Default)]
pub struct DotOptions {
    pub title: Option<String>,
    pub clusters: Vec<DotCluster>,
    /// Extra text under a node's label (a fallback reason, say).
    pub notes: HashMap<NodeId, String>,
}

pub fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let tail: String = s
            .chars()
            .rev()
            .take(n - 1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("…{tail}")
    }
}

/// `Conv+BN+Relu` style label.
pub fn node_label(g: &Graph, id: NodeId) -> String {
    let n = g.node(id);
    let mut label = n.label().replace("BatchNormalization", "BN");
    if let Op::FusedConv(f) = &n.op {
        if n.fused_ops.len() <= 1 {
            label = format!(
                "Conv{}{}",
                if f.residual { "+Add" } else { "" },
                f.activation
                    .map(|a| format!("+{}", a.name()))
                    .unwrap_or_default()
            );
        }
    }
    label
}

pub fn to_dot(g: &Graph, opts: &DotOptions) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph trtc {{");
    let _ = writeln!(out, "  rankdir=TB;");
    if let Some(t) = &opts.title {
        let _ = writeln!(out, "  label=\"{}\"; labelloc=t;", escape(t));
    }
    let _ = writeln!(out, "  node [shape=box, style=\"rounded,filled\", fillcolor=\"#f5f5f5\", fontname=\"Helvetica\", fontsize=10];");
    let _ = writeln!(out, "  edge [fontname=\"Helvetica\", fontsize=8];");
    let mut clustered: HashMap<NodeId, usize> = HashMap::new();
    for (ci, c) in opts.clusters.iter().enumerate() {
        for &n in &c.nodes {
            clustered.insert(n, ci);
        }
    }
    let node_line = |id: NodeId| -> Option<String> {
        let n = g.node(id);
        match &n.op {
            Op::Const(_) => None,
            Op::Input => Some(format!(
                "n{} [shape=ellipse, fillcolor=\"#d0e8ff\", label=\"{}\\n{}\"];",
                id.index(),
                escape(&n.name),
                escape(&n.outputs[0].describe())
            )),
            op => {
                let mut lines = vec![node_label(g, id)];
                let summary = op.summary();
                if !summary.is_empty() {
                    lines.push(summary);
                }
                let weights: Vec<String> = g
                    .node_inputs(id)
                    .into_iter()
                    .flatten()
                    .filter(|&o| g.const_value(o).is_some_and(|t| t.len() > 1))
                    .map(|o| {
                        g.tensor(o)
                            .shape
                            .as_deref()
                            .map(shape_to_string)
                            .unwrap_or_default()
                    })
                    .take(1)
                    .collect();
                if let Some(w) = weights.first() {
                    lines.push(format!("W {w}"));
                }
                lines.push(short(&n.name, 40));
                if let Some(note) = opts.notes.get(&id) {
                    lines.push(note.clone());
                }
                let label: Vec<String> = lines.iter().map(|l| escape(l)).collect();
                Some(format!(
                    "n{} [label=\"{}\"];",
                    id.index(),
                    label.join("\\n")
                ))
            }
        }
    };
    for (ci, c) in opts.clusters.iter().enumerate() {
        let _ = writeln!(out, "  subgraph cluster_{ci} {{");
        let _ = writeln!(
            out,
            "    label=\"{}\"; style=filled; color=\"{}\"; fillcolor=\"{}22\";",
            escape(&c.label),
            escape(&c.color),
            escape(&c.color)
        );
        for &id in &c.nodes {
            if let Some(l) = g.try_node(id).and(node_line(id)) {
                let _ = writeln!(out, "    {l}");
            }
        }
        let _ = writeln!(out, "  }}");
    }
    for id in g.node_ids() {
        if clustered.contains_key(&id) {
            continue;
        }
        if let Some(l) = node_line(id) {
            let _ = writeln!(out, "  {l}");
        }
    }
    for id in g.node_ids() {
        if g.node(id).op.is_const() {
            continue;
        }
        for input in g.node_inputs(id).into_iter().flatten() {
            if g.node(input.node).op.is_const() {
                continue;
            }
            let t = g.tensor(input);
            let label = t
                .shape
                .as_deref()
                .map(shape_to_string)
                .unwrap_or_else(|| "?".into());
            let _ = writeln!(
                out,
                "  n{} -> n{} [label=\"{}\"];",
                input.node.index(),
                id.index(),
                escape(&label)
            );
        }
    }
    for (i, o) in g.outputs().iter().enumerate() {
        let t = g.tensor(*o);
        let _ = writeln!(
            out,
            "  out{i} [shape=ellipse, fillcolor=\"#d8f5d0\", label=\"{}\\n{}\"];",
            escape(&t.name),
            escape(&t.describe())
        );
        let _ = writeln!(out, "  n{} -> out{i};", o.node.index());
    }
    let _ = writeln!(out, "}}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::GraphBuilder;
    use crate::op::ConvAttrs;
    use tract_onnx::prelude::Tensor;

    #[test]
    fn dot_shows_ops_attributes_and_shapes() {
        let mut b = GraphBuilder::new();
        let x = b.input("x", &[1, 3, 8, 8]);
        let w = b.constant("w", Tensor::zero::<f32>(&[4, 3, 3, 3]).unwrap());
        let conv = ConvAttrs {
            group: 1,
            kernel_shape: vec![3, 3],
            strides: vec![2, 2],
            ..Default::default()
        };
        let c = b.op("conv \"quoted\"", Op::Conv(conv), &[x, w]);
        b.output(c);
        let g = b.build().unwrap();
        let dot = to_dot(&g, &DotOptions::default());
        assert!(dot.contains("Conv\\nk=3x3 s=2x2"), "{dot}");
        assert!(dot.contains("[1,4,3,3]"), "{dot}");
        assert!(dot.contains("\\\"quoted\\\""), "{dot}");
        assert!(
            !dot.contains("label=\"w\\n"),
            "constants are not drawn as nodes"
        );
    }
}
