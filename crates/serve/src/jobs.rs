//! Jobs submitted over HTTP: a queue of at most `max_jobs` running at once (the rest wait in
//! the order they came), each run by the library's job lifecycle ([`vmig::jobs`]) into the
//! server's state store, as `vmig migrate` runs it — so a job started here is recorded, and
//! resumable, under its name as any other.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use vmig::config::{Job, JobFormat};
use vmig::pipeline::Observer;
use vmig::state::StateStore;

/// Where a submitted job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for a free slot (`--max-jobs`).
    Queued,
    /// Running.
    Running,
    /// Finished: the output is committed.
    Done,
    /// Stopped by an error; its progress is saved (resumable).
    Failed,
    /// Stopped on request before finishing; its progress is saved (resumable).
    Cancelled,
}

/// What `GET /v1/jobs/{id}` says of a job.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobView {
    /// The job's id: its name in the state store.
    pub id: String,
    /// Where it is.
    pub state: JobState,
    /// Rows handed to the sink so far (this run).
    pub rows_written: u64,
    /// Rows the sink made durable so far (this run).
    pub rows_flushed: u64,
    /// The source's estimate of the rows to read, when known.
    pub estimated_rows: Option<u64>,
    /// Rows per second since the run started.
    pub rows_per_second: Option<f64>,
    /// When it was submitted, UTC (`2026-12-03 15:50:00 UTC`, as `vmig status` prints it).
    pub submitted_at: String,
    /// When it ended, UTC.
    pub ended_at: Option<String>,
    /// The error that stopped it, secrets masked.
    pub error: Option<String>,
}

/// One job of this server.
#[derive(Debug)]
struct Entry {
    id: String,
    state: Mutex<JobState>,
    written: AtomicU64,
    flushed: AtomicU64,
    estimated: Mutex<Option<u64>>,
    submitted: SystemTime,
    started: Mutex<Option<std::time::Instant>>,
    ended: Mutex<Option<SystemTime>>,
    error: Mutex<Option<String>>,
    cancel: CancellationToken,
    /// The job as it was submitted, to run it again ([`Jobs::resumable`]).
    submitted_as: (JobFormat, String),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Entry {
    fn view(&self) -> JobView {
        let written = self.written.load(Ordering::Relaxed);
        let rate = lock(&self.started).map(|s| {
            let secs = s.elapsed().as_secs_f64();
            if secs > 0.0 {
                written as f64 / secs
            } else {
                0.0
            }
        });
        JobView {
            id: self.id.clone(),
            state: *lock(&self.state),
            rows_written: written,
            rows_flushed: self.flushed.load(Ordering::Relaxed),
            estimated_rows: *lock(&self.estimated),
            rows_per_second: rate,
            submitted_at: vmig::jobs::when(self.submitted),
            ended_at: lock(&self.ended).map(vmig::jobs::when),
            error: lock(&self.error).clone(),
        }
    }

    fn end(&self, state: JobState, error: Option<String>) {
        *lock(&self.state) = state;
        *lock(&self.error) = error.map(|e| vmig::redact::text(&e));
        *lock(&self.ended) = Some(SystemTime::now());
    }
}

impl Observer for Entry {
    fn started(&self, estimated_rows: Option<u64>) {
        *lock(&self.estimated) = estimated_rows;
    }
    fn written(&self, rows: u64) {
        self.written.fetch_add(rows, Ordering::Relaxed);
    }
    fn flushed(&self, rows: u64) {
        self.flushed.fetch_add(rows, Ordering::Relaxed);
    }
}

/// A per-job counter of `/metrics`: its name, help text and value.
type Counter = (&'static str, &'static str, fn(&Entry) -> u64);

/// Why a job was not accepted or cannot be acted on.
#[derive(Debug)]
pub(crate) enum JobRefusal {
    /// No such job.
    Unknown(String),
    /// The job exists but is not in a state for this (e.g. running twice).
    Conflict(String),
    /// The server runs no jobs (no state store).
    Unavailable(String),
}

/// The jobs of this server.
#[derive(Debug)]
pub(crate) struct Jobs {
    store: Option<StateStore>,
    slots: Arc<Semaphore>,
    entries: Mutex<BTreeMap<String, Arc<Entry>>>,
}

impl Jobs {
    /// Jobs run into `store`, `max_jobs` at once.
    pub(crate) fn new(store: Option<StateStore>, max_jobs: usize) -> Jobs {
        Jobs {
            store,
            slots: Arc::new(Semaphore::new(max_jobs.max(1))),
            entries: Mutex::new(BTreeMap::new()),
        }
    }

