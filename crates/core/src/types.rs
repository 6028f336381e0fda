//! The one Arrow ⇄ Milvus type table.
//!
//! Every part of vmig that asks "which Milvus type does this Arrow field become?" or "which
//! Arrow field holds this Milvus type?" asks this module: `vmig plan` (through
//! [`crate::vector::milvus_type`]), the `milvus2` sink's collection schema and `FieldData`
//! conversion, the `milvus2` source's Arrow schema, and the staging formats' accept check
//! (`vmig_formats::staging::check_schema`).
//!
//! **Design decision:** the table lives here, in vmig-core, as plain data with a Milvus type
//! enum of its own ([`MilvusType`]), because core's plan printing cannot depend on vmig-milvus
//! (the crate with Milvus's protobuf types). vmig-milvus maps [`MilvusType`] to and from the
//! protobuf `DataType` in exactly one place (`vmig_milvus::schema::to_proto`/`from_proto`);
//! staging maps it to its own column encodings. A stage may refuse an accepted type for a reason
//! of its own (a bulk-import format that cannot hold float16 vectors, say), but it never
//! accepts a type this table refuses, and never gives it another Milvus type.
//!
//! | Arrow field                                                  | Milvus type                |
//! |--------------------------------------------------------------|----------------------------|
//! | `Boolean`                                                    | `Bool`                     |
//! | `Int8`, `Int16`, `Int32`, `Int64`                            | `Int8` … `Int64`           |
//! | `Float32`, `Float64`                                         | `Float`, `Double`          |
//! | `Utf8`, `LargeUtf8`, `Utf8View`                              | `VarChar`                  |
//! | any of those three tagged `vmig.type = json`                 | `JSON`                     |
//! | `List`/`LargeList`/`FixedSizeList` of a scalar row above     | `Array<element>`           |
//! | vectors ([`crate::vector`]: `FixedSizeList<Float32>`, …)     | `FloatVector(dim)`, …      |
//!
//! Everything else — unsigned integers, `Float16` scalars, binary strings, dates, times,
//! durations, intervals, decimals, structs, maps (other than the sparse vector shape),
//! dictionaries, `Null` — is refused with [`Error::Unsupported`] naming the field and its Arrow
//! type; a `cast` transformer can turn most of them into an accepted type first. The scalar
//! rows are one array ([`SCALAR_ROWS`]): read forwards it gives the Milvus type of an Arrow
//! type, read backwards (first row wins) the Arrow type a Milvus type is read back as.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field};

use crate::error::{Error, Result};
use crate::vector::{self, VectorType};

/// A Milvus 2.x field data type, as vmig knows it (the protobuf enum lives in vmig-milvus).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MilvusType {
    /// `Bool`.
    Bool,
    /// `Int8`.
    Int8,
    /// `Int16`.
    Int16,
    /// `Int32`.
    Int32,
    /// `Int64`.
    Int64,
    /// `Float` (32-bit).
    Float,
    /// `Double`.
    Double,
    /// `VarChar`.
    VarChar,
    /// `JSON`.
    Json,
    /// `Array` of a scalar element type.
    Array,
    /// `FloatVector(dim)`.
    FloatVector,
    /// `BinaryVector(dim)` (dim in bits).
    BinaryVector,
    /// `Float16Vector(dim)`.
    Float16Vector,
    /// `BFloat16Vector(dim)`.
    BFloat16Vector,
    /// `SparseFloatVector`.
    SparseFloatVector,
    /// `Int8Vector(dim)` (Milvus 2.6+).
    Int8Vector,
}

impl MilvusType {
    /// Every Milvus type vmig handles.
    pub const ALL: [MilvusType; 16] = [
        MilvusType::Bool,
        MilvusType::Int8,
        MilvusType::Int16,
        MilvusType::Int32,
        MilvusType::Int64,
        MilvusType::Float,
        MilvusType::Double,
        MilvusType::VarChar,
        MilvusType::Json,
        MilvusType::Array,
        MilvusType::FloatVector,
        MilvusType::BinaryVector,
        MilvusType::Float16Vector,
        MilvusType::BFloat16Vector,
        MilvusType::SparseFloatVector,
        MilvusType::Int8Vector,
    ];

