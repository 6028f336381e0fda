//! A PostgreSQL server of one test's own: a fresh cluster (`initdb`) in a temporary directory,
//! on a port the test chooses, that the test may stop, restart or configure for TLS — which the
//! shared server of `scripts/postgres` must never be.
//!
//! It uses the binaries `scripts/postgres` installs (`/usr/lib/postgresql/15/bin`, or
//! `VMIG_PG_BIN`), with pgvector installed into them, so `CREATE EXTENSION vector` works here
//! too. Trust authentication on loopback; under root the server runs as the `postgres` user (it
//! refuses root), as `scripts/postgres` does.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A test's own PostgreSQL server; stopped (immediately) and deleted when dropped.
#[derive(Debug)]
pub struct PgServer {
    dir: PathBuf,
    port: u16,
    runas: Option<String>,
    bin: PathBuf,
}

fn bin_dir() -> PathBuf {
    std::env::var("VMIG_PG_BIN").map_or_else(
        |_| PathBuf::from("/usr/lib/postgresql/15/bin"),
        PathBuf::from,
    )
}

impl PgServer {
    /// Creates a cluster and starts it on `127.0.0.1:port`, with `settings` added to its
    /// `postgresql.conf` (e.g. `("ssl", "on")`) and `files` written into its data directory,
    /// readable by the server only (e.g. `server.key`). Returns `None` after a loud `SKIPPED`
    /// line when the PostgreSQL binaries are missing (fails when `CI=true`).
    ///
    /// # Panics
    /// When `initdb` or the start fails (the server log is in the message).
    pub fn start(port: u16, settings: &[(&str, &str)], files: &[(&str, &[u8])]) -> Option<Self> {
        let bin = bin_dir();
        if !bin.join("initdb").exists() {
            if crate::service::is_ci() {
                panic!(
                    "{} has no initdb but CI=true: run scripts/postgres install",
                    bin.display()
                );
            }
            eprintln!(
                "SKIPPED: no PostgreSQL binaries in {} (scripts/postgres install)",
                bin.display()
            );
            return None;
        }
        let runas = is_root().then(|| "postgres".to_string());
        let dir = std::env::temp_dir().join(crate::service::unique("vmig_pg"));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let server = PgServer {
            dir,
            port,
            runas,
            bin,
        };
        if let Some(user) = &server.runas {
            run(Command::new("chown").arg(user).arg(&server.dir));
        }
        let data = server.data();
        server.as_server(
            "initdb",
            &[
                "-D",
                path_str(&data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        );
        let mut conf = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n",
            server.dir.display()
        );
        for (k, v) in settings {
            conf.push_str(&format!("{k} = '{v}'\n"));
        }
        append(&data.join("postgresql.conf"), &conf);
        for (name, bytes) in files {
            let path = data.join(name);
            std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            run(Command::new("chmod").arg("600").arg(&path));
            if let Some(user) = &server.runas {
                run(Command::new("chown").arg(user).arg(&path));
            }
        }
        server.start_again();
        Some(server)
    }

    /// `postgres://postgres@127.0.0.1:PORT/DATABASE`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs `sql` with `psql` in `database` (stopping at the first error).
    ///
    /// # Panics
    /// When psql fails (its output is in the message).
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let o = Command::new(self.bin.join("psql"))
            .args([self.url(database).as_str(), "-v", "ON_ERROR_STOP=1", "-qAt"])
            .args(["-c", sql])
            .output()
            .unwrap_or_else(|e| panic!("psql: {e}"));
        assert!(
            o.status.success(),
            "psql: {}",
            crate::process::output_text(&o)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Stops the server (`pg_ctl stop -m fast`: open sessions are terminated).
    ///
    /// # Panics
    /// When pg_ctl fails.
    pub fn stop(&self) {
        let data = self.data();
        self.as_server(
            "pg_ctl",
            &[
                "-D",
                path_str(&data),
                "-m",
                "fast",
                "-w",
                "-t",
                "60",
                "stop",
            ],
        );
    }

    /// Starts the (stopped) server again and waits until it accepts connections.
    ///
    /// # Panics
    /// When it does not start (the end of its log is in the message).
    pub fn start_again(&self) {
        let data = self.data();
        let log = self.dir.join("server.log");
        let o = self.command(
            "pg_ctl",
            &[
                "-D",
                path_str(&data),
                "-l",
                path_str(&log),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        if !o.status.success() {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            panic!(
                "the test PostgreSQL on port {} did not start: {}\nlog:\n{log}",
                self.port,
                crate::process::output_text(&o)
            );
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn command(&self, program: &str, args: &[&str]) -> Output {
        let exe = self.bin.join(program);
        let mut c = match &self.runas {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        c.args(args)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"))
    }

    fn as_server(&self, program: &str, args: &[&str]) {
        let o = self.command(program, args);
        assert!(
            o.status.success(),
            "{program}: {}",
            crate::process::output_text(&o)
        );
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self.command(
            "pg_ctl",
            &["-D", path_str(&data), "-m", "immediate", "stop"],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    f.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn run(c: &mut Command) {
    let o = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    assert!(
        o.status.success(),
        "{c:?}: {}",
        crate::process::output_text(&o)
    );
}
