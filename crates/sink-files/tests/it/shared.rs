//! A job shared between workers (#13, docs/scale-out.md), driven through the `Sink` calls the
//! runner makes: one worker sets the target up (`create_shared`), the others join from the
//! record it published, every worker writes its own tagged units, one worker dies with
//! unrecorded and unfinished units, another takes its rows over, and the finishing worker lists
//! every worker's recorded units in one manifest (`commit_shared`). The runner and the state
//! store around these calls are tested in vmig-state's and the CLI's worker tests.

use serde_json::Value;

use super::resume::{files_under, lock_of, manifest_files};
use super::*;

/// The worker tag in the names of the units `record` lists (one tag per worker).
fn tag_of(record: &Value) -> String {
    let units = record["units"].as_array().unwrap();
    let tags: BTreeSet<String> = units
        .iter()
        .map(|u| {
            let name = u["path"].as_str().unwrap().rsplit('/').next().unwrap();
            name.split('-').nth(1).unwrap().to_string()
        })
        .collect();
    assert_eq!(tags.len(), 1, "{record}");
    tags.into_iter().next().unwrap()
}

/// The worker that sets a shared job up: prepared, `create_shared` done; with the record it
/// publishes and the run's id.
async fn set_up(cfg: &FilesSinkConfig) -> (Box<dyn Sink>, Value, String) {
    let mut sink = open(cfg, &schema()).await.unwrap();
    sink.create_shared().await.unwrap();
    let published = sink.resume_record().unwrap();
    let run = published["run_id"].as_str().unwrap().to_string();
    (sink, published, run)
}

/// A shared Parquet job in `<tmp>/out`: the setup worker, and a worker that joined and
/// flushed one unit of 10 rows (ids 0..10); with the target, its config and the run's id.
async fn two_workers_one_unit(
    tmp: &Path,
) -> (
    PathBuf,
    FilesSinkConfig,
    Box<dyn Sink>,
    Box<dyn Sink>,
    String,
) {
    let out = tmp.join("out");
    let cfg = config(&out, StagingFormat::Parquet);
    let (a, published, run) = set_up(&cfg).await;
    let mut b = join(&cfg, &published).await;
    write(&mut b, &[batch(0, 10)], None).await;
    b.flush().await.unwrap();
    (out, cfg, a, b, run)
}

/// A worker that joins the shared job of `record`.
async fn join(cfg: &FilesSinkConfig, record: &Value) -> Box<dyn Sink> {
    let mut sink = cfg.build(&BuildContext::default()).await.unwrap();
    sink.resume(record.clone()).await.unwrap();
    sink.prepare(&schema()).await.unwrap();
    sink
}

async fn write(sink: &mut Box<dyn Sink>, batches: &[RecordBatch], partition: Option<&str>) {
    for b in batches {
        sink.write(b.clone(), partition).await.unwrap();
    }
}

