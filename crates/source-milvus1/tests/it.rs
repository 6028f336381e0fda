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
use std::sync::Arc;
use vmig_core::vector::{vector_info, VectorType, META_COLLECTION, META_METRIC};
use vmig_core::{Error, Source, SourceContext};
use vmig_source_milvus1::META_PARTITION_TAGS;

use vmig_core::pipeline::{NoProgress, Pipeline};
use vmig_testing::milvus1::{standard, FileType, Metric, Milvus1Gen};
use vmig_testing::mock::MockSink;

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
async fn tanimoto_needs_a_metric_and_partition_names_override_the_mapping() {
    let mut g = Milvus1Gen::new(9);
    let c = g.collection("c", 16, Metric::Tanimoto);
    g.segment(c, 4, &[], FileType::Raw);
    let p = g.partition(c, "2023-q1");
    g.segment(p, 3, &[1], FileType::Raw);
    let dir = fixture(&g).await;
    let err = build(json!({ "path": root(&dir) })).await.unwrap_err();
    assert!(matches!(err.root(), Error::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("TANIMOTO"), "{err}");
    let source = build(json!({
        "path": root(&dir), "metric": "JACCARD", "partition_names": { "2023-q1": "q2023_1" }
    }))
    .await
    .unwrap();
    assert_eq!(source.schema().metadata()[META_METRIC], "JACCARD");
    assert_eq!(
        source.schema().metadata()[META_PARTITION_TAGS],
        r#"{"2023-q1":"q2023_1"}"#
    );
    let got = read_all(source.as_ref(), 2).await.unwrap();
    let want = expected(&g, "c");
    assert_eq!(got[""], want[""]);
    assert_eq!(got["q2023_1"], want["2023-q1"]);
}

/// Issue #11: date tags such as `2021` and `2023-q1` (and non-ASCII ones) are common in 1.x and
/// are not valid 2.x partition names; by default they are mapped by the documented rule, the
/// mapping is in the schema metadata and the partition descriptions (what `vmig plan` shows),
/// and `invalid_partition_tags = "error"` makes them an error again.
#[tokio::test]
async fn invalid_partition_tags_are_mapped_by_default_or_refused_on_request() {
    let mut g = Milvus1Gen::new(11);
    let c = g.collection("c", 8, Metric::L2);
    g.segment(c, 4, &[], FileType::Raw);
    for (tag, rows) in [
        ("2021", 3),
        ("2023-q1", 5),
        ("2023.q1", 2),
        ("北京", 4),
        ("ok", 1),
    ] {
        let p = g.partition(c, tag);
        g.segment(p, rows, &[], FileType::Raw);
    }
    // A partition without segments is still listed in the mapping.
    g.partition(c, "2020 h2");
    let dir = fixture(&g).await;

    let source = build(json!({ "path": root(&dir) })).await.unwrap();
    let hash_a = "p_2023_q1_d2cb59f5";
    let hash_b = "p_2023_q1_bb67e42c";
    let mapping: serde_json::Value =
        serde_json::from_str(&source.schema().metadata()[META_PARTITION_TAGS]).unwrap();
    assert_eq!(
        mapping,
        json!({ "2020 h2": "p_2020_h2", "2021": "p_2021", "2023-q1": hash_a,
                "2023.q1": hash_b, "北京": "u5317u4eac" })
    );
    let parts = source.partitions().await.unwrap();
    let described: Vec<&str> = parts
        .iter()
        .filter(|p| p.description.contains("2021"))
        .map(|p| p.description.as_str())
        .collect();
    assert_eq!(described.len(), 1);
    assert!(
        described[0].starts_with("c, partition `2021` (→ `p_2021`, mapped): segment "),
        "{}",
        described[0]
    );
    let got = read_all(source.as_ref(), 3).await.unwrap();
    let want = expected(&g, "c");
    assert_eq!(got["p_2021"], want["2021"]);
    assert_eq!(got[hash_a], want["2023-q1"]);
    assert_eq!(got[hash_b], want["2023.q1"]);
    assert_eq!(got["u5317u4eac"], want["北京"]);
    assert_eq!(got["ok"], want["ok"]);

    let err = build(json!({ "path": root(&dir), "invalid_partition_tags": "error" }))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "opening source `milvus1`: invalid `milvus1` configuration: partition tag `2020 h2` is \
         not a valid Milvus 2.x partition name (letters, digits and _, not starting with a \
         digit); map it in `partition_names = { \"2020 h2\" = \"new_name\" }`, or remove \
         `invalid_partition_tags = \"error\"` to map it to `p_2020_h2`"
    );
    // With every invalid tag mapped by hand, "error" accepts the job.
    let names = json!({ "2020 h2": "h2_2020", "2021": "y2021", "2023-q1": "q1_2023",
                        "2023.q1": "q1_2023b", "北京": "beijing" });
    let source = build(json!({
        "path": root(&dir), "invalid_partition_tags": "error", "partition_names": names
    }))
    .await
    .unwrap();
    let got = read_all(source.as_ref(), 3).await.unwrap();
    assert_eq!(got["beijing"], want["北京"]);
}

