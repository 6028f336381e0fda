//! A generator of Milvus 1.x data directories, exactly in the documented on-disk format
//! (`shared/reference/formats.md` §B): `db/meta.sqlite` with the `Environment`, `Tables` and
//! `TableFiles` tables, and `db/tables/<table_id>/<segment_id>/` holding `<segment>.rv`,
//! `<segment>.uid`, `deleted_docs` and `bloom_filter` (plus an index blob for indexed segments).
//!
//! No Milvus 1.x server can run any more, so this is how vmig's tests get 1.x data: build a
//! [`Milvus1Gen`] (collections, partitions, segments with deletes, dropped collections, BACKUP +
//! INDEX pairs, in-flight NEW / TO_DELETE files), [`Milvus1Gen::write_dir`] it, optionally load the
//! same meta rows into MySQL/MariaDB ([`Milvus1Gen::load_mysql`]), and compare what vmig read with
//! [`Milvus1Gen::expected`]: every generated row minus the deleted offsets.
//!
//! Segment files are written in chunks, so a bench can generate gigabytes with little memory.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sqlx::Connection;

/// Milvus 1.x `MetricType` codes (`Tables.metric_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// 1: L2 (float).
    L2 = 1,
    /// 2: inner product (float).
    Ip = 2,
    /// 3: Hamming (binary).
    Hamming = 3,
    /// 4: Jaccard (binary).
    Jaccard = 4,
    /// 5: Tanimoto (binary; no Milvus 2.x equivalent).
    Tanimoto = 5,
}

impl Metric {
    /// Whether collections with this metric hold binary vectors.
    pub fn is_binary(self) -> bool {
        (self as i32) >= 3
    }
}

/// `TableFiles.file_type` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    /// 0: being written, not committed.
    New = 0,
    /// 1: raw segment.
    Raw = 1,
    /// 2: raw segment waiting for its index build.
    ToIndex = 2,
    /// 3: index blob.
    Index = 3,
    /// 4: merged away or dropped, awaiting GC.
    ToDelete = 4,
    /// 7: the raw file of a segment that has an INDEX file.
    Backup = 7,
}

impl FileType {
    /// Whether vmig must read the segment's rows (RAW, TO_INDEX, BACKUP).
    pub fn is_live_raw(self) -> bool {
        matches!(self, FileType::Raw | FileType::ToIndex | FileType::Backup)
    }
}

/// One generated row.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Row {
    /// The user id from `.uid`.
    pub id: i64,
    /// The vector's bytes as in `.rv` (little-endian f32s, or packed bits).
    pub vector: Vec<u8>,
}

/// A table (collection or partition) row of the meta.
#[derive(Debug, Clone)]
struct Table {
    table_id: String,
    state: i32,
    dimension: i64,
    metric: Metric,
    owner_table: String,
    partition_tag: String,
}

/// A segment: where its rows come from and which meta rows describe it.
#[derive(Debug, Clone)]
struct Segment {
    table: usize,
    segment_id: String,
    rows: usize,
    deletes: Vec<i32>,
    file_type: FileType,
    seed: u64,
    first_id: i64,
}

/// Builds a Milvus 1.x data directory. Tables and segments are numbered in creation order.
#[derive(Debug, Clone)]
pub struct Milvus1Gen {
    seed: u64,
    tables: Vec<Table>,
    segments: Vec<Segment>,
    next_id: i64,
    next_segment: u64,
}

/// A handle to a collection or partition made by [`Milvus1Gen`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableRef(usize);

/// The `Tables` definition Milvus 1.x (SqliteMetaImpl, through sqlite_orm) creates in SQLite.
pub const SQLITE_TABLES: &str = "CREATE TABLE IF NOT EXISTS 'Tables' ( 'id' INTEGER PRIMARY KEY NOT NULL , 'table_id' TEXT UNIQUE NOT NULL , 'state' INTEGER NOT NULL , 'dimension' INTEGER NOT NULL , 'created_on' INTEGER NOT NULL , 'flag' INTEGER NOT NULL DEFAULT 0 , 'index_file_size' INTEGER NOT NULL , 'engine_type' INTEGER NOT NULL , 'index_params' TEXT NOT NULL , 'metric_type' INTEGER NOT NULL , 'owner_table' TEXT NOT NULL DEFAULT '' , 'partition_tag' TEXT NOT NULL DEFAULT '' , 'version' TEXT NOT NULL DEFAULT '0.10.0' , 'flush_lsn' INTEGER NOT NULL )";
/// The `TableFiles` definition in SQLite.
pub const SQLITE_TABLE_FILES: &str = "CREATE TABLE IF NOT EXISTS 'TableFiles' ( 'id' INTEGER PRIMARY KEY NOT NULL , 'table_id' TEXT NOT NULL , 'segment_id' TEXT NOT NULL DEFAULT '' , 'engine_type' INTEGER NOT NULL , 'file_id' TEXT NOT NULL , 'file_type' INTEGER NOT NULL , 'file_size' INTEGER NOT NULL DEFAULT 0 , 'row_count' INTEGER NOT NULL DEFAULT 0 , 'updated_time' INTEGER NOT NULL , 'created_on' INTEGER NOT NULL , 'date' INTEGER NOT NULL DEFAULT -1 , 'flush_lsn' INTEGER NOT NULL )";
/// The `Environment` definition in SQLite.
pub const SQLITE_ENVIRONMENT: &str =
    "CREATE TABLE IF NOT EXISTS 'Environment' ( 'global_lsn' INTEGER NOT NULL )";
