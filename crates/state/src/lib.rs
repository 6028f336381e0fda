//! vmig-state: the job state store — which jobs exist, every run of them, and each job's
//! checkpoint — in SQLite, MySQL/MariaDB or PostgreSQL, so that jobs can be resumed (#13).
//!
//! [`StateStore::open`] takes a URL: `sqlite://PATH` (everything after `sqlite://` is the path;
//! a relative one is resolved against the job file's directory; the file and its directories
//! are created on first use),
//! `mysql://…` or `mariadb://…`, `postgres://…` or `postgresql://…`. [`StateStore::location`]
//! is that URL without its user-info; no error and no `Debug` output ever holds the password.
//! [`StateStore::checkpoints`] gives the [`CheckpointStore`] the pipeline runner saves a job's
//! progress through.
//!
//! # Main design decision: every write is one transaction that locks the job first
//!
//! Each operation that changes the store (`start_run`, `finish_run`, `forget_progress`, a
//! checkpoint `save`) is a single database transaction, so a crash at any instant leaves the
//! previous state or the next one, never a mix. Every transaction that touches a job's
//! checkpoint first locks that job's row (`SELECT … FOR UPDATE` on MySQL and PostgreSQL; on
//! SQLite write transactions start with `BEGIN IMMEDIATE`, which takes the database's write
//! lock at once and waits for it under the busy timeout). So concurrent saves of one job run
//! one after the other, and a save can safely compare the checkpoint with the rows the last
//! save left and write only the rows that changed. A `load` takes the same lock (SQLite: one
//! read snapshot), so it never sees half of a save.
//!
//! SQLite runs in WAL mode with `synchronous = FULL`: WAL lets readers work while a save
//! writes, and FULL syncs the WAL on every commit, so a save that returned survives a power
//! loss too (NORMAL would survive a process crash but could lose the last commits on power
//! loss, after the runner already acted on them). The price, one fsync per save, is nothing
//! at checkpoint rates (one save per flush, every 30 s by default).
//!
//! # Why three typed pools and not sqlx's `Any` driver
//!
//! The store holds an enum over the three sqlx pools, and each query is written once and
//! compiled for all three drivers by one macro (`on_pool!`). The `Any` driver would have saved
//! only that macro: the SQL still differs where it matters (PostgreSQL numbers its
//! placeholders, `Any` does not rewrite `?`; upserts are `ON CONFLICT` or `ON DUPLICATE KEY`;
//! `FOR UPDATE` does not exist in SQLite; MySQL needs its own table options). And `Any` builds
//! its connections from URL text alone, where sqlx's SQLite URL cannot say journal mode,
//! `synchronous` or busy timeout (they would become PRAGMAs in an after-connect hook), and it
//! hides the drivers' own error types, which tell a deadlock or a busy database (retryable) from
//! a real failure. The typed pools keep all of that in the type system for the price of one
//! macro. (The workspace enables sqlx's `any` feature anyway; the tests use it to reach all
//! three databases with raw SQL.)
//!
//! # Schema
//!
//! Created and migrated by vmig itself at [`StateStore::open`]; names start with `vmig_`;
//! times are epoch milliseconds (`BIGINT`: portable, sortable, no time-zone parsing); JSON is
//! kept as text (`LONGTEXT` on MySQL); integers are `BIGINT` and booleans `0`/`1`, so the same
//! DDL runs on SQLite, MariaDB 10.11 and PostgreSQL 15. MySQL tables are InnoDB, `utf8mb4`
//! with a binary collation, so names compare exactly as on the other two.
//!
//! | table | key | columns |
//! |---|---|---|
//! | `vmig_state_version` | `id` (always 1) | `version`: the schema version |
//! | `vmig_jobs` | `name` | `fingerprint` (64 hex: the whole job), `source_fp`, `transforms_fp`, `sink_fp` (each component's, to tell what changed), `job` (the resolved, secret-free job as JSON), `created_at`, `updated_at` (when the row last changed) |
//! | `vmig_runs` | `id` (UUID v4) | `job_name`, `seq` (1, 2, … per job: the order of runs), `fingerprint`, `status` (`running`/`failed`/`cancelled`/`done`), `started_at`, `ended_at`, `error`, `resumed`, `host`, `pid` |
//! | `vmig_checkpoints` | `job_name` | `fingerprint` (the job's when the checkpoint was saved), `sink` (the sink's resumption record, JSON or NULL), `saved_at`; a row exists while the job has a saved checkpoint |
//! | `vmig_partitions` | `job_name`, `part_key` (SHA-256 of the id, so ids of any length fit a key) | `partition_id`, `state` (`in_progress`/`done`, NULL when only counts are saved), `position` (JSON), `rows_read`, `rows_written`, `unconfirmed`, `bytes_written` (NULL when the checkpoint has no counts for it; `bytes_written` also in rows saved before schema version 3) |
//! | `vmig_leases` | `job_name`, `unit_key` (SHA-256 of the partition id, or of the step) | `kind` (`partition`/`step`), `unit` (the partition id or step name: `setup`, `finish`), `owner` (the worker holding it), `lease_until` (epoch ms), `done`, `claims` (how often it was claimed: takeovers) |
//! | `vmig_workers` | `job_name`, `worker` | `host`, `pid`, `sink` (the worker's own sink record), `started_at`, `seen_at` (last renewal or save) |
//! | `vmig_submissions` | `name` | jobs submitted to `vmig serve` ([`Submission`]): `seq` (their order), `kind` (`migrate`/`verify`), `of_job` (the job a verification checks), `format`, `body` (the job as sent: secrets it holds included), `status` (the server's state of it), `error`, `plan`, `report` (JSON text), `submitted_at`, `updated_at` |
//!
//! Runs, checkpoints and partitions refer to their job's row (foreign keys).
//!
//! # Versions
//!
//! `vmig_state_version` holds one row with the schema version ([`SCHEMA_VERSION`]). `open`
//! applies the missing migrations in order and then writes the new version, in one
//! transaction, one process at a time (a session lock on MySQL and PostgreSQL, `BEGIN
//! IMMEDIATE` on SQLite). A database at a higher version than this vmig knows is refused with a
//! message saying to upgrade vmig. A released migration is never edited; a schema change is a
//! new migration. MySQL commits each DDL statement by itself, so there a migration cut short is
//! applied again from the start: every migration statement is idempotent (`IF NOT EXISTS`, or,
//! for MySQL's `ADD COLUMN`, which has no such clause, "duplicate column" taken as done).
//!
//! Version 1 holds jobs, runs and checkpoints; version 2 adds leases and workers; version 3
//! adds each partition's `bytes_written`; version 4 the jobs submitted to `vmig serve`.
//!
//! # Several workers on one job (schema version 2)
//!
//! [`StateStore::join`] makes a process one worker of a job; its [`JobWorker`] claims
//! partitions with leases ([`vmig_core::lease::Leases`]) and saves only its own slice of the
//! checkpoint. Claims, renewals and saves lock the job's row like every write, and take a unit
//! by compare-and-set (`UPDATE … WHERE owner IS NULL OR lease_until < now`), so the same SQL
//! gives one partition to one worker on all three databases (`tests/leases.rs` races four
//! workers with pools of their own on each). See the `leases` module for the rules.