#[tokio::test]
async fn resuming_after_a_position_yields_exactly_the_rest() {
    let mut g = Milvus1Gen::new(21);
    let c = g.collection("c", 3, Metric::L2);
    g.segment(c, 100, &[99, 0, 50, 51, 52, 10], FileType::Raw);
    let dir = fixture(&g).await;
    let source = build(json!({ "path": root(&dir) })).await.unwrap();
    let parts = source.partitions().await.unwrap();
    let all = batches_of(source.as_ref(), &parts[0].id, 10).await;
    assert_resumes_exactly(source.as_ref(), &parts[0].id, 10, &all, 0..all.len()).await;
    let bad = vmig_core::Position(json!({ "row": 1000 }));
    let err = source
        .open(&parts[0].id, Some(&bad), &context(10))
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("past the end"), "{err}");
}

/// Sparse deletes cut a batch into one batch per run of kept rows (slices of the read buffer);
/// dense ones are filtered out. Both give exactly the live rows, and every position resumes
/// exactly after its batch.
#[tokio::test]
async fn sparse_and_dense_deletes_read_exactly_and_resume() {
    let mut g = Milvus1Gen::new(33);
    let c = g.collection("c", 4, Metric::L2);
    // Sparse: every 700th row. Dense: every other row of 3000..3200.
    let mut deletes: Vec<i32> = (0..5000).step_by(700).collect();
    deletes.extend((3000..3200).step_by(2));
    g.segment(c, 5000, &deletes, FileType::Raw);
    let dir = fixture(&g).await;
    let source = build(json!({ "path": root(&dir) })).await.unwrap();
    let got = read_all(source.as_ref(), 1024).await.unwrap();
    assert_eq!(got, expected(&g, "c"));
    assert_eq!(got[""].len(), 5000 - deletes.len());

    let parts = source.partitions().await.unwrap();
    let all = batches_of(source.as_ref(), &parts[0].id, 1024).await;
    // Rows 0..1024 and 1024..2048 have two runs each (deletes 0, 700 and 1400), 2048..3072
    // and 3072..4096 hold dense deletes and are filtered, 4096..5000 has three runs.
    assert_eq!(all.len(), 2 + 2 + 1 + 1 + 3);
    let ks = [0, 1, 2, all.len() / 2, all.len() - 2];
    assert_resumes_exactly(source.as_ref(), &parts[0].id, 1024, &all, ks).await;
}

fn context(batch_rows: usize) -> SourceContext {
    SourceContext {
        batch_rows: NonZeroUsize::new(batch_rows).unwrap(),
        ..SourceContext::default()
    }
}

