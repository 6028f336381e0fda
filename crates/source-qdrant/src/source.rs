//! [`QdrantSource`]: what `connect` learns about a collection (vectors, distance, id kinds and
//! range, payload keys), and the readers of its id-range partitions.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float32Array, Int64Builder, MapArray, RecordBatch, StringBuilder, StructArray,
    UInt32Array,
};
use arrow::buffer::{OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use vmig_core::metadata::{self, KeyScan, Layout, MetadataMode, Words};
use vmig_core::vector::{self, META_METRIC, META_PRIMARY_KEY};
use vmig_core::{
    Error, PartitionId, PartitionInfo, Position, Result, Source, SourceBatch, SourceContext,
    SourceStream,
};

use crate::client::Client;
use crate::{QdrantSourceConfig, Uint8Mode, PLUGIN};

/// A Qdrant point id, ordered as Qdrant orders them: every integer before every UUID, UUIDs by
/// their bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PointId {
    /// An unsigned integer id.
    Num(u64),
    /// A UUID, as its 128 bits (big-endian: the order of its hex text).
    Uuid(u128),
}

impl PointId {
    /// Reads an id as Qdrant writes it (a JSON integer, or a UUID string with or without
    /// hyphens).
    pub fn from_json(v: &Value) -> Option<PointId> {
        match v {
            Value::Number(n) => n.as_u64().map(PointId::Num),
            Value::String(s) => {
                let hex: String = s.chars().filter(|c| *c != '-').collect();
                if hex.len() != 32 {
                    return None;
                }
                u128::from_str_radix(&hex, 16).ok().map(PointId::Uuid)
            }
            _ => None,
        }
    }

    /// The id as Qdrant's API takes it.
    pub fn to_json(self) -> Value {
        match self {
            PointId::Num(n) => json!(n),
            PointId::Uuid(_) => Value::String(self.to_string()),
        }
    }
}

impl std::fmt::Display for PointId {
    /// Integers in decimal, UUIDs hyphenated lowercase (as Qdrant prints them).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PointId::Num(n) => write!(f, "{n}"),
            PointId::Uuid(u) => {
                let h = format!("{u:032x}");
                write!(
                    f,
                    "{}-{}-{}-{}-{}",
                    &h[..8],
                    &h[8..12],
                    &h[12..16],
                    &h[16..20],
                    &h[20..]
                )
            }
        }
    }
}

/// Where a partition resumes: after the last point id it delivered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QdrantPosition {
    /// The last id delivered, as Qdrant writes it (`null`: none yet).
    pub last: Value,
}

/// The names vmig gives its own columns; a payload key with one of them goes into `payload`.
const RESERVED: [&str; 2] = ["id", "payload"];

const WORDS: Words = Words {
    key: "payload key",
    scan_option: "payload_scan_rows",
    mode_option: "payload_mode",
};

/// What one copied vector becomes.
#[derive(Debug, Clone)]
enum VecKind {
    /// FloatVector of this dimension.
    Dense(usize),
    /// A uint8 vector of this dimension copied as a BinaryVector of 8 × bits.
    Bytes(usize),
    /// SparseFloatVector.
    Sparse,
}

/// One vector of the collection that is copied.
#[derive(Debug, Clone)]
struct VecSpec {
    /// Qdrant's name (`""`: the unnamed vector).
    name: String,
    /// The field it becomes.
    field: String,
    kind: VecKind,
}

/// An id range `[start, end)` read by one partition (`None`: open).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Range {
    start: Option<PointId>,
    end: Option<PointId>,
}

/// A collection ready to be read.
#[derive(Debug, Clone)]
pub struct QdrantSource {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: Client,
    cfg: QdrantSourceConfig,
    /// `collections/{name}/points/scroll`.
    scroll_path: String,
    schema: SchemaRef,
    vectors: Vec<VecSpec>,
    /// Int64 ids (else Utf8).
    int_ids: bool,
    layout: Layout,
    ranges: Vec<Range>,
    /// Qdrant's approximate `points_count`.
    points: Option<u64>,
}

/// Qdrant's distance → the Milvus metric, `None` for Manhattan.
fn metric_of(distance: &str) -> Result<Option<&'static str>> {
    match distance {
        "Cosine" => Ok(Some("COSINE")),
        "Euclid" => Ok(Some("L2")),
        "Dot" => Ok(Some("IP")),
        "Manhattan" => Ok(None),
        other => Err(Error::unsupported(
            format!("Qdrant distance `{other}`"),
            "vmig knows the distances Cosine, Euclid, Dot and Manhattan",
        )),
    }
}

