//! The `pgvector` source end to end through the `vmig` binary: a table in the test PostgreSQL
//! with pgvector (`scripts/postgres start`) migrated to Parquet files (compared row by row with
//! the values the SQL made) and into the real Milvus 2.3.5, then `vmig verify` clean.
#![allow(clippy::unwrap_used)]

mod common;

use common::{assert_verify_clean, parquet_rows, to_parquet, vmig_milvus_cmd, write_job};
use vmig_testing::database::TempDatabase;
use vmig_testing::process::output_text;
use vmig_testing::service::{milvus, postgres_url, unique};

const ROWS: i64 = 3000;
const DIM: i64 = 16;

/// A fresh database with table `items` (`id bigint` primary key, `vector vector(16)`, `title
/// text`, `score double precision` with some nulls) of [`ROWS`] rows; vector element `j` of row
/// `i` is the float4 `(i * 16 + j) / 7`.
fn database(base: &str) -> (tokio::runtime::Runtime, TempDatabase) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TempDatabase::create(base, "vmig_cli_pgv"));
    let sql = format!(
        "CREATE EXTENSION vector;
         CREATE TABLE items (id bigint PRIMARY KEY, vector vector({DIM}) NOT NULL, title text NOT NULL, score double precision);
         INSERT INTO items SELECT i,
             ARRAY(SELECT (i * {DIM} + j)::real / 7 FROM generate_series(0, {DIM} - 1) j)::vector,
             'doc ' || i || ' ✓', CASE WHEN i % 5 = 0 THEN NULL ELSE i / 3.0 END
           FROM generate_series(1, {ROWS}) i;
         CREATE INDEX ON items USING hnsw (vector vector_l2_ops);"
    );
    let o = std::process::Command::new("psql")
        .args([db.url.as_str(), "-v", "ON_ERROR_STOP=1", "-q", "-c", &sql])
        .output()
        .unwrap();
    assert!(o.status.success(), "psql: {}", output_text(&o));
    (rt, db)
}

/// The `[source]` body; `extra` adds options.
fn source(db: &TempDatabase, extra: &str) -> String {
    // The password comes from the environment, as a user's job file would have it (the test
    // server trusts loopback, so any password is accepted).
    let url = url::Url::parse(&db.url).unwrap();
    format!(
        "type = \"pgvector\"\nurl = \"postgres://{}:${{VMIG_TEST_PG_PASSWORD}}@{}:{}{}\"\ntable = \"items\"\npartitions = 3\n{extra}",
        url.username(),
        url.host_str().unwrap(),
        url.port().unwrap_or(5432),
        url.path()
    )
}

fn expected(i: i64) -> Vec<u32> {
    (0..DIM)
        .map(|j| ((i * DIM + j) as f32 / 7.0f32).to_bits())
        .collect()
}

#[test]
fn a_pgvector_table_migrates_to_parquet_row_by_row() {
    let Some(base) = postgres_url() else {
        return;
    };
    let (rt, db) = database(&base);
    let dir = tempfile::tempdir().unwrap();
    let out = to_parquet(
        dir.path(),
        "pgv",
        &source(&db, ""),
        &[("VMIG_TEST_PG_PASSWORD", "not-checked-pw")],
    );
    let rows = parquet_rows(&out);
    assert_eq!(rows.len(), ROWS as usize);
    for (id, bits) in &rows {
        assert_eq!(bits, &expected(*id), "row {id}");
    }
    assert_eq!(
        rows.keys().copied().collect::<Vec<_>>(),
        (1..=ROWS).collect::<Vec<_>>()
    );
    rt.block_on(db.drop_now());
}

#[test]
fn a_pgvector_table_migrates_into_milvus_and_verifies() {
    let (Some(base), Some(m)) = (postgres_url(), milvus()) else {
        return;
    };
    let (rt, db) = database(&base);
    let dir = tempfile::tempdir().unwrap();
    let collection = unique("pgvector");
    let job = write_job(
        dir.path(),
        "milvus",
        &format!(
            "[source]\n{}\n[sink]\ntype = \"milvus2\"\nuri = \"{}\"\nuser = \"{}\"\npassword = \"${{VMIG_TEST_MILVUS_PASSWORD}}\"\ncollection = \"{collection}\"\nmode = \"insert\"\nindex = {{ type = \"IVF_FLAT\", metric = \"L2\", params = {{ nlist = 16 }} }}\nload = true\n",
            source(&db, "columns = [\"id\", \"vector\", \"title\"]\n"),
            m.uri,
            m.user
        ),
    );
    let job = job.to_str().unwrap();
    let env = [("VMIG_TEST_PG_PASSWORD", "not-checked-pw")];
    let mut c = vmig_milvus_cmd(&["migrate", job, "--state", "none", "--json"], &m);
    c.envs(env);
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", output_text(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["rows_written"], ROWS, "{summary}");
    let mut c = vmig_milvus_cmd(&["verify", job, "--json"], &m);
    c.envs(env);
    assert_verify_clean(&c.output().unwrap(), ROWS as u64);
    m.drop_collection(&collection);
    rt.block_on(db.drop_now());
}
