//! Tactics for INT8 convolutions: cuDNN's INT8 kernel timed against each of trtc's
//! tensor-core kernels (`exec::int8::OWN_KERNELS`) on the 1x1 convs they take
//! (`exec::int8::own_kernel_fits`), on the instance's shapes; the fastest runs. All compute
//! the same int8 results (exact int32 sums, the same f32 epilogue). Timed each time an
//! instance is built (plans do not store this choice). `TRTC_INT8_CONV` fixes it (tests,
//! comparisons): `cudnn`, `trtc` (the fastest of trtc's), or kernel names separated by
//! commas (`conv1x1_i8_128x64`: the fastest of those that take the layer, else cuDNN).

use crate::error::Result;
use crate::exec::{own_kernel_fits, Exec, Instance, OwnConv, OwnKernel, OWN_KERNELS};

impl Exec {
    pub(crate) fn choose_int8_kernels(&self, inst: &mut Instance) -> Result<()> {
        let forced = std::env::var("TRTC_INT8_CONV").ok();
        let candidates: Vec<usize> = inst
            .qconvs
            .keys()
            .copied()
            .filter(|&i| own_kernel_fits(&self.program.steps[i]))
            .collect();
        for i in candidates {
            let k = match &self.program.steps[i] {
                crate::program::Step::ConvInt8 { w_dims, .. } => w_dims[1] as usize,
                _ => continue,
            };
            let kernels: Vec<&'static OwnKernel> = OWN_KERNELS
                .iter()
                .filter(|o| o.takes(k))
                .filter(|o| match forced.as_deref() {
                    None | Some("trtc") => true,
                    Some(names) => names.split(',').any(|n| n == o.name),
                })
                .collect();
            let time_cudnn = forced.is_none();
            // The fastest of trtc's kernels, kept as prepared for this instance.
            let mut best: Option<(f32, OwnConv)> = None;
            for kernel in kernels {
                let own = match self.own_conv(i, inst.batch, kernel) {
                    Ok(own) => own,
                    Err(e) => {
                        tracing::warn!("{}: {} not used ({e})", self.program.names[i], kernel.name);
                        continue;
                    }
                };
                set_own(inst, i, Some(own));
                let timed = self.time_step(inst, i);
                let own = set_own(inst, i, None);
                match timed {
                    Ok(t) if best.as_ref().is_none_or(|(b, _)| t < *b) => {
                        best = own.map(|own| (t, own))
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(
                        "{}: trtc's INT8 kernel {} failed ({e}); not used",
                        self.program.names[i],
                        kernel.name
                    ),
                }
            }
            let Some((t_own, own)) = best else {
                continue;
            };
            if time_cudnn && self.time_step(inst, i)? <= t_own {
                continue;
            }
            set_own(inst, i, Some(own));
        }
        Ok(())
    }
}

/// INT8 conv `i` of `inst` run by `own` (trtc's kernel) or by cuDNN (`None`); returns what
/// ran it before.
fn set_own(inst: &mut Instance, i: usize, own: Option<OwnConv>) -> Option<OwnConv> {
    inst.qconvs
        .get_mut(&i)
        .and_then(|r| std::mem::replace(&mut r.own, own))
}
