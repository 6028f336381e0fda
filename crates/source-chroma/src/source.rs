//! [`ChromaSource`]: what `connect` learns about a collection (id, dimension, metric, count,
//! metadata keys), and the readers of its offset-range partitions.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float32Array, Float64Builder, Int64Builder, RecordBatch,
    StringBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use vmig_core::vector::{self, META_METRIC, META_PRIMARY_KEY};
use vmig_core::{
    Error, PartitionId, PartitionInfo, Position, Result, Source, SourceBatch, SourceContext,
    SourceStream,
};

use crate::client::Client;
use crate::{ChromaSourceConfig, MetadataMode, PLUGIN};

/// Where a partition resumes: the offset (in the collection's `get` order) of the next row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChromaPosition {
    /// The next row to read.
    pub offset: u64,
}

/// The type of a metadata key, as seen by the scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Float,
    Str,
    Bool,
    /// Several types, lists, or a name that cannot be a column: goes into the JSON column.
    Json,
}

fn kind_of(v: &Value) -> Option<Kind> {
    match v {
        Value::Null => None,
        Value::Bool(_) => Some(Kind::Bool),
        Value::Number(n) if n.is_i64() => Some(Kind::Int),
        Value::Number(n) if n.is_f64() => Some(Kind::Float),
        Value::String(_) => Some(Kind::Str),
        _ => Some(Kind::Json),
    }
}

/// Names vmig gives its own columns; a metadata key with one of them goes into the JSON column.
const RESERVED: [&str; 5] = ["id", "embedding", "document", "metadata", "$meta"];

/// Whether `key` can be a Milvus field name (`[A-Za-z_][A-Za-z0-9_]*`, at most 255 bytes).
fn column_name_ok(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && key.len() <= 255
        && !RESERVED.contains(&key)
}

/// A collection ready to be read.
#[derive(Debug, Clone)]
pub struct ChromaSource {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: Client,
    cfg: ChromaSourceConfig,
    /// `…/collections/{id}/`.
    path: String,
    dim: usize,
    schema: SchemaRef,
    /// Typed metadata columns, in schema order after `document`.
    typed: Vec<(String, Kind)>,
    /// The JSON column (`metadata` or `$meta`), when there is one.
    json_column: bool,
    /// The count when the source connected.
    count: u64,
    /// Rows the `where` filter selects, when the key scan read them all.
    filtered: Option<u64>,
}

#[derive(Deserialize)]
struct GetPage<'a> {
    ids: Vec<String>,
    #[serde(borrow, default)]
    embeddings: Option<Vec<Option<&'a RawValue>>>,
    #[serde(default)]
    documents: Option<Vec<Option<String>>>,
    #[serde(default)]
    metadatas: Option<Vec<Option<Map<String, Value>>>>,
}

fn metric_of(collection: &Value) -> Result<String> {
    let conf = collection.get("configuration_json");
    let space = conf
        .and_then(|c| {
            c.pointer("/hnsw/space")
                .or_else(|| c.pointer("/spann/space"))
        })
        .and_then(Value::as_str)
        .or_else(|| {
            collection
                .pointer("/metadata/hnsw:space")
                .and_then(Value::as_str)
        })
        .unwrap_or("l2");
    match space {
        "l2" => Ok("L2".into()),
        "ip" => Ok("IP".into()),
        "cosine" => Ok("COSINE".into()),
        other => Err(Error::unsupported(
            format!("Chroma collection space `{other}`"),
            "vmig knows the spaces l2, ip and cosine",
        )),
    }
}

/// Parses one embedding's JSON array text straight into `out` with `f32::from_str` (exactly
/// the float32 Chroma printed). Returns the number of elements.
fn parse_embedding(raw: &str, out: &mut Vec<f32>) -> std::result::Result<usize, String> {
    let inner = raw
        .trim()
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .ok_or_else(|| format!("the embedding is not a JSON array: {raw:.80}"))?;
    if inner.trim().is_empty() {
        return Ok(0);
    }
    let mut n = 0;
    for t in inner.split(',') {
        let t = t.trim();
        let v: f32 = t
            .parse()
            .map_err(|_| format!("embedding element `{t}` is not a number"))?;
        out.push(v);
        n += 1;
    }
    Ok(n)
}

