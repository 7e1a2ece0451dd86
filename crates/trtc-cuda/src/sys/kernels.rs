//! The kernels trtc compiles with NVRTC when it builds a CUDA engine: everything cuDNN does
//! not do for it (activations other than ReLU, broadcasting elementwise ops, pooling with
//! ONNX's padding rules, concat/split copies, the classifier GEMM, softmax, and the layout
//! and precision changes at segment boundaries).
//!
//! The source is compiled twice: once with `DT` = float, once with `HALF` defined, where
//! `DT` is an fp16 bit pattern (loads widen to float, arithmetic is in float, stores round
//! to nearest; the exceptions are `conv_kernels_fp16.rs`'s, which sum a depthwise window in
//! fp16 or multiply on tensor cores). Kernels taking a layout flag read NCHW (0) or NHWC
//! (1) tensors.

/// Source of both modules; `module_source(true)` is the fp16 one.
pub fn module_source(half: bool) -> String {
    let prelude = if half { "#define HALF 1\n" } else { "" };
    format!(
        "{prelude}{SOURCE}{}{}{}{}{}{}{}{}",
        super::conv_kernels::SOURCE,
        super::conv_kernels_fp16::SOURCE,
        super::resample_kernels::SOURCE,
        super::reduce_kernels::SOURCE,
        super::gather_kernels::SOURCE,
        super::matmul_kernels::SOURCE,
        super::pixel_kernels::SOURCE,
        super::quant_kernels::SOURCE
    )
}

const SOURCE: &str = r#"
#define NEG_INF __int_as_float(0xff800000)
// Element indices are 32-bit (engines refuse tensors of 2^32 elements or more): 64-bit
// division is emulated and would dominate these memory-bound kernels.
typedef unsigned int IX;
#ifdef HALF
typedef unsigned short DT;
__device__ __forceinline__ float LD(DT h) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
__device__ __forceinline__ DT ST(float f) { DT h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }
#else
typedef float DT;
__device__ __forceinline__ float LD(DT v) { return v; }
__device__ __forceinline__ DT ST(float v) { return v; }
#endif

__device__ __forceinline__ float act_apply(float v, int kind, float a, float b) {
    switch (kind) {
        case 1: return v > 0.f ? v : 0.f;                              // Relu
        case 2: return fminf(fmaxf(v, a), b);                         // Clip(a, b)
        case 3: return v < 0.f ? a * v : v;                           // LeakyRelu(a)
        case 4: return 1.f / (1.f + expf(-v));                        // Sigmoid
        case 5: return fminf(fmaxf(a * v + b, 0.f), 1.f);             // HardSigmoid(a, b)
        case 6: return v * fminf(fmaxf(v / 6.f + 0.5f, 0.f), 1.f);    // HardSwish
        case 7: return tanhf(v);                                      // Tanh
        default: return v;                                            // identity
    }
}

// Offset of element (n, c, y, x) of an n x c x h x w tensor stored NCHW or NHWC.
// The ops beyond the CNN core (Elu .. SiLU activations; max, min, pow binary ops) run in
// kernels of their own (`act_ext`, `binary_ext`, `chain_ext`), chosen at launch only when a
// step needs them: the kernels the CNNs run (depthwise convs, bias/activation, chains)
// keep the code they had, whose size and registers their speed depends on.
__device__ __forceinline__ float act_any(float v, int kind, float a, float b) {
    switch (kind) {
        case 8: return v < 0.f ? a * (expf(v) - 1.f) : v;             // Elu(a)
        case 9: return v > 20.f ? v : log1pf(expf(v));                // Softplus
        case 10: return v * tanhf(v > 20.f ? v : log1pf(expf(v)));    // Mish
        case 11: return erff(v);                                      // Erf
        case 12: return sqrtf(v);                                     // Sqrt
        case 13: return expf(v);                                      // Exp
        case 14: return logf(v);                                      // Log
        case 15: return 1.f / v;                                      // Reciprocal
        case 16: return -v;                                           // Neg
        case 17: return fabsf(v);                                     // Abs
        case 18: return 0.5f * v * (1.f + erff(v * 0.70710678f));     // Gelu (erf)
        case 19: return 0.5f * v * (1.f + tanhf(0.79788456f * (v + 0.044715f * v * v * v))); // Gelu (tanh)
        case 20: return v / (1.f + fabsf(v));                         // Softsign
        case 21: return v > 0.f ? b * v : b * a * (expf(v) - 1.f);    // Selu(a = alpha, b = gamma)
        case 22: return powf(v, a);                                   // Pow(a)
        case 23: return floorf(v);                                    // Floor
        case 24: return ceilf(v);                                     // Ceil
        case 25: return v * (1.f / (1.f + expf(-v)));                 // SiLU
        default: return act_apply(v, kind, a, b);
    }
}

