//! Concat without copies (TensorRT's concat elision):
//! `Concat(axis=1)(.., t, ..)` where `t` is written by one Conv, NHWC Pool or channel Split
//! step and read by nothing else `=>` that step writes `t` straight into its channel slice
//! of the concat's output, and the concat copies only the inputs left (none, often). (A
//! Split then copies once, not twice: horizontal fusion's Splits feed Inception's concats.)
//!
//! The slice is a strided view of the output: rows (NHWC: pixels, NCHW: images) `ld`
//! elements apart, the slice starting `offset` elements into the row.
//!
//! Must not fire when `t`
//! - is a segment input or output, a constant, a view itself, or viewed by a reshape;
//! - is read by any step other than the concat, or is listed in it twice;
//! - comes from a Conv with a residual input (its kernels read the residual as packed
//!   rows), with an activation other than ReLU (that runs as a second, packed pass), or
//!   with depthwise weights (trtc's depthwise kernel writes packed rows);
//! - would start or have rows off a 16-byte boundary (vector kernels and tensor cores need
//!   aligned rows);
//!
//! or when the concat's output is itself a view. Each engine instance keeps only the views
//! cuDNN can write (`instance.rs`), and builds again without any if a tactic refuses one.

use super::arena::step_slots;
use crate::program::{Program, Step};
use std::collections::HashMap;

/// Where a tensor lives inside another: element `offset` of each of the base's rows, rows
/// `ld` elements apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct View {
    pub base: usize,
    pub offset: usize,
    pub ld: usize,
}

/// The concat inputs of `p` that can be computed in place, by slot.
pub fn concat_views(p: &Program) -> HashMap<usize, View> {
    let mut readers = vec![0usize; p.slots.len()];
    let mut writers = vec![0usize; p.slots.len()];
    for step in &p.steps {
        let (reads, writes) = step_slots(step);
        reads.iter().for_each(|&s| readers[s] += 1);
        writes.iter().for_each(|&s| writers[s] += 1);
    }
    let viewed_by_reshape = |s: usize| p.slots.iter().any(|t| t.alias_of == Some(s));
    let boundary = |s: usize| p.inputs.contains(&s) || p.outputs.contains(&s);
    let producer_can_write_rows = |s: usize| {
        p.steps.iter().any(|step| match step {
            Step::Conv {
                y,
                z,
                act,
                w_direct,
                ..
            } => {
                *y == s
                    && z.is_none()
                    && w_direct.is_none()
                    && matches!(act, None | Some(trtc_ir::Activation::Relu))
            }
            Step::Pool { y, .. } => *y == s && p.slots[s].nhwc,
            // Its copy kernel writes any row stride (a horizontally fused conv's Split).
            Step::Split { outputs, axis, .. } => *axis == 1 && outputs.contains(&s),
            _ => false,
        })
    };
    let mut views = HashMap::new();
    for step in &p.steps {
        let Step::Concat { inputs, y, axis } = step else {
            continue;
        };
        let out = &p.slots[*y];
        if *axis != 1 || out.shape.len() != 4 || out.alias_of.is_some() || views.contains_key(y) {
            continue;
        }
        let ys = p.shape(*y, 1);
        let (c_total, hw) = (ys[1], ys[2] * ys[3]);
        let vec = 16 / out.elem_bytes();
        let mut channel = 0;
        for &t in inputs {
            let c = p.shape(t, 1)[1];
            let (offset, ld) = if out.nhwc {
                (channel, c_total)
            } else {
                (channel * hw, c_total * hw)
            };
            channel += c;
            let slot = &p.slots[t];
            let eligible = slot.alias_of.is_none()
                && slot.constant.is_none()
                && slot.nhwc == out.nhwc
                && slot.half == out.half
                && !boundary(t)
                && !viewed_by_reshape(t)
                && readers[t] == 1
                && writers[t] == 1
                && offset % vec == 0
                && ld % vec == 0
                && producer_can_write_rows(t);
            if eligible {
                views.insert(
                    t,
                    View {
                        base: *y,
                        offset,
                        ld,
                    },
                );
            }
        }
    }
    views
}

#[cfg(test)]
mod tests {
    use super::*;
    use trtc_engine::Precision;
    use trtc_ir::Dim;

    fn slot(shape: [usize; 4], nhwc: bool) -> crate::program::Slot {
        crate::program::Slot {
            shape: std::iter::once(Dim::Sym("N".into()))
                .chain(shape[1..].iter().map(|&d| Dim::Known(d as u64)))
                .collect(),
            alias_of: None,
            constant: None,
            nhwc,
            half: true,
            pixels: false,
            int8: false,
        }
    }

