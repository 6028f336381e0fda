//! Arrow ⇄ Milvus `FieldData` conversion.
//!
//! | Arrow column                                   | Milvus type        | wire payload                 |
//! |------------------------------------------------|--------------------|------------------------------|
//! | `Boolean`                                      | `Bool`             | `BoolArray`                  |
//! | `Int8`, `Int16`, `Int32`                       | `Int8/16/32`       | `IntArray` (widened to i32)  |
//! | `Int64`                                        | `Int64`            | `LongArray`                  |
//! | `Float32` / `Float64`                          | `Float` / `Double` | `FloatArray` / `DoubleArray` |
//! | `Utf8`, `LargeUtf8`                            | `VarChar`          | `StringArray`                |
//! | `Utf8` tagged `vmig.type = json`               | `JSON`             | `JsonArray` (UTF-8 bytes)    |
//! | `FixedSizeList<Float32>(dim)`                  | `FloatVector(dim)` | `FloatArray` (N·dim)         |
//! | `FixedSizeBinary(dim/8)` tagged binary vector  | `BinaryVector(dim)`| bytes (N·dim/8)              |
//! | `FixedSizeList<Float16>(dim)`                  | `Float16Vector`    | bytes (N·2·dim, LE)          |
//! | `FixedSizeBinary(2·dim)` tagged bfloat16       | `BFloat16Vector`   | bytes (N·2·dim)              |
//!
//! Milvus 2.3 has no nullable fields, so a null anywhere is an [`Error::Data`] naming the field
//! and row; callers that want a default must fill it in before converting.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, FixedSizeBinaryArray, FixedSizeListArray,
    Float32Array, Float64Array, Int16Array, Int32Array, Int64Array, Int8Array, LargeStringArray,
    StringArray,
};
use arrow::buffer::Buffer;
use arrow::datatypes::{
    DataType, Field, Float16Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    Int8Type, Schema, SchemaRef,
};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use milvus::proto::common::KeyValuePair;
use milvus::proto::schema::{
    field_data, scalar_field, vector_field, BoolArray, CollectionSchema, DataType as MDataType,
    DoubleArray, FieldData, FieldSchema, FloatArray, IntArray, JsonArray, LongArray, ScalarField,
    StringArray as MStringArray, VectorField,
};
use vmig_core::vector::{self, VectorType};
use vmig_core::{Error, Result};

/// The Milvus data type of an Arrow field, with its vector dimension (0 for scalars).
///
/// # Errors
/// [`Error::Unsupported`] naming the field for Arrow types Milvus cannot hold.
pub fn milvus_type_of(field: &Field) -> Result<(MDataType, i64)> {
    if let Some(info) = vector::vector_info(field) {
        let t = match info.kind {
            VectorType::Float32 => MDataType::FloatVector,
            VectorType::Binary => MDataType::BinaryVector,
            VectorType::Float16 => MDataType::Float16Vector,
            VectorType::BFloat16 => MDataType::BFloat16Vector,
            VectorType::SparseFloat => {
                return Err(unsupported(
                    field,
                    "sparse float vectors are not supported yet",
                ))
            }
        };
        return Ok((t, info.dim as i64));
    }
    if vector::is_json(field) {
        return Ok((MDataType::Json, 0));
    }
    let t = match field.data_type() {
        DataType::Boolean => MDataType::Bool,
        DataType::Int8 => MDataType::Int8,
        DataType::Int16 => MDataType::Int16,
        DataType::Int32 => MDataType::Int32,
        DataType::Int64 => MDataType::Int64,
        DataType::Float32 => MDataType::Float,
        DataType::Float64 => MDataType::Double,
        DataType::Utf8 | DataType::LargeUtf8 => MDataType::VarChar,
        other => {
            return Err(unsupported(
                field,
                &format!("Arrow type {other} has no Milvus equivalent in vmig yet (supported: bool, int8–int64, float, double, utf8, JSON, float/binary/float16/bfloat16 vectors)"),
            ))
        }
    };
    Ok((t, 0))
}

fn unsupported(field: &Field, why: &str) -> Error {
    Error::unsupported(format!("field `{}`", field.name()), why.to_string())
}

