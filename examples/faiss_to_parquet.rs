//! Faiss → Parquet with vmig as a library.
//!
//! Builds the `faiss` source and `files` sink from their registered configs, runs the pipeline
//! and reads the Parquet files back to check that every id of the index arrived once.
//!
//! Run: `cargo run -p vmig-examples --example faiss_to_parquet`

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use vmig::pipeline::{NoProgress, Pipeline};
use vmig::registry::{parse_sink, parse_source};
use vmig::BuildContext;
// The plugin crates must be linked for their registration to exist.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = tempfile::tempdir()?;
    let ctx = BuildContext {
        base_dir: vmig_examples::data_dir(),
    };
    let source = parse_source("faiss", serde_json::json!({ "path": "sample.faiss" }))?
        .build(&ctx)
        .await?;
    let sink = parse_sink(
        "files",
        serde_json::json!({ "path": out.path().to_string_lossy(), "format": "parquet" }),
    )?
    .build(&ctx)
    .await?;
    println!("source schema: {:?}", source.schema());

    let report = Pipeline::new(source, sink)
        .run(Arc::new(NoProgress))
        .await?;
    println!(
        "wrote {} rows into {} file(s) in {}",
        report.rows_written,
        report.files.len(),
        report.target
    );

    // Check: every id 1_000_000 + 3i (i < 2000) is present exactly once.
    let mut ids = BTreeSet::new();
    let mut rows = 0usize;
    for batch in vmig_examples::parquet_batches(out.path())? {
        assert!(batch.schema().field_with_name("vector").is_ok());
        rows += batch.num_rows();
        ids.extend(
            batch
                .column(0)
                .as_primitive::<Int64Type>()
                .values()
                .iter()
                .copied(),
        );
    }
    let expected: BTreeSet<i64> = (0..2000).map(|i| 1_000_000 + 3 * i).collect();
    assert_eq!(rows, 2000, "row count");
    assert_eq!(ids, expected, "ids");
    println!("ok: 2000 rows, every id present once");
    Ok(())
}
