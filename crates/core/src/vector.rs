//! How vectors (and other Milvus-specific types) are represented in Arrow.
//!
//! | Milvus type            | Arrow type                          | field metadata `vmig.type` | `vmig.dim`        |
//! |------------------------|-------------------------------------|----------------------------|-------------------|
//! | `FloatVector(dim)`     | `FixedSizeList<Float32>(dim)`       | `float_vector` (optional)  | `dim`             |
//! | `BinaryVector(dim)`    | `FixedSizeBinary(dim / 8)`          | `binary_vector`            | `dim` (bits)      |
//! | `Float16Vector(dim)`   | `FixedSizeList<Float16>(dim)`       | `float16_vector`           | `dim`             |
//! | `BFloat16Vector(dim)`  | `FixedSizeBinary(2 * dim)`          | `bfloat16_vector`          | `dim`             |
//! | `SparseFloatVector`    | `Map<UInt32, Float32>` (see below)  | `sparse_float_vector`      | –                 |
//! | `Int8Vector(dim)`      | `FixedSizeList<Int8>(dim)`          | `int8_vector` (required)   | `dim`             |
//! | `JSON`                 | `Utf8` holding JSON text            | `json`                     | –                 |
//!
//! (JSON may also be `LargeUtf8` or `Utf8View`.) Which Milvus type every other Arrow type
//! becomes is the table in [`crate::types`].
//!
//! A `FixedSizeList<Float32>` without metadata is also taken as a float vector, so batches built by
//! hand need no ceremony. Binary vectors always carry metadata, because a `FixedSizeBinary` column
//! could be anything. Bits are stored in Milvus's (and Faiss's) order: byte `i` holds dimensions
//! `8i .. 8i+8`, the lowest dimension in the most significant bit.
//!
//! Float16 vectors are a `FixedSizeList` of Arrow's own `Float16` (exact IEEE half bits, so they
//! need no metadata, like float vectors); Arrow has no bfloat16 type, so bfloat16 vectors are the
//! raw little-endian halves in a `FixedSizeBinary(2 * dim)` and always carry metadata.
//! Int8 vectors (Milvus 2.6) always carry metadata too: an untagged `FixedSizeList<Int8>` is a
//! Milvus `Array` of `Int8` scalars.
//!
//! A sparse float vector column is exactly
//! `Map(Field "entries": Struct[Field "keys": UInt32 non-null, Field "values": Float32 non-null],
//! sorted = false)` (the map field itself non-nullable, entries non-nullable), tagged
//! `vmig.type = sparse_float_vector` ([`sparse_float_vector_field`]). Each row holds its
//! non-zero dimensions with indices ascending and unique; sources that build it inline must use
//! exactly this shape.
//!
//! Schema-level metadata: [`META_METRIC`] (the distance the source used: `L2`, `IP`, `COSINE`,
//! `HAMMING`, …), [`META_PRIMARY_KEY`] (the primary-key field) and [`META_COLLECTION`] (a target
//! collection name chosen by the source or the `collection` transformer).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, FixedSizeBinaryArray, FixedSizeListArray, Float32Array, MapArray, StringArray,
    StructArray, UInt32Array,
};
use arrow::buffer::{Buffer, OffsetBuffer};
use arrow::datatypes::{DataType, Field, Schema};

use crate::error::{Error, Result};

/// What a source does with a float vector that holds NaN or ±Inf (the `on_non_finite` config
/// key of the `faiss` and `milvus1` sources; one definition, one meaning). Milvus rejects such
/// vectors, so the default stops early with a precise error instead of failing at insert time.
/// The scan itself is `vmig_formats::faiss::first_non_finite`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnNonFinite {
    /// Fail with a data error naming the file, the row's id and offset.
    #[default]
    Error,
    /// Pass the values through unchanged.
    Allow,
}

/// Field metadata key naming the Milvus type of a column (see the module table).
pub const META_TYPE: &str = "vmig.type";
/// Field metadata key holding a vector's dimension (bits for binary vectors).
pub const META_DIM: &str = "vmig.dim";
/// Schema metadata key: the distance metric the source index used.
pub const META_METRIC: &str = "vmig.metric";
/// Schema metadata key: the name of the primary-key field.
pub const META_PRIMARY_KEY: &str = "vmig.primary_key";

