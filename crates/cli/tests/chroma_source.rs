//! The `chroma` source end to end through the `vmig` binary: a collection created in the real
//! Chroma 1.5.9 (`scripts/chroma`, `VMIG_CHROMA_URL`) is planned (the metric and the metadata key
//! scan in the schema), migrated into the real Milvus 2.3.5 and verified clean.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use common::{
    assert_verify_clean, migrate_killed_at, to_parquet, vmig_cmd, vmig_milvus, write_job,
};
use serde_json::{json, Value};
use vmig_testing::chroma::{self, Row};
use vmig_testing::process::output_text;
use vmig_testing::service::{milvus, unique};

const ROWS: usize = 700;

/// Creates (again) collection `name` (space `ip`, dimension 8) holding ROWS rows with a
/// document each and int/str/bool metadata (every 4th row without metadata).
async fn fill(url: &str, name: &str) {
    let id = chroma::recreate(url, name, "ip").await;
    let rows: Vec<Row> = (0..ROWS)
        .map(|i| Row {
            id: format!("c{i}"),
            embedding: (0..8).map(|j| ((i * 8 + j) as f32).sin() / 3.0).collect(),
            document: Some(format!("doc {i} ✓")),
            meta: if i % 4 == 0 {
                BTreeMap::new()
            } else {
                [
                    ("n".to_string(), json!(i)),
                    (
                        "lang".to_string(),
                        json!(if i % 2 == 0 { "en" } else { "fr" }),
                    ),
                    ("ok".to_string(), json!(i % 3 == 0)),
                ]
                .into_iter()
                .collect()
            },
        })
        .collect();
    chroma::add(url, &id, &rows).await;
}

#[test]
fn a_chroma_collection_plans_migrates_into_milvus_and_verifies() {
    let (Some(url), Some(m)) = (chroma::url(), milvus()) else {
        return;
    };
    let name = "vmig_cli_chroma";
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(fill(&url, name));
    let dir = tempfile::tempdir().unwrap();
    let collection = unique("chroma_cli");
    let job = write_job(
        dir.path(),
        "chroma",
        &format!(
            "[source]\ntype = \"chroma\"\nurl = \"{url}\"\ncollection = \"{name}\"\nmetadata_mode = \"dynamic\"\npartitions = 2\nbatch_size = 200\n\n[sink]\ntype = \"milvus2\"\nuri = \"{}\"\nuser = \"{}\"\npassword = \"${{VMIG_TEST_MILVUS_PASSWORD}}\"\ncollection = \"{collection}\"\nindex = {{ type = \"FLAT\", metric = \"IP\" }}\nload = true\n",
            m.uri, m.user
        ),
    );
    let job = job.to_str().unwrap();
    let plan = vmig_milvus(&["plan", job, "--json"], &m);
    assert!(plan.status.success(), "{}", output_text(&plan));
    let text = String::from_utf8_lossy(&plan.stdout).to_string();
    assert!(text.contains("rows 0..350 of"), "{text}");
    assert!(text.contains("rows 350..700 of"), "{text}");
    let o = vmig_milvus(&["migrate", job, "--state", "none", "--json"], &m);
    assert!(o.status.success(), "{}", output_text(&o));
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["rows_written"], ROWS, "{summary}");
    let v = vmig_milvus(&["verify", job, "--json"], &m);
    assert_verify_clean(&v, ROWS as u64);
    m.drop_collection(&collection);
}

/// `n` rows of dimension 8 from `seed` (`vmig_testing::gen::vectors`), ids `r000000`…: a
/// unicode document on all but every 5th row; int, unicode string, bool and float metadata
/// (floats with exact decimal forms: Chroma 1.5.9 returns some random doubles 1 ulp off) on all
/// but every 7th row.
fn sample(n: usize, seed: u64) -> Vec<Row> {
    let v = vmig_testing::gen::vectors(seed, n, 8);
    (0..n)
        .map(|i| Row {
            id: format!("r{i:06}"),
            embedding: v[i * 8..(i + 1) * 8].to_vec(),
            document: (i % 5 != 1).then(|| format!("document {i}: naïve café ✓ 日本")),
            meta: if i % 7 == 3 {
                BTreeMap::new()
            } else {
                [
                    ("n".to_string(), json!(i as i64 * 1_000_003 - 7)),
                    ("lang".to_string(), json!(format!("lang-{} é🙂", i % 4))),
                    ("ok".to_string(), json!(i % 2 == 0)),
                    ("w".to_string(), json!(i as f64 * 0.25 + 0.5)),
                ]
                .into_iter()
                .collect()
            },
        })
        .collect()
}

