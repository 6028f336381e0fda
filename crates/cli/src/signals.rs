//! SIGINT, SIGTERM and SIGHUP, handled alike: the first one cancels the run, which stops reading,
//! lets the sink finish or discard what is in flight, and reports what the target holds; the
//! process then exits with 128 + the signal's number (130, 143, 129). Later signals only say
//! that vmig is already stopping — cutting the clean-up short is what SIGKILL is for — except
//! in a run that saves its progress ([`Signals::exit_on_second_signal`]): there a second signal
//! ends the process at once, and the next run resumes from the last saved state.
//!
//! Once tokio has registered a handler for a signal, the default action (terminate at once) is
//! gone for the life of the process, so the listener is installed before anything else runs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

/// A stop signal vmig handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Ctrl-C.
    Int,
    /// What Kubernetes, Docker and systemd send to stop a process.
    Term,
    /// The terminal went away (or a supervisor asks for a stop).
    Hup,
}

impl Signal {
    /// The conventional name, e.g. `SIGTERM`.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Int => "SIGINT",
            Signal::Term => "SIGTERM",
            Signal::Hup => "SIGHUP",
        }
    }

    /// 128 + the signal number, as shells report a process stopped by it.
    pub fn exit_code(self) -> u8 {
        match self {
            Signal::Int => 130,
            Signal::Term => 143,
            Signal::Hup => 129,
        }
    }
}

/// A command stopped by SIGINT, SIGTERM or SIGHUP: exits with 128 + the signal's number.
#[derive(Debug)]
pub struct Interrupted {
    /// The first signal received.
    pub signal: Signal,
    /// What happened, including what the target holds now.
    pub message: String,
    /// What the aborted sink left, one sentence each (for `--json`).
    pub left: Vec<String>,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "interrupted by {}: {}", self.signal.name(), self.message)
    }
}

impl std::error::Error for Interrupted {}

/// The signals received by this process: the first one is kept and cancels `token`.
#[derive(Debug, Clone)]
pub struct Signals {
    first: Arc<OnceLock<Signal>>,
    token: CancellationToken,
    exit_on_second: Arc<AtomicBool>,
}

impl Signals {
    /// Listens for SIGINT, SIGTERM and SIGHUP on the current tokio runtime.
    ///
    /// # Errors
    /// When the operating system refuses a handler.
    pub fn install() -> std::io::Result<Signals> {
        let signals = Signals {
            first: Arc::new(OnceLock::new()),
            token: CancellationToken::new(),
            exit_on_second: Arc::new(AtomicBool::new(false)),
        };
        listen(signals.clone())?;
        Ok(signals)
    }

    /// Cancelled when the first signal arrives.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// From now on a second signal exits the process at once (with 128 + the first signal's
    /// number): for runs whose progress is saved before every write, so that nothing is lost
    /// by not waiting for the clean-up.
    pub fn exit_on_second_signal(&self) {
        self.exit_on_second.store(true, Ordering::SeqCst);
    }

    /// The first signal received, if any.
    pub fn received(&self) -> Option<Signal> {
        self.first.get().copied()
    }

    /// Waits for the first signal.
    pub async fn wait(&self) -> Signal {
        self.token.cancelled().await;
        // Set before the token is cancelled.
        self.received().unwrap_or(Signal::Int)
    }

    fn deliver(&self, signal: Signal) {
        if self.first.set(signal).is_ok() {
            tracing::warn!(
                "{}: stopping; what this run wrote is being finished or removed, then vmig says what the target holds.",
                signal.name()
            );
            self.token.cancel();
        } else if self.exit_on_second.load(Ordering::SeqCst) {
            let first = self.received().unwrap_or(signal);
            tracing::error!(
                "{}: stopping at once, without waiting for the clean-up; the progress saved so far stays, and the next `vmig migrate` of this job resumes from it.",
                signal.name()
            );
            std::process::exit(i32::from(first.exit_code()));
        } else {
            tracing::warn!(
                "{}: already stopping after {}; clean-up goes on (SIGKILL would cut it short and leave this run's temporary files).",
                signal.name(),
                self.received().map_or("a signal", Signal::name)
            );
        }
    }
}

#[cfg(unix)]
fn listen(signals: Signals) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        loop {
            let got = tokio::select! {
                Some(()) = int.recv() => Signal::Int,
                Some(()) = term.recv() => Signal::Term,
                Some(()) = hup.recv() => Signal::Hup,
                else => return,
            };
            signals.deliver(got);
        }
    });
    Ok(())
}

#[cfg(not(unix))]
fn listen(signals: Signals) -> std::io::Result<()> {
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            signals.deliver(Signal::Int);
        }
    });
    Ok(())
}
