//! u8 NHWC image inputs (`--input-format u8-nhwc`) on the GPU: the pixels converted by one
//! kernel inside the engine, against tract running the same graph, and against the f32
//! model fed the host-normalized image. Run on a GPU machine:
//! `cargo test -p trtc-cuda --test gpu pixels:: -- --ignored`.

use crate::common::*;
use cudarc::driver::DevicePtr;
use trtc_backend::{compile, InputFormat};
use trtc_engine::DeviceBuffer;
use trtc_ir::tensor::random_bytes;
use trtc_ir::{DType, Dim, Tensor};

/// A padded conv + ReLU image model with its input made u8 NHWC (mean, std per channel).
fn u8_conv_model() -> Graph {
    let mut b = GraphBuilder::new();
    let x = b.input_with(
        "image",
        DType::F32,
        vec![
            Dim::Sym("N".into()),
            3u64.into(),
            12u64.into(),
            10u64.into(),
        ],
    );
    let attrs = ConvAttrs {
        kernel_shape: vec![3, 3],
        pads: vec![1, 1, 1, 1],
        group: 1,
        ..Default::default()
    };
    let c = conv(&mut b, x, 3, 8, 3, attrs, 1);
    let r = b.op("relu", Op::Relu, &[c]);
    b.output(r);
    let mut g = b.build().unwrap();
    trtc_ir::pixels::u8_nhwc_input(&mut g, [120.0, 110.0, 100.0], [60.0, 50.0, 40.0]).unwrap();
    g
}

/// The pixels kernel in every configuration: one `pixels` layer, no boundary conversion of
/// the input, and tract's numbers.
#[test]
#[ignore = "needs a CUDA GPU"]
fn u8_input_runs_as_one_pixels_kernel_and_matches_tract() {
    let g = u8_conv_model();
    let inputs = vec![random_bytes(&[2, 12, 10, 3], 7)];
    for (precision, layout, tolerance) in CONFIGS {
        let what = format!("{precision:?} {layout:?}");
        let (rel, model) = gpu_vs_tract_model(&g, inputs.clone(), &opts_for(precision, layout));
        assert!(rel <= tolerance, "{what}: relative error {rel}");
        let kinds: Vec<&str> = model
            .profile(inputs.clone())
            .unwrap()
            .into_iter()
            .map(|(_, t)| t.kind)
            .collect();
        assert_eq!(
            kinds.iter().filter(|k| **k == "pixels").count(),
            1,
            "{what}: {kinds:?}"
        );
        assert_eq!(kinds[0], "pixels", "{what}: {kinds:?}");
        assert!(!kinds.contains(&"transpose"), "{what}: {kinds:?}");
    }
}

/// A Cast of u8 pixels alone (no transpose after it: the `[N,H,W,C]` values, stored NHWC
/// in an NHWC engine) and a batch of one.
#[test]
#[ignore = "needs a CUDA GPU"]
fn a_cast_of_pixels_alone_matches_tract() {
    let mut b = GraphBuilder::new();
    let x = b.input_with(
        "px",
        DType::U8,
        vec![Dim::Sym("N".into()), 5u64.into(), 7u64.into(), 3u64.into()],
    );
    let f = b.op("f", Op::Cast { to: DType::F32 }, &[x]);
    let half = b.constant("half", tensor0(0.5f32));
    let m = b.op("m", Op::Mul, &[f, half]);
    let r = b.op("r", Op::Sigmoid, &[m]);
    b.output(r);
    let g = b.build().unwrap();
    for batch in [1, 3] {
        let inputs = vec![random_bytes(&[batch, 5, 7, 3], batch as u64)];
        for (precision, layout, tolerance) in CONFIGS {
            let opts = opts_for(precision, layout);
            let rel = gpu_vs_tract_with(&g, inputs.clone(), &opts);
            assert!(rel <= tolerance, "{precision:?} {layout:?}: {rel}");
        }
    }
}

