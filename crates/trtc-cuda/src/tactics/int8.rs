//! Tactics for INT8 convolutions: cuDNN's INT8 kernel timed against trtc's tensor-core
//! `conv1x1_i8` on the 1x1 convs it takes (`exec::int8::own_kernel_fits`), on the
//! instance's shapes; the faster runs. Both compute the same int8 results (exact int32
//! sums, the same f32 epilogue). Timed each time an instance is built (plans do not store
//! this choice). `TRTC_INT8_CONV=cudnn|trtc` fixes it (tests, comparisons).

use crate::error::Result;
use crate::exec::{own_kernel_fits, Exec, Instance};

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
            let set = |inst: &mut Instance, own: bool| {
                if let Some(r) = inst.qconvs.get_mut(&i) {
                    r.own = own;
                }
            };
            let own = match forced.as_deref() {
                Some("trtc") => true,
                Some("cudnn") => false,
                _ => {
                    set(inst, true);
                    match self.time_step(inst, i) {
                        Ok(t_own) => {
                            set(inst, false);
                            let t_cudnn = self.time_step(inst, i)?;
                            t_own < t_cudnn
                        }
                        Err(e) => {
                            tracing::warn!(
                                "{}: trtc's INT8 kernel failed ({e}); cuDNN runs it",
                                self.program.names[i]
                            );
                            false
                        }
                    }
                }
            };
            set(inst, own);
        }
        Ok(())
    }
}
