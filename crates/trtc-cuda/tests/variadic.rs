//! Sum, Max, Min and Mean of several broadcasting inputs on the GPU against tract.
//! Every case in fp32 NCHW, fp32 NHWC (1e-4 relative) and fp16 (1e-2).
//! Run on a GPU machine: `cargo test -p trtc-cuda --test gpu variadic:: -- --ignored`.

use crate::common::*;
use crate::unary::other;

#[test]
#[ignore = "needs a CUDA GPU"]
fn variadic_ops_match_tract() {
    for op in ["Sum", "Max", "Min", "Mean"] {
        for n in [1, 2, 3] {
            let mut b = GraphBuilder::new();
            let x = b.input_with(
                "x",
                trtc_ir::DType::F32,
                vec!["N".into(), 8u64.into(), 4u64.into(), 4u64.into()],
            );
            let x2 = b.op("relu", Op::Relu, &[x]);
            let per_channel = b.constant("c", random_tensor(&[8, 1, 1], 7));
            let ins = [x, per_channel, x2];
            let y = b.op(op, other(op, &[]), &ins[..n]);
            b.output(y);
            check_all_configs(
                &b.build().unwrap(),
                vec![random_tensor(&[2, 8, 4, 4], 3)],
                &format!("{op} of {n} inputs"),
            );
        }
    }
}
