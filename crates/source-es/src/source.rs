//! [`EsSource`]: partitions (slices) of an index, each read by a task that pages through a
//! point in time or a scroll, one request ahead of decoding.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use vmig_core::{
    Error, PartitionId, PartitionInfo, Position, Result, Source, SourceBatch, SourceContext,
    SourceStream,
};

use crate::client::{Client, HttpError, ServerInfo};
use crate::decode::BatchBuilder;
use crate::mapping::{
    dimension_of, layout, merged_properties, missing_dims, Column, Layout, MissingDims,
};
use crate::{EsSourceConfig, MethodChoice, OnInvalid};

/// How a partition is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadMethod {
    /// Point in time + `search_after`, sorted by `_shard_doc`.
    Pit,
    /// Scroll sorted by `_doc`.
    Scroll,
}

/// Where a slice resumes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EsPosition {
    /// Documents of this slice consumed so far (including skipped invalid ones). A scroll resumes
    /// by skipping this many documents of a new scroll.
    pub read: u64,
    /// PIT reads: the sort values of the last consumed hit (`search_after`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Vec<Value>>,
}

/// An index (or alias/pattern) ready to be read.
#[derive(Debug, Clone)]
pub struct EsSource {
    inner: Arc<ResolvedIndex>,
}

/// The connection and what `open` resolved about the index (server, read method, columns),
/// shared by every slice reader.
#[derive(Debug)]
struct ResolvedIndex {
    client: Client,
    cfg: EsSourceConfig,
    server: ServerInfo,
    method: ReadMethod,
    columns: Arc<Vec<Column>>,
    schema: SchemaRef,
    source_fields: Vec<String>,
    total: Option<u64>,
    /// Send `_source.exclude_vectors: false` (Elasticsearch 9.x; switched off if refused).
    exclude_vectors: AtomicBool,
}

