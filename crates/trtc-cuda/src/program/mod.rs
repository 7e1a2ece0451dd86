//! A GPU segment as a list of steps over numbered tensor slots: what lowering (`ops/`)
//! produces, the program passes (`passes/`) rewrite, and an engine instance (`exec/`)
//! launches. Weights and constants are kept as host bytes in the engine's element type and
//! layout ([`WeightId`]), uploaded once when the engine is built: a program is plain data,
//! built and tested without a GPU.
//!
//! Segment inputs and outputs are f32 NCHW, as the rest of trtc sees them; an fp16 or NHWC
//! engine converts them with `Convert` steps at its boundary. A u8 input (8-bit NHWC
//! pixels, `--input-format u8-nhwc`) stays u8 at the boundary: a `Pixels` step reads it.
//! Inside, every 4-D tensor is stored in the engine's layout, other tensors in their
//! natural order.

pub mod conv_rules;
pub mod gather;
pub mod host;
pub mod lowering;
pub mod quant;
pub mod reduce;
mod views;

use host::{encode, nchw_to_nhwc};
use trtc_engine::{EngineOptions, Precision};
use trtc_ir::{Activation, Dim, Graph, Outlet};

/// A weight or constant of the program, by its index in `Program::weights`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WeightId(pub usize);

/// A tensor of the segment: its shape (batch symbolic), where its data lives, how it is
/// stored.
pub struct Slot {
    pub shape: Vec<Dim>,
    /// A view of another slot (Reshape, Flatten, Identity).
    pub alias_of: Option<usize>,
    /// A constant operand: its weight.
    pub constant: Option<WeightId>,
    /// A 4-D tensor stored NHWC.
    pub nhwc: bool,
    /// Elements are fp16 (else f32).
    pub half: bool,
    /// Elements are 8-bit pixels (a u8 segment input, read by a `Pixels` step).
    pub pixels: bool,
    /// Elements are int8 (a quantized activation: a `Quantize` step's or an INT8 conv's
    /// output).
    pub int8: bool,
}

impl Slot {
    pub fn elem_bytes(&self) -> usize {
        if self.pixels || self.int8 {
            1
        } else if self.half {
            2
        } else {
            4
        }
    }
}

