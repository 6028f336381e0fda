//! Resumable runs of the `milvus2` sink (#13) against a real Milvus 2.3.5: a run is killed at
//! a checkpoint save (or inside a flush or the commit), a fresh sink resumes it from the saved
//! checkpoint, and the collection must hold every source row exactly once — read back and
//! compared row by row (ids, vectors bit for bit, scalars).
//!
//! A kill is simulated without a second process: the checkpoint store fails from its N-th
//! save on (as if the process died just before writing it), or the sink's flush or commit
//! stops after a while; either way the killed sink is dropped without `suspend` or `abort`,
//! so its requests in flight are cut off and its staging files stay, as after `kill -9`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::{concat_batches, sort_to_indices, take_record_batch};
use arrow::datatypes::{Int64Type, SchemaRef};
use serde_json::{json, Value};
use vmig_core::checkpoint::{CheckpointStore, FileCheckpointStore, JobFingerprint};
use vmig_core::pipeline::{NoProgress, Observer, Pipeline, PipelineOptions, RunReport};
use vmig_core::registry::{parse_sink, BuildContext};
use vmig_core::{async_trait, AbortReport, CommitReport, Error, FlushReport, Result, Sink};
use vmig_milvus::{ConnectOptions, MilvusClient};
use vmig_sink_milvus2 as _;
use vmig_testing::compare::float_bits;
use vmig_testing::gen::sample_batch;
use vmig_testing::mock::{DiesAt, MockSource};
use vmig_testing::service::{milvus, unique, MilvusServer};

/// Where a [`Killable`] sink dies.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// Not killed: the real sink, with its own `suspend` and `abort`.
    Never,
    /// When the run fails (a [`DiesAt`] store): dropped without clean-up.
    AtSave,
    /// Before flush number `n` (1-based) does anything.
    BeforeFlush(usize),
    /// `after` into flush number `n`: the flush is cancelled where it is.
    DuringFlush(usize, Duration),
    /// `after` into the commit.
    DuringCommit(Duration),
}

/// A sink that delegates to the real one and dies as `kill` says; `suspend` and `abort` drop
/// the real sink without running its clean-up, as a killed process would — with `land`, only
/// after its requests in flight were answered (the process died just after that), so every
/// row it sent is in Milvus; otherwise at once (requests in flight are cut off).
#[derive(Debug)]
struct Killable {
    inner: Box<dyn Sink>,
    kill: Kill,
    land: bool,
    flushes: usize,
}

impl Killable {
    async fn die(mut self: Box<Self>) -> Result<AbortReport> {
        if self.land {
            let _ = self.inner.flush().await;
        }
        Ok(AbortReport::default())
    }
}

fn killed() -> Error {
    Error::Transient {
        message: "killed".into(),
        source: None,
    }
}

#[async_trait]
impl Sink for Killable {
    async fn prepare(&mut self, schema: &SchemaRef) -> Result<()> {
        self.inner.prepare(schema).await
    }

