//! CPU tests of the data-movement families (`data_movement.rs`, `pad_tile.rs`): what the
//! table accepts and refuses, that accepted nodes lower in every configuration, and that
//! the lowered strided read (run on the host as the kernel runs it) gives tract's values
//! in every storage layout.

use super::super::tests::{accepted_nodes_lower, graph_of, node, opts, reason, CONFIGS};
use crate::ops::lower_segment;
use crate::program::gather::tests::run_kernel;
use crate::program::host::{decode_f32, nchw_to_nhwc};
use crate::program::Step;
use trtc_engine::FallbackReason;
use trtc_ir::op::OtherOp;
use trtc_ir::tensor::tensor_to_f32s;
use trtc_ir::tract_onnx::pb::AttributeProto;
use trtc_ir::tract_onnx::prelude::{tensor0, Tensor};
use trtc_ir::{subgraph_io, DType, Graph, GraphBuilder, Op, Outlet};
use trtc_optimizer::verify::random_tensor;

fn other(op_type: &str, attributes: Vec<AttributeProto>) -> Op {
    Op::Other(OtherOp {
        op_type: op_type.into(),
        domain: String::new(),
        attributes,
    })
}

fn text(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: 3,
        s: v.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: 2,
        i: v,
        ..Default::default()
    }
}

fn i64s(b: &mut GraphBuilder, name: &str, v: &[i64]) -> Outlet {
    b.constant(name, Tensor::from_shape(&[v.len()], v).unwrap())
}

/// Slice of x by starts, ends, axes, steps.
fn slice(b: &mut GraphBuilder, x: Outlet, s: &[i64], e: &[i64], a: &[i64], st: &[i64]) -> Outlet {
    let (s, e) = (i64s(b, "starts", s), i64s(b, "ends", e));
    let (a, st) = (i64s(b, "axes", a), i64s(b, "steps", st));
    b.op("op", Op::Slice, &[x, s, e, a, st])
}

/// Node "op" of `g` (one input x of `[2, ...dims]`) lowered alone in every configuration:
/// its strided read, run on the host as the kernel runs it, against tract.
fn matches_tract(g: &Graph, dims: &[usize]) {
    let id = node(g, "op");
    let mut shape = vec![2usize];
    shape.extend(dims);
    let input = random_tensor(&shape, 5);
    let want = trtc_ir::CpuModel::new(g)
        .unwrap()
        .run(vec![input.clone()])
        .unwrap();
    let want = tensor_to_f32s(&want[0]).unwrap();
    let ys = want_shape(g);
    let xv = tensor_to_f32s(&input).unwrap();
    for (precision, layout) in CONFIGS {
        let io = subgraph_io(g, &[id]).unwrap();
        let p = lower_segment(g, &[id], &io, &opts(precision, layout)).unwrap();
        let Some(Step::Gather { x, y, plan }) =
            p.steps.iter().find(|s| matches!(s, Step::Gather { .. }))
        else {
            panic!("no gather step");
        };
        let (x_nhwc, y_nhwc) = (p.slots[*x].nhwc, p.slots[*y].nhwc);
        let k = plan.kernel_dims(&shape, x_nhwc, y_nhwc, 2).unwrap();
        let table: Vec<i32> = plan
            .table
            .map(|t| {
                decode_f32(&p.weights[t.0])
                    .iter()
                    .map(|f| f.to_bits() as i32)
                    .collect()
            })
            .unwrap_or_default();
        let x_st = if x_nhwc {
            nchw_to_nhwc(&xv, [shape[0], shape[1], shape[2], shape[3]])
        } else {
            xv.clone()
        };
        let got = run_kernel(&k, plan.mode, plan.value, &table, &x_st);
        let want_st = if y_nhwc {
            nchw_to_nhwc(&want, [ys[0], ys[1], ys[2], ys[3]])
        } else {
            want.clone()
        };
        assert_eq!(
            got, want_st,
            "{precision:?} {layout:?} (x NHWC {x_nhwc}, y NHWC {y_nhwc})"
        );
    }
}

fn want_shape(g: &Graph) -> Vec<usize> {
    let s = g.node(node(g, "op")).outputs[0].shape.clone().unwrap();
    s.iter()
        .map(|d| d.known().map(|v| v as usize).unwrap_or(2))
        .collect()
}

