//! Tactics for the convolutions trtc's own NHWC kernels can run (depthwise convs and image
//! stems): cuDNN timed against trtc's per-pixel, row-tiled and 2-D tiled kernels (the
//! latter in f32 and, in fp16 engines, in fp16 arithmetic) and, for stems in fp16 engines,
//! its tensor-core kernel, on the instance's shapes; the Clip of a 1x1 conv moved into the
//! depthwise conv after it timed as a pair, and that 1x1 conv as a cuBLASLt product where
//! its Clip has moved.

use crate::error::Result;
use crate::exec::{DirectForm, Exec, Instance, LtRun};
use crate::program::conv_rules::is_depthwise;
use crate::program::Step;

impl Exec {
    /// For each convolution trtc's own NHWC kernels can run (depthwise, and few input
    /// channels: `direct::direct_kernel_fits`), time cuDNN against that kernel, and
    /// against its other forms where they fit (`Exec::form_fits`: row-tiled, 2-D tiled in
    /// f32 and in fp16 arithmetic, the tensor-core stem), on this batch size and keep the
    /// fastest.
    /// `TRTC_DIRECT=direct|rows|tiles|half2|mma|cudnn` fixes the choice for all of them,
    /// `TRTC_DEPTHWISE` for depthwise convs (for tests and comparisons; `rows` and `tiles`
    /// are `direct` where no such kernel fits).
    pub(super) fn choose_direct_kernels(&self, inst: &mut Instance) -> Result<()> {
        if !self.program.nhwc {
            return Ok(());
        }
        let candidates: Vec<usize> = inst
            .convs
            .keys()
            .copied()
            .filter(|&i| {
                matches!(
                    &self.program.steps[i],
                    Step::Conv {
                        w_direct: Some(_),
                        ..
                    }
                )
            })
            .collect();
        let env = |var: &str| {
            std::env::var(var).ok().filter(|c| {
                ["direct", "rows", "tiles", "half2", "mma", "cudnn"].contains(&c.as_str())
            })
        };
        for i in candidates {
            let depthwise = matches!(&self.program.steps[i],
                Step::Conv { w_dims, groups, .. } if is_depthwise(w_dims, *groups));
            let forced =
                env("TRTC_DIRECT").or_else(|| depthwise.then(|| env("TRTC_DEPTHWISE")).flatten());
            if let Some(choice) = forced {
                let form = match choice.as_str() {
                    "rows" => DirectForm::Rows,
                    "tiles" => DirectForm::Tiles,
                    "half2" => DirectForm::HalfTiles,
                    "mma" => DirectForm::Mma,
                    _ => DirectForm::Pixel,
                };
                let form = if self.form_fits(i, form) {
                    form
                } else {
                    DirectForm::Pixel
                };
                if let Some(r) = inst.convs.get_mut(&i) {
                    r.direct = choice != "cudnn";
                    r.form = form;
                }
                continue;
            }
            // trtc's kernel takes over the producer's Clip where it can: time the pair.
            let producer = self
                .program
                .steps
                .iter()
                .position(|s| matches!(s, Step::Conv { clip_to: Some(j), .. } if *j == i));
            let time = |inst: &Instance| -> Result<f32> {
                let pair = match producer {
                    Some(k) => self.time_step(inst, k)?,
                    None => 0.0,
                };
                Ok(self.time_step(inst, i)? + pair)
            };
            let cudnn_ms = time(inst)?;
            let set = |inst: &mut Instance, direct: bool, form: DirectForm| {
                if let Some(r) = inst.convs.get_mut(&i) {
                    r.direct = direct;
                    r.form = form;
                }
            };
            let mut best = (cudnn_ms, false, DirectForm::Pixel);
            let mut best_direct: Option<(f32, DirectForm)> = None;
            let forms = [
                DirectForm::Pixel,
                DirectForm::Rows,
                DirectForm::Tiles,
                DirectForm::HalfTiles,
                DirectForm::Mma,
            ];
            for form in forms.into_iter().filter(|&f| self.form_fits(i, f)) {
                set(inst, true, form);
                if let Ok(ms) = time(inst) {
                    if ms < best.0 {
                        best = (ms, true, form);
                    }
                    if best_direct.is_none_or(|(b, _)| ms < b) {
                        best_direct = Some((ms, form));
                    }
                }
            }
            // With its Clip moved, a 1x1 producer is a plain product with a bias: cuBLASLt's
            // epilogue takes it, where before the Clip needed a pass of its own.
            if let (Some(k), Some((_, form))) = (producer, best_direct) {
                set(inst, true, form);
                if let Some((dw_ms, product)) = self.producer_as_product(inst, i, k)? {
                    if dw_ms < best.0 {
                        best = (dw_ms, true, form);
                        if let Some(r) = inst.convs.get_mut(&k) {
                            r.gemm = Some(product);
                        }
                    }
                }
            }
            set(inst, best.1, best.2);
        }
        Ok(())
    }

    /// Depthwise conv step `i` run by trtc's kernel with the Clip of 1x1 conv step `k` moved
    /// into it, and `k` as cuBLASLt's fastest product: their summed time and that product,
    /// where `k` runs on cuDNN now and cuBLASLt takes it.
    fn producer_as_product(
        &self,
        inst: &mut Instance,
        i: usize,
        k: usize,
    ) -> Result<Option<(f32, LtRun)>> {
        let on_cudnn = inst
            .convs
            .get(&k)
            .is_some_and(|r| r.gemm.is_none() && !r.direct && !r.gemm_only);
        let Some((spec, bias)) = self.conv_gemm_spec(inst, k).filter(|_| on_cudnn) else {
            return Ok(None);
        };
        let dw_ms = self.time_step(inst, i)?;
        let found = self.fastest_conv_product(inst, k, spec, bias)?;
        Ok(found.map(|(ms, run)| (dw_ms + ms, run)))
    }
}