/// Every batch of `partition`, read from the start.
async fn batches_of(
    source: &dyn Source,
    partition: &vmig_core::PartitionId,
    batch_rows: usize,
) -> Vec<vmig_core::SourceBatch> {
    source
        .open(partition, None, &context(batch_rows))
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

/// Reopening `partition` after batch `k` of `all` (for each `k`) yields exactly the rows of
/// the batches after it.
async fn assert_resumes_exactly(
    source: &dyn Source,
    partition: &vmig_core::PartitionId,
    batch_rows: usize,
    all: &[vmig_core::SourceBatch],
    ks: impl IntoIterator<Item = usize>,
) {
    for k in ks {
        let rest: Vec<_> = source
            .open(partition, Some(&all[k].position), &context(batch_rows))
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
}

/// A directory of one collection (dim 4) with four segments of 10 rows; the last one is the
/// segment the tests break. Returns the generator, the directory and the last segment's path.
async fn four_segments() -> (Milvus1Gen, tempfile::TempDir, std::path::PathBuf) {
    let mut g = Milvus1Gen::new(1);
    let c = g.collection("c", 4, Metric::L2);
    g.segment(c, 10, &[], FileType::Raw);
    g.segment(c, 10, &[9, 0], FileType::ToIndex);
    g.segment(c, 10, &[], FileType::Backup);
    let last = g.segment(c, 10, &[2], FileType::Raw);
    let dir = fixture(&g).await;
    let seg_dir = dir.path().join(g.segment_path(&last).unwrap());
    (g, dir, seg_dir)
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

fn write_deletes(dir: &Path, header: u64, offsets: &[i32]) {
    let mut b = header.to_le_bytes().to_vec();
    for o in offsets {
        b.extend_from_slice(&o.to_le_bytes());
    }
    std::fs::write(dir.join("deleted_docs"), b).unwrap();
}

/// One way to break a 10-row, dim-4 segment, and what its error must say.
struct Damage {
    what: &'static str,
    apply: fn(&Path),
    says: &'static [&'static str],
}

/// Every documented error kind.
fn damages() -> Vec<Damage> {
    vec![
        Damage {
            what: ".rv shorter than its header says",
            apply: |d| {
                let rv = file_with_ext(d, "rv");
                let len = std::fs::metadata(&rv).unwrap().len();
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&rv)
                    .unwrap()
                    .set_len(len - 3)
                    .unwrap();
            },
            says: &[".rv", "header says 160 bytes", "165"],
        },
        Damage {
            what: ".rv payload not a whole number of 16-byte rows",
            apply: |d| rewrite(&file_with_ext(d, "rv"), 150, 150),
            says: &["150 bytes of vectors is not a multiple", "16 bytes"],
        },
        Damage {
            what: ".uid header disagrees with its size",
            apply: |d| rewrite(&file_with_ext(d, "uid"), 80, 72),
            says: &[
                ".uid",
                "header says 80 bytes of ids",
                "has 80 bytes, not 88",
            ],
        },
        Damage {
            what: ".uid payload not a whole number of ids",
            apply: |d| rewrite(&file_with_ext(d, "uid"), 76, 76),
            says: &[
                ".uid",
                "76 bytes of ids",
                "not a whole number of 8-byte entries",
            ],
        },
        Damage {
            what: ".uid row count differs from .rv",
            apply: |d| rewrite(&file_with_ext(d, "uid"), 72, 72),
            says: &["holds 9 ids", "10 vectors"],
        },
        Damage {
            what: "a delete offset out of range",
            apply: |d| write_deletes(d, 8, &[3, 10]),
            says: &["deleted_docs at byte 12", "offset #1 is 10", "10 rows"],
        },
        Damage {
            what: "a negative delete offset",
            apply: |d| write_deletes(d, 4, &[-1]),
            says: &["deleted_docs at byte 8", "offset #0 is -1"],
        },
        Damage {
            what: "deleted_docs header disagrees with its size",
            apply: |d| write_deletes(d, 12, &[1, 2]),
            says: &[
                "deleted_docs",
                "header says 12 bytes of offsets",
                "has 16 bytes, not 20",
            ],
        },
        Damage {
            what: "deleted_docs payload not a whole number of offsets",
            apply: |d| {
                std::fs::write(
                    d.join("deleted_docs"),
                    [6, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0],
                )
                .unwrap()
            },
            says: &[
                "deleted_docs",
                "6 bytes of offsets",
                "not a whole number of 4-byte entries",
            ],
        },
        Damage {
            what: "deleted_docs shorter than its header",
            apply: |d| std::fs::write(d.join("deleted_docs"), [0u8; 5]).unwrap(),
            says: &["deleted_docs", "5 bytes is too short"],
        },
        Damage {
            what: "missing .rv",
            apply: |d| std::fs::remove_file(file_with_ext(d, "rv")).unwrap(),
            says: &["no `*.rv` file"],
        },
        Damage {
            what: "missing .uid",
            apply: |d| std::fs::remove_file(file_with_ext(d, "uid")).unwrap(),
            says: &["no `*.uid` file"],
        },
        Damage {
            what: "missing deleted_docs",
            apply: |d| std::fs::remove_file(d.join("deleted_docs")).unwrap(),
            says: &["no `deleted_docs`"],
        },
        Damage {
            what: "missing segment directory",
            apply: |d| std::fs::remove_dir_all(d).unwrap(),
            says: &["missing or empty", "segment"],
        },
        Damage {
            what: "two .uid files",
            apply: |d| std::fs::write(d.join("other.uid"), 0u64.to_le_bytes()).unwrap(),
            says: &["2 `*.uid` files"],
        },
        Damage {
            what: "two .rv files",
            apply: |d| std::fs::write(d.join("other.rv"), 0u64.to_le_bytes()).unwrap(),
            says: &["2 `*.rv` files"],
        },
    ]
}

fn assert_says(e: &Error, damage: &Damage) {
    assert!(
        matches!(e.root(), Error::Data { .. }),
        "{}: {e:?}",
        damage.what
    );
    let text = e.to_string();
    for s in damage.says {
        assert!(
            text.contains(s),
            "{}: `{s}` missing in: {text}",
            damage.what
        );
    }
}

/// Builds the source (which checks every segment) and, if that passes, runs it into a
/// [`MockSink`], as `vmig run` does. Returns the error and what reached the sink.
async fn run_job(dir: &tempfile::TempDir) -> (Result<u64, Error>, MockSink) {
    let sink = MockSink::default();
    let result = match build(json!({ "path": root(dir) })).await {
        Err(e) => Err(e),
        Ok(source) => Pipeline::new(source, Box::new(sink.clone()))
            .run(Arc::new(NoProgress))
            .await
            .map(|r| r.rows_written),
    };
    (result, sink)
}

#[tokio::test]
async fn a_broken_last_segment_stops_the_job_before_any_row_is_written() {
    // Control: intact, every row reaches the sink.
    let (g, dir, _) = four_segments().await;
    let (written, sink) = run_job(&dir).await;
    let want = expected(&g, "c")[""].len();
    assert_eq!(written.unwrap(), want as u64);
    {
        let state = sink.state.lock().unwrap();
        let rows: usize = state.durable.iter().map(|b| b.num_rows()).sum();
        assert_eq!((rows, state.pending.len()), (want, 0));
    }

    for damage in damages() {
        let (_, dir, last) = four_segments().await;
        (damage.apply)(&last);
        let (result, sink) = run_job(&dir).await;
        let err = result.unwrap_err();
        assert_says(&err, &damage);
        let state = sink.state.lock().unwrap();
        assert!(
            state.pending.is_empty() && state.durable.is_empty() && state.prepared.is_none(),
            "{}: the sink was used before the error",
            damage.what
        );
    }
}

#[tokio::test]
async fn segments_broken_after_the_check_fail_when_read() {
    // The files may change between `build` and the read: the same checks run on open.
    for damage in damages() {
        let (_, dir, last) = four_segments().await;
        let source = build(json!({ "path": root(&dir) })).await.unwrap();
        (damage.apply)(&last);
        let err = read_all(source.as_ref(), 4).await.unwrap_err();
        assert_says(&err, &damage);
    }
}

#[tokio::test]
async fn several_broken_segments_are_counted_and_the_first_is_named() {
    let mut g = Milvus1Gen::new(2);
    let c = g.collection("c", 4, Metric::L2);
    let segs: Vec<_> = (0..40)
        .map(|_| g.segment(c, 3, &[1], FileType::Raw))
        .collect();
    let dir = fixture(&g).await;
    for i in [37, 12, 25] {
        let d = dir.path().join(g.segment_path(&segs[i]).unwrap());
        std::fs::remove_file(d.join("deleted_docs")).unwrap();
    }
    let err = build(json!({ "path": root(&dir) })).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("3 of 40 segments"), "{text}");
    assert!(text.contains(&format!("segment {} ", segs[12])), "{text}");
}

