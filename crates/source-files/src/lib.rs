//! vmig source plugin `files`: data files — Parquet, NumPy, JSON, CSV, fvecs/bvecs/ivecs,
//! fbin/u8bin/i8bin, or any format a parser plugin registers — from a file, a directory or a
//! glob, local or in object storage (`s3://`, `gs://`, `az://`).
//!
//! ```toml
//! [source]
//! type = "files"
//! path = "s3://bucket/embeddings/*.parquet"   # a file, a directory, or a glob
//! format = "parquet"                          # optional: inferred from the extension
//! # partitions = "none"                       # optional: ignore the partitions of vmig's manifest
//! # any option of the format's parser sits next to it, e.g. for json:
//! # fields = { id = "int64", emb = "float_vector" }
//! ```
//!
//! The main design decision: this source owns all the I/O and no format. Each format is a
//! [`vmig_core::Parser`] plugin (a push decoder); the source lists the files, plans them and
//! feeds each file's bytes to a parser built for it — streamed in order in chunks, with the
//! next chunk read ahead, or, for random-access formats such as Parquet, the byte ranges the
//! parser asks for. So one source reads every format from every store, and a user's own parser
//! crate gets listing, object storage, partitions and exact resume for free.
//!
//! * **Files** are read in sorted path order. A directory is listed recursively, skipping
//!   hidden entries (`.x`, `_SUCCESS`) and files of other formats — or, when it holds vmig's own
//!   `manifest.json` (the `files` sink's output), exactly the files the manifest lists, in its
//!   format; a glob keeps `*`/`?` within one path segment (`**` crosses them). All files must be
//!   of one format.
//! * **Schema**: read from the first file (its header, or its parser's sample); every other
//!   file is parsed against that planned schema and fails naming itself when it differs.
//! * **Partitions**: one per file — or per NumPy directory, whose `<field>.npy` files are the
//!   columns of one set of rows (Milvus's NumPy layout, as vmig and milvus-migration write
//!   it). A file whose row count its format knows without reading (NumPy, Parquet, fbin, …)
//!   and which holds more than `partition_rows` rows is split into row ranges, when the
//!   parser can start at a row — for Parquet, ranges of whole row groups
//!   ([`vmig_core::Parser::row_groups`]), so no row group is decoded twice.
//! * **Target partitions**: a directory read through vmig's `manifest.json` keeps the
//!   partitions it was written with: the rows of a unit whose manifest entry carries
//!   `"partition": "<name>"` (the `files` sink's `<path>/<name>/…` folders, e.g. a Milvus 1.x
//!   partition staged by `vmig dump`) get `<name>` as their
//!   [`vmig_core::PartitionInfo::target_partition`], so the sink writes them into the target's
//!   partition of that name; rows of units without one go to its default partition. This is on
//!   by default, so that reading a vmig dump back reproduces it; `partitions = "none"` puts
//!   every row in the default partition. Units of different partitions are never one row set
//!   (a NumPy directory whose files the manifest gives different partitions is an error), and
//!   every row range split from a unit keeps its partition. Files read without a manifest (a
//!   single file, a glob, a directory without one) have no target partition. `vmig plan` shows
//!   the partition in each partition's description (``… → partition `<name>` ``).
//! * **Exactness**: every file's size and version (ETag, modification time) is recorded when
//!   the job is planned and checked when a partition starts, when it ends and when it resumes:
//!   a file that changed is an error naming it, never a silent mix of two versions.
//! * **Row numbers**: formats without ids of their own (fvecs, fbin, …) number rows across the
//!   files in sorted order (their `first_row`); this needs the row counts of every file at plan
//!   time, which those formats give from their headers or sizes.
#![warn(missing_docs)]

mod list;
mod read;
mod source;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;
use vmig_core::parse::{DynParserConfig, ParseInput, ParsePosition};
use vmig_core::ranges::RangeReader;
use vmig_core::registry::{self, BuildContext};
use vmig_core::vector::META_PRIMARY_KEY;
use vmig_core::{Error, Result, Source, SourceConfig};

pub use list::{FileVersion, InputFile};
pub use source::{FilesPosition, FilesSource};

use read::{zip_schemas, FileReader};
use source::RowSet;

/// Files whose headers are read at once while planning.
const PLAN_CONCURRENCY: usize = 8;