// `l (op) r` of binary op `op`: 0 add, 1 mul, 2 sub, 3 div, 4 max, 5 min, 6 pow.
__device__ __forceinline__ float bin_apply(int op, float l, float r) {
    switch (op) {
        case 0: return l + r;
        case 1: return l * r;
        case 2: return l - r;
        case 4: return fmaxf(l, r);
        case 5: return fminf(l, r);
        case 6: return powf(l, r);
        default: return l / r;
    }
}

extern "C" __global__ void act_ext(DT* y, const DT* x, long long n, int kind, float a, float b) {
    IX i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = ST(act_any(LD(x[i]), kind, a, b));
}

__device__ __forceinline__ long long at4(int nhwc, long long n, long long c, long long y, long long x, int C, int H, int W) {
    return nhwc ? ((n * H + y) * W + x) * C + c : ((n * C + c) * H + y) * W + x;
}

// 16 bytes at a time (8 fp16 or 4 f32 values): for tensors whose size is a multiple of that.
#define VEC (16 / (int)sizeof(DT))
union Vec16 { uint4 raw; DT v[16 / sizeof(DT)]; };

extern "C" __global__ void act_vec(DT* y, const DT* x, IX nvec, int kind, float a, float b) {
    IX i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= nvec) return;
    Vec16 u; u.raw = reinterpret_cast<const uint4*>(x)[i];
    #pragma unroll
    for (int k = 0; k < VEC; ++k) u.v[k] = ST(act_apply(LD(u.v[k]), kind, a, b));
    reinterpret_cast<uint4*>(y)[i] = u.raw;
}

// bias_act for NHWC tensors whose channel count is a multiple of VEC; pixels are `ldy`
// elements apart in y (c when packed, more for a slice of a concat's output), z is packed.
extern "C" __global__ void bias_act_vec(DT* y, const DT* bias, const DT* z, IX nvec, int c, int ldy,
                                        int has_z, int kind, float a, float b) {
    IX i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= nvec) return;
    IX e = i * VEC, pix = e / (IX)c, ch0 = e - pix * (IX)c;
    uint4* yv = reinterpret_cast<uint4*>(y + pix * (IX)ldy + ch0);
    Vec16 u; u.raw = *yv;
    Vec16 r; if (has_z) r.raw = reinterpret_cast<const uint4*>(z)[i];
    #pragma unroll
    for (int k = 0; k < VEC; ++k) {
        float v = LD(u.v[k]) + LD(bias[ch0 + k]);
        if (has_z) v += LD(r.v[k]);
        u.v[k] = ST(act_apply(v, kind, a, b));
    }
    *yv = u.raw;
}

extern "C" __global__ void act(DT* y, const DT* x, long long n, int kind, float a, float b) {
    IX i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = ST(act_apply(LD(x[i]), kind, a, b));
}

