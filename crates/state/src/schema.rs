//! The store's tables and the migrations that create them (see the crate docs for the rules).

use vmig_core::Error;

use crate::db::{on_pool, Backend, Failure, Pool, RowExt as _};

/// The schema version this build of vmig writes and understands. A database at a higher
/// version was written by a newer vmig and is refused.
pub const SCHEMA_VERSION: i64 = 4;

/// The table holding the schema version: one row, `id = 1`. Created before anything else, by
/// every version of vmig, so it can never change shape.
const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS vmig_state_version (\
    id BIGINT NOT NULL PRIMARY KEY, \
    version BIGINT NOT NULL)\
    {table}";

/// The migrations, in order: `MIGRATIONS[i]` takes a database from version `i` to `i + 1`.
///
/// A released migration is never edited (a test pins migration 1's text): a change to the
/// schema is a new migration. Statements are DDL templates for [`Backend::ddl`], and every
/// one MUST be idempotent (`IF NOT EXISTS`, or guarded), because MySQL commits each DDL
/// statement on its own: a migration cut short there is run again from its first statement.
pub(crate) const MIGRATIONS: &[&[&str]] = &[
    &[
        // One row per job name: the identity of the job as last recorded by `start_run`.
        "CREATE TABLE IF NOT EXISTS vmig_jobs (\
        name VARCHAR(255) NOT NULL PRIMARY KEY, \
        fingerprint VARCHAR(64) NOT NULL, \
        source_fp VARCHAR(64) NOT NULL, \
        transforms_fp VARCHAR(64) NOT NULL, \
        sink_fp VARCHAR(64) NOT NULL, \
        job {text} NOT NULL, \
        created_at BIGINT NOT NULL, \
        updated_at BIGINT NOT NULL)\
        {table}",
        // One row per run; `seq` numbers a job's runs from 1 and orders them.
        "CREATE TABLE IF NOT EXISTS vmig_runs (\
        id VARCHAR(36) NOT NULL PRIMARY KEY, \
        job_name VARCHAR(255) NOT NULL, \
        seq BIGINT NOT NULL, \
        fingerprint VARCHAR(64) NOT NULL, \
        status VARCHAR(16) NOT NULL, \
        started_at BIGINT NOT NULL, \
        ended_at BIGINT NULL, \
        error {text} NULL, \
        resumed BIGINT NOT NULL, \
        host VARCHAR(255) NOT NULL, \
        pid BIGINT NOT NULL, \
        UNIQUE (job_name, seq), \
        FOREIGN KEY (job_name) REFERENCES vmig_jobs (name))\
        {table}",
        // The checkpoint's header: present when the job has a saved checkpoint.
        "CREATE TABLE IF NOT EXISTS vmig_checkpoints (\
        job_name VARCHAR(255) NOT NULL PRIMARY KEY, \
        fingerprint VARCHAR(64) NOT NULL, \
        sink {text} NULL, \
        saved_at BIGINT NOT NULL, \
        FOREIGN KEY (job_name) REFERENCES vmig_jobs (name))\
        {table}",
        // One row per partition of a saved checkpoint.
        "CREATE TABLE IF NOT EXISTS vmig_partitions (\
        job_name VARCHAR(255) NOT NULL, \
        part_key VARCHAR(64) NOT NULL, \
        partition_id {text} NOT NULL, \
        state VARCHAR(16) NULL, \
        position {text} NULL, \
        rows_read BIGINT NULL, \
        rows_written BIGINT NULL, \
        unconfirmed BIGINT NULL, \
        PRIMARY KEY (job_name, part_key), \
        FOREIGN KEY (job_name) REFERENCES vmig_jobs (name))\
        {table}",
    ],
    &[
        // Migration 2: several workers on one job (leases). One row per unit of work a worker
        // claims: a partition (`kind = 'partition'`, `unit` its id) or a once-per-job step
        // (`kind = 'step'`: `setup`, `finish`). `owner` is the worker holding it until
        // `lease_until` (epoch ms); `done` is 1 once finished; `claims` counts claims (takeovers).
        "CREATE TABLE IF NOT EXISTS vmig_leases (\
        job_name VARCHAR(255) NOT NULL, \
        unit_key VARCHAR(64) NOT NULL, \
        kind VARCHAR(16) NOT NULL, \
        unit {text} NOT NULL, \
        owner VARCHAR(255) NULL, \
        lease_until BIGINT NOT NULL, \
        done BIGINT NOT NULL, \
        claims BIGINT NOT NULL, \
        PRIMARY KEY (job_name, unit_key), \
        FOREIGN KEY (job_name) REFERENCES vmig_jobs (name))\
        {table}",
        // One row per worker that joined a job: its run, where it runs, its own sink record and
        // when it last saved or renewed (`seen_at`).
        "CREATE TABLE IF NOT EXISTS vmig_workers (\
        job_name VARCHAR(255) NOT NULL, \
        worker VARCHAR(255) NOT NULL, \
        host VARCHAR(255) NOT NULL, \
        pid BIGINT NOT NULL, \
        sink {text} NULL, \
        started_at BIGINT NOT NULL, \
        seen_at BIGINT NOT NULL, \
        PRIMARY KEY (job_name, worker), \
        FOREIGN KEY (job_name) REFERENCES vmig_jobs (name))\
        {table}",
    ],
    &[
        // Migration 3: the bytes each partition's durable rows hold (Arrow's size of their
        // values); NULL for partitions saved before it, read as 0.
        "ALTER TABLE vmig_partitions {add_column} bytes_written BIGINT NULL",
    ],
    &[
        // Migration 4: jobs submitted to `vmig serve`, so a restarted server knows them. One
        // row per job name (no foreign key: a queued job may never have run); `seq` orders
        // them; `body` is the job as sent, `status` the server's word for where it is.
        "CREATE TABLE IF NOT EXISTS vmig_submissions (\
        name VARCHAR(255) NOT NULL PRIMARY KEY, \
        seq BIGINT NOT NULL, \
        kind VARCHAR(16) NOT NULL, \
        of_job VARCHAR(255) NULL, \
        format VARCHAR(8) NOT NULL, \
        body {text} NOT NULL, \
        status VARCHAR(16) NOT NULL, \
        error {text} NULL, \
        plan {text} NULL, \
        report {text} NULL, \
        submitted_at BIGINT NOT NULL, \
        updated_at BIGINT NOT NULL)\
        {table}",
    ],
];

