//! Job files: a source, any number of transformers, a sink, and pipeline settings.
//!
//! ```toml
//! [source]
//! type = "faiss"
//! path = "index.faiss"
//!
//! [[transform]]          # optional, any number, applied in order
//! type = "rename"
//! fields = { vector = "embedding" }
//!
//! [sink]
//! type = "files"
//! format = "parquet"
//! path = "out/"
//!
//! [pipeline]             # optional
//! batch_rows = 8192
//! ```
//!
//! TOML (`.toml`) and YAML (`.yaml`/`.yml`) are accepted; a key given twice is an error in both.
//! Any string value may name environment variables as `${NAME}` (for secrets:
//! `token = "${MILVUS_TOKEN}"`); an unset variable is an error. Relative paths are resolved
//! against the job file's directory.
//!
//! Every error names the place in the file the way it is written — `[pipeline] batch_rows: …`,
//! `[sink]: missing field `type``, `[[transform]] #2 fields.x: …` — and never echoes a value,
//! which may be a secret.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::checkpoint::JobFingerprint;
use crate::error::{Error, Result};
use crate::pipeline::PipelineOptions;
use crate::redact;
use crate::registry::{self, BuildContext, DynSinkConfig, DynSourceConfig};
use crate::transform::Transformer;

/// One `[source]`, `[[transform]]` or `[sink]` table: the plugin name and its options.
/// `Debug` shows the options redacted ([`crate::redact`]).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentConfig {
    /// The plugin name.
    #[serde(rename = "type")]
    pub kind: String,
    /// Everything else in the table, handed to the plugin.
    #[serde(flatten)]
    pub options: serde_json::Map<String, serde_json::Value>,
}

crate::redacted_debug!(ComponentConfig);

/// A whole job file. `Debug` shows it redacted ([`crate::redact`]).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobConfig {
    /// Where the rows come from.
    pub source: ComponentConfig,
    /// Rewrites applied in order (`[[transform]]`; `transforms` is accepted too).
    #[serde(default, alias = "transforms")]
    pub transform: Vec<ComponentConfig>,
    /// Where the rows go.
    pub sink: ComponentConfig,
    /// Runner settings.
    #[serde(default)]
    pub pipeline: PipelineOptions,
    /// Where the job's progress is kept, and under which name (`[state]`).
    #[serde(default)]
    pub state: StateConfig,
}

crate::redacted_debug!(JobConfig);

/// `[state]`: where a job's runs and progress are kept, so that an interrupted run resumes.
///
/// Not part of the job's fingerprint: moving the state elsewhere or renaming the job changes
/// neither which rows are read nor where they go.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StateConfig {
    /// The state store: `sqlite://PATH` (relative to the job file's directory), `mysql://…`,
    /// `mariadb://…` or `postgres://…`. Default: `sqlite://.vmig/state.db` next to the job file.
    /// The command line's `--state` wins.
    pub url: Option<String>,
    /// The job's name in the store. Default: the job file's name without its extension.
    pub name: Option<String>,
    /// Share the job between several `vmig migrate` workers (docs/scale-out.md): each claims
    /// partitions with a lease of this length (`"60s"`), renewed every third of it; a worker
    /// that dies loses its leases and another finishes its partitions from their last
    /// checkpoint. Needs a MySQL/MariaDB or PostgreSQL store. Default: unset (one worker;
    /// `vmig migrate --worker` uses 60s).
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub lease: Option<std::time::Duration>,
}

crate::redacted_debug!(StateConfig);

/// The fingerprint of a whole job and of each of its parts, so that a refused checkpoint can say
/// what changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFingerprints {
    /// The whole job ([`JobConfig::fingerprint`]).
    pub job: JobFingerprint,
    /// `[source]` alone.
    pub source: JobFingerprint,
    /// The `[[transform]]` list alone.
    pub transforms: JobFingerprint,
    /// `[sink]` alone.
    pub sink: JobFingerprint,
}

/// The text format of a job ([`JobConfig::parse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobFormat {
    /// TOML, as job files are written.
    Toml,
    /// YAML.
    Yaml,
    /// JSON (the same keys and tables).
    Json,
}

