//! The job lifecycle of `vmig migrate` is the library's ([`vmig::jobs`]: which store, resume,
//! refuse or start over); this module keeps what the CLI prints about it.

pub use vmig::jobs::{begin, finish, lease, url, when};
use vmig::pipeline::Resumed;

/// The line `vmig migrate` prints when it resumes.
pub fn resuming_line(name: &str, from: &Resumed) -> String {
    let mut line = format!(
        "resuming {name}: {} of {} partitions done",
        from.partitions_done, from.partitions
    );
    if from.partitions_in_progress > 0 {
        line.push_str(&format!(", {} in progress", from.partitions_in_progress));
    }
    line.push_str(&format!(
        ", {} rows already written",
        human_count(from.rows_written)
    ));
    if from.rows_replayed > 0 {
        line.push_str(&format!(
            "; {} rows that may already be in the target are sent again as replays",
            human_count(from.rows_replayed)
        ));
    }
    line
}

/// `3.1M`, `12.4k`, `999`.
pub fn human_count(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_999 => format!("{:.1}k", n as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.1}M", n as f64 / 1e6),
        _ => format!("{:.2}G", n as f64 / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_as_people_write_them() {
        assert_eq!(human_count(999), "999");
        assert_eq!(human_count(12_400), "12.4k");
        assert_eq!(human_count(3_100_000), "3.1M");
        assert_eq!(human_count(1_250_000_000), "1.25G");
    }

    #[test]
    fn the_resume_line_says_what_is_done() {
        let from = Resumed {
            partitions: 40,
            partitions_done: 12,
            partitions_in_progress: 3,
            rows_written: 3_100_000,
            rows_replayed: 0,
        };
        assert_eq!(
            resuming_line("books", &from),
            "resuming books: 12 of 40 partitions done, 3 in progress, 3.1M rows already written"
        );
    }
}
