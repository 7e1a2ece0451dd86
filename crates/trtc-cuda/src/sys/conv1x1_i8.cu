// trtc's INT8 1x1 convolution, a product on the int8 tensor cores. Compiled by NVRTC at run
// time (`sys/quant_kernels.rs` includes this file) and by nvcc in the probe that times its
// tile shapes (`benches/probes/conv1x1_i8_probe.cu`).
//
//   y[p][n] = sat(round(act(alpha[n] * sum_k x[p][k] w[n][k] + bias[n] + alpha_z * z[p][n])))
//
// int8 x [P][K] (NHWC pixels), w [N][K], z (the residual, may be null) and y [P][N]; alpha
// per output channel (per-channel weight scales), int32 accumulation through
// mma.sync.m16n8k32; act is ReLU when relu != 0. K and N multiples of 16 (the tiled kernels
// read a K that is not a multiple of 64 as zeros up to the next one; the streaming kernels
// take only their K).
//
// A block computes BM x BN outputs with WM x WN warps. Its blocks are numbered along N first,
// so that the blocks reading the same pixels run together and share them in L2. The operand
// tiles (rows of 64 bytes of K, padded to 80 bytes: ldmatrix without bank conflicts) go
// through S stages of shared memory by cp.async. The residual tile is fetched by cp.async at
// the start, behind the first operand tile, so that it arrives while the block computes; the
// epilogue reads it and writes the output tile in the same shared-memory bytes, and the tile
// leaves in 16-byte pieces of rows.
#define C1_LDS 80

__device__ __forceinline__ void c1_cp16(unsigned char* dst, const signed char* src, bool valid) {
    unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    int n = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(n));
}
__device__ __forceinline__ void c1_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int PENDING> __device__ __forceinline__ void c1_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(PENDING));
}
__device__ __forceinline__ void c1_ldsm4(unsigned* r, const unsigned char* p) {
    unsigned a = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}

