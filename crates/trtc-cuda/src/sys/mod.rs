//! The bottom layer: the GPU and its libraries. The device (context, stream, the NVRTC
//! modules of trtc's kernels, compiled once per machine: `kernel_cache`), the kernels' sources, and thin safe wrappers of cuDNN's
//! descriptors and cuBLASLt's products. Nothing here knows about programs or engines.

pub mod conv_kernels;
pub mod conv_kernels_fp16;
pub mod cublaslt;
pub mod cudnn;
pub mod device;
pub mod gather_kernels;
pub mod kernel_cache;
pub mod kernels;
pub mod matmul_kernels;
pub mod pixel_kernels;
pub mod quant_kernels;
pub mod reduce_kernels;
pub mod resample_kernels;
