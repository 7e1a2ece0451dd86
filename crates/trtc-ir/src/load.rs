//! ONNX file -> `Graph`.
//!
//! The file is memory-mapped and decoded with tract-onnx's protobuf types; pages already
//! decoded are handed back to the kernel as decoding goes, and each initializer's bytes
//! are released as soon as they become a tensor, so loading holds about one copy of the
//! weights at a time.

use crate::dtype::DType;
use crate::error::{IrError, Result};
use crate::graph::{Graph, ModelMeta, Node, Outlet};
use crate::op::{AttrReader, Op};
use crate::shape::{Dim, Shape, TensorInfo};
use crate::tensor::tensor_from_proto;
use prost::bytes::Buf;
use prost::Message;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use tract_onnx::pb::{self, ModelProto, NodeProto, ValueInfoProto};
use tract_onnx::prelude::Tensor;

/// Load an ONNX model (weights inline or in external data files beside it).
pub fn load_model(path: impl AsRef<Path>) -> Result<Graph> {
    let path = path.as_ref();
    let proto = read_model_proto(path)?;
    from_proto(proto, path.parent())
}

/// Decode the protobuf only.
pub fn read_model_proto(path: &Path) -> Result<ModelProto> {
    let io = |cause| IrError::Io {
        path: path.to_path_buf(),
        cause,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    if file.metadata().map_err(io)?.is_dir() {
        return Err(io(std::io::Error::other("is a directory")));
    }
    // Safety: the map is read-only and dropped before this function returns; a file
    // truncated underneath us would fault, as it would for any reader of it.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
    let _ = map.advise(memmap2::Advice::Sequential);
    let proto = ModelProto::decode(ReleasingBuf::new(&map)).map_err(|e| IrError::Decode {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    if proto.graph.is_none() {
        return Err(IrError::Decode {
            path: path.to_path_buf(),
            detail: "no graph in the file (is it an ONNX model?)".into(),
        });
    }
    Ok(proto)
}

/// A `Buf` over a memory map that drops pages behind the decoder.
struct ReleasingBuf<'a> {
    map: &'a memmap2::Mmap,
    pos: usize,
    released: usize,
}

const RELEASE_CHUNK: usize = 4 << 20;

impl<'a> ReleasingBuf<'a> {
    fn new(map: &'a memmap2::Mmap) -> Self {
        ReleasingBuf {
            map,
            pos: 0,
            released: 0,
        }
    }
}

impl Buf for ReleasingBuf<'_> {
    fn remaining(&self) -> usize {
        self.map.len() - self.pos
    }
    fn chunk(&self) -> &[u8] {
        &self.map[self.pos..]
    }
    fn advance(&mut self, cnt: usize) {
        self.pos = (self.pos + cnt).min(self.map.len());
        if self.pos - self.released >= RELEASE_CHUNK {
            let end = self.pos & !(RELEASE_CHUNK - 1);
            if end > self.released {
                // Safety: a private read-only file mapping; dropped pages are re-read from
                // the file if touched again, so no data is lost.
                unsafe {
                    let _ = self.map.unchecked_advise_range(
                        memmap2::UncheckedAdvice::DontNeed,
                        self.released,
                        end - self.released,
                    );
                }
                self.released = end;
            }
        }
    }
}

pub(crate) fn info_from_value_info(vi: &ValueInfoProto) -> TensorInfo {
    let mut info = TensorInfo::new(vi.name.clone());
    if let Some(pb::type_proto::Value::TensorType(tt)) =
        vi.r#type.as_ref().and_then(|t| t.value.as_ref())
    {
        if tt.elem_type != 0 {
            info.dtype = Some(DType::from_onnx(tt.elem_type));
        }
        info.shape = tt.shape.as_ref().map(|s| {
            s.dim
                .iter()
                .map(|d| match &d.value {
                    Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) if *v >= 0 => {
                        Dim::Known(*v as u64)
                    }
                    Some(pb::tensor_shape_proto::dimension::Value::DimParam(p))
                        if !p.is_empty() =>
                    {
                        Dim::Sym(p.clone())
                    }
                    _ => Dim::Sym("?".into()),
                })
                .collect::<Shape>()
        });
    }
    info
}

/// The op of an ONNX `Constant` node, or `None` when it is a form trtc keeps as Other.
fn constant_value(np: &NodeProto) -> Result<Option<Tensor>> {
    let mut a = AttrReader::new(&np.attribute);
    let t = if let Some(t) = a.tensor("value") {
        tensor_from_proto(t, None).map_err(|e| IrError::BadNode {
            node: np.name.clone(),
            op: "Constant".into(),
            detail: e.to_string(),
        })?
    } else if let Some(f) = a.float("value_float") {
        tract_onnx::prelude::tensor0(f)
    } else if let Some(i) = a.int("value_int") {
        tract_onnx::prelude::tensor0(i)
    } else if let Some(v) = a.floats("value_floats") {
        tract_onnx::prelude::tensor1(&v)
    } else if let Some(v) = a.ints("value_ints") {
        tract_onnx::prelude::tensor1(&v)
    } else {
        return Ok(None);
    };
    Ok(a.complete().then_some(t))
}

