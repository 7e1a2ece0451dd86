//! The pixels family without a GPU: what the table accepts and the steps it lowers to.

use super::super::tests::{opts, CONFIGS};
use super::super::{lower_segment, CudaOpTable};
use crate::program::{Program, Step};
use trtc_engine::{Layout, OpSupport, Precision};
use trtc_ir::shape::shape_of;
use trtc_ir::tract_onnx::prelude::Tensor;
use trtc_ir::{subgraph_io, ConvAttrs, DType, Dim, Graph, GraphBuilder, NodeId, Op};
use trtc_optimizer::verify::random_tensor;

/// An f32 NCHW image model (a padded 3x3 conv, then ReLU) with its input made u8 NHWC.
fn u8_model(mean: [f32; 3], std: [f32; 3]) -> Graph {
    let mut b = GraphBuilder::new();
    let x = b.input_with(
        "image",
        DType::F32,
        vec![Dim::Sym("N".into()), 3u64.into(), 8u64.into(), 8u64.into()],
    );
    let w = b.constant("w", random_tensor(&[4, 3, 3, 3], 1));
    let conv = Op::Conv(ConvAttrs {
        kernel_shape: vec![3, 3],
        pads: vec![1, 1, 1, 1],
        group: 1,
        ..Default::default()
    });
    let c = b.op("conv", conv, &[x, w]);
    let r = b.op("relu", Op::Relu, &[c]);
    b.output(r);
    let mut g = b.build().unwrap();
    trtc_ir::pixels::u8_nhwc_input(&mut g, mean, std).unwrap();
    g
}

fn compute_nodes(g: &Graph) -> Vec<NodeId> {
    g.topo_order()
        .unwrap()
        .into_iter()
        .filter(|&id| !matches!(g.node(id).op, Op::Input | Op::Const(_)))
        .collect()
}

fn lower(g: &Graph, nodes: &[NodeId], precision: Precision, layout: Layout) -> Program {
    let io = subgraph_io(g, nodes).unwrap();
    lower_segment(g, nodes, &io, &opts(precision, layout)).unwrap()
}

fn pixel_steps(p: &Program) -> Vec<&Step> {
    p.steps
        .iter()
        .filter(|s| matches!(s, Step::Pixels { .. }))
        .collect()
}

#[test]
fn the_table_accepts_every_node_of_a_u8_model() {
    let g = u8_model([127.0; 3], [128.0; 3]);
    for id in compute_nodes(&g) {
        assert!(
            CudaOpTable.check(&g, id).is_ok(),
            "{} refused: {:?}",
            g.node(id).name,
            CudaOpTable.check(&g, id)
        );
    }
}

#[test]
fn cast_transpose_sub_div_lower_to_one_pixels_step_reading_the_u8_input() {
    let (mean, std) = ([120.0, 110.0, 100.0], [60.0, 50.0, 40.0]);
    let g = u8_model(mean, std);
    let nodes = compute_nodes(&g);
    for (precision, layout) in CONFIGS {
        let p = lower(&g, &nodes, precision, layout);
        let pixels = pixel_steps(&p);
        assert_eq!(pixels.len(), 1, "{precision:?} {layout:?}");
        let Step::Pixels {
            x,
            y,
            nchw,
            ops,
            params,
        } = &p.steps[0]
        else {
            panic!("the first step is not Pixels ({precision:?} {layout:?})");
        };
        let (x, y) = (*x, *y);
        assert_eq!(x, p.inputs[0]);
        assert!(p.slots[x].pixels && p.slots[x].elem_bytes() == 1);
        assert!(*nchw);
        assert_eq!(ops, &[2, 3]);
        let w = &p.weights[params.unwrap().0];
        let vals: Vec<f32> = w
            .chunks(4)
            .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!(vals, [120.0, 110.0, 100.0, 60.0, 50.0, 40.0]);
        assert_eq!(p.shape(y, 2), [2, 3, 8, 8]);
        assert_eq!(p.slots[y].half, precision == Precision::Fp16);
        // No boundary conversion of the input, no transpose or elementwise step left.
        assert!(!p.steps.iter().any(|s| matches!(
            s,
            Step::Transpose { .. } | Step::Binary { .. } | Step::Chain { .. }
        )));
        assert!(matches!(p.steps[1], Step::Conv { x: cx, .. } if cx == y));
    }
}

