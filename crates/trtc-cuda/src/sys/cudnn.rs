//! RAII wrappers over raw cuDNN descriptors (cudarc's safe wrappers hide the raw handles
//! the fused conv-bias-activation call needs).

use cudarc::cudnn::{result, sys};

pub struct Handle(pub sys::cudnnHandle_t);
pub struct Tensor4d(pub sys::cudnnTensorDescriptor_t);
pub struct Filter4d(pub sys::cudnnFilterDescriptor_t);
pub struct ConvDesc(pub sys::cudnnConvolutionDescriptor_t);
pub struct ActDesc(pub sys::cudnnActivationDescriptor_t);

// Safety (all Drops): each descriptor was created by the matching create call and is
// destroyed exactly once, here.
impl Drop for Handle {
    fn drop(&mut self) {
        let _ = unsafe { result::destroy_handle(self.0) };
    }
}
impl Drop for Tensor4d {
    fn drop(&mut self) {
        let _ = unsafe { result::destroy_tensor_descriptor(self.0) };
    }
}
impl Drop for Filter4d {
    fn drop(&mut self) {
        let _ = unsafe { result::destroy_filter_descriptor(self.0) };
    }
}
impl Drop for ConvDesc {
    fn drop(&mut self) {
        let _ = unsafe { result::destroy_convolution_descriptor(self.0) };
    }
}
impl Drop for ActDesc {
    fn drop(&mut self) {
        let _ = unsafe { sys::cudnnDestroyActivationDescriptor(self.0) };
    }
}

pub type CudnnResult<T> = Result<T, result::CudnnError>;

fn format(nhwc: bool) -> sys::cudnnTensorFormat_t {
    if nhwc {
        sys::cudnnTensorFormat_t::CUDNN_TENSOR_NHWC
    } else {
        sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW
    }
}

fn data_type(half: bool) -> sys::cudnnDataType_t {
    if half {
        sys::cudnnDataType_t::CUDNN_DATA_HALF
    } else {
        sys::cudnnDataType_t::CUDNN_DATA_FLOAT
    }
}

/// An `[n, c, h, w]` tensor stored NCHW or NHWC, f32 or fp16.
pub fn tensor4d(dims: [i32; 4], nhwc: bool, half: bool) -> CudnnResult<Tensor4d> {
    let d = Tensor4d(result::create_tensor_descriptor()?);
    unsafe { result::set_tensor4d_descriptor(d.0, format(nhwc), data_type(half), dims) }?;
    Ok(d)
}

/// An `[n, c, h, w]` tensor whose rows (NHWC: pixels, NCHW: images) are `ld` elements
/// apart: a channel slice of a wider tensor.
pub fn tensor4d_rows(dims: [i32; 4], nhwc: bool, half: bool, ld: usize) -> CudnnResult<Tensor4d> {
    let [_, _, h, w] = dims;
    let ld = ld as i32;
    let strides = if nhwc {
        [h * w * ld, 1, w * ld, ld]
    } else {
        [ld, h * w, w, 1]
    };
    let d = Tensor4d(result::create_tensor_descriptor()?);
    unsafe { result::set_tensor4d_descriptor_ex(d.0, data_type(half), dims, strides) }?;
    Ok(d)
}

/// `[k, c, r, s]` filters stored KCRS or KRSC, f32 or fp16.
pub fn filter4d(dims: [i32; 4], nhwc: bool, half: bool) -> CudnnResult<Filter4d> {
    let d = Filter4d(result::create_filter_descriptor()?);
    unsafe { result::set_filter4d_descriptor(d.0, data_type(half), format(nhwc), dims) }?;
    Ok(d)
}

/// How a convolution may compute: true FP32, TF32 tensor cores, fp16 tensor cores
/// (accumulating in f32), or int8 tensor cores (accumulating in int32).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Math {
    Fp32,
    Tf32,
    Fp16,
    Int8,
}

/// A 2-D cross-correlation with symmetric pads, accumulating in f32 (in int32 for
/// `Math::Int8`).
pub fn conv2d(
    pad: [i32; 2],
    stride: [i32; 2],
    dilation: [i32; 2],
    groups: i32,
    math: Math,
) -> CudnnResult<ConvDesc> {
    let d = ConvDesc(result::create_convolution_descriptor()?);
    unsafe {
        result::set_convolution2d_descriptor(
            d.0,
            pad[0],
            pad[1],
            stride[0],
            stride[1],
            dilation[0],
            dilation[1],
            sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
            if math == Math::Int8 {
                sys::cudnnDataType_t::CUDNN_DATA_INT32
            } else {
                sys::cudnnDataType_t::CUDNN_DATA_FLOAT
            },
        )?;
        result::set_convolution_group_count(d.0, groups)?;
        let math = match math {
            Math::Fp32 => sys::cudnnMathType_t::CUDNN_FMA_MATH,
            Math::Tf32 => sys::cudnnMathType_t::CUDNN_DEFAULT_MATH,
            Math::Fp16 | Math::Int8 => sys::cudnnMathType_t::CUDNN_TENSOR_OP_MATH,
        };
        result::set_convolution_math_type(d.0, math)?;
    }
    Ok(d)
}

pub fn activation(relu: bool) -> CudnnResult<ActDesc> {
    let d = ActDesc(result::create_activation_descriptor()?);
    let mode = if relu {
        sys::cudnnActivationMode_t::CUDNN_ACTIVATION_RELU
    } else {
        sys::cudnnActivationMode_t::CUDNN_ACTIVATION_IDENTITY
    };
    unsafe {
        result::set_activation_descriptor(
            d.0,
            mode,
            sys::cudnnNanPropagation_t::CUDNN_PROPAGATE_NAN,
            0.0,
        )
    }?;
    Ok(d)
}

/// An int8 `[n, c, h, w]` tensor stored NHWC (cuDNN's INT8 convolutions read and write
/// only these, with c a multiple of 4).
pub fn tensor4d_int8(dims: [i32; 4]) -> CudnnResult<Tensor4d> {
    let d = Tensor4d(result::create_tensor_descriptor()?);
    unsafe {
        result::set_tensor4d_descriptor(
            d.0,
            sys::cudnnTensorFormat_t::CUDNN_TENSOR_NHWC,
            sys::cudnnDataType_t::CUDNN_DATA_INT8,
            dims,
        )
    }?;
    Ok(d)
}

/// Int8 `[k, c, r, s]` filters stored KRSC.
pub fn filter4d_int8(dims: [i32; 4]) -> CudnnResult<Filter4d> {
    let d = Filter4d(result::create_filter_descriptor()?);
    unsafe {
        result::set_filter4d_descriptor(
            d.0,
            sys::cudnnDataType_t::CUDNN_DATA_INT8,
            sys::cudnnTensorFormat_t::CUDNN_TENSOR_NHWC,
            dims,
        )
    }?;
    Ok(d)
}
