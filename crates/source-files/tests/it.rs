//! The `files` source end to end on local files (NumPy, the format every build has) and on a
//! real S3 server: listing, row sets, partitions, exact resume at every batch, and the errors a
//! user meets (nothing matches, mixed formats, a file changed after planning or since the
//! checkpoint).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch};
use arrow::compute::concat_batches;
use common::{build, sorted_by_id};
use vmig_formats::staging::NumpyWriter;
use vmig_parsers as _;
use vmig_source_files as _;
use vmig_testing::conformance::{check_source, read_all_rows, read_partition};

/// The sample rows without their nullable column (NumPy files hold no nulls).
fn sample_batch(seed: u64, first_id: i64, rows: usize, dim: usize) -> RecordBatch {
    let b = vmig_testing::gen::sample_batch(seed, first_id, rows, dim);
    let keep: Vec<usize> = (0..b.num_columns())
        .filter(|&i| !b.schema().field(i).is_nullable())
        .collect();
    b.project(&keep).unwrap()
}

/// Writes `batch` as a Milvus NumPy directory (`<field>.npy` per column) at `dir`.
fn write_numpy_dir(dir: &Path, batch: &RecordBatch) {
    let mut w = NumpyWriter::create(dir, &batch.schema()).unwrap();
    w.write(batch).unwrap();
    w.finish().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numpy_directories_are_row_sets_of_their_columns_and_resume_at_every_batch() {
    let dir = tempfile::tempdir().unwrap();
    let a = sample_batch(1, 0, 23, 5);
    let b = sample_batch(2, 23, 17, 5);
    write_numpy_dir(&dir.path().join("seg-a"), &a);
    write_numpy_dir(&dir.path().join("seg-b"), &b);
    // Hidden files and other formats are skipped by a directory listing.
    std::fs::write(dir.path().join("_SUCCESS"), b"").unwrap();
    std::fs::write(dir.path().join("seg-a/.crc"), b"x").unwrap();
    let source = build(serde_json::json!({ "path": dir.path() }))
        .await
        .unwrap();
    let parts = source.partitions().await.unwrap();
    let ids: Vec<_> = parts.iter().map(|p| p.id.0.as_str()).collect();
    assert_eq!(ids, ["seg-a/", "seg-b/"]);
    assert_eq!(parts[0].estimated_rows, Some(23));
    assert_eq!(parts[1].estimated_rows, Some(17));
    // The columns come in file-name order, as NumpyWriter names them after the fields.
    let mut names: Vec<String> = a
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    names.sort();
    let got: Vec<String> = source
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(got, names);

    let report = check_source(source.as_ref(), 4).await;
    assert_eq!(report.total_rows(), 40);
    assert!(report.positions_checked >= 10, "{report:?}");

    let all = read_all_rows(source.as_ref(), 6).await.unwrap();
    let want = concat_batches(&a.schema(), &[a.clone(), b.clone()]).unwrap();
    let all = sorted_by_id(&all);
    for name in &names {
        let got = all.column_by_name(name).unwrap();
        let want = want.column_by_name(name).unwrap();
        assert!(
            vmig_testing::compare::same_values(got.as_ref(), want.as_ref()),
            "column {name} differs"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_file_is_split_into_row_ranges_that_number_rows_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let batch = sample_batch(3, 1000, 100, 3);
    write_numpy_dir(dir.path(), &batch);
    let vectors = dir.path().join("vector.npy");
    let source = build(serde_json::json!({
        "path": vectors, "partition_rows": 30
    }))
    .await
    .unwrap();
    let parts = source.partitions().await.unwrap();
    let ids: Vec<_> = parts.iter().map(|p| p.id.0.clone()).collect();
    assert_eq!(
        ids,
        [
            "vector.npy#0..30",
            "vector.npy#30..60",
            "vector.npy#60..90",
            "vector.npy#90..100"
        ]
    );
    let report = check_source(source.as_ref(), 7).await;
    assert_eq!(report.total_rows(), 100);
    // The ranges hold the file's rows in order, none twice.
    let mut got = Vec::new();
    for p in &parts {
        for (b, _) in read_partition(source.as_ref(), &p.id.0, None, 8)
            .await
            .unwrap()
        {
            got.push(b);
        }
    }
    let got = concat_batches(&source.schema(), &got).unwrap();
    assert!(vmig_testing::compare::same_values(
        got.column(0).as_ref(),
        batch.column_by_name("vector").unwrap().as_ref()
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn globs_pick_files_in_sorted_order_and_say_when_nothing_matches() {
    let dir = tempfile::tempdir().unwrap();
    for (i, name) in ["b", "a", "c"].iter().enumerate() {
        let batch = sample_batch(i as u64, 0, 3, 2);
        let sub = dir.path().join(name);
        write_numpy_dir(&sub, &batch);
    }
    let source = build(serde_json::json!({
        "path": format!("{}/*/id.npy", dir.path().display())
    }))
    .await
    .unwrap();
    let ids: Vec<_> = source
        .partitions()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id.0)
        .collect();
    assert_eq!(ids, ["a/id.npy", "b/id.npy", "c/id.npy"]);
    let e = build(serde_json::json!({
        "path": format!("{}/*/nothing-*.npy", dir.path().display())
    }))
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("matches `*/nothing-*.npy`"), "{e}");
    assert!(e.contains(&dir.path().display().to_string()), "{e}");
    let e = build(serde_json::json!({ "path": dir.path().join("missing") }))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing` does not exist"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_of_two_formats_need_a_format() {
    let dir = tempfile::tempdir().unwrap();
    write_numpy_dir(dir.path(), &sample_batch(1, 0, 3, 2));
    std::fs::write(dir.path().join("notes.parquet"), b"PAR1").unwrap();
    let e = build(serde_json::json!({ "path": dir.path() }))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("more than one format"), "{e}");
    assert!(e.contains("set `format`"), "{e}");
    // With the format named, the other files are left out of a directory listing.
    let source = build(serde_json::json!({ "path": dir.path(), "format": "npy" }))
        .await
        .unwrap();
    assert_eq!(source.partitions().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_changed_after_planning_or_since_the_checkpoint_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_numpy_dir(dir.path(), &sample_batch(1, 0, 20, 2));
    let ids = dir.path().join("id.npy");
    let source = build(serde_json::json!({ "path": &ids })).await.unwrap();
    let batches = read_partition(source.as_ref(), "id.npy", None, 5)
        .await
        .unwrap();
    let after_first = batches[0].1.clone();
    // Rewritten with more rows.
    write_numpy_dir(dir.path(), &sample_batch(1, 0, 25, 2));
    let e = read_partition(source.as_ref(), "id.npy", None, 5)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("id.npy"), "{e}");
    assert!(e.contains("changed between plan and read"), "{e}");
    assert!(e.contains("size changed from"), "{e}");
    // A new plan reads the new file, but not from the old file's checkpoint.
    let source = build(serde_json::json!({ "path": &ids })).await.unwrap();
    let e = read_partition(source.as_ref(), "id.npy", Some(&after_first), 5)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("changed since the checkpoint"), "{e}");
    let all = read_all_rows(source.as_ref(), 8).await.unwrap();
    let got: &Int64Array = all.column(0).as_primitive();
    assert_eq!(got.values().to_vec(), (0..25).collect::<Vec<i64>>());
    assert_eq!(got.null_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numpy_directories_must_agree() {
    let dir = tempfile::tempdir().unwrap();
    write_numpy_dir(&dir.path().join("a"), &sample_batch(1, 0, 5, 2));
    write_numpy_dir(&dir.path().join("b"), &sample_batch(1, 0, 5, 2));
    std::fs::remove_file(dir.path().join("b/vector.npy")).unwrap();
    let e = build(serde_json::json!({ "path": dir.path() }))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`b/` holds the files flag.npy, id.npy, score.npy but"),
        "{e}"
    );
    // Columns of one directory with different row counts.
    write_numpy_dir(&dir.path().join("b"), &sample_batch(1, 0, 5, 2));
    let short = dir.path().join("c");
    write_numpy_dir(&short, &sample_batch(1, 0, 5, 2));
    let other = tempfile::tempdir().unwrap();
    write_numpy_dir(other.path(), &sample_batch(1, 0, 4, 2));
    std::fs::copy(other.path().join("id.npy"), short.join("id.npy")).unwrap();
    let e = build(serde_json::json!({ "path": dir.path() }))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("c/id.npy: holds 4 rows but"), "{e}");
    assert!(e.contains("c/flag.npy holds 5"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_a_glob_from_s3() {
    use object_store::ObjectStoreExt;
    let Some(s3) = vmig_testing::service::S3::from_env() else {
        return;
    };
    let prefix = format!("files-source-{}", std::process::id());
    // The bucket through the same resolver the source uses.
    let bucket = vmig_core::store::resolve(
        &format!("s3://{}/{prefix}", s3.bucket),
        &s3.storage_options(),
    )
    .unwrap();
    let store = &bucket.store;
    let local = tempfile::tempdir().unwrap();
    let mut want = Vec::new();
    for (i, seg) in ["s1", "s2"].iter().enumerate() {
        let batch = sample_batch(i as u64, i as i64 * 50, 50, 4);
        let dir = local.path().join(seg);
        write_numpy_dir(&dir, &batch);
        for f in ["id.npy", "vector.npy"] {
            let bytes = std::fs::read(dir.join(f)).unwrap();
            store
                .put(&bucket.path.clone().join(*seg).join(f), bytes.into())
                .await
                .unwrap();
        }
        want.push(batch);
    }
    let source = build(serde_json::json!({
        "path": format!("s3://{}/{prefix}/*/*.npy", s3.bucket),
        "storage": s3.storage_options(),
        "partition_rows": 20,
    }))
    .await
    .unwrap();
    let parts = source.partitions().await.unwrap();
    assert_eq!(parts.len(), 6, "{parts:?}");
    check_source(source.as_ref(), 7).await;
    let got = sorted_by_id(&read_all_rows(source.as_ref(), 9).await.unwrap());
    let want = concat_batches(&want[0].schema(), &want).unwrap();
    for name in ["id", "vector"] {
        assert!(vmig_testing::compare::same_values(
            got.column_by_name(name).unwrap().as_ref(),
            want.column_by_name(name).unwrap().as_ref()
        ));
    }
    for seg in ["s1", "s2"] {
        for f in ["id.npy", "vector.npy"] {
            store
                .delete(&bucket.path.clone().join(seg).join(f))
                .await
                .unwrap();
        }
    }
}
