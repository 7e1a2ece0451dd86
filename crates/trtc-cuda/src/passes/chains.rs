//! Elementwise chains fused into one kernel:
//! `Act|Binary -> Act|Binary -> ...` where each intermediate tensor is read only by the next
//! op of the chain `=>` one `Chain` step that loads each input once per element, applies
//! the ops in registers and stores the result once (HardSwish written as
//! `x * Clip(x + 3, 0, 6) / 6` is one kernel, not four).
//!
//! Must not fire (the chain ends before the op) when the intermediate is a segment output,
//! is viewed by a reshape, or is read by more than one step (or twice by one); when the next
//! op's output has another shape than the running value (it would broadcast the value);
//! when a tensor has more than 4 dims; or past `MAX_OPS` ops or `MAX_INPUTS` distinct
//! inputs (the kernel's fixed argument arrays). A lone op stays as it was (its own kernels
//! have 16-byte vector forms).
//!
//! The fused step takes the last op's place, so every input is computed before it; the
//! ops it replaces are removed.

use super::arena::step_slots;
use crate::program::{ChainOp, Program, Step, MAX_INPUTS, MAX_OPS};

/// A chain being grown from its first op.
struct Chain {
    inputs: Vec<usize>,
    ops: Vec<ChainOp>,
    members: Vec<usize>,
    value: usize,
}

impl Chain {
    /// Index of `slot` among the inputs, adding it if there is room.
    fn input(&mut self, slot: usize) -> Option<usize> {
        if let Some(i) = self.inputs.iter().position(|&s| s == slot) {
            return Some(i);
        }
        (self.inputs.len() < MAX_INPUTS).then(|| {
            self.inputs.push(slot);
            self.inputs.len() - 1
        })
    }

    fn start(i: usize, step: &Step) -> Option<Chain> {
        let mut c = Chain {
            inputs: vec![],
            ops: vec![],
            members: vec![i],
            value: 0,
        };
        match *step {
            Step::Act { x, y, act } => {
                c.inputs.push(x);
                c.ops.push(ChainOp::Act(act));
                c.value = y;
            }
            Step::Binary { a, b, y, op } => {
                c.inputs.push(a);
                let input = c.input(b)?;
                c.ops.push(ChainOp::Binary {
                    op,
                    input,
                    value_first: true,
                });
                c.value = y;
            }
            _ => return None,
        }
        Some(c)
    }

    /// Take step `j` (which reads the running value) into the chain, if it fits.
    fn extend(&mut self, j: usize, step: &Step) -> bool {
        if self.ops.len() >= MAX_OPS {
            return false;
        }
        let v = self.value;
        match *step {
            Step::Act { x, y, act } if x == v => {
                self.ops.push(ChainOp::Act(act));
                self.value = y;
            }
            Step::Binary { a, b, y, op } if (a == v) != (b == v) => {
                let (other, value_first) = if a == v { (b, true) } else { (a, false) };
                let Some(input) = self.input(other) else {
                    return false;
                };
                self.ops.push(ChainOp::Binary {
                    op,
                    input,
                    value_first,
                });
                self.value = y;
            }
            _ => return false,
        }
        self.members.push(j);
        true
    }
}