// The epilogue converts without the conversion unit (a quarter of the arithmetic rate): an
// int i with |i| <= 2^22 is float(i) = as_float(i + as_int(1.5 * 2^23)) - 1.5 * 2^23, and a
// float v in [-128, 127] plus 1.5 * 2^23 (rounded to nearest even, as __float2int_rn) holds
// round(v) in its low byte.
#define C1_MAGIC 12582912.f
#define C1_MAGIC_I 0x4B400000
__device__ __forceinline__ float c1_small_int_to_float(int i) {
    return __int_as_float(i + C1_MAGIC_I) - C1_MAGIC;
}
// Requantizes the accumulators of columns c and c + 1 of one output row, in place at `o`: the
// residual's two bytes there when `has_z`, the two output bytes after. `lo` is 0 with ReLU,
// -128 without. `exact` says |acc| <= 2^22 (K <= 256), else the conversion unit converts.
__device__ __forceinline__ void c1_requant2(unsigned char* o, int acc0, int acc1, float a0,
                                            float a1, float b0, float b1, bool has_z,
                                            float alpha_z, float lo, bool exact) {
    float v0 = exact ? c1_small_int_to_float(acc0) : __int2float_rn(acc0);
    float v1 = exact ? c1_small_int_to_float(acc1) : __int2float_rn(acc1);
    v0 = v0 * a0 + b0;
    v1 = v1 * a1 + b1;
    unsigned short* o2 = reinterpret_cast<unsigned short*>(o);
    if (has_z) {
        unsigned zz = *o2;
        v0 += alpha_z * c1_small_int_to_float((int)(zz << 24) >> 24);
        v1 += alpha_z * c1_small_int_to_float((int)(zz << 16) >> 24);
    }
    int q0 = __float_as_int(fminf(fmaxf(v0, lo), 127.f) + C1_MAGIC);
    int q1 = __float_as_int(fminf(fmaxf(v1, lo), 127.f) + C1_MAGIC);
    *o2 = (unsigned short)__byte_perm(q0, q1, 0x0040);
}
// One k-step of 32 on the tensor cores: a warp's MI x NI fragments of m16n8k32, its A rows
// from `a0` and its B rows (output channels) from `b0`, rows `ld` bytes apart.
template <int MI, int NI>
__device__ __forceinline__ void c1_mma_k32(int (&acc)[MI][NI][4], const unsigned char* a0,
                                           const unsigned char* b0, int ld, int lane) {
    unsigned a[MI][4], b[NI][2];
    #pragma unroll
    for (int mi = 0; mi < MI; mi++)
        c1_ldsm4(a[mi], a0 + (mi * 16 + (lane & 15)) * ld + (lane >> 4) * 16);
    #pragma unroll
    for (int np = 0; np < NI / 2; np++) {
        unsigned r[4];
        c1_ldsm4(r, b0 + (np * 16 + (lane & 7) + (lane >> 4) * 8) * ld + ((lane >> 3) & 1) * 16);
        b[2 * np][0] = r[0];
        b[2 * np][1] = r[1];
        b[2 * np + 1][0] = r[2];
        b[2 * np + 1][1] = r[3];
    }
    #pragma unroll
    for (int mi = 0; mi < MI; mi++)
        #pragma unroll
        for (int ni = 0; ni < NI; ni++)
            asm volatile(
                "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 "
                "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                : "+r"(acc[mi][ni][0]), "+r"(acc[mi][ni][1]), "+r"(acc[mi][ni][2]),
                  "+r"(acc[mi][ni][3])
                : "r"(a[mi][0]), "r"(a[mi][1]), "r"(a[mi][2]), "r"(a[mi][3]), "r"(b[ni][0]),
                  "r"(b[ni][1]));
}
// The epilogue of a warp's fragments into the BM x (BN + 16) byte tile `os` (see c1_requant2).
template <int MI, int NI, int TM, int TN>
__device__ __forceinline__ void c1_epilogue(unsigned char* os, int ld, const int (&acc)[MI][NI][4],
                                            int wm, int wn, int lane, int n0, int N,
                                            const float* alpha, const float* bias, bool has_z,
                                            float alpha_z, int relu, bool exact) {
    const int g = lane >> 2, t = lane & 3;
    const float lo = relu ? 0.f : -128.f;
    #pragma unroll
    for (int ni = 0; ni < NI; ni++) {
        int c = wn * TN + ni * 8 + t * 2, n = n0 + c;
        float a0 = 0.f, a1 = 0.f, b0 = 0.f, b1 = 0.f;
        if (n < N) { a0 = alpha[n]; a1 = alpha[n + 1]; b0 = bias[n]; b1 = bias[n + 1]; }
        #pragma unroll
        for (int mi = 0; mi < MI; mi++)
            #pragma unroll
            for (int h = 0; h < 2; h++)
                c1_requant2(os + (wm * TM + mi * 16 + g + h * 8) * ld + c, acc[mi][ni][2 * h],
                            acc[mi][ni][2 * h + 1], a0, a1, b0, b1, has_z, alpha_z, lo, exact);
    }
}

