//! Jobs submitted to a long-running front end (`vmig serve`), kept so that a restarted server
//! knows them again: the job as it was sent, what the server made of it (its plan, its state,
//! its error) and, for a verification, its report. Schema version 4.
//!
//! A submission is the server's record, not the job's progress: that stays in the job, run and
//! checkpoint tables, which the submission names by its `name`. Forgetting a submission
//! ([`StateStore::forget_submission`]) leaves the job's runs and checkpoint where they are.

use std::time::SystemTime;

use vmig_core::Result;

use crate::db::{begin_write, execute, on_pool, Failure, RowExt as _};
use crate::{now_millis, time, truncate, StateStore, MAX_ERROR_BYTES};

/// A job as a front end received it, and what became of it there.
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    /// The job's name (its id in the front end and in the job tables).
    pub name: String,
    /// Its place in the order of submissions (1, 2, …; larger is later). Set by
    /// [`StateStore::submit`]; ignored when saving.
    pub seq: i64,
    /// What the front end runs it as (`migrate`, `verify`, …: the front end's own words).
    pub kind: String,
    /// For a job about another job (a verification): that job's name.
    pub of: Option<String>,
    /// The job's text format (`json`, `toml`, `yaml`).
    pub format: String,
    /// The job as it was sent. It holds whatever the sender wrote into it, secrets included:
    /// the store is as sensitive as job files are.
    pub body: String,
    /// The front end's state of the job (its own words, e.g. `queued`, `running`, `done`).
    pub status: String,
    /// Why it stopped, when it failed (cut to 60 000 bytes).
    pub error: Option<String>,
    /// The plan the front end showed when it accepted the job (JSON text).
    pub plan: Option<String>,
    /// A result the front end keeps (a verification's report, JSON text).
    pub report: Option<String>,
    /// When it was submitted.
    pub submitted_at: SystemTime,
    /// When the row last changed.
    pub updated_at: SystemTime,
}

const COLUMNS: &str =
    "name, seq, kind, of_job, format, body, status, error, plan, report, submitted_at, updated_at";

impl StateStore {
    /// Records `submission` as the latest one: a new row at the end of the order, replacing an
    /// earlier submission of the same name. Returns it with its `seq`.
    ///
    /// # Errors
    /// Any database error.
    pub async fn submit(&self, submission: &Submission) -> Result<Submission> {
        let backend = self.backend;
        let now = now_millis();
        let s = submission;
        let error = s.error.as_deref().map(|e| truncate(e, MAX_ERROR_BYTES));
        let insert = format!(
            "INSERT INTO vmig_submissions ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        );
        let saved: std::result::Result<i64, Failure> = on_pool!(&self.pool, |pool| async {
            let mut tx = begin_write(pool, backend).await?;
            let last = sqlx::query("SELECT MAX(seq) AS seq FROM vmig_submissions")
                .fetch_one(&mut *tx)
                .await?
                .opt_int("seq")?;
            let seq = last.unwrap_or(0) + 1;
            execute!(
                backend,
                tx,
                "DELETE FROM vmig_submissions WHERE name = ?",
                &s.name
            );
            execute!(
                backend,
                tx,
                &insert,
                &s.name,
                seq,
                &s.kind,
                s.of.as_deref(),
                &s.format,
                &s.body,
                &s.status,
                error.as_deref(),
                s.plan.as_deref(),
                s.report.as_deref(),
                now,
                now,
            );
            tx.commit().await?;
            Ok(seq)
        }
        .await);
        let seq =
            saved.map_err(|f| self.fail(&format!("recording submitted job `{}`", s.name), f))?;
        Ok(Submission {
            seq,
            error,
            submitted_at: time(now),
            updated_at: time(now),
            ..s.clone()
        })
    }

    /// Sets the state of submission `name` (and its error, or none); `report` when given.
    /// Returns whether there was such a submission.
    ///
    /// # Errors
    /// Any database error.
    pub async fn set_submission_status(
        &self,
        name: &str,
        status: &str,
        error: Option<&str>,
        report: Option<&str>,
    ) -> Result<bool> {
        let backend = self.backend;
        let error = error.map(|e| truncate(e, MAX_ERROR_BYTES));
        let updated: std::result::Result<u64, Failure> = on_pool!(&self.pool, |pool| async {
            let mut tx = begin_write(pool, backend).await?;
            let done = execute!(
                backend,
                tx,
                "UPDATE vmig_submissions SET status = ?, error = ?, \
                 report = COALESCE(?, report), updated_at = ? WHERE name = ?",
                status,
                error.as_deref(),
                report,
                now_millis(),
                name,
            );
            tx.commit().await?;
            Ok(done.rows_affected())
        }
        .await);
        updated
            .map(|n| n > 0)
            .map_err(|f| self.fail(&format!("recording the state of submitted job `{name}`"), f))
    }

    /// Every submission, in the order they were made.
    ///
    /// # Errors
    /// Any database error.
    pub async fn submissions(&self) -> Result<Vec<Submission>> {
        let backend = self.backend;
        let select = format!("SELECT {COLUMNS} FROM vmig_submissions ORDER BY seq");
        let found: std::result::Result<Vec<Submission>, Failure> =
            on_pool!(&self.pool, |pool| async {
                let rows = sqlx::query(&backend.sql(&select)).fetch_all(pool).await?;
                rows.iter()
                    .map(|row| {
                        Ok(Submission {
                            name: row.text("name")?,
                            seq: row.int("seq")?,
                            kind: row.text("kind")?,
                            of: row.opt_text("of_job")?,
                            format: row.text("format")?,
                            body: row.text("body")?,
                            status: row.text("status")?,
                            error: row.opt_text("error")?,
                            plan: row.opt_text("plan")?,
                            report: row.opt_text("report")?,
                            submitted_at: time(row.int("submitted_at")?),
                            updated_at: time(row.int("updated_at")?),
                        })
                    })
                    .collect::<std::result::Result<Vec<_>, Failure>>()
            }
            .await);
        found.map_err(|f| self.fail("reading the submitted jobs", f))
    }

    /// Forgets submission `name` (the job's runs and checkpoint stay). Returns whether there
    /// was one.
    ///
    /// # Errors
    /// Any database error.
    pub async fn forget_submission(&self, name: &str) -> Result<bool> {
        let backend = self.backend;
        let deleted: std::result::Result<u64, Failure> = on_pool!(&self.pool, |pool| async {
            let mut tx = begin_write(pool, backend).await?;
            let done = execute!(
                backend,
                tx,
                "DELETE FROM vmig_submissions WHERE name = ?",
                name
            );
            tx.commit().await?;
            Ok(done.rows_affected())
        }
        .await);
        deleted
            .map(|n| n > 0)
            .map_err(|f| self.fail(&format!("forgetting submitted job `{name}`"), f))
    }
}
