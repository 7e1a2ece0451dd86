//! The compiled `.trtc` plan: one self-contained file.
//!
//! Layout: `TRTCPLAN` magic, format version (u32 LE), header length (u64 LE), the JSON
//! header (trtc version, options, report, segments with their nodes and engine payload
//! ranges), the body (the optimized graph as trtc-flavored ONNX, then engine payloads),
//! and an FNV-1a 64 checksum (u64 LE) of everything before it. A plan from another trtc
//! version, a truncated or an altered one is refused with a clear error.

use crate::error::{BackendError, Result};
use crate::options::CompileOptions;
use crate::partition::{Fallback, Partition, Segment, SegmentBackend};
use crate::report::CompileReport;
use crate::support::FallbackReason;
use prost::Message;
use serde::{Deserialize, Serialize};

use crate::engine::EnginePayload;
use std::collections::BTreeMap;
use std::path::Path;
use trtc_ir::{from_proto, to_model_proto_as, Flavor, Graph, NodeId};

pub const MAGIC: &[u8; 8] = b"TRTCPLAN";
pub const FORMAT_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct ByteRange {
    offset: u64,
    len: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct PlanSegment {
    id: usize,
    backend: SegmentBackend,
    /// Each node by its first output tensor's name (unique in a valid graph).
    nodes: Vec<String>,
    /// The engine payload, when one was built at compile time.
    engine: Option<(String, ByteRange)>,
    /// The segment's own precision, where not the plan's (`Segment::precision`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    precision: Option<trtc_engine::Precision>,
}

/// One engine of a shape key: (segment id, engine kind, payload bytes).
type ShapeEngineEntry = (usize, String, ByteRange);

#[derive(Clone, Debug, Serialize, Deserialize)]
struct PlanHeader {
    trtc_version: String,
    options: CompileOptions,
    report: CompileReport,
    graph: ByteRange,
    segments: Vec<PlanSegment>,
    fallback: Vec<(String, FallbackReason)>,
    /// A dynamic model's engines per input-shape key: (key, [(segment id, kind, bytes)]).
    #[serde(default)]
    shape_engines: Vec<(String, Vec<ShapeEngineEntry>)>,
}

/// A compiled model: optimized graph, partition, options, report, and the engines'
/// payloads (tactics timed at compile time) by segment id.
#[derive(Clone, Debug)]
pub struct Plan {
    pub graph: Graph,
    pub partition: Partition,
    pub options: CompileOptions,
    pub report: CompileReport,
    pub engines: BTreeMap<usize, EnginePayload>,
    /// A model with dynamic dims past the batch: the payloads of each input-shape key's
    /// engines (`--shapes`), by key, then by segment id of that key's partition.
    pub shape_engines: crate::runtime::ShapePayloads,
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn key(g: &Graph, n: NodeId) -> String {
    g.node(n)
        .outputs
        .first()
        .map(|t| t.name.clone())
        .unwrap_or_default()
}

impl Plan {
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut body = to_model_proto_as(&self.graph, Flavor::Trtc)?.encode_to_vec();
        let graph_len = body.len() as u64;
        let mut engine_ranges = BTreeMap::new();
        for (id, p) in &self.engines {
            let offset = body.len() as u64;
            body.extend_from_slice(&p.bytes);
            engine_ranges.insert(
                *id,
                (
                    p.kind.clone(),
                    ByteRange {
                        offset,
                        len: p.bytes.len() as u64,
                    },
                ),
            );
        }
        let mut shape_engines = vec![];
        for (k, engines) in &self.shape_engines {
            let mut entries = vec![];
            for (id, p) in engines {
                let offset = body.len() as u64;
                body.extend_from_slice(&p.bytes);
                entries.push((
                    *id,
                    p.kind.clone(),
                    ByteRange {
                        offset,
                        len: p.bytes.len() as u64,
                    },
                ));
            }
            shape_engines.push((k.clone(), entries));
        }
        let header = PlanHeader {
            shape_engines,
            trtc_version: env!("CARGO_PKG_VERSION").into(),
            options: self.options.clone(),
            report: self.report.clone(),
            graph: ByteRange {
                offset: 0,
                len: graph_len,
            },
            segments: self
                .partition
                .segments
                .iter()
                .map(|s| PlanSegment {
                    id: s.id,
                    backend: s.backend,
                    nodes: s.nodes.iter().map(|&n| key(&self.graph, n)).collect(),
                    engine: engine_ranges.remove(&s.id),
                    precision: s.precision,
                })
                .collect(),
            fallback: self
                .partition
                .fallback
                .iter()
                .map(|f| (key(&self.graph, f.node), f.reason.clone()))
                .collect(),
        };
        let header = serde_json::to_vec(&header).map_err(|e| BackendError::Io(e.to_string()))?;
        let mut out = Vec::with_capacity(32 + header.len() + body.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&body);
        let sum = fnv1a(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        Ok(out)
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_bytes()?)
            .map_err(|e| BackendError::Io(format!("writing {}: {e}", path.display())))
    }

    /// Does this file start like a plan?
    pub fn is_plan_file(path: &Path) -> bool {
        use std::io::Read;
        let mut magic = [0u8; 8];
        std::fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut magic))
            .is_ok()
            && &magic == MAGIC
    }

    pub fn read(path: &Path) -> Result<Plan> {
        let bytes = std::fs::read(path).map_err(|e| BackendError::Plan {
            path: path.display().to_string(),
            detail: e.to_string(),
        })?;
        Self::from_bytes(&bytes).map_err(|e| match e {
            BackendError::Plan { detail, .. } => BackendError::Plan {
                path: path.display().to_string(),
                detail,
            },
            other => other,
        })
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Plan> {
        let bad = |d: &str| BackendError::Plan {
            path: String::new(),
            detail: d.to_string(),
        };
        if bytes.len() < 28 || &bytes[..8] != MAGIC {
            return Err(bad("not a trtc plan (bad magic or too short)"));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().map_err(|_| bad("truncated"))?);
        if version != FORMAT_VERSION {
            return Err(bad(&format!("plan format {version}, this trtc reads format {FORMAT_VERSION}: recompile the model")));
        }
        let (content, sum) = bytes.split_at(bytes.len() - 8);
        let sum = u64::from_le_bytes(sum.try_into().map_err(|_| bad("truncated"))?);
        let header_len =
            u64::from_le_bytes(bytes[12..20].try_into().map_err(|_| bad("truncated"))?) as usize;
        if 20usize
            .checked_add(header_len)
            .is_none_or(|end| end > content.len())
        {
            return Err(bad("truncated (the header runs past the end of the file)"));
        }
        if fnv1a(content) != sum {
            return Err(bad("checksum mismatch: the file is truncated or altered"));
        }
        let header: PlanHeader = serde_json::from_slice(&bytes[20..20 + header_len])
            .map_err(|e| bad(&format!("corrupt header: {e}")))?;
        if header.trtc_version != env!("CARGO_PKG_VERSION") {
            return Err(bad(&format!(
                "compiled by trtc {}, this is trtc {}: recompile the model",
                header.trtc_version,
                env!("CARGO_PKG_VERSION")
            )));
        }
        let body = &content[20 + header_len..];
        let range = |r: &ByteRange| -> Result<&[u8]> {
            let start = r.offset as usize;
            let end = start
                .checked_add(r.len as usize)
                .ok_or_else(|| bad("bad byte range"))?;
            body.get(start..end)
                .ok_or_else(|| bad("a byte range runs past the end of the file"))
        };
        let proto = trtc_ir::tract_onnx::pb::ModelProto::decode(range(&header.graph)?)
            .map_err(|e| bad(&format!("corrupt graph: {e}")))?;
        let graph = from_proto(proto, None)?;
        let names = graph.tensor_names();
        let node = |k: &str| {
            names
                .get(k)
                .map(|o| o.node)
                .ok_or_else(|| bad(&format!("segment node `{k}` is not in the graph")))
        };
        let mut segments = vec![];
        let mut engines = BTreeMap::new();
        for s in &header.segments {
            if let Some((kind, r)) = &s.engine {
                engines.insert(
                    s.id,
                    EnginePayload {
                        kind: kind.clone(),
                        bytes: range(r)?.to_vec(),
                    },
                );
            }
            let nodes = s
                .nodes
                .iter()
                .map(|k| node(k))
                .collect::<Result<Vec<_>>>()?;
            segments.push(Segment {
                id: s.id,
                backend: s.backend,
                nodes,
                precision: s.precision,
            });
        }
        let fallback = header
            .fallback
            .iter()
            .map(|(k, r)| {
                Ok(Fallback {
                    node: node(k)?,
                    reason: r.clone(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let partition = Partition { segments, fallback };
        partition.check(&graph, 1)?;
        let mut shape_engines = BTreeMap::new();
        for (k, entries) in &header.shape_engines {
            crate::shapes::parse_key(&graph, k).map_err(|e| bad(&e.to_string()))?;
            let mut engines = BTreeMap::new();
            for (id, kind, r) in entries {
                engines.insert(
                    *id,
                    EnginePayload {
                        kind: kind.clone(),
                        bytes: range(r)?.to_vec(),
                    },
                );
            }
            shape_engines.insert(k.clone(), engines);
        }
        Ok(Plan {
            graph,
            partition,
            options: header.options,
            report: header.report,
            engines,
            shape_engines,
        })
    }
}
