//! Graphs the INT8 tests share (the program tests here, the GPU tests in `tests/int8.rs`):
//! explicitly quantized convolutions, as `trtc compile --precision int8` writes them.

use trtc_ir::op::OtherOp;
use trtc_ir::tensor::{random_uniform, tensor_to_f32s};
use trtc_ir::{Activation, ConvAttrs, FusedConv, Graph, GraphBuilder, Op, Outlet, Tensor};

fn qdq(op_type: &str) -> Op {
    Op::Other(OtherOp {
        op_type: op_type.into(),
        domain: String::new(),
        attributes: vec![],
    })
}

/// `x` read through `QuantizeLinear -> DequantizeLinear` of scale `s` (zero point int8 0).
pub fn fake_quant(b: &mut GraphBuilder, x: Outlet, s: f32, name: &str) -> Outlet {
    let sc = b.constant(&format!("{name}_s"), Tensor::from(s));
    let z = b.constant(&format!("{name}_z"), Tensor::from(0i8));
    let q = b.op(&format!("{name}_q"), qdq("QuantizeLinear"), &[x, sc, z]);
    b.op(&format!("{name}_dq"), qdq("DequantizeLinear"), &[q, sc, z])
}

/// Random weights `[k, c/groups, r, r]` in `[-amp, amp)`, quantized per tensor: the int8
/// values under a `DequantizeLinear` of scale `amp / 127`.
pub fn int8_weights(
    b: &mut GraphBuilder,
    dims: [usize; 4],
    amp: f32,
    seed: u64,
    name: &str,
) -> Outlet {
    let s = amp / 127.0;
    let w = random_uniform(&dims, seed);
    let q: Vec<i8> = tensor_to_f32s(&w)
        .unwrap_or_default()
        .iter()
        .map(|v| (v * amp / s).round().clamp(-127.0, 127.0) as i8)
        .collect();
    let qt = b.constant(
        name,
        Tensor::from_shape(&dims, &q).unwrap_or_else(|_| Tensor::from(0i8)),
    );
    let sc = b.constant(&format!("{name}_s"), Tensor::from(s));
    let z = b.constant(&format!("{name}_z"), Tensor::from(0i8));
    b.op(&format!("{name}_dq"), qdq("DequantizeLinear"), &[qt, sc, z])
}

/// Random weights `[k, c, r, r]`, output channel `j` in `[-a_j, a_j)` with `a_j` from
/// `amp / 10` to `amp` (a tenfold spread, which one scale for the whole tensor would
/// crush), quantized per output channel: the int8 values under a `DequantizeLinear` of
/// scales `a_j / 127` along axis 0, as quantization toolkits export them.
pub fn int8_weights_per_channel(
    b: &mut GraphBuilder,
    dims: [usize; 4],
    amp: f32,
    seed: u64,
    name: &str,
) -> Outlet {
    let k = dims[0];
    let amps: Vec<f32> = (0..k)
        .map(|j| amp * (0.1 + 0.9 * j as f32 / (k - 1).max(1) as f32))
        .collect();
    let per = dims[1..].iter().product::<usize>().max(1);
    let q: Vec<i8> = tensor_to_f32s(&random_uniform(&dims, seed))
        .unwrap_or_default()
        .iter()
        .map(|v| (v * 127.0).round().clamp(-127.0, 127.0) as i8)
        .collect();
    let scales: Vec<f32> = amps.iter().map(|a| a / 127.0).collect();
    let qt = b.constant(
        name,
        Tensor::from_shape(&dims, &q).unwrap_or_else(|_| Tensor::from(0i8)),
    );
    let sc = b.constant(
        &format!("{name}_s"),
        Tensor::from_shape(&[k], &scales).unwrap_or_else(|_| Tensor::from(0f32)),
    );
    let z = b.constant(
        &format!("{name}_z"),
        Tensor::from_shape(&[k], &vec![0i8; k]).unwrap_or_else(|_| Tensor::from(0i8)),
    );
    debug_assert_eq!(q.len(), k * per);
    let dq = Op::Other(OtherOp {
        op_type: "DequantizeLinear".into(),
        domain: String::new(),
        attributes: vec![trtc_ir::tract_onnx::pb::AttributeProto {
            name: "axis".into(),
            r#type: 2,
            i: 0,
            ..Default::default()
        }],
    });
    b.op(&format!("{name}_dq"), dq, &[qt, sc, z])
}

