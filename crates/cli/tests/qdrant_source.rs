//! The `qdrant` source end to end through the `vmig` binary, from the Qdrant STAND-IN
//! (`scripts/qdrant`: Qdrant's documented REST endpoints over the `qdrant-client` package's local
//! mode, `VMIG_QDRANT_URL`; no real Qdrant server can run here) into the real Milvus 2.3.5:
//! 52 000 points with integer and UUID ids, planned (the vector choice said in the plan), then
//! migrated with runs killed by `SIGKILL` at random instants and resumed until done; `vmig
//! verify` must find the collection equal to the source.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{assert_verify_clean, vmig_milvus_cmd as vmig_cmd, write_job};
use serde_json::Value;
use vmig_testing::process::output_text as text;
use vmig_testing::service::{endpoint, milvus, unique};

const POINTS: u64 = 52_000;

#[test]
fn a_qdrant_collection_migrates_into_milvus_through_kills_and_verifies() {
    let (Some(url), Some(m)) = (
        endpoint("VMIG_QDRANT_URL", "Qdrant stand-in (scripts/qdrant)"),
        milvus(),
    ) else {
        return;
    };
    let key = std::env::var("VMIG_QDRANT_API_KEY").unwrap_or_default();
    let dir = tempfile::tempdir().unwrap();
    let collection = unique("qd_cli");
    let job = write_job(
        dir.path(),
        "qdrant",
        &format!(
            "[source]\ntype = \"qdrant\"\nurl = \"{url}\"\napi_key = \"${{VMIG_TEST_QDRANT_KEY}}\"\ncollection = \"mixed\"\nvector = \"dense\"\npayload_mode = \"dynamic\"\npartitions = 2\nbatch_size = 1000\n\n[sink]\ntype = \"milvus2\"\nuri = \"{}\"\nuser = \"{}\"\npassword = \"${{VMIG_TEST_MILVUS_PASSWORD}}\"\ncollection = \"{collection}\"\nindex = {{ type = \"FLAT\", metric = \"COSINE\" }}\nload = true\n\n[pipeline]\nflush_rows = 2000\nmax_rows_per_second = 8000\ncheckpoint_interval = \"1s\"\n",
            m.uri, m.user
        ),
    );
    let job = job.to_str().unwrap().to_string();
    let with_key = |mut c: std::process::Command| {
        c.env("VMIG_TEST_QDRANT_KEY", &key);
        c
    };
    let plan = with_key(vmig_cmd(&["plan", &job, "--json"], &m))
        .output()
        .unwrap();
    assert!(plan.status.success(), "{}", text(&plan));
    let shown = String::from_utf8_lossy(&plan.stdout).to_string();
    assert!(
        shown.contains("copying `dense` of `dense`, `img`, `sp` (sparse)"),
        "{shown}"
    );
    assert!(!shown.contains(&key), "the API key is printed: {shown}");
    let killed = vmig_testing::process::kill_until_done(
        || {
            let mut c = with_key(vmig_cmd(
                &["migrate", &job, "--json", "--progress", "log"],
                &m,
            ));
            c.env("VMIG_LOG", "info");
            c
        },
        3,
        Duration::from_secs(12),
        18,
    );
    assert!(killed.last.status.success(), "{}", text(&killed.last));
    let summary: Value = serde_json::from_slice(&killed.last.stdout).unwrap();
    eprintln!("kills: {}, summary: {summary}", killed.kills);
    let v = with_key(vmig_cmd(&["verify", &job, "--json"], &m))
        .output()
        .unwrap();
    assert_verify_clean(&v, POINTS);
    m.drop_collection(&collection);
}
