//! Several workers on one job: [`JobWorker`], one worker's leases and checkpoint slice
//! ([`StateStore::join`]).
//!
//! Every lease operation is one transaction that first locks the job's row, as every other
//! write of the store does; a claim then picks a unit that is not done and whose lease is
//! free or expired, and takes it with a compare-and-set `UPDATE … WHERE owner IS NULL OR
//! lease_until < now`. Because all writes of a job are serial under that lock, the same SQL
//! behaves the same on SQLite (`BEGIN IMMEDIATE`), MySQL/MariaDB and PostgreSQL
//! (`SELECT … FOR UPDATE`): two workers never hold one partition. Lease times are epoch
//! milliseconds of the claiming worker's clock, so the machines of one job must keep their
//! clocks within a fraction of the lease of each other (NTP does); a worker also stops
//! writing a tenth of the lease before its own lease ends ([`vmig_core::lease::margin`]).

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use serde::Serialize;
use vmig_core::checkpoint::{Checkpoint, CheckpointStore, PartitionProgress};
use vmig_core::lease::{self, Claim, Leases, Step, StepClaim};
use vmig_core::{Error, PartitionId, Result};

use crate::checkpoints::{
    part_key, read_partitions, same_job, save_sink_record, write_partition, PartitionRow, DONE,
    PARTITION_COLUMNS,
};
use crate::db::{begin_write, on_pool, Failure, RowExt as _};
use crate::{now_millis, time, JobCheckpoints, StateStore};

/// The key of a step's lease row (partitions use [`part_key`] of their id).
fn step_key(step: Step) -> String {
    part_key(&format!("vmig step {}", step.as_str()))
}

/// Locks job `$name`'s row for the transaction `$tx`; gives its recorded fingerprint, or fails
/// when the job has no record.
/// Records worker `$worker` (a run id) of job `$name`, running on `$host` as process `$pid`,
/// as started and last seen at `$now`, inside a transaction (`$tx`).
macro_rules! insert_worker {
    ($backend:expr, $tx:expr, $name:expr, $worker:expr, $host:expr, $pid:expr, $now:expr) => {{
        $crate::db::execute!(
            $backend,
            $tx,
            "INSERT INTO vmig_workers (job_name, worker, host, pid, sink, started_at, seen_at) \
             VALUES (?, ?, ?, ?, NULL, ?, ?)",
            $name,
            $worker,
            $host,
            $pid,
            $now,
            $now
        );
    }};
}
pub(crate) use insert_worker;

/// Extends every unfinished lease worker `$me` holds on job `$name` to `$until` (epoch ms),
/// inside a transaction (`$tx`).
macro_rules! extend_leases {
    ($backend:expr, $tx:expr, $name:expr, $me:expr, $until:expr) => {{
        $crate::db::execute!(
            $backend,
            $tx,
            "UPDATE vmig_leases SET lease_until = ? WHERE job_name = ? AND owner = ? AND done = 0",
            $until,
            $name,
            $me
        );
    }};
}

/// The text column `$column` of every row `$sql` selects for job `$name`, collected (e.g. into
/// a set), inside a transaction (`$tx`).
macro_rules! texts {
    ($backend:expr, $tx:expr, $sql:expr, $name:expr, $column:expr) => {
        sqlx::query(&$backend.sql($sql))
            .bind($name)
            .fetch_all(&mut *$tx)
            .await?
            .iter()
            .map(|r| r.text($column))
            .collect::<std::result::Result<_, _>>()?
    };
}

macro_rules! lock_job {
    ($tx:expr, $backend:expr, $name:expr, $location:expr) => {{
        let lock = format!(
            "SELECT fingerprint FROM vmig_jobs WHERE name = ?{}",
            $backend.for_update()
        );
        let Some(job) = sqlx::query(&$backend.sql(&lock))
            .bind($name)
            .fetch_optional(&mut *$tx)
            .await?
        else {
            return Err(Failure::Vmig(Error::data(
                $location,
                format!("job `{}` has no record in the state store (StateStore::start_run records the job first)", $name),
            )));
        };
        job.text("fingerprint")?
    }};
}

