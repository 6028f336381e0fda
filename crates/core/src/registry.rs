//! The plugin registry: sources, transformers, sinks and parsers register themselves with
//! `inventory`.
//!
//! A plugin crate defines a serde config type, implements [`SourceConfig`], [`TransformConfig`],
//! [`SinkConfig`] or [`ParserConfig`] for it, and writes one line:
//!
//! ```ignore
//! vmig_core::register_source!(FaissSourceConfig);
//! ```
//!
//! Registration runs before `main`, but only for crates the final binary links: a binary (or
//! test) that wants a plugin MUST name its crate, e.g. `use vmig_source_faiss as _;` (the `vmig`
//! facade crate does this for every plugin its features enable). Each entry records the package
//! that registered it ([`SourcePlugin::package`], …), so a binary can check that what it linked
//! is what its features promise without a hand-kept list of plugin names.
//!
//! Lookups go through a sorted map built once. Two plugins of the same kind with the same name
//! make every lookup of that kind fail with [`Error::DuplicatePlugin`], naming both.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::OnceLock;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, PluginKind, Result};
use crate::parse::{DynParserConfig, ParserConfig};
use crate::redact;
use crate::sink::Sink;
use crate::source::Source;
use crate::transform::Transformer;

/// What a config needs to know about the job it is built in.
#[derive(Debug, Clone, Default)]
pub struct BuildContext {
    /// Directory that relative paths in the config are resolved against (the config file's
    /// directory for the CLI; the working directory when empty).
    pub base_dir: PathBuf,
}

impl BuildContext {
    /// Resolves a local path from the config against [`BuildContext::base_dir`]. URLs
    /// (`s3://…`, `file://…`) and absolute paths are returned unchanged.
    pub fn resolve(&self, path_or_url: &str) -> String {
        if path_or_url.contains("://") || std::path::Path::new(path_or_url).is_absolute() {
            return path_or_url.to_string();
        }
        if self.base_dir.as_os_str().is_empty() {
            return path_or_url.to_string();
        }
        self.base_dir
            .join(path_or_url)
            .to_string_lossy()
            .into_owned()
    }
}