#[tokio::test]
async fn a_large_deleted_docs_is_checked_by_header_first_and_fully_when_read() {
    // 300 000 offsets (> 1 MiB): the up-front check reads only the header.
    let many = |last: i32| {
        let mut v = vec![5i32; 299_999];
        v[7] = 7;
        v.push(last);
        v
    };
    let (g, dir, seg) = four_segments().await;
    let offsets = many(3);
    write_deletes(&seg, offsets.len() as u64 * 4, &offsets);
    let source = build(json!({ "path": root(&dir) })).await.unwrap();
    let got = read_all(source.as_ref(), 4).await.unwrap();
    // The last segment's deletes are now {3, 5, 7} instead of {2}.
    let mut g2 = Milvus1Gen::new(1);
    let c = g2.collection("c", 4, Metric::L2);
    g2.segment(c, 10, &[], FileType::Raw);
    g2.segment(c, 10, &[9, 0], FileType::ToIndex);
    g2.segment(c, 10, &[], FileType::Backup);
    g2.segment(c, 10, &[3, 5, 7], FileType::Raw);
    assert_eq!(got, expected(&g2, "c"));
    assert_ne!(got, expected(&g, "c"));

    // An out-of-range offset at the very end: found when the segment is read.
    let offsets = many(10);
    write_deletes(&seg, offsets.len() as u64 * 4, &offsets);
    let source = build(json!({ "path": root(&dir) })).await.unwrap();
    let err = read_all(source.as_ref(), 4).await.unwrap_err();
    assert!(err.to_string().contains("offset #299999 is 10"), "{err}");

    // A wrong header is found up front.
    write_deletes(&seg, 4, &offsets);
    let err = build(json!({ "path": root(&dir) })).await.unwrap_err();
    assert!(
        err.to_string().contains("header says 4 bytes of offsets"),
        "{err}"
    );
}