/// EfficientNet-Lite0 compiled with `--input-format u8-nhwc` as one CUDA engine: its
/// logits on pixels match the f32 model's on the host-normalized pixels (tract), top-1
/// included; `run_device` takes 1 byte per pixel; f32 data is refused naming the types.
#[test]
#[ignore = "needs a CUDA GPU"]
fn efficientnet_u8_engine_matches_the_f32_model() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/efficientnet_lite0.onnx");
    let g = trtc_ir::load_model(&path).unwrap();
    let reference = CpuModel::new(&g).unwrap();
    for (precision, layout, tolerance) in CONFIGS {
        let what = format!("{precision:?} {layout:?}");
        let opts = CompileOptions {
            input_format: InputFormat::parse("u8-nhwc").unwrap(),
            ..opts_for(precision, layout)
        };
        let plan = compile("efficientnet", g.clone(), &opts, &trtc_cuda::CudaBuilder).unwrap();
        assert!(plan.report.fallback.is_empty(), "{what}: {}", plan.report);
        assert_eq!(plan.partition.segments.len(), 1, "{what}: {}", plan.report);
        let model = HybridModel::from_plan(&plan, &trtc_cuda::CudaBuilder).unwrap();
        let pixels = random_bytes(&[2, 224, 224, 3], 11);
        let px: Vec<u8> = pixels
            .to_plain_array_view::<u8>()
            .unwrap()
            .iter()
            .copied()
            .collect();
        let px = px.as_slice();
        let mut norm = vec![0f32; px.len()];
        for (i, &p) in px.iter().enumerate() {
            let (c, pix) = (i % 3, i / 3);
            let (n, hw) = (pix / (224 * 224), pix % (224 * 224));
            norm[(n * 3 + c) * 224 * 224 + hw] = (p as f32 - 127.0) / 128.0;
        }
        let f32_in = Tensor::from_shape(&[2, 3, 224, 224], &norm).unwrap();
        let want = reference.run(vec![f32_in.clone()]).unwrap();
        let got = model.run(vec![pixels.clone()]).unwrap();
        let (_, rel) = compare(&want, &got).unwrap();
        assert!(rel <= tolerance.max(2e-3), "{what}: relative error {rel}");
        let floats = |t: &Tensor| trtc_ir::tensor::tensor_to_f32s(t).unwrap();
        let (w, o) = (floats(&want[0]), floats(&got[0]));
        let (w, o) = (w.as_slice(), o.as_slice());
        for b in 0..2 {
            let top = |v: &[f32]| {
                (0..1000)
                    .max_by(|&i, &j| v[b * 1000 + i].total_cmp(&v[b * 1000 + j]))
                    .unwrap()
            };
            assert_eq!(top(w), top(o), "{what}: top-1 of image {b}");
        }
        let e = model.run(vec![f32_in]).unwrap_err().to_string();
        assert!(
            e.contains("input `input`") && e.contains("expected u8"),
            "{e}"
        );

        // Device buffers: the pixels as 1 byte each.
        let ctx = trtc_cuda::cuda_context().unwrap();
        let s = ctx.new_stream().unwrap();
        let d_x = s.clone_htod(px).unwrap();
        let d_y = s.alloc_zeros::<f32>(2000).unwrap();
        s.synchronize().unwrap();
        let x_buf = DeviceBuffer {
            ptr: d_x.device_ptr(&s).0,
            bytes: px.len(),
        };
        let y_buf = DeviceBuffer {
            ptr: d_y.device_ptr(&s).0,
            bytes: 2000 * 4,
        };
        let shapes = vec![vec![2, 224, 224, 3]];
        unsafe { model.run_device(&shapes, &[x_buf], &[y_buf]) }.unwrap();
        let dev = s.clone_dtoh(&d_y).unwrap();
        assert_eq!(dev.as_slice(), o, "{what}: run_device gives what run gives");
        // Pipelined from host bytes (1 byte a pixel through the pinned staging).
        let mut piped = vec![];
        let report = model
            .run_pipelined(&shapes, [[pixels.clone()], [pixels.clone()]], 2, |_, r| {
                piped.push(r.unwrap())
            })
            .unwrap();
        assert_eq!(report.sequential_because, None, "{what}");
        assert_eq!(piped.len(), 2, "{what}");
        for outs in &piped {
            assert_eq!(outs[0], got[0], "{what}: pipelined gives what run gives");
        }
        let f32_sized = DeviceBuffer {
            bytes: px.len() * 4,
            ..x_buf
        };
        let e = unsafe { model.run_device(&shapes, &[f32_sized], &[y_buf]) }
            .unwrap_err()
            .to_string();
        assert!(e.contains("input 0") && e.contains("u8"), "{e}");
    }
}
