//! The `pgvector` [`Source`]: partitions by key or block ranges, keyset pages, positions.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgArguments, PgConnectOptions, PgConnection, PgRow};
use sqlx::{Arguments, Connection, Executor, Row, ValueRef};
use vmig_core::arrow::datatypes::SchemaRef;
use vmig_core::source::{stop_after_error, SourceStream};
use vmig_core::{
    Error, PartitionId, PartitionInfo, Position, Result, Source, SourceBatch, SourceContext,
};

use crate::decode::ColumnBuilder;
use crate::schema::{plan, quote_ident, Key, Plan};
use crate::{PgvectorSourceConfig, PLUGIN};

/// Where a partition's reading stands: every row up to and including key `after` was read (for
/// ctid ranges: every row in blocks before `after`). `range` is the partition's description,
/// checked on resume so a position of another split is refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PgPosition {
    /// The last key read (integer or text), or the next block for ctid ranges.
    pub after: KeyValue,
    /// The partition's range, as [`PartitionInfo::description`].
    pub range: String,
}

/// A key value in a position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum KeyValue {
    /// An integer key (or a block number).
    Int(i64),
    /// A text or uuid key.
    Text(String),
}

/// One partition: a half-open range of keys (or blocks); `None` = unbounded.
#[derive(Debug, Clone)]
struct Part {
    lower: Option<i64>,
    upper: Option<i64>,
    description: String,
    estimated_rows: Option<u64>,
}

/// A built `pgvector` source.
#[derive(Debug)]
pub struct PgvectorSource {
    inner: Arc<Inner>,
    parts: Vec<Part>,
}

#[derive(Debug)]
struct Inner {
    config: PgvectorSourceConfig,
    options: PgConnectOptions,
    /// `host:port/database`, for messages (never the password).
    server: String,
    plan: Plan,
}

/// Turns a sqlx error into vmig's, naming the server and what was being done.
pub(crate) fn pg_error(e: sqlx::Error, server: &str, what: &str) -> Error {
    let text = |m: String| vmig_core::redact::text(&m);
    match &e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.to_string()).unwrap_or_default();
            let msg = db.message().to_string();
            if code.starts_with("28") {
                // The server's verdict, not a fault vmig can see in the job file: exit code 1,
                // as for an unreachable server (issue #17), not retried.
                Error::External(Box::new(std::io::Error::other(text(format!(
                    "PostgreSQL at {server} refused the login: {msg} (SQLSTATE {code}); check the user and password in `url`"
                )))))
            } else if code == "3D000" {
                Error::config(
                    PLUGIN,
                    text(format!("PostgreSQL at {server}: {msg}; check the database name in `url`")),
                )
            } else if code.starts_with("08")
                || code.starts_with("57P")
                || code.starts_with("53")
                || code == "40001"
                || code == "40P01"
            {
                Error::Transient {
                    message: text(format!("{what} on PostgreSQL at {server}: {msg} (SQLSTATE {code})")),
                    source: None,
                }
            } else if code.starts_with("42") || code == "25006" {
                Error::config(
                    PLUGIN,
                    text(format!("{what} on PostgreSQL at {server} failed: {msg} (SQLSTATE {code}); check `table`, `schema`, `columns`, `where`, `query` and `pk` (the session is read-only)")),
                )
            } else {
                Error::External(Box::new(std::io::Error::other(text(format!(
                    "{what} on PostgreSQL at {server} failed: {msg} (SQLSTATE {code})"
                )))))
            }
        }
        // sqlx reports a refused certificate as an I/O error carrying rustls's: not transient.
        sqlx::Error::Io(io)
            if io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()) =>
        {
            Error::config(
                PLUGIN,
                text(format!("TLS with PostgreSQL at {server} failed ({e}); check `sslmode` and `sslrootcert` in `url`")),
            )
        }
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => Error::Transient {
            message: text(format!(
                "{what}: PostgreSQL at {server} cannot be reached ({e}); is the server running and the host and port in `url` right?"
            )),
            source: None,
        },
        sqlx::Error::Tls(_) => Error::config(
            PLUGIN,
            text(format!("TLS with PostgreSQL at {server} failed ({e}); check `sslmode` and `sslrootcert` in `url`")),
        ),
        _ => Error::External(Box::new(std::io::Error::other(text(format!(
            "{what} on PostgreSQL at {server} failed: {e}"
        ))))),
    }
}