/// One dense vector's configuration (`VectorParams`).
struct Params<'a> {
    name: String,
    size: usize,
    distance: &'a str,
    datatype: &'a str,
    multi: bool,
}

fn params<'a>(name: &str, p: &'a Value, collection: &str) -> Result<Params<'a>> {
    let bad = || {
        Error::data(
            format!("collection `{collection}`"),
            format!("the configuration of vector `{name}` has no `size` and `distance`: {p}"),
        )
    };
    Ok(Params {
        name: name.to_string(),
        size: p.get("size").and_then(Value::as_u64).ok_or_else(bad)? as usize,
        distance: p.get("distance").and_then(Value::as_str).ok_or_else(bad)?,
        datatype: p
            .get("datatype")
            .and_then(Value::as_str)
            .unwrap_or("float32"),
        multi: p.get("multivector_config").is_some_and(|m| !m.is_null()),
    })
}

impl QdrantSource {
    /// Connects, reads the collection's configuration, probes its ids and scans its payload
    /// keys.
    ///
    /// # Errors
    /// Unreachable server, a refused key, a missing collection, an unknown vector name, a
    /// multivector, or an answer that does not fit Qdrant's API.
    pub async fn connect(cfg: QdrantSourceConfig) -> Result<QdrantSource> {
        let client = Client::new(&cfg)?;
        let name = cfg.collection.clone();
        let seg = url_segment(&name);
        let info = client
            .result(
                Method::GET,
                &format!("collections/{seg}"),
                None,
                &format!("reading collection `{name}`"),
            )
            .await?;
        let p = info.pointer("/config/params").ok_or_else(|| {
            Error::data(
                format!("collection `{name}`"),
                "the collection info has no `config.params`; is this Qdrant's REST API?",
            )
        })?;
        let points = info.get("points_count").and_then(Value::as_u64);
        // The dense vectors: one unnamed (`VectorParams`) or a map of named ones.
        let mut dense = Vec::new();
        match p.get("vectors") {
            Some(v) if v.get("size").is_some() => dense.push(params("", v, &name)?),
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    dense.push(params(k, v, &name)?);
                }
            }
            _ => {}
        }
        let sparse: Vec<String> = p
            .get("sparse_vectors")
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        let available = || {
            let mut all: Vec<String> = dense
                .iter()
                .map(|d| {
                    if d.name.is_empty() {
                        "(the unnamed vector)".to_string()
                    } else {
                        format!("`{}`", d.name)
                    }
                })
                .collect();
            all.extend(sparse.iter().map(|s| format!("`{s}` (sparse)")));
            if all.is_empty() {
                "none".to_string()
            } else {
                all.join(", ")
            }
        };
        let wanted = cfg.wanted_vectors();
        let chosen_dense: Vec<&Params<'_>> = match &wanted {
            None => dense.iter().collect(),
            Some(w) => {
                for n in w {
                    if !dense.iter().any(|d| &d.name == n) && !sparse.contains(n) {
                        return Err(Error::config(
                            PLUGIN,
                            format!(
                                "collection `{name}` has no vector `{n}`; it has {}",
                                available()
                            ),
                        ));
                    }
                }
                dense.iter().filter(|d| w.contains(&d.name)).collect()
            }
        };
        let chosen_sparse: Vec<&String> = sparse
            .iter()
            .filter(|s| wanted.as_ref().is_none_or(|w| w.contains(s)))
            .collect();
        if chosen_dense.is_empty() && chosen_sparse.is_empty() {
            return Err(Error::unsupported(
                format!("collection `{name}`"),
                "it has no vectors to copy (vmig copies collections into Milvus, which needs a vector field)",
            ));
        }
        let mut specs = Vec::new();
        let mut metric: Option<&'static str> = None;
        let mut manhattan = Vec::new();
        for d in &chosen_dense {
            let shown = if d.name.is_empty() {
                "the unnamed vector".to_string()
            } else {
                format!("vector `{}`", d.name)
            };
            if d.multi {
                return Err(Error::unsupported(
                    format!("collection `{name}`, {shown}"),
                    format!(
                        "it is a multivector (several vectors per point), which Milvus has no field type for; copy the other vectors with `vectors = [...]` (the collection has {})",
                        available()
                    ),
                ));
            }
            let m = metric_of(d.distance)?;
            if m.is_none() {
                manhattan.push(shown.clone());
            }
            if metric.is_none() {
                metric = m;
            }
            let kind = match (d.datatype, cfg.uint8) {
                ("uint8", Uint8Mode::Binary) => VecKind::Bytes(d.size),
                _ => VecKind::Dense(d.size),
            };
            specs.push(VecSpec {
                name: d.name.clone(),
                field: if d.name.is_empty() {
                    "vector".to_string()
                } else {
                    d.name.clone()
                },
                kind,
            });
        }
        for s in &chosen_sparse {
            specs.push(VecSpec {
                name: (*s).clone(),
                field: (*s).clone(),
                kind: VecKind::Sparse,
            });
        }
        for s in &specs {
            if s.field == "id" || s.field == "payload" || s.field == "$meta" {
                return Err(Error::config(
                    PLUGIN,
                    format!(
                        "collection `{name}` has a vector named `{}`, which is the name of a column vmig makes; leave it out with `vectors = [...]`",
                        s.field
                    ),
                ));
            }
        }
        let dense_datatypes: Vec<String> = chosen_dense
            .iter()
            .filter(|d| d.datatype != "float32")
            .map(|d| format!("{}: {}", d.name, d.datatype))
            .collect();
        // The ids.
        let scroll_path = format!("collections/{seg}/points/scroll");
        let probe = Probe {
            client: &client,
            path: &scroll_path,
            filter: cfg.filter.as_ref(),
            collection: &name,
        };
        let first = probe.first_at(None).await?;
        let (max_num, first_uuid) = match first {
            None => (None, None),
            Some(PointId::Uuid(u)) => (None, Some(u)),
            Some(PointId::Num(lo)) => {
                let max = probe.max_num(lo).await?;
                let u = match probe.first_at(Some(PointId::Uuid(0))).await? {
                    Some(PointId::Uuid(u)) => Some(u),
                    _ => None,
                };
                (Some((lo, max)), u)
            }
        };
        let int_ids = first_uuid.is_none() && max_num.is_none_or(|(_, m)| m <= i64::MAX as u64);
        let ranges = split(cfg.partitions, max_num, first_uuid.is_some());
        // The payload keys.
        let started = std::time::Instant::now();
        let (keys, scanned, complete) = if cfg.payload_mode == MetadataMode::Columns {
            probe
                .scan_keys(cfg.payload_scan_rows, cfg.batch_size)
                .await?
        } else {
            (KeyScan::default(), 0, false)
        };
        let mut reserved: Vec<&str> = RESERVED.to_vec();
        reserved.extend(specs.iter().map(|s| s.field.as_str()));
        let layout = Layout::new(cfg.payload_mode, &keys, "payload", &reserved, WORDS);
        let mut fields = vec![Field::new(
            "id",
            if int_ids {
                DataType::Int64
            } else {
                DataType::Utf8
            },
            false,
        )];
        for s in &specs {
            fields.push(match s.kind {
                VecKind::Dense(d) => vector::float_vector_field(&s.field, d),
                VecKind::Bytes(d) => vector::binary_vector_field(&s.field, d * 8)?,
                VecKind::Sparse => vector::sparse_float_vector_field(&s.field),
            });
        }
        fields.extend(layout.fields());
        let mut meta = HashMap::new();
        if let Some(m) = metric {
            meta.insert(META_METRIC.to_string(), m.to_string());
        }
        meta.insert(META_PRIMARY_KEY.to_string(), "id".to_string());
        meta.insert("qdrant.collection".to_string(), name.clone());
        meta.insert(
            "qdrant.ids".to_string(),
            match (max_num, first_uuid) {
                (None, None) => "none (empty)".to_string(),
                (Some((lo, hi)), None) => format!("integers {lo}..={hi}"),
                (None, Some(_)) => "UUIDs".to_string(),
                (Some((lo, hi)), Some(_)) => format!("integers {lo}..={hi} and UUIDs"),
            },
        );
        if !manhattan.is_empty() {
            meta.insert(
                "qdrant.metric_unset".to_string(),
                format!(
                    "{} uses the Manhattan distance, which Milvus has no metric for; give the index metric in the sink",
                    manhattan.join(", ")
                ),
            );
        }
        if !dense_datatypes.is_empty() {
            meta.insert(
                "qdrant.vector_datatypes".to_string(),
                dense_datatypes.join(", "),
            );
        }
        if wanted.is_some() || dense.len() + sparse.len() > specs.len() {
            meta.insert(
                "qdrant.vectors".to_string(),
                format!(
                    "copying {} of {}",
                    specs
                        .iter()
                        .map(|s| format!("`{}`", s.field))
                        .collect::<Vec<_>>()
                        .join(", "),
                    available()
                ),
            );
        }
        if layout.is_dynamic() {
            meta.insert("milvus.dynamic_field".to_string(), "true".to_string());
        }
        if !layout.json_keys().is_empty() {
            meta.insert(
                "qdrant.payload_json_keys".to_string(),
                layout.json_keys().join(", "),
            );
        }
        if cfg.payload_mode == MetadataMode::Columns {
            meta.insert(
                "qdrant.payload_scan".to_string(),
                format!(
                    "{scanned} points{} in {:.1?}",
                    if complete { " (all)" } else { "" },
                    started.elapsed()
                ),
            );
        }
        let schema = Arc::new(Schema::new(fields).with_metadata(meta));
        tracing::info!(
            message = "Connected to Qdrant.",
            url = %client.display_url(),
            collection = %name,
            points = ?points,
            vectors = specs.len(),
            int_ids,
            payload_columns = layout.typed().len(),
            payload_scan_points = scanned,
        );
        Ok(QdrantSource {
            inner: Arc::new(Inner {
                client,
                cfg,
                scroll_path,
                schema,
                vectors: specs,
                int_ids,
                layout,
                ranges,
                points,
            }),
        })
    }
}

