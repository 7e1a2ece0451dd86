//! The kernels trtc compiles with NVRTC when it builds a CUDA engine: everything cuDNN does
//! not do for it (activations other than ReLU, broadcasting elementwise ops, pooling with
//! ONNX's padding rules, concat/split copies, the classifier GEMM, softmax, and the layout
//! and precision changes at segment boundaries).
//!
//! The source is compiled twice: once with `DT` = float, once with `HALF` defined, where
//! `DT` is an fp16 bit pattern (loads widen to float, all arithmetic is in float, stores
//! round to nearest). Kernels taking a layout flag read NCHW (0) or NHWC (1) tensors.

/// Source of both modules; `module_source(true)` is the fp16 one.
pub fn module_source(half: bool) -> String {
    let prelude = if half { "#define HALF 1\n" } else { "" };
    format!("{prelude}{SOURCE}")
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

// Depthwise convolution (one filter per channel), NHWC, with bias, residual and activation.
// One block per output pixel (its coordinates decoded once), threads over channels; the
// weights are stored [kh][kw][c] so that neighbouring threads read neighbouring values.
// Pads are top and left; reads past the bottom and right edges are the end pads' zeros.
// With has_clamp, inputs are clamped to [lo, hi] as they are loaded (a Clip moved here from
// the layer before).
extern "C" __global__ void depthwise_nhwc(DT* y, const DT* x, const DT* w, const DT* bias, const DT* z,
                                          int c, int h, int wd, int ho, int wo, int kh, int kw,
                                          int sh, int sw, int pt, int pl, int dh, int dw,
                                          int has_z, int kind, float a, float b,
                                          int has_clamp, float lo, float hi) {
    IX pix = blockIdx.x;
    int ox = pix % wo; IX q = pix / wo; int oy = q % ho; IX p = q / ho;
    int y0 = oy * sh - pt, x0 = ox * sw - pl;
    for (int ch = threadIdx.x; ch < c; ch += blockDim.x) {
        float acc = LD(bias[ch]);
        for (int r = 0; r < kh; ++r) {
            int iy = y0 + r * dh;
            if (iy < 0 || iy >= h) continue;
            const DT* row = x + ((p * h + iy) * (IX)wd) * c + ch;
            for (int s = 0; s < kw; ++s) {
                int ix = x0 + s * dw;
                if (ix < 0 || ix >= wd) continue;
                float xv = LD(row[(IX)ix * c]);
                if (has_clamp) xv = fminf(fmaxf(xv, lo), hi);
                acc += xv * LD(w[(r * kw + s) * c + ch]);
            }
        }
        IX o = pix * c + ch;
        if (has_z) acc += LD(z[o]);
        y[o] = ST(act_apply(acc, kind, a, b));
    }
}

// depthwise_nhwc for channel counts that are a multiple of VEC: one thread per VEC
// channels of one output pixel (neighbouring threads take neighbouring 16 bytes), with
// 16-byte loads of inputs, weights, bias and residual.
extern "C" __global__ void depthwise_nhwc_vec(DT* y, const DT* x, const DT* w, const DT* bias, const DT* z,
                                              int c, int h, int wd, int ho, int wo, int kh, int kw,
                                              int sh, int sw, int pt, int pl, int dh, int dw,
                                              int has_z, int kind, float a, float b,
                                              int has_clamp, float lo, float hi, IX total) {
    IX t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= total) return;
    IX cvecs = (IX)c / VEC, pix = t / cvecs, ch0 = (t - pix * cvecs) * VEC;
    int ox = pix % wo; IX q = pix / wo; int oy = q % ho; IX p = q / ho;
    int y0 = oy * sh - pt, x0 = ox * sw - pl;
    float acc[VEC];
    Vec16 u; u.raw = *reinterpret_cast<const uint4*>(bias + ch0);
    #pragma unroll
    for (int k = 0; k < VEC; ++k) acc[k] = LD(u.v[k]);
    for (int r = 0; r < kh; ++r) {
        int iy = y0 + r * dh;
        if (iy < 0 || iy >= h) continue;
        const DT* row = x + ((p * h + iy) * (IX)wd) * c + ch0;
        for (int s = 0; s < kw; ++s) {
            int ix = x0 + s * dw;
            if (ix < 0 || ix >= wd) continue;
            Vec16 xv; xv.raw = *reinterpret_cast<const uint4*>(row + (IX)ix * c);
            Vec16 wv; wv.raw = *reinterpret_cast<const uint4*>(w + (IX)(r * kw + s) * c + ch0);
            #pragma unroll
            for (int k = 0; k < VEC; ++k) {
                float xf = LD(xv.v[k]);
                if (has_clamp) xf = fminf(fmaxf(xf, lo), hi);
                acc[k] += xf * LD(wv.v[k]);
            }
        }
    }
    IX o = pix * c + ch0;
    Vec16 zr; if (has_z) zr.raw = *reinterpret_cast<const uint4*>(z + o);
    #pragma unroll
    for (int k = 0; k < VEC; ++k) {
        float v = acc[k];
        if (has_z) v += LD(zr.v[k]);
        u.v[k] = ST(act_apply(v, kind, a, b));
    }
    *reinterpret_cast<uint4*>(y + o) = u.raw;
}

