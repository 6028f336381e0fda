//! Arrow ⇄ Milvus `FieldData` conversion.
//!
//! Which Milvus type a column is sent as comes from the one type table
//! ([`vmig_core::types`], through [`crate::schema::milvus_type_of`]); this module only encodes
//! and decodes the values:
//!
//! | Arrow column                                   | Milvus type        | wire payload                 |
//! |------------------------------------------------|--------------------|------------------------------|
//! | `Boolean`                                      | `Bool`             | `BoolArray`                  |
//! | `Int8`, `Int16`, `Int32`                       | `Int8/16/32`       | `IntArray` (widened to i32)  |
//! | `Int64`                                        | `Int64`            | `LongArray`                  |
//! | `Float32` / `Float64`                          | `Float` / `Double` | `FloatArray` / `DoubleArray` |
//! | `Utf8`, `LargeUtf8`, `Utf8View`                | `VarChar`          | `StringArray`                |
//! | text tagged `vmig.type = json`                 | `JSON`             | `JsonArray` (UTF-8 bytes)    |
//! | `FixedSizeList<Float32>(dim)`                  | `FloatVector(dim)` | `FloatArray` (N·dim)         |
//! | `FixedSizeBinary(dim/8)` tagged binary vector  | `BinaryVector(dim)`| bytes (N·dim/8)              |
//! | `FixedSizeList<Float16>(dim)`                  | `Float16Vector`    | bytes (N·2·dim, LE)          |
//! | `FixedSizeBinary(2·dim)` tagged bfloat16       | `BFloat16Vector`   | bytes (N·2·dim)              |
//! | `Map<UInt32, Float32>` tagged sparse           | `SparseFloatVector`| `SparseFloatArray` (per row) |
//! | `FixedSizeList<Int8>(dim)` tagged int8 vector  | `Int8Vector(dim)`  | bytes (N·dim, two's complement) |
//! | `Utf8` JSON named `$meta`                      | dynamic field      | `JsonArray`, `is_dynamic`    |
//! | `List<T>`, `LargeList<T>`, `FixedSizeList<T>`  | `Array` of T       | `ArrayArray` (per row)       |
//!
//! (T is a scalar above; a `FixedSizeList<Float32>`/`<Float16>` is a vector, not an Array.)
//! An `Array` field's `max_capacity` comes from field metadata `vmig.max_capacity` (else
//! [`crate::schema::MAX_ARRAY_CAPACITY`]); a longer row, a null row or a null element is an
//! [`Error::Data`].
//!
//! Nulls: a scalar, JSON or Array field tagged `milvus.nullable` ([`crate::meta::NULLABLE`], a
//! Milvus 2.5+ nullable field) carries nulls as `FieldData.valid_data`, one flag per row, with
//! only the valid rows in the payload (what the 2.5 proxy requires, see `compact_nulls`).
//! Decoding accepts that layout and the dense one of 2.5 query results (a placeholder per null
//! row, see `apply_validity`), preferring `ScalarField.valid_data` when a newer server fills
//! it, and [`crate::schema::arrow_field`] makes a nullable Milvus field a nullable Arrow field. Anywhere else
//! (untagged fields, vectors, Array elements) a null is an [`Error::Data`] naming the field and
//! row; callers that want a default must fill it in before converting. Milvus 2.3 (the test
//! server) has no nullable fields, so the null layouts are unit-tested with constructed
//! `FieldData` only.
//!
//! Sparse rows go on the wire as `(u32 index, f32 value)` little-endian pairs with indices
//! strictly ascending (an unsorted or repeated index is an [`Error::Data`]), and the payload's
//! `dim` is the largest index + 1. Float16, bfloat16 and sparse vectors are unit-tested against
//! the milvus-proto encoding only: Milvus 2.3.5 (the test server) has none of them.
//!
//! [`crate::schema::arrow_field`] carries the Milvus field's properties in Arrow field metadata
//! (keys in [`crate::meta`]) so a collection can be recreated from the Arrow schema alone.

use std::sync::Arc;

use arrow::array::{
    new_empty_array, Array, ArrayRef, AsArray, BinaryArray, BooleanArray, FixedSizeBinaryArray,
    FixedSizeListArray, Float16Array, Float32Array, Float64Array, GenericListArray, Int16Array,
    Int32Array, Int64Array, Int8Array, OffsetSizeTrait, StringArray, UInt32Array,
};
use arrow::buffer::{Buffer, OffsetBuffer};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Field, Float16Type, Float32Type, Float64Type, Int16Type,
    Int32Type, Int64Type, Int8Type, SchemaRef, UInt32Type,
};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use milvus::proto::schema::{
    field_data, scalar_field, vector_field, ArrayArray, BoolArray, DataType as MDataType,
    DoubleArray, FieldData, FloatArray, IntArray, JsonArray, LongArray, ScalarField,
    SparseFloatArray, StringArray as MStringArray, VectorField,
};
use vmig_core::types::MilvusType;
use vmig_core::vector;
use vmig_core::{Error, Result};

use crate::schema::{array_element_type, arrow_max_capacity, from_proto, milvus_type_of};

fn unsupported(field: &Field, why: &str) -> Error {
    Error::unsupported(format!("field `{}`", field.name()), why.to_string())
}

fn null_error(field: &str, row: usize) -> Error {
    Error::data(
        format!("field `{field}` row {row}"),
        "null value in a field that is not nullable (Milvus 2.3/2.4 have no nullable fields; on 2.5+ the target field must be created nullable): fill it in before the sink (e.g. a default) or drop the row",
    )
}

fn check_no_nulls(name: &str, array: &dyn Array) -> Result<()> {
    if let Some(nulls) = array.logical_nulls() {
        if nulls.null_count() > 0 {
            let row = (0..array.len()).find(|&i| nulls.is_null(i)).unwrap_or(0);
            return Err(null_error(name, row));
        }
    }
    Ok(())
}