fn fused(
    b: &mut GraphBuilder,
    name: &str,
    inputs: &[Outlet],
    r: usize,
    group: i64,
    activation: Option<Activation>,
) -> Outlet {
    let p = (r / 2) as i64;
    let conv = ConvAttrs {
        group,
        kernel_shape: vec![r as i64, r as i64],
        pads: vec![p, p, p, p],
        ..Default::default()
    };
    let op = Op::FusedConv(FusedConv {
        conv,
        residual: inputs.len() == 4,
        activation,
    });
    b.op(name, op, inputs)
}

/// `x [n, 8, 10, 10]`, quantized, through four convs:
/// - `conv1`: 3x3, 8 -> 16, ReLU, int8 weights; its output quantized;
/// - `conv2`: 1x1, 16 -> 16, plus the quantized `conv1` output as a residual, Clip(0, 6);
///   its output quantized;
/// - `conv3`: depthwise 3x3 with int8 weights (no INT8 kernel: stays fp16); quantized;
/// - `conv4`: 1x1, 16 -> 8, its output the graph's (not quantized: stays fp16).
///
/// `conv1` and `conv2` are what `passes/int8_convs.rs` runs in INT8. With `activations`
/// false, the activations are not quantized (the weights still are): the float model the
/// quantized one approximates.
pub fn qdq_conv_graph(n: usize, activations: bool) -> Graph {
    let mut b = GraphBuilder::new();
    let fake_quant = |b: &mut GraphBuilder, x: Outlet, s: f32, name: &str| {
        if activations {
            fake_quant(b, x, s, name)
        } else {
            x
        }
    };
    let x = b.input("x", &[n, 8, 10, 10]);
    let xq = fake_quant(&mut b, x, 1.0 / 127.0, "x");
    let bias = |b: &mut GraphBuilder, k: usize, seed: u64, name: &str| {
        let v = random_uniform(&[k], seed);
        b.constant(name, v)
    };
    let w1 = int8_weights(&mut b, [16, 8, 3, 3], 0.25, 1, "w1");
    let b1 = bias(&mut b, 16, 2, "b1");
    let y1 = fused(&mut b, "conv1", &[xq, w1, b1], 3, 1, Some(Activation::Relu));
    let a1 = fake_quant(&mut b, y1, 3.0 / 127.0, "y1");
    let w2 = int8_weights(&mut b, [16, 16, 1, 1], 0.3, 3, "w2");
    let b2 = bias(&mut b, 16, 4, "b2");
    let clip = Activation::Clip { min: 0.0, max: 6.0 };
    let y2 = fused(&mut b, "conv2", &[a1, w2, b2, a1], 1, 1, Some(clip));
    let a2 = fake_quant(&mut b, y2, 6.0 / 127.0, "y2");
    let w3 = int8_weights(&mut b, [16, 1, 3, 3], 0.4, 5, "w3");
    let b3 = bias(&mut b, 16, 6, "b3");
    let y3 = fused(
        &mut b,
        "conv3",
        &[a2, w3, b3],
        3,
        16,
        Some(Activation::Relu),
    );
    let a3 = fake_quant(&mut b, y3, 8.0 / 127.0, "y3");
    let w4 = int8_weights(&mut b, [8, 16, 1, 1], 0.3, 7, "w4");
    let b4 = bias(&mut b, 8, 8, "b4");
    let y4 = fused(&mut b, "conv4", &[a3, w4, b4], 1, 1, None);
    b.output(y4);
    b.build()
        .unwrap_or_else(|e| panic!("the INT8 test graph: {e}"))
}

