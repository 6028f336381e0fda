//! Seeded data generators: the same seed always gives the same rows, on every machine.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float32Array, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use vmig_core::vector::{float_vector_array, float_vector_field};

/// A seeded random generator.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// `rows × dim` floats in `[-1, 1)`, row-major.
pub fn vectors(seed: u64, rows: usize, dim: usize) -> Vec<f32> {
    let mut r = rng(seed);
    (0..rows * dim)
        .map(|_| r.random::<f32>() * 2.0 - 1.0)
        .collect()
}

/// The schema of [`sample_batch`]: `id` Int64, `vector` float vector, `title` Utf8 (nullable),
/// `score` Float64, `flag` Bool.
pub fn sample_schema(dim: usize) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        float_vector_field("vector", dim),
        Field::new("title", DataType::Utf8, true),
        Field::new("score", DataType::Float64, false),
        Field::new("flag", DataType::Boolean, false),
    ]))
}

/// `rows` rows with ids `first_id..first_id + rows` and seeded values; every 7th title is null
/// and titles include non-ASCII text.
///
/// # Panics
/// Never for `dim > 0` (the arrays are built to fit the schema).
pub fn sample_batch(seed: u64, first_id: i64, rows: usize, dim: usize) -> RecordBatch {
    let mut r = rng(seed ^ (first_id as u64).rotate_left(17));
    let ids = Int64Array::from_iter_values((0..rows as i64).map(|i| first_id + i));
    let values = Float32Array::from(vectors(seed ^ first_id as u64, rows, dim));
    let titles: StringArray = (0..rows)
        .map(|i| {
            let id = first_id + i as i64;
            (id % 7 != 0).then(|| format!("título {id} ✓"))
        })
        .collect();
    let scores = Float64Array::from_iter_values((0..rows).map(|_| r.random::<f64>() * 100.0));
    let flags: BooleanArray = (0..rows).map(|_| Some(r.random::<bool>())).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(ids),
        Arc::new(float_vector_array(values, dim).expect("dim > 0")),
        Arc::new(titles),
        Arc::new(scores),
        Arc::new(flags),
    ];
    RecordBatch::try_new(sample_schema(dim), columns).expect("columns match the schema")
}
