//! The context an op family lowers a node in: the program being built, the slot of every
//! tensor lowered so far, and the segment boundary (f32 NCHW outside, the engine's type
//! and layout inside, `Convert` steps between; a u8 input stays u8, for a `Pixels` step).

use super::{Program, Step, WeightId};
use crate::error::{cuda_err, Result};
use std::collections::{HashMap, HashSet};
use trtc_engine::EngineOptions;
use trtc_ir::tensor::tensor_to_f32s;
use trtc_ir::{DType, Dim, Graph, NodeId, Outlet, SubgraphIo};

pub struct Lowering<'g> {
    pub g: &'g Graph,
    pub p: Program,
    slot_of: HashMap<Outlet, usize>,
    /// The segment's nodes (a node lowering its consumers with it checks they are here).
    nodes: HashSet<NodeId>,
    /// Nodes another node's steps compute already: not lowered again.
    taken: HashSet<NodeId>,
    /// QuantizeLinear and DequantizeLinear of activations pass their input through (the
    /// FP16 alternative of an INT8 engine, `engine/int8_choice.rs`).
    pub drop_qdq: bool,
}

impl<'g> Lowering<'g> {
    /// A program for segment `nodes` whose inputs are `io.inputs`, with their boundary slots.
    pub fn new(
        g: &'g Graph,
        nodes: &[NodeId],
        io: &SubgraphIo,
        opts: &EngineOptions,
    ) -> Lowering<'g> {
        let mut cx = Lowering {
            g,
            p: Program::new(opts),
            slot_of: HashMap::new(),
            nodes: nodes.iter().copied().collect(),
            taken: HashSet::new(),
            drop_qdq: false,
        };
        for &o in &io.inputs {
            let p = &mut cx.p;
            let pixels = g.tensor(o).dtype == Some(DType::U8);
            let host = if pixels {
                p.add_pixel_boundary_slot(g, o)
            } else {
                p.add_boundary_slot(g, o)
            };
            p.inputs.push(host);
            let s = if !pixels && p.boundary_differs(host) {
                let s = p.add_slot(g, o, None);
                p.names.push(g.tensor(o).name.clone());
                p.steps.push(Step::Convert { x: host, y: s });
                s
            } else {
                host
            };
            cx.slot_of.insert(o, s);
        }
        cx
    }

    /// Whether `id` is one of the segment's nodes.
    pub fn in_segment(&self, id: NodeId) -> bool {
        self.nodes.contains(&id)
    }

    /// Node `id` is computed by the steps of another (which bound its outputs).
    pub fn take(&mut self, id: NodeId) {
        self.taken.insert(id);
    }

    /// Whether another node's steps compute `id` already.
    pub fn taken(&self, id: NodeId) -> bool {
        self.taken.contains(&id)
    }

    /// The slot of node `id`'s input `slot`: a tensor lowered before, or a constant that
    /// is data (uploaded with the weights).
    pub fn operand(&mut self, id: NodeId, slot: usize) -> Result<usize> {
        let (g, name) = (self.g, self.g.node(id).name.as_str());
        let o = g
            .input_outlet(id, slot)
            .ok_or_else(|| cuda_err(name, format!("input {slot} missing")))?;
        if let Some(&s) = self.slot_of.get(&o) {
            return Ok(s);
        }
        let v = g
            .const_value(o)
            .and_then(|t| tensor_to_f32s(t))
            .or_else(|| super::quant::quantized_const(g, o).map(|q| q.values))
            .ok_or_else(|| cuda_err(name, "an input is neither computed nor a float constant"))?;
        let s = self.p.add_slot(g, o, None);
        self.fill_constant(s, &v);
        self.slot_of.insert(o, s);
        Ok(s)
    }

    /// A new slot for node `id`'s output `slot`, stored as the engine stores tensors.
    pub fn output(&mut self, id: NodeId, slot: usize) -> usize {
        let o = Outlet::new(id, slot);
        let s = self.p.add_slot(self.g, o, None);
        self.slot_of.insert(o, s);
        s
    }

    /// A new int8 slot for node `id`'s output `slot` (a quantized activation), laid out as
    /// the engine lays out its tensors.
    pub fn output_int8(&mut self, id: NodeId, slot: usize) -> usize {
        let s = self.output(id, slot);
        self.p.slots[s].half = false;
        self.p.slots[s].int8 = true;
        s
    }

    /// Output `o` lives in slot `s` (a view or a relayout of another tensor).
    pub fn bind(&mut self, o: Outlet, s: usize) {
        self.slot_of.insert(o, s);
    }

    /// A constant slot of `shape` (at most 3-D, or 4-D in NCHW engines) holding `values`,
    /// made by the lowering itself (folded normalization parameters, say).
    pub fn constant(&mut self, shape: &[usize], values: &[f32]) -> usize {
        let dims = shape.iter().map(|&d| Dim::Known(d as u64)).collect();
        let (half, nhwc) = (self.p.half, self.p.nhwc && shape.len() == 4);
        let s = self.p.push_slot(dims, None, nhwc, half);
        self.fill_constant(s, values);
        s
    }

    /// Make slot `s` a constant holding `values` (logical order), stored as the slot is.
    fn fill_constant(&mut self, s: usize, values: &[f32]) {
        let p = &mut self.p;
        let dims4 = p.slots[s]
            .nhwc
            .then(|| p.shape(s, 1))
            .map(|d| [d[0], d[1], d[2], d[3]]);
        let w = p.weight(values, dims4, p.half);
        p.slots[s].constant = Some(w);
    }

    /// A new internal slot shaped and stored like node `id`'s output 0 (an intermediate
    /// value of a node lowered to several steps).
    pub fn temp_like_output(&mut self, id: NodeId) -> usize {
        self.p.add_slot(self.g, Outlet::new(id, 0), None)
    }

    /// A weight in the engine's element type (`dims4`: reordered to NHWC first).
    pub fn weight(&mut self, v: &[f32], dims4: Option<[usize; 4]>) -> WeightId {
        let half = self.p.half;
        self.p.weight(v, dims4, half)
    }

    /// A weight of raw bytes (int8 values, say), uploaded as they are.
    pub fn weight_bytes(&mut self, bytes: Vec<u8>) -> WeightId {
        self.p.weights.push(bytes);
        WeightId(self.p.weights.len() - 1)
    }

    /// A weight kept in f32 whatever the engine's type.
    pub fn weight_f32(&mut self, v: &[f32]) -> WeightId {
        self.p.weight(v, None, false)
    }

    /// Append a step, named after the node (or part of it) it comes from.
    pub fn step(&mut self, name: &str, step: Step) {
        self.p.names.push(name.to_string());
        self.p.steps.push(step);
    }

    /// The program, with the segment's outputs as f32 NCHW boundary slots.
    pub fn finish(mut self, io: &SubgraphIo) -> Result<Program> {
        let (g, p) = (self.g, &mut self.p);
        for o in &io.outputs {
            let s = *self.slot_of.get(o).ok_or_else(|| {
                cuda_err(&g.tensor(*o).name, "output not produced by the segment")
            })?;
            let host = p.add_boundary_slot(g, *o);
            if p.boundary_differs(host) || p.slots[s].half || p.slots[s].nhwc {
                p.names.push(g.tensor(*o).name.clone());
                p.steps.push(Step::Convert { x: s, y: host });
                p.outputs.push(host);
            } else {
                p.slots.pop();
                p.outputs.push(s);
            }
        }
        Ok(self.p)
    }
}