#[tokio::test]
async fn three_workers_one_dead_give_one_manifest_of_every_recorded_unit() {
    for format in [StagingFormat::Parquet, StagingFormat::Numpy] {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let cfg = config(&out, format);

        // Worker A sets the job up; the lock becomes the job's, and the record says so.
        let (mut a, published, run) = set_up(&cfg).await;
        assert_eq!(published["shared"], true, "{published}");
        assert_eq!(published["units"], serde_json::json!([]));
        let lock = lock_of(&out);
        assert_eq!(
            (&lock["shared"], &lock["flushed"]),
            (&true.into(), &true.into())
        );

        let mut b = join(&cfg, &published).await;
        let mut c = join(&cfg, &published).await;

        // A: rows 0..100; B: 100..250 at the top and 1000..1040 in folder p1; C: 300..400
        // recorded, then 400..500 flushed but never recorded (killed before the checkpoint
        // was saved) and 500..530 in an open unit.
        let a_rows = [batch(0, 60), batch(60, 40)];
        write(&mut a, &a_rows, None).await;
        a.flush().await.unwrap();
        let b_top = [batch(100, 100), batch(200, 50)];
        let b_p1 = [batch(1000, 40)];
        write(&mut b, &b_top[..1], None).await;
        b.flush().await.unwrap();
        write(&mut b, &b_top[1..], None).await;
        write(&mut b, &b_p1, Some("p1")).await;
        b.flush().await.unwrap();
        let b_record = b.resume_record().unwrap();
        let c_rows = [batch(300, 100)];
        write(&mut c, &c_rows, None).await;
        c.flush().await.unwrap();
        let c_record = c.resume_record().unwrap();
        write(&mut c, &[batch(400, 100)], None).await;
        c.flush().await.unwrap();
        write(&mut c, &[batch(500, 30)], None).await;
        drop(c); // as if killed: its lock (none), files and open unit stay

        // Three workers, three tags, every unit in the job's run directory.
        let run_dir = format!(".vmig-{run}/");
        let snap = snapshot(&out);
        let in_run = files_under(&snap, &run_dir);
        let (tag_a, tag_b, tag_c) = (
            tag_of(&a.resume_record().unwrap()),
            tag_of(&b_record),
            tag_of(&c_record),
        );
        assert!(tag_a != tag_b && tag_b != tag_c && tag_a != tag_c);
        for tag in [&tag_a, &tag_b, &tag_c] {
            assert!(
                in_run
                    .iter()
                    .any(|f| f.contains(&format!("part-{tag}-00000"))),
                "{in_run:?}"
            );
        }
        // C's unrecorded unit is there (it finished it) and so is its open one.
        assert!(
            in_run
                .iter()
                .any(|f| f.contains(&format!("part-{tag_c}-00001"))),
            "{in_run:?}"
        );
        assert!(
            snap.keys()
                .any(|k| k.starts_with(&format!("{run_dir}.part-{tag_c}-00002"))),
            "{:?}",
            snap.keys().collect::<Vec<_>>()
        );

        // A takes C's rows after its checkpoint over; B ends its part.
        let taken = [batch(400, 100), batch(500, 30)];
        write(&mut a, &taken, None).await;
        a.flush().await.unwrap();
        let a_record = a.resume_record().unwrap();
        let part = b.commit_part().await.unwrap();
        assert_eq!(part.rows, 190);
        assert_eq!(
            lock_of(&out)["run_id"],
            run,
            "the lock stays until the job ends"
        );

        // A finishes with every worker's record (its own too, as the store gives it).
        let report = a
            .commit_shared(vec![a_record, b_record, c_record])
            .await
            .unwrap();
        assert_eq!(report.rows, 100 + 130 + 150 + 40 + 100);

        // The output: every row once, in the tags' order at the top, and nothing else.
        let mut by_tag: BTreeMap<&String, Vec<RecordBatch>> = BTreeMap::new();
        by_tag.insert(&tag_a, a_rows.iter().chain(&taken).cloned().collect());
        by_tag.insert(&tag_b, b_top.to_vec());
        by_tag.insert(&tag_c, c_rows.to_vec());
        let want: Vec<RecordBatch> = by_tag.into_values().flatten().collect();
        let (top, counts) = read_dir(&out, format);
        assert!(
            top == expected(&want),
            "{format}: the top-level rows differ"
        );
        assert_eq!(counts.iter().sum::<usize>(), 480);
        let (p1, _) = read_dir(&out.join("p1"), format);
        assert!(p1 == expected(&b_p1), "{format}: the rows of p1 differ");
        let mut listed = manifest_files(&out);
        listed.sort();
        let present: Vec<String> = files_under(&snapshot(&out), "")
            .into_iter()
            .filter(|f| f != "manifest.json")
            .collect();
        assert_eq!(present, listed, "{format}: only the listed files remain");
        assert!(
            !listed
                .iter()
                .any(|f| f.contains(&format!("part-{tag_c}-00001"))),
            "{format}: the dead worker's unrecorded unit is not listed: {listed:?}"
        );
    }
}

