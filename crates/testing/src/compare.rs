//! Helpers for comparing migrated rows with their source bit-exactly.

use std::collections::BTreeMap;
use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float32Type, Int64Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// Every batch of every `.parquet` file directly in `dir`, file after file in name order.
///
/// # Panics
/// When the directory or a file cannot be read: the test fails there.
pub fn parquet_dir_batches(dir: &Path) -> Vec<RecordBatch> {
    let listing =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    let mut files: Vec<_> = listing
        .map(|e| {
            e.unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
                .path()
        })
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("parquet"))
        .collect();
    files.sort();
    let read = |p: &Path| -> parquet::errors::Result<Vec<RecordBatch>> {
        let file = std::fs::File::open(p)?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)?.build()?;
        Ok(reader.collect::<Result<Vec<_>, _>>()?)
    };
    files
        .iter()
        .flat_map(|p| read(p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display())))
        .collect()
}

/// The vector at `row` of `col` as little-endian bytes, the form Faiss and Milvus 1.x files hold
/// them in: a float vector column (`FixedSizeList<Float32>` or, as read back from Parquet,
/// `List<Float32>`) gives each f32's bytes, a binary vector column (`FixedSizeBinary`) its
/// bytes as they are.
///
/// # Panics
/// On any other column type: a test comparing vectors was given the wrong column.
pub fn vector_bytes(col: &dyn Array, row: usize) -> Vec<u8> {
    let floats = if let Some(list) = col.as_fixed_size_list_opt() {
        list.value(row)
    } else if let Some(list) = col.as_list_opt::<i32>() {
        list.value(row)
    } else if let Some(bin) = col.as_fixed_size_binary_opt() {
        return bin.value(row).to_vec();
    } else {
        panic!("not a vector column: {:?}", col.data_type());
    };
    floats
        .as_primitive::<Float32Type>()
        .values()
        .iter()
        .flat_map(|f| f.to_le_bytes())
        .collect()
}

/// Whether `got` holds the same values as `want`, after casting `got` to `want`'s type (a
/// target may read a column back in a wider or equivalent type, e.g. Parquet lists).
pub fn same_values(got: &dyn Array, want: &dyn Array) -> bool {
    match arrow::compute::cast(got, want.data_type()) {
        Ok(cast) => cast.to_data() == want.to_data(),
        Err(_) => false,
    }
}

/// id → bits of the float vector, for every row of `batches` (columns `id`, Int64, and
/// `vector`, a list of Float32).
///
/// # Panics
/// When a column is missing or of another type, or an id is seen twice (the message names it).
pub fn id_vector_bits(batches: &[RecordBatch], vector: &str) -> BTreeMap<i64, Vec<u32>> {
    let mut rows = BTreeMap::new();
    for batch in batches {
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .unwrap_or_else(|| panic!("no column `{name}` in {:?}", batch.schema()))
        };
        let ids = column("id").as_primitive::<Int64Type>();
        let vectors = column(vector).as_list::<i32>();
        for r in 0..batch.num_rows() {
            let bits = vectors
                .value(r)
                .as_primitive::<Float32Type>()
                .values()
                .iter()
                .map(|x| x.to_bits())
                .collect();
            assert!(
                rows.insert(ids.value(r), bits).is_none(),
                "id {} is in the output twice",
                ids.value(r)
            );
        }
    }
    rows
}

/// The bits of every float of column `column` of `batch`, in order: a Float32 or Float64
/// column, or a fixed-size list of them (a float vector), as `u64`s — so that two batches'
/// floats compare bit for bit (`-0.0` ≠ `0.0`, NaN payloads kept).
///
/// # Panics
/// When the column is missing or of another type (the message names it).
pub fn float_bits(batch: &RecordBatch, column: &str) -> Vec<u64> {
    let array = batch
        .column_by_name(column)
        .unwrap_or_else(|| panic!("no column `{column}` in {:?}", batch.schema()));
    let values = match array.data_type() {
        arrow::datatypes::DataType::FixedSizeList(..) => array.as_fixed_size_list().values(),
        _ => array,
    };
    match values.data_type() {
        arrow::datatypes::DataType::Float32 => values
            .as_primitive::<Float32Type>()
            .values()
            .iter()
            .map(|f| u64::from(f.to_bits()))
            .collect(),
        arrow::datatypes::DataType::Float64 => values
            .as_primitive::<arrow::datatypes::Float64Type>()
            .values()
            .iter()
            .map(|f| f.to_bits())
            .collect(),
        other => panic!("column `{column}` holds {other}, not floats"),
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{FixedSizeBinaryArray, Float32Array};
    use vmig_core::vector::float_vector_array;

    use super::*;

    #[test]
    fn float_and_binary_vectors_give_their_le_bytes() {
        let v = float_vector_array(Float32Array::from(vec![1.0, -2.5, 3.0, 0.0]), 2).unwrap();
        assert_eq!(
            vector_bytes(&v, 1),
            [3.0f32.to_le_bytes(), 0.0f32.to_le_bytes()].concat()
        );
        let b = FixedSizeBinaryArray::try_from_iter([[1u8, 2], [3, 4]].into_iter()).unwrap();
        assert_eq!(vector_bytes(&b, 0), vec![1, 2]);
    }
}