//! # Runs
//!
//! [`StateStore::start_run`] records the job and a new run with status `running`;
//! [`StateStore::finish_run`] ends it. A run still `running` whose process is gone was killed:
//! the store only reports it (with `host` and `pid`, so a front end can tell whether that
//! process still lives); it never decides that itself.

#![warn(missing_docs)]

mod checkpoints;
mod db;
mod leases;
mod schema;
mod submissions;

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize, Serializer};
use vmig_core::redact;
use vmig_core::{Error, Result};

pub use checkpoints::JobCheckpoints;
use leases::insert_worker;
pub use leases::{HeldUnit, JobWorker, WorkerRecord, MIN_LEASE};
pub use schema::SCHEMA_VERSION;
pub use submissions::Submission;
pub use vmig_core::checkpoint::CheckpointStore;

use db::{begin_write, on_pool, Backend, Failure, Pool, RowExt as _, Secrets};

/// The longest job name, in characters (the key column is `VARCHAR(255)` on every database).
pub const MAX_JOB_NAME: usize = 255;

/// The longest error text kept with a run, in bytes; a longer one is cut (at a character
/// boundary) and ends with `…`.
pub(crate) const MAX_ERROR_BYTES: usize = 60_000;

/// The job state store: one database holding the jobs, runs and checkpoints of every job that
/// names it. Cheap to clone (the connection pool is shared); `Debug` shows only the location.
#[derive(Clone)]
pub struct StateStore {
    pool: Pool,
    backend: Backend,
    location: std::sync::Arc<str>,
    /// The URL's password, masked in every error message (never shown by `Debug`).
    secrets: std::sync::Arc<Secrets>,
}

