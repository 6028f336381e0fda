//! `vmig plan` and `vmig plugins`: show what would happen, write nothing.

use std::fmt::Write as _;

use arrow::datatypes::Schema;
use vmig::config::Job;
use vmig::registry;
use vmig::types::milvus_field;
use vmig::vector::META_PRIMARY_KEY;

use crate::output;

/// Prints `schema` under `title`; with `explain`, each field without a Milvus type is followed by
/// the reason the sink will give.
fn schema_text(out: &mut String, title: &str, schema: &Schema, explain: bool) {
    let pk = schema.metadata().get(META_PRIMARY_KEY);
    let _ = writeln!(out, "{title}:");
    let width = schema
        .fields()
        .iter()
        .map(|f| f.name().len())
        .max()
        .unwrap_or(0);
    for f in schema.fields() {
        let typed = milvus_field(f);
        let milvus = typed
            .as_ref()
            .map_or_else(|_| "(no Milvus type)".into(), ToString::to_string);
        let mut notes = Vec::new();
        if pk == Some(f.name()) {
            notes.push("primary key");
        }
        if f.is_nullable() {
            notes.push("nullable");
        }
        let _ = writeln!(
            out,
            "  {:width$}  {:<22} arrow {}{}",
            f.name(),
            milvus,
            f.data_type(),
            if notes.is_empty() {
                String::new()
            } else {
                format!("  [{}]", notes.join(", "))
            }
        );
        // The sink refuses such a field with this same message (one type table).
        if let (true, Err(e)) = (explain, typed) {
            let _ = writeln!(out, "  {:width$}  ! {e}", "");
        }
    }
    let mut meta: Vec<_> = schema.metadata().iter().collect();
    meta.sort();
    for (k, v) in meta {
        let _ = writeln!(out, "  {k} = {v}");
    }
}

/// Prints the plan of `job`.
///
/// # Errors
/// When the source cannot be opened, a transformer rejects the schema or the sink refuses it.
pub async fn print_plan(job: &Job, json: bool) -> anyhow::Result<()> {
    let plan = vmig::plan::plan(job).await?;
    if json {
        return output::json(plan.to_json(job), true);
    }
    // Redacted by the registry (`vmig::redact::json`); the output is redacted again.
    let (source_cfg, sink_cfg) = (job.source.to_json(), job.sink.to_json());
    let (source_schema, target_schema) = (&plan.source_schema, &plan.target_schema);
    let (partitions, total, resume_note) =
        (&plan.partitions, plan.estimated_rows, &plan.resume_note);
    let mut out = String::new();
    let _ = writeln!(out, "source: {} {}", job.source.plugin(), source_cfg);
    schema_text(&mut out, "source schema", source_schema, false);
    if job.transforms.is_empty() {
        let _ = writeln!(out, "transforms: none");
    } else {
        let _ = writeln!(out, "transforms:");
        for (i, (name, t)) in job.transforms.iter().enumerate() {
            let _ = writeln!(out, "  {}. {name}: {t:?}", i + 1);
        }
    }
    schema_text(&mut out, "target schema", target_schema, true);
    let _ = writeln!(
        out,
        "partitions: {}{}",
        partitions.len(),
        total.map(|t| format!(" ({t} rows)")).unwrap_or_default()
    );
    for p in partitions {
        let rows = p
            .estimated_rows
            .map(|r| format!("{r} rows"))
            .unwrap_or_else(|| "? rows".into());
        let _ = writeln!(out, "  {:<8} {:<14} {}", p.id, rows, p.description);
    }
    let _ = writeln!(out, "sink: {} {}", job.sink.plugin(), sink_cfg);
    for note in &plan.sink_notes {
        let _ = writeln!(out, "sink: {note}");
    }
    if let Some(note) = resume_note {
        let _ = writeln!(out, "resuming: {note}");
    }
    match &plan.sink_unchecked {
        None => {
            let _ = writeln!(out, "sink check: the sink accepts the target schema");
        }
        Some(why) => {
            let _ = writeln!(
                out,
                "sink check: not done, the sink could not be reached ({why}); `migrate` checks the target schema before writing"
            );
        }
    }
    let _ = writeln!(out, "(plan only: nothing was written)");
    output::out(&out);
    Ok(())
}

