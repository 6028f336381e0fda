//! Progress for `vmig migrate`: a bar on a terminal, periodic log lines otherwise.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use vmig::pipeline::Observer;

const LOG_EVERY: Duration = Duration::from_secs(5);

/// Draws progress for the pipeline.
pub struct Progress {
    bar: Option<ProgressBar>,
    log: bool,
    written: AtomicU64,
    total: AtomicU64,
    started: Instant,
    last_log: Mutex<Instant>,
    /// The job's name, for the line that says a run resumes.
    name: String,
}

impl Progress {
    /// `enabled` turns any output on; `bar` chooses the bar over log lines.
    pub fn new(enabled: bool, bar: bool) -> Self {
        let bar = (enabled && bar).then(|| {
            let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            pb.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} rows {per_sec} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            pb.enable_steady_tick(Duration::from_millis(200));
            pb
        });
        Progress {
            log: enabled && bar.is_none(),
            bar,
            written: AtomicU64::new(0),
            total: AtomicU64::new(0),
            started: Instant::now(),
            last_log: Mutex::new(Instant::now()),
            name: "job".to_string(),
        }
    }

    /// Names the job in the line that says a run resumes.
    #[must_use]
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Clears the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn log_line(&self, written: u64) {
        let total = self.total.load(Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let rate = written as f64 / secs;
        let eta = if total > written && rate > 0.0 {
            format!(", ETA {:.0}s", (total - written) as f64 / rate)
        } else {
            String::new()
        };
        let of = if total > 0 {
            format!(" of {total}")
        } else {
            String::new()
        };
        tracing::info!("{written}{of} rows written, {rate:.0} rows/s{eta}");
    }
}

impl Observer for Progress {
    fn resumed(&self, from: &vmig::pipeline::Resumed) {
        tracing::info!("{}", crate::jobstate::resuming_line(&self.name, from));
    }

    fn started(&self, estimated_rows: Option<u64>) {
        match estimated_rows {
            Some(total) => tracing::info!("Started: about {total} rows to read."),
            None => tracing::info!("Started."),
        }
        if let Some(total) = estimated_rows {
            self.total.store(total, Ordering::Relaxed);
            if let Some(bar) = &self.bar {
                bar.set_length(total);
            }
        }
    }

    fn written(&self, rows: u64) {
        let written = self.written.fetch_add(rows, Ordering::Relaxed) + rows;
        if let Some(bar) = &self.bar {
            bar.set_position(written);
        } else if self.log {
            let mut last = self
                .last_log
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.elapsed() >= LOG_EVERY {
                *last = Instant::now();
                drop(last);
                self.log_line(written);
            }
        }
    }
}

/// `1.5 GiB`-style sizes.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
