//! [`JobCheckpoints`]: one job's checkpoint in the state store, as a
//! [`vmig_core::checkpoint::CheckpointStore`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use vmig_core::checkpoint::{Checkpoint, CheckpointStore, PartitionProgress, PartitionState};
use vmig_core::{Error, PartitionId, Position, Result};

use crate::db::{begin_write, on_pool, Failure, RowExt};
use crate::{now_millis, short, StateStore};

/// The checkpoint of job `name` in a [`StateStore`] ([`StateStore::checkpoints`]).
///
/// [`load`](CheckpointStore::load) gives `None` until a checkpoint is saved (or after
/// [`StateStore::forget_progress`]); the checkpoint it gives carries the fingerprint it was
/// saved with, so [`vmig_core::checkpoint::resume`] refuses it for a job whose identity changed.
/// [`save`](CheckpointStore::save) replaces the whole checkpoint in one transaction, writing
/// only the rows that changed, and refuses when the job has no record
/// ([`StateStore::start_run`] writes it) or its recorded fingerprint is not the checkpoint's.
#[derive(Clone)]
pub struct JobCheckpoints {
    store: StateStore,
    name: String,
}

impl fmt::Debug for JobCheckpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobCheckpoints")
            .field("location", &self.location())
            .finish()
    }
}

/// One row of `vmig_partitions`, as stored (without the job name).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PartitionRow {
    pub(crate) id: String,
    pub(crate) state: Option<String>,
    pub(crate) position: Option<String>,
    pub(crate) rows_read: Option<i64>,
    pub(crate) rows_written: Option<i64>,
    pub(crate) unconfirmed: Option<i64>,
    /// NULL in rows saved before schema version 3, read as 0.
    pub(crate) bytes_written: Option<i64>,
}

/// The columns of a [`PartitionRow`], as [`PartitionRow::read`] reads them.
pub(crate) const PARTITION_COLUMNS: &str =
    "partition_id, state, position, rows_read, rows_written, unconfirmed, bytes_written";

impl PartitionRow {
    /// The row from the [`PARTITION_COLUMNS`] of `row`.
    pub(crate) fn read(row: &impl RowExt) -> std::result::Result<PartitionRow, sqlx::Error> {
        Ok(PartitionRow {
            id: row.text("partition_id")?,
            state: row.opt_text("state")?,
            position: row.opt_text("position")?,
            rows_read: row.opt_int("rows_read")?,
            rows_written: row.opt_int("rows_written")?,
            unconfirmed: row.opt_int("unconfirmed")?,
            bytes_written: row.opt_int("bytes_written")?,
        })
    }
}

const IN_PROGRESS: &str = "in_progress";
pub(crate) const DONE: &str = "done";

/// The key of a partition row: SHA-256 of the partition id in hex, so ids of any length (file
/// paths, URLs) fit a primary key on every database.
pub(crate) fn part_key(id: &str) -> String {
    Sha256::digest(id.as_bytes())
        .iter()
        .fold(String::with_capacity(64), |mut out, b| {
            use std::fmt::Write as _;
            let _ = write!(out, "{b:02x}");
            out
        })
}

impl JobCheckpoints {
    pub(crate) fn new(store: StateStore, name: String) -> Self {
        JobCheckpoints { store, name }
    }

    /// The job whose checkpoint this is.
    pub fn job_name(&self) -> &str {
        &self.name
    }

    fn location(&self) -> String {
        format!("{} (job {})", self.store.location(), self.name)
    }

    /// The rows `checkpoint` is stored as, by key.
    pub(crate) fn rows(&self, checkpoint: &Checkpoint) -> Result<BTreeMap<String, PartitionRow>> {
        let count = |what: &str, id: &PartitionId, n: u64| {
            i64::try_from(n).map_err(|_| {
                Error::data(
                    self.location(),
                    format!("partition {id}: {what} = {n} is more than a database integer holds"),
                )
            })
        };
        let mut rows = BTreeMap::new();
        let ids = checkpoint
            .partitions()
            .keys()
            .chain(checkpoint.progress().keys());
        for id in ids {
            let key = part_key(&id.0);
            if rows.contains_key(&key) {
                continue;
            }
            let (state, position) = match checkpoint.partitions().get(id) {
                None => (None, None),
                Some(PartitionState::Done) => (Some(DONE.to_string()), None),
                Some(PartitionState::InProgress { after }) => {
                    (Some(IN_PROGRESS.to_string()), Some(after.0.to_string()))
                }
            };
            let (rows_read, rows_written, unconfirmed, bytes_written) =
                match checkpoint.progress().get(id) {
                    None => (None, None, None, None),
                    Some(p) => (
                        Some(count("rows_read", id, p.rows_read)?),
                        Some(count("rows_written", id, p.rows_written)?),
                        Some(count("unconfirmed", id, p.unconfirmed)?),
                        Some(count("bytes_written", id, p.bytes_written)?),
                    ),
                };
            rows.insert(
                key,
                PartitionRow {
                    id: id.0.clone(),
                    state,
                    position,
                    rows_read,
                    rows_written,
                    unconfirmed,
                    bytes_written,
                },
            );
        }
        Ok(rows)
    }