impl fmt::Debug for StateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateStore")
            .field("location", &&*self.location)
            .field("backend", &self.backend.name())
            .finish()
    }
}

/// What identifies a job: its name and fingerprints, and the resolved job they were computed
/// from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobIdentity {
    /// The user-visible job name (at most [`MAX_JOB_NAME`] characters).
    pub name: String,
    /// The whole job's fingerprint ([`vmig_core::checkpoint::JobFingerprint`]): 64 lowercase
    /// hex digits.
    pub fingerprint: String,
    /// The source's fingerprint (64 lowercase hex digits).
    pub source: String,
    /// The transforms' fingerprint (64 lowercase hex digits).
    pub transforms: String,
    /// The sink's fingerprint (64 lowercase hex digits).
    pub sink: String,
    /// The resolved job, without secrets. The store masks secret-named keys and URL
    /// user-infos again before writing it ([`redact::json_by_key_and_url`]).
    pub resolved: serde_json::Value,
}

/// How a run stands or ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Started and not finished: still working, or killed before it could say how it ended.
    Running,
    /// Ended with an error.
    Failed,
    /// Stopped on request (Ctrl-C, SIGTERM).
    Cancelled,
    /// Finished: every partition is done.
    Done,
}

impl RunStatus {
    /// The lowercase word, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Done => "done",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "running" => Ok(RunStatus::Running),
            "failed" => Ok(RunStatus::Failed),
            "cancelled" => Ok(RunStatus::Cancelled),
            "done" => Ok(RunStatus::Done),
            other => Err(Error::config(
                "state",
                format!(
                    "unknown run status `{other}` (expected running, failed, cancelled or done)"
                ),
            )),
        }
    }
}

/// One run of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunRecord {
    /// A random id (UUID v4).
    pub id: String,
    /// The job's name.
    pub job_name: String,
    /// The job's fingerprint when the run started.
    pub fingerprint: String,
    /// How it stands or ended.
    pub status: RunStatus,
    /// When it started (millisecond precision); serialised as RFC 3339.
    #[serde(serialize_with = "rfc3339")]
    pub started_at: SystemTime,
    /// When it ended, if it did.
    #[serde(serialize_with = "rfc3339_opt")]
    pub ended_at: Option<SystemTime>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// Whether it continued the job's saved checkpoint.
    pub resumed: bool,
    /// The host it ran on.
    pub host: String,
    /// Its process id on that host.
    pub pid: u32,
}

/// A job as recorded by its last [`StateStore::start_run`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRecord {
    /// Name, fingerprints and resolved job.
    pub identity: JobIdentity,
    /// When the job was first recorded.
    #[serde(serialize_with = "rfc3339")]
    pub created_at: SystemTime,
    /// When its record last changed (a run of a changed job); equal to `created_at` until then.
    #[serde(serialize_with = "rfc3339")]
    pub updated_at: SystemTime,
}

pub(crate) fn rfc3339<S: Serializer>(t: &SystemTime, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*t))
}

fn rfc3339_opt<S: Serializer>(
    t: &Option<SystemTime>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}

/// Now, in epoch milliseconds.
pub(crate) fn now_millis() -> i64 {
    millis(SystemTime::now())
}

fn millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |m| -m),
    }
}

pub(crate) fn time(ms: i64) -> SystemTime {
    let d = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        UNIX_EPOCH + d
    } else {
        UNIX_EPOCH - d
    }
}

