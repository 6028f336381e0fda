//! The one retry policy of vmig's network plugins: exponential back-off with jitter, a maximum
//! number of attempts and a total deadline, all from the job file.
//!
//! Every plugin that talks to a server (the Elasticsearch source, the Milvus 2.x source and
//! sink, and every new one) takes a `retry` table ([`RetryConfig`]) and runs each request
//! through [`RetryConfig::run`] (or [`RetryConfig::run_with`] for a plugin's own error type).
//! Only failures that may succeed when tried again are retried ([`Error::is_retryable`]: timeouts,
//! rate limits, unavailable servers, reset connections); anything else is returned at once.
//!
//! ```toml
//! [source.retry]             # or [sink.retry]
//! max_attempts = 7           # attempts in all, the first included; 1 = never retry
//! initial_backoff = "200ms"  # the first wait
//! max_backoff = "10s"        # no step of the back-off grows beyond this
//! max_elapsed = "15m"        # no retry starts (or is waited for) after this much time
//! ```
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `max_attempts` | `7` | attempts in all (the first included); `1` turns retries off |
//! | `initial_backoff` | `"200ms"` | the first step of the back-off |
//! | `max_backoff` | `"10s"` | the largest step: steps double from `initial_backoff` up to this |
//! | `max_elapsed` | `"15m"` | total deadline from the first attempt: a retry whose wait would end after it is not made |
//!
//! Durations are written as `"200ms"`, `"10s"`, `"2m"`, `"1h 30m"` (the `humantime` format).
//! The wait before retry *n* (n = 1, 2, …) is the step `min(initial_backoff · 2^(n-1),
//! max_backoff)` plus a random extra of up to the same amount (so between one and two steps):
//! the jitter spreads the retries of many concurrent requests (parallel partitions, requests in
//! flight) instead of sending them all again at the same instant. Each retry is logged as a
//! warning with the operation, the attempt, the wait and the error (error messages never hold
//! credentials: plugins strip them from URLs). Giving up returns the last error, wrapped in a
//! sentence saying how many attempts were made over how long and which limit stopped them.
//!
//! The main design decision: the delays come from the `backon` crate's exponential back-off
//! (a well-kept crate; its jitter and doubling are what we want), but the loop around it is
//! ours, because the policy needs what `backon`'s retry adaptor does not give: a deadline on the
//! wall-clock time including the attempts themselves (not only on the sum of the waits), the
//! attempt count and elapsed time in the final error, and one log line format for every plugin.
//! Time is Tokio's, so tests run the whole policy in paused time.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Retry settings of one plugin (see the [module docs](self) for the meaning and defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts in all, the first included (default 7; 1 = never retry).
    pub max_attempts: u32,
    /// The first step of the back-off (default 200 ms).
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// The largest step of the back-off (default 10 s).
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Total time from the first attempt after which no retry is made (default 15 min).
    #[serde(with = "humantime_serde")]
    pub max_elapsed: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 7,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            max_elapsed: Duration::from_secs(15 * 60),
        }
    }
}

impl RetryConfig {
    /// Whether every setting has its default (plugins leave the table out of printed jobs then).
    pub fn is_default(&self) -> bool {
        *self == RetryConfig::default()
    }

    /// Checks the settings of `plugin`'s `retry` table.
    ///
    /// # Errors
    /// [`Error::Config`] for `max_attempts = 0` or a `max_backoff` below `initial_backoff`.
    pub fn check(&self, plugin: &str) -> Result<()> {
        if self.max_attempts == 0 {
            return Err(Error::config(
                plugin,
                "`retry.max_attempts` is 0; it counts the first attempt too: write 1 to turn retries off",
            ));
        }
        if self.max_backoff < self.initial_backoff {
            return Err(Error::config(
                plugin,
                format!(
                    "`retry.max_backoff` ({}) is below `retry.initial_backoff` ({})",
                    humantime::format_duration(self.max_backoff),
                    humantime::format_duration(self.initial_backoff)
                ),
            ));
        }
        Ok(())
    }

