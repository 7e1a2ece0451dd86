//! The CUDA engine's GPU tests, one module per op family (each file beside this one), in
//! one test binary: every op and fused pattern as one CUDA segment in fp32 NCHW, fp32 NHWC
//! (1e-4 relative) and fp16 (1e-2), against tract. Marked `#[ignore]`: run them on a GPU
//! machine with `cargo test -p trtc-cuda --test gpu -- --ignored` (`conv::` and so on
//! picks a family).

mod common;

mod conv;
mod data_movement;
mod device_api;
mod elementwise;
mod gemm;
mod int8;
mod layer_norm;
mod normalization;
mod pipelined;
mod pixels;
mod pointwise;
mod pooling;
mod reduce;
mod resize;
mod shape;
mod softmax;
mod transpose;
mod unary;
mod variadic;