/// A worker cannot join a shared job whose lock is gone, nor one whose lock is another run's;
/// a later run of another job into the target is refused while the shared job's lock is
/// there, even when the process that set it up is gone; a stopping worker keeps its flushed
/// units and removes its unflushed ones.
#[tokio::test]
async fn shared_runs_are_joined_only_through_their_lock_and_stop_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, cfg, a, mut b, run) = two_workers_one_unit(tmp.path()).await;
    let published = a.resume_record().unwrap();

    // A worker that stops: its flushed unit stays, its unflushed one goes.
    let kept = tag_of(&b.resume_record().unwrap());
    write(&mut b, &[batch(10, 10)], None).await;
    let report = b.suspend().await.unwrap();
    assert_eq!(
        report.left,
        [format!(
            "{}/.vmig-{run}/ holds 1 complete file (10 rows) of this worker and the other workers' files of this job shared between workers; `vmig migrate` with the same job (any worker) continues it, and the worker that finishes it writes one manifest listing them all.",
            out.display()
        )]
    );
    let in_run = files_under(&snapshot(&out), &format!(".vmig-{run}/"));
    assert_eq!(in_run, [format!("part-{kept}-00000.parquet")]);

    // The setup worker's process is gone (its sink dropped): the lock is the job's, so a run
    // of another job is refused, naming it.
    drop(a);
    let err = open(&cfg, &schema()).await.unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "is being written by another vmig run {run} (a job shared between workers, set up by pid {}",
            std::process::id()
        )),
        "{err}"
    );

    // Another run's lock, then no lock: joining is refused.
    let lock = out.join(".vmig.lock");
    let original = std::fs::read(&lock).unwrap();
    let other: Value = serde_json::from_slice(&original).unwrap();
    let mut other = other.as_object().unwrap().clone();
    other.insert("run_id".into(), "00000000000000ff".into());
    std::fs::write(&lock, serde_json::to_vec(&other).unwrap()).unwrap();
    let refused = || async {
        let mut sink = cfg.build(&BuildContext::default()).await.unwrap();
        sink.resume(published.clone())
            .await
            .unwrap_err()
            .to_string()
    };
    let err = refused().await;
    assert!(
        err.contains("is the lock of another vmig run 00000000000000ff (a job shared between workers, set up by pid") && err.contains(&format!("not of run {run} that this job's checkpoint continues")),
        "{err}"
    );
    std::fs::remove_file(&lock).unwrap();
    let err = refused().await;
    assert_eq!(
        err,
        format!(
            "invalid `files` configuration: cannot join run {run} of this job in {0}: {0}/.vmig.lock is gone or is no longer that shared run's, so its files cannot be trusted to be complete; start the job over (`vmig migrate --restart`)",
            out.display()
        )
    );
    // Nothing was removed by any of this.
    let in_run = files_under(&snapshot(&out), &format!(".vmig-{run}/"));
    assert_eq!(in_run, [format!("part-{kept}-00000.parquet")]);
}