/// Rows per batch while a file is probed at plan time (no batch is taken).
const PROBE_BATCH_ROWS: usize = 8192;

/// Configuration of the `files` source.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct FilesSourceConfig {
    /// A file, a directory (read recursively) or a glob; a local path (relative paths are
    /// resolved against the job file's directory) or an object-store URL (`s3://bucket/dir/*.parquet`,
    /// `gs://…`, `az://…`, `file://…`).
    pub path: String,
    /// The format's parser (`parquet`, `json`, `npy`, `fvecs`, … — `vmig plugins` lists them).
    /// Default: the one whose extensions the files have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Object-store options (object_store keys such as `aws_endpoint`, `aws_region`); they
    /// override the cloud's environment variables. Secret values are masked when printed.
    #[serde(
        default,
        serialize_with = "vmig_core::redact::serialize_redacted",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub storage: BTreeMap<String, String>,
    /// Rows per partition when a large file is split (see the crate docs). Default 1 048 576.
    #[serde(default = "default_partition_rows")]
    pub partition_rows: u64,
    /// The primary-key column, recorded in the schema for the sink. Default: what the files
    /// say (vmig's Parquet keeps it), else the sink's default (`id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key: Option<String>,
    /// Where the rows' target partitions come from (see the crate docs): `"manifest"` (the
    /// default) keeps the partition vmig's `manifest.json` gives each unit; `"none"` puts
    /// every row in the sink's default partition.
    #[serde(default, skip_serializing_if = "Partitions::is_default")]
    pub partitions: Partitions,
    /// Every other key is an option of the format's parser (checked by it when the job is
    /// loaded).
    #[serde(flatten)]
    pub parser: serde_json::Map<String, serde_json::Value>,
}

fn default_partition_rows() -> u64 {
    1 << 20
}

/// Where the `files` source takes its rows' target partitions from (its `partitions` option).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Partitions {
    /// From vmig's `manifest.json`, when a directory is read through one: the rows of a unit
    /// with `"partition": "<name>"` go to partition `<name>` of the target; other rows (and
    /// files read without a manifest) to its default partition.
    #[default]
    Manifest,
    /// None: every row goes to the target's default partition.
    None,
}

impl Partitions {
    fn is_default(&self) -> bool {
        *self == Partitions::default()
    }
}

impl FilesSourceConfig {
    /// A configuration reading `path` with every other option at its default.
    pub fn new(path: impl Into<String>) -> Self {
        FilesSourceConfig {
            path: path.into(),
            format: None,
            storage: BTreeMap::new(),
            partition_rows: default_partition_rows(),
            primary_key: None,
            partitions: Partitions::default(),
            parser: serde_json::Map::new(),
        }
    }

    /// The same configuration with `format` set.
    #[must_use]
    pub fn with_format(mut self, format: impl Into<String>) -> Self {
        self.format = Some(format.into());
        self
    }

    /// The parser for `format` with this configuration's parser options.
    fn parser_config(&self, format: &str) -> Result<Box<dyn DynParserConfig>> {
        registry::parse_parser(format, serde_json::Value::Object(self.parser.clone()))
            .map_err(|e| e.context(format!("options of the `{format}` format")))
    }

    /// The format named or, without one, the one `path`'s extension implies (when it has one).
    fn format_of_path(&self) -> Result<Option<String>> {
        if let Some(f) = &self.format {
            return Ok(Some(f.clone()));
        }
        Ok(registry::parser_for_path(&self.path)?.map(|p| p.name.to_string()))
    }
}

#[async_trait]
impl SourceConfig for FilesSourceConfig {
    const NAME: &'static str = "files";
    const SUMMARY: &'static str =
        "data files (Parquet, NumPy, JSON, CSV, fvecs, fbin, … — any parser plugin): a file, directory or glob, local or on S3/GCS/Azure";

