//! The NVRTC source of trtc's own NHWC convolution kernels (`direct.rs` launches them):
//! depthwise convs, one output pixel per block or per thread, or a row tile of pixels per
//! thread; and ordinary convs of few input channels (image stems). It is appended to
//! `kernels.rs`'s source, whose `DT`, `LD`/`ST`, `VEC`, `Vec16` and `act_apply` it uses;
//! the fp16 module's own forms of these kernels are in `conv_kernels_fp16.rs`.

pub(super) const SOURCE: &str = r#"
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

// Four channels of the module's type: 8 bytes in fp16, 16 in f32.
#ifdef HALF
typedef uint2 Raw4;
#else
typedef uint4 Raw4;
#endif
union Quad { Raw4 raw; DT v[4]; };
// CH (4, or VEC) channels at p, widened to float / rounded and stored.
template <int CH> __device__ __forceinline__ void load_ch(const DT* p, float* f) {
    if (CH == 4) {
        Quad q; q.raw = *reinterpret_cast<const Raw4*>(p);
        #pragma unroll
        for (int k = 0; k < 4; ++k) f[k] = LD(q.v[k]);
    } else {
        Vec16 q; q.raw = *reinterpret_cast<const uint4*>(p);
        #pragma unroll
        for (int k = 0; k < CH; ++k) f[k] = LD(q.v[k]);
    }
}
template <int CH> __device__ __forceinline__ void store_ch(DT* p, const float* f) {
    if (CH == 4) {
        Quad q;
        #pragma unroll
        for (int k = 0; k < 4; ++k) q.v[k] = ST(f[k]);
        *reinterpret_cast<Raw4*>(p) = q.raw;
    } else {
        Vec16 q;
        #pragma unroll
        for (int k = 0; k < CH; ++k) q.v[k] = ST(f[k]);
        *reinterpret_cast<uint4*>(p) = q.raw;
    }
}