// Zeroes a warp's accumulators.
template <int MI, int NI> __device__ __forceinline__ void c1_zero(int (&acc)[MI][NI][4]) {
    #pragma unroll
    for (int mi = 0; mi < MI; mi++)
        #pragma unroll
        for (int ni = 0; ni < NI; ni++)
            #pragma unroll
            for (int r = 0; r < 4; r++) acc[mi][ni][r] = 0;
}
// The BM x BN residual tile at pixel p0, channel n0 into `os` (rows of BN + 16 bytes) by
// cp.async, 16 bytes per copy (zeros past P or N).
template <int BM, int BN, int T>
__device__ __forceinline__ void c1_load_residual(unsigned char* os, const signed char* z, int p0,
                                                 int n0, int P, int N) {
    constexpr int OLDS = BN + 16, ROWCH = BN / 16;
    #pragma unroll
    for (int c = threadIdx.x; c < BM * ROWCH; c += T) {
        int row = c / ROWCH, col = (c % ROWCH) * 16, p = p0 + row, n = n0 + col;
        bool ok = p < P && n < N;
        c1_cp16(os + row * OLDS + col, ok ? z + (size_t)p * N + n : z, ok);
    }
}
// The BM x BN output tile in `os` to y at pixel p0, channel n0, 16 bytes per store.
template <int BM, int BN, int T>
__device__ __forceinline__ void c1_store_tile(signed char* y, const unsigned char* os, int p0,
                                              int n0, int P, int N) {
    constexpr int OLDS = BN + 16, ROWCH = BN / 16;
    #pragma unroll
    for (int c = threadIdx.x; c < BM * ROWCH; c += T) {
        int row = c / ROWCH, col = (c % ROWCH) * 16, p = p0 + row, n = n0 + col;
        if (p < P && n < N)
            *reinterpret_cast<int4*>(y + (size_t)p * N + n) =
                *reinterpret_cast<const int4*>(os + row * OLDS + col);
    }
}

// Operand tile k0 into `stage`: BM rows of x, then BN rows of w, 64 bytes each (rows past P
// or N, and bytes past K, read as zeros).
template <int BM, int BN, int T>
__device__ __forceinline__ void c1_load(unsigned char* stage, int k0, int p0, int n0,
                                        const signed char* x, const signed char* w, int P,
                                        int K, int N) {
    #pragma unroll
    for (int c = threadIdx.x; c < (BM + BN) * 4; c += T) {
        int row = c >> 2, kc = (c & 3) * 16;
        bool in_k = k0 + kc < K;
        unsigned char* dst = stage + row * C1_LDS + kc;
        if (row < BM) {
            int p = p0 + row;
            bool ok = p < P && in_k;
            c1_cp16(dst, ok ? x + (size_t)p * K + k0 + kc : x, ok);
        } else {
            int n = n0 + row - BM;
            bool ok = n < N && in_k;
            c1_cp16(dst, ok ? w + (size_t)n * K + k0 + kc : w, ok);
        }
    }
}

// Split K: a warp's sums added into the int32 workspace `ws` ([P][N]), or with TAKE the
// totals read from it into the warp's accumulators and the workspace put back to zero.
template <int MI, int NI, int TM, int TN, bool TAKE>
__device__ __forceinline__ void c1_split_sums(int (&acc)[MI][NI][4], int* ws, int p0, int n0,
                                              int wm, int wn, int lane, int P, int N) {
    const int g = lane >> 2, t = lane & 3;
    #pragma unroll
    for (int mi = 0; mi < MI; mi++)
        #pragma unroll
        for (int ni = 0; ni < NI; ni++)
            #pragma unroll
            for (int h = 0; h < 2; h++) {
                int p = p0 + wm * TM + mi * 16 + g + h * 8;
                int n = n0 + wn * TN + ni * 8 + t * 2;
                if (p >= P || n >= N) continue;
                int* o = ws + (size_t)p * N + n;
                if (TAKE) {
                    acc[mi][ni][2 * h] = __ldcg(o);
                    acc[mi][ni][2 * h + 1] = __ldcg(o + 1);
                    o[0] = 0;
                    o[1] = 0;
                } else {
                    atomicAdd(o, acc[mi][ni][2 * h]);
                    atomicAdd(o + 1, acc[mi][ni][2 * h + 1]);
                }
            }
}

