//! The `milvus1` source against generated Milvus 1.x data directories (SQLite meta, local files):
//! every row compared bit-exactly with what the generator wrote minus the deleted offsets, and
//! every documented error case.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::num::NonZeroUsize;
use std::path::Path;

use common::{build, expected, read_all};
use futures::TryStreamExt;
use serde_json::json;
use vmig_core::vector::{vector_info, VectorType, META_COLLECTION, META_METRIC};
use vmig_core::{Error, SourceContext};
use vmig_source_milvus1 as _;
use vmig_testing::milvus1::{standard, FileType, Metric, Milvus1Gen};

async fn fixture(g: &Milvus1Gen) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    g.write_dir(dir.path()).await.unwrap();
    dir
}

fn root(dir: &tempfile::TempDir) -> String {
    dir.path().display().to_string()
}

#[tokio::test]
async fn float_collection_with_partitions_and_deletes_is_read_exactly() {
    let g = standard(7);
    let dir = fixture(&g).await;
    let source = build(json!({ "path": root(&dir), "collections": ["books"] }))
        .await
        .unwrap();
    let schema = source.schema();
    assert_eq!(schema.metadata()[META_METRIC], "L2");
    assert_eq!(schema.metadata()[META_COLLECTION], "books");
    let info = vector_info(schema.field(1)).unwrap();
    assert_eq!((info.kind, info.dim), (VectorType::Float32, 8));

    let parts = source.partitions().await.unwrap();
    // 3 segments of the collection (RAW, TO_INDEX, BACKUP; NEW and TO_DELETE skipped, the
    // INDEX row of the BACKUP segment not counted again), 2 of p2023, 1 of p2024; the dropped
    // partition's segment is not listed.
    let targets: Vec<_> = parts.iter().map(|p| p.target_partition.clone()).collect();
    assert_eq!(
        targets,
        [
            None,
            None,
            None,
            Some("p2023".into()),
            Some("p2023".into()),
            Some("p2024".into())
        ]
    );
    // Estimates come from the meta (which here counts live rows only).
    assert_eq!(parts[1].estimated_rows, Some(40 - 4));

    let want = expected(&g, "books");
    assert_eq!(want.keys().collect::<Vec<_>>(), ["", "p2023", "p2024"]);
    for batch_rows in [1, 7, 8192] {
        let got = read_all(source.as_ref(), batch_rows).await.unwrap();
        assert_eq!(got, want, "batch_rows {batch_rows}");
    }
    // Row counts: 50 + (40 − 4 distinct deletes) + (30 − 3); 33 − 3 + 0 (all deleted); 21 − 1.
    assert_eq!(want[""].len(), 50 + 36 + 27);
    assert_eq!(want["p2023"].len(), 30);
    assert_eq!(want["p2024"].len(), 20);
}

#[tokio::test]
async fn binary_collection_is_read_exactly() {
    let g = standard(11);
    let dir = fixture(&g).await;
    let source = build(json!({ "path": root(&dir), "collections": ["codes"] }))
        .await
        .unwrap();
    assert_eq!(source.schema().metadata()[META_METRIC], "HAMMING");
    let info = vector_info(source.schema().field(1)).unwrap();
    assert_eq!((info.kind, info.dim), (VectorType::Binary, 64));
    let got = read_all(source.as_ref(), 5).await.unwrap();
    assert_eq!(got, expected(&g, "codes"));
    assert_eq!(got[""].len(), 28);
    assert_eq!(got["hot"].len(), 12);
}

#[tokio::test]
async fn collection_selection_and_dropped_collections() {
    let g = standard(3);
    let dir = fixture(&g).await;
    // Default: every live collection; `books` and `codes` differ, so the job must pick one.
    let err = build(json!({ "path": root(&dir) })).await.unwrap_err();
    assert!(err.to_string().contains("separate jobs"), "{err}");
    let err = build(json!({ "path": root(&dir), "collections": ["old"] }))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("dropped"), "{err}");
    let err = build(json!({ "path": root(&dir), "collections": ["nope"] }))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("books, codes"), "{err}");

    // Two compatible collections are read together; a single live collection is the default.
    let mut g = Milvus1Gen::new(5);
    let a = g.collection("a", 4, Metric::Ip);
    g.segment(a, 10, &[9], FileType::Raw);
    let b = g.collection("b", 4, Metric::Ip);
    g.segment(b, 6, &[], FileType::Raw);
    g.segment(b, 0, &[], FileType::Raw); // an empty segment yields no batch
    let dir = fixture(&g).await;
    let source = build(json!({ "path": root(&dir) })).await.unwrap();
    assert!(!source.schema().metadata().contains_key(META_COLLECTION));
    assert_eq!(source.schema().metadata()[META_METRIC], "IP");
    let got = read_all(source.as_ref(), 100).await.unwrap();
    let mut want = expected(&g, "a")[""].clone();
    want.extend(expected(&g, "b")[""].clone());
    want.sort();
    assert_eq!(got[""], want);
    let one = build(json!({ "path": root(&dir), "collections": ["b"] }))
        .await
        .unwrap();
    assert_eq!(one.schema().metadata()[META_COLLECTION], "b");
}