pub enum Step {
    Conv {
        name: String,
        x: usize,
        y: usize,
        z: Option<usize>,
        w: WeightId,
        w_dims: [i32; 4],
        /// Bias in the engine's element type, and in f32 for fp16 engines (cuDNN is asked
        /// for the first and falls back to the second).
        b: WeightId,
        b_f32: Option<WeightId>,
        /// Weights as `[kh][kw][c][k]`, for trtc's own NHWC kernels (depthwise convs, and
        /// convs of few input channels such as image stems): see `conv_rules::direct_kernel_fits`.
        w_direct: Option<WeightId>,
        pads: [i32; 4],
        stride: [i32; 2],
        dilation: [i32; 2],
        groups: i32,
        act: Option<Activation>,
        /// Clamp trtc's depthwise kernel applies to the input as it loads it, taking over
        /// the producer's Clip (`passes/clip_into_depthwise.rs`).
        x_clamp: Option<(f32, f32)>,
        /// The depthwise conv step that can take over this conv's Clip.
        clip_to: Option<usize>,
        /// The weights quantized (a DequantizeLinear of int8 values, or float weights the
        /// lowering quantized): those values as int8 `[k][kh][kw][c]`, and their scales,
        /// one, or one per output channel (`passes/int8_convs.rs` may run the conv in INT8
        /// with them).
        w_int8: Option<(WeightId, Vec<f32>)>,
    },
    /// An INT8 convolution (`passes/int8_convs.rs`; cuDNN's INT8 NHWC kernels, or trtc's
    /// 1x1 kernels): int8 x (and residual z) in, int8 y out, int32 accumulation;
    /// `y = act(alpha[c] * conv(x, w) + alpha_z * z + bias)` rounded and saturated to int8,
    /// where `alpha[c] = x_scale * w_scale[c] / y_scale` (one value when the weights have
    /// one scale; one per output channel `c` only where trtc's kernels take the conv, as
    /// cuDNN takes one), `alpha_z = z_scale / y_scale` and the f32 `bias` is already
    /// divided by `y_scale`; `act` is ReLU or none.
    ConvInt8 {
        name: String,
        x: usize,
        y: usize,
        z: Option<usize>,
        w: WeightId,
        w_dims: [i32; 4],
        bias: WeightId,
        alpha: Vec<f32>,
        alpha_z: f32,
        pads: [i32; 2],
        stride: [i32; 2],
        relu: bool,
    },
    /// `y = saturate(round_half_even(x / scale))` into an int8 slot (ONNX's QuantizeLinear,
    /// zero point 0).
    Quantize {
        x: usize,
        y: usize,
        scale: f32,
    },
    /// `y = x * scale` from an int8 slot (ONNX's DequantizeLinear, zero point 0).
    Dequantize {
        x: usize,
        y: usize,
        scale: f32,
    },
    /// Max or average pooling (2-D, ONNX's pads and `count_include_pad`), then an optional
    /// epilogue before the store (`passes/pool_epilogue.rs`): `bias`, a constant slot of
    /// one value per channel (the engine's element type), added; then `act`, an
    /// activation's kernel code and parameters (`program::act_code`, codes 1 to 7 only:
    /// the pool kernels' `act_apply`).
    Pool {
        x: usize,
        y: usize,
        max: bool,
        kernel: [i32; 2],
        stride: [i32; 2],
        pads: [i32; 4],
        count_pad: bool,
        bias: Option<usize>,
        act: Option<(i32, f32, f32)>,
    },
    GlobalPool {
        x: usize,
        y: usize,
        max: bool,
    },
    /// `y = a (op) b` with broadcasting; `op` is 0 add, 1 mul, 2 sub, 3 div, 4 max, 5 min,
    /// 6 pow (the kernels' `bin_apply`).
    Binary {
        a: usize,
        b: usize,
        y: usize,
        op: i32,
    },
    Act {
        x: usize,
        y: usize,
        act: (i32, f32, f32),
    },
    Concat {
        inputs: Vec<usize>,
        y: usize,
        axis: usize,
    },
    Split {
        x: usize,
        outputs: Vec<usize>,
        axis: usize,
    },
    Gemm {
        a: usize,
        y: usize,
        w_kn: WeightId,
        bias: Option<WeightId>,
        n: usize,
        k: usize,
        alpha: f32,
        beta: f32,
    },
    Softmax {
        x: usize,
        y: usize,
    },
    /// `y = a @ b` for each matrix pair (at most [`MAX_BATCHED_MATRICES`]) (`ops/batched_matmul.rs`): a `[m][k]`, b `[k][n]`,
    /// y `[m][n]`, row-major, as many pairs as y holds; a side whose batch dims are all 1
    /// (`a_bcast`, `b_bcast`) is one matrix used for every pair.
    BatchedMatMul {
        a: usize,
        b: usize,
        y: usize,
        m: usize,
        k: usize,
        n: usize,
        a_bcast: bool,
        b_bcast: bool,
    },
    /// 8-bit NHWC pixels `x` (`[N,H,W,C]`, a u8 segment input) into the engine's tensor y,
    /// in one kernel (`ops/pixels.rs`): each pixel as float, then `ops[k]` (a binary op's
    /// code, `Step::Binary`) with the per-channel constant `params[k * C + c]` on the right.
    /// `nchw`: y is the pixels transposed to `[N,C,H,W]` (a Transpose 0,3,1,2 taken in);
    /// else y is `[N,H,W,C]`. y is stored as the engine stores 4-D tensors.
    Pixels {
        x: usize,
        y: usize,
        nchw: bool,
        ops: Vec<i32>,
        params: Option<WeightId>,
    },
    /// Between a segment boundary slot (f32 NCHW) and an engine slot, either way.
    Convert {
        x: usize,
        y: usize,
    },
    /// `y = x` with its dims permuted (`perm` as ONNX's), one strided read
    /// (`host::transpose_plan`).
    Transpose {
        x: usize,
        y: usize,
        perm: Vec<usize>,
    },
    /// The same 4-D tensor between NHWC and NCHW storage (around reshapes of NHWC data).
    Relayout {
        x: usize,
        y: usize,
    },
    /// Resize of the two spatial dims of a 4-D tensor (`ops/resize.rs`): the scale of H and
    /// W the coordinates use, bilinear or nearest, the kernel's coordinate transform and
    /// nearest rounding codes (`ResizeSpec`).
    Resize {
        x: usize,
        y: usize,
        scale: [f32; 2],
        linear: bool,
        coord: i32,
        nearest: i32,
    },
    /// A 2-D transposed convolution (`ops/conv_transpose.rs`): f32 weights
    /// `[kh][kw][c][m/groups]` of the ONNX weights `w_dims` (`[c, m/groups, kh, kw]`), an
    /// optional f32 bias, pads (top, left, bottom, right).
    ConvTranspose {
        x: usize,
        y: usize,
        w: WeightId,
        b: Option<WeightId>,
        w_dims: [i32; 4],
        pads: [i32; 4],
        stride: [i32; 2],
        dilation: [i32; 2],
        groups: i32,
    },
    /// Data movement (`ops/data_movement.rs`, `ops/pad_tile.rs`): y read from x through a
    /// strided gather plan (`gather.rs`), one `strided_gather` kernel.
    Gather {
        x: usize,
        y: usize,
        plan: gather::GatherPlan,
    },
    /// Elementwise ops fused into one kernel (`passes/chains.rs`): the value starts as
    /// `inputs[0]` (broadcast to y's shape) and goes through `ops`.
    Chain {
        inputs: Vec<usize>,
        y: usize,
        ops: Vec<ChainOp>,
    },
    /// `op` over x's logical `axes` (`reduce.rs` plans the walk): a `Reduce*` into y, or a
    /// softmax or normalization of x over them into y (shaped and stored as x).
    Reduce {
        x: usize,
        y: usize,
        axes: Vec<usize>,
        op: ReduceOp,
    },
    /// `LRN` across channels (dim 1): `y = x / (bias + alpha / size * sum x^2)^beta`, the
    /// sum over the `size` channels around each (ONNX's window).
    Lrn {
        x: usize,
        y: usize,
        size: i32,
        alpha: f32,
        beta: f32,
        bias: f32,
    },
}

