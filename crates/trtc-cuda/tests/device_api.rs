//! `HybridModel::run_device`: inputs already in device memory, outputs written there, the
//! same numbers as `run`; buffers of the wrong size and models that are not one GPU
//! segment refused with an error saying why.

use crate::common::*;
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr};
use std::sync::Arc;
use trtc_engine::DeviceBuffer;

fn buffer(s: &Arc<CudaStream>, d: &CudaSlice<f32>) -> DeviceBuffer {
    DeviceBuffer {
        ptr: d.device_ptr(s).0,
        bytes: d.len() * 4,
    }
}

/// A conv + relu + global pool model, at batch 3: `run_device` gives what `run` gives.
#[test]
#[ignore = "needs a CUDA GPU"]
fn device_buffers_in_and_out_match_run() {
    let g = conv_relu_pool(8, 16);
    let opts = CompileOptions {
        max_batch_size: 4,
        ..opts_for(Precision::Fp16, Layout::Auto)
    };
    let x = random_tensor(&[3, 3, 16, 16], 5);
    let (_, model) = gpu_vs_tract_model(&g, vec![x.clone()], &opts);
    let want = model.run(vec![x.clone()]).unwrap();
    let want = trtc_ir::tensor::tensor_to_f32s(&want[0]).unwrap();
    let ctx = trtc_cuda::cuda_context().unwrap();
    let s = ctx.new_stream().unwrap();
    let host = trtc_ir::tensor::tensor_to_f32s(&x).unwrap();
    let d_x = s.clone_htod(&host).unwrap();
    let d_y = s.alloc_zeros::<f32>(want.len()).unwrap();
    s.synchronize().unwrap();
    let shapes = vec![vec![3, 3, 16, 16]];
    unsafe { model.run_device(&shapes, &[buffer(&s, &d_x)], &[buffer(&s, &d_y)]) }.unwrap();
    let got = s.clone_dtoh(&d_y).unwrap();
    assert_eq!(got, want, "the same engine, the same numbers");

    // A buffer of the wrong size, and a batch over the limit: errors, nothing run.
    let short = DeviceBuffer {
        bytes: d_y.len() * 4 - 4,
        ..buffer(&s, &d_y)
    };
    let e = unsafe { model.run_device(&shapes, &[buffer(&s, &d_x)], &[short]) }
        .unwrap_err()
        .to_string();
    assert!(e.contains("output 0") && e.contains("bytes"), "{e}");
    let e = unsafe {
        model.run_device(
            &[vec![5, 3, 16, 16]],
            &[buffer(&s, &d_x)],
            &[buffer(&s, &d_y)],
        )
    }
    .unwrap_err()
    .to_string();
    assert!(e.contains("batch"), "{e}");
}

/// A model with a CPU segment in the middle cannot run from device memory: said so.
#[test]
#[ignore = "needs a CUDA GPU"]
fn a_model_of_several_segments_is_refused() {
    let mut b = GraphBuilder::new();
    let x = b.input_with(
        "x",
        trtc_ir::DType::F32,
        vec!["N".into(), 3u64.into(), 8u64.into(), 8u64.into()],
    );
    let r = b.op("relu", Op::Relu, &[x]);
    let s = b.op("sig", Op::Sigmoid, &[r]);
    b.output(s);
    let g = b.build().unwrap();
    let opts = CompileOptions {
        deny_ops: vec!["Sigmoid".into()],
        min_segment_size: 1,
        ..opts_for(Precision::Fp32, Layout::Auto)
    };
    let p = partition(
        &g,
        &CudaOpTable,
        &PartitionOptions {
            min_segment_size: 1,
            deny_ops: opts.deny_ops.clone(),
            use_gpu: true,
        },
    )
    .unwrap();
    let model = HybridModel::new(&g, &p, &opts, &trtc_cuda::CudaBuilder).unwrap();
    let ctx = trtc_cuda::cuda_context().unwrap();
    let st = ctx.new_stream().unwrap();
    let d = st.alloc_zeros::<f32>(3 * 8 * 8).unwrap();
    let e =
        unsafe { model.run_device(&[vec![1, 3, 8, 8]], &[buffer(&st, &d)], &[buffer(&st, &d)]) }
            .unwrap_err()
            .to_string();
    assert!(
        e.contains("segments") || e.contains("cannot take device memory"),
        "{e}"
    );
}