impl ChromaSource {
    /// Connects, reads the collection, counts it and scans its metadata keys.
    ///
    /// # Errors
    /// Unreachable server, refused credentials, a missing collection, an unknown space, or an
    /// empty collection without `dim`.
    pub async fn connect(cfg: ChromaSourceConfig) -> Result<ChromaSource> {
        let client = Client::new(&cfg)?;
        let base = format!(
            "api/v2/tenants/{}/databases/{}/collections",
            cfg.tenant, cfg.database
        );
        let name = &cfg.collection;
        let collection = client
            .json(
                Method::GET,
                &format!("{base}/{name}"),
                None,
                &format!("reading collection `{name}`"),
            )
            .await?;
        let id = collection
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::data(
                    format!("collection `{name}`"),
                    "the server's answer has no `id`; is this Chroma 1.x (API v2)?",
                )
            })?
            .to_string();
        let path = format!("{base}/{id}/");
        let metric = metric_of(&collection)?;
        let count = count(&client, &path, name).await?;
        let mut dim = collection
            .get("dimension")
            .and_then(Value::as_u64)
            .map(|d| d as usize);
        if dim.is_none() && count > 0 {
            let first = client
                .json(
                    Method::POST,
                    &format!("{path}get"),
                    Some(&json!({"limit": 1, "offset": 0, "include": ["embeddings"]})),
                    &format!("reading the first record of `{name}`"),
                )
                .await?;
            dim = first
                .pointer("/embeddings/0")
                .and_then(Value::as_array)
                .map(Vec::len);
        }
        let dim = match (dim, cfg.dim) {
            (Some(d), Some(c)) if d != c => {
                return Err(Error::config(
                    PLUGIN,
                    format!("`dim = {c}` but collection `{name}` has dimension {d}"),
                ))
            }
            (Some(d), _) | (None, Some(d)) => d,
            (None, None) => {
                return Err(Error::config(
                    PLUGIN,
                    format!(
                        "collection `{name}` has no vectors yet, so its dimension is unknown; give `dim`"
                    ),
                ))
            }
        };
        if dim == 0 {
            return Err(Error::data(
                format!("collection `{name}`"),
                "its embeddings have dimension 0",
            ));
        }
        // The key scan.
        let started = std::time::Instant::now();
        let (keys, scanned, complete) = if cfg.metadata_mode == MetadataMode::Columns {
            scan_keys(&client, &path, &cfg).await?
        } else {
            (BTreeMap::new(), 0, false)
        };
        let mut typed = Vec::new();
        let mut json_keys = Vec::new();
        for (k, kind) in &keys {
            if *kind != Kind::Json && column_name_ok(k) {
                typed.push((k.clone(), *kind));
            } else {
                json_keys.push(k.clone());
            }
        }
        // Nullable columns carry `milvus.nullable`, so the milvus2 sink creates them nullable on
        // Milvus 2.5+ (older versions have no nullable fields: a null then stops the job there).
        let nullable = |f: Field| {
            let mut m = f.metadata().clone();
            m.insert("milvus.nullable".to_string(), "true".to_string());
            f.with_metadata(m)
        };
        let mut fields = vec![
            Field::new("id", DataType::Utf8, false),
            vector::float_vector_field("embedding", dim),
            nullable(Field::new("document", DataType::Utf8, true)),
        ];
        for (k, kind) in &typed {
            let dt = match kind {
                Kind::Int => DataType::Int64,
                Kind::Float => DataType::Float64,
                Kind::Bool => DataType::Boolean,
                Kind::Str | Kind::Json => DataType::Utf8,
            };
            fields.push(nullable(Field::new(k, dt, true)));
        }
        let mut meta = std::collections::HashMap::new();
        meta.insert(META_METRIC.to_string(), metric.clone());
        meta.insert(META_PRIMARY_KEY.to_string(), "id".to_string());
        meta.insert("chroma.collection".to_string(), name.clone());
        meta.insert("chroma.collection_id".to_string(), id.clone());
        let json_column = match cfg.metadata_mode {
            MetadataMode::Columns if json_keys.is_empty() => false,
            MetadataMode::Columns | MetadataMode::Json => {
                fields.push(nullable(vector::json_field("metadata", true)));
                true
            }
            MetadataMode::Dynamic => {
                let f = vector::json_field("$meta", false);
                let mut m = f.metadata().clone();
                m.insert("milvus.dynamic".to_string(), "true".to_string());
                fields.push(f.with_metadata(m));
                meta.insert("milvus.dynamic_field".to_string(), "true".to_string());
                true
            }
        };
        if !json_keys.is_empty() {
            meta.insert(
                "chroma.metadata_json_keys".to_string(),
                json_keys.join(", "),
            );
        }
        if cfg.metadata_mode == MetadataMode::Columns {
            meta.insert(
                "chroma.metadata_scan".to_string(),
                format!(
                    "{scanned} rows{} in {:.1?}",
                    if complete { " (all)" } else { "" },
                    started.elapsed()
                ),
            );
        }
        let schema = Arc::new(Schema::new(fields).with_metadata(meta));
        let filtered = if cfg.where_.is_some() {
            complete.then_some(scanned)
        } else {
            Some(count)
        };
        tracing::info!(
            message = "Connected to Chroma.",
            url = %client.display_url(),
            collection = %name,
            rows = count,
            dim,
            metric = %metric,
            metadata_columns = typed.len(),
            metadata_scan_rows = scanned,
        );
        Ok(ChromaSource {
            inner: Arc::new(Inner {
                client,
                cfg,
                path,
                dim,
                schema,
                typed,
                json_column,
                count,
                filtered,
            }),
        })
    }

    /// The number of rows the collection held when the source connected.
    pub fn count(&self) -> u64 {
        self.inner.count
    }

    /// The offset range `[start, end)` of partition `i`.
    fn range(&self, i: u32) -> (u64, u64) {
        let inner = &self.inner;
        if inner.cfg.where_.is_some() {
            return (0, u64::MAX);
        }
        let n = u64::from(inner.cfg.partitions);
        let (t, i) = (inner.count, u64::from(i));
        let start = i * (t / n) + i.min(t % n);
        let len = t / n + u64::from(i < t % n);
        (start, start + len)
    }
}

