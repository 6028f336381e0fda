//! vmig-compat: milvus-migration's `migration.yaml` (top-level `dumper`/`meta`/`source`/`target`)
//! as a vmig job.
//!
//! [`model`] is its key set as typed structs, exact to its config code
//! (zilliztech/milvus-migration `core/config/`); [`parse`] reads a file into it, refusing every
//! key milvus-migration does not read — naming the whole key, with a "did you mean" for a near
//! miss (`target.create.collection.shardsNums`, which milvus-migration's own test file has and
//! silently ignores) — and matching keys without regard to case, as its viper does.
//! [`translate()`] turns it into a [`vmig_core::config::JobConfig`] plus a [`Note`] for every key
//! it translated, ignored (and why) or gives other semantics; [`render`] prints that job as TOML or
//! YAML with the notes as comments (`vmig convert`).
//!
//! **Why a crate of its own**, not a module of the `vmig` facade or of the CLI: the translation
//! is pure data (YAML in, job options out) and needs only vmig-core, so it builds and tests
//! without any plugin; the facade's features each name a plugin package; and the CLI
//! (`vmig migrate|plan|verify|status|convert`) and later the REST server (milvus-migration's
//! `/api/v1/*` routes) both need it, which a crate serves without a dependency between the two.
//!
//! **Secrets** (`ak`, `sk`, passwords, the MySQL DSN's password, API keys) are registered with
//! [`vmig_core::redact::register`] as soon as they are read, so no error or log line shows them;
//! the translated job holds them where the plugins take them (masked by key when printed), and
//! [`render`] writes `${VMIG_…}` references in their place ([`Secret`]), never a value.

#![warn(missing_docs)]

pub mod model;
mod render;
mod translate;

use std::path::{Path, PathBuf};

use object_store::ObjectStoreExt;
use vmig_core::config::JobConfig;
use vmig_core::{Error, Result};

pub use model::MigrationConfig;
pub use render::{render, OutputFormat};
pub use translate::{es_meta_file, translate, translate_es_meta, MetaFile};

/// The component name of this crate's [`Error::Config`]s: "invalid `migration.yaml`
/// configuration: …".
pub const COMPONENT: &str = "migration.yaml";

/// Which part of the vmig job a [`Note`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    /// `[source]`.
    Source,
    /// The `[[transform]]`s.
    Transform,
    /// `[sink]`.
    Sink,
    /// Nothing in the job: an ignored key.
    Ignored,
}

/// What became of one milvus-migration key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The key as milvus-migration documents it (`target.remote.bucket`).
    pub key: String,
    /// The part of the job it went into, or [`Section::Ignored`].
    pub section: Section,
    /// What vmig does with it, in a sentence (never a secret's value).
    pub text: String,
}

/// A secret in the translated job: [`render`] writes `${env}` in its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    /// The milvus-migration key holding it (`target.remote.sk`).
    pub key: String,
    /// [`Section::Source`] or [`Section::Sink`].
    pub section: Section,
    /// The option path inside that component (`["storage", "aws_secret_access_key"]`).
    pub option: Vec<String>,
    /// The environment variable [`render`] names in its place.
    pub env: String,
    /// The option's value with `${env}` in place of the secret (a whole URL for the MySQL DSN).
    pub rendered: String,
}

/// A translated `migration.yaml`.
#[derive(Debug, Clone)]
pub struct Translation {
    /// The vmig job, secrets included (where the plugins take them).
    pub job: JobConfig,
    /// What became of each key, in file order.
    pub notes: Vec<Note>,
    /// Where the job holds secrets.
    pub secrets: Vec<Secret>,
    /// The work mode (`faiss`, `milvus1x`, …).
    pub work_mode: String,
    /// When the config is several vmig jobs, the one this is: the target collection of one
    /// Milvus 1.x collection ([`for_collection`]) or of one index of an Elasticsearch meta file
    /// ([`translate_es_meta`]). `None` when the config is one job.
    pub part: Option<String>,
}

impl Translation {
    /// The notes about keys that were ignored.
    pub fn ignored(&self) -> impl Iterator<Item = &Note> {
        self.notes.iter().filter(|n| n.section == Section::Ignored)
    }
}

