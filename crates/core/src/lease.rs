//! Several workers on one job: the runner claims each partition with a lease before reading
//! it, renews its leases while it works, and a once-per-job step (setting the target up,
//! finishing it) is run by the one worker that claims it.
//!
//! A [`Leases`] is one worker's handle on a job shared through a store (vmig-state implements
//! it over SQLite, MySQL/MariaDB and PostgreSQL). Give it to
//! [`crate::pipeline::Pipeline::with_leases`] together with that worker's
//! [`crate::checkpoint::CheckpointStore`], which then saves only this worker's slice: the
//! partitions it holds, and its own sink record.
//!
//! # The protocol the runner follows
//!
//! 1. [`Leases::register`] the source's partitions (idempotent: every worker does it).
//! 2. Claim [`Step::Setup`]: the winner resumes the job's shared sink record if there is one,
//!    prepares the sink, creates what all workers share ([`crate::Sink::create_shared`]) and
//!    publishes [`crate::Sink::resume_record`] as the job's record
//!    ([`Leases::publish_shared`]); then completes the step. The others wait until it is done
//!    and then resume that record and prepare.
//! 3. Each reader slot loops on [`Leases::claim`]: a claimed partition comes with its saved
//!    state and counts (a partition taken over from a dead worker resumes after its last
//!    position, and its unconfirmed window is replayed); [`Claim::Wait`] means other workers
//!    hold the rest (the slot waits and claims again, to take over what a dead worker leaves);
//!    [`Claim::AllDone`] ends the slot.
//! 4. A background task calls [`Leases::renew`] every third of the lease; a failed or lost
//!    renewal stops the worker (its partitions are then finished by others from their last
//!    checkpoint). Before every write the runner checks [`Leases::held_until`].
//! 5. When every partition is done, the worker that claims [`Step::Finish`] commits the sink
//!    with every worker's last saved record ([`Leases::worker_records`],
//!    [`crate::Sink::commit_shared`]: index build, load, one manifest, the imports of files a
//!    dead worker staged — once per job) and completes the step; the others end their part
//!    with [`crate::Sink::commit_part`].

use std::fmt::Debug;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::batch::PartitionId;
use crate::checkpoint::{PartitionProgress, PartitionState};
use crate::error::{Error, Result};

/// A once-per-job step that one worker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// Preparing the target for every worker (creating the collection) and publishing the
    /// job's shared sink record.
    Setup,
    /// Finishing the target after the last partition (index build and load, a merged
    /// manifest).
    Finish,
}

impl Step {
    /// The step's name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Setup => "setup",
            Step::Finish => "finish",
        }
    }
}

/// What claiming a step gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepClaim {
    /// This worker holds the step: run it, then [`Leases::complete_step`].
    Won,
    /// Another worker completed it.
    Done,
    /// Another worker holds it (named), or — for [`Step::Finish`] — partitions are not all
    /// done yet.
    Busy(String),
}

/// What claiming a partition gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// This worker now holds `id`.
    Partition {
        /// The partition.
        id: PartitionId,
        /// Its saved state (`None`: never started).
        state: Option<PartitionState>,
        /// Its saved counts, with the window of rows sent but not confirmed.
        progress: PartitionProgress,
        /// The worker it was taken over from, when its lease had expired.
        from: Option<String>,
    },
    /// Nothing can be claimed now: other workers hold partitions not done yet (one of them may
    /// die and leave them to this worker).
    Wait,
    /// Nothing is left for this worker to claim: every partition is done, or held by this
    /// worker itself (its other reader slots finish them).
    AllDone,
}

/// A claimed partition: its id, saved state, saved counts, and the worker it was taken over
/// from ([`Claim::Partition`]).
pub type ClaimedPartition = (
    PartitionId,
    Option<PartitionState>,
    PartitionProgress,
    Option<String>,
);

impl Claim {
    /// The claimed partition, or `None` for [`Claim::Wait`] and [`Claim::AllDone`].
    pub fn into_partition(self) -> Option<ClaimedPartition> {
        match self {
            Claim::Partition {
                id,
                state,
                progress,
                from,
            } => Some((id, state, progress, from)),
            Claim::Wait | Claim::AllDone => None,
        }
    }
}

