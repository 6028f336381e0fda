//! `vmig status JOB`: every run of a job and the progress saved for it, from the state store.

use vmig::checkpoint::CheckpointStore;
use vmig::checkpoint::PartitionState;
use vmig::config::Job;
use vmig::state::{RunRecord, RunStatus, StateStore};

use crate::jobstate;
use crate::output;
use crate::progress::human_bytes;

/// Prints the runs and saved progress of `job` (as JSON with `json`).
///
/// # Errors
/// When the store cannot be opened or read; `--state none`.
pub async fn print(job: Job, state: Option<String>, json: bool) -> anyhow::Result<()> {
    let Some(url) = jobstate::url(&job, state.as_deref()) else {
        return Err(vmig::Error::config(
            "state",
            "`vmig status` reads the state store; `--state none` has none",
        )
        .into());
    };
    let store = StateStore::open(&url, &job.ctx.base_dir).await?;
    let name = &job.name;
    let saved = store.job(name).await?;
    let runs = store.runs(name).await?;
    let checkpoint = store.checkpoints(name).load().await?;
    let workers = store.workers(name).await?;
    let finished_by_worker = store.step_done(name, vmig::lease::Step::Finish).await?;

    let mut partitions = Vec::new();
    let (mut done, mut rows_written, mut rows_read, mut bytes_written) = (0usize, 0u64, 0u64, 0u64);
    if let Some(c) = &checkpoint {
        for (id, state) in c.partitions() {
            let progress = c.progress().get(id).copied().unwrap_or_default();
            let is_done = matches!(state, PartitionState::Done);
            done += usize::from(is_done);
            rows_written += progress.rows_written;
            rows_read += progress.rows_read;
            bytes_written += progress.bytes_written;
            partitions.push(serde_json::json!({
                "partition": id.0.as_str(),
                "done": is_done,
                "rows_read": progress.rows_read,
                "rows_written": progress.rows_written,
                "unconfirmed": progress.unconfirmed,
                "bytes_written": progress.bytes_written,
            }));
        }
    }
    let changed = saved
        .as_ref()
        .is_some_and(|s| s.identity.fingerprint != job.fingerprints.job.as_str());
    let last = runs.last();
    let has_progress = checkpoint.as_ref().is_some_and(|c| !c.is_empty());
    let refused_as_changed =
        changed && (has_progress || last.is_some_and(|r| r.status == RunStatus::Done));
    let rate = rows_per_second(&runs, rows_written);
    if json {
        let value = serde_json::json!({
            "job": name,
            "state": store.location(),
            "fingerprint": job.fingerprints.job.as_str(),
            "changed_since_last_run": changed,
            "status": last.map(|r| r.status.to_string()),
            "runs": runs,
            "partitions_with_progress": partitions.len(),
            "partitions_done": done,
            "rows_read": rows_read,
            "rows_written": rows_written,
            "bytes_written": bytes_written,
            "rows_per_second": rate,
            "partitions": partitions,
            "workers": workers,
            "finished_by_a_worker": finished_by_worker,
        });
        return output::json(value, true);
    }
    let mut text = format!("job {name} ({})\n", store.location());
    if runs.is_empty() {
        text.push_str("  no runs yet\n");
    }
    for run in &runs {
        text.push_str(&format!(
            "  run {}  {:<9}  started {}{}{}  (pid {} on {})\n",
            run.id,
            run.status.to_string(),
            jobstate::when(run.started_at),
            run.ended_at
                .map(|e| format!(", ended {}", jobstate::when(e)))
                .unwrap_or_default(),
            if run.resumed { ", resumed" } else { "" },
            run.pid,
            run.host,
        ));
        if let Some(error) = &run.error {
            text.push_str(&format!("      error: {error}\n"));
        }
    }
    for w in &workers {
        let holds: Vec<String> = w
            .holds
            .iter()
            .map(|h| {
                let what = if h.kind == "step" {
                    format!("step {}", h.unit)
                } else {
                    h.unit.clone()
                };
                if h.expired {
                    format!("{what} (lease expired)")
                } else {
                    what
                }
            })
            .collect();
        text.push_str(&format!(
            "  worker {}  pid {} on {}, last seen {}: {}\n",
            w.worker,
            w.pid,
            w.host,
            jobstate::when(w.seen_at),
            if holds.is_empty() {
                "holds nothing".to_string()
            } else {
                format!("holds {}", holds.join(", "))
            }
        ));
    }
    if finished_by_worker {
        text.push_str("  finished: a worker completed the job's finish step\n");
    }
    if checkpoint.as_ref().is_some_and(|c| !c.is_empty()) {
        text.push_str(&format!(
            "  saved progress: {done} partitions done, {} in progress; {rows_written} rows written, {} ({rows_read} source rows read)\n",
            partitions.len() - done,
            human_bytes(bytes_written)
        ));
        for p in &partitions {
            if p["done"] == serde_json::Value::Bool(false) {
                text.push_str(&format!(
                    "    {}: {} rows written, {}{}\n",
                    p["partition"].as_str().unwrap_or("?"),
                    p["rows_written"],
                    human_bytes(p["bytes_written"].as_u64().unwrap_or(0)),
                    if p["unconfirmed"].as_u64().unwrap_or(0) > 0 {
                        format!(", {} more sent but not confirmed", p["unconfirmed"])
                    } else {
                        String::new()
                    }
                ));
            }
        }
    } else if !runs.is_empty() {
        text.push_str("  no saved progress\n");
    }
    if refused_as_changed {
        text.push_str("  the job file changed since the last run: `vmig migrate` refuses it until `--restart`\n");
    } else if changed {
        text.push_str("  the job file changed since the last run, which saved no progress: `vmig migrate` starts it\n");
    }
    output::out(&text);
    Ok(())
}

/// The average rate at which the saved progress was made: `rows_written` over the running time
/// of the runs since the last fresh (not resumed) one. A run without an end (killed) counts
/// until the next run started — an upper bound, so the rate is never overstated; a live last run
/// counts until now. `None` without such runs or time.
fn rows_per_second(runs: &[RunRecord], rows_written: u64) -> Option<f64> {
    let first = runs.iter().rposition(|r| !r.resumed)?;
    let now = std::time::SystemTime::now();
    let mut secs = 0.0;
    for (i, run) in runs.iter().enumerate().skip(first) {
        let end = match (run.ended_at, runs.get(i + 1)) {
            (Some(end), _) => end,
            (None, Some(next)) => next.started_at,
            (None, None) if run.status == RunStatus::Running => now,
            (None, None) => continue,
        };
        secs += end
            .duration_since(run.started_at)
            .map_or(0.0, |d| d.as_secs_f64());
    }
    #[allow(clippy::cast_precision_loss)] // a rate for people to read
    (secs > 0.0 && rows_written > 0).then(|| rows_written as f64 / secs)
}
