//! Kill-and-resume proof of #13 into the real Milvus 2.3.5: `vmig migrate` is killed with
//! `SIGKILL` at seeded random instants (before the state store exists, while the collection is
//! created, mid-copy, during imports or the commit) and run again until it finishes, with the
//! default SQLite state store next to the job file; then `vmig verify --json` must report zero
//! missing, extra, changed and duplicate keys, and `count(*)` — which counts two rows of one
//! primary key twice, where a query shows one — must equal the source's rows.
//!
//! Paths: Faiss → insert, Milvus 1.x → bulk import, Elasticsearch → insert. Skipped loudly on a
//! machine without the services; mandatory when `CI=true`.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use vmig_testing::milvus1::{FileType, Metric, Milvus1Gen};
use vmig_testing::process::output_text as text;
use vmig_testing::service::{endpoint, unique, MilvusServer};

/// Kills per path (the issue asks for 20 or more per path).
const KILLS: usize = 20;

/// The Milvus 2.3.5 server (with pymilvus) and the directory it imports from.
struct Milvus {
    server: MilvusServer,
    stage: String,
}

/// The Milvus 2.3.5 server, the directory it imports from, and pymilvus.
fn milvus() -> Option<Milvus> {
    let server = vmig_testing::service::milvus()?;
    endpoint("VMIG_MILVUS_PYTHON", "pymilvus")?;
    Some(Milvus {
        server,
        stage: endpoint("VMIG_MILVUS_STAGE", "Milvus 2.3.5 import directory")?,
    })
}

fn vmig_cmd(m: &Milvus, args: &[&str]) -> Command {
    let mut c = common::vmig_cmd(args);
    c.env("VMIG_TEST_MILVUS_PASSWORD", &m.server.password)
        .env("VMIG_LOG", "info");
    c
}

/// `count(*)` of `collection` (loaded), strongly consistent.
fn count_rows(m: &Milvus, collection: &str) -> u64 {
    let out = m.server.pymilvus(
        &format!("c = Collection('{collection}')\nprint(c.query(expr='', output_fields=['count(*)'], consistency_level='Strong')[0]['count(*)'])"),
    );
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("count(*) of {collection}: {out}"))
}

/// Writes `dir/job.toml` from its sections: `source` (a `[source]` table), the `milvus2` sink
/// into `collection` with `sink_extra`, and `[pipeline]` `pipeline`.
fn job(
    dir: &Path,
    m: &Milvus,
    source: &str,
    collection: &str,
    sink_extra: &str,
    pipeline: &str,
) -> PathBuf {
    let path = dir.join("job.toml");
    std::fs::write(
        &path,
        format!(
            r#"{source}

[sink]
type = "milvus2"
uri = "{}"
user = "root"
password = "${{VMIG_TEST_MILVUS_PASSWORD}}"
collection = "{collection}"
index = {{ type = "FLAT", metric = "L2" }}
load = true
{sink_extra}

[pipeline]
{pipeline}
"#,
            m.server.uri
        ),
    )
    .unwrap();
    path
}

