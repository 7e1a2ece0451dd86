//! Data movement on the GPU against tract: ShuffleNet's channel split (two Slices of a
//! conv's output, a conv each, Concat), YOLO's step-2 spatial slices, ViT's class token,
//! Gather on the last axis and on axis 1 (scalar, evenly spaced and arbitrary indices),
//! Unsqueeze -> Squeeze round trips, Cast to f16 and back, Pad (constant, reflect, edge)
//! around convs, Expand and Tile, DepthToSpace (DCR, CRD) and SpaceToDepth between convs.
//! Every case in fp32 NCHW, fp32 NHWC (1e-4 relative) and fp16 (1e-2); a failure names
//! the case, the configuration, and the first elements that differ.
//! Run on a GPU machine: `cargo test -p trtc-cuda --test gpu data_movement:: -- --ignored`.

use crate::common::*;
use trtc_ir::tensor::tensor_to_f32s;
use trtc_ir::tract_onnx::prelude::Tensor;

fn i64s(b: &mut GraphBuilder, name: &str, v: &[i64]) -> Outlet {
    b.constant(name, Tensor::from_shape(&[v.len()], v).unwrap())
}

fn other(op_type: &str) -> Op {
    Op::Other(trtc_ir::op::OtherOp {
        op_type: op_type.into(),
        domain: String::new(),
        attributes: vec![],
    })
}

fn input(b: &mut GraphBuilder, dims: &[u64]) -> Outlet {
    let mut shape: Vec<trtc_ir::Dim> = vec!["N".into()];
    shape.extend(dims.iter().map(|&d| d.into()));
    b.input_with("x", trtc_ir::DType::F32, shape)
}

fn slice(
    b: &mut GraphBuilder,
    name: &str,
    x: Outlet,
    s: &[i64],
    e: &[i64],
    a: &[i64],
    st: &[i64],
) -> Outlet {
    let (s, e) = (
        i64s(b, &format!("{name}_s"), s),
        i64s(b, &format!("{name}_e"), e),
    );
    let (a, st) = (
        i64s(b, &format!("{name}_a"), a),
        i64s(b, &format!("{name}_st"), st),
    );
    b.op(name, Op::Slice, &[x, s, e, a, st])
}

fn conv3(b: &mut GraphBuilder, x: Outlet, cin: usize, cout: usize, seed: u64) -> Outlet {
    let attrs = ConvAttrs {
        kernel_shape: vec![3, 3],
        pads: vec![1, 1, 1, 1],
        group: 1,
        ..Default::default()
    };
    conv(b, x, cin, cout, 3, attrs, seed)
}

/// Like `check_all_configs`, and on a failure the shape, the largest difference and the
/// first elements over the tolerance (index, GPU, tract).
fn check(g: &Graph, x: trtc_ir::Tensor, what: &str) {
    check_within(g, x, what, 0.0)
}

