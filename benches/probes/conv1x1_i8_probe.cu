// Times each tile shape of trtc's INT8 1x1 convolution (`crates/trtc-cuda/src/sys/conv1x1_i8.cu`,
// the file the engine compiles with NVRTC) on ResNet-50's 1x1 stride-1 convolutions at batch
// 128 and 1, checks every result against a plain one-thread-per-output kernel (per-channel
// alpha, bias, residual, ReLU), and prints each shape's time against its byte floor at
// 4.3 TB/s. The tiled kernels also run with K split across blocks (2 to 16 ways, where the
// engine's rule, `Exec::split_counts`, would time it); a cell shows the best, `/sN` naming the
// split. Every result is checked again after the timed runs (split K leaves its workspace at
// zero for the next launch). Build and run on the GPU machine:
//   nvcc -O3 -std=c++17 -arch=sm_90 benches/probes/conv1x1_i8_probe.cu -o /tmp/c1 && /tmp/c1
// With -DOLD_KERNEL=<file> -include <file>, a kernel `conv1x1_i8` of the engine's earlier
// signature (scalar alpha, 128 x 128 tiles, 40 KiB of shared memory) is timed beside them.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <cuda_runtime.h>
#include "../../crates/trtc-cuda/src/sys/conv1x1_i8.cu"

typedef void (*Kernel)(signed char*, const signed char*, const signed char*, const float*,
                       const float*, const signed char*, float, int, int, int, int, int*, int);
// kd = 0: the tiled kernel (any K); kd > 0: the streaming kernel for K = kd.
struct Variant { const char* name; Kernel k; int kd, bm, bn, threads, stages; };
static const Variant VARIANTS[] = {
    {"128x128", conv1x1_i8_128x128, 0, 128, 128, 256, 2},
    {"128x64", conv1x1_i8_128x64, 0, 128, 64, 128, 2},
    {"64x128", conv1x1_i8_64x128, 0, 64, 128, 128, 2},
    {"64x64", conv1x1_i8_64x64, 0, 64, 64, 128, 2},
    {"128x128_4st", conv1x1_i8_128x128_4st, 0, 128, 128, 256, 4},
    {"64x64_4st", conv1x1_i8_64x64_4st, 0, 64, 64, 128, 4},
    {"s64_128x64", conv1x1_i8_s64_128x64, 64, 128, 64, 256, 3},
    {"s64_128x128", conv1x1_i8_s64_128x128, 64, 128, 128, 256, 3},
    {"s128_64x128", conv1x1_i8_s128_64x128, 128, 64, 128, 256, 3},
    {"s256_64x64", conv1x1_i8_s256_64x64, 256, 64, 64, 128, 3},
    {"s256_64x128", conv1x1_i8_s256_64x128, 256, 64, 128, 256, 3},
};
static int smem_of(const Variant& v) {
    if (v.kd) return v.bn * (v.kd + 16) + v.stages * v.bm * (v.kd + 16 + v.bn + 16);
    return v.stages * (v.bm + v.bn) * 80 + v.bm * (v.bn + 16);
}
// Blocks of a launch: every tile for the tiled kernel; for the streaming one, as many as fit
// on the GPU at once, a multiple of N's blocks.
static unsigned blocks_of(const Variant& v, int P, int N) {
    unsigned nb = (N + v.bn - 1) / v.bn, tiles = ((P + v.bm - 1) / v.bm) * nb;
    if (!v.kd) return tiles;
    int sms = 0, per_sm = 0;
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
    cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, v.k, v.threads, smem_of(v));
    unsigned fit = (unsigned)(sms * per_sm) / nb * nb;
    return fit < tiles ? (fit ? fit : nb) : tiles;
}

__global__ void reference(signed char* y, const signed char* x, const signed char* w,
                          const float* bias, const float* alpha, const signed char* z,
                          float alpha_z, int relu, int P, int K, int N) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)P * N) return;
    int p = i / N, n = i % N, acc = 0;
    for (int k = 0; k < K; k++) acc += (int)x[(size_t)p * K + k] * (int)w[(size_t)n * K + k];
    float v = (float)acc * alpha[n] + bias[n];
    if (z) v += alpha_z * (float)z[i];
    if (relu) v = fmaxf(v, 0.f);
    y[i] = (signed char)max(-128, min(127, __float2int_rn(v)));
}

