//! The `files` source end to end through the `vmig` binary: Parquet files written by pyarrow
//! on the S3 test server, read with one glob into the real Milvus 2.3.5 by insert and by bulk
//! import, then `vmig verify` clean; and the errors a user meets with data files.
#![allow(clippy::unwrap_used)]

mod common;

use common::{assert_verify_clean, vmig_cmd, vmig_milvus, write_job};
use vmig_testing::process::output_text;
use vmig_testing::service::{milvus, python, unique, S3};

/// Writes `files` Parquet files of `rows` rows each under `s3://<bucket>/<prefix>/` with pyarrow
/// (vectors as List<float32>, several row groups, zstd), and one unrelated `README.txt`.
fn put_parquet(python: &str, s3: &S3, prefix: &str, files: usize, rows: usize) {
    let endpoint = s3
        .endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let script = r#"
import sys
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
from pyarrow import fs
endpoint, key, secret, bucket, prefix, files, rows = sys.argv[1:8]
files, rows = int(files), int(rows)
s3 = fs.S3FileSystem(access_key=key, secret_key=secret, endpoint_override=endpoint, scheme="http", region="us-east-1")
rng = np.random.default_rng(3)
d = 32
for f in range(files):
    ids = np.arange(f * rows, (f + 1) * rows, dtype=np.int64)
    v = rng.standard_normal((rows, d)).astype(np.float32)
    v[0, 0] = -0.0
    v[0, 1] = np.frombuffer(np.uint32(1).tobytes(), dtype=np.float32)[0]
    offsets = pa.array(np.arange(0, (rows + 1) * d, d, dtype=np.int32))
    table = pa.table({
        "id": ids,
        "vector": pa.ListArray.from_arrays(offsets, pa.array(v.reshape(-1))),
        "title": pa.array([f"doc {i} ✓" for i in ids]),
        "score": pa.array(ids.astype(np.float64) / 7),
    })
    pq.write_table(table, f"{bucket}/{prefix}/part-{f:03}.parquet", filesystem=s3, row_group_size=max(rows // 3, 1), compression="zstd")
with s3.open_output_stream(f"{bucket}/{prefix}/README.txt") as out:
    out.write(b"not data")
"#;
    vmig_testing::process::python(
        python,
        script,
        &[
            endpoint,
            &s3.access_key,
            &s3.secret_key,
            &s3.bucket,
            prefix,
            &files.to_string(),
            &rows.to_string(),
        ],
    );
}

/// The `[source]` table reading `s3://<bucket>/<prefix>/*.parquet`.
fn source(s3: &S3, prefix: &str) -> String {
    let storage: Vec<String> = s3
        .storage_options()
        .iter()
        .map(|(k, v)| format!("{k} = \"{v}\""))
        .collect();
    format!(
        "[source]\ntype = \"files\"\npath = \"s3://{}/{prefix}/*.parquet\"\npartition_rows = 1000\nstorage = {{ {} }}\n",
        s3.bucket,
        storage.join(", ")
    )
}

#[test]
fn a_parquet_glob_on_s3_migrates_into_milvus_by_insert_and_bulk_and_verifies() {
    let (Some(py), Some(s3), Some(m)) = (python(), S3::from_env(), milvus()) else {
        return;
    };
    let prefix = unique("files-parquet");
    put_parquet(&py, &s3, &prefix, 3, 1500);
    let dir = tempfile::tempdir().unwrap();
    let stage = std::env::var("VMIG_MILVUS_STAGE").unwrap_or_default();
    for mode in ["insert", "bulk"] {
        let collection = unique(&format!("files_{mode}"));
        let bulk = if mode == "bulk" {
            format!("stage = \"{}/{collection}\"\n", stage.trim_end_matches('/'))
        } else {
            String::new()
        };
        let job = write_job(
            dir.path(),
            mode,
            &format!(
                "{}\n[sink]\ntype = \"milvus2\"\nuri = \"{}\"\nuser = \"{}\"\npassword = \"${{VMIG_TEST_MILVUS_PASSWORD}}\"\ncollection = \"{collection}\"\nmode = \"{mode}\"\n{bulk}index = {{ type = \"IVF_FLAT\", metric = \"L2\", params = {{ nlist = 16 }} }}\nload = true\n",
                source(&s3, &prefix),
                m.uri,
                m.user
            ),
        );
        let job = job.to_str().unwrap();
        // The plan shows the files as partitions (1,500 rows each, split at 1,000).
        let plan = vmig_milvus(&["plan", job, "--json"], &m);
        assert!(plan.status.success(), "{}", output_text(&plan));
        let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
        let text = plan.to_string();
        assert!(text.contains("part-000.parquet#0..1000"), "{text}");
        assert!(text.contains("part-002.parquet#1000..1500"), "{text}");
        assert!(!text.contains("README"), "{text}");

        let o = vmig_milvus(&["migrate", job, "--state", "none", "--json"], &m);
        assert!(o.status.success(), "{mode}: {}", output_text(&o));
        let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(summary["rows_written"], 4500, "{mode}: {summary}");
        let v = vmig_milvus(&["verify", job, "--json"], &m);
        assert_verify_clean(&v, 4500);
        m.drop_collection(&collection);
    }
}

#[test]
fn data_file_mistakes_fail_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // A truncated fvecs file: 2 records of dimension 4 and 3 bytes of a third.
    let mut bytes = Vec::new();
    for r in 0..2 {
        bytes.extend_from_slice(&4i32.to_le_bytes());
        for c in 0..4 {
            bytes.extend_from_slice(&((r * 4 + c) as f32).to_le_bytes());
        }
    }
    bytes.extend_from_slice(&[4, 0, 0]);
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("base.fvecs"), &bytes).unwrap();
    let out = dir.path().join("out");
    let job = write_job(
        dir.path(),
        "truncated",
        &format!(
            "[source]\ntype = \"files\"\npath = \"{}\"\n\n[sink]\ntype = \"files\"\npath = \"{}\"\n",
            data.display(),
            out.display()
        ),
    );
    let o = vmig_cmd(&["migrate", job.to_str().unwrap(), "--state", "none"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("base.fvecs"), "{err}");
    assert!(err.contains("truncated"), "{err}");
    assert!(!out.exists(), "nothing is written: {err}");

    // A glob that matches nothing, and an option of another format.
    let job = write_job(
        dir.path(),
        "nothing",
        &format!(
            "[source]\ntype = \"files\"\npath = \"{}/*.parquet\"\n\n[sink]\ntype = \"files\"\npath = \"{}\"\n",
            data.display(),
            out.display()
        ),
    );
    let o = vmig_cmd(&["plan", job.to_str().unwrap()]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", output_text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("matches `*.parquet`"), "{err}");
    let job = write_job(
        dir.path(),
        "option",
        &format!(
            "[source]\ntype = \"files\"\npath = \"{}/*.fvecs\"\nsample_rows = 10\n\n[sink]\ntype = \"files\"\npath = \"{}\"\n",
            data.display(),
            out.display()
        ),
    );
    let o = vmig_cmd(&["plan", job.to_str().unwrap()]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", output_text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("options of the `fvecs` format"), "{err}");
    assert!(err.contains("sample_rows"), "{err}");
}