    /// The policy of a plugin that also accepts the older `max_retries = n` option, which means
    /// `retry.max_attempts = n + 1`; checked as by [`RetryConfig::check`].
    ///
    /// # Errors
    /// [`Error::Config`] when both are given and disagree, or the settings are invalid.
    pub fn with_max_retries(mut self, plugin: &str, max_retries: Option<u32>) -> Result<Self> {
        if let Some(n) = max_retries {
            let attempts = n.saturating_add(1);
            let default = RetryConfig::default().max_attempts;
            if self.max_attempts != default && self.max_attempts != attempts {
                return Err(Error::config(
                    plugin,
                    format!(
                        "`max_retries = {n}` (the older spelling of `retry.max_attempts = {attempts}`) disagrees with `retry.max_attempts = {}`; keep only `retry.max_attempts`",
                        self.max_attempts
                    ),
                ));
            }
            self.max_attempts = attempts;
        }
        self.check(plugin)?;
        Ok(self)
    }

    /// The waits before retry 1, 2, … (without the attempt and deadline limits).
    fn backoff(&self) -> impl Iterator<Item = Duration> {
        ExponentialBuilder::new()
            .with_jitter()
            .with_factor(2.0)
            .with_min_delay(self.initial_backoff)
            .with_max_delay(self.max_backoff)
            .without_max_times()
            .build()
    }

    /// Runs `op` until it succeeds, fails with an error that is not
    /// [retryable](Error::is_retryable), or the policy gives up. `what` names the operation in
    /// the log lines of the retries (e.g. `"Milvus insert into `books`"`).
    ///
    /// # Errors
    /// A non-retryable error as `op` returned it; on giving up, the last error wrapped in a
    /// sentence like `gave up after 7 attempts over 25.3s (retry.max_attempts = 7)`.
    pub async fn run<T, F, Fut>(&self, what: &str, op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.run_with(
            what,
            Error::is_retryable,
            |e, gave_up| e.context(gave_up.to_string()),
            op,
        )
        .await
    }

    /// [`RetryConfig::run`] for an error type of the caller's: `retryable` says which errors
    /// are tried again, and `give_up` adds the sentence saying why retrying stopped (a
    /// [`GaveUp`], which displays as that sentence) to the last error.
    ///
    /// # Errors
    /// As [`RetryConfig::run`].
    pub async fn run_with<T, E, F, Fut>(
        &self,
        what: &str,
        retryable: impl Fn(&E) -> bool,
        give_up: impl FnOnce(E, GaveUp) -> E,
        mut op: F,
    ) -> std::result::Result<T, E>
    where
        E: fmt::Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
    {
        let start = tokio::time::Instant::now();
        let max_attempts = self.max_attempts.max(1);
        let mut waits = self.backoff();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let err = match op().await {
                Ok(v) => return Ok(v),
                Err(e) if !retryable(&e) => return Err(e),
                Err(e) => e,
            };
            let elapsed = start.elapsed();
            let limit = if attempt >= max_attempts {
                Some(Limit::Attempts(max_attempts))
            } else {
                match waits.next() {
                    Some(wait) if elapsed.saturating_add(wait) <= self.max_elapsed => {
                        tracing::warn!(
                            operation = what,
                            attempt,
                            max_attempts,
                            wait = ?wait,
                            error = %err,
                            "transient failure; retrying",
                        );
                        tokio::time::sleep(wait).await;
                        None
                    }
                    _ => Some(Limit::Elapsed(self.max_elapsed)),
                }
            };
            if let Some(limit) = limit {
                let gave_up = GaveUp {
                    attempts: attempt,
                    elapsed,
                    limit,
                };
                tracing::warn!(operation = what, error = %err, "{gave_up}");
                return Err(give_up(err, gave_up));
            }
        }
    }
}

/// Why and when a [`RetryConfig`] stopped retrying; displays as
/// `gave up after 3 attempts over 1.4s (retry.max_attempts = 3)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GaveUp {
    /// Attempts made, the first included.
    pub attempts: u32,
    /// Time from the start of the first attempt to the end of the last.
    pub elapsed: Duration,
    limit: Limit,
}

/// The limit that stopped the retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limit {
    Attempts(u32),
    Elapsed(Duration),
}

