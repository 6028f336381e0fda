//! The `pgvector` source end to end through the `vmig` binary: a table in the test PostgreSQL
//! with pgvector (`scripts/postgres start`) migrated to Parquet files (compared row by row with
//! the values the SQL made) and into the real Milvus 2.3.5, then `vmig verify` clean.
#![allow(clippy::unwrap_used)]

mod common;

use arrow::array::{Array, AsArray, RecordBatch};
use common::{
    assert_verify_clean, migrate_killed_at, parquet_rows, to_parquet, vmig_cmd, vmig_milvus_cmd,
    write_job,
};
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

/// A fresh database with table `t` (`id bigint` primary key, `vector vector(8)`, `title text`,
/// `score double precision`, `flag boolean`) holding the rows of
/// `vmig_testing::gen::sample_batch(seed, 1, rows, 8)`, loaded with `COPY` from their text form
/// (floats as shortest round-trip decimals, so PostgreSQL parses the very same bits).
fn sample_database(
    base: &str,
    rows: usize,
    seed: u64,
) -> (tokio::runtime::Runtime, TempDatabase, RecordBatch) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TempDatabase::create(base, "vmig_cli_pgv"));
    let batch = vmig_testing::gen::sample_batch(seed, 1, rows, 8);
    let ids = batch
        .column(0)
        .as_primitive::<arrow::datatypes::Int64Type>();
    let vectors = batch.column(1).as_fixed_size_list();
    let titles = batch.column(2).as_string::<i32>();
    let scores = batch
        .column(3)
        .as_primitive::<arrow::datatypes::Float64Type>();
    let flags = batch.column(4).as_boolean();
    let mut tsv = String::new();
    for r in 0..rows {
        let v = vectors.value(r);
        let v: Vec<String> = v
            .as_primitive::<arrow::datatypes::Float32Type>()
            .values()
            .iter()
            .map(|x| format!("{x:?}"))
            .collect();
        let title = if titles.is_null(r) {
            "\\N"
        } else {
            titles.value(r)
        };
        tsv.push_str(&format!(
            "{}\t[{}]\t{title}\t{:?}\t{}\n",
            ids.value(r),
            v.join(","),
            scores.value(r),
            flags.value(r)
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rows.tsv");
    std::fs::write(&file, tsv).unwrap();
    let setup = "CREATE EXTENSION vector;
         CREATE TABLE t (id bigint PRIMARY KEY, vector vector(8) NOT NULL, title text, score double precision NOT NULL, flag boolean NOT NULL);".to_string();
    for sql in [setup, format!("\\copy t FROM '{}'", file.display())] {
        let o = std::process::Command::new("psql")
            .args([db.url.as_str(), "-v", "ON_ERROR_STOP=1", "-q", "-c", &sql])
            .output()
            .unwrap();
        assert!(o.status.success(), "psql: {}", output_text(&o));
    }
    (rt, db, batch)
}

/// The job's `[source]` for table `t`, `extra` added.
fn sample_source(db: &TempDatabase, extra: &str) -> String {
    source(db, extra).replace("table = \"items\"", "table = \"t\"")
}

/// Checks that the Parquet files under `dir` hold exactly the rows of `want` (every column by
/// name: ids, vector bits, title with its nulls, score, flag), each once.
fn assert_parquet_is(dir: &std::path::Path, want: &RecordBatch) {
    let batches = vmig_testing::compare::parquet_dir_batches(dir);
    assert!(!batches.is_empty(), "no Parquet files in {}", dir.display());
    let got = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    assert_eq!(got.num_rows(), want.num_rows(), "rows");
    let id_col = got.column_by_name("id").unwrap();
    let order = arrow::compute::sort_to_indices(id_col, None, None).unwrap();
    let sorted = arrow::compute::take_record_batch(&got, &order).unwrap();
    let ids = sorted.column_by_name("id").unwrap();
    let ids = ids.as_primitive::<arrow::datatypes::Int64Type>();
    // `want` numbers its rows 1..=n: sorted ids equal to it means none is missing or twice.
    let want_ids = want.column(0).as_primitive::<arrow::datatypes::Int64Type>();
    assert!(
        ids.values() == want_ids.values(),
        "ids differ (a row missing or twice)"
    );
    let got_v = sorted.column_by_name("vector").unwrap();
    for r in 0..want.num_rows() {
        assert_eq!(
            vmig_testing::compare::vector_bytes(got_v, r),
            vmig_testing::compare::vector_bytes(want.column(1), r),
            "vector of id {}",
            ids.value(r)
        );
    }
    for name in ["title", "score", "flag"] {
        let g = sorted.column_by_name(name).unwrap();
        let w = want.column(want.schema().index_of(name).unwrap());
        assert_eq!(g.to_data(), w.to_data(), "column {name}");
    }
}

/// 100,000 rows × 8-d through `vmig migrate` into Parquet, four key ranges read in parallel,
/// compared with the rows the test loaded.
#[test]
fn a_100k_row_table_migrates_to_parquet_exactly() {
    let Some(base) = postgres_url() else {
        return;
    };
    let (rt, db, want) = sample_database(&base, 100_000, 17);
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let out = to_parquet(
        dir.path(),
        "big",
        &sample_source(&db, "partitions = 4\n").replace("partitions = 3\n", ""),
        &[("VMIG_TEST_PG_PASSWORD", "not-checked-pw")],
    );
    eprintln!("100k rows → Parquet in {:?}", started.elapsed());
    assert_parquet_is(&out, &want);
    rt.block_on(db.drop_now());
}

/// `vmig migrate` (default SQLite state store) killed with SIGKILL once 600 and then 3,000 rows
/// are committed (as `vmig status` reports), then run to the end: the Parquet output holds
/// every row exactly once, and `vmig verify` finds it equal to the table.
#[test]
fn a_killed_migration_resumes_to_exactly_the_table() {
    let Some(base) = postgres_url() else {
        return;
    };
    let (rt, db, want) = sample_database(&base, 6000, 18);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let job = write_job(
        dir.path(),
        "resume",
        &format!(
            "[source]\n{}\n[sink]\ntype = \"files\"\npath = \"{}\"\nmax_file_size = \"64KiB\"\n\n[pipeline]\nbatch_rows = 100\nflush_rows = 200\nmax_rows_per_second = 1500\ncheckpoint_interval = \"1s\"\n",
            sample_source(&db, ""),
            out.display()
        ),
    );
    let env = [("VMIG_TEST_PG_PASSWORD", "not-checked-pw")];
    migrate_killed_at(&job, &env, &[600, 3000]);
    assert_parquet_is(&out, &want);
    let mut v = vmig_cmd(&["verify", job.to_str().unwrap(), "--json"]);
    v.envs(env);
    assert_verify_clean(&v.output().unwrap(), 6000);
    rt.block_on(db.drop_now());
}

/// A wrong user and an unreachable server stop `vmig migrate` with exit code 1 and a message
/// naming the server and what to check, never the password.
#[test]
fn bad_credentials_and_an_unreachable_server_exit_1_saying_why() {
    let Some(base) = postgres_url() else {
        return;
    };
    let url = url::Url::parse(&base).unwrap();
    let server = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let dir = tempfile::tempdir().unwrap();
    for (name, target, want) in [
        (
            "login",
            format!("vmig_no_such_user:${{VMIG_TEST_PG_PASSWORD}}@{server}"),
            format!("PostgreSQL at {server}/postgres refused the login"),
        ),
        (
            "down",
            "u:${VMIG_TEST_PG_PASSWORD}@127.0.0.1:1".to_string(),
            "PostgreSQL at 127.0.0.1:1/postgres cannot be reached".to_string(),
        ),
    ] {
        let job = write_job(
            dir.path(),
            name,
            &format!(
                "[source]\ntype = \"pgvector\"\nurl = \"postgres://{target}/postgres\"\ntable = \"t\"\nretry = {{ max_attempts = 2, initial_backoff = \"10ms\" }}\n\n[sink]\ntype = \"files\"\npath = \"{}\"\n",
                dir.path().join(name).display()
            ),
        );
        let mut c = vmig_cmd(&["migrate", job.to_str().unwrap(), "--state", "none"]);
        c.env("VMIG_TEST_PG_PASSWORD", "Sup3rSecretPw");
        let o = c.output().unwrap();
        let text = output_text(&o);
        assert_eq!(o.status.code(), Some(1), "{text}");
        assert!(text.contains(&want), "{name}: {text}");
        assert!(!text.contains("Sup3rSecretPw"), "{name}: {text}");
    }
}
