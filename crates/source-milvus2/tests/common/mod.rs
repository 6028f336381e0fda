//! Fixtures for the `milvus2` source tests: deterministic rows of every type Milvus 2.3.5 has,
//! collections built from them once and reused, and whole-collection reads.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    ArrayRef, BooleanArray, FixedSizeBinaryArray, Float32Array, Float64Array, Int16Array,
    Int32Array, Int64Array, Int8Array, ListArray, StringArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use futures::TryStreamExt;
use vmig_core::vector;
use vmig_milvus::scan::{keyset_scan, ScanSpec};
use vmig_milvus::{collection_schema, ConnectOptions, MilvusClient, SchemaOptions};

pub struct Env {
    pub uri: String,
    pub user: String,
    pub password: String,
}

pub fn env() -> Option<Env> {
    let m = vmig_testing::service::milvus()?;
    Some(Env {
        uri: m.uri,
        user: m.user,
        password: m.password,
    })
}

impl Env {
    pub async fn client(&self) -> MilvusClient {
        let mut o = ConnectOptions::new(self.uri.clone());
        o.user = Some(self.user.clone());
        o.password = Some(self.password.clone());
        MilvusClient::connect(&o).await.unwrap()
    }

    /// Connection keys for a source or sink config, plus `extra`.
    pub fn config(&self, extra: serde_json::Value) -> serde_json::Value {
        let mut v = serde_json::json!({
            "uri": self.uri,
            "user": self.user,
            "password": self.password,
        });
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    }
}

/// Unique names for what a test creates (re-exported for the test files using `common::unique`).
#[allow(unused_imports)]
pub use vmig_testing::service::unique;

pub const DIM: usize = 8;

fn meta(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn list_field(name: &str, item: DataType, extra: &[(&str, &str)]) -> Field {
    Field::new_list(name, Field::new_list_field(item, true), false).with_metadata(meta(extra))
}

/// Every scalar type, three array types, a float vector, and the dynamic field.
pub fn all_types_schema() -> SchemaRef {
    Arc::new(
        Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("b", DataType::Boolean, false),
            Field::new("i8", DataType::Int8, false),
            Field::new("i16", DataType::Int16, false),
            Field::new("i32", DataType::Int32, false),
            Field::new("i64", DataType::Int64, false)
                .with_metadata(meta(&[("milvus.description", "a plain int64")])),
            Field::new("f32", DataType::Float32, false),
            Field::new("f64", DataType::Float64, false),
            Field::new("s", DataType::Utf8, false)
                .with_metadata(meta(&[("vmig.max_length", "64")])),
            vector::json_field("j", false),
            list_field("a_i64", DataType::Int64, &[("vmig.max_capacity", "8")]),
            list_field(
                "a_s",
                DataType::Utf8,
                &[("vmig.max_capacity", "4"), ("vmig.max_length", "16")],
            ),
            list_field("a_f32", DataType::Float32, &[("vmig.max_capacity", "5")]),
            vector::float_vector_field("v", DIM),
            vector::json_field("$meta", false),
        ])
        .with_metadata(meta(&[("vmig.primary_key", "id")])),
    )
}

