//! The `faiss` source end to end, against the real faiss-cpu fixtures of `vmig-formats`
//! (`crates/formats/tests/data/faiss`, written by `generate.py`).
#![allow(clippy::unwrap_used)] // test helpers may panic on broken fixtures

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, FixedSizeBinaryArray, FixedSizeListArray, Float32Array, Int64Array};
use arrow::datatypes::DataType;
use futures::StreamExt;
use serde_json::{json, Value};
use vmig_core::registry::{parse_source, BuildContext};
use vmig_core::vector::{META_METRIC, META_PRIMARY_KEY};
use vmig_core::{Error, PartitionId, Position, Source, SourceContext};
use vmig_source_faiss as _;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../formats/tests/data/faiss")
        .canonicalize()
        .unwrap()
}

fn fixture_path(name: &str) -> String {
    dir()
        .join(format!("{name}.faiss"))
        .to_string_lossy()
        .into_owned()
}

fn manifest() -> Vec<Value> {
    let text = std::fs::read_to_string(dir().join("manifest.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["fixtures"].as_array().unwrap().clone()
}

fn supported() -> Vec<Value> {
    manifest()
        .into_iter()
        .filter(|f| f["supported"].as_bool().unwrap())
        .collect()
}

fn expected(name: &str) -> (Vec<i64>, Vec<u8>) {
    let ids = std::fs::read(dir().join(format!("{name}.ids.i64"))).unwrap();
    let ids = ids
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (
        ids,
        std::fs::read(dir().join(format!("{name}.vecs.bin"))).unwrap(),
    )
}

async fn build(config: Value) -> vmig_core::Result<Box<dyn Source>> {
    build_in(config, &BuildContext::default()).await
}

async fn build_in(config: Value, ctx: &BuildContext) -> vmig_core::Result<Box<dyn Source>> {
    parse_source("faiss", config)?.build(ctx).await
}

fn ctx(batch_rows: usize) -> SourceContext {
    SourceContext {
        batch_rows: NonZeroUsize::new(batch_rows).unwrap(),
        ..SourceContext::default()
    }
}

/// Ids and raw vector bytes of one batch.
fn rows_of(batch: &arrow::record_batch::RecordBatch) -> (Vec<i64>, Vec<u8>) {
    let ids = batch
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .values()
        .to_vec();
    let col = batch.column(1);
    let mut bytes = Vec::new();
    if let Some(l) = col.as_any().downcast_ref::<FixedSizeListArray>() {
        let dim = l.value_length() as usize;
        let v = l.values().as_any().downcast_ref::<Float32Array>().unwrap();
        for x in &v.values()[l.offset() * dim..(l.offset() + l.len()) * dim] {
            bytes.extend_from_slice(&x.to_bits().to_le_bytes());
        }
    } else {
        let b = col.as_any().downcast_ref::<FixedSizeBinaryArray>().unwrap();
        for row in b.iter() {
            bytes.extend_from_slice(row.unwrap());
        }
    }
    (ids, bytes)
}

struct Read {
    ids: Vec<i64>,
    vecs: Vec<u8>,
    /// Per batch: its position and its rows.
    batches: Vec<(Position, Vec<i64>, Vec<u8>)>,
}

async fn read_partition(
    src: &dyn Source,
    p: &PartitionId,
    after: Option<&Position>,
    c: &SourceContext,
) -> vmig_core::Result<Read> {
    let mut stream = src.open(p, after, c)?;
    let mut out = Read {
        ids: Vec::new(),
        vecs: Vec::new(),
        batches: Vec::new(),
    };
    while let Some(item) = stream.next().await {
        let b = item?;
        assert_eq!(b.batch.schema(), src.schema(), "batch schema differs");
        assert!(b.batch.num_rows() > 0);
        assert!(b.batch.num_rows() <= c.batch_rows.get());
        let (ids, vecs) = rows_of(&b.batch);
        out.ids.extend_from_slice(&ids);
        out.vecs.extend_from_slice(&vecs);
        out.batches.push((b.position, ids, vecs));
    }
    Ok(out)
}

async fn read_all(src: &dyn Source, c: &SourceContext) -> (Vec<i64>, Vec<u8>) {
    let mut ids = Vec::new();
    let mut vecs = Vec::new();
    for p in src.partitions().await.unwrap() {
        let r = read_partition(src, &p.id, None, c).await.unwrap();
        assert_eq!(r.ids.len() as u64, p.estimated_rows.unwrap(), "{}", p.id);
        ids.extend(r.ids);
        vecs.extend(r.vecs);
    }
    (ids, vecs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_supported_fixture_is_read_bit_exactly() {
    for f in supported() {
        let name = f["name"].as_str().unwrap();
        let (want_ids, want_vecs) = expected(name);
        for (partition_rows, batch_rows) in [(1_048_576u64, 8192usize), (97, 13), (250, 1000)] {
            let src = build(json!({
                "path": fixture_path(name),
                "partition_rows": partition_rows,
                "on_non_finite": "allow",
            }))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            let schema = src.schema();
            assert_eq!(schema.field(0).name(), "id");
            assert_eq!(schema.field(0).data_type(), &DataType::Int64);
            assert!(!schema.field(0).is_nullable());
            assert_eq!(schema.field(1).name(), "vector");
            assert_eq!(schema.metadata().get(META_PRIMARY_KEY).unwrap(), "id");
            let metric = schema.metadata().get(META_METRIC).map(String::as_str);
            let want_metric = if f["binary"].as_bool().unwrap() {
                Some("HAMMING")
            } else {
                match f["metric_type"].as_i64().unwrap() {
                    0 => Some("IP"),
                    1 => Some("L2"),
                    _ => None,
                }
            };
            assert_eq!(metric, want_metric, "{name}");
            let parts = src.partitions().await.unwrap();
            let total: u64 = parts.iter().map(|p| p.estimated_rows.unwrap()).sum();
            assert_eq!(total, f["ntotal"].as_u64().unwrap(), "{name}");
            assert!(parts
                .iter()
                .all(|p| p.estimated_rows.unwrap() <= partition_rows));
            let (ids, vecs) = read_all(src.as_ref(), &ctx(batch_rows)).await;
            assert_eq!(
                ids, want_ids,
                "{name} ({partition_rows}, {batch_rows}): ids differ"
            );
            assert!(
                vecs == want_vecs,
                "{name} ({partition_rows}, {batch_rows}): vectors differ"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_are_described() {
    let src = build(json!({ "path": fixture_path("flat_l2"), "partition_rows": 400 }))
        .await
        .unwrap();
    let parts = src.partitions().await.unwrap();
    let d: Vec<_> = parts.iter().map(|p| p.description.as_str()).collect();
    assert_eq!(d, ["rows 0..400", "rows 400..800", "rows 800..1000"]);
    let src = build(json!({ "path": fixture_path("ivf_sprs"), "partition_rows": 120 }))
        .await
        .unwrap();
    let parts = src.partitions().await.unwrap();
    let d: Vec<_> = parts.iter().map(|p| p.description.as_str()).collect();
    // List sizes (manifest.json): 23 → 76, 41 → 54, 44 → 56, 49 → 51, 54 → 63.
    assert_eq!(
        d,
        [
            "inverted lists 23..=23 (1 non-empty, 76 rows)",
            "inverted lists 41..=44 (2 non-empty, 110 rows)",
            "inverted lists 49..=54 (2 non-empty, 114 rows)",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_after_any_position_yields_exactly_the_rest() {
    for (name, partition_rows, batch_rows) in [
        ("ivf_sprs", 150u64, 17usize),
        ("ivf_full", 600, 64),
        ("idmap_flat", 400, 33),
        ("hnsw_flat", 1000, 128),
        ("binary_idmap2", 100, 7),
        ("idmap_hnsw", 1_048_576, 50),
        // Issue #15: duplicates restored after the lists, ids through an id map's table,
        // binary lists, legacy lists, a refine index, a binary HNSW.
        ("ivf_dedup", 100, 9),
        ("idmap2_ivf", 200, 23),
        ("binary_idmap_ivf", 120, 17),
        ("binary_ivf_lists", 150, 11),
        ("ivf_legacy_bytes", 100, 13),
        ("refine_ivfpq", 150, 40),
        ("binary_hnsw", 200, 31),
    ] {
        let src = build(json!({ "path": fixture_path(name), "partition_rows": partition_rows }))
            .await
            .unwrap();
        let c = ctx(batch_rows);
        for p in src.partitions().await.unwrap() {
            let full = read_partition(src.as_ref(), &p.id, None, &c).await.unwrap();
            for (k, (pos, _, _)) in full.batches.iter().enumerate() {
                // Positions survive a JSON round trip (as in a checkpoint file).
                let pos: Position =
                    serde_json::from_str(&serde_json::to_string(pos).unwrap()).unwrap();
                let rest = read_partition(src.as_ref(), &p.id, Some(&pos), &c)
                    .await
                    .unwrap();
                let want_ids: Vec<i64> = full.batches[k + 1..]
                    .iter()
                    .flat_map(|b| b.1.clone())
                    .collect();
                let want_vecs: Vec<u8> = full.batches[k + 1..]
                    .iter()
                    .flat_map(|b| b.2.clone())
                    .collect();
                assert_eq!(rest.ids, want_ids, "{name} {} after batch {k}", p.id);
                assert!(rest.vecs == want_vecs, "{name} {} after batch {k}", p.id);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_finite_vectors_are_an_error_naming_id_and_offset() {
    let path = fixture_path("idmap_nan");
    let src = build(json!({ "path": path, "partition_rows": 1000 }))
        .await
        .unwrap();
    let p = &src.partitions().await.unwrap()[0];
    let mut stream = src.open(&p.id, None, &ctx(2)).unwrap();
    let mut ok_rows = 0;
    let err = loop {
        match stream.next().await.unwrap() {
            Ok(b) => ok_rows += b.batch.num_rows(),
            Err(e) => break e,
        }
    };
    assert!(
        stream.next().await.is_none(),
        "the stream must end after an error"
    );
    assert_eq!(ok_rows, 4, "rows before the bad batch are delivered");
    let Error::Data { location, message } = &err else {
        panic!("{err:?}")
    };
    // IxMp header (37) + IxF2 header (37) + count (8), row 5, component 3.
    let offset = 4 + 33 + 4 + 33 + 8 + 5 * 32 + 3 * 4;
    assert_eq!(location, &format!("{path} at byte {offset}"));
    assert!(message.contains("id 1015"), "{message}");
    assert!(message.contains("NaN"), "{message}");
    assert!(message.contains("on_non_finite"), "{message}");

    // Resuming past the NaN finds the Inf in row 17.
    let after = Position::encode(&vmig_source_faiss::FaissPosition { block: 0, row: 6 }).unwrap();
    let mut stream = src.open(&p.id, Some(&after), &ctx(100)).unwrap();
    let err = stream.next().await.unwrap().unwrap_err();
    assert!(err.to_string().contains("id 1051"), "{err}");
    assert!(err.to_string().contains("inf"), "{err}");

    let src = build(json!({ "path": path, "on_non_finite": "allow" }))
        .await
        .unwrap();
    let (ids, vecs) = read_all(src.as_ref(), &ctx(7)).await;
    assert_eq!((ids, vecs), expected("idmap_nan"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_errors_for_missing_files_refused_types_and_bad_configs() {
    let missing = dir().join("no-such-index.faiss");
    let err = build(json!({ "path": missing })).await.unwrap_err();
    assert!(
        err.to_string().contains(&*missing.to_string_lossy()),
        "{err}"
    );

    let err = build(json!({ "path": fixture_path("ivfpq") }))
        .await
        .unwrap_err();
    assert!(matches!(err.root(), Error::Unsupported { .. }), "{err:?}");
    assert!(err.to_string().contains("`IwPQ`"), "{err}");
    assert!(err.to_string().contains("IndexIVFPQ"), "{err}");

    let err = build(json!({ "path": fixture_path("hnsw_skip_storage") }))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("IO_FLAG_SKIP_STORAGE"), "{err}");

    let err = parse_source("faiss", json!({ "path": "x", "bogus": 1 })).unwrap_err();
    assert!(err.to_string().contains("bogus"), "{err}");
    let err = parse_source("faiss", json!({ "path": "x", "on_non_finite": "ignore" })).unwrap_err();
    assert!(err.to_string().contains("ignore"), "{err}");
    let err = parse_source("faiss", json!({ "path": "x", "partition_rows": 0 })).unwrap_err();
    assert!(err.to_string().contains("partition_rows"), "{err}");
    assert_eq!(
        parse_source("faiss", json!({})).unwrap_err().to_string(),
        "invalid `faiss` configuration: missing field `path`"
    );

    let src = build(json!({ "path": fixture_path("flat_l2") }))
        .await
        .unwrap();
    let err = src
        .open(&PartitionId::new("rows-5-6"), None, &ctx(10))
        .err()
        .unwrap();
    assert!(err.to_string().contains("rows-5-6"), "{err}");
    let p = &src.partitions().await.unwrap()[0];
    let bad = Position::encode(&vmig_source_faiss::FaissPosition { block: 3, row: 0 }).unwrap();
    assert_eq!(
        src.open(&p.id, Some(&bad), &ctx(10))
            .err()
            .unwrap()
            .to_string(),
        format!(
            "invalid `faiss` configuration: position (block 3, row 0) is not inside partition `rows-0-1000` of `{}`",
            fixture_path("flat_l2")
        )
    );
    let foreign = Position(json!({ "offset": 12 }));
    assert_eq!(src.open(&p.id, Some(&foreign), &ctx(10)).err().unwrap().to_string(), "invalid `checkpoint` configuration: position {\"offset\":12} does not belong to this source: unknown field `offset`, expected `block` or `row`");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_config_round_trips_and_relative_paths_resolve() {
    let plugin = vmig_core::registry::sources().unwrap()["faiss"];
    let example = plugin.example_config();
    assert_eq!(example["path"], "indexes/products.faiss");
    let parsed = parse_source("faiss", example.clone()).unwrap();
    assert_eq!(parsed.to_json(), example);

    let ctx_dir = BuildContext { base_dir: dir() };
    let src = build_in(
        json!({ "path": "../faiss/./flat_ip.faiss", "id_field": "pk", "vector_field": "emb" }),
        &ctx_dir,
    )
    .await
    .unwrap();
    assert_eq!(src.schema().field(0).name(), "pk");
    assert_eq!(src.schema().field(1).name(), "emb");
    assert_eq!(src.schema().metadata()[META_PRIMARY_KEY], "pk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_job_ends_the_stream_with_an_error() {
    let src = build(json!({ "path": fixture_path("flat_l2") }))
        .await
        .unwrap();
    let c = ctx(10);
    c.cancel.cancel();
    let p = &src.partitions().await.unwrap()[0];
    let mut stream = src.open(&p.id, None, &c).unwrap();
    assert!(matches!(stream.next().await, Some(Err(Error::Cancelled))));
    assert!(stream.next().await.is_none());
}

/// A file larger than one read chunk (8 MiB), written by hand in the documented format
/// (formats.md A.2/A.4): `IxMp` over `IxF2`, d = 64, 40 000 rows.
fn big_idmap(path: &Path) -> (Vec<i64>, Vec<u8>) {
    let (d, n) = (64i32, 40_000i64);
    let header = |out: &mut Vec<u8>, fourcc: &[u8; 4]| {
        out.extend_from_slice(fourcc);
        out.extend_from_slice(&d.to_le_bytes());
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&(1i64 << 20).to_le_bytes());
        out.extend_from_slice(&(1i64 << 20).to_le_bytes());
        out.push(1);
        out.extend_from_slice(&1i32.to_le_bytes());
    };
    let mut out = Vec::new();
    header(&mut out, b"IxMp");
    header(&mut out, b"IxF2");
    out.extend_from_slice(&((n * d as i64) as u64).to_le_bytes());
    let mut vecs = Vec::new();
    for i in 0..n * d as i64 {
        vecs.extend_from_slice(&((i as f32) * 0.5 - 7.0).to_le_bytes());
    }
    out.extend_from_slice(&vecs);
    out.extend_from_slice(&(n as u64).to_le_bytes());
    let ids: Vec<i64> = (0..n).map(|i| (i * 7919) % 100_003 - 50_000).collect();
    for id in &ids {
        out.extend_from_slice(&id.to_le_bytes());
    }
    std::fs::write(path, out).unwrap();
    (ids, vecs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_larger_than_a_chunk_stream_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("big.faiss");
    let (want_ids, want_vecs) = big_idmap(&path);
    for (partition_rows, batch_rows) in
        [(1_048_576u64, 1000usize), (15_000, 8192), (40_000, 40_000)]
    {
        let src = build(json!({ "path": path, "partition_rows": partition_rows }))
            .await
            .unwrap();
        let (ids, vecs) = read_all(src.as_ref(), &ctx(batch_rows)).await;
        assert_eq!(ids, want_ids);
        assert!(vecs == want_vecs);
    }
}

/// The fixtures through a real S3 server (`VMIG_S3_*`, see `vmig_testing::service`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_from_s3() {
    use object_store::aws::AmazonS3Builder;
    use object_store::path::Path as StorePath;
    use object_store::ObjectStoreExt;

    let Some(s3) = vmig_testing::service::S3::from_env() else {
        return;
    };
    let store = Arc::new(
        AmazonS3Builder::new()
            .with_endpoint(&s3.endpoint)
            .with_access_key_id(&s3.access_key)
            .with_secret_access_key(&s3.secret_key)
            .with_bucket_name(&s3.bucket)
            .with_region("us-east-1")
            .with_allow_http(true)
            .build()
            .unwrap(),
    );
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let prefix = format!("vmig-tests/source-faiss/{}-{nanos}", std::process::id());
    for name in ["ivf_sprs", "idmap_flat", "binary_idmap", "hnsw_flat"] {
        let key = format!("{prefix}/{name}.faiss");
        let bytes = std::fs::read(fixture_path(name)).unwrap();
        store
            .put(&StorePath::from(key.as_str()), bytes.into())
            .await
            .unwrap();
        let src = build(json!({
            "path": format!("s3://{}/{key}", s3.bucket),
            "storage": s3.storage_options(),
            "partition_rows": 300,
        }))
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let (ids, vecs) = read_all(src.as_ref(), &ctx(64)).await;
        let (want_ids, want_vecs) = expected(name);
        assert_eq!(ids, want_ids, "{name}");
        assert!(vecs == want_vecs, "{name}");
        store.delete(&StorePath::from(key.as_str())).await.unwrap();
    }
    let err = build(json!({
        "path": format!("s3://{}/{prefix}/missing.faiss", s3.bucket),
        "storage": s3.storage_options(),
    }))
    .await
    .unwrap_err();
    assert!(err.to_string().contains("missing.faiss"), "{err}");
}

/// An IndexIVFFlatDedup: its lists grouped as for any IVF index, then its 70 duplicates in
/// partitions of their own; resuming inside the duplicates yields exactly the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedup_duplicates_are_partitions_of_their_own() {
    let src = build(json!({ "path": fixture_path("ivf_dedup"), "partition_rows": 30 }))
        .await
        .unwrap();
    let parts = src.partitions().await.unwrap();
    let ids: Vec<_> = parts.iter().map(|p| p.id.0.as_str()).collect();
    // List sizes (manifest.json): 55, 26, 49, 39, 42, 25, 31, 33; then 70 duplicates.
    assert_eq!(
        &ids[ids.len() - 3..],
        ["duplicates-0-30", "duplicates-30-60", "duplicates-60-70"]
    );
    assert_eq!(
        parts.last().unwrap().description,
        "IndexIVFFlatDedup duplicates 60..70 (restored from its instances table)"
    );
    let (want_ids, want_vecs) = expected("ivf_dedup");
    let c = ctx(7);
    let p = &parts[parts.len() - 2];
    let full = read_partition(src.as_ref(), &p.id, None, &c).await.unwrap();
    assert_eq!(full.ids, want_ids[300 + 30..300 + 60]);
    assert!(full.vecs == want_vecs[(300 + 30) * 32..(300 + 60) * 32]);
    let (pos, _, _) = &full.batches[1];
    let rest = read_partition(src.as_ref(), &p.id, Some(pos), &c)
        .await
        .unwrap();
    assert_eq!(rest.ids, want_ids[300 + 44..300 + 60]);
    let (ids, vecs) = read_all(src.as_ref(), &c).await;
    assert_eq!((ids, vecs), (want_ids, want_vecs));
}

/// An id map over an IVF index whose lists store an inner id outside the id map: the stream
/// fails naming the file, the byte holding that inner id, the list and the id map's size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inner_id_outside_the_id_map_is_located() {
    let bytes = std::fs::read(fixture_path("idmap2_ivf")).unwrap();
    let layout = vmig_formats::faiss::parse_layout(&bytes, "x").unwrap();
    let b = layout.blocks[2];
    let vmig_formats::faiss::BlockIds::Mapped { offset } = b.ids else {
        panic!("{:?}", b.ids)
    };
    let at = offset as usize + 5 * 8;
    let mut bad = bytes.clone();
    bad[at..at + 8].copy_from_slice(&(-3i64).to_le_bytes());
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bad.faiss");
    std::fs::write(&path, bad).unwrap();
    let src = build(json!({ "path": path })).await.unwrap();
    let p = &src.partitions().await.unwrap()[0];
    let err = read_partition(src.as_ref(), &p.id, None, &ctx(1000))
        .await
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        format!(
            "invalid data at {} at byte {at}: entry 5 of inverted list 2 stores the inner id -3, \
             but the id map of the IndexIDMap2 has 600 ids (inner ids 0..600): the file is \
             corrupted, or remove_ids changed the index in a way its id map no longer describes",
            path.display()
        )
    );
}
