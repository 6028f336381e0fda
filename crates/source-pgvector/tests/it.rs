//! The `pgvector` source against a real PostgreSQL 15 with pgvector 0.8.0 (`scripts/postgres
//! start`, `VMIG_POSTGRES_URL`): every test makes its own database and `CREATE EXTENSION vector`
//! in it. Skips loudly without the server; fails under `CI=true`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use arrow::array::{
    Array, AsArray, BooleanArray, FixedSizeBinaryArray, Float32Array, Float64Array, Int16Array,
    Int32Array, Int64Array, ListArray, MapArray, StringArray,
};
use arrow::datatypes::{Float16Type, Float32Type};
use half::f16;
use sqlx::Connection;
use vmig_core::vector::{META_METRIC, META_PRIMARY_KEY};
use vmig_core::{Source, SourceConfig};
use vmig_source_pgvector::{OnUnknownType, PgPosition, PgvectorSource, PgvectorSourceConfig};
use vmig_testing::conformance::{check_source, read_all_rows, read_partition};
use vmig_testing::database::TempDatabase;

/// A fresh database with the `vector` extension, and `setup` run in it.
async fn database(setup: &str) -> Option<TempDatabase> {
    let base = vmig_testing::service::postgres_url()?;
    let db = TempDatabase::create(&base, "vmig_pgv").await;
    let mut c = sqlx::PgConnection::connect(&db.url)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", db.url));
    sqlx::raw_sql("CREATE EXTENSION vector")
        .execute(&mut c)
        .await
        .expect("CREATE EXTENSION vector (scripts/postgres start installs pgvector)");
    sqlx::raw_sql(setup)
        .execute(&mut c)
        .await
        .unwrap_or_else(|e| panic!("{setup}: {e}"));
    c.close().await.ok();
    Some(db)
}