#[test]
fn slices_are_accepted_lowered_and_read_what_tract_reads() {
    // (input shape, starts, ends, axes, steps)
    type SliceCase<'a> = (&'a [usize], &'a [i64], &'a [i64], &'a [i64], &'a [i64]);
    let cases: [SliceCase; 6] = [
        // ShuffleNet's split halves of the channels.
        (&[8, 3, 5], &[0], &[4], &[1], &[1]),
        (&[8, 3, 5], &[4], &[i64::MAX], &[1], &[1]),
        // YOLO's focus: every other row and column.
        (&[3, 6, 8], &[1, 0], &[i64::MAX, i64::MAX], &[2, 3], &[2, 2]),
        // ViT's class token x[:, 0:1] of [N, 5, 8]; a reversed last dim.
        (&[5, 8], &[0], &[1], &[1], &[1]),
        (&[5, 8], &[-1], &[i64::MIN], &[-1], &[-1]),
        // The batch sliced as a whole, with a negative start on a 5-D tensor.
        (&[2, 3, 4, 5], &[0, -3], &[i64::MAX, -1], &[0, 3], &[1, 1]),
    ];
    for (dims, s, e, a, st) in cases {
        let g = graph_of(dims, |b, x| slice(b, x, s, e, a, st));
        assert_eq!(
            accepted_nodes_lower(&g),
            1,
            "slice {s:?}..{e:?} axes {a:?} of {dims:?}"
        );
        matches_tract(&g, dims);
    }
    // The batch sliced.
    let g = graph_of(&[4], |b, x| slice(b, x, &[0], &[1], &[0], &[1]));
    assert!(
        matches!(reason(&g, "op"), Some(FallbackReason::UnsupportedAttribute(d)) if d.contains("batch"))
    );
    // A step of 0; computed starts.
    let g = graph_of(&[4], |b, x| slice(b, x, &[0], &[1], &[1], &[0]));
    assert!(reason(&g, "op").is_some());
}

#[test]
fn gathers_squeezes_and_casts_are_accepted_and_lowered() {
    // Gather on the last axis (scalar, evenly spaced and arbitrary indices), and axis 1.
    let cases: [(&[usize], i64, Tensor); 4] = [
        (&[4, 3, 5], -1, tensor0(2i64)),
        (
            &[4, 3, 5],
            3,
            Tensor::from_shape(&[3], &[4i64, 2, 0]).unwrap(),
        ),
        (
            &[4, 3, 5],
            1,
            Tensor::from_shape(&[4], &[3i64, 0, -1, 3]).unwrap(),
        ),
        (&[6, 8], 1, tensor0(0i64)),
    ];
    for (dims, axis, idx) in cases {
        let g = graph_of(dims, |b, x| {
            let i = b.constant("i", idx.clone());
            b.op("op", Op::Gather { axis }, &[x, i])
        });
        assert_eq!(
            accepted_nodes_lower(&g),
            1,
            "gather {idx:?} on axis {axis} of {dims:?}"
        );
        matches_tract(&g, dims);
    }
    let g = graph_of(&[4], |b, x| {
        let i = b.constant("i", tensor0(0i64));
        b.op("op", Op::Gather { axis: 0 }, &[x, i])
    });
    assert!(
        matches!(reason(&g, "op"), Some(FallbackReason::UnsupportedAttribute(d)) if d.contains("batch"))
    );
    // Unsqueeze -> Squeeze round trips, of 3-D and 4-D tensors; Cast to f16 and back.
    for (dims, axis) in [
        (&[4usize, 5][..], 2i64),
        (&[4, 5, 6][..], -1),
        (&[1, 5, 6][..], 1),
    ] {
        let g = graph_of(dims, |b, x| {
            let a = i64s(b, "a", &[axis]);
            let u = b.op("u", Op::Unsqueeze, &[x, a]);
            let h = b.op("h", Op::Cast { to: DType::F16 }, &[u]);
            let f = b.op("f", Op::Cast { to: DType::F32 }, &[h]);
            let a2 = i64s(b, "a2", &[axis]);
            b.op("s", Op::Squeeze, &[f, a2])
        });
        assert_eq!(
            accepted_nodes_lower(&g),
            4,
            "unsqueeze/squeeze {axis} of {dims:?}"
        );
    }
    let g = graph_of(&[4], |b, x| {
        let a = i64s(b, "a", &[0]);
        b.op("u", Op::Unsqueeze, &[x, a])
    });
    assert!(reason(&g, "u").is_some());
    let g = graph_of(&[4], |b, x| b.op("c", Op::Cast { to: DType::I64 }, &[x]));
    assert!(matches!(
        reason(&g, "c"),
        Some(FallbackReason::UnsupportedDtype(_))
    ));
}