template <class F> static float time_ms(F f, int iters = 50) {
    for (int i = 0; i < 3; i++) f();
    cudaEvent_t a, b;
    cudaEventCreate(&a);
    cudaEventCreate(&b);
    cudaEventRecord(a);
    for (int i = 0; i < iters; i++) f();
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    float ms;
    cudaEventElapsedTime(&ms, a, b);
    return cudaGetLastError() == cudaSuccess ? ms / iters : -1.0f;
}

static signed char* random_i8(size_t n) {
    std::vector<signed char> h(n);
    for (auto& v : h) v = (signed char)(rand() % 256 - 128);
    signed char* d;
    cudaMalloc(&d, n);
    cudaMemcpy(d, h.data(), n, cudaMemcpyHostToDevice);
    return d;
}

int main() {
    struct Shape { int P, K, N, res; const char* layer; };
    const Shape shapes[] = {
        {401408, 64, 64, 0, "layer1.0.conv1"},    {401408, 256, 64, 0, "layer1.1.conv1"},
        {401408, 64, 256, 1, "layer1.*.conv3"},   {401408, 64, 256, 0, "layer1.0.downsample"},
        {401408, 256, 128, 0, "layer2.0.conv1"},  {100352, 512, 128, 0, "layer2.1.conv1"},
        {100352, 128, 512, 1, "layer2.*.conv3"},  {100352, 512, 256, 0, "layer3.0.conv1"},
        {25088, 1024, 256, 0, "layer3.1.conv1"},  {25088, 256, 1024, 1, "layer3.*.conv3"},
        {25088, 1024, 512, 0, "layer4.0.conv1"},  {6272, 2048, 512, 0, "layer4.1.conv1"},
        {6272, 512, 2048, 1, "layer4.*.conv3"},   {3136, 64, 256, 1, "b1 layer1.*.conv3"},
        {3136, 256, 64, 0, "b1 layer1.1.conv1"},  {196, 256, 1024, 1, "b1 layer3.*.conv3"},
        {49, 2048, 512, 0, "b1 layer4.1.conv1"},  {196, 1024, 256, 0, "b1 layer3.1.conv1"},
        {196, 1024, 512, 0, "b1 layer4.0.conv1"}, {784, 512, 128, 0, "b1 layer2.1.conv1"},
        {49, 512, 2048, 1, "b1 layer4.*.conv3"},
    };
    for (const auto& v : VARIANTS)
        cudaFuncSetAttribute(v.k, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_of(v));
    printf("| layer | P x K x N | residual | floor ms |");
#ifdef OLD_KERNEL
    printf(" before ms |");
#endif
    for (const auto& v : VARIANTS) printf(" %s ms |", v.name);
    printf(" best x floor |\n");
    bool all_ok = true;
    // PROBE_SHAPE=i runs the i-th shape only (for ncu).
    const char* only = getenv("PROBE_SHAPE");
    int index = -1;
    for (const auto& s : shapes) {
        if (index++, only && atoi(only) != index) continue;
        size_t px = (size_t)s.P * s.K, pn = (size_t)s.P * s.N;
        signed char *x = random_i8(px), *w = random_i8((size_t)s.N * s.K);
        signed char *z = s.res ? random_i8(pn) : nullptr, *y, *yref;
        cudaMalloc(&y, pn);
        cudaMalloc(&yref, pn);
        // alpha per channel around the value that spreads the outputs over int8's range.
        float a = 60.0f / (sqrtf((float)s.K) * 74.0f * 74.0f);
        std::vector<float> ha(s.N), hb(s.N);
        for (int n = 0; n < s.N; n++) {
            ha[n] = a * (0.5f + (float)(n % 7) / 7.0f);
            hb[n] = (float)(n % 11) - 5.0f;
        }
        float *alpha, *bias;
        cudaMalloc(&alpha, s.N * 4);
        cudaMalloc(&bias, s.N * 4);
        cudaMemcpy(alpha, ha.data(), s.N * 4, cudaMemcpyHostToDevice);
        cudaMemcpy(bias, hb.data(), s.N * 4, cudaMemcpyHostToDevice);
        const float alpha_z = 0.7f;
        const int relu = 1;
        reference<<<(unsigned)((pn + 255) / 256), 256>>>(yref, x, w, bias, alpha, z, alpha_z, relu,
                                                         s.P, s.K, s.N);
        std::vector<signed char> want(pn), got(pn);
        cudaMemcpy(want.data(), yref, pn, cudaMemcpyDeviceToHost);
        double bytes = (double)px + (double)s.N * s.K + (double)pn * (1 + s.res);
        double floor_ms = bytes / 4.3e12 * 1e3;
        printf("| %s | %d x %d x %d | %s | %.4f |", s.layer, s.P, s.K, s.N, s.res ? "yes" : "no",
               floor_ms);
#ifdef OLD_KERNEL
        {
            dim3 grid((s.P + 127) / 128, (s.N + 127) / 128);
            float ms = time_ms([&] {
                conv1x1_i8<<<grid, 256, 2 * 2 * 128 * 80>>>(y, x, w, bias, z, a, alpha_z, relu,
                                                             s.P, s.K, s.N);
            });
            printf(" %.4f |", ms);
        }
#endif
        float best = 1e9f;
        int sms = 0;
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
        int* ws;
        size_t ws_len = pn + ((size_t)s.P / 64 + 1) * ((size_t)s.N / 64 + 1);
        cudaMalloc(&ws, ws_len * 4);
        cudaMemset(ws, 0, ws_len * 4);
        for (const auto& v : VARIANTS) {
            if (v.kd && v.kd != s.K) { printf(" - |"); continue; }
            unsigned blocks = blocks_of(v, s.P, s.N);
            unsigned tiles = ((s.P + v.bm - 1) / v.bm) * ((s.N + v.bn - 1) / v.bn);
            int ksteps = (s.K + 63) / 64;
            float vbest = 1e9f;
            int vsplit = 1;
            for (int split : {1, 2, 4, 8, 16}) {
                if (split > 1 && (v.kd || tiles * split / 2 >= (unsigned)sms || 2 * split > ksteps))
                    continue;
                unsigned grid = v.kd ? blocks : tiles * split;
                auto run = [&] {
                    v.k<<<grid, v.threads, smem_of(v)>>>(y, x, w, bias, alpha, z, alpha_z, relu,
                                                         s.P, s.K, s.N, ws, split);
                };
                cudaMemset(y, 0, pn);
                run();
                cudaMemcpy(got.data(), y, pn, cudaMemcpyDeviceToHost);
                size_t bad = 0;
                for (size_t i = 0; i < pn; i++) bad += got[i] != want[i];
                float ms = time_ms(run);
                cudaMemcpy(got.data(), y, pn, cudaMemcpyDeviceToHost);
                for (size_t i = 0; i < pn; i++) bad += got[i] != want[i];
                if (bad || ms < 0) {
                    all_ok = false;
                    printf(" (%s/s%d: %zu wrong)", v.name, split, bad);
                }
                if (ms > 0 && ms < vbest) { vbest = ms; vsplit = split; }
            }
            if (vsplit > 1) printf(" %.4f/s%d |", vbest, vsplit); else printf(" %.4f |", vbest);
            if (vbest < best) best = vbest;
        }
        cudaFree(ws);
        printf(" %.2f |\n", best / floor_ms);
        cudaFree(x); cudaFree(w); cudaFree(y); cudaFree(yref); cudaFree(alpha); cudaFree(bias);
        if (z) cudaFree(z);
    }
    printf(all_ok ? "all results equal the reference\n" : "SOME RESULTS DIFFER\n");
    return all_ok ? 0 : 1;
}
