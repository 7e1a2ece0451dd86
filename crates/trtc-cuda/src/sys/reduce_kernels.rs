//! NVRTC kernels of reductions and of the ops that normalize over some axes: `Reduce*`,
//! softmax and log-softmax over any axes, layer and instance normalization, and LRN. They
//! follow the other kernels in the module (`kernels.rs`: `DT`, `LD`, `ST`, `IX`) and add
//! new functions only, so the CNN kernels keep their code.
//!
//! A reduction walks the plan of `program/reduce.rs` (`RedArgs`, which must match
//! `RedArgs` in `exec/reduce.rs`): `_warp` kernels give each output a warp (lanes over the
//! reduced elements), `_cols` kernels a column of a block (threadIdx.x over neighbouring
//! outputs, the block's rows over the reduced elements). Everything accumulates in f32.

pub const SOURCE: &str = r#"
// ---- Reductions (`exec/reduce.rs`).
struct RedArgs {
    const float* gamma;
    const float* beta;
    IX n_out, r;
    IX kd[4], ks[4], kp[4];
    IX rd[4], rs[4], rp[4];
    int nr, pre, comb, post;
    float scale, eps;
    // A reduction split over gridDim.y blocks of `chunk` elements: each writes its
    // partial result (before `post`) to part[blockIdx.y * n_out + o]; `reduce_finish`
    // combines them.
    float* part;
    IX chunk;
    int unused;
};

__device__ __forceinline__ float red_pre(int pre, float v) {
    return pre == 1 ? v * v : (pre == 2 ? fabsf(v) : v);
}

__device__ __forceinline__ float red_init(int comb) {
    switch (comb) {
        case 1: return NEG_INF;
        case 2: return __int_as_float(0x7f800000);
        case 3: return 1.f;
        default: return 0.f;
    }
}

__device__ __forceinline__ float red_comb(int comb, float a, float b) {
    switch (comb) {
        case 1: return fmaxf(a, b);
        case 2: return fminf(a, b);
        case 3: return a * b;
        default: return a + b;
    }
}

__device__ __forceinline__ float red_post(int post, float v, float scale) {
    switch (post) {
        case 1: return v * scale;
        case 2: return sqrtf(v);
        case 3: return logf(v);
        default: return v;
    }
}

// Offsets in x and in the parameters of output (group) `o`.
__device__ __forceinline__ void red_kept(const RedArgs& a, IX o, IX& xo, IX& po) {
    xo = 0; po = 0;
    #pragma unroll
    for (int k = 3; k >= 0; --k) { IX c = o % a.kd[k]; o /= a.kd[k]; xo += c * a.ks[k]; po += c * a.kp[k]; }
}

// Offsets in x and in the parameters of reduced element `j`.
__device__ __forceinline__ void red_elem(const RedArgs& a, IX j, IX& xo, IX& po) {
    if (a.nr <= 1) { xo = j * a.rs[3]; po = j * a.rp[3]; return; }
    if (a.nr == 2) {
        IX h = j / a.rd[3], l = j - h * a.rd[3];
        xo = h * a.rs[2] + l * a.rs[3]; po = h * a.rp[2] + l * a.rp[3];
        return;
    }
    xo = 0; po = 0;
    #pragma unroll
    for (int k = 3; k >= 0; --k) { IX c = j % a.rd[k]; j /= a.rd[k]; xo += c * a.rs[k]; po += c * a.rp[k]; }
}

// `v` combined over the threads of one output: the warp's lanes, or the block's rows
// (every thread of the block calls it). Every thread of the output gets the result.
template <bool WARP> __device__ __forceinline__ float red_all(float v, int comb, float (*sh)[33]) {
    if (WARP) {
        #pragma unroll
        for (int o = 16; o > 0; o /= 2) v = red_comb(comb, v, __shfl_xor_sync(0xffffffffu, v, o));
        return v;
    }
    sh[threadIdx.y][threadIdx.x] = v;
    __syncthreads();
    float t = sh[0][threadIdx.x];
    for (int k = 1; k < (int)blockDim.y; ++k) t = red_comb(comb, t, sh[k][threadIdx.x]);
    __syncthreads();
    return t;
}

