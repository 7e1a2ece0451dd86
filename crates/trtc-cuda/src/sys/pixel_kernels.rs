//! NVRTC kernel of the pixels family (`ops/pixels.rs`): 8-bit NHWC pixels into the
//! engine's tensor, appended to the module of `kernels.rs` (whose `DT`, `ST` and `bin_op`
//! it uses). A new function only: the kernels before it keep their code.

pub const SOURCE: &str = r#"
// One thread per element of y, written in y's storage order; x is u8 [n][h][w][c].
// mode 0: y holds the values in x's order ([N,H,W,C] stored NCHW-style, or [N,C,H,W]
// stored NHWC); 1: y is [N,C,H,W] stored NCHW; 2: y is [N,H,W,C] stored NHWC (its
// storage order is n, w, c, h). Each value is float(pixel), then `nops` binary ops (codes
// of `bin_op`) with the per-channel constant params[k * c + channel] on the right.
extern "C" __global__ void pixels_in(DT* y, const unsigned char* x, IX total, int c, int h, int w,
                                     int mode, int nops, int op0, int op1, int op2, int op3,
                                     const float* params) {
    IX i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    IX j, ch;
    if (mode == 1) {
        IX xw = i % w; IX q = i / w; IX yh = q % h; q /= h; ch = q % c; IX n = q / c;
        j = ((n * h + yh) * w + xw) * c + ch;
    } else if (mode == 2) {
        IX yh = i % h; IX q = i / h; ch = q % c; q /= c; IX xw = q % w; IX n = q / w;
        j = ((n * h + yh) * w + xw) * c + ch;
    } else {
        j = i; ch = i % c;
    }
    float v = (float)x[j];
    // Unrolled, so that the op codes stay in registers (an array indexed in a loop of run-time
    // length lives in local memory).
    if (nops > 0) v = bin_op<false>(op0, v, params[ch]);
    if (nops > 1) v = bin_op<false>(op1, v, params[c + ch]);
    if (nops > 2) v = bin_op<false>(op2, v, params[2 * c + ch]);
    if (nops > 3) v = bin_op<false>(op3, v, params[3 * c + ch]);
    y[i] = ST(v);
}
"#;
