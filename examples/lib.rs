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
//! them on every change. This library part only holds shared paths.
#![warn(missing_docs)]

use std::path::PathBuf;

/// `examples/data`, where the sample index and job files live.
pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data")
}