// TASK 0: y[o] = post(comb over the reduced elements of pre(x)), o in y's storage order.
// TASK 1: softmax (post 0) or log-softmax (post 1) over the reduced elements.
// TASK 2: (x - mean) / sqrt(var + eps) * gamma (+ beta), the variance from a second pass.
// Tasks 1 and 2 write y stored as x.
template <int TASK, bool WARP> __device__ __forceinline__ void red_body(DT* y, const DT* x, const RedArgs& a) {
    __shared__ float sh[32][33];
    IX o = WARP ? blockIdx.x * blockDim.y + threadIdx.y : blockIdx.x * 32 + threadIdx.x;
    IX j0 = WARP ? threadIdx.x : threadIdx.y, js = WARP ? 32 : blockDim.y;
    bool valid = o < a.n_out;
    if (WARP && !valid) return;
    IX xb = 0, pb = 0;
    if (valid) red_kept(a, o, xb, pb);
    IX n = valid ? a.r : 0;
    IX xo, po;
    if (TASK == 0) {
        IX jb = 0;
        if (a.part) { jb = blockIdx.y * a.chunk; n = n < jb + a.chunk ? n : jb + a.chunk; }
        float acc = red_init(a.comb);
        for (IX j = jb + j0; j < n; j += js) {
            red_elem(a, j, xo, po);
            acc = red_comb(a.comb, acc, red_pre(a.pre, LD(x[xb + xo])));
        }
        acc = red_all<WARP>(acc, a.comb, sh);
        if (valid && j0 == 0) {
            if (a.part) a.part[blockIdx.y * a.n_out + o] = acc;
            else y[o] = ST(red_post(a.post, acc, a.scale));
        }
    } else if (TASK == 1) {
        float m = NEG_INF;
        for (IX j = j0; j < n; j += js) { red_elem(a, j, xo, po); m = fmaxf(m, LD(x[xb + xo])); }
        m = red_all<WARP>(m, 1, sh);
        float s = 0.f;
        for (IX j = j0; j < n; j += js) { red_elem(a, j, xo, po); s += expf(LD(x[xb + xo]) - m); }
        s = red_all<WARP>(s, 0, sh);
        float inv = 1.f / s, ls = logf(s);
        for (IX j = j0; j < n; j += js) {
            red_elem(a, j, xo, po);
            float d = LD(x[xb + xo]) - m;
            y[xb + xo] = ST(a.post ? d - ls : expf(d) * inv);
        }
    } else {
        float s = 0.f;
        for (IX j = j0; j < n; j += js) { red_elem(a, j, xo, po); s += LD(x[xb + xo]); }
        float mean = red_all<WARP>(s, 0, sh) / (float)a.r;
        float q = 0.f;
        for (IX j = j0; j < n; j += js) {
            red_elem(a, j, xo, po);
            float d = LD(x[xb + xo]) - mean;
            q += d * d;
        }
        float rstd = 1.f / sqrtf(red_all<WARP>(q, 0, sh) / (float)a.r + a.eps);
        for (IX j = j0; j < n; j += js) {
            red_elem(a, j, xo, po);
            float v = (LD(x[xb + xo]) - mean) * rstd * a.gamma[pb + po];
            if (a.beta) v += a.beta[pb + po];
            y[xb + xo] = ST(v);
        }
    }
}

// The partial results of a split reduction (`part`, `splits` rows of n_out) combined.
extern "C" __global__ void reduce_finish(DT* y, const float* part, IX n_out, int splits, int comb,
                                         int post, float scale) {
    IX o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= n_out) return;
    float acc = part[o];
    for (int s = 1; s < splits; ++s) acc = red_comb(comb, acc, part[(IX)s * n_out + o]);
    y[o] = ST(red_post(post, acc, scale));
}

extern "C" __global__ void reduce_warp(DT* y, const DT* x, RedArgs a) { red_body<0, true>(y, x, a); }
extern "C" __global__ void reduce_cols(DT* y, const DT* x, RedArgs a) { red_body<0, false>(y, x, a); }
extern "C" __global__ void softmax_warp(DT* y, const DT* x, RedArgs a) { red_body<1, true>(y, x, a); }
extern "C" __global__ void softmax_cols(DT* y, const DT* x, RedArgs a) { red_body<1, false>(y, x, a); }
extern "C" __global__ void norm_warp(DT* y, const DT* x, RedArgs a) { red_body<2, true>(y, x, a); }
extern "C" __global__ void norm_cols(DT* y, const DT* x, RedArgs a) { red_body<2, false>(y, x, a); }

// LRN across the channels of an [n, c, inner] tensor stored NCHW-like ([n][c][inner]) or,
// with nhwc, [n][inner][c]: y = x / (bias + alpha / size * sum of x^2 over channels
// c - (size - 1) / 2 .. c + size / 2)^beta.
extern "C" __global__ void lrn(DT* y, const DT* x, IX total, int c, IX inner, int nhwc, int size,
                               float alpha, float beta, float bias) {
    IX i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    IX step = nhwc ? 1 : inner;
    int ch = (int)((i / step) % (IX)c);
    int lo = max(ch - (size - 1) / 2, 0), hi = min(ch + size / 2, c - 1);
    const DT* base = x + (i - (IX)ch * step);
    float s = 0.f;
    for (int k = lo; k <= hi; ++k) { float v = LD(base[(IX)k * step]); s += v * v; }
    y[i] = ST(LD(x[i]) / powf(bias + alpha / (float)size * s, beta));
}
"#;