/// Random input values on the int8 grid of the graph input's scale (`k / 127`, k in
/// [-127, 127]): quantizing them is exact in f32 and in fp16 alike, so an fp16 engine and
/// tract quantize the input to the same int8 values.
pub fn on_input_grid(shape: &[usize], seed: u64) -> Tensor {
    let v: Vec<f32> = tensor_to_f32s(&random_uniform(shape, seed))
        .unwrap_or_default()
        .iter()
        .map(|x| (x * 127.0).round() / 127.0)
        .collect();
    Tensor::from_shape(shape, &v).unwrap_or_else(|_| Tensor::from(0f32))
}

/// `x [n, 64, h, w]`, quantized, through 1x1 convs that trtc's INT8 kernels take (input
/// channels a multiple of 64, output channels of 16), one for each K of its streaming
/// kernels: `pw1` 64 -> 128 with ReLU, `pw2` 128 -> 128 plus `pw1`'s output as a residual
/// with ReLU, `pw3` 128 -> 256 with ReLU, `pw4` 256 -> 80 (no activation; 80 channels, a
/// partial tile of output channels); each output quantized; then `pw5` 80 -> 8, its output
/// the graph's. With `activations` false the activations are not quantized (the float model).
pub fn qdq_pointwise_graph(n: usize, h: usize, w: usize, activations: bool) -> Graph {
    let mut b = GraphBuilder::new();
    let fake_quant = |b: &mut GraphBuilder, x: Outlet, s: f32, name: &str| {
        if activations {
            fake_quant(b, x, s, name)
        } else {
            x
        }
    };
    let x = b.input("x", &[n, 64, h, w]);
    let xq = fake_quant(&mut b, x, 1.0 / 127.0, "x");
    let bias = |b: &mut GraphBuilder, k: usize, seed: u64| {
        let v = random_uniform(&[k], seed);
        b.constant(&format!("pb{seed}"), v)
    };
    let w1 = int8_weights(&mut b, [128, 64, 1, 1], 0.2, 11, "pw1_w");
    let b1 = bias(&mut b, 128, 12);
    let y1 = fused(&mut b, "pw1", &[xq, w1, b1], 1, 1, Some(Activation::Relu));
    let a1 = fake_quant(&mut b, y1, 3.0 / 127.0, "pw1_out");
    let w2 = int8_weights(&mut b, [128, 128, 1, 1], 0.15, 13, "pw2_w");
    let b2 = bias(&mut b, 128, 14);
    let y2 = fused(
        &mut b,
        "pw2",
        &[a1, w2, b2, a1],
        1,
        1,
        Some(Activation::Relu),
    );
    let a2 = fake_quant(&mut b, y2, 5.0 / 127.0, "pw2_out");
    let w3 = int8_weights(&mut b, [256, 128, 1, 1], 0.15, 15, "pw3_w");
    let b3 = bias(&mut b, 256, 16);
    let y3 = fused(&mut b, "pw3", &[a2, w3, b3], 1, 1, Some(Activation::Relu));
    let a3 = fake_quant(&mut b, y3, 6.0 / 127.0, "pw3_out");
    let w4 = int8_weights(&mut b, [80, 256, 1, 1], 0.1, 17, "pw4_w");
    let b4 = bias(&mut b, 80, 18);
    let y4 = fused(&mut b, "pw4", &[a3, w4, b4], 1, 1, None);
    let a4 = fake_quant(&mut b, y4, 8.0 / 127.0, "pw4_out");
    let w5 = int8_weights(&mut b, [8, 80, 1, 1], 0.2, 19, "pw5_w");
    let b5 = bias(&mut b, 8, 20);
    let y5 = fused(&mut b, "pw5", &[a4, w5, b5], 1, 1, None);
    b.output(y5);
    b.build()
        .unwrap_or_else(|e| panic!("the INT8 pointwise test graph: {e}"))
}

