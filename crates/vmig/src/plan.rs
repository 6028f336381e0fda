//! The plan of a job — what `vmig plan` prints and `POST /v1/plan` answers: the source and
//! target schemas (with each field's Milvus type), the partitions and their estimated rows, and
//! what resuming means for the sink. Computing it opens the source (reads headers, connects)
//! and builds the sink (a server sink connects), and asks the sink whether it can write the
//! target schema ([`crate::Sink::check`], the check `migrate` runs before anything is written),
//! but writes nothing.

use arrow::datatypes::{Schema, SchemaRef};
use serde_json::{json, Value};

use crate::config::Job;
use crate::pipeline::output_schema;
use crate::types::milvus_field;
use crate::PartitionInfo;

/// What a job would do.
#[derive(Debug)]
#[non_exhaustive]
pub struct Plan {
    /// The source's schema.
    pub source_schema: SchemaRef,
    /// The schema after the transforms: what the sink gets.
    pub target_schema: SchemaRef,
    /// The source's partitions.
    pub partitions: Vec<PartitionInfo>,
    /// The sum of the partitions' estimates, when every one has one.
    pub estimated_rows: Option<u64>,
    /// What resuming an interrupted run means for this sink, when there is a limit to tell.
    pub resume_note: Option<String>,
    /// Why the sink could not be asked whether it can write the target schema (its server
    /// cannot be reached now); `None` when it was asked and accepted it.
    pub sink_unchecked: Option<String>,
    /// What the built sink says it will do ([`crate::Sink::plan_notes`]; empty when it could not
    /// be reached).
    pub sink_notes: Vec<String>,
}

/// Plans `job`: opens its source and applies its transforms to the schema.
///
/// # Errors
/// When the source cannot be opened, a transformer rejects the schema, the sink refuses the
/// target schema ([`crate::Sink::check`], with the text `migrate` would give), the sink's
/// options are wrong, or the job shares work between workers (`[state] lease`) into a sink
/// that cannot. A sink whose server cannot be reached is not an error: the plan says so
/// ([`Plan::sink_unchecked`]).
pub async fn plan(job: &Job) -> crate::Result<Plan> {
    if job.state.lease.is_some() && !job.sink.shares_jobs() {
        return Err(crate::lease::unshared_sink(job.sink.plugin()));
    }
    let source = job.source.build(&job.ctx).await?;
    let source_schema = source.schema();
    let target_schema = output_schema(&source_schema, &job.transforms)?;
    let partitions = source.partitions().await?;
    let estimated_rows = partitions.iter().map(|p| p.estimated_rows).sum();
    let resume_note = job.sink.resume_note(&target_schema);
    let (sink_unchecked, sink_notes) = match job.sink.build(&job.ctx).await {
        Ok(sink) => {
            sink.check(&target_schema)
                .map_err(|e| e.context(crate::pipeline::CHECKING_THE_SINK))?;
            (None, sink.plan_notes())
        }
        // An unreachable server is not the plan's business (`migrate` retries it); the rest
        // of the check could not be run without it.
        Err(e) if e.is_retryable() => (Some(e.to_string()), Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(Plan {
        source_schema,
        target_schema,
        partitions,
        estimated_rows,
        resume_note,
        sink_unchecked,
        sink_notes,
    })
}

impl Plan {
    /// The plan as JSON (`vmig plan --json`), with `job`'s source and sink configurations,
    /// secrets masked.
    pub fn to_json(&self, job: &Job) -> Value {
        json!({
            "source": {
                "type": job.source.plugin(),
                "config": job.source.to_json(),
                "schema": schema_json(&self.source_schema),
            },
            "transforms": job.transforms.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            "target_schema": schema_json(&self.target_schema),
            "partitions": self.partitions,
            "estimated_rows": self.estimated_rows,
            "sink": {
                "type": job.sink.plugin(),
                "config": job.sink.to_json(),
                "resume_note": self.resume_note,
                "unchecked": self.sink_unchecked,
                "notes": self.sink_notes,
            },
        })
    }
}

/// A schema as JSON: each field's name, Arrow type, nullability and Milvus type (or why it has
/// none), and the schema's metadata.
pub fn schema_json(schema: &Schema) -> Value {
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| {
            let milvus = milvus_field(f);
            let mut v = json!({
                "name": f.name(),
                "arrow_type": f.data_type().to_string(),
                "nullable": f.is_nullable(),
                "milvus_type": milvus.as_ref().ok().map(ToString::to_string),
            });
            if let (Err(e), Some(m)) = (milvus, v.as_object_mut()) {
                m.insert("milvus_error".into(), e.to_string().into());
            }
            v
        })
        .collect();
    let metadata: std::collections::BTreeMap<&String, &String> = schema.metadata().iter().collect();
    json!({ "fields": fields, "metadata": metadata })
}
