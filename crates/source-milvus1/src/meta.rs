//! The Milvus 1.x meta store: `Tables` and `TableFiles`, from SQLite (`db/meta.sqlite`, with its
//! `-wal`/`-shm`) or MySQL.
//!
//! SQLite is never opened in place: the three files are copied together (from a local directory
//! or an object store) into a private temporary directory and opened there, so vmig can neither
//! checkpoint nor lock the user's meta, and a WAL that still holds committed rows is honoured.

use std::path::Path;

use object_store::ObjectStoreExt;
use sqlx::Connection;
use vmig_core::store::StoreLocation;
use vmig_core::{Error, Result};

/// A row of `Tables`: a collection (`owner_table` empty) or a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableRow {
    pub table_id: String,
    pub state: i64,
    pub dimension: i64,
    pub metric_type: i64,
    pub owner_table: String,
    pub partition_tag: String,
}

/// A row of `TableFiles` whose file holds a segment's raw data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileRow {
    pub table_id: String,
    pub segment_id: String,
    pub file_type: i64,
    pub row_count: i64,
}

/// What vmig needs of the meta.
#[derive(Debug, Clone, Default)]
pub(crate) struct Meta {
    pub tables: Vec<TableRow>,
    /// Raw-data rows only (RAW, TO_INDEX, BACKUP), in `id` order.
    pub files: Vec<FileRow>,
}

const TABLES_SQL: &str = "SELECT table_id, state, dimension, metric_type, owner_table, partition_tag FROM Tables ORDER BY id";
const FILES_SQL: &str = "SELECT table_id, segment_id, file_type, row_count FROM TableFiles WHERE file_type IN (1, 2, 7) ORDER BY id";

type TableTuple = (String, i64, i64, i64, Option<String>, Option<String>);
type FileTuple = (String, Option<String>, i64, i64);

fn table(t: TableTuple) -> TableRow {
    TableRow {
        table_id: t.0,
        state: t.1,
        dimension: t.2,
        metric_type: t.3,
        owner_table: t.4.unwrap_or_default(),
        partition_tag: t.5.unwrap_or_default().trim().to_string(),
    }
}

fn file_row(f: FileTuple) -> FileRow {
    FileRow {
        table_id: f.0,
        segment_id: f.1.unwrap_or_default(),
        file_type: f.2,
        row_count: f.3,
    }
}

fn sql_error(what: &str, e: sqlx::Error) -> Error {
    let retry = matches!(
        e,
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_)
    );
    if retry {
        Error::Transient {
            message: format!("{what}: {e}"),
            source: Some(Box::new(e)),
        }
    } else {
        Error::data(what.to_string(), e.to_string())
    }
}

/// Runs the two meta queries on an open sqlx connection (SQLite or MySQL: the same SQL, different
/// connection types), closes it and converts the rows; `$shown` names the meta in errors.
macro_rules! read_meta {
    ($conn:ident, $shown:ident) => {{
        let tables: Vec<TableTuple> = sqlx::query_as(TABLES_SQL)
            .fetch_all(&mut $conn)
            .await
            .map_err(|e| sql_error(&format!("reading `Tables` from `{}`", $shown), e))?;
        let files: Vec<FileTuple> = sqlx::query_as(FILES_SQL)
            .fetch_all(&mut $conn)
            .await
            .map_err(|e| sql_error(&format!("reading `TableFiles` from `{}`", $shown), e))?;
        let _ = $conn.close().await;
        Meta {
            tables: tables.into_iter().map(table).collect(),
            files: files.into_iter().map(file_row).collect(),
        }
    }};
}

/// Reads the meta from MySQL/MariaDB.
pub(crate) async fn load_mysql(url: &str) -> Result<Meta> {
    let shown = vmig_core::redact::url(url);
    let mut conn = sqlx::MySqlConnection::connect(url)
        .await
        .map_err(|e| sql_error(&format!("connecting to the Milvus 1.x meta `{shown}`"), e))?;
    Ok(read_meta!(conn, shown))
}