/// One worker's handle on a job shared between workers: it claims, renews and releases leases
/// ([`Leases`]) and saves its own slice of the job's checkpoint ([`CheckpointStore`]).
///
/// As a checkpoint store, [`load`](CheckpointStore::load) gives the job's fingerprint and its
/// shared sink record (no partitions: a worker's partitions come with its claims), and
/// [`save`](CheckpointStore::save) writes only the partitions of the checkpoint, each of which
/// this worker must hold (else [`Error::LeaseLost`], and nothing is written); other workers'
/// partitions are never touched. A partition saved as done has its lease marked done in the
/// same transaction; the others' leases are extended. The sink record goes to this worker's
/// own row.
#[derive(Clone)]
pub struct JobWorker {
    inner: Arc<Inner>,
}

struct Inner {
    store: StateStore,
    name: String,
    worker: String,
    lease: Duration,
    /// The partitions in the order of the source, as registered.
    order: Mutex<Vec<(String, String)>>,
    /// The keys of the units this worker holds and has not finished.
    held: Mutex<BTreeSet<String>>,
    /// Until when the held leases surely hold by this process's clock.
    held_until: Mutex<Option<Instant>>,
}

impl fmt::Debug for JobWorker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobWorker")
            .field("location", &self.inner.store.location())
            .field("job", &self.inner.name)
            .field("worker", &self.inner.worker)
            .field("lease", &self.inner.lease)
            .finish()
    }
}

/// A worker of a job, for `vmig status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerRecord {
    /// Its id (the run id of the `vmig migrate` that is the worker).
    pub worker: String,
    /// The host it runs on.
    pub host: String,
    /// Its process id there.
    pub pid: u32,
    /// When it joined the job.
    #[serde(serialize_with = "crate::rfc3339")]
    pub started_at: SystemTime,
    /// When it last renewed its leases or saved.
    #[serde(serialize_with = "crate::rfc3339")]
    pub seen_at: SystemTime,
    /// The partitions and steps it holds and has not finished, with their lease's end.
    pub holds: Vec<HeldUnit>,
}

/// A partition or step a worker holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldUnit {
    /// `partition` or `step`.
    pub kind: String,
    /// The partition id or the step's name.
    pub unit: String,
    /// When the lease ends unless renewed.
    #[serde(serialize_with = "crate::rfc3339")]
    pub lease_until: SystemTime,
    /// Whether it has ended already (the worker is gone or stalled; another worker takes the
    /// unit over at its next claim).
    pub expired: bool,
}

/// How long a lease is at least: shorter ones cannot be renewed reliably.
pub const MIN_LEASE: Duration = Duration::from_secs(1);