/// The first 12 characters of a fingerprint, for messages.
pub(crate) fn short(fingerprint: &str) -> &str {
    fingerprint
        .char_indices()
        .nth(12)
        .map_or(fingerprint, |(end, _)| &fingerprint[..end])
}

/// `s` cut to at most `max` bytes at a character boundary, ending with `…` when cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn is_fingerprint(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// This machine's name, for run records ([`vmig_core::process::this_host`], the name
/// [`vmig_core::process::is_gone`] compares with).
pub(crate) fn host_name() -> String {
    vmig_core::process::this_host()
}

/// A run record from a row of `vmig_runs`.
fn run_record<R: db::RowExt>(row: &R) -> std::result::Result<RunRecord, Failure> {
    let id = row.text("id")?;
    let bad = |what: String| Failure::Vmig(Error::data(format!("run {id}"), what));
    let status = row.text("status")?;
    let status = status
        .parse()
        .map_err(|_| bad(format!("unknown status `{status}`")))?;
    let pid = row.int("pid")?;
    let pid = u32::try_from(pid).map_err(|_| bad(format!("process id {pid} out of range")))?;
    Ok(RunRecord {
        job_name: row.text("job_name")?,
        fingerprint: row.text("fingerprint")?,
        status,
        started_at: time(row.int("started_at")?),
        ended_at: row.opt_int("ended_at")?.map(time),
        error: row.opt_text("error")?,
        resumed: row.int("resumed")? != 0,
        host: row.text("host")?,
        pid,
        id,
    })
}

const RUN_COLUMNS: &str =
    "id, job_name, fingerprint, status, started_at, ended_at, error, resumed, host, pid";

impl StateStore {
    /// Opens (creating or migrating as needed) the state store at `url`; a relative SQLite path
    /// is resolved against `base_dir` (normally the job file's directory).
    ///
    /// Accepted URLs: `sqlite://PATH`, `mysql://…`, `mariadb://…` (the same driver),
    /// `postgres://…`, `postgresql://…`. The URL's password is registered with
    /// [`redact::register_in_json`], so front ends mask it in whatever they print.
    ///
    /// # Errors
    /// [`Error::Config`] for an unknown scheme or a malformed URL; [`Error::Unsupported`] when
    /// the database's schema is newer than this vmig knows; [`Error::Transient`] when the
    /// server cannot be reached or is busy; any other database error (wrong password, missing
    /// database, no permission) as [`Error::External`] with context. No error holds the
    /// password.
    pub async fn open(url: &str, base_dir: &Path) -> Result<StateStore> {
        redact::register_in_json(&serde_json::Value::String(url.to_string()));
        let secrets = Secrets::of(url);
        let (target, location) = db::parse(url, base_dir, &secrets)?;
        let backend = match target {
            db::Target::Sqlite(_) => Backend::Sqlite,
            db::Target::MySql(_) => Backend::MySql,
            db::Target::Postgres(_) => Backend::Postgres,
        };
        let open = || async {
            let opened = async {
                let pool = db::connect(target.clone()).await?;
                schema::migrate(&pool, backend, &location).await?;
                Ok::<_, Failure>(pool)
            }
            .await;
            opened.map_err(|f| db::db_error(&location, "connecting to the database", f, &secrets))
        };
        // SQLite can answer "database is locked" at once, without waiting out the busy timeout,
        // while another process opens the same file (e.g. `vmig status` as a run starts: the
        // journal-mode switch takes no busy handler), so a busy SQLite file is tried again under
        // the default retry policy. A server database that cannot be reached fails at once.
        let pool = if backend == Backend::Sqlite {
            vmig_core::retry::RetryConfig::default()
                .run(&format!("opening the state store {location}"), open)
                .await?
        } else {
            open().await?
        };
        Ok(StateStore {
            pool,
            backend,
            location: location.into(),
            secrets: std::sync::Arc::new(secrets),
        })
    }

    /// Where the store is: its URL without user-info (`mysql://***@db:3306/vmig`); for SQLite
    /// `sqlite://` and the resolved path of the file.
    pub fn location(&self) -> &str {
        &self.location
    }

    fn fail(&self, doing: &str, failure: Failure) -> Error {
        db::db_error(&self.location, doing, failure, &self.secrets)
    }