    /// Queues `job` under its name; it starts when a slot is free.
    pub(crate) fn submit(
        self: &Arc<Self>,
        job: Job,
        format: JobFormat,
        text: String,
    ) -> Result<JobView, JobRefusal> {
        let Some(store) = self.store.clone() else {
            return Err(JobRefusal::Unavailable(
                "this server runs no jobs: it has no state store (start it with `--state URL` or `--data-root DIR`)".into(),
            ));
        };
        let id = job.name.clone();
        let entry = {
            let mut entries = lock(&self.entries);
            if let Some(existing) = entries.get(&id) {
                let state = *lock(&existing.state);
                if matches!(state, JobState::Queued | JobState::Running) {
                    return Err(JobRefusal::Conflict(format!(
                        "job `{id}` is {} already",
                        if state == JobState::Queued {
                            "queued"
                        } else {
                            "running"
                        }
                    )));
                }
            }
            let entry = Arc::new(Entry {
                id: id.clone(),
                state: Mutex::new(JobState::Queued),
                written: AtomicU64::new(0),
                flushed: AtomicU64::new(0),
                estimated: Mutex::new(None),
                submitted: SystemTime::now(),
                started: Mutex::new(None),
                ended: Mutex::new(None),
                error: Mutex::new(None),
                cancel: CancellationToken::new(),
                submitted_as: (format, text),
            });
            entries.insert(id, Arc::clone(&entry));
            entry
        };
        let view = entry.view();
        let slots = Arc::clone(&self.slots);
        tokio::spawn(async move {
            let permit = tokio::select! {
                permit = slots.acquire_owned() => permit,
                () = entry.cancel.cancelled() => {
                    entry.end(JobState::Cancelled, None);
                    return;
                }
            };
            let Ok(_permit) = permit else {
                entry.end(JobState::Failed, Some("the server is shutting down".into()));
                return;
            };
            run(job, &store, &entry).await;
        });
        Ok(view)
    }

    /// Every job of this server, by id.
    pub(crate) fn list(&self) -> Vec<JobView> {
        lock(&self.entries).values().map(|e| e.view()).collect()
    }

    /// The job `id`.
    pub(crate) fn get(&self, id: &str) -> Result<JobView, JobRefusal> {
        lock(&self.entries)
            .get(id)
            .map(|e| e.view())
            .ok_or_else(|| JobRefusal::Unknown(format!("no job `{id}` on this server")))
    }

    /// Asks job `id` to stop: a queued job leaves the queue, a running one stops as after
    /// SIGINT (its progress saved, resumable).
    pub(crate) fn cancel(&self, id: &str) -> Result<JobView, JobRefusal> {
        let entries = lock(&self.entries);
        let entry = entries
            .get(id)
            .ok_or_else(|| JobRefusal::Unknown(format!("no job `{id}` on this server")))?;
        let state = *lock(&entry.state);
        if !matches!(state, JobState::Queued | JobState::Running) {
            return Err(JobRefusal::Conflict(format!(
                "job `{id}` is not queued or running"
            )));
        }
        entry.cancel.cancel();
        Ok(entry.view())
    }

