//! Host-side preparation of engine data: weights and constants converted to the engine's
//! element type (f32 or fp16) and layout (NCHW or NHWC) once, before upload.

/// The bytes of `v` as f32, or as fp16 (round to nearest even) when `half`.
pub(crate) fn encode(v: &[f32], half: bool) -> Vec<u8> {
    if half {
        v.iter()
            .flat_map(|&x| half::f16::from_f32(x).to_bits().to_ne_bytes())
            .collect()
    } else {
        v.iter().flat_map(|x| x.to_ne_bytes()).collect()
    }
}

/// Floats from the bytes of an f32 buffer.
pub(crate) fn decode_f32(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// `v`, an `[n, c, h, w]` tensor in NCHW order, reordered to NHWC (for conv weights,
/// `[k, c, r, s]` to KRSC).
pub(crate) fn nchw_to_nhwc(v: &[f32], [n, c, h, w]: [usize; 4]) -> Vec<f32> {
    let mut out = vec![0f32; v.len()];
    for p in 0..n {
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    out[((p * h + y) * w + x) * c + ch] = v[((p * c + ch) * h + y) * w + x];
                }
            }
        }
    }
    out
}

/// A 4-D shape in storage order: NHWC storage puts channels last.
pub(crate) fn storage_shape(shape: &[usize], nhwc: bool) -> Vec<usize> {
    if nhwc && shape.len() == 4 {
        vec![shape[0], shape[2], shape[3], shape[1]]
    } else {
        shape.to_vec()
    }
}

/// Where logical axis `axis` of a 4-D tensor is in storage order.
pub(crate) fn storage_axis(axis: usize, rank: usize, nhwc: bool) -> usize {
    if nhwc && rank == 4 {
        [0, 3, 1, 2][axis]
    } else {
        axis
    }
}

/// Strides of each logical dim of a tensor, in elements, given how it is stored.
pub(crate) fn logical_strides(shape: &[usize], nhwc: bool) -> Vec<usize> {
    let st = storage_shape(shape, nhwc);
    let mut storage_strides = vec![1usize; st.len()];
    for i in (0..st.len().saturating_sub(1)).rev() {
        storage_strides[i] = storage_strides[i + 1] * st[i + 1];
    }
    if nhwc && shape.len() == 4 {
        // storage order n, h, w, c
        vec![
            storage_strides[0],
            storage_strides[3],
            storage_strides[1],
            storage_strides[2],
        ]
    } else {
        storage_strides
    }
}

/// A transpose as one strided read (the chain kernel with no ops): y's dims in its storage
/// order, with dims of 1 dropped and neighbours that stay neighbours in x merged, padded
/// to 4, and x's stride along each. `xs` is x's logical shape, `perm` ONNX's (y's dim `d`
/// is x's dim `perm[d]`). `None` when more than 4 dims remain.
pub fn transpose_plan(
    xs: &[usize],
    x_nhwc: bool,
    y_nhwc: bool,
    perm: &[usize],
) -> Option<([usize; 4], [i64; 4])> {
    let ys: Vec<usize> = perm.iter().map(|&p| xs[p]).collect();
    let xst = logical_strides(xs, x_nhwc);
    let src: Vec<usize> = perm.iter().map(|&p| xst[p]).collect();
    let order: Vec<usize> = if y_nhwc && ys.len() == 4 {
        vec![0, 2, 3, 1]
    } else {
        (0..ys.len()).collect()
    };
    let (mut dims, mut strides): (Vec<usize>, Vec<usize>) = (vec![], vec![]);
    for d in order {
        if ys[d] == 1 {
            continue;
        }
        match (dims.last_mut(), strides.last_mut()) {
            // The outer dim steps exactly over the inner one: one dim.
            (Some(n), Some(s)) if *s == src[d] * ys[d] => {
                *n *= ys[d];
                *s = src[d];
            }
            _ => {
                dims.push(ys[d]);
                strides.push(src[d]);
            }
        }
    }
    if dims.len() > 4 {
        return None;
    }
    let pad = 4 - dims.len();
    let mut d4 = [1usize; 4];
    let mut s4 = [0i64; 4];
    for k in 0..dims.len() {
        d4[pad + k] = dims[k];
        s4[pad + k] = strides[k] as i64;
    }
    Some((d4, s4))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nhwc_reorder_moves_channels_last() {
        // n=1, c=2, h=1, w=3: [c0: 0 1 2, c1: 3 4 5] -> pixels (0,3) (1,4) (2,5)
        let v: Vec<f32> = (0..6).map(|x| x as f32).collect();
        assert_eq!(nchw_to_nhwc(&v, [1, 2, 1, 3]), vec![0., 3., 1., 4., 2., 5.]);
    }

    #[test]
    fn strides_follow_storage() {
        assert_eq!(logical_strides(&[2, 3, 4, 5], false), vec![60, 20, 5, 1]);
        assert_eq!(logical_strides(&[2, 3, 4, 5], true), vec![60, 1, 15, 3]);
        assert_eq!(storage_axis(1, 4, true), 3);
        assert_eq!(storage_shape(&[2, 3, 4, 5], true), vec![2, 4, 5, 3]);
    }

    #[test]
    fn half_encoding_rounds() {
        let b = encode(&[1.0, -2.5, 65504.0], true);
        let bits: Vec<u16> = b
            .chunks_exact(2)
            .map(|c| u16::from_ne_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(bits, vec![0x3c00, 0xc100, 0x7bff]);
        assert_eq!(decode_f32(&encode(&[1.5, -3.0], false)), vec![1.5, -3.0]);
    }

    #[test]
    fn transposes_merge_what_stays_together() {
        // NCHW -> NHWC of a packed NCHW tensor: strides c: hw, h: w, w: 1 ... read as n, h*w, c.
        let (d, s) = transpose_plan(&[2, 3, 4, 5], false, false, &[0, 2, 3, 1]).unwrap();
        assert_eq!(d, [1, 2, 20, 3]);
        assert_eq!(s, [0, 60, 1, 20]);
        // The identity permutation is one contiguous run.
        let (d, s) = transpose_plan(&[2, 3, 4, 5], false, false, &[0, 1, 2, 3]).unwrap();
        assert_eq!((d, s), ([1, 1, 1, 120], [0, 0, 0, 1]));
        // ShuffleNet's channel shuffle, 5-D: [n, g, c, h, w] -> [n, c, g, h, w] fits in 4.
        let (d, s) = transpose_plan(&[2, 2, 8, 4, 4], false, false, &[0, 2, 1, 3, 4]).unwrap();
        assert_eq!(d, [2, 8, 2, 16]);
        assert_eq!(s, [256, 16, 128, 1]);
        // An NHWC input read into an NCHW-stored output of the same logical order: a
        // relayout (x's strides n 60, c 1, h 15, w 3; h and w merge).
        let (d, s) = transpose_plan(&[2, 3, 4, 5], true, false, &[0, 1, 2, 3]).unwrap();
        assert_eq!((d, s), ([1, 2, 3, 20], [0, 60, 1, 3]));
        // Five dims that all stay apart do not fit.
        assert!(transpose_plan(&[2, 3, 4, 5, 6], false, false, &[0, 2, 4, 1, 3]).is_none());
    }
}
