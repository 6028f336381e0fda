//! An out-of-tree transformer plugin, used from a job file.
//!
//! `normalize` scales every float vector of a field to unit L2 length (what you want before
//! loading IP-metric vectors into a COSINE collection). It is defined here, outside vmig, and
//! registered with one macro line; `examples/data/custom-transformer.toml` then uses
//! `type = "normalize"` like any built-in transformer. An embedding program only has to link the
//! crate that registers it (here it is this file itself).
//!
//! Run: `cargo run -p vmig-examples --example custom_transformer`

use std::sync::Arc;

use arrow::array::{Array, AsArray, FixedSizeListArray, Float32Array};
use arrow::datatypes::{Float32Type, SchemaRef};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use vmig::config::Job;
use vmig::pipeline::{NoProgress, Pipeline};
use vmig::vector::{vector_info, VectorType};
use vmig::{Error, Result, TransformConfig, Transformer};

/// `type = "normalize"`: scale the vectors of `field` to unit length.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NormalizeConfig {
    /// The float vector field.
    field: String,
}

impl TransformConfig for NormalizeConfig {
    const NAME: &'static str = "normalize";
    const SUMMARY: &'static str = "Scale float vectors to unit L2 length (example plugin).";
    fn example() -> Self {
        NormalizeConfig {
            field: "vector".into(),
        }
    }
    fn build(&self) -> Result<Box<dyn Transformer>> {
        Ok(Box::new(Normalize {
            field: self.field.clone(),
        }))
    }
}

vmig::register_transform!(NormalizeConfig);

#[derive(Debug)]
struct Normalize {
    field: String,
}

impl Transformer for Normalize {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        let field = input
            .field_with_name(&self.field)
            .map_err(|_| Error::schema(format!("normalize: no field `{}`", self.field)))?;
        match vector_info(field) {
            Some(v) if v.kind == VectorType::Float32 => Ok(Arc::clone(input)),
            _ => Err(Error::schema(format!(
                "normalize: `{}` is not a float vector",
                self.field
            ))),
        }
    }

    fn transform(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let i = batch.schema().index_of(&self.field)?;
        let list = batch.column(i).as_fixed_size_list();
        let dim = list.value_length() as usize;
        let values = list.values().as_primitive::<Float32Type>().values();
        let mut out = Vec::with_capacity(values.len());
        for row in values.chunks_exact(dim) {
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            let scale = if norm > 0.0 { 1.0 / norm } else { 1.0 };
            out.extend(row.iter().map(|x| x * scale));
        }
        let (field, size, _, nulls) = list.clone().into_parts();
        let normalized =
            FixedSizeListArray::try_new(field, size, Arc::new(Float32Array::from(out)), nulls)?;
        let mut columns = batch.columns().to_vec();
        columns[i] = Arc::new(normalized);
        Ok(RecordBatch::try_new(batch.schema(), columns)?)
    }
}

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let listed = vmig::registry::transforms()?;
    assert!(
        listed.contains_key("normalize"),
        "the example plugin is registered"
    );

    let out = tempfile::tempdir()?;
    // The job file refers to ${VMIG_EXAMPLE_OUT} for its output directory.
    std::env::set_var("VMIG_EXAMPLE_OUT", out.path());
    let job = Job::from_path(&vmig_examples::data_dir().join("custom-transformer.toml"))?;
    let source = job.source.build(&job.ctx).await?;
    let sink = job.sink.build(&job.ctx).await?;
    let report = Pipeline::new(source, sink)
        .with_transforms(job.transforms)
        .run(Arc::new(NoProgress))
        .await?;
    println!("normalized and wrote {} rows", report.rows_written);

    let mut checked = 0;
    for batch in vmig_examples::parquet_batches(out.path())? {
        let list = batch.column(1).as_list::<i32>();
        for r in 0..list.len() {
            let v = list.value(r);
            let norm: f32 = v
                .as_primitive::<Float32Type>()
                .values()
                .iter()
                .map(|x| x * x)
                .sum();
            assert!((norm - 1.0).abs() < 1e-4, "row {r} has squared norm {norm}");
            checked += 1;
        }
    }
    assert_eq!(checked, 2000);
    println!("ok: every one of {checked} vectors has unit length");
    Ok(())
}