/// The default name of the id column of sources whose data has no field names (Faiss,
/// Milvus 1.x): `id`.
pub fn default_id_field() -> String {
    "id".into()
}

/// The default name of the vector column of such sources: `vector`.
pub fn default_vector_field() -> String {
    "vector".into()
}

/// Checks a source's `id_field` and `vector_field` options: both set, and different.
///
/// # Errors
/// [`Error::Config`] for `plugin`, saying which rule is broken.
pub fn check_id_and_vector_fields(plugin: &str, id_field: &str, vector_field: &str) -> Result<()> {
    if id_field.is_empty() || vector_field.is_empty() {
        return Err(Error::config(
            plugin,
            "`id_field` and `vector_field` must not be empty",
        ));
    }
    if id_field == vector_field {
        return Err(Error::config(
            plugin,
            format!("`id_field` and `vector_field` are both `{id_field}`; they must differ"),
        ));
    }
    Ok(())
}
/// Schema metadata key: the target collection name proposed by the source or a transformer.
pub const META_COLLECTION: &str = "vmig.collection";

/// The Milvus vector types vmig knows about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VectorType {
    /// 32-bit float vectors.
    Float32,
    /// Packed bit vectors (`dim / 8` bytes per row).
    Binary,
    /// IEEE half-precision vectors.
    Float16,
    /// bfloat16 vectors (`2 * dim` bytes per row).
    BFloat16,
    /// Sparse float vectors (`Map<UInt32, Float32>` rows, see [`sparse_float_vector_type`]).
    SparseFloat,
    /// Signed 8-bit integer vectors (`dim` bytes per row; Milvus 2.6+).
    Int8,
}

impl VectorType {
    /// The `vmig.type` metadata value.
    pub fn as_str(self) -> &'static str {
        match self {
            VectorType::Float32 => "float_vector",
            VectorType::Binary => "binary_vector",
            VectorType::Float16 => "float16_vector",
            VectorType::BFloat16 => "bfloat16_vector",
            VectorType::SparseFloat => "sparse_float_vector",
            VectorType::Int8 => "int8_vector",
        }
    }

    /// Bytes one row takes in its dense encoding (`None` for sparse vectors).
    pub fn row_bytes(self, dim: usize) -> Option<usize> {
        match self {
            VectorType::Float32 => Some(dim * 4),
            VectorType::Binary => Some(dim / 8),
            VectorType::Float16 | VectorType::BFloat16 => Some(dim * 2),
            VectorType::SparseFloat => None,
            VectorType::Int8 => Some(dim),
        }
    }
}

/// A vector column found in a schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VectorInfo {
    /// Which Milvus vector type it is.
    pub kind: VectorType,
    /// Its dimension (bits for binary vectors; 0 for sparse).
    pub dim: usize,
}

fn meta(kind: VectorType, dim: usize) -> HashMap<String, String> {
    HashMap::from([
        (META_TYPE.to_string(), kind.as_str().to_string()),
        (META_DIM.to_string(), dim.to_string()),
    ])
}

/// A non-nullable float vector field of `dim` dimensions.
pub fn float_vector_field(name: &str, dim: usize) -> Field {
    Field::new(name, float_vector_type(dim), false).with_metadata(meta(VectorType::Float32, dim))
}

/// The Arrow type of a float vector column.
pub fn float_vector_type(dim: usize) -> DataType {
    DataType::FixedSizeList(
        Arc::new(Field::new_list_field(DataType::Float32, true)),
        dim as i32,
    )
}

/// A non-nullable binary vector field of `dim_bits` dimensions.
///
/// # Errors
/// When `dim_bits` is zero or not a multiple of 8.
pub fn binary_vector_field(name: &str, dim_bits: usize) -> Result<Field> {
    if dim_bits == 0 || !dim_bits.is_multiple_of(8) {
        return Err(Error::schema(format!(
            "binary vector `{name}` has {dim_bits} dimensions; it must be a positive multiple of 8"
        )));
    }
    Ok(Field::new(
        name,
        DataType::FixedSizeBinary((dim_bits / 8) as i32),
        false,
    )
    .with_metadata(meta(VectorType::Binary, dim_bits)))
}