/// Prints the registered plugins.
///
/// # Errors
/// When two plugins of one kind share a name.
pub fn print_plugins(json: bool, examples: bool) -> anyhow::Result<()> {
    let sources: Vec<_> = registry::sources()?
        .values()
        .map(|p| (p.name, p.summary, p.example_config()))
        .collect();
    let transforms: Vec<_> = registry::transforms()?
        .values()
        .map(|p| (p.name, p.summary, p.example_config()))
        .collect();
    let sinks: Vec<_> = registry::sinks()?
        .values()
        .map(|p| (p.name, p.summary, p.example_config()))
        .collect();
    let parsers: Vec<_> = registry::parsers()?
        .values()
        .map(|p| (p.name, p.summary, p.example_config()))
        .collect();
    let groups = [
        ("sources", sources),
        ("transforms", transforms),
        ("sinks", sinks),
        ("parsers", parsers),
    ];
    if json {
        let mut v = serde_json::Map::new();
        for (kind, list) in &groups {
            let items: Vec<_> = list
                .iter()
                .map(|(n, s, e)| serde_json::json!({"name": n, "summary": s, "example": e}))
                .collect();
            v.insert((*kind).to_string(), items.into());
        }
        return output::json(serde_json::Value::Object(v), true);
    }
    let mut out = String::new();
    for (kind, list) in &groups {
        let _ = writeln!(out, "{kind}:");
        for (name, summary, example) in list {
            let _ = writeln!(out, "  {name:<12} {summary}");
            if examples {
                let mut table = serde_json::Map::new();
                let key = if *kind == "parsers" { "format" } else { "type" };
                table.insert(key.into(), (*name).into());
                if let serde_json::Value::Object(m) = example {
                    table.extend(m.clone());
                }
                let text = toml::to_string(&serde_json::Value::Object(table)).unwrap_or_default();
                for line in text.lines() {
                    let _ = writeln!(out, "      {line}");
                }
            }
        }
    }
    output::out(&out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::datatypes::{DataType, Field, Schema};
    use vmig::registry::build_transform;
    use vmig::vector::META_DIM;

    use super::schema_text;

    /// The target schema `vmig plan` prints for a variable-size list `embedding` (with `meta`
    /// as field metadata) cast to a float vector by `cast`.
    fn planned_text(cast: serde_json::Value, meta: &[(&str, &str)]) -> String {
        let list = DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)));
        let field = Field::new("embedding", list, false).with_metadata(
            meta.iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect::<std::collections::HashMap<_, _>>(),
        );
        let source = Arc::new(Schema::new(vec![field]));
        let transforms = vec![("cast".to_string(), build_transform("cast", cast).unwrap())];
        let target = vmig::pipeline::output_schema(&source, &transforms).unwrap();
        let mut out = String::new();
        schema_text(&mut out, "target schema", &target, true);
        out
    }

    #[test]
    fn plan_prints_the_dimension_a_list_to_float_vector_cast_plans() {
        let fields = serde_json::json!({ "embedding": "float_vector" });
        assert_eq!(
            planned_text(
                serde_json::json!({ "fields": fields, "dims": { "embedding": 16 } }),
                &[]
            ),
            "target schema:\n  embedding  FloatVector(16)        arrow FixedSizeList(16 x Float32)\n"
        );
        assert_eq!(
            planned_text(serde_json::json!({ "fields": fields }), &[(META_DIM, "24")]),
            "target schema:\n  embedding  FloatVector(24)        arrow FixedSizeList(24 x Float32)\n"
        );
    }

    #[test]
    fn plan_names_the_milvus_type_or_the_sinks_refusal() {
        let target = Schema::new(vec![
            Field::new("s", DataType::Utf8View, false),
            Field::new("when", DataType::Date32, false),
        ]);
        let mut out = String::new();
        schema_text(&mut out, "target schema", &target, true);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[1], "  s     VarChar                arrow Utf8View");
        assert_eq!(lines[2], "  when  (no Milvus type)       arrow Date32");
        assert!(
            lines[3].starts_with(
                "        ! unsupported input at field `when`: Arrow type Date32 has no Milvus type"
            ),
            "{out}"
        );
        let mut quiet = String::new();
        schema_text(&mut quiet, "source schema", &target, false);
        assert_eq!(quiet.lines().count(), 3, "{quiet}");
    }
}
