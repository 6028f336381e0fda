//! `vmig convert`: a [`Translation`] printed as a native job file, each section preceded by a
//! comment per milvus-migration key it came from, the ignored keys listed with the reason, and
//! every secret written as a `${VMIG_…}` reference (the variable to set is named in the header).

use serde_json::Value;
use vmig_core::config::ComponentConfig;
use vmig_core::{Error, Result};

use crate::{Section, Translation, COMPONENT};

/// The job-file format `vmig convert` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// TOML, as vmig's job files are usually written.
    Toml,
    /// YAML.
    Yaml,
}

/// The job of `t` as a job file in `format`, with comments; `from` names the milvus-migration
/// file in the header. No secret value appears in it (see the module docs).
///
/// # Errors
/// When a section cannot be serialised (not expected for a translated job).
pub fn render(t: &Translation, from: &str, format: OutputFormat) -> Result<String> {
    let mut job = t.job.clone();
    for s in &t.secrets {
        let component = match s.section {
            Section::Source => &mut job.source,
            _ => &mut job.sink,
        };
        set(component, &s.option, Value::String(s.rendered.clone()));
    }
    let mut out = String::new();
    out.push_str(&format!(
        "# vmig job translated by `vmig convert` from {from} (milvus-migration, workMode {}).\n",
        t.work_mode
    ));
    out.push_str("# Each section is preceded by the milvus-migration keys it comes from.\n");
    if !t.secrets.is_empty() {
        out.push_str(
            "# Secrets are not copied: set these environment variables before running it:\n",
        );
        for s in &t.secrets {
            let what = if s.key == "meta.mysqlUrl" {
                " as a mysql:// URL"
            } else {
                ""
            };
            out.push_str(&format!("#   {}  (its {}{what})\n", s.env, s.key));
        }
    }
    let comments = |section: Section| -> String {
        t.notes
            .iter()
            .filter(|n| n.section == section)
            .map(|n| format!("# {}: {}\n", n.key, n.text))
            .collect()
    };
    out.push('\n');
    out.push_str(&comments(Section::Source));
    out.push_str(&section(format, "source", component(&job.source)?)?);
    out.push('\n');
    out.push_str(&comments(Section::Transform));
    let transforms = job
        .transform
        .iter()
        .map(component)
        .collect::<Result<Vec<_>>>()?;
    match format {
        OutputFormat::Toml => {
            for t in transforms {
                out.push_str(&section(format, "transform", Value::Array(vec![t]))?);
            }
        }
        OutputFormat::Yaml => {
            out.push_str(&section(format, "transform", Value::Array(transforms))?)
        }
    }
    out.push('\n');
    out.push_str(&comments(Section::Sink));
    out.push_str(&section(format, "sink", component(&job.sink)?)?);
    let ignored = comments(Section::Ignored);
    if !ignored.is_empty() {
        out.push_str("\n# Ignored (no meaning in vmig):\n");
        out.push_str(&ignored);
    }
    Ok(vmig_core::redact::text(&out))
}

fn component(c: &ComponentConfig) -> Result<Value> {
    serde_json::to_value(c).map_err(|e| Error::config(COMPONENT, e.to_string()))
}

fn section(format: OutputFormat, name: &str, value: Value) -> Result<String> {
    let mut doc = serde_json::Map::new();
    doc.insert(name.to_string(), value);
    let doc = Value::Object(doc);
    match format {
        OutputFormat::Toml => {
            toml::to_string(&doc).map_err(|e| Error::config(COMPONENT, e.to_string()))
        }
        OutputFormat::Yaml => {
            serde_yaml_ng::to_string(&doc).map_err(|e| Error::config(COMPONENT, e.to_string()))
        }
    }
}

/// Sets `value` at `path` in a component's options (creating tables on the way).
fn set(c: &mut ComponentConfig, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut at = &mut c.options;
    for p in parents {
        let entry = at
            .entry(p.clone())
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        match entry {
            Value::Object(m) => at = m,
            _ => return,
        }
    }
    at.insert(last.clone(), value);
}