/// A non-nullable float16 vector field of `dim` dimensions (`FixedSizeList<Float16>`).
pub fn float16_vector_field(name: &str, dim: usize) -> Field {
    Field::new(
        name,
        DataType::FixedSizeList(
            Arc::new(Field::new_list_field(DataType::Float16, true)),
            dim as i32,
        ),
        false,
    )
    .with_metadata(meta(VectorType::Float16, dim))
}

/// A non-nullable bfloat16 vector field of `dim` dimensions (`FixedSizeBinary(2 * dim)`, the
/// little-endian halves).
pub fn bfloat16_vector_field(name: &str, dim: usize) -> Field {
    Field::new(name, DataType::FixedSizeBinary((dim * 2) as i32), false)
        .with_metadata(meta(VectorType::BFloat16, dim))
}

/// A non-nullable int8 vector field of `dim` dimensions (`FixedSizeList<Int8>`, tagged: see the
/// module docs).
pub fn int8_vector_field(name: &str, dim: usize) -> Field {
    Field::new(
        name,
        DataType::FixedSizeList(
            Arc::new(Field::new_list_field(DataType::Int8, true)),
            dim as i32,
        ),
        false,
    )
    .with_metadata(meta(VectorType::Int8, dim))
}

/// The Arrow type of a sparse float vector column: `Map<UInt32, Float32>` with an entries
/// struct `{keys: UInt32, values: Float32}` (both non-null), unsorted flag (see the module docs).
pub fn sparse_float_vector_type() -> DataType {
    DataType::Map(
        Arc::new(Field::new(
            "entries",
            DataType::Struct(
                vec![
                    Field::new("keys", DataType::UInt32, false),
                    Field::new("values", DataType::Float32, false),
                ]
                .into(),
            ),
            false,
        )),
        false,
    )
}

/// A non-nullable sparse float vector field (see [`sparse_float_vector_type`]).
pub fn sparse_float_vector_field(name: &str) -> Field {
    Field::new(name, sparse_float_vector_type(), false).with_metadata(HashMap::from([(
        META_TYPE.to_string(),
        VectorType::SparseFloat.as_str().to_string(),
    )]))
}

/// A sparse float vector column from its rows' flattened `keys` and `values` and each row's
/// number of pairs (`lengths`).
///
/// # Errors
/// When the three do not fit together (more pairs in `lengths` than in `keys`/`values`).
pub fn sparse_float_vector_array(
    keys: Vec<u32>,
    values: Vec<f32>,
    lengths: Vec<usize>,
) -> Result<ArrayRef> {
    let DataType::Map(entries, sorted) = sparse_float_vector_type() else {
        return Err(Error::schema("sparse vector type is not a Map"));
    };
    let DataType::Struct(parts) = entries.data_type() else {
        return Err(Error::schema("sparse vector entries are not a Struct"));
    };
    let entries_array = StructArray::try_new(
        parts.clone(),
        vec![
            Arc::new(UInt32Array::from(keys)) as ArrayRef,
            Arc::new(Float32Array::from(values)) as ArrayRef,
        ],
        None,
    )?;
    Ok(Arc::new(MapArray::try_new(
        entries,
        OffsetBuffer::<i32>::from_lengths(lengths),
        entries_array,
        None,
        sorted,
    )?))
}

