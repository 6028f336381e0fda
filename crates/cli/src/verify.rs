//! `vmig verify`: read the source again and the target back, and compare row by row.

use vmig::config::Job;
use vmig::jobs::Verified;

use crate::output;

/// Runs the comparison and prints the report.
///
/// # Errors
/// When either side cannot be read, or when they differ (after printing the report).
pub async fn run(job: Job, json: bool, examples: usize) -> anyhow::Result<()> {
    let Verified {
        report,
        primary_key: pk,
    } = vmig::jobs::verify(&job, examples).await?;
    if json {
        let mut v = serde_json::to_value(&report)?;
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "status".into(),
                if report.is_match() { "ok" } else { "mismatch" }.into(),
            );
        }
        output::json(v, false)?;
    } else {
        output::err_line(&format!(
            "verify: source {} rows, target {} rows; {} missing, {} extra, {} changed, {} duplicate keys in the source, {} in the target",
            report.source_rows,
            report.target_rows,
            report.missing,
            report.extra,
            report.changed,
            report.duplicate_in_source,
            report.duplicate_in_target
        ));
        for (key, difference) in &report.examples {
            output::err_line(&format!("  {pk} = {key}: {difference:?}"));
        }
    }
    if report.is_match() {
        if !json {
            output::err_line("OK: every row of the source is in the target, with the same values");
        }
        Ok(())
    } else {
        anyhow::bail!(
            "the target differs from the source ({} missing, {} extra, {} changed)",
            report.missing,
            report.extra,
            report.changed
        )
    }
}