    /// The job recorded as `name`, if any.
    ///
    /// # Errors
    /// When the database cannot be read or holds a job that is not JSON.
    pub async fn job(&self, name: &str) -> Result<Option<JobRecord>> {
        let backend = self.backend;
        let found: std::result::Result<_, Failure> = on_pool!(&self.pool, |pool| async {
            let select = "SELECT name, fingerprint, source_fp, transforms_fp, sink_fp, job, \
                          created_at, updated_at FROM vmig_jobs WHERE name = ?";
            let Some(row) = sqlx::query(&backend.sql(select))
                .bind(name)
                .fetch_optional(pool)
                .await?
            else {
                return Ok(None);
            };
            let job = row.text("job")?;
            let resolved = serde_json::from_str(&job).map_err(|e| {
                Error::data(
                    format!("{} (job {name})", self.location),
                    format!("the recorded job is not JSON ({e})"),
                )
            })?;
            Ok(Some(JobRecord {
                identity: JobIdentity {
                    name: row.text("name")?,
                    fingerprint: row.text("fingerprint")?,
                    source: row.text("source_fp")?,
                    transforms: row.text("transforms_fp")?,
                    sink: row.text("sink_fp")?,
                    resolved,
                },
                created_at: time(row.int("created_at")?),
                updated_at: time(row.int("updated_at")?),
            }))
        }
        .await);
        found.map_err(|f| self.fail(&format!("reading job `{name}`"), f))
    }

    /// Every run of job `name`, oldest first.
    ///
    /// # Errors
    /// When the database cannot be read or holds a malformed run.
    pub async fn runs(&self, name: &str) -> Result<Vec<RunRecord>> {
        let select = format!("SELECT {RUN_COLUMNS} FROM vmig_runs WHERE job_name = ? ORDER BY seq");
        let backend = self.backend;
        let runs: std::result::Result<_, Failure> = on_pool!(&self.pool, |pool| async {
            let rows = sqlx::query(&backend.sql(&select))
                .bind(name)
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(run_record)
                .collect::<std::result::Result<Vec<_>, _>>()
        }
        .await);
        runs.map_err(|f| self.fail(&format!("reading the runs of job `{name}`"), f))
    }

    /// The latest run of job `name`, if it ever ran.
    ///
    /// # Errors
    /// When the database cannot be read or holds a malformed run.
    pub async fn last_run(&self, name: &str) -> Result<Option<RunRecord>> {
        let select = format!(
            "SELECT {RUN_COLUMNS} FROM vmig_runs WHERE job_name = ? ORDER BY seq DESC LIMIT 1"
        );
        let backend = self.backend;
        let run: std::result::Result<_, Failure> = on_pool!(&self.pool, |pool| async {
            let row = sqlx::query(&backend.sql(&select))
                .bind(name)
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(run_record).transpose()
        }
        .await);
        run.map_err(|f| self.fail(&format!("reading the last run of job `{name}`"), f))
    }

    /// Records (or updates) the job row and inserts a new run with status running. `resumed`
    /// says whether it continues the saved checkpoint.
    ///
    /// The run gets a random id, this host's name and this process's id. Recording a job
    /// whose fingerprint changed does not touch its checkpoint: that checkpoint keeps the
    /// fingerprint it was saved with, so [`vmig_core::checkpoint::resume`] refuses it until
    /// [`forget_progress`](Self::forget_progress).
    ///
    /// # Errors
    /// [`Error::Config`] when the name is empty or longer than [`MAX_JOB_NAME`] characters or a
    /// fingerprint is not 64 lowercase hex digits; any database error.
    pub async fn start_run(&self, job: &JobIdentity, resumed: bool) -> Result<RunRecord> {
        self.start(job, resumed, false).await
    }

    /// [`StateStore::start_run`] and [`StateStore::join`] in one transaction: the new run is
    /// recorded as a worker of the job (its id is the worker id) from its first instant, so a
    /// worker starting at the same moment never takes it for a single-process run.
    ///
    /// # Errors
    /// As both.
    pub async fn start_worker_run(
        &self,
        job: &JobIdentity,
        resumed: bool,
        lease: std::time::Duration,
    ) -> Result<(RunRecord, JobWorker)> {
        leases::check_lease(lease)?;
        let run = self.start(job, resumed, true).await?;
        let worker = JobWorker::new(self.clone(), &job.name, &run.id, lease);
        Ok((run, worker))
    }