/// Rows `start..start + n` of the all-types fixture (row `i` has id `i`).
pub fn all_types_rows(start: i64, n: usize) -> RecordBatch {
    let ids: Vec<i64> = (start..start + n as i64).collect();
    let f = |i: i64| (i as f32) * 0.25 - 1000.0;
    let lens: Vec<usize> = ids.iter().map(|i| (i % 4) as usize).collect();
    let offsets = || OffsetBuffer::from_lengths(lens.iter().copied());
    let a_i64: Vec<i64> = ids
        .iter()
        .flat_map(|&i| (0..i % 4).map(move |k| i * 10 + k - 7))
        .collect();
    let a_s: Vec<String> = ids
        .iter()
        .flat_map(|&i| (0..i % 4).map(move |k| format!("é{i}-{k}")))
        .collect();
    let a_f32: Vec<f32> = ids
        .iter()
        .flat_map(|&i| (0..i % 4).map(move |k| f(i) / (k + 1) as f32))
        .collect();
    let list = |item: DataType, values: ArrayRef| -> ArrayRef {
        Arc::new(
            ListArray::try_new(
                Arc::new(Field::new_list_field(item, true)),
                offsets(),
                values,
                None,
            )
            .unwrap(),
        )
    };
    let vecs: Vec<f32> = ids
        .iter()
        .flat_map(|&i| (0..DIM).map(move |d| ((i * 31 + d as i64) % 1009) as f32 / 7.0 - 50.0))
        .collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.clone())),
        Arc::new(BooleanArray::from(
            ids.iter().map(|i| i % 3 == 0).collect::<Vec<_>>(),
        )),
        Arc::new(Int8Array::from(
            ids.iter()
                .map(|i| (i % 256 - 128) as i8)
                .collect::<Vec<_>>(),
        )),
        Arc::new(Int16Array::from(
            ids.iter()
                .map(|i| (i % 65_536 - 32_768) as i16)
                .collect::<Vec<_>>(),
        )),
        Arc::new(Int32Array::from(
            ids.iter()
                .map(|i| (i * 7919 % 1_000_003) as i32 - 500_000)
                .collect::<Vec<_>>(),
        )),
        Arc::new(Int64Array::from(
            ids.iter()
                .map(|i| i.wrapping_mul(6_364_136_223_846_793_005))
                .collect::<Vec<_>>(),
        )),
        Arc::new(Float32Array::from(
            ids.iter().map(|&i| f(i)).collect::<Vec<_>>(),
        )),
        Arc::new(Float64Array::from(
            ids.iter()
                .map(|&i| (i as f64).sqrt() * -1e-3)
                .collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            ids.iter()
                .map(|i| format!("row \"{i}\" ✓"))
                .collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            ids.iter()
                .map(|i| {
                    format!(
                        r#"{{"n":{i},"tags":["a{}"],"nested":{{"x":{}}}}}"#,
                        i % 5,
                        i % 2 == 0
                    )
                })
                .collect::<Vec<_>>(),
        )),
        list(DataType::Int64, Arc::new(Int64Array::from(a_i64))),
        list(DataType::Utf8, Arc::new(StringArray::from(a_s))),
        list(DataType::Float32, Arc::new(Float32Array::from(a_f32))),
        Arc::new(vector::float_vector_array(Float32Array::from(vecs), DIM).unwrap()),
        Arc::new(StringArray::from(
            ids.iter()
                .map(|i| {
                    if i % 2 == 0 {
                        format!(r#"{{"dyn_k":{i},"dyn_s":"d{}"}}"#, i % 11)
                    } else {
                        "{}".to_string()
                    }
                })
                .collect::<Vec<_>>(),
        )),
    ];
    RecordBatch::try_new(all_types_schema(), columns).unwrap()
}

/// The partition row `i` is inserted into.
pub fn partition_of(i: i64) -> &'static str {
    match i % 3 {
        0 => "p_one",
        1 => "p_two",
        _ => "_default",
    }
}

/// Whether the fixture deletes row `i` after inserting it.
pub fn is_deleted(i: i64) -> bool {
    i % 97 == 5
}

/// Creates (once; reused while its row count is right) a loaded collection with `rows` rows
/// of [`all_types_rows`] spread over partitions `p_one`, `p_two` and `_default`, with the
/// rows [`is_deleted`] deleted, an IP FLAT index and the dynamic field on.
pub async fn ensure_all_types(client: &MilvusClient, name: &str, rows: usize) {
    let live = (0..rows as i64).filter(|&i| !is_deleted(i)).count() as u64;
    if client.has_collection(name).await.unwrap() {
        let ok = client.is_loaded(name).await.unwrap_or(false)
            && client.count(name).await.unwrap_or(0) == live;
        if ok {
            return;
        }
        client.drop_collection(name).await.unwrap();
    }
    let schema = all_types_schema();
    let opts = SchemaOptions {
        collection: name.to_string(),
        description: "vmig milvus2 source fixture".into(),
        ..Default::default()
    };
    let cs = collection_schema(&schema, &opts).unwrap();
    assert!(cs.enable_dynamic_field);
    client
        .create_collection(
            &cs,
            2,
            vmig_milvus::proto::common::ConsistencyLevel::Session,
        )
        .await
        .unwrap();
    for p in ["p_one", "p_two"] {
        client.create_partition(name, p).await.unwrap();
    }
    let chunk = 10_000;
    let mut start = 0i64;
    while (start as usize) < rows {
        let n = chunk.min(rows - start as usize);
        let batch = all_types_rows(start, n);
        for p in ["p_one", "p_two", "_default"] {
            let keep: Vec<u32> = (0..n as u32)
                .filter(|&r| partition_of(start + r as i64) == p)
                .collect();
            let part =
                arrow::compute::take_record_batch(&batch, &arrow::array::UInt32Array::from(keep))
                    .unwrap();
            client.insert(name, Some(p), &part, false).await.unwrap();
        }
        start += n as i64;
    }
    let deleted: Vec<i64> = (0..rows as i64).filter(|&i| is_deleted(i)).collect();
    for ids in deleted.chunks(1000) {
        let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        client
            .delete(name, None, &format!("id in [{list}]"))
            .await
            .unwrap();
    }
    client.flush(name, Duration::from_secs(600)).await.unwrap();
    client
        .create_index(name, "v", "FLAT", "IP", &serde_json::Value::Null)
        .await
        .unwrap();
    client.load(name, Duration::from_secs(600)).await.unwrap();
    assert_eq!(client.count(name).await.unwrap(), live);
}