impl JobConfig {
    /// Reads a job file, choosing TOML or YAML by its extension, and expands `${VAR}`s.
    ///
    /// # Errors
    /// When the file cannot be read or parsed; the message names the file.
    pub fn from_path(path: &Path) -> Result<JobConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::config("job", format!("cannot read {}: {e}", path.display())))?;
        let yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        let parsed = if yaml {
            Self::from_yaml_str(&text)
        } else {
            Self::from_toml_str(&text)
        };
        parsed.map_err(|e| match e {
            Error::Config { message, .. } => {
                Error::config("job", format!("{}: {message}", path.display()))
            }
            other => other,
        })
    }

    /// Parses TOML text.
    ///
    /// # Errors
    /// [`Error::Config`] with the parser's message (line and column).
    pub fn from_toml_str(text: &str) -> Result<JobConfig> {
        let value: serde_json::Value =
            toml::from_str(text).map_err(|e| Error::config("job", e.to_string()))?;
        Self::from_value(value)
    }

    /// Parses YAML text. A key given twice in one mapping is refused (as TOML refuses it),
    /// with its line.
    ///
    /// # Errors
    /// [`Error::Config`] with the parser's message.
    pub fn from_yaml_str(text: &str) -> Result<JobConfig> {
        // serde_yaml_ng's own `Value` refuses duplicate keys ("duplicate entry with key …" at
        // line L column C); deserialising straight into a `serde_json::Value` would keep the
        // last one silently.
        let yaml: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(text).map_err(|e| Error::config("job", e.to_string()))?;
        let value = serde_json::to_value(yaml).map_err(|e| Error::config("job", e.to_string()))?;
        Self::from_value(value)
    }

    /// What identifies this job for its checkpoints ([`crate::checkpoint::resume`] refuses a
    /// checkpoint whose fingerprint differs).
    ///
    /// It is the SHA-256 of the canonical JSON ([`crate::checkpoint::canonical_json`]) of:
    ///
    /// * the plugin names and options of `[source]`, every `[[transform]]` (in order) and
    ///   `[sink]`, as written after `${VAR}` expansion — so any option that can change which
    ///   rows are read, how they are rewritten, or where and how they are written changes it
    ///   (relative paths count as written; a default written out differs from one left out);
    /// * with the secrets masked by [`crate::redact::json_by_key_and_url`]: the values of
    ///   secret keys (`password`, `token`, `aws_secret_access_key`, …) and URL user-infos.
    ///   A job whose password was rotated keeps its fingerprint and can resume; a secret is
    ///   never part of a value stored in a checkpoint.
    ///
    /// Not part of it: the `[pipeline]` settings `batch_rows`, `concurrency`,
    /// `channel_capacity`, `flush_rows`, `max_rows_per_second` and `checkpoint_interval`. They change how fast and in
    /// which chunks rows move and how often progress is saved, never which rows land where or
    /// their values, and positions saved under one value stay valid under another. A plugin's
    /// own performance options (e.g. the `milvus2` sink's `concurrency`) are plugin options
    /// and do count: changing one refuses the checkpoint rather than risk resuming wrongly.
    pub fn fingerprint(&self) -> JobFingerprint {
        self.fingerprints().job
    }

    /// [`JobConfig::fingerprint`] and the fingerprints of its three parts, each computed the
    /// same way over that part alone.
    pub fn fingerprints(&self) -> JobFingerprints {
        // Destructured in full so that a new `[pipeline]` setting does not compile until it is
        // placed on one side of the list above.
        let PipelineOptions {
            batch_rows: _,
            concurrency: _,
            channel_capacity: _,
            flush_rows: _,
            max_rows_per_second: _,
            checkpoint_interval: _,
        } = &self.pipeline;
        let component = |c: &ComponentConfig| {
            let mut options = serde_json::Value::Object(c.options.clone());
            redact::json_by_key_and_url(&mut options);
            serde_json::json!({ "type": c.kind, "options": options })
        };
        let source = component(&self.source);
        let transforms = serde_json::Value::Array(self.transform.iter().map(component).collect());
        let sink = component(&self.sink);
        JobFingerprints {
            source: JobFingerprint::of(&source),
            transforms: JobFingerprint::of(&transforms),
            sink: JobFingerprint::of(&sink),
            job: JobFingerprint::of(&serde_json::json!({
                "source": source,
                "transform": transforms,
                "sink": sink,
            })),
        }
    }

    /// The job as JSON with every secret masked ([`crate::redact::json_by_key_and_url`]): what
    /// may be stored and shown.
    pub fn resolved(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        redact::json_by_key_and_url(&mut value);
        value
    }

    /// Parses a job given as text in `format`, expanding `${VAR}` with `lookup` instead of the
    /// process environment: a server running submitted jobs decides which variables a job may
    /// name (one that may name any could send the server's secrets wherever it points).
    ///
    /// # Errors
    /// As [`JobConfig::from_toml_str`]; a `${VAR}` that `lookup` does not give is an error naming
    /// the key (as an unset variable is).
    pub fn parse(
        text: &str,
        format: JobFormat,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<JobConfig> {
        let value: serde_json::Value = match format {
            JobFormat::Toml => {
                toml::from_str(text).map_err(|e| Error::config("job", e.to_string()))?
            }
            JobFormat::Json => {
                serde_json::from_str(text).map_err(|e| Error::config("job", e.to_string()))?
            }
            JobFormat::Yaml => {
                let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(text)
                    .map_err(|e| Error::config("job", e.to_string()))?;
                serde_json::to_value(yaml).map_err(|e| Error::config("job", e.to_string()))?
            }
        };
        Self::from_value_with(value, lookup)
    }

    fn from_value(value: serde_json::Value) -> Result<JobConfig> {
        Self::from_value_with(value, &|name| std::env::var(name).ok())
    }

    fn from_value_with(
        mut value: serde_json::Value,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<JobConfig> {
        expand_env(&mut value, lookup)?;
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path: Vec<Step> = e.path().iter().map(Step::from).collect();
            Error::config("job", located(&path, &e.inner().to_string()))
        })
    }
}

