//! Resuming (#13): what `resume` keeps and removes, what it refuses, `suspend`, the stale-lock
//! rules for runs that hold resumable work, a commit interrupted after its manifest was staged,
//! the real pipeline with a checkpoint store, and `kill -9` at arbitrary instants.

use std::time::Duration;

use serde_json::Value;
use vmig_core::checkpoint::{CheckpointStore, FileCheckpointStore, JobFingerprint};
use vmig_core::pipeline::{NoProgress, Pipeline, PipelineOptions};
use vmig_testing::mock::MockSource;

use super::*;

fn record_run(record: &Value) -> String {
    record["run_id"].as_str().unwrap().to_string()
}

/// A sink of `cfg` that resumed `record` and is prepared.
async fn resumed(cfg: &FilesSinkConfig, record: &Value) -> vmig_core::Result<Box<dyn Sink>> {
    let mut sink = cfg.build(&BuildContext::default()).await?;
    sink.resume(record.clone()).await?;
    sink.prepare(&schema()).await?;
    Ok(sink)
}

/// Resuming `record` with a sink of `cfg` fails; the error text.
async fn refused(cfg: &FilesSinkConfig, record: &Value) -> String {
    let mut sink = cfg.build(&BuildContext::default()).await.unwrap();
    let err = sink.resume(record.clone()).await.unwrap_err().to_string();
    let report = sink.suspend().await.unwrap();
    assert_eq!(
        report.left,
        [format!(
            "The files of the interrupted run {} stay as they were.",
            record_run(record)
        )]
    );
    err
}

/// The files of the units `record` lists, relative to the run directory.
fn recorded_files(record: &Value) -> Vec<String> {
    record["units"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|u| {
            let path = u["path"].as_str().unwrap().to_string();
            match u["files"].as_array() {
                Some(files) => files
                    .iter()
                    .map(|f| format!("{path}/{}", f.as_str().unwrap()))
                    .collect(),
                None => vec![path],
            }
        })
        .collect()
}

/// Files (not folders) in `snapshot` below `prefix`, relative to it.
pub(super) fn files_under(snap: &BTreeMap<String, Vec<u8>>, prefix: &str) -> Vec<String> {
    snap.keys()
        .filter(|k| !k.ends_with('/'))
        .filter_map(|k| k.strip_prefix(prefix))
        .map(str::to_string)
        .collect()
}

pub(super) fn lock_of(out: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join(".vmig.lock")).unwrap()).unwrap()
}

pub(super) fn manifest_files(out: &Path) -> Vec<String> {
    let m: Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    m["files"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|u| u["files"].as_array().unwrap().clone())
        .map(|f| f.as_str().unwrap().to_string())
        .collect()
}

/// The unit names of `format` in `dir`, which must be `part-00000…` without a gap.
fn assert_numbered(dir: &Path, format: StagingFormat) -> usize {
    let names: Vec<String> = units(dir, format)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let want: Vec<String> = (0..names.len())
        .map(|i| match format.extension() {
            Some(ext) => format!("part-{i:05}.{ext}"),
            None => format!("part-{i:05}"),
        })
        .collect();
    assert_eq!(names, want, "{}", dir.display());
    names.len()
}

fn expected_for(format: StagingFormat, batches: &[RecordBatch]) -> Table {
    match format {
        StagingFormat::Json => expected_json(batches),
        _ => expected(batches),
    }
}