// Depthwise convolution through shared memory: a block of 128 threads computes an 8 x 8
// tile of output pixels for 32 channels (K x K window, stride S both ways, no dilation). It
// first loads the tile's ((8 - 1) * S + K)^2 input pixels of those channels into shared
// memory (4 channels per load, zero outside the image, clamped with has_clamp), each once;
// then each thread computes a column of 4 output rows for 4 channels from shared memory,
// neighbouring threads taking neighbouring channels, then neighbouring columns (no bank
// conflicts at stride 1). These kernels are bound by instructions more than by memory
// (widening fp16 is one per value): each value is widened once per thread that reads it. Blocks: channel chunks of 32 fastest, then tile columns, tile
// rows, images. Channels in whole quads; a last chunk of fewer than 32 idles the rest.
template <int K, int S>
__device__ __forceinline__ void depthwise_smem(DT* y, const DT* x, const DT* w, const DT* bias, const DT* z,
                                               int c, int h, int wd, int ho, int wo, int pt, int pl,
                                               int has_z, int kind, float a, float b,
                                               int has_clamp, float lo, float hi) {
    constexpr int T = 8, CB = 32, IN = (T - 1) * S + K, RY = 4;
    __shared__ Raw4 tile[IN * IN * (CB / 4)];
    int chunks = (c + CB - 1) / CB, tcols = (wo + T - 1) / T, trows = (ho + T - 1) / T;
    IX bid = blockIdx.x;
    int chunk = bid % chunks; bid /= chunks;
    int tx = bid % tcols; bid /= tcols;
    int ty = bid % trows; IX p = bid / trows;
    int ch_base = chunk * CB, quads = min(CB, c - ch_base) / 4;
    int oy0 = ty * T, ox0 = tx * T, y0 = oy0 * S - pt, x0 = ox0 * S - pl;
    for (int i = threadIdx.x; i < IN * IN * (CB / 4); i += blockDim.x) {
        int cq = i % (CB / 4), pix = i / (CB / 4), r = pix / IN, col = pix % IN;
        int iy = y0 + r, ix = x0 + col;
        Quad v;
        #pragma unroll
        for (int k = 0; k < 4; ++k) v.v[k] = ST(0.f);
        if (cq < quads && iy >= 0 && iy < h && ix >= 0 && ix < wd) {
            v.raw = *reinterpret_cast<const Raw4*>(x + (((p * h + iy) * (IX)wd + ix) * c + ch_base + cq * 4));
            if (has_clamp) {
                #pragma unroll
                for (int k = 0; k < 4; ++k) v.v[k] = ST(fminf(fmaxf(LD(v.v[k]), lo), hi));
            }
        }
        tile[i] = v.raw;
    }
    __syncthreads();
    int cq = threadIdx.x % (CB / 4), pos = threadIdx.x / (CB / 4);   // 16 positions
    int col = pos % T, r0 = (pos / T) * RY;
    int ox = ox0 + col;
    if (cq >= quads || ox >= wo) return;
    int ch0 = ch_base + cq * 4;
    // 3x3 weights stay in registers, widened once; 5x5 ones (100 floats) are loaded as used.
    constexpr bool KEEP_W = K <= 3;
    float wk[KEEP_W ? K * K : 1][4];
    if (KEEP_W) {
        #pragma unroll
        for (int t = 0; t < (KEEP_W ? K * K : 1); ++t) load_ch<4>(w + (IX)t * c + ch0, wk[t]);
    }
    float bv[4], acc[RY][4];
    load_ch<4>(bias + ch0, bv);
    #pragma unroll
    for (int j = 0; j < RY; ++j)
        #pragma unroll
        for (int k = 0; k < 4; ++k) acc[j][k] = bv[k];
    #pragma unroll
    for (int kr = 0; kr < (RY - 1) * S + K; ++kr) {
        float xs[K][4];
        #pragma unroll
        for (int s = 0; s < K; ++s) {
            Quad v; v.raw = tile[((r0 * S + kr) * IN + col * S + s) * (CB / 4) + cq];
            #pragma unroll
            for (int k = 0; k < 4; ++k) xs[s][k] = LD(v.v[k]);
        }
        #pragma unroll
        for (int j = 0; j < RY; ++j) {
            const int wr = kr - j * S;
            if (wr < 0 || wr >= K) continue;
            #pragma unroll
            for (int s = 0; s < K; ++s) {
                float wf[4];
                if (KEEP_W) {
                    #pragma unroll
                    for (int k = 0; k < 4; ++k) wf[k] = wk[KEEP_W ? wr * K + s : 0][k];
                } else {
                    load_ch<4>(w + (IX)(wr * K + s) * c + ch0, wf);
                }
                #pragma unroll
                for (int k = 0; k < 4; ++k) acc[j][k] += xs[s][k] * wf[k];
            }
        }
    }
    #pragma unroll
    for (int j = 0; j < RY; ++j) {
        int oy = oy0 + r0 + j;
        if (oy >= ho) break;
        IX o = ((p * ho + oy) * (IX)wo + ox) * c + ch0;
        float zr[4] = {0.f, 0.f, 0.f, 0.f};
        if (has_z) load_ch<4>(z + o, zr);
        #pragma unroll
        for (int k = 0; k < 4; ++k) zr[k] = act_apply(acc[j][k] + zr[k], kind, a, b);
        store_ch<4>(y + o, zr);
    }
}

#define DEPTHWISE_SMEM(K, S)                                                                              \
extern "C" __global__ void __launch_bounds__(128) depthwise_smem_k##K##s##S(                            \
        DT* y, const DT* x, const DT* w, const DT* bias,                                                  \
        const DT* z, int c, int h, int wd, int ho, int wo, int kh, int kw, int sh, int sw, int pt, int pl, \
        int dh, int dw, int has_z, int kind, float a, float b, int has_clamp, float lo, float hi, IX total) { \
    depthwise_smem<K, S>(y, x, w, bias, z, c, h, wd, ho, wo, pt, pl, has_z, kind, a, b,                  \
                         has_clamp, lo, hi);                                                                \
}
DEPTHWISE_SMEM(3, 1)
DEPTHWISE_SMEM(3, 2)
DEPTHWISE_SMEM(5, 1)
DEPTHWISE_SMEM(5, 2)

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

"#;
