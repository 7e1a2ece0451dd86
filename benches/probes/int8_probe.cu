// Feasibility probe for issue 12 (INT8/FP8 on the H200): times cuDNN's legacy INT8
// convolution and cuBLASLt's INT8 / FP8 matrix products on ResNet-50's batch-128 shapes
// against the FP16 calls trtc makes today. Build and run on the GPU machine:
//   nvcc -O2 -std=c++17 benches/probes/int8_probe.cu -lcudnn -lcublasLt -o /tmp/int8_probe && /tmp/int8_probe
#include <cstdio>
#include <cstdint>
#include <vector>
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cudnn.h>
#include <cublasLt.h>

#define CK(x) do { auto e_ = (x); if (e_ != 0) { printf("  %s failed: %d (line %d)\n", #x, (int)e_, __LINE__); return -1.0f; } } while (0)

static void* dalloc(size_t bytes) { void* p = nullptr; cudaMalloc(&p, bytes); cudaMemset(p, 0, bytes); return p; }

template <class F> static float timeit(F f, int iters = 20) {
  for (int i = 0; i < 3; i++) f();
  cudaEvent_t a, b; cudaEventCreate(&a); cudaEventCreate(&b);
  cudaEventRecord(a);
  for (int i = 0; i < iters; i++) f();
  cudaEventRecord(b); cudaEventSynchronize(b);
  float ms; cudaEventElapsedTime(&ms, a, b);
  if (cudaGetLastError() != cudaSuccess) return -1.0f;
  return ms / iters;
}

static cudnnHandle_t dnn;
static void* ws; static size_t ws_bytes = 256u << 20;

// One NHWC conv, n x c x h x w -> k channels, r x r, pad r/2, stride 1.
static float conv(cudnnDataType_t io, cudnnDataType_t yt, cudnnDataType_t compute, int n, int c, int h, int w, int k, int r, bool fused, const char** algo_name) {
  cudnnTensorDescriptor_t xd, yd, bd; cudnnFilterDescriptor_t wd; cudnnConvolutionDescriptor_t cd; cudnnActivationDescriptor_t ad;
  cudnnCreateTensorDescriptor(&xd); cudnnCreateTensorDescriptor(&yd); cudnnCreateTensorDescriptor(&bd);
  cudnnCreateFilterDescriptor(&wd); cudnnCreateConvolutionDescriptor(&cd); cudnnCreateActivationDescriptor(&ad);
  CK(cudnnSetTensor4dDescriptor(xd, CUDNN_TENSOR_NHWC, io, n, c, h, w));
  CK(cudnnSetTensor4dDescriptor(yd, CUDNN_TENSOR_NHWC, yt, n, k, h, w));
  CK(cudnnSetTensor4dDescriptor(bd, CUDNN_TENSOR_NHWC, io == CUDNN_DATA_HALF ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT, 1, k, 1, 1));
  CK(cudnnSetFilter4dDescriptor(wd, io, CUDNN_TENSOR_NHWC, k, c, r, r));
  CK(cudnnSetConvolution2dDescriptor(cd, r / 2, r / 2, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, compute));
  CK(cudnnSetConvolutionMathType(cd, CUDNN_TENSOR_OP_MATH));
  CK(cudnnSetActivationDescriptor(ad, CUDNN_ACTIVATION_RELU, CUDNN_NOT_PROPAGATE_NAN, 0.0));
  size_t eb = io == CUDNN_DATA_HALF ? 2 : 1, yb = yt == CUDNN_DATA_HALF ? 2 : (yt == CUDNN_DATA_FLOAT ? 4 : 1);
  void* x = dalloc((size_t)n * c * h * w * eb); void* wt = dalloc((size_t)k * c * r * r * eb);
  void* y = dalloc((size_t)n * k * h * w * yb); void* b = dalloc(k * 4);
  cudnnConvolutionFwdAlgoPerf_t perf[16]; int got = 0;
  float best = -1.0f; static const char* names[] = {"implicit", "precomp", "gemm", "direct", "fft", "fft_tiling", "winograd", "winograd_nf"};
  CK(cudnnGetConvolutionForwardAlgorithm_v7(dnn, xd, wd, cd, yd, 16, &got, perf));
  for (int i = 0; i < got; i++) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > ws_bytes) continue;
    auto algo = perf[i].algo; float one = 1.0f, zero = 0.0f;
    cudnnStatus_t st = CUDNN_STATUS_SUCCESS;
    float t = timeit([&] {
      st = fused ? cudnnConvolutionBiasActivationForward(dnn, &one, xd, x, wd, wt, cd, algo, ws, ws_bytes, &zero, yd, y, bd, b, ad, yd, y)
                 : cudnnConvolutionForward(dnn, &one, xd, x, wd, wt, cd, algo, ws, ws_bytes, &zero, yd, y);
    });
    if (st != CUDNN_STATUS_SUCCESS || t < 0) continue;
    if (best < 0 || t < best) { best = t; *algo_name = names[(int)algo]; }
  }
  cudaFree(x); cudaFree(wt); cudaFree(y); cudaFree(b);
  return best;
}