#[tokio::test]
async fn resume_keeps_the_recorded_units_removes_what_came_after_and_continues_the_numbering() {
    for format in FORMATS {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let mut cfg = config(&out, format);
        cfg.max_file_size = ByteSize(24 << 10);
        let mut first = open(&cfg, &schema()).await.unwrap();
        first.write(batch(0, 300), None).await.unwrap();
        first.write(batch(300, 200), Some("p1")).await.unwrap();
        first.flush().await.unwrap();
        let record = first.resume_record().unwrap();
        let run_dir = format!(".vmig-{}/", record_run(&record));
        // After the record: finished units, an open one, and a folder the record never saw.
        first.write(batch(500, 300), None).await.unwrap();
        first.write(batch(800, 100), Some("p2")).await.unwrap();
        drop(first); // as `kill -9` leaves it
        put(&out.join(&run_dir).join("notes.txt"), "not a unit name");
        let killed = snapshot(&out);
        let mut recorded = recorded_files(&record);
        recorded.push("notes.txt".into());
        recorded.sort();
        let left = files_under(&killed, &run_dir);
        assert!(
            left.iter().any(|f| f.contains(".tmp")) && left.len() > recorded.len() + 1,
            "{format}: the killed run left no leftovers to remove: {left:?}"
        );

        let mut sink = resumed(&cfg, &record).await.unwrap();
        let now = snapshot(&out);
        assert_eq!(files_under(&now, &run_dir), recorded, "{format}");
        assert!(!now.contains_key(&format!("{run_dir}p2/")), "{format}");
        let lock = lock_of(&out);
        assert_eq!(lock["run_id"], record["run_id"]);
        assert_eq!(lock["pid"], std::process::id());
        assert_eq!(lock["flushed"], true);
        assert!(lock.get("state").is_none(), "{lock}");

        sink.write(batch(500, 300), None).await.unwrap();
        sink.write(batch(800, 100), Some("p2")).await.unwrap();
        sink.flush().await.unwrap();
        let report = sink.commit().await.unwrap();
        assert_eq!(report.rows, 900, "{format}");

        let (top, _) = read_dir(&out, format);
        assert!(
            top == expected_for(format, &[batch(0, 300), batch(500, 300)]),
            "{format}: top"
        );
        let (p1, _) = read_dir(&out.join("p1"), format);
        assert!(
            p1 == expected_for(format, &[batch(300, 200)]),
            "{format}: p1"
        );
        let (p2, _) = read_dir(&out.join("p2"), format);
        assert!(
            p2 == expected_for(format, &[batch(800, 100)]),
            "{format}: p2"
        );
        let units = assert_numbered(&out, format)
            + assert_numbered(&out.join("p1"), format)
            + assert_numbered(&out.join("p2"), format);
        let files = manifest_files(&out);
        let unique: BTreeSet<&String> = files.iter().collect();
        assert_eq!(unique.len(), files.len(), "{format}: {files:?}");
        let all: Vec<String> = files_under(&snapshot(&out), "")
            .into_iter()
            .filter(|f| f != "manifest.json")
            .collect();
        assert_eq!(unique.into_iter().cloned().collect::<Vec<_>>(), {
            let mut all = all;
            all.sort();
            all
        });
        assert!(
            units > record["units"].as_array().unwrap().len(),
            "{format}"
        );
    }
}

