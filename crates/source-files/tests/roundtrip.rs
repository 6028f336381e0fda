//! Round trips through the real sink and source: rows → `files` sink (vmig's staging output in
//! each format) → `files` source → `files` sink (Parquet) → the same rows, every value and
//! vector bit; and milvus-migration's dump layouts (per-segment `id.npy`/`data.npy`, row-based
//! ES JSON) written by real NumPy / Python's json module, read as milvus-migration wrote them.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::Int64Type;
use common::sorted_by_id;
use vmig_core::pipeline::{NoProgress, Pipeline};
use vmig_core::registry::{self, BuildContext};
use vmig_core::Source;
use vmig_parsers as _;
use vmig_sink_files as _;
use vmig_source_files as _;
use vmig_testing::compare::{float_bits, parquet_dir_batches, same_values};
use vmig_testing::conformance::{check_source, read_all, read_all_rows};
use vmig_testing::mock::MockSource;

async fn source(config: serde_json::Value) -> Box<dyn Source> {
    common::build(config).await.unwrap()
}

async fn run(source: Box<dyn Source>, sink: serde_json::Value) -> u64 {
    let sink = registry::parse_sink("files", sink)
        .unwrap()
        .build(&BuildContext::default())
        .await
        .unwrap();
    Pipeline::new(source, sink)
        .run(Arc::new(NoProgress))
        .await
        .unwrap()
        .rows_written
}

/// Every column of `want` is in `dir`'s Parquet output with the same values.
fn assert_parquet_holds(dir: &Path, want: &RecordBatch, what: &str) {
    let got = parquet_dir_batches(dir);
    assert!(!got.is_empty(), "{what}: no output");
    let got = sorted_by_id(&concat_batches(&got[0].schema(), &got).unwrap());
    let want = sorted_by_id(want);
    assert_eq!(got.num_rows(), want.num_rows(), "{what}: row count");
    for field in want.schema().fields() {
        let name = field.name();
        let column = got
            .column_by_name(name)
            .unwrap_or_else(|| panic!("{what}: no column {name} in {:?}", got.schema()));
        assert!(
            same_values(column.as_ref(), want.column_by_name(name).unwrap().as_ref()),
            "{what}: column {name} differs"
        );
    }
}

