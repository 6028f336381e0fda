//! Connections: parsing the store's URL, the three pools, the few SQL dialect differences, and
//! turning database errors into [`vmig_core::Error`]s that never hold a password.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlRow};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::Row as _;
use vmig_core::{redact, Error, Result};

/// The schemes [`crate::StateStore::open`] accepts, for messages.
pub(crate) const ACCEPTED: &str =
    "sqlite://PATH, mysql://…, mariadb://…, postgres://… or postgresql://…";

/// How long an SQLite connection waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections per pool: the store does one short transaction at a time per caller.
const MAX_CONNECTIONS: u32 = 4;

/// How long to wait for a pooled connection (or a new one) before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// Which database the store is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// SQLite through a local file.
    Sqlite,
    /// MySQL or MariaDB.
    MySql,
    /// PostgreSQL.
    Postgres,
}

impl Backend {
    /// The name shown in `Debug`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::MySql => "mysql",
            Backend::Postgres => "postgres",
        }
    }

    /// `sql` with its `?` placeholders numbered (`$1`, `$2`, …) for PostgreSQL; unchanged for
    /// the others. The store's SQL never holds a `?` in a literal.
    pub(crate) fn sql(self, sql: &str) -> Cow<'_, str> {
        if self != Backend::Postgres {
            return Cow::Borrowed(sql);
        }
        let mut out = String::with_capacity(sql.len() + 8);
        let mut n = 0;
        for c in sql.chars() {
            if c == '?' {
                n += 1;
                let _ = write!(out, "${n}");
            } else {
                out.push(c);
            }
        }
        Cow::Owned(out)
    }

    /// What ends a `SELECT` that must lock the rows it reads until the transaction ends, so a
    /// transaction reads the latest committed rows and nobody changes them before it commits.
    /// Empty for SQLite, whose write transactions (`BEGIN IMMEDIATE`) lock the whole database.
    pub(crate) fn for_update(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::MySql | Backend::Postgres => " FOR UPDATE",
        }
    }

    /// `INSERT` of a job row that updates the row when the name exists; `updated_at` changes
    /// only when something in the row does.
    pub(crate) fn upsert_job(self) -> Cow<'static, str> {
        const INSERT: &str = "INSERT INTO vmig_jobs \
            (name, fingerprint, source_fp, transforms_fp, sink_fp, job, created_at, updated_at) \
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
        let (new, old, on) = match self {
            Backend::MySql => ("VALUES(", ")", " ON DUPLICATE KEY UPDATE "),
            Backend::Sqlite | Backend::Postgres => {
                ("excluded.", "", " ON CONFLICT (name) DO UPDATE SET ")
            }
        };
        let column = |c: &str| format!("{new}{c}{old}");
        let same = [
            "fingerprint",
            "source_fp",
            "transforms_fp",
            "sink_fp",
            "job",
        ]
        .iter()
        .map(|c| format!("vmig_jobs.{c} = {}", column(c)))
        .collect::<Vec<_>>()
        .join(" AND ");
        // MySQL applies the assignments left to right, each seeing the ones before: compare
        // first, then overwrite.
        let mut sql = format!(
            "{INSERT}{on}updated_at = CASE WHEN {same} THEN vmig_jobs.updated_at ELSE {} END",
            column("updated_at")
        );
        for c in [
            "fingerprint",
            "source_fp",
            "transforms_fp",
            "sink_fp",
            "job",
        ] {
            let _ = write!(sql, ", {c} = {}", column(c));
        }
        Cow::Owned(self.sql(&sql).into_owned())
    }

    /// A DDL template with its dialect holes filled: `{text}` is the type of unbounded text
    /// (`LONGTEXT` on MySQL, whose `TEXT` stops at 64 KiB) and `{table}` ends a `CREATE TABLE`
    /// (InnoDB, `utf8mb4` and a binary collation on MySQL, so names compare exactly as in the
    /// other two); `{add_column}` starts an `ALTER TABLE`'s new column (`IF NOT EXISTS` where
    /// the database has it).
    pub(crate) fn ddl(self, template: &str) -> String {
        let (text, table) = match self {
            Backend::MySql => (
                "LONGTEXT",
                " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
            ),
            Backend::Sqlite | Backend::Postgres => ("TEXT", ""),
        };
        // SQLite and MySQL have no `ADD COLUMN IF NOT EXISTS`: the migrator takes their
        // "duplicate column" error as the column already added.
        let add_column = match self {
            Backend::Postgres => "ADD COLUMN IF NOT EXISTS",
            Backend::Sqlite | Backend::MySql => "ADD COLUMN",
        };
        template
            .replace("{text}", text)
            .replace("{table}", table)
            .replace("{add_column}", add_column)
    }
}