/// The collection name as one URL path segment.
fn url_segment(name: &str) -> String {
    let mut u = url::Url::parse("http://x/").unwrap_or_else(|_| unreachable!());
    u.path_segments_mut()
        .map(|mut s| {
            s.push(name);
        })
        .unwrap_or_else(|()| unreachable!());
    u.path().trim_start_matches('/').to_string()
}

/// Splits the ids into `n` ranges: the integer range `[lo, hi]` evenly, the UUID space by its
/// leading bits. With both kinds, about half the partitions each.
fn split(n: u32, num: Option<(u64, u64)>, uuids: bool) -> Vec<Range> {
    let n = u128::from(n.max(1));
    let (n_num, n_uuid) = match (num.is_some(), uuids) {
        (true, true) if n >= 2 => (n / 2, n - n / 2),
        (true, _) => (n, 0),
        (false, _) => (0, n),
    };
    if n == 1 || (num.is_none() && !uuids) {
        return vec![Range {
            start: None,
            end: None,
        }];
    }
    let mut out = Vec::new();
    if let Some((lo, hi)) = num {
        let (lo, hi) = (u128::from(lo), u128::from(hi));
        // Never more partitions than integers.
        let n_num = n_num.min(hi - lo + 1);
        let width = (hi - lo + 1) / n_num;
        for i in 0..n_num {
            let start = lo + i * width;
            let end = lo + (i + 1) * width;
            let last = i + 1 == n_num;
            out.push(Range {
                start: Some(PointId::Num(start as u64)),
                end: if last {
                    uuids.then_some(PointId::Uuid(0))
                } else {
                    Some(PointId::Num(end.min(u128::from(u64::MAX)) as u64))
                },
            });
        }
    }
    if let Some(width) = u128::MAX.checked_div(n_uuid) {
        for i in 0..n_uuid {
            out.push(Range {
                start: Some(PointId::Uuid(i * width)),
                end: (i + 1 < n_uuid).then(|| PointId::Uuid((i + 1) * width)),
            });
        }
    }
    out
}