    fn pool(x: usize, y: usize) -> Step {
        Step::Pool {
            x,
            y,
            max: true,
            kernel: [1, 1],
            stride: [1, 1],
            pads: [0; 4],
            count_pad: false,
            bias: None,
            act: None,
        }
    }

    /// x -> pool a (8 ch), pool b (16 ch), act c (8 ch) -> concat d (32 ch).
    fn program(nhwc: bool) -> Program {
        let mut p = Program {
            slots: vec![
                slot([1, 8, 4, 4], nhwc),
                slot([1, 8, 4, 4], nhwc),
                slot([1, 16, 4, 4], nhwc),
                slot([1, 8, 4, 4], nhwc),
                slot([1, 32, 4, 4], nhwc),
            ],
            steps: vec![],
            names: vec![],
            inputs: vec![0],
            outputs: vec![4],
            weights: vec![],
            precision: Precision::Fp16,
            nhwc,
            half: true,
            precisions: vec![],
        };
        p.steps = vec![
            pool(0, 1),
            pool(0, 2),
            Step::Act {
                x: 0,
                y: 3,
                act: (1, 0.0, 0.0),
            },
            Step::Concat {
                inputs: vec![1, 2, 3],
                y: 4,
                axis: 1,
            },
        ];
        p
    }

    #[test]
    fn pool_outputs_become_slices_of_the_concat() {
        let v = concat_views(&program(true));
        assert_eq!(v.len(), 2, "{v:?}");
        assert_eq!(
            v[&1],
            View {
                base: 4,
                offset: 0,
                ld: 32
            }
        );
        assert_eq!(
            v[&2],
            View {
                base: 4,
                offset: 8,
                ld: 32
            }
        );
        // An activation writes packed memory: its output is still copied.
        assert!(!v.contains_key(&3));
    }

    #[test]
    fn a_split_output_read_by_the_concat_alone_becomes_its_slice() {
        // x (16 ch) -> split 1, 2 (8 ch each); act(2) -> 3; concat(3, 1) -> 4 (16 ch).
        let mut p = program(true);
        p.slots = vec![
            slot([1, 16, 4, 4], true),
            slot([1, 8, 4, 4], true),
            slot([1, 8, 4, 4], true),
            slot([1, 8, 4, 4], true),
            slot([1, 16, 4, 4], true),
        ];
        p.steps = vec![
            Step::Split {
                x: 0,
                outputs: vec![1, 2],
                axis: 1,
            },
            Step::Act {
                x: 2,
                y: 3,
                act: (1, 0.0, 0.0),
            },
            Step::Concat {
                inputs: vec![3, 1],
                y: 4,
                axis: 1,
            },
        ];
        let v = concat_views(&p);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(
            v[&1],
            View {
                base: 4,
                offset: 8,
                ld: 16
            }
        );
        // A split along another axis does not write channel slices.
        if let Step::Split { axis, .. } = &mut p.steps[0] {
            *axis = 2;
        }
        assert!(concat_views(&p).is_empty());
    }

    #[test]
    fn no_view_for_a_second_reader_a_reshape_a_misaligned_slice_or_nchw_pools() {
        let mut p = program(true);
        p.steps.push(Step::Act {
            x: 1,
            y: 3,
            act: (1, 0.0, 0.0),
        });
        p.slots.push(crate::program::Slot {
            alias_of: Some(2),
            ..slot([1, 16, 4, 4], true)
        });
        assert!(concat_views(&p).is_empty());

        // 4 fp16 channels before b: its slice starts 8 bytes into the row.
        let mut p = program(true);
        p.slots[1] = slot([1, 4, 4, 4], true);
        p.slots[3] = slot([1, 12, 4, 4], true);
        let v = concat_views(&p);
        assert!(v.contains_key(&1) && !v.contains_key(&2), "{v:?}");

        // trtc's NCHW pooling kernel writes packed images.
        assert!(concat_views(&program(false)).is_empty());
    }

    #[test]
    fn a_view_lives_in_its_concat_from_its_producer_on() {
        // The concat's output feeds one more step; the segment's output is that step's.
        let mut p = program(true);
        p.slots.push(slot([1, 32, 4, 4], true));
        p.outputs = vec![5];
        p.steps.push(Step::Act {
            x: 4,
            y: 5,
            act: (1, 0.0, 0.0),
        });
        let views = concat_views(&p);
        let life = crate::passes::arena::lifetimes(&p, &views);
        // No own memory for the views; the concat's output is live from the first pool on.
        assert!(life.iter().all(|&(s, _, _)| s != 1 && s != 2), "{life:?}");
        assert!(life.contains(&(4, 0, 4)), "{life:?}");
        assert!(life.contains(&(3, 2, 3)), "{life:?}");
    }
}
