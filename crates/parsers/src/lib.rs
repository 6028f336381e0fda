//! vmig-parsers: the built-in parsers, each a registered [`vmig_core::ParserConfig`] plugin.
//!
//! | `format` | extensions | what it reads                                                   |
//! |----------|------------|-----------------------------------------------------------------|
//! | `npy`    | `npy`      | one NumPy array (NPY v1–v3): 1-D → a scalar column, 2-D → vectors |
//! | `parquet` | `parquet` | any Parquet file (random access: footer, then column chunks): columns → fields, lists of float32/float16/uint8 → Float/Float16/BinaryVector |
//! | `fvecs`  | `fvecs`    | TEXMEX float32 vectors, each after its `i32` dimension → `id` + FloatVector |
//! | `ivecs`  | `ivecs`    | TEXMEX int32 vectors (often ground-truth ids) → `id` + list of Int32 |
//! | `bvecs`  | `bvecs`    | TEXMEX uint8 vectors → `id` + list of UInt8 (`cast` to `float_vector`) |
//! | `fbin`   | `fbin`     | big-ann-benchmarks float32 (`u32` rows, `u32` dim header) → `id` + FloatVector |
//! | `u8bin`  | `u8bin`    | big-ann-benchmarks uint8 → `id` + list of UInt8 (`cast` to `float_vector`) |
//! | `i8bin`  | `i8bin`    | big-ann-benchmarks int8 → `id` + list of Int8 (`cast` to `float_vector`) |
//! | `hdf5`   | `hdf5`, `h5` | cargo feature `hdf5`: one 2-D dataset of an HDF5 file (ann-benchmarks `train`/`test`/`neighbors`) → `id` + FloatVector (float32, bit-exact), BinaryVector (bool) or a list; `distance` → `vmig.metric`; copied whole to `$TMPDIR` first |
//! | `json`   | `json`, `jsonl`, `ndjson` | rows of objects — Milvus row-based `{"rows": [...]}`, JSON Lines or an array; types inferred from a sample or given in `fields`; number arrays → FloatVector |
//! | `csv`    | `csv`      | a header row, then RFC 4180 records (`delimiter`); `[…]` cells → vectors; types inferred or given in `fields` |
//! | `tsv`    | `tsv`      | as `csv`, tab-separated |
//!
//! The main design decision: a parser is a push decoder with no I/O ([`vmig_core::Parser`]).
//! The source that owns the file or object feeds it chunks of any size, so one parser serves
//! local files, object-store ranges and in-memory fixtures alike, and decoding can be tested and
//! benchmarked without a runtime. A parser is exact or it fails: every value arrives with its
//! bits, and an error names the input, the byte offset and what to do.
#![warn(missing_docs)]

mod csv;
#[cfg(feature = "hdf5")]
mod hdf5;
mod json;
mod npy;
mod parquet;
mod parquet_fast;
mod vecs;

pub use self::csv::*;
#[cfg(feature = "hdf5")]
pub use self::hdf5::{Hdf5Parser, Hdf5ParserConfig};
pub use self::json::*;
pub use self::parquet::*;
pub use npy::{NpyParser, NpyParserConfig};
pub use vecs::*;

vmig_core::register_parser!(NpyParserConfig);