/// What a `Step::Reduce` computes over its axes.
#[derive(Clone, Debug, PartialEq)]
pub enum ReduceOp {
    /// `post(combine(pre(x)))`, the reduction kernels' codes: `pre` 0 x, 1 x^2, 2 |x|;
    /// `comb` 0 sum, 1 max, 2 min, 3 product; `post` 0 none, 1 divided by the count
    /// (mean), 2 sqrt, 3 log. `partial`: an f32 slot of `reduce::MAX_SPLITS` values per
    /// output, where a long reduction of few outputs is split over more blocks.
    Reduce {
        pre: i32,
        comb: i32,
        post: i32,
        partial: Option<usize>,
    },
    /// `exp(x - max) / sum exp(x - max)`, or its log.
    Softmax { log: bool },
    /// `(x - mean) / sqrt(var + eps) * scale + bias` (two passes for the variance); scale
    /// and bias are f32 weights indexed with `param_strides` along x's logical dims.
    Norm {
        eps: f32,
        scale: WeightId,
        bias: Option<WeightId>,
        param_strides: Vec<usize>,
    },
}

/// Ops one chain kernel applies (the kernel's argument arrays hold this many).
pub const MAX_OPS: usize = 8;
/// Distinct tensors one chain kernel reads.
pub const MAX_INPUTS: usize = 4;

/// One op of a chain, applied to the running value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ChainOp {
    /// An activation: kernel code and parameters (`program::act_code`).
    Act((i32, f32, f32)),
    /// `value (op) input` (or `input (op) value` when `value_first` is false); `op` is
    /// a binary op's code (`Step::Binary`); `input` indexes the chain's inputs.
    Binary {
        op: i32,
        input: usize,
        value_first: bool,
    },
}

/// Kernel code and parameters of an activation.
pub fn act_code(a: Activation) -> (i32, f32, f32) {
    match a {
        Activation::Relu => (1, 0.0, 0.0),
        Activation::Clip { min, max } => (2, min, max),
        Activation::LeakyRelu { alpha } => (3, alpha, 0.0),
        Activation::Sigmoid => (4, 0.0, 0.0),
        Activation::HardSigmoid { alpha, beta } => (5, alpha, beta),
        Activation::HardSwish => (6, 0.0, 0.0),
    }
}

