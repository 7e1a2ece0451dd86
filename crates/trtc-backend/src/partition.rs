//! Min-segment partitioning, as TF-TRT's segmenter does it.
//!
//! Supported nodes are grouped into segments: maximal connected sets such that contracting
//! each segment to one node leaves the graph acyclic (two supported nodes joined only
//! through an unsupported path never share a segment). GPU segments with fewer than
//! `min_segment_size` nodes go back to the CPU; CPU nodes are grouped the same way, so each
//! CPU segment is one tract model. Nodes are counted after optimization (a fused
//! Conv+BN+Relu is one node); reports also give the original node count.

use crate::error::{BackendError, Result};
use crate::support::{FallbackReason, OpSupport};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet, VecDeque};
use trtc_ir::{Graph, NodeId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SegmentBackend {
    Gpu,
    Cpu,
}

impl std::fmt::Display for SegmentBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SegmentBackend::Gpu => "gpu",
            SegmentBackend::Cpu => "cpu",
        })
    }
}

#[derive(Clone, Debug)]
pub struct Segment {
    pub id: usize,
    pub backend: SegmentBackend,
    /// Nodes in topological order.
    pub nodes: Vec<NodeId>,
    /// The precision this segment's engine is built in when not the plan's (an fp16
    /// plan's segment whose values leave the fp16 range runs in fp32: `fp16_guard`).
    pub precision: Option<trtc_engine::Precision>,
}

#[derive(Clone, Debug)]
pub struct Fallback {
    pub node: NodeId,
    pub reason: FallbackReason,
}

#[derive(Clone, Debug)]
pub struct Partition {
    /// Segments in an order in which they can run.
    pub segments: Vec<Segment>,
    /// Every CPU node with its reason.
    pub fallback: Vec<Fallback>,
}

#[derive(Clone, Debug)]
pub struct PartitionOptions {
    pub min_segment_size: usize,
    pub deny_ops: Vec<String>,
    /// `false` for `--backend cpu`: everything on the CPU.
    pub use_gpu: bool,
}

/// Nodes that compute: not graph inputs, not constants (constants travel with their users).
pub fn compute_nodes(g: &Graph) -> Result<Vec<NodeId>> {
    Ok(g.topo_order()?
        .into_iter()
        .filter(|&n| !g.node(n).op.is_const() && !g.node(n).op.is_input())
        .collect())
}

fn denied(g: &Graph, id: NodeId, deny: &[String]) -> bool {
    let n = g.node(id);
    deny.iter()
        .any(|d| n.op.op_type() == d || n.fused_ops.iter().any(|f| f == d))
}

/// Union of clusters of one label, keeping the contracted graph acyclic.
struct Clusters<'a> {
    g: &'a Graph,
    pos: HashMap<NodeId, usize>,
    nodes: Vec<NodeId>,
    of: Vec<usize>,
    members: Vec<Vec<usize>>,
}

impl<'a> Clusters<'a> {
    fn new(g: &'a Graph, nodes: Vec<NodeId>) -> Self {
        let pos = nodes.iter().enumerate().map(|(i, &n)| (n, i)).collect();
        let n = nodes.len();
        Clusters {
            g,
            pos,
            nodes,
            of: (0..n).collect(),
            members: (0..n).map(|i| vec![i]).collect(),
        }
    }

    fn succ(&self, i: usize) -> Vec<usize> {
        self.g
            .successors(self.nodes[i])
            .into_iter()
            .filter_map(|s| self.pos.get(&s).copied())
            .collect()
    }

    /// Clusters read by cluster `c`'s nodes, other than `c` itself.
    fn succ_clusters(&self, c: usize) -> HashSet<usize> {
        self.members[c]
            .iter()
            .flat_map(|&m| self.succ(m))
            .map(|s| self.of[s])
            .filter(|&x| x != c)
            .collect()
    }

    /// Is there a path from cluster `a` to cluster `b` in the contracted graph other than a
    /// direct edge? Merging them would then close a cycle through the clusters in between.
    /// Clusters need not be convex, so this walks clusters, not nodes.
    fn indirect_path(&self, a: usize, b: usize) -> bool {
        let b_last = self.members[b].iter().copied().max().unwrap_or(0);
        let first = |c: usize| self.members[c].iter().copied().min().unwrap_or(usize::MAX);
        let mut seen = HashSet::from([a, b]);
        let mut queue: VecDeque<usize> = self
            .succ_clusters(a)
            .into_iter()
            .filter(|&c| c != b)
            .collect();
        seen.extend(queue.iter().copied());
        while let Some(c) = queue.pop_front() {
            if first(c) > b_last {
                continue; // every node of c comes after every node of b
            }
            for next in self.succ_clusters(c) {
                if next == b {
                    return true;
                }
                if seen.insert(next) {
                    queue.push_back(next);
                }
            }
        }
        false
    }