impl EsSource {
    /// Connects, identifies the server, reads the mapping and counts the documents.
    ///
    /// # Errors
    /// Unreachable cluster, refused credentials, missing index, or a mapping vmig cannot read.
    pub async fn connect(cfg: EsSourceConfig) -> Result<EsSource> {
        let client = Client::new(&cfg)?;
        let server = client.server_info().await?;
        let method = match cfg.method {
            MethodChoice::Auto if server.has_pit_shard_doc() => ReadMethod::Pit,
            MethodChoice::Auto | MethodChoice::Scroll => ReadMethod::Scroll,
            MethodChoice::Pit if server.has_pit_shard_doc() => ReadMethod::Pit,
            MethodChoice::Pit => {
                return Err(Error::unsupported(
                    client.display_url(),
                    format!(
                        "`method = \"pit\"` needs Elasticsearch 7.12+ (point in time with the \
                         `_shard_doc` sort); this is {server}: use `method = \"scroll\"` or `auto`"
                    ),
                ))
            }
        };
        let index = cfg.index.clone();
        let answer = client
            .json(
                Method::GET,
                &format!("{index}/_mapping"),
                None,
                &format!("reading the mapping of `{index}`"),
            )
            .await?;
        let props = merged_properties(&answer, &index)?;
        // Vector fields without `dims`: the first document that has one tells the dimension.
        let mut with_dims = cfg.clone();
        let mut inferred = Vec::new();
        for m in missing_dims(&props, &cfg) {
            if let Some((dim, doc)) = infer_dims(&client, &cfg, &m).await? {
                with_dims.dims.insert(m.key.clone(), dim);
                inferred.push((m.key, dim, doc));
            }
        }
        let (
            Layout {
                mut columns,
                schema,
                source_fields,
            },
            skipped,
        ) = layout(&props, &with_dims)?;
        let mut meta = schema.metadata().clone();
        for (key, dim, doc) in &inferred {
            for c in columns.iter_mut().filter(|c| {
                c.lift
                    .as_ref()
                    .map_or(c.name == *key, |p| p.join(".") == *key)
            }) {
                c.dims_from = Some(doc.clone());
                c.described.push_str(&format!(
                    " (dims {dim} inferred from document `{doc}`: the mapping has none)"
                ));
                meta.insert(format!("es.field.{}", c.name), c.described.clone());
            }
        }
        let templates = dynamic_templates(&answer);
        if !templates.is_empty() {
            tracing::warn!(
                message = "The index has dynamic templates; the schema holds only the fields its mapping has now.",
                index = %index,
                templates = %templates.join(", "),
            );
            meta.insert(
                "es.dynamic_templates".to_string(),
                format!(
                    "{} ({}): the schema comes from the fields mapped now; fields these templates \
                     create for documents indexed later are not read (plan again after indexing)",
                    templates.len(),
                    templates.join(", ")
                ),
            );
        }
        meta.insert("es.server".to_string(), server.to_string());
        meta.insert("es.index".to_string(), index.clone());
        meta.insert(
            "es.read_method".to_string(),
            format!(
                "{}{}",
                match method {
                    ReadMethod::Pit => "point in time + search_after (_shard_doc)",
                    ReadMethod::Scroll => "scroll (_doc)",
                },
                if cfg.slices > 1 {
                    format!(", {} slices", cfg.slices)
                } else {
                    String::new()
                }
            ),
        );
        if !skipped.is_empty() {
            meta.insert("es.skipped_fields".to_string(), skipped.join(", "));
        }
        let schema = Arc::new(schema.as_ref().clone().with_metadata(meta));
        let count_body = cfg.query.as_ref().map(|q| json!({ "query": q }));
        let total = client
            .json(
                Method::POST,
                &format!("{index}/_count"),
                count_body.as_ref(),
                &format!("counting the documents of `{index}`"),
            )
            .await?
            .get("count")
            .and_then(Value::as_u64);
        tracing::info!(
            message = "Connected to the search cluster.",
            server = %server,
            url = %client.display_url(),
            index = %index,
            documents = total,
            method = ?method,
            slices = cfg.slices,
        );
        Ok(EsSource {
            inner: Arc::new(ResolvedIndex {
                exclude_vectors: AtomicBool::new(server.knows_exclude_vectors()),
                client,
                cfg,
                server,
                method,
                columns: Arc::new(columns),
                schema,
                source_fields,
                total,
            }),
        })
    }

    /// The read method chosen for this server.
    pub fn method(&self) -> ReadMethod {
        self.inner.method
    }

    /// The server that answered.
    pub fn server(&self) -> ServerInfo {
        self.inner.server
    }
}

#[async_trait]
impl Source for EsSource {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.inner.schema)
    }

    async fn partitions(&self) -> Result<Vec<PartitionInfo>> {
        let n = self.inner.cfg.slices;
        Ok((0..n)
            .map(|i| PartitionInfo {
                id: PartitionId::new(i.to_string()),
                estimated_rows: self.inner.total.map(|t| {
                    let n = u64::from(n);
                    t / n + u64::from(u64::from(i) < t % n)
                }),
                description: if n > 1 {
                    format!("slice {i} of {n} of `{}`", self.inner.cfg.index)
                } else {
                    format!("all documents of `{}`", self.inner.cfg.index)
                },
                target_partition: None,
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
        let slice: u32 = partition
            .0
            .parse()
            .ok()
            .filter(|s| *s < inner.cfg.slices)
            .ok_or_else(|| {
                Error::config(
                    "elasticsearch",
                    format!(
                        "`{}` has no partition `{partition}` (was the checkpoint taken with another `slices`?)",
                        inner.cfg.index
                    ),
                )
            })?;
        let start = match resume_after {
            Some(p) => p.decode::<EsPosition>()?,
            None => EsPosition::default(),
        };
        if inner.method == ReadMethod::Pit && start.read > 0 && start.after.is_none() {
            return Err(Error::config(
                "elasticsearch",
                "the checkpoint was written by a scroll read; resume with `method = \"scroll\"`",
            ));
        }
        let ctx = ctx.clone();
        let (tx, rx) = mpsc::channel::<Result<SourceBatch>>(1);
        // Nothing happens until the stream is first polled; dropping the stream drops `rx`, and the
        // reader task stops at its next send and closes its cursor.
        let stream = futures::stream::once(async move {
            tokio::spawn(async move {
                let mut reader = Reader::new(inner, slice, start, ctx);
                let result = reader.run(&tx).await;
                reader.close().await;
                if let Err(e) = result {
                    let _ = tx.send(Err(e)).await;
                }
            });
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) })
        })
        .flatten();
        Ok(Box::pin(stream))
    }
}

