//! Checkpoints: how far each partition of a job is known to be written.
//!
//! The pipeline saves a checkpoint after every successful [`crate::Sink::flush`], never before,
//! so a checkpoint only ever names rows that are durable in the target. A job resumed from it
//! reopens each unfinished partition strictly after its saved position.
//!
//! Every checkpoint carries the [`JobFingerprint`] of the job that saved it, and [`resume`]
//! refuses a checkpoint of another job: positions of one source mean nothing to another, and
//! partitions marked done for one sink were never written to a different one.

use std::collections::BTreeMap;
use std::fmt::{self, Debug};
use std::path::PathBuf;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::batch::{PartitionId, Position};
use crate::error::{Error, Result};

/// The saved progress of a job. Versioned so that old files stay readable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "version")]
pub enum Checkpoint {
    /// Version 1.
    #[serde(rename = "1")]
    V1 {
        /// The [`JobFingerprint`] of the job that saved it (its hex digest), so a checkpoint is
        /// never applied to a different job.
        job: String,
        /// State of every partition that has made progress.
        partitions: BTreeMap<PartitionId, PartitionState>,
        /// Row counts of every partition that has made progress.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        progress: BTreeMap<PartitionId, PartitionProgress>,
        /// The sink's own resumption record ([`crate::Sink::resume_record`]) as of the last
        /// flush, given back to [`crate::Sink::resume`] when the job resumes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sink: Option<serde_json::Value>,
    },
}

impl Checkpoint {
    /// An empty checkpoint for the job fingerprint `job` (normally
    /// [`JobFingerprint::as_str`]).
    pub fn new(job: impl Into<String>) -> Self {
        Checkpoint::V1 {
            job: job.into(),
            partitions: BTreeMap::new(),
            progress: BTreeMap::new(),
            sink: None,
        }
    }

    /// The job fingerprint.
    pub fn job(&self) -> &str {
        match self {
            Checkpoint::V1 { job, .. } => job,
        }
    }

    /// The state of every partition that has made progress.
    pub fn partitions(&self) -> &BTreeMap<PartitionId, PartitionState> {
        match self {
            Checkpoint::V1 { partitions, .. } => partitions,
        }
    }

    /// Mutable access to the partition states.
    pub fn partitions_mut(&mut self) -> &mut BTreeMap<PartitionId, PartitionState> {
        match self {
            Checkpoint::V1 { partitions, .. } => partitions,
        }
    }

    /// Row counts per partition.
    pub fn progress(&self) -> &BTreeMap<PartitionId, PartitionProgress> {
        match self {
            Checkpoint::V1 { progress, .. } => progress,
        }
    }

    /// Mutable access to the row counts.
    pub fn progress_mut(&mut self) -> &mut BTreeMap<PartitionId, PartitionProgress> {
        match self {
            Checkpoint::V1 { progress, .. } => progress,
        }
    }

    /// The sink's resumption record, if the sink gave one.
    pub fn sink(&self) -> Option<&serde_json::Value> {
        match self {
            Checkpoint::V1 { sink, .. } => sink.as_ref(),
        }
    }

    /// Replaces the sink's resumption record.
    pub fn set_sink(&mut self, record: Option<serde_json::Value>) {
        match self {
            Checkpoint::V1 { sink, .. } => *sink = record,
        }
    }

    /// Whether nothing has been recorded yet: no partition state, no sent rows, no sink record.
    pub fn is_empty(&self) -> bool {
        self.partitions().is_empty()
            && self.sink().is_none()
            && self.progress().values().all(|p| p.unconfirmed == 0)
    }
}

/// Row counts of one partition, kept with its [`PartitionState`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PartitionProgress {
    /// Source rows up to the saved position (before filters): durable in the target.
    pub rows_read: u64,
    /// Rows the sink made durable for this partition (after filters).
    pub rows_written: u64,
    /// Source rows *after* the saved position that were handed to a sink whose writes are not
    /// idempotent ([`crate::Sink::needs_sent_marks`]) before the last save: they may be in the
    /// target already, so a resumed run sends them again with [`crate::Sink::write_replay`].
    pub unconfirmed: u64,
    /// Bytes of the rows the sink made durable for this partition, as Arrow holds their values
    /// ([`crate::pipeline::data_bytes`]): a size of the data independent of the sink's encoding.
    pub bytes_written: u64,
}

