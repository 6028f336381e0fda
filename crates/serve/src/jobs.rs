//! Jobs submitted over HTTP: a queue of at most `max_jobs` running at once (the rest wait in
//! the order they came), each run by the library's job lifecycle ([`vmig::jobs`]) into the
//! server's state store, as `vmig migrate` runs it — so a job started here is recorded, and
//! resumable, under its name as any other.
//!
//! Every submission is kept in the store too ([`vmig::state::Submission`]: the job as sent,
//! its plan, its state here, a verification's report). A server that starts reads them back:
//! it lists the jobs of the processes before it, and runs again, in their order, the jobs a
//! stop interrupted (queued, or running when the server was stopped or killed) — from their
//! saved progress, so each finishes once. A job cancelled by a request stays cancelled.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use vmig::config::{Job, JobFormat};
use vmig::pipeline::Observer;
use vmig::state::{StateStore, Submission};
use vmig::PartitionInfo;

use crate::compat::CompatJob;

/// Where a submitted job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for a free slot (`--max-jobs`).
    Queued,
    /// Running.
    Running,
    /// Finished: the output is committed (a verification: source and target match).
    Done,
    /// Stopped by an error; its progress is saved (resumable). A verification that found
    /// differences fails too, its report kept.
    Failed,
    /// Stopped on request before finishing; its progress is saved (resumable).
    Cancelled,
}

impl JobState {
    /// The word the API and the store use.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    fn parse(word: &str) -> Option<JobState> {
        [
            JobState::Queued,
            JobState::Running,
            JobState::Done,
            JobState::Failed,
            JobState::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == word)
    }

    /// Whether the job is over (done, failed or cancelled).
    pub fn is_final(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }
}

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// Copies the source into the sink (`vmig migrate`).
    Migrate,
    /// Compares another job's source and target row by row (`vmig verify`).
    Verify,
}

impl JobKind {
    fn as_str(self) -> &'static str {
        match self {
            JobKind::Migrate => "migrate",
            JobKind::Verify => "verify",
        }
    }
}

/// Where one partition of the source is, in the job's current or last run here.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PartitionView {
    /// The partition's id.
    pub id: String,
    /// What it is (`inverted lists 0..63`, `rows 0..1048576`).
    pub description: String,
    /// `pending`, `reading`, or `done` (read to its end, or finished by an earlier run).
    pub state: String,
    /// Source rows read from it in this run.
    pub rows_read: u64,
    /// Rows of it handed to the sink in this run.
    pub rows_written: u64,
    /// The source's estimate of its rows, when known.
    pub estimated_rows: Option<u64>,
}

/// What the API says of a job.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobView {
    /// The job's id: its name in the state store.
    pub id: String,
    /// What it does.
    pub kind: JobKind,
    /// For a verification: the id of the job it checks.
    pub of: Option<String>,
    /// Where it is.
    pub state: JobState,
    /// Source rows read so far (this run; before filters).
    pub rows_read: u64,
    /// Rows handed to the sink so far (this run).
    pub rows_written: u64,
    /// Rows the sink made durable so far (this run).
    pub rows_flushed: u64,
    /// Bytes handed to the sink so far (this run; Arrow's size of the values).
    pub bytes_written: u64,
    /// The source's estimate of the rows this run reads, when known.
    pub estimated_rows: Option<u64>,
    /// How far this run is, 0 to 1: rows read of the estimate (1 once done).
    pub progress: Option<f64>,
    /// Rows handed to the sink per second since the run started.
    pub rows_per_second: Option<f64>,
    /// Seconds still to go at the rate so far, while running with an estimate.
    pub eta_seconds: Option<f64>,
    /// When it was submitted, UTC (`2026-12-03 15:50:00 UTC`, as `vmig status` prints it).
    pub submitted_at: String,
    /// When its current or last run started here, UTC.
    pub started_at: Option<String>,
    /// When it ended, UTC.
    pub ended_at: Option<String>,
    /// The error that stopped it, secrets masked.
    pub error: Option<String>,
    /// Its partitions (in `GET /v1/jobs/{id}` and its events; not in lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partitions: Option<Vec<PartitionView>>,
    /// The plan it was accepted with (in `GET /v1/jobs/{id}` and its events; not in lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub plan: Option<serde_json::Value>,
    /// A verification's report: counts of missing, extra, changed and duplicate rows, and the
    /// first differences.
    #[schema(value_type = Option<Object>)]
    pub report: Option<serde_json::Value>,
}