/// One step of a key path in a job file: a key or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

impl From<&serde_path_to_error::Segment> for Step {
    fn from(s: &serde_path_to_error::Segment) -> Self {
        use serde_path_to_error::Segment;
        match s {
            Segment::Seq { index } => Step::Index(*index),
            Segment::Map { key } => Step::Key(key.clone()),
            Segment::Enum { variant } => Step::Key(variant.clone()),
            _ => Step::Key("?".into()),
        }
    }
}

/// Names a place in a job file the way its author wrote it: `[sink] password`,
/// `[[transform]] #2 fields.x`, `[source] url[1]`, `[pipeline]`; empty for the whole file.
fn describe(path: &[Step]) -> String {
    let (mut out, rest) = match path {
        [Step::Key(t), Step::Index(i), rest @ ..] if t == "transform" || t == "transforms" => {
            (format!("[[transform]] #{}", i + 1), rest)
        }
        [Step::Key(k), rest @ ..] => (format!("[{k}]"), rest),
        _ => (String::new(), path),
    };
    let mut tail = String::new();
    for step in rest {
        match step {
            Step::Key(k) if tail.is_empty() => tail.push_str(k),
            Step::Key(k) => {
                tail.push('.');
                tail.push_str(k);
            }
            Step::Index(i) => tail.push_str(&format!("[{i}]")),
        }
    }
    if !tail.is_empty() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&tail);
    }
    out
}

/// `message` prefixed with the place it is about (`[pipeline] batch_rows: …`).
fn located(path: &[Step], message: &str) -> String {
    match describe(path) {
        place if place.is_empty() => message.to_string(),
        place => format!("{place}: {message}"),
    }
}

/// Replaces `${NAME}` in every string of `value` using `lookup`.
///
/// Errors name the key (`[sink] password`) and the variable, never the value: a value holding
/// `${` may be a password.
///
/// # Errors
/// When a named variable is not set, or a `${` is not closed.
pub fn expand_env(
    value: &mut serde_json::Value,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<()> {
    expand_at(value, lookup, &mut Vec::new())
}

fn expand_at(
    value: &mut serde_json::Value,
    lookup: &dyn Fn(&str) -> Option<String>,
    path: &mut Vec<Step>,
) -> Result<()> {
    match value {
        serde_json::Value::String(s) if s.contains("${") => {
            let mut out = String::with_capacity(s.len());
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                let end = after.find('}').ok_or_else(|| {
                    Error::config(
                        "job",
                        located(
                            path,
                            "unterminated `${` (write `${NAME}`; the value is not shown, it may be a secret)",
                        ),
                    )
                })?;
                let name = &after[..end];
                let v = lookup(name).ok_or_else(|| {
                    Error::config(
                        "job",
                        located(
                            path,
                            &format!("environment variable `{name}` is not set (the job file refers to it as ${{{name}}})"),
                        ),
                    )
                })?;
                out.push_str(&v);
                rest = &after[end + 1..];
            }
            out.push_str(rest);
            *s = out;
        }
        serde_json::Value::Array(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                path.push(Step::Index(i));
                expand_at(v, lookup, path)?;
                path.pop();
            }
        }
        serde_json::Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                path.push(Step::Key(k.clone()));
                expand_at(v, lookup, path)?;
                path.pop();
            }
        }
        _ => {}
    }
    Ok(())
}