/// A local file or directory a plugin's options name: the option (`path`, `ca_cert`, …) and
/// the path as written — relative paths resolve against the job's directory. See
/// [`SourceConfig::local_paths`].
pub type LocalPath = (&'static str, std::path::PathBuf);

/// The local paths among `options` — each an option's name and its value, if set — for
/// [`SourceConfig::local_paths`]: values that are object-store or server URLs are left out
/// ([`crate::store::local_path`]).
///
/// ```
/// use std::path::PathBuf;
/// use vmig_core::registry::local_paths_of;
/// let paths = local_paths_of(&[
///     ("path", Some("data/x.faiss")),
///     ("stage", Some("s3://bucket/stage")),
///     ("ca_cert", None),
///     ("meta", Some("file:///srv/meta.sqlite")),
/// ]);
/// assert_eq!(
///     paths,
///     [("path", PathBuf::from("data/x.faiss")), ("meta", PathBuf::from("/srv/meta.sqlite"))]
/// );
/// ```
pub fn local_paths_of(options: &[(&'static str, Option<&str>)]) -> Vec<LocalPath> {
    options
        .iter()
        .filter_map(|(name, value)| Some((*name, crate::store::local_path((*value)?)?)))
        .collect()
}

/// A config as JSON for printing, redacted ([`redact::json`]) whatever its `Serialize` does.
fn config_json<C: Serialize>(plugin: &str, config: &C) -> serde_json::Value {
    match serde_json::to_value(config) {
        Ok(mut v) => {
            redact::json(&mut v);
            v
        }
        Err(e) => {
            serde_json::json!({ "error": redact::text(&format!("{plugin} config does not serialise: {e}")) })
        }
    }
}

/// A source's configuration type.
///
/// `build` may do I/O (open the file, read its header, connect): the schema of a source is
/// known only after that. Checks that need no I/O belong in `validate`, which runs when the
/// job file is loaded.
#[async_trait]
pub trait SourceConfig: DeserializeOwned + Serialize + Debug + Send + Sync + 'static {
    /// Lowercase noun naming the system (`faiss`, `elasticsearch`, …): the `type` in configs.
    const NAME: &'static str;
    /// One line for `vmig plugins`.
    const SUMMARY: &'static str;
    /// A typical configuration, shown by `vmig plugins --examples` and round-tripped in tests.
    fn example() -> Self;
    /// Checks that need no I/O.
    ///
    /// # Errors
    /// [`Error::Config`] naming the wrong option.
    fn validate(&self) -> Result<()> {
        Ok(())
    }
    /// Builds the runtime source.
    ///
    /// # Errors
    /// When the input cannot be opened or is not valid.
    async fn build(&self, ctx: &BuildContext) -> Result<Box<dyn Source>>;

    /// Every local file or directory these options name (an input file, a certificate, a
    /// SQLite file), so that a server running submitted jobs can keep them inside its data
    /// root (`vmig serve --data-root`); object-store and server URLs are not local
    /// ([`crate::store::local_path`] tells). A plugin that reads or writes a local path MUST
    /// list it. None by default.
    fn local_paths(&self) -> Vec<LocalPath> {
        Vec::new()
    }
}

/// A transformer's configuration type.
pub trait TransformConfig: DeserializeOwned + Serialize + Debug + Send + Sync + 'static {
    /// The `type` in configs (`rename`, `select`, …).
    const NAME: &'static str;
    /// One line for `vmig plugins`.
    const SUMMARY: &'static str;
    /// A typical configuration.
    fn example() -> Self;
    /// Builds the transformer (no I/O).
    ///
    /// # Errors
    /// [`Error::Config`] naming the wrong option.
    fn build(&self) -> Result<Box<dyn Transformer>>;
}

/// A sink's configuration type.
#[async_trait]
pub trait SinkConfig: DeserializeOwned + Serialize + Debug + Send + Sync + 'static {
    /// The `type` in configs (`files`, `milvus2`, …).
    const NAME: &'static str;
    /// One line for `vmig plugins`.
    const SUMMARY: &'static str;
    /// A typical configuration.
    fn example() -> Self;
    /// Checks that need no I/O.
    ///
    /// # Errors
    /// [`Error::Config`] naming the wrong option.
    fn validate(&self) -> Result<()> {
        Ok(())
    }
    /// Builds the runtime sink (may connect).
    ///
    /// # Errors
    /// When the target cannot be reached or used.
    async fn build(&self, ctx: &BuildContext) -> Result<Box<dyn Sink>>;

    /// A reader of what this sink wrote, for `vmig verify`: a source yielding the target's rows
    /// with the fields of `schema` (the migrated schema). `None` when this sink cannot be read
    /// back.
    ///
    /// # Errors
    /// When the target cannot be reached or does not hold the migrated data.
    async fn open_target(
        &self,
        _ctx: &BuildContext,
        _schema: &SchemaRef,
    ) -> Result<Option<Box<dyn Source>>> {
        Ok(None)
    }

    /// What resuming an interrupted run of this sink means for this job, when there is a limit
    /// or a cost to tell (`vmig plan` prints it); `schema` is the data's schema after the
    /// transforms. `None` (the default) when a run stopped or killed at any instant resumes
    /// exactly once.
    fn resume_note(&self, _schema: &SchemaRef) -> Option<String> {
        None
    }

    /// Whether the sink this configuration builds shares a job between workers
    /// ([`crate::Sink::shares_jobs`], which must agree), known before anything is built so that
    /// `vmig plan` and `vmig migrate` refuse a shared job up front. `false` by default.
    fn shares_jobs(&self) -> bool {
        false
    }

    /// Every local file or directory these options name (an output directory, a staging
    /// directory, a certificate); see [`SourceConfig::local_paths`]. None by default.
    fn local_paths(&self) -> Vec<LocalPath> {
        Vec::new()
    }
}

/// A parsed source configuration of any plugin.
#[async_trait]
pub trait DynSourceConfig: Debug + Send + Sync {
    /// The plugin name.
    fn plugin(&self) -> &'static str;
    /// The configuration as JSON for printing (`vmig plan`), redacted by [`redact::json`].
    fn to_json(&self) -> serde_json::Value;
    /// See [`SourceConfig::build`].
    async fn build(&self, ctx: &BuildContext) -> Result<Box<dyn Source>>;
    /// See [`SourceConfig::local_paths`].
    fn local_paths(&self) -> Vec<LocalPath>;
}

#[async_trait]
impl<C: SourceConfig> DynSourceConfig for C {
    fn plugin(&self) -> &'static str {
        C::NAME
    }
    fn to_json(&self) -> serde_json::Value {
        config_json(C::NAME, self)
    }
    async fn build(&self, ctx: &BuildContext) -> Result<Box<dyn Source>> {
        SourceConfig::build(self, ctx)
            .await
            .map_err(|e| e.context(format!("opening source `{}`", C::NAME)))
    }
    fn local_paths(&self) -> Vec<LocalPath> {
        SourceConfig::local_paths(self)
    }
}