/// Whether `text` is a milvus-migration config: YAML whose top level is a mapping with a
/// `dumper` key (any case). Text that is not YAML is not one.
pub fn is_migration_config(text: &str) -> bool {
    match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text) {
        Ok(serde_yaml_ng::Value::Mapping(m)) => m
            .keys()
            .any(|k| k.as_str().is_some_and(|k| k.eq_ignore_ascii_case("dumper"))),
        _ => false,
    }
}

/// Whether the file at `path` is a milvus-migration config ([`is_migration_config`]): only
/// `.yaml`/`.yml` files are read.
///
/// # Errors
/// When a YAML file cannot be read.
pub fn is_migration_file(path: &Path) -> Result<bool> {
    let yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    if !yaml {
        return Ok(false);
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::config("job", format!("cannot read {}: {e}", path.display())))?;
    Ok(is_migration_config(&text))
}

/// Reads and translates the milvus-migration config at `path`; relative paths in it resolve
/// against `cwd`, as milvus-migration resolves them against its working directory.
///
/// # Errors
/// As [`parse`] and [`translate()`], the message prefixed with the file's name.
pub fn translate_file(path: &Path, cwd: &Path) -> Result<Translation> {
    let config = read_config(path)?;
    translate(&config, cwd).map_err(in_file(path))
}

/// Reads and parses the config file at `path` ([`parse`]), errors prefixed with its name.
fn read_config(path: &Path) -> Result<MigrationConfig> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::config(COMPONENT, format!("cannot read {}: {e}", path.display())))?;
    parse(&text).map_err(in_file(path))
}

/// A config error about the file at `path`: its message prefixed with the file's name.
fn in_file(path: &Path) -> impl Fn(Error) -> Error + '_ {
    move |e| match e {
        Error::Config { message, .. } => {
            Error::config(COMPONENT, format!("{}: {message}", path.display()))
        }
        other => other,
    }
}

/// The largest Elasticsearch meta file read: a few kilobytes per index in practice.
const META_FILE_LIMIT: u64 = 16 << 20;

/// Every vmig job of the milvus-migration config at `path`: one, or for an `elasticsearch`
/// config whose meta is in a file ([`es_meta_file`]: local, or in `source.remote`'s bucket),
/// one per index ([`translate_es_meta`]). The jobs of a Milvus 1.x server's collections are
/// listed from its meta by the caller ([`for_collection`]), which needs the `milvus1` source.
///
/// # Errors
/// As [`translate_file`]; the meta file's, naming it (unreadable, over 16 MiB, not a meta file).
pub async fn translate_file_jobs(path: &Path, cwd: &Path) -> Result<Vec<Translation>> {
    let config = read_config(path)?;
    let Some(meta_file) = es_meta_file(&config, cwd).map_err(in_file(path))? else {
        return Ok(vec![translate(&config, cwd).map_err(in_file(path))?]);
    };
    let display = meta_file.display();
    let unreadable = |e: &dyn std::fmt::Display| {
        Error::config(
            COMPONENT,
            format!(
                "{}: cannot read the meta file {display}: {}",
                path.display(),
                vmig_core::redact::text(&e.to_string())
            ),
        )
    };
    let bytes = match &meta_file {
        MetaFile::Local(p) => {
            let size = std::fs::metadata(p).map_err(|e| unreadable(&e))?.len();
            if size > META_FILE_LIMIT {
                return Err(unreadable(&format!(
                    "{size} bytes; a meta file is at most 16 MiB"
                )));
            }
            std::fs::read(p).map_err(|e| unreadable(&e))?
        }
        MetaFile::Remote { url, storage } => {
            let location = vmig_core::store::resolve(url, storage)?;
            let got = location
                .store
                .get(&location.path)
                .await
                .map_err(|e| unreadable(&e))?;
            if got.meta.size > META_FILE_LIMIT {
                return Err(unreadable(&format!(
                    "{} bytes; a meta file is at most 16 MiB",
                    got.meta.size
                )));
            }
            got.bytes().await.map_err(|e| unreadable(&e))?.to_vec()
        }
    };
    let text = String::from_utf8(bytes).map_err(|e| unreadable(&e))?;
    translate_es_meta(&config, cwd, &display, &text).map_err(in_file(path))
}

