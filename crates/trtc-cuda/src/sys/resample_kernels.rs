//! NVRTC kernels of Resize (`resize2d`) and ConvTranspose (`conv_transpose2d`), appended to
//! the module of `kernels.rs` (whose `DT`, `LD`, `ST`, `IX` and `at4` they use). New
//! functions only: the CNN kernels before them keep their code.

pub const SOURCE: &str = r#"
// Input coordinate of output index `xo` along an axis, as tract computes it (f32, each
// operation rounded on its own: no contraction into fma). `mode`: 0 half_pixel,
// 1 pytorch_half_pixel, 2 align_corners, 3 asymmetric, 4 tf_half_pixel_for_nn,
// 5 half_pixel_symmetric.
__device__ __forceinline__ float rs_coord(int mode, int xo, float scale, int len_in, int len_out) {
    float x = (float)xo;
    switch (mode) {
        case 1:
            return len_out > 1 ? __fsub_rn(__fdiv_rn(__fadd_rn(x, 0.5f), scale), 0.5f) : -0.5f;
        case 2: {
            float ow = __fmul_rn(scale, (float)len_in);
            return ow == 1.f ? 0.f : __fdiv_rn(__fmul_rn(x, (float)(len_in - 1)), __fsub_rn(ow, 1.f));
        }
        case 3: return __fdiv_rn(x, scale);
        case 4: return __fdiv_rn(__fadd_rn(x, 0.5f), scale);
        case 5: {
            float adj = __fdiv_rn((float)len_out, __fmul_rn(scale, (float)len_in));
            float off = __fmul_rn(__fdiv_rn((float)len_in, 2.f), __fsub_rn(1.f, adj));
            return __fsub_rn(__fadd_rn(off, __fdiv_rn(__fadd_rn(x, 0.5f), scale)), 0.5f);
        }
        default: return __fsub_rn(__fdiv_rn(__fadd_rn(x, 0.5f), scale), 0.5f);
    }
}

// Whether nearest rounding takes the right neighbour, `r` in (0, 1] past the cell
// `ceil(x) - 1`: 0 round_prefer_floor, 1 round_prefer_ceil, 2 floor, 3 ceil.
__device__ __forceinline__ int rs_right(int nearest, float r) {
    if (r == 1.f) return 1;
    switch (nearest) {
        case 1: return r >= 0.5f;
        case 2: return 0;
        case 3: return 1;
        default: return r > 0.5f;
    }
}

__device__ __forceinline__ int rs_clamp(int v, int len) { return v < 0 ? 0 : (v >= len ? len - 1 : v); }

// Resize of H and W (ONNX Resize / Upsample), one thread per output element, NCHW or NHWC.
// Nearest copies the element; linear weighs the 2x2 neighbours in f32 (rows first, as tract).
extern "C" __global__ void resize2d(DT* y, const DT* x, int n, int c, int h, int w, int ho, int wo,
                                    float sh, float sw, int linear, int coord, int nearest, int nhwc) {
    IX i = blockIdx.x * blockDim.x + threadIdx.x;
    IX total = (IX)n * c * ho * wo;
    if (i >= total) return;
    IX ox, oy, ch, p;
    if (nhwc) { ch = i % c; IX q = i / c; ox = q % wo; q /= wo; oy = q % ho; p = q / ho; }
    else { ox = i % wo; IX q = i / wo; oy = q % ho; q /= ho; ch = q % c; p = q / c; }
    float fy = rs_coord(coord, (int)oy, sh, h, ho), fx = rs_coord(coord, (int)ox, sw, w, wo);
    float cy = __fsub_rn(ceilf(fy), 1.f), cx = __fsub_rn(ceilf(fx), 1.f);
    float ry = __fsub_rn(fy, cy), rx = __fsub_rn(fx, cx);
    int y0 = (int)cy, x0 = (int)cx;
    if (!linear) {
        int iy = rs_clamp(y0 + rs_right(nearest, ry), h), ix = rs_clamp(x0 + rs_right(nearest, rx), w);
        y[i] = x[at4(nhwc, p, ch, iy, ix, c, h, w)];
        return;
    }
    int ya = rs_clamp(y0, h), yb = rs_clamp(y0 + 1, h), xa = rs_clamp(x0, w), xb = rs_clamp(x0 + 1, w);
    float wy0 = 1.f - ry, wy1 = 1.f - fabsf(1.f - ry);
    float wx0 = 1.f - rx, wx1 = 1.f - fabsf(1.f - rx);
    float a = wy0 * LD(x[at4(nhwc, p, ch, ya, xa, c, h, w)]) + wy1 * LD(x[at4(nhwc, p, ch, yb, xa, c, h, w)]);
    float b = wy0 * LD(x[at4(nhwc, p, ch, ya, xb, c, h, w)]) + wy1 * LD(x[at4(nhwc, p, ch, yb, xb, c, h, w)]);
    y[i] = ST(wx0 * a + wx1 * b);
}

// 2-D transposed convolution, gather form: each output element (of m channels in
// `groups` groups) sums, over the taps (ky, kx) and its group's input channels, the input
// pixels (iy, ix) with iy * sh - pt + ky * dh = oy (and so for x), plus its bias (when
// `bias` is not null). f32 weights `[kh][kw][c][m / groups]`, f32 accumulation.
extern "C" __global__ void conv_transpose2d(DT* y, const DT* x, const float* wt, const float* bias,
                                            int n, int c, int h, int w, int m, int ho, int wo,
                                            int kh, int kw, int sh, int sw, int pt, int pl,
                                            int dh, int dw, int groups, int nhwc) {
    IX i = blockIdx.x * blockDim.x + threadIdx.x;
    IX total = (IX)n * m * ho * wo;
    if (i >= total) return;
    IX ox, oy, oc, p;
    if (nhwc) { oc = i % m; IX q = i / m; ox = q % wo; q /= wo; oy = q % ho; p = q / ho; }
    else { ox = i % wo; IX q = i / wo; oy = q % ho; q /= ho; oc = q % m; p = q / m; }
    int mg = m / groups, cg = c / groups;
    int g = (int)oc / mg, ocg = (int)oc - g * mg;
    float acc = bias ? bias[oc] : 0.f;
    for (int ky = 0; ky < kh; ++ky) {
        int ty = (int)oy + pt - ky * dh;
        if (ty < 0 || ty % sh) continue;
        int iy = ty / sh;
        if (iy >= h) continue;
        for (int kx = 0; kx < kw; ++kx) {
            int tx = (int)ox + pl - kx * dw;
            if (tx < 0 || tx % sw) continue;
            int ix = tx / sw;
            if (ix >= w) continue;
            const float* wp = wt + ((IX)(ky * kw + kx) * c + g * cg) * mg + ocg;
            for (int k = 0; k < cg; ++k)
                acc += LD(x[at4(nhwc, p, g * cg + k, iy, ix, c, h, w)]) * wp[(IX)k * mg];
        }
    }
    y[i] = ST(acc);
}
"#;
