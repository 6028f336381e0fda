//! The `milvus2` source against a real Milvus 2.3.5 (`VMIG_MILVUS_URI`): copies into new
//! collections on the same server and compares every field of every row with the generated
//! data. The 200k-row source fixture is built once and reused (`m2src_all_v1`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::num::NonZeroUsize;
use std::sync::Arc;

use arrow::array::{Array, AsArray, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::{Int64Type, SchemaRef};
use arrow::record_batch::RecordBatch;
use serde_json::{json, Value};
use vmig_core::pipeline::{NoProgress, Pipeline, PipelineOptions, RunReport};
use vmig_core::registry::{parse_sink, parse_source, BuildContext};
use vmig_core::Result;
use vmig_milvus::MilvusClient;
use vmig_sink_milvus2 as _;
use vmig_source_milvus2 as _;

mod common;
use common::*;

const FIXTURE: &str = "m2src_all_v1";
const FIXTURE_ROWS: usize = 200_000;

async fn copy(env: &Env, source: Value, target: &str) -> Result<RunReport> {
    let ctx = BuildContext::default();
    let source = parse_source("milvus2", env.config(source))?
        .build(&ctx)
        .await?;
    let sink = parse_sink(
        "milvus2",
        env.config(json!({ "collection": target, "load": true })),
    )?
    .build(&ctx)
    .await?;
    let options = PipelineOptions {
        concurrency: NonZeroUsize::new(3).unwrap(),
        ..Default::default()
    };
    Pipeline::new(source, sink)
        .with_options(options)
        .run(Arc::new(NoProgress))
        .await
}

/// The generated rows `0..rows` that `keep` accepts, minus deleted ones, with `schema`.
fn expected_rows(
    rows: usize,
    schema: &SchemaRef,
    keep: impl Fn(&RecordBatch, usize) -> bool,
) -> RecordBatch {
    let all = all_types_rows(0, rows);
    let idx: Vec<u32> = (0..rows)
        .filter(|&r| !is_deleted(r as i64) && keep(&all, r))
        .map(|r| r as u32)
        .collect();
    let taken = take_record_batch(&all, &UInt32Array::from(idx)).unwrap();
    taken.with_schema(Arc::clone(schema)).unwrap()
}

/// Compares column by column, naming the first differing row (floats compared by bits, since
/// Arrow equality on float arrays is by value).
fn assert_same(got: &RecordBatch, want: &RecordBatch, what: &str) {
    assert_eq!(got.num_rows(), want.num_rows(), "{what}: row count");
    for (i, f) in want.schema().fields().iter().enumerate() {
        let g = got
            .column_by_name(f.name())
            .unwrap_or_else(|| panic!("{what}: no `{}`", f.name()));
        let w = want.column(i);
        if g.to_data() != w.to_data() {
            let row = (0..w.len())
                .find(|&r| g.slice(r, 1).to_data() != w.slice(r, 1).to_data())
                .unwrap_or(0);
            panic!(
                "{what}: field `{}` differs at row {row}: got {:?}, want {:?}",
                f.name(),
                g.slice(row, 1),
                w.slice(row, 1)
            );
        }
    }
}

async fn drop(client: &MilvusClient, name: &str) {
    let _ = client.drop_collection(name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_every_type_exactly_and_verifies() -> Result<()> {
    let Some(env) = env() else { return Ok(()) };
    let client = env.client().await;
    ensure_all_types(&client, FIXTURE, FIXTURE_ROWS).await;
    let target = unique("m2src_copy");
    let report = copy(&env, json!({ "collection": FIXTURE }), &target).await?;
    let live = (0..FIXTURE_ROWS as i64).filter(|&i| !is_deleted(i)).count() as u64;
    assert_eq!(report.rows_written, live);
    assert_eq!(
        report.partitions, 3,
        "one work partition per Milvus partition"
    );

    // The collection is recreated faithfully.
    let src = client.describe_collection(FIXTURE).await?;
    let dst = client.describe_collection(&target).await?;
    assert_eq!(
        dst.arrow.fields(),
        src.arrow.fields(),
        "fields and their properties"
    );
    assert!(dst.dynamic_field);
    assert_eq!(dst.shards, 2);
    assert_eq!(dst.consistency_level, src.consistency_level);
    assert_eq!(dst.description, "vmig milvus2 source fixture");
    assert!(!dst.auto_id);
    let mut parts = client.show_partitions(&target).await?;
    parts.sort();
    assert_eq!(parts, ["_default", "p_one", "p_two"]);
    let idx = client.describe_indexes(&target).await?;
    assert_eq!(idx.len(), 1);
    assert_eq!(
        (idx[0].index_type.as_str(), idx[0].metric_type.as_str()),
        ("FLAT", "IP")
    );

    // Every field of every row, against the generated data (not against a second read).
    let schema = all_types_schema();
    let got = read_all(&client, &target, &src.arrow, &[]).await;
    assert_same(
        &got,
        &expected_rows(FIXTURE_ROWS, &src.arrow, |_, _| true),
        "copy",
    );
    // Rows stay in their partitions.
    for p in ["p_one", "p_two", "_default"] {
        let got = read_all(&client, &target, &src.arrow, &[p]).await;
        let ids = got
            .column_by_name("id")
            .unwrap()
            .as_primitive::<Int64Type>();
        assert!(ids.values().iter().all(|&i| partition_of(i) == p), "{p}");
        let want = (0..FIXTURE_ROWS as i64)
            .filter(|&i| !is_deleted(i) && partition_of(i) == p)
            .count();
        assert_eq!(got.num_rows(), want, "{p}");
    }
    assert_eq!(schema.fields().len(), src.arrow.fields().len());

    // `vmig verify`'s comparison: the source read again against the target read back.
    let ctx = BuildContext::default();
    let source = parse_source("milvus2", env.config(json!({ "collection": FIXTURE })))?
        .build(&ctx)
        .await?;
    let reader = parse_sink("milvus2", env.config(json!({ "collection": target })))?
        .open_target(&ctx, &source.schema())
        .await?
        .expect("the milvus2 sink reads back");
    let verdict = vmig_core::verify::verify(source.as_ref(), &[], reader.as_ref(), "id", 5).await?;
    assert!(verdict.is_match(), "{verdict:?}");
    assert_eq!(verdict.source_rows, live);
    drop(&client, &target).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_copies_exactly_the_matching_rows() -> Result<()> {
    let Some(env) = env() else { return Ok(()) };
    let client = env.client().await;
    ensure_all_types(&client, FIXTURE, FIXTURE_ROWS).await;
    let target = unique("m2src_filter");
    let filter = "id >= 1000 and id < 40000 and b == true and dyn_k >= 0";
    let report = copy(
        &env,
        json!({ "collection": FIXTURE, "filter": filter, "partitions": ["p_one", "_default"], "batch_size": 1000 }),
        &target,
    )
    .await?;
    let src = client.describe_collection(FIXTURE).await?;
    // b == (i % 3 == 0) → partition p_one only; dyn_k exists on even ids.
    let want = expected_rows(40_000, &src.arrow, |_, r| {
        let i = r as i64;
        i >= 1000 && i % 3 == 0 && i % 2 == 0
    });
    assert_eq!(report.rows_written, want.num_rows() as u64);
    let got = read_all(&client, &target, &src.arrow, &[]).await;
    assert_same(&got, &want, "filtered copy");
    drop(&client, &target).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn varchar_keys_page_correctly() -> Result<()> {
    let Some(env) = env() else { return Ok(()) };
    let client = env.client().await;
    let name = "m2src_varchar_v1";
    let batch = ensure_varchar(&client, name, 2_500).await;
    let target = unique("m2src_vcopy");
    let report = copy(
        &env,
        json!({ "collection": name, "batch_size": 97 }),
        &target,
    )
    .await?;
    assert_eq!(report.rows_written, 2_500);
    let src = client.describe_collection(name).await?;
    let got = read_all(&client, &target, &src.arrow, &[]).await;
    // Expected: the generated rows sorted by key (Milvus orders VarChar keys bytewise).
    let keys = batch.column(0).as_string::<i32>();
    let mut order: Vec<u32> = (0..batch.num_rows() as u32).collect();
    order.sort_by(|&a, &b| {
        keys.value(a as usize)
            .as_bytes()
            .cmp(keys.value(b as usize).as_bytes())
    });
    let want = take_record_batch(&batch, &UInt32Array::from(order))
        .unwrap()
        .with_schema(Arc::clone(&src.arrow))
        .unwrap();
    assert_same(&got, &want, "varchar copy");
    drop(&client, &target).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unloaded_source_fails_clearly_unless_load_is_set() -> Result<()> {
    let Some(env) = env() else { return Ok(()) };
    let client = env.client().await;
    let name = unique("m2src_unloaded");
    ensure_varchar(&client, &name, 300).await;
    client.release(&name).await?;
    let ctx = BuildContext::default();
    let err = parse_source("milvus2", env.config(json!({ "collection": name })))?
        .build(&ctx)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("is not loaded") && err.contains("load = true"),
        "{err}"
    );

    let target = unique("m2src_loadcopy");
    let report = copy(&env, json!({ "collection": name, "load": true }), &target).await?;
    assert_eq!(report.rows_written, 300);
    assert!(
        !client.is_loaded(&name).await?,
        "vmig loaded it, so vmig released it"
    );
    drop(&client, &target).await;
    drop(&client, &name).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_id_keys_are_kept_or_regenerated_and_the_partition_key_survives() -> Result<()> {
    use arrow::array::{Float32Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::time::Duration;
    use vmig_core::vector;
    let Some(env) = env() else { return Ok(()) };
    let client = env.client().await;
    let name = unique("m2src_autoid");
    let schema = Arc::new(Schema::new(vec![
        Field::new("cat", DataType::Utf8, false)
            .with_metadata([("milvus.partition_key", "true"), ("vmig.max_length", "8")]),
        vector::float_vector_field("v", 4),
    ]));
    let opts = vmig_milvus::SchemaOptions {
        collection: name.clone(),
        auto_id: true,
        ..Default::default()
    };
    let cs = vmig_milvus::collection_schema(&schema, &opts)?;
    client
        .create_collection_with(&cs, 1, vmig_milvus::Consistency::Bounded, 5)
        .await?;
    let rows = 1_000;
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(
                (0..rows).map(|i| format!("c{}", i % 7)).collect::<Vec<_>>(),
            )),
            Arc::new(vector::float_vector_array(
                Float32Array::from((0..rows * 4).map(|i| i as f32 * 0.5).collect::<Vec<_>>()),
                4,
            )?),
        ],
    )?;
    client.insert(&name, None, &batch, false).await?;
    client.flush(&name, Duration::from_secs(300)).await?;
    client
        .create_index(&name, "v", "FLAT", "L2", &Value::Null)
        .await?;
    client.load(&name, Duration::from_secs(300)).await?;

    let src = client.describe_collection(&name).await?;
    assert!(src.auto_id && src.partition_key.as_deref() == Some("cat"));
    let want = read_all(&client, &name, &src.arrow, &[]).await;

    let kept = unique("m2src_kept");
    let report = copy(&env, json!({ "collection": name }), &kept).await?;
    assert_eq!((report.rows_written, report.partitions), (rows as u64, 1));
    let dst = client.describe_collection(&kept).await?;
    assert!(!dst.auto_id, "kept keys: the copy does not generate them");
    assert_eq!(dst.partition_key.as_deref(), Some("cat"));
    assert_eq!(client.show_partitions(&kept).await?.len(), 5);
    let got = read_all(&client, &kept, &src.arrow, &[]).await;
    assert_same(&got, &want, "auto_id copy with kept keys");

    let fresh = unique("m2src_regen");
    let report = copy(
        &env,
        json!({ "collection": name, "ids": "regenerate" }),
        &fresh,
    )
    .await?;
    assert_eq!(report.rows_written, rows as u64);
    let dst = client.describe_collection(&fresh).await?;
    assert!(dst.auto_id);
    assert_eq!(client.count(&fresh).await?, rows as u64);
    for c in [&kept, &fresh, &name] {
        drop(&client, c).await;
    }
    Ok(())
}