/// Where one partition stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionState {
    /// Rows up to and including `after` are durable; resume after it.
    InProgress {
        /// The last durable position.
        after: Position,
    },
    /// Every row of the partition is durable.
    Done,
}

/// What identifies a job for its checkpoints: the SHA-256 of the job's canonical JSON
/// ([`canonical_json`]), as 64 lowercase hex digits.
///
/// Front ends get it from [`crate::config::JobConfig::fingerprint`], which decides what belongs
/// in a job's identity (and what, like secrets and performance settings, does not).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobFingerprint(String);

impl JobFingerprint {
    /// The fingerprint of `value`: SHA-256 over [`canonical_json`], so the order of keys in
    /// `value` does not matter.
    pub fn of(value: &serde_json::Value) -> Self {
        let digest = Sha256::digest(canonical_json(value).as_bytes());
        let hex = digest.iter().fold(String::with_capacity(64), |mut out, b| {
            out.push_str(&format!("{b:02x}"));
            out
        });
        JobFingerprint(hex)
    }

    /// The full hex digest, as stored in [`Checkpoint::job`].
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 hex digits, for messages.
    pub fn short(&self) -> &str {
        short(&self.0)
    }
}

impl fmt::Display for JobFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The first 12 characters of a fingerprint (all of it when shorter).
fn short(fingerprint: &str) -> &str {
    fingerprint
        .char_indices()
        .nth(12)
        .map_or(fingerprint, |(end, _)| &fingerprint[..end])
}

/// `value` as compact JSON with the keys of every object sorted, whatever order the map kept
/// them in: equal values always give equal text.
pub fn canonical_json(value: &serde_json::Value) -> String {
    // Maps are sorted already unless some crate in the build enables serde_json's
    // `preserve_order`; sorting explicitly keeps fingerprints stable either way.
    let mut sorted = value.clone();
    sorted.sort_all_objects();
    sorted.to_string()
}

/// The checkpoint to run job `job` from: the one in `store` when it was saved by this job, a
/// fresh one when `store` holds none.
///
/// # Errors
/// [`Error::CheckpointMismatch`] when `store` holds a checkpoint of another job, naming both
/// fingerprints and the store and saying how to start over; any error of
/// [`CheckpointStore::load`].
pub async fn resume(store: &dyn CheckpointStore, job: &JobFingerprint) -> Result<Checkpoint> {
    match store.load().await? {
        None => Ok(Checkpoint::new(job.as_str())),
        Some(saved) if saved.job() == job.as_str() => Ok(saved),
        Some(saved) => Err(Error::CheckpointMismatch {
            store: store.location(),
            saved: short(saved.job()).to_string(),
            job: job.short().to_string(),
        }),
    }
}

/// Persists checkpoints.
#[async_trait]
pub trait CheckpointStore: Debug + Send + Sync {
    /// Where the checkpoint is kept, for messages (a file path, a table, a URL without
    /// credentials). Defaults to the store's `Debug` form.
    fn location(&self) -> String {
        format!("{self:?}")
    }

    /// The last saved checkpoint, if any.
    ///
    /// # Errors
    /// When the store cannot be read or holds something that is not a checkpoint.
    async fn load(&self) -> Result<Option<Checkpoint>>;

    /// Saves `checkpoint`. MUST be atomic: a crash leaves the old or the new one, never a mix.
    ///
    /// # Errors
    /// When the checkpoint cannot be written.
    async fn save(&self, checkpoint: &Checkpoint) -> Result<()>;
}

/// A checkpoint kept in a local JSON file, replaced atomically (write a temp file, then rename).
#[derive(Debug, Clone)]
pub struct FileCheckpointStore {
    path: PathBuf,
}

impl FileCheckpointStore {
    /// A store at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileCheckpointStore { path: path.into() }
    }
}