impl fmt::Display for GaveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = if self.attempts == 1 { "" } else { "s" };
        write!(
            f,
            "gave up after {} attempt{plural} over {:.1?} ",
            self.attempts, self.elapsed
        )?;
        match self.limit {
            Limit::Attempts(n) => write!(f, "(retry.max_attempts = {n})"),
            Limit::Elapsed(d) => write!(
                f,
                "(the next retry would end after retry.max_elapsed = {})",
                humantime::format_duration(d)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Mutex;

    use tokio::time::Instant;

    use super::*;

    fn transient(n: u32) -> Error {
        Error::Transient {
            message: format!("busy #{n}"),
            source: None,
        }
    }

    fn policy(max_attempts: u32) -> RetryConfig {
        RetryConfig {
            max_attempts,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(400),
            max_elapsed: Duration::from_secs(3600),
        }
    }

    /// Runs `policy` over an operation that fails transiently `failures` times, then returns
    /// 42; gives the result and the instants at which each attempt started.
    async fn attempts(policy: &RetryConfig, failures: u32) -> (Result<u32>, Vec<Instant>) {
        let calls = AtomicU32::new(0);
        let at = Mutex::new(Vec::new());
        let result = policy
            .run("test op", || {
                at.lock().unwrap().push(Instant::now());
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    if n <= failures {
                        Err(transient(n))
                    } else {
                        Ok(42)
                    }
                }
            })
            .await;
        (result, at.into_inner().unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn retries_until_success_with_jittered_exponential_waits() {
        let (result, at) = attempts(&policy(10), 6).await;
        assert_eq!(result.unwrap(), 42);
        assert_eq!(at.len(), 7);
        // Steps 100, 200, 400 ms, then capped at 400 ms; each wait is between one and two steps
        // (inclusive at the top: tokio's timer rounds a sleep up to the next millisecond, so a
        // jitter just under one step can land exactly on two).
        let steps = [100u64, 200, 400, 400, 400, 400];
        for (i, step) in steps.iter().enumerate() {
            let wait = at[i + 1] - at[i];
            let step = Duration::from_millis(*step);
            assert!(
                wait >= step && wait <= step * 2,
                "wait {i} is {wait:?}, not within [{step:?}, {:?}]",
                step * 2
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_varies_the_waits() {
        let mut first_waits = Vec::new();
        for _ in 0..20 {
            let (_, at) = attempts(&policy(2), 1).await;
            first_waits.push(at[1] - at[0]);
        }
        first_waits.sort();
        first_waits.dedup();
        assert!(first_waits.len() > 1, "no jitter: {first_waits:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_attempts_with_the_last_error() {
        let start = Instant::now();
        let (result, at) = attempts(&policy(3), 100).await;
        assert_eq!(at.len(), 3);
        let err = result.unwrap_err();
        assert!(err.is_retryable(), "the root stays the transient error");
        let text = err.to_string();
        let elapsed = start.elapsed();
        assert!(
            text.starts_with("gave up after 3 attempts over ")
                && text.ends_with(" (retry.max_attempts = 3): transient failure: busy #3"),
            "{text}"
        );
        assert!(
            text.contains(&format!("{elapsed:.1?}")),
            "{text} / {elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn one_attempt_means_no_retry() {
        let (result, at) = attempts(&policy(1), 100).await;
        assert_eq!(at.len(), 1);
        assert_eq!(
            result.unwrap_err().to_string(),
            "gave up after 1 attempt over 0.0ns (retry.max_attempts = 1): transient failure: busy #1"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn respects_max_elapsed() {
        let p = RetryConfig {
            max_elapsed: Duration::from_secs(2),
            ..policy(1000)
        };
        let start = Instant::now();
        let (result, at) = attempts(&p, 1000).await;
        // Waits of 100..200, 200..400, then 400..800 ms each: the deadline stops it after a
        // handful of attempts, never past 2 s.
        assert!(at.len() >= 4 && at.len() <= 8, "{} attempts", at.len());
        assert!(
            start.elapsed() <= Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        let text = result.unwrap_err().to_string();
        assert!(
            text.starts_with(&format!("gave up after {} attempts over ", at.len()))
                && text.contains("(the next retry would end after retry.max_elapsed = 2s)")
                && text.ends_with(&format!("transient failure: busy #{}", at.len())),
            "{text}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn slow_attempts_count_towards_max_elapsed() {
        let p = RetryConfig {
            max_elapsed: Duration::from_secs(10),
            ..policy(1000)
        };
        let calls = AtomicU32::new(0);
        let err = p
            .run("slow op", || {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    tokio::time::sleep(Duration::from_secs(4)).await;
                    Err::<(), _>(transient(n))
                }
            })
            .await
            .unwrap_err();
        // Attempts end at about 4 s, 8.2 s and 12.5 s: the third starts before the deadline,
        // and nothing after it, although only two waits (well under 10 s) were slept.
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert!(
            err.to_string()
                .starts_with("gave up after 3 attempts over 12."),
            "{err}"
        );
        assert!(err.to_string().contains("retry.max_elapsed = 10s"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn does_not_retry_other_errors() {
        let calls = AtomicU32::new(0);
        let err = policy(5)
            .run("test op", || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err::<(), _>(Error::data("f.faiss at byte 12", "bad magic")) }
            })
            .await
            .unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(
            err.to_string(),
            "invalid data at f.faiss at byte 12: bad magic"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn run_with_uses_the_callers_classification() {
        let calls = AtomicU32::new(0);
        let err = policy(4)
            .run_with(
                "http",
                |e: &String| e.starts_with("503"),
                |e, gave_up| format!("{e} ({gave_up})"),
                || {
                    let n = calls.fetch_add(1, Ordering::SeqCst);
                    async move {
                        Err::<(), _>(if n < 2 {
                            "503".to_string()
                        } else {
                            "400".into()
                        })
                    }
                },
            )
            .await
            .unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(err, "400");
    }

    #[test]
    fn config_reads_durations_and_defaults_and_checks() {
        let c: RetryConfig = toml::from_str("max_attempts = 3\nmax_elapsed = \"1m 30s\"").unwrap();
        assert_eq!(c.max_attempts, 3);
        assert_eq!(c.max_elapsed, Duration::from_secs(90));
        assert_eq!(c.initial_backoff, Duration::from_millis(200));
        assert_eq!(c.max_backoff, Duration::from_secs(10));
        assert!(RetryConfig::default().is_default());
        let printed = toml::to_string(&RetryConfig::default()).unwrap();
        assert!(printed.contains("initial_backoff = \"200ms\""), "{printed}");
        let err = toml::from_str::<RetryConfig>("max_attemps = 3")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `max_attemps`"), "{err}");
        let err = toml::from_str::<RetryConfig>("max_backoff = 10")
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_backoff"), "{err}");
        let zero = RetryConfig {
            max_attempts: 0,
            ..RetryConfig::default()
        };
        assert_eq!(
            zero.check("es").unwrap_err().to_string(),
            "invalid `es` configuration: `retry.max_attempts` is 0; it counts the first attempt too: write 1 to turn retries off"
        );
        let upside_down = RetryConfig {
            max_backoff: Duration::from_millis(100),
            ..RetryConfig::default()
        };
        assert_eq!(
            upside_down.check("es").unwrap_err().to_string(),
            "invalid `es` configuration: `retry.max_backoff` (100ms) is below `retry.initial_backoff` (200ms)"
        );
    }

    #[test]
    fn max_retries_is_the_older_spelling_of_max_attempts() {
        let d = RetryConfig::default();
        assert_eq!(d.with_max_retries("es", None).unwrap(), d);
        assert_eq!(d.with_max_retries("es", Some(0)).unwrap().max_attempts, 1);
        let three = RetryConfig {
            max_attempts: 3,
            ..d
        };
        assert_eq!(
            three.with_max_retries("es", Some(2)).unwrap().max_attempts,
            3
        );
        assert_eq!(
            three.with_max_retries("es", Some(5)).unwrap_err().to_string(),
            "invalid `es` configuration: `max_retries = 5` (the older spelling of `retry.max_attempts = 6`) disagrees with `retry.max_attempts = 3`; keep only `retry.max_attempts`"
        );
    }
}