// After a convolution run alone: y = act(y + bias[channel] (+ z)), in place. Rows (NHWC:
// pixels of c values, NCHW: images of c*hw values) are `ldy` elements apart in y (the row
// length when packed, more for a slice of a concat's output); z is packed.
extern "C" __global__ void bias_act(DT* y, const DT* bias, const DT* z, long long n, int c, int hw,
                                    int nhwc, int ldy, int has_z, int kind, float a, float b) {
    IX i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    IX row_len = nhwc ? (IX)c : (IX)c * (IX)hw;
    IX row = i / row_len, r = i - row * row_len;
    IX ch = nhwc ? r : r / (IX)hw;
    IX o = row * (IX)ldy + r;
    float v = LD(y[o]) + LD(bias[ch]);
    if (has_z) v += LD(z[i]);
    y[o] = ST(act_apply(v, kind, a, b));
}

// The pooling kernels' epilogue (`Step::Pool`'s bias and act): the pooled value plus
// bias[ch] (when bias is not null), then activation `kind` (0: none).
__device__ __forceinline__ float pool_epilogue(float v, const DT* bias, IX ch, int kind, float a, float b) {
    if (bias) v += LD(bias[ch]);
    return act_apply(v, kind, a, b);
}

// pool2d_nhwc for channel counts (and output pixel strides) that are a multiple of VEC:
// one thread per VEC channels of one output pixel, 16-byte loads and stores.
extern "C" __global__ void pool2d_nhwc_vec(DT* y, const DT* x, const DT* bias, int c, int h, int w, int ho, int wo,
                                           int kh, int kw, int sh, int sw, int pt, int pl, int pb, int pr,
                                           int is_max, int count_pad, int ldy, IX total,
                                           int act_kind, float act_a, float act_b) {
    IX t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= total) return;
    IX cvecs = (IX)c / VEC, pix = t / cvecs, ch0 = (t - pix * cvecs) * VEC;
    int ox = pix % wo; IX q = pix / wo; int oy = q % ho; IX p = q / ho;
    int y0 = oy * sh - pt, x0 = ox * sw - pl;
    int ylo = max(y0, 0), yhi = min(y0 + kh, h), xlo = max(x0, 0), xhi = min(x0 + kw, w);
    int count = count_pad ? (min(y0 + kh, h + pb) - y0) * (min(x0 + kw, w + pr) - x0)
                          : (yhi - ylo) * (xhi - xlo);
    float acc[VEC];
    #pragma unroll
    for (int k = 0; k < VEC; ++k) acc[k] = is_max ? NEG_INF : 0.f;
    for (int iy = ylo; iy < yhi; ++iy) {
        const DT* row = x + ((p * h + iy) * (IX)w) * c + ch0;
        for (int ix = xlo; ix < xhi; ++ix) {
            Vec16 u; u.raw = *reinterpret_cast<const uint4*>(row + (IX)ix * c);
            #pragma unroll
            for (int k = 0; k < VEC; ++k) {
                float v = LD(u.v[k]);
                acc[k] = is_max ? fmaxf(acc[k], v) : acc[k] + v;
            }
        }
    }
    Vec16 out;
    #pragma unroll
    for (int k = 0; k < VEC; ++k)
        out.v[k] = ST(pool_epilogue(is_max ? acc[k] : (count > 0 ? acc[k] / count : 0.f),
                                    bias, ch0 + k, act_kind, act_a, act_b));
    *reinterpret_cast<uint4*>(y + pix * (IX)ldy + ch0) = out.raw;
}