/// The names of the dynamic templates of every index of a mapping answer (a name once).
fn dynamic_templates(answer: &Value) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for body in answer.as_object().into_iter().flat_map(|o| o.values()) {
        let list = body
            .pointer("/mappings/dynamic_templates")
            .and_then(Value::as_array);
        for t in list.into_iter().flatten() {
            for name in t.as_object().into_iter().flat_map(|o| o.keys()) {
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
        }
    }
    names
}

/// The dimension of a vector field whose mapping has none, from the first document (in index
/// order) that has a value; `None` when no document has one.
async fn infer_dims(
    client: &Client,
    cfg: &EsSourceConfig,
    m: &MissingDims,
) -> Result<Option<(usize, String)>> {
    let path = m.path.join(".");
    let mut filter = vec![json!({ "exists": { "field": path } })];
    if let Some(q) = &cfg.query {
        filter.push(q.clone());
    }
    let body = json!({
        "size": 1,
        "sort": ["_doc"],
        "_source": [path],
        "query": { "bool": { "filter": filter } },
    });
    let what = format!("inferring the dimension of `{path}` in `{}`", cfg.index);
    let answer = client
        .json(
            Method::POST,
            &format!("{}/_search", cfg.index),
            Some(&body),
            &what,
        )
        .await?;
    let Some(hit) = answer.pointer("/hits/hits/0") else {
        return Ok(None);
    };
    let id = hit
        .get("_id")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string();
    let mut v = hit.get("_source").unwrap_or(&Value::Null);
    for seg in &m.path {
        if let Value::Array(a) = v {
            v = a.first().unwrap_or(&Value::Null);
        }
        v = v.get(seg).unwrap_or(&Value::Null);
    }
    let dim = dimension_of(v, m.bits).ok_or_else(|| {
        Error::data(
            format!("index `{}`, document _id `{id}`, field `{path}`", cfg.index),
            "the mapping has no `dims` and this first value is no vector to infer it from; give it with `dims`",
        )
    })?;
    tracing::info!(message = "Inferred a vector dimension from the first document.", field = %path, dims = dim, document = %id);
    Ok(Some((dim, id)))
}

#[derive(Deserialize)]
struct Page<'a> {
    #[serde(rename = "_scroll_id", default)]
    scroll_id: Option<String>,
    #[serde(default)]
    pit_id: Option<String>,
    #[serde(rename = "_shards", default)]
    shards: Option<Shards>,
    #[serde(borrow)]
    hits: Hits<'a>,
}

#[derive(Deserialize)]
struct Shards {
    #[serde(default)]
    failed: u64,
    #[serde(default)]
    failures: Option<Value>,
}

#[derive(Deserialize)]
struct Hits<'a> {
    #[serde(borrow)]
    hits: Vec<Hit<'a>>,
}

#[derive(Deserialize)]
struct Hit<'a> {
    #[serde(rename = "_id", borrow)]
    id: Cow<'a, str>,
    #[serde(rename = "_index", borrow, default)]
    index: Option<Cow<'a, str>>,
    #[serde(rename = "_source", borrow, default)]
    source: Option<&'a RawValue>,
    #[serde(borrow, default)]
    fields: Option<&'a RawValue>,
    #[serde(default)]
    sort: Option<Vec<Value>>,
}

