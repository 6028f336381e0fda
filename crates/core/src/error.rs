//! The one error type of vmig's libraries.
//!
//! Errors are grouped by what the user has to do about them: fix the configuration, fix the
//! input data, fix the schema, or retry. Retryability lives in the type ([`Error::Transient`]),
//! so no caller ever matches on message text.

use std::fmt;

/// A boxed error from a foreign library, kept as the source of an [`Error::External`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with vmig's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The three registries a plugin can live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginKind {
    /// Reads data (`[source]`).
    Source,
    /// Rewrites batches (`[[transform]]`).
    Transform,
    /// Writes data (`[sink]`).
    Sink,
    /// Decodes one data format (a `format` of a files source).
    Parser,
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PluginKind::Source => "source",
            PluginKind::Transform => "transform",
            PluginKind::Sink => "sink",
            PluginKind::Parser => "parser",
        })
    }
}

/// Everything that can go wrong in vmig's libraries.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is missing, malformed or contradicts another one.
    #[error("invalid `{plugin}` configuration: {message}")]
    Config {
        /// The plugin (or `job`) whose configuration is wrong.
        plugin: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// No plugin of that kind is registered under that name.
    #[error("unknown {kind} plugin `{name}` (available: {available})")]
    UnknownPlugin {
        /// Which registry was searched.
        kind: PluginKind,
        /// The name asked for.
        name: String,
        /// Sorted, comma-separated names that do exist.
        available: String,
    },
    /// Two plugins of the same kind registered the same name.
    #[error("two {kind} plugins are registered as `{name}` ({first} and {second}); a binary may link only one")]
    DuplicatePlugin {
        /// Which registry holds both.
        kind: PluginKind,
        /// The shared name.
        name: String,
        /// Summary of the first entry.
        first: String,
        /// Summary of the second entry.
        second: String,
    },
    /// The data's schema does not fit what a stage needs (missing field, wrong type, …).
    #[error("schema error: {0}")]
    Schema(String),
    /// Bad input data. `location` names the file/segment/document and the offset or row.
    #[error("invalid data at {location}: {message}")]
    Data {
        /// File and byte offset, segment and row, index and document id, …
        location: String,
        /// What was expected there and what to do.
        message: String,
    },
    /// The input is valid but uses something vmig refuses to read (e.g. a lossy Faiss index).
    #[error("unsupported input at {location}: {message}")]
    Unsupported {
        /// Where the unsupported construct was found.
        location: String,
        /// What it is and why vmig will not read it.
        message: String,
    },
    /// A failure that may succeed when tried again (timeouts, 429/503, connection reset).
    #[error("transient failure: {message}")]
    Transient {
        /// What failed.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// A checkpoint store holds the progress of another job (its job fingerprint differs), so
    /// resuming from it would skip or misplace rows. Nothing has been written.
    #[error(
        "the checkpoint {store} was saved by another job (fingerprint {saved}; this job's is {job}), \
         so its progress does not apply here: to start over, delete or move that checkpoint, \
         or give this job a new one"
    )]
    CheckpointMismatch {
        /// Where the checkpoint is ([`crate::checkpoint::CheckpointStore::location`]).
        store: String,
        /// Short form of the fingerprint the checkpoint was saved with.
        saved: String,
        /// Short form of this job's fingerprint.
        job: String,
    },
    /// The job was cancelled (Ctrl-C or an error elsewhere in the pipeline).
    #[error("cancelled")]
    Cancelled,
    /// A worker of a job shared between workers no longer holds the lease on a partition or
    /// step ([`crate::lease`]): it could not renew in time and another worker took it over, or
    /// its own clock says the lease ran out. The worker stops writing; the new holder finishes
    /// the work from the last checkpoint.
    #[error("the lease on {unit} is lost: {why}; this worker stops, and the worker that holds it now carries on from the last checkpoint")]
    LeaseLost {
        /// The partition or step (`partition 3`, `step finish`).
        unit: String,
        /// What happened (`worker … holds it now`, `not renewed for 60s`).
        why: String,
    },
    /// An error with added context (which stage, which file, which partition).
    ///
    /// Its message already includes the inner error's, so it reports no separate `source()`
    /// (printing the chain would repeat it); [`Error::root`] reaches the inner error.
    #[error("{context}: {inner}")]
    Context {
        /// What was being done.
        context: String,
        /// The error that happened while doing it.
        inner: Box<Error>,
    },
    /// The run stopped with `error`, and the sink was aborted; `left` says what the target holds
    /// now (from [`crate::AbortReport`]).
    #[error("{error}{}", left_suffix(left))]
    Stopped {
        /// Why the run stopped.
        error: Box<Error>,
        /// What the aborted sink left in the target, one sentence each.
        left: Vec<String>,
    },
    /// An Arrow error.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    /// A Parquet error.
    #[error(transparent)]
    Parquet(#[from] parquet::errors::ParquetError),
    /// An object store error (local files and `s3://`, `gs://`, `az://`).
    #[error(transparent)]
    ObjectStore(#[from] object_store::Error),
    /// An I/O error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Any other error from a plugin or library.
    #[error(transparent)]
    External(BoxError),
}

impl Error {
    /// Shorthand for [`Error::Config`].
    pub fn config(plugin: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            plugin: plugin.into(),
            message: message.into(),
        }
    }

    /// Shorthand for [`Error::Data`].
    pub fn data(location: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Data {
            location: location.into(),
            message: message.into(),
        }
    }

    /// Shorthand for [`Error::Unsupported`].
    pub fn unsupported(location: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Unsupported {
            location: location.into(),
            message: message.into(),
        }
    }

    /// Shorthand for [`Error::Schema`].
    pub fn schema(message: impl Into<String>) -> Self {
        Error::Schema(message.into())
    }

    /// Wraps `self` with a sentence saying what was being done.
    #[must_use]
    pub fn context(self, context: impl Into<String>) -> Self {
        Error::Context {
            context: context.into(),
            inner: Box::new(self),
        }
    }

    /// The innermost error below any [`Error::Context`] and [`Error::Stopped`] layers.
    pub fn root(&self) -> &Error {
        match self {
            Error::Context { inner, .. } | Error::Stopped { error: inner, .. } => inner.root(),
            other => other,
        }
    }

    /// Whether the job file is what is wrong: an [`Error::Config`] or [`Error::UnknownPlugin`]
    /// below any context, found while parsing or later (a plugin's checks at build time, a
    /// transformer that does not fit the source's schema, a bad `cloud_id`, an unknown `storage`
    /// key). Front ends exit with the usage code (2) for these; bad data and unreachable
    /// servers are not configuration errors.
    pub fn is_config_error(&self) -> bool {
        matches!(
            self.root(),
            Error::Config { .. } | Error::UnknownPlugin { .. }
        )
    }

    /// Whether trying the same operation again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self.root() {
            Error::Transient { .. } => true,
            Error::Io(e) => matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::Interrupted
            ),
            _ => false,
        }
    }
}

