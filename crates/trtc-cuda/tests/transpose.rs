//! Transpose on the GPU against tract: 3-D and 4-D permutations (NHWC engines read and
//! write them through their storage order), and ShuffleNet's channel shuffle (reshape to
//! 5-D, swap the group and channel dims, reshape back) between convolutions.
//! Every case in fp32 NCHW, fp32 NHWC (1e-4 relative) and fp16 (1e-2).
//! Run on a GPU machine: `cargo test -p trtc-cuda --test gpu transpose:: -- --ignored`.

use crate::common::*;

#[test]
#[ignore = "needs a CUDA GPU"]
fn transposes_match_tract() {
    let cases: [(&[u64], &[i64]); 5] = [
        (&[6, 5], &[0, 2, 1]),
        (&[8, 4, 6], &[0, 2, 3, 1]),
        (&[8, 4, 6], &[0, 3, 1, 2]),
        (&[8, 4, 6], &[0, 1, 3, 2]),
        (&[1, 4, 6], &[0, 2, 1, 3]),
    ];
    for (dims, perm) in cases {
        let mut b = GraphBuilder::new();
        let mut shape: Vec<trtc_ir::Dim> = vec!["N".into()];
        shape.extend(dims.iter().map(|&d| d.into()));
        let x = b.input_with("x", trtc_ir::DType::F32, shape);
        let r = b.op("relu", Op::Relu, &[x]);
        let t = b.op(
            "t",
            Op::Transpose {
                perm: Some(perm.to_vec()),
            },
            &[r],
        );
        let k = b.constant("k", tensor0(2f32));
        let y = b.op("scale", Op::Mul, &[t, k]);
        b.output(y);
        let mut in_shape = vec![2usize];
        in_shape.extend(dims.iter().map(|&d| d as usize));
        check_all_configs(
            &b.build().unwrap(),
            vec![random_tensor(&in_shape, 3)],
            &format!("transpose {perm:?} of {in_shape:?}"),
        );
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn channel_shuffle_between_convs_matches_tract() {
    let mut b = GraphBuilder::new();
    let x = b.input_with(
        "x",
        trtc_ir::DType::F32,
        vec!["N".into(), 16u64.into(), 6u64.into(), 6u64.into()],
    );
    let attrs = ConvAttrs {
        kernel_shape: vec![1, 1],
        group: 1,
        ..Default::default()
    };
    let c1 = conv(&mut b, x, 16, 16, 1, attrs.clone(), 1);
    let to5 = b.constant(
        "to5",
        trtc_ir::Tensor::from_shape(&[5], &[0i64, 2, 8, 6, 6]).unwrap(),
    );
    let r5 = b.op("r5", Op::Reshape { allowzero: 0 }, &[c1, to5]);
    let t = b.op(
        "shuffle",
        Op::Transpose {
            perm: Some(vec![0, 2, 1, 3, 4]),
        },
        &[r5],
    );
    let to4 = b.constant(
        "to4",
        trtc_ir::Tensor::from_shape(&[4], &[0i64, 16, 6, 6]).unwrap(),
    );
    let r4 = b.op("r4", Op::Reshape { allowzero: 0 }, &[t, to4]);
    let c2 = conv(
        &mut b,
        r4,
        16,
        8,
        3,
        ConvAttrs {
            kernel_shape: vec![3, 3],
            pads: vec![1, 1, 1, 1],
            ..attrs
        },
        2,
    );
    b.output(c2);
    check_all_configs(
        &b.build().unwrap(),
        vec![random_tensor(&[2, 16, 6, 6], 5)],
        "channel shuffle",
    );
}