async fn build(config: &PgvectorSourceConfig) -> PgvectorSource {
    config.validate().unwrap();
    PgvectorSource::connect(config.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The float32 values of the vector rows, as written in SQL (shortest round-trip text) and as
/// bits: -0.0, the smallest subnormal, the largest finite value.
const V1: [f32; 4] = [1.5, -0.0, 1e-45, 3.402_823_5e38];
const V2: [f32; 4] = [-1.0e-40, 0.1, -7.25, 1.0e30];

fn sql_vec(v: &[f32]) -> String {
    format!(
        "[{}]",
        v.iter()
            .map(|x| format!("{x:?}"))
            .collect::<Vec<_>>()
            .join(",")
    )
}

const TYPES: &str = "CREATE TABLE items (
    id bigint PRIMARY KEY,
    v vector(4) NOT NULL,
    h halfvec(3) NOT NULL,
    s sparsevec(10) NOT NULL,
    b bit(16) NOT NULL,
    i2 smallint, i4 integer, f4 real, f8 double precision, num numeric,
    t text, vc varchar(20), flag boolean NOT NULL DEFAULT false, j jsonb, js json,
    ts timestamptz, tsn timestamp, d date, ai int[], at text[], u uuid
);
CREATE INDEX items_v ON items USING hnsw (v vector_cosine_ops);";

#[tokio::test]
async fn every_type_is_read_back_value_by_value() {
    let insert = format!(
        "{TYPES}
        INSERT INTO items VALUES
        (1, '{v1}', '[1.5,-0,65504]', '{{1:0.5,7:-2}}/10', B'1000000000000001',
         -32768, 2147483647, 0.1, -1e300, 12.5, 'héllo ✓ 日本', 'abc', true,
         '{{\"a\": [1, 2]}}', '{{\"b\":1}}', '2024-05-01 12:00:00+00', '1970-01-01 00:00:01',
         '2000-01-02', '{{1,NULL,3}}', '{{x,ü}}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'),
        (2, '{v2}', '[0.000000059604645,-2,0.33325195]', '{{}}/10', B'0000000011111111',
         NULL, NULL, NULL, NULL, NULL, NULL, NULL, false, NULL, NULL, NULL, NULL, NULL, NULL,
         NULL, NULL),
        (-5, '[0,0,0,0]', '[0,0,0]', '{{10:1}}/10', B'0000000000000000',
         1, -1, -0.0, 'NaN', 'NaN', '', '', true, 'null', '[]', '-infinity', NULL,
         '1969-12-31', '{{}}', '{{NULL}}', NULL);",
        v1 = sql_vec(&V1),
        v2 = sql_vec(&V2),
    );
    let Some(db) = database(&insert).await else {
        return;
    };
    // -infinity is refused naming the row; the same table without it reads.
    let c = PgvectorSourceConfig::table(&db.url, "items");
    let s = build(&c).await;
    let err = read_all_rows(&s, 2).await.unwrap_err().to_string();
    assert!(
        err.contains("`id` = -5") && err.contains("column `ts`") && err.contains("infinity"),
        "{err}"
    );
    let mut c = PgvectorSourceConfig::table(&db.url, "items");
    c.filter = Some("ts IS DISTINCT FROM '-infinity'".into());
    let s = build(&c).await;
    let schema = s.schema();
    assert_eq!(schema.metadata()[META_METRIC], "COSINE");
    assert_eq!(schema.metadata()[META_PRIMARY_KEY], "id");
    assert_eq!(
        schema.field_with_name("vc").unwrap().metadata()["vmig.max_length"],
        "20"
    );
    assert!(!schema.field_with_name("v").unwrap().is_nullable());
    assert!(!schema.field_with_name("flag").unwrap().is_nullable());
    assert!(schema.field_with_name("i4").unwrap().is_nullable());
    let all = read_all_rows(&s, 1).await.unwrap();
    assert_eq!(all.num_rows(), 2);
    let col = |n: &str| all.column(schema.index_of(n).unwrap()).clone();
    assert_eq!(
        col("id")
            .as_primitive::<arrow::datatypes::Int64Type>()
            .values(),
        &[1, 2]
    );
    // Vectors: the exact bits.
    let v = col("v");
    let v = v.as_fixed_size_list();
    for (row, want) in [V1, V2].iter().enumerate() {
        let got = v.value(row);
        let got = got.as_primitive::<Float32Type>();
        let got: Vec<u32> = got.values().iter().map(|x| x.to_bits()).collect();
        let want: Vec<u32> = want.iter().map(|x| x.to_bits()).collect();
        assert_eq!(got, want, "vector row {row}");
    }
    let h = col("h");
    let h = h.as_fixed_size_list();
    let halves = |r: usize| -> Vec<u16> {
        h.value(r)
            .as_primitive::<Float16Type>()
            .values()
            .iter()
            .map(|x| x.to_bits())
            .collect()
    };
    assert_eq!(
        halves(0),
        [1.5f32, -0.0, 65504.0].map(|x| f16::from_f32(x).to_bits())
    );
    assert_eq!(
        halves(1),
        [
            f16::from_bits(1),
            f16::from_f32(-2.0),
            f16::from_f32(0.33325195)
        ]
        .map(f16::to_bits)
    );
    let s_col = col("s");
    let m: &MapArray = s_col.as_map();
    let row0 = m.value(0);
    assert_eq!(
        row0.column(0)
            .as_primitive::<arrow::datatypes::UInt32Type>()
            .values(),
        &[0, 6],
        "sparsevec text indices are 1-based, Milvus's 0-based"
    );
    assert_eq!(
        row0.column(1)
            .as_any()
            .downcast_ref::<Float32Array>()
            .unwrap()
            .values(),
        &[0.5, -2.0]
    );
    assert_eq!(m.value(1).len(), 0);
    let b = col("b");
    let b = b.as_any().downcast_ref::<FixedSizeBinaryArray>().unwrap();
    assert_eq!(b.value(0), &[0x80, 0x01]);
    assert_eq!(b.value(1), &[0x00, 0xff]);
    // Scalars, with nulls kept.
    let i2 = col("i2");
    let i2 = i2.as_any().downcast_ref::<Int16Array>().unwrap();
    assert_eq!((i2.value(0), i2.is_null(1)), (-32768, true));
    let i4 = col("i4");
    let i4 = i4.as_any().downcast_ref::<Int32Array>().unwrap();
    assert_eq!((i4.value(0), i4.is_null(1)), (2_147_483_647, true));
    let f4 = col("f4");
    let f4 = f4.as_any().downcast_ref::<Float32Array>().unwrap();
    assert_eq!(
        (f4.value(0).to_bits(), f4.is_null(1)),
        (0.1f32.to_bits(), true)
    );
    let f8 = col("f8");
    let f8 = f8.as_any().downcast_ref::<Float64Array>().unwrap();
    assert_eq!((f8.value(0), f8.is_null(1)), (-1e300, true));
    let num = col("num");
    let num = num.as_any().downcast_ref::<Float64Array>().unwrap();
    assert_eq!((num.value(0), num.is_null(1)), (12.5, true));
    let t = col("t");
    let t = t.as_any().downcast_ref::<StringArray>().unwrap();
    assert_eq!((t.value(0), t.is_null(1)), ("héllo ✓ 日本", true));
    let flag = col("flag");
    let flag = flag.as_any().downcast_ref::<BooleanArray>().unwrap();
    assert_eq!((flag.value(0), flag.value(1)), (true, false));
    let j = col("j");
    let j = j.as_any().downcast_ref::<StringArray>().unwrap();
    assert_eq!((j.value(0), j.is_null(1)), ("{\"a\": [1, 2]}", true));
    assert_eq!(
        schema.field_with_name("j").unwrap().metadata()["vmig.type"],
        "json"
    );
    let js = col("js");
    assert_eq!(js.as_string::<i32>().value(0), "{\"b\":1}");
    let ts = col("ts");
    let ts = ts.as_any().downcast_ref::<Int64Array>().unwrap();
    assert_eq!((ts.value(0), ts.is_null(1)), (1_714_564_800_000_000, true));
    let tsn = col("tsn");
    assert_eq!(
        tsn.as_any().downcast_ref::<Int64Array>().unwrap().value(0),
        1_000_000
    );
    let d = col("d");
    assert_eq!(
        d.as_any().downcast_ref::<Int64Array>().unwrap().value(0),
        946_771_200_000_000
    );
    let ai = col("ai");
    let ai = ai.as_any().downcast_ref::<ListArray>().unwrap();
    let first = ai.value(0);
    let first = first.as_any().downcast_ref::<Int32Array>().unwrap();
    assert_eq!(
        (0..3)
            .map(|i| first.is_valid(i).then(|| first.value(i)))
            .collect::<Vec<_>>(),
        [Some(1), None, Some(3)]
    );
    assert!(ai.is_null(1));
    let at = col("at");
    let at = at.as_any().downcast_ref::<ListArray>().unwrap();
    let first = at.value(0);
    assert_eq!(
        first.as_string::<i32>().iter().collect::<Vec<_>>(),
        [Some("x"), Some("ü")]
    );
    let u = col("u");
    assert_eq!(
        u.as_string::<i32>().value(0),
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    );
    assert_eq!(
        schema.field_with_name("u").unwrap().metadata()["vmig.max_length"],
        "36"
    );

    // Options: halfvec as float32, numeric and times as text.
    let mut c = PgvectorSourceConfig::table(&db.url, "items");
    c.halfvec = vmig_source_pgvector::HalfvecMode::Float32;
    c.numeric = vmig_source_pgvector::NumericMode::String;
    c.timestamps = vmig_source_pgvector::TimeMode::String;
    c.columns = Some(vec!["h".into(), "num".into(), "ts".into(), "id".into()]);
    let s = build(&c).await;
    let all = read_all_rows(&s, 10).await.unwrap();
    let ids = all.column(3).as_primitive::<arrow::datatypes::Int64Type>();
    assert_eq!(ids.values(), &[-5, 1, 2], "key order");
    let (row5, row1) = (0, 1);
    let h = all.column(0).as_fixed_size_list();
    let h1 = h.value(row1);
    let h1: Vec<u32> = h1
        .as_primitive::<Float32Type>()
        .values()
        .iter()
        .map(|x| x.to_bits())
        .collect();
    assert_eq!(h1, [1.5f32, -0.0, 65504.0].map(f32::to_bits));
    let num = all.column(1).as_string::<i32>();
    let ts = all.column(2).as_string::<i32>();
    assert_eq!(num.value(row1), "12.5");
    assert_eq!(ts.value(row1), "2024-05-01 12:00:00+00");
    assert_eq!(ts.value(row5), "-infinity");
    db.drop_now().await;
}

#[tokio::test]
async fn unknown_types_are_refused_naming_the_column_or_skipped() {
    let Some(db) = database(
        "CREATE TABLE p (id int PRIMARY KEY, v vector(2), spot point);
         INSERT INTO p VALUES (1, '[1,2]', '(1,2)');",
    )
    .await
    else {
        return;
    };
    let mut c = PgvectorSourceConfig::table(&db.url, "p");
    let err = PgvectorSource::connect(c.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("column `spot`") && err.contains("point"),
        "{err}"
    );
    c.on_unknown_type = OnUnknownType::Skip;
    let s = build(&c).await;
    assert_eq!(s.schema().fields().len(), 2);
    assert_eq!(read_all_rows(&s, 10).await.unwrap().num_rows(), 1);
    db.drop_now().await;
}

#[tokio::test]
async fn a_null_vector_is_an_error_naming_the_row() {
    let Some(db) = database(
        "CREATE TABLE n (id int PRIMARY KEY, v vector(2));
         INSERT INTO n VALUES (1, '[1,2]'), (2, NULL);",
    )
    .await
    else {
        return;
    };
    let s = build(&PgvectorSourceConfig::table(&db.url, "n")).await;
    let err = read_all_rows(&s, 10).await.unwrap_err().to_string();
    assert!(
        err.contains("`id` = 2") && err.contains("NULL vector"),
        "{err}"
    );
    db.drop_now().await;
}

const MANY: &str = "CREATE TABLE many (id int PRIMARY KEY, v vector(3) NOT NULL, tag text);
    INSERT INTO many SELECT i, ARRAY[i, -i, i * 0.5]::vector, 'tag' || (i % 7)
      FROM generate_series(1, 1000) i;
    CREATE TABLE nokey (v vector(3) NOT NULL, n int);
    INSERT INTO nokey SELECT ARRAY[i, 0, 1]::vector, i FROM generate_series(1, 3000) i;
    ANALYZE nokey;
    CREATE TABLE empty (id bigint PRIMARY KEY, v vector(8) NOT NULL);
    CREATE TABLE keyed (k text PRIMARY KEY, v vector(2) NOT NULL);
    INSERT INTO keyed SELECT 'key' || i, '[1,2]' FROM generate_series(1, 95) i;";

fn ids(batch: &arrow::array::RecordBatch, col: &str) -> Vec<i64> {
    let c = batch.column(batch.schema().index_of(col).unwrap());
    match c.data_type() {
        arrow::datatypes::DataType::Int32 => c
            .as_primitive::<arrow::datatypes::Int32Type>()
            .values()
            .iter()
            .map(|v| i64::from(*v))
            .collect(),
        _ => c
            .as_primitive::<arrow::datatypes::Int64Type>()
            .values()
            .to_vec(),
    }
}

#[tokio::test]
async fn key_ranges_ctid_query_where_and_empty_tables_pass_the_conformance_kit() {
    let Some(db) = database(MANY).await else {
        return;
    };
    // Integer key split into 3 ranges.
    let mut c = PgvectorSourceConfig::table(&db.url, "many");
    c.partitions = 3;
    let s = build(&c).await;
    assert_eq!(s.partitions().await.unwrap().len(), 3);
    let report = check_source(&s, 97).await;
    assert_eq!(report.total_rows(), 1000);
    let mut got = ids(&read_all_rows(&s, 128).await.unwrap(), "id");
    got.sort_unstable();
    assert_eq!(got, (1..=1000).collect::<Vec<_>>());
    // Vectors match what generated them.
    let all = read_all_rows(&s, 1000).await.unwrap();
    let v = all.column(1).as_fixed_size_list();
    for (row, id) in ids(&all, "id").iter().enumerate() {
        let x = *id as f32;
        assert_eq!(
            v.value(row).as_primitive::<Float32Type>().values(),
            &[x, -x, x * 0.5]
        );
    }

    // No primary key: ctid block ranges.
    let mut c = PgvectorSourceConfig::table(&db.url, "nokey");
    c.partitions = 4;
    let s = build(&c).await;
    assert!(s.partitions().await.unwrap().len() > 1);
    assert_eq!(check_source(&s, 500).await.total_rows(), 3000);
    let mut got = ids(&read_all_rows(&s, 500).await.unwrap(), "n");
    got.sort_unstable();
    assert_eq!(got, (1..=3000).collect::<Vec<_>>());

    // The query form with `where`, paged by a column of the query.
    let mut c = PgvectorSourceConfig::query(
        &db.url,
        "SELECT id AS key, v, upper(tag) AS tag FROM many WHERE id % 2 = 0",
        "key",
    );
    c.filter = Some("tag <> 'TAG0'".into());
    let s = build(&c).await;
    check_source(&s, 50).await;
    let all = read_all_rows(&s, 50).await.unwrap();
    let want: Vec<i64> = (1..=1000).filter(|i| i % 2 == 0 && i % 7 != 0).collect();
    assert_eq!(ids(&all, "key"), want);
    assert!(all
        .column(2)
        .as_string::<i32>()
        .iter()
        .all(|t| t.unwrap().starts_with("TAG")));

    // A text key, read in key order.
    let s = build(&PgvectorSourceConfig::table(&db.url, "keyed")).await;
    assert_eq!(check_source(&s, 10).await.total_rows(), 95);

    // Empty table: the schema, no rows.
    let mut c = PgvectorSourceConfig::table(&db.url, "empty");
    c.partitions = 4;
    let s = build(&c).await;
    assert_eq!(s.schema().field(1).name(), "v");
    assert_eq!(read_all_rows(&s, 10).await.unwrap().num_rows(), 0);
    check_source(&s, 10).await;
    db.drop_now().await;
}

#[tokio::test]
async fn resuming_after_a_position_reads_exactly_the_rest() {
    let Some(db) = database(MANY).await else {
        return;
    };
    for table in ["many", "nokey"] {
        let s = build(&PgvectorSourceConfig::table(&db.url, table)).await;
        let col = if table == "many" { "id" } else { "n" };
        let batches = read_partition(&s, "0", None, 100).await.unwrap();
        assert!(batches.len() > 3, "{table}");
        let all: Vec<i64> = batches.iter().flat_map(|(b, _)| ids(b, col)).collect();
        let (_, pos) = &batches[2];
        let decoded: PgPosition = pos.decode().unwrap();
        let done: usize = batches[..3].iter().map(|(b, _)| b.num_rows()).sum();
        let rest: Vec<i64> = read_partition(&s, "0", Some(pos), 64)
            .await
            .unwrap()
            .iter()
            .flat_map(|(b, _)| ids(b, col))
            .collect();
        assert_eq!(rest, all[done..], "{table} after {decoded:?}");
    }
    // A position of another split is refused.
    let mut c = PgvectorSourceConfig::table(&db.url, "many");
    c.partitions = 2;
    let two = build(&c).await;
    let mut c = PgvectorSourceConfig::table(&db.url, "many");
    c.partitions = 1;
    let one = build(&c).await;
    let (_, pos) = read_partition(&one, "0", None, 100)
        .await
        .unwrap()
        .remove(0);
    let err = match read_partition(&two, "0", Some(&pos), 100).await {
        Ok(_) => panic!("a foreign position was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("start the job over"), "{err}");
    db.drop_now().await;
}

#[tokio::test]
async fn login_failures_and_unreachable_servers_name_the_server_not_the_password() {
    let Some(base) = vmig_testing::service::postgres_url() else {
        return;
    };
    let mut url = url::Url::parse(&base).unwrap();
    url.set_username("vmig_no_such_user").unwrap();
    url.set_password(Some("Sup3rSecretPw")).unwrap();
    let c = PgvectorSourceConfig::table(url.as_str(), "items");
    let err = PgvectorSource::connect(c).await.unwrap_err();
    let text = err.to_string();
    let server = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    assert!(
        text.contains(&server) && text.contains("refused the login"),
        "{text}"
    );
    assert!(!text.contains("Sup3rSecretPw"), "{text}");
    // Not retried, and not a job-file error (exit code 1, issue #17).
    assert!(!err.is_config_error() && !err.is_retryable(), "{text}");

    // libpq's sslmode is honoured: the test server has no TLS, so `require` fails, saying so.
    let mut tls = url::Url::parse(&base).unwrap();
    tls.set_query(Some("sslmode=require"));
    let mut c = PgvectorSourceConfig::table(tls.as_str(), "items");
    c.retry.max_attempts = 1;
    let text = PgvectorSource::connect(c).await.unwrap_err().to_string();
    assert!(text.contains("TLS") && text.contains(&server), "{text}");

    let mut c = PgvectorSourceConfig::table("postgres://u:Sup3rSecretPw@127.0.0.1:1/db", "items");
    c.retry.max_attempts = 1;
    let err = PgvectorSource::connect(c).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("127.0.0.1:1/db") && text.contains("cannot be reached"),
        "{text}"
    );
    assert!(!text.contains("Sup3rSecretPw"), "{text}");
}

#[tokio::test]
async fn the_plugin_is_registered_and_writes_are_refused() {
    assert!(vmig_core::registry::sources()
        .unwrap()
        .contains_key("pgvector"));
    let Some(db) = database(MANY).await else {
        return;
    };
    // The session is read-only: a query that writes fails.
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql(
        "CREATE FUNCTION wipe() RETURNS int LANGUAGE sql AS 'DELETE FROM many RETURNING 1'",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let c = PgvectorSourceConfig::query(&db.url, "SELECT id, v, wipe() AS w FROM many", "id");
    let mut c = c;
    c.partitions = 2;
    let err = match PgvectorSource::connect(c).await {
        Err(e) => e.to_string(),
        Ok(s) => read_all_rows(&s, 100).await.unwrap_err().to_string(),
    };
    assert!(err.contains("read-only transaction"), "{err}");
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM many")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 1000);
    conn.close().await.ok();
    db.drop_now().await;
}

/// Ports of the tests' own PostgreSQL servers (the project's test range 18200-18299).
const RESTART_PORT: u16 = 18210;
const TLS_PORT: u16 = 18211;

/// `n` rows `(id, v, t)`: element `j` of row `i`'s `vector(8)` is the float4 `(i * 8 + j) / 7`,
/// `t` is `'row i ✓'`.
const EIGHT_D: &str = "CREATE EXTENSION vector;
    CREATE TABLE r (id int PRIMARY KEY, v vector(8) NOT NULL, t text NOT NULL);
    INSERT INTO r SELECT i, ARRAY(SELECT (i * 8 + j)::real / 7 FROM generate_series(0, 7) j)::vector,
      'row ' || i || ' ✓' FROM generate_series(1, 20000) i;";

/// Checks that `all` (columns id, v, t) holds every row 1..=20000 of [`EIGHT_D`] once, in key
/// order, vectors bit for bit.
fn assert_eight_d(all: &arrow::array::RecordBatch) {
    assert_eq!(ids(all, "id"), (1..=20000).collect::<Vec<_>>());
    let v = all.column(1).as_fixed_size_list();
    let t = all.column(2).as_string::<i32>();
    for row in 0..all.num_rows() {
        let i = row as i64 + 1;
        let want: Vec<u32> = (0..8)
            .map(|j| ((i * 8 + j) as f32 / 7.0f32).to_bits())
            .collect();
        let got: Vec<u32> = v
            .value(row)
            .as_primitive::<Float32Type>()
            .values()
            .iter()
            .map(|x| x.to_bits())
            .collect();
        assert_eq!(got, want, "row {i}");
        assert_eq!(t.value(row), format!("row {i} ✓"));
    }
}

/// The server is stopped between two pages and started again 2 s later: the reader's lost
/// connection and the refused reconnections are retried by the `retry` policy, and the read goes
/// on after the last key, every row exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_mid_read_is_retried_and_every_row_read_once() {
    use futures::StreamExt;
    let Some(pg) = vmig_testing::pg_server::PgServer::start(RESTART_PORT, &[], &[]) else {
        return;
    };
    pg.psql("postgres", EIGHT_D);
    let mut c = PgvectorSourceConfig::table(pg.url("postgres"), "r");
    // One partition: it holds every row, in key order.
    c.partitions = 1;
    c.retry.initial_backoff = std::time::Duration::from_millis(100);
    c.retry.max_backoff = std::time::Duration::from_millis(800);
    let s = build(&c).await;
    let mut stream = vmig_testing::conformance::open_partition(&s, "0", None, 1000).unwrap();
    let mut batches = Vec::new();
    for _ in 0..3 {
        batches.push(stream.next().await.unwrap().unwrap().batch);
    }
    let pg = std::sync::Arc::new(pg);
    let p = pg.clone();
    tokio::task::spawn_blocking(move || p.stop()).await.unwrap();
    let rest = tokio::spawn(async move {
        let mut out = Vec::new();
        while let Some(b) = stream.next().await {
            out.push(b.map(|b| b.batch));
        }
        out
    });
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(
        !rest.is_finished(),
        "the read ended while the server was down"
    );
    let p = pg.clone();
    tokio::task::spawn_blocking(move || p.start_again())
        .await
        .unwrap();
    for b in rest.await.unwrap() {
        batches.push(b.unwrap_or_else(|e| panic!("not retried: {e}")));
    }
    let all = arrow::compute::concat_batches(&s.schema(), &batches).unwrap();
    assert_eight_d(&all);
}

/// libpq's `sslmode` against a real PostgreSQL with `ssl = on` and a certificate for
/// `127.0.0.1` from a CA of the test's own: `disable` reads in clear, `require` encrypts without
/// checking the certificate, `verify-ca` and `verify-full` check it against `sslrootcert`; the
/// server's own view (`pg_stat_ssl`) says whether the session is encrypted. `verify-full`
/// against another host name (`localhost`) and `verify-ca` without the CA fail, saying why and
/// what to check.
#[tokio::test]
async fn sslmodes_against_a_tls_server() {
    // A CA and a certificate for 127.0.0.1 only, made here.
    let pki = vmig_testing::tls::TestPki::new(&["127.0.0.1"]);
    let (ca, cert, key) = (pki.ca_pem, pki.cert_pem, pki.key_pem);
    let Some(pg) = vmig_testing::pg_server::PgServer::start(
        TLS_PORT,
        &[
            ("ssl", "on"),
            ("ssl_cert_file", "server.crt"),
            ("ssl_key_file", "server.key"),
        ],
        &[
            ("server.crt", cert.as_bytes()),
            ("server.key", key.as_bytes()),
        ],
    ) else {
        return;
    };
    pg.psql("postgres", "CREATE EXTENSION vector");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();
    let root = ca_file.display();
    // The session's own row of pg_stat_ssl: is it encrypted?
    let query = "SELECT pid::int8 AS id, '[1,2]'::vector AS v, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    let encrypted = |params: String, host: &'static str| {
        let url = format!("postgres://postgres@{host}:{TLS_PORT}/postgres?{params}");
        async move {
            let mut c = PgvectorSourceConfig::query(&url, query, "id");
            c.retry.max_attempts = 1;
            let s = PgvectorSource::connect(c).await?;
            let all = read_all_rows(&s, 10).await?;
            assert_eq!(all.num_rows(), 1, "{url}");
            let ssl = all
                .column(2)
                .as_any()
                .downcast_ref::<BooleanArray>()
                .unwrap();
            Ok::<bool, vmig_core::Error>(ssl.value(0))
        }
    };
    assert!(!encrypted("sslmode=disable".into(), "127.0.0.1")
        .await
        .unwrap());
    assert!(encrypted("sslmode=require".into(), "127.0.0.1")
        .await
        .unwrap());
    assert!(
        encrypted(format!("sslmode=verify-ca&sslrootcert={root}"), "127.0.0.1")
            .await
            .unwrap()
    );
    assert!(encrypted(
        format!("sslmode=verify-full&sslrootcert={root}"),
        "127.0.0.1"
    )
    .await
    .unwrap());
    let err = encrypted(
        format!("sslmode=verify-full&sslrootcert={root}"),
        "localhost",
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(err.is_config_error(), "{text}");
    assert!(
        text.contains(&format!(
            "TLS with PostgreSQL at localhost:{TLS_PORT}/postgres failed"
        )) && text.contains("not valid for name")
            && text.contains("check `sslmode` and `sslrootcert`"),
        "{text}"
    );
    let err = encrypted("sslmode=verify-ca".into(), "127.0.0.1")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("TLS with PostgreSQL at 127.0.0.1") && err.contains("UnknownIssuer"),
        "{err}"
    );
}