#[tokio::test]
async fn resume_refuses_a_running_process_another_run_and_missing_or_changed_units() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let display = out.display().to_string();
    let mut cfg = config(&out, StagingFormat::Parquet);
    cfg.max_file_size = ByteSize(24 << 10);
    let mut first = open(&cfg, &schema()).await.unwrap();
    first.write(batch(0, 400), None).await.unwrap();
    first.flush().await.unwrap();
    let record = first.resume_record().unwrap();
    let run = record_run(&record);
    let unit = record["units"][1].clone();
    drop(first);
    let killed = snapshot(&out);
    let lock = std::fs::read_to_string(out.join(".vmig.lock")).unwrap();

    // A live process holds the run.
    let mut sleeper = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let live = lock_json(&run, sleeper.id(), &this_host());
    put(&out.join(".vmig.lock"), &live);
    let err = refused(&cfg, &record).await;
    assert_eq!(
        err,
        format!(
            "invalid `files` configuration: another vmig process (pid {} on host {}) is running this job (run {run}, started 2026-12-02 15:50:00 UTC) into {display}; wait for it to finish or stop it, then run again (if that process is gone for good, remove {display}/.vmig.lock)",
            sleeper.id(),
            this_host()
        )
    );
    assert_eq!(
        std::fs::read_to_string(out.join(".vmig.lock")).unwrap(),
        live
    );
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();

    // Another run's lock, even a dead one's.
    put(&out.join(".vmig.lock"), &dead_lock("00000000000000ee"));
    let err = refused(&cfg, &record).await;
    assert!(
        err.starts_with(&format!(
            "invalid `files` configuration: cannot resume run {run} in {display}: {display}/.vmig.lock is the lock of the earlier run 00000000000000ee (pid "
        )) && err.ends_with(&format!(
            "which is gone, not of run {run} that this job's checkpoint continues; vmig leaves both runs' files alone: let that run finish (or, if it is gone for good, remove {display}/.vmig.lock) and run this job again"
        )),
        "{err}"
    );
    put(&out.join(".vmig.lock"), &lock);
    assert_eq!(snapshot(&out), killed);

    // A sink of this very process holds the run.
    let holder = resumed(&cfg, &record).await.unwrap();
    let err = refused(&cfg, &record).await;
    assert!(
        err.starts_with(&format!(
            "invalid `files` configuration: another vmig process (pid {} on host {}) is running this job (run {run}, started ",
            std::process::id(),
            this_host()
        )),
        "{err}"
    );
    drop(holder);
    let lock = std::fs::read_to_string(out.join(".vmig.lock")).unwrap();
    let killed = snapshot(&out);

    // A recorded unit is gone, or has changed: the lock goes back as it was.
    let path = unit["path"].as_str().unwrap();
    let file = out.join(format!(".vmig-{run}")).join(path);
    let data = std::fs::read(&file).unwrap();
    std::fs::remove_file(&file).unwrap();
    let err = refused(&cfg, &record).await;
    assert_eq!(
        err,
        format!(
            "invalid data at {display}/.vmig-{run}/{path}: this file of the interrupted run {run} (unit {path}, {} rows), which the checkpoint lists as complete, is missing, so the run cannot be resumed: remove {display}/.vmig-{run}/ and start the job over (`--restart`)",
            unit["rows"]
        )
    );
    assert_eq!(
        std::fs::read_to_string(out.join(".vmig.lock")).unwrap(),
        lock
    );
    std::fs::write(&file, [&data[..], b"x"].concat()).unwrap();
    let err = refused(&cfg, &record).await;
    assert_eq!(
        err,
        format!(
            "invalid data at {display}/.vmig-{run}/{path}: this unit of the interrupted run {run} holds {} bytes, but the checkpoint recorded {} when it was complete, so the run cannot be resumed: remove {display}/.vmig-{run}/ and start the job over (`--restart`)",
            data.len() + 1,
            data.len()
        )
    );
    std::fs::write(&file, &data).unwrap();
    assert_eq!(snapshot(&out), killed);

    // Another format; a record that is not this sink's.
    let mut json_cfg = cfg.clone();
    json_cfg.format = StagingFormat::Json;
    // It adopts the run (so that `--restart` can discard it) but refuses to write on after it.
    let mut sink = json_cfg.build(&BuildContext::default()).await.unwrap();
    sink.resume(record.clone()).await.unwrap();
    let err = sink.prepare(&schema()).await.unwrap_err().to_string();
    sink.suspend().await.unwrap();
    assert_eq!(
        err,
        format!("invalid `files` configuration: the interrupted run {run} wrote parquet files, but this job writes json; start the job over (`--restart`)")
    );
    let mut sink = cfg.build(&BuildContext::default()).await.unwrap();
    let err = sink
        .resume(serde_json::json!({"flushes": 3}))
        .await
        .unwrap_err();
    assert!(
        err.to_string().starts_with("invalid `files` configuration: the checkpoint's record of the interrupted run is not one the files sink wrote (unknown field `flushes`"),
        "{err}"
    );
    // The json sink took the run's lock over and left it suspended: every file of the run is
    // as it was.
    let without_lock = |mut files: BTreeMap<String, Vec<u8>>| {
        files.remove(".vmig.lock");
        files
    };
    assert_eq!(without_lock(snapshot(&out)), without_lock(killed.clone()));
    let lock: Value =
        serde_json::from_slice(&std::fs::read(out.join(".vmig.lock")).unwrap()).unwrap();
    assert_eq!(lock["run_id"], run.as_str(), "{lock}");
    assert_eq!(lock["state"], "suspended", "{lock}");

    // Another schema: refused at `prepare`; the run stays resumable, and says so.
    let mut sink = cfg.build(&BuildContext::default()).await.unwrap();
    sink.resume(record.clone()).await.unwrap();
    let other = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    let err = sink.prepare(&other).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("schema error: the interrupted run {run} wrote its files in {display} with other fields or types than this run's schema, so they cannot be continued: remove {display}/.vmig-{run}/ and start the job over (`--restart`)")
    );
    let report = sink.suspend().await.unwrap();
    assert_eq!(
        report.left,
        [format!(
            "{display}/.vmig-{run}/ holds {} complete files (400 rows) of this run; `vmig migrate` with the same job resumes it (to discard it instead, remove {display}/.vmig-{run}/).",
            record["units"].as_array().unwrap().len()
        )]
    );
    let mut sink = resumed(&cfg, &record).await.unwrap();
    sink.write(batch(400, 10), None).await.unwrap();
    assert_eq!(sink.commit().await.unwrap().rows, 410);
    let (got, _) = read_dir(&out, StagingFormat::Parquet);
    assert!(got == expected(&[batch(0, 400), batch(400, 10)]));
}

