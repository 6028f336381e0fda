//! vmig-examples: runnable programs that use vmig as a library (not published).
//!
//! * `cargo run -p vmig-examples --example faiss_to_parquet` — build a source and a sink from
//!   their configs, run the pipeline, check the output.
//! * `cargo run -p vmig-examples --example custom_transformer` — define a transformer outside
//!   vmig, register it with `vmig::register_transform!`, and use it from a job file.
//! * `cargo run -p vmig-examples --example custom_parser` — define a parser for a binary format
//!   of your own, register it with `vmig::register_parser!`, and ship a `vmig` that lists it in
//!   `vmig plugins` and reads such files with the `files` source.
//!
//! The first two run against `examples/data/sample.faiss` and write to a temporary directory, so CI runs
//! them on every change. This library part only holds shared paths and the read-back of Parquet output.
#![warn(missing_docs)]

use std::path::{Path, PathBuf};

use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// `examples/data`, where the sample index and job files live.
pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data")
}

/// Every row of the Parquet files directly in `dir` (what the `files` sink wrote there), as the
/// batches the parquet crate reads back.
///
/// # Errors
/// When `dir` cannot be listed or a file cannot be read as Parquet.
pub fn parquet_batches(dir: &Path) -> Result<Vec<RecordBatch>, Box<dyn std::error::Error>> {
    let mut batches = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("parquet") {
            continue;
        }
        let file = std::fs::File::open(&path)?;
        for batch in ParquetRecordBatchReaderBuilder::try_new(file)?.build()? {
            batches.push(batch?);
        }
    }
    Ok(batches)
}