enum Cursor {
    None,
    Pit(String),
    Scroll(String),
}

type Fetch = JoinHandle<std::result::Result<bytes::Bytes, HttpError>>;

struct Reader {
    inner: Arc<ResolvedIndex>,
    slice: u32,
    pos: EsPosition,
    /// Documents still to skip (a scroll reopened after expiry or on resume).
    skip: u64,
    ctx: SourceContext,
    cursor: Cursor,
    skipped_invalid: u64,
    recoveries: u32,
}

impl Reader {
    fn new(inner: Arc<ResolvedIndex>, slice: u32, start: EsPosition, ctx: SourceContext) -> Reader {
        let skip = if inner.method == ReadMethod::Scroll {
            start.read
        } else {
            0
        };
        Reader {
            inner,
            slice,
            pos: start,
            skip,
            ctx,
            cursor: Cursor::None,
            skipped_invalid: 0,
            recoveries: 0,
        }
    }

    fn location(&self) -> String {
        if self.inner.cfg.slices > 1 {
            format!("index `{}` slice {}", self.inner.cfg.index, self.slice)
        } else {
            format!("index `{}`", self.inner.cfg.index)
        }
    }

    fn source_spec(&self) -> Value {
        if self.inner.source_fields.is_empty() {
            return Value::Bool(false);
        }
        let mut spec = json!({ "includes": self.inner.source_fields });
        if self.inner.exclude_vectors.load(Ordering::Relaxed) {
            // Elasticsearch 9.2+ leaves vectors out of `_source` unless asked.
            spec["exclude_vectors"] = Value::Bool(false);
        }
        spec
    }

    fn slice_spec(&self) -> Option<Value> {
        (self.inner.cfg.slices > 1)
            .then(|| json!({ "id": self.slice, "max": self.inner.cfg.slices }))
    }

    /// The body of the first scroll request, or of a PIT search.
    fn search_body(&self) -> Value {
        let cfg = &self.inner.cfg;
        let mut body = json!({
            "size": cfg.batch_size,
            "_source": self.source_spec(),
        });
        if let Some(q) = &cfg.query {
            body["query"] = q.clone();
        }
        if let Some(s) = self.slice_spec() {
            body["slice"] = s;
        }
        match &self.cursor {
            Cursor::Pit(id) => {
                body["pit"] = json!({ "id": id, "keep_alive": cfg.keep_alive });
                body["sort"] = json!([{ "_shard_doc": "asc" }]);
                // Counting is wasted work on every page (and refused in a scroll context).
                body["track_total_hits"] = Value::Bool(false);
                if let Some(after) = &self.pos.after {
                    body["search_after"] = Value::Array(after.clone());
                }
            }
            _ => body["sort"] = json!(["_doc"]),
        }
        body
    }