/// Kills `vmig migrate cfg` [`KILLS`] times at seeded instants within `within` of its start,
/// runs it to the end, and checks the result: the last run succeeded and (with what the
/// earlier runs saved) accounts for `rows` rows, the state store next to the job file holds
/// every run, `vmig verify --json` finds no difference, and `count(*)` is `rows`.
fn kill_resume_and_verify(
    m: &Milvus,
    cfg: &Path,
    collection: &str,
    rows: u64,
    within: Duration,
    seed: u64,
) {
    let arg = cfg.to_str().unwrap().to_string();
    let killed = vmig_testing::process::kill_until_done(
        || vmig_cmd(m, &["migrate", &arg, "--json", "--progress", "log"]),
        KILLS,
        within,
        seed,
    );
    let last = &killed.last;
    assert!(last.status.success(), "{collection}: {}", text(last));
    assert_eq!(
        killed.kills,
        KILLS,
        "{collection}: the job finished before it was killed {KILLS} times; slow it down ({})",
        text(last)
    );
    eprintln!(
        "{collection}: {} kills, {} before the run started copying",
        killed.kills, killed.before_marker
    );
    let summary: serde_json::Value = serde_json::from_slice(&last.stdout).unwrap();
    assert!(
        summary["resumed"].is_object(),
        "{collection}: the last run did not resume: {summary}"
    );
    assert_eq!(
        summary["resumed"]["rows_written"].as_u64().unwrap()
            + summary["rows_written"].as_u64().unwrap(),
        rows,
        "{collection}: rows the earlier runs saved plus rows of the last run: {summary}"
    );

    // The default store next to the job file recorded every run.
    assert!(cfg.parent().unwrap().join(".vmig/state.db").exists());
    let s = vmig_cmd(m, &["status", &arg, "--json"]).output().unwrap();
    assert!(s.status.success(), "{}", text(&s));
    let status: serde_json::Value = serde_json::from_slice(&s.stdout).unwrap();
    assert_eq!(status["status"], "done", "{status}");
    // Runs killed before they recorded themselves are not listed; the last one is, resumed.
    let runs = status["runs"].as_array().map_or(0, Vec::len);
    eprintln!(
        "{collection}: {runs} runs recorded; the last resumed from {}",
        summary["resumed"]
    );
    assert!((2..=KILLS + 1).contains(&runs), "{status}");

    let v = vmig_cmd(m, &["verify", &arg, "--json"]).output().unwrap();
    eprintln!("{collection}: verifying");
    common::assert_verify_clean(&v, rows);
    assert_eq!(count_rows(m, collection), rows, "{collection}: count(*)");
}

#[test]
fn faiss_to_milvus_insert_killed_again_and_again_is_every_row_once() {
    let Some(m) = milvus() else { return };
    let dir = tempfile::tempdir().unwrap();
    let collection = unique("cli_kill_faiss");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data/sample.faiss");
    // 2000 rows at 100 rows/s in requests of 25 rows, a checkpoint every 50: twenty seconds of
    // copying, so most kills within 2 s of a start land mid-copy.
    let cfg = job(
        dir.path(),
        &m,
        &format!(
            "[source]\ntype = \"faiss\"\npath = \"{}\"",
            sample.display()
        ),
        &collection,
        "mode = \"insert\"\nbatch_bytes = \"8KiB\"",
        "batch_rows = 25\nflush_rows = 50\nmax_rows_per_second = 100\ncheckpoint_interval = \"1s\"",
    );
    kill_resume_and_verify(&m, &cfg, &collection, 2000, Duration::from_secs(2), 41);
    m.server.drop_collection(&collection);
}