    /// Milvus's own name of the type (`Bool`, `VarChar`, `JSON`, `FloatVector`, …).
    pub fn name(self) -> &'static str {
        match self {
            MilvusType::Bool => "Bool",
            MilvusType::Int8 => "Int8",
            MilvusType::Int16 => "Int16",
            MilvusType::Int32 => "Int32",
            MilvusType::Int64 => "Int64",
            MilvusType::Float => "Float",
            MilvusType::Double => "Double",
            MilvusType::VarChar => "VarChar",
            MilvusType::Json => "JSON",
            MilvusType::Array => "Array",
            MilvusType::FloatVector => "FloatVector",
            MilvusType::BinaryVector => "BinaryVector",
            MilvusType::Float16Vector => "Float16Vector",
            MilvusType::BFloat16Vector => "BFloat16Vector",
            MilvusType::SparseFloatVector => "SparseFloatVector",
            MilvusType::Int8Vector => "Int8Vector",
        }
    }

    /// The vector kind of a vector type (`None` for scalars, JSON and Array).
    pub fn vector_type(self) -> Option<VectorType> {
        VECTOR_ROWS
            .iter()
            .find(|(_, m)| *m == self)
            .map(|(v, _)| *v)
    }

    /// Whether the type is a vector.
    pub fn is_vector(self) -> bool {
        self.vector_type().is_some()
    }

    /// Whether an `Array` may hold elements of this type (the [`SCALAR_ROWS`] types).
    pub fn is_array_element(self) -> bool {
        scalar_arrow_type(self).is_some()
    }

    /// Whether Milvus (2.5+) lets a field of this type be nullable: scalars, JSON and Array,
    /// never vectors.
    pub fn can_be_nullable(self) -> bool {
        !self.is_vector()
    }
}

impl fmt::Display for MilvusType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The scalar rows of the table: Arrow type ⇄ Milvus type. Forwards every row applies; backwards
/// the first row of a Milvus type gives the Arrow type it is read back as. These are also the
/// types an `Array` may hold.
pub const SCALAR_ROWS: &[(DataType, MilvusType)] = &[
    (DataType::Boolean, MilvusType::Bool),
    (DataType::Int8, MilvusType::Int8),
    (DataType::Int16, MilvusType::Int16),
    (DataType::Int32, MilvusType::Int32),
    (DataType::Int64, MilvusType::Int64),
    (DataType::Float32, MilvusType::Float),
    (DataType::Float64, MilvusType::Double),
    (DataType::Utf8, MilvusType::VarChar),
    (DataType::LargeUtf8, MilvusType::VarChar),
    (DataType::Utf8View, MilvusType::VarChar),
];

/// The vector rows: vmig's vector kinds (their Arrow shapes are in [`crate::vector`]) ⇄ Milvus.
pub const VECTOR_ROWS: &[(VectorType, MilvusType)] = &[
    (VectorType::Float32, MilvusType::FloatVector),
    (VectorType::Binary, MilvusType::BinaryVector),
    (VectorType::Float16, MilvusType::Float16Vector),
    (VectorType::BFloat16, MilvusType::BFloat16Vector),
    (VectorType::SparseFloat, MilvusType::SparseFloatVector),
    (VectorType::Int8, MilvusType::Int8Vector),
];

/// The Milvus scalar type of an Arrow type (a [`SCALAR_ROWS`] lookup).
pub fn scalar_milvus_type(dt: &DataType) -> Option<MilvusType> {
    SCALAR_ROWS.iter().find(|(a, _)| a == dt).map(|(_, m)| *m)
}

/// The Arrow type a Milvus scalar type is read back as (`None` for JSON, Array and vectors).
pub fn scalar_arrow_type(t: MilvusType) -> Option<DataType> {
    SCALAR_ROWS
        .iter()
        .find(|(_, m)| *m == t)
        .map(|(a, _)| a.clone())
}

/// Whether `dt` is one of the Arrow string types (`Utf8`, `LargeUtf8`, `Utf8View`).
pub fn is_text(dt: &DataType) -> bool {
    scalar_milvus_type(dt) == Some(MilvusType::VarChar)
}

/// The Milvus type of one field: its [`MilvusType`], the element type of an `Array`, and the
/// dimension of a dense vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MilvusField {
    /// The field's type.
    pub kind: MilvusType,
    /// The element type of an `Array` (`None` otherwise).
    pub element: Option<MilvusType>,
    /// A dense vector's dimension (bits for binary vectors); 0 for everything else.
    pub dim: usize,
}

impl MilvusField {
    /// A type without element or dimension.
    pub fn plain(kind: MilvusType) -> Self {
        MilvusField {
            kind,
            element: None,
            dim: 0,
        }
    }
}

impl fmt::Display for MilvusField {
    /// `Int64`, `VarChar`, `Array<Int64>`, `FloatVector(128)`, `SparseFloatVector`, …
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind, self.element) {
            (MilvusType::Array, Some(e)) => write!(f, "Array<{e}>"),
            (MilvusType::SparseFloatVector, _) => f.write_str(self.kind.name()),
            (k, _) if k.is_vector() => write!(f, "{k}({})", self.dim),
            (k, _) => f.write_str(k.name()),
        }
    }
}

