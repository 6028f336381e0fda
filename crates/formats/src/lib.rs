//! vmig-formats: byte-level readers and writers, with no async runtime and no plugin registry.
//!
//! * [`faiss`] parses the layout of Faiss index files (which byte ranges hold which vectors and
//!   ids) from a random-access reader, so a source can stream hundreds of GB without loading them.
//! * [`staging`] writes the files Milvus 2.x bulk import reads: Parquet, NumPy and row-based JSON.
//!
//! The main design decision: decoding is separated from I/O. Everything here works on byte
//! slices or a synchronous [`faiss::ReadAt`], so the riskiest code in vmig can be tested from
//! fixtures, fuzzed and benchmarked without Tokio; the plugin crates own the I/O.
#![warn(missing_docs)]

pub mod faiss;
pub mod staging;
