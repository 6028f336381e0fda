//! `vmig migrate` with a `milvus1` job: a generated Milvus 1.x data directory into Parquet files,
//! one folder per 1.x partition, every row compared bit-exactly with the generator's.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use vmig_testing::milvus1::{standard, FileType, Metric, Milvus1Gen, Row};

/// The rows of every Parquet file directly in `dir`, sorted by id.
fn parquet_rows(dir: &Path) -> Vec<Row> {
    let mut rows = Vec::new();
    for batch in vmig_testing::compare::parquet_dir_batches(dir) {
        let ids = batch.column(0).as_primitive::<Int64Type>();
        let vectors = batch.column(1).as_ref();
        for r in 0..batch.num_rows() {
            rows.push(Row {
                id: ids.value(r),
                vector: vmig_testing::compare::vector_bytes(vectors, r),
            });
        }
    }
    rows.sort();
    rows
}

#[tokio::test]
async fn migrate_milvus1_directory_to_parquet_partition_folders() {
    let g = standard(99);
    let data = tempfile::tempdir().unwrap();
    g.write_dir(data.path()).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let job = work.path().join("job.toml");
    std::fs::write(
        &job,
        format!(
            "[source]\ntype = \"milvus1\"\npath = \"{}\"\ncollections = [\"books\"]\n\n\
             [sink]\ntype = \"files\"\nformat = \"parquet\"\npath = \"{}\"\n",
            data.path().display(),
            out.display()
        ),
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_vmig"))
        .args(["migrate", job.to_str().unwrap(), "--json"])
        .env_remove("VMIG_LOG")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let want = g.expected("books");
    let total: usize = want.values().map(Vec::len).sum();
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["rows_written"], total as u64);
    let mut got = BTreeMap::new();
    for (tag, rows) in &want {
        let mut rows = rows.clone();
        rows.sort();
        let dir = if tag.is_empty() {
            out.clone()
        } else {
            out.join(tag)
        };
        got.insert(tag.clone(), parquet_rows(&dir));
        assert_eq!(got[tag], rows, "partition `{tag}`");
    }
    assert!(
        !out.join("p2019").exists(),
        "a dropped partition was written"
    );

    // `vmig verify` re-reads the 1.x directory and the Parquet output and finds them equal.
    let v = Command::new(env!("CARGO_BIN_EXE_vmig"))
        .args(["verify", job.to_str().unwrap()])
        .env_remove("VMIG_LOG")
        .output()
        .unwrap();
    assert!(
        v.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
}

/// Issue #11: `vmig plan` shows how 1.x partition tags that are not Milvus 2.x names are mapped,
/// in the schema metadata (every renamed tag, even one without segments) and per segment.
#[tokio::test]
async fn plan_shows_the_partition_tag_mapping() {
    let mut g = Milvus1Gen::new(5);
    let c = g.collection("c", 4, Metric::L2);
    g.segment(c, 2, &[], FileType::Raw);
    let p = g.partition(c, "2021");
    g.segment(p, 3, &[], FileType::Raw);
    g.partition(c, "2023-q1");
    let data = tempfile::tempdir().unwrap();
    g.write_dir(data.path()).await.unwrap();
    let job = data.path().join("job.toml");
    std::fs::write(
        &job,
        format!(
            "[source]\ntype = \"milvus1\"\npath = \"{}\"\n\n\
             [sink]\ntype = \"files\"\nformat = \"parquet\"\npath = \"{}\"\n",
            data.path().display(),
            data.path().join("out").display()
        ),
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_vmig"))
        .args(["plan", job.to_str().unwrap()])
        .env_remove("VMIG_LOG")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        text.contains(
            "  vmig.milvus1.partition_tags = {\"2021\":\"p_2021\",\"2023-q1\":\"p_2023_q1\"}\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("c, partition `2021` (→ `p_2021`, mapped): segment "),
        "{text}"
    );
}
