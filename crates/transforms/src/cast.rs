//! `type = "cast"`: change field types.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::{can_cast_types, cast_with_options, CastOptions};
use arrow::datatypes::{DataType, Field, Float32Type, Float64Type, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{array_value_to_string, FormatOptions};
use serde::{Deserialize, Serialize};
use vmig_core::vector::{float_vector_type, META_DIM, META_METRIC, META_PRIMARY_KEY, META_TYPE};
use vmig_core::{Error, Result, TransformConfig, Transformer};

use crate::field_index;

/// A cast target, named as in Milvus (`float` is 32-bit, `double` 64-bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CastTarget {
    /// Boolean.
    Bool,
    /// 8-bit integer.
    Int8,
    /// 16-bit integer.
    Int16,
    /// 32-bit integer.
    Int32,
    /// 64-bit integer.
    Int64,
    /// 32-bit float (`float` is accepted).
    #[serde(alias = "float")]
    Float32,
    /// 64-bit float (`double` is accepted).
    #[serde(alias = "double")]
    Float64,
    /// UTF-8 text (`string` is accepted).
    #[serde(alias = "string")]
    Varchar,
    /// UTF-8 text holding JSON.
    Json,
    /// A float32 vector, from any fixed- or variable-size list of numbers. Its dimension is
    /// planned before any data moves: a fixed-size list's size, else the field's `dims` entry,
    /// else the field's `vmig.dim` metadata; every row must have exactly that many values.
    FloatVector,
}

/// `type = "cast"`: `fields = { score = "float32", id = "varchar" }`.
///
/// Casts never lose data silently: an integer that does not fit, text that is not a number, a
/// float64 beyond float32's range, or a list row whose length is not the vector's dimension fail
/// with the field, the row and the value.
///
/// A `float_vector` cast plans its dimension at plan time, so `vmig plan` shows the true target
/// schema: a fixed-size list keeps its size; a variable-size list takes its `dims` entry
/// (`dims = { vector = 768 }`) or else the `vmig.dim` metadata its source gave the field, and is
/// refused at plan time when it has neither. (The first batch is not read at plan time: that
/// would make planning do I/O, and an empty first partition would still leave it unknown.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CastConfig {
    /// Field name → target type.
    pub fields: BTreeMap<String, CastTarget>,
    /// Field name → dimension, for fields cast to `float_vector` from variable-size lists
    /// (`dims = { vector = 768 }`). Each named field must be cast to `float_vector`; a
    /// fixed-size list or a `vmig.dim` metadata value that disagrees is refused at plan time.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dims: BTreeMap<String, usize>,
    /// Field name → Milvus `max_length` (bytes, 1..=65535), for fields cast to `varchar`
    /// (`max_length = { title = 512 }`): the field's `vmig.max_length` metadata, which the
    /// `milvus2` sink creates the VarChar field with (unless its `varchar_max_length` says
    /// otherwise) and which every value must fit.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub max_length: BTreeMap<String, u32>,
}

impl TransformConfig for CastConfig {
    const NAME: &'static str = "cast";
    const SUMMARY: &'static str =
        "Change field types (bool, int8..int64, float32, float64, varchar, json, float_vector).";
    fn example() -> Self {
        CastConfig {
            fields: BTreeMap::from([
                ("vector".into(), CastTarget::FloatVector),
                ("id".into(), CastTarget::Int64),
            ]),
            dims: BTreeMap::from([("vector".into(), 128)]),
            max_length: BTreeMap::new(),
        }
    }
    fn build(&self) -> Result<Box<dyn Transformer>> {
        if self.fields.is_empty() {
            return Err(Error::config(
                "cast",
                "`fields` must name at least one field",
            ));
        }
        for (name, &dim) in &self.dims {
            if self.fields.get(name) != Some(&CastTarget::FloatVector) {
                return Err(Error::config(
                    "cast",
                    format!("`dims` names field `{name}`, which `fields` does not cast to \"float_vector\""),
                ));
            }
            if dim == 0 || i32::try_from(dim).is_err() {
                return Err(Error::config(
                    "cast",
                    format!(
                        "`dims.{name}` is {dim}; a vector dimension must be between 1 and {}",
                        i32::MAX
                    ),
                ));
            }
        }
        for (name, &len) in &self.max_length {
            if self.fields.get(name) != Some(&CastTarget::Varchar) {
                return Err(Error::config(
                    "cast",
                    format!("`max_length` names field `{name}`, which `fields` does not cast to \"varchar\""),
                ));
            }
            if !(1..=MAX_VARCHAR_LENGTH).contains(&len) {
                return Err(Error::config(
                    "cast",
                    format!("`max_length.{name}` is {len}; Milvus allows 1..={MAX_VARCHAR_LENGTH}"),
                ));
            }
        }
        Ok(Box::new(Cast {
            fields: self.fields.clone(),
            dims: self.dims.clone(),
            max_length: self.max_length.clone(),
        }))
    }
}

#[derive(Debug)]
struct Cast {
    fields: BTreeMap<String, CastTarget>,
    dims: BTreeMap<String, usize>,
    max_length: BTreeMap<String, u32>,
}