// depthwise_nhwc_vec with PX neighbouring output pixels of a row per thread, for KW-wide
// windows of stride SW and no dilation: each input column of a window row is loaded,
// widened and clamped once for the PX outputs that use it, each weight once per row, and
// the index arithmetic is shared by the PX outputs. Arguments as depthwise_nhwc_vec's (kw,
// sw, dh and dw are the template's); `total` counts threads: vectors of channels times
// groups of PX pixels.
template <int KW, int SW, int PX>
__device__ __forceinline__ void depthwise_rows(DT* y, const DT* x, const DT* w, const DT* bias, const DT* z,
                                               int c, int h, int wd, int ho, int wo, int kh,
                                               int sh, int pt, int pl, int has_z, int kind, float a, float b,
                                               int has_clamp, float lo, float hi, IX total) {
    constexpr int COLS = (PX - 1) * SW + KW;
    IX t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= total) return;
    int groups = (wo + PX - 1) / PX;
    IX cvecs = (IX)c / VEC, g = t / cvecs, ch0 = (t - g * cvecs) * VEC;
    int ox0 = (g % groups) * PX; IX q = g / groups; int oy = q % ho; IX p = q / ho;
    int y0 = oy * sh - pt, x0 = ox0 * SW - pl;
    float acc[PX][VEC];
    Vec16 u; u.raw = *reinterpret_cast<const uint4*>(bias + ch0);
    #pragma unroll
    for (int j = 0; j < PX; ++j)
        #pragma unroll
        for (int k = 0; k < VEC; ++k) acc[j][k] = LD(u.v[k]);
    for (int r = 0; r < kh; ++r) {
        int iy = y0 + r;
        if (iy < 0 || iy >= h) continue;
        const DT* row = x + ((p * h + iy) * (IX)wd) * c + ch0;
        float xs[COLS][VEC];
        #pragma unroll
        for (int s = 0; s < COLS; ++s) {
            int ix = x0 + s;
            bool inside = ix >= 0 && ix < wd;
            Vec16 xv; xv.raw.x = xv.raw.y = xv.raw.z = xv.raw.w = 0u;
            if (inside) xv.raw = *reinterpret_cast<const uint4*>(row + (IX)ix * c);
            #pragma unroll
            for (int k = 0; k < VEC; ++k) {
                float f = LD(xv.v[k]);
                // Padding is zero after the clip it takes over, not clamped.
                if (has_clamp && inside) f = fminf(fmaxf(f, lo), hi);
                xs[s][k] = f;
            }
        }
        #pragma unroll
        for (int s = 0; s < KW; ++s) {
            Vec16 wv; wv.raw = *reinterpret_cast<const uint4*>(w + (IX)(r * KW + s) * c + ch0);
            #pragma unroll
            for (int k = 0; k < VEC; ++k) {
                float wf = LD(wv.v[k]);
                #pragma unroll
                for (int j = 0; j < PX; ++j) acc[j][k] += xs[j * SW + s][k] * wf;
            }
        }
    }
    #pragma unroll
    for (int j = 0; j < PX; ++j) {
        if (ox0 + j >= wo) break;
        IX o = ((p * ho + oy) * (IX)wo + ox0 + j) * c + ch0;
        Vec16 zr; if (has_z) zr.raw = *reinterpret_cast<const uint4*>(z + o);
        #pragma unroll
        for (int k = 0; k < VEC; ++k) {
            float v = acc[j][k];
            if (has_z) v += LD(zr.v[k]);
            u.v[k] = ST(act_apply(v, kind, a, b));
        }
        *reinterpret_cast<uint4*>(y + o) = u.raw;
    }
}