    fn try_merge(&mut self, x: usize, y: usize) -> bool {
        let (a, b) = (self.of[x], self.of[y]);
        if a == b || self.indirect_path(a, b) || self.indirect_path(b, a) {
            return false;
        }
        let moved = std::mem::take(&mut self.members[b]);
        for &m in &moved {
            self.of[m] = a;
        }
        self.members[a].extend(moved);
        self.members[a].sort();
        true
    }
}

/// Group `nodes` (in topological order) by label into acyclic connected clusters.
fn cluster(
    g: &Graph,
    nodes: &[NodeId],
    label: &dyn Fn(NodeId) -> SegmentBackend,
) -> Vec<Vec<NodeId>> {
    let mut c = Clusters::new(g, nodes.to_vec());
    for (i, &n) in nodes.iter().enumerate() {
        for p in g.predecessors(n) {
            if let Some(&j) = c.pos.get(&p) {
                if label(p) == label(n) {
                    c.try_merge(j, i);
                }
            }
        }
    }
    let mut out: Vec<Vec<NodeId>> = c
        .members
        .iter()
        .filter(|m| !m.is_empty())
        .map(|m| m.iter().map(|&i| c.nodes[i]).collect())
        .collect();
    // A runnable order: segment A before B when an edge goes from A to B.
    let seg_of: HashMap<NodeId, usize> = out
        .iter()
        .enumerate()
        .flat_map(|(s, m)| m.iter().map(move |&n| (n, s)))
        .collect();
    let mut indeg = vec![0usize; out.len()];
    let mut edges: Vec<HashSet<usize>> = vec![HashSet::new(); out.len()];
    for (s, m) in out.iter().enumerate() {
        for &n in m {
            for t in g.successors(n) {
                if let Some(&ts) = seg_of.get(&t) {
                    if ts != s && edges[s].insert(ts) {
                        indeg[ts] += 1;
                    }
                }
            }
        }
    }
    let first_pos = |s: usize| {
        out[s]
            .iter()
            .filter_map(|n| c.pos.get(n))
            .min()
            .copied()
            .unwrap_or(0)
    };
    let mut ready: Vec<usize> = (0..out.len()).filter(|&s| indeg[s] == 0).collect();
    let mut order = vec![];
    while !ready.is_empty() {
        ready.sort_by_key(|&s| std::cmp::Reverse(first_pos(s)));
        let Some(s) = ready.pop() else { break };
        order.push(s);
        for &t in &edges[s] {
            indeg[t] -= 1;
            if indeg[t] == 0 {
                ready.push(t);
            }
        }
    }
    let mut taken: Vec<Option<Vec<NodeId>>> = out.drain(..).map(Some).collect();
    order.into_iter().filter_map(|s| taken[s].take()).collect()
}

/// Partition the graph's computing nodes into GPU and CPU segments.
pub fn partition(g: &Graph, table: &dyn OpSupport, opts: &PartitionOptions) -> Result<Partition> {
    let nodes = compute_nodes(g)?;
    let mut reason: HashMap<NodeId, FallbackReason> = HashMap::new();
    for &n in &nodes {
        let r = if !opts.use_gpu {
            Err(FallbackReason::CpuBackendChosen)
        } else if denied(g, n, &opts.deny_ops) {
            Err(FallbackReason::DeniedByUser)
        } else {
            table.check(g, n)
        };
        if let Err(r) = r {
            reason.insert(n, r);
        }
    }
    let min = opts.min_segment_size.max(1);
    loop {
        let label = |n: NodeId| {
            if reason.contains_key(&n) {
                SegmentBackend::Cpu
            } else {
                SegmentBackend::Gpu
            }
        };
        let clusters = cluster(g, &nodes, &label);
        let small: Vec<&Vec<NodeId>> = clusters
            .iter()
            .filter(|c| label(c[0]) == SegmentBackend::Gpu && c.len() < min)
            .collect();
        if small.is_empty() {
            let segments: Vec<Segment> = clusters
                .into_iter()
                .enumerate()
                .map(|(id, nodes)| Segment {
                    id,
                    backend: label(nodes[0]),
                    nodes,
                    precision: None,
                })
                .collect();
            let mut fallback: Vec<Fallback> = nodes
                .iter()
                .filter_map(|n| {
                    reason.get(n).map(|r| Fallback {
                        node: *n,
                        reason: r.clone(),
                    })
                })
                .collect();
            fallback.sort_by_key(|f| f.node);
            let p = Partition { segments, fallback };
            p.check(g, min)?;
            return Ok(p);
        }
        for c in small {
            for &n in c {
                reason.insert(
                    n,
                    FallbackReason::BelowMinSegmentSize {
                        segment_nodes: c.len(),
                        min,
                    },
                );
            }
        }
    }
}

impl Partition {
    /// The segment holding each node.
    pub fn segment_of(&self) -> HashMap<NodeId, usize> {
        self.segments
            .iter()
            .enumerate()
            .flat_map(|(i, s)| s.nodes.iter().map(move |&n| (n, i)))
            .collect()
    }

