//! Leases of several workers on one job, on SQLite (always) and on the real MariaDB and
//! PostgreSQL of `VMIG_MARIADB_URL` / `VMIG_POSTGRES_URL` (skipped loudly when unset, failing
//! under `CI=true`): concurrent claims never give one partition to two workers, an expired
//! lease is taken over with the saved position and unconfirmed window, a worker whose lease
//! was taken can neither renew nor save, saves never touch another worker's partitions, and
//! the once-per-job steps are won by exactly one worker. One body ([`suite`]) runs on all
//! three, each time in a fresh database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::json;
use vmig_core::checkpoint::{
    Checkpoint, CheckpointStore, JobFingerprint, PartitionProgress, PartitionState,
};
use vmig_core::lease::{Claim, ClaimedPartition, Leases, Step, StepClaim};
use vmig_core::{PartitionId, Position};
use vmig_state::{JobIdentity, JobWorker, StateStore};
use vmig_testing::database::TempDatabase;
use vmig_testing::service::{mariadb_url, postgres_url};

const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_secs(1);

fn identity(name: &str) -> JobIdentity {
    let fp = |v: serde_json::Value| JobFingerprint::of(&v).as_str().to_string();
    JobIdentity {
        name: name.to_string(),
        fingerprint: fp(json!({"job": name})),
        source: fp(json!({"source": 1})),
        transforms: fp(json!({"transforms": 1})),
        sink: fp(json!({"sink": 1})),
        resolved: json!({"job": name}),
    }
}

fn ids(n: usize) -> Vec<PartitionId> {
    (0..n).map(|i| PartitionId::new(format!("p{i}"))).collect()
}

/// A worker of `job` with its own connection pool (as a separate process would have).
async fn worker(url: &str, base: &Path, job: &str, name: &str, lease: Duration) -> JobWorker {
    let store = StateStore::open(url, base).await.unwrap();
    let w = store.join(job, name, lease).await.unwrap();
    w.register(&ids(8)).await.unwrap();
    w
}

fn claimed(c: Claim) -> ClaimedPartition {
    let shown = format!("{c:?}");
    c.into_partition()
        .unwrap_or_else(|| panic!("expected a partition, got {shown}"))
}

fn at(n: u64) -> PartitionState {
    PartitionState::InProgress {
        after: Position(json!({"row": n})),
    }
}