// With `splits` > 1 (split K, for grids too small to fill the GPU: few pixels, large K), the
// blocks of one output tile are `splits` consecutive blocks, each summing its share of K's
// 64-wide steps; each adds its int32 sums into `ws` ([P][N] int32, then one counter per tile,
// all zero before the launch), and the block that arrives last at its tile's counter reads
// the totals back, puts the tile's sums and counter back to zero for the next launch, and
// runs the epilogue.
template <int BM, int BN, int WM, int WN, int S>
__device__ __forceinline__ void c1_body(signed char* __restrict__ y,
                                        const signed char* __restrict__ x,
                                        const signed char* __restrict__ w,
                                        const float* __restrict__ bias,
                                        const float* __restrict__ alpha,
                                        const signed char* __restrict__ z, float alpha_z,
                                        int relu, int P, int K, int N, int* __restrict__ ws,
                                        int splits, unsigned char* smem) {
    constexpr int T = 32 * WM * WN, TM = BM / WM, TN = BN / WN, MI = TM / 16, NI = TN / 8;
    constexpr int STAGE = (BM + BN) * C1_LDS, OLDS = BN + 16;
    static_assert(TM % 16 == 0 && TN % 16 == 0, "warp tiles are whole 16 x 16 pieces");
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int wm = warp % WM, wn = warp / WM;
    const int nblocks = (N + BN - 1) / BN;
    const int tile = blockIdx.x / splits, split = blockIdx.x % splits;
    const int p0 = (tile / nblocks) * BM, n0 = (tile % nblocks) * BN;
    unsigned char* os = smem + S * STAGE;
    // This block's steps of 64 along K: [k_first, k_first + ktiles).
    const int all_ktiles = (K + 63) / 64, per_split = (all_ktiles + splits - 1) / splits;
    const int k_first = split * per_split;
    const int ktiles = max(0, min(all_ktiles, k_first + per_split) - k_first);
    const int kb = k_first * 64;

    if (ktiles > 0) c1_load<BM, BN, T>(smem, kb, p0, n0, x, w, P, K, N);
    c1_commit();
    if (z) c1_load_residual<BM, BN, T>(os, z, p0, n0, P, N);
    c1_commit();
    #pragma unroll
    for (int s = 1; s < S - 1; s++) {
        if (s < ktiles) c1_load<BM, BN, T>(smem + s * STAGE, kb + s * 64, p0, n0, x, w, P, K, N);
        c1_commit();
    }

    int acc[MI][NI][4];
    c1_zero(acc);

    for (int kt = 0; kt < ktiles; kt++) {
        int next = kt + S - 1;
        if (next < ktiles)
            c1_load<BM, BN, T>(smem + (next % S) * STAGE, kb + next * 64, p0, n0, x, w, P, K, N);
        c1_commit();
        // Groups younger than tile kt: tiles kt+1 .. kt+S-1, and at kt = 0 the residual's.
        if (kt == 0) c1_wait<S>(); else c1_wait<S - 1>();
        __syncthreads();
        const unsigned char* As = smem + (kt % S) * STAGE + wm * TM * C1_LDS;
        const unsigned char* Bs = smem + (kt % S) * STAGE + (BM + wn * TN) * C1_LDS;
        c1_mma_k32<MI, NI>(acc, As, Bs, C1_LDS, lane);
        c1_mma_k32<MI, NI>(acc, As + 32, Bs + 32, C1_LDS, lane);
        __syncthreads();
    }
    c1_wait<0>();
    __syncthreads();

    if (splits > 1) {
        __shared__ int c1_last;
        c1_split_sums<MI, NI, TM, TN, false>(acc, ws, p0, n0, wm, wn, lane, P, N);
        __threadfence();
        __syncthreads();
        if (tid == 0) {
            int* counter = ws + (size_t)P * N + tile;
            c1_last = atomicAdd(counter, 1) == splits - 1;
            if (c1_last) *counter = 0;
        }
        __syncthreads();
        if (!c1_last) return;
        __threadfence();
        c1_split_sums<MI, NI, TM, TN, true>(acc, ws, p0, n0, wm, wn, lane, P, N);
    }

    c1_epilogue<MI, NI, TM, TN>(os, OLDS, acc, wm, wn, lane, n0, N, alpha, bias, z != nullptr,
                                alpha_z, relu, K <= 256);
    __syncthreads();
    c1_store_tile<BM, BN, T>(y, os, p0, n0, P, N);
}

