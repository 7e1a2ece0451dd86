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

/// trtc's INT8 1x1 convolution (`exec/int8.rs`): a product on the tensor cores.
pub const CONV1X1_SOURCE: &str = r#"
// y[p][n] = sat(round(act(alpha * sum_k x[p][k] w[n][k] + bias[n] + alpha_z z[p][n]))),
// int8 x [P][K] (NHWC pixels), w [N][K], z and y [P][N], int32 accumulation with
// mma.sync m16n8k32; act is ReLU when relu != 0. K a multiple of 64, N of 8. A block of
// 256 threads (8 warps, 4 along P x 2 along N, each 32 x 64) computes 128 x 128 outputs;
// the operand tiles (128 rows x 64 bytes, rows padded to 80 bytes against bank conflicts)
// are double-buffered in shared memory through cp.async; the epilogue goes through shared
// memory too, so that global reads and writes are whole 8-byte pieces of rows.
#define C1_LDS 80
#define C1_TILE (128 * C1_LDS)
#define C1_OUT_LDS 144
__device__ __forceinline__ void c1_cp16(unsigned char* dst, const signed char* src, bool valid) {
    unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    int n = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" :: "r"(d), "l"(src), "r"(n));
}
// Tile `k0` of both operands into stage `stage`: each thread copies 2 chunks of 16 bytes of
// each (rows past P or N read as zeros), then commits them as one group.
__device__ __forceinline__ void c1_load(unsigned char* smem, int stage, int k0, int tid, int p0,
                                        int n0, const signed char* x, const signed char* w,
                                        int P, int K, int N) {
    unsigned char* As = smem + stage * 2 * C1_TILE;
    unsigned char* Bs = As + C1_TILE;
    #pragma unroll
    for (int i = 0; i < 2; i++) {
        int c = tid + i * 256, row = c >> 2, kc = (c & 3) * 16;
        int p = p0 + row, n = n0 + row;
        c1_cp16(As + row * C1_LDS + kc, p < P ? x + (size_t)p * K + k0 + kc : x, p < P);
        c1_cp16(Bs + row * C1_LDS + kc, n < N ? w + (size_t)n * K + k0 + kc : w, n < N);
    }
    asm volatile("cp.async.commit_group;\n" ::);
}
__device__ __forceinline__ signed char c1_sat(float v) {
    return (signed char)max(-128, min(127, __float2int_rn(v)));
}
extern "C" __global__ void __launch_bounds__(256) conv1x1_i8(
    signed char* __restrict__ y, const signed char* __restrict__ x,
    const signed char* __restrict__ w, const float* __restrict__ bias,
    const signed char* __restrict__ z, float alpha, float alpha_z, int relu,
    int P, int K, int N) {
    extern __shared__ __align__(16) unsigned char c1_smem[];
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int wm = warp & 3, wn = warp >> 2, g = lane >> 2, t = lane & 3;
    const int p0 = blockIdx.x * 128, n0 = blockIdx.y * 128;
    int acc[2][8][4];
    #pragma unroll
    for (int mi = 0; mi < 2; mi++)
        #pragma unroll
        for (int ni = 0; ni < 8; ni++)
            #pragma unroll
            for (int r = 0; r < 4; r++) acc[mi][ni][r] = 0;
    const int ktiles = K / 64;
    c1_load(c1_smem, 0, 0, tid, p0, n0, x, w, P, K, N);
    for (int kt = 0; kt < ktiles; kt++) {
        if (kt + 1 < ktiles) {
            c1_load(c1_smem, (kt + 1) & 1, (kt + 1) * 64, tid, p0, n0, x, w, P, K, N);
            asm volatile("cp.async.wait_group 1;\n" ::);
        } else {
            asm volatile("cp.async.wait_group 0;\n" ::);
        }
        __syncthreads();
        const unsigned char* As = c1_smem + (kt & 1) * 2 * C1_TILE;
        const unsigned char* Bs = As + C1_TILE;
        #pragma unroll
        for (int kk = 0; kk < 64; kk += 32) {
            unsigned a[2][4], b[8][2];
            #pragma unroll
            for (int mi = 0; mi < 2; mi++) {
                const unsigned char* r0 = As + (wm * 32 + mi * 16 + g) * C1_LDS + kk + t * 4;
                a[mi][0] = *(const unsigned*)(r0);
                a[mi][1] = *(const unsigned*)(r0 + 8 * C1_LDS);
                a[mi][2] = *(const unsigned*)(r0 + 16);
                a[mi][3] = *(const unsigned*)(r0 + 8 * C1_LDS + 16);
            }
            #pragma unroll
            for (int ni = 0; ni < 8; ni++) {
                const unsigned char* c0 = Bs + (wn * 64 + ni * 8 + g) * C1_LDS + kk + t * 4;
                b[ni][0] = *(const unsigned*)(c0);
                b[ni][1] = *(const unsigned*)(c0 + 16);
            }
            #pragma unroll
            for (int mi = 0; mi < 2; mi++)
                #pragma unroll
                for (int ni = 0; ni < 8; ni++)
                    asm volatile(
                        "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 "
                        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                        : "+r"(acc[mi][ni][0]), "+r"(acc[mi][ni][1]),
                          "+r"(acc[mi][ni][2]), "+r"(acc[mi][ni][3])
                        : "r"(a[mi][0]), "r"(a[mi][1]), "r"(a[mi][2]), "r"(a[mi][3]),
                          "r"(b[ni][0]), "r"(b[ni][1]));
        }
        __syncthreads();
    }
    // Epilogue through shared memory (the operand tiles are free now): the residual tile
    // read and the output tile written in coalesced 8-byte pieces, the thread-scattered
    // accumulators going through 144-byte rows (no bank conflicts, 16-byte aligned).
    unsigned char* zs = c1_smem;
    unsigned char* ys = c1_smem + 128 * C1_OUT_LDS;
    if (z) {
        #pragma unroll
        for (int i = 0; i < 8; i++) {
            int c = tid + i * 256, row = c >> 4, col = (c & 15) * 8;
            int p = p0 + row, n = n0 + col;
            unsigned long long v = 0;
            if (p < P && n < N) v = *reinterpret_cast<const unsigned long long*>(z + (size_t)p * N + n);
            *reinterpret_cast<unsigned long long*>(zs + row * C1_OUT_LDS + col) = v;
        }
        __syncthreads();
    }
    #pragma unroll
    for (int mi = 0; mi < 2; mi++)
        #pragma unroll
        for (int ni = 0; ni < 8; ni++)
            #pragma unroll
            for (int h = 0; h < 2; h++) {
                int r = wm * 32 + mi * 16 + g + h * 8, c = wn * 64 + ni * 8 + t * 2;
                int n = n0 + c;
                float v0 = (float)acc[mi][ni][2 * h] * alpha + (n < N ? bias[n] : 0.f);
                float v1 = (float)acc[mi][ni][2 * h + 1] * alpha + (n + 1 < N ? bias[n + 1] : 0.f);
                if (z) {
                    char2 zz = *reinterpret_cast<const char2*>(zs + r * C1_OUT_LDS + c);
                    v0 += alpha_z * (float)zz.x;
                    v1 += alpha_z * (float)zz.y;
                }
                if (relu) { v0 = fmaxf(v0, 0.f); v1 = fmaxf(v1, 0.f); }
                char2 out;
                out.x = c1_sat(v0);
                out.y = c1_sat(v1);
                *reinterpret_cast<char2*>(ys + r * C1_OUT_LDS + c) = out;
            }
    __syncthreads();
    #pragma unroll
    for (int i = 0; i < 8; i++) {
        int c = tid + i * 256, row = c >> 4, col = (c & 15) * 8;
        int p = p0 + row, n = n0 + col;
        if (p < P && n < N)
            *reinterpret_cast<unsigned long long*>(y + (size_t)p * N + n) =
                *reinterpret_cast<const unsigned long long*>(ys + row * C1_OUT_LDS + col);
    }
}
"#;