/// Sparse float vectors from text in Milvus's import layout, one `{"indices": [...], "values":
/// [...]}` object per row (what the staging writers put in Parquet string columns), as a sparse
/// float vector column. Values are read as Milvus reads them: a JSON number rounded to float32.
///
/// # Errors
/// [`Error::Data`] naming `what` and the row when a row is null, not such an object, or has an
/// index that is not a u32.
pub fn sparse_from_import_json(column: &StringArray, what: &str) -> Result<ArrayRef> {
    let mut keys = Vec::new();
    let mut values = Vec::new();
    let mut lengths = Vec::with_capacity(column.len());
    for row in 0..column.len() {
        let at = || format!("{what}, row {row}");
        if column.is_null(row) {
            return Err(Error::data(at(), "a sparse vector is null"));
        }
        let v: serde_json::Value = serde_json::from_str(column.value(row))
            .map_err(|e| Error::data(at(), format!("not a sparse vector in JSON: {e}")))?;
        let (Some(ix), Some(vs)) = (
            v.get("indices").and_then(serde_json::Value::as_array),
            v.get("values").and_then(serde_json::Value::as_array),
        ) else {
            return Err(Error::data(
                at(),
                "not a `{\"indices\": [...], \"values\": [...]}` object",
            ));
        };
        if ix.len() != vs.len() {
            return Err(Error::data(
                at(),
                format!("{} indices but {} values", ix.len(), vs.len()),
            ));
        }
        for (i, x) in ix.iter().zip(vs) {
            let i = i
                .as_u64()
                .and_then(|i| u32::try_from(i).ok())
                .ok_or_else(|| Error::data(at(), format!("index {i} is not a u32")))?;
            let x = x
                .as_f64()
                .ok_or_else(|| Error::data(at(), format!("value {x} is not a number")))?;
            keys.push(i);
            values.push(x as f32);
        }
        lengths.push(ix.len());
    }
    sparse_float_vector_array(keys, values, lengths)
}

/// Whether `dt` is the sparse float vector type (`Map` with UInt32 keys and Float32 values).
pub fn is_sparse_float_vector_type(dt: &DataType) -> bool {
    let DataType::Map(entries, _) = dt else {
        return false;
    };
    match entries.data_type() {
        DataType::Struct(fields) => {
            fields.len() == 2
                && fields[0].data_type() == &DataType::UInt32
                && fields[1].data_type() == &DataType::Float32
        }
        _ => false,
    }
}

/// A field holding JSON text (Milvus `JSON`).
pub fn json_field(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
        .with_metadata(HashMap::from([(META_TYPE.to_string(), "json".to_string())]))
}

/// Whether `field` holds JSON text (a `Utf8`, `LargeUtf8` or `Utf8View` column tagged
/// `vmig.type = json`).
pub fn is_json(field: &Field) -> bool {
    field.metadata().get(META_TYPE).map(String::as_str) == Some("json")
        && crate::types::is_text(field.data_type())
}

/// Recognises a vector column; `None` for scalar columns.
pub fn vector_info(field: &Field) -> Option<VectorInfo> {
    let declared = field.metadata().get(META_TYPE).map(String::as_str);
    let dim_meta = field
        .metadata()
        .get(META_DIM)
        .and_then(|d| d.parse::<usize>().ok());
    match (declared, field.data_type()) {
        (Some("binary_vector"), DataType::FixedSizeBinary(w)) => Some(VectorInfo {
            kind: VectorType::Binary,
            dim: dim_meta.unwrap_or(*w as usize * 8),
        }),
        (Some("bfloat16_vector"), DataType::FixedSizeBinary(w)) => Some(VectorInfo {
            kind: VectorType::BFloat16,
            dim: dim_meta.unwrap_or(*w as usize / 2),
        }),
        (Some("sparse_float_vector"), dt) if is_sparse_float_vector_type(dt) => Some(VectorInfo {
            kind: VectorType::SparseFloat,
            dim: 0,
        }),
        (Some("int8_vector"), DataType::FixedSizeList(item, n))
            if item.data_type() == &DataType::Int8 =>
        {
            Some(VectorInfo {
                kind: VectorType::Int8,
                dim: *n as usize,
            })
        }
        (_, DataType::FixedSizeList(item, n)) => match item.data_type() {
            DataType::Float32 => Some(VectorInfo {
                kind: VectorType::Float32,
                dim: *n as usize,
            }),
            DataType::Float16 => Some(VectorInfo {
                kind: VectorType::Float16,
                dim: *n as usize,
            }),
            _ => None,
        },
        _ => None,
    }
}

/// All vector columns of a schema, with their positions.
pub fn vector_fields(schema: &Schema) -> Vec<(usize, &Field, VectorInfo)> {
    schema
        .fields()
        .iter()
        .enumerate()
        .filter_map(|(i, f)| vector_info(f).map(|v| (i, f.as_ref(), v)))
        .collect()
}

/// The Milvus 2.x type a field maps to (`FloatVector(128)`, `VarChar`, `Array<Int64>`, …), or
/// `None` when Milvus has no equivalent. A shorthand for [`crate::types::milvus_field`], the one
/// Arrow ⇄ Milvus type table, which also says why a type is refused.
pub fn milvus_type(field: &Field) -> Option<String> {
    crate::types::milvus_field(field)
        .ok()
        .map(|t| t.to_string())
}