/// milvus-migration's three commands: `start` (dump, then load), `dump` (stage the files only,
/// to the target's `outputDir`), `load` (import what `dump` staged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The whole migration: the translated job as it is.
    Start,
    /// Only the staging: the job's sink replaced by the `files` sink writing the NumPy files
    /// milvus-migration stages, where it stages them.
    Dump,
    /// Only the import: the `files` source reading what `dump` wrote, into the translated
    /// job's Milvus sink.
    Load,
}

impl Step {
    /// The command's name (`start`, `dump`, `load`).
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Start => "start",
            Step::Dump => "dump",
            Step::Load => "load",
        }
    }
}

/// `t` (a `milvus1x` translation, before [`for_step`]) for one Milvus 1.x collection: its source
/// reads only `name`, the target collection is named `name` (as milvus-migration names it),
/// and its staged files go to `<stage>/<name>` — milvus-migration migrates each 1.x collection
/// to a collection of its own, so a 1.x server with several collections is one job per
/// collection. Other work modes are returned unchanged.
pub fn for_collection(t: &Translation, name: &str) -> Translation {
    let mut t = t.clone();
    if t.job.source.kind != "milvus1" {
        return t;
    }
    t.job
        .source
        .options
        .insert("collections".into(), serde_json::json!([name]));
    t.job.transform.retain(|c| c.kind != "collection");
    t.job.transform.push(vmig_core::config::ComponentConfig {
        kind: "collection".into(),
        options: serde_json::json!({ "name": name })
            .as_object()
            .cloned()
            .unwrap_or_default(),
    });
    stage_apart(&mut t.job, name);
    t.notes.push(Note {
        key: "(one job per 1.x collection)".into(),
        section: Section::Transform,
        text: format!("collection `{name}`: read alone, into the collection of the same name, staged under its own folder"),
    });
    t.part = Some(name.to_string());
    t
}

/// Puts the files `job` stages (the sink's `stage` or `path`) in a folder `name` of their own,
/// so that the jobs of one config never share a stage.
pub(crate) fn stage_apart(job: &mut JobConfig, name: &str) {
    for key in ["stage", "path"] {
        if let Some(serde_json::Value::String(p)) = job.sink.options.get_mut(key) {
            *p = format!("{}/{name}", p.trim_end_matches('/'));
        }
    }
}

/// The translation of `t` for one of milvus-migration's commands: `start` as it is, `dump` with
/// the files sink writing the stage, `load` with the files source reading it.
///
/// # Errors
/// When the work mode has nothing for `step` to do (`load` with `target.mode: local`, `dump`
/// or `load` of the milvus2x mode, which copies straight into Milvus).
pub fn for_step(t: Translation, step: Step) -> Result<Translation> {
    translate::for_step(t, step)
}

/// Reads and translates the milvus-migration config at `path` for `step`
/// ([`translate_file`] then [`translate::for_step`]).
///
/// # Errors
/// As [`translate_file`]; and when the work mode has nothing for `step` to do (e.g. `load`
/// with `target.mode: local`, which imports nothing).
pub fn translate_file_step(path: &Path, cwd: &Path, step: Step) -> Result<Translation> {
    let t = translate_file(path, cwd)?;
    translate::for_step(t, step).map_err(in_file(path))
}