    async fn start(&self, job: &JobIdentity, resumed: bool, worker: bool) -> Result<RunRecord> {
        let name = job.name.as_str();
        if name.is_empty() || name.chars().count() > MAX_JOB_NAME {
            return Err(Error::config(
                "state",
                format!(
                    "a job name must have 1 to {MAX_JOB_NAME} characters, `{name}` has {}",
                    name.chars().count()
                ),
            ));
        }
        for (what, fp) in [
            ("fingerprint", &job.fingerprint),
            ("source fingerprint", &job.source),
            ("transforms fingerprint", &job.transforms),
            ("sink fingerprint", &job.sink),
        ] {
            if !is_fingerprint(fp) {
                return Err(Error::config(
                    "state",
                    format!("the {what} of job `{name}` is `{fp}`, not 64 lowercase hex digits"),
                ));
            }
        }
        let mut resolved = job.resolved.clone();
        redact::json_by_key_and_url(&mut resolved);
        let resolved = resolved.to_string();
        let now = now_millis();
        let run = RunRecord {
            id: uuid::Uuid::new_v4().to_string(),
            job_name: job.name.clone(),
            fingerprint: job.fingerprint.clone(),
            status: RunStatus::Running,
            started_at: time(now),
            ended_at: None,
            error: None,
            resumed,
            host: host_name(),
            pid: std::process::id(),
        };
        let backend = self.backend;
        let upsert = backend.upsert_job();
        let next = backend
            .sql("SELECT COALESCE(MAX(seq), 0) + 1 AS next FROM vmig_runs WHERE job_name = ?");
        let insert = backend.sql(
            "INSERT INTO vmig_runs (id, job_name, seq, fingerprint, status, started_at, resumed, \
             host, pid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        );
        let started: std::result::Result<(), Failure> = on_pool!(&self.pool, |pool| async {
            let mut tx = begin_write(pool, backend).await?;
            // The upsert locks the job's row, so runs of one job are numbered one at a time.
            sqlx::query(&upsert)
                .bind(name)
                .bind(&job.fingerprint)
                .bind(&job.source)
                .bind(&job.transforms)
                .bind(&job.sink)
                .bind(&resolved)
                .bind(now)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let seq = sqlx::query(&next)
                .bind(name)
                .fetch_one(&mut *tx)
                .await?
                .int("next")?;
            sqlx::query(&insert)
                .bind(&run.id)
                .bind(name)
                .bind(seq)
                .bind(&run.fingerprint)
                .bind(run.status.as_str())
                .bind(now)
                .bind(i64::from(resumed))
                .bind(&run.host)
                .bind(i64::from(run.pid))
                .execute(&mut *tx)
                .await?;
            if worker {
                insert_worker!(
                    backend,
                    tx,
                    name,
                    run.id.as_str(),
                    run.host.as_str(),
                    i64::from(run.pid),
                    now
                );
            }
            tx.commit().await?;
            Ok(())
        }
        .await);
        started.map_err(|f| self.fail(&format!("starting a run of job `{name}`"), f))?;
        Ok(run)
    }

    /// Ends run `run_id` with `status` (not [`RunStatus::Running`]) and, for a failure, its
    /// error (cut to 60 000 bytes).
    ///
    /// # Errors
    /// [`Error::Config`] for status `running`; [`Error::Data`] when there is no such run or it
    /// already ended (saying how); any database error.
    pub async fn finish_run(
        &self,
        run_id: &str,
        status: RunStatus,
        error: Option<&str>,
    ) -> Result<()> {
        if status == RunStatus::Running {
            return Err(Error::config(
                "state",
                format!("run {run_id} cannot finish as `running`: give failed, cancelled or done"),
            ));
        }
        let error = error.map(|e| truncate(e, MAX_ERROR_BYTES));
        let backend = self.backend;
        let update = backend.sql(
            "UPDATE vmig_runs SET status = ?, ended_at = ?, error = ? \
             WHERE id = ? AND status = 'running'",
        );
        let check = backend.sql("SELECT status FROM vmig_runs WHERE id = ?");
        let location = &*self.location;
        let finished: std::result::Result<(), Failure> = on_pool!(&self.pool, |pool| async {
            let mut tx = begin_write(pool, backend).await?;
            let updated = sqlx::query(&update)
                .bind(status.as_str())
                .bind(now_millis())
                .bind(error.as_deref())
                .bind(run_id)
                .execute(&mut *tx)
                .await?;
            if updated.rows_affected() == 0 {
                let row = sqlx::query(&check)
                    .bind(run_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let message = match row {
                    None => format!("there is no run {run_id}"),
                    Some(row) => format!(
                        "run {run_id} already ended ({}); a run ends once",
                        row.text("status")?
                    ),
                };
                return Err(Failure::Vmig(Error::data(location, message)));
            }
            tx.commit().await?;
            Ok(())
        }
        .await);
        finished.map_err(|f| self.fail(&format!("finishing run {run_id}"), f))
    }

    /// Forgets the job's checkpoint (partitions + sink record) — used by `--restart`; run
    /// history stays. Nothing happens for a job that has none.
    ///
    /// # Errors
    /// Any database error.
    pub async fn forget_progress(&self, name: &str) -> Result<()> {
        let backend = self.backend;
        let lock = format!(
            "SELECT name FROM vmig_jobs WHERE name = ?{}",
            backend.for_update()
        );
        let forgot: std::result::Result<(), Failure> = on_pool!(&self.pool, |pool| async {
            let mut tx = begin_write(pool, backend).await?;
            sqlx::query(&backend.sql(&lock))
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
            for table in [
                "vmig_leases",
                "vmig_workers",
                "vmig_partitions",
                "vmig_checkpoints",
            ] {
                let delete = format!("DELETE FROM {table} WHERE job_name = ?");
                sqlx::query(&backend.sql(&delete))
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        }
        .await);
        forgot.map_err(|f| self.fail(&format!("forgetting the progress of job `{name}`"), f))
    }

    /// A [`CheckpointStore`] for job `name`: `load` returns `None` when nothing is saved;
    /// `save` replaces the job's partitions, counts and sink record in one transaction,
    /// writing only the rows that changed. See [`JobCheckpoints`].
    pub fn checkpoints(&self, name: &str) -> JobCheckpoints {
        JobCheckpoints::new(self.clone(), name.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_status_words() {
        for s in [
            RunStatus::Running,
            RunStatus::Failed,
            RunStatus::Cancelled,
            RunStatus::Done,
        ] {
            assert_eq!(s.to_string().parse::<RunStatus>().unwrap(), s);
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::Value::String(s.to_string())
            );
        }
        assert_eq!(
            "Done".parse::<RunStatus>().unwrap_err().to_string(),
            "invalid `state` configuration: unknown run status `Done` (expected running, failed, cancelled or done)"
        );
    }

    #[test]
    fn times_round_trip_through_milliseconds() {
        for ms in [0, 1, 1_764_000_000_123, -1_500] {
            assert_eq!(millis(time(ms)), ms);
        }
        let record = RunRecord {
            id: "r".into(),
            job_name: "j".into(),
            fingerprint: "f".into(),
            status: RunStatus::Failed,
            started_at: time(1_764_000_000_123),
            ended_at: None,
            error: Some("boom".into()),
            resumed: true,
            host: "h".into(),
            pid: 7,
        };
        assert_eq!(
            serde_json::to_value(&record).unwrap(),
            serde_json::json!({
                "id": "r", "job_name": "j", "fingerprint": "f", "status": "failed",
                "started_at": "2025-11-24T16:00:00.123Z", "ended_at": null, "error": "boom",
                "resumed": true, "host": "h", "pid": 7
            })
        );
    }

    #[test]
    fn long_errors_are_cut_at_a_character_boundary() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("aéé", 4), "a…");
        assert_eq!(truncate("abcdef", 5), "ab…");
        assert_eq!(short("0123456789abcdef"), "0123456789ab");
    }
}
