//! [`PineconeSource`]: what `connect` learns about an index (host, kind, metric, dimension,
//! namespaces, metadata keys from a sample), and the reader of one namespace (list + fetch).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float32Array, Float64Builder, MapArray, RecordBatch, StringBuilder,
    StructArray, UInt32Array,
};
use arrow::buffer::{OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use vmig_core::vector::{self, META_METRIC, META_PRIMARY_KEY};
use vmig_core::{
    Error, PartitionId, PartitionInfo, Position, Result, Source, SourceBatch, SourceContext,
    SourceStream,
};

use crate::client::{base_url, Client, HttpFailure, Pacer};
use crate::meta::{self, split};
use crate::{
    MetadataMode, NamespaceMode, PineconeSourceConfig, DEFAULT_NAMESPACE_PARTITION, PLUGIN,
};
use vmig_core::metadata::{parse_floats, Kind};

/// Where a namespace resumes: a list page boundary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PineconePosition {
    /// The `paginationToken` of the next list page; `None` when the namespace is done.
    pub token: Option<String>,
    /// The last id copied (ids at or before it are skipped on resume).
    pub last_id: Option<String>,
    /// Records copied from this namespace so far.
    pub rows: u64,
}

/// A serverless index ready to be read.
#[derive(Debug, Clone)]
pub struct PineconeSource {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cfg: PineconeSourceConfig,
    data: Client,
    /// A name for messages: `index `docs`` or the host.
    label: String,
    dim: Option<usize>,
    sparse: bool,
    schema: SchemaRef,
    typed: Vec<(String, Kind)>,
    /// The namespaces read, with their record counts from `describe_index_stats`.
    namespaces: Vec<(String, u64)>,
    list_pacer: Pacer,
    fetch_pacer: Pacer,
}

#[derive(Deserialize)]
struct ListPage {
    #[serde(default)]
    vectors: Vec<ListItem>,
    #[serde(default)]
    pagination: Option<Pagination>,
}

#[derive(Deserialize)]
struct ListItem {
    id: String,
}

#[derive(Deserialize)]
struct Pagination {
    next: Option<String>,
}

#[derive(Deserialize)]
struct FetchAnswer<'a> {
    #[serde(borrow, default)]
    vectors: HashMap<String, Record<'a>>,
}

#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow, default)]
    values: Option<&'a RawValue>,
    #[serde(rename = "sparseValues", borrow, default)]
    sparse_values: Option<SparseValues<'a>>,
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
struct SparseValues<'a> {
    indices: Vec<u64>,
    #[serde(borrow)]
    values: &'a RawValue,
}

fn milvus_metric(metric: &str) -> Result<&'static str> {
    match metric {
        "cosine" => Ok("COSINE"),
        "euclidean" => Ok("L2"),
        "dotproduct" => Ok("IP"),
        other => Err(Error::unsupported(
            format!("Pinecone metric `{other}`"),
            "vmig knows the metrics cosine, euclidean and dotproduct",
        )),
    }
}

/// Whether `name` can be a Milvus partition name.
fn partition_name_ok(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && name.len() <= 255
}

/// The Milvus partition of namespace `ns`.
fn partition_of(ns: &str) -> String {
    if ns.is_empty() {
        DEFAULT_NAMESPACE_PARTITION.to_string()
    } else {
        ns.to_string()
    }
}

/// How a namespace is named in messages (`""` is "the default namespace").
fn ns_label(ns: &str) -> String {
    if ns.is_empty() {
        "the default namespace \"\"".into()
    } else {
        format!("namespace `{ns}`")
    }
}

