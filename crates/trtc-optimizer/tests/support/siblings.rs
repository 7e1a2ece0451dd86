//! Sibling convs with random attributes reading one input, for the horizontal-fusion
//! property: the graph plus each conv's resolved attributes.

use super::build::{activation, conv_node, out_size};
use super::generator::{act, group, Act, Group};
use proptest::prelude::*;
use std::collections::HashMap;
use trtc_ir::{ConvAttrs, Graph, GraphBuilder, Op};

// ---------------------------------------------------------------------------------------
// Sibling convs with random attributes (for horizontal fusion)
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
pub struct SibD {
    /// 0, 1 => kernel 1, 3.
    pub k: usize,
    pub stride2: bool,
    pub pads: [i64; 4],
    pub dilation2: bool,
    pub group: Group,
    pub act: Act,
}

#[derive(Clone, Debug)]
pub struct Sibling {
    /// Use the shared base attributes (so that some siblings are alike).
    pub like_base: bool,
    pub own: SibD,
    pub cout: usize,
    pub bias: bool,
}

#[derive(Clone, Debug)]
pub struct SibNet {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub base: SibD,
    pub siblings: Vec<Sibling>,
    /// Run vertical fusion first, so activations live inside FusedConvs.
    pub prefuse: bool,
    /// Concat the siblings (in order) when their outputs have one spatial size.
    pub concat: bool,
}

/// What must be equal for two convs to be merged.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    pub kernel: Vec<i64>,
    pub strides: Vec<i64>,
    pub pads: Vec<i64>,
    pub dilations: Vec<i64>,
    pub group: i64,
    pub activation: Act,
}

prop_compose! {
    fn sib_d()(
        k in 0usize..2,
        stride2 in any::<bool>(),
        pads in proptest::array::uniform4(0i64..=1),
        dilation2 in any::<bool>(),
        group in group(),
        act in act(),
    ) -> SibD {
        SibD { k, stride2, pads, dilation2, group, act }
    }
}

prop_compose! {
    fn sibling()(like_base in proptest::bool::weighted(0.6), own in sib_d(), cout in 1usize..=3, bias in any::<bool>()) -> Sibling {
        Sibling { like_base, own, cout, bias }
    }
}

prop_compose! {
    pub fn sib_net()(
        c in 1usize..=6,
        h in 4usize..=9,
        w in 4usize..=9,
        base in sib_d(),
        siblings in proptest::collection::vec(sibling(), 2..=4),
        prefuse in any::<bool>(),
        concat in any::<bool>(),
    ) -> SibNet {
        SibNet { c, h, w, base, siblings, prefuse, concat }
    }
}

/// The sibling graph and each conv's resolved attributes, by node name.
pub fn build_sib_net(net: &SibNet) -> (Graph, HashMap<String, Resolved>) {
    let mut b = GraphBuilder::new();
    let (c, h, w) = (net.c, net.h, net.w);
    let x = b.input("x", &[1, c, h, w]);
    let mut attrs_by_name = HashMap::new();
    let mut outs = vec![];
    let mut sizes = vec![];
    for (j, sib) in net.siblings.iter().enumerate() {
        let d = if sib.like_base { &net.base } else { &sib.own };
        let mut k = if d.k == 1 { 3 } else { 1 };
        let mut dil = if d.dilation2 { 2 } else { 1 };
        let fits = |k: usize, dil: usize| {
            let eff = (dil * (k - 1) + 1) as i64;
            eff <= h as i64 + d.pads[0] + d.pads[2] && eff <= w as i64 + d.pads[1] + d.pads[3]
        };
        if !fits(k, dil) {
            dil = 1;
        }
        if !fits(k, dil) {
            k = 1;
        }
        let s = if d.stride2 { 2 } else { 1 };
        let (group, cout) = match d.group {
            Group::One => (1, sib.cout),
            Group::Depthwise => (c, c),
            Group::Two if c % 2 == 0 => (2, sib.cout.div_ceil(2) * 2),
            Group::Two => (1, sib.cout),
        };
        let attrs = ConvAttrs {
            group: group as i64,
            kernel_shape: vec![k as i64; 2],
            pads: d.pads.to_vec(),
            strides: vec![s as i64; 2],
            dilations: vec![dil as i64; 2],
            ..Default::default()
        };
        let name = format!("s{j}");
        attrs_by_name.insert(
            name.clone(),
            Resolved {
                kernel: attrs.kernel_shape.clone(),
                strides: attrs.strides.clone(),
                pads: attrs.pads.clone(),
                dilations: attrs.dilations.clone(),
                group: attrs.group,
                activation: d.act,
            },
        );
        let y = conv_node(
            &mut b,
            &name,
            x,
            c,
            cout,
            k,
            attrs,
            sib.bias,
            false,
            7 * j as u64 + 1,
        );
        outs.push(activation(&mut b, &format!("{name}_act"), y, d.act));
        sizes.push((
            out_size(h, k, s, dil, d.pads[0], d.pads[2]),
            out_size(w, k, s, dil, d.pads[1], d.pads[3]),
        ));
    }
    if net.concat && sizes.iter().all(|s| *s == sizes[0]) {
        let cat = b.op("cat", Op::Concat { axis: 1 }, &outs);
        b.output(cat);
    } else {
        for o in outs {
            b.output(o);
        }
    }
    let g = b
        .build()
        .unwrap_or_else(|e| panic!("generator bug: {net:?} does not build: {e}"));
    (g, attrs_by_name)
}
