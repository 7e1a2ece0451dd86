//! Range propagation: tensors that an op only moves, selects or reshapes share one scale.
//!
//! The rule: the data input(s) and the output of MaxPool, GlobalMaxPool, Concat (every
//! input), Reshape, Flatten, Squeeze, Unsqueeze, Transpose and Identity (input 0) form one
//! group, joined transitively through chains of such ops. The group's range flows from
//! output to inputs, as TensorRT propagates max-pool and concat ranges: it is the largest
//! range among the group's *sinks*, the members no such op reads (the chain's last
//! outputs), and every member gets it. So a max-pool's input takes the pool output's range,
//! and a concat's inputs take the concat's range. Tensors without a range of their own
//! (constants, non-f32 tensors) are left out of groups.

use std::collections::{BTreeMap, HashMap};
use trtc_ir::{Graph, Op};

/// The data inputs (slots) of `op` whose values the output only moves, if it is such an op.
fn data_slots(op: &Op, num_inputs: usize) -> Option<Vec<usize>> {
    match op {
        Op::Concat { .. } => Some((0..num_inputs).collect()),
        Op::MaxPool(_)
        | Op::GlobalMaxPool
        | Op::Reshape { .. }
        | Op::Flatten { .. }
        | Op::Squeeze
        | Op::Unsqueeze
        | Op::Transpose { .. }
        | Op::Identity => Some(vec![0]),
        _ => None,
    }
}

/// Union-find over tensor indices.
struct Groups {
    parent: Vec<usize>,
}

impl Groups {
    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }
    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent[ra] = rb;
        }
    }
}

/// The groups of tensors (by name, among `amax`'s keys) that share a range, each with its
/// sinks. Tensors alone in their group are left out.
pub fn shared_range_groups(
    g: &Graph,
    amax: &BTreeMap<String, f32>,
) -> Vec<(Vec<String>, Vec<String>)> {
    let names: Vec<&String> = amax.keys().collect();
    let index: HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let mut groups = Groups {
        parent: (0..names.len()).collect(),
    };
    let mut read_by_mover = vec![false; names.len()];
    for id in g.node_ids() {
        let node = g.node(id);
        let Some(slots) = data_slots(&node.op, node.num_inputs) else {
            continue;
        };
        let Some(&out) = node
            .outputs
            .first()
            .and_then(|t| index.get(t.name.as_str()))
        else {
            continue;
        };
        for slot in slots {
            let Some(src) = g.input_outlet(id, slot) else {
                continue;
            };
            if let Some(&i) = index.get(g.tensor(src).name.as_str()) {
                groups.union(i, out);
                read_by_mover[i] = true;
            }
        }
    }
    let mut by_root: BTreeMap<usize, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for (i, name) in names.iter().enumerate() {
        let root = groups.find(i);
        let e = by_root.entry(root).or_default();
        e.0.push((*name).clone());
        if !read_by_mover[i] {
            e.1.push((*name).clone());
        }
    }
    by_root
        .into_values()
        .filter(|(members, _)| members.len() > 1)
        .collect()
}

/// Give every member of a shared-range group the group's range (see the module rule).
pub fn propagate(g: &Graph, amax: &mut BTreeMap<String, f32>) {
    for (members, sinks) in shared_range_groups(g, amax) {
        // Every group of a DAG has a sink; fall back to all members all the same.
        let from = if sinks.is_empty() { &members } else { &sinks };
        let range = from
            .iter()
            .filter_map(|n| amax.get(n))
            .fold(0f32, |a, &b| a.max(b));
        for m in &members {
            if let Some(v) = amax.get_mut(m) {
                if *v != range {
                    tracing::debug!("range of `{m}`: {v} -> {range} (shared)");
                }
                *v = range;
            }
        }
    }
}
