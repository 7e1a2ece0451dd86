//! Clip moved into the depthwise conv that reads it:
//! `Conv(act = Clip(lo, hi)) -> t -> depthwise Conv(t)` where `t` is read by nothing else
//! `=>` `Conv(no activation) -> depthwise Conv(clamp(t, lo, hi))`, the clamp applied as
//! trtc's depthwise kernel loads its input.
//!
//! Neither cuDNN's fused call nor cuBLASLt's epilogue clamps at 6, so Clip(0, 6) after an
//! expand conv (MobileNetV2, EfficientNet) is a second pass over the block's widest
//! tensor, which the depthwise conv reads anyway. Rounding to fp16 is monotonic and keeps
//! the bounds exact where they are integers, so clamping after storage gives the very
//! values clamping before it would.
//!
//! This pass only marks the pair (`clip_to` on the producer, `x_clamp` on the reader); the
//! clip moves where an engine instance runs the reader with trtc's kernel, a tactic timed
//! against cuDNN's depthwise conv plus the producer's clip pass (`tactics.rs`). Where cuDNN
//! runs the reader, the producer clips as before.
//!
//! Must not fire when `t` is a segment output, a view of a reshape, read by another step
//! too, or when the reader is not a depthwise conv that trtc's own kernel can run (NHWC
//! engines only, with `w_direct` weights).

use super::arena::step_slots;
use crate::program::conv_rules::is_depthwise;
use crate::program::{Program, Step};
use trtc_ir::Activation;

/// Mark each Clip that can move into its depthwise reader; returns how many can.
pub fn clip_into_depthwise(p: &mut Program) -> usize {
    let mut readers: Vec<Vec<usize>> = vec![vec![]; p.slots.len()];
    for (i, step) in p.steps.iter().enumerate() {
        for s in step_slots(step).0 {
            readers[s].push(i);
        }
    }
    let mut moves = vec![];
    for (i, step) in p.steps.iter().enumerate() {
        let Step::Conv {
            y,
            act: Some(Activation::Clip { min, max }),
            ..
        } = step
        else {
            continue;
        };
        let output = p.outputs.iter().any(|&o| p.storage(o) == *y);
        let viewed = p.slots.iter().any(|t| t.alias_of == Some(*y));
        let [j] = readers[*y][..] else { continue };
        let depthwise_reader = matches!(&p.steps[j],
            Step::Conv { x, w_direct: Some(_), x_clamp: None, w_dims, groups, .. }
                if x == y && is_depthwise(w_dims, *groups));
        if !output && !viewed && depthwise_reader {
            moves.push((i, j, *min, *max));
        }
    }
    for &(i, j, min, max) in &moves {
        if let Step::Conv { clip_to, .. } = &mut p.steps[i] {
            *clip_to = Some(j);
        }
        if let Step::Conv { x_clamp, .. } = &mut p.steps[j] {
            *x_clamp = Some((min, max));
        }
    }
    moves.len()
}