/// Overwrites element `element` of row `row` of the segment's `.rv` (dim 4) with `value`;
/// returns that row's id.
fn poke(seg: &Path, row: usize, element: usize, value: f32) -> i64 {
    let rv = file_with_ext(seg, "rv");
    let mut bytes = std::fs::read(&rv).unwrap();
    let at = 8 + (row * 4 + element) * 4;
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
    std::fs::write(&rv, bytes).unwrap();
    let ids = std::fs::read(file_with_ext(seg, "uid")).unwrap();
    i64::from_le_bytes(ids[8 + row * 8..16 + row * 8].try_into().unwrap())
}

#[tokio::test]
async fn non_finite_vectors_are_an_error_unless_allowed() {
    let (g, dir, seg) = four_segments().await;
    // Row 2 is deleted: its +Inf is never read, so it is no error.
    poke(&seg, 2, 0, f32::INFINITY);
    let id = poke(&seg, 6, 3, f32::NAN);
    for batch_rows in [1, 4, 100] {
        let source = build(json!({ "path": root(&dir) })).await.unwrap();
        let err = read_all(source.as_ref(), batch_rows).await.unwrap_err();
        assert!(matches!(err.root(), Error::Data { .. }), "{err:?}");
        let text = err.to_string();
        let rv = file_with_ext(&seg, "rv");
        let name = rv.file_name().unwrap().to_str().unwrap();
        for s in [
            name,
            &format!("at byte {}", 8 + (6 * 4 + 3) * 4),
            "row 6",
            &format!("id {id}"),
            "NaN in vector element 3",
            "on_non_finite",
        ] {
            assert!(text.contains(s), "`{s}` missing in: {text}");
        }
    }

    // Allowed: every live row, the NaN bit-exact where it was written.
    let source = build(json!({ "path": root(&dir), "on_non_finite": "allow" }))
        .await
        .unwrap();
    let got = read_all(source.as_ref(), 3).await.unwrap();
    let mut want = expected(&g, "c");
    let row = want
        .get_mut("")
        .unwrap()
        .iter_mut()
        .find(|r| r.id == id)
        .unwrap();
    row.vector[12..16].copy_from_slice(&f32::NAN.to_le_bytes());
    assert_eq!(got, want);

    let err = build(json!({ "path": root(&dir), "on_non_finite": "ignore" }))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("on_non_finite") || err.to_string().contains("ignore"));
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

#[tokio::test]
async fn milvus_migrations_meta_json_lists_the_collections_and_segments_to_read() {
    let mut g = Milvus1Gen::new(21);
    let vecs = g.collection("vecs", 16, Metric::Ip);
    let a = g.segment(vecs, 40, &[3, 9], FileType::Raw);
    let b = g.segment(vecs, 25, &[], FileType::ToIndex);
    let dir = fixture(&g).await;
    // The shape of milvus-migration's testfiles/milvus1x/test1w/meta.json.
    let meta = dir.path().join("meta.json");
    let write = |segments: serde_json::Value| {
        std::fs::write(
            &meta,
            json!({"collections": [{"collection": "vecs", "metric": 2, "rows": 65, "dim": 16,
                "segments": segments}], "rows": 65})
            .to_string(),
        )
        .unwrap();
    };
    write(json!([
        {"collection": "vecs", "segment": a, "dim": 16, "rows": 40, "fileSize": 0},
        {"collection": "vecs", "segment": b, "dim": 16, "rows": 25, "fileSize": 0},
    ]));
    let source = build(json!({ "path": root(&dir), "meta": meta.display().to_string() }))
        .await
        .unwrap();
    assert_eq!(source.schema().metadata()[META_METRIC], "IP");
    assert_eq!(source.schema().metadata()[META_COLLECTION], "vecs");
    let got = read_all(source.as_ref(), 16).await.unwrap();
    assert_eq!(got, expected(&g, "vecs"));
    assert_eq!(got[""].len(), 40 - 2 + 25);

    // A segment of another table (a partition) cannot be described by a meta.json.
    write(json!([{"collection": "1590000000007919", "segment": a, "dim": 16, "rows": 40}]));
    let err = build(json!({ "path": root(&dir), "meta": meta.display().to_string() }))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("a meta.json does not describe partitions"),
        "{err}"
    );
    std::fs::write(&meta, "{\"tables\": []}").unwrap();
    let err = build(json!({ "path": root(&dir), "meta": meta.display().to_string() }))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not a milvus-migration meta.json") && err.contains("meta.json"),
        "{err}"
    );
}