/// A parsed sink configuration of any plugin.
#[async_trait]
pub trait DynSinkConfig: Debug + Send + Sync {
    /// The plugin name.
    fn plugin(&self) -> &'static str;
    /// The configuration as JSON for printing, redacted by [`redact::json`].
    fn to_json(&self) -> serde_json::Value;
    /// See [`SinkConfig::build`].
    async fn build(&self, ctx: &BuildContext) -> Result<Box<dyn Sink>>;
    /// See [`SinkConfig::open_target`].
    async fn open_target(
        &self,
        ctx: &BuildContext,
        schema: &SchemaRef,
    ) -> Result<Option<Box<dyn Source>>>;
    /// See [`SinkConfig::resume_note`].
    fn resume_note(&self, schema: &SchemaRef) -> Option<String>;
    /// See [`SinkConfig::shares_jobs`].
    fn shares_jobs(&self) -> bool;
    /// See [`SinkConfig::local_paths`].
    fn local_paths(&self) -> Vec<LocalPath>;
}

#[async_trait]
impl<C: SinkConfig> DynSinkConfig for C {
    fn plugin(&self) -> &'static str {
        C::NAME
    }
    fn to_json(&self) -> serde_json::Value {
        config_json(C::NAME, self)
    }
    async fn build(&self, ctx: &BuildContext) -> Result<Box<dyn Sink>> {
        SinkConfig::build(self, ctx)
            .await
            .map_err(|e| e.context(format!("opening sink `{}`", C::NAME)))
    }
    async fn open_target(
        &self,
        ctx: &BuildContext,
        schema: &SchemaRef,
    ) -> Result<Option<Box<dyn Source>>> {
        SinkConfig::open_target(self, ctx, schema)
            .await
            .map_err(|e| e.context(format!("reading back sink `{}`", C::NAME)))
    }
    fn resume_note(&self, schema: &SchemaRef) -> Option<String> {
        SinkConfig::resume_note(self, schema)
    }
    fn shares_jobs(&self) -> bool {
        SinkConfig::shares_jobs(self)
    }
    fn local_paths(&self) -> Vec<LocalPath> {
        SinkConfig::local_paths(self)
    }
}

/// Deserialises a plugin's options. The secrets in them are registered first
/// ([`redact::register_in_json`]), so no later output can show them; an error names the key
/// (`batch_size: invalid type: …`).
fn parse_config<C: DeserializeOwned>(name: &str, value: serde_json::Value) -> Result<C> {
    redact::register_in_json(&value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let message = match e.path().to_string() {
            path if path == "." => e.inner().to_string(),
            path => format!("`{path}`: {}", e.inner()),
        };
        Error::config(name, message)
    })
}