static cublasLtHandle_t lt;

// Row-major Y[P,N] = X[P,K] W[N,K]^T as cuBLASLt TN: m=N, n=P, k=K.
static float gemm(cudaDataType_t ab, cudaDataType_t dt, cublasComputeType_t comp, cudaDataType_t scale, int P, int K, int N, bool bias_relu, bool alpha_vec) {
  cublasLtMatmulDesc_t md; cublasLtMatrixLayout_t la, lb, lc, ld; cublasLtMatmulPreference_t pref;
  CK(cublasLtMatmulDescCreate(&md, comp, scale));
  cublasOperation_t T = CUBLAS_OP_T, Nn = CUBLAS_OP_N;
  CK(cublasLtMatmulDescSetAttribute(md, CUBLASLT_MATMUL_DESC_TRANSA, &T, sizeof(T)));
  CK(cublasLtMatmulDescSetAttribute(md, CUBLASLT_MATMUL_DESC_TRANSB, &Nn, sizeof(Nn)));
  size_t eb = (ab == CUDA_R_16F) ? 2 : 1, db = (dt == CUDA_R_16F) ? 2 : (dt == CUDA_R_32F || dt == CUDA_R_32I ? 4 : 1);
  void* A = dalloc((size_t)N * K * eb); void* B = dalloc((size_t)P * K * eb); void* D = dalloc((size_t)P * N * db);
  void* bias = dalloc(N * 4); float* avec = (float*)dalloc(N * 4); float* sc = (float*)dalloc(16);
  std::vector<float> ones(N, 1.0f); cudaMemcpy(avec, ones.data(), N * 4, cudaMemcpyHostToDevice); cudaMemcpy(sc, ones.data(), 16, cudaMemcpyHostToDevice);
  if (bias_relu) {
    cublasLtEpilogue_t ep = CUBLASLT_EPILOGUE_RELU_BIAS;
    CK(cublasLtMatmulDescSetAttribute(md, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof(ep)));
    CK(cublasLtMatmulDescSetAttribute(md, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
    cudaDataType_t bt = CUDA_R_16F;
    CK(cublasLtMatmulDescSetAttribute(md, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof(bt)));
  }
  if (alpha_vec) {
    cublasLtPointerMode_t pm = CUBLASLT_POINTER_MODE_ALPHA_DEVICE_VECTOR_BETA_HOST;
    CK(cublasLtMatmulDescSetAttribute(md, CUBLASLT_MATMUL_DESC_POINTER_MODE, &pm, sizeof(pm)));
  }
  if (ab == CUDA_R_8F_E4M3) {
    CK(cublasLtMatmulDescSetAttribute(md, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &sc, sizeof(sc)));
    CK(cublasLtMatmulDescSetAttribute(md, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &sc, sizeof(sc)));
    if (dt == CUDA_R_8F_E4M3) CK(cublasLtMatmulDescSetAttribute(md, CUBLASLT_MATMUL_DESC_D_SCALE_POINTER, &sc, sizeof(sc)));
  }
  cudaDataType_t ct = (ab == CUDA_R_8I) ? dt : (dt == CUDA_R_8F_E4M3 ? CUDA_R_16F : dt);
  CK(cublasLtMatrixLayoutCreate(&la, ab, K, N, K));
  CK(cublasLtMatrixLayoutCreate(&lb, ab, K, P, K));
  CK(cublasLtMatrixLayoutCreate(&lc, ct, N, P, N));
  CK(cublasLtMatrixLayoutCreate(&ld, dt, N, P, N));
  CK(cublasLtMatmulPreferenceCreate(&pref));
  CK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes, sizeof(ws_bytes)));
  cublasLtMatmulHeuristicResult_t heur[8]; int got = 0;
  CK(cublasLtMatmulAlgoGetHeuristic(lt, md, la, lb, lc, ld, pref, 8, heur, &got));
  float best = -1.0f; float one = 1.0f, zero = 0.0f;
  void* C = (ct == dt) ? D : dalloc((size_t)P * N * 2);
  for (int i = 0; i < got; i++) {
    cublasStatus_t st = CUBLAS_STATUS_SUCCESS;
    const void* alpha = alpha_vec ? (const void*)avec : (const void*)&one;
    float t = timeit([&] { st = cublasLtMatmul(lt, md, alpha, A, la, B, lb, &zero, C, lc, D, ld, &heur[i].algo, ws, ws_bytes, 0); });
    if (st != CUBLAS_STATUS_SUCCESS || t < 0) { if (i == 0) printf("  matmul status %d\n", (int)st); continue; }
    if (best < 0 || t < best) best = t;
  }
  if (got == 0) printf("  no heuristic result\n");
  cudaFree(A); cudaFree(B); cudaFree(D); cudaFree(bias); cudaFree(avec); cudaFree(sc);
  return best;
}

