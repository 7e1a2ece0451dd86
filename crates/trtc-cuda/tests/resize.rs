//! Resize / Upsample and ConvTranspose on the GPU against tract: PyTorch's nearest (x2,
//! asymmetric floor), non-integer sizes, bilinear under each coordinate transform,
//! Upsample and opset 10's Resize; ConvTranspose as U-Net (2x2 stride 2), DCGAN (4x4
//! stride 2 pad 1) and with output_padding, groups, depthwise, dilation, with and without
//! bias, odd channel counts. Every case in fp32 NCHW, fp32 NHWC (1e-5 relative) and fp16
//! (1e-2). Run on a GPU machine: `cargo test -p trtc-cuda --test gpu resize:: -- --ignored`.

use crate::common::*;
use trtc_ir::tract_onnx::pb::AttributeProto;
use trtc_ir::Tensor;

const FP32_EXACT: f32 = 1e-5;

/// What, input dims but the batch, scales, sizes, attributes.
type ResizeCase<'a> = (
    &'a str,
    [u64; 3],
    Option<&'a [f32]>,
    Option<&'a [i64]>,
    Vec<AttributeProto>,
);
/// What, input dims but the batch, weight dims, bias, attributes.
type DeconvCase<'a> = (&'a str, [u64; 3], [usize; 4], bool, Vec<AttributeProto>);