impl PineconeSource {
    /// Resolves the index, reads its statistics and samples its namespaces.
    ///
    /// # Errors
    /// A refused key, a missing index or namespace, a pod-based index, an unknown metric, or a
    /// namespace that cannot be a Milvus partition.
    pub async fn connect(cfg: PineconeSourceConfig) -> Result<PineconeSource> {
        let http = crate::client::http(&cfg)?;
        let mut described: Option<Value> = None;
        if let Some(name) = cfg.index.as_deref().filter(|n| !n.trim().is_empty()) {
            let control = Client::new(
                http.clone(),
                base_url(&cfg.control_url, "control_url")?,
                cfg.retry,
                "the Pinecone control plane".into(),
                "control_url",
            );
            let missing = |f: &HttpFailure| {
                (f.status == 404).then(|| {
                    Error::config(
                        PLUGIN,
                        format!(
                            "index `{name}` does not exist in the API key's project (the control plane answered HTTP 404: {}); check `index`",
                            f.text
                        ),
                    )
                })
            };
            let body = control
                .json(
                    Method::GET,
                    &format!("indexes/{name}"),
                    &[],
                    None,
                    &format!("describing index `{name}`"),
                    None,
                    &missing,
                )
                .await?;
            let v = body.value(&format!("index `{name}`"))?;
            check_serverless(name, &v)?;
            described = Some(v);
        }
        let label = cfg.index.as_deref().map_or_else(
            || format!("index at {}", cfg.index_host.as_deref().unwrap_or("")),
            |n| format!("index `{n}`"),
        );
        let host = match (&cfg.index_host, &described) {
            (Some(h), _) if !h.trim().is_empty() => h.clone(),
            (_, Some(d)) => d
                .get("host")
                .and_then(Value::as_str)
                .filter(|h| !h.is_empty())
                .map(|h| {
                    // The control plane names the host without a scheme: the control plane's
                    // own (https in production; http only for a local stand-in).
                    if h.contains("://") {
                        h.to_string()
                    } else {
                        let scheme = base_url(&cfg.control_url, "control_url")
                            .map_or_else(|_| "https".to_string(), |u| u.scheme().to_string());
                        format!("{scheme}://{h}")
                    }
                })
                .ok_or_else(|| {
                    Error::data(
                        label.clone(),
                        "the control plane's description has no `host`; give `index_host`",
                    )
                })?,
            _ => return Err(Error::config(PLUGIN, "give `index` or `index_host`")),
        };
        let data = Client::new(
            http,
            base_url(&host, "index_host")?,
            cfg.retry,
            label.clone(),
            if cfg.index_host.is_some() {
                "index_host"
            } else {
                "index"
            },
        );
        let no_index = |f: &HttpFailure| {
            (f.status == 404).then(|| {
                Error::config(
                    PLUGIN,
                    format!(
                        "no index answers at this host (HTTP 404: {}); check `index_host`",
                        f.text
                    ),
                )
            })
        };
        let stats = data
            .json(
                Method::POST,
                "describe_index_stats",
                &[],
                Some(&json!({})),
                &format!("reading the statistics of {label}"),
                None,
                &no_index,
            )
            .await?
            .value(&label)?;
        let pick = |key: &str| {
            described
                .as_ref()
                .and_then(|d| d.get(key))
                .filter(|v| !v.is_null())
                .or_else(|| stats.get(key).filter(|v| !v.is_null()))
                .cloned()
        };
        let vector_type = pick("vector_type")
            .or_else(|| pick("vectorType"))
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "dense".into());
        let dim = match vector_type.as_str() {
            "dense" => Some(
                pick("dimension")
                    .and_then(|v| v.as_u64())
                    .filter(|d| *d > 0)
                    .ok_or_else(|| Error::data(label.clone(), "the index reports no dimension"))?
                    as usize,
            ),
            "sparse" => None,
            other => {
                return Err(Error::unsupported(
                    label.clone(),
                    format!("vector type `{other}`; vmig knows dense and sparse"),
                ))
            }
        };
        let metric = match pick("metric").and_then(|v| v.as_str().map(str::to_string)) {
            Some(m) => Some(milvus_metric(&m)?),
            None => None,
        };
        let mut all: BTreeMap<String, u64> = BTreeMap::new();
        if let Some(ns) = stats.get("namespaces").and_then(Value::as_object) {
            for (k, v) in ns {
                let n = v
                    .get("vectorCount")
                    .or_else(|| v.get("vector_count"))
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                all.insert(k.clone(), n);
            }
        }
        let namespaces: Vec<(String, u64)> = match &cfg.namespaces {
            Some(list) => {
                let mut out = Vec::new();
                for n in list {
                    let Some(count) = all.get(n) else {
                        let have: Vec<String> = all.keys().map(|k| format!("\"{k}\"")).collect();
                        return Err(Error::config(
                            PLUGIN,
                            format!(
                                "{} is not in {label} (it has {}); check `namespaces`",
                                ns_label(n),
                                if have.is_empty() {
                                    "no namespace".into()
                                } else {
                                    have.join(", ")
                                }
                            ),
                        ));
                    };
                    out.push((n.clone(), *count));
                }
                out
            }
            None => all.into_iter().collect(),
        };
        if cfg.namespace_mode == NamespaceMode::Partition {
            let mut seen: BTreeMap<String, String> = BTreeMap::new();
            for (ns, _) in &namespaces {
                let p = partition_of(ns);
                if !partition_name_ok(&p) {
                    return Err(Error::config(
                        PLUGIN,
                        format!(
                            "{} cannot be a Milvus partition name (letters, digits, `_` and `-`, not starting with a digit or `-`); use `namespace_mode = \"column\"`, or `namespaces` without it",
                            ns_label(ns)
                        ),
                    ));
                }
                if let Some(other) = seen.insert(p.clone(), ns.clone()) {
                    return Err(Error::config(
                        PLUGIN,
                        format!(
                            "{} and {} would both go to Milvus partition `{p}`; use `namespace_mode = \"column\"`",
                            ns_label(&other),
                            ns_label(ns)
                        ),
                    ));
                }
            }
        }
        let list_pacer = Pacer::new(cfg.list_rate);
        let fetch_pacer = Pacer::new(cfg.fetch_rate);
        // The sample.
        let started = std::time::Instant::now();
        let mut scan = meta::scan();
        let mut sampled = 0u64;
        let mut saw_sparse = false;
        if cfg.metadata_scan_rows > 0 {
            for (ns, _) in &namespaces {
                let mut token = None;
                let mut got = 0u64;
                while got < cfg.metadata_scan_rows {
                    let want = (cfg.metadata_scan_rows - got).min(u64::from(cfg.list_limit));
                    let page =
                        list(&data, &label, &list_pacer, ns, token.as_deref(), want, None).await?;
                    let ids: Vec<String> = page.vectors.into_iter().map(|v| v.id).collect();
                    for chunk in ids.chunks(cfg.fetch_batch) {
                        let body = fetch(&data, &label, &fetch_pacer, ns, chunk).await?;
                        let answer: FetchAnswer<'_> = parse_fetch(&body.0, &label, ns)?;
                        for r in answer.vectors.values() {
                            if let Some(m) = &r.metadata {
                                scan.observe(m);
                            }
                            saw_sparse |= r
                                .sparse_values
                                .as_ref()
                                .is_some_and(|s| !s.indices.is_empty());
                        }
                    }
                    got += ids.len() as u64;
                    token = page.pagination.and_then(|p| p.next);
                    if token.is_none() || ids.is_empty() {
                        break;
                    }
                }
                sampled += got;
            }
        }
        let sparse = cfg.sparse.unwrap_or(dim.is_none() || saw_sparse);
        if dim.is_none() && !sparse {
            return Err(Error::config(
                PLUGIN,
                format!("{label} is a sparse index: `sparse = false` would leave no vector"),
            ));
        }
        let typed = if cfg.metadata_mode == MetadataMode::Columns {
            meta::typed(&scan)
        } else {
            Vec::new()
        };
        let nullable = |f: Field| {
            let mut m = f.metadata().clone();
            m.insert("milvus.nullable".to_string(), "true".to_string());
            f.with_metadata(m)
        };
        let mut fields = vec![Field::new("id", DataType::Utf8, false)];
        if let Some(d) = dim {
            fields.push(vector::float_vector_field("vector", d));
        }
        if sparse {
            fields.push(vector::sparse_float_vector_field("sparse_vector"));
        }
        if cfg.namespace_mode == NamespaceMode::Column {
            fields.push(Field::new("namespace", DataType::Utf8, false));
        }
        for (k, kind) in &typed {
            let dt = match kind {
                Kind::Float | Kind::Int => DataType::Float64,
                Kind::Bool => DataType::Boolean,
                Kind::Str | Kind::Json => DataType::Utf8,
            };
            fields.push(nullable(Field::new(k, dt, true)));
        }
        let mut meta = std::collections::HashMap::new();
        if let Some(m) = metric {
            meta.insert(META_METRIC.to_string(), m.to_string());
        }
        meta.insert(META_PRIMARY_KEY.to_string(), "id".to_string());
        meta.insert("pinecone.index".to_string(), label.clone());
        meta.insert(
            "pinecone.api_version".to_string(),
            crate::API_VERSION.into(),
        );
        match cfg.metadata_mode {
            MetadataMode::Columns | MetadataMode::Json => {
                fields.push(vector::json_field("metadata", false));
            }
            MetadataMode::Dynamic => {
                let f = vector::json_field("$meta", false);
                let mut m = f.metadata().clone();
                m.insert("milvus.dynamic".to_string(), "true".to_string());
                fields.push(f.with_metadata(m));
                meta.insert("milvus.dynamic_field".to_string(), "true".to_string());
            }
        }
        let json_keys: Vec<&str> = scan
            .keys()
            .keys()
            .filter(|k| !typed.iter().any(|(t, _)| t == *k))
            .map(String::as_str)
            .collect();
        if cfg.metadata_mode == MetadataMode::Columns {
            meta.insert(
                "pinecone.metadata_sample".to_string(),
                format!("{sampled} records in {:.1?}", started.elapsed()),
            );
            if !json_keys.is_empty() {
                meta.insert("pinecone.metadata_json_keys".into(), json_keys.join(", "));
            }
        }
        let schema = Arc::new(Schema::new(fields).with_metadata(meta));
        tracing::info!(
            message = "Connected to Pinecone.",
            index = %label,
            host = %data.display_url(),
            namespaces = namespaces.len(),
            records = namespaces.iter().map(|(_, n)| n).sum::<u64>(),
            dim = ?dim,
            sparse,
            metric = ?metric,
            metadata_columns = typed.len(),
            sampled,
        );
        Ok(PineconeSource {
            inner: Arc::new(Inner {
                cfg,
                data,
                label,
                dim,
                sparse,
                schema,
                typed,
                namespaces,
                list_pacer,
                fetch_pacer,
            }),
        })
    }
}