async fn count(client: &Client, path: &str, name: &str) -> Result<u64> {
    let v = client
        .json(
            Method::GET,
            &format!("{path}count"),
            None,
            &format!("counting collection `{name}`"),
        )
        .await?;
    v.as_u64().ok_or_else(|| {
        Error::data(
            format!("collection `{name}`"),
            format!("the count is not a number: {v}"),
        )
    })
}

/// Reads the metadata of every row (or the first `metadata_scan_rows`), returning each key's
/// kind, the rows read and whether that was all of them.
async fn scan_keys(
    client: &Client,
    path: &str,
    cfg: &ChromaSourceConfig,
) -> Result<(BTreeMap<String, Kind>, u64, bool)> {
    let mut keys: BTreeMap<String, Kind> = BTreeMap::new();
    let limit = cfg.metadata_scan_rows.unwrap_or(u64::MAX);
    let page = (cfg.batch_size as u64).max(1000);
    let mut offset = 0u64;
    loop {
        let want = page.min(limit - offset);
        if want == 0 {
            return Ok((keys, offset, false));
        }
        let mut body = json!({"limit": want, "offset": offset, "include": ["metadatas"]});
        if let Some(w) = &cfg.where_ {
            body["where"] = w.clone();
        }
        let answer = client
            .json(
                Method::POST,
                &format!("{path}get"),
                Some(&body),
                &format!("scanning the metadata keys of `{}`", cfg.collection),
            )
            .await?;
        let metas = answer
            .get("metadatas")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let got = answer
            .get("ids")
            .and_then(Value::as_array)
            .map_or(0, Vec::len) as u64;
        for m in metas.iter().filter_map(Value::as_object) {
            for (k, v) in m {
                let Some(kind) = kind_of(v) else { continue };
                keys.entry(k.clone())
                    .and_modify(|old| {
                        if *old != kind {
                            *old = Kind::Json;
                        }
                    })
                    .or_insert(kind);
            }
        }
        offset += got;
        if got < want {
            return Ok((keys, offset, true));
        }
    }
}

