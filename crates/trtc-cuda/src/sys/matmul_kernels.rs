//! NVRTC kernel of batched products of two computed tensors (`batched_matmul`, for
//! `Step::BatchedMatMul`), appended to the module of `kernels.rs` (whose `DT`, `LD` and
//! `ST` it uses).

pub const SOURCE: &str = r#"
// y[z] = a[z] @ b[z]: a [m][k], b [k][n], y [m][n], row-major; matrix z of a at z * sa
// (sa 0: one a for all), of b at z * sb. 16x16 output tiles, blockIdx.z the matrix,
// products accumulated in f32 through shared-memory tiles of a and b.
extern "C" __global__ void batched_matmul(DT* y, const DT* a, const DT* b, int m, int k,
                                          int n, long long sa, long long sb) {
    __shared__ float ta[16][17];
    __shared__ float tb[16][17];
    long long z = blockIdx.z;
    a += z * sa;
    b += z * sb;
    y += z * (long long)m * n;
    int tx = threadIdx.x, ty = threadIdx.y;
    int row = blockIdx.y * 16 + ty, col = blockIdx.x * 16 + tx;
    float acc = 0.f;
    for (int t = 0; t < k; t += 16) {
        ta[ty][tx] = (row < m && t + tx < k) ? LD(a[(IX)row * k + t + tx]) : 0.f;
        tb[ty][tx] = (t + ty < k && col < n) ? LD(b[(IX)(t + ty) * n + col]) : 0.f;
        __syncthreads();
#pragma unroll
        for (int i = 0; i < 16; ++i) acc += ta[ty][i] * tb[i][tx];
        __syncthreads();
    }
    if (row < m && col < n) y[(IX)row * n + col] = ST(acc);
}
"#;
