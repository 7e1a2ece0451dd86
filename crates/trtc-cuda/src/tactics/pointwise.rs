//! The tactic for 1x1 convolutions trtc's tensor-core kernel takes (`exec/pointwise.rs`:
//! fp16 NHWC engines, at most 64 input channels): that kernel timed against what runs the
//! conv once the other tactics have chosen (cuBLASLt's product or cuDNN), on the
//! instance's shapes, the faster kept. `TRTC_POINTWISE=mma|off` fixes the choice (for tests
//! and comparisons).

use crate::error::Result;
use crate::exec::{Exec, Instance};

impl Exec {
    pub(super) fn choose_pointwise_kernels(&self, inst: &mut Instance) -> Result<()> {
        let forced = std::env::var("TRTC_POINTWISE").ok();
        if forced.as_deref() == Some("off") {
            return Ok(());
        }
        let mut ids: Vec<usize> = inst
            .convs
            .keys()
            .copied()
            .filter(|&i| self.pointwise_mma_fits(inst, i))
            .collect();
        ids.sort_unstable();
        let set = |inst: &mut Instance, i: usize, on: bool| {
            if let Some(r) = inst.convs.get_mut(&i) {
                r.pointwise = on;
            }
        };
        for i in ids {
            let current_ms = match forced.as_deref() {
                Some("mma") => f32::INFINITY,
                // A conv writing a concat slice that cuBLASLt did not take fails here.
                _ => self.time_step(inst, i).unwrap_or(f32::INFINITY),
            };
            set(inst, i, true);
            let own_ms = self.time_step(inst, i).unwrap_or(f32::INFINITY);
            let keep = own_ms.is_finite() && own_ms < current_ms;
            set(inst, i, keep);
            if keep {
                // The product it replaces, with its workspace, is not needed.
                if let Some(r) = inst.convs.get_mut(&i) {
                    r.gemm = None;
                }
            }
        }
        Ok(())
    }
}
