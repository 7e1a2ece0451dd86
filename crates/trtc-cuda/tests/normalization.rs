//! A standalone BatchNormalization (after a pool, where the optimizer cannot fold it) on
//! the GPU against tract, of 4-D and 2-D inputs.
//! Every case in fp32 NCHW, fp32 NHWC (1e-4 relative) and fp16 (1e-2).
//! Run on a GPU machine: `cargo test -p trtc-cuda --test gpu normalization:: -- --ignored`.

use crate::common::*;

fn bn(b: &mut GraphBuilder, x: Outlet, c: usize) -> Outlet {
    let scale = b.constant("scale", random_tensor(&[c], 1));
    let bias = b.constant("bias", random_tensor(&[c], 2));
    let mean = b.constant("mean", random_tensor(&[c], 3));
    let var: Vec<f32> = (0..c).map(|i| 0.5 + 0.1 * i as f32).collect();
    let var = b.constant("var", trtc_ir::Tensor::from_shape(&[c], &var).unwrap());
    b.op(
        "bn",
        Op::BatchNormalization {
            epsilon: 1e-5,
            momentum: None,
        },
        &[x, scale, bias, mean, var],
    )
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn standalone_batch_norm_matches_tract() {
    let mut b = GraphBuilder::new();
    let x = b.input_with(
        "x",
        trtc_ir::DType::F32,
        vec!["N".into(), 16u64.into(), 6u64.into(), 6u64.into()],
    );
    let p = b.op(
        "pool",
        Op::MaxPool(PoolAttrs {
            kernel_shape: vec![2, 2],
            strides: vec![2, 2],
            ..Default::default()
        }),
        &[x],
    );
    let y = bn(&mut b, p, 16);
    let r = b.op("relu", Op::Relu, &[y]);
    b.output(r);
    check_all_configs(
        &b.build().unwrap(),
        vec![random_tensor(&[2, 16, 6, 6], 5)],
        "batch norm of 4-D",
    );
    let mut b = GraphBuilder::new();
    let x = b.input_with("x", trtc_ir::DType::F32, vec!["N".into(), 24u64.into()]);
    let y = bn(&mut b, x, 24);
    b.output(y);
    check_all_configs(
        &b.build().unwrap(),
        vec![random_tensor(&[3, 24], 6)],
        "batch norm of 2-D",
    );
}
