//! Which run of a job starts: the state store it uses, and the rules that make a run resume,
//! start over, or be refused — the job lifecycle `vmig migrate` follows, and any program that
//! runs jobs with a state store (the REST server, an application embedding vmig) follows too:
//! [`url`] and [`lease`] pick the store and the worker mode, [`begin`] records the run (after
//! `--restart`'s clean-up), [`finish`] records how it ended.
//!
//! * The store is `--state URL`, else `[state] url`, else `sqlite://.vmig/state.db` next to the
//!   job file; `--state none` runs without one (nothing is resumable then).
//! * A job is known by its name (`[state] name`, else the job file's stem). Its last run decides:
//!   - none, or nothing saved yet: a fresh run;
//!   - still `running` in a process that exists: refused (exit 1) naming that process;
//!   - `failed`, `cancelled`, or `running` in a process that is gone (killed): resumed;
//!   - `done`: refused (exit 2) — `--restart` runs it again;
//!   - saved by a job file whose source, transforms or sink differ: refused (exit 2), saying
//!     which changed — `--restart` starts over; unless that run saved no progress and did not
//!     finish (it failed before its first checkpoint): then the changed job simply starts.
//! * Several workers (`[state] lease`, or `--worker`): a process joins a job that live workers
//!   are running instead of being refused — only with a MySQL/MariaDB or PostgreSQL store
//!   (state every worker can reach; an SQLite file is one machine's), and only when every live
//!   run of the job is a worker (a single-process run is never joined). The job is finished
//!   when a worker completed its `finish` step; `--restart` is refused while workers live.
//! * `--restart` forgets the saved progress. When the earlier run was not finished, its sink
//!   is first resumed from its record and aborted, so what that run created (and only that) is
//!   removed; then the new run prepares the target as its options say.

use std::fmt;

use crate::checkpoint::CheckpointStore;
use crate::config::Job;
use crate::state::{JobIdentity, RunRecord, RunStatus, StateStore};

/// The default store, relative to the job file's directory.
pub const DEFAULT_URL: &str = "sqlite://.vmig/state.db";

/// The lease of `--worker` when the job file sets none.
pub const DEFAULT_LEASE: std::time::Duration = std::time::Duration::from_secs(60);

/// The lease this run's workers use, when the run is one worker of a shared job: `[state]
/// lease`, or [`DEFAULT_LEASE`] with `--worker`.
///
/// # Errors
/// [`crate::Error::Config`] when the store is not a server every worker can reach.
pub fn lease(job: &Job, worker: bool, url: Option<&str>) -> Result<Option<std::time::Duration>> {
    let lease = match (job.state.lease, worker) {
        (Some(lease), _) => lease,
        (None, true) => DEFAULT_LEASE,
        (None, false) => return Ok(None),
    };
    if !job.sink.shares_jobs() {
        return Err(crate::lease::unshared_sink(job.sink.plugin()).into());
    }
    let shared = url.is_some_and(|u| {
        let scheme = u.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        matches!(
            scheme.as_deref(),
            Some("mysql" | "mariadb" | "postgres" | "postgresql")
        )
    });
    if !shared {
        let store = url.map_or_else(|| "none".to_string(), crate::redact::url);
        return Err(crate::Error::config(
            "state",
            format!(
                "several workers share a job through a state store they all reach: `[state] lease` and `--worker` need `--state` (or `[state] url`) mysql://…, mariadb://… or postgres://…, not {store}"
            ),
        )
        .into());
    }
    Ok(Some(lease))
}