/// One worker's handle on a job shared between workers (see the module docs).
#[async_trait]
pub trait Leases: Debug + Send + Sync {
    /// This worker's id (unique per worker process and job).
    fn worker(&self) -> &str;

    /// How long a claim holds without renewal.
    fn lease(&self) -> Duration;

    /// Records the job's partitions, in the source's order, for claiming (rows that exist are
    /// kept as they are).
    ///
    /// # Errors
    /// Store errors.
    async fn register(&self, partitions: &[PartitionId]) -> Result<()>;

    /// Claims a partition that is not done and that no live lease holds (the first such in
    /// the registered order), atomically: two workers never both hold one.
    ///
    /// # Errors
    /// Store errors.
    async fn claim(&self) -> Result<Claim>;

    /// Extends the lease of every partition and step this worker holds.
    ///
    /// # Errors
    /// [`crate::Error::LeaseLost`] when another worker took one of them over (this worker was
    /// too slow to renew); store errors.
    async fn renew(&self) -> Result<()>;

    /// Until when this worker's leases surely hold by its own clock: the start of the last
    /// successful renewal (or claim) plus the lease, minus a safety margin. Past it the worker
    /// MUST NOT write.
    fn held_until(&self) -> Option<Instant>;

    /// Gives up every lease this worker holds on partitions not done (a worker that stops),
    /// so that others take them over at once.
    ///
    /// # Errors
    /// Store errors.
    async fn release_all(&self) -> Result<()>;

    /// Claims a once-per-job step.
    ///
    /// # Errors
    /// Store errors.
    async fn claim_step(&self, step: Step) -> Result<StepClaim>;

    /// Marks a step this worker holds as done.
    ///
    /// # Errors
    /// [`crate::Error::LeaseLost`] when this worker no longer holds it; store errors.
    async fn complete_step(&self, step: Step) -> Result<()>;

    /// The job's shared sink record, published by the worker that set the job up.
    ///
    /// # Errors
    /// Store errors.
    async fn shared_record(&self) -> Result<Option<serde_json::Value>>;

    /// The last saved sink record of every worker of the job (workers that died included,
    /// this one as of its last save), oldest worker first; workers that saved none are left
    /// out. The worker that finishes the job gives them to [`crate::Sink::commit_shared`].
    ///
    /// # Errors
    /// Store errors; an error naming the worker when a record is not JSON.
    async fn worker_records(&self) -> Result<Vec<serde_json::Value>>;

    /// Publishes the job's shared sink record (by the holder of [`Step::Setup`]).
    ///
    /// # Errors
    /// Store errors.
    async fn publish_shared(&self, record: Option<serde_json::Value>) -> Result<()>;
}

/// How often a worker renews its leases: a third of the lease, so two renewals can fail
/// before it expires.
pub fn renew_interval(lease: Duration) -> Duration {
    (lease / 3).max(Duration::from_millis(50))
}

/// The refusal of a job shared between workers (`[state] lease`, `--worker`) into sink `sink`,
/// which cannot take rows from several workers: a configuration error of `[state]`.
pub fn unshared_sink(sink: &str) -> Error {
    Error::config(
        "state",
        format!(
            "the `{sink}` sink cannot share a job between workers (its output is not safe to take over from a dead worker); run the job with one worker (no `[state] lease`, no `--worker`)"
        ),
    )
}

/// How long a worker waits before claiming again when others hold everything left.
pub fn poll_interval(lease: Duration) -> Duration {
    (lease / 10).clamp(Duration::from_millis(50), Duration::from_secs(5))
}

/// The safety margin a worker keeps before its lease's end: a tenth of the lease (at least
/// 20 ms), for clock differences between machines and a write in flight.
pub fn margin(lease: Duration) -> Duration {
    (lease / 10).max(Duration::from_millis(20))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_are_fractions_of_the_lease() {
        let lease = Duration::from_secs(60);
        assert_eq!(renew_interval(lease), Duration::from_secs(20));
        assert_eq!(poll_interval(lease), Duration::from_secs(5));
        assert_eq!(margin(lease), Duration::from_secs(6));
        assert_eq!(
            poll_interval(Duration::from_secs(3)),
            Duration::from_millis(300)
        );
        assert_eq!(
            renew_interval(Duration::from_millis(60)),
            Duration::from_millis(50)
        );
        assert_eq!(margin(Duration::from_millis(60)), Duration::from_millis(20));
    }
}