// Max or average pooling of an NHWC tensor, ONNX semantics: one block per output pixel,
// threads over channels; output pixels are `ldy` elements apart (c when packed); then the
// epilogue (`pool_epilogue`).
extern "C" __global__ void pool2d_nhwc(DT* y, const DT* x, const DT* bias, int c, int h, int w, int ho, int wo,
                                       int kh, int kw, int sh, int sw, int pt, int pl, int pb, int pr,
                                       int is_max, int count_pad, int ldy,
                                       int act_kind, float act_a, float act_b) {
    IX pix = blockIdx.x;
    int ox = pix % wo; IX q = pix / wo; int oy = q % ho; IX p = q / ho;
    int y0 = oy * sh - pt, x0 = ox * sw - pl;
    int ylo = max(y0, 0), yhi = min(y0 + kh, h), xlo = max(x0, 0), xhi = min(x0 + kw, w);
    // Padding positions count (count_include_pad), positions past the pads (ceil_mode) never.
    int count = count_pad ? (min(y0 + kh, h + pb) - y0) * (min(x0 + kw, w + pr) - x0)
                          : (yhi - ylo) * (xhi - xlo);
    for (int ch = threadIdx.x; ch < c; ch += blockDim.x) {
        float acc = is_max ? NEG_INF : 0.f;
        for (int iy = ylo; iy < yhi; ++iy) {
            const DT* row = x + ((p * h + iy) * (IX)w) * c + ch;
            for (int ix = xlo; ix < xhi; ++ix) {
                float v = LD(row[(IX)ix * c]);
                acc = is_max ? fmaxf(acc, v) : acc + v;
            }
        }
        y[pix * (IX)ldy + ch] = ST(pool_epilogue(is_max ? acc : (count > 0 ? acc / count : 0.f),
                                                 bias, (IX)ch, act_kind, act_a, act_b));
    }
}

// `l (op) r` for the CNN kernels (add, mul, sub, div: any other code divides, as before the
// extended ops) or, with EXT, every op of `bin_apply`.
template <bool EXT> __device__ __forceinline__ float bin_op(int op, float l, float r) {
    if (EXT) return bin_apply(op, l, r);
    switch (op) {
        case 0: return l + r;
        case 1: return l * r;
        case 2: return l - r;
        default: return l / r;
    }
}

// An activation of the CNN core (`act_apply`) or, with EXT, any (`act_any`).
template <bool EXT> __device__ __forceinline__ float act_op(float v, int kind, float a, float b) {
    return EXT ? act_any(v, kind, a, b) : act_apply(v, kind, a, b);
}

// y = a (op) b with numpy broadcasting over (up to) 4 dims in y's storage order; strides of
// 0 broadcast. `binary` takes the CNN core's ops, `binary_ext` every op of `bin_apply`: the
// first keeps the code the CNNs were measured with (see the note at `act_any`).
template <bool EXT>
__device__ __forceinline__ void binary_body(DT* y, const DT* a, const DT* b, long long n, int op,
                                            int d1, int d2, int d3,
                                            long long as0, long long as1, long long as2, long long as3,
                                            long long bs0, long long bs1, long long bs2, long long bs3) {
    IX i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    IX r = i;
    IX c3 = r % d3; r /= d3;
    IX c2 = r % d2; r /= d2;
    IX c1 = r % d1; r /= d1;
    IX c0 = r;
    float u = LD(a[c0 * as0 + c1 * as1 + c2 * as2 + c3 * as3]);
    float v = LD(b[c0 * bs0 + c1 * bs1 + c2 * bs2 + c3 * bs3]);
    y[i] = ST(bin_op<EXT>(op, u, v));
}

extern "C" __global__ void binary(DT* y, const DT* a, const DT* b, long long n, int op,
                                  int d1, int d2, int d3,
                                  long long as0, long long as1, long long as2, long long as3,
                                  long long bs0, long long bs1, long long bs2, long long bs3) {
    binary_body<false>(y, a, b, n, op, d1, d2, d3, as0, as1, as2, as3, bs0, bs1, bs2, bs3);
}

extern "C" __global__ void binary_ext(DT* y, const DT* a, const DT* b, long long n, int op,
                                      int d1, int d2, int d3,
                                      long long as0, long long as1, long long as2, long long as3,
                                      long long bs0, long long bs1, long long bs2, long long bs3) {
    binary_body<true>(y, a, b, n, op, d1, d2, d3, as0, as1, as2, as3, bs0, bs1, bs2, bs3);
}