#[tokio::test]
async fn tags_that_are_not_milvus_names_need_a_mapping_and_tanimoto_needs_a_metric() {
    let mut g = Milvus1Gen::new(9);
    let c = g.collection("c", 16, Metric::Tanimoto);
    g.segment(c, 4, &[], FileType::Raw);
    let p = g.partition(c, "2023-q1");
    g.segment(p, 3, &[1], FileType::Raw);
    let dir = fixture(&g).await;
    let err = build(json!({ "path": root(&dir) })).await.unwrap_err();
    assert!(matches!(err.root(), Error::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("TANIMOTO"), "{err}");
    let err = build(json!({ "path": root(&dir), "metric": "JACCARD" }))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("partition_names"), "{err}");
    let source = build(json!({
        "path": root(&dir), "metric": "JACCARD", "partition_names": { "2023-q1": "q2023_1" }
    }))
    .await
    .unwrap();
    assert_eq!(source.schema().metadata()[META_METRIC], "JACCARD");
    let got = read_all(source.as_ref(), 2).await.unwrap();
    let want = expected(&g, "c");
    assert_eq!(got[""], want[""]);
    assert_eq!(got["q2023_1"], want["2023-q1"]);
}

#[tokio::test]
async fn resuming_after_a_position_yields_exactly_the_rest() {
    let mut g = Milvus1Gen::new(21);
    let c = g.collection("c", 3, Metric::L2);
    g.segment(c, 100, &[99, 0, 50, 51, 52, 10], FileType::Raw);
    let dir = fixture(&g).await;
    let source = build(json!({ "path": root(&dir) })).await.unwrap();
    let parts = source.partitions().await.unwrap();
    let ctx = SourceContext {
        batch_rows: NonZeroUsize::new(10).unwrap(),
        ..SourceContext::default()
    };
    let all: Vec<_> = source
        .open(&parts[0].id, None, &ctx)
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    for k in 0..all.len() {
        let rest: Vec<_> = source
            .open(&parts[0].id, Some(&all[k].position), &ctx)
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        let got: Vec<_> = rest
            .iter()
            .flat_map(|b| common::rows_of(&b.batch))
            .collect();
        let want: Vec<_> = all[k + 1..]
            .iter()
            .flat_map(|b| common::rows_of(&b.batch))
            .collect();
        assert_eq!(got, want, "after batch {k}");
    }
    let bad = vmig_core::Position(json!({ "row": 1000 }));
    let err = source
        .open(&parts[0].id, Some(&bad), &ctx)
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("past the end"), "{err}");
}

/// Builds a one-segment directory, lets `damage` break it, and returns the read error.
async fn read_error(damage: impl FnOnce(&Path)) -> String {
    let mut g = Milvus1Gen::new(1);
    let c = g.collection("c", 4, Metric::L2);
    let seg = g.segment(c, 10, &[2], FileType::Raw);
    let dir = fixture(&g).await;
    let seg_dir = dir.path().join(g.segment_path(&seg).unwrap());
    damage(&seg_dir);
    let source = build(json!({ "path": root(&dir) })).await.unwrap();
    let err = read_all(source.as_ref(), 4).await.unwrap_err();
    assert!(matches!(err.root(), Error::Data { .. }), "{err:?}");
    err.to_string()
}

fn file_with_ext(dir: &Path, ext: &str) -> std::path::PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().and_then(|e| e.to_str()) == Some(ext))
        .unwrap()
}