/// A run refused before it started: the job is done, changed, or running elsewhere. Exits 2
/// (a usage matter: the message says which flag to add) unless `busy`.
#[derive(Debug)]
pub struct Refused {
    /// The whole message.
    pub message: String,
    /// Another process runs the job (exit 1: retrying later may work).
    pub busy: bool,
    /// The job already finished: nothing is left to do without `--restart`.
    pub finished: bool,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Refused {}

/// Why a run could not begin: refused by the rules above, or a store or configuration error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// The job is finished, changed, or running elsewhere.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// The state store failed, or the job's `[state]` does not fit the run asked for.
    #[error(transparent)]
    Vmig(#[from] crate::Error),
}

/// The result of the lifecycle's steps.
pub type Result<T, E = JobError> = std::result::Result<T, E>;

/// The store URL for `job`: `--state`, then `[state] url`, then [`DEFAULT_URL`]; `None` for
/// `--state none`.
pub fn url(job: &Job, flag: Option<&str>) -> Option<String> {
    match flag {
        Some("none") => None,
        Some(url) => Some(url.to_string()),
        None => Some(
            job.state
                .url
                .clone()
                .unwrap_or_else(|| DEFAULT_URL.to_string()),
        ),
    }
}

/// What `job` is in the store.
pub fn identity(job: &Job) -> JobIdentity {
    JobIdentity {
        name: job.name.clone(),
        fingerprint: job.fingerprints.job.to_string(),
        source: job.fingerprints.source.to_string(),
        transforms: job.fingerprints.transforms.to_string(),
        sink: job.fingerprints.sink.to_string(),
        resolved: job.resolved.clone(),
    }
}

/// How the run starts.
#[derive(Debug)]
pub struct Start {
    /// The new run's record.
    pub run: RunRecord,
    /// What `--restart` removed of the earlier, unfinished run (one sentence each).
    pub discarded: Vec<String>,
    /// This run's handle as a worker of a shared job.
    pub worker: Option<std::sync::Arc<crate::state::JobWorker>>,
}

/// Decides whether `job` resumes, starts fresh, or is refused, applies `--restart`, and records
/// the new run as running.
///
/// # Errors
/// [`Refused`] for a finished, changed or busy job; store errors.
pub async fn begin(
    store: &StateStore,
    job: &Job,
    restart: bool,
    lease: Option<std::time::Duration>,
) -> Result<Start> {
    let worker = lease.is_some();
    let name = &job.name;
    let saved = store.job(name).await?;
    let last = store.last_run(name).await?;
    let live: Vec<RunRecord> = store
        .runs(name)
        .await?
        .into_iter()
        .filter(|r| r.status == RunStatus::Running && !crate::process::is_gone(&r.host, r.pid))
        .collect();
    // Read after the runs: a worker's run and its worker row are written in one transaction,
    // so every worker run read above is in this set.
    let workers: std::collections::BTreeSet<String> = store
        .workers(name)
        .await?
        .into_iter()
        .map(|w| w.worker)
        .collect();
    // A worker joins live workers; anything else is refused as busy.
    let blocking = live
        .iter()
        .find(|r| !worker || restart || !workers.contains(&r.id));
    if let Some(last) = blocking {
        let why = if worker && restart {
            "; `--restart` waits until no worker runs"
        } else if worker {
            "; a worker joins only other workers (runs with `[state] lease` or `--worker`)"
        } else {
            ""
        };
        return Err(Refused {
            message: format!(
                "job `{name}` is being run by another vmig process (pid {} on {}, run {}, started {}); wait for it to finish or stop it — its progress is kept ({}){why}",
                last.pid,
                last.host,
                last.id,
                when(last.started_at),
                store.location()
            ),
            busy: true,
            finished: false,
        }
        .into());
    }
    let checkpoints = store.checkpoints(name);
    let progress = checkpoints.load().await?;
    let mut discarded = Vec::new();
    // A changed job is refused only when its earlier run left something that would not apply:
    // saved progress, or a finished run. An earlier run that failed or stopped before saving
    // anything (an unreachable server, a typo fixed since) is simply started over.
    let saved_progress = progress
        .as_ref()
        .is_some_and(|c| !c.is_empty() || c.sink().is_some());
    let finished = last.as_ref().is_some_and(|l| l.status == RunStatus::Done);
    if let Some(saved) = &saved {
        let was = &saved.identity;
        if was.fingerprint != job.fingerprints.job.as_str()
            && !restart
            && (saved_progress || finished)
        {
            let mut changed = Vec::new();
            if was.source != job.fingerprints.source.as_str() {
                changed.push("[source]");
            }
            if was.transforms != job.fingerprints.transforms.as_str() {
                changed.push("[[transform]]");
            }
            if was.sink != job.fingerprints.sink.as_str() {
                changed.push("[sink]");
            }
            let what = if changed.is_empty() {
                "the job".to_string()
            } else {
                changed.join(" and ")
            };
            return Err(Refused {
                message: format!(
                    "job `{name}` changed since its last run ({what} differ from what {} recorded), so that run's progress does not apply; `vmig migrate --restart` starts this job over, or give it another name with `[state] name`",
                    store.location()
                ),
                busy: false,
                finished: false,
            }
            .into());
        }
    }
    let finished = if worker {
        store.step_done(name, crate::lease::Step::Finish).await?
    } else {
        last.as_ref().is_some_and(|l| l.status == RunStatus::Done)
    };
    if let Some(last) = last.as_ref().filter(|_| finished) {
        if !restart {
            return Err(Refused {
                message: format!(
                    "job `{name}` already finished (run {}, ended {}); `vmig migrate --restart` runs it again from the start (the target is then handled as the sink's options say)",
                    last.id,
                    last.ended_at.map_or_else(|| "?".to_string(), when)
                ),
                busy: false,
                finished: true,
            }
            .into());
        }
    }
    if !worker && !restart && !workers.is_empty() {
        // The job's output is spread over its workers' records (a worker's files, a dead
        // worker's staged imports), which only a worker's finish gathers.
        return Err(Refused {
            message: format!(
                "job `{name}` is shared between workers ({} recorded in {}), so only a worker continues it: run it with `--worker` (or `[state] lease`), or start it over with `vmig migrate --restart`",
                workers.len(),
                store.location()
            ),
            busy: false,
            finished: false,
        }
        .into());
    }
    let unfinished = last.as_ref().is_some_and(|l| l.status != RunStatus::Done);
    let mut resuming = progress.as_ref().is_some_and(|c| !c.is_empty());
    let changed = saved
        .as_ref()
        .is_some_and(|s| s.identity.fingerprint != job.fingerprints.job.as_str());
    if changed && !restart {
        // Nothing of the earlier run applies (see above): forget its empty checkpoint.
        store.forget_progress(name).await?;
        resuming = false;
    }
    if restart {
        if unfinished {
            if let Some(record) = progress.as_ref().and_then(|c| c.sink().cloned()) {
                discarded = discard(job, record).await;
            }
        }
        store.forget_progress(name).await?;
        resuming = false;
    }
    let (run, worker) = match lease {
        Some(lease) => {
            let (run, worker) = store
                .start_worker_run(&identity(job), resuming, lease)
                .await?;
            (run, Some(std::sync::Arc::new(worker)))
        }
        None => (store.start_run(&identity(job), resuming).await?, None),
    };
    Ok(Start {
        run,
        discarded,
        worker,
    })
}

/// Removes what an unfinished earlier run's sink created: resumes a fresh sink from that run's
/// record and aborts it. Failures are reported, not fatal: the new run's `prepare` still
/// refuses anything in its way.
async fn discard(job: &Job, record: serde_json::Value) -> Vec<String> {
    let sink = match job.sink.build(&job.ctx).await {
        Ok(sink) => sink,
        Err(e) => return vec![format!("The earlier run's output was not removed: {e}.")],
    };
    let mut sink = sink;
    if let Err(e) = sink.resume(record).await {
        return vec![format!(
            "The earlier run's output was left as it was (it could not be adopted: {e})."
        )];
    }
    match sink.abort().await {
        Ok(report) => report.left,
        Err(e) => vec![format!("Removing the earlier run's output failed: {e}.")],
    }
}

/// Records how the run ended: done (`error` is `None`), cancelled (a stop was asked for), or
/// failed with `error` (the whole message; it is redacted before it is stored).
///
/// # Errors
/// Store errors.
pub async fn finish(
    store: &StateStore,
    run: &RunRecord,
    error: Option<&str>,
    cancelled: bool,
) -> Result<()> {
    let (status, error) = match error {
        None => (RunStatus::Done, None),
        Some(_) if cancelled => (RunStatus::Cancelled, None),
        Some(e) => (RunStatus::Failed, Some(crate::redact::text(e))),
    };
    store.finish_run(&run.id, status, error.as_deref()).await?;
    Ok(())
}

/// `2026-12-02 15:50:00 UTC`.
pub fn when(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    crate::process::utc(secs)
}

/// The pipeline of `job`: its source and sink built (they connect and read headers, write
/// nothing), its transforms and options, stopped by `cancel`; with `worker` it is one worker of
/// a shared job (its own checkpoint slice and leases), else with `store` its progress is saved
/// in the job's checkpoint.
///
/// # Errors
/// When the source or the sink cannot be built.
pub async fn pipeline(
    job: Job,
    store: Option<&StateStore>,
    worker: Option<std::sync::Arc<crate::state::JobWorker>>,
    cancel: tokio_util::sync::CancellationToken,
) -> crate::Result<crate::pipeline::Pipeline> {
    let source = job.source.build(&job.ctx).await?;
    let sink = job.sink.build(&job.ctx).await?;
    let mut pipeline = crate::pipeline::Pipeline::new(source, sink)
        .with_transforms(job.transforms)
        .with_options(job.options)
        .with_cancel(cancel);
    if let Some(worker) = worker {
        tracing::info!(
            "worker {} of job `{}`: claiming partitions with a lease of {:?}",
            crate::lease::Leases::worker(worker.as_ref()),
            job.name,
            crate::lease::Leases::lease(worker.as_ref())
        );
        pipeline = pipeline
            .with_checkpoints(worker.clone(), job.fingerprint.clone())
            .with_leases(worker);
    } else if let Some(store) = store {
        pipeline = pipeline.with_checkpoints(
            std::sync::Arc::new(store.checkpoints(&job.name)),
            job.fingerprint.clone(),
        );
    }
    Ok(pipeline)
}

/// What [`verify`] found, and by which key it compared.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The comparison's counts and first differences.
    pub report: crate::verify::VerifyReport,
    /// The primary key rows were matched by.
    pub primary_key: String,
}

/// `vmig verify` of `job`: reads the source again (through the job's transformers) and the
/// target back, and compares them row by row by primary key, keeping at most `max_examples`
/// differences. Nothing is written.
///
/// # Errors
/// When either side cannot be read, or the sink cannot be read back (e.g. NumPy staging files).
pub async fn verify(job: &Job, max_examples: usize) -> crate::Result<Verified> {
    let source = job.source.build(&job.ctx).await?;
    let expected = crate::pipeline::output_schema(&source.schema(), &job.transforms)?;
    let Some(target) = job.sink.open_target(&job.ctx, &expected).await? else {
        return Err(crate::Error::config(
            job.sink.plugin(),
            "this sink cannot be read back, so there is nothing to verify against",
        ));
    };
    let primary_key = target
        .schema()
        .metadata()
        .get(crate::vector::META_PRIMARY_KEY)
        .or_else(|| expected.metadata().get(crate::vector::META_PRIMARY_KEY))
        .cloned()
        .unwrap_or_else(|| "id".to_string());
    let report = crate::verify::verify(
        source.as_ref(),
        &job.transforms,
        target.as_ref(),
        &primary_key,
        max_examples,
    )
    .await?;
    Ok(Verified {
        report,
        primary_key,
    })
}
