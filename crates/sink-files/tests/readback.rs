//! The files sink's Parquet output read back for `vmig verify`, including partition folders.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use vmig_core::pipeline::{NoProgress, Pipeline};
use vmig_core::registry::parse_sink;
use vmig_core::verify::{verify, Difference, Key};
use vmig_core::BuildContext;
use vmig_sink_files as _;
use vmig_testing::gen::{sample_batch, sample_schema};
use vmig_testing::mock::MockSource;

#[tokio::test]
async fn verify_reads_every_partition_folder() {
    let dir = tempfile::tempdir().unwrap();
    let source = MockSource {
        schema: sample_schema(8),
        partitions: vec![
            vec![sample_batch(3, 0, 40, 8)],
            vec![sample_batch(3, 100, 30, 8)],
            vec![sample_batch(3, 500, 20, 8)],
        ],
        fail_at: None,
        target_partitions: vec![Some("p2023".into()), Some("p2024".into()), None],
    };
    let config = serde_json::json!({ "path": dir.path().to_string_lossy(), "format": "parquet" });
    let ctx = BuildContext::default();
    let sink_config = parse_sink("files", config).unwrap();
    let sink = sink_config.build(&ctx).await.unwrap();
    Pipeline::new(Box::new(source.clone()), sink)
        .run(Arc::new(NoProgress))
        .await
        .unwrap();
    assert!(dir.path().join("p2023").is_dir() && dir.path().join("p2024").is_dir());

    let target = sink_config
        .open_target(&ctx, &sample_schema(8))
        .await
        .unwrap()
        .unwrap();
    let report = verify(&source, &[], target.as_ref(), "id", 5)
        .await
        .unwrap();
    assert!(report.is_match(), "{report:?}");
    assert_eq!(report.target_rows, 90);

    // A partition folder that loses its file loses its rows in the report.
    for entry in std::fs::read_dir(dir.path().join("p2024")).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let target = sink_config
        .open_target(&ctx, &sample_schema(8))
        .await
        .unwrap()
        .unwrap();
    let report = verify(&source, &[], target.as_ref(), "id", 5)
        .await
        .unwrap();
    assert_eq!(report.missing, 30);
    assert_eq!(report.examples[0], (Key::Int(100), Difference::Missing));
}
