//! `vmig verify`: read the source again and the target back, and compare row by row.

use vmig::config::Job;
use vmig::pipeline::output_schema;
use vmig::vector::META_PRIMARY_KEY;
use vmig::verify::verify;

use crate::output;

/// Runs the comparison and prints the report.
///
/// # Errors
/// When either side cannot be read, or when they differ (after printing the report).
pub async fn run(job: Job, json: bool, examples: usize) -> anyhow::Result<()> {
    let source = job.source.build(&job.ctx).await?;
    let expected = output_schema(&source.schema(), &job.transforms)?;
    let Some(target) = job.sink.open_target(&job.ctx, &expected).await? else {
        anyhow::bail!(
            "the `{}` sink cannot be read back, so there is nothing to verify against",
            job.sink.plugin()
        );
    };
    let pk = target
        .schema()
        .metadata()
        .get(META_PRIMARY_KEY)
        .or_else(|| expected.metadata().get(META_PRIMARY_KEY))
        .cloned()
        .unwrap_or_else(|| "id".to_string());
    let report = verify(
        source.as_ref(),
        &job.transforms,
        target.as_ref(),
        &pk,
        examples,
    )
    .await?;
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
