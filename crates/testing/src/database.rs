//! A fresh database on the shared test MariaDB or PostgreSQL server, for one test: created with a
//! unique name, dropped by [`TempDatabase::drop_now`] (a test that panics before leaves it: its
//! name says which test run made it).

use sqlx::Connection;

use crate::service::unique;

/// Which server a [`TempDatabase`] lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    MariaDb,
    Postgres,
}

/// A database created for one test.
#[derive(Debug)]
pub struct TempDatabase {
    /// Its URL, with the credentials of the server URL it was made from.
    pub url: String,
    base: String,
    name: String,
    server: Server,
}

impl TempDatabase {
    /// Creates database `{prefix}_{pid}_{nanos}` on the server of `base` (`mysql://…`,
    /// `mariadb://…`, `postgres://…` or `postgresql://…`, as `VMIG_MARIADB_URL` and
    /// `VMIG_POSTGRES_URL` give them).
    ///
    /// # Panics
    /// When the URL is of another kind or the database cannot be created: the test fails there.
    pub async fn create(base: &str, prefix: &str) -> TempDatabase {
        let server = if base.starts_with("mysql://") || base.starts_with("mariadb://") {
            Server::MariaDb
        } else if base.starts_with("postgres://") || base.starts_with("postgresql://") {
            Server::Postgres
        } else {
            panic!("not a MariaDB or PostgreSQL URL: {base}")
        };
        let name = unique(prefix).to_lowercase();
        let base = base.replacen("mariadb://", "mysql://", 1);
        let create = match server {
            Server::MariaDb => format!("CREATE DATABASE `{name}`"),
            Server::Postgres => format!("CREATE DATABASE \"{name}\""),
        };
        execute(server, &base, &create).await;
        let mut url = url::Url::parse(&base).unwrap_or_else(|e| panic!("{base}: {e}"));
        url.set_path(&format!("/{name}"));
        TempDatabase {
            url: url.to_string(),
            base,
            name,
            server,
        }
    }

    /// Drops the database (PostgreSQL: with any connection still open to it).
    ///
    /// # Panics
    /// When the server refuses.
    pub async fn drop_now(self) {
        let drop = match self.server {
            Server::MariaDb => format!("DROP DATABASE `{}`", self.name),
            Server::Postgres => format!("DROP DATABASE \"{}\" WITH (FORCE)", self.name),
        };
        execute(self.server, &self.base, &drop).await;
    }
}

async fn execute(server: Server, base: &str, statement: &str) {
    let done = match server {
        Server::MariaDb => match sqlx::MySqlConnection::connect(base).await {
            Ok(mut c) => sqlx::query(statement).execute(&mut c).await.map(|_| ()),
            Err(e) => Err(e),
        },
        Server::Postgres => match sqlx::PgConnection::connect(base).await {
            Ok(mut c) => sqlx::query(statement).execute(&mut c).await.map(|_| ()),
            Err(e) => Err(e),
        },
    };
    if let Err(e) = done {
        panic!("{statement}: {e}");
    }
}