    /// The checkpoint the rows of one job make up.
    pub(crate) fn checkpoint(
        &self,
        fingerprint: String,
        sink: Option<String>,
        rows: Vec<PartitionRow>,
    ) -> Result<Checkpoint> {
        let bad = |id: &str, what: String| {
            Error::data(
                self.location(),
                format!("partition {id}: {what}; forget the job's progress (vmig run --restart) to start over"),
            )
        };
        let sink = sink
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| {
                Error::data(
                    self.location(),
                    format!("the sink record is not JSON ({e})"),
                )
            })?;
        let mut checkpoint = Checkpoint::new(fingerprint);
        checkpoint.set_sink(sink);
        for row in rows {
            let id = PartitionId::new(row.id.clone());
            let state = match (row.state.as_deref(), row.position) {
                (None, _) => None,
                (Some(DONE), _) => Some(PartitionState::Done),
                (Some(IN_PROGRESS), Some(position)) => {
                    let after = serde_json::from_str(&position)
                        .map_err(|e| bad(&row.id, format!("its position is not JSON ({e})")))?;
                    Some(PartitionState::InProgress {
                        after: Position(after),
                    })
                }
                (Some(IN_PROGRESS), None) => {
                    return Err(bad(&row.id, "it is in progress but has no position".into()))
                }
                (Some(other), _) => {
                    return Err(bad(&row.id, format!("unknown state `{other}`")));
                }
            };
            if let Some(state) = state {
                checkpoint.partitions_mut().insert(id.clone(), state);
            }
            let count = |what: &str, n: i64| {
                u64::try_from(n).map_err(|_| bad(&row.id, format!("{what} is negative ({n})")))
            };
            match (row.rows_read, row.rows_written, row.unconfirmed) {
                (None, None, None) => {}
                (Some(read), Some(written), Some(unconfirmed)) => {
                    let progress = PartitionProgress {
                        rows_read: count("rows_read", read)?,
                        rows_written: count("rows_written", written)?,
                        unconfirmed: count("unconfirmed", unconfirmed)?,
                        bytes_written: count("bytes_written", row.bytes_written.unwrap_or(0))?,
                    };
                    checkpoint.progress_mut().insert(id, progress);
                }
                _ => return Err(bad(&row.id, "some of its counts are missing".into())),
            }
        }
        Ok(checkpoint)
    }

    fn fail(&self, doing: &str, failure: Failure) -> Error {
        self.store.fail(doing, failure)
    }
}

/// Refuses to save `checkpoint` over the job recorded with fingerprint `recorded` (the job
/// file changed since the run began) at `location`.
pub(crate) fn same_job(
    location: &str,
    recorded: &str,
    checkpoint: &Checkpoint,
) -> std::result::Result<(), Failure> {
    if recorded == checkpoint.job() {
        return Ok(());
    }
    Err(Failure::Vmig(Error::CheckpointMismatch {
        store: location.to_string(),
        saved: short(recorded).to_string(),
        job: short(checkpoint.job()).to_string(),
    }))
}