/// The pool of one of the three databases. Every query is written once and run on whichever
/// pool this is through [`on_pool!`].
#[derive(Clone)]
pub(crate) enum Pool {
    /// SQLite.
    Sqlite(SqlitePool),
    /// MySQL or MariaDB.
    MySql(MySqlPool),
    /// PostgreSQL.
    Postgres(PgPool),
}

/// Runs `$body` with `$p` bound to the pool of whichever database `$pool` is: the body is
/// compiled once per driver, so it may use any type all three drivers encode and decode.
macro_rules! on_pool {
    ($pool:expr, |$p:ident| $body:expr) => {
        match $pool {
            $crate::db::Pool::Sqlite($p) => $body,
            $crate::db::Pool::MySql($p) => $body,
            $crate::db::Pool::Postgres($p) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Runs the statement `$sql` (`?` placeholders, see [`Backend::sql`]) with the values `$bind`
/// in order inside a transaction (`$tx`), `?`-propagating its error; gives the driver's result.
macro_rules! execute {
    ($backend:expr, $tx:expr, $sql:expr $(, $bind:expr)* $(,)?) => {
        sqlx::query(&$backend.sql($sql))
            $(.bind($bind))*
            .execute(&mut *$tx)
            .await?
    };
}
pub(crate) use execute;

/// Begins a transaction that will write: `BEGIN IMMEDIATE` on SQLite, so it takes the write
/// lock at once (and waits for it under the busy timeout) instead of failing when it upgrades a
/// read lock later; a plain `BEGIN` elsewhere, where rows are locked by `SELECT … FOR UPDATE`.
pub(crate) async fn begin_write<DB: sqlx::Database>(
    pool: &sqlx::Pool<DB>,
    backend: Backend,
) -> std::result::Result<sqlx::Transaction<'static, DB>, sqlx::Error> {
    if backend == Backend::Sqlite {
        pool.begin_with("BEGIN IMMEDIATE").await
    } else {
        pool.begin().await
    }
}

/// Reading columns the same way from the rows of all three drivers.
pub(crate) trait RowExt {
    /// A text column.
    fn text(&self, column: &str) -> std::result::Result<String, sqlx::Error>;
    /// A nullable text column.
    fn opt_text(&self, column: &str) -> std::result::Result<Option<String>, sqlx::Error>;
    /// A `BIGINT` column.
    fn int(&self, column: &str) -> std::result::Result<i64, sqlx::Error>;
    /// A nullable `BIGINT` column.
    fn opt_int(&self, column: &str) -> std::result::Result<Option<i64>, sqlx::Error>;
}

macro_rules! row_ext_ints {
    () => {
        fn int(&self, column: &str) -> std::result::Result<i64, sqlx::Error> {
            self.try_get(column)
        }
        fn opt_int(&self, column: &str) -> std::result::Result<Option<i64>, sqlx::Error> {
            self.try_get(column)
        }
    };
}

impl RowExt for SqliteRow {
    fn text(&self, column: &str) -> std::result::Result<String, sqlx::Error> {
        self.try_get(column)
    }
    fn opt_text(&self, column: &str) -> std::result::Result<Option<String>, sqlx::Error> {
        self.try_get(column)
    }
    row_ext_ints!();
}

impl RowExt for PgRow {
    fn text(&self, column: &str) -> std::result::Result<String, sqlx::Error> {
        self.try_get(column)
    }
    fn opt_text(&self, column: &str) -> std::result::Result<Option<String>, sqlx::Error> {
        self.try_get(column)
    }
    row_ext_ints!();
}

/// MySQL flags columns of a binary collation (`utf8mb4_bin`, which the store's tables use) as
/// binary, and sqlx then refuses to decode them as `String`: read the bytes and check they are
/// UTF-8.
impl RowExt for MySqlRow {
    fn text(&self, column: &str) -> std::result::Result<String, sqlx::Error> {
        utf8(column, self.try_get(column)?)
    }
    fn opt_text(&self, column: &str) -> std::result::Result<Option<String>, sqlx::Error> {
        let bytes: Option<Vec<u8>> = self.try_get(column)?;
        bytes.map(|b| utf8(column, b)).transpose()
    }
    row_ext_ints!();
}

fn utf8(column: &str, bytes: Vec<u8>) -> std::result::Result<String, sqlx::Error> {
    String::from_utf8(bytes).map_err(|e| sqlx::Error::ColumnDecode {
        index: column.to_string(),
        source: Box::new(e),
    })
}

/// Where a store is, as parsed from its URL.
#[derive(Clone)]
pub(crate) enum Target {
    /// An SQLite file (absolute, or relative to the current directory when `base_dir` was).
    Sqlite(PathBuf),
    /// A MySQL or MariaDB server.
    MySql(Box<MySqlConnectOptions>),
    /// A PostgreSQL server.
    Postgres(Box<PgConnectOptions>),
}

/// The passwords of one URL, masked in every message about it — also those shorter than
/// [`redact::MIN_SECRET_LEN`], which the process-wide registry skips.
#[derive(Default)]
pub(crate) struct Secrets(Vec<String>);

impl Secrets {
    /// The password of `url` (as written and percent-decoded), if it has one.
    pub(crate) fn of(url: &str) -> Secrets {
        let (_, userinfo) = redact::split_userinfo(url);
        let Some((_, password)) = userinfo.and_then(|u| u.split_once(':')) else {
            return Secrets::default();
        };
        let decoded = percent_decode(password);
        let mut all: Vec<String> = [password.to_string(), decoded]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect();
        all.sort_by_key(|p| std::cmp::Reverse(p.len()));
        all.dedup();
        Secrets(all)
    }

    /// `text` with URL user-infos, registered secrets and these passwords masked.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut out = redact::text(text);
        for secret in &self.0 {
            out = out.replace(secret.as_str(), redact::MASK);
        }
        out
    }
}

/// `%XX` escapes decoded (invalid ones kept as written), for finding a password in messages.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let value = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a state store URL: the target and its location for messages (the URL without its
/// user-info; for SQLite, `sqlite://` and the resolved path).
///
/// # Errors
/// [`Error::Config`] for another scheme (naming the accepted ones), an SQLite URL without a
/// path, or a server URL its driver refuses.
pub(crate) fn parse(url: &str, base_dir: &Path, secrets: &Secrets) -> Result<(Target, String)> {
    let scheme = url
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase())
        .unwrap_or_default();
    let shown = redact::url(url);
    let invalid = |what: &str, e: sqlx::Error| {
        Error::config(
            "state",
            format!(
                "{} is not a valid {what} URL: {}",
                secrets.scrub(&shown),
                secrets.scrub(&e.to_string())
            ),
        )
    };
    match scheme.as_str() {
        "sqlite" => {
            let path = &url["sqlite://".len()..];
            if path.is_empty() {
                return Err(Error::config(
                    "state",
                    format!("{shown} names no file: write sqlite://PATH (relative to the job file's directory) or sqlite:///ABSOLUTE/PATH"),
                ));
            }
            let path = base_dir.join(path);
            let location = format!("sqlite://{}", path.display());
            Ok((Target::Sqlite(path), location))
        }
        "mysql" | "mariadb" => {
            let rewritten = format!("mysql{}", &url[scheme.len()..]);
            let options =
                MySqlConnectOptions::from_str(&rewritten).map_err(|e| invalid("MySQL", e))?;
            Ok((Target::MySql(Box::new(options)), shown))
        }
        "postgres" | "postgresql" => {
            let options = PgConnectOptions::from_str(url).map_err(|e| invalid("PostgreSQL", e))?;
            Ok((Target::Postgres(Box::new(options)), shown))
        }
        _ => Err(Error::config(
            "state",
            format!(
                "{} is not a state store URL: use {ACCEPTED}",
                secrets.scrub(&shown)
            ),
        )),
    }
}