#[tokio::test]
async fn suspend_keeps_what_the_last_flush_made_durable_and_other_jobs_leave_it_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let display = out.display().to_string();
    let mut cfg = config(&out, StagingFormat::Parquet);
    cfg.max_file_size = ByteSize(24 << 10);
    let mut sink = open(&cfg, &schema()).await.unwrap();
    sink.write(batch(0, 300), None).await.unwrap();
    sink.flush().await.unwrap();
    let record = sink.resume_record().unwrap();
    let run = record_run(&record);
    let n = record["units"].as_array().unwrap().len();
    sink.write(batch(300, 300), None).await.unwrap(); // finished units and an open one
    let report = sink.suspend().await.unwrap();
    assert_eq!(
        report.left,
        [format!(
            "{display}/.vmig-{run}/ holds {n} complete files (300 rows) of this run; `vmig migrate` with the same job resumes it (to discard it instead, remove {display}/.vmig-{run}/)."
        )]
    );
    let suspended = snapshot(&out);
    let mut recorded = recorded_files(&record);
    recorded.sort();
    assert_eq!(files_under(&suspended, &format!(".vmig-{run}/")), recorded);
    let lock = lock_of(&out);
    assert_eq!(
        (&lock["run_id"], &lock["flushed"], &lock["state"]),
        (
            &record["run_id"],
            &Value::Bool(true),
            &Value::from("suspended")
        )
    );

    // Another job into the same path is refused and changes nothing.
    let mut other = config(&out, StagingFormat::Json);
    other.overwrite = true;
    let err = open(&other, &schema()).await.unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "invalid `files` configuration: {display} holds the unfinished run {run} (pid {}",
            std::process::id()
        )) && err.to_string().ends_with(&format!(
            "which was suspended: {display}/.vmig-{run}/ holds {n} complete files of it that `vmig migrate` with that run's job resumes; vmig will not remove them: resume that job, or remove {display}/.vmig-{run}/ by hand to discard it, then run again"
        )),
        "{err}"
    );
    assert_eq!(snapshot(&out), suspended);

    // The job resumes it.
    let mut sink = resumed(&cfg, &record).await.unwrap();
    sink.write(batch(300, 300), None).await.unwrap();
    sink.flush().await.unwrap();
    assert_eq!(sink.commit().await.unwrap().rows, 600);
    let (got, _) = read_dir(&out, StagingFormat::Parquet);
    assert!(got == expected(&[batch(0, 300), batch(300, 300)]));
    assert_numbered(&out, StagingFormat::Parquet);

    // Discarded by hand: the next job takes the dead lock over.
    let out2 = tmp.path().join("out2");
    let mut cfg2 = cfg.clone();
    cfg2.path = out2.to_string_lossy().into_owned();
    let mut sink = open(&cfg2, &schema()).await.unwrap();
    sink.write(batch(0, 300), None).await.unwrap();
    sink.flush().await.unwrap();
    let run2 = record_run(&sink.resume_record().unwrap());
    sink.suspend().await.unwrap();
    std::fs::remove_dir_all(out2.join(format!(".vmig-{run2}"))).unwrap();
    let mut next = open(&cfg2, &schema()).await.unwrap();
    next.write(batch(7, 3), None).await.unwrap();
    next.commit().await.unwrap();
    let (got, _) = read_dir(&out2, StagingFormat::Parquet);
    assert!(got == expected(&[batch(7, 3)]));
    assert_eq!(names_in(&out2), ["manifest.json", "part-00000.parquet"]);

    // Nothing flushed: nothing to resume, so nothing is kept.
    let out3 = tmp.path().join("out3");
    let mut cfg3 = cfg.clone();
    cfg3.path = out3.to_string_lossy().into_owned();
    let mut sink = open(&cfg3, &schema()).await.unwrap();
    sink.write(batch(0, 300), None).await.unwrap();
    let report = sink.suspend().await.unwrap();
    assert_eq!(
        report.left,
        [format!(
            "{} was created empty by this run and removed.",
            out3.display()
        )]
    );
    assert!(!out3.exists());
}

