//! Sparse float vectors in the text form Milvus bulk import reads from JSON and Parquet files.
//!
//! Milvus 2.4.3+ parses a sparse vector in an import file from a JSON object, either
//! `{"indices": [u32, …], "values": [f32, …]}` or `{"<index>": value, …}` (its
//! `CreateSparseFloatRowFromJSON`); in row-based JSON the object is the field's value, in
//! Parquet it is the text of a `Utf8` column (`IsValidSparseVectorSchema`: a string column holds
//! JSON). vmig writes the first form, the one that maps one to one onto the Arrow layout
//! (`Map<UInt32, Float32>`, see [`vmig_core::vector`]) and onto the `indices`/`values` struct
//! that 2.5.8+ also reads from Parquet. pymilvus' `BulkWriter` writes sparse Parquet columns as
//! JSON text too, so this is also what Milvus's own tooling produces.
//!
//! Every row is checked before it is written: not null, indices strictly ascending (so unique)
//! and below `u32::MAX` (Milvus's limit), values finite. A row with no entries is written as
//! `{"indices":[],"values":[]}`, which Milvus accepts.

use std::io::Write as _;
use std::path::Path;

use arrow::array::{Array, AsArray, MapArray};
use arrow::datatypes::{Float32Type, UInt32Type};
use vmig_core::{Error, Result};

use super::location;

/// Bytes of `{"indices":[],"values":[]}`.
const SPARSE_OVERHEAD: u64 = 26;
/// Most bytes one entry adds: an index (≤ 10 digits), a value (≤ 16 characters in its
/// shortest round-trip form), two commas.
const SPARSE_ENTRY: u64 = 10 + 16 + 2;

/// The map array of a sparse vector column.
///
/// # Errors
/// [`Error::Schema`] when `array` is not a `Map<UInt32, Float32>`.
pub(crate) fn as_sparse<'a>(array: &'a dyn Array, field: &str) -> Result<&'a MapArray> {
    let map = array.as_map_opt().ok_or_else(|| {
        Error::schema(format!(
            "sparse vector field `{field}` is a {}, not a Map<UInt32, Float32>",
            array.data_type()
        ))
    })?;
    if map.keys().as_primitive_opt::<UInt32Type>().is_none()
        || map.values().as_primitive_opt::<Float32Type>().is_none()
    {
        return Err(Error::schema(format!(
            "sparse vector field `{field}` does not have UInt32 keys and Float32 values"
        )));
    }
    Ok(map)
}

/// An upper bound of the bytes [`write_sparse`] writes for each row of `map`.
pub(crate) fn sparse_row_bytes(map: &MapArray) -> impl Iterator<Item = u64> + '_ {
    map.value_offsets()
        .windows(2)
        .map(|w| SPARSE_OVERHEAD + (w[1] - w[0]).max(0) as u64 * SPARSE_ENTRY)
}