async fn suite(url: &str, base: &Path) {
    let store = StateStore::open(url, base).await.unwrap();
    let job = identity("shared");
    store.start_run(&job, false).await.unwrap();

    // Concurrent claims: 4 workers, each in its own task with its own pool, claim until
    // nothing is left; every partition is claimed exactly once.
    let mut tasks = Vec::new();
    for w in 0..4 {
        let url = url.to_string();
        let base = base.to_path_buf();
        tasks.push(tokio::spawn(async move {
            let me = worker(&url, &base, "shared", &format!("w{w}"), LONG).await;
            let mut got = Vec::new();
            // Until Wait (others hold the rest) or AllDone (this worker holds all that is
            // left: under load one task can claim every partition before the others start).
            while let Claim::Partition { id, from, .. } = me.claim().await.unwrap() {
                assert_eq!(from, None);
                got.push(id.0);
            }
            (format!("w{w}"), got)
        }));
    }
    let mut owner_of: BTreeMap<String, String> = BTreeMap::new();
    for t in tasks {
        let (w, got) = t.await.unwrap();
        for id in got {
            if let Some(first) = owner_of.insert(id.clone(), w.clone()) {
                panic!("partition {id} claimed by both {first} and {w}");
            }
        }
    }
    assert_eq!(
        owner_of.keys().cloned().collect::<Vec<_>>(),
        ids(8).into_iter().map(|p| p.0).collect::<Vec<_>>()
    );
    let workers = store.workers("shared").await.unwrap();
    assert_eq!(workers.len(), 4);
    let held: usize = workers.iter().map(|w| w.holds.len()).sum();
    assert_eq!(held, 8);
    for w in &workers {
        for h in &w.holds {
            assert_eq!(owner_of[&h.unit], w.worker);
            assert!(!h.expired);
        }
    }

    // Take-over, saves and steps, on a second job.
    let job2 = identity("takeover");
    store.start_run(&job2, false).await.unwrap();
    let a = worker(url, base, "takeover", "A", SHORT).await;
    let b = worker(url, base, "takeover", "B", SHORT).await;
    assert_eq!(a.worker(), "A");
    assert_eq!(a.lease(), SHORT);

    // Setup: one winner, the other waits, then sees it done and reads the shared record.
    assert_eq!(a.claim_step(Step::Setup).await.unwrap(), StepClaim::Won);
    assert_eq!(
        b.claim_step(Step::Setup).await.unwrap(),
        StepClaim::Busy("A".into())
    );
    assert_eq!(b.shared_record().await.unwrap(), None);
    a.publish_shared(Some(json!({"collection": "c"})))
        .await
        .unwrap();
    a.complete_step(Step::Setup).await.unwrap();
    assert_eq!(b.claim_step(Step::Setup).await.unwrap(), StepClaim::Done);
    assert_eq!(
        b.shared_record().await.unwrap(),
        Some(json!({"collection": "c"}))
    );
    // The worker's store loads the job's fingerprint and shared record, no partitions.
    let mut expected = Checkpoint::new(job2.fingerprint.clone());
    expected.set_sink(Some(json!({"collection": "c"})));
    assert_eq!(b.load().await.unwrap(), Some(expected));

    let (p0, state, progress, from) = claimed(a.claim().await.unwrap());
    assert_eq!(
        (p0.0.as_str(), state, progress, from),
        ("p0", None, PartitionProgress::default(), None)
    );
    let (p1, ..) = claimed(b.claim().await.unwrap());
    assert_eq!(p1.0, "p1");

    // A saves its slice: p0 at row 10 with 5 rows sent beyond; B saves p1 as done.
    let mut slice_a = Checkpoint::new(job2.fingerprint.clone());
    slice_a.partitions_mut().insert(p0.clone(), at(10));
    slice_a.progress_mut().insert(
        p0.clone(),
        PartitionProgress {
            rows_read: 10,
            rows_written: 9,
            unconfirmed: 5,
            bytes_written: 4608,
        },
    );
    slice_a.set_sink(Some(json!({"worker": "A"})));
    a.save(&slice_a).await.unwrap();
    let mut slice_b = Checkpoint::new(job2.fingerprint.clone());
    slice_b
        .partitions_mut()
        .insert(p1.clone(), PartitionState::Done);
    b.save(&slice_b).await.unwrap();
    // Neither save removed the other's partition; the shared record is untouched.
    let whole = store.checkpoints("takeover").load().await.unwrap().unwrap();
    assert_eq!(whole.partitions().get(&p0), Some(&at(10)));
    assert_eq!(whole.partitions().get(&p1), Some(&PartitionState::Done));
    assert_eq!(whole.sink(), Some(&json!({"collection": "c"})));

    // A worker cannot save a partition it does not hold: the whole save is refused.
    let mut steal = slice_a.clone();
    steal.partitions_mut().insert(p0.clone(), at(11));
    steal.partitions_mut().insert(p1.clone(), at(3));
    let e = a.save(&steal).await.unwrap_err().to_string();
    assert!(
        e.ends_with("the lease on partition p1 is lost: worker B holds it now; this worker stops, and the worker that holds it now carries on from the last checkpoint"),
        "{e}"
    );
    let whole = store.checkpoints("takeover").load().await.unwrap().unwrap();
    assert_eq!(whole.partitions().get(&p0), Some(&at(10)));
    assert_eq!(whole.partitions().get(&p1), Some(&PartitionState::Done));

    // A stops renewing: after the lease B takes p0 over with its saved position and window.
    assert!(a.held_until().is_some());
    tokio::time::sleep(SHORT + Duration::from_millis(200)).await;
    assert!(a.held_until().unwrap() < std::time::Instant::now());
    let (id, state, progress, from) = claimed(b.claim().await.unwrap());
    assert_eq!(id, p0);
    assert_eq!(state, Some(at(10)));
    assert_eq!(
        progress,
        PartitionProgress {
            rows_read: 10,
            rows_written: 9,
            unconfirmed: 5,
            bytes_written: 4608
        }
    );
    assert_eq!(from.as_deref(), Some("A"));
    // A's renewal and save now fail naming B, and nothing of A's save lands.
    let e = a.renew().await.unwrap_err().to_string();
    assert_eq!(
        e,
        "the lease on partition p0 is lost: worker B holds it now; this worker stops, and the worker that holds it now carries on from the last checkpoint"
    );
    let mut late = slice_a.clone();
    late.partitions_mut().insert(p0.clone(), at(99));
    let e = a.save(&late).await.unwrap_err().to_string();
    assert!(
        e.contains("the lease on partition p0 is lost: worker B holds it now"),
        "{e}"
    );
    let whole = store.checkpoints("takeover").load().await.unwrap().unwrap();
    assert_eq!(whole.partitions().get(&p0), Some(&at(10)));

    // Finish cannot be claimed while partitions are open.
    assert_eq!(
        b.claim_step(Step::Finish).await.unwrap(),
        StepClaim::Busy(String::new())
    );
    // B renews, releases what it holds: a third worker takes p0 at once (no expiry needed).
    b.renew().await.unwrap();
    b.release_all().await.unwrap();
    let c = worker(url, base, "takeover", "C", LONG).await;
    let (id, state, _, from) = claimed(c.claim().await.unwrap());
    assert_eq!((id.clone(), state, from), (p0.clone(), Some(at(10)), None));
    // C finishes everything it can claim.
    let mut slice_c = Checkpoint::new(job2.fingerprint.clone());
    slice_c
        .partitions_mut()
        .insert(p0.clone(), PartitionState::Done);
    loop {
        match c.claim().await.unwrap() {
            Claim::Partition { id, .. } => {
                slice_c.partitions_mut().insert(id, PartitionState::Done);
            }
            // What is left is C's own (not saved as done yet): nothing more for C.
            Claim::AllDone => break,
            Claim::Wait => panic!("nobody else holds anything"),
        }
    }
    slice_c.set_sink(Some(json!({"worker": "C"})));
    c.save(&slice_c).await.unwrap();
    assert_eq!(c.claim().await.unwrap(), Claim::AllDone);
    // Every worker's last saved record, oldest worker first, for the finisher: A's (dead, its
    // late save refused, so as of its last accepted save) and C's; B saved none.
    assert_eq!(
        c.worker_records().await.unwrap(),
        [json!({"worker": "A"}), json!({"worker": "C"})]
    );
    assert_eq!(b.claim().await.unwrap(), Claim::AllDone);
    let whole = store.checkpoints("takeover").load().await.unwrap().unwrap();
    assert_eq!(whole.partitions().len(), 8);
    assert!(whole
        .partitions()
        .values()
        .all(|s| *s == PartitionState::Done));

    // Finish: exactly one winner.
    assert!(!store.step_done("takeover", Step::Finish).await.unwrap());
    assert_eq!(c.claim_step(Step::Finish).await.unwrap(), StepClaim::Won);
    assert_eq!(
        b.claim_step(Step::Finish).await.unwrap(),
        StepClaim::Busy("C".into())
    );
    let e = b.complete_step(Step::Finish).await.unwrap_err().to_string();
    assert_eq!(e, "the lease on step finish is lost: another worker holds it now; this worker stops, and the worker that holds it now carries on from the last checkpoint");
    c.complete_step(Step::Finish).await.unwrap();
    assert_eq!(b.claim_step(Step::Finish).await.unwrap(), StepClaim::Done);
    assert!(store.step_done("takeover", Step::Finish).await.unwrap());

    // Forgetting the progress forgets leases and workers too.
    store.forget_progress("takeover").await.unwrap();
    assert!(store.workers("takeover").await.unwrap().is_empty());
    assert!(!store.step_done("takeover", Step::Finish).await.unwrap());
    assert_eq!(store.checkpoints("takeover").load().await.unwrap(), None);

    // Joining needs a recorded job and a lease of at least a second.
    let e = store.join("nope", "x", LONG).await.unwrap_err().to_string();
    assert!(
        e.contains("job `nope` has no record in the state store"),
        "{e}"
    );
    let e = store
        .join("shared", "x", Duration::from_millis(500))
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(e, "invalid `state` configuration: `lease = \"500ms\"` is too short: a lease must be at least 1s so that it can be renewed in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_leases() {
    let dir = tempfile::tempdir().unwrap();
    suite("sqlite://state.db", dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_leases() {
    let Some(base) = mariadb_url() else { return };
    let db = TempDatabase::create(&base, "vmig_lease").await;
    let url = db.url.clone();
    let ran = tokio::spawn(async move { suite(&url, Path::new("/unused")).await }).await;
    db.drop_now().await;
    ran.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_leases() {
    let Some(base) = postgres_url() else { return };
    let db = TempDatabase::create(&base, "vmig_lease").await;
    let url = db.url.clone();
    let ran = tokio::spawn(async move { suite(&url, Path::new("/unused")).await }).await;
    db.drop_now().await;
    ran.unwrap();
}