/// Build the graph from a decoded model. `model_dir` resolves external data.
pub fn from_proto(mut proto: ModelProto, model_dir: Option<&Path>) -> Result<Graph> {
    let meta = ModelMeta {
        ir_version: proto.ir_version,
        opset_imports: proto
            .opset_import
            .iter()
            .map(|o| (o.domain.clone(), o.version))
            .collect(),
        producer_name: proto.producer_name.clone(),
        producer_version: proto.producer_version.clone(),
        graph_name: proto
            .graph
            .as_ref()
            .map(|g| g.name.clone())
            .unwrap_or_default(),
    };
    let opset = meta.opset();
    let mut gp = proto.graph.take().ok_or(IrError::NoGraph)?;
    let mut graph = Graph::new(meta);
    let mut by_name: HashMap<String, Outlet> = HashMap::new();
    let define = |by_name: &mut HashMap<String, Outlet>, name: &str, o: Outlet| {
        if name.is_empty() {
            return Ok(());
        }
        match by_name.insert(name.to_string(), o) {
            Some(_) => Err(IrError::DuplicateTensor(name.to_string())),
            None => Ok(()),
        }
    };

    for mut tp in std::mem::take(&mut gp.initializer) {
        let tensor = tensor_from_proto(&tp, model_dir)?;
        tp.raw_data = Vec::new();
        let info = TensorInfo {
            name: tp.name.clone(),
            dtype: DType::from_datum(tensor.datum_type()),
            shape: Some(crate::shape::shape_of(tensor.shape())),
        };
        let id = graph.add_node(Node::new(
            tp.name.clone(),
            Op::Const(Arc::new(tensor)),
            0,
            vec![info],
        ));
        define(&mut by_name, &tp.name, Outlet::new(id, 0))?;
    }
    for vi in &gp.input {
        if by_name.contains_key(&vi.name) {
            continue; // an initializer also listed as input: a constant
        }
        let id = graph.add_input(info_from_value_info(vi));
        define(&mut by_name, &vi.name, Outlet::new(id, 0))?;
    }
    let mut ids = Vec::with_capacity(gp.node.len());
    for (ix, np) in gp.node.iter().enumerate() {
        let name = if np.name.is_empty() {
            format!("{}_{ix}", np.op_type)
        } else {
            np.name.clone()
        };
        let standard = np.domain.is_empty() || np.domain == "ai.onnx";
        let op = match (standard && np.op_type == "Constant").then(|| constant_value(np)) {
            Some(Ok(Some(t))) => Op::Const(Arc::new(t)),
            Some(Err(e)) => return Err(e),
            _ => Op::from_onnx(&np.op_type, &np.domain, &np.attribute, opset),
        };
        let outputs = np
            .output
            .iter()
            .map(|o| TensorInfo::new(o.clone()))
            .collect();
        let mut node = Node::new(name, op, np.input.len(), outputs);
        if let Some(meta) = np.doc_string.strip_prefix(crate::export::META_PREFIX) {
            if let Ok(m) = serde_json::from_str::<crate::export::NodeMeta>(meta) {
                node.origin = m.origin;
                node.fused_ops = m.fused_ops;
            }
        }
        if let Op::Const(t) = &node.op {
            node.outputs[0].dtype = DType::from_datum(t.datum_type());
            node.outputs[0].shape = Some(crate::shape::shape_of(t.shape()));
        }
        let id = graph.add_node(node);
        for (slot, o) in np.output.iter().enumerate() {
            define(&mut by_name, o, Outlet::new(id, slot))?;
        }
        ids.push(id);
    }
    for (np, &id) in gp.node.iter().zip(&ids) {
        for (slot, input) in np.input.iter().enumerate() {
            if input.is_empty() {
                continue;
            }
            let from = by_name.get(input).ok_or_else(|| IrError::DanglingInput {
                node: graph.node(id).name.clone(),
                tensor: input.clone(),
            })?;
            graph.connect(*from, id, slot)?;
        }
    }
    let mut outputs = vec![];
    for vi in &gp.output {
        let o = *by_name
            .get(&vi.name)
            .ok_or_else(|| IrError::DanglingOutput(vi.name.clone()))?;
        apply_value_info(&mut graph, o, vi);
        outputs.push(o);
    }
    graph.set_outputs(outputs);
    for vi in &gp.value_info {
        if let Some(&o) = by_name.get(&vi.name) {
            apply_value_info(&mut graph, o, vi);
        }
    }
    drop(gp);
    graph.topo_order()?;
    crate::infer::infer_shapes(&mut graph)?;
    Ok(graph)
}

fn apply_value_info(graph: &mut Graph, o: Outlet, vi: &ValueInfoProto) {
    let given = info_from_value_info(vi);
    let mut info = graph.tensor(o).clone();
    if info.dtype.is_none() {
        info.dtype = given.dtype;
    }
    if info.shape.is_none() {
        info.shape = given.shape;
    }
    graph.set_tensor_info(o, info);
}