    fn example() -> Self {
        FilesSourceConfig::new("s3://bucket/embeddings/*.parquet").with_format("parquet")
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::config(Self::NAME, m));
        if self.path.trim().is_empty() {
            return bad("`path` is empty; give a file, a directory or a glob, local or a URL");
        }
        vmig_core::store::check_options(&self.path, &self.storage)?;
        if self.partition_rows == 0 {
            return bad("`partition_rows` must be at least 1");
        }
        if self.primary_key.as_deref() == Some("") {
            return bad("`primary_key` may not be empty");
        }
        match self.format_of_path()? {
            Some(format) => {
                self.parser_config(&format)?;
            }
            None if !self.parser.is_empty() => {
                let keys: Vec<_> = self.parser.keys().map(String::as_str).collect();
                return Err(Error::config(
                    Self::NAME,
                    format!(
                        "unknown option(s) {} — options of a format need `format` to be set",
                        keys.join(", ")
                    ),
                ));
            }
            None => {}
        }
        Ok(())
    }

    fn local_paths(&self) -> Vec<registry::LocalPath> {
        let base = match self.path.find(['*', '?', '[', '{']) {
            Some(i) => self.path[..i].rsplit_once('/').map_or(".", |(b, _)| b),
            None => self.path.as_str(),
        };
        registry::local_paths_of(&[("path", Some(base))])
    }

    async fn build(&self, ctx: &BuildContext) -> Result<Box<dyn Source>> {
        self.validate()?;
        let path = ctx.resolve(&self.path);
        let named = self.format_of_path()?;
        let keep = |rel: &str| match &named {
            Some(format) => registry::parser_for_path(rel)
                .ok()
                .flatten()
                .is_some_and(|p| p.name == format),
            None => registry::parser_for_path(rel).ok().flatten().is_some(),
        };
        let listing = list::list(&path, &self.storage, &keep).await?;
        let files = listing.files;
        let format = match (named, listing.manifest_format) {
            (Some(f), _) => f,
            (None, Some(f)) => f,
            (None, None) => format_of_files(&files)?,
        };
        let parser: Arc<dyn DynParserConfig> = Arc::from(self.parser_config(&format)?);
        let partitions = match self.partitions {
            Partitions::Manifest => listing.manifest_partitions.unwrap_or_default(),
            Partitions::None => BTreeMap::new(),
        };
        let mut sets = row_sets(&format, files, &partitions)?;
        let handle = Handle::current();

        // The first row set gives the schema.
        let first = sets
            .first()
            .cloned()
            .ok_or_else(|| Error::config(Self::NAME, format!("`{path}` holds no input file")))?;
        let probe = probe_set(Arc::clone(&parser), first.clone(), None, handle.clone()).await?;
        let mut schema = zip_schemas(&probe.schemas)?;
        let splittable = probe.splittable;
        sets[0].schemas = probe.schemas.clone();
        sets[0].total_rows = probe.total_rows;
        sets[0].row_groups = probe.row_groups.clone();
        let first_names: Arc<[String]> = first.files.iter().map(file_name).collect();
        let planned: Arc<[SchemaRef]> = probe.schemas.clone().into();

        // With row counts known from headers, every other file's header is read now: it gives
        // global row numbers and partition sizes, and a file of another schema fails before
        // anything is written.
        if probe.total_rows.is_some() && sets.len() > 1 {
            let probes = sets[1..].iter().cloned().map(|set| {
                let parser = Arc::clone(&parser);
                let first_names = Arc::clone(&first_names);
                let planned = Arc::clone(&planned);
                let handle = handle.clone();
                async move {
                    let planned = match_schemas(&set, &first_names, &planned)?;
                    probe_set(parser, set, Some(planned), handle).await
                }
            });
            let rest: Vec<Probe> = futures::stream::iter(probes)
                .buffered(PLAN_CONCURRENCY)
                .try_collect()
                .await?;
            for (set, probe) in sets[1..].iter_mut().zip(rest) {
                set.schemas = probe.schemas;
                set.total_rows = probe.total_rows;
                set.row_groups = probe.row_groups;
            }
        } else {
            for set in &mut sets[1..] {
                set.schemas = match_schemas(set, &first_names, &planned)?;
            }
        }
        let mut first_row = 0;
        for set in &mut sets {
            set.first_row = first_row;
            first_row += set.total_rows.unwrap_or(0);
        }
        if let Some(pk) = &self.primary_key {
            if schema.field_with_name(pk).is_err() {
                return Err(Error::config(
                    Self::NAME,
                    format!(
                        "`primary_key = \"{pk}\"` is not a column of the files (they have {})",
                        field_names(&schema)
                    ),
                ));
            }
            let mut metadata = schema.metadata().clone();
            metadata.insert(META_PRIMARY_KEY.to_string(), pk.clone());
            schema = Arc::new(Schema::new_with_metadata(schema.fields().clone(), metadata));
        }
        tracing::info!(
            message = "Planned data files.",
            path = %path,
            format = %format,
            row_sets = sets.len(),
            target_partitions = %sets
                .iter()
                .filter_map(|s| s.partition.as_deref())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(","),
            rows = %sets
                .iter()
                .map(|s| s.total_rows)
                .sum::<Option<u64>>()
                .map_or_else(|| "not known before reading".to_string(), |n| n.to_string()),
        );
        Ok(Box::new(FilesSource::new(
            schema,
            parser,
            sets,
            self.partition_rows,
            splittable,
        )))
    }
}

