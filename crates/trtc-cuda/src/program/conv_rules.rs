//! Which convolutions trtc's own NHWC kernels take, and the weight layout they read:
//! shared by lowering (which stores the weights), the clip-into-depthwise pass, the
//! tactics (which time the kernels) and the launches.

/// Most input channels trtc's direct NHWC kernel takes for an ordinary (one group) conv.
pub const DIRECT_MAX_INPUT_CHANNELS: usize = 4;

/// Most weight taps (`kh * kw * c`) of such a conv: 32 output channels of them, as float,
/// fill the 48 KiB of shared memory a block gets without asking.
pub const DIRECT_MAX_TAPS: usize = 384;

/// Whether a conv with weights `w_dims` (`[k, c/groups, kh, kw]`) in `groups` groups is
/// depthwise: one filter per channel.
pub fn is_depthwise(w_dims: &[i32; 4], groups: i32) -> bool {
    w_dims[1] == 1 && groups == w_dims[0]
}

/// Whether trtc's own NHWC kernels can run a conv with weights `[k, c/groups, kh, kw]`:
/// a depthwise conv, or one group of few input channels (an image stem, which cuDNN's
/// tensor-core kernels run badly) with a whole number of 16-byte vectors of outputs.
pub fn direct_kernel_fits([k, c, kh, kw]: [usize; 4], groups: i64) -> bool {
    let depthwise = c == 1 && groups as usize == k;
    let few_inputs = groups == 1
        && c <= DIRECT_MAX_INPUT_CHANNELS
        && k.is_multiple_of(8)
        && kh * kw * c <= DIRECT_MAX_TAPS;
    depthwise || few_inputs
}

/// Whether trtc's INT8 1x1 kernels (`sys/conv1x1_i8.cu`) take a dense conv with weights
/// `[k, c, kh, kw]` in `groups` groups, `pads`, `strides` and `dilations`: one group, 1x1,
/// stride 1, no pads or dilation, input and output channels multiples of 16 (whole 16-byte
/// pieces of int8 rows). Those kernels take a requantization scale per output channel, so
/// the engine quantizes such a conv's weights per channel; cuDNN's INT8 convolution, which
/// runs the other dense convs in INT8, takes one scale for the whole weight.
pub fn int8_kernels_take(
    [k, c, kh, kw]: [usize; 4],
    groups: i64,
    pads: &[i64],
    strides: &[i64],
    dilations: &[i64],
) -> bool {
    groups == 1
        && (kh, kw) == (1, 1)
        && pads.iter().all(|&p| p == 0)
        && strides.iter().all(|&s| s == 1)
        && dilations.iter().all(|&d| d == 1)
        && c.is_multiple_of(16)
        && k.is_multiple_of(16)
}

/// `[k][c][kh][kw]` weights reordered to `[kh][kw][c][k]`: neighbouring output channels
/// neighbouring in memory, as the direct kernels' threads read them.
pub fn weights_rsck(w: &[f32], [k, c, kh, kw]: [usize; 4]) -> Vec<f32> {
    let mut t = vec![0.0; w.len()];
    for ko in 0..k {
        for ci in 0..c {
            for r in 0..kh {
                for s in 0..kw {
                    t[((r * kw + s) * c + ci) * k + ko] = w[((ko * c + ci) * kh + r) * kw + s];
                }
            }
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_kernels_take_unpadded_unit_stride_1x1_convs_of_16_channels() {
        let take = |w, g, p: &[i64], s: &[i64], d: &[i64]| int8_kernels_take(w, g, p, s, d);
        let (p0, s1, d1): (&[i64], &[i64], &[i64]) = (&[0; 4], &[1, 1], &[1, 1]);
        assert!(take([64, 32, 1, 1], 1, p0, s1, d1));
        assert!(!take([64, 32, 3, 3], 1, p0, s1, d1), "3x3");
        assert!(!take([64, 32, 1, 1], 2, p0, s1, d1), "grouped");
        assert!(!take([64, 24, 1, 1], 1, p0, s1, d1), "24 inputs");
        assert!(!take([40, 32, 1, 1], 1, p0, s1, d1), "40 outputs");
        assert!(!take([64, 32, 1, 1], 1, &[0, 0, 1, 0], s1, d1), "padded");
        assert!(!take([64, 32, 1, 1], 1, p0, &[2, 2], d1), "strided");
        assert!(!take([64, 32, 1, 1], 1, p0, s1, &[2, 2]), "dilated");
    }

    #[test]
    fn direct_weights_put_output_channels_last() {
        // k = 2, c = 3, 1x2 taps: w[k][c][0][s] = 100k + 10c + s.
        let w: Vec<f32> = (0..2)
            .flat_map(|k| {
                (0..3).flat_map(move |c| (0..2).map(move |s| (100 * k + 10 * c + s) as f32))
            })
            .collect();
        let t = weights_rsck(&w, [2, 3, 1, 2]);
        // [s][c][k]
        assert_eq!(&t[..6], &[0.0, 100.0, 10.0, 110.0, 20.0, 120.0]);
        assert_eq!(&t[6..], &[1.0, 101.0, 11.0, 111.0, 21.0, 121.0]);
        // A depthwise conv's [k][1][kh][kw] becomes [kh][kw][k].
        let dw: Vec<f32> = (0..8).map(|i| i as f32).collect();
        assert_eq!(
            weights_rsck(&dw, [2, 1, 2, 2]),
            vec![0.0, 4.0, 1.0, 5.0, 2.0, 6.0, 3.0, 7.0]
        );
    }

    #[test]
    fn direct_kernels_take_depthwise_convs_and_few_input_channels() {
        assert!(is_depthwise(&[32, 1, 3, 3], 32));
        assert!(!is_depthwise(&[32, 1, 3, 3], 16), "16 groups of 2 channels");
        assert!(!is_depthwise(&[32, 3, 3, 3], 1));
        assert!(direct_kernel_fits([32, 1, 3, 3], 32));
        assert!(direct_kernel_fits([32, 3, 3, 3], 1));
        assert!(
            !direct_kernel_fits([30, 3, 3, 3], 1),
            "outputs not whole vectors"
        );
        assert!(
            !direct_kernel_fits([32, 8, 3, 3], 1),
            "too many input channels"
        );
        assert!(
            !direct_kernel_fits([32, 2, 3, 3], 2),
            "grouped, not depthwise"
        );
        assert!(
            direct_kernel_fits([64, 3, 7, 7], 1),
            "ResNet's stem: 147 taps"
        );
        assert!(
            !direct_kernel_fits([64, 4, 11, 11], 1),
            "484 taps: over the shared memory"
        );
    }
}