/// Refuses pod-based indexes (no list endpoint), naming why.
fn check_serverless(name: &str, described: &Value) -> Result<()> {
    let spec = described.get("spec");
    if spec
        .and_then(|s| s.get("pod"))
        .is_some_and(|p| !p.is_null())
    {
        return Err(Error::unsupported(
            format!("index `{name}`"),
            "it is a pod-based index, and Pinecone's `list` endpoint (which vmig needs to see every record id) exists only for serverless indexes. \
             Tools that copy pod-based indexes crawl them with random query vectors, which cannot show that every record was found, so vmig does not: \
             move the index to serverless first (Pinecone: create a serverless index from a collection or backup of it), then copy that",
        ));
    }
    Ok(())
}

/// One `list` page of `ns` (after `token`), `limit` ids. `refused` (when given) is set when
/// the server answers 400 — a pagination token it does not accept.
async fn list(
    data: &Client,
    label: &str,
    pacer: &Pacer,
    ns: &str,
    token: Option<&str>,
    limit: u64,
    refused: Option<&AtomicBool>,
) -> Result<ListPage> {
    let limit = limit.to_string();
    let mut q: Vec<(&str, &str)> = vec![("namespace", ns), ("limit", &limit)];
    if let Some(t) = token {
        q.push(("paginationToken", t));
    }
    let on_status = |f: &HttpFailure| {
        if f.status == 400 {
            if let Some(r) = refused {
                r.store(true, Ordering::SeqCst);
            }
        }
        (f.status == 404).then(|| {
            Error::data(
                label.to_string(),
                format!(
                    "`list` answered HTTP 404 ({}): `list` exists only for serverless indexes; is this host a pod-based index?",
                    f.text
                ),
            )
        })
    };
    let body = data
        .json(
            Method::GET,
            "vectors/list",
            &q,
            None,
            &format!("listing the ids of {}", ns_label(ns)),
            Some(pacer),
            &on_status,
        )
        .await?;
    serde_json::from_slice(&body.0).map_err(|e| {
        Error::data(
            format!("{label}, {}", ns_label(ns)),
            format!("the `list` answer does not parse: {e}"),
        )
    })
}

