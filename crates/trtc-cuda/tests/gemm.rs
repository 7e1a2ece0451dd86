//! Products on the GPU against tract: Gemm in its forms, MatMul of 2-D to 4-D tensors.
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

/// MatMul of a 2-D, a 3-D and a 4-D tensor by a constant matrix (one product over all the
/// leading rows), through cuBLASLt and through trtc's kernel.
#[test]
#[ignore = "needs a CUDA GPU"]
fn matmuls_by_a_constant_match_tract() {
    for choice in ["cublaslt", "off"] {
        std::env::set_var("TRTC_GEMM", choice);
        for dims in [vec![24u64], vec![7, 24], vec![5, 6, 24]] {
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

/// ConvNeXt's block: a depthwise conv, a permute to channels-last, two Linear layers
/// (MatMul of a 4-D tensor by a constant, bias Add, an activation between), a permute back and
/// the residual Add. In NHWC engines the 4-D products go through row-major copies.
#[test]
#[ignore = "needs a CUDA GPU"]
fn channels_last_linear_block_matches_tract() {
    let mut b = GraphBuilder::new();
    let x = b.input_with(
        "x",
        trtc_ir::DType::F32,
        vec!["N".into(), 24u64.into(), 7u64.into(), 5u64.into()],
    );
    let dw = ConvAttrs {
        group: 24,
        kernel_shape: vec![3, 3],
        pads: vec![1, 1, 1, 1],
        ..Default::default()
    };
    let c = conv(&mut b, x, 24, 24, 3, dw, 1);
    let nhwc = b.op(
        "to_nhwc",
        Op::Transpose {
            perm: Some(vec![0, 2, 3, 1]),
        },
        &[c],
    );
    let w1 = b.constant("w1", random_tensor(&[24, 96], 2));
    let b1 = b.constant("b1", random_tensor(&[96], 3));
    let h = b.op("fc1", Op::MatMul, &[nhwc, w1]);
    let h = b.op("fc1_bias", Op::Add, &[h, b1]);
    let h = b.op("act", Op::Sigmoid, &[h]);
    let w2 = b.constant("w2", random_tensor(&[96, 24], 4));
    let h = b.op("fc2", Op::MatMul, &[h, w2]);
    let back = b.op(
        "to_nchw",
        Op::Transpose {
            perm: Some(vec![0, 3, 1, 2]),
        },
        &[h],
    );
    let y = b.op("residual", Op::Add, &[back, x]);
    b.output(y);
    check_all_configs(
        &b.build().unwrap(),
        vec![random_tensor(&[2, 24, 7, 5], 5)],
        "convnext block",
    );
}

/// MatMul of two computed tensors (attention's `Q @ K^T`, then `P @ V`) of 4-D tensors, and
/// of a 3-D tensor by a constant whose batch dim is 1 (broadcast): the batched kernel.
#[test]
#[ignore = "needs a CUDA GPU"]
fn matmuls_of_two_tensors_match_tract() {
    let mut b = GraphBuilder::new();
    let shape: Vec<trtc_ir::Dim> = vec!["N".into(), 3u64.into(), 17u64.into(), 20u64.into()];
    let x = b.input_with("x", trtc_ir::DType::F32, shape);
    let kt = b.op(
        "k_t",
        Op::Transpose {
            perm: Some(vec![0, 1, 3, 2]),
        },
        &[x],
    );
    let scores = b.op("scores", Op::MatMul, &[x, kt]);
    let p = b.op("p", Op::Softmax { axis: -1 }, &[scores]);
    let y = b.op("pv", Op::MatMul, &[p, x]);
    b.output(y);
    check_all_configs(
        &b.build().unwrap(),
        vec![random_tensor(&[2, 3, 17, 20], 3)],
        "attention-like products of [2,3,17,20]",
    );
    let mut b = GraphBuilder::new();
    let x = b.input_with(
        "x",
        trtc_ir::DType::F32,
        vec!["N".into(), 9u64.into(), 33u64.into()],
    );
    let w = b.constant("w", random_tensor(&[1, 33, 18], 1));
    let y = b.op("mm", Op::MatMul, &[x, w]);
    b.output(y);
    check_all_configs(
        &b.build().unwrap(),
        vec![random_tensor(&[3, 9, 33], 3)],
        "[3,9,33] by a broadcast [1,33,18]",
    );
}

/// A graph of one batch size (as specialized with its batch fixed): dim 0 moves, is sliced
/// and gathered like any other dim (ViT's `[N, 197, 768] -> [197, N*12, 64]` attention).
#[test]
#[ignore = "needs a CUDA GPU"]
fn data_movement_along_a_fixed_dim_0_matches_tract() {
    use trtc_ir::tract_onnx::prelude::tensor1;
    let mut b = GraphBuilder::new();
    let x = b.input("x", &[2, 6, 8]);
    let t = b.op(
        "swap",
        Op::Transpose {
            perm: Some(vec![1, 0, 2]),
        },
        &[x],
    );
    let shape = b.constant("shape", tensor1(&[6i64, 4, 4]));
    let r = b.op("heads", Op::Reshape { allowzero: 0 }, &[t, shape]);
    let idx = b.constant("idx", tensor1(&[1i64, 3, 4]));
    let g0 = b.op("pick", Op::Gather { axis: 0 }, &[r, idx]);
    let qk = b.op("qk", Op::MatMul, &[g0, g0]);
    let ax = b.constant("ax", tensor1(&[0i64]));
    let u = b.op("unsq", Op::Unsqueeze, &[qk, ax]);
    b.output(u);
    check_all_configs(
        &b.build().unwrap(),
        vec![random_tensor(&[2, 6, 8], 3)],
        "moves along a fixed dim 0",
    );
}
