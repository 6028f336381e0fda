//! [`ChromaSource`]: what `connect` learns about a collection (id, dimension, metric, count,
//! metadata keys), and the readers of its offset-range partitions.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float32Array, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use vmig_core::metadata::{self, KeyScan, Layout, MetadataMode, Words};
use vmig_core::source::AbortOnDrop;
use vmig_core::vector::{self, META_METRIC, META_PRIMARY_KEY};
use vmig_core::{
    Error, PartitionId, PartitionInfo, Position, Result, Source, SourceBatch, SourceContext,
    SourceStream,
};

use crate::client::Client;
use crate::{ChromaSourceConfig, PLUGIN};

/// Where a partition resumes: the offset (in the collection's `get` order) of the next row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChromaPosition {
    /// The next row to read.
    pub offset: u64,
}

/// Names vmig gives its own columns; a metadata key with one of them goes into the JSON column.
const RESERVED: [&str; 4] = ["id", "embedding", "document", "metadata"];

const WORDS: Words = Words {
    key: "metadata key",
    scan_option: "metadata_scan_rows",
    mode_option: "metadata_mode",
};

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
    /// The metadata columns, in schema order after `document`.
    layout: Layout,
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

impl ChromaSource {
    /// Connects, reads the collection, counts it and scans its metadata keys.
    ///
    /// # Errors
    /// Unreachable server, refused credentials, a missing collection, an unknown space, or an
    /// empty collection without `dim`.
    pub async fn connect(cfg: ChromaSourceConfig) -> Result<ChromaSource> {
        let client = crate::client::connect(&cfg)?;
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
            (KeyScan::default(), 0, false)
        };
        let layout = Layout::new(cfg.metadata_mode, &keys, "metadata", &RESERVED, WORDS);
        let mut fields = vec![
            Field::new("id", DataType::Utf8, false),
            vector::float_vector_field("embedding", dim),
            metadata::nullable(Field::new("document", DataType::Utf8, true)),
        ];
        fields.extend(layout.fields());
        let mut meta = std::collections::HashMap::new();
        meta.insert(META_METRIC.to_string(), metric.clone());
        meta.insert(META_PRIMARY_KEY.to_string(), "id".to_string());
        meta.insert("chroma.collection".to_string(), name.clone());
        meta.insert("chroma.collection_id".to_string(), id.clone());
        if layout.is_dynamic() {
            meta.insert("milvus.dynamic_field".to_string(), "true".to_string());
        }
        if !layout.json_keys().is_empty() {
            meta.insert(
                "chroma.metadata_json_keys".to_string(),
                layout.json_keys().join(", "),
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
            metadata_columns = layout.typed().len(),
            metadata_scan_rows = scanned,
        );
        Ok(ChromaSource {
            inner: Arc::new(Inner {
                client,
                cfg,
                path,
                dim,
                schema,
                layout,
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
        let n = u64::from(inner.cfg.partition_count());
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

/// Rows per `get` of the key scan. On Chroma 1.5.9 a metadata-only request costs about 27 ms
/// plus 13 µs a row (100k rows: 4.1 s in pages of 1000, 1.6 s in pages of 10,000), so pages
/// are large; Chroma 1.5.9 refuses pages above ~30,000 rows ("too many SQL variables").
const SCAN_PAGE: u64 = 10_000;

/// Reads the metadata of every row (or the first `metadata_scan_rows`), returning each key's
/// kind, the rows read and whether that was all of them.
async fn scan_keys(
    client: &Client,
    path: &str,
    cfg: &ChromaSourceConfig,
) -> Result<(KeyScan, u64, bool)> {
    let mut keys = KeyScan::default();
    let limit = cfg.metadata_scan_rows.unwrap_or(u64::MAX);
    let page = SCAN_PAGE;
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
            keys.observe(m);
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
        Ok((0..inner.cfg.partition_count())
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
            .filter(|p| *p < inner.cfg.partition_count())
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
            ahead: None,
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
    /// The page asked for ahead, while the previous one is decoded: the server (one busy core
    /// per request) and the decoding (one core) work at the same time.
    ahead: Option<Ahead>,
    cancel: tokio_util::sync::CancellationToken,
}

/// A `get` in flight for rows `offset..offset + want`; dropping it aborts the request.
struct Ahead {
    offset: u64,
    want: u64,
    answer: AbortOnDrop<Result<Vec<u8>>>,
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

    /// Starts the `get` of the page at `offset` (up to the partition's end).
    fn ask(&self, offset: u64) -> Ahead {
        let want = self.page.min(self.end.saturating_sub(offset)).max(1);
        let inner = Arc::clone(&self.inner);
        let mut body = json!({
            "limit": want,
            "offset": offset,
            "include": ["embeddings", "metadatas", "documents"],
        });
        if let Some(w) = &inner.cfg.where_ {
            body["where"] = w.clone();
        }
        let what = format!(
            "reading rows {offset}..{} of `{}`",
            offset + want,
            inner.cfg.collection
        );
        let answer = AbortOnDrop::spawn(async move {
            let get = format!("{}get", inner.path);
            inner
                .client
                .bytes(Method::POST, &get, Some(&body), &what)
                .await
        });
        Ahead {
            offset,
            want,
            answer,
        }
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
        let ahead = match self.ahead.take() {
            Some(a) if a.offset == self.offset => a,
            _ => self.ask(self.offset),
        };
        let want = ahead.want;
        let text = tokio::select! {
            biased;
            () = self.cancel.cancelled() => return Err(Error::Cancelled),
            a = ahead.answer => a?,
        };
        let next = self.offset + want;
        if next < self.end && !self.cancel.is_cancelled() {
            self.ahead = Some(self.ask(next));
        }
        // Decoding (JSON and float parsing, ~70 ms a page of 1000 × 768) runs off the async
        // workers, so the request asked ahead progresses meanwhile: a task spawned from a busy
        // worker would otherwise wait in that worker's LIFO slot, which others cannot steal.
        let (got, batch) = {
            let inner = Arc::clone(&self.inner);
            let location = self.location();
            tokio::task::spawn_blocking(move || decode(&inner, &text, &location))
                .await
                .map_err(|e| Error::External(Box::new(e)))??
        };
        let inner = Arc::clone(&self.inner);
        if got < want {
            // Whatever was asked ahead lies past the end (or the count changed): not read.
            self.ahead = None;
            if inner.cfg.where_.is_some() {
                self.end = self.offset + got;
            } else {
                let now = count(&inner.client, &inner.path, &inner.cfg.collection).await?;
                return Err(count_changed(&self.location(), inner.count, now, self.part));
            }
        }
        let Some(batch) = batch else {
            self.done = true;
            self.check_count().await?;
            return Ok(None);
        };
        let batch = batch?;
        self.offset += got;
        Ok(Some(SourceBatch::new(
            batch,
            Position::encode(&ChromaPosition {
                offset: self.offset,
            })?,
        )))
    }
}

/// Decodes one `get` answer: the rows it holds and, when it holds any, their batch (or why
/// they cannot be one). `location` names the collection and server for errors.
fn decode(
    inner: &Inner,
    text: &[u8],
    location: &str,
) -> Result<(u64, Option<Result<RecordBatch>>)> {
    let page: GetPage<'_> = serde_json::from_slice(text).map_err(|e| {
        Error::data(
            location.to_string(),
            format!("the `get` answer does not parse: {e}"),
        )
    })?;
    let got = page.ids.len() as u64;
    Ok((got, (got > 0).then(|| build(inner, &page, location))))
}

fn build(inner: &Inner, page: &GetPage<'_>, location: &str) -> Result<RecordBatch> {
    let n = page.ids.len();
    let loc = |id: &str| format!("{location}, id `{id}`");
    let embeddings = page.embeddings.as_deref().unwrap_or(&[]);
    let documents = page.documents.as_deref().unwrap_or(&[]);
    let metadatas = page.metadatas.as_deref().unwrap_or(&[]);
    if embeddings.len() != n {
        return Err(Error::data(
            location.to_string(),
            format!("the answer has {n} ids but {} embeddings", embeddings.len()),
        ));
    }
    let mut ids = StringBuilder::with_capacity(n, n * 16);
    let mut docs = StringBuilder::new();
    let mut values = Vec::with_capacity(n * inner.dim);
    let mut meta_cols = inner.layout.builder(n);
    for (i, id) in page.ids.iter().enumerate() {
        ids.append_value(id);
        let raw = embeddings[i].ok_or_else(|| Error::data(loc(id), "the row has no embedding"))?;
        let d =
            metadata::parse_floats(raw.get(), &mut values).map_err(|m| Error::data(loc(id), m))?;
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
        meta_cols.append(meta, &loc(id))?;
    }
    let vectors = vector::float_vector_array(Float32Array::from(values), inner.dim)?;
    let mut arrays: Vec<ArrayRef> = vec![
        Arc::new(ids.finish()),
        Arc::new(vectors),
        Arc::new(docs.finish()),
    ];
    arrays.extend(meta_cols.finish());
    RecordBatch::try_new(Arc::clone(&inner.schema), arrays).map_err(Error::from)
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