/// Reads a job's partition rows inside a transaction (`$tx`), locking them where the backend
/// locks rows.
macro_rules! read_partitions {
    ($backend:expr, $tx:expr, $name:expr) => {{
        let select = format!(
            "SELECT part_key, {} FROM vmig_partitions WHERE job_name = ?{}",
            $crate::checkpoints::PARTITION_COLUMNS,
            $backend.for_update()
        );
        let mut rows = Vec::new();
        for row in sqlx::query(&$backend.sql(&select))
            .bind($name)
            .fetch_all(&mut *$tx)
            .await?
        {
            rows.push((
                row.text("part_key")?,
                $crate::checkpoints::PartitionRow::read(&row)?,
            ));
        }
        rows
    }};
}
/// Writes partition row `$row` of job `$name` under key `$key` inside a transaction (`$tx`):
/// an update when `$exists`, else an insert.
macro_rules! write_partition {
    ($backend:expr, $tx:expr, $name:expr, $key:expr, $row:expr, $exists:expr) => {{
        let sql = if $exists {
            "UPDATE vmig_partitions SET partition_id = ?, state = ?, position = ?, \
             rows_read = ?, rows_written = ?, unconfirmed = ?, bytes_written = ? \
             WHERE job_name = ? AND part_key = ?"
        } else {
            "INSERT INTO vmig_partitions (partition_id, state, position, rows_read, \
             rows_written, unconfirmed, bytes_written, job_name, part_key) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        };
        let row: &$crate::checkpoints::PartitionRow = $row;
        sqlx::query(&$backend.sql(sql))
            .bind(row.id.as_str())
            .bind(row.state.as_deref())
            .bind(row.position.as_deref())
            .bind(row.rows_read)
            .bind(row.rows_written)
            .bind(row.unconfirmed)
            .bind(row.bytes_written)
            .bind($name)
            .bind($key)
            .execute(&mut *$tx)
            .await?;
    }};
}
/// Sets job `$name`'s checkpoint row — its fingerprint `$fingerprint` and sink record `$sink`
/// (`Option<&str>`), saved at `$now` — creating the row on the job's first save, inside a
/// transaction (`$tx`) that locked the job.
macro_rules! save_sink_record {
    ($backend:expr, $tx:expr, $name:expr, $fingerprint:expr, $sink:expr, $now:expr) => {{
        let updated = sqlx::query(&$backend.sql(
            "UPDATE vmig_checkpoints SET fingerprint = ?, sink = ?, saved_at = ? WHERE job_name = ?",
        ))
        .bind($fingerprint)
        .bind($sink)
        .bind($now)
        .bind($name)
        .execute(&mut *$tx)
        .await?;
        if updated.rows_affected() == 0 {
            sqlx::query(&$backend.sql(
                "INSERT INTO vmig_checkpoints (job_name, fingerprint, sink, saved_at) \
                 VALUES (?, ?, ?, ?)",
            ))
            .bind($name)
            .bind($fingerprint)
            .bind($sink)
            .bind($now)
            .execute(&mut *$tx)
            .await?;
        }
    }};
}

pub(crate) use read_partitions;
pub(crate) use save_sink_record;
pub(crate) use write_partition;

#[async_trait]
impl CheckpointStore for JobCheckpoints {
    fn location(&self) -> String {
        JobCheckpoints::location(self)
    }

    async fn load(&self) -> Result<Option<Checkpoint>> {
        let backend = self.store.backend;
        let name = self.name.as_str();
        let loaded: std::result::Result<_, Failure> = on_pool!(&self.store.pool, |pool| async {
            // A read transaction: one snapshot on SQLite; on the servers the job row is locked
            // first, as every save does, so no save can commit halfway through these reads.
            let mut tx = pool.begin().await?;
            let lock = format!(
                "SELECT fingerprint FROM vmig_jobs WHERE name = ?{}",
                backend.for_update()
            );
            if sqlx::query(&backend.sql(&lock))
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?
                .is_none()
            {
                return Ok(None);
            }
            let header = format!(
                "SELECT fingerprint, sink FROM vmig_checkpoints WHERE job_name = ?{}",
                backend.for_update()
            );
            let Some(header) = sqlx::query(&backend.sql(&header))
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?
            else {
                return Ok(None);
            };
            let fingerprint = header.text("fingerprint")?;
            let sink = header.opt_text("sink")?;
            let rows = read_partitions!(backend, tx, name);
            tx.commit().await?;
            Ok(Some((fingerprint, sink, rows)))
        }
        .await);
        let Some((fingerprint, sink, rows)) = loaded
            .map_err(|f| self.fail(&format!("loading the checkpoint of job `{}`", self.name), f))?
        else {
            return Ok(None);
        };
        let rows = rows.into_iter().map(|(_, row)| row).collect();
        self.checkpoint(fingerprint, sink, rows).map(Some)
    }

    async fn save(&self, checkpoint: &Checkpoint) -> Result<()> {
        let backend = self.store.backend;
        let name = self.name.as_str();
        let wanted = self.rows(checkpoint)?;
        let sink = checkpoint.sink().map(serde_json::Value::to_string);
        let location = self.location();
        let saved: std::result::Result<(), Failure> = on_pool!(&self.store.pool, |pool| async {
            let mut tx = begin_write(pool, backend).await?;
            // Every transaction on a job's checkpoint locks the job's row first: saves of one
            // job never interleave, and each one compares against the rows the last one left.
            let lock = format!(
                "SELECT fingerprint FROM vmig_jobs WHERE name = ?{}",
                backend.for_update()
            );
            let Some(job) = sqlx::query(&backend.sql(&lock))
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?
            else {
                return Err(Failure::Vmig(Error::data(
                    location.as_str(),
                    format!(
                        "job `{name}` has no record in the state store, so its checkpoint cannot \
                         be saved (StateStore::start_run records the job first)"
                    ),
                )));
            };
            same_job(&location, &job.text("fingerprint")?, checkpoint)?;
            let now = now_millis();
            save_sink_record!(backend, tx, name, checkpoint.job(), sink.as_deref(), now);
            let existing: HashMap<String, PartitionRow> =
                read_partitions!(backend, tx, name).into_iter().collect();
            let delete =
                backend.sql("DELETE FROM vmig_partitions WHERE job_name = ? AND part_key = ?");
            for key in existing.keys().filter(|k| !wanted.contains_key(*k)) {
                sqlx::query(&delete)
                    .bind(name)
                    .bind(key.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            for (key, row) in &wanted {
                match existing.get(key) {
                    Some(old) if old == row => {}
                    old => write_partition!(backend, tx, name, key.as_str(), row, old.is_some()),
                }
            }
            tx.commit().await?;
            Ok(())
        }
        .await);
        saved.map_err(|f| self.fail(&format!("saving the checkpoint of job `{name}`"), f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_keys_are_sha256_hex() {
        assert_eq!(
            part_key(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
