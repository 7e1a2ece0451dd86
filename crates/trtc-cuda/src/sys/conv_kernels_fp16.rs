//! The NVRTC source of trtc's NHWC convolution kernels that compute in fp16 or on tensor
//! cores, for the fp16 module only (everything is inside `#ifdef HALF`): depthwise convs
//! with the window summed in fp16 pairs (`depthwise_h2_*`), and image stems as an implicit
//! GEMM on `mma.sync` (`conv_few_inputs_mma`), 1x1 convs of few input channels on
//! `mma.sync` (`pointwise_mma`). It is appended after `conv_kernels.rs`'s source, whose
//! `load_ch`/`store_ch` it uses (and `kernels.rs`'s `DT`, `LD`/`ST`, `Vec16`, `act_apply`);
//! `exec/direct.rs` and `exec/pointwise.rs` launch the kernels.

pub(super) const SOURCE: &str = r#"
#ifdef HALF
// fp16 pairs (`f16x2` in a 32-bit register): a * b + c, rounded once.
__device__ __forceinline__ unsigned hfma2(unsigned a, unsigned b, unsigned c) {
    unsigned d; asm("fma.rn.f16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c)); return d;
}
// Four channels of f16x2 pairs, widened.
__device__ __forceinline__ void widen4(const unsigned* q, float* f) {
    #pragma unroll
    for (int k = 0; k < 2; ++k) {
        f[2 * k] = LD((DT)(q[k] & 0xffffu));
        f[2 * k + 1] = LD((DT)(q[k] >> 16));
    }
}

// depthwise_smem in fp16 arithmetic (the fp16 module only): the K x K window's products are
// summed in f16x2 pairs, two channels per instruction, with no widening; bias, residual and
// activation are applied in f32 at the end. About a third of depthwise_smem's instructions
// per output; the window's sum carries fp16 rounding (K * K additions). A block of 128
// threads computes an 8-wide, 2 * RY-tall tile of output pixels for 32 channels (RY 4 or 8,
// `direct.rs` picks): the tile's input pixels are loaded into shared memory once, 16 bytes
// (8 channels) per load, then each thread computes a column of RY output rows for 4
// channels. Channels in whole 16-byte vectors; blocks: channel chunks of 32 fastest, then
// tile columns, tile rows, images.
template <int K, int S, int RY>
__device__ __forceinline__ void depthwise_h2(DT* y, const DT* x, const DT* w, const DT* bias, const DT* z,
                                             int c, int h, int wd, int ho, int wo, int pt, int pl,
                                             int has_z, int kind, float a, float b,
                                             int has_clamp, float lo, float hi) {
    constexpr int TW = 8, TH = 2 * RY, CB = 32, INW = (TW - 1) * S + K, INH = (TH - 1) * S + K;
    __shared__ uint4 tile[INH * INW * (CB / 8)];
    int chunks = (c + CB - 1) / CB, tcols = (wo + TW - 1) / TW, trows = (ho + TH - 1) / TH;
    IX bid = blockIdx.x;
    int chunk = bid % chunks; bid /= chunks;
    int tx = bid % tcols; bid /= tcols;
    int ty = bid % trows; IX p = bid / trows;
    int ch_base = chunk * CB, vecs = min(CB, c - ch_base) / 8;
    int oy0 = ty * TH, ox0 = tx * TW, y0 = oy0 * S - pt, x0 = ox0 * S - pl;
    for (int i = threadIdx.x; i < INH * INW * (CB / 8); i += blockDim.x) {
        int cv = i % (CB / 8), pix = i / (CB / 8), r = pix / INW, col = pix - r * INW;
        int iy = y0 + r, ix = x0 + col;
        Vec16 v; v.raw.x = v.raw.y = v.raw.z = v.raw.w = 0u;
        if (cv < vecs && iy >= 0 && iy < h && ix >= 0 && ix < wd) {
            v.raw = *reinterpret_cast<const uint4*>(x + (((p * h + iy) * (IX)wd + ix) * c + ch_base + cv * 8));
            if (has_clamp) {
                #pragma unroll
                for (int k = 0; k < 8; ++k) v.v[k] = ST(fminf(fmaxf(LD(v.v[k]), lo), hi));
            }
        }
        tile[i] = v.raw;
    }
    __syncthreads();
    const uint2* quads = reinterpret_cast<const uint2*>(tile);
    int cq = threadIdx.x % (CB / 4), pos = threadIdx.x / (CB / 4);   // 16 positions
    int col = pos % TW, r0 = (pos / TW) * RY;
    int ox = ox0 + col;
    if (cq >= 2 * vecs || ox >= wo || oy0 + r0 >= ho) return;
    int ch0 = ch_base + cq * 4;
    unsigned wk[K * K][2];
    #pragma unroll
    for (int t = 0; t < K * K; ++t) {
        uint2 q = *reinterpret_cast<const uint2*>(w + (IX)t * c + ch0);
        wk[t][0] = q.x; wk[t][1] = q.y;
    }
    unsigned acc[RY][2];
    #pragma unroll
    for (int j = 0; j < RY; ++j) acc[j][0] = acc[j][1] = 0u;
    #pragma unroll
    for (int kr = 0; kr < (RY - 1) * S + K; ++kr) {
        unsigned xs[K][2];
        #pragma unroll
        for (int s = 0; s < K; ++s) {
            uint2 q = quads[((r0 * S + kr) * INW + col * S + s) * (CB / 4) + cq];
            xs[s][0] = q.x; xs[s][1] = q.y;
        }
        #pragma unroll
        for (int j = 0; j < RY; ++j) {
            const int wr = kr - j * S;
            if (wr < 0 || wr >= K) continue;
            #pragma unroll
            for (int s = 0; s < K; ++s) {
                acc[j][0] = hfma2(xs[s][0], wk[wr * K + s][0], acc[j][0]);
                acc[j][1] = hfma2(xs[s][1], wk[wr * K + s][1], acc[j][1]);
            }
        }
    }
    float bv[4];
    load_ch<4>(bias + ch0, bv);
    #pragma unroll
    for (int j = 0; j < RY; ++j) {
        int oy = oy0 + r0 + j;
        if (oy >= ho) break;
        IX o = ((p * ho + oy) * (IX)wo + ox) * c + ch0;
        float v[4], zr[4] = {0.f, 0.f, 0.f, 0.f};
        widen4(acc[j], v);
        if (has_z) load_ch<4>(z + o, zr);
        #pragma unroll
        for (int k = 0; k < 4; ++k) v[k] = act_apply(v[k] + bv[k] + zr[k], kind, a, b);
        store_ch<4>(y + o, v);
    }
}

#define DEPTHWISE_H2(K, S, RY)                                                                            \
extern "C" __global__ void __launch_bounds__(128) depthwise_h2_k##K##s##S##r##RY(                       \
        DT* y, const DT* x, const DT* w, const DT* bias,                                                  \
        const DT* z, int c, int h, int wd, int ho, int wo, int kh, int kw, int sh, int sw, int pt, int pl, \
        int dh, int dw, int has_z, int kind, float a, float b, int has_clamp, float lo, float hi, IX total) { \
    depthwise_h2<K, S, RY>(y, x, w, bias, z, c, h, wd, ho, wo, pt, pl, has_z, kind, a, b,               \
                           has_clamp, lo, hi);                                                             \
}
DEPTHWISE_H2(3, 1, 8)
DEPTHWISE_H2(3, 1, 4)
DEPTHWISE_H2(3, 2, 4)
DEPTHWISE_H2(5, 1, 8)
DEPTHWISE_H2(5, 1, 4)
DEPTHWISE_H2(5, 2, 4)

