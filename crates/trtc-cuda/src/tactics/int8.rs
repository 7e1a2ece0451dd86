//! Tactics for INT8 convolutions: cuDNN's INT8 kernel timed against each of trtc's
//! tensor-core kernels (`exec::int8::OWN_KERNELS`; the tiled ones also with K split across
//! blocks where their grid leaves SMs idle, `Exec::split_counts`) on the 1x1 convs they take
//! (`exec::int8::own_kernel_fits`), on the instance's shapes; the fastest runs. All compute
//! the same int8 results (exact int32 sums, the same f32 epilogue). A conv whose weights
//! are quantized per channel (all those the lowering gives trtc's kernels, unless a
//! quantized model gave one scale) runs on trtc's kernels only: cuDNN takes one scale.
//! Timed each time an instance is built (plans do not store this choice). `TRTC_INT8_CONV`
//! fixes it (tests, comparisons): `cudnn`, `trtc` (the fastest of trtc's), or kernel names
//! separated by commas (`conv1x1_i8_128x64`: the fastest of those that take the layer,
//! else cuDNN; `conv1x1_i8_64x64:4`: that kernel with K split 4 ways, where it may split);
//! a per-channel conv takes the fastest of trtc's where the names leave none.

use crate::error::cuda_err;
use crate::error::Result;
use crate::exec::{own_kernel_fits, per_channel, Exec, Instance, OwnConv, OwnKernel, OWN_KERNELS};

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
            let only_own = per_channel(&self.program.steps[i]);
            // Kernel names (and split counts) TRTC_INT8_CONV allows.
            let allowed = |o: &OwnKernel, split: Option<u32>| match forced.as_deref() {
                None | Some("trtc") => true,
                Some(names) => names.split(',').any(|n| match n.split_once(':') {
                    None => n == o.name,
                    Some((name, s)) => name == o.name && split.is_none_or(|x| s.parse() == Ok(x)),
                }),
            };
            let named = |o: &&OwnKernel| allowed(o, None);
            let mut kernels: Vec<&'static OwnKernel> = OWN_KERNELS
                .iter()
                .filter(|o| o.takes(k))
                .filter(named)
                .collect();
            // A per-channel conv the names leave without a kernel takes any of trtc's,
            // at any split.
            let fallback = kernels.is_empty() && only_own;
            if fallback {
                kernels = OWN_KERNELS.iter().filter(|o| o.takes(k)).collect();
            }
            let time_cudnn = forced.is_none() && !only_own;
            // The fastest of trtc's kernels (each tiled one also with K split where its
            // grid is small), kept as prepared for this instance.
            let mut best: Option<(f32, OwnConv)> = None;
            for kernel in kernels {
                let mut splits = self.split_counts(i, inst.batch, kernel)?;
                if !fallback {
                    splits.retain(|&x| allowed(kernel, Some(x)));
                }
                for split in splits {
                    let own = match self.own_conv(i, inst.batch, kernel, split) {
                        Ok(own) => own,
                        Err(e) => {
                            tracing::warn!(
                                "{}: {} not used ({e})",
                                self.program.names[i],
                                kernel.name
                            );
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
                            "{}: trtc's INT8 kernel {} (split {split}) failed ({e}); not used",
                            self.program.names[i],
                            kernel.name
                        ),
                    }
                }
            }
            let Some((t_own, own)) = best else {
                if only_own {
                    return Err(cuda_err(
                        &self.program.names[i],
                        "none of trtc's INT8 kernels ran this conv, and its weights are \
                         quantized per channel, which cuDNN's INT8 convolution does not take",
                    ));
                }
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