/// Copies `meta.sqlite` and (when present) its `-wal` and `-shm` from `location` into `dir`.
async fn copy_sqlite(location: &StoreLocation, dir: &Path) -> Result<std::path::PathBuf> {
    let name = location
        .path
        .filename()
        .unwrap_or("meta.sqlite")
        .to_string();
    let target = dir.join(&name);
    for suffix in ["", "-wal", "-shm"] {
        let path = object_store::path::Path::from(format!("{}{suffix}", location.path));
        match location.store.get(&path).await {
            Ok(r) => {
                let bytes = r.bytes().await?;
                tokio::fs::write(dir.join(format!("{name}{suffix}")), bytes).await?;
            }
            Err(object_store::Error::NotFound { .. }) if !suffix.is_empty() => {}
            Err(object_store::Error::NotFound { .. }) => return Err(Error::data(
                location.display.clone(),
                "the Milvus 1.x meta database does not exist; point `path` at the storage root \
                     that holds `db/`, or set `meta` (a SQLite file or a mysql:// URL)",
            )),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(target)
}

/// Reads the meta from a SQLite file (local or in an object store), through a private copy.
pub(crate) async fn load_sqlite(location: &StoreLocation) -> Result<Meta> {
    let tmp = tempfile::tempdir()?;
    let file = copy_sqlite(location, tmp.path()).await?;
    let shown = location.display.clone();
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&file);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| sql_error(&format!("opening the Milvus 1.x meta `{shown}`"), e))?;
    let meta = read_meta!(conn, shown);
    drop(tmp);
    Ok(meta)
}

/// milvus-migration's `meta.json` (what its `export` command writes, and what its `meta.mode`
/// `mock`/`local`/`remote` read): the collections with their segments.
#[derive(Debug, serde::Deserialize)]
struct MetaJson {
    collections: Vec<JsonCollection>,
}

#[derive(Debug, serde::Deserialize)]
struct JsonCollection {
    collection: String,
    metric: i64,
    dim: i64,
    #[serde(default)]
    segments: Vec<JsonSegment>,
}

#[derive(Debug, serde::Deserialize)]
struct JsonSegment {
    collection: String,
    segment: String,
    rows: i64,
}

/// Reads the meta from milvus-migration's `meta.json` (local or in an object store): each
/// collection a live table, each segment its raw data. The file describes no partitions: a
/// segment listed under another table than its collection is refused.
pub(crate) async fn load_json(location: &StoreLocation) -> Result<Meta> {
    let shown = location.display.clone();
    let bytes = match location.store.get(&location.path).await {
        Ok(r) => r.bytes().await?,
        Err(object_store::Error::NotFound { .. }) => {
            return Err(Error::data(shown, "the meta.json file does not exist"))
        }
        Err(e) => return Err(e.into()),
    };
    let json: MetaJson = serde_json::from_slice(&bytes).map_err(|e| {
        Error::data(
            shown.clone(),
            format!("not a milvus-migration meta.json ({{\"collections\": [{{\"collection\", \"metric\", \"dim\", \"segments\": [...]}}]}}): {e}"),
        )
    })?;
    let mut meta = Meta::default();
    for c in json.collections {
        for s in &c.segments {
            if s.collection != c.collection {
                return Err(Error::data(
                    shown,
                    format!(
                        "segment {} of collection `{}` is listed under table `{}`: a meta.json does not describe partitions; read the Milvus 1.x meta itself (a SQLite file or a mysql:// URL)",
                        s.segment, c.collection, s.collection
                    ),
                ));
            }
            meta.files.push(FileRow {
                table_id: c.collection.clone(),
                segment_id: s.segment.clone(),
                file_type: 1,
                row_count: s.rows,
            });
        }
        meta.tables.push(TableRow {
            table_id: c.collection,
            state: 0,
            dimension: c.dim,
            metric_type: c.metric,
            owner_table: String::new(),
            partition_tag: String::new(),
        });
    }
    Ok(meta)
}