/// Narrows `t` (translated for `step`) to the collections `names`, as the `collectionNames` of
/// milvus-migration's `POST /api/v1/dump` and `/load` (its `--col`) narrow its run. There they
/// select Milvus 1.x collections (`Tables.table_id`, each of which must exist) and nothing else:
/// `start` has no such field, and the other work modes ignore it. vmig honours it where it can
/// and refuses it everywhere else rather than ignore it: `dump` in `milvus1x` mode reads only
/// those collections (the `milvus1` source's `collections`); nothing is done for none.
///
/// # Errors
/// [`Error::Config`] for names given to `start`, to `load` (vmig's `load` imports all that `dump`
/// staged), to a work mode other than `milvus1x`, or with an empty name.
pub fn select_collections(t: &mut Translation, step: Step, names: &[String]) -> Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    let refuse = |why: String| Err(Error::config(COMPONENT, format!("collectionNames: {why}")));
    if t.work_mode != "milvus1x" {
        return refuse(format!(
            "it selects Milvus 1.x collections (workMode `milvus1x`); workMode `{}` has none to select (milvus-migration ignored it there): send the request without it",
            t.work_mode
        ));
    }
    match step {
        Step::Start => {
            return refuse(
                "milvus-migration's `start` takes no collections: use `dump` with collectionNames, then `load`".into(),
            )
        }
        Step::Load => {
            return refuse(
                "vmig's `load` imports everything `dump` staged: choose the collections at `dump`".into(),
            )
        }
        Step::Dump => {}
    }
    if names.iter().any(|n| n.trim().is_empty()) {
        return refuse("an empty name".into());
    }
    if t.job.source.kind != "milvus1" {
        return refuse(format!(
            "the translated job reads `{}`, not Milvus 1.x",
            t.job.source.kind
        ));
    }
    t.job.source.options.insert(
        "collections".into(),
        serde_json::Value::Array(names.iter().cloned().map(Into::into).collect()),
    );
    t.notes.push(Note {
        key: "collectionNames".into(),
        section: Section::Source,
        text: format!("collections: only {}", names.join(", ")),
    });
    Ok(())
}

/// The config file milvus-migration's commands read without `-c`: `./migration.yaml`, then
/// `./configs/migration.yaml`, under `cwd`.
///
/// # Errors
/// [`Error::Config`] naming both places when neither exists.
pub fn default_config_file(cwd: &Path) -> Result<PathBuf> {
    let candidates = [
        cwd.join("migration.yaml"),
        cwd.join("configs").join("migration.yaml"),
    ];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| {
            Error::config(
                COMPONENT,
                format!(
                    "no config file: give one with -c FILE, or put it at {} or {}",
                    candidates[0].display(),
                    candidates[1].display()
                ),
            )
        })
}

/// The directory a translated job's state lives next to: the config file's.
pub fn base_dir(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Parses a `migration.yaml`. Keys match without regard to case (as milvus-migration's viper
/// reads them); a key given twice is refused.
///
/// # Errors
/// [`Error::Config`] naming the key: an unknown one (`unknown key
/// `target.create.collection.shardsNums` (did you mean `shardsNum`?)`), a value of the wrong
/// type, YAML syntax. Never a value.
pub fn parse(text: &str) -> Result<MigrationConfig> {
    let yaml: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).map_err(|e| Error::config(COMPONENT, e.to_string()))?;
    let value = serde_json::to_value(yaml).map_err(|e| Error::config(COMPONENT, e.to_string()))?;
    register_secrets(&value);
    from_value(value)
}

/// Parses the text of milvus-migration's Elasticsearch meta file (JSON; `meta.mode`
/// `mock`/`local`/`remote`), its keys matched without regard to case as Go's `encoding/json`
/// matches them.
///
/// # Errors
/// [`Error::Config`] naming the key, as [`parse`]; JSON syntax with its line and column.
pub fn parse_es_meta(text: &str) -> Result<model::EsMetaFile> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| Error::config(COMPONENT, e.to_string()))?;
    from_value(value)
}