#define DEPTHWISE_ROWS(KW, SW, PX)                                                                        \
extern "C" __global__ void depthwise_nhwc_k##KW##s##SW(DT* y, const DT* x, const DT* w, const DT* bias,  \
        const DT* z, int c, int h, int wd, int ho, int wo, int kh, int kw, int sh, int sw, int pt, int pl, \
        int dh, int dw, int has_z, int kind, float a, float b, int has_clamp, float lo, float hi, IX total) { \
    depthwise_rows<KW, SW, PX>(y, x, w, bias, z, c, h, wd, ho, wo, kh, sh, pt, pl, has_z, kind, a, b,      \
                               has_clamp, lo, hi, total);                                                  \
}
DEPTHWISE_ROWS(3, 1, 4)
DEPTHWISE_ROWS(3, 2, 2)
DEPTHWISE_ROWS(5, 1, 4)
DEPTHWISE_ROWS(5, 2, 2)

// An ordinary NHWC convolution of few input channels (an image stem), weights stored
// [kh][kw][c][k]: one thread per output pixel and 32 output channels (blockIdx.y picks which
// 32), each input tap loaded once and applied to all 32; the block's weights (kh*kw*c x 32,
// widened to float) sit in shared memory and are read as broadcasts; bias, residual and
// activation applied at the end, 16-byte stores.
extern "C" __global__ void conv_few_inputs_nhwc(DT* y, const DT* x, const DT* w, const DT* bias, const DT* z,
                                                int c, int h, int wd, int ho, int wo, int k, int kh, int kw,
                                                int sh, int sw, int pt, int pl, int dh, int dw,
                                                int has_z, int kind, float a, float b, IX pixels) {
    extern __shared__ float4 ws4[];
    float* ws = reinterpret_cast<float*>(ws4);
    int k0 = blockIdx.y * 32, kc = min(32, k - k0), taps = kh * kw * c;
    for (int i = threadIdx.x; i < taps * 32; i += blockDim.x) {
        int tc = i >> 5, j = i & 31;
        ws[i] = j < kc ? LD(w[(IX)tc * k + k0 + j]) : 0.f;
    }
    __syncthreads();
    IX pix = blockIdx.x * blockDim.x + threadIdx.x;
    if (pix >= pixels) return;
    int ox = pix % wo; IX q = pix / wo; int oy = q % ho; IX p = q / ho;
    int y0 = oy * sh - pt, x0 = ox * sw - pl;
    float acc[32];
    #pragma unroll
    for (int j = 0; j < 32; ++j) acc[j] = 0.f;
    for (int r = 0; r < kh; ++r) {
        int iy = y0 + r * dh;
        if (iy < 0 || iy >= h) continue;
        for (int s = 0; s < kw; ++s) {
            int ix = x0 + s * dw;
            if (ix < 0 || ix >= wd) continue;
            const DT* xp = x + ((p * h + iy) * (IX)wd + ix) * c;
            const float4* wp = ws4 + (r * kw + s) * c * 8;
            for (int ci = 0; ci < c; ++ci) {
                float xv = LD(xp[ci]);
                #pragma unroll
                for (int j = 0; j < 8; ++j) {
                    float4 wv = wp[ci * 8 + j];
                    acc[4 * j] += xv * wv.x;
                    acc[4 * j + 1] += xv * wv.y;
                    acc[4 * j + 2] += xv * wv.z;
                    acc[4 * j + 3] += xv * wv.w;
                }
            }
        }
    }
    IX o = pix * k + k0;
    #pragma unroll
    for (int v = 0; v < 32 / VEC; ++v) {
        if (v * VEC >= kc) break;
        Vec16 bv; bv.raw = *reinterpret_cast<const uint4*>(bias + k0 + v * VEC);
        Vec16 zr; if (has_z) zr.raw = *reinterpret_cast<const uint4*>(z + o + v * VEC);
        Vec16 u;
        #pragma unroll
        for (int j = 0; j < VEC; ++j) {
            float t = acc[v * VEC + j] + LD(bv.v[j]);
            if (has_z) t += LD(zr.v[j]);
            u.v[j] = ST(act_apply(t, kind, a, b));
        }
        *reinterpret_cast<uint4*>(y + o + v * VEC) = u.raw;
    }
}