/// A job whose every component has been looked up and validated, ready to plan or run.
#[derive(Debug)]
pub struct Job {
    /// The parsed source configuration.
    pub source: Box<dyn DynSourceConfig>,
    /// The built transformers with their plugin names, in order.
    pub transforms: Vec<(String, Box<dyn Transformer>)>,
    /// The parsed sink configuration.
    pub sink: Box<dyn DynSinkConfig>,
    /// Runner settings.
    pub options: PipelineOptions,
    /// Where relative paths resolve.
    pub ctx: BuildContext,
    /// What identifies the job for its checkpoints ([`JobConfig::fingerprint`]); pass it to
    /// [`crate::pipeline::Pipeline::with_checkpoints`].
    pub fingerprint: JobFingerprint,
    /// The fingerprints of the job's parts ([`JobConfig::fingerprints`]).
    pub fingerprints: JobFingerprints,
    /// The job, secrets masked ([`JobConfig::resolved`]).
    pub resolved: serde_json::Value,
    /// `[state]`.
    pub state: StateConfig,
    /// The job's name: `[state] name`, else the job file's stem (`job` when there is no file).
    pub name: String,
}

impl Job {
    /// Looks every component up in the registry and validates its options (no I/O).
    ///
    /// # Errors
    /// [`Error::UnknownPlugin`] or the plugin's [`Error::Config`], naming the component.
    pub fn from_config(config: JobConfig, base_dir: PathBuf) -> Result<Job> {
        let fingerprints = config.fingerprints();
        let resolved = config.resolved();
        let state = config.state.clone();
        let source = registry::parse_source(
            &config.source.kind,
            serde_json::Value::Object(config.source.options),
        )
        .map_err(|e| e.context("[source]"))?;
        let mut transforms = Vec::with_capacity(config.transform.len());
        for (i, t) in config.transform.into_iter().enumerate() {
            let built = registry::build_transform(&t.kind, serde_json::Value::Object(t.options))
                .map_err(|e| e.context(format!("[[transform]] #{} (`{}`)", i + 1, t.kind)))?;
            transforms.push((t.kind, built));
        }
        let sink = registry::parse_sink(
            &config.sink.kind,
            serde_json::Value::Object(config.sink.options),
        )
        .map_err(|e| e.context("[sink]"))?;
        Ok(Job {
            source,
            transforms,
            sink,
            options: config.pipeline,
            ctx: BuildContext { base_dir },
            fingerprint: fingerprints.job.clone(),
            fingerprints,
            resolved,
            name: state.name.clone().unwrap_or_else(|| "job".to_string()),
            state,
        })
    }

