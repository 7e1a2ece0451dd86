//! The kernels trtc compiles with NVRTC when it builds a CUDA engine: everything cuDNN does
//! not do for it (activations other than ReLU, broadcasting elementwise ops, pooling with
//! ONNX's padding rules, concat/split copies, the classifier GEMM, softmax).

pub const SOURCE: &str = r#"
#define NEG_INF __int_as_float(0xff800000)
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

extern "C" __global__ void act(float* y, const float* x, long long n, int kind, float a, float b) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i < n) y[i] = act_apply(x[i], kind, a, b);
}

// y = a (op) b with numpy broadcasting over (up to) 4 dims; strides of 0 broadcast.
extern "C" __global__ void binary(float* y, const float* a, const float* b, long long n, int op,
                                  int d1, int d2, int d3,
                                  long long as0, long long as1, long long as2, long long as3,
                                  long long bs0, long long bs1, long long bs2, long long bs3) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i >= n) return;
    long long r = i;
    long long c3 = r % d3; r /= d3;
    long long c2 = r % d2; r /= d2;
    long long c1 = r % d1; r /= d1;
    long long c0 = r;
    float u = a[c0 * as0 + c1 * as1 + c2 * as2 + c3 * as3];
    float v = b[c0 * bs0 + c1 * bs1 + c2 * bs2 + c3 * bs3];
    float o;
    switch (op) {
        case 0: o = u + v; break;
        case 1: o = u * v; break;
        case 2: o = u - v; break;
        default: o = u / v; break;
    }
    y[i] = o;
}

// For each of `outer` rows: copy `len` floats from src[o*src_stride + src_off] to dst[o*dst_stride + dst_off].
extern "C" __global__ void copy_rows(float* dst, const float* src, long long outer, long long len,
                                     long long src_stride, long long src_off, long long dst_stride, long long dst_off) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i >= outer * len) return;
    long long o = i / len, k = i % len;
    dst[o * dst_stride + dst_off + k] = src[o * src_stride + src_off + k];
}

// Zero padding of the two spatial dims (for convolutions whose pads cuDNN cannot express).
extern "C" __global__ void pad2d(float* y, const float* x, long long nc, int h, int w, int ho, int wo, int top, int left) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i >= nc * ho * wo) return;
    int ox = i % wo; int oy = (i / wo) % ho; long long p = i / ((long long)wo * ho);
    int ix = ox - left, iy = oy - top;
    y[i] = (ix >= 0 && ix < w && iy >= 0 && iy < h) ? x[(p * h + iy) * w + ix] : 0.f;
}

// Max or average pooling, ONNX semantics (pads, ceil_mode via the output size, count_include_pad).
extern "C" __global__ void pool2d(float* y, const float* x, long long nc, int h, int w, int ho, int wo,
                                  int kh, int kw, int sh, int sw, int pt, int pl, int pb, int pr, int is_max, int count_pad) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i >= nc * ho * wo) return;
    int ox = i % wo; int oy = (i / wo) % ho; long long p = i / ((long long)wo * ho);
    int y0 = oy * sh - pt, x0 = ox * sw - pl;
    float acc = is_max ? NEG_INF : 0.f;
    int count = 0;
    for (int dy = 0; dy < kh; ++dy) {
        int iy = y0 + dy;
        for (int dx = 0; dx < kw; ++dx) {
            int ix = x0 + dx;
            bool inside = iy >= 0 && iy < h && ix >= 0 && ix < w;
            if (inside) {
                float v = x[(p * h + iy) * w + ix];
                acc = is_max ? fmaxf(acc, v) : acc + v;
                ++count;
            } else if (count_pad && iy < h + pb && ix < w + pr) {
                ++count;  // a padding position (not one past the pads, which ceil_mode adds)
            }
        }
    }
    y[i] = is_max ? acc : (count > 0 ? acc / count : 0.f);
}

// One warp per (n, c): mean or max over h*w.
extern "C" __global__ void global_pool(float* y, const float* x, long long nc, int hw, int is_max) {
    long long row = (blockIdx.x * (long long)blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x % 32;
    if (row >= nc) return;
    const float* p = x + row * hw;
    float acc = is_max ? NEG_INF : 0.f;
    for (int k = lane; k < hw; k += 32) acc = is_max ? fmaxf(acc, p[k]) : acc + p[k];
    for (int o = 16; o > 0; o /= 2) {
        float other = __shfl_down_sync(0xffffffff, acc, o);
        acc = is_max ? fmaxf(acc, other) : acc + other;
    }
    if (lane == 0) y[row] = is_max ? acc : acc / hw;
}

// y[m, n] = alpha * sum_k a[m, k] * w[k, n] + beta * bias[n]; w is stored K x N.
extern "C" __global__ void gemm_kn(float* y, const float* a, const float* w, const float* bias,
                                   int m, int n, int k, float alpha, float beta, int has_bias) {
    int col = blockIdx.x * blockDim.x + threadIdx.x;
    int row = blockIdx.y;
    if (col >= n || row >= m) return;
    const float* ar = a + (long long)row * k;
    float acc = 0.f;
    for (int t = 0; t < k; ++t) acc += ar[t] * w[(long long)t * n + col];
    y[(long long)row * n + col] = alpha * acc + (has_bias ? beta * bias[col] : 0.f);
}

// Softmax over rows of `cols` floats, one block of 256 threads per row.
extern "C" __global__ void softmax_rows(float* y, const float* x, long long rows, int cols) {
    __shared__ float red[256];
    long long row = blockIdx.x;
    if (row >= rows) return;
    const float* p = x + row * cols;
    float m = NEG_INF;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf(m, p[c]);
    red[threadIdx.x] = m; __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s /= 2) { if (threadIdx.x < s) red[threadIdx.x] = fmaxf(red[threadIdx.x], red[threadIdx.x + s]); __syncthreads(); }
    m = red[0]; __syncthreads();
    float sum = 0.f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) sum += expf(p[c] - m);
    red[threadIdx.x] = sum; __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s /= 2) { if (threadIdx.x < s) red[threadIdx.x] += red[threadIdx.x + s]; __syncthreads(); }
    sum = red[0];
    for (int c = threadIdx.x; c < cols; c += blockDim.x) y[row * cols + c] = expf(p[c] - m) / sum;
}
"#;
