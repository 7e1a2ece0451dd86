//! NVRTC kernel of data-movement ops (`strided_gather`: Slice, Gather, Pad, Expand, Tile),
//! appended to the module of `kernels.rs` (whose `DT`, `LD` and `ST` it uses). A new
//! function only: the CNN kernels before it keep their code.

pub const SOURCE: &str = r#"
// Must match `GatherArgs` in exec/gather.rs. One thread per output element, y written in
// its storage order; along each of 6 output dims (outermost first, unused ones of length
// 1) the coordinate `c` picks input coordinate `q`: kind 0 `a + c * b`, 1 `c % a`,
// 2 `c - a` padded outside [0, b) (mode 0 constant `value`, 1 reflect, 2 edge),
// 3 `table[c]`; x is read at `base + sum(q * stride)`.
struct GatherArgs {
    long long n;
    long long base;
    long long len[6];
    long long a[6];
    long long b[6];
    long long stride[6];
    int kind[6];
    int mode;
    float value;
    const int* table;
};

extern "C" __global__ void strided_gather(DT* y, const DT* x, GatherArgs g) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i >= g.n) return;
    long long r = i, off = g.base;
    bool inside = true;
#pragma unroll
    for (int k = 5; k >= 0; --k) {
        long long c = r % g.len[k];
        r /= g.len[k];
        long long q;
        switch (g.kind[k]) {
            case 1: q = c % g.a[k]; break;
            case 2: {
                long long L = g.b[k];
                q = c - g.a[k];
                if (q < 0 || q >= L) {
                    if (g.mode == 1 && L > 1) {
                        long long p = 2 * (L - 1);
                        q = ((q % p) + p) % p;
                        if (q >= L) q = p - q;
                    } else if (g.mode != 0) {
                        q = q < 0 ? 0 : L - 1;
                    } else {
                        inside = false;
                        q = 0;
                    }
                }
                break;
            }
            case 3: q = g.table[c]; break;
            default: q = g.a[k] + c * g.b[k]; break;
        }
        off += q * g.stride[k];
    }
    y[i] = inside ? x[off] : ST(g.value);
}
"#;