/// The `Tables` definition Milvus 1.x (MySQLMetaImpl) creates in MySQL.
pub const MYSQL_TABLES: &str = "CREATE TABLE IF NOT EXISTS Tables (id BIGINT PRIMARY KEY AUTO_INCREMENT,table_id VARCHAR(255) UNIQUE NOT NULL,state INT NOT NULL,dimension SMALLINT NOT NULL,created_on BIGINT NOT NULL,flag BIGINT DEFAULT 0 NOT NULL,index_file_size BIGINT DEFAULT 1024 NOT NULL,engine_type INT DEFAULT 1 NOT NULL,index_params VARCHAR(512) NOT NULL,metric_type INT DEFAULT 1 NOT NULL,owner_table VARCHAR(255) NOT NULL,partition_tag VARCHAR(255) NOT NULL,version VARCHAR(64) DEFAULT '1.1.0',flush_lsn BIGINT DEFAULT 0 NOT NULL)";
/// The `TableFiles` definition in MySQL.
pub const MYSQL_TABLE_FILES: &str = "CREATE TABLE IF NOT EXISTS TableFiles (id BIGINT PRIMARY KEY AUTO_INCREMENT,table_id VARCHAR(255) NOT NULL,segment_id VARCHAR(255) NOT NULL,engine_type INT DEFAULT 1 NOT NULL,file_id VARCHAR(255) NOT NULL,file_type INT DEFAULT 0 NOT NULL,file_size BIGINT DEFAULT 0 NOT NULL,row_count BIGINT DEFAULT 0 NOT NULL,updated_time BIGINT NOT NULL,created_on BIGINT NOT NULL,date INT DEFAULT -1 NOT NULL,flush_lsn BIGINT DEFAULT 0 NOT NULL)";
/// The `Environment` definition in MySQL.
pub const MYSQL_ENVIRONMENT: &str =
    "CREATE TABLE IF NOT EXISTS Environment (global_lsn BIGINT NOT NULL)";

/// Rows written per chunk when generating segment files.
const CHUNK_ROWS: usize = 65_536;

impl Milvus1Gen {
    /// An empty directory description; `seed` fixes every generated id and vector.
    pub fn new(seed: u64) -> Self {
        Milvus1Gen {
            seed,
            tables: Vec::new(),
            segments: Vec::new(),
            next_id: 1,
            next_segment: 1_600_000_000_000_000,
        }
    }

    /// A live collection named `name` with `dim` dimensions (bits for binary metrics).
    pub fn collection(&mut self, name: &str, dim: usize, metric: Metric) -> TableRef {
        self.table(name, 0, dim, metric, "", "")
    }

    /// A dropped collection (state TO_DELETE); its segments must never be read.
    pub fn dropped_collection(&mut self, name: &str, dim: usize, metric: Metric) -> TableRef {
        self.table(name, 1, dim, metric, "", "")
    }

    /// A partition of `collection` with tag `tag`; its table id is generated (not derived from
    /// the tag), as Milvus does.
    pub fn partition(&mut self, collection: TableRef, tag: &str) -> TableRef {
        self.partition_with_state(collection, tag, 0)
    }

    /// A dropped partition (state TO_DELETE) of `collection`.
    pub fn dropped_partition(&mut self, collection: TableRef, tag: &str) -> TableRef {
        self.partition_with_state(collection, tag, 1)
    }

