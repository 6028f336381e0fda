//! `type = "cast"`: change field types.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::{can_cast_types, cast_with_options, CastOptions};
use arrow::datatypes::{DataType, Field, Float32Type, Float64Type, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{array_value_to_string, FormatOptions};
use serde::{Deserialize, Serialize};
use vmig_core::vector::{float_vector_type, META_DIM, META_TYPE};
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
    /// A float32 vector, from any fixed- or variable-size list of numbers (every row must have the
    /// same length).
    FloatVector,
}

/// `type = "cast"`: `fields = { score = "float32", id = "varchar" }`.
///
/// Casts never lose data silently: an integer that does not fit, text that is not a number, a
/// float64 beyond float32's range, or list rows of different lengths fail with the field, the
/// row and the value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CastConfig {
    /// Field name → target type.
    pub fields: BTreeMap<String, CastTarget>,
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
        }
    }
    fn build(&self) -> Result<Box<dyn Transformer>> {
        if self.fields.is_empty() {
            return Err(Error::config(
                "cast",
                "`fields` must name at least one field",
            ));
        }
        Ok(Box::new(Cast {
            fields: self.fields.clone(),
        }))
    }
}

#[derive(Debug)]
struct Cast {
    fields: BTreeMap<String, CastTarget>,
}

fn target_field(field: &Field, target: CastTarget) -> Result<Field> {
    let data_type = match target {
        CastTarget::Bool => DataType::Boolean,
        CastTarget::Int8 => DataType::Int8,
        CastTarget::Int16 => DataType::Int16,
        CastTarget::Int32 => DataType::Int32,
        CastTarget::Int64 => DataType::Int64,
        CastTarget::Float32 => DataType::Float32,
        CastTarget::Float64 => DataType::Float64,
        CastTarget::Varchar | CastTarget::Json => DataType::Utf8,
        CastTarget::FloatVector => {
            let dim = match field.data_type() {
                DataType::FixedSizeList(_, n) => *n as usize,
                DataType::List(_) | DataType::LargeList(_) => 0, // known per batch only
                other => {
                    return Err(Error::schema(format!(
                    "cannot cast field `{}` of type {other} to a float vector (it is not a list)",
                    field.name()
                )))
                }
            };
            float_vector_type(dim)
        }
    };
    if !can_cast_types(field.data_type(), &data_type) && !matches!(target, CastTarget::FloatVector)
    {
        return Err(Error::schema(format!(
            "cannot cast field `{}` from {} to {target:?}",
            field.name(),
            field.data_type()
        )));
    }
    let mut metadata: HashMap<String, String> = field
        .metadata()
        .iter()
        .filter(|(k, _)| !k.starts_with("vmig."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
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
    fn schema_for(&self, input: &Schema, batch: Option<&RecordBatch>) -> Result<Schema> {
        let mut fields: Vec<Arc<Field>> = input.fields().iter().cloned().collect();
        for (name, target) in &self.fields {
            let i = field_index(input, name, "cast")?;
            let mut f = target_field(&fields[i], *target)?;
            // A variable-size list becomes a vector whose dimension the first batch decides.
            if let (CastTarget::FloatVector, Some(batch)) = (target, batch) {
                if matches!(f.data_type(), DataType::FixedSizeList(_, 0)) {
                    let dim = list_dim(name, batch.column(i))?;
                    f = Field::new(name, float_vector_type(dim), fields[i].is_nullable())
                        .with_metadata(HashMap::from([
                            (META_TYPE.to_string(), "float_vector".to_string()),
                            (META_DIM.to_string(), dim.to_string()),
                        ]));
                }
            }
            fields[i] = Arc::new(f);
        }
        Ok(Schema::new_with_metadata(fields, input.metadata().clone()))
    }
}

fn list_dim(name: &str, array: &ArrayRef) -> Result<usize> {
    let lengths: Vec<usize> = match array.data_type() {
        DataType::List(_) => {
            let l = array.as_list::<i32>();
            (0..l.len())
                .filter(|&i| l.is_valid(i))
                .map(|i| l.value_length(i) as usize)
                .collect()
        }
        DataType::LargeList(_) => {
            let l = array.as_list::<i64>();
            (0..l.len())
                .filter(|&i| l.is_valid(i))
                .map(|i| l.value_length(i) as usize)
                .collect()
        }
        other => {
            return Err(Error::schema(format!(
                "field `{name}` of type {other} is not a list"
            )))
        }
    };
    let Some(&first) = lengths.first() else {
        return Err(Error::schema(format!(
            "cannot tell the dimension of field `{name}`: its first batch has no rows; cast it from a fixed-size list instead"
        )));
    };
    if let Some((row, len)) = lengths.iter().enumerate().find(|(_, &l)| l != first) {
        return Err(Error::data(
            format!("field `{name}`, row {row} of the batch"),
            format!("vector has {len} values but the first has {first}; a float vector needs one dimension"),
        ));
    }
    if first == 0 {
        return Err(Error::data(format!("field `{name}`"), "vectors are empty"));
    }
    Ok(first)
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
        Ok(Arc::new(self.schema_for(input, None)?))
    }

    fn transform(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let schema = Arc::new(self.schema_for(&batch.schema(), Some(&batch))?);
        let mut columns = batch.columns().to_vec();
        for (name, target) in &self.fields {
            let i = field_index(&schema, name, "cast")?;
            let to = schema.field(i).data_type();
            columns[i] = cast_column(name, &columns[i], to)?;
            if *target == CastTarget::Json {
                check_json(name, &columns[i])?;
            }
        }
        Ok(RecordBatch::try_new(schema, columns)?)
    }
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