    /// Reads, parses and validates a job file.
    ///
    /// # Errors
    /// As [`JobConfig::from_path`] and [`Job::from_config`].
    pub fn from_path(path: &Path) -> Result<Job> {
        let config = JobConfig::from_path(path)?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut job = Self::from_config(config, base)?;
        if job.state.name.is_none() {
            if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                job.name = stem.to_string();
            }
        }
        Ok(job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_and_yaml_agree() {
        let t = JobConfig::from_toml_str(
            r#"
            [source]
            type = "faiss"
            path = "index.faiss"
            [[transform]]
            type = "rename"
            fields = { vector = "embedding" }
            [sink]
            type = "files"
            format = "parquet"
            path = "out/"
            "#,
        )
        .unwrap();
        let y = JobConfig::from_yaml_str(
            "source: {type: faiss, path: index.faiss}\ntransforms:\n  - {type: rename, fields: {vector: embedding}}\nsink: {type: files, format: parquet, path: out/}\n",
        )
        .unwrap();
        assert_eq!(t, y);
        assert_eq!(t.transform[0].kind, "rename");
        assert_eq!(t.sink.options["format"], "parquet");
    }

    #[test]
    fn unknown_top_level_keys_are_rejected() {
        let e =
            JobConfig::from_toml_str("[source]\ntype='a'\n[sink]\ntype='b'\n[sinks]\ntype='c'\n")
                .unwrap_err();
        assert!(e.to_string().contains("sinks"), "{e}");
    }

    #[test]
    fn env_expansion() {
        let mut v = serde_json::json!({"a": "x-${T}-y", "b": ["${T}"], "c": 3});
        expand_env(&mut v, &|n| (n == "T").then(|| "tok".to_string())).unwrap();
        assert_eq!(v, serde_json::json!({"a": "x-tok-y", "b": ["tok"], "c": 3}));
    }

    fn env_error(value: serde_json::Value) -> String {
        let mut v = value;
        let e = expand_env(&mut v, &|_| None).unwrap_err();
        e.to_string()
    }

    #[test]
    fn env_errors_name_the_key_never_the_value() {
        let e = env_error(serde_json::json!({"sink": {"password": "hunter2${oops"}}));
        assert_eq!(
            e,
            "invalid `job` configuration: [sink] password: unterminated `${` (write `${NAME}`; the value is not shown, it may be a secret)"
        );
        assert!(!e.contains("hunter2"));
        let e = env_error(serde_json::json!({
            "transform": [{"type": "rename"}, {"fields": {"x": "s3cr3t-${MISSING}"}}]
        }));
        assert_eq!(
            e,
            "invalid `job` configuration: [[transform]] #2 fields.x: environment variable `MISSING` is not set (the job file refers to it as ${MISSING})"
        );
        let e = env_error(serde_json::json!({"source": {"url": ["a", "${X"]}}));
        assert!(e.contains(": [source] url[1]: unterminated"), "{e}");
    }

    #[test]
    fn serde_errors_name_section_and_key() {
        let e = JobConfig::from_toml_str(
            "[source]\ntype='a'\n[sink]\ntype='b'\n[pipeline]\nbatch_rows = -5\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid `job` configuration: [pipeline] batch_rows: invalid value: integer `-5`, expected a nonzero usize"
        );
        let e = JobConfig::from_toml_str("[source]\ntype='a'\n[sink]\npath='b'\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid `job` configuration: [sink]: missing field `type`"
        );
        let e = JobConfig::from_yaml_str(
            "source: {type: a}\nsink: {type: b}\ntransform:\n  - {type: 3}\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid `job` configuration: [[transform]] #1 type: invalid type: integer `3`, expected a string"
        );
    }

    #[test]
    fn yaml_duplicate_keys_are_refused_like_toml() {
        let e = JobConfig::from_yaml_str(
            "source: {type: faiss, path: a}\nsink:\n  type: files\n  path: x\n  path: y\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid `job` configuration: sink: duplicate entry with key \"path\" at line 3 column 3"
        );
        let t = JobConfig::from_toml_str(
            "[source]\ntype='faiss'\n[sink]\ntype='files'\npath='x'\npath='y'\n",
        )
        .unwrap_err();
        assert!(t.to_string().contains("duplicate key"), "{t}");
    }

    fn fingerprint(toml: &str) -> JobFingerprint {
        JobConfig::from_toml_str(toml).unwrap().fingerprint()
    }

    const JOB: &str =
        "[source]\ntype='milvus2'\nuri='http://root:pw-one@h:19530'\ncollection='a'\n\
        [[transform]]\ntype='rename'\nfields={v='vector'}\n\
        [sink]\ntype='files'\npath='out/'\naws_secret_access_key='key-one'\n";

    #[test]
    fn fingerprint_ignores_secrets_key_order_and_pipeline_settings() {
        let base = fingerprint(JOB);
        assert_eq!(base.as_str().len(), 64);
        assert_eq!(base, fingerprint(JOB));
        let rotated = JOB
            .replace("pw-one", "pw-two")
            .replace("key-one", "key-two");
        assert_eq!(base, fingerprint(&rotated));
        let reordered = "[sink]\npath='out/'\naws_secret_access_key='k'\ntype='files'\n\
            [[transform]]\nfields={v='vector'}\ntype='rename'\n\
            [source]\ncollection='a'\nuri='http://root:x@h:19530'\ntype='milvus2'\n";
        assert_eq!(base, fingerprint(reordered));
        let tuned = format!(
            "{JOB}[pipeline]\nbatch_rows=10\nconcurrency=7\nchannel_capacity=1\n\
             flush_rows=5\nmax_rows_per_second=100\n"
        );
        assert_eq!(base, fingerprint(&tuned));
    }

    #[test]
    fn fingerprint_changes_with_what_lands_where() {
        let base = fingerprint(JOB);
        for (from, to) in [
            ("path='out/'", "path='elsewhere/'"),
            ("v='vector'", "v='embedding'"),
            ("collection='a'", "collection='b'"),
            ("@h:19530", "@other:19530"),
            ("type='files'", "type='milvus2'"),
        ] {
            let changed = JOB.replace(from, to);
            assert_ne!(changed, JOB);
            assert_ne!(base, fingerprint(&changed), "{from} → {to}");
        }
        let no_transform = JOB.replace("[[transform]]\ntype='rename'\nfields={v='vector'}\n", "");
        assert_ne!(base, fingerprint(&no_transform));
    }

    #[test]
    fn debug_of_a_job_config_hides_secrets() {
        let c = JobConfig::from_toml_str(
            "[source]\ntype='milvus2'\nuri='http://root:hunter2@h:19530'\n[sink]\ntype='b'\npassword='hunter3'\n",
        )
        .unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter"), "{shown}");
        assert!(shown.contains("http://***@h:19530"), "{shown}");
    }
}
