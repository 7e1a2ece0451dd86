//! Matrix products through cuBLASLt, with the bias, the residual and ReLU fused into the
//! call (`D = relu(alpha * W·X + Z + bias)`): the classifier Gemm, and 1x1 convolutions of
//! NHWC engines, which are exactly a GEMM over the pixels (`[N*H*W, C] x [C, K]`).
//!
//! Row-major `Y[m, n] = X[m, k] · W[k, n]` is column-major `Y^T = W^T · X^T`, so cuBLASLt
//! sees A = the weights (n x k), B = the activations (k x m), D = the output (n x m), with
//! no copies. The algorithm is chosen by timing cuBLASLt's heuristic candidates on the
//! engine's shapes.

use cudarc::cublaslt::{result as lt, sys};
use std::ffi::c_void;

pub(super) type LtResult<T> = std::result::Result<T, lt::CublasError>;

pub struct LtHandle(pub sys::cublasLtHandle_t);
struct Desc(sys::cublasLtMatmulDesc_t);
struct Layout(sys::cublasLtMatrixLayout_t);
struct Pref(sys::cublasLtMatmulPreference_t);

// Safety (all Drops): created by the matching create call, destroyed once, here.
impl Drop for LtHandle {
    fn drop(&mut self) {
        let _ = unsafe { lt::destroy_handle(self.0) };
    }
}
impl Drop for Desc {
    fn drop(&mut self) {
        let _ = unsafe { lt::destroy_matmul_desc(self.0) };
    }
}
impl Drop for Layout {
    fn drop(&mut self) {
        let _ = unsafe { lt::destroy_matrix_layout(self.0) };
    }
}
impl Drop for Pref {
    fn drop(&mut self) {
        let _ = unsafe { lt::destroy_matmul_pref(self.0) };
    }
}

impl LtHandle {
    /// A cuBLASLt handle, or `None` where the library is missing.
    pub fn new() -> Option<LtHandle> {
        // Safety: only tries to dlopen the library.
        if !unsafe { sys::is_culib_present() } {
            return None;
        }
        lt::create_handle().ok().map(LtHandle)
    }
}

/// A product's shape and what it fuses.
#[derive(Clone, Copy, Debug)]
pub struct GemmSpec {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// The weights are stored `[n][k]` (a 1x1 conv's `[K][C]`), else `[k][n]`.
    pub weights_nk: bool,
    pub half: bool,
    /// TF32 tensor cores allowed (fp32 data only).
    pub tf32: bool,
    pub relu: bool,
    pub residual: bool,
    pub alpha: f32,
    /// Elements between the output's rows: `n`, or more for a slice of a concat's output.
    pub ld_out: usize,
}

/// A configured product with its candidate algorithms (fastest first once chosen).
pub struct LtGemm {
    desc: Desc,
    a: Layout,
    b: Layout,
    d: Layout,
    pub algos: Vec<sys::cublasLtMatmulHeuristicResult_t>,
    pub chosen: usize,
    alpha: f32,
    beta: f32,
}

fn set_attr<T>(desc: &Desc, attr: sys::cublasLtMatmulDescAttributes_t, v: &T) -> LtResult<()> {
    // Safety: `v` is a live value of the size cuBLASLt reads for `attr`.
    unsafe {
        lt::set_matmul_desc_attribute(
            desc.0,
            attr,
            v as *const T as *const c_void,
            std::mem::size_of::<T>(),
        )
    }
}

