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
//! TOML (`.toml`) and YAML (`.yaml`/`.yml`) are accepted. Any string value may name environment
//! variables as `${NAME}` (for secrets: `token = "${MILVUS_TOKEN}"`); an unset variable is an error.
//! Relative paths are resolved against the job file's directory.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pipeline::PipelineOptions;
use crate::registry::{self, BuildContext, DynSinkConfig, DynSourceConfig};
use crate::transform::Transformer;

/// One `[source]`, `[[transform]]` or `[sink]` table: the plugin name and its options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentConfig {
    /// The plugin name.
    #[serde(rename = "type")]
    pub kind: String,
    /// Everything else in the table, handed to the plugin.
    #[serde(flatten)]
    pub options: serde_json::Map<String, serde_json::Value>,
}

/// A whole job file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

    /// Parses YAML text.
    ///
    /// # Errors
    /// [`Error::Config`] with the parser's message.
    pub fn from_yaml_str(text: &str) -> Result<JobConfig> {
        let value: serde_json::Value =
            serde_yaml_ng::from_str(text).map_err(|e| Error::config("job", e.to_string()))?;
        Self::from_value(value)
    }

    fn from_value(mut value: serde_json::Value) -> Result<JobConfig> {
        expand_env(&mut value, &|name| std::env::var(name).ok())?;
        serde_json::from_value(value).map_err(|e| Error::config("job", e.to_string()))
    }
}

/// Replaces `${NAME}` in every string of `value` using `lookup`.
///
/// # Errors
/// When a named variable is not set.
pub fn expand_env(
    value: &mut serde_json::Value,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<()> {
    match value {
        serde_json::Value::String(s) if s.contains("${") => {
            let mut out = String::with_capacity(s.len());
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                let end = after.find('}').ok_or_else(|| {
                    Error::config("job", format!("unterminated `${{` in \"{s}\""))
                })?;
                let name = &after[..end];
                let v = lookup(name).ok_or_else(|| {
                    Error::config(
                        "job",
                        format!("environment variable `{name}` is not set (the job file refers to it as ${{{name}}})"),
                    )
                })?;
                out.push_str(&v);
                rest = &after[end + 1..];
            }
            out.push_str(rest);
            *s = out;
        }
        serde_json::Value::Array(items) => {
            for v in items {
                expand_env(v, lookup)?;
            }
        }
        serde_json::Value::Object(map) => {
            for v in map.values_mut() {
                expand_env(v, lookup)?;
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
}

impl Job {
    /// Looks every component up in the registry and validates its options (no I/O).
    ///
    /// # Errors
    /// [`Error::UnknownPlugin`] or the plugin's [`Error::Config`], naming the component.
    pub fn from_config(config: JobConfig, base_dir: PathBuf) -> Result<Job> {
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
        })
    }

    /// Reads, parses and validates a job file.
    ///
    /// # Errors
    /// As [`JobConfig::from_path`] and [`Job::from_config`].
    pub fn from_path(path: &Path) -> Result<Job> {
        let config = JobConfig::from_path(path)?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::from_config(config, base)
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
        let mut v = serde_json::json!("${MISSING}");
        let e = expand_env(&mut v, &|_| None).unwrap_err();
        assert!(e.to_string().contains("MISSING"));
    }
}