#[async_trait]
impl CheckpointStore for FileCheckpointStore {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    async fn load(&self) -> Result<Option<Checkpoint>> {
        match tokio::fs::read(&self.path).await {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                Error::data(
                    self.path.display().to_string(),
                    format!("not a vmig checkpoint ({e}); delete it to start over"),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Io(e).context(format!("reading {}", self.path.display()))),
        }
    }

    async fn save(&self, checkpoint: &Checkpoint) -> Result<()> {
        let bytes =
            serde_json::to_vec_pretty(checkpoint).map_err(|e| Error::External(Box::new(e)))?;
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        tokio::fs::write(&tmp, &bytes).await?;
        tokio::fs::File::open(&tmp).await?.sync_all().await?;
        tokio::fs::rename(&tmp, &self.path).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn file_store_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCheckpointStore::new(dir.path().join("ck.json"));
        assert_eq!(store.load().await.unwrap(), None);
        let mut ck = Checkpoint::new("job-a");
        ck.partitions_mut().insert(
            PartitionId::new("0"),
            PartitionState::InProgress {
                after: Position(serde_json::json!({"row": 10})),
            },
        );
        ck.partitions_mut()
            .insert(PartitionId::new("1"), PartitionState::Done);
        store.save(&ck).await.unwrap();
        assert_eq!(store.load().await.unwrap(), Some(ck));
        std::fs::write(dir.path().join("ck.json"), b"garbage").unwrap();
        let e = store.load().await.unwrap_err().to_string();
        assert!(e.ends_with(" not a vmig checkpoint (expected value at line 1 column 1); delete it to start over"), "{e}");
    }

    #[test]
    fn fingerprints_ignore_key_order_and_are_hex_sha256() {
        let a = JobFingerprint::of(&serde_json::json!({"b": [1, {"y": 2, "x": "s"}], "a": null}));
        let b = JobFingerprint::of(&serde_json::json!({"a": null, "b": [1, {"x": "s", "y": 2}]}));
        assert_eq!(a, b);
        assert_eq!(
            canonical_json(&serde_json::json!({"b": [1, {"y": 2, "x": "s"}], "a": null})),
            r#"{"a":null,"b":[1,{"x":"s","y":2}]}"#
        );
        // SHA-256 of the two bytes `{}`.
        assert_eq!(
            JobFingerprint::of(&serde_json::json!({})).as_str(),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(a.short().len(), 12);
        assert!(a.as_str().starts_with(a.short()));
        assert_ne!(
            a,
            JobFingerprint::of(&serde_json::json!({"a": null, "b": [1]}))
        );
    }

    #[tokio::test]
    async fn resume_refuses_a_checkpoint_of_another_job() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ck.json");
        let store = FileCheckpointStore::new(&path);
        let job = JobFingerprint::of(&serde_json::json!({"job": 1}));
        let fresh = resume(&store, &job).await.unwrap();
        assert_eq!(fresh, Checkpoint::new(job.as_str()));
        let mut mine = fresh.clone();
        mine.partitions_mut()
            .insert(PartitionId::new("0"), PartitionState::Done);
        store.save(&mine).await.unwrap();
        assert_eq!(resume(&store, &job).await.unwrap(), mine);

        let other = JobFingerprint::of(&serde_json::json!({"job": 2}));
        // The whole message is asserted in crates/testing/tests/pipeline.rs.
        match resume(&store, &other).await.unwrap_err() {
            Error::CheckpointMismatch {
                store: location,
                saved,
                job: this,
            } => assert_eq!(
                (location, saved.as_str(), this.as_str()),
                (path.display().to_string(), job.short(), other.short())
            ),
            e => panic!("not a mismatch: {e}"),
        }
        // An old checkpoint whose `job` is not a digest is named as it is.
        store.save(&Checkpoint::new("job")).await.unwrap();
        let e = resume(&store, &other).await.unwrap_err();
        assert!(
            e.to_string().contains("(fingerprint job; this job's is "),
            "{e}"
        );
    }
}