    fn partition_with_state(&mut self, collection: TableRef, tag: &str, state: i32) -> TableRef {
        let owner = self.tables[collection.0].clone();
        let table_id = format!(
            "{}",
            1_590_000_000_000_000u64 + self.tables.len() as u64 * 7919
        );
        self.table(
            &table_id,
            state,
            owner.dimension as usize,
            owner.metric,
            &owner.table_id,
            tag,
        )
    }

    fn table(
        &mut self,
        table_id: &str,
        state: i32,
        dim: usize,
        metric: Metric,
        owner: &str,
        tag: &str,
    ) -> TableRef {
        self.tables.push(Table {
            table_id: table_id.to_string(),
            state,
            dimension: dim as i64,
            metric,
            owner_table: owner.to_string(),
            partition_tag: tag.to_string(),
        });
        TableRef(self.tables.len() - 1)
    }

    /// Adds a segment of `rows` rows to `table` with the given deleted offsets (written in this
    /// order: they may be unsorted, repeated, interior or trailing) and raw file type. A BACKUP
    /// segment also gets an INDEX row and an index blob file, as an indexed 1.x segment has.
    /// Returns the segment id (its directory name).
    pub fn segment(
        &mut self,
        table: TableRef,
        rows: usize,
        deletes: &[i32],
        file_type: FileType,
    ) -> String {
        let segment_id = self.next_segment.to_string();
        self.next_segment += 1013;
        let seed = self.seed ^ (self.segments.len() as u64 + 1).wrapping_mul(0x9E37_79B9);
        self.segments.push(Segment {
            table: table.0,
            segment_id: segment_id.clone(),
            rows,
            deletes: deletes.to_vec(),
            file_type,
            seed,
            first_id: self.next_id,
        });
        self.next_id += rows as i64 * 3 + 7;
        segment_id
    }

    /// The id of row `i` of a segment whose first id is `first`: spaced, so ids are not offsets.
    fn id(first: i64, i: usize) -> i64 {
        first + i as i64 * 3
    }

    fn row_bytes(table: &Table) -> usize {
        if table.metric.is_binary() {
            table.dimension as usize / 8
        } else {
            table.dimension as usize * 4
        }
    }