/// Builds a float vector column from row-major values (`values.len()` must be a multiple of `dim`).
///
/// # Errors
/// When `dim` is zero or the value count is not a multiple of it.
pub fn float_vector_array(values: Float32Array, dim: usize) -> Result<FixedSizeListArray> {
    if dim == 0 || !values.len().is_multiple_of(dim) {
        return Err(Error::schema(format!(
            "{} float values do not make whole vectors of {dim} dimensions",
            values.len()
        )));
    }
    let item = Arc::new(Field::new_list_field(DataType::Float32, true));
    Ok(FixedSizeListArray::try_new(
        item,
        dim as i32,
        Arc::new(values) as ArrayRef,
        None,
    )?)
}

/// Builds a binary vector column from packed rows of `row_bytes` bytes each.
///
/// # Errors
/// When the buffer does not hold whole rows.
pub fn binary_vector_array(bytes: Buffer, row_bytes: usize) -> Result<FixedSizeBinaryArray> {
    if row_bytes == 0 || !bytes.len().is_multiple_of(row_bytes) {
        return Err(Error::schema(format!(
            "{} bytes do not make whole binary vectors of {row_bytes} bytes",
            bytes.len()
        )));
    }
    Ok(FixedSizeBinaryArray::try_new(
        row_bytes as i32,
        bytes,
        None,
    )?)
}

/// A buffer holding `bytes`, usable as an Arrow buffer of `T` (little-endian): the same memory
/// when it is suitably aligned, otherwise one `memcpy` into a new (64-byte aligned) buffer.
///
/// # Errors
/// When `bytes.len()` is not a multiple of `size_of::<T>()`.
pub fn le_buffer<T: arrow::datatypes::ArrowNativeType>(bytes: bytes::Bytes) -> Result<Buffer> {
    let width = std::mem::size_of::<T>();
    if !bytes.len().is_multiple_of(width) {
        return Err(Error::schema(format!(
            "{} bytes are not a whole number of {width}-byte values",
            bytes.len()
        )));
    }
    if !cfg!(target_endian = "little") {
        return Err(Error::unsupported(
            "this machine",
            "vmig reads little-endian files on little-endian machines only",
        ));
    }
    if (bytes.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T>()) {
        return Ok(Buffer::from(bytes));
    }
    let mut copy = arrow::buffer::MutableBuffer::with_capacity(bytes.len());
    copy.extend_from_slice(&bytes);
    Ok(copy.into())
}