macro_rules! plugin_entry {
    (
        $(#[$doc:meta])* $entry:ident, $config:ident, $built:ty, |$c:ident| $make:expr
        $(, $(#[$fdoc:meta])* $field:ident: $fty:ty = $value:ident)*
    ) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $entry {
            /// The `type` in configs.
            pub name: &'static str,
            /// One line for `vmig plugins`.
            pub summary: &'static str,
            /// The cargo package that registered this plugin (`vmig-source-faiss`, …).
            pub package: &'static str,
            $($(#[$fdoc])* pub $field: $fty,)*
            parse: fn(serde_json::Value) -> Result<$built>,
            example: fn() -> serde_json::Value,
        }

        impl $entry {
            /// The entry for config type `C`, registered by cargo package `package`; `const` so
            /// `inventory::submit!` can hold it.
            pub const fn of<C: $config>(package: &'static str) -> Self {
                fn parse<C: $config>(value: serde_json::Value) -> Result<$built> {
                    let $c: C = parse_config(C::NAME, value)?;
                    $make
                }
                fn example<C: $config>() -> serde_json::Value {
                    config_json(C::NAME, &C::example())
                }
                $entry {
                    name: C::NAME,
                    summary: C::SUMMARY,
                    package,
                    $($field: C::$value,)*
                    parse: parse::<C>,
                    example: example::<C>,
                }
            }

            /// Parses and validates a configuration (the `type` key already removed).
            ///
            /// # Errors
            /// [`Error::Config`] naming the plugin and the wrong option.
            pub fn parse(&self, config: serde_json::Value) -> Result<$built> {
                (self.parse)(config)
            }

            /// A typical configuration of this plugin, as JSON.
            pub fn example_config(&self) -> serde_json::Value {
                (self.example)()
            }
        }

        inventory::collect!($entry);
    };
}

plugin_entry!(
    /// A registered source plugin.
    SourcePlugin, SourceConfig, Box<dyn DynSourceConfig>,
    |c| { c.validate()?; Ok(Box::new(c)) }
);
plugin_entry!(
    /// A registered transformer plugin.
    TransformPlugin, TransformConfig, Box<dyn Transformer>,
    |c| c.build()
);
plugin_entry!(
    /// A registered sink plugin.
    SinkPlugin, SinkConfig, Box<dyn DynSinkConfig>,
    |c| { c.validate()?; Ok(Box::new(c)) }
);
plugin_entry!(
    /// A registered parser plugin (one data format).
    ParserPlugin, ParserConfig, Box<dyn DynParserConfig>,
    |c| { c.validate()?; Ok(Box::new(c)) },
    /// The file extensions this format is inferred from ([`ParserConfig::EXTENSIONS`]).
    extensions: &'static [&'static str] = EXTENSIONS
);

type Table<T> = std::result::Result<BTreeMap<&'static str, &'static T>, (String, String, String)>;

fn build_table<T>(
    items: impl Iterator<Item = &'static T>,
    name: fn(&T) -> &'static str,
    summary: fn(&T) -> &'static str,
) -> Table<T> {
    let mut map: BTreeMap<&'static str, &'static T> = BTreeMap::new();
    for item in items {
        if let Some(previous) = map.insert(name(item), item) {
            return Err((
                name(item).to_string(),
                summary(previous).to_string(),
                summary(item).to_string(),
            ));
        }
    }
    Ok(map)
}

fn table<T>(
    kind: PluginKind,
    table: &'static Table<T>,
) -> Result<&'static BTreeMap<&'static str, &'static T>> {
    table
        .as_ref()
        .map_err(|(name, first, second)| Error::DuplicatePlugin {
            kind,
            name: name.clone(),
            first: first.clone(),
            second: second.clone(),
        })
}

/// Every linked source plugin, sorted by name.
///
/// # Errors
/// [`Error::DuplicatePlugin`] when two sources share a name.
pub fn sources() -> Result<&'static BTreeMap<&'static str, &'static SourcePlugin>> {
    static TABLE: OnceLock<Table<SourcePlugin>> = OnceLock::new();
    table(
        PluginKind::Source,
        TABLE.get_or_init(|| {
            build_table(
                inventory::iter::<SourcePlugin>.into_iter(),
                |p| p.name,
                |p| p.summary,
            )
        }),
    )
}

/// Every linked transformer plugin, sorted by name.
///
/// # Errors
/// [`Error::DuplicatePlugin`] when two transformers share a name.
pub fn transforms() -> Result<&'static BTreeMap<&'static str, &'static TransformPlugin>> {
    static TABLE: OnceLock<Table<TransformPlugin>> = OnceLock::new();
    table(
        PluginKind::Transform,
        TABLE.get_or_init(|| {
            build_table(
                inventory::iter::<TransformPlugin>.into_iter(),
                |p| p.name,
                |p| p.summary,
            )
        }),
    )
}

/// Every linked sink plugin, sorted by name.
///
/// # Errors
/// [`Error::DuplicatePlugin`] when two sinks share a name.
pub fn sinks() -> Result<&'static BTreeMap<&'static str, &'static SinkPlugin>> {
    static TABLE: OnceLock<Table<SinkPlugin>> = OnceLock::new();
    table(
        PluginKind::Sink,
        TABLE.get_or_init(|| {
            build_table(
                inventory::iter::<SinkPlugin>.into_iter(),
                |p| p.name,
                |p| p.summary,
            )
        }),
    )
}

/// Every linked parser plugin, sorted by format name.
///
/// # Errors
/// [`Error::DuplicatePlugin`] when two parsers share a name.
pub fn parsers() -> Result<&'static BTreeMap<&'static str, &'static ParserPlugin>> {
    static TABLE: OnceLock<Table<ParserPlugin>> = OnceLock::new();
    table(
        PluginKind::Parser,
        TABLE.get_or_init(|| {
            build_table(
                inventory::iter::<ParserPlugin>.into_iter(),
                |p| p.name,
                |p| p.summary,
            )
        }),
    )
}

/// The parser plugin for files named `path`, by extension (case-insensitive; `None` when no
/// linked parser claims it).
///
/// # Errors
/// [`Error::DuplicatePlugin`] when two parsers share a name.
pub fn parser_for_path(path: &str) -> Result<Option<&'static ParserPlugin>> {
    let Some(ext) = crate::parse::split_file_name(path).1 else {
        return Ok(None);
    };
    let ext = ext.to_ascii_lowercase();
    Ok(parsers()?
        .values()
        .copied()
        .find(|p| p.extensions.contains(&ext.as_str())))
}

