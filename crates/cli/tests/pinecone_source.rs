//! The `pinecone` source through the `vmig` binary, against the Pinecone STAND-IN
//! (`crates/source-pinecone/tests/standin/pinecone_standin.py`: Pinecone is a hosted service
//! that cannot run here; the stand-in is written from Pinecone's 2025-10 OpenAPI documents and
//! validates every answer against the official SDK's generated models). Two namespaces into
//! Parquet files (one folder per target partition), stopped with SIGINT and killed with SIGKILL
//! at random instants, resumed until done: `vmig verify` is clean, every row equals the record
//! put in the stand-in, bit for bit, none twice, and the API key is never printed. Ports
//! 18450–18459. Skips loudly without Python and the SDK (scripts/pyenv); fails under `CI=true`.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use arrow::array::AsArray;
use common::{assert_verify_clean, write_job};
use serde_json::json;
use vmig_testing::process::output_text as text;

const KEY: &str = "pcsk_cli_resume_key_0815";

/// Records of namespace `ns`: (id, 16 values).
fn records(ns: &str, n: usize) -> Vec<(String, Vec<f32>)> {
    (0..n)
        .map(|i| {
            let id = format!("{ns}r{:05}", (i * 7919) % n);
            let v = (0..16)
                .map(|c| ((i * 16 + c) as f32 * 0.37).sin() / (1.0 + c as f32))
                .collect();
            (id, v)
        })
        .collect()
}

/// id → vector bits of the Parquet files under `dir`; panics on an id seen twice.
fn parquet(dir: &std::path::Path) -> BTreeMap<String, Vec<u32>> {
    let mut out = BTreeMap::new();
    for b in vmig_testing::compare::parquet_dir_batches(dir) {
        let ids = b.column_by_name("id").unwrap().as_string::<i32>();
        let vecs = b.column_by_name("vector").unwrap();
        for r in 0..b.num_rows() {
            let v = match vecs.as_fixed_size_list_opt() {
                Some(f) => f.value(r),
                None => vecs.as_list::<i32>().value(r),
            };
            let bits = v
                .as_primitive::<arrow::datatypes::Float32Type>()
                .values()
                .iter()
                .map(|x| x.to_bits())
                .collect();
            let id = ids.value(r).to_string();
            assert!(out.insert(id.clone(), bits).is_none(), "{id} twice");
        }
    }
    out
}

#[test]
fn pinecone_namespaces_resume_after_a_stop_and_kills_and_verify() {
    let Some(py) = vmig_testing::service::python() else {
        return;
    };
    let has_sdk = Command::new(&py)
        .args(["-c", "import pinecone.core.openapi.db_data"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_sdk {
        let msg = format!("SKIPPED: {py} has no `pinecone` SDK 8.x; run scripts/pyenv");
        assert!(!vmig_testing::service::is_ci(), "{msg}");
        eprintln!("{msg}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let default_ns = records("", 1500);
    let en = records("en", 700);
    let rec = |(id, v): &(String, Vec<f32>)| json!({"id": id, "values": v, "metadata": {"n": id.len(), "s": id}});
    let data = json!({
        "api_key": KEY,
        "index": {"name": "docs", "dimension": 16, "metric": "euclidean", "vector_type": "dense", "kind": "serverless"},
        "namespaces": {"": default_ns.iter().map(rec).collect::<Vec<_>>(), "en": en.iter().map(rec).collect::<Vec<_>>()},
    });
    let data_file = dir.path().join("standin.json");
    std::fs::write(&data_file, serde_json::to_vec(&data).unwrap()).unwrap();
    let script = common::repo().join("crates/source-pinecone/tests/standin/pinecone_standin.py");
    let port = 18450;
    let mut standin = StandIn(
        Command::new(&py)
            .arg(&script)
            .arg(&data_file)
            .arg(port.to_string())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(standin.0.stderr.take().unwrap()).lines();
    assert!(lines
        .next()
        .is_some_and(|l| l.is_ok_and(|l| l.contains("listening"))));
    std::thread::spawn(move || lines.for_each(drop));

    let out = dir.path().join("out");
    let job = write_job(
        dir.path(),
        "pinecone",
        &format!(
            "[source]\ntype = \"pinecone\"\nindex = \"docs\"\ncontrol_url = \"http://127.0.0.1:{port}\"\napi_key = \"${{VMIG_TEST_PINECONE_KEY}}\"\nlist_limit = 50\nfetch_batch = 25\nmetadata_mode = \"dynamic\"\n\n[sink]\ntype = \"files\"\npath = \"{}\"\nmax_file_size = \"64KiB\"\n\n[pipeline]\nbatch_rows = 50\nflush_rows = 100\nmax_rows_per_second = 800\ncheckpoint_interval = \"1s\"\n",
            out.display()
        ),
    );
    let job = job.to_str().unwrap().to_string();
    let cmd = |args: &[&str]| {
        let mut c = common::vmig_cmd(args);
        c.env("VMIG_TEST_PINECONE_KEY", KEY).env("VMIG_LOG", "info");
        c
    };
    let plan = cmd(&["plan", &job]).output().unwrap();
    assert!(plan.status.success(), "{}", text(&plan));
    let shown = text(&plan);
    assert!(
        shown.contains("the default namespace") && shown.contains("partitions: 2 (2200 rows)"),
        "{shown}"
    );
    let o = vmig_testing::process::signal_after(
        cmd(&["migrate", &job, "--progress", "log"]),
        "Started",
        Duration::from_millis(1200),
        "INT",
    );
    assert_eq!(o.status.code(), Some(130), "{}", text(&o));
    let killed = vmig_testing::process::kill_until_done(
        || cmd(&["migrate", &job, "--json", "--progress", "log"]),
        5,
        Duration::from_millis(1500),
        41,
    );
    assert!(killed.last.status.success(), "{}", text(&killed.last));
    let summary: serde_json::Value = serde_json::from_slice(&killed.last.stdout).unwrap();
    assert!(
        summary["resumed"]["rows_written"].as_u64().unwrap() > 0,
        "{summary}"
    );
    let verify = cmd(&["verify", &job, "--json"]).output().unwrap();
    assert_verify_clean(&verify, 2200);
    for o in [&plan, &o, &killed.last, &verify] {
        assert!(
            !text(o).contains(KEY),
            "the API key was printed: {}",
            text(o)
        );
    }
    for (folder, recs) in [("_default", &default_ns), ("en", &en)] {
        let want: BTreeMap<String, Vec<u32>> = recs
            .iter()
            .map(|(id, v)| (id.clone(), v.iter().map(|x| x.to_bits()).collect()))
            .collect();
        let got = parquet(&out.join(folder));
        assert_eq!(got.len(), want.len(), "{folder}");
        assert!(
            got == want,
            "{folder}: the copied rows differ from the records"
        );
    }
}

/// The stand-in's process, stopped (by its own handle) however the test ends.
struct StandIn(std::process::Child);

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