/// The one format every listed file's extension maps to.
fn format_of_files(files: &[InputFile]) -> Result<String> {
    let mut found: Option<(String, &str)> = None;
    for f in files {
        let Some(plugin) = registry::parser_for_path(&f.rel)? else {
            return Err(Error::config(
                "files",
                format!(
                    "no parser claims `{}` by its extension; set `format` (vmig plugins lists them)",
                    f.location.display
                ),
            ));
        };
        match &found {
            None => found = Some((plugin.name.to_string(), &f.rel)),
            Some((name, first)) if name != plugin.name => {
                return Err(Error::config(
                    "files",
                    format!(
                        "the files are of more than one format: `{first}` is {name}, `{}` is {}; set `format` or narrow `path` with a glob",
                        f.rel, plugin.name
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    found
        .map(|(name, _)| name)
        .ok_or_else(|| Error::config("files", "no input file"))
}

/// Groups files into row sets: the `.npy` files of one directory together (Milvus's NumPy
/// layout: one file per field), every other file alone. Each set takes the target partition
/// `partitions` gives its files (by `rel`).
///
/// # Errors
/// When the files of one NumPy directory are given different partitions: a row set's rows
/// all go to one partition, and those of two partitions are never read as one.
fn row_sets(
    format: &str,
    files: Vec<InputFile>,
    partitions: &BTreeMap<String, String>,
) -> Result<Vec<RowSet>> {
    let set = |key: String, files: Vec<InputFile>| -> Result<RowSet> {
        let partition = partition_of(&key, &files, partitions)?;
        Ok(RowSet {
            key,
            files,
            schemas: Vec::new(),
            total_rows: None,
            first_row: 0,
            row_groups: None,
            partition,
        })
    };
    if format != "npy" {
        return files
            .into_iter()
            .map(|f| set(f.rel.clone(), vec![f]))
            .collect();
    }
    let mut groups: BTreeMap<String, Vec<InputFile>> = BTreeMap::new();
    for f in files {
        let dir = f
            .rel
            .rsplit_once('/')
            .map_or(String::new(), |(d, _)| format!("{d}/"));
        groups.entry(dir).or_default().push(f);
    }
    groups
        .into_iter()
        .map(|(dir, files)| {
            let key = if files.len() == 1 {
                files[0].rel.clone()
            } else if dir.is_empty() {
                "./".to_string()
            } else {
                dir
            };
            set(key, files)
        })
        .collect()
}

/// The one target partition of the files of row set `key` (`None` for files without one).
fn partition_of(
    key: &str,
    files: &[InputFile],
    partitions: &BTreeMap<String, String>,
) -> Result<Option<String>> {
    let mut found: Option<(&InputFile, Option<&String>)> = None;
    for f in files {
        let p = partitions.get(&f.rel);
        match found {
            None => found = Some((f, p)),
            Some((first, q)) if q != p => {
                let name = |p: Option<&String>| {
                    p.map_or_else(
                        || "no partition".to_string(),
                        |p| format!("partition `{p}`"),
                    )
                };
                return Err(Error::data(
                    key.to_string(),
                    format!(
                        "the manifest puts `{}` in {} but `{}` in {}: the files of one NumPy directory are the columns of one set of rows, which belong in one partition",
                        first.rel,
                        name(q),
                        f.rel,
                        name(p)
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(found.and_then(|(_, p)| p.cloned()))
}

fn file_name(f: &InputFile) -> String {
    f.rel.rsplit('/').next().unwrap_or(&f.rel).to_string()
}

fn field_names(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("`{}`", f.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The planned schema of each file of `set`: the first set's schema of the file of the same
/// name (row sets of several files must hold the same files).
fn match_schemas(set: &RowSet, first: &[String], planned: &[SchemaRef]) -> Result<Vec<SchemaRef>> {
    let names: Vec<String> = set.files.iter().map(file_name).collect();
    if set.files.len() == 1 && first.len() == 1 {
        return Ok(planned.to_vec());
    }
    if names != first {
        return Err(Error::schema(format!(
            "`{}` holds the files {} but the first directory holds {}: every NumPy directory must hold the same fields",
            set.key,
            names.join(", "),
            first.join(", ")
        )));
    }
    Ok(planned.to_vec())
}

/// What reading a row set's headers found.
struct Probe {
    schemas: Vec<SchemaRef>,
    total_rows: Option<u64>,
    /// A single file's row groups, if its format has them.
    row_groups: Option<Vec<u64>>,
    /// Whether the parser resumes at a row count alone (so large files can be split).
    splittable: bool,
}

/// Reads the header (or schema sample) of every file of `set`, on a blocking thread.
async fn probe_set(
    parser: Arc<dyn DynParserConfig>,
    set: RowSet,
    planned: Option<Vec<SchemaRef>>,
    handle: Handle,
) -> Result<Probe> {
    let mut readers = Vec::with_capacity(set.files.len());
    for (i, file) in set.files.iter().enumerate() {
        let mut input = ParseInput::new(file.location.display.clone(), PROBE_BATCH_ROWS)
            .with_size(file.version.size);
        if let Some(planned) = &planned {
            input = input.with_schema(planned[i].clone());
        }
        readers.push((
            file.location.display.clone(),
            FileReader::new(
                parser.build(&input)?,
                RangeReader::new(&file.location),
                file.location.display.clone(),
                file.version.size,
                handle.clone(),
            ),
        ));
    }
    let key = set.key.clone();
    tokio::task::spawn_blocking(move || {
        let mut schemas = Vec::new();
        let mut totals = Vec::new();
        let mut splittable = true;
        let single = readers.len() == 1;
        let mut row_groups = None;
        for (name, mut reader) in readers {
            schemas.push(reader.read_schema()?);
            totals.push((name, reader.total_rows()));
            if single {
                row_groups = reader.row_groups();
            }
            splittable &= matches!(
                reader.resume(&ParsePosition {
                    rows: 0,
                    offset: None,
                }),
                Ok(true)
            );
        }
        let total_rows = match totals.as_slice() {
            [(_, Some(first)), rest @ ..] => {
                if let Some((name, other)) = rest.iter().find(|(_, t)| *t != Some(*first)) {
                    return Err(Error::data(
                        name.clone(),
                        format!(
                            "holds {} rows but {} holds {first}: the files of `{key}` are the columns of one set of rows and must agree",
                            other.map_or("an unknown number of".into(), |n| n.to_string()),
                            totals[0].0
                        ),
                    ));
                }
                Some(*first)
            }
            _ => None,
        };
        Ok(Probe {
            schemas,
            total_rows,
            row_groups,
            splittable,
        })
    })
    .await
    .map_err(|e| Error::External(Box::new(e)))?
}

vmig_core::redacted_debug!(FilesSourceConfig);

vmig_core::register_source!(FilesSourceConfig);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_options_sit_next_to_the_format_and_are_checked() {
        let c: FilesSourceConfig = serde_json::from_value(serde_json::json!({
            "path": "x/*.npy", "field": "emb"
        }))
        .unwrap();
        assert_eq!(c.parser["field"], "emb");
        vmig_parsers_linked();
        c.validate().unwrap();
        let c: FilesSourceConfig = serde_json::from_value(serde_json::json!({
            "path": "x/*.npy", "colour": "red"
        }))
        .unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("options of the `npy` format"), "{e}");
        assert!(e.contains("colour"), "{e}");
        let c: FilesSourceConfig = serde_json::from_value(serde_json::json!({
            "path": "x/", "colour": "red"
        }))
        .unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("need `format`"), "{e}");
    }

    fn vmig_parsers_linked() {
        let _ = vmig_parsers::NpyParserConfig::default();
    }
}
