//! Everything `vmig` prints, in one place: results on stdout, messages and logs on stderr, and
//! the exit code of a failure. Every byte goes through [`vmig::redact`] on its way out
//! (URL user-infos and registered secrets become `***`), the last line of defence behind the
//! redacted `Serialize`/`Debug` of plugin configs.

use std::io::{IsTerminal, Write};

use vmig::redact;

use crate::signals::Interrupted;

/// Prints `text` on stdout, redacted. A closed stdout (a reader that went away) is not an error
/// worth a panic at that point: the work is done and the exit code still says how it went.
pub fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(redact::text(text).as_bytes());
    let _ = stdout.flush();
}

/// Prints `text` and a newline on stderr, redacted; a closed stderr (the terminal of a SIGHUP
/// went away) is ignored.
pub fn err_line(text: &str) {
    let _ = writeln!(std::io::stderr(), "{}", redact::text(text));
}

/// Prints `value` as one line (or indented, when `pretty`) of JSON on stdout, redacted: secret
/// keys masked before serialising (so escaping cannot hide a secret), then the text.
///
/// # Errors
/// When the value does not serialise.
pub fn json(mut value: serde_json::Value, pretty: bool) -> anyhow::Result<()> {
    redact::json(&mut value);
    let text = if pretty {
        serde_json::to_string_pretty(&value)?
    } else {
        serde_json::to_string(&value)?
    };
    out(&format!("{text}\n"));
    Ok(())
}

/// The exit code for a failed command: 128 + n when a signal stopped it (130, 143, 129), 2 when
/// a run is refused because the job finished or changed ([`vmig::jobs::Refused`]) or when
/// the job file is what is wrong ([`vmig::Error::is_config_error`]: bad syntax, unknown
/// plugin or option, a transformer that does not fit the schema, …), 1 otherwise (bad data,
/// unreachable server, differences found by `verify`).
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if let Some(i) = err.downcast_ref::<Interrupted>() {
        return i.signal.exit_code();
    }
    let job_error = err
        .chain()
        .find_map(|e| e.downcast_ref::<vmig::jobs::JobError>());
    if let Some(vmig::jobs::JobError::Refused(refused)) = job_error {
        return if refused.busy { 1 } else { 2 };
    }
    let config = err
        .chain()
        .filter_map(|e| e.downcast_ref::<vmig::Error>())
        .chain(job_error.and_then(|e| match e {
            vmig::jobs::JobError::Vmig(v) => Some(v),
            _ => None,
        }))
        .any(vmig::Error::is_config_error);
    if config {
        2
    } else {
        1
    }
}

/// Reports `err` (on stderr, and as `{"status":"error",…}` on stdout with `--json`: with
/// `"status":"cancelled"` and `"signal"` when a signal stopped the run, and `"left"`, what the
/// target holds, when the sink was aborted) and returns its exit code.
pub fn fail(err: &anyhow::Error, json_output: bool) -> u8 {
    let message = format!("{err:#}");
    if json_output {
        let mut v = serde_json::json!({ "status": "error", "error": message });
        if let Some(i) = err.downcast_ref::<Interrupted>() {
            v["status"] = "cancelled".into();
            v["signal"] = i.signal.name().into();
            v["left"] = i.left.clone().into();
        } else if let Some(vmig::Error::Stopped { left, .. }) = err.downcast_ref::<vmig::Error>() {
            v["left"] = left.clone().into();
        }
        if json(v, false).is_err() {
            out("{\"status\":\"error\"}\n");
        }
    }
    err_line(&format!("error: {message}"));
    exit_code(err)
}

/// Stderr for log lines: each write (the fmt layer writes one whole event at a time) is
/// redacted before it goes out.
#[derive(Debug, Clone, Copy)]
struct RedactedStderr;

impl Write for RedactedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(redact::text(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Sets up log output on stderr (redacted): `-q` errors only, default info for vmig, `-v` info
/// for every crate, `-vv` debug; `VMIG_LOG` (an `EnvFilter`) overrides. A panic's message is
/// redacted too.
pub fn init_logging(verbose: u8, quiet: bool) {
    std::panic::set_hook(Box::new(|info| err_line(&info.to_string())));
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn,vmig=info,vmig=info",
        (false, 1) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("VMIG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // A program that runs several commands in one process (`vmig_cli::main_from`) keeps the
    // first command's log settings.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| RedactedStderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_exit_2_and_others_1() {
        let config = anyhow::Error::new(vmig::Error::config("faiss", "bad").context("[source]"));
        assert_eq!(exit_code(&config), 2);
        let data = anyhow::Error::new(vmig::Error::data("f", "bad"));
        assert_eq!(exit_code(&data), 1);
        assert_eq!(exit_code(&anyhow::anyhow!("the target differs")), 1);
    }
}
