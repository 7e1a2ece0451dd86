//! The random graph generator for the property tests: "block descriptors" (plain data
//! that proptest shrinks toward fewer blocks and smaller parameters) and the proptest
//! strategies that produce them. [`super::build`] turns a descriptor into a graph.

use proptest::prelude::*;

// ---------------------------------------------------------------------------------------
// Descriptors
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    One,
    /// group = C, weights [C, 1, k, k] (group 1 when C is 1).
    Depthwise,
    /// group 2 when the input channels are even (group 1 otherwise).
    Two,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    None,
    Relu,
    /// Clip(0, 6) with constant scalar bounds.
    Clip,
}

#[derive(Clone, Debug)]
pub struct ConvD {
    pub cout: usize,
    /// 0, 1, 2 => kernel 1, 3, 5 (made smaller when it does not fit).
    pub k: usize,
    pub stride2: bool,
    /// [top, left, bottom, right]; with `symmetric`, bottom/right copy top/left.
    pub pads: [i64; 4],
    pub symmetric: bool,
    pub group: Group,
    pub bias: bool,
    /// The weights are `Add(W, D)` of two constants (something for constant folding).
    pub folded_weights: bool,
    pub seed: u64,
}

#[derive(Clone, Debug)]
pub struct Branch {
    pub cout: usize,
    pub act: Act,
    pub bias: bool,
}

#[derive(Clone, Copy, Debug)]
pub enum Usage {
    /// All siblings feed one Concat(axis 1), in order.
    ConcatInOrder,
    /// All siblings feed one Concat(axis 1), reversed.
    ConcatReversed,
    /// Sibling 0 + sibling 1 (same channels) continues; any third is a graph output.
    AddFirstTwo,
    /// Sibling 0 continues; the others are graph outputs.
    FirstContinues,
}

#[derive(Clone, Debug)]
pub enum Block {
    Act(Act),
    BatchNorm {
        seed: u64,
    },
    /// Identity or (inference) Dropout.
    NoOp {
        dropout: bool,
    },
    /// A Relu that reaches no output.
    DeadBranch,
    Pool {
        max: bool,
        k3: bool,
        stride2: bool,
    },
    /// Per-channel (or scalar) constant Mul or Add.
    Affine {
        mul: bool,
        scalar: bool,
        seed: u64,
    },
    Conv(ConvD),
    /// x -> conv (size-keeping, C -> C) -> [relu] ; Add(x, that) (or Add(that, x)).
    Residual {
        k3: bool,
        depthwise: bool,
        bias: bool,
        relu: bool,
        x_first: bool,
        seed: u64,
    },
    /// 2-3 convs with identical attributes (1x1, or 3x3 same pads; group 1) reading x.
    Siblings {
        k3: bool,
        branches: Vec<Branch>,
        usage: Usage,
        seed: u64,
    },
    /// A constant-mode Pad of the spatial axes (value 0, or 1 when `nonzero`) before a conv.
    PadConv {
        pads: [i64; 4],
        nonzero: bool,
        conv: ConvD,
    },
}

#[derive(Clone, Debug)]
pub struct Head {
    pub classes: usize,
    /// Flatten by `Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 0)), [-1]))` instead of Flatten.
    pub shape_reshape: bool,
    pub seed: u64,
}

#[derive(Clone, Debug)]
pub struct Net {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub blocks: Vec<Block>,
    pub head: Option<Head>,
}

// ---------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------

pub fn act() -> impl Strategy<Value = Act> {
    prop_oneof![Just(Act::None), Just(Act::Relu), Just(Act::Clip)]
}

pub fn group() -> impl Strategy<Value = Group> {
    prop_oneof![Just(Group::One), Just(Group::Depthwise), Just(Group::Two)]
}

prop_compose! {
    fn conv_d()(
        cout in 1usize..=6,
        k in 0usize..3,
        stride2 in any::<bool>(),
        pads in proptest::array::uniform4(0i64..=2),
        symmetric in any::<bool>(),
        group in group(),
        bias in any::<bool>(),
        folded_weights in proptest::bool::weighted(0.15),
        seed in 0u64..64,
    ) -> ConvD {
        ConvD { cout, k, stride2, pads, symmetric, group, bias, folded_weights, seed }
    }
}

prop_compose! {
    fn branch()(cout in 1usize..=2, act in act(), bias in any::<bool>()) -> Branch {
        Branch { cout, act, bias }
    }
}

fn usage() -> impl Strategy<Value = Usage> {
    prop_oneof![
        Just(Usage::ConcatInOrder),
        Just(Usage::ConcatReversed),
        Just(Usage::AddFirstTwo),
        Just(Usage::FirstContinues),
    ]
}

fn block() -> impl Strategy<Value = Block> {
    prop_oneof![
        2 => act().prop_map(Block::Act),
        2 => (0u64..64).prop_map(|seed| Block::BatchNorm { seed }),
        1 => any::<bool>().prop_map(|dropout| Block::NoOp { dropout }),
        1 => Just(Block::DeadBranch),
        2 => (any::<bool>(), any::<bool>(), any::<bool>())
            .prop_map(|(max, k3, stride2)| Block::Pool { max, k3, stride2 }),
        1 => (any::<bool>(), any::<bool>(), 0u64..64)
            .prop_map(|(mul, scalar, seed)| Block::Affine { mul, scalar, seed }),
        4 => conv_d().prop_map(Block::Conv),
        2 => (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>(), 0u64..64)
            .prop_map(|(k3, depthwise, bias, relu, x_first, seed)| Block::Residual { k3, depthwise, bias, relu, x_first, seed }),
        3 => (any::<bool>(), proptest::collection::vec(branch(), 2..=3), usage(), 0u64..64)
            .prop_map(|(k3, branches, usage, seed)| Block::Siblings { k3, branches, usage, seed }),
        1 => (proptest::array::uniform4(0i64..=1), proptest::bool::weighted(0.2), conv_d())
            .prop_map(|(pads, nonzero, conv)| Block::PadConv { pads, nonzero, conv }),
    ]
}

prop_compose! {
    fn head()(classes in 1usize..=6, shape_reshape in any::<bool>(), seed in 0u64..64) -> Head {
        Head { classes, shape_reshape, seed }
    }
}

prop_compose! {
    pub fn net()(
        c in 1usize..=6,
        h in 4usize..=9,
        w in 4usize..=9,
        blocks in proptest::collection::vec(block(), 1..=4),
        head in proptest::option::weighted(0.3, head()),
    ) -> Net {
        Net { c, h, w, blocks, head }
    }
}