/// The same on an object store (the real S3 server of `scripts/services`): two workers join
/// through the job's lock object, each uploads its tagged units below the run's prefix, one
/// dies with an unrecorded unit there, and the finisher's manifest lists the recorded units;
/// nothing is left below the run's prefix, and no lock.
#[tokio::test]
async fn s3_workers_share_a_job_through_the_lock_object() {
    let Some(s3) = vmig_testing::service::S3::from_env() else {
        return;
    };
    let prefix = unique_prefix("vmig-sink-files-shared");
    let url = format!("s3://{}/{prefix}/", s3.bucket);
    let mut cfg = FilesSinkConfig::new(&url, StagingFormat::Parquet);
    cfg.storage = s3.storage_options();
    let target = vmig_core::store::resolve(&url, &cfg.storage).unwrap();
    let store = target.store.clone();
    let keys = || async {
        let root = object_store::path::Path::from(prefix.as_str());
        let mut k: Vec<String> =
            futures::TryStreamExt::try_collect::<Vec<_>>(store.list(Some(&root)))
                .await
                .unwrap()
                .into_iter()
                .map(|o| o.location.to_string()[prefix.len() + 1..].to_string())
                .collect();
        k.sort();
        k
    };

    let (mut a, published, run) = set_up(&cfg).await;
    let mut b = join(&cfg, &published).await;
    write(&mut a, &[batch(0, 100)], None).await;
    a.flush().await.unwrap();
    write(&mut b, &[batch(100, 50)], None).await;
    b.flush().await.unwrap();
    let b_record = b.resume_record().unwrap();
    write(&mut b, &[batch(150, 50)], None).await;
    b.flush().await.unwrap(); // never recorded: b dies now
    let b_tag = tag_of(&b_record);
    drop(b);
    let staged = keys().await;
    assert!(
        staged.contains(&format!(".vmig-{run}/part-{b_tag}-00001.parquet")),
        "{staged:?}"
    );
    write(&mut a, &[batch(150, 50)], None).await;
    a.flush().await.unwrap();
    let a_record = a.resume_record().unwrap();
    let a_tag = tag_of(&a_record);
    let report = a.commit_shared(vec![a_record, b_record]).await.unwrap();
    assert_eq!(report.rows, 200);

    let mut want_files = vec![
        format!("part-{a_tag}-00000.parquet"),
        format!("part-{a_tag}-00001.parquet"),
        format!("part-{b_tag}-00000.parquet"),
    ];
    want_files.sort();
    let mut want_keys = want_files.clone();
    want_keys.push("manifest.json".into());
    want_keys.sort();
    assert_eq!(keys().await, want_keys);
    let mut t = Table::new();
    for f in &want_files {
        let data = store
            .get(&object_store::path::Path::from(format!("{prefix}/{f}")))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        read_parquet_bytes(data, &mut t);
    }
    let by_tag: BTreeMap<&String, Vec<RecordBatch>> = BTreeMap::from([
        (&a_tag, vec![batch(0, 100), batch(150, 50)]),
        (&b_tag, vec![batch(100, 50)]),
    ]);
    let want: Vec<RecordBatch> = by_tag.into_values().flatten().collect();
    assert!(t == expected(&want), "the rows differ");
    for f in want_files {
        store
            .delete(&object_store::path::Path::from(format!("{prefix}/{f}")))
            .await
            .unwrap();
    }
    store
        .delete(&object_store::path::Path::from(format!(
            "{prefix}/manifest.json"
        )))
        .await
        .unwrap();
}

/// A shared run is finished only by `commit_shared` (a plain `commit` would list one worker's
/// units and drop the rest with the run directory), and a run of one process cannot become a
/// shared one.
#[tokio::test]
async fn shared_and_single_process_runs_do_not_mix() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, _, a, b, run) = two_workers_one_unit(tmp.path()).await;
    let err = b.commit().await.unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "unsupported input at the shared run {run} in {}: its files are spread over the records of the job's workers, which only the worker that finishes the job gets: continue the job as a worker (`--worker` or `[state] lease`), or start it over with `--restart`",
            out.display()
        )
    );
    let left = files_under(&snapshot(&out), &format!(".vmig-{run}/"));
    assert_eq!(left.len(), 1, "the refused worker's unit stays: {left:?}");
    drop(a);

    // One process's run, stopped with a unit: workers cannot take it over.
    let out2 = tmp.path().join("out2");
    let cfg2 = config(&out2, StagingFormat::Parquet);
    let mut single = open(&cfg2, &schema()).await.unwrap();
    write(&mut single, &[batch(0, 10)], None).await;
    single.flush().await.unwrap();
    let record = single.resume_record().unwrap();
    single.suspend().await.unwrap();
    let mut setup = cfg2.build(&BuildContext::default()).await.unwrap();
    setup.resume(record.clone()).await.unwrap();
    setup.prepare(&schema()).await.unwrap();
    let err = setup.create_shared().await.unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "unsupported input at the run {} in {}: it was started by one process (without `[state] lease`), and its files cannot be shared with workers now: finish it the way it started (without `--worker` or `[state] lease`), or start the job over with `--restart`",
            record["run_id"].as_str().unwrap(),
            out2.display()
        )
    );
    setup.suspend().await.unwrap();
    assert_eq!(
        files_under(
            &snapshot(&out2),
            &format!(".vmig-{}/", record["run_id"].as_str().unwrap())
        ),
        ["part-00000.parquet"]
    );
}