    /// The job `id` as it was submitted, when it can run again (it failed or was cancelled).
    pub(crate) fn resumable(&self, id: &str) -> Result<(JobFormat, String), JobRefusal> {
        let entries = lock(&self.entries);
        let entry = entries
            .get(id)
            .ok_or_else(|| JobRefusal::Unknown(format!("no job `{id}` on this server")))?;
        let state = *lock(&entry.state);
        match state {
            JobState::Failed | JobState::Cancelled => Ok(entry.submitted_as.clone()),
            state => Err(JobRefusal::Conflict(format!(
                "job `{id}` is {}: only a failed or cancelled job resumes",
                serde_json::to_value(state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            ))),
        }
    }

    /// The metrics in Prometheus text format.
    pub(crate) fn metrics(&self) -> String {
        use std::fmt::Write as _;
        let entries = lock(&self.entries);
        let mut out = String::new();
        let counters: [Counter; 2] = [
            (
                "vmig_job_rows_written_total",
                "Rows handed to the sink by the job's current or last run.",
                |e| e.written.load(Ordering::Relaxed),
            ),
            (
                "vmig_job_rows_flushed_total",
                "Rows the sink made durable in the job's current or last run.",
                |e| e.flushed.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for e in entries.values() {
                let _ = writeln!(out, "{name}{{job=\"{}\"}} {}", e.id, value(e));
            }
        }
        let mut by_state: BTreeMap<String, u64> =
            ["queued", "running", "done", "failed", "cancelled"]
                .into_iter()
                .map(|s| (s.to_string(), 0))
                .collect();
        for e in entries.values() {
            let state = serde_json::to_value(*lock(&e.state))
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            *by_state.entry(state).or_default() += 1;
        }
        let _ = writeln!(
            out,
            "# HELP vmig_jobs Jobs of this server by state.\n# TYPE vmig_jobs gauge"
        );
        for (state, n) in by_state {
            let _ = writeln!(out, "vmig_jobs{{state=\"{state}\"}} {n}");
        }
        out
    }

    /// Stops every job (the server is shutting down): their progress is saved.
    pub(crate) fn cancel_all(&self) {
        for entry in lock(&self.entries).values() {
            entry.cancel.cancel();
        }
    }

    /// Waits (at most `limit`) until no job is queued or running.
    pub(crate) async fn wait_idle(&self, limit: std::time::Duration) {
        let until = std::time::Instant::now() + limit;
        while std::time::Instant::now() < until {
            let busy = lock(&self.entries)
                .values()
                .any(|e| matches!(*lock(&e.state), JobState::Queued | JobState::Running));
            if !busy {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// Runs `job` to its end through the library's lifecycle, recording it in `store`.
async fn run(job: Job, store: &StateStore, entry: &Arc<Entry>) {
    *lock(&entry.state) = JobState::Running;
    *lock(&entry.started) = Some(std::time::Instant::now());
    let start = match vmig::jobs::begin(store, &job, false, None).await {
        Ok(start) => start,
        Err(e) => return entry.end(JobState::Failed, Some(e.to_string())),
    };
    let cancel = entry.cancel.clone();
    let result = match vmig::jobs::pipeline(job, Some(store), None, cancel.clone()).await {
        Ok(pipeline) => pipeline
            .run(Arc::clone(entry) as Arc<dyn Observer>)
            .await
            .map(drop),
        Err(e) => Err(e),
    };
    let error = result.as_ref().err().map(ToString::to_string);
    let cancelled = cancel.is_cancelled();
    if let Err(e) = vmig::jobs::finish(store, &start.run, error.as_deref(), cancelled).await {
        tracing::warn!(job = entry.id, "could not record how the run ended: {e}");
    }
    match (error, cancelled) {
        (None, _) => entry.end(JobState::Done, None),
        (Some(e), true) => entry.end(JobState::Cancelled, Some(e)),
        (Some(e), false) => entry.end(JobState::Failed, Some(e)),
    }
}
