//! vmig-testing: what vmig's tests share (not published).
//!
//! * [`service`]: endpoints of the real services the integration tests talk to. A missing
//!   service skips the test loudly on a developer's machine and fails it when `CI=true`.
//! * [`gen`]: seeded generators of vector data, so every test and bench can rebuild the exact
//!   rows it expects.
//! * [`mock`]: an in-memory source and sink for pipeline tests.
//! * [`conformance`]: the source and sink contract checks every plugin's tests run, and the
//!   shared readers (`read_all`, `open_partition`, `read_partition`).
//! * [`parsers`]: the parser conformance check (chunking, batch sizes, resuming at every batch).
//! * [`compare`]: helpers for bit-exact comparisons of migrated rows (vector bytes).
//! * [`pg_server`]: a PostgreSQL server of one test's own (stop, restart, TLS).
//! * [`process`]: running a command and stopping it with a signal mid-run.
//! * [`secrets`]: checks that a configuration's `Debug` and JSON show no secret.
//! * `chroma` (feature `chroma`): collections on the real Chroma server, and its rows compared.
//! * `es` (feature `es`): creating and loading indexes on the Elasticsearch/OpenSearch
//!   stand-ins.
//! * `http_stub` (feature `http-stub`): a local HTTP server recording requests and answering
//!   as the test says, for REST clients tested against exchanges from a published reference.
//! * `tls` (feature `tls`): a test CA and server certificate, and a TLS-terminating proxy.
//! * `milvus1` (feature `milvus1`): a generator of Milvus 1.x data directories.
#![warn(missing_docs)]

#[cfg(feature = "chroma")]
pub mod chroma;
pub mod compare;
pub mod conformance;
#[cfg(feature = "sql")]
pub mod database;
pub mod e2e;
#[cfg(feature = "es")]
pub mod es;
pub mod gen;
#[cfg(feature = "http-stub")]
pub mod http_stub;
#[cfg(feature = "milvus1")]
pub mod milvus1;
pub mod mock;
pub mod parsers;
pub mod pg_server;
pub mod process;
pub mod secrets;
pub mod service;
#[cfg(feature = "tls")]
pub mod tls;
