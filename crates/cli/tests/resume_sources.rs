//! A resumable `vmig migrate` per source the other resume tests do not cover: a Milvus 2.x
//! collection (the real Milvus 2.3.5 of `scripts/milvus`) into Parquet files, stopped by a signal
//! and killed with `SIGKILL` at random instants, resumed until done; `vmig verify` must find the
//! output equal to the collection, and the rows must be the shipped sample index's, bit for bit.
//! Skips loudly without Milvus; fails under `CI=true`. Data files (the `files` source) the same
//! way, without a server.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{
    assert_verify_clean, parquet_rows, sample, sample_rows, vmig_milvus as vmig,
    vmig_milvus_cmd as vmig_cmd, write_job,
};
use vmig_testing::process::output_text as text;
use vmig_testing::service::{milvus, unique};

#[test]
fn milvus2_source_resumes_after_a_stop_and_kills() {
    let Some(m) = milvus() else { return };
    let dir = tempfile::tempdir().unwrap();
    let collection = unique("cli_resume_src");
    // The sample index into a collection of its own (no state: a set-up step).
    let load = write_job(
        dir.path(),
        "load",
        &format!(
            "[source]\ntype = \"faiss\"\npath = \"{}\"\n\n[sink]\ntype = \"milvus2\"\nuri = \"{}\"\nuser = \"{}\"\npassword = \"${{VMIG_TEST_MILVUS_PASSWORD}}\"\ncollection = \"{collection}\"\nmode = \"insert\"\nindex = {{ type = \"FLAT\" }}\nload = true\n",
            sample().display(),
            m.uri,
            m.user
        ),
    );
    let o = vmig(&["migrate", load.to_str().unwrap(), "--state", "none"], &m);
    assert!(o.status.success(), "{}", text(&o));

    // The collection into Parquet files, slowly: 2000 rows at 250 rows/s, a page of 100 rows
    // per query, a checkpoint every 100 rows.
    let out = dir.path().join("out");
    let copy = write_job(
        dir.path(),
        "copy",
        &format!(
            "[source]\ntype = \"milvus2\"\nuri = \"{}\"\nuser = \"{}\"\npassword = \"${{VMIG_TEST_MILVUS_PASSWORD}}\"\ncollection = \"{collection}\"\nbatch_size = 100\n\n[sink]\ntype = \"files\"\npath = \"{}\"\nmax_file_size = \"64KiB\"\n\n[pipeline]\nbatch_rows = 50\nflush_rows = 100\nmax_rows_per_second = 250\ncheckpoint_interval = \"1s\"\n",
            m.uri,
            m.user,
            out.display()
        ),
    );
    let copy_arg = copy.to_str().unwrap().to_string();
    let mut c = vmig_cmd(&["migrate", &copy_arg, "--progress", "log"], &m);
    c.env("VMIG_LOG", "info");
    let o = vmig_testing::process::signal_after(c, "Started", Duration::from_millis(1500), "INT");
    assert_eq!(o.status.code(), Some(130), "{}", text(&o));
    let killed = vmig_testing::process::kill_until_done(
        || {
            let mut c = vmig_cmd(&["migrate", &copy_arg, "--json", "--progress", "log"], &m);
            c.env("VMIG_LOG", "info");
            c
        },
        6,
        Duration::from_millis(1500),
        17,
    );
    assert!(killed.last.status.success(), "{}", text(&killed.last));
    assert_eq!(killed.kills, 6);
    let summary: serde_json::Value = serde_json::from_slice(&killed.last.stdout).unwrap();
    assert!(
        summary["resumed"]["rows_written"].as_u64().unwrap() > 0,
        "{summary}"
    );

    assert_verify_clean(&vmig(&["verify", &copy_arg, "--json"], &m), 2000);

    // The same rows as the sample index itself, bit for bit. The rows of the collection's
    // `_default` partition are in that folder.
    let got = parquet_rows(&out.join("_default"));
    assert_eq!(got.len(), 2000);
    assert!(
        got == sample_rows(dir.path()),
        "the copied rows differ from the index's"
    );
    m.drop_collection(&collection);
}

/// fvecs files through the `files` source into Parquet, slowly, stopped by SIGINT and killed
/// with SIGKILL at random instants, resumed until done: every row once, bit for bit, with the
/// ids numbering rows across the files — resumes land mid-file (a byte offset) and mid-range
/// (files split into row ranges).
#[test]
fn files_source_resumes_after_a_stop_and_kills() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let (dim, rows) = (16usize, 700usize);
    let mut want = std::collections::BTreeMap::new();
    for f in 0..3 {
        let mut bytes = Vec::new();
        for r in 0..rows {
            let id = (f * rows + r) as i64;
            bytes.extend_from_slice(&(dim as i32).to_le_bytes());
            let bits: Vec<u32> = (0..dim)
                .map(|c| match (r + c) % 4 {
                    0 => 0x8000_0000, // -0.0
                    1 => 0x0000_0001, // the smallest subnormal
                    _ => (id as f32 * 0.25 + c as f32).to_bits(),
                })
                .collect();
            for b in &bits {
                bytes.extend_from_slice(&b.to_le_bytes());
            }
            want.insert(id, bits);
        }
        std::fs::write(data.join(format!("base-{f}.fvecs")), bytes).unwrap();
    }
    let out = dir.path().join("out");
    let job = write_job(
        dir.path(),
        "fvecs",
        &format!(
            "[source]\ntype = \"files\"\npath = \"{}/*.fvecs\"\npartition_rows = 300\n\n[sink]\ntype = \"files\"\npath = \"{}\"\nmax_file_size = \"64KiB\"\n\n[pipeline]\nbatch_rows = 50\nflush_rows = 100\nmax_rows_per_second = 250\ncheckpoint_interval = \"1s\"\n",
            data.display(),
            out.display()
        ),
    );
    let job = job.to_str().unwrap().to_string();
    let mut c = common::vmig_cmd(&["migrate", &job, "--progress", "log"]);
    c.env("VMIG_LOG", "info");
    let o = vmig_testing::process::signal_after(c, "Started", Duration::from_millis(1500), "INT");
    assert_eq!(o.status.code(), Some(130), "{}", text(&o));
    let killed = vmig_testing::process::kill_until_done(
        || {
            let mut c = common::vmig_cmd(&["migrate", &job, "--json", "--progress", "log"]);
            c.env("VMIG_LOG", "info");
            c
        },
        6,
        Duration::from_millis(1500),
        23,
    );
    assert!(killed.last.status.success(), "{}", text(&killed.last));
    let summary: serde_json::Value = serde_json::from_slice(&killed.last.stdout).unwrap();
    assert!(
        summary["resumed"]["rows_written"].as_u64().unwrap() > 0,
        "{summary}"
    );
    let verify = common::vmig_cmd(&["verify", &job, "--json"])
        .output()
        .unwrap();
    assert_verify_clean(&verify, 2100);
    let got = parquet_rows(&out);
    assert_eq!(got.len(), 2100);
    assert!(got == want, "the copied rows differ from the files'");
}