// Elementwise ops fused into one kernel: the value starts as input 0 and goes through
// `nops` ops, each an activation (kind < 100) or `value (op) input` (kind 100 + op: add,
// mul, sub, div; operands swapped when value_first is 0). Inputs broadcast to y as in
// `binary`. Must match `ChainArgs` in elementwise.rs.
struct ChainArgs {
    long long n;
    int d1, d2, d3, nops;
    const DT* in[4];
    long long st[4][4];
    int kind[8];
    int input[8];
    int value_first[8];
    float a[8];
    float b[8];
};

template <bool EXT> __device__ __forceinline__ void chain_body(DT* y, const ChainArgs& c) {
    IX i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= c.n) return;
    IX r = i;
    IX c3 = r % c.d3; r /= c.d3;
    IX c2 = r % c.d2; r /= c.d2;
    IX c1 = r % c.d1; r /= c.d1;
    IX c0 = r;
    float v = LD(c.in[0][c0 * c.st[0][0] + c1 * c.st[0][1] + c2 * c.st[0][2] + c3 * c.st[0][3]]);
    for (int k = 0; k < c.nops; ++k) {
        int kind = c.kind[k];
        if (kind < 100) { v = act_op<EXT>(v, kind, c.a[k], c.b[k]); continue; }
        int j = c.input[k];
        float o = LD(c.in[j][c0 * c.st[j][0] + c1 * c.st[j][1] + c2 * c.st[j][2] + c3 * c.st[j][3]]);
        float l = c.value_first[k] ? v : o, rr = c.value_first[k] ? o : v;
        v = bin_op<EXT>(kind - 100, l, rr);
    }
    y[i] = ST(v);
}

// `chain` runs the CNN core's activations and ops, `chain_ext` every one of `act_any` and
// `bin_apply`.
extern "C" __global__ void chain(DT* y, ChainArgs c) { chain_body<false>(y, c); }
extern "C" __global__ void chain_ext(DT* y, ChainArgs c) { chain_body<true>(y, c); }

// For each of `outer` rows: copy `len` elements from src[o*src_stride + src_off] to dst[o*dst_stride + dst_off].
extern "C" __global__ void copy_rows(DT* dst, const DT* src, long long outer, long long len,
                                     long long src_stride, long long src_off, long long dst_stride, long long dst_off) {
    IX i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= outer * len) return;
    IX o = i / (IX)len, k = i % (IX)len;
    dst[o * dst_stride + dst_off + k] = src[o * src_stride + src_off + k];
}

// copy_rows in 16-byte vectors, where lengths, strides, offsets and both pointers are whole
// vectors (counted in vectors here): concat and split copies at the speed of a copy.
extern "C" __global__ void copy_rows_vec(uint4* dst, const uint4* src, IX total, IX len,
                                         IX src_stride, IX src_off, IX dst_stride, IX dst_off) {
    IX i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    IX o = i / len, k = i - o * len;
    dst[o * dst_stride + dst_off + k] = src[o * src_stride + src_off + k];
}

// Zero padding of the two spatial dims (for convolutions whose pads cuDNN cannot express).
extern "C" __global__ void pad2d(DT* y, const DT* x, int n, int c, int h, int w, int ho, int wo, int top, int left, int nhwc) {
    IX i = blockIdx.x * blockDim.x + threadIdx.x;
    IX total = (IX)n * c * ho * wo;
    if (i >= total) return;
    IX ox, oy, ch, p;
    if (nhwc) { ch = i % c; IX q = i / c; ox = q % wo; q /= wo; oy = q % ho; p = q / ho; }
    else { ox = i % wo; IX q = i / wo; oy = q % ho; q /= ho; ch = q % c; p = q / c; }
    int ix = ox - left, iy = oy - top;
    y[i] = (ix >= 0 && ix < w && iy >= 0 && iy < h) ? x[at4(nhwc, p, ch, iy, ix, c, h, w)] : ST(0.f);
}

