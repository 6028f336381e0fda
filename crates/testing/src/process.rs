//! Running a command and stopping it with a signal at a known point of its work.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Starts `command` with piped output, waits until a line of its standard error contains
/// `marker`, then `after`, sends it `signal` (a `kill` name: `TERM`, `INT`, `HUP`, …) and
/// returns everything it printed and its exit status.
///
/// # Panics
/// When the command cannot start, never prints `marker` within two minutes, or `kill` fails.
pub fn signal_after(mut command: Command, marker: &str, after: Duration, signal: &str) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the command");
    let stderr = child.stderr.take().expect("piped stderr");
    let (seen, started) = mpsc::channel();
    let marker = marker.to_string();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(&marker) {
                let _ = seen.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    if started.recv_timeout(Duration::from_secs(120)).is_err() {
        let _ = child.kill();
        panic!("the command never printed its start marker");
    }
    std::thread::sleep(after);
    let killed = Command::new("kill")
        .args([format!("-{signal}"), child.id().to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(killed, "kill -{signal} failed");
    let mut stdout = Vec::new();
    if let Some(out) = child.stdout.as_mut() {
        let _ = out.read_to_end(&mut stdout);
    }
    let status = child.wait().expect("waiting for the command");
    let stderr = reader.join().unwrap_or_default().into_bytes();
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Runs `python -c script args…` and returns its standard output.
///
/// # Panics
/// When Python cannot start or the script fails (its standard error is in the message).
pub fn python<S: AsRef<std::ffi::OsStr>>(python: &str, script: &str, args: &[S]) -> String {
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("starting python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