/// A pool for `target`, creating the directories of an SQLite file. It connects lazily: the
/// first connection is the migration's ([`crate::schema::migrate`]), made directly so that an
/// unreachable server fails at once instead of being retried until the acquire timeout.
///
/// SQLite runs in WAL mode with `synchronous = FULL` (see the crate docs), a busy timeout and
/// foreign keys on; the file is created when missing.
pub(crate) async fn connect(target: Target) -> std::result::Result<Pool, Failure> {
    match target {
        Target::Sqlite(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                tokio::fs::create_dir_all(parent).await.map_err(|e| {
                    Failure::Vmig(
                        Error::Io(e).context(format!("creating directory {}", parent.display())),
                    )
                })?;
            }
            let options = SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(BUSY_TIMEOUT)
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(MAX_CONNECTIONS)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .before_acquire(|conn, _| Box::pin(async move { Ok(outside_transaction(conn)) }))
                .connect_lazy_with(options);
            Ok(Pool::Sqlite(pool))
        }
        Target::MySql(options) => {
            let pool = MySqlPoolOptions::new()
                .max_connections(MAX_CONNECTIONS)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .before_acquire(|conn, _| Box::pin(async move { Ok(outside_transaction(conn)) }))
                .connect_lazy_with(*options);
            Ok(Pool::MySql(pool))
        }
        Target::Postgres(options) => {
            let pool = PgPoolOptions::new()
                .max_connections(MAX_CONNECTIONS)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .before_acquire(|conn, _| Box::pin(async move { Ok(outside_transaction(conn)) }))
                .connect_lazy_with(*options);
            Ok(Pool::Postgres(pool))
        }
    }
}