/// One partition as the observer keeps it.
#[derive(Debug, Clone, Default)]
struct Part {
    id: String,
    description: String,
    estimated: Option<u64>,
    state: &'static str,
    read: u64,
    written: u64,
}

/// One job of this server.
#[derive(Debug)]
struct Entry {
    id: String,
    kind: JobKind,
    of: Option<String>,
    state: Mutex<JobState>,
    read: AtomicU64,
    written: AtomicU64,
    flushed: AtomicU64,
    bytes: AtomicU64,
    estimated: Mutex<Option<u64>>,
    parts: Mutex<Vec<Part>>,
    submitted: SystemTime,
    started: Mutex<Option<(Instant, SystemTime)>>,
    ended: Mutex<Option<SystemTime>>,
    error: Mutex<Option<String>>,
    report: Mutex<Option<serde_json::Value>>,
    plan: Option<serde_json::Value>,
    cancel: CancellationToken,
    /// Cancelled by a request (not by the server stopping).
    cancelled_by_request: AtomicBool,
    /// The job as it was submitted, to run it again.
    submitted_as: JobText,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Entry {
    fn new(
        id: String,
        kind: JobKind,
        of: Option<String>,
        submitted_as: JobText,
        plan: Option<serde_json::Value>,
    ) -> Entry {
        Entry {
            id,
            kind,
            of,
            state: Mutex::new(JobState::Queued),
            read: AtomicU64::new(0),
            written: AtomicU64::new(0),
            flushed: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            estimated: Mutex::new(None),
            parts: Mutex::new(Vec::new()),
            submitted: SystemTime::now(),
            started: Mutex::new(None),
            ended: Mutex::new(None),
            error: Mutex::new(None),
            report: Mutex::new(None),
            plan,
            cancel: CancellationToken::new(),
            cancelled_by_request: AtomicBool::new(false),
            submitted_as,
        }
    }

    fn state(&self) -> JobState {
        *lock(&self.state)
    }

    /// The job as the API shows it; `detail` adds its partitions and plan.
    fn view(&self, detail: bool) -> JobView {
        let state = self.state();
        let read = self.read.load(Ordering::Relaxed);
        let written = self.written.load(Ordering::Relaxed);
        let estimated = *lock(&self.estimated);
        let ended = *lock(&self.ended);
        let started = *lock(&self.started);
        let elapsed = started.map(|(at, wall)| match ended {
            Some(end) => end.duration_since(wall).unwrap_or_default().as_secs_f64(),
            None => at.elapsed().as_secs_f64(),
        });
        let rate = elapsed.map(|secs| {
            if secs > 0.0 {
                written as f64 / secs
            } else {
                0.0
            }
        });
        let progress = match (state, estimated) {
            (JobState::Done, _) => Some(1.0),
            (_, Some(0)) => Some(if state == JobState::Done { 1.0 } else { 0.0 }),
            (_, Some(total)) => Some((read as f64 / total as f64).min(1.0)),
            (_, None) => None,
        };
        let read_rate = elapsed.map(|secs| if secs > 0.0 { read as f64 / secs } else { 0.0 });
        let eta = match (state, estimated, read_rate) {
            (JobState::Running, Some(total), Some(r)) if r > 0.0 => {
                Some(total.saturating_sub(read) as f64 / r)
            }
            _ => None,
        };
        let partitions = detail.then(|| {
            lock(&self.parts)
                .iter()
                .map(|p| PartitionView {
                    id: p.id.clone(),
                    description: p.description.clone(),
                    state: p.state.to_string(),
                    rows_read: p.read,
                    rows_written: p.written,
                    estimated_rows: p.estimated,
                })
                .collect()
        });
        JobView {
            id: self.id.clone(),
            kind: self.kind,
            of: self.of.clone(),
            state,
            rows_read: read,
            rows_written: written,
            rows_flushed: self.flushed.load(Ordering::Relaxed),
            bytes_written: self.bytes.load(Ordering::Relaxed),
            estimated_rows: estimated,
            progress,
            rows_per_second: rate,
            eta_seconds: eta,
            submitted_at: vmig::jobs::when(self.submitted),
            started_at: started.map(|(_, wall)| vmig::jobs::when(wall)),
            ended_at: ended.map(vmig::jobs::when),
            error: lock(&self.error).clone(),
            partitions,
            plan: if detail { self.plan.clone() } else { None },
            report: lock(&self.report).clone(),
        }
    }

    fn set_running(&self) {
        *lock(&self.state) = JobState::Running;
        *lock(&self.started) = Some((Instant::now(), SystemTime::now()));
    }

    fn end(&self, state: JobState, error: Option<String>) {
        *lock(&self.error) = error.map(|e| vmig::redact::text(&e));
        *lock(&self.ended) = Some(SystemTime::now());
        *lock(&self.state) = state;
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
    fn partitions(&self, partitions: &[PartitionInfo], done: &[bool]) {
        *lock(&self.parts) = partitions
            .iter()
            .enumerate()
            .map(|(i, p)| Part {
                id: p.id.to_string(),
                description: p.description.clone(),
                estimated: p.estimated_rows,
                state: if done.get(i).copied().unwrap_or(false) {
                    "done"
                } else {
                    "pending"
                },
                read: 0,
                written: 0,
            })
            .collect();
    }
    fn partition_written(&self, index: usize, rows_read: u64, rows: u64, bytes: u64) {
        self.read.fetch_add(rows_read, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        if let Some(p) = lock(&self.parts).get_mut(index) {
            p.state = "reading";
            p.read += rows_read;
            p.written += rows;
        }
    }
    fn partition_read(&self, index: usize) {
        if let Some(p) = lock(&self.parts).get_mut(index) {
            p.state = "done";
        }
    }
}

/// What a job was submitted as, kept (in the store too) to run it again.
#[derive(Debug, Clone)]
pub(crate) enum JobText {
    /// A job's text as it was sent, and its format (`POST /v1/jobs`).
    Sent(JobFormat, String),
    /// A step of the server's milvus-migration config (`POST /api/v1/start|dump|load`):
    /// translated again from the file each time it runs.
    Compat(CompatJob),
}

/// The store's format word of a [`JobText::Compat`] (its body: the [`CompatJob`] as JSON).
const COMPAT_FORMAT: &str = "migration.yaml";

impl JobText {
    /// The store's format word and body.
    fn stored(&self) -> (&'static str, String) {
        match self {
            JobText::Sent(format, text) => (format_word(*format), text.clone()),
            JobText::Compat(c) => (COMPAT_FORMAT, serde_json::to_string(c).unwrap_or_default()),
        }
    }

    /// The text the store kept as `format` and `body`.
    fn from_stored(format: &str, body: String) -> JobText {
        if format == COMPAT_FORMAT {
            if let Ok(c) = serde_json::from_str(&body) {
                return JobText::Compat(c);
            }
        }
        JobText::Sent(format_of(format), body)
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
    /// The server runs no jobs (no state store), or the store failed.
    Unavailable(String),
}

fn unknown(id: &str) -> JobRefusal {
    JobRefusal::Unknown(format!("no job `{id}` on this server"))
}

/// A job to run: what [`Jobs::submit`] takes.
#[derive(Debug)]
pub(crate) struct Request {
    /// The job, checked and named.
    pub job: Job,
    /// Migrate or verify.
    pub kind: JobKind,
    /// The job a verification checks.
    pub of: Option<String>,
    /// The job as it was sent.
    pub text: JobText,
    /// Its plan, as shown when it was accepted.
    pub plan: Option<serde_json::Value>,
}

/// A job a stopped server left unfinished, to check and run again ([`Jobs::restart`]).
#[derive(Debug)]
pub(crate) struct Interrupted {
    /// Its id.
    pub id: String,
    /// The job as it was sent.
    pub text: JobText,
}

/// One page of `GET /v1/jobs`.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobPage {
    /// The jobs, in the order they were submitted.
    pub jobs: Vec<JobView>,
    /// The id to pass as `after` for the next page; none on the last.
    pub next: Option<String>,
}

/// The jobs of this server.
#[derive(Debug)]
pub(crate) struct Jobs {
    store: Option<StateStore>,
    slots: Arc<Semaphore>,
    /// By id, with the order of submission.
    entries: Mutex<BTreeMap<String, (i64, Arc<Entry>)>>,
    /// Every run that failed here, by job id (for `/metrics`).
    failures: Mutex<BTreeMap<String, u64>>,
    /// The server is stopping: jobs cancelled now are interrupted, not cancelled.
    stopping: AtomicBool,
}

fn format_word(format: JobFormat) -> &'static str {
    match format {
        JobFormat::Json => "json",
        JobFormat::Toml => "toml",
        JobFormat::Yaml => "yaml",
    }
}

fn format_of(word: &str) -> JobFormat {
    match word {
        "toml" => JobFormat::Toml,
        "yaml" => JobFormat::Yaml,
        _ => JobFormat::Json,
    }
}

impl Jobs {
    /// The jobs of a server running into `store`, `max_jobs` at once, with the submissions
    /// the store keeps; also the jobs an earlier server left unfinished, in their order, to be
    /// checked and passed to [`Jobs::restart`].
    ///
    /// # Errors
    /// When the store's submissions cannot be read.
    pub(crate) async fn open(
        store: Option<StateStore>,
        max_jobs: usize,
    ) -> Result<(Jobs, Vec<Interrupted>), String> {
        let jobs = Jobs {
            store,
            slots: Arc::new(Semaphore::new(max_jobs.max(1))),
            entries: Mutex::new(BTreeMap::new()),
            failures: Mutex::new(BTreeMap::new()),
            stopping: AtomicBool::new(false),
        };
        let Some(store) = &jobs.store else {
            return Ok((jobs, Vec::new()));
        };
        let saved = store
            .submissions()
            .await
            .map_err(|e| format!("reading the jobs submitted earlier: {e}"))?;
        let mut interrupted = Vec::new();
        {
            let mut entries = lock(&jobs.entries);
            for s in saved {
                let kind = if s.kind == "verify" {
                    JobKind::Verify
                } else {
                    JobKind::Migrate
                };
                let text = JobText::from_stored(&s.format, s.body);
                let plan = s.plan.as_deref().and_then(|p| serde_json::from_str(p).ok());
                let mut entry = Entry::new(s.name.clone(), kind, s.of, text.clone(), plan);
                entry.submitted = s.submitted_at;
                let state = JobState::parse(&s.status).unwrap_or(JobState::Failed);
                *lock(&entry.report) = s
                    .report
                    .as_deref()
                    .and_then(|r| serde_json::from_str(r).ok());
                if state.is_final() {
                    entry.end(state, s.error);
                    *lock(&entry.ended) = Some(s.updated_at);
                } else {
                    interrupted.push(Interrupted {
                        id: s.name.clone(),
                        text,
                    });
                }
                entries.insert(s.name, (s.seq, Arc::new(entry)));
            }
        }
        Ok((jobs, interrupted))
    }

    /// Queues `request` under its job's name; it starts when a slot is free.
    pub(crate) async fn submit(self: &Arc<Self>, request: Request) -> Result<JobView, JobRefusal> {
        let Some(store) = self.store.clone() else {
            return Err(JobRefusal::Unavailable(
                "this server runs no jobs: it has no state store (start it with `--state URL` or `--data-root DIR`)".into(),
            ));
        };
        let id = request.job.name.clone();
        self.check_idle(&id)?;
        let plan = request.plan.clone().map(|mut p| {
            vmig::redact::json(&mut p);
            p
        });
        let (format, body) = request.text.stored();
        let saved = store
            .submit(&Submission {
                name: id.clone(),
                seq: 0,
                kind: request.kind.as_str().into(),
                of: request.of.clone(),
                format: format.into(),
                body,
                status: JobState::Queued.as_str().into(),
                error: None,
                plan: plan.as_ref().map(ToString::to_string),
                report: None,
                submitted_at: SystemTime::now(),
                updated_at: SystemTime::now(),
            })
            .await
            .map_err(|e| JobRefusal::Unavailable(vmig::redact::text(&e.to_string())))?;
        let entry = Arc::new(Entry::new(
            id.clone(),
            request.kind,
            request.of,
            request.text,
            plan,
        ));
        {
            let mut entries = lock(&self.entries);
            // A second request for the same id may have got here meanwhile.
            if let Some((_, other)) = entries.get(&id) {
                if !other.state().is_final() {
                    return Err(busy(&id, other.state()));
                }
            }
            entries.insert(id, (saved.seq, Arc::clone(&entry)));
        }
        let view = entry.view(false);
        self.start(entry, request.job, store);
        Ok(view)
    }

    /// Runs again a job an earlier server left unfinished (see [`Jobs::open`]): `job` is its
    /// text checked again, or why it no longer passes (then it fails, saying so).
    pub(crate) async fn restart(self: &Arc<Self>, id: &str, job: Result<Job, String>) {
        let Some(store) = self.store.clone() else {
            return;
        };
        let Some((_, entry)) = lock(&self.entries).get(id).cloned() else {
            return;
        };
        match job {
            Ok(job) => {
                tracing::info!(
                    job = id,
                    "vmig serve: resuming a job the last server left unfinished"
                );
                self.start(entry, job, store);
            }
            Err(why) => {
                let why = format!("not resumed after the server restarted: {why}");
                self.settle(&store, &entry, JobState::Failed, Some(why))
                    .await;
            }
        }
    }

    fn check_idle(&self, id: &str) -> Result<(), JobRefusal> {
        match lock(&self.entries).get(id) {
            Some((_, e)) if !e.state().is_final() => Err(busy(id, e.state())),
            _ => Ok(()),
        }
    }

    /// Waits for a slot, then runs `entry`'s job.
    fn start(self: &Arc<Self>, entry: Arc<Entry>, job: Job, store: StateStore) {
        let jobs = Arc::clone(self);
        tokio::spawn(async move {
            let permit = tokio::select! {
                permit = Arc::clone(&jobs.slots).acquire_owned() => permit,
                () = entry.cancel.cancelled() => {
                    jobs.settle(&store, &entry, JobState::Cancelled, None).await;
                    return;
                }
            };
            let Ok(_permit) = permit else {
                return jobs.settle(&store, &entry, JobState::Cancelled, None).await;
            };
            entry.set_running();
            jobs.record(&store, &entry, JobState::Running, None, None)
                .await;
            let (state, error) = match entry.kind {
                JobKind::Migrate => migrate(job, &store, &entry).await,
                JobKind::Verify => verify(job, &entry).await,
            };
            jobs.settle(&store, &entry, state, error).await;
        });
    }

    /// Ends `entry` in `state` and records it — unless the server is stopping and cancelled
    /// it: then the store keeps it unfinished, and the next server runs it again.
    async fn settle(
        &self,
        store: &StateStore,
        entry: &Entry,
        state: JobState,
        error: Option<String>,
    ) {
        let interrupted = state == JobState::Cancelled
            && !entry.cancelled_by_request.load(Ordering::Relaxed)
            && self.stopping.load(Ordering::Relaxed);
        if state == JobState::Failed {
            *lock(&self.failures).entry(entry.id.clone()).or_default() += 1;
        }
        entry.end(state, error);
        if interrupted {
            return;
        }
        let error = lock(&entry.error).clone();
        let report = lock(&entry.report).as_ref().map(ToString::to_string);
        self.record(store, entry, state, error.as_deref(), report.as_deref())
            .await;
    }

    async fn record(
        &self,
        store: &StateStore,
        entry: &Entry,
        state: JobState,
        error: Option<&str>,
        report: Option<&str>,
    ) {
        if let Err(e) = store
            .set_submission_status(&entry.id, state.as_str(), error, report)
            .await
        {
            tracing::warn!(
                job = entry.id,
                "could not record the job's state ({state:?}): {e}"
            );
        }
    }

    /// A page of the jobs, in the order they were submitted: those in `state` (any when
    /// `None`), after the job `after`, at most `limit`.
    pub(crate) fn list(
        &self,
        state: Option<JobState>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<JobPage, JobRefusal> {
        let entries = lock(&self.entries);
        let mut ordered: Vec<&(i64, Arc<Entry>)> = entries.values().collect();
        ordered.sort_by_key(|(seq, _)| *seq);
        let from = match after {
            Some(id) => {
                let (seq, _) = entries.get(id).ok_or_else(|| unknown(id))?;
                ordered.partition_point(|(s, _)| s <= seq)
            }
            None => 0,
        };
        let mut matching = ordered[from..]
            .iter()
            .map(|(_, e)| e)
            .filter(|e| state.is_none_or(|s| e.state() == s));
        let jobs: Vec<JobView> = matching
            .by_ref()
            .take(limit)
            .map(|e| e.view(false))
            .collect();
        let next = if matching.next().is_some() {
            jobs.last().map(|j| j.id.clone())
        } else {
            None
        };
        Ok(JobPage { jobs, next })
    }

    /// The job `id`, with its partitions and plan.
    pub(crate) fn get(&self, id: &str) -> Result<JobView, JobRefusal> {
        lock(&self.entries)
            .get(id)
            .map(|(_, e)| e.view(true))
            .ok_or_else(|| unknown(id))
    }

    /// Every job's view (without detail), in the order of submission.
    pub(crate) fn all(&self) -> Vec<JobView> {
        let entries = lock(&self.entries);
        let mut ordered: Vec<&(i64, Arc<Entry>)> = entries.values().collect();
        ordered.sort_by_key(|(seq, _)| *seq);
        ordered.iter().map(|(_, e)| e.view(false)).collect()
    }

    /// Asks job `id` to stop: a queued job leaves the queue, a running one stops as after
    /// SIGINT (its progress saved, resumable).
    pub(crate) fn cancel(&self, id: &str) -> Result<JobView, JobRefusal> {
        let entries = lock(&self.entries);
        let (_, entry) = entries.get(id).ok_or_else(|| unknown(id))?;
        if entry.state().is_final() {
            return Err(JobRefusal::Conflict(format!(
                "job `{id}` is {}: only a queued or running job can be cancelled",
                entry.state().as_str()
            )));
        }
        entry.cancelled_by_request.store(true, Ordering::Relaxed);
        entry.cancel.cancel();
        Ok(entry.view(false))
    }

    /// The job `id` as it was submitted, with what it is, when it can run again (it failed or
    /// was cancelled).
    pub(crate) fn resumable(
        &self,
        id: &str,
    ) -> Result<(JobKind, Option<String>, JobText), JobRefusal> {
        let entries = lock(&self.entries);
        let (_, entry) = entries.get(id).ok_or_else(|| unknown(id))?;
        match entry.state() {
            JobState::Failed | JobState::Cancelled => {
                Ok((entry.kind, entry.of.clone(), entry.submitted_as.clone()))
            }
            state => Err(JobRefusal::Conflict(format!(
                "job `{id}` is {}: only a failed or cancelled job resumes",
                state.as_str()
            ))),
        }
    }

    /// The text of migration `id`, to verify it: refused while it is queued or running (its
    /// target is still changing).
    pub(crate) fn verifiable(&self, id: &str) -> Result<JobText, JobRefusal> {
        let entries = lock(&self.entries);
        let (_, entry) = entries.get(id).ok_or_else(|| unknown(id))?;
        if entry.kind != JobKind::Migrate {
            return Err(JobRefusal::Conflict(format!(
                "job `{id}` is a verification; verify the job it checks"
            )));
        }
        if !entry.state().is_final() {
            return Err(JobRefusal::Conflict(format!(
                "job `{id}` is {}: verify it once it stopped",
                entry.state().as_str()
            )));
        }
        Ok(entry.submitted_as.clone())
    }

    /// Forgets job `id` (not while it is queued or running): it leaves the list and the
    /// store's submissions. Its runs and saved progress stay in the state store (`vmig
    /// status` shows them; `vmig migrate` resumes it), and nothing of its output is touched.
    pub(crate) async fn delete(&self, id: &str) -> Result<(), JobRefusal> {
        {
            let entries = lock(&self.entries);
            let (_, entry) = entries.get(id).ok_or_else(|| unknown(id))?;
            if !entry.state().is_final() {
                return Err(JobRefusal::Conflict(format!(
                    "job `{id}` is {}: cancel it before deleting it",
                    entry.state().as_str()
                )));
            }
        }
        if let Some(store) = &self.store {
            store
                .forget_submission(id)
                .await
                .map_err(|e| JobRefusal::Unavailable(vmig::redact::text(&e.to_string())))?;
        }
        let mut entries = lock(&self.entries);
        // Submitted again meanwhile: that newer job stays.
        if entries.get(id).is_some_and(|(_, e)| e.state().is_final()) {
            entries.remove(id);
        }
        Ok(())
    }

    /// The metrics in Prometheus text format.
    pub(crate) fn metrics(&self) -> String {
        use std::fmt::Write as _;
        let entries = lock(&self.entries);
        let mut out = String::new();
        let counters: [Counter; 4] = [
            (
                "vmig_job_rows_read_total",
                "Source rows read by the job's current or last run on this server.",
                |e| e.read.load(Ordering::Relaxed),
            ),
            (
                "vmig_job_rows_written_total",
                "Rows handed to the sink by the job's current or last run on this server.",
                |e| e.written.load(Ordering::Relaxed),
            ),
            (
                "vmig_job_rows_flushed_total",
                "Rows the sink made durable in the job's current or last run on this server.",
                |e| e.flushed.load(Ordering::Relaxed),
            ),
            (
                "vmig_job_bytes_written_total",
                "Bytes (Arrow's size of the values) handed to the sink by the job's current or last run on this server.",
                |e| e.bytes.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (_, e) in entries.values() {
                let _ = writeln!(out, "{name}{{job=\"{}\"}} {}", e.id, value(e));
            }
        }
        let failures = lock(&self.failures);
        let name = "vmig_job_failures_total";
        let _ = writeln!(
            out,
            "# HELP {name} Runs of the job that failed on this server since it started.\n# TYPE {name} counter"
        );
        for (_, e) in entries.values() {
            let n = failures.get(&e.id).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}{{job=\"{}\"}} {n}", e.id);
        }
        let mut by_state: BTreeMap<&str, u64> =
            ["queued", "running", "done", "failed", "cancelled"]
                .into_iter()
                .map(|s| (s, 0))
                .collect();
        for (_, e) in entries.values() {
            *by_state.entry(e.state().as_str()).or_default() += 1;
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

    /// Stops every job because the server is shutting down: their progress is saved, and the
    /// store keeps them unfinished, so the next server runs them again.
    pub(crate) fn cancel_all(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        for (_, entry) in lock(&self.entries).values() {
            entry.cancel.cancel();
        }
    }

    /// Waits (at most `limit`) until no job is queued or running.
    pub(crate) async fn wait_idle(&self, limit: std::time::Duration) {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            let busy = lock(&self.entries)
                .values()
                .any(|(_, e)| !e.state().is_final());
            if !busy {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

fn busy(id: &str, state: JobState) -> JobRefusal {
    JobRefusal::Conflict(format!("job `{id}` is {} already", state.as_str()))
}

/// Runs migration `job` to its end through the library's lifecycle, recording it in `store`.
async fn migrate(job: Job, store: &StateStore, entry: &Arc<Entry>) -> (JobState, Option<String>) {
    let start = match vmig::jobs::begin(store, &job, false, None).await {
        Ok(start) => start,
        Err(e) => return (JobState::Failed, Some(e.to_string())),
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
        (None, _) => (JobState::Done, None),
        (Some(_), true) => (JobState::Cancelled, None),
        (Some(e), false) => (JobState::Failed, Some(e)),
    }
}

/// The most differences a verification's report lists.
const VERIFY_EXAMPLES: usize = 20;

/// Runs verification `job` (read-only: stopping it anywhere loses nothing), keeping its report.
async fn verify(job: Job, entry: &Arc<Entry>) -> (JobState, Option<String>) {
    let verified = tokio::select! {
        v = vmig::jobs::verify(&job, VERIFY_EXAMPLES) => v,
        () = entry.cancel.cancelled() => return (JobState::Cancelled, None),
    };
    match verified {
        Err(e) => (JobState::Failed, Some(e.to_string())),
        Ok(v) => {
            let r = &v.report;
            let mut json = vmig::redact::to_json(r);
            if let Some(o) = json.as_object_mut() {
                o.insert("primary_key".into(), v.primary_key.clone().into());
                o.insert(
                    "status".into(),
                    if r.is_match() { "ok" } else { "mismatch" }.into(),
                );
            }
            entry.read.store(r.source_rows, Ordering::Relaxed);
            *lock(&entry.report) = Some(json);
            if r.is_match() {
                (JobState::Done, None)
            } else {
                (
                    JobState::Failed,
                    Some(format!(
                        "the target differs from the source: {} missing, {} extra, {} changed, {} duplicate keys in the source, {} in the target (source {} rows, target {} rows)",
                        r.missing, r.extra, r.changed, r.duplicate_in_source, r.duplicate_in_target, r.source_rows, r.target_rows
                    )),
                )
            }
        }
    }
}