/// Every row of `collection` (the fields of `schema`), in key order, optionally of some
/// partitions only.
pub async fn read_all(
    client: &MilvusClient,
    collection: &str,
    schema: &SchemaRef,
    partitions: &[&str],
) -> RecordBatch {
    let info = client.describe_collection(collection).await.unwrap();
    let spec = ScanSpec {
        collection: collection.to_string(),
        partitions: partitions.iter().map(|p| p.to_string()).collect(),
        pk_field: info.primary_key.clone(),
        filter: String::new(),
        schema: Arc::clone(schema),
        page_rows: 5000,
        snapshot_ts: 0,
        retry: Default::default(),
    };
    let pages: Vec<RecordBatch> = keyset_scan(client.clone(), spec, None)
        .map_ok(|(b, _)| b)
        .try_collect()
        .await
        .unwrap();
    concat_batches(schema, &pages).unwrap()
}

/// A binary-vector collection with VarChar keys (quotes, backslashes, non-ASCII), loaded.
pub async fn ensure_varchar(client: &MilvusClient, name: &str, rows: usize) -> RecordBatch {
    let schema = Arc::new(
        Schema::new(vec![
            Field::new("key", DataType::Utf8, false)
                .with_metadata(meta(&[("vmig.max_length", "40")])),
            vector::binary_vector_field("bv", 16).unwrap(),
            Field::new("n", DataType::Int32, false),
        ])
        .with_metadata(meta(&[("vmig.primary_key", "key")])),
    );
    let keys: Vec<String> = (0..rows)
        .map(|i| match i % 4 {
            0 => format!("k{i:05}"),
            1 => format!("quote\"{i}"),
            2 => format!("back\\slash{i}"),
            _ => format!("ключ-{i}"),
        })
        .collect();
    let bytes: Vec<u8> = (0..rows * 2).map(|i| (i * 37 % 251) as u8).collect();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(keys)),
            Arc::new(FixedSizeBinaryArray::try_new(2, bytes.into(), None).unwrap()),
            Arc::new(Int32Array::from((0..rows as i32).collect::<Vec<_>>())),
        ],
    )
    .unwrap();
    let fresh = client.has_collection(name).await.unwrap()
        && client.is_loaded(name).await.unwrap_or(false)
        && client.count(name).await.unwrap_or(0) == rows as u64;
    if !fresh {
        if client.has_collection(name).await.unwrap() {
            client.drop_collection(name).await.unwrap();
        }
        let opts = SchemaOptions {
            collection: name.to_string(),
            ..Default::default()
        };
        let cs = collection_schema(&schema, &opts).unwrap();
        client
            .create_collection(
                &cs,
                1,
                vmig_milvus::proto::common::ConsistencyLevel::Bounded,
            )
            .await
            .unwrap();
        client.insert(name, None, &batch, false).await.unwrap();
        client.flush(name, Duration::from_secs(600)).await.unwrap();
        client
            .create_index(name, "bv", "BIN_FLAT", "HAMMING", &serde_json::Value::Null)
            .await
            .unwrap();
        client.load(name, Duration::from_secs(600)).await.unwrap();
    }
    batch
}