/// The sample rows, without their nullable column for formats that hold no nulls.
fn sample(nulls: bool) -> Vec<RecordBatch> {
    (0..3)
        .map(|i| {
            let b = vmig_testing::gen::sample_batch(i, i as i64 * 400, 400, 8);
            if nulls {
                return b;
            }
            let keep: Vec<usize> = (0..b.num_columns())
                .filter(|&c| !b.schema().field(c).is_nullable())
                .collect();
            b.project(&keep).unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staging_output_of_every_format_reads_back_identically() {
    for (format, nulls) in [("parquet", true), ("json", true), ("numpy", false)] {
        let batches = sample(nulls);
        let schema = batches[0].schema();
        let want = concat_batches(&schema, &batches).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let staged = dir.path().join("staged");
        let mock = MockSource {
            schema: schema.clone(),
            partitions: batches.iter().map(|b| vec![b.clone()]).collect(),
            fail_at: None,
            target_partitions: Vec::new(),
        };
        // Small files, so that the source reads several.
        let written = run(
            Box::new(mock),
            serde_json::json!({ "path": &staged, "format": format, "max_file_size": "16KiB" }),
        )
        .await;
        assert_eq!(written, want.num_rows() as u64, "{format}");

        let source = source(serde_json::json!({ "path": &staged })).await;
        let parts = source.partitions().await.unwrap();
        assert!(parts.len() > 1, "{format}: {} partitions", parts.len());
        let out = dir.path().join("out");
        let copied = run(
            source,
            serde_json::json!({ "path": &out, "format": "parquet" }),
        )
        .await;
        assert_eq!(copied, want.num_rows() as u64, "{format}");
        assert_parquet_holds(&out, &want, format);
    }
}

/// milvus-migration's Faiss / Milvus 1.x dump: `<outputDir>/tables/<collection>/<segment>/`
/// holding `id.npy` (int64) and `data.npy` (float32, rows × dim; one of them in Fortran order),
/// and a `meta.json` at the top, written here by real NumPy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_milvus_migration_numpy_dump_loads() {
    let Some(python) = vmig_testing::service::python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
import json, os, sys
import numpy as np
out = sys.argv[1]
rng = np.random.default_rng(5)
first = 0
for seg, n in (("1700000000000000", 30), ("1700000000000001", 0), ("1700000000000002", 17)):
    d = os.path.join(out, "tables", "books", seg)
    os.makedirs(d)
    np.save(os.path.join(d, "id.npy"), np.arange(first, first + n, dtype=np.int64) * 3)
    v = rng.standard_normal((n, 16)).astype(np.float32)
    if n:
        v[0, 0] = -0.0
        v[0, 1] = np.frombuffer(np.uint32(1).tobytes(), dtype=np.float32)[0]
    # The last segment's vectors column by column (Fortran order), as a transposed array saves.
    np.save(os.path.join(d, "data.npy"), np.asfortranarray(v) if seg.endswith("2") else v)
    first += n
with open(os.path.join(out, "meta.json"), "w") as f:
    json.dump({"note": "what milvus-migration writes next to tables/"}, f)
ids = np.concatenate([np.load(os.path.join(out, "tables", "books", s, "id.npy")) for s in sorted(os.listdir(os.path.join(out, "tables", "books")))])
vecs = np.concatenate([np.load(os.path.join(out, "tables", "books", s, "data.npy")).reshape(-1, 16) for s in sorted(os.listdir(os.path.join(out, "tables", "books")))])
np.save(os.path.join(out, "expected-ids.npy"), ids)
np.save(os.path.join(out, "expected-vectors.npy"), vecs)
"#;
    vmig_testing::process::python(&python, script, &[dir.path()]);
    let collection = dir.path().join("tables/books");
    let source = source(serde_json::json!({ "path": &collection })).await;
    let names: Vec<String> = source
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["data", "id"]);
    assert_eq!(source.partitions().await.unwrap().len(), 3);
    let out = dir.path().join("out");
    assert_eq!(
        run(
            source,
            serde_json::json!({ "path": &out, "format": "parquet" })
        )
        .await,
        47
    );
    // The expectation comes from NumPy reading the same files back.
    let expected = |name: &str| {
        let parser = registry::parse_parser("npy", serde_json::json!({})).unwrap();
        let bytes = std::fs::read(dir.path().join(name)).unwrap();
        let mut p = parser
            .build(&vmig_core::ParseInput::new(name, 1000))
            .unwrap();
        let b = vmig_core::parse::parse_all(p.as_mut(), [bytes.as_slice()]).unwrap();
        b[0].column(0).clone()
    };
    let want = RecordBatch::try_from_iter([
        ("id", expected("expected-ids.npy")),
        ("data", expected("expected-vectors.npy")),
    ])
    .unwrap();
    assert_parquet_holds(&out, &want, "milvus-migration numpy dump");
}

/// milvus-migration's Elasticsearch dump: `<outputDir>/<index>/data_<task>_<n>.json`, each
/// `{"rows":[{"_id": …, <_source fields>}, …]}` (core/transform/es/parser/data_parser.go), here
/// written by Python's json module.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_milvus_migration_es_json_dump_loads() {
    let Some(python) = vmig_testing::service::python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
import json, os, sys
out = os.path.join(sys.argv[1], "products")
os.makedirs(out)
n = 0
for task, part, rows in ((1, 1, 20), (1, 2, 5), (2, 3, 12)):
    docs = []
    for _ in range(rows):
        docs.append({"_id": n, "title": f"item {n} ✓", "price": n * 1.5, "embedding": [n + 0.1, -0.0, 1e-45, 0.1]})
        n += 1
    with open(os.path.join(out, f"data_{task}_{part}.json"), "w") as f:
        f.write(json.dumps({"rows": docs}, ensure_ascii=False))
"#;
    vmig_testing::process::python(&python, script, &[dir.path()]);
    let source = source(serde_json::json!({ "path": dir.path().join("products") })).await;
    assert_eq!(source.partitions().await.unwrap().len(), 3);
    let out = dir.path().join("out");
    assert_eq!(
        run(
            source,
            serde_json::json!({ "path": &out, "format": "parquet" })
        )
        .await,
        37
    );
    let got = parquet_dir_batches(&out);
    let got = concat_batches(&got[0].schema(), &got).unwrap();
    let ids = got
        .column_by_name("_id")
        .unwrap()
        .as_primitive::<Int64Type>();
    let mut ids: Vec<i64> = ids.values().to_vec();
    ids.sort_unstable();
    assert_eq!(ids, (0..37).collect::<Vec<i64>>());
    // The JSON decimals become the nearest float32, as Milvus reads them.
    let emb = got.column_by_name("embedding").unwrap();
    let emb = arrow::compute::cast(
        emb,
        &arrow::datatypes::DataType::List(Arc::new(arrow::datatypes::Field::new(
            "item",
            arrow::datatypes::DataType::Float32,
            true,
        ))),
    )
    .unwrap();
    let first = emb.as_list::<i32>().value(0);
    let bits: Vec<u32> = first
        .as_primitive::<arrow::datatypes::Float32Type>()
        .values()
        .iter()
        .map(|x| x.to_bits())
        .collect();
    assert_eq!(bits[1], (-0.0f32).to_bits());
    assert_eq!(bits[2], 1, "1e-45 is the smallest subnormal float32");
    assert_eq!(bits[3], 0.1f32.to_bits());
}