fn text(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: 3,
        s: v.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: 7,
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn other(op_type: &str, attributes: Vec<AttributeProto>) -> Op {
    Op::Other(trtc_ir::op::OtherOp {
        op_type: op_type.into(),
        domain: String::new(),
        attributes,
    })
}

fn input(b: &mut GraphBuilder, c: u64, h: u64, w: u64) -> Outlet {
    b.input_with(
        "x",
        trtc_ir::DType::F32,
        vec!["N".into(), c.into(), h.into(), w.into()],
    )
}

/// An input of batch 2: constant sizes fix the batch (a model whose shapes the caller
/// specialized before the engine was built).
fn input_of_2(b: &mut GraphBuilder, c: u64, h: u64, w: u64) -> Outlet {
    b.input("x", &[2, c as usize, h as usize, w as usize])
}

/// `g` on the GPU in every configuration (fp32 within `FP32_EXACT`), against `reference`
/// on tract (a graph computing the same; `g` itself where tract runs it).
fn check(g: &Graph, reference: &Graph, x: Tensor, what: &str) {
    let want = CpuModel::new(reference)
        .unwrap()
        .run(vec![x.clone()])
        .unwrap();
    for (precision, layout, tolerance) in CONFIGS {
        let tolerance = tolerance.min(if precision == Precision::Fp16 {
            1.0
        } else {
            FP32_EXACT
        });
        let p = partition(
            g,
            &CudaOpTable,
            &PartitionOptions {
                min_segment_size: 1,
                deny_ops: vec![],
                use_gpu: true,
            },
        )
        .unwrap();
        assert!(
            p.segments.iter().all(|s| s.backend == SegmentBackend::Gpu),
            "{what}: all on the GPU: {:?}",
            p.fallback
        );
        let model =
            HybridModel::new(g, &p, &opts_for(precision, layout), &trtc_cuda::CudaBuilder).unwrap();
        let out = model.run(vec![x.clone()]).unwrap();
        let (abs, rel) = compare(&want, &out).unwrap();
        eprintln!("{what}, {precision:?} {layout:?}: max abs {abs:e}, rel {rel:e}");
        assert!(
            rel <= tolerance,
            "{what}, {precision:?} {layout:?}: relative error {rel} over {tolerance}"
        );
    }
}

/// A Resize (opset 13 inputs) of an `[N, c, h, w]` input by constant scales or sizes, then
/// a Relu (a second node of the segment).
fn resize_graph(
    [c, h, w]: [u64; 3],
    scales: Option<&[f32]>,
    sizes: Option<&[i64]>,
    attrs: Vec<AttributeProto>,
) -> Graph {
    let mut b = GraphBuilder::new();
    let x = match sizes {
        Some(_) => input_of_2(&mut b, c, h, w),
        None => input(&mut b, c, h, w),
    };
    let s = scales.map(|v| b.constant("s", Tensor::from_shape(&[v.len()], v).unwrap()));
    let z = sizes.map(|v| b.constant("z", Tensor::from_shape(&[v.len()], v).unwrap()));
    let r = b.op_n("r", other("Resize", attrs), &[Some(x), None, s, z], 1)[0];
    let y = b.op("relu", Op::Relu, &[r]);
    b.output(y);
    b.build().unwrap()
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn resizes_match_tract() {
    let asym = || text("coordinate_transformation_mode", "asymmetric");
    let linear = || text("mode", "linear");
    let coord = |m: &str| text("coordinate_transformation_mode", m);
    let cases: Vec<ResizeCase> = vec![
        (
            "nearest x2 (PyTorch)",
            [3, 5, 6],
            Some(&[1., 1., 2., 2.]),
            None,
            vec![asym(), text("nearest_mode", "floor")],
        ),
        (
            "nearest 7x9 -> 16x20 by sizes",
            [5, 7, 9],
            None,
            Some(&[2, 5, 16, 20]),
            vec![],
        ),
        (
            "nearest 7x9 -> 16x20, round_prefer_ceil",
            [5, 7, 9],
            None,
            Some(&[2, 5, 16, 20]),
            vec![text("nearest_mode", "round_prefer_ceil")],
        ),
        (
            "nearest x0.6 x0.75, ceil, asymmetric",
            [4, 10, 8],
            Some(&[1., 1., 0.6, 0.75]),
            None,
            vec![asym(), text("nearest_mode", "ceil")],
        ),
        (
            "nearest x3, tf_half_pixel_for_nn",
            [3, 4, 5],
            Some(&[1., 1., 3., 3.]),
            None,
            vec![coord("tf_half_pixel_for_nn")],
        ),
        (
            "bilinear half_pixel x2",
            [3, 5, 6],
            Some(&[1., 1., 2., 2.]),
            None,
            vec![linear()],
        ),
        (
            "bilinear half_pixel 7x9 -> 16x20",
            [5, 7, 9],
            None,
            Some(&[2, 5, 16, 20]),
            vec![linear()],
        ),
        (
            "bilinear pytorch_half_pixel x2",
            [3, 5, 6],
            Some(&[1., 1., 2., 2.]),
            None,
            vec![linear(), coord("pytorch_half_pixel")],
        ),
        (
            "bilinear align_corners 7x9 -> 16x20",
            [5, 7, 9],
            None,
            Some(&[2, 5, 16, 20]),
            vec![linear(), coord("align_corners")],
        ),
        (
            "bilinear asymmetric x1.5",
            [3, 6, 6],
            Some(&[1., 1., 1.5, 1.5]),
            None,
            vec![linear(), asym()],
        ),
        (
            "bilinear half_pixel_symmetric 7x9 -> 16x20",
            [5, 7, 9],
            None,
            Some(&[2, 5, 16, 20]),
            vec![linear(), coord("half_pixel_symmetric")],
        ),
        (
            "bilinear half_pixel downsample 10x8 -> 4x6",
            [3, 10, 8],
            None,
            Some(&[2, 3, 4, 6]),
            vec![linear()],
        ),
    ];
    for (what, dims, scales, sizes, attrs) in cases {
        let g = resize_graph(dims, scales, sizes, attrs);
        let [c, h, w] = dims.map(|v| v as usize);
        check(&g, &g, random_tensor(&[2, c, h, w], 3), what);
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn upsample_and_opset_10_resize_match_their_opset_13_forms() {
    // Upsample (which tract does not run) against Resize asymmetric floor / linear.
    for mode in ["nearest", "linear"] {
        let mut b = GraphBuilder::new();
        let x = input(&mut b, 3, 4, 5);
        let s = b.constant("s", Tensor::from_shape(&[4], &[1f32, 1., 2., 3.]).unwrap());
        let u = b.op("u", other("Upsample", vec![text("mode", mode)]), &[x, s]);
        let y = b.op("relu", Op::Relu, &[u]);
        b.output(y);
        let g = b.build().unwrap();
        let reference = resize_graph(
            [3, 4, 5],
            Some(&[1., 1., 2., 3.]),
            None,
            vec![
                text("mode", mode),
                text("coordinate_transformation_mode", "asymmetric"),
                text("nearest_mode", "floor"),
            ],
        );
        check(
            &g,
            &reference,
            random_tensor(&[2, 3, 4, 5], 4),
            &format!("Upsample {mode}"),
        );
    }
    // Opset 10's Resize (X, scales): asymmetric, tract runs it.
    for mode in ["nearest", "linear"] {
        let mut b = GraphBuilder::new();
        let x = input(&mut b, 3, 4, 5);
        let s = b.constant("s", Tensor::from_shape(&[4], &[1f32, 1., 2., 2.]).unwrap());
        let r = b.op("r", other("Resize", vec![text("mode", mode)]), &[x, s]);
        let y = b.op("relu", Op::Relu, &[r]);
        b.output(y);
        let mut g = b.build().unwrap();
        g.meta.opset_imports = vec![(String::new(), 10)];
        trtc_ir::infer_shapes(&mut g).unwrap();
        check(
            &g,
            &g,
            random_tensor(&[2, 3, 4, 5], 5),
            &format!("opset-10 Resize {mode}"),
        );
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn resize_between_convs_with_odd_channels_matches_tract() {
    // NHWC engines keep the tensors around the resize NHWC.
    let mut b = GraphBuilder::new();
    let x = input_of_2(&mut b, 3, 6, 7);
    let attrs = ConvAttrs {
        kernel_shape: vec![3, 3],
        pads: vec![1, 1, 1, 1],
        group: 1,
        ..Default::default()
    };
    let c1 = conv(&mut b, x, 3, 5, 3, attrs.clone(), 1);
    let sizes = b.constant("z", Tensor::from_shape(&[4], &[2i64, 5, 13, 15]).unwrap());
    let r = b.op_n(
        "r",
        other("Resize", vec![text("mode", "linear")]),
        &[Some(c1), None, None, Some(sizes)],
        1,
    )[0];
    let c2 = conv(&mut b, r, 5, 3, 3, attrs, 2);
    b.output(c2);
    let g = b.build().unwrap();
    check(
        &g,
        &g,
        random_tensor(&[2, 3, 6, 7], 6),
        "conv, resize, conv",
    );
}

/// A ConvTranspose `ct` of an `[N, c, h, w]` input with weights `w` (and a bias), then a
/// Relu.
fn deconv_graph(
    [c, h, wd]: [u64; 3],
    w: [usize; 4],
    bias: bool,
    attrs: Vec<AttributeProto>,
) -> Graph {
    let mut b = GraphBuilder::new();
    let x = input(&mut b, c, h, wd);
    let wt = b.constant("w", random_tensor(&w, 7));
    let mut ins = vec![x, wt];
    if bias {
        let g = attrs
            .iter()
            .find(|a| a.name == "group")
            .map_or(1, |a| a.i as usize);
        ins.push(b.constant("b", random_tensor(&[w[1] * g], 8)));
    }
    let ct = b.op("ct", other("ConvTranspose", attrs), &ins);
    let y = b.op("relu", Op::Relu, &[ct]);
    b.output(y);
    b.build().unwrap()
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn transposed_convolutions_match_tract() {
    let s2 = || ints("strides", &[2, 2]);
    let p1 = || ints("pads", &[1, 1, 1, 1]);
    let group = |g: i64| AttributeProto {
        name: "group".into(),
        r#type: 2,
        i: g,
        ..Default::default()
    };
    let cases: Vec<DeconvCase> = vec![
        (
            "U-Net 2x2 stride 2",
            [16, 6, 7],
            [16, 8, 2, 2],
            true,
            vec![s2()],
        ),
        (
            "U-Net 2x2 stride 2, no bias",
            [16, 6, 7],
            [16, 8, 2, 2],
            false,
            vec![s2()],
        ),
        (
            "DCGAN 4x4 stride 2 pad 1",
            [8, 5, 5],
            [8, 4, 4, 4],
            false,
            vec![s2(), p1()],
        ),
        (
            "DCGAN 4x4 stride 2 pad 1, bias",
            [8, 5, 5],
            [8, 4, 4, 4],
            true,
            vec![s2(), p1()],
        ),
        (
            "3x3 stride 2 pad 1 output_padding 1",
            [6, 5, 4],
            [6, 4, 3, 3],
            true,
            vec![s2(), p1(), ints("output_padding", &[1, 1])],
        ),
        (
            "grouped (2)",
            [8, 5, 5],
            [8, 3, 3, 3],
            true,
            vec![s2(), group(2)],
        ),
        (
            "depthwise",
            [8, 5, 5],
            [8, 1, 3, 3],
            false,
            vec![s2(), p1(), group(8)],
        ),
        (
            "dilated, asymmetric pads",
            [3, 5, 6],
            [3, 5, 3, 3],
            true,
            vec![ints("dilations", &[2, 2]), ints("pads", &[0, 1, 1, 0])],
        ),
        (
            "odd channels 3 -> 5",
            [3, 5, 5],
            [3, 5, 3, 3],
            true,
            vec![s2(), p1()],
        ),
        (
            "odd channels 5 -> 3",
            [5, 4, 6],
            [5, 3, 4, 4],
            true,
            vec![s2(), p1()],
        ),
    ];
    for (what, dims, w, bias, attrs) in cases {
        let g = deconv_graph(dims, w, bias, attrs);
        let [c, h, wd] = dims.map(|v| v as usize);
        check(&g, &g, random_tensor(&[2, c, h, wd], 9), what);
    }
}