/// Converts little-endian `f32` bytes to a Float32 array, without copying when the buffer is
/// 4-byte aligned.
///
/// # Errors
/// When `bytes.len()` is not a multiple of 4.
pub fn f32_array_from_le(bytes: bytes::Bytes) -> Result<Float32Array> {
    let n = bytes.len() / 4;
    let buffer = le_buffer::<f32>(bytes)?;
    Ok(Float32Array::new(
        arrow::buffer::ScalarBuffer::new(buffer, 0, n),
        None,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_vectors_read_back_from_the_import_layout() {
        let text = StringArray::from(vec![
            r#"{"indices":[0,7,4294967294],"values":[-0.0,1e-45,3.4028235e38]}"#,
            r#"{"indices":[],"values":[]}"#,
        ]);
        let col = sparse_from_import_json(&text, "f").unwrap();
        let map = col.as_any().downcast_ref::<MapArray>().unwrap();
        assert_eq!(map.value_offsets(), &[0, 3, 3]);
        let keys = map.keys().as_any().downcast_ref::<UInt32Array>().unwrap();
        assert_eq!(keys.values().as_ref(), &[0, 7, 4_294_967_294]);
        let values = map
            .values()
            .as_any()
            .downcast_ref::<Float32Array>()
            .unwrap();
        let bits: Vec<u32> = values.values().iter().map(|v| v.to_bits()).collect();
        assert_eq!(bits, [(-0.0f32).to_bits(), 1, f32::MAX.to_bits()]);
        let bad = StringArray::from(vec![r#"{"indices":[1,2],"values":[0.5]}"#]);
        let e = sparse_from_import_json(&bad, "the target's field `s`").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid data at the target's field `s`, row 0: 2 indices but 1 values"
        );
    }

    #[test]
    fn recognises_vectors() {
        let f = float_vector_field("v", 4);
        assert_eq!(
            vector_info(&f),
            Some(VectorInfo {
                kind: VectorType::Float32,
                dim: 4
            })
        );
        let b = binary_vector_field("b", 16).unwrap();
        assert_eq!(
            vector_info(&b),
            Some(VectorInfo {
                kind: VectorType::Binary,
                dim: 16
            })
        );
        assert_eq!(binary_vector_field("b", 12).unwrap_err().to_string(), "schema error: binary vector `b` has 12 dimensions; it must be a positive multiple of 8");
        assert_eq!(milvus_type(&f).as_deref(), Some("FloatVector(4)"));
        assert_eq!(milvus_type(&b).as_deref(), Some("BinaryVector(16)"));
        assert_eq!(milvus_type(&json_field("j", true)).as_deref(), Some("JSON"));
        assert_eq!(
            milvus_type(&Field::new("s", DataType::Utf8, true)).as_deref(),
            Some("VarChar")
        );
        assert_eq!(milvus_type(&Field::new("d", DataType::Date32, true)), None);
        let ints = Field::new_list("a", Field::new_list_field(DataType::Int64, true), false);
        assert_eq!(milvus_type(&ints).as_deref(), Some("Array<Int64>"));
        // A fixed-size list of ints is not a vector; it is an Array like any list of scalars.
        let fixed =
            Field::new_fixed_size_list("f", Field::new_list_field(DataType::Int64, true), 3, false);
        assert_eq!(milvus_type(&fixed).as_deref(), Some("Array<Int64>"));
        let doubles = Field::new_fixed_size_list(
            "d",
            Field::new_list_field(DataType::Float64, true),
            3,
            false,
        );
        assert_eq!(milvus_type(&doubles).as_deref(), Some("Array<Double>"));
        assert_eq!(vector_info(&Field::new("x", DataType::Int64, false)), None);
        let h = float16_vector_field("h", 8);
        assert_eq!(
            vector_info(&h).map(|v| (v.kind, v.dim)),
            Some((VectorType::Float16, 8))
        );
        assert_eq!(milvus_type(&h).as_deref(), Some("Float16Vector(8)"));
        let bf = bfloat16_vector_field("bf", 8);
        assert_eq!(bf.data_type(), &DataType::FixedSizeBinary(16));
        assert_eq!(milvus_type(&bf).as_deref(), Some("BFloat16Vector(8)"));
        let sp = sparse_float_vector_field("sp");
        assert_eq!(
            vector_info(&sp).map(|v| v.kind),
            Some(VectorType::SparseFloat)
        );
        assert_eq!(milvus_type(&sp).as_deref(), Some("SparseFloatVector"));
        // The tag alone is not enough: the Map shape must match too.
        let wrong = Field::new("sp", DataType::Utf8, false).with_metadata(sp.metadata().clone());
        assert_eq!(vector_info(&wrong), None);
        // A FixedSizeBinary without metadata is not a vector.
        assert_eq!(
            vector_info(&Field::new("x", DataType::FixedSizeBinary(4), false)),
            None
        );
    }

    #[test]
    fn f32_from_bytes_is_exact_even_unaligned() {
        let vals = [1.5f32, f32::NAN, -0.0, f32::MIN_POSITIVE];
        let mut raw = vec![0u8];
        for v in vals {
            raw.extend_from_slice(&v.to_le_bytes());
        }
        let unaligned = bytes::Bytes::from(raw).slice(1..);
        let arr = f32_array_from_le(unaligned).unwrap();
        let got: Vec<u32> = arr.values().iter().map(|v| v.to_bits()).collect();
        let want: Vec<u32> = vals.iter().map(|v| v.to_bits()).collect();
        assert_eq!(got, want);
        assert_eq!(
            f32_array_from_le(bytes::Bytes::from_static(&[1, 2, 3]))
                .unwrap_err()
                .to_string(),
            "schema error: 3 bytes are not a whole number of 4-byte values"
        );
    }
}