/// The schema version this build migrates to: one per entry of [`MIGRATIONS`].
const _: () = assert!(MIGRATIONS.len() as i64 == SCHEMA_VERSION);

/// A PostgreSQL advisory lock key that serialises migrations ("vmig_sta" in ASCII).
const PG_LOCK: i64 = 0x766d_6967_5f73_7461;

/// Brings the database of `pool` to [`SCHEMA_VERSION`]; refuses a newer one.
///
/// One migrator at a time: a session lock (`GET_LOCK` on MySQL, an advisory lock on
/// PostgreSQL) held on one connection, and on SQLite the write lock of `BEGIN IMMEDIATE`. Each
/// run reads the version, applies the missing migrations and writes the new version in one
/// transaction, so on SQLite and PostgreSQL a crash leaves the old or the new schema; on MySQL
/// the DDL commits itself, the version is written last, and the idempotent statements are
/// simply applied again.
pub(crate) async fn migrate(
    pool: &Pool,
    backend: Backend,
    location: &str,
) -> std::result::Result<(), Failure> {
    on_pool!(pool, |pool| {
        use sqlx::{ConnectOptions as _, Connection as _};
        // A connection of its own, closed at the end: a failed migration drops it, which ends
        // the session and so releases the session lock whatever state it is in.
        let mut conn = pool.connect_options().connect().await?;
        match backend {
            Backend::MySql => {
                let row = sqlx::query(
                    "SELECT GET_LOCK(CONCAT('vmig_state_schema.', COALESCE(DATABASE(), '')), 300) AS got",
                )
                .fetch_one(&mut conn)
                .await?;
                if row.opt_int("got")? != Some(1) {
                    return Err(Failure::Vmig(Error::Transient {
                        message: format!(
                            "another vmig has been migrating the state store {location} for 5 minutes"
                        ),
                        source: None,
                    }));
                }
            }
            Backend::Postgres => {
                sqlx::query("SELECT pg_advisory_lock($1)")
                    .bind(PG_LOCK)
                    .execute(&mut conn)
                    .await?;
            }
            Backend::Sqlite => {}
        }
        let migrated = async {
            let mut tx = if backend == Backend::Sqlite {
                conn.begin_with("BEGIN IMMEDIATE").await?
            } else {
                conn.begin().await?
            };
            sqlx::query(&backend.ddl(VERSION_TABLE))
                .execute(&mut *tx)
                .await?;
            let select = format!(
                "SELECT version FROM vmig_state_version WHERE id = 1{}",
                backend.for_update()
            );
            let found = sqlx::query(&select).fetch_optional(&mut *tx).await?;
            let version = match &found {
                Some(row) => row.int("version")?,
                None => 0,
            };
            if version > SCHEMA_VERSION {
                return Err(Failure::Vmig(Error::unsupported(
                    location,
                    format!(
                        "its schema is version {version}, but this vmig knows versions up to \
                         {SCHEMA_VERSION}: a newer vmig wrote it; upgrade vmig to use this state store"
                    ),
                )));
            }
            let Ok(done) = usize::try_from(version) else {
                return Err(Failure::Vmig(Error::data(
                    location,
                    format!("vmig_state_version holds version {version}, which no vmig writes"),
                )));
            };
            for migration in &MIGRATIONS[done..] {
                for statement in *migration {
                    let applied = sqlx::query(&backend.ddl(statement))
                        .execute(&mut *tx)
                        .await;
                    match applied {
                        Ok(_) => {}
                        // MySQL and SQLite have no `ADD COLUMN IF NOT EXISTS`: a column an
                        // interrupted run of this migration already added (MySQL commits DDL
                        // by itself) or a lost version row left is the statement's guard.
                        Err(e) if is_duplicate_column(&e) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            if version < SCHEMA_VERSION {
                let write = if found.is_some() {
                    "UPDATE vmig_state_version SET version = ? WHERE id = 1"
                } else {
                    "INSERT INTO vmig_state_version (version, id) VALUES (?, 1)"
                };
                sqlx::query(&backend.sql(write))
                    .bind(SCHEMA_VERSION)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok::<(), Failure>(())
        }
        .await;
        migrated?;
        match backend {
            Backend::MySql => {
                sqlx::query(
                    "DO RELEASE_LOCK(CONCAT('vmig_state_schema.', COALESCE(DATABASE(), '')))",
                )
                .execute(&mut conn)
                .await?;
            }
            Backend::Postgres => {
                sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(PG_LOCK)
                    .execute(&mut conn)
                    .await?;
            }
            Backend::Sqlite => {}
        }
        conn.close().await?;
        Ok(())
    })
}

/// Whether `e` says the column to add exists: MySQL's error 1060 (SQLSTATE 42S21), SQLite's
/// "duplicate column name" (PostgreSQL's `ADD COLUMN IF NOT EXISTS` never raises it).
fn is_duplicate_column(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db)
        if db.code().as_deref() == Some("42S21")
            || db.message().starts_with("duplicate column name"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    /// Migration 1 is released: a database created by it must stay readable by every later
    /// vmig, so its text never changes. Change the schema with a new migration instead.
    #[test]
    fn migration_1_is_frozen() {
        let text = MIGRATIONS[0].join("\n");
        let digest = Sha256::digest(text.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex, "de7b450b2d437fe31c743450b35cfa3fde00f06123f2d69c2328100068339ab3",
            "migration 1 changed; add a migration instead of editing a released one"
        );
    }

    #[test]
    fn mysql_tables_are_innodb_utf8mb4_binary_with_long_text() {
        let ddl = Backend::MySql.ddl(MIGRATIONS[0][0]);
        assert!(ddl.contains("job LONGTEXT NOT NULL"), "{ddl}");
        assert!(
            ddl.ends_with(") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"),
            "{ddl}"
        );
        let ddl = Backend::Postgres.ddl(MIGRATIONS[0][0]);
        assert!(
            ddl.contains("job TEXT NOT NULL") && ddl.ends_with("updated_at BIGINT NOT NULL)"),
            "{ddl}"
        );
    }
}
