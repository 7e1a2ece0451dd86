//! Per-output-channel weight quantization: values, scales, zero channels, round trip.

use trtc_ir::{ConvAttrs, Op};
use trtc_quant::weights::{quantize_tensor, ZERO_CHANNEL_SCALE};
use trtc_quant::{channel_axis, quantize_per_channel};

#[test]
fn scales_are_max_over_127_and_values_round_half_to_even() {
    // Conv weights [3, 1, 1, 6], channel axis 0. Channel 0 has max 127 (scale 1, exact),
    // channel 1 is all zero, channel 2 has max 254 (scale 2).
    #[rustfmt::skip]
    let w = [
        127.0, 2.5, -3.5, 0.5, -0.5, 1.5,
        0.0, 0.0, -0.0, 0.0, 0.0, 0.0,
        -254.0, 5.0, 7.0, -1.0, 3.0, 100.0,
    ];
    let q = quantize_per_channel(&w, &[3, 1, 1, 6], 0).unwrap();
    assert_eq!(q.scales, vec![1.0, ZERO_CHANNEL_SCALE, 2.0]);
    #[rustfmt::skip]
    assert_eq!(q.values, vec![
        127, 2, -4, 0, 0, 2,
        0, 0, 0, 0, 0, 0,
        -127, 2, 4, 0, 2, 50,
    ]);
    assert_eq!(q.channels(), 3);
    assert!(q.scales.iter().all(|s| s.is_finite() && *s > 0.0));
}

#[test]
fn axis_one_takes_columns() {
    // ConvTranspose-style [C_in=2, C_out=3]: channels are columns.
    let w = [1.0, -10.0, 0.0, 0.25, 5.5, 0.0];
    let q = quantize_per_channel(&w, &[2, 3], 1).unwrap();
    assert_eq!(
        q.scales,
        vec![1.0 / 127.0, 10.0 / 127.0, ZERO_CHANNEL_SCALE]
    );
    // 0.25 * 127 = 31.75, 5.5 / 10 * 127 = 69.85.
    assert_eq!(q.values, vec![127, -127, 0, 32, 70, 0]);
    assert_eq!(q.channel_of(4), 1);
}

#[test]
fn round_trip_error_is_at_most_half_a_step() {
    let mut x = 0x9e3779b97f4a7c15u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    };
    let shape = [16, 8, 3, 3];
    let w: Vec<f32> = (0..16 * 8 * 9)
        .enumerate()
        .map(|(i, _)| next() * (1 + i / 72) as f32 * 0.37)
        .collect();
    let q = quantize_per_channel(&w, &shape, 0).unwrap();
    let back = q.dequantize();
    for (i, (&a, &b)) in w.iter().zip(&back).enumerate() {
        let c = q.channel_of(i);
        assert_eq!(c, i / 72);
        let s = q.scales[c];
        assert!(
            (a - b).abs() <= q.error_bound(c),
            "element {i}: {a} vs {b}, scale {s}"
        );
        assert!(q.error_bound(c) <= s * 0.5001);
    }
    // The max of each channel maps to +-127 exactly.
    for c in 0..16 {
        let slice = &q.values[c * 72..(c + 1) * 72];
        assert_eq!(slice.iter().map(|v| v.unsigned_abs()).max(), Some(127));
    }
}

#[test]
fn bad_weights_are_errors() {
    assert!(quantize_per_channel(&[1.0, 2.0], &[3], 0).is_err());
    assert!(quantize_per_channel(&[1.0, 2.0], &[2], 1).is_err());
    let e = quantize_per_channel(&[1.0, f32::NAN, 2.0, 3.0], &[2, 2], 0).unwrap_err();
    assert!(e.to_string().contains("element 1"), "{e}");
    assert!(quantize_per_channel(&[f32::INFINITY], &[1], 0).is_err());
}

#[test]
fn tensors_and_channel_axes() {
    let t = trtc_ir::Tensor::from_shape(&[2, 2], &[2.0f32, -0.5, 0.0, 0.0]).unwrap();
    let q = quantize_tensor(&t, 0).unwrap();
    assert_eq!(q.values, vec![127, -32, 0, 0]);
    assert_eq!(channel_axis(&Op::Conv(ConvAttrs::default()), 4), Some(0));
    let gemm = |trans_b| Op::Gemm {
        alpha: 1.0,
        beta: 1.0,
        trans_a: 0,
        trans_b,
    };
    assert_eq!(channel_axis(&gemm(1), 2), Some(0));
    assert_eq!(channel_axis(&gemm(0), 2), Some(1));
    assert_eq!(channel_axis(&Op::MatMul, 3), Some(2));
    assert_eq!(channel_axis(&Op::Relu, 2), None);
}
