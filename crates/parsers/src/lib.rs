//! vmig-parsers: the built-in parsers, each a registered [`vmig_core::ParserConfig`] plugin.
//!
//! | `format` | extensions | what it reads                                                   |
//! |----------|------------|-----------------------------------------------------------------|
//! | `npy`    | `npy`      | one NumPy array (NPY v1–v3): 1-D → a scalar column, 2-D → vectors |
//!
//! The main design decision: a parser is a push decoder with no I/O ([`vmig_core::Parser`]).
//! The source that owns the file or object feeds it chunks of any size, so one parser serves
//! local files, object-store ranges and in-memory fixtures alike, and decoding can be tested and
//! benchmarked without a runtime. A parser is exact or it fails: every value arrives with its
//! bits, and an error names the input, the byte offset and what to do.
#![warn(missing_docs)]

mod npy;

pub use npy::{NpyParser, NpyParserConfig};

vmig_core::register_parser!(NpyParserConfig);
