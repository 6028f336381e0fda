//! Checkpoints: how far each partition of a job is known to be written.
//!
//! The pipeline saves a checkpoint after every successful [`crate::Sink::flush`], never before,
//! so a checkpoint only ever names rows that are durable in the target. A job resumed from it
//! reopens each unfinished partition strictly after its saved position.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::PathBuf;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::batch::{PartitionId, Position};
use crate::error::{Error, Result};

/// The saved progress of a job. Versioned so that old files stay readable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "version")]
pub enum Checkpoint {
    /// Version 1.
    #[serde(rename = "1")]
    V1 {
        /// A fingerprint of the job (source and sink plugin names and options), so a checkpoint
        /// is never applied to a different job.
        job: String,
        /// State of every partition that has made progress.
        partitions: BTreeMap<PartitionId, PartitionState>,
    },
}

impl Checkpoint {
    /// An empty checkpoint for the job fingerprint `job`.
    pub fn new(job: impl Into<String>) -> Self {
        Checkpoint::V1 {
            job: job.into(),
            partitions: BTreeMap::new(),
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

/// Persists checkpoints.
#[async_trait]
pub trait CheckpointStore: Debug + Send + Sync {
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
        assert!(store.load().await.is_err());
    }
}