/// The Milvus type `field` becomes (see the module table).
///
/// # Errors
/// [`Error::Unsupported`] naming the field and its Arrow type when Milvus has no equivalent.
pub fn milvus_field(field: &Field) -> Result<MilvusField> {
    if let Some(v) = vector::vector_info(field) {
        let kind = VECTOR_ROWS
            .iter()
            .find(|(k, _)| *k == v.kind)
            .map(|(_, m)| *m)
            .ok_or_else(|| refused(field, "a vector kind without a Milvus type"))?;
        let dim = if kind == MilvusType::SparseFloatVector {
            0
        } else {
            v.dim
        };
        return Ok(MilvusField {
            kind,
            element: None,
            dim,
        });
    }
    if vector::is_json(field) {
        return Ok(MilvusField::plain(MilvusType::Json));
    }
    if let Some(t) = scalar_milvus_type(field.data_type()) {
        return Ok(MilvusField::plain(t));
    }
    match field.data_type() {
        DataType::List(item) | DataType::LargeList(item) | DataType::FixedSizeList(item, _) => {
            match scalar_milvus_type(item.data_type()) {
                Some(e) => Ok(MilvusField {
                    kind: MilvusType::Array,
                    element: Some(e),
                    dim: 0,
                }),
                None => Err(refused(
                    field,
                    &format!(
                        "a Milvus Array holds bool, int8–int64, float, double or string elements, not {}",
                        item.data_type()
                    ),
                )),
            }
        }
        DataType::FixedSizeBinary(_) => Err(refused(
            field,
            "a FixedSizeBinary column is a Milvus vector only when tagged `vmig.type = binary_vector` or `bfloat16_vector`",
        )),
        _ => Err(refused(field, "Milvus has no equivalent")),
    }
}

/// The error for a field the table refuses: names the field and its Arrow type.
fn refused(field: &Field, why: &str) -> Error {
    Error::unsupported(
        format!("field `{}`", field.name()),
        format!(
            "Arrow type {} has no Milvus type: {why} (vmig maps bool, int8–int64, float32/64, utf8/large_utf8/utf8_view, JSON, lists of those scalars, and float/binary/float16/bfloat16/sparse/int8 vectors; a `cast` transformer can convert many other types first)",
            field.data_type()
        ),
    )
}

/// The Arrow field (with vmig metadata) that holds values of Milvus type `t`, non-nullable.
///
/// # Errors
/// [`Error::Schema`] for an `Array` without a scalar element type or a binary vector whose
/// dimension is not a multiple of 8.
pub fn arrow_field(name: &str, t: MilvusField) -> Result<Field> {
    if let Some(data_type) = scalar_arrow_type(t.kind) {
        return Ok(Field::new(name, data_type, false));
    }
    Ok(match t.kind {
        MilvusType::Json => vector::json_field(name, false),
        MilvusType::FloatVector => vector::float_vector_field(name, t.dim),
        MilvusType::BinaryVector => vector::binary_vector_field(name, t.dim)?,
        MilvusType::Float16Vector => vector::float16_vector_field(name, t.dim),
        MilvusType::BFloat16Vector => vector::bfloat16_vector_field(name, t.dim),
        MilvusType::SparseFloatVector => vector::sparse_float_vector_field(name),
        MilvusType::Int8Vector => vector::int8_vector_field(name, t.dim),
        MilvusType::Array => {
            let item = t.element.and_then(scalar_arrow_type).ok_or_else(|| {
                Error::schema(format!(
                    "Milvus Array `{name}` has element type {}, which vmig cannot read back into Arrow",
                    t.element.map_or("(none)", MilvusType::name)
                ))
            })?;
            Field::new(
                name,
                DataType::List(Arc::new(Field::new_list_field(item, true))),
                false,
            )
        }
        // The scalar kinds returned above.
        other => {
            return Err(Error::schema(format!(
                "Milvus type {other} of `{name}` has no Arrow row"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_reads_back_to_itself() -> Result<()> {
        for kind in MilvusType::ALL {
            let t = MilvusField {
                kind,
                element: (kind == MilvusType::Array).then_some(MilvusType::VarChar),
                dim: if kind.is_vector() && kind != MilvusType::SparseFloatVector {
                    16
                } else {
                    0
                },
            };
            let field = arrow_field("f", t)?;
            assert_eq!(milvus_field(&field)?, t, "{kind}");
        }
        Ok(())
    }

    #[test]
    fn display_and_refusals() {
        let f = Field::new("when", DataType::Date32, true);
        let msg = milvus_field(&f).map(|_| ()).unwrap_err().to_string();
        assert!(
            msg.contains("field `when`") && msg.contains("Arrow type Date32"),
            "{msg}"
        );
        let a = Field::new_list("a", Field::new_list_field(DataType::Utf8View, true), true);
        assert_eq!(milvus_field(&a).unwrap().to_string(), "Array<VarChar>");
        let v = vector::float_vector_field("v", 3);
        assert_eq!(milvus_field(&v).unwrap().to_string(), "FloatVector(3)");
    }
}
