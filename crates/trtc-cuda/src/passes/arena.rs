//! One memory arena per engine instance: every tensor the segment computes internally gets
//! an offset in it, and tensors whose lifetimes (first write to last read, in step order)
//! do not overlap share memory. Segment inputs and outputs keep buffers of their own (the
//! host writes and reads them around the run), as do constants.
//!
//! Placement is greedy, largest tensor first, at the lowest offset free for its whole
//! lifetime. Lifetimes are inclusive at both ends, so a step never writes its output over
//! an input it is still reading.

use super::concat_views::View;
use crate::program::{Program, ReduceOp, Step};
use std::collections::HashMap;

/// Offsets are multiples of this (cuDNN and cuBLASLt want aligned tensors).
pub const ALIGN: usize = 256;

/// A tensor to place: its bytes and the first and last steps that touch it.
#[derive(Clone, Copy, Debug)]
pub struct Interval {
    pub bytes: usize,
    pub first: usize,
    pub last: usize,
}

/// Offsets for `tensors` (same order) and the arena's size.
pub fn place(tensors: &[Interval]) -> (Vec<usize>, usize) {
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(tensors[i].bytes));
    let mut offsets = vec![0usize; tensors.len()];
    let mut placed: Vec<usize> = vec![];
    let mut total = 0;
    for i in order {
        let t = tensors[i];
        let size = t.bytes.div_ceil(ALIGN).max(1) * ALIGN;
        // Blocks already placed whose lifetimes meet this one, by offset.
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&j| tensors[j].first <= t.last && t.first <= tensors[j].last)
            .map(|&j| {
                (
                    offsets[j],
                    offsets[j] + tensors[j].bytes.div_ceil(ALIGN).max(1) * ALIGN,
                )
            })
            .collect();
        busy.sort();
        let mut at = 0;
        for (start, end) in busy {
            if at + size <= start {
                break;
            }
            at = at.max(end);
        }
        offsets[i] = at;
        total = total.max(at + size);
        placed.push(i);
    }
    (offsets, total)
}

/// Slots each step reads and writes.
pub fn step_slots(step: &Step) -> (Vec<usize>, Vec<usize>) {
    match step {
        Step::Conv { x, y, z, .. } | Step::ConvInt8 { x, y, z, .. } => {
            (std::iter::once(*x).chain(*z).collect(), vec![*y])
        }
        Step::Reduce {
            x,
            y,
            op: ReduceOp::Reduce {
                partial: Some(t), ..
            },
            ..
        } => (vec![*x, *t], vec![*t, *y]),
        Step::Pool { x, y, bias, .. } => (std::iter::once(*x).chain(*bias).collect(), vec![*y]),
        Step::GlobalPool { x, y, .. }
        | Step::Act { x, y, .. }
        | Step::Softmax { x, y }
        | Step::Convert { x, y }
        | Step::Relayout { x, y }
        | Step::Transpose { x, y, .. }
        | Step::Resize { x, y, .. }
        | Step::ConvTranspose { x, y, .. }
        | Step::Reduce { x, y, .. }
        | Step::Lrn { x, y, .. }
        | Step::Gather { x, y, .. }
        | Step::Quantize { x, y, .. }
        | Step::Dequantize { x, y, .. }
        | Step::Pixels { x, y, .. } => (vec![*x], vec![*y]),
        Step::Binary { a, b, y, .. } | Step::BatchedMatMul { a, b, y, .. } => {
            (vec![*a, *b], vec![*y])
        }
        Step::Concat { inputs, y, .. } => (inputs.clone(), vec![*y]),
        Step::Split { x, outputs, .. } => (vec![*x], outputs.clone()),
        Step::Gemm { a, y, .. } => (vec![*a], vec![*y]),
        Step::Chain { inputs, y, .. } => (inputs.clone(), vec![*y]),
    }
}

/// For each storage slot that belongs in the arena: (slot, first step, last step). Views
/// (reshapes, and concat inputs computed in place) extend the lifetime of the tensor they
/// view.
pub fn lifetimes(p: &Program, views: &HashMap<usize, View>) -> Vec<(usize, usize, usize)> {
    let mut span: Vec<Option<(usize, usize)>> = vec![None; p.slots.len()];
    for (i, step) in p.steps.iter().enumerate() {
        let (reads, writes) = step_slots(step);
        for s in reads.into_iter().chain(writes) {
            let st = p.storage(s);
            let st = views.get(&st).map(|v| p.storage(v.base)).unwrap_or(st);
            span[st] = Some(match span[st] {
                Some((a, b)) => (a.min(i), b.max(i)),
                None => (i, i),
            });
        }
    }
    let boundary = |s: usize| {
        p.inputs
            .iter()
            .chain(&p.outputs)
            .any(|&b| p.storage(b) == s)
    };
    span.iter()
        .enumerate()
        .filter_map(|(s, sp)| {
            let slot = &p.slots[s];
            let own = slot.alias_of.is_none() && slot.constant.is_none() && !boundary(s);
            sp.filter(|_| own).map(|(a, b)| (s, a, b))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(bytes: usize, first: usize, last: usize) -> Interval {
        Interval { bytes, first, last }
    }

    #[test]
    fn disjoint_lifetimes_share_memory() {
        // a chain a -> b -> c -> d: a and c, b and d can share.
        let t = [
            iv(1000, 0, 1),
            iv(1000, 1, 2),
            iv(1000, 2, 3),
            iv(1000, 3, 4),
        ];
        let (off, total) = place(&t);
        assert_eq!(total, 2 * 1024);
        for i in 0..t.len() {
            for j in 0..t.len() {
                let meet = t[i].first <= t[j].last && t[j].first <= t[i].last;
                if i != j && meet {
                    assert!(
                        off[i] + 1024 <= off[j] || off[j] + 1024 <= off[i],
                        "{i} {j}"
                    );
                }
            }
        }
    }

    #[test]
    fn overlapping_lifetimes_never_share_and_offsets_are_aligned() {
        let t = [iv(300, 0, 5), iv(5000, 2, 3), iv(700, 3, 9), iv(1, 4, 4)];
        let (off, total) = place(&t);
        let end = |i: usize| off[i] + t[i].bytes.div_ceil(ALIGN) * ALIGN;
        for i in 0..t.len() {
            assert_eq!(off[i] % ALIGN, 0);
            assert!(end(i) <= total);
            for j in i + 1..t.len() {
                if t[i].first <= t[j].last && t[j].first <= t[i].last {
                    assert!(end(i) <= off[j] || end(j) <= off[i], "{i} {j} overlap");
                }
            }
        }
        // Everything is live at step 4 except tensor 1; its 5000 bytes can sit where
        // nothing else is live at steps 2-3 only if they do not overlap tensors 0 and 2.
        assert!(total <= 5120 + 512 + 768 + 256);
    }
}