fn left_suffix(left: &[String]) -> String {
    if left.is_empty() {
        return String::new();
    }
    format!("\nLeft in the target: {}", left.join(" "))
}

/// Adds [`Error::context`] to `Result`s.
pub trait ResultExt<T> {
    /// Wraps the error, if any, with a sentence built lazily.
    fn context_with(self, f: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Into<Error>> ResultExt<T> for std::result::Result<T, E> {
    fn context_with(self, f: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| e.into().context(f()))
    }
}

impl From<Error> for arrow::error::ArrowError {
    fn from(e: Error) -> Self {
        match e {
            Error::Arrow(a) => a,
            other => arrow::error::ArrowError::ExternalError(Box::new(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_keeps_root_and_retryability() {
        let e = Error::Transient {
            message: "503".into(),
            source: None,
        }
        .context("writing batch 3");
        assert!(e.is_retryable());
        assert!(matches!(e.root(), Error::Transient { .. }));
        assert_eq!(e.to_string(), "writing batch 3: transient failure: 503");
        assert!(!Error::data("f.faiss@12", "bad").is_retryable());
    }

    #[test]
    fn config_errors_are_classified_below_context() {
        assert!(Error::config("faiss", "x")
            .context("[source]")
            .is_config_error());
        let unknown = Error::UnknownPlugin {
            kind: PluginKind::Sink,
            name: "x".into(),
            available: "files".into(),
        };
        assert!(unknown.context("[sink]").is_config_error());
        assert!(!Error::data("f", "bad").context("reading").is_config_error());
        assert!(!Error::Transient {
            message: "refused".into(),
            source: None
        }
        .is_config_error());
    }
}