fn scalar(name: &str, t: MDataType, data: scalar_field::Data) -> FieldData {
    FieldData {
        r#type: t as i32,
        field_name: name.to_string(),
        field: Some(field_data::Field::Scalars(ScalarField {
            data: Some(data),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn vectors(name: &str, t: MDataType, dim: i64, data: vector_field::Data) -> FieldData {
    FieldData {
        r#type: t as i32,
        field_name: name.to_string(),
        field: Some(field_data::Field::Vectors(VectorField {
            dim,
            data: Some(data),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// Converts one Arrow column into a Milvus `FieldData` named after `field`.
///
/// # Errors
/// [`Error::Data`] naming the field and row of a null; [`Error::Unsupported`] for types Milvus
/// cannot hold.
pub fn column_to_field_data(field: &Field, array: &ArrayRef) -> Result<FieldData> {
    let name = field.name().as_str();
    let (t, dim) = milvus_type_of(field)?;
    // Only a field tagged `milvus.nullable` (a Milvus 2.5+ nullable field) may carry nulls:
    // it always gets `valid_data`, one flag per row, as Milvus wants for a nullable field.
    let valid = if crate::meta::is_nullable(field) && is_nullable_type(t) {
        Some(validity(array.as_ref()))
    } else {
        check_no_nulls(name, array.as_ref())?;
        None
    };
    let is_valid = |row: usize| {
        valid
            .as_ref()
            .is_none_or(|v| v.get(row).copied().unwrap_or(true))
    };
    let fd = match t {
        MDataType::Bool
        | MDataType::Int8
        | MDataType::Int16
        | MDataType::Int32
        | MDataType::Int64
        | MDataType::Float
        | MDataType::Double
        | MDataType::VarChar => scalar(name, t, scalar_data(field, t, array)?),
        MDataType::Array => scalar(name, t, array_data(field, array, valid.as_deref())?),
        MDataType::Json => {
            let data = strings(array)?
                .into_iter()
                .enumerate()
                .map(|(row, s)| {
                    if !is_valid(row) {
                        return Ok(Vec::new());
                    }
                    serde_json::from_str::<serde_json::Value>(&s).map_err(|e| {
                        Error::data(
                            format!("field `{name}` row {row}"),
                            format!("not valid JSON: {e}"),
                        )
                    })?;
                    Ok(s.into_bytes())
                })
                .collect::<Result<Vec<_>>>()?;
            let mut fd = scalar(name, t, scalar_field::Data::JsonData(JsonArray { data }));
            fd.is_dynamic = crate::meta::is_dynamic_field(field);
            fd
        }
        MDataType::SparseFloatVector => {
            let (contents, dim) = sparse_rows(field, array)?;
            vectors(
                name,
                t,
                dim,
                vector_field::Data::SparseFloatVector(SparseFloatArray { contents, dim }),
            )
        }
        MDataType::FloatVector => {
            let list = fixed_list(field, array)?;
            let values = list.values();
            check_no_nulls(name, values.as_ref())?;
            let Some(floats) = values.as_primitive_opt::<Float32Type>() else {
                return Err(unsupported(field, "a float vector must have Float32 items"));
            };
            vectors(
                name,
                t,
                dim,
                vector_field::Data::FloatVector(FloatArray {
                    data: floats.values().to_vec(),
                }),
            )
        }
        MDataType::Float16Vector => {
            let list = fixed_list(field, array)?;
            let values = list.values();
            check_no_nulls(name, values.as_ref())?;
            let Some(halves) = values.as_primitive_opt::<Float16Type>() else {
                return Err(unsupported(
                    field,
                    "a float16 vector must have Float16 items",
                ));
            };
            let mut bytes = Vec::with_capacity(halves.len() * 2);
            for h in halves.values().iter() {
                bytes.extend_from_slice(&h.to_le_bytes());
            }
            vectors(name, t, dim, vector_field::Data::Float16Vector(bytes))
        }
        MDataType::Int8Vector => {
            let list = fixed_list(field, array)?;
            let values = list.values();
            check_no_nulls(name, values.as_ref())?;
            let Some(ints) = values.as_primitive_opt::<Int8Type>() else {
                return Err(unsupported(field, "an int8 vector must have Int8 items"));
            };
            let bytes = ints.values().iter().map(|v| v.to_le_bytes()[0]).collect();
            vectors(name, t, dim, vector_field::Data::Int8Vector(bytes))
        }
        MDataType::BinaryVector | MDataType::BFloat16Vector => {
            let Some(fixed) = array.as_fixed_size_binary_opt() else {
                return Err(unsupported(field, "expected FixedSizeBinary"));
            };
            let bytes = fixed.value_data().to_vec();
            let data = if t == MDataType::BinaryVector {
                vector_field::Data::BinaryVector(bytes)
            } else {
                vector_field::Data::Bfloat16Vector(bytes)
            };
            vectors(name, t, dim, data)
        }
        other => {
            return Err(unsupported(
                field,
                &format!("Milvus type {other:?} is not supported yet"),
            ))
        }
    };
    Ok(match valid {
        Some(valid) => compact_nulls(fd, valid),
        None => fd,
    })
}

/// Whether Milvus fields of type `t` can be nullable (scalars, JSON and Array; never vectors).
fn is_nullable_type(t: MDataType) -> bool {
    from_proto(t).is_some_and(MilvusType::can_be_nullable)
}

/// One flag per row: `true` where `array` holds a value.
fn validity(array: &dyn Array) -> Vec<bool> {
    match array.logical_nulls() {
        Some(nulls) => nulls.iter().collect(),
        None => vec![true; array.len()],
    }
}

/// Drops `keep[i] == false` entries of `v`.
fn retain_rows<T>(v: &mut Vec<T>, keep: &[bool]) {
    let mut row = 0;
    v.retain(|_| {
        let k = keep.get(row).copied().unwrap_or(true);
        row += 1;
        k
    });
}

/// `$body` with `$a` bound to the payload of whichever scalar kind `$data` (a
/// `scalar_field::Data`, by value or reference) holds — Bool, Int, Long, Float, Double,
/// String, JSON or Array, whose values all sit in `$a.data` — else `$other`. The one list of
/// those kinds for code that treats them alike (null compaction, and its inverse in tests).
macro_rules! match_scalar_values {
    ($data:expr, $a:ident => $body:expr, _ => $other:expr) => {{
        use scalar_field::Data as D;
        match $data {
            D::BoolData($a) => $body,
            D::IntData($a) => $body,
            D::LongData($a) => $body,
            D::FloatData($a) => $body,
            D::DoubleData($a) => $body,
            D::StringData($a) => $body,
            D::JsonData($a) => $body,
            D::ArrayData($a) => $body,
            _ => $other,
        }
    }};
}

/// Turns the dense payload of a nullable column (one entry per row, placeholders at null rows)
/// into what Milvus wants on insert/upsert: `valid_data` with one flag per row and a payload
/// holding the valid rows only.
///
/// Layout source: the Milvus 2.5 proxy (`internal/proxy/validate_util.go`,
/// `fillWithNullValueImpl`) requires `len(data) == count(valid_data == true)` for a nullable
/// field and re-expands the rows itself; pymilvus's insert path (`entity_helper`) likewise
/// appends a value only for non-null rows. A dense payload with nulls is refused ("the length
/// of field is wrong"). `valid_data` goes in the top-level `FieldData.valid_data`, the field
/// Milvus 2.5 reads; newer protos keep reading it as the fallback for the per-payload
/// `ScalarField.valid_data`.
fn compact_nulls(mut fd: FieldData, valid: Vec<bool>) -> FieldData {
    if valid.iter().any(|v| !v) {
        if let Some(field_data::Field::Scalars(ScalarField {
            data: Some(data), ..
        })) = &mut fd.field
        {
            match_scalar_values!(data, a => retain_rows(&mut a.data, &valid), _ => {})
        }
    }
    fd.valid_data = valid;
    fd
}

/// The wire rows of a sparse column — `(u32 index, f32 value)` little-endian pairs per row —
/// and the payload `dim` (largest index + 1).
fn sparse_rows(field: &Field, array: &ArrayRef) -> Result<(Vec<Vec<u8>>, i64)> {
    let name = field.name().as_str();
    let Some(map) = array.as_map_opt() else {
        return Err(unsupported(
            field,
            "a sparse vector must be a Map<UInt32, Float32>",
        ));
    };
    let keys = map.keys();
    let values = map.values();
    check_no_nulls(name, keys.as_ref())?;
    check_no_nulls(name, values.as_ref())?;
    let (Some(keys), Some(values)) = (
        keys.as_primitive_opt::<UInt32Type>(),
        values.as_primitive_opt::<Float32Type>(),
    ) else {
        return Err(unsupported(
            field,
            "a sparse vector must be a Map<UInt32, Float32>",
        ));
    };
    let mut dim = 0i64;
    let mut rows = Vec::with_capacity(map.len());
    for (row, w) in map.value_offsets().windows(2).enumerate() {
        let (start, end) = (w[0] as usize, w[1] as usize);
        let mut bytes = Vec::with_capacity((end - start) * 8);
        let mut prev: Option<u32> = None;
        for i in start..end {
            let k = keys.value(i);
            if prev.is_some_and(|p| k <= p) {
                return Err(Error::data(
                    format!("field `{name}` row {row}"),
                    format!("sparse index {k} follows {}: indices must be strictly ascending (sort them and drop repeats)", prev.unwrap_or(0)),
                ));
            }
            prev = Some(k);
            dim = dim.max(i64::from(k) + 1);
            bytes.extend_from_slice(&k.to_le_bytes());
            bytes.extend_from_slice(&values.value(i).to_le_bytes());
        }
        rows.push(bytes);
    }
    Ok((rows, dim))
}

/// Decodes wire sparse rows into the Arrow sparse representation.
fn decode_sparse(field: &Field, rows: &[Vec<u8>]) -> Result<ArrayRef> {
    let mut keys = Vec::new();
    let mut values = Vec::new();
    let mut lengths = Vec::with_capacity(rows.len());
    for (row, bytes) in rows.iter().enumerate() {
        if bytes.len() % 8 != 0 {
            return Err(Error::data(
                format!("query result field `{}` row {row}", field.name()),
                format!(
                    "{} bytes is not a whole number of (index, value) pairs",
                    bytes.len()
                ),
            ));
        }
        for pair in bytes.chunks_exact(8) {
            keys.push(u32::from_le_bytes([pair[0], pair[1], pair[2], pair[3]]));
            values.push(f32::from_le_bytes([pair[4], pair[5], pair[6], pair[7]]));
        }
        lengths.push(bytes.len() / 8);
    }
    vector::sparse_float_vector_array(keys, values, lengths)
}

/// The values of a primitive column of Arrow type `T`, or `None` when the column has another type.
fn native_values<T: ArrowPrimitiveType>(array: &ArrayRef) -> Option<Vec<T::Native>> {
    Some(array.as_primitive_opt::<T>()?.values().to_vec())
}

/// The wire payload of a scalar column of Milvus type `t` (nulls are checked by the caller).
fn scalar_data(field: &Field, t: MDataType, array: &ArrayRef) -> Result<scalar_field::Data> {
    let wrong = || {
        unsupported(
            field,
            &format!("Arrow type {} cannot be sent as {t:?}", array.data_type()),
        )
    };
    Ok(match t {
        MDataType::Bool => scalar_field::Data::BoolData(BoolArray {
            data: array
                .as_boolean_opt()
                .ok_or_else(wrong)?
                .iter()
                .map(|v| v.unwrap_or(false))
                .collect(),
        }),
        MDataType::Int8 | MDataType::Int16 | MDataType::Int32 => {
            let data: Vec<i32> = match array.data_type() {
                DataType::Int8 => array
                    .as_primitive::<Int8Type>()
                    .values()
                    .iter()
                    .map(|&v| i32::from(v))
                    .collect(),
                DataType::Int16 => array
                    .as_primitive::<Int16Type>()
                    .values()
                    .iter()
                    .map(|&v| i32::from(v))
                    .collect(),
                DataType::Int32 => array.as_primitive::<Int32Type>().values().to_vec(),
                _ => return Err(wrong()),
            };
            scalar_field::Data::IntData(IntArray { data })
        }
        MDataType::Int64 => scalar_field::Data::LongData(LongArray {
            data: native_values::<Int64Type>(array).ok_or_else(wrong)?,
        }),
        MDataType::Float => scalar_field::Data::FloatData(FloatArray {
            data: native_values::<Float32Type>(array).ok_or_else(wrong)?,
        }),
        MDataType::Double => scalar_field::Data::DoubleData(DoubleArray {
            data: native_values::<Float64Type>(array).ok_or_else(wrong)?,
        }),
        MDataType::VarChar => scalar_field::Data::StringData(MStringArray {
            data: strings(array)?,
        }),
        _ => return Err(wrong()),
    })
}

/// The wire payload of a `List<T>`/`LargeList<T>` column: one `ScalarField` per row (an empty
/// placeholder at rows `valid` marks null).
fn array_data(
    field: &Field,
    array: &ArrayRef,
    valid: Option<&[bool]>,
) -> Result<scalar_field::Data> {
    let name = field.name().as_str();
    let element_type = array_element_type(field)
        .ok_or_else(|| unsupported(field, "expected a list of bool, int, float or utf8"))?;
    let capacity = arrow_max_capacity(field)?;
    if let Some(list) = array.as_list_opt::<i32>() {
        list_rows(name, element_type, capacity, field, list, valid)
    } else if let Some(list) = array.as_list_opt::<i64>() {
        list_rows(name, element_type, capacity, field, list, valid)
    } else if let DataType::FixedSizeList(item, _) = array.data_type() {
        // Lossless: every row becomes a list of the same length.
        let list = arrow::compute::cast(array, &DataType::List(item.clone()))?;
        list_rows(
            name,
            element_type,
            capacity,
            field,
            list.as_list::<i32>(),
            valid,
        )
    } else {
        Err(unsupported(
            field,
            "expected a List, LargeList or FixedSizeList column",
        ))
    }
}

fn list_rows<O: OffsetSizeTrait>(
    name: &str,
    element_type: MDataType,
    capacity: i64,
    field: &Field,
    list: &GenericListArray<O>,
    valid: Option<&[bool]>,
) -> Result<scalar_field::Data> {
    let values = list.values();
    let nulls = values.logical_nulls();
    let mut rows = Vec::with_capacity(list.len());
    for (row, w) in list.value_offsets().windows(2).enumerate() {
        if valid.is_some_and(|v| !v.get(row).copied().unwrap_or(true)) {
            rows.push(ScalarField::default());
            continue;
        }
        let (start, end) = (w[0].as_usize(), w[1].as_usize());
        let len = end.saturating_sub(start);
        if len as i64 > capacity {
            return Err(Error::data(
                format!("field `{name}` row {row}"),
                format!("{len} elements; the Array field's max_capacity is {capacity}"),
            ));
        }
        if let Some(nulls) = &nulls {
            if let Some(i) = (start..end).find(|&i| nulls.is_null(i)) {
                return Err(Error::data(
                    format!("field `{name}` row {row}"),
                    format!(
                        "null element at index {}: Milvus 2.3 Array elements are not nullable",
                        i - start
                    ),
                ));
            }
        }
        let slice = values.slice(start, len);
        rows.push(ScalarField {
            data: Some(scalar_data(field, element_type, &slice)?),
            ..Default::default()
        });
    }
    Ok(scalar_field::Data::ArrayData(ArrayArray {
        data: rows,
        element_type: element_type as i32,
    }))
}

fn fixed_list<'a>(field: &Field, array: &'a ArrayRef) -> Result<&'a FixedSizeListArray> {
    array
        .as_fixed_size_list_opt()
        .ok_or_else(|| unsupported(field, "expected a FixedSizeList vector column"))
}

fn strings(array: &ArrayRef) -> Result<Vec<String>> {
    if let Some(a) = array.as_string_opt::<i32>() {
        return Ok(a
            .iter()
            .map(|v| v.unwrap_or_default().to_string())
            .collect());
    }
    if let Some(a) = array.as_string_opt::<i64>() {
        return Ok(a
            .iter()
            .map(|v| v.unwrap_or_default().to_string())
            .collect());
    }
    if let Some(a) = array.as_string_view_opt() {
        return Ok(a
            .iter()
            .map(|v| v.unwrap_or_default().to_string())
            .collect());
    }
    Err(Error::schema(format!(
        "expected a string column, found {}",
        array.data_type()
    )))
}

/// Converts every column of `batch` (see the module table).
///
/// # Errors
/// As [`column_to_field_data`].
pub fn batch_to_field_data(batch: &RecordBatch) -> Result<Vec<FieldData>> {
    let schema = batch.schema();
    schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, a)| column_to_field_data(f, a))
        .collect()
}

/// Bytes an insert request carrying `batch` takes on the wire, estimated from the Arrow data
/// (an upper bound up to a few bytes per row and field). Used to size requests by bytes.
pub fn estimate_request_bytes(batch: &RecordBatch) -> usize {
    let mut total = 64;
    for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
        total += 32 + field.name().len() + column_bytes(array);
    }
    total
}

/// Payload bytes of one column (see [`estimate_request_bytes`]).
fn column_bytes(array: &ArrayRef) -> usize {
    let rows = array.len();
    match array.data_type() {
        DataType::Boolean => rows,
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => rows * 10,
        DataType::Float32 => rows * 4,
        DataType::Float64 => rows * 8,
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            let offs = a.value_offsets();
            let first = offs.first().copied().unwrap_or(0);
            let last = offs.last().copied().unwrap_or(0);
            (last - first).max(0) as usize + rows * 5
        }
        DataType::LargeUtf8 => {
            let a = array.as_string::<i64>();
            let offs = a.value_offsets();
            let first = offs.first().copied().unwrap_or(0);
            let last = offs.last().copied().unwrap_or(0);
            (last - first).max(0) as usize + rows * 5
        }
        DataType::FixedSizeList(item, dim) => {
            let width = item.data_type().primitive_width().unwrap_or(8);
            rows * (*dim as usize) * width
        }
        DataType::FixedSizeBinary(w) => rows * (*w as usize),
        DataType::List(_) => {
            let a = array.as_list::<i32>();
            list_bytes(a.values(), a.value_offsets())
        }
        DataType::LargeList(_) => {
            let a = array.as_list::<i64>();
            list_bytes(a.values(), a.value_offsets())
        }
        _ => array.get_array_memory_size(),
    }
}

/// Payload bytes of the rows of a list column: its elements plus, per row, the framing of
/// one `ScalarField` (field tag, length, oneof tag, length, packed tag, length).
fn list_bytes<O: OffsetSizeTrait>(values: &ArrayRef, offsets: &[O]) -> usize {
    let rows = offsets.len().saturating_sub(1);
    let first = offsets.first().map_or(0, |o| o.as_usize());
    let last = offsets.last().map_or(0, |o| o.as_usize()).max(first);
    let last = last.min(values.len());
    let first = first.min(last);
    rows * 16 + column_bytes(&values.slice(first, last - first))
}

/// Decodes query results into a batch of `schema` (every field of `schema` must be present
/// in `fields`, extra result fields are ignored).
///
/// # Errors
/// [`Error::Data`] when a result field is missing, has another type or another row count.
pub fn field_data_to_batch(schema: &SchemaRef, fields: &[FieldData]) -> Result<RecordBatch> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    let mut rows: Option<usize> = None;
    for f in schema.fields() {
        let fd = fields
            .iter()
            .find(|d| &d.field_name == f.name())
            .ok_or_else(|| {
                Error::data(
                    format!("query result field `{}`", f.name()),
                    "missing from the server's reply",
                )
            })?;
        let array = decode_field(f, fd)?;
        match rows {
            Some(n) if n != array.len() => {
                return Err(Error::data(
                    format!("query result field `{}`", f.name()),
                    format!("{} values where other fields have {n}", array.len()),
                ))
            }
            _ => rows = Some(array.len()),
        }
        columns.push(array);
    }
    let options = RecordBatchOptions::new().with_row_count(Some(rows.unwrap_or(0)));
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &options,
    )?)
}

fn mismatch(field: &Field, fd: &FieldData) -> Error {
    Error::data(
        format!("query result field `{}`", field.name()),
        format!(
            "the server sent Milvus type {} which does not decode to {}",
            fd.r#type,
            field.data_type()
        ),
    )
}

/// Decodes a scalar payload into an Arrow array of `dt`; `None` when they do not match.
fn decode_scalar(data: &scalar_field::Data, dt: &DataType) -> Option<ArrayRef> {
    Some(match (data, dt) {
        (scalar_field::Data::BoolData(b), DataType::Boolean) => {
            Arc::new(BooleanArray::from(b.data.clone()))
        }
        (scalar_field::Data::IntData(i), DataType::Int8) => Arc::new(Int8Array::from(
            i.data.iter().map(|&v| v as i8).collect::<Vec<_>>(),
        )),
        (scalar_field::Data::IntData(i), DataType::Int16) => Arc::new(Int16Array::from(
            i.data.iter().map(|&v| v as i16).collect::<Vec<_>>(),
        )),
        (scalar_field::Data::IntData(i), DataType::Int32) => {
            Arc::new(Int32Array::from(i.data.clone()))
        }
        (scalar_field::Data::LongData(l), DataType::Int64) => {
            Arc::new(Int64Array::from(l.data.clone()))
        }
        (scalar_field::Data::FloatData(x), DataType::Float32) => {
            Arc::new(Float32Array::from(x.data.clone()))
        }
        (scalar_field::Data::DoubleData(x), DataType::Float64) => {
            Arc::new(Float64Array::from(x.data.clone()))
        }
        (scalar_field::Data::StringData(x), dt) if vmig_core::types::is_text(dt) => {
            let utf8: ArrayRef = Arc::new(StringArray::from_iter_values(x.data.iter()));
            arrow::compute::cast(&utf8, dt).ok()?
        }
        (scalar_field::Data::JsonData(j), DataType::Utf8) => {
            let strings = j
                .data
                .iter()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .collect::<Vec<_>>();
            Arc::new(StringArray::from_iter_values(strings))
        }
        (scalar_field::Data::BytesData(b), DataType::Binary) => Arc::new(
            BinaryArray::from_iter_values(b.data.iter().map(|v| v.as_slice())),
        ),
        _ => return None,
    })
}

/// Decodes an `ArrayArray` (one `ScalarField` per row) into a list column with items `item`.
/// A row without a payload is an empty list.
fn decode_list<O: OffsetSizeTrait>(
    field: &Field,
    item: &Arc<Field>,
    a: &ArrayArray,
) -> Result<ArrayRef> {
    let mut parts: Vec<ArrayRef> = Vec::with_capacity(a.data.len());
    let mut lengths = Vec::with_capacity(a.data.len());
    for (row, cell) in a.data.iter().enumerate() {
        let part = match &cell.data {
            None => new_empty_array(item.data_type()),
            Some(d) => decode_scalar(d, item.data_type()).ok_or_else(|| {
                Error::data(
                    format!("query result field `{}` row {row}", field.name()),
                    format!(
                        "the server sent Array elements that do not decode to {}",
                        item.data_type()
                    ),
                )
            })?,
        };
        lengths.push(part.len());
        parts.push(part);
    }
    let values = if parts.is_empty() {
        new_empty_array(item.data_type())
    } else {
        let refs: Vec<&dyn Array> = parts.iter().map(|p| p.as_ref()).collect();
        arrow::compute::concat(&refs)?
    };
    Ok(Arc::new(GenericListArray::<O>::try_new(
        item.clone(),
        OffsetBuffer::<O>::from_lengths(lengths),
        values,
        None,
    )?))
}

/// Marks the rows `valid` flags `false` null in `array` (a no-op for an empty `valid`).
///
/// Layout: Milvus 2.5 query results of a nullable field are dense, one payload entry per row
/// with a placeholder (zero, `false`, empty string) at null rows — pymilvus reads row `i` of a
/// nullable field as `data[i]` after checking `valid_data[i]`
/// (`pymilvus/client/entity_helper.py`, `extract_row_data_from_fields_data`). Insert payloads,
/// and newer servers' payloads for nullable vectors, hold the valid rows only (see
/// [`compact_nulls`]), so a payload as long as the count of valid rows is read that way too;
/// any other length is an [`Error::Data`].
fn apply_validity(field: &Field, array: ArrayRef, valid: &[bool]) -> Result<ArrayRef> {
    if valid.is_empty() {
        return Ok(array);
    }
    let present = valid.iter().filter(|v| **v).count();
    let indices: UInt32Array = if array.len() == valid.len() {
        if present == valid.len() {
            return Ok(array);
        }
        (0u32..).zip(valid).map(|(i, v)| v.then_some(i)).collect()
    } else if array.len() == present {
        let mut next = 0u32;
        valid
            .iter()
            .map(|v| {
                v.then(|| {
                    next += 1;
                    next - 1
                })
            })
            .collect()
    } else {
        return Err(Error::data(
            format!("query result field `{}`", field.name()),
            format!(
                "{} values for {} rows of which {present} are valid (valid_data)",
                array.len(),
                valid.len()
            ),
        ));
    };
    if present < valid.len() && !field.is_nullable() {
        let row = valid.iter().position(|v| !v).unwrap_or(0);
        return Err(Error::data(
            format!("query result field `{}` row {row}", field.name()),
            "null value in a field the schema says is not nullable",
        ));
    }
    Ok(arrow::compute::take(array.as_ref(), &indices, None)?)
}

fn decode_field(field: &Field, fd: &FieldData) -> Result<ArrayRef> {
    use field_data::Field as F;
    let bad = || mismatch(field, fd);
    match (&fd.field, field.data_type()) {
        (Some(F::Scalars(s)), dt) => {
            let data = s.data.as_ref().ok_or_else(bad)?;
            let array = match (data, dt) {
                (scalar_field::Data::ArrayData(a), DataType::List(item)) => {
                    decode_list::<i32>(field, item, a)?
                }
                (scalar_field::Data::ArrayData(a), DataType::LargeList(item)) => {
                    decode_list::<i64>(field, item, a)?
                }
                _ => decode_scalar(data, dt).ok_or_else(bad)?,
            };
            // The payload's own validity wins; the top-level one is what Milvus 2.5 sends.
            let valid = if s.valid_data.is_empty() {
                &fd.valid_data
            } else {
                &s.valid_data
            };
            apply_validity(field, array, valid)
        }
        (Some(F::Vectors(v)), DataType::FixedSizeList(item, dim))
            if item.data_type() == &DataType::Float16 =>
        {
            let Some(vector_field::Data::Float16Vector(b)) = &v.data else {
                return Err(bad());
            };
            let d = *dim as usize;
            if d == 0 || b.len() % (2 * d) != 0 {
                return Err(Error::data(
                    format!("query result field `{}`", field.name()),
                    format!("{} bytes is not a multiple of 2·dim {d}", b.len()),
                ));
            }
            let halves: Vec<half::f16> = b
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]))
                .collect();
            Ok(Arc::new(FixedSizeListArray::try_new(
                item.clone(),
                *dim,
                Arc::new(Float16Array::from(halves)),
                None,
            )?))
        }
        (Some(F::Vectors(v)), DataType::FixedSizeList(item, dim))
            if item.data_type() == &DataType::Int8 =>
        {
            let Some(vector_field::Data::Int8Vector(b)) = &v.data else {
                return Err(bad());
            };
            let d = *dim as usize;
            if d == 0 || b.len() % d != 0 {
                return Err(Error::data(
                    format!("query result field `{}`", field.name()),
                    format!("{} bytes is not a multiple of dim {d}", b.len()),
                ));
            }
            let ints: Vec<i8> = b.iter().map(|x| i8::from_le_bytes([*x])).collect();
            Ok(Arc::new(FixedSizeListArray::try_new(
                item.clone(),
                *dim,
                Arc::new(Int8Array::from(ints)),
                None,
            )?))
        }
        (Some(F::Vectors(v)), DataType::Map(..)) => {
            let Some(vector_field::Data::SparseFloatVector(sp)) = &v.data else {
                return Err(bad());
            };
            decode_sparse(field, &sp.contents)
        }
        (Some(F::Vectors(v)), DataType::FixedSizeList(item, dim)) => {
            let Some(vector_field::Data::FloatVector(x)) = &v.data else {
                return Err(bad());
            };
            let d = *dim as usize;
            if d == 0 || x.data.len() % d != 0 {
                return Err(Error::data(
                    format!("query result field `{}`", field.name()),
                    format!("{} floats is not a multiple of dim {d}", x.data.len()),
                ));
            }
            let values = Float32Array::from(x.data.clone());
            Ok(Arc::new(FixedSizeListArray::try_new(
                item.clone(),
                *dim,
                Arc::new(values),
                None,
            )?))
        }
        (Some(F::Vectors(v)), DataType::FixedSizeBinary(w)) => {
            let bytes = match &v.data {
                Some(vector_field::Data::BinaryVector(b))
                | Some(vector_field::Data::Bfloat16Vector(b)) => b,
                _ => return Err(bad()),
            };
            let w = *w as usize;
            if w == 0 || bytes.len() % w != 0 {
                return Err(Error::data(
                    format!("query result field `{}`", field.name()),
                    format!("{} bytes is not a multiple of {w}", bytes.len()),
                ));
            }
            Ok(Arc::new(FixedSizeBinaryArray::try_new(
                w as i32,
                Buffer::from_vec(bytes.clone()),
                None,
            )?))
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::MAX_CAPACITY as META_MAX_CAPACITY;
    use crate::schema::arrow_field;
    use arrow::datatypes::Schema;
    use milvus::proto::schema::FieldSchema;

    /// The message of the error converting `col` for `field`, or "" if it converts.
    fn conversion_error(field: &Field, col: &ArrayRef) -> String {
        column_to_field_data(field, col)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn float_and_binary_vectors_round_trip() -> Result<()> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            vector::float_vector_field("v", 2),
            vector::binary_vector_field("b", 16)?,
            Field::new("s", DataType::Utf8, false),
        ]));
        let v = FixedSizeListArray::try_new(
            Arc::new(Field::new_list_field(DataType::Float32, true)),
            2,
            Arc::new(Float32Array::from(vec![1.0, -0.0, f32::MIN_POSITIVE, 3.5])),
            None,
        )?;
        let b = FixedSizeBinaryArray::try_from_iter([[1u8, 2], [255, 0]].into_iter())?;
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![7, -9])),
                Arc::new(v),
                Arc::new(b),
                Arc::new(StringArray::from(vec!["é", "日本"])),
            ],
        )?;
        let sliced = batch.slice(1, 1);
        let fd = batch_to_field_data(&sliced)?;
        let back = field_data_to_batch(&schema, &fd)?;
        assert_eq!(back, sliced);
        assert!(estimate_request_bytes(&batch) > 0);
        Ok(())
    }

    /// Int8 vectors (Milvus 2.6, no server here) against milvus-proto's `VectorField.int8_vector`:
    /// one two's-complement byte per dimension, row after row.
    #[test]
    fn int8_vectors_follow_the_proto() -> Result<()> {
        let f = vector::int8_vector_field("q", 3);
        let schema = Arc::new(Schema::new(vec![f.clone()]));
        let col = FixedSizeListArray::try_new(
            Arc::new(Field::new_list_field(DataType::Int8, true)),
            3,
            Arc::new(Int8Array::from(vec![-128i8, -1, 0, 1, 127, 5])),
            None,
        )?;
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(col)])?;
        let fd = batch_to_field_data(&batch)?;
        assert_eq!(fd[0].r#type, MDataType::Int8Vector as i32);
        let Some(field_data::Field::Vectors(v)) = &fd[0].field else {
            panic!("not a vector: {:?}", fd[0]);
        };
        assert_eq!(v.dim, 3);
        assert_eq!(
            v.data,
            Some(vector_field::Data::Int8Vector(vec![
                0x80, 0xff, 0, 1, 0x7f, 5
            ]))
        );
        assert_eq!(field_data_to_batch(&schema, &fd)?, batch);
        let fs = FieldSchema {
            name: "q".into(),
            data_type: MDataType::Int8Vector as i32,
            type_params: vec![crate::params::pair("dim", 3)],
            ..Default::default()
        };
        let back = arrow_field(&fs)?;
        assert_eq!(
            (back.data_type(), back.metadata()),
            (f.data_type(), f.metadata())
        );
        // Untagged, the same Arrow type is an Array of Int8 scalars.
        let plain = Field::new(
            "a",
            DataType::FixedSizeList(Arc::new(Field::new_list_field(DataType::Int8, true)), 3),
            false,
        );
        assert_eq!(milvus_type_of(&plain)?.0, MDataType::Array);
        Ok(())
    }

    /// Float16, bfloat16 and sparse vectors against the milvus-proto encoding (Milvus 2.3.5 has
    /// none of them, so these are checked with constructed data only).
    #[test]
    fn half_precision_and_sparse_vectors_follow_the_proto() -> Result<()> {
        use half::f16;
        let h = vector::float16_vector_field("h", 2);
        let bf = vector::bfloat16_vector_field("bf", 2);
        let sp = vector::sparse_float_vector_field("sp");
        let schema = Arc::new(Schema::new(vec![h.clone(), bf.clone(), sp.clone()]));
        let halves = [
            f16::from_f32(1.5),
            f16::NEG_ZERO,
            f16::MAX,
            f16::from_f32(-2.25),
        ];
        let h_col = FixedSizeListArray::try_new(
            Arc::new(Field::new_list_field(DataType::Float16, true)),
            2,
            Arc::new(Float16Array::from(halves.to_vec())),
            None,
        )?;
        let bf_bytes: Vec<u8> = vec![0x80, 0x3f, 0x00, 0xc0, 0x49, 0x40, 0x80, 0x7f];
        let bf_col = FixedSizeBinaryArray::try_new(4, Buffer::from_vec(bf_bytes.clone()), None)?;
        // Row 0: {3: 0.5, 10: -1}; row 1: empty.
        let sp_col = decode_sparse(
            &sp,
            &[
                [
                    3u32.to_le_bytes(),
                    0.5f32.to_le_bytes(),
                    10u32.to_le_bytes(),
                    (-1f32).to_le_bytes(),
                ]
                .concat(),
                Vec::new(),
            ],
        )?;
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(h_col), Arc::new(bf_col), sp_col],
        )?;
        let fd = batch_to_field_data(&batch)?;
        assert_eq!(fd[0].r#type, MDataType::Float16Vector as i32);
        let Some(field_data::Field::Vectors(v)) = &fd[0].field else {
            panic!("not a vector: {:?}", fd[0]);
        };
        assert_eq!(v.dim, 2);
        let want: Vec<u8> = halves.iter().flat_map(|h| h.to_le_bytes()).collect();
        assert_eq!(v.data, Some(vector_field::Data::Float16Vector(want)));
        let Some(field_data::Field::Vectors(v)) = &fd[1].field else {
            panic!("not a vector: {:?}", fd[1]);
        };
        assert_eq!(v.data, Some(vector_field::Data::Bfloat16Vector(bf_bytes)));
        assert_eq!(fd[1].r#type, MDataType::BFloat16Vector as i32);
        let Some(field_data::Field::Vectors(v)) = &fd[2].field else {
            panic!("not a vector: {:?}", fd[2]);
        };
        assert_eq!(fd[2].r#type, MDataType::SparseFloatVector as i32);
        let Some(vector_field::Data::SparseFloatVector(s)) = &v.data else {
            panic!("not sparse: {v:?}");
        };
        assert_eq!(s.dim, 11, "largest index + 1");
        assert_eq!(s.contents[0].len(), 16);
        assert!(s.contents[1].is_empty());
        assert_eq!(&s.contents[0][8..12], &10u32.to_le_bytes());
        // And back, bit for bit.
        assert_eq!(field_data_to_batch(&schema, &fd)?, batch);
        // Milvus types map back to the same Arrow fields.
        for (t, f) in [
            (MDataType::Float16Vector, &h),
            (MDataType::BFloat16Vector, &bf),
            (MDataType::SparseFloatVector, &sp),
        ] {
            let fs = FieldSchema {
                name: f.name().clone(),
                data_type: t as i32,
                type_params: if t == MDataType::SparseFloatVector {
                    vec![]
                } else {
                    vec![crate::params::pair("dim", 2)]
                },
                ..Default::default()
            };
            let back = arrow_field(&fs)?;
            assert_eq!(back.data_type(), f.data_type());
            assert_eq!(milvus_type_of(&back)?.0, t);
        }
        Ok(())
    }

    #[test]
    fn unsorted_sparse_indices_name_the_row() -> Result<()> {
        let sp = vector::sparse_float_vector_field("sp");
        let col = decode_sparse(
            &sp,
            &[
                [1u32.to_le_bytes(), 1f32.to_le_bytes()].concat(),
                [
                    5u32.to_le_bytes(),
                    1f32.to_le_bytes(),
                    5u32.to_le_bytes(),
                    2f32.to_le_bytes(),
                ]
                .concat(),
            ],
        )?;
        let msg = conversion_error(&sp, &col);
        assert!(
            msg.contains("field `sp` row 1") && msg.contains("ascending"),
            "{msg}"
        );
        Ok(())
    }

    #[test]
    fn the_dynamic_field_is_sent_as_dynamic() -> Result<()> {
        let f = vector::json_field("$meta", false);
        let col: ArrayRef = Arc::new(StringArray::from(vec![r#"{"a":1}"#, "{}"]));
        let fd = column_to_field_data(&f, &col)?;
        assert!(fd.is_dynamic && fd.r#type == MDataType::Json as i32);
        let plain = column_to_field_data(&vector::json_field("j", false), &col)?;
        assert!(!plain.is_dynamic);
        Ok(())
    }

    #[test]
    fn nulls_name_field_and_row() {
        let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)]));
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(StringArray::from(vec![Some("a"), None]))],
        )
        .map_err(Error::from);
        let err = batch.and_then(|b| batch_to_field_data(&b)).err();
        let msg = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("field `s` row 1"), "{msg}");
    }

    fn list_of<T: Into<Arc<dyn Array>>>(
        item: DataType,
        values: T,
        lengths: &[usize],
        nulls: Option<Vec<bool>>,
    ) -> Result<ArrayRef> {
        Ok(Arc::new(arrow::array::ListArray::try_new(
            Arc::new(Field::new_list_field(item, true)),
            OffsetBuffer::from_lengths(lengths.iter().copied()),
            values.into(),
            nulls.map(arrow::buffer::NullBuffer::from),
        )?))
    }

    fn list_field(name: &str, item: DataType) -> Field {
        Field::new_list(name, Field::new_list_field(item, true), false)
    }

    #[test]
    fn arrays_round_trip_and_slice() -> Result<()> {
        let schema = Arc::new(Schema::new(vec![
            list_field("i8", DataType::Int8),
            list_field("i64", DataType::Int64),
            list_field("f32", DataType::Float32),
            list_field("f64", DataType::Float64),
            list_field("s", DataType::Utf8),
            list_field("b", DataType::Boolean),
        ]));
        let lens = [2, 0, 3];
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                list_of(
                    DataType::Int8,
                    Arc::new(Int8Array::from(vec![-128, 127, 0, 1, -1])) as ArrayRef,
                    &lens,
                    None,
                )?,
                list_of(
                    DataType::Int64,
                    Arc::new(Int64Array::from(vec![i64::MIN, i64::MAX, 0, 7, -7])) as ArrayRef,
                    &lens,
                    None,
                )?,
                list_of(
                    DataType::Float32,
                    Arc::new(Float32Array::from(vec![
                        -0.0,
                        f32::MIN_POSITIVE,
                        1.5,
                        f32::MAX,
                        3.25,
                    ])) as ArrayRef,
                    &lens,
                    None,
                )?,
                list_of(
                    DataType::Float64,
                    Arc::new(Float64Array::from(vec![
                        0.1,
                        -0.0,
                        f64::EPSILON,
                        1e300,
                        -2.5,
                    ])) as ArrayRef,
                    &lens,
                    None,
                )?,
                list_of(
                    DataType::Utf8,
                    Arc::new(StringArray::from(vec!["é", "", "日本", "a\"b", "🦀"])) as ArrayRef,
                    &lens,
                    None,
                )?,
                list_of(
                    DataType::Boolean,
                    Arc::new(BooleanArray::from(vec![true, false, false, true, true])) as ArrayRef,
                    &lens,
                    None,
                )?,
            ],
        )?;
        let fd = batch_to_field_data(&batch)?;
        let Some(field_data::Field::Scalars(ScalarField {
            data: Some(scalar_field::Data::ArrayData(a)),
            ..
        })) = &fd[1].field
        else {
            panic!("not an ArrayArray: {:?}", fd[1]);
        };
        assert_eq!(fd[1].r#type, MDataType::Array as i32);
        assert_eq!(a.element_type, MDataType::Int64 as i32);
        assert_eq!(a.data.len(), 3);
        assert_eq!(field_data_to_batch(&schema, &fd)?, batch);
        for (offset, len) in [(1, 2), (2, 1), (0, 0)] {
            let sliced = batch.slice(offset, len);
            let fd = batch_to_field_data(&sliced)?;
            assert_eq!(field_data_to_batch(&schema, &fd)?, sliced);
        }
        assert!(estimate_request_bytes(&batch) > estimate_request_bytes(&batch.slice(0, 1)));
        // Bit-exact floats survive the encoding.
        let back = field_data_to_batch(&schema, &fd)?;
        let f = back.column(2).as_list::<i32>().value(0);
        assert_eq!(
            f.as_primitive::<Float32Type>().value(0).to_bits(),
            (-0.0f32).to_bits()
        );
        Ok(())
    }

    #[test]
    fn array_nulls_and_capacity_name_field_and_row() -> Result<()> {
        let field = list_field("a", DataType::Int64);
        let element_null = list_of(
            DataType::Int64,
            Arc::new(Int64Array::from(vec![Some(1), Some(2), None])) as ArrayRef,
            &[1, 2],
            None,
        )?;
        let msg = conversion_error(&field, &element_null);
        assert!(
            msg.contains("field `a` row 1") && msg.contains("index 1"),
            "{msg}"
        );

        let row_null = list_of(
            DataType::Int64,
            Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef,
            &[1, 0, 1],
            Some(vec![true, false, true]),
        )?;
        let msg = conversion_error(&field, &row_null);
        assert!(
            msg.contains("field `a` row 1") && msg.contains("null"),
            "{msg}"
        );

        let capped = field.with_metadata(
            [(META_MAX_CAPACITY.to_string(), "2".to_string())]
                .into_iter()
                .collect::<std::collections::HashMap<_, _>>(),
        );
        let long = list_of(
            DataType::Int64,
            Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5])) as ArrayRef,
            &[2, 3],
            None,
        )?;
        let msg = conversion_error(&capped, &long);
        assert!(
            msg.contains("field `a` row 1") && msg.contains("max_capacity is 2"),
            "{msg}"
        );

        // A reply with a wrong element payload is a data error, not a panic.
        let schema = Arc::new(Schema::new(vec![list_field("a", DataType::Utf8)]));
        let fd = column_to_field_data(&list_field("a", DataType::Int64), &long)?;
        let msg = field_data_to_batch(&schema, &[fd])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("`a` row 0"), "{msg}");
        Ok(())
    }

    #[test]
    fn large_lists_are_arrays_too() -> Result<()> {
        let field = Field::new_large_list("l", Field::new_list_field(DataType::Utf8, true), false);
        assert_eq!(milvus_type_of(&field)?, (MDataType::Array, 0));
        let array: ArrayRef = Arc::new(arrow::array::LargeListArray::try_new(
            Arc::new(Field::new_list_field(DataType::Utf8, true)),
            OffsetBuffer::from_lengths([1, 0, 2]),
            Arc::new(StringArray::from(vec!["x", "y", "z"])),
            None,
        )?);
        let fd = column_to_field_data(&field, &array)?;
        let schema = Arc::new(Schema::new(vec![field]));
        let back = field_data_to_batch(&schema, &[fd])?;
        assert_eq!(back.column(0).as_ref(), array.as_ref());
        Ok(())
    }

    /// A nullable Milvus field of type `t` as the source describes it (`element` for Arrays).
    fn nullable_field(name: &str, t: MDataType, element: MDataType) -> Result<Field> {
        arrow_field(&FieldSchema {
            name: name.into(),
            data_type: t as i32,
            element_type: element as i32,
            nullable: true,
            ..Default::default()
        })
    }

    /// Every nullable type, 5 rows, nulls at different rows per column (one all-valid column,
    /// one all-null column), next to a non-nullable key and vector.
    fn nullable_batch() -> Result<RecordBatch> {
        use MDataType as M;
        let fields = vec![
            Field::new("id", DataType::Int64, false),
            nullable_field("b", M::Bool, M::None)?,
            nullable_field("i8", M::Int8, M::None)?,
            nullable_field("i16", M::Int16, M::None)?,
            nullable_field("i32", M::Int32, M::None)?,
            nullable_field("i64", M::Int64, M::None)?,
            nullable_field("f", M::Float, M::None)?,
            nullable_field("d", M::Double, M::None)?,
            nullable_field("s", M::VarChar, M::None)?,
            nullable_field("j", M::Json, M::None)?,
            nullable_field("ai", M::Array, M::Int64)?,
            nullable_field("as", M::Array, M::VarChar)?,
            vector::float_vector_field("v", 1),
        ];
        let v = FixedSizeListArray::try_new(
            Arc::new(Field::new_list_field(DataType::Float32, true)),
            1,
            Arc::new(Float32Array::from(vec![0.5, 1.5, 2.5, 3.5, 4.5])),
            None,
        )?;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5])),
            Arc::new(BooleanArray::from(vec![
                Some(true),
                None,
                Some(false),
                None,
                Some(true),
            ])),
            Arc::new(Int8Array::from(vec![
                None,
                Some(-128),
                Some(127),
                None,
                None,
            ])),
            Arc::new(Int16Array::from(vec![
                Some(-1),
                Some(2),
                Some(3),
                Some(4),
                None,
            ])),
            Arc::new(Int32Array::from(vec![
                Some(i32::MIN),
                None,
                None,
                None,
                Some(5),
            ])),
            Arc::new(Int64Array::from(vec![
                Some(i64::MAX),
                Some(0),
                Some(1),
                Some(2),
                Some(3),
            ])),
            Arc::new(Float32Array::from(vec![
                None,
                Some(-0.0),
                None,
                Some(f32::MAX),
                None,
            ])),
            Arc::new(Float64Array::from(vec![None::<f64>; 5])),
            Arc::new(StringArray::from(vec![
                Some("é"),
                None,
                Some(""),
                None,
                Some("日本"),
            ])),
            Arc::new(StringArray::from(vec![
                None,
                Some(r#"{"a":1}"#),
                None,
                Some("[1,2]"),
                Some("null"),
            ])),
            list_of(
                DataType::Int64,
                Arc::new(Int64Array::from(vec![7, 8, 9])) as ArrayRef,
                &[2, 0, 0, 1, 0],
                Some(vec![true, false, true, true, false]),
            )?,
            list_of(
                DataType::Utf8,
                Arc::new(StringArray::from(vec!["x", "y"])) as ArrayRef,
                &[0, 1, 0, 1, 0],
                Some(vec![false, true, false, true, true]),
            )?,
            Arc::new(v),
        ];
        Ok(RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            columns,
        )?)
    }

    /// The dense layout of a Milvus 2.5 query result: a placeholder at every null row.
    fn densify(mut fd: FieldData) -> FieldData {
        fn fill<T: Default>(v: &mut Vec<T>, valid: &[bool]) {
            let mut compact = std::mem::take(v).into_iter();
            *v = valid
                .iter()
                .map(|&ok| {
                    if ok {
                        compact.next().unwrap_or_default()
                    } else {
                        T::default()
                    }
                })
                .collect();
        }
        let valid = fd.valid_data.clone();
        if valid.is_empty() {
            return fd;
        }
        if let Some(field_data::Field::Scalars(ScalarField {
            data: Some(data), ..
        })) = &mut fd.field
        {
            match_scalar_values!(data, a => fill(&mut a.data, &valid), _ => {})
        }
        fd
    }

    fn payload_len(fd: &FieldData) -> usize {
        match &fd.field {
            Some(field_data::Field::Scalars(ScalarField { data: Some(d), .. })) => {
                match_scalar_values!(d, a => a.data.len(), _ => usize::MAX)
            }
            _ => usize::MAX,
        }
    }

    #[test]
    fn nullable_fields_send_valid_data_and_the_valid_rows_only() -> Result<()> {
        let batch = nullable_batch()?;
        for f in batch.schema().fields().iter().skip(1).take(11) {
            assert!(f.is_nullable() && crate::meta::is_nullable(f), "{f:?}");
        }
        let fd = batch_to_field_data(&batch)?;
        assert!(fd[0].valid_data.is_empty(), "the key is not nullable");
        assert!(fd[12].valid_data.is_empty(), "vectors are never nullable");
        for (i, col) in batch.columns().iter().enumerate().skip(1).take(11) {
            let valid: Vec<bool> = (0..5).map(|r| col.is_valid(r)).collect();
            assert_eq!(fd[i].valid_data, valid, "{}", fd[i].field_name);
            let present = valid.iter().filter(|v| **v).count();
            assert_eq!(payload_len(&fd[i]), present, "{}", fd[i].field_name);
        }
        // Spot-check values and order of the compacted payloads.
        let Some(field_data::Field::Scalars(ScalarField {
            data: Some(scalar_field::Data::IntData(i8s)),
            ..
        })) = &fd[2].field
        else {
            panic!("{:?}", fd[2]);
        };
        assert_eq!(i8s.data, vec![-128, 127]);
        let Some(field_data::Field::Scalars(ScalarField {
            data: Some(scalar_field::Data::JsonData(j)),
            ..
        })) = &fd[9].field
        else {
            panic!("{:?}", fd[9]);
        };
        assert_eq!(
            j.data,
            vec![b"{\"a\":1}".to_vec(), b"[1,2]".to_vec(), b"null".to_vec()]
        );
        assert_eq!(
            fd[5].valid_data,
            vec![true; 5],
            "no nulls: still one flag per row"
        );
        assert_eq!(fd[7].valid_data, vec![false; 5]);

        // Back from the compacted layout (what an insert carries) …
        let schema = batch.schema();
        assert_eq!(field_data_to_batch(&schema, &fd)?, batch);
        // … from the dense layout of a 2.5 query result …
        let dense: Vec<FieldData> = fd.iter().cloned().map(densify).collect();
        assert_eq!(payload_len(&dense[2]), 5);
        assert_eq!(field_data_to_batch(&schema, &dense)?, batch);
        // … and with the validity in the payload (`ScalarField.valid_data`, newer protos).
        let moved: Vec<FieldData> = dense
            .into_iter()
            .map(|mut f| {
                let valid = std::mem::take(&mut f.valid_data);
                if let Some(field_data::Field::Scalars(s)) = &mut f.field {
                    s.valid_data = valid;
                }
                f
            })
            .collect();
        assert_eq!(field_data_to_batch(&schema, &moved)?, batch);
        // Slices keep their rows.
        for (offset, len) in [(1, 3), (3, 2), (0, 0)] {
            let sliced = batch.slice(offset, len);
            let fd = batch_to_field_data(&sliced)?;
            assert_eq!(fd[1].valid_data.len(), len);
            assert_eq!(field_data_to_batch(&schema, &fd)?, sliced);
        }
        Ok(())
    }

    #[test]
    fn nulls_outside_nullable_scalars_are_errors() -> Result<()> {
        // Untagged (no `milvus.nullable`): the existing error naming field and row.
        let plain = Field::new("n", DataType::Int32, true);
        let col: ArrayRef = Arc::new(Int32Array::from(vec![Some(1), Some(2), None]));
        let msg = conversion_error(&plain, &col);
        assert!(msg.contains("field `n` row 2"), "{msg}");
        // Without nulls an untagged field sends no valid_data (Milvus 2.3 and non-nullable
        // 2.5 fields refuse it).
        let ok: ArrayRef = Arc::new(Int32Array::from(vec![1, 2]));
        assert!(column_to_field_data(&plain, &ok)?.valid_data.is_empty());
        // A vector tagged nullable is still not nullable.
        let v = vector::float_vector_field("v", 1).with_metadata(
            [(crate::meta::NULLABLE.to_string(), "true".to_string())]
                .into_iter()
                .chain(vector::float_vector_field("v", 1).metadata().clone())
                .collect::<std::collections::HashMap<_, _>>(),
        );
        let col: ArrayRef = Arc::new(FixedSizeListArray::try_new(
            Arc::new(Field::new_list_field(DataType::Float32, true)),
            1,
            Arc::new(Float32Array::from(vec![1.0, 2.0])),
            Some(vec![true, false].into()),
        )?);
        let msg = conversion_error(&v, &col);
        assert!(msg.contains("field `v` row 1"), "{msg}");
        // Null elements inside a nullable Array's rows stay errors.
        let a = nullable_field("a", MDataType::Array, MDataType::Int64)?;
        let col = list_of(
            DataType::Int64,
            Arc::new(Int64Array::from(vec![Some(1), None])) as ArrayRef,
            &[0, 2],
            Some(vec![false, true]),
        )?;
        let msg = conversion_error(&a, &col);
        assert!(
            msg.contains("field `a` row 1") && msg.contains("index 1"),
            "{msg}"
        );
        Ok(())
    }

    #[test]
    fn bad_valid_data_in_a_reply_is_a_data_error() -> Result<()> {
        let nullable = nullable_field("n", MDataType::Int64, MDataType::None)?;
        let reply = |data: Vec<i64>, valid: Vec<bool>| FieldData {
            valid_data: valid,
            ..scalar(
                "n",
                MDataType::Int64,
                scalar_field::Data::LongData(LongArray { data }),
            )
        };
        let schema = Arc::new(Schema::new(vec![nullable]));
        // Neither dense (3) nor compacted (1).
        let msg = field_data_to_batch(&schema, &[reply(vec![1, 2], vec![true, false, false])])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("`n`") && msg.contains("valid_data"), "{msg}");
        // A null in a field the schema has as not nullable.
        let strict = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let msg = field_data_to_batch(&strict, &[reply(vec![1, 0], vec![true, false])])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("`n` row 1"), "{msg}");
        // All valid on a non-nullable field is fine.
        let back = field_data_to_batch(&strict, &[reply(vec![1, 0], vec![true, true])])?;
        assert_eq!(back.num_rows(), 2);
        Ok(())
    }
}