impl Inner {
    async fn connect_once(&self) -> Result<PgConnection> {
        connect(&self.options, &self.server, self.config.connect_timeout()).await
    }

    /// Connects, retrying transient failures by the `retry` policy.
    async fn connect(&self) -> Result<PgConnection> {
        self.config
            .retry
            .run(
                &format!("connecting to PostgreSQL at {}", self.server),
                || self.connect_once(),
            )
            .await
    }
}

async fn connect(
    options: &PgConnectOptions,
    server: &str,
    timeout: Duration,
) -> Result<PgConnection> {
    // sqlx's TLS (any `sslmode` but `disable`, `prefer` included) takes rustls's process-wide
    // provider, which panics when the build links two (ring and aws-lc-rs, as vmig's does) and
    // none is installed: install ring, as reqwest picks it, unless one already is.
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let mut conn = tokio::time::timeout(timeout, PgConnection::connect_with(options))
        .await
        .map_err(|_| Error::Transient {
            message: format!(
                "connecting to PostgreSQL at {server} took more than {}s (`connect_timeout_secs`)",
                timeout.as_secs()
            ),
            source: None,
        })?
        .map_err(|e| pg_error(e, server, "connecting"))?;
    conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY; SET TimeZone = 'UTC'")
        .await
        .map_err(|e| pg_error(e, server, "setting up the session"))?;
    Ok(conn)
}

impl PgvectorSource {
    /// Connects, learns the schema from the catalog and splits the rows into partitions.
    ///
    /// # Errors
    /// When the server cannot be reached or refuses the login (naming the server, never the
    /// password), the table is missing, a column type is unknown or the key cannot be paged by.
    pub async fn connect(config: PgvectorSourceConfig) -> Result<Self> {
        let options = PgConnectOptions::from_str(&config.url)
            .map_err(|e| {
                Error::config(
                    PLUGIN,
                    format!(
                        "`url` = {} is not a PostgreSQL URL: {}",
                        vmig_core::redact::url(&config.url),
                        vmig_core::redact::text(&e.to_string())
                    ),
                )
            })?
            .application_name("vmig");
        if let Ok(u) = url::Url::parse(&config.url) {
            if let Some(p) = u.password() {
                vmig_core::redact::register(p);
            }
        }
        let server = format!(
            "{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("(default database)")
        );
        let mut inner = Inner {
            config,
            options,
            server,
            plan: Plan {
                from: String::new(),
                what: String::new(),
                table_oid: None,
                columns: Vec::new(),
                key: Key::Ctid,
                schema: Arc::new(vmig_core::arrow::datatypes::Schema::empty()),
            },
        };
        let mut conn = inner.connect().await?;
        inner.plan = plan(&mut conn, &inner.config, &inner.server).await?;
        let parts = split(&mut conn, &inner).await?;
        conn.close().await.ok();
        Ok(PgvectorSource {
            inner: Arc::new(inner),
            parts,
        })
    }

    /// The plan learnt from the catalog (columns, key, relation).
    pub fn plan(&self) -> &Plan {
        &self.inner.plan
    }
}

fn filter_sql(config: &PgvectorSourceConfig) -> Option<String> {
    config.filter.as_ref().map(|f| format!("({f})"))
}