/// Rows of two named target partitions and of none, written by the `files` sink: target
/// partition (`None` for the default one) → the batches of its rows.
fn partitioned_rows(nulls: bool) -> Vec<(Option<&'static str>, Vec<RecordBatch>)> {
    let batch = |seed, first, rows| {
        let b = vmig_testing::gen::sample_batch(seed, first, rows, 8);
        if nulls {
            return b;
        }
        let keep: Vec<usize> = (0..b.num_columns())
            .filter(|&c| !b.schema().field(c).is_nullable())
            .collect();
        b.project(&keep).unwrap()
    };
    vec![
        (Some("p2023"), vec![batch(1, 0, 150), batch(2, 150, 130)]),
        (Some("p2024"), vec![batch(3, 1000, 190)]),
        (None, vec![batch(4, 5000, 170)]),
    ]
}

/// Stages `rows` with the `files` sink in `format` (small files and row groups, so that each
/// partition is several units and large units split) at `dir`.
async fn stage_partitioned(
    dir: &Path,
    format: &str,
    rows: &[(Option<&'static str>, Vec<RecordBatch>)],
) {
    let mock = MockSource {
        schema: rows[0].1[0].schema(),
        partitions: rows.iter().map(|(_, b)| b.clone()).collect(),
        fail_at: None,
        target_partitions: rows.iter().map(|(p, _)| p.map(str::to_string)).collect(),
    };
    let total: usize = rows
        .iter()
        .flat_map(|(_, b)| b.iter().map(RecordBatch::num_rows))
        .sum();
    let written = run(
        Box::new(mock),
        serde_json::json!({
            "path": dir, "format": format, "max_file_size": "48KiB", "row_group_size": "2KiB"
        }),
    )
    .await;
    assert_eq!(written, total as u64, "{format}");
}

/// Reads every partition of `source` and returns, per target partition, its rows in id order
/// (and checks that every partition of the source says where its rows go in its description).
async fn rows_by_target(
    source: &dyn Source,
    what: &str,
) -> std::collections::BTreeMap<Option<String>, RecordBatch> {
    let mut by_target: std::collections::BTreeMap<Option<String>, Vec<RecordBatch>> =
        Default::default();
    for (info, batch) in read_all(source, 64).await.unwrap() {
        match &info.target_partition {
            Some(p) => assert!(
                info.description.ends_with(&format!(" → partition `{p}`")),
                "{what}: {info:?}"
            ),
            None => assert!(
                !info.description.contains("→ partition"),
                "{what}: {info:?}"
            ),
        }
        by_target
            .entry(info.target_partition.clone())
            .or_default()
            .push(batch);
    }
    by_target
        .into_iter()
        .map(|(p, b)| {
            (
                p,
                sorted_by_id(&concat_batches(&source.schema(), &b).unwrap()),
            )
        })
        .collect()
}

/// `got` holds exactly the rows of `want`: the same ids, the same vector bits and every other
/// value the same.
fn assert_same_rows(got: &RecordBatch, want: &[RecordBatch], what: &str) {
    let want = sorted_by_id(&concat_batches(&want[0].schema(), want).unwrap());
    let ids = |b: &RecordBatch| -> Vec<i64> {
        b.column_by_name("id")
            .unwrap()
            .as_primitive::<Int64Type>()
            .values()
            .to_vec()
    };
    assert_eq!(ids(got), ids(&want), "{what}: ids");
    assert_eq!(
        float_bits(got, "vector"),
        float_bits(&want, "vector"),
        "{what}: vector bits"
    );
    for field in want.schema().fields() {
        let name = field.name();
        assert!(
            same_values(
                got.column_by_name(name).unwrap().as_ref(),
                want.column_by_name(name).unwrap().as_ref()
            ),
            "{what}: column {name} differs"
        );
    }
}

/// vmig's staging output of a source with target partitions reads back with them: each unit's
/// `partition` (from `manifest.json`) is the target partition of the row sets and row ranges
/// made of it, holding exactly the rows written to it; `partitions = "none"` drops them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staging_output_keeps_its_target_partitions() {
    for (format, nulls) in [("parquet", true), ("numpy", false), ("json", true)] {
        let rows = partitioned_rows(nulls);
        let dir = tempfile::tempdir().unwrap();
        let staged = dir.path().join("staged");
        stage_partitioned(&staged, format, &rows).await;

        for partition_rows in [1 << 20, 40] {
            let what = format!("{format}, partition_rows {partition_rows}");
            let source = source(serde_json::json!({
                "path": &staged, "partition_rows": partition_rows
            }))
            .await;
            let parts = source.partitions().await.unwrap();
            for p in &parts {
                // The sink puts a partition's units in its folder: a partition id (the unit's
                // path) says which partition the manifest gave it.
                let folder = p.id.0.split_once('/').map(|(f, _)| f);
                let want = folder.filter(|f| ["p2023", "p2024"].contains(f));
                assert_eq!(p.target_partition.as_deref(), want, "{what}: {p:?}");
            }
            let targets: std::collections::BTreeSet<_> =
                parts.iter().map(|p| p.target_partition.clone()).collect();
            assert_eq!(
                targets,
                [None, Some("p2023".into()), Some("p2024".into())].into(),
                "{what}"
            );
            if partition_rows == 40 && format != "json" {
                // Units of more rows were split into row ranges, which keep their partition.
                let split: Vec<_> = parts.iter().filter(|p| p.id.0.contains('#')).collect();
                assert!(
                    split.iter().any(|p| p.target_partition.is_some()),
                    "{what}: no named partition was split: {parts:#?}"
                );
            }
            let got = rows_by_target(source.as_ref(), &what).await;
            assert_eq!(got.len(), rows.len(), "{what}");
            for (target, want) in &rows {
                let target = target.map(str::to_string);
                assert_same_rows(&got[&target], want, &format!("{what}, {target:?}"));
            }
            if partition_rows == 40 {
                // Resume at every position keeps the rows of every partition exact.
                check_source(source.as_ref(), 16).await;
            }
        }

        let source = source(serde_json::json!({ "path": &staged, "partitions": "none" })).await;
        let parts = source.partitions().await.unwrap();
        assert!(
            parts.iter().all(|p| p.target_partition.is_none()),
            "{format}: {parts:#?}"
        );
        let all: Vec<RecordBatch> = rows.iter().flat_map(|(_, b)| b.clone()).collect();
        let got = rows_by_target(source.as_ref(), format).await;
        assert_eq!(got.len(), 1, "{format}");
        assert_same_rows(&got[&None], &all, &format!("{format}, partitions = none"));
    }
}

/// A manifest that gives the `.npy` files of one unit directory two partitions is refused: the
/// rows of one set belong in one partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_numpy_unit_split_across_partitions_is_refused() {
    let rows = partitioned_rows(false);
    let dir = tempfile::tempdir().unwrap();
    let staged = dir.path().join("staged");
    stage_partitioned(&staged, "numpy", &rows).await;
    let path = staged.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let units = manifest["files"].as_array_mut().unwrap();
    let i = units
        .iter()
        .position(|u| u["partition"] == "p2023")
        .unwrap();
    let mut other = units[i].clone();
    let files = units[i]["files"].as_array_mut().unwrap();
    let rest = files.split_off(1);
    other["files"] = rest.into();
    other["partition"] = "p2024".into();
    units.insert(i + 1, other);
    std::fs::write(&path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    let e = common::build(serde_json::json!({ "path": &staged }))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("partition `p2023`") && e.contains("partition `p2024`"),
        "{e}"
    );
    // Without partitions, the same files are one row set again.
    let source = source(serde_json::json!({ "path": &staged, "partitions": "none" })).await;
    let got = read_all_rows(source.as_ref(), 1000).await.unwrap();
    assert_eq!(got.num_rows(), 640);
}