/// One-point scrolls that find the first id at or after an offset.
struct Probe<'a> {
    client: &'a Client,
    path: &'a str,
    filter: Option<&'a Value>,
    collection: &'a str,
}

impl Probe<'_> {
    async fn scroll(&self, mut body: Value, what: &str) -> Result<Value> {
        if let Some(f) = self.filter {
            body["filter"] = f.clone();
        }
        self.client
            .result(Method::POST, self.path, Some(&body), what)
            .await
    }

    /// The first id at or after `offset` (or of all), or `None`.
    async fn first_at(&self, offset: Option<PointId>) -> Result<Option<PointId>> {
        let mut body = json!({"limit": 1, "with_payload": false, "with_vector": false});
        if let Some(o) = offset {
            body["offset"] = o.to_json();
        }
        let what = format!("probing the point ids of `{}`", self.collection);
        let r = self.scroll(body, &what).await?;
        match r.pointer("/points/0/id") {
            None => Ok(None),
            Some(v) => PointId::from_json(v).map(Some).ok_or_else(|| {
                Error::data(
                    format!("collection `{}`", self.collection),
                    format!("point id {v} is neither an unsigned integer nor a UUID"),
                )
            }),
        }
    }

    /// The largest integer id, given that `lo` is one: a binary search of one-point scrolls.
    async fn max_num(&self, lo: u64) -> Result<u64> {
        let (mut lo, mut hi) = (u128::from(lo), u128::from(u64::MAX) + 1);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            match self.first_at(Some(PointId::Num(mid as u64))).await? {
                Some(PointId::Num(x)) => lo = u128::from(x),
                _ => hi = mid,
            }
        }
        Ok(lo as u64)
    }

    /// Reads the payload of every point (or the first `limit`), returning the keys, the points
    /// read and whether that was all of them.
    async fn scan_keys(&self, limit: Option<u64>, page: usize) -> Result<(KeyScan, u64, bool)> {
        let mut keys = KeyScan::default();
        let limit = limit.unwrap_or(u64::MAX);
        let page = (page as u64).max(1000);
        let mut offset: Option<Value> = None;
        let mut read = 0u64;
        let what = format!("scanning the payload keys of `{}`", self.collection);
        loop {
            let want = page.min(limit - read);
            if want == 0 {
                return Ok((keys, read, false));
            }
            let mut body = json!({"limit": want, "with_payload": true, "with_vector": false});
            if let Some(o) = &offset {
                body["offset"] = o.clone();
            }
            let r = self.scroll(body, &what).await?;
            let pts = r.get("points").and_then(Value::as_array);
            for p in pts.into_iter().flatten() {
                if let Some(m) = p.get("payload").and_then(Value::as_object) {
                    keys.observe(m);
                }
                read += 1;
            }
            match r.get("next_page_offset") {
                Some(v) if !v.is_null() => offset = Some(v.clone()),
                _ => return Ok((keys, read, true)),
            }
        }
    }
}