// Max or average pooling, ONNX semantics (pads, ceil_mode via the output size, count_include_pad),
// then the epilogue (`pool_epilogue`).
extern "C" __global__ void pool2d(DT* y, const DT* x, const DT* bias, int n, int c, int h, int w, int ho, int wo,
                                  int kh, int kw, int sh, int sw, int pt, int pl, int pb, int pr, int is_max, int count_pad, int nhwc,
                                  int act_kind, float act_a, float act_b) {
    IX i = blockIdx.x * blockDim.x + threadIdx.x;
    IX total = (IX)n * c * ho * wo;
    if (i >= total) return;
    IX ox, oy, ch, p;
    if (nhwc) { ch = i % c; IX q = i / c; ox = q % wo; q /= wo; oy = q % ho; p = q / ho; }
    else { ox = i % wo; IX q = i / wo; oy = q % ho; q /= ho; ch = q % c; p = q / c; }
    int y0 = oy * sh - pt, x0 = ox * sw - pl;
    float acc = is_max ? NEG_INF : 0.f;
    int count = 0;
    for (int dy = 0; dy < kh; ++dy) {
        int iy = y0 + dy;
        for (int dx = 0; dx < kw; ++dx) {
            int ix = x0 + dx;
            bool inside = iy >= 0 && iy < h && ix >= 0 && ix < w;
            if (inside) {
                float v = LD(x[at4(nhwc, p, ch, iy, ix, c, h, w)]);
                acc = is_max ? fmaxf(acc, v) : acc + v;
                ++count;
            } else if (count_pad && iy < h + pb && ix < w + pr) {
                ++count;  // a padding position (not one past the pads, which ceil_mode adds)
            }
        }
    }
    y[i] = ST(pool_epilogue(is_max ? acc : (count > 0 ? acc / count : 0.f), bias, ch, act_kind, act_a, act_b));
}

// NCHW: one warp per (n, c), mean or max over h*w.
extern "C" __global__ void global_pool(DT* y, const DT* x, long long nc, int hw, int is_max) {
    long long row = (blockIdx.x * (long long)blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x % 32;
    if (row >= nc) return;
    const DT* p = x + row * hw;
    float acc = is_max ? NEG_INF : 0.f;
    for (int k = lane; k < hw; k += 32) { float v = LD(p[k]); acc = is_max ? fmaxf(acc, v) : acc + v; }
    for (int o = 16; o > 0; o /= 2) {
        float other = __shfl_down_sync(0xffffffff, acc, o);
        acc = is_max ? fmaxf(acc, other) : acc + other;
    }
    if (lane == 0) y[row] = ST(is_max ? acc : acc / hw);
}

// NHWC: one thread per (n, c), neighbouring threads reading neighbouring channels.
extern "C" __global__ void global_pool_nhwc(DT* y, const DT* x, int n, int c, int hw, int is_max) {
    IX i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (IX)n * c) return;
    IX p = i / c; IX ch = i % c;
    const DT* base = x + p * hw * c + ch;
    float acc = is_max ? NEG_INF : 0.f;
    for (int k = 0; k < hw; ++k) { float v = LD(base[(long long)k * c]); acc = is_max ? fmaxf(acc, v) : acc + v; }
    y[i] = ST(is_max ? acc : acc / hw);
}

