//! Running a command and stopping it with a signal at a known point of its work.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A command's exit status, standard output and standard error, for assertion messages.
pub fn output_text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

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

/// What [`kill_until_done`] did.
#[derive(Debug)]
pub struct Killed {
    /// How many runs were killed with `SIGKILL`.
    pub kills: usize,
    /// How many of those died before printing `marker` (killed during start-up: while the
    /// state store was opened, the target prepared, …).
    pub before_marker: usize,
    /// The run that finished by itself.
    pub last: Output,
}

/// Runs `make()` again and again, killing each run with `SIGKILL` at a random instant (seeded
/// by `seed`) between 0 and `within` after it starts, until `kills` runs have been killed; then
/// runs it once more to the end and returns that run's output. A run that finishes before its
/// instant counts as the last one. Instants are spread over the whole window, so some kills
/// land before a run has done anything, some while it creates its target, most mid-copy.
/// `before_marker` counts runs whose standard error never showed `Started` (the runner's
/// start line; the command must log it, e.g. `vmig migrate --progress log`).
///
/// # Panics
/// When a command cannot start or wait fails, or the final run takes more than five minutes.
pub fn kill_until_done(
    make: impl Fn() -> Command,
    kills: usize,
    within: Duration,
    seed: u64,
) -> Killed {
    use rand::RngExt;
    let mut rng = crate::gen::rng(seed);
    let mut done = Killed {
        kills: 0,
        before_marker: 0,
        last: Output {
            status: std::process::ExitStatus::default(),
            stdout: Vec::new(),
            stderr: Vec::new(),
        },
    };
    while done.kills < kills {
        let at = within.mul_f64(rng.random::<f64>());
        let mut child = make()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the command");
        let started = std::time::Instant::now();
        loop {
            if let Some(_status) = child.try_wait().expect("polling the command") {
                done.last = child.wait_with_output().expect("collecting its output");
                return done;
            }
            if started.elapsed() >= at {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = child.kill(); // SIGKILL
        let out = child
            .wait_with_output()
            .expect("waiting for the killed command");
        if !String::from_utf8_lossy(&out.stderr).contains("Started") {
            done.before_marker += 1;
        }
        done.kills += 1;
    }
    let child = make()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the last run");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    done.last = rx
        .recv_timeout(Duration::from_secs(300))
        .expect("the last run did not finish within five minutes")
        .expect("waiting for the last run");
    done
}

/// Starts `command` with piped output, calls `ready` every 100 ms until it returns `true` (it
/// observes the command's progress from outside, e.g. the rows its state store says are
/// committed), then kills the command with `SIGKILL` and returns its output.
///
/// # Panics
/// When the command cannot start, ends before `ready` says so, or `ready` is not satisfied
/// within two minutes.
pub fn kill_when(mut command: Command, mut ready: impl FnMut() -> bool) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the command");
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("polling the command") {
            let out = child.wait_with_output().expect("collecting its output");
            panic!(
                "the command ended ({status}) before it was to be killed:\n{}",
                output_text(&out)
            );
        }
        if ready() {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let out = child.wait_with_output().expect("collecting its output");
            panic!(
                "the command never got ready to be killed:\n{}",
                output_text(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill(); // SIGKILL
    child
        .wait_with_output()
        .expect("waiting for the killed command")
}