/// Splits the rows: integer keys by min/max into `partitions` ranges, ctid by block ranges.
async fn split(conn: &mut PgConnection, inner: &Inner) -> Result<Vec<Part>> {
    let plan = &inner.plan;
    let n = i128::from(inner.config.partitions);
    let estimate: Option<u64> = match plan.table_oid {
        Some(oid) => {
            sqlx::query_as::<_, (f32,)>("SELECT reltuples FROM pg_class WHERE oid = $1::int8::oid")
                .bind(oid)
                .fetch_optional(&mut *conn)
                .await
                .map_err(|e| pg_error(e, &inner.server, "reading the row estimate"))?
                .and_then(|(r,)| (r >= 0.0).then_some(r as u64))
        }
        None => None,
    };
    let all = |what: &str| {
        vec![Part {
            lower: None,
            upper: None,
            description: what.to_string(),
            estimated_rows: estimate,
        }]
    };
    let (lo, hi, unit) = match &plan.key {
        Key::Int(k) if n <= 1 => return Ok(all(&format!("all rows by {k}"))),
        Key::Int(k) => {
            let q = quote_ident(k);
            let sql = format!(
                "SELECT min({q})::int8, max({q})::int8 FROM {}{}",
                plan.from,
                filter_sql(&inner.config).map_or(String::new(), |f| format!(" WHERE {f}"))
            );
            let (lo, hi): (Option<i64>, Option<i64>) = sqlx::query_as(&sql)
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| pg_error(e, &inner.server, "reading the key range"))?;
            match (lo, hi) {
                (Some(lo), Some(hi)) if n > 1 => (lo, hi, k.clone()),
                _ => return Ok(all(&format!("all rows by {k}"))),
            }
        }
        Key::Ctid => {
            let Some(oid) = plan.table_oid else {
                return Ok(all("all blocks"));
            };
            if n <= 1 {
                return Ok(all("all blocks"));
            }
            let (blocks,): (i64,) = sqlx::query_as(
                "SELECT (pg_relation_size($1::int8::oid) / current_setting('block_size')::int8)::int8",
            )
            .bind(oid)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| pg_error(e, &inner.server, "reading the table size"))?;
            if blocks <= 1 {
                return Ok(all("all blocks"));
            }
            (0, blocks - 1, "block".to_string())
        }
        Key::Text(k) | Key::Uuid(k) => {
            if n > 1 {
                tracing::info!(
                    "pgvector: key `{k}` is not an integer, so {} is read as one partition",
                    plan.what
                );
            }
            return Ok(all(&format!("all rows by {k}")));
        }
    };
    let span = i128::from(hi) - i128::from(lo) + 1;
    let n = n.min(span).max(1);
    let mut bounds = Vec::new();
    for i in 1..n {
        bounds.push((i128::from(lo) + span * i / n) as i64);
    }
    let per = estimate.map(|e| e / n as u64);
    let mut parts = Vec::new();
    for i in 0..=bounds.len() {
        let lower = if i == 0 { None } else { Some(bounds[i - 1]) };
        let upper = bounds.get(i).copied();
        let description = match (lower, upper) {
            (None, Some(u)) => format!("{unit} < {u}"),
            (Some(l), Some(u)) => format!("{l} <= {unit} < {u}"),
            (Some(l), None) => format!("{unit} >= {l}"),
            (None, None) => format!("all rows by {unit}"),
        };
        parts.push(Part {
            lower,
            upper,
            description,
            estimated_rows: per,
        });
    }
    Ok(parts)
}

#[async_trait]
impl Source for PgvectorSource {
    fn schema(&self) -> SchemaRef {
        self.inner.plan.schema.clone()
    }

