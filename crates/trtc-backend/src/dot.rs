//! DOT of a plan: one cluster per segment, coloured by backend, CPU nodes labelled with
//! their fallback reason.

use crate::partition::SegmentBackend;
use crate::plan::Plan;
use trtc_ir::dot::{to_dot, DotCluster, DotOptions};

pub fn plan_to_dot(plan: &Plan, title: &str) -> String {
    let clusters = plan
        .partition
        .segments
        .iter()
        .map(|s| DotCluster {
            label: format!("segment {} ({}, {} nodes)", s.id, s.backend, s.nodes.len()),
            color: match s.backend {
                SegmentBackend::Gpu => "#76b900".into(),
                SegmentBackend::Cpu => "#4a90d9".into(),
            },
            nodes: s.nodes.clone(),
        })
        .collect();
    let notes = plan
        .partition
        .fallback
        .iter()
        .map(|f| (f.node, format!("CPU: {}", f.reason)))
        .collect();
    to_dot(
        &plan.graph,
        &DotOptions {
            title: Some(title.into()),
            clusters,
            notes,
        },
    )
}