/// Appends row `i` of `map` to `buf` as `{"indices":[…],"values":[…]}`; `row` is the row's
/// number in the file being written (for messages).
///
/// # Errors
/// [`Error::Data`] naming `file`, `field` and `row` for a null row, indices that are not
/// strictly ascending or equal `u32::MAX`, and NaN or infinite values.
pub(crate) fn write_sparse(
    buf: &mut Vec<u8>,
    map: &MapArray,
    i: usize,
    file: &Path,
    field: &str,
    row: u64,
) -> Result<()> {
    let at = || location(file, field, row);
    if map.is_null(i) {
        return Err(Error::data(
            at(),
            "vector is null; Milvus vectors cannot be null",
        ));
    }
    let offsets = map.value_offsets();
    let (start, end) = (offsets[i].max(0) as usize, offsets[i + 1].max(0) as usize);
    // `as_sparse` checked both types.
    let keys = map.keys().as_primitive::<UInt32Type>();
    let values = map.values().as_primitive::<Float32Type>();
    if let Some(j) = (start..end).find(|&j| keys.is_null(j) || values.is_null(j)) {
        return Err(Error::data(
            at(),
            format!("sparse vector entry {} is null", j - start),
        ));
    }
    let keys = &keys.values()[start..end];
    let values = &values.values()[start..end];
    for (n, pair) in keys.windows(2).enumerate() {
        if pair[1] <= pair[0] {
            return Err(Error::data(
                at(),
                format!(
                    "sparse vector index {} follows index {} (entry {}); indices must be strictly ascending",
                    pair[1],
                    pair[0],
                    n + 1
                ),
            ));
        }
    }
    if keys.last() == Some(&u32::MAX) {
        return Err(Error::data(
            at(),
            format!(
                "sparse vector index {} is out of range; Milvus takes indices below {}",
                u32::MAX,
                u32::MAX
            ),
        ));
    }
    if let Some((k, v)) = keys.iter().zip(values).find(|(_, v)| !v.is_finite()) {
        return Err(Error::data(
            at(),
            format!("sparse vector value at index {k} is {v}; Milvus takes only finite values"),
        ));
    }
    buf.extend_from_slice(b"{\"indices\":[");
    for (n, k) in keys.iter().enumerate() {
        if n > 0 {
            buf.push(b',');
        }
        write!(buf, "{k}")?;
    }
    buf.extend_from_slice(b"],\"values\":[");
    for (n, v) in values.iter().enumerate() {
        if n > 0 {
            buf.push(b',');
        }
        serde_json::to_writer(&mut *buf, v).map_err(|e| Error::External(Box::new(e)))?;
    }
    buf.extend_from_slice(b"]}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Float32Array, StructArray, UInt32Array};
    use arrow::buffer::OffsetBuffer;
    use arrow::datatypes::DataType;

    use super::*;

    fn map(rows: &[&[(u32, f32)]]) -> MapArray {
        let DataType::Map(entries, sorted) = vmig_core::vector::sparse_float_vector_type() else {
            unreachable!()
        };
        let DataType::Struct(parts) = entries.data_type().clone() else {
            unreachable!()
        };
        let keys: ArrayRef = Arc::new(UInt32Array::from_iter_values(
            rows.iter().flat_map(|r| r.iter().map(|e| e.0)),
        ));
        let values: ArrayRef = Arc::new(Float32Array::from_iter_values(
            rows.iter().flat_map(|r| r.iter().map(|e| e.1)),
        ));
        let kv = StructArray::new(parts, vec![keys, values], None);
        MapArray::new(
            entries,
            OffsetBuffer::from_lengths(rows.iter().map(|r| r.len())),
            kv,
            None,
            sorted,
        )
    }

    fn text(m: &MapArray, i: usize) -> Result<String> {
        let mut buf = Vec::new();
        write_sparse(&mut buf, m, i, Path::new("f.json"), "sp", 7)?;
        Ok(String::from_utf8(buf).unwrap_or_default())
    }

    #[test]
    fn rows_are_written_in_the_indices_values_form() {
        let m = map(&[
            &[(1, 0.5), (100, 1.25), (4_294_967_294, 1e-7)],
            &[],
            &[(0, 3.0)],
        ]);
        assert_eq!(
            text(&m, 0).unwrap(),
            r#"{"indices":[1,100,4294967294],"values":[0.5,1.25,1e-7]}"#
        );
        assert_eq!(text(&m, 1).unwrap(), r#"{"indices":[],"values":[]}"#);
        assert_eq!(text(&m, 2).unwrap(), r#"{"indices":[0],"values":[3.0]}"#);
        for (i, bound) in sparse_row_bytes(&m).enumerate() {
            assert!(text(&m, i).unwrap().len() as u64 <= bound);
        }
        // A sliced array keeps its own rows.
        let sliced = m.slice(2, 1);
        assert_eq!(
            text(&sliced, 0).unwrap(),
            r#"{"indices":[0],"values":[3.0]}"#
        );
    }

    #[test]
    fn bad_rows_name_file_field_and_row() {
        let m = map(&[&[(5, 1.0), (5, 2.0)], &[(u32::MAX, 1.0)], &[(1, f32::NAN)]]);
        assert_eq!(text(&m, 0).unwrap_err().to_string(), "invalid data at f.json, field `sp`, row 7: sparse vector index 5 follows index 5 (entry 1); indices must be strictly ascending");
        assert_eq!(text(&m, 1).unwrap_err().to_string(), "invalid data at f.json, field `sp`, row 7: sparse vector index 4294967295 is out of range; Milvus takes indices below 4294967295");
        assert_eq!(text(&m, 2).unwrap_err().to_string(), "invalid data at f.json, field `sp`, row 7: sparse vector value at index 1 is NaN; Milvus takes only finite values");
    }
}