#[derive(Deserialize)]
struct ScrollAnswer<'a> {
    #[serde(borrow)]
    result: ScrollResult<'a>,
}

#[derive(Deserialize)]
struct ScrollResult<'a> {
    #[serde(borrow)]
    points: Vec<Record<'a>>,
    #[serde(default)]
    next_page_offset: Option<Value>,
}

#[derive(Deserialize)]
struct Record<'a> {
    id: Value,
    #[serde(default)]
    payload: Option<Map<String, Value>>,
    #[serde(borrow, default)]
    vector: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct SparseIn<'a> {
    indices: Vec<u32>,
    #[serde(borrow)]
    values: &'a RawValue,
}

#[async_trait]
impl Source for QdrantSource {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.inner.schema)
    }

    async fn partitions(&self) -> Result<Vec<PartitionInfo>> {
        let inner = &self.inner;
        let name = &inner.cfg.collection;
        let n = inner.ranges.len() as u64;
        Ok(inner
            .ranges
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let show = |p: Option<PointId>| p.map_or_else(String::new, |p| p.to_string());
                PartitionInfo {
                    id: PartitionId::new(i.to_string()),
                    estimated_rows: if inner.cfg.filter.is_some() {
                        None
                    } else {
                        inner.points.map(|p| p / n.max(1))
                    },
                    description: if n == 1 {
                        format!("points of `{name}`")
                    } else {
                        format!(
                            "points of `{name}` with ids {}..{}",
                            show(r.start),
                            show(r.end)
                        )
                    },
                    target_partition: None,
                }
            })
            .collect())
    }

    fn open(
        &self,
        partition: &PartitionId,
        resume_after: Option<&Position>,
        ctx: &SourceContext,
    ) -> Result<SourceStream> {
        let inner = Arc::clone(&self.inner);
        let range = partition
            .0
            .parse::<usize>()
            .ok()
            .and_then(|p| inner.ranges.get(p).copied())
            .ok_or_else(|| {
                Error::config(
                    PLUGIN,
                    format!(
                        "`{}` has no partition `{partition}` (was the checkpoint taken with another `partitions`, or did the ids change?)",
                        inner.cfg.collection
                    ),
                )
            })?;
        let mut after = None;
        if let Some(p) = resume_after {
            let pos = p.decode::<QdrantPosition>()?;
            if !pos.last.is_null() {
                let id = PointId::from_json(&pos.last).ok_or_else(|| {
                    Error::config(
                        PLUGIN,
                        format!("the checkpoint's last id {} is not a point id", pos.last),
                    )
                })?;
                if range.start.is_some_and(|s| id < s) || range.end.is_some_and(|e| id >= e) {
                    return Err(Error::config(
                        PLUGIN,
                        format!(
                            "the checkpoint's last id {id} is outside partition {partition} of `{}`; were points added with new ids since?",
                            inner.cfg.collection
                        ),
                    ));
                }
                after = Some(id);
            }
        }
        let page = inner.cfg.batch_size.min(ctx.batch_rows.get()).max(1);
        let state = Reader {
            inner,
            offset: after.or(range.start),
            after,
            end: range.end,
            page,
            done: false,
            cancel: ctx.cancel.clone(),
        };
        let stream = futures::stream::try_unfold(state, |mut r| async move {
            match r.next().await? {
                Some(batch) => Ok(Some((batch, r))),
                None => Ok(None),
            }
        });
        Ok(vmig_core::source::stop_after_error(stream))
    }
}

