//! `vmig_core::verify` against in-memory sources: every kind of difference is found.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, FixedSizeListArray, Float32Array};
use arrow::record_batch::RecordBatch;
use vmig_core::verify::{verify, Difference, Key};
use vmig_testing::gen::{sample_batch, sample_schema};
use vmig_testing::mock::MockSource;

fn source(batches: Vec<RecordBatch>) -> MockSource {
    MockSource {
        schema: sample_schema(4),
        partitions: vec![batches],
        fail_at: None,
        target_partitions: Vec::new(),
    }
}

/// The same rows with one vector component's bits flipped in row `row`.
fn with_flipped_bit(batch: &RecordBatch, row: usize) -> RecordBatch {
    let list = batch.column(1).as_fixed_size_list();
    let mut values: Vec<f32> = list
        .values()
        .as_primitive::<arrow::datatypes::Float32Type>()
        .values()
        .to_vec();
    values[row * 4 + 2] = f32::from_bits(values[row * 4 + 2].to_bits() ^ 1);
    let (field, size, _, nulls) = list.clone().into_parts();
    let changed = FixedSizeListArray::new(field, size, Arc::new(Float32Array::from(values)), nulls);
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns[1] = Arc::new(changed);
    RecordBatch::try_new(batch.schema(), columns).unwrap()
}

#[tokio::test]
async fn identical_data_matches_in_any_order() {
    let a = sample_batch(9, 0, 50, 4);
    let b = sample_batch(9, 50, 50, 4);
    let src = source(vec![a.clone(), b.clone()]);
    let target = source(vec![b, a]);
    let report = verify(&src, &[], &target, "id", 10).await.unwrap();
    assert!(report.is_match(), "{report:?}");
    assert_eq!((report.source_rows, report.target_rows), (100, 100));
}

#[tokio::test]
async fn every_difference_is_reported_by_key() {
    let a = sample_batch(9, 0, 50, 4);
    let src = source(vec![a.clone(), sample_batch(9, 50, 5, 4)]);
    // Target: row 7 deleted, row 3 has one flipped bit, rows 50..55 missing, an extra row 1000,
    // and row 10 twice.
    let changed = with_flipped_bit(&a, 3);
    let kept: Vec<u32> = (0..50).filter(|&i| i != 7).collect();
    let indices = arrow::array::UInt32Array::from(kept);
    let target_rows = arrow::compute::take_record_batch(&changed, &indices).unwrap();
    let target = source(vec![
        target_rows,
        sample_batch(9, 1000, 1, 4),
        sample_batch(9, 0, 50, 4).slice(10, 1),
    ]);
    let report = verify(&src, &[], &target, "id", 20).await.unwrap();
    assert!(!report.is_match());
    assert_eq!(report.missing, 6, "{report:?}");
    assert_eq!(report.changed, 1, "{report:?}");
    assert_eq!(report.extra, 1, "{report:?}");
    assert_eq!(report.duplicate_in_target, 1, "{report:?}");
    assert!(report
        .examples
        .contains(&(Key::Int(7), Difference::Missing)));
    assert!(report
        .examples
        .contains(&(Key::Int(3), Difference::Changed)));
    assert!(report
        .examples
        .contains(&(Key::Int(1000), Difference::Extra)));
    assert!(report
        .examples
        .contains(&(Key::Int(10), Difference::DuplicateInTarget)));
}

#[tokio::test]
async fn duplicate_source_keys_and_a_missing_pk_are_reported() {
    let a = sample_batch(9, 0, 5, 4);
    let src = source(vec![a.clone(), a.clone()]);
    let report = verify(&src, &[], &source(vec![a]), "id", 10).await.unwrap();
    assert_eq!(report.duplicate_in_source, 5);
    assert!(!report.is_match());
    let err = verify(&src, &[], &src, "nope", 10).await.unwrap_err();
    assert!(err.to_string().contains("`nope`"), "{err}");
}
