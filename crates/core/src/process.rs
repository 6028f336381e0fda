//! Who is running: this machine's name, whether a recorded process still exists, and UTC
//! timestamps for messages. Locks (the files sink) and run records (the state store) record a
//! host and a process id; a run is *provably* gone only when it ran on this host and its process
//! no longer exists — anything else (another host, no `/proc`) counts as alive, so nothing of
//! a live run is ever taken over.

/// The name of this machine (`gethostname`, through the `hostname` crate), at most 255
/// characters; `unknown-host` when the system does not say.
pub fn this_host() -> String {
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .map(|h| h.trim().chars().take(255).collect::<String>())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_string())
}

/// Whether process `pid` of host `host` is provably gone: it ran on this host (Linux, `/proc`
/// mounted) and `/proc/<pid>` does not exist.
pub fn is_gone(host: &str, pid: u32) -> bool {
    cfg!(target_os = "linux")
        && host == this_host()
        && std::path::Path::new("/proc/self").exists()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// `2026-12-02 15:50:00 UTC` for `secs` seconds since the Unix epoch.
pub fn utc(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_796_226_600), "2026-12-02 15:50:00 UTC");
    }

    #[test]
    fn this_process_is_alive_and_other_hosts_count_as_alive() {
        assert!(!is_gone(&this_host(), std::process::id()));
        assert!(!is_gone("some-other-host.example", u32::MAX));
        if cfg!(target_os = "linux") {
            assert!(is_gone(&this_host(), u32::MAX));
        }
    }
}
