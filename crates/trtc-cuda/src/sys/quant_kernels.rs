//! NVRTC kernels of the quantize family (`ops/quantize.rs`): the engine's tensor into int8
//! and back, appended to the module of `kernels.rs` (whose `DT`, `LD`, `ST` and `IX` they
//! use). New functions only: the kernels before them keep their code.

pub const SOURCE: &str = r#"
// ONNX's QuantizeLinear with zero point 0: x / scale, rounded half to even, saturated to
// [-128, 127]. Four elements per thread where n is a multiple of 4 (`vec4`), else one.
__device__ __forceinline__ signed char quant1(float v, float scale) {
    int q = __float2int_rn(__fdiv_rn(v, scale));
    return (signed char)max(-128, min(127, q));
}
extern "C" __global__ void quantize_i8(signed char* y, const DT* x, float scale, IX n, int vec4) {
    IX i = blockIdx.x * blockDim.x + threadIdx.x;
    if (vec4) {
        if (i >= n / 4) return;
        char4 q;
        q.x = quant1(LD(x[4 * i]), scale);
        q.y = quant1(LD(x[4 * i + 1]), scale);
        q.z = quant1(LD(x[4 * i + 2]), scale);
        q.w = quant1(LD(x[4 * i + 3]), scale);
        reinterpret_cast<char4*>(y)[i] = q;
    } else if (i < n) {
        y[i] = quant1(LD(x[i]), scale);
    }
}
// ONNX's DequantizeLinear with zero point 0: q * scale.
extern "C" __global__ void dequantize_i8(DT* y, const signed char* x, float scale, IX n, int vec4) {
    IX i = blockIdx.x * blockDim.x + threadIdx.x;
    if (vec4) {
        if (i >= n / 4) return;
        char4 q = reinterpret_cast<const char4*>(x)[i];
        y[4 * i] = ST((float)q.x * scale);
        y[4 * i + 1] = ST((float)q.y * scale);
        y[4 * i + 2] = ST((float)q.z * scale);
        y[4 * i + 3] = ST((float)q.w * scale);
    } else if (i < n) {
        y[i] = ST((float)x[i] * scale);
    }
}
"#;

/// trtc's INT8 1x1 convolutions (`exec/int8.rs`): products on the int8 tensor cores, one
/// kernel per tile shape, in a file of their own so that the probe that times them
/// (`benches/probes/conv1x1_i8_probe.cu`) compiles the same source with nvcc.
pub const CONV1X1_SOURCE: &str = include_str!("conv1x1_i8.cu");