/// The longest Milvus VarChar, in bytes.
const MAX_VARCHAR_LENGTH: u32 = 65_535;

/// The `vmig.max_length` metadata key (the milvus2 sink's VarChar `max_length`).
const META_MAX_LENGTH: &str = "vmig.max_length";

/// The dimension of a float vector cast from `field`, decided at plan time (see [`CastConfig`]).
fn planned_dim(field: &Field, explicit: Option<usize>) -> Result<usize> {
    let name = field.name();
    let meta = match field.metadata().get(META_DIM) {
        None => None,
        Some(text) => match text.parse::<usize>() {
            Ok(d) if d > 0 && i32::try_from(d).is_ok() => Some(d),
            _ => {
                return Err(Error::schema(format!(
                    "field `{name}` has `{META_DIM}` metadata {text:?}, which is not a vector dimension; give the dimension as `dims = {{ {name} = … }}`"
                )))
            }
        },
    };
    match field.data_type() {
        DataType::FixedSizeList(_, n) => {
            let n = usize::try_from(*n).unwrap_or(0);
            match explicit {
                Some(d) if d != n => Err(Error::schema(format!(
                    "`dims` gives field `{name}` {d} dimensions, but it is a fixed-size list of {n} values"
                ))),
                _ => Ok(n),
            }
        }
        DataType::List(_) | DataType::LargeList(_) => match (explicit, meta) {
            (Some(d), Some(m)) if d != m => Err(Error::schema(format!(
                "`dims` gives field `{name}` {d} dimensions, but its `{META_DIM}` metadata says {m}"
            ))),
            (Some(d), _) | (None, Some(d)) => Ok(d),
            (None, None) => Err(Error::schema(format!(
                "cannot plan the dimension of float vector `{name}`: it is a variable-size list without `{META_DIM}` metadata; give it beside `fields`, e.g. `dims = {{ {name} = 768 }}`"
            ))),
        },
        other => Err(Error::schema(format!(
            "cannot cast field `{name}` of type {other} to a float vector (it is not a list)"
        ))),
    }
}