/// `value` as a `T`, keys matched without regard to case; an unknown key named with its whole
/// path and a "did you mean".
fn from_value<T: serde::de::DeserializeOwned>(mut value: serde_json::Value) -> Result<T> {
    // Each round either succeeds, fails for good, or rewrites one key's case; a file has fewer
    // keys than this.
    for _ in 0..10_000 {
        match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(config) => return Ok(config),
            Err(e) => {
                let mut path: Vec<String> = e
                    .path()
                    .iter()
                    .map(|s| match s {
                        serde_path_to_error::Segment::Seq { index } => format!("[{index}]"),
                        serde_path_to_error::Segment::Map { key } => key.clone(),
                        serde_path_to_error::Segment::Enum { variant } => variant.clone(),
                        _ => "?".into(),
                    })
                    .collect();
                let message = e.inner().to_string();
                let Some((unknown, expected)) = unknown_field(&message) else {
                    return Err(Error::config(COMPONENT, located(&path, &message)));
                };
                if path.last() == Some(&unknown) {
                    path.pop();
                }
                if let Some(right) = expected.iter().find(|k| k.eq_ignore_ascii_case(&unknown)) {
                    if rename_key(&mut value, &path, &unknown, right) {
                        continue;
                    }
                }
                path.push(unknown.clone());
                let mut text = format!("unknown key `{}`", join(&path));
                match suggest(&unknown, &expected) {
                    Some(s) => text.push_str(&format!(" (did you mean `{s}`?)")),
                    None if expected.is_empty() => {}
                    None => text.push_str(&format!(
                        "; milvus-migration reads {}",
                        expected
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                }
                return Err(Error::config(COMPONENT, text));
            }
        }
    }
    Err(Error::config(COMPONENT, "too many keys"))
}

/// Registers the values of milvus-migration's secret keys (`ak`, `sk`, `password`, `apiKey`,
/// `serviceToken`, `mysqlUrl`) so that no message shows them.
fn register_secrets(value: &serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let k = k.to_ascii_lowercase();
                match v {
                    serde_json::Value::String(s)
                        if matches!(
                            k.as_str(),
                            "ak" | "sk" | "password" | "apikey" | "servicetoken"
                        ) =>
                    {
                        vmig_core::redact::register(s)
                    }
                    serde_json::Value::String(s) if k == "mysqlurl" => {
                        if let Ok(dsn) = translate::GoDsn::parse(s) {
                            if let Some(pw) = dsn.password {
                                vmig_core::redact::register(&pw);
                            }
                        }
                    }
                    _ => register_secrets(v),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(register_secrets),
        _ => {}
    }
}

/// `path` joined as milvus-migration writes keys: `target.create.collection`, `meta.fields[1]`.
fn join(path: &[String]) -> String {
    let mut out = String::new();
    for step in path {
        if !out.is_empty() && !step.starts_with('[') {
            out.push('.');
        }
        out.push_str(step);
    }
    out
}

fn located(path: &[String], message: &str) -> String {
    if path.is_empty() {
        message.to_string()
    } else {
        format!("{}: {message}", join(path))
    }
}

/// The field and the expected ones of serde's "unknown field `x`, expected one of `a`, `b`"
/// ("expected `a`", "there are no fields").
fn unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    Some((field.to_string(), expected))
}

/// Renames `from` to `to` in the mapping at `path`; false when there is no such key or `to`
/// is there already (then the unknown-key error stands).
fn rename_key(value: &mut serde_json::Value, path: &[String], from: &str, to: &str) -> bool {
    let mut at = value;
    for step in path {
        let next = match step.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            Some(i) => i.parse::<usize>().ok().and_then(|i| at.get_mut(i)),
            None => at.get_mut(step.as_str()),
        };
        match next {
            Some(n) => at = n,
            None => return false,
        }
    }
    let Some(map) = at.as_object_mut() else {
        return false;
    };
    if map.contains_key(to) {
        return false;
    }
    match map.remove(from) {
        Some(v) => {
            map.insert(to.to_string(), v);
            true
        }
        None => false,
    }
}

/// The expected key closest to `unknown`, when it is close: at most a third of its letters
/// apart (at least 1, at most 3), compared without regard to case.
fn suggest<'a>(unknown: &str, expected: &'a [String]) -> Option<&'a str> {
    let limit = (unknown.chars().count() / 3).clamp(1, 3);
    expected
        .iter()
        .map(|k| {
            (
                distance(&unknown.to_ascii_lowercase(), &k.to_ascii_lowercase()),
                k,
            )
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str())
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_and_suggestions() {
        assert_eq!(distance("shardsnums", "shardsnum"), 1);
        let expected = vec!["name".to_string(), "shardsNum".into(), "dim".into()];
        assert_eq!(suggest("shardsNums", &expected), Some("shardsNum"));
        assert_eq!(suggest("colour", &expected), None);
    }

    #[test]
    fn serde_unknown_field_messages_are_understood() {
        let (f, e) =
            unknown_field("unknown field `x`, expected one of `a`, `bB`").unwrap_or_default();
        assert_eq!((f.as_str(), e), ("x", vec!["a".to_string(), "bB".into()]));
        let (f, e) = unknown_field("unknown field `x`, expected `a`").unwrap_or_default();
        assert_eq!((f.as_str(), e), ("x", vec!["a".to_string()]));
        assert!(unknown_field("missing field `a`").is_none());
    }
}