// One kernel per tile shape and stage count: conv1x1_i8_<BM>x<BN> (2 stages) and
// conv1x1_i8_<BM>x<BN>_<S>st. The engine times them per layer (`tactics/int8.rs`), with and
// without split K; `OwnKernel::smem` in `exec/int8.rs` gives each one's shared memory,
// S * (BM + BN) * 80 + BM * (BN + 16) bytes. Launched with gridDim.x = tiles * splits.
#define C1_KERNEL_NAMED(NAME, BM, BN, WM, WN, S)                                              \
    extern "C" __global__ void __launch_bounds__(32 * WM * WN) NAME(                          \
        signed char* __restrict__ y, const signed char* __restrict__ x,                       \
        const signed char* __restrict__ w, const float* __restrict__ bias,                    \
        const float* __restrict__ alpha, const signed char* __restrict__ z, float alpha_z,    \
        int relu, int P, int K, int N, int* __restrict__ ws, int splits) {                    \
        extern __shared__ __align__(16) unsigned char c1_smem[];                              \
        c1_body<BM, BN, WM, WN, S>(y, x, w, bias, alpha, z, alpha_z, relu, P, K, N, ws,       \
                                   splits, c1_smem);                                          \
    }
#define C1_KERNEL(BM, BN, WM, WN, S) C1_KERNEL_NAMED(conv1x1_i8_##BM##x##BN, BM, BN, WM, WN, S)
#define C1_KERNEL_ST(BM, BN, WM, WN, S)                                                       \
    C1_KERNEL_NAMED(conv1x1_i8_##BM##x##BN##_##S##st, BM, BN, WM, WN, S)
// The engine's list of these (`exec/int8.rs`, OWN_KERNELS) names the same shapes.
C1_KERNEL(128, 128, 4, 2, 2)
C1_KERNEL(128, 64, 4, 1, 2)
C1_KERNEL(64, 128, 2, 2, 2)
C1_KERNEL(64, 64, 2, 2, 2)
C1_KERNEL_ST(128, 128, 4, 2, 4)
C1_KERNEL_ST(64, 64, 2, 2, 4)

// The streaming form, for small K (compile-time KD <= 256), where the layer is bound by its
// bytes: a fixed number of blocks (the GPU's occupancy, a multiple of the N-blocks), each
// holding its output channels' whole weights [BN][KD] in shared memory and walking pixel tiles
// gridDim.x / nblocks apart. S stages each hold one pixel tile's x rows [BM][KD] and its
// residual / output tile [BM][BN]; while a block computes one tile and writes it out, the next
// S - 1 tiles are on their way. Rows are padded by 16 bytes (ldmatrix without bank conflicts).
template <int KD, int BM, int BN, int WM, int WN, int S>
__device__ __forceinline__ void c1s_body(signed char* __restrict__ y,
                                         const signed char* __restrict__ x,
                                         const signed char* __restrict__ w,
                                         const float* __restrict__ bias,
                                         const float* __restrict__ alpha,
                                         const signed char* __restrict__ z, float alpha_z,
                                         int relu, int P, int N, unsigned char* smem) {
    constexpr int T = 32 * WM * WN, TM = BM / WM, TN = BN / WN, MI = TM / 16, NI = TN / 8;
    constexpr int LD = KD + 16, OLDS = BN + 16, KCH = KD / 16;
    constexpr int STAGE = BM * LD + BM * OLDS;
    static_assert(TM % 16 == 0 && TN % 16 == 0 && KD % 64 == 0, "whole fragments");
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int wm = warp % WM, wn = warp / WM;
    const int nblocks = (N + BN - 1) / BN, n0 = (blockIdx.x % nblocks) * BN;
    const int pstride = gridDim.x / nblocks, ptiles = (P + BM - 1) / BM;
    unsigned char* Bs = smem;
    unsigned char* stages = smem + BN * LD;

    #pragma unroll
    for (int c = tid; c < BN * KCH; c += T) {
        int row = c / KCH, kc = (c % KCH) * 16, n = n0 + row;
        c1_cp16(Bs + row * LD + kc, n < N ? w + (size_t)n * KD + kc : w, n < N);
    }
    // Tile `pt` (if there is one) into stage `s`: its x rows, and its residual rows.
    auto load = [&](int s, int pt) {
        if (pt >= ptiles) return;
        unsigned char* As = stages + s * STAGE;
        unsigned char* Os = As + BM * LD;
        const int p0 = pt * BM;
        #pragma unroll
        for (int c = tid; c < BM * KCH; c += T) {
            int row = c / KCH, kc = (c % KCH) * 16, p = p0 + row;
            c1_cp16(As + row * LD + kc, p < P ? x + (size_t)p * KD + kc : x, p < P);
        }
        if (z) c1_load_residual<BM, BN, T>(Os, z, p0, n0, P, N);
    };
    int pt = blockIdx.x / nblocks;
    #pragma unroll
    for (int s = 0; s < S - 1; s++) {
        load(s, pt + s * pstride);
        c1_commit();
    }
    for (int i = 0; pt < ptiles; i++, pt += pstride) {
        // Stage (i + S - 1) % S was last read in iteration i - 1, which ended in a barrier.
        load((i + S - 1) % S, pt + (S - 1) * pstride);
        c1_commit();
        c1_wait<S - 1>();
        __syncthreads();
        unsigned char* As = stages + (i % S) * STAGE;
        unsigned char* Os = As + BM * LD;
        int acc[MI][NI][4];
        c1_zero(acc);
        #pragma unroll
        for (int kk = 0; kk < KD; kk += 32)
            c1_mma_k32<MI, NI>(acc, As + wm * TM * LD + kk, Bs + wn * TN * LD + kk, LD, lane);
        c1_epilogue<MI, NI, TM, TN>(Os, OLDS, acc, wm, wn, lane, n0, N, alpha, bias,
                                    z != nullptr, alpha_z, relu, true);
        __syncthreads();
        const int p0 = pt * BM;
        c1_store_tile<BM, BN, T>(y, Os, p0, n0, P, N);
        __syncthreads();
    }
    c1_wait<0>();
}

// conv1x1_i8_s<KD>_<BM>x<BN>: shared memory BN * (KD + 16) + S * BM * (KD + 16 + BN + 16)
// bytes; launched with gridDim.x a multiple of N's blocks of BN. `ws` and `splits` are the
// tiled kernels' (one signature for all): unused, no split K.
#define C1S_KERNEL(KD, BM, BN, WM, WN, S)                                                     \
    extern "C" __global__ void __launch_bounds__(32 * WM * WN)                                \
        conv1x1_i8_s##KD##_##BM##x##BN(                                                        \
            signed char* __restrict__ y, const signed char* __restrict__ x,                   \
            const signed char* __restrict__ w, const float* __restrict__ bias,                \
            const float* __restrict__ alpha, const signed char* __restrict__ z,               \
            float alpha_z, int relu, int P, int K, int N, int* ws, int splits) {              \
        extern __shared__ __align__(16) unsigned char c1_smem[];                              \
        c1s_body<KD, BM, BN, WM, WN, S>(y, x, w, bias, alpha, z, alpha_z, relu, P, N,         \
                                        c1_smem);                                             \
    }
C1S_KERNEL(64, 128, 64, 4, 2, 3)
C1S_KERNEL(64, 128, 128, 4, 2, 3)
C1S_KERNEL(128, 64, 128, 2, 4, 3)
C1S_KERNEL(256, 64, 64, 2, 2, 3)
C1S_KERNEL(256, 64, 128, 2, 4, 3)