    /// Fills `out` with the vector bytes of `rows` rows from `rng`.
    fn vectors(rng: &mut ChaCha8Rng, table: &Table, rows: usize, out: &mut Vec<u8>) {
        out.clear();
        if table.metric.is_binary() {
            out.resize(rows * Self::row_bytes(table), 0);
            rng.fill(&mut out[..]);
        } else {
            for _ in 0..rows * table.dimension as usize {
                let v: f32 = rng.random::<f32>() * 2.0 - 1.0;
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }

    /// The table id of `table`.
    pub fn table_id(&self, table: TableRef) -> &str {
        &self.tables[table.0].table_id
    }

    /// Writes the data directory under `root` (`root/db/...`): every segment's files and
    /// `db/meta.sqlite`.
    ///
    /// # Errors
    /// On I/O or SQLite errors.
    pub async fn write_dir(&self, root: &Path) -> std::io::Result<()> {
        let me = self.clone();
        let dir = root.to_path_buf();
        tokio::task::spawn_blocking(move || me.write_segments(&dir))
            .await
            .map_err(std::io::Error::other)??;
        self.write_sqlite(&root.join("db/meta.sqlite"))
            .await
            .map_err(std::io::Error::other)
    }

    fn segment_dir(&self, root: &Path, s: &Segment) -> PathBuf {
        root.join("db/tables")
            .join(&self.tables[s.table].table_id)
            .join(&s.segment_id)
    }

    fn write_segments(&self, root: &Path) -> std::io::Result<()> {
        for s in &self.segments {
            let table = &self.tables[s.table];
            let dir = self.segment_dir(root, s);
            std::fs::create_dir_all(&dir)?;
            let width = Self::row_bytes(table);
            let mut rv = std::io::BufWriter::with_capacity(
                1 << 20,
                std::fs::File::create(dir.join(format!("{}.rv", s.segment_id)))?,
            );
            let mut uid = std::io::BufWriter::with_capacity(
                1 << 20,
                std::fs::File::create(dir.join(format!("{}.uid", s.segment_id)))?,
            );
            rv.write_all(&((s.rows * width) as u64).to_le_bytes())?;
            uid.write_all(&((s.rows * 8) as u64).to_le_bytes())?;
            let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
            let mut buf = Vec::new();
            let mut done = 0;
            while done < s.rows {
                let n = CHUNK_ROWS.min(s.rows - done);
                Self::vectors(&mut rng, table, n, &mut buf);
                rv.write_all(&buf)?;
                buf.clear();
                for i in done..done + n {
                    buf.extend_from_slice(&Self::id(s.first_id, i).to_le_bytes());
                }
                uid.write_all(&buf)?;
                done += n;
            }
            rv.flush()?;
            uid.flush()?;
            let mut del = Vec::with_capacity(8 + s.deletes.len() * 4);
            del.extend_from_slice(&((s.deletes.len() * 4) as u64).to_le_bytes());
            for d in &s.deletes {
                del.extend_from_slice(&d.to_le_bytes());
            }
            std::fs::write(dir.join("deleted_docs"), del)?;
            // A 1.1-style bloom filter header + a small bitmap (never read by vmig).
            let mut bloom = Vec::new();
            bloom.extend_from_slice(&0x0030_5F6D_6F6F_6C62_i64.to_le_bytes());
            bloom.extend_from_slice(&500_000u32.to_le_bytes());
            bloom.extend_from_slice(&0.01f64.to_le_bytes());
            bloom.extend_from_slice(&64u64.to_le_bytes());
            bloom.extend_from_slice(&[0u8; 64]);
            std::fs::write(dir.join("bloom_filter"), bloom)?;
            if s.file_type == FileType::Backup {
                // The index blob of an indexed segment, named by its file id.
                std::fs::write(dir.join(self.index_file_id(s)), b"knowhere index blob")?;
            }
        }
        Ok(())
    }

    fn index_file_id(&self, s: &Segment) -> String {
        format!("{}_idx", s.segment_id)
    }

    /// The meta rows as SQL `INSERT` statements (valid in SQLite and MySQL).
    pub fn inserts(&self) -> Vec<String> {
        let mut out = vec!["INSERT INTO Environment (global_lsn) VALUES (0)".to_string()];
        let created = 1_600_000_000_000_000i64;
        for (i, t) in self.tables.iter().enumerate() {
            let engine = if t.metric.is_binary() { 9 } else { 1 };
            out.push(format!(
                "INSERT INTO Tables (id, table_id, state, dimension, created_on, flag, index_file_size, \
                 engine_type, index_params, metric_type, owner_table, partition_tag, version, flush_lsn) \
                 VALUES ({}, '{}', {}, {}, {}, 2, 1024, {engine}, '{{}}', {}, '{}', '{}', '1.1.0', 0)",
                i + 1,
                t.table_id,
                t.state,
                t.dimension,
                created + i as i64,
                t.metric as i32,
                t.owner_table,
                t.partition_tag.replace('\'', "''"),
            ));
        }
        let mut row = 0;
        let mut file = |table_id: &str,
                        segment: &str,
                        file_id: &str,
                        ft: i32,
                        size: u64,
                        rows: usize| {
            row += 1;
            format!(
                "INSERT INTO TableFiles (id, table_id, segment_id, engine_type, file_id, file_type, \
                 file_size, row_count, updated_time, created_on, date, flush_lsn) VALUES \
                 ({row}, '{table_id}', '{segment}', 1, '{file_id}', {ft}, {size}, {rows}, {created}, {created}, -1, 0)"
            )
        };
        for s in &self.segments {
            let t = &self.tables[s.table];
            let size = 8 + (s.rows * Self::row_bytes(t)) as u64;
            // Milvus counts live rows in some versions: store rows − distinct deletes, which
            // must only ever be used as an estimate.
            let mut distinct = s.deletes.clone();
            distinct.sort_unstable();
            distinct.dedup();
            let live = s.rows - distinct.len();
            out.push(file(
                &t.table_id,
                &s.segment_id,
                &s.segment_id,
                s.file_type as i32,
                size,
                live,
            ));
            if s.file_type == FileType::Backup {
                out.push(file(
                    &t.table_id,
                    &s.segment_id,
                    &self.index_file_id(s),
                    FileType::Index as i32,
                    19,
                    live,
                ));
            }
        }
        out
    }

    /// Writes `db/meta.sqlite` (WAL mode, as Milvus runs it) with the real table definitions.
    ///
    /// # Errors
    /// On SQLite errors.
    pub async fn write_sqlite(&self, path: &Path) -> Result<(), sqlx::Error> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let _ = std::fs::remove_file(path);
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
        for stmt in [SQLITE_ENVIRONMENT, SQLITE_TABLES, SQLITE_TABLE_FILES]
            .into_iter()
            .map(str::to_string)
            .chain(self.inserts())
        {
            sqlx::query(&stmt).execute(&mut conn).await?;
        }
        conn.close().await
    }

    /// Creates the meta tables in the MySQL/MariaDB database of `url` (dropping old ones) and
    /// inserts the same rows as [`Milvus1Gen::write_sqlite`].
    ///
    /// # Errors
    /// On connection or SQL errors.
    pub async fn load_mysql(&self, url: &str) -> Result<(), sqlx::Error> {
        let mut conn = sqlx::MySqlConnection::connect(url).await?;
        for stmt in [
            "DROP TABLE IF EXISTS Environment",
            "DROP TABLE IF EXISTS Tables",
            "DROP TABLE IF EXISTS TableFiles",
            MYSQL_ENVIRONMENT,
            MYSQL_TABLES,
            MYSQL_TABLE_FILES,
        ]
        .into_iter()
        .map(str::to_string)
        .chain(self.inserts())
        {
            sqlx::query(&stmt).execute(&mut conn).await?;
        }
        conn.close().await
    }

    /// The rows vmig must read from collection `name`, keyed by partition tag (`""` for the
    /// collection's own segments): every row of every live RAW/TO_INDEX/BACKUP segment of live
    /// tables, minus the deleted offsets, in segment order.
    pub fn expected(&self, name: &str) -> BTreeMap<String, Vec<Row>> {
        let mut out: BTreeMap<String, Vec<Row>> = BTreeMap::new();
        for s in &self.segments {
            let t = &self.tables[s.table];
            let owner = if t.owner_table.is_empty() {
                &t.table_id
            } else {
                &t.owner_table
            };
            let collection_live = self
                .tables
                .iter()
                .any(|c| &c.table_id == owner && c.state == 0 && c.owner_table.is_empty());
            if owner != name || t.state != 0 || !collection_live || !s.file_type.is_live_raw() {
                continue;
            }
            let width = Self::row_bytes(t);
            let deleted: std::collections::HashSet<i32> = s.deletes.iter().copied().collect();
            let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
            let mut buf = Vec::new();
            let rows = out.entry(t.partition_tag.clone()).or_default();
            let mut done = 0;
            while done < s.rows {
                let n = CHUNK_ROWS.min(s.rows - done);
                Self::vectors(&mut rng, t, n, &mut buf);
                for i in 0..n {
                    if !deleted.contains(&((done + i) as i32)) {
                        rows.push(Row {
                            id: Self::id(s.first_id, done + i),
                            vector: buf[i * width..(i + 1) * width].to_vec(),
                        });
                    }
                }
                done += n;
            }
        }
        out
    }

    /// The relative directory of segment `segment_id` (`db/tables/<table_id>/<segment_id>`).
    pub fn segment_path(&self, segment_id: &str) -> Option<String> {
        self.segments
            .iter()
            .find(|s| s.segment_id == segment_id)
            .map(|s| {
                format!(
                    "db/tables/{}/{}",
                    self.tables[s.table].table_id, s.segment_id
                )
            })
    }
}

/// A data directory with every case the `milvus1` source must handle: collection `books`
/// (float, dim 8, L2) with its own segments and two partitions (`p2023`, `p2024`), deletes that
/// are unsorted, repeated, interior and trailing, an all-deleted segment, a BACKUP + INDEX pair,
/// in-flight NEW and TO_DELETE segments, a dropped partition; collection `codes` (binary, 64
/// bits, HAMMING) with a partition; and a dropped collection `old`.
pub fn standard(seed: u64) -> Milvus1Gen {
    let mut g = Milvus1Gen::new(seed);
    let books = g.collection("books", 8, Metric::L2);
    g.segment(books, 50, &[], FileType::Raw);
    g.segment(books, 40, &[7, 3, 7, 39, 20, 3], FileType::ToIndex);
    g.segment(books, 30, &[0, 1, 2], FileType::Backup);
    g.segment(books, 25, &[], FileType::New);
    g.segment(books, 25, &[], FileType::ToDelete);
    let p23 = g.partition(books, "p2023");
    g.segment(p23, 33, &[32, 0, 16], FileType::Raw);
    g.segment(p23, 5, &[4, 3, 2, 1, 0], FileType::Raw);
    let p24 = g.partition(books, "p2024");
    g.segment(p24, 21, &[5], FileType::Backup);
    let gone = g.dropped_partition(books, "p2019");
    g.segment(gone, 10, &[], FileType::Raw);
    let codes = g.collection("codes", 64, Metric::Hamming);
    g.segment(codes, 30, &[29, 10], FileType::Raw);
    let cp = g.partition(codes, "hot");
    g.segment(cp, 12, &[], FileType::ToIndex);
    let old = g.dropped_collection("old", 8, Metric::Ip);
    g.segment(old, 10, &[], FileType::Raw);
    g
}