/// `check`, with every tolerance at least `floor`.
fn check_within(g: &Graph, x: trtc_ir::Tensor, what: &str, floor: f32) {
    for (precision, layout, tolerance) in CONFIGS {
        let tolerance = tolerance.max(floor);
        let opts = opts_for(precision, layout);
        let (rel, model) = gpu_vs_tract_model(g, vec![x.clone()], &opts);
        if rel <= tolerance {
            continue;
        }
        let want = CpuModel::new(g).unwrap().run(vec![x.clone()]).unwrap();
        let got = model.run(vec![x.clone()]).unwrap();
        let mut report = vec![];
        for (k, (w, o)) in want.iter().zip(&got).enumerate() {
            let (wv, ov) = (tensor_to_f32s(w).unwrap(), tensor_to_f32s(o).unwrap());
            let scale = wv.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
            let max = wv
                .iter()
                .zip(&ov)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            let bad: Vec<String> = wv
                .iter()
                .zip(&ov)
                .enumerate()
                .filter(|(_, (a, b))| (*a - *b).abs() > tolerance * scale)
                .take(8)
                .map(|(i, (a, b))| format!("[{i}] gpu {b} tract {a}"))
                .collect();
            report.push(format!(
                "output {k}: tract shape {:?}, gpu shape {:?}, max |diff| {max} (max |tract| {scale}), first over: {}",
                w.shape(),
                o.shape(),
                bad.join(", ")
            ));
        }
        panic!(
            "{what}, {precision:?} {layout:?}: relative error {rel} over {tolerance}\n{}",
            report.join("\n")
        );
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn shufflenet_channel_split_between_convs_matches_tract() {
    // conv(16 -> 16), x[:, :8] and x[:, 8:] each through a conv, Concat.
    let mut b = GraphBuilder::new();
    let x = input(&mut b, &[8, 6, 6]);
    let c = conv3(&mut b, x, 8, 16, 1);
    let lo = slice(&mut b, "lo", c, &[0], &[8], &[1], &[1]);
    let hi = slice(&mut b, "hi", c, &[8], &[i64::MAX], &[1], &[1]);
    let a = conv3(&mut b, lo, 8, 8, 2);
    let d = conv3(&mut b, hi, 8, 8, 3);
    let y = b.op("cat", Op::Concat { axis: 1 }, &[a, d]);
    b.output(y);
    check(
        &b.build().unwrap(),
        random_tensor(&[2, 8, 6, 6], 4),
        "channel split",
    );
    // An odd split (3 of 8 channels) straight to the output, and a Relu after.
    let mut b = GraphBuilder::new();
    let x = input(&mut b, &[8, 5, 7]);
    let c = conv3(&mut b, x, 8, 8, 1);
    let s = slice(&mut b, "s", c, &[5], &[8], &[-3], &[1]);
    let r = b.op("relu", Op::Relu, &[s]);
    b.output(r);
    check(
        &b.build().unwrap(),
        random_tensor(&[2, 8, 5, 7], 5),
        "channels 5..8",
    );
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn spatial_slices_and_class_tokens_match_tract() {
    // YOLO's focus: the four step-2 phases of H and W, concatenated on channels, a conv.
    let mut b = GraphBuilder::new();
    let x = input(&mut b, &[3, 8, 10]);
    let r = b.op("relu", Op::Relu, &[x]);
    let phases: Vec<Outlet> = [(0, 0), (1, 0), (0, 1), (1, 1)]
        .iter()
        .map(|&(h, w)| {
            slice(
                &mut b,
                &format!("p{h}{w}"),
                r,
                &[h, w],
                &[i64::MAX, i64::MAX],
                &[2, 3],
                &[2, 2],
            )
        })
        .collect();
    let cat = b.op("cat", Op::Concat { axis: 1 }, &phases);
    let y = conv3(&mut b, cat, 12, 8, 1);
    b.output(y);
    check(
        &b.build().unwrap(),
        random_tensor(&[2, 3, 8, 10], 6),
        "focus slices",
    );
    // A reversed W and a crop of H, straight after a conv.
    let mut b = GraphBuilder::new();
    let x = input(&mut b, &[4, 6, 6]);
    let c = conv3(&mut b, x, 4, 4, 1);
    let s = slice(&mut b, "s", c, &[1, -1], &[5, i64::MIN], &[2, 3], &[1, -1]);
    b.output(s);
    check(
        &b.build().unwrap(),
        random_tensor(&[2, 4, 6, 6], 7),
        "crop of H, W reversed",
    );
    // ViT's class token x[:, 0] of [N, 5, 8] as Gather, and x[:, 0:1] as Slice.
    let mut b = GraphBuilder::new();
    let x = input(&mut b, &[5, 8]);
    let r = b.op("relu", Op::Relu, &[x]);
    let i = b.constant("i", tensor0(0i64));
    let t = b.op("cls", Op::Gather { axis: 1 }, &[r, i]);
    b.output(t);
    let s = slice(&mut b, "s", r, &[0], &[1], &[1], &[1]);
    b.output(s);
    check(
        &b.build().unwrap(),
        random_tensor(&[2, 5, 8], 8),
        "class token",
    );
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn gathers_match_tract() {
    let cases: [(i64, Tensor); 4] = [
        (-1, tensor0(3i64)),
        (3, Tensor::from_shape(&[3], &[5i64, 3, 1]).unwrap()),
        (1, Tensor::from_shape(&[4], &[2i64, 0, -1, 2]).unwrap()),
        (1, tensor0(-2i64)),
    ];
    for (axis, idx) in cases {
        let mut b = GraphBuilder::new();
        let x = input(&mut b, &[4, 5, 6]);
        let c = conv3(&mut b, x, 4, 4, 1);
        let i = b.constant("i", idx.clone());
        let gth = b.op("g", Op::Gather { axis }, &[c, i]);
        let k = b.constant("k", tensor0(2f32));
        let y = b.op("scale", Op::Mul, &[gth, k]);
        b.output(y);
        check(
            &b.build().unwrap(),
            random_tensor(&[2, 4, 5, 6], 9),
            &format!("gather {idx:?} on axis {axis}"),
        );
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn unsqueeze_squeeze_and_cast_round_trips_match_tract() {
    // [N, 4, 5, 6] -> unsqueeze 2 -> [N, 4, 1, 5, 6] -> squeeze 2 -> conv; a 3-D
    // [N, 6, 7] made 4-D at the end, through a conv, and back; Cast to f16 and back.
    let mut b = GraphBuilder::new();
    let x = input(&mut b, &[4, 5, 6]);
    let c = conv3(&mut b, x, 4, 4, 1);
    let a = i64s(&mut b, "a", &[2]);
    let u = b.op("u", Op::Unsqueeze, &[c, a]);
    let a2 = i64s(&mut b, "a2", &[2]);
    let s = b.op("s", Op::Squeeze, &[u, a2]);
    let y = conv3(&mut b, s, 4, 4, 2);
    b.output(y);
    check(
        &b.build().unwrap(),
        random_tensor(&[2, 4, 5, 6], 10),
        "unsqueeze/squeeze 4-D",
    );
    // Cast to f16 and back inside the engine: no rounding in fp32 engines (the engine's
    // storage type is fixed), where tract rounds to f16: within f16's rounding of it.
    let mut b = GraphBuilder::new();
    let x = input(&mut b, &[4, 5, 6]);
    let c = conv3(&mut b, x, 4, 4, 1);
    let h = b.op(
        "h",
        Op::Cast {
            to: trtc_ir::DType::F16,
        },
        &[c],
    );
    let f = b.op(
        "f",
        Op::Cast {
            to: trtc_ir::DType::F32,
        },
        &[h],
    );
    let y = conv3(&mut b, f, 4, 4, 2);
    b.output(y);
    check_within(
        &b.build().unwrap(),
        random_tensor(&[2, 4, 5, 6], 10),
        "cast to f16 and back",
        2e-3,
    );
    let mut b = GraphBuilder::new();
    let x = input(&mut b, &[6, 7]);
    let r = b.op("relu", Op::Relu, &[x]);
    let a = i64s(&mut b, "a", &[-1]);
    let u = b.op("u", Op::Unsqueeze, &[r, a]);
    let c = conv3(&mut b, u, 6, 6, 3);
    let a2 = i64s(&mut b, "a2", &[3]);
    let s = b.op("s", Op::Squeeze, &[c, a2]);
    b.output(s);
    check(
        &b.build().unwrap(),
        random_tensor(&[2, 6, 7], 11),
        "unsqueeze -> conv -> squeeze",
    );
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn pads_around_convs_match_tract() {
    let cases: [(&str, &[i64], Option<f32>); 4] = [
        ("constant", &[0, 0, 1, 2, 0, 0, 2, 1], Some(0.5)),
        ("constant", &[0, 1, 0, 0, 0, 2, 0, 0], None),
        ("reflect", &[0, 0, 2, 1, 0, 0, 1, 2], None),
        ("edge", &[0, 0, 3, 0, 0, 0, 1, 3], None),
    ];
    for (mode, pads, value) in cases {
        let mut b = GraphBuilder::new();
        let x = input(&mut b, &[4, 6, 7]);
        let c = conv3(&mut b, x, 4, 4, 1);
        let p = i64s(&mut b, "pads", pads);
        let v = value.map(|v| b.constant("v", tensor0(v)));
        let padded = b.op_n(
            "pad",
            Op::Pad { mode: mode.into() },
            &[Some(c), Some(p), v],
            1,
        )[0];
        let cin = 4 + (pads[1] + pads[5]) as usize;
        let y = conv3(&mut b, padded, cin, 4, 2);
        b.output(y);
        check(
            &b.build().unwrap(),
            random_tensor(&[2, 4, 6, 7], 12),
            &format!("pad {mode} {pads:?} value {value:?}"),
        );
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn expands_and_tiles_match_tract() {
    // Expand [N, 4, 1, 6] to [N, 4, 5, 6]; [N, 1, 5, 6] to [N, 4, 5, 6]; Tile by
    // [1, 2, 1, 3] and a 3-D Tile by [1, 1, 2].
    let cases: [(&[u64], &str, &[i64]); 4] = [
        (&[4, 1, 6], "Expand", &[1, 4, 5, 6]),
        (&[1, 5, 6], "Expand", &[1, 4, 5, 6]),
        (&[3, 4, 5], "Tile", &[1, 2, 1, 3]),
        (&[3, 4], "Tile", &[1, 1, 2]),
    ];
    for (dims, op, v) in cases {
        let mut b = GraphBuilder::new();
        let x = input(&mut b, dims);
        let r = b.op("relu", Op::Relu, &[x]);
        let s = i64s(&mut b, "s", v);
        let e = b.op("e", other(op), &[r, s]);
        let k = b.constant("k", tensor0(3f32));
        let y = b.op("scale", Op::Mul, &[e, k]);
        b.output(y);
        let mut shape = vec![2usize];
        shape.extend(dims.iter().map(|&d| d as usize));
        check(
            &b.build().unwrap(),
            random_tensor(&shape, 13),
            &format!("{op} {v:?} of {shape:?}"),
        );
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn depth_to_space_and_space_to_depth_between_convs_match_tract() {
    // conv(4 -> 16) -> DepthToSpace(2, DCR / CRD) -> conv(4 -> 4); SpaceToDepth(2) of a
    // conv's output -> conv(16 -> 8).
    let attr = |name: &str, i: i64, s: &str| trtc_ir::tract_onnx::pb::AttributeProto {
        name: name.into(),
        r#type: if s.is_empty() { 2 } else { 3 },
        i,
        s: s.as_bytes().to_vec(),
        ..Default::default()
    };
    let block = |op: &str, attrs| {
        Op::Other(trtc_ir::op::OtherOp {
            op_type: op.into(),
            domain: String::new(),
            attributes: attrs,
        })
    };
    for mode in ["DCR", "CRD"] {
        let mut b = GraphBuilder::new();
        let x = input(&mut b, &[4, 5, 6]);
        let c = conv3(&mut b, x, 4, 16, 1);
        let d = b.op(
            "d2s",
            block(
                "DepthToSpace",
                vec![attr("blocksize", 2, ""), attr("mode", 0, mode)],
            ),
            &[c],
        );
        let y = conv3(&mut b, d, 4, 4, 2);
        b.output(y);
        check(
            &b.build().unwrap(),
            random_tensor(&[2, 4, 5, 6], 14),
            &format!("DepthToSpace {mode}"),
        );
    }
    let mut b = GraphBuilder::new();
    let x = input(&mut b, &[4, 6, 8]);
    let c = conv3(&mut b, x, 4, 4, 1);
    let s = b.op(
        "s2d",
        block("SpaceToDepth", vec![attr("blocksize", 2, "")]),
        &[c],
    );
    let y = conv3(&mut b, s, 16, 8, 2);
    b.output(y);
    check(
        &b.build().unwrap(),
        random_tensor(&[2, 4, 6, 8], 15),
        "SpaceToDepth",
    );
}