    async fn write(&mut self, batch: RecordBatch, partition: Option<&str>) -> Result<()> {
        self.inner.write(batch, partition).await
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn flush(&mut self) -> Result<FlushReport> {
        self.flushes += 1;
        match self.kill {
            Kill::BeforeFlush(n) if n == self.flushes => Err(killed()),
            Kill::DuringFlush(n, after) if n == self.flushes => {
                let _ = tokio::time::timeout(after, self.inner.flush()).await;
                Err(killed())
            }
            _ => self.inner.flush().await,
        }
    }

    async fn commit(self: Box<Self>) -> Result<CommitReport> {
        match self.kill {
            Kill::DuringCommit(after) => {
                let _ = tokio::time::timeout(after, self.inner.commit()).await;
                Err(killed())
            }
            _ => self.inner.commit().await,
        }
    }

    fn resume_record(&self) -> Option<Value> {
        self.inner.resume_record()
    }

    async fn resume(&mut self, record: Value) -> Result<()> {
        self.inner.resume(record).await
    }

    fn needs_sent_marks(&self) -> bool {
        self.inner.needs_sent_marks()
    }

    async fn write_replay(&mut self, batch: RecordBatch, partition: Option<&str>) -> Result<()> {
        self.inner.write_replay(batch, partition).await
    }

    async fn suspend(self: Box<Self>) -> Result<AbortReport> {
        self.die().await
    }

    async fn abort(self: Box<Self>) -> Result<AbortReport> {
        self.die().await
    }
}

/// `partitions` × `batches` batches of `rows` rows (`id`, 16-dim `vector`, `score`, `flag`;
/// Milvus 2.3 has no nullable fields), ids 0.. without gaps.
fn source(partitions: usize, batches: usize, rows: usize) -> MockSource {
    let mut id = 0i64;
    let parts = (0..partitions)
        .map(|_| {
            (0..batches)
                .map(|_| {
                    let b = sample_batch(13, id, rows, 16)
                        .project(&[0, 1, 3, 4])
                        .unwrap();
                    id += rows as i64;
                    b
                })
                .collect()
        })
        .collect();
    let schema = sample_batch(13, 0, 1, 16)
        .project(&[0, 1, 3, 4])
        .unwrap()
        .schema();
    MockSource {
        schema,
        partitions: parts,
        fail_at: None,
        target_partitions: Vec::new(),
    }
}

fn all_rows(src: &MockSource) -> RecordBatch {
    let batches: Vec<RecordBatch> = src.partitions.iter().flatten().cloned().collect();
    concat_batches(&src.schema, &batches).unwrap()
}

struct Env {
    server: MilvusServer,
    stage: String,
    client: MilvusClient,
}

async fn env() -> Option<Env> {
    let server = milvus()?;
    let mut o = ConnectOptions::new(server.uri.clone());
    o.user = Some(server.user.clone());
    o.password = Some(server.password.clone());
    let client = MilvusClient::connect(&o).await.unwrap();
    Some(Env {
        stage: std::env::var("VMIG_MILVUS_STAGE").unwrap_or_else(|_| "/tmp/vmig-stage".into()),
        server,
        client,
    })
}

impl Env {
    fn config(&self, collection: &str, extra: Value) -> Value {
        let mut v = json!({
            "uri": self.server.uri,
            "user": self.server.user,
            "password": self.server.password,
            "collection": collection,
            "index": { "type": "FLAT", "metric": "L2" },
            "load": true,
        });
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    }
}

fn options() -> PipelineOptions {
    PipelineOptions {
        flush_rows: Some(100),
        concurrency: NonZeroUsize::new(2).unwrap(),
        ..PipelineOptions::default()
    }
}

/// One run of `src` into the sink of `config` with checkpoints in `store`.
async fn run(
    src: &MockSource,
    config: &Value,
    store: Arc<dyn CheckpointStore>,
    job: &JobFingerprint,
    (kill, land): (Kill, bool),
    observer: Arc<dyn Observer>,
    customize: impl FnOnce(Pipeline) -> Pipeline,
) -> Result<RunReport> {
    let sink = parse_sink("milvus2", config.clone())?
        .build(&BuildContext::default())
        .await?;
    let sink: Box<dyn Sink> = match kill {
        Kill::Never => sink,
        _ => Box::new(Killable {
            inner: sink,
            kill,
            land,
            flushes: 0,
        }),
    };
    let p = Pipeline::new(Box::new(src.clone()), sink)
        .with_options(options())
        .with_checkpoints(store, job.clone());
    customize(p).run(observer).await
}

/// Reads `collection` back (it must be loaded) in primary-key order.
async fn read_back(client: &MilvusClient, collection: &str) -> RecordBatch {
    let info = client.describe_collection(collection).await.unwrap();
    let pages = vmig_milvus::scan::read_collection(client, collection, None, &[], 1000)
        .await
        .unwrap();
    concat_batches(&info.arrow, &pages).unwrap()
}

fn sorted_by(batch: &RecordBatch, column: &str) -> RecordBatch {
    let order = sort_to_indices(batch.column_by_name(column).unwrap(), None, None).unwrap();
    take_record_batch(batch, &order).unwrap()
}

/// The collection holds exactly the rows of `want`: as many rows (`count(*)`, which counts
/// rows of the same primary key apart — a query returns only one of them), the same ids, vectors
/// bit for bit, scores bit for bit, flags.
async fn assert_exactly_once(
    client: &MilvusClient,
    collection: &str,
    want: &RecordBatch,
    what: &str,
) {
    assert_eq!(
        client.count(collection).await.unwrap(),
        want.num_rows() as u64,
        "{what}: count(*)"
    );
    let got = read_back(client, collection).await;
    let want = sorted_by(want, "id");
    let got_ids = got
        .column_by_name("id")
        .unwrap()
        .as_primitive::<Int64Type>();
    let mut seen = std::collections::HashSet::new();
    let dups: Vec<i64> = got_ids
        .values()
        .iter()
        .copied()
        .filter(|id| !seen.insert(*id))
        .collect();
    assert!(
        dups.is_empty(),
        "{what}: ids twice in the collection: {dups:?}"
    );
    assert_eq!(got.num_rows(), want.num_rows(), "{what}: row count");
    assert_eq!(
        got_ids.values(),
        want.column_by_name("id")
            .unwrap()
            .as_primitive::<Int64Type>()
            .values(),
        "{what}: ids"
    );
    assert_eq!(
        float_bits(&got, "vector"),
        float_bits(&want, "vector"),
        "{what}: vectors"
    );
    assert_eq!(
        float_bits(&got, "score"),
        float_bits(&want, "score"),
        "{what}: scores"
    );
    assert_eq!(
        got.column_by_name("flag").unwrap().as_ref(),
        want.column_by_name("flag").unwrap().as_ref(),
        "{what}: flags"
    );
}

/// A killed run: its checkpoint and what it takes to resume it.
struct Killed {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    job: JobFingerprint,
    config: Value,
    /// The sink record of the checkpoint the killed run left.
    record: Option<Value>,
}

impl Killed {
    /// Resumes with a fresh sink from the saved checkpoint.
    async fn resume(&self, src: &MockSource) -> Result<RunReport> {
        run(
            src,
            &self.config,
            Arc::new(FileCheckpointStore::new(&self.path)),
            &self.job,
            (Kill::Never, false),
            Arc::new(NoProgress),
            |p| p,
        )
        .await
    }
}

/// Runs `src` into collection `name` (sink options `extra`) with checkpoints in a new file,
/// killed at checkpoint save `kill_at` (1-based) or as `kill` says; `land`: the killed sink's
/// requests in flight are answered before it dies.
async fn kill(
    env: &Env,
    src: &MockSource,
    name: &str,
    extra: Value,
    kill_at: usize,
    kill: Kill,
    land: bool,
) -> Killed {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ck.json");
    let job = JobFingerprint::of(&json!({ "test": name }));
    let config = env.config(name, extra);
    let store = Arc::new(DiesAt::new(&path, kill_at));
    let first = run(
        src,
        &config,
        store,
        &job,
        (kill, land),
        Arc::new(NoProgress),
        |p| p,
    )
    .await;
    assert!(
        first.is_err(),
        "{name}: the run was not killed (kill at save {kill_at}, {kill:?})"
    );
    let saved = FileCheckpointStore::new(&path).load().await.unwrap();
    let record = saved.as_ref().and_then(|c| c.sink().cloned());
    if let Some(r) = &record {
        assert!(
            !r.to_string().contains(&env.server.password),
            "the record holds the password: {r}"
        );
    }
    Killed {
        _dir: dir,
        path,
        job,
        config,
        record,
    }
}

/// [`kill`] of an insert run (one request per batch) at save `kill_at`, its last request
/// landing.
async fn insert_killed_at(env: &Env, src: &MockSource, name: &str, kill_at: usize) -> Killed {
    let extra = json!({ "batch_bytes": "4KiB" });
    kill(env, src, name, extra, kill_at, Kill::AtSave, true).await
}

/// Creates collection `name` holding the rows of `src` (a run without checkpoints): a
/// collection that exists before the run under test.
async fn fill(env: &Env, name: &str, src: MockSource) {
    Pipeline::new(
        Box::new(src),
        parse_sink("milvus2", env.config(name, json!({})))
            .unwrap()
            .build(&BuildContext::default())
            .await
            .unwrap(),
    )
    .run(Arc::new(NoProgress))
    .await
    .unwrap();
}

/// Names of the collections that start with `prefix`.
async fn collections_starting(client: &MilvusClient, prefix: &str) -> Vec<String> {
    let r = client
        .grpc()
        .show_collections(vmig_milvus::proto::milvus::ShowCollectionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    r.collection_names
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// Drops every collection whose name starts with `prefix` (a test's own, by its unique name).
async fn drop_all(client: &MilvusClient, prefix: &str) {
    for c in collections_starting(client, prefix).await {
        let _ = client.drop_collection(&c).await;
    }
}

/// For each save number of `kills`, kills a run of `mode` (`batch_bytes = "4KiB"`: one request
/// per batch) of `src` at that save — the request in flight landing when `land(kill_at)` —
/// resumes it, checks the collection holds every row of `src` exactly once, and gives the kill
/// and what it left (the sink record, the resumed run's report) to `check`.
async fn kill_at_each_save(
    env: &Env,
    src: &MockSource,
    mode: &str,
    kills: &[usize],
    land: fn(usize) -> bool,
    check: impl Fn(usize, &str, &str, Option<&Value>, RunReport),
) {
    let want = all_rows(src);
    for &kill_at in kills {
        let name = unique(&format!("resume_{mode}_{kill_at}"));
        let land = land(kill_at);
        let what = format!("{mode}, kill at save {kill_at}, land {land}");
        let extra = json!({ "mode": mode, "batch_bytes": "4KiB" });
        let killed = kill(env, src, &name, extra, kill_at, Kill::AtSave, land).await;
        let report = killed
            .resume(src)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_exactly_once(&env.client, &name, &want, &what).await;
        check(kill_at, &name, &what, killed.record.as_ref(), report);
        drop_all(&env.client, &name).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_killed_at_any_save_resumes_exactly_once() {
    let Some(env) = env().await else { return };
    // 3 partitions × 4 batches × 50 rows; one request per batch (4KiB), a flush every 100
    // rows. Save 1 is the sink's record right after `prepare` (the collection it will create
    // with the first rows), saves 2–4 come before the first flush (sent marks), the others
    // between writes and after flushes.
    let check =
        |kill_at: usize, name: &str, what: &str, record: Option<&Value>, report: RunReport| {
            if kill_at > 1 {
                let resumed = report
                    .resumed
                    .unwrap_or_else(|| panic!("{what}: not resumed"));
                assert_eq!(
                    resumed.rows_replayed > 0,
                    kill_at > 2,
                    "{what}: {resumed:?}"
                );
            }
            let Some(r) = record else {
                assert_eq!(kill_at, 1, "{what}: no sink record");
                return;
            };
            assert_eq!(r["version"], 1, "{r}");
            assert_eq!(r["mode"], "insert", "{r}");
            assert_eq!(r["collection"], name, "{r}");
            assert_eq!(r["created"], true, "{r}");
            assert_eq!(r["ids"], "kept", "{r}");
            assert!(
                r.get("bulk").is_none() && r.get("replaces").is_none(),
                "{r}"
            );
            if kill_at <= 4 {
                // The record of `prepare`: the collection is still to be created.
                assert_eq!(
                    (&r["exists"], &r["rows"]),
                    (&json!(false), &json!(0)),
                    "{r}"
                );
            } else {
                assert_eq!(r["exists"], true, "{r}");
                assert!(r["rows"].as_u64().unwrap() >= 100, "{r}");
            }
        };
    let src = source(3, 4, 50);
    let kills = [1, 2, 3, 4, 6, 9, 13, 18];
    kill_at_each_save(&env, &src, "insert", &kills, |k| k % 2 == 0, check).await;
}

/// `if_exists = "drop"` over an existing collection: the run writes into a replacement named
/// for it, which the record names; the resumed run continues into it and swaps it in at
/// commit. The collection that existed stays untouched until then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_replacing_a_collection_resumes_into_its_replacement() {
    let Some(env) = env().await else { return };
    let src = source(2, 4, 50);
    let want = all_rows(&src);
    let old = source(1, 1, 30);
    for kill_at in [5, 9] {
        let name = unique(&format!("resume_drop_{kill_at}"));
        let what = format!("if_exists = drop, kill at save {kill_at}");
        // The collection that exists before: 30 rows of other ids.
        let mut old_rows = all_rows(&old);
        let ids: arrow::array::Int64Array = (0..30).map(|i| Some(10_000 + i)).collect();
        let mut cols = old_rows.columns().to_vec();
        cols[0] = Arc::new(ids);
        old_rows = RecordBatch::try_new(old_rows.schema(), cols).unwrap();
        let old_src = MockSource {
            partitions: vec![vec![old_rows.clone()]],
            ..old.clone()
        };
        fill(&env, &name, old_src).await;
        let extra = json!({ "batch_bytes": "4KiB", "if_exists": "drop" });
        let killed = kill(&env, &src, &name, extra, kill_at, Kill::AtSave, true).await;
        let r = killed.record.clone().unwrap();
        let replacement = r["collection"].as_str().unwrap().to_string();
        assert!(replacement.starts_with(&format!("{name}__vmig_")), "{r}");
        assert_eq!(r["replaces"], name.as_str(), "{r}");
        assert_eq!(r["created"], true, "{r}");
        // Until the resumed run completes, the old collection is as it was.
        assert_exactly_once(
            &env.client,
            &name,
            &old_rows,
            &format!("{what}: the old collection"),
        )
        .await;
        killed
            .resume(&src)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_exactly_once(&env.client, &name, &want, &what).await;
        assert_eq!(
            collections_starting(&env.client, &format!("{name}__vmig_")).await,
            Vec::<String>::new(),
            "{what}: the replacement was renamed"
        );
        drop_all(&env.client, &name).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_killed_at_any_save_resumes_exactly_once() {
    let Some(env) = env().await else { return };
    // Upserts are idempotent, but record sent marks too: save 1 is the record of `prepare`,
    // saves 2-4 come before the first flush.
    let check = |kill_at: usize, _: &str, what: &str, record: Option<&Value>, report: RunReport| {
        if kill_at > 1 {
            assert!(report.resumed.is_some(), "{what}: not resumed");
        }
        if let Some(r) = record {
            let got = (
                r["mode"].as_str(),
                r["ids"].as_str(),
                r["created"].as_bool(),
            );
            assert_eq!(got, (Some("upsert"), Some("kept"), Some(true)), "{r}");
        }
    };
    let src = source(3, 4, 50);
    kill_at_each_save(&env, &src, "upsert", &[1, 2, 3, 6, 10], |_| true, check).await;
}

/// The run directories `vmig-<collection>-<run id>` of `collection` in the local stage.
fn stage_dirs(stage: &str, collection: &str) -> Vec<std::path::PathBuf> {
    let prefix = format!("vmig-{collection}-");
    std::fs::read_dir(stage)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// No staged file was imported twice: per file set Milvus lists at most one completed task,
/// and the completed tasks imported every row once.
async fn assert_each_file_imported_once(
    client: &MilvusClient,
    collection: &str,
    rows: u64,
    what: &str,
) {
    let tasks = client.list_import_tasks(collection).await.unwrap();
    let mut completed: std::collections::BTreeMap<String, u32> = Default::default();
    let mut imported = 0u64;
    for t in &tasks {
        if t.state == vmig_milvus::proto::common::ImportState::ImportCompleted {
            *completed.entry(t.files.clone()).or_default() += 1;
            imported += t.row_count.max(0) as u64;
        }
    }
    let twice: Vec<_> = completed.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "{what}: files imported twice: {twice:?}");
    assert_eq!(
        imported, rows,
        "{what}: rows of the completed imports ({tasks:?})"
    );
}

/// Bulk: killed before a checkpoint, before an import was submitted, during one, after one
/// completed, and during the commit's imports; the resumed run imports every staged file
/// exactly once and leaves no staging file behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_killed_around_imports_imports_every_file_once() {
    let Some(env) = env().await else { return };
    let src = source(2, 3, 50);
    let want = all_rows(&src);
    let cases = [
        ("first_save", 1, Kill::AtSave),
        ("before_import", usize::MAX, Kill::BeforeFlush(2)),
        (
            "during_import",
            usize::MAX,
            Kill::DuringFlush(2, Duration::from_millis(700)),
        ),
        // Save 1 is the record of `prepare` (the run's stage directory, nothing staged).
        ("after_prepare", 2, Kill::AtSave),
        ("after_import", 3, Kill::AtSave),
        (
            "during_commit",
            usize::MAX,
            Kill::DuringCommit(Duration::from_millis(700)),
        ),
    ];
    for (case, kill_at, how) in cases {
        let name = unique(&format!("resume_bulk_{case}"));
        let what = format!("bulk, killed {case}");
        let extra = json!({ "mode": "bulk", "stage": env.stage, "max_file_size": "64KiB" });
        let killed = kill(&env, &src, &name, extra, kill_at, how, false).await;
        let dirs = stage_dirs(&env.stage, &name);
        assert_eq!(dirs.len(), 1, "{what}: {dirs:?}");
        match &killed.record {
            None => {
                // Killed before the first checkpoint: nothing was imported, and the collection
                // (created with the first import) does not exist; the next run starts afresh.
                assert_eq!(case, "first_save");
                assert!(!env.client.has_collection(&name).await.unwrap(), "{what}");
            }
            Some(r) => {
                let bulk = &r["bulk"];
                let run = bulk["run"].as_str().unwrap();
                assert!(dirs[0].ends_with(run), "{what}: {r}");
                assert!(run.starts_with(&format!("vmig-{name}-")), "{what}: {r}");
                assert_eq!(bulk["attempt"], 1, "{what}: {r}");
                let staged = bulk["staged"].as_array().unwrap();
                assert_eq!(
                    staged.is_empty(),
                    ["during_commit", "after_prepare"].contains(&case),
                    "{what}: {r}"
                );
                for f in staged {
                    let path = f["paths"][0].as_str().unwrap();
                    assert!(path.starts_with(dirs[0].to_str().unwrap()), "{what}: {r}");
                    assert!(
                        path.ends_with(".parquet") && f["rows"].as_u64() > Some(0),
                        "{r}"
                    );
                }
            }
        }
        killed
            .resume(&src)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_exactly_once(&env.client, &name, &want, &what).await;
        assert_each_file_imported_once(&env.client, &name, want.num_rows() as u64, &what).await;
        let left = stage_dirs(&env.stage, &name);
        if case == "first_save" {
            // The killed run's directory: no checkpoint names it, so no later run knows it.
            assert_eq!(left, dirs, "{what}");
            std::fs::remove_dir_all(&dirs[0]).unwrap();
        } else {
            assert_eq!(
                left,
                Vec::<std::path::PathBuf>::new(),
                "{what}: staging files left"
            );
        }
        drop_all(&env.client, &name).await;
    }
}

/// Stops the run once `at` rows were handed to the sink (as Ctrl-C would).
struct StopAfter {
    written: AtomicU64,
    at: u64,
    stop: vmig_core::SourceContext,
}

impl Observer for StopAfter {
    fn written(&self, rows: u64) {
        if self.written.fetch_add(rows, Ordering::SeqCst) + rows >= self.at {
            self.stop.cancel.cancel();
        }
    }
}

/// Rows sorted by `score` (ids generated by Milvus differ from the source's).
fn by_score(b: &RecordBatch) -> RecordBatch {
    sorted_by(b, "score")
}

/// With ids generated by Milvus: a run stopped cleanly (flushed and saved, then suspended)
/// resumes; a killed one whose sent rows may be in the collection is refused with the reason
/// and what to do, before anything is written again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_id_resumes_after_a_clean_stop_and_refuses_after_a_kill() {
    let Some(env) = env().await else { return };
    let src = source(3, 4, 50);
    let want = all_rows(&src);
    let host = env
        .server
        .uri
        .split("://")
        .nth(1)
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let extra = json!({ "batch_bytes": "4KiB", "auto_id": true });

    // Killed after its sent rows landed: refused.
    let name = unique("resume_autoid_kill");
    let killed = kill(&env, &src, &name, extra.clone(), 3, Kill::AtSave, true).await;
    // Count what the killed run left (queries need an index and a loaded collection).
    let params = json!({});
    env.client
        .create_index(&name, "vector", "FLAT", "L2", &params)
        .await
        .unwrap();
    env.client
        .load(&name, Duration::from_secs(120))
        .await
        .unwrap();
    let before = env.client.count(&name).await.unwrap();
    assert!(before > 0, "the killed run's rows landed");
    let err = killed.resume(&src).await.unwrap_err().to_string();
    // Partitions without rows to send again may have written before the first replay came.
    let (head, tail) = (
        format!(
            "writing to the sink: unsupported input at collection `{name}`: rows the interrupted run sent here after its last checkpoint may be in the collection already, and with ids generated by Milvus (`auto_id = true`, or the source's `vmig.auto_id`) vmig cannot tell them from new rows, so sending them again may duplicate them. Start over with `vmig migrate --restart` (with `if_exists = \"drop\"` or a new collection), or keep the source's ids\nLeft in the target: The collection milvus://{host}/default/{name} was created by this job and holds "
        ),
        " of its rows. It is kept, but rows sent after the last checkpoint have ids generated by Milvus and cannot be told apart if sent again, so this job cannot be resumed without duplicates: start over with `vmig migrate --restart` (with `if_exists = \"drop\"` or a new collection).",
    );
    let written: u64 = err
        .strip_prefix(&head)
        .and_then(|r| r.strip_suffix(tail))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    // No row of a replay was written.
    assert_eq!(env.client.count(&name).await.unwrap(), before + written);

    drop_all(&env.client, &name).await;

    // Stopped cleanly: the stop flushes and saves, so nothing is sent twice.
    let name = unique("resume_autoid_stop");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ck.json");
    let job = JobFingerprint::of(&json!({ "test": name }));
    let config = env.config(&name, extra);
    let stopper = Arc::new(StopAfter {
        written: AtomicU64::new(0),
        at: 200,
        stop: vmig_core::SourceContext::default(),
    });
    let token = stopper.stop.cancel.clone();
    let store = Arc::new(FileCheckpointStore::new(&path));
    let err = run(
        &src,
        &config,
        store.clone(),
        &job,
        (Kill::Never, false),
        stopper,
        |p| p.with_cancel(token),
    )
    .await
    .unwrap_err()
    .to_string();
    let (head, tail) = (
        format!("cancelled\nLeft in the target: The collection milvus://{host}/default/{name} was created by this job and holds "),
        " of its rows. It is kept. Run `vmig migrate` on the same job again to resume from the last checkpoint (with ids generated by Milvus, a run that must send rows again refuses; `vmig migrate --restart` starts over).",
    );
    let held: u64 = err
        .strip_prefix(&head)
        .and_then(|r| r.strip_suffix(tail))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    assert!(held >= 200, "{held}");
    let report = run(
        &src,
        &config,
        store,
        &job,
        (Kill::Never, false),
        Arc::new(NoProgress),
        |p| p,
    )
    .await
    .unwrap();
    let resumed = report.resumed.unwrap();
    assert_eq!((resumed.rows_written, resumed.rows_replayed), (held, 0));
    // Every row once: as many rows, no id twice, and the same vectors and scalars.
    assert_eq!(
        env.client.count(&name).await.unwrap(),
        want.num_rows() as u64
    );
    let got = read_back(&env.client, &name).await;
    let ids = got
        .column_by_name("id")
        .unwrap()
        .as_primitive::<Int64Type>();
    let distinct: std::collections::HashSet<i64> = ids.values().iter().copied().collect();
    assert_eq!(distinct.len(), want.num_rows());
    let (got, want) = (by_score(&got), by_score(&want));
    assert_eq!(float_bits(&got, "score"), float_bits(&want, "score"));
    assert_eq!(float_bits(&got, "vector"), float_bits(&want, "vector"));
    assert_eq!(
        got.column_by_name("flag").unwrap().as_ref(),
        want.column_by_name("flag").unwrap().as_ref()
    );
    drop_all(&env.client, &name).await;
}

/// A resumed run checks the collection it continues: gone, or with another schema, it is
/// refused naming what changed; a record of another mode is refused too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_refuses_a_collection_that_is_gone_or_changed() {
    let Some(env) = env().await else { return };
    let src = source(2, 4, 50);
    let extra = json!({ "batch_bytes": "4KiB" });

    let name = unique("resume_gone");
    let killed = kill(&env, &src, &name, extra.clone(), 8, Kill::AtSave, false).await;
    assert!(killed.record.is_some());
    env.client.drop_collection(&name).await.unwrap();
    let err = killed.resume(&src).await.unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "resuming the sink: invalid data at {}/{name}: the collection `{name}` that the interrupted run wrote into no longer exists, so the rows it held are gone; start over with `vmig migrate --restart`",
            env.client.uri(),
        )
    );
    assert!(!env.client.has_collection(&name).await.unwrap());
    drop_all(&env.client, &name).await;

    let name = unique("resume_changed");
    let killed = kill(&env, &src, &name, extra, 8, Kill::AtSave, false).await;
    env.client.drop_collection(&name).await.unwrap();
    // Recreated by someone else with 8-dimensional vectors and without `flag`.
    let other = sample_batch(1, 0, 1, 8)
        .project(&[0, 1, 3])
        .unwrap()
        .schema();
    let opts = vmig_milvus::SchemaOptions {
        collection: name.clone(),
        description: String::new(),
        primary_key: None,
        auto_id: false,
        varchar_max_length: None,
        dynamic_field: false,
    };
    let cs = vmig_milvus::collection_schema(&other, &opts).unwrap();
    env.client
        .create_collection(&cs, 1, vmig_milvus::Consistency::Bounded)
        .await
        .unwrap();
    let err = killed.resume(&src).await.unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "preparing the sink: schema error: the collection `{name}` that the interrupted run wrote into no longer fits the data: vector `vector` has dimension 8 there, 16 in the data; field `flag` is missing; start over with `vmig migrate --restart`\nLeft in the target: "
        )),
        "{err}"
    );
    assert_eq!(env.client.count(&name).await.unwrap_or(0), 0);
    drop_all(&env.client, &name).await;

    // A record of another mode (the job's `mode` changed).
    let config: vmig_sink_milvus2::Milvus2SinkConfig =
        serde_json::from_value(env.config(&name, json!({ "mode": "upsert" }))).unwrap();
    let mut sink = vmig_sink_milvus2::Milvus2Sink::new(config, env.client.clone()).unwrap();
    let record = killed.record.clone().unwrap();
    let err = sink.resume(record).await.unwrap_err().to_string();
    assert_eq!(
        err,
        "invalid `milvus2` configuration: the interrupted run wrote by `mode = \"insert\"`, this job says `mode = \"upsert\"`; resume with the mode it started with, or start over with `vmig migrate --restart`"
    );
}