    /// A request for the next page, running while the current one is decoded.
    fn spawn(&self, method: Method, path: String, body: Value, retry: bool) -> Fetch {
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move { inner.client.send(method, &path, Some(&body), retry).await })
    }

    fn next_request(&self) -> Fetch {
        let cfg = &self.inner.cfg;
        match &self.cursor {
            Cursor::Scroll(id) => self.spawn(
                Method::POST,
                "_search/scroll".into(),
                json!({ "scroll": cfg.keep_alive, "scroll_id": id }),
                false,
            ),
            Cursor::Pit(_) => self.spawn(Method::POST, "_search".into(), self.search_body(), true),
            Cursor::None => self.spawn(
                Method::POST,
                format!("{}/_search?scroll={}", cfg.index, cfg.keep_alive),
                self.search_body(),
                true,
            ),
        }
    }

    async fn open_pit(&mut self) -> Result<()> {
        let cfg = &self.inner.cfg;
        let answer = self
            .inner
            .client
            .json(
                Method::POST,
                &format!("{}/_pit?keep_alive={}", cfg.index, cfg.keep_alive),
                None,
                &format!("opening a point in time on `{}`", cfg.index),
            )
            .await?;
        let id = answer.get("id").and_then(Value::as_str).ok_or_else(|| {
            Error::data(
                format!("opening a point in time on `{}`", cfg.index),
                "the answer has no `id`",
            )
        })?;
        self.cursor = Cursor::Pit(id.to_string());
        Ok(())
    }

    /// Closes the scroll or PIT; failures are logged, not returned (the context expires anyway).
    /// A context that is already gone is not a failure: Elasticsearch answers a clear-scroll or
    /// close-PIT that frees nothing with 404 `{"succeeded":true,"num_freed":0}` — what every
    /// context lost to its keep-alive gets when the reader reopens it.
    async fn close(&mut self) {
        let cursor = std::mem::replace(&mut self.cursor, Cursor::None);
        let (path, body) = match cursor {
            Cursor::None => return,
            Cursor::Scroll(id) => ("_search/scroll", json!({ "scroll_id": [id] })),
            Cursor::Pit(id) => ("_pit", json!({ "id": id })),
        };
        if let Err(e) = self
            .inner
            .client
            .send(Method::DELETE, path, Some(&body), true)
            .await
        {
            let gone =
                matches!(&e, HttpError::Status { status, .. } if *status == StatusCode::NOT_FOUND);
            if !gone && !e.is_context_missing() {
                tracing::warn!(
                    message = "Could not free the search context; it expires after `keep_alive`.",
                    location = %self.location(),
                    error = %e.into_error("closing").to_string(),
                );
            }
        }
    }

    /// Whether a failure of the page request should be recovered by reopening the cursor.
    fn recoverable(&self, e: &HttpError) -> bool {
        match (&self.cursor, e) {
            (Cursor::None, _) => false,
            (_, e) if e.is_context_missing() => true,
            // A scroll continuation is not retried in place (its answer may have moved the
            // cursor); it is recovered by reopening and skipping instead.
            (Cursor::Scroll(_), e) => e.is_transient(),
            _ => false,
        }
    }

    async fn recover(&mut self, e: HttpError) -> Result<()> {
        self.recoveries += 1;
        let retries = self.inner.client.retry().max_attempts.saturating_sub(1);
        if self.recoveries > retries.max(1) {
            return Err(e.into_error(&format!("reading {}", self.location())));
        }
        tracing::warn!(
            message = "The search context was lost; reopening it and continuing from the last position.",
            location = %self.location(),
            documents_read = self.pos.read,
        );
        let was_pit = matches!(self.cursor, Cursor::Pit(_));
        self.close().await;
        if was_pit {
            self.open_pit().await?;
        } else {
            self.skip = self.pos.read;
        }
        Ok(())
    }

    async fn run(&mut self, tx: &mpsc::Sender<Result<SourceBatch>>) -> Result<()> {
        if self.inner.method == ReadMethod::Pit {
            self.open_pit().await?;
        }
        let mut builder = BatchBuilder::new(
            Arc::clone(&self.inner.columns),
            Arc::clone(&self.inner.schema),
        );
        let batch_rows = self.ctx.batch_rows.get();
        let mut fetch = Some(self.next_request());
        while let Some(mut pending) = fetch.take() {
            let bytes = tokio::select! {
                biased;
                () = self.ctx.cancel.cancelled() => { pending.abort(); return Err(Error::Cancelled) }
                r = &mut pending => r.map_err(|e| Error::External(Box::new(e)))?,
            };
            let bytes = match bytes {
                Ok(b) => b,
                Err(e) if self.exclude_vectors_refused(&e) => {
                    fetch = Some(self.next_request());
                    continue;
                }
                Err(e) if self.recoverable(&e) => {
                    self.recover(e).await?;
                    fetch = Some(self.next_request());
                    continue;
                }
                Err(e) => return Err(e.into_error(&format!("reading {}", self.location()))),
            };
            let page: Page<'_> = serde_json::from_slice(&bytes).map_err(|e| {
                Error::data(
                    self.location(),
                    format!("the search answer does not parse: {e}"),
                )
            })?;
            if let Some(s) = &page.shards {
                if s.failed > 0 {
                    return Err(Error::data(
                        self.location(),
                        format!(
                            "{} shard(s) failed, so documents would be missing: {}",
                            s.failed,
                            s.failures
                                .as_ref()
                                .map(Value::to_string)
                                .unwrap_or_default()
                        ),
                    ));
                }
            }
            if let Some(id) = page.scroll_id.clone() {
                self.cursor = Cursor::Scroll(id);
            }
            if let (Some(id), Cursor::Pit(_)) = (page.pit_id.clone(), &self.cursor) {
                self.cursor = Cursor::Pit(id);
            }
            if page.hits.hits.is_empty() {
                break;
            }
            self.recoveries = 0;
            let skip_here = self.skip.min(page.hits.hits.len() as u64) as usize;
            self.skip -= skip_here as u64;
            // The next request only needs the cursor and the last sort values: send it now.
            if self.inner.method == ReadMethod::Pit {
                let last = page.hits.hits.last().and_then(|h| h.sort.clone());
                match last {
                    Some(s) => self.pos.after = Some(s),
                    None => {
                        return Err(Error::data(
                            self.location(),
                            "a point-in-time hit has no `sort` values",
                        ))
                    }
                }
            }
            fetch = Some(self.next_request());
            for hit in &page.hits.hits[skip_here..] {
                if let Err(e) = builder.push(&hit.id, hit.source, hit.fields) {
                    let index = hit.index.as_deref().unwrap_or(&self.inner.cfg.index);
                    let location = format!(
                        "index `{index}`, document _id `{}`, field `{}`",
                        hit.id, e.field
                    );
                    match self.inner.cfg.on_invalid {
                        OnInvalid::Error => {
                            return Err(Error::data(
                                location,
                                format!(
                                    "{} (skip such documents with `on_invalid = \"skip\"`)",
                                    e.message
                                ),
                            ))
                        }
                        OnInvalid::Skip => {
                            self.skipped_invalid += 1;
                            tracing::warn!(message = "Skipping an invalid document.", location = %location, reason = %e.message);
                        }
                    }
                }
            }
            self.pos.read += (page.hits.hits.len() - skip_here) as u64;
            if builder.rows() >= batch_rows {
                let batch = builder.finish()?;
                let position = Position::encode(&self.pos)?;
                if tx
                    .send(Ok(SourceBatch::new(batch, position)))
                    .await
                    .is_err()
                {
                    if let Some(f) = fetch.take() {
                        f.abort();
                    }
                    return Ok(());
                }
            }
        }
        if builder.rows() > 0 {
            let batch = builder.finish()?;
            let position = Position::encode(&self.pos)?;
            let _ = tx.send(Ok(SourceBatch::new(batch, position))).await;
        }
        if self.skipped_invalid > 0 {
            tracing::warn!(
                message = "Invalid documents were skipped.",
                location = %self.location(),
                skipped = self.skipped_invalid,
            );
        }
        Ok(())
    }

    /// A 9.0/9.1 server that rejects `_source.exclude_vectors` (those versions keep vectors in
    /// `_source`): stop sending it.
    fn exclude_vectors_refused(&self, e: &HttpError) -> bool {
        if let HttpError::Status { status, reason, .. } = e {
            if status.as_u16() == 400
                && reason.contains("exclude_vectors")
                && self.inner.exclude_vectors.swap(false, Ordering::Relaxed)
            {
                return true;
            }
        }
        false
    }
}