fn millis_of(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl StateStore {
    /// Joins job `name` as worker `worker` (unique per process, e.g. its run id) with leases
    /// of `lease`: records the worker (host, pid) and gives its [`JobWorker`]. The job must be
    /// recorded ([`StateStore::start_run`]).
    ///
    /// # Errors
    /// [`Error::Config`] for a lease shorter than [`MIN_LEASE`]; [`Error::Data`] when the job
    /// has no record; store errors.
    pub async fn join(&self, name: &str, worker: &str, lease: Duration) -> Result<JobWorker> {
        check_lease(lease)?;
        let backend = self.backend;
        let now = now_millis();
        let host = crate::host_name();
        let pid = i64::from(std::process::id());
        let location = self.location().to_string();
        let joined: std::result::Result<(), Failure> = on_pool!(&self.pool, |pool| async {
            let mut tx = begin_write(pool, backend).await?;
            lock_job!(tx, backend, name, location.as_str());
            insert_worker!(backend, tx, name, worker, host.as_str(), pid, now);
            tx.commit().await?;
            Ok(())
        }
        .await);
        joined.map_err(|f| self.fail(&format!("joining job `{name}` as worker {worker}"), f))?;
        Ok(JobWorker::new(self.clone(), name, worker, lease))
    }

    /// The workers of job `name` and what each holds, oldest first.
    ///
    /// # Errors
    /// Store errors.
    pub async fn workers(&self, name: &str) -> Result<Vec<WorkerRecord>> {
        let backend = self.backend;
        let now = now_millis();
        let read: std::result::Result<_, Failure> = on_pool!(&self.pool, |pool| async {
            let workers = sqlx::query(&backend.sql(
                "SELECT worker, host, pid, started_at, seen_at FROM vmig_workers \
                 WHERE job_name = ? ORDER BY started_at, worker",
            ))
            .bind(name)
            .fetch_all(pool)
            .await?;
            let held = sqlx::query(&backend.sql(
                "SELECT owner, kind, unit, lease_until FROM vmig_leases \
                 WHERE job_name = ? AND owner IS NOT NULL AND done = 0 ORDER BY unit",
            ))
            .bind(name)
            .fetch_all(pool)
            .await?;
            let mut holds: HashMap<String, Vec<HeldUnit>> = HashMap::new();
            for row in &held {
                let until = row.int("lease_until")?;
                holds.entry(row.text("owner")?).or_default().push(HeldUnit {
                    kind: row.text("kind")?,
                    unit: row.text("unit")?,
                    lease_until: time(until),
                    expired: until < now,
                });
            }
            let mut out = Vec::with_capacity(workers.len());
            for row in &workers {
                let worker = row.text("worker")?;
                out.push(WorkerRecord {
                    holds: holds.remove(&worker).unwrap_or_default(),
                    host: row.text("host")?,
                    pid: u32::try_from(row.int("pid")?).unwrap_or(0),
                    started_at: time(row.int("started_at")?),
                    seen_at: time(row.int("seen_at")?),
                    worker,
                });
            }
            Ok(out)
        }
        .await);
        read.map_err(|f| self.fail(&format!("reading the workers of job `{name}`"), f))
    }

    /// Whether a worker finished job `name` (its [`Step::Finish`] is done).
    ///
    /// # Errors
    /// Store errors.
    pub async fn step_done(&self, name: &str, step: Step) -> Result<bool> {
        let backend = self.backend;
        let key = step_key(step);
        let read: std::result::Result<_, Failure> = on_pool!(&self.pool, |pool| async {
            let row = sqlx::query(
                &backend.sql("SELECT done FROM vmig_leases WHERE job_name = ? AND unit_key = ?"),
            )
            .bind(name)
            .bind(&key)
            .fetch_optional(pool)
            .await?;
            Ok(match row {
                Some(row) => row.int("done")? != 0,
                None => false,
            })
        }
        .await);
        read.map_err(|f| self.fail(&format!("reading the steps of job `{name}`"), f))
    }
}

/// A lease row as read inside a claim.
struct LeaseRow {
    owner: Option<String>,
    lease_until: i64,
    done: bool,
}

/// Refuses a lease shorter than [`MIN_LEASE`].
pub(crate) fn check_lease(lease: Duration) -> Result<()> {
    if lease < MIN_LEASE {
        return Err(Error::config(
            "state",
            format!(
                "`lease = \"{}\"` is too short: a lease must be at least {} so that it can be renewed in time",
                humantime::format_duration(lease),
                humantime::format_duration(MIN_LEASE)
            ),
        ));
    }
    Ok(())
}

impl JobWorker {
    pub(crate) fn new(store: StateStore, name: &str, worker: &str, lease: Duration) -> JobWorker {
        JobWorker {
            inner: Arc::new(Inner {
                store,
                name: name.to_string(),
                worker: worker.to_string(),
                lease,
                order: Mutex::new(Vec::new()),
                held: Mutex::new(BTreeSet::new()),
                held_until: Mutex::new(None),
            }),
        }
    }

    fn location(&self) -> String {
        format!(
            "{} (job {}, worker {})",
            self.inner.store.location(),
            self.inner.name,
            self.inner.worker
        )
    }

    fn fail(&self, doing: &str, failure: Failure) -> Error {
        self.inner.store.fail(doing, failure)
    }

    fn renewed(&self, at: Instant) {
        let until = at + self.inner.lease - lease::margin(self.inner.lease);
        if let Ok(mut held) = self.inner.held_until.lock() {
            if held.is_none_or(|h| h < until) {
                *held = Some(until);
            }
        }
    }

    fn hold(&self, key: &str) {
        if let Ok(mut held) = self.inner.held.lock() {
            held.insert(key.to_string());
        }
    }

    fn unhold(&self, key: &str) {
        if let Ok(mut held) = self.inner.held.lock() {
            held.remove(key);
        }
    }

    fn held(&self) -> BTreeSet<String> {
        self.inner
            .held
            .lock()
            .map(|h| h.clone())
            .unwrap_or_default()
    }

    /// A checkpoint store over the same job without worker semantics, for the row codec.
    fn codec(&self) -> JobCheckpoints {
        self.inner.store.checkpoints(&self.inner.name)
    }
}

#[async_trait]
impl Leases for JobWorker {
    fn worker(&self) -> &str {
        &self.inner.worker
    }

    fn lease(&self) -> Duration {
        self.inner.lease
    }

    async fn register(&self, partitions: &[PartitionId]) -> Result<()> {
        let order: Vec<(String, String)> = partitions
            .iter()
            .map(|p| (part_key(&p.0), p.0.clone()))
            .collect();
        let store = &self.inner.store;
        let backend = store.backend;
        let name = self.inner.name.as_str();
        let location = self.location();
        let registered: std::result::Result<(), Failure> = on_pool!(&store.pool, |pool| async {
            let mut tx = begin_write(pool, backend).await?;
            lock_job!(tx, backend, name, location.as_str());
            let existing: BTreeSet<String> = texts!(
                backend,
                tx,
                "SELECT unit_key FROM vmig_leases WHERE job_name = ? AND kind = 'partition'",
                name,
                "unit_key"
            );
            let done: BTreeSet<String> = texts!(
                backend,
                tx,
                "SELECT part_key FROM vmig_partitions WHERE job_name = ? AND state = 'done'",
                name,
                "part_key"
            );
            let insert = backend.sql(
                "INSERT INTO vmig_leases (job_name, unit_key, kind, unit, owner, lease_until, \
                 done, claims) VALUES (?, ?, 'partition', ?, NULL, 0, ?, 0)",
            );
            for (key, id) in order.iter().filter(|(k, _)| !existing.contains(k)) {
                sqlx::query(&insert)
                    .bind(name)
                    .bind(key.as_str())
                    .bind(id.as_str())
                    .bind(i64::from(done.contains(key)))
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        }
        .await);
        registered
            .map_err(|f| self.fail(&format!("registering the partitions of job `{name}`"), f))?;
        if let Ok(mut o) = self.inner.order.lock() {
            *o = order;
        }
        Ok(())
    }

    async fn claim(&self) -> Result<Claim> {
        let order = self
            .inner
            .order
            .lock()
            .map(|o| o.clone())
            .unwrap_or_default();
        let store = &self.inner.store;
        let backend = store.backend;
        let name = self.inner.name.as_str();
        let me = self.inner.worker.as_str();
        let lease = millis_of(self.inner.lease);
        let location = self.location();
        let started = Instant::now();
        let claimed: std::result::Result<_, Failure> = on_pool!(&store.pool, |pool| {
            async {
            let mut tx = begin_write(pool, backend).await?;
            let fingerprint = lock_job!(tx, backend, name, location.as_str());
            let now = now_millis();
            let mut rows: HashMap<String, LeaseRow> = HashMap::new();
            for row in sqlx::query(&backend.sql(
                "SELECT unit_key, owner, lease_until, done FROM vmig_leases \
                 WHERE job_name = ? AND kind = 'partition'",
            ))
            .bind(name)
            .fetch_all(&mut *tx)
            .await?
            {
                rows.insert(
                    row.text("unit_key")?,
                    LeaseRow {
                        owner: row.opt_text("owner")?,
                        lease_until: row.int("lease_until")?,
                        done: row.int("done")? != 0,
                    },
                );
            }
            let free = |r: &LeaseRow| {
                !r.done
                    && r.owner.as_deref() != Some(me)
                    && (r.owner.is_none() || r.lease_until < now)
            };
            let pick = order
                .iter()
                .find(|(key, _)| rows.get(key).is_some_and(free));
            let Some((key, id)) = pick else {
                let others = rows
                    .values()
                    .any(|r| !r.done && r.owner.as_deref() != Some(me));
                tx.commit().await?;
                let claim = if others { Claim::Wait } else { Claim::AllDone };
                return Ok((claim, None, fingerprint, String::new()));
            };
            let from = rows.get(key).and_then(|r| r.owner.clone());
            // Compare-and-set: taken only if still free (always so under the job's lock).
            let taken = sqlx::query(&backend.sql(
                "UPDATE vmig_leases SET owner = ?, lease_until = ?, claims = claims + 1 \
                 WHERE job_name = ? AND unit_key = ? AND done = 0 \
                 AND (owner IS NULL OR lease_until < ?)",
            ))
            .bind(me)
            .bind(now.saturating_add(lease))
            .bind(name)
            .bind(key.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if taken.rows_affected() != 1 {
                tx.commit().await?;
                return Ok((Claim::Wait, None, fingerprint, String::new()));
            }
            let select = format!(
                "SELECT {PARTITION_COLUMNS} FROM vmig_partitions WHERE job_name = ? AND part_key = ?"
            );
            let saved = sqlx::query(&backend.sql(&select))
                .bind(name)
                .bind(key.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            let saved = saved.as_ref().map(PartitionRow::read).transpose()?;
            tx.commit().await?;
            let claim = Claim::Partition {
                id: PartitionId::new(id.clone()),
                state: None,
                progress: PartitionProgress::default(),
                from,
            };
            Ok((claim, saved, fingerprint, key.clone()))
        }
        .await
        });
        let (claim, saved, fingerprint, key) =
            claimed.map_err(|f| self.fail(&format!("claiming a partition of job `{name}`"), f))?;
        let Claim::Partition { id, from, .. } = claim else {
            return Ok(claim);
        };
        self.hold(&key);
        self.renewed(started);
        let (state, progress) = match saved {
            None => (None, PartitionProgress::default()),
            Some(row) => {
                let ck = self.codec().checkpoint(fingerprint, None, vec![row])?;
                (
                    ck.partitions().get(&id).cloned(),
                    ck.progress().get(&id).copied().unwrap_or_default(),
                )
            }
        };
        Ok(Claim::Partition {
            id,
            state,
            progress,
            from,
        })
    }

    async fn renew(&self) -> Result<()> {
        let store = &self.inner.store;
        let backend = store.backend;
        let name = self.inner.name.as_str();
        let me = self.inner.worker.as_str();
        let lease = millis_of(self.inner.lease);
        let location = self.location();
        let held = self.held();
        let started = Instant::now();
        let renewed: std::result::Result<_, Failure> =
            on_pool!(&store.pool, |pool| {
                async {
                    let mut tx = begin_write(pool, backend).await?;
                    lock_job!(tx, backend, name, location.as_str());
                    let now = now_millis();
                    extend_leases!(backend, tx, name, me, now.saturating_add(lease));
                    sqlx::query(&backend.sql(
                        "UPDATE vmig_workers SET seen_at = ? WHERE job_name = ? AND worker = ?",
                    ))
                    .bind(now)
                    .bind(name)
                    .bind(me)
                    .execute(&mut *tx)
                    .await?;
                    let mut lost = None;
                    if !held.is_empty() {
                        let rows = sqlx::query(&backend.sql(
                    "SELECT unit_key, unit, owner, done FROM vmig_leases WHERE job_name = ?",
                ))
                .bind(name)
                .fetch_all(&mut *tx)
                .await?;
                        for row in &rows {
                            let key = row.text("unit_key")?;
                            let owner = row.opt_text("owner")?;
                            if held.contains(&key) && owner.as_deref() != Some(me) {
                                lost = Some((row.text("unit")?, owner));
                                break;
                            }
                        }
                    }
                    tx.commit().await?;
                    Ok(lost)
                }
                .await
            });
        let lost =
            renewed.map_err(|f| self.fail(&format!("renewing the leases of worker {me}"), f))?;
        if let Some((unit, owner)) = lost {
            return Err(Error::LeaseLost {
                unit: format!("partition {unit}"),
                why: match owner {
                    Some(owner) => format!("worker {owner} holds it now"),
                    None => "it was released".to_string(),
                },
            });
        }
        self.renewed(started);
        Ok(())
    }

    fn held_until(&self) -> Option<Instant> {
        self.inner.held_until.lock().ok().and_then(|h| *h)
    }

    async fn release_all(&self) -> Result<()> {
        let store = &self.inner.store;
        let backend = store.backend;
        let name = self.inner.name.as_str();
        let me = self.inner.worker.as_str();
        let location = self.location();
        let released: std::result::Result<(), Failure> = on_pool!(&store.pool, |pool| async {
            let mut tx = begin_write(pool, backend).await?;
            lock_job!(tx, backend, name, location.as_str());
            sqlx::query(&backend.sql(
                "UPDATE vmig_leases SET owner = NULL, lease_until = 0 \
                 WHERE job_name = ? AND owner = ? AND done = 0",
            ))
            .bind(name)
            .bind(me)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        }
        .await);
        released.map_err(|f| self.fail(&format!("releasing the leases of worker {me}"), f))?;
        if let Ok(mut held) = self.inner.held.lock() {
            held.clear();
        }
        Ok(())
    }

    async fn claim_step(&self, step: Step) -> Result<StepClaim> {
        let store = &self.inner.store;
        let backend = store.backend;
        let name = self.inner.name.as_str();
        let me = self.inner.worker.as_str();
        let lease = millis_of(self.inner.lease);
        let key = step_key(step);
        let location = self.location();
        let started = Instant::now();
        let claimed: std::result::Result<StepClaim, Failure> = on_pool!(&store.pool, |pool| {
            async {
            let mut tx = begin_write(pool, backend).await?;
            lock_job!(tx, backend, name, location.as_str());
            let now = now_millis();
            let row = sqlx::query(&backend.sql(
                "SELECT owner, lease_until, done FROM vmig_leases WHERE job_name = ? AND unit_key = ?",
            ))
            .bind(name)
            .bind(&key)
            .fetch_optional(&mut *tx)
            .await?;
            let row = match row {
                Some(row) => LeaseRow {
                    owner: row.opt_text("owner")?,
                    lease_until: row.int("lease_until")?,
                    done: row.int("done")? != 0,
                },
                None => {
                    sqlx::query(&backend.sql(
                        "INSERT INTO vmig_leases (job_name, unit_key, kind, unit, owner, \
                         lease_until, done, claims) VALUES (?, ?, 'step', ?, NULL, 0, 0, 0)",
                    ))
                    .bind(name)
                    .bind(&key)
                    .bind(step.as_str())
                    .execute(&mut *tx)
                    .await?;
                    LeaseRow {
                        owner: None,
                        lease_until: 0,
                        done: false,
                    }
                }
            };
            let outcome = if row.done {
                StepClaim::Done
            } else if row.owner.is_some()
                && row.owner.as_deref() != Some(me)
                && row.lease_until >= now
            {
                StepClaim::Busy(row.owner.unwrap_or_default())
            } else {
                let open = if step == Step::Finish {
                    sqlx::query(&backend.sql(
                        "SELECT COUNT(*) AS n FROM vmig_leases \
                         WHERE job_name = ? AND kind = 'partition' AND done = 0",
                    ))
                    .bind(name)
                    .fetch_one(&mut *tx)
                    .await?
                    .int("n")?
                } else {
                    0
                };
                if open > 0 {
                    StepClaim::Busy(String::new())
                } else {
                    sqlx::query(&backend.sql(
                        "UPDATE vmig_leases SET owner = ?, lease_until = ?, claims = claims + 1 \
                         WHERE job_name = ? AND unit_key = ?",
                    ))
                    .bind(me)
                    .bind(now.saturating_add(lease))
                    .bind(name)
                    .bind(&key)
                    .execute(&mut *tx)
                    .await?;
                    StepClaim::Won
                }
            };
            tx.commit().await?;
            Ok(outcome)
        }
        .await
        });
        let claimed = claimed.map_err(|f| {
            self.fail(
                &format!("claiming step {} of job `{name}`", step.as_str()),
                f,
            )
        })?;
        if claimed == StepClaim::Won {
            self.hold(&key);
            self.renewed(started);
        }
        Ok(claimed)
    }

    async fn complete_step(&self, step: Step) -> Result<()> {
        let store = &self.inner.store;
        let backend = store.backend;
        let name = self.inner.name.as_str();
        let me = self.inner.worker.as_str();
        let key = step_key(step);
        let location = self.location();
        let completed: std::result::Result<bool, Failure> = on_pool!(&store.pool, |pool| async {
            let mut tx = begin_write(pool, backend).await?;
            lock_job!(tx, backend, name, location.as_str());
            let done = sqlx::query(&backend.sql(
                "UPDATE vmig_leases SET done = 1 WHERE job_name = ? AND unit_key = ? AND owner = ?",
            ))
            .bind(name)
            .bind(&key)
            .bind(me)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(done.rows_affected() == 1)
        }
        .await);
        let completed = completed.map_err(|f| {
            self.fail(
                &format!("completing step {} of job `{name}`", step.as_str()),
                f,
            )
        })?;
        self.unhold(&key);
        if !completed {
            return Err(Error::LeaseLost {
                unit: format!("step {}", step.as_str()),
                why: "another worker holds it now".to_string(),
            });
        }
        Ok(())
    }

    async fn shared_record(&self) -> Result<Option<serde_json::Value>> {
        Ok(self.codec().load().await?.and_then(|c| c.sink().cloned()))
    }

    async fn worker_records(&self) -> Result<Vec<serde_json::Value>> {
        let store = &self.inner.store;
        let backend = store.backend;
        let name = self.inner.name.as_str();
        let read: std::result::Result<Vec<(String, String)>, Failure> =
            on_pool!(&store.pool, |pool| async {
                let mut out = Vec::new();
                for row in sqlx::query(&backend.sql(
                    "SELECT worker, sink FROM vmig_workers \
                     WHERE job_name = ? AND sink IS NOT NULL ORDER BY started_at, worker",
                ))
                .bind(name)
                .fetch_all(pool)
                .await?
                {
                    out.push((row.text("worker")?, row.text("sink")?));
                }
                Ok(out)
            }
            .await);
        let rows = read.map_err(|f| {
            self.fail(
                &format!("reading the sink records of the workers of job `{name}`"),
                f,
            )
        })?;
        rows.into_iter()
            .map(|(worker, text)| {
                serde_json::from_str(&text).map_err(|e| {
                    Error::data(
                        format!("the sink record of worker {worker} of job `{name}`"),
                        format!("it is not JSON ({e}); the state store was changed by something other than vmig"),
                    )
                })
            })
            .collect()
    }

    async fn publish_shared(&self, record: Option<serde_json::Value>) -> Result<()> {
        let store = &self.inner.store;
        let backend = store.backend;
        let name = self.inner.name.as_str();
        let location = self.location();
        let sink = record.map(|r| r.to_string());
        let published: std::result::Result<(), Failure> = on_pool!(&store.pool, |pool| {
            async {
                let mut tx = begin_write(pool, backend).await?;
                let fingerprint = lock_job!(tx, backend, name, location.as_str());
                let now = now_millis();
                save_sink_record!(backend, tx, name, &fingerprint, sink.as_deref(), now);
                tx.commit().await?;
                Ok(())
            }
            .await
        });
        published.map_err(|f| self.fail(&format!("publishing the sink record of job `{name}`"), f))
    }
}

#[async_trait]
impl CheckpointStore for JobWorker {
    fn location(&self) -> String {
        JobWorker::location(self)
    }

    /// The job's fingerprint and shared sink record, without partitions.
    async fn load(&self) -> Result<Option<Checkpoint>> {
        let Some(whole) = self.codec().load().await? else {
            return Ok(None);
        };
        let mut slice = Checkpoint::new(whole.job());
        slice.set_sink(whole.sink().cloned());
        Ok(Some(slice))
    }

    async fn save(&self, checkpoint: &Checkpoint) -> Result<()> {
        let wanted = self.codec().rows(checkpoint)?;
        let store = &self.inner.store;
        let backend = store.backend;
        let name = self.inner.name.as_str();
        let me = self.inner.worker.as_str();
        let lease = millis_of(self.inner.lease);
        let location = self.location();
        let sink = checkpoint.sink().map(serde_json::Value::to_string);
        let started = Instant::now();
        let saved: std::result::Result<Vec<String>, Failure> = on_pool!(&store.pool, |pool| {
            async {
                let mut tx = begin_write(pool, backend).await?;
                let recorded = lock_job!(tx, backend, name, location.as_str());
                same_job(&location, &recorded, checkpoint)?;
                let now = now_millis();
                let mut owners: HashMap<String, Option<String>> = HashMap::new();
                for row in sqlx::query(&backend.sql(
                "SELECT unit_key, owner FROM vmig_leases WHERE job_name = ? AND kind = 'partition'",
            ))
            .bind(name)
            .fetch_all(&mut *tx)
            .await?
            {
                owners.insert(row.text("unit_key")?, row.opt_text("owner")?);
            }
                for (key, row) in &wanted {
                    let owner = owners.get(key).cloned().flatten();
                    if owner.as_deref() != Some(me) {
                        return Err(Failure::Vmig(Error::LeaseLost {
                            unit: format!("partition {}", row.id),
                            why: match owner {
                                Some(other) => format!("worker {other} holds it now"),
                                None => "no worker holds it (it was released or never claimed)"
                                    .to_string(),
                            },
                        }));
                    }
                }
                let existing: HashMap<String, PartitionRow> =
                    read_partitions!(backend, tx, name).into_iter().collect();
                let finish = backend.sql(
                "UPDATE vmig_leases SET done = 1 WHERE job_name = ? AND unit_key = ? AND done = 0",
            );
                let mut finished = Vec::new();
                for (key, row) in &wanted {
                    if row.state.as_deref() == Some(DONE) {
                        sqlx::query(&finish)
                            .bind(name)
                            .bind(key.as_str())
                            .execute(&mut *tx)
                            .await?;
                        finished.push(key.clone());
                    }
                    match existing.get(key) {
                        Some(old) if old == row => {}
                        old => {
                            write_partition!(backend, tx, name, key.as_str(), row, old.is_some())
                        }
                    }
                }
                extend_leases!(backend, tx, name, me, now.saturating_add(lease));
                sqlx::query(&backend.sql(
                "UPDATE vmig_workers SET sink = ?, seen_at = ? WHERE job_name = ? AND worker = ?",
            ))
            .bind(sink.as_deref())
            .bind(now)
            .bind(name)
            .bind(me)
            .execute(&mut *tx)
            .await?;
                tx.commit().await?;
                Ok(finished)
            }
            .await
        });
        let finished = saved.map_err(|f| {
            self.fail(
                &format!("saving the checkpoint of worker {me} of job `{name}`"),
                f,
            )
        })?;
        for key in finished {
            self.unhold(&key);
        }
        self.renewed(started);
        Ok(())
    }
}