/// trtc's INT8 1x1 kernels: each one's name (a value of `TRTC_INT8_CONV` that runs it on
/// the layers it takes) and the input channel count it is built for (`None`: any).
pub fn int8_kernels() -> Vec<(&'static str, Option<usize>)> {
    crate::exec::OWN_KERNELS
        .iter()
        .map(|k| (k.name, k.built_for()))
        .collect()
}

/// `x [n, 48, h, w]`, quantized, through 1x1 convs with weights quantized per output channel
/// (`int8_weights_per_channel`) that only trtc's INT8 kernels take with their scales: `pc1`
/// 48 -> 32 with ReLU (K = 48: the tiled kernels read past it as zeros up to 64), `pc2`
/// 32 -> 80 plus nothing, no activation; `pc3` 80 -> 16 with ReLU; each output quantized;
/// then `pc4` 16 -> 8 (8 output channels: no INT8 kernel, fp16), its output the graph's.
pub fn qdq_per_channel_graph(n: usize, h: usize, w: usize) -> Graph {
    let mut b = GraphBuilder::new();
    let x = b.input("x", &[n, 48, h, w]);
    let xq = fake_quant(&mut b, x, 1.0 / 127.0, "x");
    let bias = |b: &mut GraphBuilder, k: usize, seed: u64| {
        let v = random_uniform(&[k], seed);
        b.constant(&format!("cb{seed}"), v)
    };
    let mut a = xq;
    let layers = [
        ("pc1", 48, 32, Some(Activation::Relu), 2.0),
        ("pc2", 32, 80, None, 4.0),
        ("pc3", 80, 16, Some(Activation::Relu), 6.0),
    ];
    for (i, (name, c, k, act, range)) in layers.into_iter().enumerate() {
        let seed = 40 + 2 * i as u64;
        let w = int8_weights_per_channel(&mut b, [k, c, 1, 1], 0.3, seed, &format!("{name}_w"));
        let bb = bias(&mut b, k, seed + 1);
        let y = fused(&mut b, name, &[a, w, bb], 1, 1, act);
        a = fake_quant(&mut b, y, range / 127.0, &format!("{name}_out"));
    }
    let w4 = int8_weights_per_channel(&mut b, [8, 16, 1, 1], 0.3, 50, "pc4_w");
    let b4 = bias(&mut b, 8, 51);
    let y4 = fused(&mut b, "pc4", &[a, w4, b4], 1, 1, None);
    b.output(y4);
    b.build()
        .unwrap_or_else(|e| panic!("the per-channel INT8 test graph: {e}"))
}

/// `x [n, 1024, h, w]`, quantized, through `deep1`, a 1x1 conv 1024 -> 64 with ReLU and
/// weights quantized per output channel (sixteen of K's 64-wide steps: with few pixels, the
/// tiled INT8 kernels split K across blocks), its output quantized, then `deep2` 64 -> 8
/// (fp16), the graph's output.
pub fn qdq_deep_pointwise_graph(n: usize, h: usize, w: usize) -> Graph {
    let mut b = GraphBuilder::new();
    let x = b.input("x", &[n, 1024, h, w]);
    let xq = fake_quant(&mut b, x, 1.0 / 127.0, "x");
    let w1 = int8_weights_per_channel(&mut b, [64, 1024, 1, 1], 0.1, 60, "deep1_w");
    let b1 = b.constant("deep1_b", random_uniform(&[64], 61));
    let y1 = fused(&mut b, "deep1", &[xq, w1, b1], 1, 1, Some(Activation::Relu));
    let a1 = fake_quant(&mut b, y1, 4.0 / 127.0, "deep1_out");
    let w2 = int8_weights_per_channel(&mut b, [8, 64, 1, 1], 0.3, 62, "deep2_w");
    let b2 = b.constant("deep2_b", random_uniform(&[8], 63));
    let y2 = fused(&mut b, "deep2", &[a1, w2, b2], 1, 1, None);
    b.output(y2);
    b.build()
        .unwrap_or_else(|e| panic!("the deep pointwise INT8 test graph: {e}"))
}