#[test]
fn a_cast_alone_is_a_pixels_step_of_nhwc_values() {
    let g = u8_model([127.0; 3], [128.0; 3]);
    let cast = g.find_node("image_to_float").unwrap();
    let p = lower(&g, &[cast], Precision::Fp32, Layout::Nchw);
    let Step::Pixels { nchw, ops, .. } = &p.steps[0] else {
        panic!("not a Pixels step");
    };
    assert!(!nchw && ops.is_empty());
    // The cast's output leaves the segment as f32 [N,8,8,3].
    assert_eq!(p.shape(p.outputs[0], 1), [1, 8, 8, 3]);
}

#[test]
fn a_transpose_outside_the_segment_or_a_constant_on_the_left_stays_out() {
    let g = u8_model([127.0; 3], [128.0; 3]);
    let nodes: Vec<NodeId> = compute_nodes(&g)
        .into_iter()
        .filter(|&id| g.node(id).name != "image_to_nchw")
        .collect();
    let p = lower(&g, &nodes, Precision::Fp16, Layout::Auto);
    let pixels = pixel_steps(&p);
    assert_eq!(pixels.len(), 1);
    assert!(matches!(pixels[0], Step::Pixels { nchw: false, ops, .. } if ops.is_empty()));

    // `mean - x` is not `x - mean`: the Sub stays a step of its own.
    let mut b = GraphBuilder::new();
    let x = b.input_with("px", DType::U8, shape_of(&[1, 4, 4, 3]));
    let f = b.op("f", Op::Cast { to: DType::F32 }, &[x]);
    let m = b.constant("m", Tensor::from_shape(&[3], &[1f32, 2., 3.]).unwrap());
    let s = b.op("s", Op::Sub, &[m, f]);
    b.output(s);
    let g = b.build().unwrap();
    let p = lower(&g, &compute_nodes(&g), Precision::Fp32, Layout::Nchw);
    assert_eq!(pixel_steps(&p).len(), 1);
    assert!(matches!(&p.steps[0], Step::Pixels { ops, .. } if ops.is_empty()));
    assert!(p
        .steps
        .iter()
        .any(|s| matches!(s, Step::Binary { .. } | Step::Chain { .. })));
}

#[test]
fn a_u8_input_of_too_many_channels_is_refused() {
    let mut b = GraphBuilder::new();
    let x = b.input_with("px", DType::U8, shape_of(&[1, 4, 4, 5]));
    let f = b.op("f", Op::Cast { to: DType::F32 }, &[x]);
    b.output(f);
    let g = b.build().unwrap();
    let id = g.find_node("f").unwrap();
    assert!(CudaOpTable.check(&g, id).is_err());
}

/// EfficientNet-Lite0 with its input made u8 NHWC, optimized as `trtc compile` does: the
/// table takes every node, and the whole model lowers with the pixels as its first step.
#[test]
fn efficientnet_with_a_u8_input_lowers_with_one_pixels_step_first() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/efficientnet_lite0.onnx");
    let mut g = trtc_ir::load_model(&path).unwrap();
    trtc_ir::pixels::u8_nhwc_input(&mut g, [127.0; 3], [128.0; 3]).unwrap();
    trtc_optimizer::Pipeline::default_pipeline()
        .run(&mut g)
        .unwrap();
    let nodes = compute_nodes(&g);
    for &id in &nodes {
        assert!(
            CudaOpTable.check(&g, id).is_ok(),
            "{} refused",
            g.node(id).name
        );
    }
    for (precision, layout) in CONFIGS {
        let p = lower(&g, &nodes, precision, layout);
        assert_eq!(pixel_steps(&p).len(), 1, "{precision:?} {layout:?}");
        assert!(
            matches!(&p.steps[0], Step::Pixels { nchw: true, ops, .. } if ops == &[2, 3]),
            "{precision:?} {layout:?}"
        );
        assert!(p.slots[p.inputs[0]].pixels);
    }
}