async fn fetch(
    data: &Client,
    _label: &str,
    pacer: &Pacer,
    ns: &str,
    ids: &[String],
) -> Result<crate::client::bytes_json::Body> {
    let mut q: Vec<(&str, &str)> = ids.iter().map(|i| ("ids", i.as_str())).collect();
    q.push(("namespace", ns));
    data.json(
        Method::GET,
        "vectors/fetch",
        &q,
        None,
        &format!("fetching {} records of {}", ids.len(), ns_label(ns)),
        Some(pacer),
        &|_| None,
    )
    .await
}

fn parse_fetch<'a>(body: &'a [u8], label: &str, ns: &str) -> Result<FetchAnswer<'a>> {
    serde_json::from_slice(body).map_err(|e| {
        Error::data(
            format!("{label}, {}", ns_label(ns)),
            format!("the `fetch` answer does not parse: {e}"),
        )
    })
}

#[async_trait]
impl Source for PineconeSource {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.inner.schema)
    }

    async fn partitions(&self) -> Result<Vec<PartitionInfo>> {
        let inner = &self.inner;
        Ok(inner
            .namespaces
            .iter()
            .map(|(ns, n)| PartitionInfo {
                id: PartitionId::new(ns.clone()),
                estimated_rows: Some(*n),
                description: format!("{} of {}", ns_label(ns), inner.label),
                target_partition: (inner.cfg.namespace_mode == NamespaceMode::Partition)
                    .then(|| partition_of(ns)),
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
        let ns = partition.0.clone();
        if !inner.namespaces.iter().any(|(n, _)| *n == ns) {
            return Err(Error::config(
                PLUGIN,
                format!(
                    "{} is not one of the namespaces this job reads (was the checkpoint taken with other `namespaces`?)",
                    ns_label(&ns)
                ),
            ));
        }
        let (token, skip_upto, rows, done) = match resume_after {
            Some(p) => {
                let pos = p.decode::<PineconePosition>()?;
                let done = pos.token.is_none();
                (pos.token, pos.last_id, pos.rows, done)
            }
            None => (None, None, 0, false),
        };
        let target = ctx
            .batch_rows
            .get()
            .min(inner.cfg.fetch_batch * inner.cfg.fetch_concurrency)
            .max(1);
        let state = Reader {
            inner,
            resumed_token: token.is_some(),
            token,
            skip_upto,
            rows,
            exhausted: done,
            target,
            cancel: ctx.cancel.clone(),
            ns,
        };
        let stream = futures::stream::try_unfold(state, |mut r| async move {
            let cancel = r.cancel.clone();
            let next = tokio::select! {
                biased;
                () = cancel.cancelled() => return Err(Error::Cancelled),
                b = r.next() => b?,
            };
            Ok(next.map(|b| (b, r)))
        });
        Ok(vmig_core::source::stop_after_error(stream))
    }
}

struct Reader {
    inner: Arc<Inner>,
    ns: String,
    /// The token of the next list page (`None` with `exhausted = false`: the first page).
    token: Option<String>,
    /// The token came from a checkpoint and has not been accepted yet.
    resumed_token: bool,
    /// Ids at or before this one were copied already.
    skip_upto: Option<String>,
    rows: u64,
    exhausted: bool,
    target: usize,
    cancel: tokio_util::sync::CancellationToken,
}

impl Reader {
    fn location(&self) -> String {
        format!("{}, {}", self.inner.label, ns_label(&self.ns))
    }

    /// The next list page, falling back to a listing from the start when the server refuses
    /// a token taken from a checkpoint.
    async fn next_page(&mut self) -> Result<ListPage> {
        let inner = Arc::clone(&self.inner);
        let limit = u64::from(inner.cfg.list_limit);
        if !self.resumed_token {
            return list(
                &inner.data,
                &inner.label,
                &inner.list_pacer,
                &self.ns,
                self.token.as_deref(),
                limit,
                None,
            )
            .await;
        }
        let refused = AtomicBool::new(false);
        let r = list(
            &inner.data,
            &inner.label,
            &inner.list_pacer,
            &self.ns,
            self.token.as_deref(),
            limit,
            Some(&refused),
        )
        .await;
        self.resumed_token = false;
        match r {
            Err(e) if refused.load(Ordering::SeqCst) => {
                tracing::warn!(
                    message = "The server refused the checkpoint's pagination token; listing the namespace again from its start and skipping the ids already copied.",
                    namespace = %self.ns,
                    last_id = ?self.skip_upto,
                    error = %e,
                );
                list(
                    &inner.data,
                    &inner.label,
                    &inner.list_pacer,
                    &self.ns,
                    None,
                    limit,
                    None,
                )
                .await
            }
            other => other,
        }
    }

    async fn next(&mut self) -> Result<Option<SourceBatch>> {
        let inner = Arc::clone(&self.inner);
        let mut ids: Vec<String> = Vec::new();
        while !self.exhausted && ids.len() < self.target {
            let page = self.next_page().await?;
            let next = page
                .pagination
                .and_then(|p| p.next)
                .filter(|t| !t.is_empty());
            let empty = page.vectors.is_empty();
            for v in page.vectors {
                if let Some(last) = &self.skip_upto {
                    if v.id.as_bytes() <= last.as_bytes() {
                        continue;
                    }
                }
                ids.push(v.id);
            }
            self.token = next;
            if self.token.is_none() || empty {
                self.exhausted = true;
            }
        }
        if ids.is_empty() {
            return Ok(None);
        }
        let chunks: Vec<Vec<String>> = ids
            .chunks(inner.cfg.fetch_batch)
            .map(<[String]>::to_vec)
            .collect();
        let ns = self.ns.clone();
        let bodies: Vec<crate::client::bytes_json::Body> = futures::stream::iter(chunks)
            .map(|c| {
                let inner = Arc::clone(&inner);
                let ns = ns.clone();
                async move { fetch(&inner.data, &inner.label, &inner.fetch_pacer, &ns, &c).await }
            })
            .buffered(inner.cfg.fetch_concurrency)
            .try_collect()
            .await?;
        let mut records: HashMap<String, Record<'_>> = HashMap::with_capacity(ids.len());
        for b in &bodies {
            records.extend(parse_fetch(&b.0, &inner.label, &self.ns)?.vectors);
        }
        let batch = self.build(&ids, &records)?;
        self.rows += ids.len() as u64;
        self.skip_upto = ids.last().cloned();
        Ok(Some(SourceBatch::new(
            batch,
            Position::encode(&PineconePosition {
                token: if self.exhausted {
                    None
                } else {
                    self.token.clone()
                },
                last_id: self.skip_upto.clone(),
                rows: self.rows,
            })?,
        )))
    }

    fn build(&self, ids: &[String], records: &HashMap<String, Record<'_>>) -> Result<RecordBatch> {
        let inner = &self.inner;
        let n = ids.len();
        let loc = |id: &str| format!("{}, id `{id}`", self.location());
        let mut id_col = StringBuilder::with_capacity(n, n * 16);
        let mut values = Vec::with_capacity(n * inner.dim.unwrap_or(0));
        let mut offsets: Vec<i32> = Vec::with_capacity(n + 1);
        offsets.push(0);
        let mut sp_keys: Vec<u32> = Vec::new();
        let mut sp_vals: Vec<f32> = Vec::new();
        let mut ns_col = StringBuilder::new();
        let mut cols: Vec<Col> = inner
            .typed
            .iter()
            .map(|(_, k)| match k {
                Kind::Float | Kind::Int => Col::Num(Float64Builder::with_capacity(n)),
                Kind::Bool => Col::Bool(BooleanBuilder::with_capacity(n)),
                Kind::Str | Kind::Json => Col::Str(StringBuilder::new()),
            })
            .collect();
        let mut json_col = StringBuilder::new();
        let columns_mode = inner.cfg.metadata_mode == MetadataMode::Columns;
        for id in ids {
            let r = records.get(id).ok_or_else(|| {
                Error::data(
                    loc(id),
                    "`list` named this id but `fetch` did not return it: the record was deleted during the copy. Stop writes to the index, then run the job again",
                )
            })?;
            id_col.append_value(id);
            if let Some(dim) = inner.dim {
                let raw = r
                    .values
                    .ok_or_else(|| Error::data(loc(id), "the record has no dense `values`"))?;
                let d =
                    parse_floats(raw.get(), &mut values).map_err(|m| Error::data(loc(id), m))?;
                if d != dim {
                    return Err(Error::data(
                        loc(id),
                        format!("the record has {d} values, the index dimension {dim}"),
                    ));
                }
            }
            match (&r.sparse_values, inner.sparse) {
                (Some(s), true) => {
                    let before = sp_vals.len();
                    let k = parse_floats(s.values.get(), &mut sp_vals)
                        .map_err(|m| Error::data(loc(id), format!("sparseValues: {m}")))?;
                    if k != s.indices.len() {
                        sp_vals.truncate(before);
                        return Err(Error::data(
                            loc(id),
                            format!(
                                "sparseValues has {} indices but {k} values",
                                s.indices.len()
                            ),
                        ));
                    }
                    for i in &s.indices {
                        sp_keys.push(u32::try_from(*i).map_err(|_| {
                            Error::data(loc(id), format!("sparse index {i} is beyond 2^32-1"))
                        })?);
                    }
                }
                (Some(s), false) if !s.indices.is_empty() => {
                    return Err(Error::data(
                        loc(id),
                        "the record has sparse values, but the sample saw none (or `sparse = false`): set `sparse = true` to copy them",
                    ));
                }
                _ => {}
            }
            if inner.sparse {
                let end = i32::try_from(sp_keys.len())
                    .map_err(|_| Error::data(loc(id), "too many sparse values in one batch"))?;
                offsets.push(end);
            }
            if inner.cfg.namespace_mode == NamespaceMode::Column {
                ns_col.append_value(&self.ns);
            }
            let meta = r.metadata.as_ref();
            if !columns_mode {
                json_col.append_value(meta.map_or_else(
                    || "{}".to_string(),
                    |m| Value::Object(m.clone()).to_string(),
                ));
                continue;
            }
            let (vals, rest) = split(&inner.typed, meta);
            for (v, col) in vals.into_iter().zip(cols.iter_mut()) {
                match (col, v) {
                    (Col::Num(b), v) => b.append_option(v.and_then(Value::as_f64)),
                    (Col::Bool(b), v) => b.append_option(v.and_then(Value::as_bool)),
                    (Col::Str(b), v) => b.append_option(v.and_then(Value::as_str)),
                }
            }
            json_col.append_value(Value::Object(rest).to_string());
        }
        let mut arrays: Vec<ArrayRef> = vec![Arc::new(id_col.finish())];
        if let Some(dim) = inner.dim {
            arrays.push(Arc::new(vector::float_vector_array(
                Float32Array::from(values),
                dim,
            )?));
        }
        if inner.sparse {
            let field = inner.schema.field_with_name("sparse_vector")?;
            let (DataType::Map(entries, sorted), Some(kv)) = (
                field.data_type(),
                match field.data_type() {
                    DataType::Map(e, _) => match e.data_type() {
                        DataType::Struct(kv) => Some(kv.clone()),
                        _ => None,
                    },
                    _ => None,
                },
            ) else {
                return Err(Error::schema("internal: the sparse column is not a Map"));
            };
            let st = StructArray::try_new(
                kv,
                vec![
                    Arc::new(UInt32Array::from(sp_keys)) as ArrayRef,
                    Arc::new(Float32Array::from(sp_vals)) as ArrayRef,
                ],
                None,
            )?;
            arrays.push(Arc::new(MapArray::try_new(
                Arc::clone(entries),
                OffsetBuffer::new(ScalarBuffer::from(offsets)),
                st,
                None,
                *sorted,
            )?));
        }
        if inner.cfg.namespace_mode == NamespaceMode::Column {
            arrays.push(Arc::new(ns_col.finish()));
        }
        for c in cols {
            arrays.push(match c {
                Col::Num(mut b) => Arc::new(b.finish()),
                Col::Bool(mut b) => Arc::new(b.finish()),
                Col::Str(mut b) => Arc::new(b.finish()),
            });
        }
        arrays.push(Arc::new(json_col.finish()));
        RecordBatch::try_new(Arc::clone(&inner.schema), arrays).map_err(Error::from)
    }
}

enum Col {
    Num(Float64Builder),
    Bool(BooleanBuilder),
    Str(StringBuilder),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_partitions_and_floats() {
        assert_eq!(milvus_metric("euclidean").unwrap(), "L2");
        assert_eq!(milvus_metric("dotproduct").unwrap(), "IP");
        assert_eq!(milvus_metric("cosine").unwrap(), "COSINE");
        assert!(milvus_metric("manhattan").is_err());
        assert_eq!(partition_of(""), "_default");
        assert!(partition_name_ok("en-2024"));
        assert!(!partition_name_ok("1a") && !partition_name_ok("a b"));
        let pod = json!({"spec": {"pod": {"environment": "us-east1-gcp"}}});
        let e = check_serverless("p", &pod).unwrap_err().to_string();
        assert!(e.contains("pod-based") && e.contains("random query"), "{e}");
        assert!(check_serverless("s", &json!({"spec": {"serverless": {}}})).is_ok());
    }
}