/// The packages that registered at least one plugin of any kind, sorted: what a binary's
/// registry actually holds, to compare against the features it was built with.
///
/// # Errors
/// [`Error::DuplicatePlugin`] when two plugins of one kind share a name.
pub fn packages() -> Result<Vec<&'static str>> {
    let mut all: Vec<&'static str> = Vec::new();
    all.extend(sources()?.values().map(|p| p.package));
    all.extend(transforms()?.values().map(|p| p.package));
    all.extend(sinks()?.values().map(|p| p.package));
    all.extend(parsers()?.values().map(|p| p.package));
    all.sort_unstable();
    all.dedup();
    Ok(all)
}

fn lookup<T>(
    kind: PluginKind,
    map: &'static BTreeMap<&'static str, &'static T>,
    name: &str,
) -> Result<&'static T> {
    map.get(name).copied().ok_or_else(|| Error::UnknownPlugin {
        kind,
        name: name.to_string(),
        available: map.keys().copied().collect::<Vec<_>>().join(", "),
    })
}

/// Parses a source configuration for plugin `name`.
///
/// # Errors
/// [`Error::UnknownPlugin`] listing the available names, or the plugin's config error.
pub fn parse_source(name: &str, config: serde_json::Value) -> Result<Box<dyn DynSourceConfig>> {
    lookup(PluginKind::Source, sources()?, name)?.parse(config)
}

/// Builds a transformer from plugin `name` and its configuration.
///
/// # Errors
/// [`Error::UnknownPlugin`] listing the available names, or the plugin's config error.
pub fn build_transform(name: &str, config: serde_json::Value) -> Result<Box<dyn Transformer>> {
    lookup(PluginKind::Transform, transforms()?, name)?.parse(config)
}

/// Parses a sink configuration for plugin `name`.
///
/// # Errors
/// [`Error::UnknownPlugin`] listing the available names, or the plugin's config error.
pub fn parse_sink(name: &str, config: serde_json::Value) -> Result<Box<dyn DynSinkConfig>> {
    lookup(PluginKind::Sink, sinks()?, name)?.parse(config)
}

/// Parses a parser configuration for format `name`.
///
/// # Errors
/// [`Error::UnknownPlugin`] listing the available formats, or the plugin's config error.
pub fn parse_parser(name: &str, config: serde_json::Value) -> Result<Box<dyn DynParserConfig>> {
    lookup(PluginKind::Parser, parsers()?, name)?.parse(config)
}

#[doc(hidden)]
pub mod __private {
    pub use inventory;
}

/// Registers a [`SourceConfig`] type as a source plugin.
#[macro_export]
macro_rules! register_source {
    ($config:ty) => {
        $crate::registry::__private::inventory::submit! {
            $crate::registry::SourcePlugin::of::<$config>(env!("CARGO_PKG_NAME"))
        }
    };
}

/// Registers a [`TransformConfig`] type as a transformer plugin.
#[macro_export]
macro_rules! register_transform {
    ($config:ty) => {
        $crate::registry::__private::inventory::submit! {
            $crate::registry::TransformPlugin::of::<$config>(env!("CARGO_PKG_NAME"))
        }
    };
}

/// Registers a [`SinkConfig`] type as a sink plugin.
#[macro_export]
macro_rules! register_sink {
    ($config:ty) => {
        $crate::registry::__private::inventory::submit! {
            $crate::registry::SinkPlugin::of::<$config>(env!("CARGO_PKG_NAME"))
        }
    };
}

/// Registers a [`ParserConfig`] type as a parser plugin (one data format).
#[macro_export]
macro_rules! register_parser {
    ($config:ty) => {
        $crate::registry::__private::inventory::submit! {
            $crate::registry::ParserPlugin::of::<$config>(env!("CARGO_PKG_NAME"))
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_names_are_reported_with_both_entries() {
        static A: (&str, &str) = ("x", "first plugin");
        static B: (&str, &str) = ("x", "second plugin");
        let t = build_table([&A, &B].into_iter(), |p| p.0, |p| p.1);
        let Err((name, first, second)) = t else {
            panic!("duplicate not detected")
        };
        assert_eq!(
            (name.as_str(), first.as_str(), second.as_str()),
            ("x", "first plugin", "second plugin")
        );
    }

    #[test]
    fn relative_paths_resolve_against_base_dir() {
        let ctx = BuildContext {
            base_dir: PathBuf::from("/jobs"),
        };
        assert_eq!(ctx.resolve("a.faiss"), "/jobs/a.faiss");
        assert_eq!(ctx.resolve("/abs/a.faiss"), "/abs/a.faiss");
        assert_eq!(ctx.resolve("s3://b/a.faiss"), "s3://b/a.faiss");
    }
}