int main() {
  cudnnCreate(&dnn); cublasLtCreate(&lt); cudaMalloc(&ws, ws_bytes);
  printf("cuDNN %zu, cuBLASLt %zu\n", cudnnGetVersion(), cublasLtGetVersion());
  int convs[][4] = {{64, 56, 56, 64}, {128, 28, 28, 128}, {256, 14, 14, 256}, {512, 7, 7, 512}};
  printf("\n3x3 convs, batch 128, NHWC (ms; TFLOP/s)\n");
  for (auto& s : convs) {
    int c = s[0], h = s[1], w = s[2], k = s[3];
    double flop = 2.0 * 128 * h * w * k * c * 9;
    const char *a1 = "-", *a2 = "-", *a3 = "-", *a4 = "-";
    float f16 = conv(CUDNN_DATA_HALF, CUDNN_DATA_HALF, CUDNN_DATA_FLOAT, 128, c, h, w, k, 3, true, &a1);
    float i8 = conv(CUDNN_DATA_INT8, CUDNN_DATA_INT8, CUDNN_DATA_INT32, 128, c, h, w, k, 3, false, &a2);
    float i8f = conv(CUDNN_DATA_INT8, CUDNN_DATA_INT8, CUDNN_DATA_INT32, 128, c, h, w, k, 3, true, &a3);
    float i8x = conv(CUDNN_DATA_INT8, CUDNN_DATA_FLOAT, CUDNN_DATA_INT32, 128, c, h, w, k, 3, false, &a4);
    printf("c%d %dx%d: fp16 fused %.4f (%s, %.0f) | int8->int8 %.4f (%s, %.0f) | int8 fused bias relu %.4f (%s) | int8->f32 %.4f (%s)\n",
           c, h, w, f16, a1, flop / f16 / 1e9, i8, a2, flop / i8 / 1e9, i8f, a3, i8x, a4);
  }
  int gemms[][3] = {{401408, 64, 256}, {401408, 256, 64}, {100352, 512, 128}, {100352, 128, 512}, {25088, 1024, 256}, {25088, 256, 1024}, {6272, 2048, 512}, {6272, 512, 2048}};
  printf("\n1x1 convs as cuBLASLt TN GEMMs, P x K x N (ms)\n");
  for (auto& g : gemms) {
    int P = g[0], K = g[1], N = g[2];
    float f16 = gemm(CUDA_R_16F, CUDA_R_16F, CUBLAS_COMPUTE_32F, CUDA_R_32F, P, K, N, true, false);
    float i8 = gemm(CUDA_R_8I, CUDA_R_8I, CUBLAS_COMPUTE_32I, CUDA_R_32F, P, K, N, false, false);
    float i8v = gemm(CUDA_R_8I, CUDA_R_8I, CUBLAS_COMPUTE_32I, CUDA_R_32F, P, K, N, false, true);
    float f8h = gemm(CUDA_R_8F_E4M3, CUDA_R_16F, CUBLAS_COMPUTE_32F, CUDA_R_32F, P, K, N, true, false);
    float f8 = gemm(CUDA_R_8F_E4M3, CUDA_R_8F_E4M3, CUBLAS_COMPUTE_32F, CUDA_R_32F, P, K, N, true, false);
    printf("%d x %d x %d: fp16 bias relu %.4f | int8->int8 %.4f | int8->int8 alpha vector %.4f | fp8->fp16 bias relu %.4f | fp8->fp8 bias relu %.4f\n",
           P, K, N, f16, i8, i8v, f8h, f8);
  }
  return 0;
}