/// Every row of the Parquet files under `dir` (recursively), as [`Row`]s.
fn parquet_rows(dir: &std::path::Path) -> Vec<Row> {
    let mut batches = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        batches.extend(vmig_testing::compare::parquet_dir_batches(&d));
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            }
        }
    }
    chroma::batch_rows(&batches)
}

/// 100,000 rows × 8-d (loaded in requests of 5,000) through `vmig migrate` into Parquet, two
/// offset ranges read in parallel, compared row by row with the rows the test inserted (an `l2`
/// collection returns the inserted float32 bits).
#[test]
fn a_100k_row_collection_migrates_to_parquet_exactly() {
    let Some(url) = chroma::url() else { return };
    let name = "vmig_cli_100k";
    let want = sample(100_000, 31);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let started = std::time::Instant::now();
    rt.block_on(async {
        let id = chroma::recreate(&url, name, "l2").await;
        chroma::add(&url, &id, &want).await;
    });
    eprintln!("100k rows into Chroma in {:?}", started.elapsed());
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let out = to_parquet(
        dir.path(),
        "big",
        &format!("type = \"chroma\"\nurl = \"{url}\"\ncollection = \"{name}\"\npartitions = 2\nbatch_size = 2000\n"),
        &[],
    );
    eprintln!("100k rows → Parquet in {:?}", started.elapsed());
    chroma::assert_same_rows(parquet_rows(&out), want, "parquet vs inserted");
}

/// `vmig migrate` (default SQLite state store) killed with SIGKILL once 600 and then 3,000 rows
/// are committed (as `vmig status` reports), then run to the end: the Parquet output holds
/// every inserted row exactly once, and `vmig verify` finds it equal to the collection.
#[test]
fn a_killed_migration_resumes_to_exactly_the_collection() {
    let Some(url) = chroma::url() else { return };
    let name = "vmig_cli_resume";
    let want = sample(6000, 32);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let id = chroma::recreate(&url, name, "l2").await;
        chroma::add(&url, &id, &want).await;
    });
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let job = write_job(
        dir.path(),
        "resume",
        &format!(
            "[source]\ntype = \"chroma\"\nurl = \"{url}\"\ncollection = \"{name}\"\npartitions = 2\nbatch_size = 100\n\n[sink]\ntype = \"files\"\npath = \"{}\"\nmax_file_size = \"64KiB\"\n\n[pipeline]\nbatch_rows = 100\nflush_rows = 200\nmax_rows_per_second = 1500\ncheckpoint_interval = \"1s\"\n",
            out.display()
        ),
    );
    migrate_killed_at(&job, &[], &[600, 3000]);
    chroma::assert_same_rows(parquet_rows(&out), want, "resumed parquet vs inserted");
    let v = vmig_cmd(&["verify", job.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert_verify_clean(&v, 6000);
}

/// A refused token (a local server answering 401, as Chroma with authentication does) and an
/// unreachable server stop `vmig migrate` with exit code 1 and a message saying what to check,
/// never the token.
#[test]
fn a_refused_token_and_an_unreachable_server_exit_1_saying_why() {
    let (server, seen) = chroma::unauthorized_server();
    let dir = tempfile::tempdir().unwrap();
    for (name, url, want) in [
        ("token", server.as_str(), vec!["401", "check `token`"]),
        (
            "down",
            "http://127.0.0.1:9",
            vec!["http://127.0.0.1:9", "is it running"],
        ),
    ] {
        let job = write_job(
            dir.path(),
            name,
            &format!(
                "[source]\ntype = \"chroma\"\nurl = \"{url}\"\ncollection = \"c\"\ntoken = \"${{VMIG_TEST_CHROMA_TOKEN}}\"\nretry = {{ max_attempts = 2, initial_backoff = \"10ms\" }}\n\n[sink]\ntype = \"files\"\npath = \"{}\"\n",
                dir.path().join(name).display()
            ),
        );
        let mut c = vmig_cmd(&["migrate", job.to_str().unwrap(), "--state", "none"]);
        c.env("VMIG_TEST_CHROMA_TOKEN", "Sup3rSecretTok");
        let o = c.output().unwrap();
        let text = output_text(&o);
        assert_eq!(o.status.code(), Some(1), "{text}");
        for w in want {
            assert!(text.contains(w), "{name}: {w}: {text}");
        }
        assert!(!text.contains("Sup3rSecretTok"), "{name}: {text}");
    }
    assert!(
        seen.lock()
            .unwrap()
            .to_lowercase()
            .contains("authorization: bearer sup3rsecrettok"),
        "the token was not sent"
    );
}
