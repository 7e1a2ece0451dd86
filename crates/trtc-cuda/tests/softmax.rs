//! Softmax on the GPU against tract: 2-D rows, and a 4-D tensor over its last axis (an
//! NHWC engine puts it in NCHW order around the row kernel).
//! Every case in fp32 NCHW, fp32 NHWC (1e-4 relative) and fp16 (1e-2).
//! Run on a GPU machine: `cargo test -p trtc-cuda --test gpu softmax:: -- --ignored`.

use crate::common::*;

#[test]
#[ignore = "needs a CUDA GPU"]
fn softmax_over_the_last_axis_matches_tract() {
    for dims in [vec![1000usize], vec![6, 5, 7]] {
        let mut b = GraphBuilder::new();
        let mut shape: Vec<trtc_ir::Dim> = vec!["N".into()];
        shape.extend(dims.iter().map(|&d| (d as u64).into()));
        let x = b.input_with("x", trtc_ir::DType::F32, shape);
        let k = b.constant("k", tensor0(3f32));
        let m = b.op("scale", Op::Mul, &[x, k]);
        let y = b.op("softmax", Op::Softmax { axis: -1 }, &[m]);
        b.output(y);
        let mut in_shape = vec![2usize];
        in_shape.extend(&dims);
        check_all_configs(
            &b.build().unwrap(),
            vec![random_tensor(&in_shape, 3)],
            &format!("softmax of {in_shape:?}"),
        );
    }
}