/// Replace each chain of two or more elementwise steps of `p` by one `Chain` step; returns
/// how many chains were fused.
pub fn fuse_elementwise_chains(p: &mut Program) -> usize {
    let n_slots = p.slots.len();
    let mut readers: Vec<Vec<usize>> = vec![vec![]; n_slots];
    for (i, step) in p.steps.iter().enumerate() {
        for s in step_slots(step).0 {
            readers[s].push(i);
        }
    }
    let output = |s: usize| p.outputs.iter().any(|&o| p.storage(o) == s);
    let viewed = |s: usize| p.slots.iter().any(|t| t.alias_of == Some(s));
    let rank_ok = |s: usize| p.slots[s].shape.len() <= 4;
    let mut fused: Vec<Chain> = vec![];
    let mut taken = vec![false; p.steps.len()];
    for i in 0..p.steps.len() {
        if taken[i] {
            continue;
        }
        let Some(mut chain) = Chain::start(i, &p.steps[i]) else {
            continue;
        };
        if !chain.inputs.iter().all(|&s| rank_ok(s)) || !rank_ok(chain.value) {
            continue;
        }
        loop {
            let v = chain.value;
            let [j] = readers[v][..] else { break };
            if output(v) || viewed(v) || j <= i || taken[j] {
                break;
            }
            let (reads, writes) = step_slots(&p.steps[j]);
            let same = writes.first().is_some_and(|&y| {
                p.slots[y].shape == p.slots[v].shape
                    && p.slots[y].nhwc == p.slots[v].nhwc
                    && p.slots[y].half == p.slots[v].half
            });
            if !same || !reads.iter().all(|&s| rank_ok(s)) || !chain.extend(j, &p.steps[j]) {
                break;
            }
        }
        if chain.members.len() >= 2 {
            chain.members.iter().for_each(|&m| taken[m] = true);
            fused.push(chain);
        }
    }
    if fused.is_empty() {
        return 0;
    }
    let count = fused.len();
    // Each chain goes where its last op was; its other ops go.
    let mut at_last: std::collections::HashMap<usize, Chain> = fused
        .into_iter()
        .filter_map(|c| c.members.last().copied().map(|l| (l, c)))
        .collect();
    let steps = std::mem::take(&mut p.steps);
    let names = std::mem::take(&mut p.names);
    for (i, (step, name)) in steps.into_iter().zip(names).enumerate() {
        if let Some(c) = at_last.remove(&i) {
            p.names
                .push(format!("{name} (+{} fused)", c.members.len() - 1));
            p.steps.push(Step::Chain {
                inputs: c.inputs,
                y: c.value,
                ops: c.ops,
            });
        } else if !taken[i] {
            p.names.push(name);
            p.steps.push(step);
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use trtc_engine::Precision;
    use trtc_ir::Dim;

    fn slot(shape: &[u64]) -> crate::program::Slot {
        crate::program::Slot {
            shape: shape.iter().map(|&d| Dim::Known(d)).collect(),
            alias_of: None,
            constant: None,
            nhwc: false,
            half: false,
            pixels: false,
            int8: false,
        }
    }

    fn act(x: usize, y: usize, code: i32) -> Step {
        Step::Act {
            x,
            y,
            act: (code, 0.0, 6.0),
        }
    }

    fn bin(a: usize, b: usize, y: usize, op: i32) -> Step {
        Step::Binary { a, b, y, op }
    }

    /// HardSwish as ONNX exporters write it: slots 0 x, 1 three, 2 six (constants
    /// [1,1,1,1]), 3 x+3, 4 clip, 5 /6, 6 x*that, then 7 a sigmoid of it.
    fn hardswish(extra_reader_of: Option<usize>) -> Program {
        let mut slots: Vec<_> = (0..8).map(|_| slot(&[2, 4, 5, 5])).collect();
        slots[1] = slot(&[1, 1, 1, 1]);
        slots[2] = slot(&[1, 1, 1, 1]);
        let mut steps = vec![
            bin(0, 1, 3, 0),
            act(3, 4, 2),
            bin(4, 2, 5, 3),
            bin(0, 5, 6, 1),
            act(6, 7, 4),
        ];
        let mut outputs = vec![7];
        if let Some(s) = extra_reader_of {
            slots.push(slot(&[2, 4, 5, 5]));
            steps.push(act(s, 8, 1));
            outputs.push(8);
        }
        Program {
            names: (0..steps.len()).map(|i| format!("op{i}")).collect(),
            slots,
            steps,
            inputs: vec![0],
            outputs,
            weights: vec![],
            precision: Precision::Fp32,
            nhwc: false,
            half: false,
            precisions: vec![],
        }
    }

    #[test]
    fn a_hardswish_and_its_sigmoid_become_one_step() {
        let mut p = hardswish(None);
        assert_eq!(fuse_elementwise_chains(&mut p), 1);
        assert_eq!(p.steps.len(), 1);
        assert_eq!(p.names, vec!["op4 (+4 fused)"]);
        let Step::Chain { inputs, y, ops } = &p.steps[0] else {
            panic!("not a chain")
        };
        // x is read once though two ops use it; the constants are the other inputs.
        assert_eq!(inputs, &vec![0, 1, 2]);
        assert_eq!(*y, 7);
        assert_eq!(
            ops,
            &vec![
                ChainOp::Binary {
                    op: 0,
                    input: 1,
                    value_first: true
                },
                ChainOp::Act((2, 0.0, 6.0)),
                ChainOp::Binary {
                    op: 3,
                    input: 2,
                    value_first: true
                },
                ChainOp::Binary {
                    op: 1,
                    input: 0,
                    value_first: false
                },
                ChainOp::Act((4, 0.0, 6.0)),
            ]
        );
    }

    #[test]
    fn a_chain_ends_where_its_value_has_a_second_reader_or_is_an_output() {
        // The clip's output (slot 4) is read again: the chain is x+3 -> clip, then /6 ->
        // *x -> sigmoid.
        let mut p = hardswish(Some(4));
        assert_eq!(fuse_elementwise_chains(&mut p), 2);
        let ys: Vec<usize> = p.steps.iter().map(|s| step_slots(s).1[0]).collect();
        assert_eq!(ys, vec![4, 7, 8]);
        // The product is a segment output: it must be stored, so the sigmoid stays alone.
        let mut p = hardswish(None);
        p.outputs.push(6);
        assert_eq!(fuse_elementwise_chains(&mut p), 1);
        let ys: Vec<usize> = p.steps.iter().map(|s| step_slots(s).1[0]).collect();
        assert_eq!(ys, vec![6, 7]);
    }

    #[test]
    fn no_chain_through_a_broadcast_of_the_value_or_past_the_op_limit() {
        // relu(x + c) is [2,4,1,1]; times w [2,4,5,5] broadcasts it, so the product starts
        // a second chain (where relu's output is an input, read with broadcasting).
        let mut p = hardswish(None);
        p.slots = vec![
            slot(&[2, 4, 1, 1]),
            slot(&[1, 1, 1, 1]),
            slot(&[2, 4, 5, 5]),
            slot(&[2, 4, 1, 1]),
            slot(&[2, 4, 1, 1]),
            slot(&[2, 4, 5, 5]),
            slot(&[2, 4, 5, 5]),
        ];
        p.steps = vec![bin(0, 1, 3, 0), act(3, 4, 1), bin(4, 2, 5, 1), act(5, 6, 4)];
        p.names = (0..4).map(|i| format!("op{i}")).collect();
        p.inputs = vec![0, 2];
        p.outputs = vec![6];
        assert_eq!(fuse_elementwise_chains(&mut p), 2);
        let firsts: Vec<usize> = p.steps.iter().map(|s| step_slots(s).0[0]).collect();
        assert_eq!(firsts, vec![0, 4]);

        // Ten activations in a row: the kernel takes 8 per chain.
        let mut p = hardswish(None);
        p.slots = (0..11).map(|_| slot(&[3])).collect();
        p.steps = (0..10).map(|i| act(i, i + 1, 1)).collect();
        p.names = (0..10).map(|i| format!("r{i}")).collect();
        p.outputs = vec![10];
        assert_eq!(fuse_elementwise_chains(&mut p), 2);
        assert_eq!(p.steps.len(), 2);
        assert!(matches!(&p.steps[0], Step::Chain { ops, .. } if ops.len() == MAX_OPS));
    }
}