// act_apply on four values, with one branch on `kind` for the four.
__device__ __forceinline__ void act_apply4(float* v, int kind, float a, float b) {
    switch (kind) {
        case 0: break;
        case 1:
            #pragma unroll
            for (int e = 0; e < 4; ++e) v[e] = fmaxf(v[e], 0.f);
            break;
        case 2:
            #pragma unroll
            for (int e = 0; e < 4; ++e) v[e] = fminf(fmaxf(v[e], a), b);
            break;
        default:
            #pragma unroll
            for (int e = 0; e < 4; ++e) v[e] = act_apply(v[e], kind, a, b);
    }
}

// Two floats rounded to an f16x2 pair (the first in the low half), one instruction.
__device__ __forceinline__ unsigned pack_h2(float lo, float hi) {
    unsigned r; asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo)); return r;
}

// One m16n8k16 product on tensor cores, fp16 in, f32 accumulated into `d`.
__device__ __forceinline__ void mma_m16n8k16(float* d, const unsigned* a, unsigned b0, unsigned b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// An image stem (conv_few_inputs_nhwc's convs) on tensor cores, fp16 in, f32 accumulation:
// the product of the im2col matrix (pixels x taps, gathered from x as the mma fragments need
// it, zero outside the image) and the weights (taps x 32 output channels of blockIdx.y's
// group), taps padded to whole k-steps of 16, mma.sync.m16n8k16. A block of 4 warps takes
// 128 pixels, each warp 2 groups of 16. Shared memory: the group's weights as fp16 pairs
// along the taps, [32][tp / 2 + 4] words (the 4 words of padding put the 8 rows a fragment
// load touches in different banks), then per tap its row and column offsets in the window
// and its offset in x, {dy, dx, offset, valid}. A pixel whose window lies inside the image
// gathers its taps without bounds checks. Bias, residual and activation in f32 (one branch
// on the activation per four values), two channels per store. Needs sm_80 (the engine does
// not pick it below).
extern "C" __global__ void __launch_bounds__(128) conv_few_inputs_mma(DT* y, const DT* x, const DT* w,
        const DT* bias, const DT* z, int c, int h, int wd, int ho, int wo, int k, int kh, int kw,
        int sh, int sw, int pt, int pl, int dh, int dw, int has_z, int kind, float a, float b, IX pixels) {
#if __CUDA_ARCH__ >= 800
    constexpr int GROUPS = 2;
    extern __shared__ int4 smem4[];
    unsigned* wsm = reinterpret_cast<unsigned*>(smem4);
    const int taps = kh * kw * c, tp = (taps + 15) & ~15, ws = tp / 2 + 4;
    int4* tab = reinterpret_cast<int4*>(wsm + 32 * ws);
    const int k0 = blockIdx.y * 32;
    for (int i = threadIdx.x; i < 32 * (tp / 2); i += blockDim.x) {
        int n = i / (tp / 2), pr = i - n * (tp / 2), t0 = 2 * pr, kn = k0 + n;
        unsigned lo = (t0 < taps && kn < k) ? w[(IX)t0 * k + kn] : 0u;
        unsigned hi = (t0 + 1 < taps && kn < k) ? w[(IX)(t0 + 1) * k + kn] : 0u;
        wsm[n * ws + pr] = lo | (hi << 16);
    }
    for (int t = threadIdx.x; t < tp; t += blockDim.x) {
        int4 e = make_int4(0, 0, 0, 0);
        if (t < taps) {
            int ci = t % c, rs = t / c, s = rs % kw, r = rs / kw;
            e = make_int4(r * dh, s * dw, (r * dh * wd + s * dw) * c + ci, 1);
        }
        tab[t] = e;
    }
    __syncthreads();
    const int lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
    const IX base = blockIdx.x * 128 + (threadIdx.x >> 5) * 16 * GROUPS;
    // The two pixels (rows g and g + 8 of each group) this lane gathers for: their window's
    // top-left corner and its offset in x (wrapping, like all IX arithmetic).
    int y0[GROUPS][2], x0[GROUPS][2];
    IX off[GROUPS][2];
    bool live[GROUPS][2], inner[GROUPS][2];
    #pragma unroll
    for (int gr = 0; gr < GROUPS; ++gr)
        #pragma unroll
        for (int hf = 0; hf < 2; ++hf) {
            IX pix = base + gr * 16 + g + hf * 8;
            live[gr][hf] = pix < pixels;
            int ox = pix % wo; IX q = pix / wo; int oy = q % ho; IX n = q / ho;
            y0[gr][hf] = oy * sh - pt; x0[gr][hf] = ox * sw - pl;
            off[gr][hf] = ((n * h + (IX)y0[gr][hf]) * (IX)wd + (IX)x0[gr][hf]) * (IX)c;
            // The whole window inside the image: its taps need no bounds checks.
            inner[gr][hf] = live[gr][hf] && y0[gr][hf] >= 0 && x0[gr][hf] >= 0
                && y0[gr][hf] + (kh - 1) * dh < h && x0[gr][hf] + (kw - 1) * dw < wd;
        }
    float acc[GROUPS][4][4];
    #pragma unroll
    for (int gr = 0; gr < GROUPS; ++gr)
        #pragma unroll
        for (int nt = 0; nt < 4; ++nt)
            #pragma unroll
            for (int e = 0; e < 4; ++e) acc[gr][nt][e] = 0.f;
    for (int kb = 0; kb < tp; kb += 16) {
        unsigned bf[4][2];
        #pragma unroll
        for (int nt = 0; nt < 4; ++nt) {
            bf[nt][0] = wsm[(nt * 8 + g) * ws + kb / 2 + tq];
            bf[nt][1] = wsm[(nt * 8 + g) * ws + kb / 2 + 4 + tq];
        }
        // Taps 2tq, 2tq + 1, 2tq + 8, 2tq + 9 of this k-step.
        int4 tt[4] = {tab[kb + 2 * tq], tab[kb + 2 * tq + 1], tab[kb + 2 * tq + 8], tab[kb + 2 * tq + 9]};
        #pragma unroll
        for (int gr = 0; gr < GROUPS; ++gr) {
            unsigned v[2][4];
            #pragma unroll
            for (int hf = 0; hf < 2; ++hf)
                #pragma unroll
                for (int j = 0; j < 4; ++j) {
                    bool in = tt[j].w && inner[gr][hf];
                    if (!inner[gr][hf]) {
                        int iy = y0[gr][hf] + tt[j].x, ix = x0[gr][hf] + tt[j].y;
                        in = tt[j].w && live[gr][hf] && iy >= 0 && iy < h && ix >= 0 && ix < wd;
                    }
                    v[hf][j] = in ? (unsigned)x[off[gr][hf] + (IX)tt[j].z] : 0u;
                }
            // Fragment registers: (row g, taps 2tq..), (row g + 8, ..), (row g, taps 2tq + 8..),
            // (row g + 8, taps 2tq + 8..), the lower tap in the lower half.
            const unsigned af[4] = {v[0][0] | (v[0][1] << 16), v[1][0] | (v[1][1] << 16),
                                    v[0][2] | (v[0][3] << 16), v[1][2] | (v[1][3] << 16)};
            #pragma unroll
            for (int nt = 0; nt < 4; ++nt) mma_m16n8k16(acc[gr][nt], af, bf[nt][0], bf[nt][1]);
        }
    }
    #pragma unroll
    for (int nt = 0; nt < 4; ++nt) {
        int ch = k0 + nt * 8 + 2 * tq;
        if (k0 + nt * 8 >= k) break;
        float b0 = LD(bias[ch]), b1 = LD(bias[ch + 1]);
        #pragma unroll
        for (int gr = 0; gr < GROUPS; ++gr) {
            const IX o0 = (base + gr * 16 + g) * (IX)k + ch, o1 = o0 + 8 * (IX)k;
            float v[4] = {acc[gr][nt][0] + b0, acc[gr][nt][1] + b1, acc[gr][nt][2] + b0,
                          acc[gr][nt][3] + b1};
            if (has_z) {
                if (live[gr][0]) {
                    unsigned zz = *reinterpret_cast<const unsigned*>(z + o0);
                    v[0] += LD((DT)(zz & 0xffffu)); v[1] += LD((DT)(zz >> 16));
                }
                if (live[gr][1]) {
                    unsigned zz = *reinterpret_cast<const unsigned*>(z + o1);
                    v[2] += LD((DT)(zz & 0xffffu)); v[3] += LD((DT)(zz >> 16));
                }
            }
            act_apply4(v, kind, a, b);
            if (live[gr][0]) *reinterpret_cast<unsigned*>(y + o0) = pack_h2(v[0], v[1]);
            if (live[gr][1]) *reinterpret_cast<unsigned*>(y + o1) = pack_h2(v[2], v[3]);
        }
    }
#endif
}
// The A fragments of pointwise_mma's tile `t` (16 pixels, rows g and g + 8 of this lane),
// straight from global memory: 4-byte pairs of channels, zero past the pixels and K.
template <int KS>
__device__ __forceinline__ void pointwise_load_a(unsigned (&af)[KS][4], const DT* x, IX m, int kin,
                                                 IX t, int g, int tq) {
    const IX r0 = t * 16 + g, r1 = r0 + 8;
    const unsigned* x0 = reinterpret_cast<const unsigned*>(x + r0 * (IX)kin);
    const unsigned* x1 = reinterpret_cast<const unsigned*>(x + r1 * (IX)kin);
    const bool in0 = r0 < m, in1 = r1 < m;
    #pragma unroll
    for (int ks = 0; ks < KS; ++ks) {
        const int k0 = ks * 16 + 2 * tq;
        const bool lo = k0 < kin, hi = k0 + 8 < kin;
        af[ks][0] = in0 && lo ? x0[k0 / 2] : 0u;
        af[ks][1] = in1 && lo ? x1[k0 / 2] : 0u;
        af[ks][2] = in0 && hi ? x0[k0 / 2 + 4] : 0u;
        af[ks][3] = in1 && hi ? x1[k0 / 2 + 4] : 0u;
    }
}

// pointwise_mma's body for K of KS k-steps of 16. The block's weights are laid out once in
// shared memory in B-fragment order (one 8-byte load per lane per n8 tile and k-step) with
// the bias as floats; then each warp walks its tiles of 16 pixels (tile t, t + the grid's
// warps, ...), the next tile's A fragments loaded while the current one is multiplied, and
// for each chunk of 64 output channels: products, bias, residual, activation in f32, the
// fp16 results into the warp's own [16][72] staging, then 16-byte stores (lane l stores
// vector l % 8 of rows l / 8, + 4, + 8, + 12: a pixel's 128-byte run of channels per 8
// lanes). Only __syncwarp inside the loop. The kernel is bound by issued instructions more
// than by memory (`ncu`), so the epilogue is kept short: one branch on the activation per
// n8 tile, paired conversions, no divisions.
template <int KS>
__device__ __forceinline__ void pointwise_mma_body(DT* y, const DT* x, const DT* w, const DT* bias,
        const DT* z, IX m, int kin, int n, int ld_y, int ld_z, int has_z, int kind, float a, float b) {
    constexpr int WARPS = 8, CH = 64, RS = CH + 8;
    extern __shared__ int4 pointwise_smem[];
    const int nts = n / 8;
    uint2* wf = reinterpret_cast<uint2*>(pointwise_smem);
    float* bs = reinterpret_cast<float*>(wf + nts * KS * 32);
    DT* stage = reinterpret_cast<DT*>(bs + n) + (threadIdx.x >> 5) * 16 * RS;
    for (int i = threadIdx.x; i < nts * KS * 32; i += blockDim.x) {
        const int l = i & 31, q = i >> 5, ks = q % KS, row = (q / KS) * 8 + (l >> 2);
        const int k0 = ks * 16 + 2 * (l & 3);
        const unsigned* wr = reinterpret_cast<const unsigned*>(w + (IX)row * kin);
        wf[i] = make_uint2(k0 < kin ? wr[k0 / 2] : 0u, k0 + 8 < kin ? wr[k0 / 2 + 4] : 0u);
    }
    for (int i = threadIdx.x; i < n; i += blockDim.x) bs[i] = LD(bias[i]);
    __syncthreads();
    const int lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3, cv = lane & 7, cr = lane >> 3;
    const IX tiles = (m + 15) / 16, step = (IX)gridDim.x * WARPS;
    IX t = (IX)blockIdx.x * WARPS + (threadIdx.x >> 5);
    unsigned next[KS][4];
    if (t < tiles) pointwise_load_a<KS>(next, x, m, kin, t, g, tq);
    unsigned* st0 = reinterpret_cast<unsigned*>(stage + g * RS + 2 * tq);
    unsigned* st1 = reinterpret_cast<unsigned*>(stage + (g + 8) * RS + 2 * tq);
    for (; t < tiles; t += step) {
        unsigned af[KS][4];
        #pragma unroll
        for (int ks = 0; ks < KS; ++ks)
            #pragma unroll
            for (int e = 0; e < 4; ++e) af[ks][e] = next[ks][e];
        if (t + step < tiles) pointwise_load_a<KS>(next, x, m, kin, t + step, g, tq);
        const IX r0 = t * 16 + g, r1 = r0 + 8;
        for (int c0 = 0; c0 < n; c0 += CH) {
            const int tiles_n = min(CH, n - c0) / 8;
            const uint2* wq = wf + (c0 / 8) * KS * 32 + lane;
            const float2* bq = reinterpret_cast<const float2*>(bs + c0) + tq;
            for (int j = 0; j < tiles_n; ++j) {
                float d[4] = {0.f, 0.f, 0.f, 0.f};
                #pragma unroll
                for (int ks = 0; ks < KS; ++ks) {
                    const uint2 q = wq[(j * KS + ks) * 32];
                    mma_m16n8k16(d, af[ks], q.x, q.y);
                }
                const float2 bb = bq[j * 4];
                float v[4] = {d[0] + bb.x, d[1] + bb.y, d[2] + bb.x, d[3] + bb.y};
                if (has_z) {
                    const int col = c0 + j * 8 + 2 * tq;
                    if (r0 < m) {
                        const unsigned zz = *reinterpret_cast<const unsigned*>(z + r0 * (IX)ld_z + col);
                        v[0] += LD((DT)(zz & 0xffffu)); v[1] += LD((DT)(zz >> 16));
                    }
                    if (r1 < m) {
                        const unsigned zz = *reinterpret_cast<const unsigned*>(z + r1 * (IX)ld_z + col);
                        v[2] += LD((DT)(zz & 0xffffu)); v[3] += LD((DT)(zz >> 16));
                    }
                }
                act_apply4(v, kind, a, b);
                st0[j * 4] = pack_h2(v[0], v[1]);
                st1[j * 4] = pack_h2(v[2], v[3]);
            }
            __syncwarp();
            if (cv < tiles_n) {
                DT* yc = y + c0 + cv * 8;
                #pragma unroll
                for (int rr = cr; rr < 16; rr += 4) {
                    const IX row = t * 16 + rr;
                    if (row < m)
                        *reinterpret_cast<uint4*>(yc + row * (IX)ld_y) =
                            *reinterpret_cast<const uint4*>(stage + rr * RS + cv * 8);
                }
            }
            __syncwarp();
        }
    }
}

// A 1x1 convolution of at most 64 input channels (fp16 NHWC, one group, stride 1, no pads)
// on tensor cores, f32 accumulation: the product of the input (pixels x K, rows contiguous)
// and the weights ([N][K], cuDNN's NHWC filter layout), K padded to whole k-steps of 16;
// bias, residual and activation in the epilogue. The thin products of mobile networks'
// expand convs (K 16..64, outputs 4-6x the input), which the libraries run well below the
// copy rate. Blocks of 8 warps, as many as the GPU holds at once (`exec/pointwise.rs`), each
// warp streaming 16-pixel tiles through all N output channels, so the input is read once.
// `ld_y`, `ld_z`: elements between output and residual pixels (slices of a concat's output).
// Shared memory (`pointwise_mma_smem`): weights N * KS * 32 bytes, bias N floats, and per
// warp a [16][72] fp16 staging. One kernel per number of k-steps, `pointwise_mma_k1` ..
// `_k4`, so that each holds only the A fragments it needs (47 to 64 registers). Needs sm_80.
#define POINTWISE_MMA(KS)                                                                              \
extern "C" __global__ void __launch_bounds__(256) pointwise_mma_k##KS(DT* y, const DT* x, const DT* w, \
        const DT* bias, const DT* z, IX m, int kin, int n, int ld_y, int ld_z, int has_z, int kind,    \
        float a, float b) {                                                                            \
    pointwise_mma_body<KS>(y, x, w, bias, z, m, kin, n, ld_y, ld_z, has_z, kind, a, b);                \
}
#if __CUDA_ARCH__ >= 800
POINTWISE_MMA(1)
POINTWISE_MMA(2)
POINTWISE_MMA(3)
POINTWISE_MMA(4)
#endif
#endif
"#;