fn target_field(
    field: &Field,
    target: CastTarget,
    dim: Option<usize>,
    max_length: Option<u32>,
) -> Result<Field> {
    let data_type = match target {
        CastTarget::Bool => DataType::Boolean,
        CastTarget::Int8 => DataType::Int8,
        CastTarget::Int16 => DataType::Int16,
        CastTarget::Int32 => DataType::Int32,
        CastTarget::Int64 => DataType::Int64,
        CastTarget::Float32 => DataType::Float32,
        CastTarget::Float64 => DataType::Float64,
        CastTarget::Varchar | CastTarget::Json => DataType::Utf8,
        CastTarget::FloatVector => float_vector_type(planned_dim(field, dim)?),
    };
    if !can_cast_types(field.data_type(), &data_type) && !matches!(target, CastTarget::FloatVector)
    {
        return Err(Error::schema(format!(
            "cannot cast field `{}` from {} to {target:?}",
            field.name(),
            field.data_type()
        )));
    }
    // What describes the value (its vector type and dimension, text length, list capacity)
    // goes; what describes the field's role (primary key, metric of a vector that stays one)
    // stays.
    let mut metadata: HashMap<String, String> = field
        .metadata()
        .iter()
        .filter(|(k, _)| match k.as_str() {
            META_PRIMARY_KEY => true,
            META_METRIC => target == CastTarget::FloatVector,
            META_MAX_LENGTH => target == CastTarget::Varchar && max_length.is_none(),
            k => !k.starts_with("vmig."),
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(len) = max_length {
        metadata.insert(META_MAX_LENGTH.into(), len.to_string());
    }
    match target {
        CastTarget::Json => {
            metadata.insert(META_TYPE.into(), "json".into());
        }
        CastTarget::FloatVector => {
            if let DataType::FixedSizeList(_, n) = data_type {
                metadata.insert(META_TYPE.into(), "float_vector".into());
                metadata.insert(META_DIM.into(), n.to_string());
            }
        }
        _ => {}
    }
    Ok(Field::new(field.name(), data_type, field.is_nullable()).with_metadata(metadata))
}

impl Cast {
    /// The output schema for `input`; the same for plan and every batch, since float vector
    /// dimensions come from the schema and the config, never from data.
    fn schema_for(&self, input: &Schema) -> Result<Schema> {
        let mut fields: Vec<Arc<Field>> = input.fields().iter().cloned().collect();
        for (name, target) in &self.fields {
            let i = field_index(input, name, "cast")?;
            let dim = self.dims.get(name).copied();
            let max_length = self.max_length.get(name).copied();
            fields[i] = Arc::new(target_field(&fields[i], *target, dim, max_length)?);
        }
        Ok(Schema::new_with_metadata(fields, input.metadata().clone()))
    }
}

/// Checks that every non-null row of the variable-size list `array` holds exactly `dim` values
/// (a fixed-size list has its size by type).
fn check_list_lengths(name: &str, array: &ArrayRef, dim: usize) -> Result<()> {
    fn first_wrong<O: arrow::array::OffsetSizeTrait>(
        list: &arrow::array::GenericListArray<O>,
        dim: usize,
    ) -> Option<(usize, usize)> {
        (0..list.len())
            .filter(|&row| list.is_valid(row))
            .map(|row| (row, list.value_length(row).as_usize()))
            .find(|&(_, len)| len != dim)
    }
    let wrong = match array.data_type() {
        DataType::List(_) => first_wrong(array.as_list::<i32>(), dim),
        DataType::LargeList(_) => first_wrong(array.as_list::<i64>(), dim),
        _ => None,
    };
    match wrong {
        Some((row, len)) => Err(Error::data(
            format!("field `{name}`, row {row} of the batch"),
            format!("vector has {len} values but the planned dimension is {dim}"),
        )),
        None => Ok(()),
    }
}

fn cast_column(name: &str, array: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    let strict = CastOptions {
        safe: false,
        format_options: FormatOptions::default(),
    };
    match cast_with_options(array, to, &strict) {
        Ok(out) => {
            check_no_overflow(name, array, &out)?;
            Ok(out)
        }
        Err(error) => {
            // Find the first row that fails, to name it.
            let lenient = CastOptions {
                safe: true,
                format_options: FormatOptions::default(),
            };
            if let Ok(out) = cast_with_options(array, to, &lenient) {
                if let Some(row) = (0..array.len()).find(|&i| array.is_valid(i) && out.is_null(i)) {
                    let value = array_value_to_string(array, row).unwrap_or_default();
                    return Err(Error::data(
                        format!("field `{name}`, row {row} of the batch"),
                        format!("value {value} cannot be cast to {to}: {error}"),
                    ));
                }
            }
            Err(Error::data(
                format!("field `{name}`"),
                format!("cannot cast to {to}: {error}"),
            ))
        }
    }
}

/// float64 → float32 turns out-of-range values into infinities without an error; refuse that.
fn check_no_overflow(name: &str, input: &ArrayRef, output: &ArrayRef) -> Result<()> {
    let (inp, out) = match (input.data_type(), output.data_type()) {
        (DataType::Float64, DataType::Float32) => (Arc::clone(input), Arc::clone(output)),
        (DataType::FixedSizeList(..) | DataType::List(_), DataType::FixedSizeList(..)) => {
            let inner_in = match input.data_type() {
                DataType::List(_) => input.as_list::<i32>().values().clone(),
                _ => input.as_fixed_size_list().values().clone(),
            };
            (inner_in, output.as_fixed_size_list().values().clone())
        }
        _ => return Ok(()),
    };
    if inp.data_type() != &DataType::Float64 || out.data_type() != &DataType::Float32 {
        return Ok(());
    }
    let a = inp.as_primitive::<Float64Type>();
    let b = out.as_primitive::<Float32Type>();
    if let Some(i) = (0..a.len().min(b.len()))
        .find(|&i| a.is_valid(i) && a.value(i).is_finite() && !b.value(i).is_finite())
    {
        return Err(Error::data(
            format!("field `{name}`, value {i} of the batch"),
            format!("{} is outside float32's range", a.value(i)),
        ));
    }
    Ok(())
}

impl Transformer for Cast {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        Ok(Arc::new(self.schema_for(input)?))
    }

    fn transform(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let schema = Arc::new(self.schema_for(&batch.schema())?);
        let mut columns = batch.columns().to_vec();
        for (name, target) in &self.fields {
            let i = field_index(&schema, name, "cast")?;
            let to = schema.field(i).data_type();
            if let DataType::FixedSizeList(_, dim) = to {
                check_list_lengths(name, &columns[i], usize::try_from(*dim).unwrap_or(0))?;
            }
            columns[i] = cast_column(name, &columns[i], to)?;
            if *target == CastTarget::Json {
                check_json(name, &columns[i])?;
            }
            if let Some(&len) = self.max_length.get(name) {
                check_max_length(name, &columns[i], len)?;
            }
        }
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}

/// Fails on the first value of `array` (Utf8) longer than `max` bytes, naming field and row.
fn check_max_length(name: &str, array: &ArrayRef, max: u32) -> Result<()> {
    let strings = array.as_string::<i32>();
    for (row, value) in strings.iter().enumerate() {
        if let Some(text) = value {
            if text.len() > max as usize {
                return Err(Error::data(
                    format!("field `{name}`, row {row} of the batch"),
                    format!(
                        "{} bytes, longer than its max_length {max}; raise `max_length.{name}` (at most {MAX_VARCHAR_LENGTH})",
                        text.len()
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn check_json(name: &str, array: &ArrayRef) -> Result<()> {
    let strings = array.as_string::<i32>();
    for (row, value) in strings.iter().enumerate() {
        if let Some(text) = value {
            if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
                return Err(Error::data(
                    format!("field `{name}`, row {row} of the batch"),
                    format!("not valid JSON: {e}"),
                ));
            }
        }
    }
    Ok(())
}