#[async_trait]
impl Source for ChromaSource {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.inner.schema)
    }

    async fn partitions(&self) -> Result<Vec<PartitionInfo>> {
        let inner = &self.inner;
        let name = &inner.cfg.collection;
        Ok((0..inner.cfg.partitions)
            .map(|i| {
                let (s, e) = self.range(i);
                PartitionInfo {
                    id: PartitionId::new(i.to_string()),
                    estimated_rows: if inner.cfg.where_.is_some() {
                        inner.filtered
                    } else {
                        Some(e - s)
                    },
                    description: if inner.cfg.where_.is_some() {
                        format!("rows of `{name}` matching `where`")
                    } else {
                        format!("rows {s}..{e} of `{name}`")
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
        let part: u32 = partition
            .0
            .parse()
            .ok()
            .filter(|p| *p < inner.cfg.partitions)
            .ok_or_else(|| {
                Error::config(
                    PLUGIN,
                    format!(
                        "`{}` has no partition `{partition}` (was the checkpoint taken with another `partitions`?)",
                        inner.cfg.collection
                    ),
                )
            })?;
        let (start, end) = self.range(part);
        let offset = match resume_after {
            Some(p) => {
                let pos = p.decode::<ChromaPosition>()?;
                if pos.offset < start || pos.offset > end {
                    return Err(Error::config(
                        PLUGIN,
                        format!(
                            "the checkpoint's offset {} is outside partition {part} ({start}..{end}) of `{}`; was the collection changed?",
                            pos.offset, inner.cfg.collection
                        ),
                    ));
                }
                pos.offset
            }
            None => start,
        };
        let page = inner.cfg.batch_size.min(ctx.batch_rows.get()).max(1) as u64;
        let state = Reader {
            inner,
            part,
            offset,
            end,
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
    part: u32,
    offset: u64,
    end: u64,
    page: u64,
    done: bool,
    cancel: tokio_util::sync::CancellationToken,
}

impl Reader {
    fn location(&self) -> String {
        format!(
            "Chroma collection `{}` at {}",
            self.inner.cfg.collection,
            self.inner.client.display_url()
        )
    }

    /// Fails when the collection's count is no longer the one seen at connect time.
    async fn check_count(&self) -> Result<()> {
        let inner = &self.inner;
        let now = count(&inner.client, &inner.path, &inner.cfg.collection).await?;
        if now != inner.count {
            return Err(count_changed(&self.location(), inner.count, now, self.part));
        }
        Ok(())
    }

    /// The next batch, or `None` at the end of the partition (after the count check).
    async fn next(&mut self) -> Result<Option<SourceBatch>> {
        if self.done {
            return Ok(None);
        }
        if self.offset >= self.end {
            self.done = true;
            self.check_count().await?;
            return Ok(None);
        }
        let want = self.page.min(self.end - self.offset);
        let inner = Arc::clone(&self.inner);
        let mut body = json!({
            "limit": want,
            "offset": self.offset,
            "include": ["embeddings", "metadatas", "documents"],
        });
        if let Some(w) = &inner.cfg.where_ {
            body["where"] = w.clone();
        }
        let what = format!(
            "reading rows {}..{} of `{}`",
            self.offset,
            self.offset + want,
            inner.cfg.collection
        );
        let get = format!("{}get", inner.path);
        let text = tokio::select! {
            biased;
            () = self.cancel.cancelled() => return Err(Error::Cancelled),
            a = inner.client.bytes(Method::POST, &get, Some(&body), &what) => a?,
        };
        let page: GetPage<'_> = serde_json::from_slice(&text).map_err(|e| {
            Error::data(
                self.location(),
                format!("the `get` answer does not parse: {e}"),
            )
        })?;
        let got = page.ids.len() as u64;
        if got < want {
            if inner.cfg.where_.is_some() {
                self.end = self.offset + got;
            } else {
                let now = count(&inner.client, &inner.path, &inner.cfg.collection).await?;
                return Err(count_changed(&self.location(), inner.count, now, self.part));
            }
        }
        if got == 0 {
            self.done = true;
            self.check_count().await?;
            return Ok(None);
        }
        let batch = self.build(&page)?;
        self.offset += got;
        Ok(Some(SourceBatch::new(
            batch,
            Position::encode(&ChromaPosition {
                offset: self.offset,
            })?,
        )))
    }

    fn build(&self, page: &GetPage<'_>) -> Result<RecordBatch> {
        let inner = &self.inner;
        let n = page.ids.len();
        let loc = |id: &str| format!("{}, id `{id}`", self.location());
        let embeddings = page.embeddings.as_deref().unwrap_or(&[]);
        let documents = page.documents.as_deref().unwrap_or(&[]);
        let metadatas = page.metadatas.as_deref().unwrap_or(&[]);
        if embeddings.len() != n {
            return Err(Error::data(
                self.location(),
                format!("the answer has {n} ids but {} embeddings", embeddings.len()),
            ));
        }
        let mut ids = StringBuilder::with_capacity(n, n * 16);
        let mut docs = StringBuilder::new();
        let mut values = Vec::with_capacity(n * inner.dim);
        let mut cols: Vec<Col> = inner
            .typed
            .iter()
            .map(|(_, k)| match k {
                Kind::Int => Col::Int(Int64Builder::with_capacity(n)),
                Kind::Float => Col::Float(Float64Builder::with_capacity(n)),
                Kind::Bool => Col::Bool(BooleanBuilder::with_capacity(n)),
                Kind::Str | Kind::Json => Col::Str(StringBuilder::new()),
            })
            .collect();
        let mut json_col = StringBuilder::new();
        let columns_mode = inner.cfg.metadata_mode == MetadataMode::Columns;
        for (i, id) in page.ids.iter().enumerate() {
            ids.append_value(id);
            let raw =
                embeddings[i].ok_or_else(|| Error::data(loc(id), "the row has no embedding"))?;
            let d = parse_embedding(raw.get(), &mut values).map_err(|m| Error::data(loc(id), m))?;
            if d != inner.dim {
                return Err(Error::data(
                    loc(id),
                    format!(
                        "the embedding has {d} dimensions, the collection {}",
                        inner.dim
                    ),
                ));
            }
            docs.append_option(documents.get(i).and_then(Option::as_deref));
            let meta = metadatas.get(i).and_then(Option::as_ref);
            if !columns_mode {
                match (meta, inner.cfg.metadata_mode) {
                    (Some(m), _) => json_col.append_value(Value::Object(m.clone()).to_string()),
                    (None, MetadataMode::Dynamic) => json_col.append_value("{}"),
                    (None, _) => json_col.append_null(),
                }
                continue;
            }
            let mut rest = Map::new();
            let mut used = 0;
            for ((key, kind), col) in inner.typed.iter().zip(cols.iter_mut()) {
                let v = meta.and_then(|m| m.get(key)).filter(|v| !v.is_null());
                if v.is_some() {
                    used += 1;
                }
                let wrong = |v: &Value| {
                    Error::data(
                        format!("{}, metadata key `{key}`", loc(id)),
                        format!(
                            "the value {v} is not a {kind:?} as the key scan found; rows were written after the scan, or `metadata_scan_rows` missed it (raise it, or use `metadata_mode = \"json\"`)"
                        ),
                    )
                };
                match (col, v) {
                    (Col::Int(b), Some(v)) => b.append_value(v.as_i64().ok_or_else(|| wrong(v))?),
                    (Col::Float(b), Some(v)) if v.is_f64() => {
                        b.append_value(v.as_f64().ok_or_else(|| wrong(v))?);
                    }
                    (Col::Bool(b), Some(v)) => b.append_value(v.as_bool().ok_or_else(|| wrong(v))?),
                    (Col::Str(b), Some(v)) => b.append_value(v.as_str().ok_or_else(|| wrong(v))?),
                    (_, Some(v)) => return Err(wrong(v)),
                    (Col::Int(b), None) => b.append_null(),
                    (Col::Float(b), None) => b.append_null(),
                    (Col::Bool(b), None) => b.append_null(),
                    (Col::Str(b), None) => b.append_null(),
                }
            }
            if let Some(m) = meta {
                let non_null = m.values().filter(|v| !v.is_null()).count();
                if non_null > used {
                    for (k, v) in m {
                        if v.is_null() || inner.typed.iter().any(|(t, _)| t == k) {
                            continue;
                        }
                        if !inner.json_column {
                            return Err(Error::data(
                                format!("{}, metadata key `{k}`", loc(id)),
                                "the key scan did not see this key; rows were written after the scan, or `metadata_scan_rows` missed it (raise it, or use `metadata_mode = \"json\"`)",
                            ));
                        }
                        rest.insert(k.clone(), v.clone());
                    }
                }
            }
            if inner.json_column {
                if rest.is_empty() {
                    json_col.append_null();
                } else {
                    json_col.append_value(Value::Object(rest).to_string());
                }
            }
        }
        let vectors = vector::float_vector_array(Float32Array::from(values), inner.dim)?;
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(ids.finish()),
            Arc::new(vectors),
            Arc::new(docs.finish()),
        ];
        for c in cols {
            arrays.push(match c {
                Col::Int(mut b) => Arc::new(b.finish()),
                Col::Float(mut b) => Arc::new(b.finish()),
                Col::Bool(mut b) => Arc::new(b.finish()),
                Col::Str(mut b) => Arc::new(b.finish()),
            });
        }
        if inner.json_column {
            arrays.push(Arc::new(json_col.finish()));
        }
        RecordBatch::try_new(Arc::clone(&inner.schema), arrays).map_err(Error::from)
    }
}

enum Col {
    Int(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
    Str(StringBuilder),
}

fn count_changed(location: &str, start: u64, now: u64, part: u32) -> Error {
    Error::data(
        location.to_string(),
        format!(
            "the collection held {start} rows when the read started and holds {now} now (partition {part}): \
             rows were added or deleted during the copy, and Chroma's offset paging is no snapshot, so rows \
             may be missing or read twice. Stop all writes to the collection, then run the job again from the start"
        ),
    )
}
