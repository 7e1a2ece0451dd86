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

pub fn tensor4d(dims: [i32; 4]) -> CudnnResult<Tensor4d> {
    let d = Tensor4d(result::create_tensor_descriptor()?);
    unsafe {
        result::set_tensor4d_descriptor(
            d.0,
            sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW,
            sys::cudnnDataType_t::CUDNN_DATA_FLOAT,
            dims,
        )
    }?;
    Ok(d)
}

pub fn filter4d(dims: [i32; 4]) -> CudnnResult<Filter4d> {
    let d = Filter4d(result::create_filter_descriptor()?);
    unsafe {
        result::set_filter4d_descriptor(
            d.0,
            sys::cudnnDataType_t::CUDNN_DATA_FLOAT,
            sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW,
            dims,
        )
    }?;
    Ok(d)
}

/// A 2-D cross-correlation with symmetric pads; `tensor_ops` allows TF32.
pub fn conv2d(
    pad: [i32; 2],
    stride: [i32; 2],
    dilation: [i32; 2],
    groups: i32,
    tensor_ops: bool,
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
            sys::cudnnDataType_t::CUDNN_DATA_FLOAT,
        )?;
        result::set_convolution_group_count(d.0, groups)?;
        let math = if tensor_ops {
            sys::cudnnMathType_t::CUDNN_DEFAULT_MATH
        } else {
            sys::cudnnMathType_t::CUDNN_FMA_MATH
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