struct Reader {
    inner: Arc<Inner>,
    /// The next scroll's `offset` (inclusive).
    offset: Option<PointId>,
    /// Ids up to this one were delivered (a resume): skipped.
    after: Option<PointId>,
    /// The first id not of this partition.
    end: Option<PointId>,
    page: usize,
    done: bool,
    cancel: tokio_util::sync::CancellationToken,
}

impl Reader {
    fn location(&self) -> String {
        format!(
            "Qdrant collection `{}` at {}",
            self.inner.cfg.collection,
            self.inner.client.display_url()
        )
    }

    /// The next batch (one scroll page), or `None` at the end of the partition.
    async fn next(&mut self) -> Result<Option<SourceBatch>> {
        loop {
            if self.done {
                return Ok(None);
            }
            let inner = Arc::clone(&self.inner);
            let with_vector: Value = if inner.vectors.len() == 1 && inner.vectors[0].name.is_empty()
            {
                Value::Bool(true)
            } else {
                Value::Array(
                    inner
                        .vectors
                        .iter()
                        .map(|v| Value::String(v.name.clone()))
                        .collect(),
                )
            };
            let mut body = json!({
                "limit": self.page,
                "with_payload": true,
                "with_vector": with_vector,
            });
            if let Some(o) = self.offset {
                body["offset"] = o.to_json();
            }
            if let Some(f) = &inner.cfg.filter {
                body["filter"] = f.clone();
            }
            let what = format!(
                "scrolling `{}` from id {}",
                inner.cfg.collection,
                self.offset
                    .map_or_else(|| "(start)".to_string(), |o| o.to_string())
            );
            let text = tokio::select! {
                biased;
                () = self.cancel.cancelled() => return Err(Error::Cancelled),
                a = inner.client.bytes(Method::POST, &inner.scroll_path, Some(&body), &what) => a?,
            };
            let answer: ScrollAnswer<'_> = serde_json::from_slice(&text).map_err(|e| {
                Error::data(
                    self.location(),
                    format!("the scroll answer ({what}) does not fit Qdrant's ScrollResult: {e}"),
                )
            })?;
            let page = answer.result;
            let mut rows = Vec::with_capacity(page.points.len());
            let mut last = None;
            for p in &page.points {
                let id = PointId::from_json(&p.id).ok_or_else(|| {
                    Error::data(
                        self.location(),
                        format!(
                            "point id {} is neither an unsigned integer nor a UUID",
                            p.id
                        ),
                    )
                })?;
                if let Some(prev) = last.or(self.after) {
                    if id <= prev {
                        if Some(id) == self.after {
                            continue;
                        }
                        return Err(Error::data(
                            self.location(),
                            format!(
                                "point id {id} came after {prev}: the scroll is not in id order, so it cannot be resumed exactly"
                            ),
                        ));
                    }
                }
                if self.end.is_some_and(|e| id >= e) {
                    self.done = true;
                    break;
                }
                last = Some(id);
                rows.push((id, p));
            }
            match &page.next_page_offset {
                Some(v) if !v.is_null() && !self.done => {
                    let next = PointId::from_json(v).ok_or_else(|| {
                        Error::data(
                            self.location(),
                            format!("`next_page_offset` {v} is not a point id"),
                        )
                    })?;
                    self.offset = Some(next);
                }
                _ => self.done = true,
            }
            let Some(last) = last else { continue };
            let batch = self.build(&rows)?;
            self.after = Some(last);
            return Ok(Some(SourceBatch::new(
                batch,
                Position::encode(&QdrantPosition {
                    last: last.to_json(),
                })?,
            )));
        }
    }

    fn build(&self, rows: &[(PointId, &Record<'_>)]) -> Result<RecordBatch> {
        let inner = &self.inner;
        let n = rows.len();
        let loc = |id: &PointId| format!("{}, point {id}", self.location());
        let mut cols: Vec<VecCol> = inner
            .vectors
            .iter()
            .map(|v| match v.kind {
                VecKind::Dense(d) => VecCol::Dense(Vec::with_capacity(n * d)),
                VecKind::Bytes(d) => VecCol::Bytes(Vec::with_capacity(n * d)),
                VecKind::Sparse => VecCol::Sparse {
                    offsets: vec![0],
                    keys: Vec::new(),
                    values: Vec::new(),
                },
            })
            .collect();
        let mut int_ids = Int64Builder::with_capacity(if inner.int_ids { n } else { 0 });
        let mut str_ids = StringBuilder::new();
        let mut payload = inner.layout.builder(n);
        let mut scratch = Vec::new();
        for (id, rec) in rows {
            match id {
                PointId::Num(x) if inner.int_ids => {
                    int_ids.append_value(i64::try_from(*x).map_err(|_| {
                        Error::data(
                            loc(id),
                            "the id is above 2^63-1 but the id scan found none: points were added during the copy",
                        )
                    })?);
                }
                PointId::Uuid(_) if inner.int_ids => {
                    return Err(Error::data(
                        loc(id),
                        "a UUID id, but the id scan found only integers: points were added during the copy",
                    ))
                }
                _ => str_ids.append_value(id.to_string()),
            }
            // The vectors: an array (the unnamed vector) or an object of named ones.
            let named: Option<HashMap<&str, &RawValue>> = match rec.vector {
                Some(raw) if raw.get().trim_start().starts_with('{') => {
                    Some(serde_json::from_str(raw.get()).map_err(|e| {
                        Error::data(loc(id), format!("the `vector` object does not parse: {e}"))
                    })?)
                }
                _ => None,
            };
            for (spec, col) in inner.vectors.iter().zip(cols.iter_mut()) {
                let raw = if spec.name.is_empty() {
                    rec.vector
                } else {
                    named
                        .as_ref()
                        .and_then(|m| m.get(spec.name.as_str()).copied())
                };
                let shown = if spec.name.is_empty() {
                    "the unnamed vector".to_string()
                } else {
                    format!("vector `{}`", spec.name)
                };
                match col {
                    VecCol::Sparse {
                        offsets,
                        keys,
                        values,
                    } => {
                        if let Some(raw) = raw.filter(|r| r.get() != "null") {
                            let s: SparseIn<'_> = serde_json::from_str(raw.get()).map_err(|e| {
                                Error::data(
                                    loc(id),
                                    format!("{shown} is not a sparse vector (indices/values): {e}"),
                                )
                            })?;
                            let before = values.len();
                            metadata::parse_floats(s.values.get(), values)
                                .map_err(|m| Error::data(loc(id), format!("{shown}: {m}")))?;
                            if values.len() - before != s.indices.len() {
                                return Err(Error::data(
                                    loc(id),
                                    format!(
                                        "{shown} has {} indices but {} values",
                                        s.indices.len(),
                                        values.len() - before
                                    ),
                                ));
                            }
                            keys.extend_from_slice(&s.indices);
                        }
                        offsets.push(i32::try_from(keys.len()).map_err(|_| {
                            Error::data(loc(id), "more than 2^31 sparse entries in one batch")
                        })?);
                    }
                    VecCol::Dense(out) | VecCol::Bytes(out) => {
                        let d = match spec.kind {
                            VecKind::Dense(d) | VecKind::Bytes(d) => d,
                            VecKind::Sparse => 0,
                        };
                        let raw = raw.filter(|r| r.get() != "null").ok_or_else(|| {
                            Error::data(
                                loc(id),
                                format!("the point has no {shown} (Qdrant allows points without some named vectors; Milvus needs one in every row: leave it out with `vectors = [...]`, or filter such points out with `filter`)"),
                            )
                        })?;
                        if raw.get().trim_start().starts_with("[[") {
                            return Err(Error::unsupported(
                                loc(id),
                                format!(
                                    "{shown} is a multivector, which Milvus has no field type for"
                                ),
                            ));
                        }
                        scratch.clear();
                        let got = metadata::parse_floats(raw.get(), &mut scratch)
                            .map_err(|m| Error::data(loc(id), format!("{shown}: {m}")))?;
                        if got != d {
                            return Err(Error::data(
                                loc(id),
                                format!("{shown} has {got} dimensions, the collection {d}"),
                            ));
                        }
                        out.extend_from_slice(&scratch);
                    }
                }
            }
            payload.append(rec.payload.as_ref(), &loc(id))?;
        }
        let mut arrays: Vec<ArrayRef> = vec![if inner.int_ids {
            Arc::new(int_ids.finish())
        } else {
            Arc::new(str_ids.finish())
        }];
        for (spec, col) in inner.vectors.iter().zip(cols) {
            let field_idx = arrays.len();
            arrays.push(match (col, &spec.kind) {
                (VecCol::Dense(v), VecKind::Dense(d)) => {
                    Arc::new(vector::float_vector_array(Float32Array::from(v), *d)?)
                }
                (VecCol::Bytes(v), VecKind::Bytes(d)) => {
                    let mut bytes = Vec::with_capacity(v.len());
                    for x in v {
                        if !(0.0..=255.0).contains(&x) || x.fract() != 0.0 {
                            return Err(Error::data(
                                self.location(),
                                format!(
                                    "uint8 vector `{}` holds {x}, which is not a byte",
                                    spec.name
                                ),
                            ));
                        }
                        bytes.push(x as u8);
                    }
                    Arc::new(vector::binary_vector_array(bytes.into(), *d)?)
                }
                (
                    VecCol::Sparse {
                        offsets,
                        keys,
                        values,
                    },
                    _,
                ) => {
                    let field = inner.schema.field(field_idx);
                    sparse_array(field, offsets, keys, values)?
                }
                _ => return Err(Error::schema("internal: vector column of the wrong kind")),
            });
        }
        arrays.extend(payload.finish());
        RecordBatch::try_new(Arc::clone(&inner.schema), arrays).map_err(Error::from)
    }
}