    async fn partitions(&self) -> Result<Vec<PartitionInfo>> {
        Ok(self
            .parts
            .iter()
            .enumerate()
            .map(|(i, p)| PartitionInfo {
                id: PartitionId::new(i.to_string()),
                estimated_rows: p.estimated_rows,
                description: format!("{} {}", self.inner.plan.what, p.description),
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
        let part = partition
            .0
            .parse::<usize>()
            .ok()
            .and_then(|i| self.parts.get(i))
            .ok_or_else(|| {
                Error::config(
                    PLUGIN,
                    format!(
                        "no partition `{partition}` (this source has {})",
                        self.parts.len()
                    ),
                )
            })?
            .clone();
        let after = match resume_after {
            None => None,
            Some(p) => {
                let pos: PgPosition = p.decode()?;
                if pos.range != part.description {
                    return Err(Error::config(
                        PLUGIN,
                        format!(
                            "the checkpoint's position of partition {partition} is for rows `{}`, but the partition now holds `{}` (the key range changed since the checkpoint); start the job over",
                            pos.range, part.description
                        ),
                    ));
                }
                Some(pos.after)
            }
        };
        let reader = Reader {
            inner: self.inner.clone(),
            part,
            after,
            conn: None,
            page_rows: ctx.batch_rows.get(),
            cancel: ctx.cancel.clone(),
            done: false,
            end_block: None,
            window: None,
        };
        let stream = futures::stream::unfold(reader, |mut r| async move {
            if r.done {
                return None;
            }
            match r.next_batch().await {
                Ok(Some(b)) => Some((Ok(b), r)),
                Ok(None) => None,
                Err(e) => {
                    r.done = true;
                    Some((Err(e), r))
                }
            }
        });
        Ok(stop_after_error(stream))
    }
}

/// Reads one partition page by page.
struct Reader {
    inner: Arc<Inner>,
    part: Part,
    after: Option<KeyValue>,
    conn: Option<PgConnection>,
    page_rows: usize,
    cancel: tokio_util::sync::CancellationToken,
    done: bool,
    /// For ctid ranges: the first block not to read (learnt when the stream starts).
    end_block: Option<i64>,
    /// For ctid ranges: blocks per page (learnt when the stream starts).
    window: Option<i64>,
}

enum Param {
    Int(i64),
    Text(String),
}

impl Reader {
    /// The next non-empty batch, or `None` at the end of the partition.
    async fn next_batch(&mut self) -> Result<Option<SourceBatch>> {
        loop {
            if self.cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let (sql, params, next_after) = match self.page_sql().await? {
                Some(p) => p,
                None => return Ok(None),
            };
            let rows = self.fetch(&sql, &params).await?;
            let key_col = self.inner.plan.columns.len();
            let mut is_last_page = rows.len() < self.page_rows;
            let after =
                match &self.inner.plan.key {
                    Key::Ctid => {
                        is_last_page = false;
                        next_after.clone()
                    }
                    Key::Int(_) => match rows.last() {
                        Some(r) => Some(KeyValue::Int(r.try_get::<i64, _>(key_col).map_err(
                            |e| pg_error(e, &self.inner.server, "reading a row's key"),
                        )?)),
                        None => None,
                    },
                    Key::Text(_) | Key::Uuid(_) => match rows.last() {
                        Some(r) => Some(KeyValue::Text(r.try_get::<String, _>(key_col).map_err(
                            |e| pg_error(e, &self.inner.server, "reading a row's key"),
                        )?)),
                        None => None,
                    },
                };
            if rows.is_empty() {
                if matches!(self.inner.plan.key, Key::Ctid) {
                    // An empty block window: move on.
                    self.after = after;
                    continue;
                }
                return Ok(None);
            }
            let batch = self.decode(&rows)?;
            let Some(after) = after else {
                return Ok(None);
            };
            self.after = Some(after.clone());
            if is_last_page {
                self.done = true;
            }
            let position = Position::encode(&PgPosition {
                after,
                range: self.part.description.clone(),
            })?;
            return Ok(Some(SourceBatch::new(batch, position)));
        }
    }

    /// The SQL of the next page, its parameters, and (ctid) the position after it; `None` when
    /// a ctid partition is read to its end.
    async fn page_sql(&mut self) -> Result<Option<(String, Vec<Param>, Option<KeyValue>)>> {
        let inner = self.inner.clone();
        let plan = &inner.plan;
        let mut conds: Vec<String> = Vec::new();
        if let Some(f) = filter_sql(&inner.config) {
            conds.push(f);
        }
        let mut params = Vec::new();
        let select = plan
            .columns
            .iter()
            .map(|c| c.select.clone())
            .collect::<Vec<_>>()
            .join(", ");
        let mut next_after = None;
        let (key_select, order) = match &plan.key {
            Key::Ctid => {
                if self.end_block.is_none() {
                    self.end_block = Some(match self.part.upper {
                        Some(u) => u,
                        None => self.relation_blocks().await?,
                    });
                }
                let start = match &self.after {
                    Some(KeyValue::Int(b)) => *b,
                    Some(KeyValue::Text(_)) => {
                        return Err(Error::config(
                            PLUGIN,
                            "a ctid position must hold a block number; this checkpoint was made by another split",
                        ))
                    }
                    None => self.part.lower.unwrap_or(0),
                };
                let end = self.end_block.unwrap_or(0);
                if start >= end {
                    return Ok(None);
                }
                let window = match self.window {
                    Some(w) => w,
                    None => {
                        let w = self.blocks_per_page().await?.max(1);
                        self.window = Some(w);
                        w
                    }
                };
                let stop = start.saturating_add(window).min(end);
                params.push(Param::Text(format!("({start},0)")));
                params.push(Param::Text(format!("({stop},0)")));
                conds.push("ctid >= $1::tid AND ctid < $2::tid".to_string());
                next_after = Some(KeyValue::Int(stop));
                (String::new(), String::new())
            }
            Key::Int(k) | Key::Text(k) | Key::Uuid(k) => {
                let q = quote_ident(k);
                let cast = match &plan.key {
                    Key::Int(_) => "::int8",
                    _ => "::text",
                };
                let param_cast = match &plan.key {
                    Key::Uuid(_) => "::uuid",
                    _ => "",
                };
                match &self.after {
                    Some(KeyValue::Int(v)) if matches!(plan.key, Key::Int(_)) => {
                        params.push(Param::Int(*v));
                        conds.push(format!("{q} > ${}", params.len()));
                    }
                    Some(KeyValue::Text(v)) if !matches!(plan.key, Key::Int(_)) => {
                        params.push(Param::Text(v.clone()));
                        conds.push(format!("{q} > ${}{param_cast}", params.len()));
                    }
                    Some(_) => {
                        return Err(Error::config(
                            PLUGIN,
                            format!("the checkpoint's position does not fit key `{k}` (made by another configuration); start the job over"),
                        ))
                    }
                    None => {}
                }
                if let Some(l) = self.part.lower {
                    params.push(Param::Int(l));
                    conds.push(format!("{q} >= ${}", params.len()));
                }
                if let Some(u) = self.part.upper {
                    params.push(Param::Int(u));
                    conds.push(format!("{q} < ${}", params.len()));
                }
                (
                    format!(", {q}{cast} AS \"vmig$key\""),
                    format!(" ORDER BY {q} LIMIT {}", self.page_rows),
                )
            }
        };
        let filter = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        let sql = format!(
            "SELECT {select}{key_select} FROM {}{filter}{order}",
            plan.from
        );
        Ok(Some((sql, params, next_after)))
    }

    async fn relation_blocks(&mut self) -> Result<i64> {
        let oid = self.inner.plan.table_oid.unwrap_or(0);
        let server = self.inner.server.clone();
        let conn = self.conn().await?;
        let (blocks,): (i64,) = sqlx::query_as(
            "SELECT (pg_relation_size($1::int8::oid) / current_setting('block_size')::int8)::int8",
        )
        .bind(oid)
        .fetch_one(conn)
        .await
        .map_err(|e| pg_error(e, &server, "reading the table size"))?;
        Ok(blocks)
    }

    /// Blocks per ctid page: about `page_rows` rows by the table's rows per block.
    async fn blocks_per_page(&mut self) -> Result<i64> {
        let oid = self.inner.plan.table_oid.unwrap_or(0);
        let server = self.inner.server.clone();
        let conn = self.conn().await?;
        let (tuples, pages): (f32, i32) =
            sqlx::query_as("SELECT reltuples, relpages FROM pg_class WHERE oid = $1::int8::oid")
                .bind(oid)
                .fetch_one(conn)
                .await
                .map_err(|e| pg_error(e, &server, "reading the table statistics"))?;
        let per_block = if tuples > 0.0 && pages > 0 {
            (f64::from(tuples) / f64::from(pages)).max(1.0)
        } else {
            64.0
        };
        Ok(((self.page_rows as f64) / per_block).floor().max(1.0) as i64)
    }

    async fn conn(&mut self) -> Result<&mut PgConnection> {
        if self.conn.is_none() {
            self.conn = Some(self.inner.connect().await?);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| Error::schema("pgvector: no connection"))
    }

    /// Runs one page, reconnecting and asking again (after the same key) on transient errors.
    async fn fetch(&mut self, sql: &str, params: &[Param]) -> Result<Vec<PgRow>> {
        let policy = self.inner.config.retry;
        let mut attempt = 1u32;
        let mut delay = policy.initial_backoff;
        let started = tokio::time::Instant::now();
        loop {
            let server = self.inner.server.clone();
            let result = async {
                let conn = self.conn().await?;
                let mut args = PgArguments::default();
                for p in params {
                    match p {
                        Param::Int(v) => args.add(*v),
                        Param::Text(v) => args.add(v.as_str()),
                    }
                    .map_err(Error::External)?;
                }
                sqlx::query_with(sql, args)
                    .fetch_all(conn)
                    .await
                    .map_err(|e| pg_error(e, &server, "reading a page"))
            }
            .await;
            match result {
                Ok(rows) => return Ok(rows),
                Err(e)
                    if e.is_retryable()
                        && attempt < policy.max_attempts
                        && started.elapsed() + delay < policy.max_elapsed =>
                {
                    tracing::warn!("pgvector: {e}; reconnecting and asking again in {delay:?} (attempt {attempt} of {})", policy.max_attempts);
                    self.conn = None;
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(policy.max_backoff);
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn decode(&self, rows: &[PgRow]) -> Result<RecordBatch> {
        let plan = &self.inner.plan;
        let mut builders: Vec<ColumnBuilder> = plan
            .columns
            .iter()
            .map(|c| ColumnBuilder::new(&c.kind, c.dim))
            .collect();
        for row in rows {
            for (i, (b, col)) in builders.iter_mut().zip(&plan.columns).enumerate() {
                let where_ = || {
                    let key = match &plan.key {
                        Key::Ctid => "in the block range read".to_string(),
                        Key::Int(k) => row.try_get::<i64, _>(plan.columns.len()).map_or_else(
                            |_| format!("with an unreadable `{k}`"),
                            |v| format!("`{k}` = {v}"),
                        ),
                        Key::Text(k) | Key::Uuid(k) => {
                            row.try_get::<String, _>(plan.columns.len()).map_or_else(
                                |_| format!("with an unreadable `{k}`"),
                                |v| format!("`{k}` = '{v}'"),
                            )
                        }
                    };
                    format!(
                        "PostgreSQL at {}, {}, row {key}, column `{}` ({})",
                        self.inner.server, plan.what, col.name, col.pg_type
                    )
                };
                let raw = row
                    .try_get_raw(i)
                    .map_err(|e| pg_error(e, &self.inner.server, "reading a value"))?;
                let bytes = if raw.is_null() {
                    None
                } else {
                    Some(
                        raw.as_bytes()
                            .map_err(|e| Error::data(where_(), e.to_string()))?,
                    )
                };
                b.push(bytes).map_err(|m| Error::data(where_(), m))?;
            }
        }
        let arrays = builders
            .into_iter()
            .map(ColumnBuilder::finish)
            .collect::<Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new(plan.schema.clone(), arrays)?)
    }
}
