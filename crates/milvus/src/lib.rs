//! vmig-milvus: the Milvus 2.x client layer shared by the `milvus2` sink, the `milvus2` source
//! and `vmig verify`.
//!
//! It speaks Milvus's gRPC API through the generated stubs that the official
//! `milvus-sdk-rust` crate publishes (`milvus::proto::*`), not through the SDK's high-level
//! client. **Main design decision:** vmig's data is Arrow, so this crate converts Arrow columns
//! straight to and from the wire's column-oriented `FieldData` ([`convert`]) and owns every
//! request's shape: message limits raised to what the proxy allows (64 MiB requests, 256 MiB
//! replies; tonic's default 4 MiB decode limit is too small for query pages), 2.3's gRPC
//! `Import` (the SDK's import is REST v2, which 2.3 does not have), iterator-style PK keyset
//! paging ([`MilvusClient::query_page`]), and failures classified by what a caller must do
//! ([`error`]: retry, split, fix credentials, or read the server's reason).
//!
//! Types: which Milvus type an Arrow field becomes is the one table in [`vmig_core::types`];
//! [`schema`] maps it to and from the protobuf `DataType` (`to_proto`/`from_proto`, the only such
//! mapping here) and builds both schema directions ([`collection_schema`], [`arrow_schema`]),
//! [`convert`] encodes and decodes values, and [`meta`] defines every metadata key and reads
//! `type_params` (it depends on neither of the other two).
//!
//! Connecting ([`MilvusClient::connect`]) checks the server and the credentials with cheap
//! RPCs, so a server that is down or a wrong password fails at once with a clear message; the
//! password or token never appears in messages or `Debug` output. A `uri` where something other
//! than gRPC answers (Milvus's HTTP port 9091, a web server, a TLS port given as `http://`) is
//! named as such after one probe connection (the HTTP/2 preface; an HTTP/2 server such as Milvus
//! answers it with SETTINGS and is left alone), instead of tonic's `transport error`.
//!
//! Version notes: tested against Milvus 2.3.5. Newer proto fields are simply unset on older
//! servers. Bulk import has two paths: 2.3's gRPC `Import` (one JSON or Parquet file, or one
//! NumPy set, per call; still accepted by 2.4/2.5), and the REST import jobs of Milvus 2.4+ and
//! Zilliz Cloud ([`rest`]: several files per job), which [`version::ServerVersion`] lets callers
//! choose between. The REST client is tested against a stand-in written from the published API
//! reference, not a real 2.4+ server.
#![warn(missing_docs)]

pub mod client;
pub mod convert;
pub mod error;
pub mod meta;
mod params;
mod probe;
pub mod rest;
pub mod scan;
pub mod schema;
pub mod version;

pub use client::{
    import_failed, poll_imports, CollectionInfo, ConnectOptions, Consistency, ImportOutcome,
    ImportTaskState, KeysetQuery, MilvusClient, PkValue, MAX_QUERY_WINDOW,
};
pub use error::{is_too_large, MilvusError, MilvusErrorKind};
pub use milvus::proto;
pub use scan::{keyset_scan, page_rows_for};
pub use schema::{arrow_schema, collection_schema, SchemaOptions};
pub use version::{ServerKind, ServerVersion};