#[tokio::test]
async fn a_dead_run_is_kept_when_a_flush_made_units_durable_and_cleaned_otherwise() {
    let tmp = tempfile::tempdir().unwrap();
    let display_of = |out: &Path| out.display().to_string();
    let with = |extra: &str| {
        let lock = dead_lock("00000000000000ab");
        format!("{}{extra}}}", &lock[..lock.len() - 1])
    };
    let cases = [
        // (lock, files of the run directory, kept?)
        (
            with(r#","flushed":true"#),
            vec!["part-00000.parquet"],
            Some("stopped without finishing: {run_path} holds 1 complete file"),
        ),
        (
            with(r#","state":"suspended""#),
            vec!["p1/part-00000.json", "p1/part-00001.json"],
            Some("was suspended: {run_path} holds 2 complete files"),
        ),
        (
            with(r#","flushed":true,"state":"aborting""#),
            vec!["part-00000.parquet"],
            None,
        ),
        (
            with(r#","flushed":true"#),
            vec![".part-00000.parquet.tmp", "p1/.part-00003.tmp/id.npy"],
            None,
        ),
        (
            with(""),
            vec!["part-00000.parquet", "part-00001.parquet"],
            None,
        ),
    ];
    for (i, (lock, files, kept)) in cases.into_iter().enumerate() {
        let out = tmp.path().join(format!("out{i}"));
        let display = display_of(&out);
        let run_path = format!("{display}/.vmig-00000000000000ab/");
        put(&out.join(".vmig.lock"), &lock);
        for f in &files {
            put(&out.join(".vmig-00000000000000ab").join(f), "data");
        }
        let before = snapshot(&out);
        let cfg = config(&out, StagingFormat::Parquet);
        match kept {
            Some(what) => {
                let err = open(&cfg, &schema()).await.unwrap_err().to_string();
                let what = what.replace("{run_path}", &run_path);
                assert!(
                    err.starts_with(&format!("invalid `files` configuration: {display} holds the unfinished run 00000000000000ab (pid "))
                        && err.contains(&what)
                        && err.ends_with(&format!("resume that job, or remove {run_path} by hand to discard it, then run again")),
                    "case {i}: {err}"
                );
                assert_eq!(snapshot(&out), before, "case {i}");
            }
            None => {
                let mut sink = open(&cfg, &schema()).await.unwrap();
                assert!(!out.join(".vmig-00000000000000ab").exists(), "case {i}");
                sink.write(batch(0, 5), None).await.unwrap();
                sink.commit().await.unwrap();
                assert_eq!(
                    names_in(&out),
                    ["manifest.json", "part-00000.parquet"],
                    "case {i}"
                );
            }
        }
    }
}

#[tokio::test]
async fn resume_completes_a_commit_that_was_interrupted_after_its_manifest_was_staged() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let cfg = earlier_output(&out).await;
    let mut sink = open(&cfg, &schema()).await.unwrap();
    sink.write(batch(5000, 200), None).await.unwrap();
    sink.flush().await.unwrap();
    let record = sink.resume_record().unwrap();
    let run = record_run(&record);
    // The commit stops half-way (the previous output cannot be moved aside).
    let blocker = out.join(format!(".vmig-{run}.old"));
    put(&blocker, "in the way");
    let err = sink.commit().await.unwrap_err();
    assert!(err.to_string().contains("stopped half-way"), "{err}");
    assert!(out.join(format!(".vmig-{run}/manifest.json")).exists());
    std::fs::remove_file(&blocker).unwrap();

    // Resuming finishes that commit; there is nothing left to write, and nothing is written.
    let mut sink = resumed(&cfg, &record).await.unwrap();
    let names = names_in(&out);
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
    assert_eq!(run_id_of(&out), run);
    let err = sink.write(batch(9000, 3), None).await.unwrap_err();
    let display = out.display();
    assert!(
        err.to_string() == format!(
            "the interrupted run {run} of this job had already committed its output, {} complete files (200 rows), to {display}, but 3 more rows came to be written; they were not written, so that no row is there twice: check that the source did not change, or start the job over (`--restart`)",
            record["units"].as_array().unwrap().len()
        ),
        "{err}"
    );
    assert_eq!(sink.flush().await.unwrap().rows, 0);
    assert_eq!(sink.resume_record(), Some(record.clone()));
    let report = sink.commit().await.unwrap();
    assert_eq!(report.rows, 200);
    let want: Vec<String> = manifest_files(&out)
        .iter()
        .map(|f| out.join(f).to_string_lossy().into_owned())
        .collect();
    assert_eq!(report.files, want);
    let (got, _) = read_dir(&out, StagingFormat::Parquet);
    assert!(got == expected(&[batch(5000, 200)]));

    // Resuming the same record again (the checkpoint is saved before commit) changes nothing.
    let before = snapshot(&out);
    let sink = resumed(&cfg, &record).await.unwrap();
    assert_eq!(sink.commit().await.unwrap().rows, 200);
    let sink = resumed(&cfg, &record).await.unwrap();
    assert_eq!(
        sink.suspend().await.unwrap().left,
        [format!(
            "{display} holds the committed output of the interrupted run {run}: {} complete files (200 rows).",
            record["units"].as_array().unwrap().len()
        )]
    );
    assert_eq!(snapshot(&out), before);
}

#[tokio::test]
async fn s3_resume_removes_unrecorded_objects_and_keeps_a_suspended_run() {
    let Some(s3) = vmig_testing::service::S3::from_env() else {
        return;
    };
    let prefix = vmig_testing::service::unique("vmig-files-resume");
    let url = format!("s3://{}/{prefix}/", s3.bucket);
    let mut cfg = FilesSinkConfig::new(&url, StagingFormat::Parquet);
    cfg.storage = s3.storage_options();
    cfg.max_file_size = ByteSize(24 << 10);
    let store = vmig_core::store::resolve(&format!("s3://{}/", s3.bucket), &cfg.storage)
        .unwrap()
        .store;
    let key = |rel: &str| object_store::path::Path::from(format!("{prefix}/{rel}"));

    let mut first = open(&cfg, &schema()).await.unwrap();
    first.write(batch(0, 300), None).await.unwrap();
    first.write(batch(300, 100), Some("p1")).await.unwrap();
    first.flush().await.unwrap();
    let record = first.resume_record().unwrap();
    let run = record_run(&record);
    let run_dir = format!(".vmig-{run}/");
    first.write(batch(400, 300), None).await.unwrap(); // uploads units after the record
    drop(first); // its local staging files go with it
                 // A unit half uploaded, and an object that is no unit.
    for rel in ["p1/part-00009.parquet", "notes.txt"] {
        store
            .put(&key(&format!("{run_dir}{rel}")), b"x".to_vec().into())
            .await
            .unwrap();
    }
    let killed = objects(&store, &prefix).await;
    assert!(
        files_under(&killed, &run_dir).len() > recorded_files(&record).len() + 2,
        "{killed:?}"
    );

    // Another job is refused: the dead run flushed.
    let mut other = cfg.clone();
    other.overwrite = true;
    other.format = StagingFormat::Json;
    let err = open(&other, &schema()).await.unwrap_err().to_string();
    assert!(
        err.contains(&format!("holds the unfinished run {run} (pid "))
            && err.contains(&format!(
                "which stopped without finishing: {url}{run_dir} holds "
            )),
        "{err}"
    );
    assert_eq!(objects(&store, &prefix).await, killed);

    // Resuming keeps exactly the recorded units (and what is no unit), and continues.
    let mut sink = resumed(&cfg, &record).await.unwrap();
    let mut want = recorded_files(&record);
    want.push("notes.txt".into());
    want.sort();
    assert_eq!(files_under(&objects(&store, &prefix).await, &run_dir), want);
    sink.write(batch(400, 300), None).await.unwrap();
    sink.flush().await.unwrap();
    let second = sink.resume_record().unwrap();
    sink.write(batch(700, 50), Some("p1")).await.unwrap();
    let report = sink.suspend().await.unwrap();
    assert!(
        report.left[0].starts_with(&format!("{url}{run_dir} holds "))
            && report.left[0].ends_with(&format!(
                "(700 rows) of this run; `vmig migrate` with the same job resumes it (to discard it instead, remove {url}{run_dir})."
            )),
        "{report:?}"
    );
    let lock: Value =
        serde_json::from_slice(&objects(&store, &prefix).await[".vmig.lock"]).unwrap();
    assert_eq!(lock["state"], "suspended");

    let mut sink = resumed(&cfg, &second).await.unwrap();
    sink.write(batch(700, 50), Some("p1")).await.unwrap();
    sink.flush().await.unwrap();
    let report = sink.commit().await.unwrap();
    assert_eq!(report.rows, 750);
    let done = objects(&store, &prefix).await;
    let manifest: Value = serde_json::from_slice(&done["manifest.json"]).unwrap();
    let mut top = Table::new();
    let mut p1 = Table::new();
    let mut listed = Vec::new();
    for unit in manifest["files"].as_array().unwrap() {
        let path = unit["path"].as_str().unwrap();
        listed.push(path.to_string());
        let t = if path.starts_with("p1/") {
            &mut p1
        } else {
            &mut top
        };
        read_parquet_bytes(done[path].clone().into(), t);
    }
    let mut present: Vec<String> = done
        .keys()
        .filter(|k| *k != "manifest.json")
        .cloned()
        .collect();
    present.sort();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(present, sorted, "each file once, nothing else");
    assert!(top == expected(&[batch(0, 300), batch(400, 300)]));
    assert!(p1 == expected(&[batch(300, 100), batch(700, 50)]));

    // The committed run resumed again: nothing changes.
    let sink = resumed(&cfg, &second).await.unwrap();
    assert_eq!(sink.commit().await.unwrap().rows, 750);
    assert_eq!(objects(&store, &prefix).await, done);
    for rel in done.keys() {
        store.delete(&key(rel)).await.unwrap();
    }
}

// ------------------------------------------------------------------ the pipeline

/// Two partitions of the wide schema: `p0` (6 batches of 100 rows, ids 0..600) to the top, `p1`
/// (4 batches, ids 10000..10400) to folder `p1`.
fn mock_source(fail_at: Option<(usize, usize)>) -> MockSource {
    MockSource {
        schema: schema(),
        partitions: vec![
            (0..6).map(|i| batch(i * 100, 100)).collect(),
            (0..4).map(|i| batch(10_000 + i * 100, 100)).collect(),
        ],
        fail_at,
        target_partitions: vec![None, Some("p1".into())],
    }
}

/// The output of [`mock_source`] in `out` is every row exactly once, in numbered files the
/// manifest lists once each, and nothing else.
fn assert_mock_output(out: &Path, source: &MockSource) {
    let (top, _) = read_dir(out, StagingFormat::Parquet);
    assert!(
        top == expected(&source.partitions[0]),
        "top-level rows differ"
    );
    let (p1, _) = read_dir(&out.join("p1"), StagingFormat::Parquet);
    assert!(p1 == expected(&source.partitions[1]), "rows of p1 differ");
    assert_numbered(out, StagingFormat::Parquet);
    assert_numbered(&out.join("p1"), StagingFormat::Parquet);
    let mut listed = manifest_files(out);
    listed.sort();
    let mut present: Vec<String> = files_under(&snapshot(out), "")
        .into_iter()
        .filter(|f| f != "manifest.json")
        .collect();
    present.sort();
    assert_eq!(present, listed);
}

#[tokio::test]
async fn the_pipeline_resumes_a_stopped_job_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let display = out.display().to_string();
    let mut cfg = config(&out, StagingFormat::Parquet);
    cfg.max_file_size = ByteSize(24 << 10);
    let store = Arc::new(FileCheckpointStore::new(tmp.path().join("job.checkpoint")));
    let job = JobFingerprint::of(&serde_json::json!({ "test": "files resume" }));
    // One batch in flight: the runner stops at a reader's error before taking what waits in
    // the channel, so the failing reader must not get far ahead of the sink.
    let options = PipelineOptions {
        flush_rows: Some(150),
        concurrency: std::num::NonZeroUsize::MIN,
        channel_capacity: std::num::NonZeroUsize::MIN,
        ..PipelineOptions::default()
    };

    let sink = cfg.build(&BuildContext::default()).await.unwrap();
    let err = Pipeline::new(Box::new(mock_source(Some((0, 4)))), sink)
        .with_options(options.clone())
        .with_checkpoints(store.clone(), job.clone())
        .run(Arc::new(NoProgress))
        .await
        .unwrap_err();
    let saved = store.load().await.unwrap().unwrap();
    let record = saved.sink().unwrap().clone();
    let run = record_run(&record);
    let rows: u64 = record["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["rows"].as_u64().unwrap())
        .sum();
    assert!(
        (200..500).contains(&rows) && rows.is_multiple_of(100),
        "whole batches of p0 before its failing batch 4: {record}"
    );
    let Error::Stopped { error, left } = &err else {
        panic!("{err}")
    };
    assert!(error.to_string().contains("injected failure"), "{error}");
    assert_eq!(
        left,
        &[format!(
            "{display}/.vmig-{run}/ holds {} complete files ({rows} rows) of this run; `vmig migrate` with the same job resumes it (to discard it instead, remove {display}/.vmig-{run}/).",
            record["units"].as_array().unwrap().len()
        )]
    );
    assert_eq!(lock_of(&out)["state"], "suspended");

    let source = mock_source(None);
    let sink = cfg.build(&BuildContext::default()).await.unwrap();
    let report = Pipeline::new(Box::new(source.clone()), sink)
        .with_options(options)
        .with_checkpoints(store.clone(), job)
        .run(Arc::new(NoProgress))
        .await
        .unwrap();
    let resumed = report.resumed.unwrap();
    assert_eq!(resumed.rows_written, rows);
    assert_eq!(report.rows_written, 1000 - rows);
    assert_mock_output(&out, &source);
    assert_eq!(run_id_of(&out), run);
}

/// Set for the child process of [`kill_9_at_any_instant_still_gives_every_row_once`]: the
/// directory holding the target (`out`, or the S3 URL in `url`) and the checkpoint.
const RESUME_CHILD_ENV: &str = "VMIG_FILES_TEST_RESUME_CHILD";

/// The job of the kill tests: `p0` (120 batches of 200 rows, ids 0..24000) to the top, `p1`
/// (60 batches, ids 100000..112000) to folder `p1`; about 400 files of 24 KiB, written in about
/// 1.5 s when nothing stops it.
fn big_source() -> MockSource {
    MockSource {
        schema: schema(),
        partitions: vec![
            (0..120).map(|i| batch(i * 200, 200)).collect(),
            (0..60).map(|i| batch(100_000 + i * 200, 200)).collect(),
        ],
        fail_at: None,
        target_partitions: vec![None, Some("p1".into())],
    }
}

fn kill_options() -> PipelineOptions {
    PipelineOptions {
        flush_rows: Some(1_000),
        ..PipelineOptions::default()
    }
}

fn child_config(dir: &Path) -> FilesSinkConfig {
    let mut cfg = match std::fs::read_to_string(dir.join("url")) {
        Ok(url) => {
            let mut cfg = FilesSinkConfig::new(url.trim(), StagingFormat::Parquet);
            cfg.storage = vmig_testing::service::S3::from_env()
                .unwrap()
                .storage_options();
            cfg
        }
        Err(_) => config(&dir.join("out"), StagingFormat::Parquet),
    };
    cfg.max_file_size = ByteSize(24 << 10);
    cfg
}

/// Run only as the child of [`kill_9_at_any_instant_still_gives_every_row_once`]: runs (or
/// resumes) the job with a checkpoint until it is done or killed.
#[tokio::test]
#[ignore = "the child process of kill_9_at_any_instant_still_gives_every_row_once"]
async fn run_the_job_until_killed() {
    let Ok(dir) = std::env::var(RESUME_CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let store = Arc::new(FileCheckpointStore::new(dir.join("job.checkpoint")));
    let job = JobFingerprint::of(&serde_json::json!({ "test": "kill -9" }));
    let sink = child_config(&dir)
        .build(&BuildContext::default())
        .await
        .unwrap();
    let started = std::time::Instant::now();
    Pipeline::new(Box::new(big_source()), sink)
        .with_options(kill_options())
        .with_checkpoints(store, job)
        .run(Arc::new(NoProgress))
        .await
        .unwrap();
    std::fs::write(
        dir.join("done"),
        format!("{}", started.elapsed().as_millis()),
    )
    .unwrap();
}

/// Starts the job in a child process again and again, killing it with SIGKILL after a delay
/// from `delays` (mid-file, mid-flush, mid-save, mid-commit: wherever it is), until a child
/// finishes; returns how many were killed.
async fn kill_until_done(dir: &Path, delays: &[u64]) -> usize {
    let mut kills = 0;
    for attempt in 0.. {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "resume::run_the_job_until_killed",
                "--ignored",
                "--test-threads=1",
            ])
            .env(RESUME_CHILD_ENV, dir)
            .stdout(std::fs::File::create(dir.join("child.out")).unwrap())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let delay = delays.get(attempt).copied();
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "attempt {attempt} (after {kills} kills): the child failed: {}",
                    std::fs::read_to_string(dir.join("child.out")).unwrap_or_default()
                );
                assert!(dir.join("done").exists());
                return kills;
            }
            if delay.is_some_and(|d| started.elapsed() >= Duration::from_millis(d)) {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
                break;
            }
            assert!(started.elapsed().as_secs() < 120, "attempt {attempt} hangs");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    kills
}

/// Kill delays (ms) after each start of the job: the shortest land in start-up and `resume`,
/// the others anywhere in writing, flushing, saving the checkpoint and committing. They add up
/// to less than the job needs, so every one of them kills; the run after the last finishes.
const DELAYS: [u64; 14] = [25, 60, 35, 90, 50, 120, 45, 150, 70, 30, 110, 80, 40, 200];

#[tokio::test]
async fn kill_9_at_any_instant_still_gives_every_row_once() {
    let tmp = tempfile::tempdir().unwrap();
    let kills = kill_until_done(tmp.path(), &DELAYS).await;
    assert!(kills >= 8, "only {kills} kills");
    let out = tmp.path().join("out");
    assert_mock_output(&out, &big_source());
    assert!(names_in(&out).iter().all(|n| !n.starts_with('.')));
}

#[tokio::test]
async fn s3_kill_9_at_any_instant_still_gives_every_row_once() {
    let Some(s3) = vmig_testing::service::S3::from_env() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let prefix = vmig_testing::service::unique("vmig-files-kill");
    std::fs::write(
        tmp.path().join("url"),
        format!("s3://{}/{prefix}/", s3.bucket),
    )
    .unwrap();
    let kills = kill_until_done(tmp.path(), &DELAYS[..8]).await;
    assert!(kills >= 5, "only {kills} kills");
    let store = vmig_core::store::resolve(&format!("s3://{}/", s3.bucket), &s3.storage_options())
        .unwrap()
        .store;
    let done = objects(&store, &prefix).await;
    let manifest: Value = serde_json::from_slice(&done["manifest.json"]).unwrap();
    let source = big_source();
    let (mut top, mut p1) = (Table::new(), Table::new());
    let mut listed = Vec::new();
    for unit in manifest["files"].as_array().unwrap() {
        let path = unit["path"].as_str().unwrap().to_string();
        let t = if path.starts_with("p1/") {
            &mut p1
        } else {
            &mut top
        };
        read_parquet_bytes(done[&path].clone().into(), t);
        listed.push(path);
    }
    assert!(
        top == expected(&source.partitions[0]),
        "top-level rows differ"
    );
    assert!(p1 == expected(&source.partitions[1]), "rows of p1 differ");
    listed.sort();
    let present: Vec<String> = done
        .keys()
        .filter(|k| *k != "manifest.json")
        .cloned()
        .collect();
    assert_eq!(present, listed, "each file once, nothing else");
    for rel in done.keys() {
        store
            .delete(&object_store::path::Path::from(format!("{prefix}/{rel}")))
            .await
            .unwrap();
    }
}