/// Whether a pooled connection may be handed out: not when it is still inside a transaction.
/// A store call cancelled (a task aborted, a worker stopped) just after the database began its
/// transaction and before sqlx wrapped it can leave the connection there, and the next `BEGIN`
/// on it would fail ("attempted to call begin_with at non-zero transaction depth"); such a
/// connection is closed instead (closing rolls the transaction back) and another one is used.
fn outside_transaction(conn: &impl sqlx::Connection) -> bool {
    !conn.is_in_transaction()
}

/// What went wrong inside a store operation: a database error (worded by [`db_error`] once the
/// operation is known) or an error already worded for the user.
#[derive(Debug)]
pub(crate) enum Failure {
    /// From the driver.
    Db(sqlx::Error),
    /// Already a vmig error.
    Vmig(Error),
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Failure::Db(e)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Vmig(e)
    }
}

/// A database error's message, kept as the source of an [`Error::External`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct DatabaseError(String);

/// `failure` as a vmig error saying what was being done in which store: transient when the
/// database says trying again may work (lost connection, lock timeout, deadlock, SQLite busy).
pub(crate) fn db_error(location: &str, doing: &str, failure: Failure, secrets: &Secrets) -> Error {
    let e = match failure {
        Failure::Vmig(e) => return e,
        Failure::Db(e) => e,
    };
    let message = secrets.scrub(&e.to_string());
    let inner = if is_transient(&e) {
        Error::Transient {
            message,
            source: None,
        }
    } else {
        Error::External(Box::new(DatabaseError(message)))
    };
    inner.context(format!("{doing} in state store {location}"))
}

/// Whether trying again may succeed.
fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with any extended code.
                let code = db.code().and_then(|c| c.parse::<i32>().ok());
                return code.is_some_and(|c| matches!(c & 0xff, 5 | 6));
            }
            if let Some(mysql) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
                // ER_LOCK_WAIT_TIMEOUT, ER_LOCK_DEADLOCK.
                return matches!(mysql.number(), 1205 | 1213);
            }
            // PostgreSQL: serialization failure, deadlock, lock not available.
            matches!(db.code().as_deref(), Some("40001" | "40P01" | "55P03"))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_placeholders_are_numbered() {
        assert_eq!(
            Backend::Postgres.sql("a = ? AND b = ?"),
            "a = $1 AND b = $2"
        );
        assert_eq!(Backend::MySql.sql("a = ?"), "a = ?");
        assert_eq!(Backend::Sqlite.sql("a = ?"), "a = ?");
    }

    #[test]
    fn the_job_upsert_compares_before_it_overwrites() {
        let mysql = Backend::MySql.upsert_job();
        assert!(
            mysql.contains(" ON DUPLICATE KEY UPDATE updated_at = CASE WHEN vmig_jobs.fingerprint = VALUES(fingerprint) AND"),
            "{mysql}"
        );
        assert!(mysql.ends_with(", job = VALUES(job)"), "{mysql}");
        let pg = Backend::Postgres.upsert_job();
        assert!(pg.contains("VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (name) DO UPDATE SET updated_at = CASE WHEN vmig_jobs.fingerprint = excluded.fingerprint AND"), "{pg}");
        assert!(pg.ends_with(", job = excluded.job"), "{pg}");
    }

    #[test]
    fn secrets_are_masked_as_written_and_decoded() {
        let s = Secrets::of("mysql://u:p%40ss-w0rd@h/db");
        assert_eq!(s.scrub("x p%40ss-w0rd y p@ss-w0rd z"), "x *** y *** z");
        assert_eq!(Secrets::of("mysql://u@h/db").scrub("u h"), "u h");
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
    }
}