impl LtGemm {
    /// Describe the product; `bias` is a device pointer to n values of the data type.
    pub fn new(h: &LtHandle, spec: GemmSpec, bias: u64, max_workspace: usize) -> LtResult<LtGemm> {
        use sys::cublasLtMatmulDescAttributes_t as A;
        let dt = if spec.half {
            sys::cudaDataType::CUDA_R_16F
        } else {
            sys::cudaDataType::CUDA_R_32F
        };
        let compute = if spec.tf32 && !spec.half {
            sys::cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_TF32
        } else {
            sys::cublasComputeType_t::CUBLAS_COMPUTE_32F
        };
        let desc = Desc(lt::create_matmul_desc(
            compute,
            sys::cudaDataType::CUDA_R_32F,
        )?);
        let trans_a: i32 = spec.weights_nk as i32;
        set_attr(&desc, A::CUBLASLT_MATMUL_DESC_TRANSA, &trans_a)?;
        let epilogue = if spec.relu {
            sys::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_RELU_BIAS
        } else {
            sys::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_BIAS
        };
        set_attr(&desc, A::CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue)?;
        set_attr(&desc, A::CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias)?;
        let (m, n, k) = (spec.m as u64, spec.n as u64, spec.k as u64);
        let a = if spec.weights_nk {
            Layout(lt::create_matrix_layout(dt, k, n, k as i64)?)
        } else {
            Layout(lt::create_matrix_layout(dt, n, k, n as i64)?)
        };
        let b = Layout(lt::create_matrix_layout(dt, k, m, k as i64)?);
        let d = Layout(lt::create_matrix_layout(dt, n, m, spec.ld_out as i64)?);
        let pref = Pref(lt::create_matmul_pref()?);
        let ws = max_workspace as u64;
        // Safety: a u64, as the attribute expects.
        unsafe {
            lt::set_matmul_pref_attribute(
                pref.0,
                sys::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                &ws as *const u64 as *const c_void,
                std::mem::size_of::<u64>(),
            )?;
        }
        let mut results: [sys::cublasLtMatmulHeuristicResult_t; 8] = unsafe { std::mem::zeroed() };
        let mut count = 0i32;
        // Safety: descriptors are live; the array holds the 8 results asked for.
        unsafe {
            sys::cublasLtMatmulAlgoGetHeuristic(
                h.0,
                desc.0,
                a.0,
                b.0,
                d.0,
                d.0,
                pref.0,
                8,
                results.as_mut_ptr(),
                &mut count,
            )
            .result()?;
        }
        let algos: Vec<_> = results
            .iter()
            .take(count.max(0) as usize)
            .filter(|r| r.state == sys::cublasStatus_t::CUBLAS_STATUS_SUCCESS)
            .copied()
            .collect();
        if algos.is_empty() {
            return Err(lt::CublasError(
                sys::cublasStatus_t::CUBLAS_STATUS_NOT_SUPPORTED,
            ));
        }
        Ok(LtGemm {
            desc,
            a,
            b,
            d,
            algos,
            chosen: 0,
            alpha: spec.alpha,
            beta: if spec.residual { 1.0 } else { 0.0 },
        })
    }

    /// Workspace the chosen algorithm needs.
    pub fn workspace_size(&self) -> usize {
        self.algos[self.chosen].workspaceSize
    }

    /// `y = epilogue(alpha * w·x + z)`; `z` is read only with a residual.
    #[allow(clippy::too_many_arguments)]
    pub fn launch(
        &self,
        h: &LtHandle,
        stream: sys::cudaStream_t,
        w: u64,
        x: u64,
        z: Option<u64>,
        y: u64,
        workspace: (u64, usize),
    ) -> LtResult<()> {
        let algo = &self.algos[self.chosen];
        let c = z.unwrap_or(y);
        // Safety: pointers are device buffers of the shapes the layouts describe, alive for
        // the engine's lifetime; the workspace holds at least `workspace.1` bytes.
        unsafe {
            lt::matmul(
                h.0,
                self.desc.0,
                &self.alpha as *const f32 as *const c_void,
                &self.beta as *const f32 as *const c_void,
                w as *const c_void,
                self.a.0,
                x as *const c_void,
                self.b.0,
                c as *const c_void,
                self.d.0,
                y as *mut c_void,
                self.d.0,
                &algo.algo,
                workspace.0 as *mut c_void,
                workspace.1,
                stream,
            )
        }
    }
}