enum VecCol {
    Dense(Vec<f32>),
    Bytes(Vec<f32>),
    Sparse {
        offsets: Vec<i32>,
        keys: Vec<u32>,
        values: Vec<f32>,
    },
}

fn sparse_array(
    field: &Field,
    offsets: Vec<i32>,
    keys: Vec<u32>,
    values: Vec<f32>,
) -> Result<ArrayRef> {
    let DataType::Map(entries, sorted) = field.data_type() else {
        return Err(Error::schema("internal: sparse column is not a Map"));
    };
    let DataType::Struct(kv) = entries.data_type() else {
        return Err(Error::schema("internal: sparse entries are not a Struct"));
    };
    let st = StructArray::try_new(
        kv.clone(),
        vec![
            Arc::new(UInt32Array::from(keys)) as ArrayRef,
            Arc::new(Float32Array::from(values)) as ArrayRef,
        ],
        None,
    )?;
    Ok(Arc::new(MapArray::try_new(
        Arc::clone(entries),
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        st,
        None,
        *sorted,
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_order_as_qdrant_and_print_as_qdrant() {
        let u = PointId::from_json(&json!("550e8400-e29b-41d4-a716-446655440000")).unwrap();
        assert_eq!(u.to_string(), "550e8400-e29b-41d4-a716-446655440000");
        assert!(PointId::Num(u64::MAX) < PointId::Uuid(0));
        assert!(PointId::Num(2) < PointId::Num(10));
        assert_eq!(PointId::from_json(&json!(-1)), None);
        assert_eq!(PointId::from_json(&json!("x")), None);
        assert_eq!(
            PointId::Uuid(0).to_json(),
            json!("00000000-0000-0000-0000-000000000000")
        );
    }

    #[test]
    fn split_covers_every_id_once() {
        let r = split(4, Some((3, 1002)), true);
        assert_eq!(r.len(), 4);
        assert_eq!(r[0].start, Some(PointId::Num(3)));
        assert_eq!(r[0].end, Some(PointId::Num(503)));
        assert_eq!(r[1].start, Some(PointId::Num(503)));
        assert_eq!(r[1].end, Some(PointId::Uuid(0)));
        assert_eq!(r[2].start, Some(PointId::Uuid(0)));
        assert_eq!(r[3].end, None);
        assert_eq!(r[2].end, r[3].start);
        assert_eq!(split(1, Some((0, 9)), true).len(), 1);
        let r = split(3, Some((0, 0)), false);
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].end, None);
    }
}