pub struct Program {
    pub slots: Vec<Slot>,
    pub steps: Vec<Step>,
    /// The node each step comes from.
    pub names: Vec<String>,
    pub inputs: Vec<usize>,
    pub outputs: Vec<usize>,
    /// Weights and constants, as the engine stores them (bytes of its element type).
    pub weights: Vec<Vec<u8>>,
    pub precision: Precision,
    /// 4-D tensors are stored NHWC.
    pub nhwc: bool,
    /// Tensors are fp16.
    pub half: bool,
    /// The precision of each quantized conv, and why (`passes/int8_convs.rs`).
    pub precisions: Vec<trtc_engine::LayerPrecision>,
}

impl Program {
    /// An empty program for an engine of these options.
    pub fn new(opts: &EngineOptions) -> Program {
        let half = opts.precision.is_half();
        Program {
            slots: vec![],
            steps: vec![],
            names: vec![],
            inputs: vec![],
            outputs: vec![],
            weights: vec![],
            precision: opts.precision,
            nhwc: opts.layout.nhwc_for(opts.precision),
            half,
            precisions: vec![],
        }
    }

    /// Store `v` as a weight of the engine's element type (`dims4`: a 4-D tensor reordered
    /// to NHWC first), uploaded when the engine is built.
    pub fn weight(&mut self, v: &[f32], dims4: Option<[usize; 4]>, half: bool) -> WeightId {
        let bytes = match dims4 {
            Some(d) => encode(&nchw_to_nhwc(v, d), half),
            None => encode(v, half),
        };
        self.weights.push(bytes);
        WeightId(self.weights.len() - 1)
    }

    /// A slot for outlet `o` stored as the engine stores its tensors.
    pub fn add_slot(&mut self, g: &Graph, o: Outlet, alias_of: Option<usize>) -> usize {
        let shape = g.tensor(o).shape.clone().unwrap_or_default();
        let nhwc = self.nhwc && shape.len() == 4;
        self.push_slot(shape, alias_of, nhwc, self.half)
    }

    pub fn push_slot(
        &mut self,
        shape: Vec<Dim>,
        alias_of: Option<usize>,
        nhwc: bool,
        half: bool,
    ) -> usize {
        self.slots.push(Slot {
            shape,
            alias_of,
            constant: None,
            nhwc,
            half,
            pixels: false,
            int8: false,
        });
        self.slots.len() - 1
    }

    /// A segment input or output as the rest of trtc holds it: f32, NCHW.
    pub fn add_boundary_slot(&mut self, g: &Graph, o: Outlet) -> usize {
        let shape = g.tensor(o).shape.clone().unwrap_or_default();
        self.push_slot(shape, None, false, false)
    }

    /// A u8 segment input (8-bit NHWC pixels), kept as it arrives: a `Pixels` step reads it.
    pub fn add_pixel_boundary_slot(&mut self, g: &Graph, o: Outlet) -> usize {
        let s = self.add_boundary_slot(g, o);
        self.slots[s].pixels = true;
        s
    }

    /// Whether boundary slot `s` is stored differently from the engine's own tensors.
    pub fn boundary_differs(&self, s: usize) -> bool {
        self.half || (self.nhwc && self.slots[s].shape.len() == 4)
    }

    /// The slot whose memory `s` uses.
    pub fn storage(&self, mut s: usize) -> usize {
        while let Some(a) = self.slots[s].alias_of {
            s = a;
        }
        s
    }

    /// Elements of slot `s` for a batch.
    pub fn numel(&self, s: usize, batch: usize) -> usize {
        self.shape(s, batch).iter().product()
    }

    /// Concrete shape of slot `s` for a batch.
    pub fn shape(&self, s: usize, batch: usize) -> Vec<usize> {
        self.slots[s]
            .shape
            .iter()
            .map(|d| d.known().map(|v| v as usize).unwrap_or(batch))
            .collect()
    }
}

/// Most matrix pairs one `Step::BatchedMatMul` multiplies (its kernel grid's z extent).
pub const MAX_BATCHED_MATRICES: usize = 65535;

/// `axis` (negative from the end) as an index into a shape of `rank` dims.
pub fn norm_axis(axis: i64, rank: usize) -> Option<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    (0..rank as i64).contains(&a).then_some(a as usize)
}