fn null_error(field: &str, row: usize) -> Error {
    Error::data(
        format!("field `{field}` row {row}"),
        "null value: Milvus 2.3 fields are not nullable; fill it in before the sink (e.g. a default) or drop the row",
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
    check_no_nulls(name, array.as_ref())?;
    let fd = match t {
        MDataType::Bool => {
            let a = array.as_boolean();
            scalar(
                name,
                t,
                scalar_field::Data::BoolData(BoolArray {
                    data: a.iter().map(|v| v.unwrap_or(false)).collect(),
                }),
            )
        }
        MDataType::Int8 | MDataType::Int16 | MDataType::Int32 => {
            let data: Vec<i32> = match array.data_type() {
                DataType::Int8 => array
                    .as_primitive::<Int8Type>()
                    .values()
                    .iter()
                    .map(|&v| v as i32)
                    .collect(),
                DataType::Int16 => array
                    .as_primitive::<Int16Type>()
                    .values()
                    .iter()
                    .map(|&v| v as i32)
                    .collect(),
                _ => array.as_primitive::<Int32Type>().values().to_vec(),
            };
            scalar(name, t, scalar_field::Data::IntData(IntArray { data }))
        }
        MDataType::Int64 => scalar(
            name,
            t,
            scalar_field::Data::LongData(LongArray {
                data: array.as_primitive::<Int64Type>().values().to_vec(),
            }),
        ),
        MDataType::Float => scalar(
            name,
            t,
            scalar_field::Data::FloatData(FloatArray {
                data: array.as_primitive::<Float32Type>().values().to_vec(),
            }),
        ),
        MDataType::Double => scalar(
            name,
            t,
            scalar_field::Data::DoubleData(DoubleArray {
                data: array.as_primitive::<Float64Type>().values().to_vec(),
            }),
        ),
        MDataType::VarChar => scalar(
            name,
            t,
            scalar_field::Data::StringData(MStringArray {
                data: strings(array)?,
            }),
        ),
        MDataType::Json => {
            let data = strings(array)?
                .into_iter()
                .enumerate()
                .map(|(row, s)| {
                    serde_json::from_str::<serde_json::Value>(&s).map_err(|e| {
                        Error::data(
                            format!("field `{name}` row {row}"),
                            format!("not valid JSON: {e}"),
                        )
                    })?;
                    Ok(s.into_bytes())
                })
                .collect::<Result<Vec<_>>>()?;
            scalar(name, t, scalar_field::Data::JsonData(JsonArray { data }))
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
    Ok(fd)
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
    let rows = batch.num_rows();
    let mut total = 64;
    for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
        total += 32 + field.name().len();
        total += match array.data_type() {
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
            _ => array.get_array_memory_size(),
        };
    }
    total
}

fn kv(params: &[KeyValuePair], key: &str) -> Option<String> {
    params
        .iter()
        .find(|p| p.key == key)
        .map(|p| p.value.clone())
}

/// The dimension of a vector field schema (`type_params["dim"]`), 0 for scalars.
pub fn field_dim(f: &FieldSchema) -> i64 {
    kv(&f.type_params, "dim")
        .and_then(|d| d.parse().ok())
        .unwrap_or(0)
}

/// The `max_length` of a VarChar field schema, if set.
pub fn field_max_length(f: &FieldSchema) -> Option<i64> {
    kv(&f.type_params, "max_length").and_then(|d| d.parse().ok())
}

/// The Arrow field (with vmig metadata) that holds values of a Milvus field.
///
/// # Errors
/// [`Error::Unsupported`] for Milvus types vmig cannot decode yet (Array, sparse, …).
pub fn arrow_field(f: &FieldSchema) -> Result<Field> {
    let t = MDataType::try_from(f.data_type).unwrap_or(MDataType::None);
    let dim = field_dim(f).max(0) as usize;
    let name = f.name.as_str();
    Ok(match t {
        MDataType::Bool => Field::new(name, DataType::Boolean, false),
        MDataType::Int8 => Field::new(name, DataType::Int8, false),
        MDataType::Int16 => Field::new(name, DataType::Int16, false),
        MDataType::Int32 => Field::new(name, DataType::Int32, false),
        MDataType::Int64 => Field::new(name, DataType::Int64, false),
        MDataType::Float => Field::new(name, DataType::Float32, false),
        MDataType::Double => Field::new(name, DataType::Float64, false),
        MDataType::VarChar | MDataType::String => Field::new(name, DataType::Utf8, false),
        MDataType::Json => vector::json_field(name, false),
        MDataType::FloatVector => vector::float_vector_field(name, dim),
        MDataType::BinaryVector => vector::binary_vector_field(name, dim)?,
        other => {
            return Err(Error::unsupported(
                format!("Milvus field `{name}`"),
                format!("type {other:?} cannot be read back into Arrow by vmig yet"),
            ))
        }
    })
}

/// The Arrow schema of a collection: one field per Milvus field, in schema order, with
/// [`vector::META_PRIMARY_KEY`] and [`vector::META_COLLECTION`] set.
///
/// # Errors
/// As [`arrow_field`].
pub fn arrow_schema(schema: &CollectionSchema) -> Result<SchemaRef> {
    let mut fields = Vec::new();
    let mut meta = std::collections::HashMap::new();
    for f in &schema.fields {
        if f.is_primary_key {
            meta.insert(vector::META_PRIMARY_KEY.to_string(), f.name.clone());
        }
        fields.push(arrow_field(f)?);
    }
    meta.insert(vector::META_COLLECTION.to_string(), schema.name.clone());
    Ok(Arc::new(Schema::new(fields).with_metadata(meta)))
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

fn decode_field(field: &Field, fd: &FieldData) -> Result<ArrayRef> {
    use field_data::Field as F;
    let bad = || mismatch(field, fd);
    match (&fd.field, field.data_type()) {
        (Some(F::Scalars(s)), dt) => {
            let data = s.data.as_ref().ok_or_else(bad)?;
            Ok(match (data, dt) {
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
                (scalar_field::Data::StringData(x), DataType::Utf8) => {
                    Arc::new(StringArray::from_iter_values(x.data.iter()))
                }
                (scalar_field::Data::StringData(x), DataType::LargeUtf8) => {
                    Arc::new(LargeStringArray::from_iter_values(x.data.iter()))
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
                _ => return Err(bad()),
            })
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
}
