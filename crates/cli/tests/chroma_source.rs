//! The `chroma` source end to end through the `vmig` binary: a collection created in the real
//! Chroma 1.5.9 (`scripts/chroma`, `VMIG_CHROMA_URL`) is planned (the metric and the metadata key
//! scan in the schema), migrated into the real Milvus 2.3.5 and verified clean.
#![allow(clippy::unwrap_used)]

mod common;

use common::{assert_verify_clean, vmig_milvus, write_job};
use serde_json::{json, Value};
use vmig_testing::process::output_text;
use vmig_testing::service::{endpoint, milvus, unique};

const ROWS: usize = 700;

/// Creates (again) collection `name` (space `ip`, dimension 8) holding ROWS rows with a
/// document each and int/str/bool metadata (every 4th row without metadata).
async fn fill(url: &str, name: &str) {
    let base =
        format!("{url}/api/v2/tenants/default_tenant/databases/default_database/collections");
    let http = reqwest::Client::new();
    let _ = http.delete(format!("{base}/{name}")).send().await;
    let created: Value = http
        .post(&base)
        .json(&json!({"name": name, "configuration": {"hnsw": {"space": "ip"}}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    let ids: Vec<String> = (0..ROWS).map(|i| format!("c{i}")).collect();
    let embeddings: Vec<Vec<f32>> = (0..ROWS)
        .map(|i| (0..8).map(|j| ((i * 8 + j) as f32).sin() / 3.0).collect())
        .collect();
    let documents: Vec<String> = (0..ROWS).map(|i| format!("doc {i} ✓")).collect();
    let metadatas: Vec<Value> = (0..ROWS)
        .map(|i| {
            if i % 4 == 0 {
                Value::Null
            } else {
                json!({"n": i, "lang": if i % 2 == 0 { "en" } else { "fr" }, "ok": i % 3 == 0})
            }
        })
        .collect();
    let r = http
        .post(format!("{base}/{id}/add"))
        .json(&json!({"ids": ids, "embeddings": embeddings, "documents": documents, "metadatas": metadatas}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

#[test]
fn a_chroma_collection_plans_migrates_into_milvus_and_verifies() {
    let (Some(url), Some(m)) = (endpoint("VMIG_CHROMA_URL", "Chroma server"), milvus()) else {
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