    /// Every computing node in exactly one segment, segments in a runnable order (which
    /// also proves the contracted graph acyclic), GPU segments at least `min` nodes.
    pub fn check(&self, g: &Graph, min: usize) -> Result<()> {
        let bad = |s: String| Err(BackendError::Partition(s));
        let nodes = compute_nodes(g)?;
        let seg = self.segment_of();
        let total: usize = self.segments.iter().map(|s| s.nodes.len()).sum();
        if total != nodes.len() || nodes.iter().any(|n| !seg.contains_key(n)) {
            return bad(format!(
                "{} nodes in segments, {} computing nodes",
                total,
                nodes.len()
            ));
        }
        for (i, s) in self.segments.iter().enumerate() {
            if s.backend == SegmentBackend::Gpu && s.nodes.len() < min {
                return bad(format!(
                    "GPU segment {i} has {} nodes, under {min}",
                    s.nodes.len()
                ));
            }
            for &n in &s.nodes {
                for p in g.predecessors(n) {
                    if let Some(&ps) = seg.get(&p) {
                        if ps > i {
                            return bad(format!(
                                "segment {i} reads segment {ps}, which runs later"
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::MaskSupport;
    use trtc_ir::{GraphBuilder, Op, Outlet};

    /// x -> a(gpu) -> b(cpu) -> c(gpu); a -> c as well: a and c may not share a segment.
    #[test]
    fn an_unsupported_path_splits_segments() {
        let mut bld = GraphBuilder::new();
        let x = bld.input("x", &[1, 4]);
        let a = bld.op("a", Op::Relu, &[x]);
        let b = bld.op("b", Op::Tanh, &[a]);
        let c = bld.op("c", Op::Add, &[a, b]);
        bld.output(c);
        let g = bld.build().unwrap();
        let table = MaskSupport(|g: &Graph, n: NodeId| g.node(n).name != "b");
        let p = partition(
            &g,
            &table,
            &PartitionOptions {
                min_segment_size: 1,
                deny_ops: vec![],
                use_gpu: true,
            },
        )
        .unwrap();
        assert_eq!(p.segments.len(), 3, "{:?}", p.segments);
        let seg = p.segment_of();
        assert_ne!(seg[&a.node], seg[&c.node]);
        let _ = Outlet::new(a.node, 0);
    }

    /// a -> b directly, a -> c1 and c2 -> b, with c1 and c2 CPU nodes joined only through
    /// c0 (no path from c1 to c2). If c1 and c2 share a cluster, merging a and b closes a
    /// cycle through it although no node-level path leads from a to b outside them.
    #[test]
    fn a_non_convex_cluster_between_two_nodes_keeps_them_apart() {
        let mut bld = GraphBuilder::new();
        let x = bld.input("x", &[1, 4]);
        let a = bld.op("a", Op::Relu, &[x]);
        let c0 = bld.op("c0", Op::Tanh, &[x]);
        let c1 = bld.op("c1", Op::Add, &[c0, a]);
        let c2 = bld.op("c2", Op::Sigmoid, &[c0]);
        let b = bld.op("b", Op::Add, &[a, c2]);
        bld.output(c1).output(b);
        let g = bld.build().unwrap();
        let table =
            MaskSupport(|g: &Graph, n: NodeId| matches!(g.node(n).name.as_str(), "a" | "b"));
        let p = partition(
            &g,
            &table,
            &PartitionOptions {
                min_segment_size: 1,
                deny_ops: vec![],
                use_gpu: true,
            },
        )
        .unwrap();
        p.check(&g, 1).unwrap();
        let seg = p.segment_of();
        // Whichever clustering the merge order gives, a+b together and c1+c2 together
        // would be a cycle.
        assert!(
            seg[&a.node] != seg[&b.node] || seg[&c1.node] != seg[&c2.node],
            "{:?}",
            p.segments
        );
    }

    #[test]
    fn small_segments_fall_back_with_their_size() {
        let mut bld = GraphBuilder::new();
        let x = bld.input("x", &[1, 4]);
        let a = bld.op("a", Op::Relu, &[x]);
        let b = bld.op("b", Op::Tanh, &[a]);
        bld.output(b);
        let g = bld.build().unwrap();
        let p = partition(
            &g,
            &MaskSupport(|_: &Graph, _: NodeId| true),
            &PartitionOptions {
                min_segment_size: 3,
                deny_ops: vec![],
                use_gpu: true,
            },
        )
        .unwrap();
        assert_eq!(p.segments.len(), 1);
        assert_eq!(p.segments[0].backend, SegmentBackend::Cpu);
        assert_eq!(
            p.fallback[0].reason,
            FallbackReason::BelowMinSegmentSize {
                segment_nodes: 2,
                min: 3
            }
        );
        let p = partition(
            &g,
            &MaskSupport(|_: &Graph, _: NodeId| true),
            &PartitionOptions {
                min_segment_size: 2,
                deny_ops: vec!["Tanh".into()],
                use_gpu: true,
            },
        )
        .unwrap();
        assert!(p
            .fallback
            .iter()
            .any(|f| f.reason == FallbackReason::DeniedByUser));
    }
}