/// `vmig migrate --restart` of an unfinished run resumes a fresh sink from its record and
/// aborts it before `prepare`: what the interrupted run created goes (its collection, its
/// replacement of an existing one, its staged files), and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_after_resume_removes_what_the_interrupted_run_created() {
    let Some(env) = env().await else { return };
    let src = source(2, 4, 50);
    let uri = env.client.uri().to_string();
    let discard = |config: Value, record: Value| async move {
        let mut sink = parse_sink("milvus2", config)
            .unwrap()
            .build(&BuildContext::default())
            .await
            .unwrap();
        sink.resume(record).await.unwrap();
        sink.abort().await.unwrap().left
    };

    // Insert into a collection the run created: dropped with its rows.
    let name = unique("restart_ins");
    let killed = insert_killed_at(&env, &src, &name, 8).await;
    let record = killed.record.clone().unwrap();
    let rows = record["rows"].as_u64().unwrap();
    assert!(rows > 0, "{record}");
    assert_eq!(
        discard(killed.config.clone(), record).await,
        vec![format!(
            "The collection `{name}` at {uri} that the earlier run created was dropped, with the {rows} rows it held."
        )]
    );
    assert!(!env.client.has_collection(&name).await.unwrap());

    // Insert killed after the record of `prepare` and a sent mark, before the first flush:
    // the record says the run was to create the collection. Created after the record (the
    // server's creation time says so), it is the run's and is dropped; with the record's time
    // moved a minute past the creation — a collection there before the record was taken
    // (someone else's, or made between the run's check and its record) — it is not proven the
    // run's, so it stays.
    for (case, later) in [("restart_early", 0), ("restart_early_other", 60)] {
        let name = unique(case);
        let killed = insert_killed_at(&env, &src, &name, 3).await;
        let mut record = killed.record.clone().unwrap();
        assert_eq!(record["exists"], false, "{record}");
        record["taken_at"] = json!(record["taken_at"].as_u64().unwrap() + later);
        assert!(env.client.has_collection(&name).await.unwrap());
        let left = discard(killed.config.clone(), record).await;
        if later == 0 {
            assert_eq!(
                left,
                vec![format!(
                    "The collection `{name}` at {uri}, which the earlier run created after its last checkpoint, was dropped with the rows it held."
                )]
            );
            assert!(!env.client.has_collection(&name).await.unwrap());
        } else {
            assert_eq!(left.len(), 1, "{left:?}");
            assert!(
                left[0].starts_with(&format!(
                    "A collection `{name}` exists at {uri}; the earlier run had not created it at its last checkpoint"
                )),
                "{left:?}"
            );
            assert!(env.client.has_collection(&name).await.unwrap());
            drop_all(&env.client, &name).await;
        }
    }

    // A replacement of an existing collection: the replacement goes, the old one stays.
    let name = unique("restart_drop");
    let old = source(1, 1, 30);
    let old_rows = all_rows(&old);
    fill(&env, &name, old.clone()).await;
    // The source's ids 0..400 cover the old rows' 0..30: the old collection is told apart by
    // its row count.
    let extra = json!({ "batch_bytes": "4KiB", "if_exists": "drop" });
    let killed = kill(&env, &src, &name, extra, 6, Kill::AtSave, true).await;
    let record = killed.record.clone().unwrap();
    let replacement = record["collection"].as_str().unwrap().to_string();
    assert!(env.client.has_collection(&replacement).await.unwrap());
    assert_eq!(
        discard(killed.config.clone(), record).await,
        vec![format!(
            "The collection `{replacement}` that the earlier run created to replace `{name}` was dropped; `{name}` is as it was."
        )]
    );
    assert!(!env.client.has_collection(&replacement).await.unwrap());
    assert_exactly_once(&env.client, &name, &old_rows, "the replaced collection").await;
    drop_all(&env.client, &name).await;

    // Bulk killed before its first import: the staged files go; no collection was created.
    let name = unique("restart_bulk");
    let extra = json!({ "mode": "bulk", "stage": env.stage, "max_file_size": "64KiB" });
    let killed = kill(
        &env,
        &src,
        &name,
        extra,
        usize::MAX,
        Kill::BeforeFlush(2),
        false,
    )
    .await;
    let record = killed.record.clone().unwrap();
    let staged = record["bulk"]["staged"].as_array().unwrap();
    let (files, rows) = (
        staged.len(),
        staged
            .iter()
            .map(|f| f["rows"].as_u64().unwrap())
            .sum::<u64>(),
    );
    assert!(files > 0, "{record}");
    let dirs = stage_dirs(&env.stage, &name);
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    assert_eq!(
        discard(killed.config.clone(), record).await,
        vec![
            format!(
                "The earlier run's {files} staged files ({rows} rows) that were not imported were removed from {}.",
                dirs[0].display()
            ),
            format!(
                "The collection `{name}` that the earlier run was to create does not exist at {uri}; nothing to drop."
            ),
        ]
    );
    assert_eq!(
        stage_dirs(&env.stage, &name),
        Vec::<std::path::PathBuf>::new()
    );
    assert!(!env.client.has_collection(&name).await.unwrap());
}