// y[m, n] = alpha * sum_k a[m, k] * w[k, n] + beta * bias[n]; w is stored K x N.
extern "C" __global__ void gemm_kn(DT* y, const DT* a, const DT* w, const DT* bias,
                                   int m, int n, int k, float alpha, float beta, int has_bias) {
    int col = blockIdx.x * blockDim.x + threadIdx.x;
    int row = blockIdx.y;
    if (col >= n || row >= m) return;
    const DT* ar = a + (long long)row * k;
    float acc = 0.f;
    for (int t = 0; t < k; ++t) acc += LD(ar[t]) * LD(w[(long long)t * n + col]);
    y[(long long)row * n + col] = ST(alpha * acc + (has_bias ? beta * LD(bias[col]) : 0.f));
}

// Softmax over rows of `cols` elements, one block of 256 threads per row.
extern "C" __global__ void softmax_rows(DT* y, const DT* x, long long rows, int cols) {
    __shared__ float red[256];
    long long row = blockIdx.x;
    if (row >= rows) return;
    const DT* p = x + row * cols;
    float m = NEG_INF;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf(m, LD(p[c]));
    red[threadIdx.x] = m; __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s /= 2) { if (threadIdx.x < s) red[threadIdx.x] = fmaxf(red[threadIdx.x], red[threadIdx.x + s]); __syncthreads(); }
    m = red[0]; __syncthreads();
    float sum = 0.f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) sum += expf(LD(p[c]) - m);
    red[threadIdx.x] = sum; __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s /= 2) { if (threadIdx.x < s) red[threadIdx.x] += red[threadIdx.x + s]; __syncthreads(); }
    sum = red[0];
    for (int c = threadIdx.x; c < cols; c += blockDim.x) y[row * cols + c] = ST(expf(LD(p[c]) - m) / sum);
}

// Segment boundary in: float NCHW (as the host sends it) to this module's type and layout.
extern "C" __global__ void from_host(DT* y, const float* x, int n, int c, int hw, int nhwc) {
    IX i = blockIdx.x * blockDim.x + threadIdx.x;
    IX total = (IX)n * c * hw;
    if (i >= total) return;
    IX j = i;
    if (nhwc) { IX ch = i % c; IX q = i / c; IX s = q % hw; IX p = q / hw; j = (p * c + ch) * hw + s; }
    y[i] = ST(x[j]);
}

// from_host to NHWC for few channels (image inputs): one thread per pixel, reading each
// channel plane where its neighbours read (coalesced), writing its pixel's c values.
extern "C" __global__ void from_host_pixels(DT* y, const float* x, int n, int c, int hw, int nhwc) {
    IX i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (IX)n * hw) return;
    IX p = i / hw, s = i - p * hw;
    const float* xp = x + p * (IX)c * hw + s;
    DT* yp = y + i * (IX)c;
    for (int ch = 0; ch < c; ++ch) yp[ch] = ST(xp[(IX)ch * hw]);
}

// Segment boundary out: this module's type and layout to float NCHW.
extern "C" __global__ void to_host(float* y, const DT* x, int n, int c, int hw, int nhwc) {
    IX i = blockIdx.x * blockDim.x + threadIdx.x;
    IX total = (IX)n * c * hw;
    if (i >= total) return;
    IX j = i;
    if (nhwc) { IX s = i % hw; IX q = i / hw; IX ch = q % c; IX p = q / c; j = (p * hw + s) * c + ch; }
    y[i] = LD(x[j]);
}

// Between layouts of one type: NHWC to NCHW (to_nhwc = 0) or NCHW to NHWC (to_nhwc = 1).
extern "C" __global__ void relayout(DT* y, const DT* x, int n, int c, int hw, int to_nhwc) {
    IX i = blockIdx.x * blockDim.x + threadIdx.x;
    IX total = (IX)n * c * hw;
    if (i >= total) return;
    IX j;
    if (to_nhwc) { IX ch = i % c; IX q = i / c; IX s = q % hw; IX p = q / hw; j = (p * c + ch) * hw + s; }
    else { IX s = i % hw; IX q = i / hw; IX ch = q % c; IX p = q / c; j = (p * hw + s) * c + ch; }
    y[i] = x[j];
}
"#;