fn rewrite(path: &Path, header: u64, payload_len: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes.truncate(8 + payload_len);
    bytes.resize(8 + payload_len, 0);
    bytes[..8].copy_from_slice(&header.to_le_bytes());
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test]
async fn broken_segments_fail_with_the_file_and_the_numbers() {
    // .rv shorter than its header says.
    let e = read_error(|d| {
        let rv = file_with_ext(d, "rv");
        let len = std::fs::metadata(&rv).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&rv)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
    })
    .await;
    assert!(
        e.contains(".rv") && e.contains("header says 160 bytes") && e.contains("165"),
        "{e}"
    );
    // .rv payload not a multiple of the row width (16 bytes).
    let e = read_error(|d| rewrite(&file_with_ext(d, "rv"), 150, 150)).await;
    assert!(
        e.contains("150 bytes of vectors is not a multiple") && e.contains("16 bytes"),
        "{e}"
    );
    // .uid row count differs from .rv.
    let e = read_error(|d| rewrite(&file_with_ext(d, "uid"), 72, 72)).await;
    assert!(e.contains("holds 9 ids") && e.contains("10 vectors"), "{e}");
    // A delete offset out of range.
    let e = read_error(|d| {
        let mut b = 8u64.to_le_bytes().to_vec();
        b.extend_from_slice(&3i32.to_le_bytes());
        b.extend_from_slice(&10i32.to_le_bytes());
        std::fs::write(d.join("deleted_docs"), b).unwrap();
    })
    .await;
    assert!(
        e.contains("deleted_docs at byte 12")
            && e.contains("offset #1 is 10")
            && e.contains("10 rows"),
        "{e}"
    );
    // A negative delete offset.
    let e = read_error(|d| {
        let mut b = 4u64.to_le_bytes().to_vec();
        b.extend_from_slice(&(-1i32).to_le_bytes());
        std::fs::write(d.join("deleted_docs"), b).unwrap();
    })
    .await;
    assert!(e.contains("offset #0 is -1"), "{e}");
    // Missing files the meta lists.
    let e = read_error(|d| std::fs::remove_file(file_with_ext(d, "rv")).unwrap()).await;
    assert!(e.contains("no `*.rv` file"), "{e}");
    let e = read_error(|d| std::fs::remove_file(d.join("deleted_docs")).unwrap()).await;
    assert!(e.contains("no `deleted_docs`"), "{e}");
    let e = read_error(|d| std::fs::remove_dir_all(d).unwrap()).await;
    assert!(
        e.contains("missing or empty") && e.contains("segment"),
        "{e}"
    );
    // Two .uid files.
    let e = read_error(|d| std::fs::write(d.join("other.uid"), 0u64.to_le_bytes()).unwrap()).await;
    assert!(e.contains("2 `*.uid` files"), "{e}");
}

#[tokio::test]
async fn a_missing_meta_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let err = build(json!({ "path": root(&dir) })).await.unwrap_err();
    assert!(err.to_string().contains("meta.sqlite"), "{err}");
}

#[tokio::test]
async fn meta_rows_still_in_the_wal_are_seen() {
    // Write the meta through a connection kept open, so the rows sit in meta.sqlite-wal, then
    // copy the three files elsewhere while it is open.
    use sqlx::Connection;
    let g = standard(4);
    let dir = fixture(&g).await;
    let db = dir.path().join("db/meta.sqlite");
    std::fs::remove_file(&db).unwrap();
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&db)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
    let mut conn = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
    sqlx::query("PRAGMA wal_autocheckpoint = 0")
        .execute(&mut conn)
        .await
        .unwrap();
    for stmt in [
        vmig_testing::milvus1::SQLITE_ENVIRONMENT,
        vmig_testing::milvus1::SQLITE_TABLES,
        vmig_testing::milvus1::SQLITE_TABLE_FILES,
    ]
    .into_iter()
    .map(str::to_string)
    .chain(g.inserts())
    {
        sqlx::query(&stmt).execute(&mut conn).await.unwrap();
    }
    let copy = tempfile::tempdir().unwrap();
    copy_tree(dir.path(), copy.path());
    assert!(copy.path().join("db/meta.sqlite-wal").exists());
    let source =
        build(json!({ "path": copy.path().display().to_string(), "collections": ["books"] }))
            .await
            .unwrap();
    assert_eq!(
        read_all(source.as_ref(), 64).await.unwrap(),
        expected(&g, "books")
    );
    conn.close().await.unwrap();
}

fn copy_tree(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}