#[test]
fn milvus1_to_milvus_bulk_killed_again_and_again_imports_every_row_once() {
    let Some(m) = milvus() else { return };
    // Collection `books` (16-d, L2) with its own segment and two partitions, a few deletes.
    let mut g = Milvus1Gen::new(1313);
    let books = g.collection("books", 16, Metric::L2);
    g.segment(books, 600, &[4, 150, 599], FileType::Raw);
    let p1 = g.partition(books, "p2023");
    g.segment(p1, 600, &[0, 17], FileType::Raw);
    let p2 = g.partition(books, "p2024");
    g.segment(p2, 600, &[], FileType::Raw);
    let rows: u64 = g.expected("books").values().map(|r| r.len() as u64).sum();
    assert_eq!(rows, 1795);
    let data = tempfile::tempdir().unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(g.write_dir(data.path()))
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let collection = unique("cli_kill_bulk");
    let stage = Path::new(&m.stage).join(&collection);
    // 60 rows/s, one partition at a time, a checkpoint every 100 rows (and second): each
    // checkpoint stages a file and imports the one before, so kills land in imports too. Slow
    // enough that 20 kills within 3 s of each start land before the job is done.
    let cfg = job(
        dir.path(),
        &m,
        &format!(
            "[source]\ntype = \"milvus1\"\npath = \"{}\"\ncollections = [\"books\"]",
            data.path().display()
        ),
        &collection,
        &format!("mode = \"bulk\"\nstage = \"{}\"", stage.display()),
        "batch_rows = 50\nflush_rows = 100\nmax_rows_per_second = 60\ncheckpoint_interval = \"1s\"\nconcurrency = 1",
    );
    kill_resume_and_verify(&m, &cfg, &collection, rows, Duration::from_secs(3), 42);

    // Each staged file was imported once (Milvus lists one completed task per file), and no
    // staged file is left; only directories of runs killed before their first checkpoint,
    // which no record names, may remain.
    let tasks = m.server.pymilvus(
        &format!("from pymilvus import utility\nfor t in utility.list_bulk_insert_tasks(collection_name='{collection}'):\n    print(t.state_name, t.row_count, t.files)"),
    );
    let completed: Vec<&str> = tasks
        .lines()
        .filter(|l| l.starts_with("Completed "))
        .collect();
    let imported: u64 = completed
        .iter()
        .map(|l| l.split(' ').nth(1).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(imported, rows, "rows of the completed imports:\n{tasks}");
    let files: Vec<&str> = completed
        .iter()
        .map(|l| l.split(' ').nth(2).unwrap())
        .collect();
    let mut unique_files = files.clone();
    unique_files.sort_unstable();
    unique_files.dedup();
    assert_eq!(
        unique_files.len(),
        files.len(),
        "a file imported twice:\n{tasks}"
    );
    let left: Vec<PathBuf> = walk(&stage).into_iter().filter(|p| p.is_file()).collect();
    eprintln!("{collection}: files left in the stage by runs killed before a checkpoint: {left:?}");
    for f in &left {
        assert!(
            !files
                .iter()
                .any(|imported| Path::new(imported) == f.as_path()),
            "an imported file was left: {}",
            f.display()
        );
    }
    let _ = std::fs::remove_dir_all(&stage);
    m.server.drop_collection(&collection);
}

/// Every path below `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            }
            out.push(p);
        }
    }
    out
}

#[test]
fn elasticsearch_to_milvus_insert_killed_again_and_again_is_every_row_once() {
    let Some(m) = milvus() else { return };
    let Some(es) = vmig_testing::service::elasticsearch() else {
        return;
    };
    // 1500 documents: ids `d<i>`, a number, a tag and a 16-d vector from a seeded generator.
    let index = unique("vmig_kill_es").to_lowercase();
    let mapping = serde_json::json!({
        "settings": { "number_of_shards": 2, "number_of_replicas": 0 },
        "mappings": { "properties": {
            "n": { "type": "long" },
            "tag": { "type": "keyword" },
            "v": { "type": "dense_vector", "dims": 16, "similarity": "l2_norm" }
        }}
    });
    let vectors = vmig_testing::gen::vectors(77, 1500, 16);
    let docs = vectors.chunks(16).enumerate().map(|(i, v)| {
        // `{}` prints an f32's shortest round-trip decimal: the text parses back to its bits.
        let v: Vec<String> = v.iter().map(|f| format!("{f}")).collect();
        let source = format!(
            "{{\"n\":{i},\"tag\":\"t{}\",\"v\":[{}]}}",
            i % 7,
            v.join(",")
        );
        (format!("d{i}"), source)
    });
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(vmig_testing::es::create_and_load(
            &es, &index, &mapping, docs,
        ));

    let dir = tempfile::tempdir().unwrap();
    let collection = unique("cli_kill_es");
    // Two slices (partitions), pages of 50, 100 rows/s, a checkpoint every 50 rows.
    let cfg = job(
        dir.path(),
        &m,
        &format!(
            "[source]\ntype = \"elasticsearch\"\nurl = \"{es}\"\nindex = \"{index}\"\nslices = 2\nbatch_size = 50\ndefaults = {{ n = 0, tag = \"\" }}"
        ),
        &collection,
        "mode = \"insert\"\nbatch_bytes = \"8KiB\"",
        "batch_rows = 25\nflush_rows = 50\nmax_rows_per_second = 100\ncheckpoint_interval = \"1s\"",
    );
    kill_resume_and_verify(&m, &cfg, &collection, 1500, Duration::from_millis(1500), 43);
    m.server.drop_collection(&collection);
    let url = format!("{es}/{index}");
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async { reqwest::Client::new().delete(url).send().await })
        .unwrap();
}
