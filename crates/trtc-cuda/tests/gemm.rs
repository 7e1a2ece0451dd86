//! Products on the GPU against tract: Gemm in its forms, MatMul of 2-D and 3-D tensors.
//! Every case in fp32 NCHW, fp32 NHWC (1e-4 relative) and fp16 (1e-2).
//! Run on a GPU machine: `cargo test -p trtc-cuda --test gpu gemm:: -- --ignored`.

use crate::common::*;

/// Gemm (alpha, beta, transB, batch 1 and 3) through cuBLASLt and through trtc's kernel.
#[test]
#[ignore = "needs a CUDA GPU"]
fn gemms_match_tract() {
    for choice in ["cublaslt", "off"] {
        std::env::set_var("TRTC_GEMM", choice);
        for trans_b in [0, 1] {
            for batch in [1, 3] {
                let mut b = GraphBuilder::new();
                let x = b.input_with("x", trtc_ir::DType::F32, vec!["N".into(), 37u64.into()]);
                let wshape = if trans_b == 1 { [29, 37] } else { [37, 29] };
                let w = b.constant("w", random_tensor(&wshape, 1));
                let c = b.constant("c", random_tensor(&[29], 2));
                let y = b.op(
                    "gemm",
                    Op::Gemm {
                        alpha: 0.5,
                        beta: 2.0,
                        trans_a: 0,
                        trans_b,
                    },
                    &[x, w, c],
                );
                b.output(y);
                check_all_configs(
                    &b.build().unwrap(),
                    vec![random_tensor(&[batch, 37], 3)],
                    &format!("gemm transB {trans_b} batch {batch} via {choice}"),
                );
            }
        }
    }
    std::env::remove_var("TRTC_GEMM");
}

/// MatMul of a 2-D and of a 3-D tensor by a constant matrix (one product over all the
/// leading rows), through cuBLASLt and through trtc's kernel.
#[test]
#[ignore = "needs a CUDA GPU"]
fn matmuls_by_a_constant_match_tract() {
    for choice in ["cublaslt", "off"] {
        std::env::set_var("TRTC_GEMM", choice);
        for dims in [vec![24u64], vec![7, 24]] {
            let mut b = GraphBuilder::new();
            let mut shape: Vec<trtc_ir::Dim> = vec!["N".into()];
            shape.extend(dims.iter().map(|&d| d.into()));
            let x = b.input_with("x", trtc_ir::DType::F32, shape);
            let w = b.constant("w", random_tensor(&[24, 40], 1));
            let y = b.op("matmul", Op::MatMul, &[x, w]);
            let r = b.op("relu", Op::Relu, &[y]);
            b.output(r);
            let mut in_shape = vec![3usize];
            in_shape.extend(dims.iter().map(|&d| d as usize));
            check_all_configs(
                &b.build().unwrap(),
                vec![random_tensor(&in_shape, 3)],
                &format!("matmul of {in_shape:?} via {choice}"),
            );
        }
    }
    std::env::remove_var("TRTC_GEMM");
}