// pool2d_nhwc for channel counts (and output pixel strides) that are a multiple of VEC:
// one thread per VEC channels of one output pixel, 16-byte loads and stores.
extern "C" __global__ void pool2d_nhwc_vec(DT* y, const DT* x, int c, int h, int w, int ho, int wo,
                                           int kh, int kw, int sh, int sw, int pt, int pl, int pb, int pr,
                                           int is_max, int count_pad, int ldy, IX total) {
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
        out.v[k] = ST(is_max ? acc[k] : (count > 0 ? acc[k] / count : 0.f));
    *reinterpret_cast<uint4*>(y + pix * (IX)ldy + ch0) = out.raw;
}

// Max or average pooling of an NHWC tensor, ONNX semantics: one block per output pixel,
// threads over channels; output pixels are `ldy` elements apart (c when packed).
extern "C" __global__ void pool2d_nhwc(DT* y, const DT* x, int c, int h, int w, int ho, int wo,
                                       int kh, int kw, int sh, int sw, int pt, int pl, int pb, int pr,
                                       int is_max, int count_pad, int ldy) {
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
        y[pix * (IX)ldy + ch] = ST(is_max ? acc : (count > 0 ? acc / count : 0.f));
    }
}

// y = a (op) b with numpy broadcasting over (up to) 4 dims in y's storage order; strides of
// 0 broadcast.
extern "C" __global__ void binary(DT* y, const DT* a, const DT* b, long long n, int op,
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
    float o;
    switch (op) {
        case 0: o = u + v; break;
        case 1: o = u * v; break;
        case 2: o = u - v; break;
        default: o = u / v; break;
    }
    y[i] = ST(o);
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

extern "C" __global__ void chain(DT* y, ChainArgs c) {
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
        if (kind < 100) { v = act_apply(v, kind, c.a[k], c.b[k]); continue; }
        int j = c.input[k];
        float o = LD(c.in[j][c0 * c.st[j][0] + c1 * c.st[j][1] + c2 * c.st[j][2] + c3 * c.st[j][3]]);
        float l = c.value_first[k] ? v : o, rr = c.value_first[k] ? o : v;
        switch (kind - 100) {
            case 0: v = l + rr; break;
            case 1: v = l * rr; break;
            case 2: v = l - rr; break;
            default: v = l / rr; break;
        }
    }
    y[i] = ST(v);
}

// For each of `outer` rows: copy `len` elements from src[o*src_stride + src_off] to dst[o*dst_stride + dst_off].
extern "C" __global__ void copy_rows(DT* dst, const DT* src, long long outer, long long len,
                                     long long src_stride, long long src_off, long long dst_stride, long long dst_off) {
    IX i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= outer * len) return;
    IX o = i / (IX)len, k = i % (IX)len;
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

// Max or average pooling, ONNX semantics (pads, ceil_mode via the output size, count_include_pad).
extern "C" __global__ void pool2d(DT* y, const DT* x, int n, int c, int h, int w, int ho, int wo,
                                  int kh, int kw, int sh, int sw, int pt, int pl, int pb, int pr, int is_max, int count_pad, int nhwc) {
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
    y[i] = ST(is_max ? acc : (count > 0 ? acc / count : 0.f));
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