#[test]
fn pads_expands_and_tiles_are_accepted_lowered_and_read_what_tract_reads() {
    let pad = |mode: &str, pads: &'static [i64], value: Option<f32>| {
        let mode = mode.to_string();
        move |b: &mut GraphBuilder, x: Outlet| {
            let p = i64s(b, "pads", pads);
            let v = value.map(|v| b.constant("v", tensor0(v)));
            b.op_n("op", Op::Pad { mode }, &[Some(x), Some(p), v], 1)[0]
        }
    };
    let dims = [3usize, 5, 6];
    for (mode, pads, value) in [
        ("constant", &[0i64, 0, 1, 2, 0, 0, 2, 1][..], Some(1.5f32)),
        ("constant", &[0, 0, 0, 1, 0, 0, 0, 1][..], None),
        ("reflect", &[0, 0, 2, 1, 0, 0, 1, 2][..], None),
        ("edge", &[0, 1, 3, 3, 0, 2, 0, 1][..], None),
    ] {
        let pads: &'static [i64] = Box::leak(pads.to_vec().into_boxed_slice());
        let g = graph_of(&dims, pad(mode, pads, value));
        assert_eq!(accepted_nodes_lower(&g), 1, "pad {mode} {pads:?}");
        matches_tract(&g, &dims);
    }
    for (mode, pads) in [
        ("constant", &[1i64, 0, 0, 0, 0, 0, 0, 0][..]),
        ("constant", &[0, 0, -1, 0, 0, 0, 0, 0][..]),
        ("reflect", &[0, 0, 5, 0, 0, 0, 0, 0][..]),
        ("wrap", &[0, 0, 1, 1, 0, 0, 1, 1][..]),
    ] {
        let pads: &'static [i64] = Box::leak(pads.to_vec().into_boxed_slice());
        let g = graph_of(&dims, pad(mode, pads, None));
        assert!(reason(&g, "op").is_some(), "pad {mode} {pads:?} refused");
    }
    // Expand [N, 3, 1, 6] to [N, 3, 4, 6]; Tile by [1, 2, 1, 3].
    let dims = [3usize, 1, 6];
    let g = graph_of(&dims, |b, x| {
        let s = i64s(b, "s", &[1, 3, 4, 6]);
        b.op("op", other("Expand", vec![]), &[x, s])
    });
    assert_eq!(accepted_nodes_lower(&g), 1, "expand");
    matches_tract(&g, &dims);
    let g = graph_of(&dims, |b, x| {
        let r = i64s(b, "r", &[1, 2, 3, 1]);
        b.op("op", other("Tile", vec![]), &[x, r])
    });
    assert_eq!(accepted_nodes_lower(&g), 1, "tile");
    matches_tract(&g, &dims);
    let g = graph_of(&dims, |b, x| {
        let r = i64s(b, "r", &[2, 1, 1, 1]);
        b.op("op", other("Tile", vec![]), &[x, r])
    });
    assert!(reason(&g, "op").is_some(), "tiling the batch refused");
}

#[test]
fn depth_to_space_and_space_to_depth_are_accepted_lowered_and_read_what_tract_reads() {
    let dims = [8usize, 3, 4];
    for mode in ["DCR", "CRD"] {
        let g = graph_of(&dims, |b, x| {
            b.op(
                "op",
                other(
                    "DepthToSpace",
                    vec![int("blocksize", 2), text("mode", mode)],
                ),
                &[x],
            )
        });
        assert_eq!(accepted_nodes_lower(&g), 1, "DepthToSpace {mode}");
        assert_eq!(want_shape(&g), [2, 2, 6, 8]);
        matches_tract(&g, &dims);
    }
    let dims = [3usize, 4, 6];
    let g = graph_of(&dims, |b, x| {
        b.op("op", other("SpaceToDepth", vec![int("blocksize", 2)]), &[x])
    });
    assert_eq!(accepted_nodes_lower(&g), 1, "SpaceToDepth");
    assert_eq!(want_shape(&g), [2, 12, 2, 3]);
    matches_tract(&g, &dims);
    // Channels that the block does not divide.
    let g = graph_of(&[6, 3, 4], |b, x| {
        b.op("op", other("DepthToSpace", vec![int("blocksize", 2)]), &[x])
    });
    assert!(
        reason(&g, "op").is_some(),
        "{:?}",
        g.node(node(&g, "op")).outputs[0]
    );
}
