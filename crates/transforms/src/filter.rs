//! `type = "filter"`: keep rows whose scalar fields match every condition.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Datum, Float64Array, Int64Array, Scalar, StringArray,
};
use arrow::compute::kernels::{boolean, cmp};
use arrow::compute::{cast, filter_record_batch, is_not_null, is_null};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use vmig_core::{Error, Result, TransformConfig, Transformer};

use crate::field_index;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// `field == value` (`==` is accepted).
    #[serde(alias = "==")]
    Eq,
    /// `field != value` (`!=` is accepted).
    #[serde(alias = "!=")]
    Ne,
    /// `field < value` (`<` is accepted).
    #[serde(alias = "<")]
    Lt,
    /// `field <= value` (`<=` is accepted).
    #[serde(alias = "<=")]
    Le,
    /// `field > value` (`>` is accepted).
    #[serde(alias = ">")]
    Gt,
    /// `field >= value` (`>=` is accepted).
    #[serde(alias = ">=")]
    Ge,
    /// `field` equals one of `value` (a list).
    In,
    /// `field` equals none of `value` (a list).
    NotIn,
    /// `field` is null (no `value`).
    IsNull,
    /// `field` is not null (no `value`).
    IsNotNull,
}

/// One condition: `{ field = "year", op = ">=", value = 2020 }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// A scalar field (bool, integer, float or text).
    pub field: String,
    /// The comparison.
    pub op: Op,
    /// A number, string or bool; a list for `in`/`not_in`; absent for the null checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
}

/// `type = "filter"`: `where = [{ field = "lang", op = "eq", value = "en" }, …]`.
///
/// A row is kept when every condition holds. A comparison with a null value does not hold (SQL
/// semantics), so nulls are dropped unless a condition is `is_null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// The conditions, all of which must hold.
    #[serde(rename = "where")]
    pub conditions: Vec<Condition>,
}

impl TransformConfig for FilterConfig {
    const NAME: &'static str = "filter";
    const SUMMARY: &'static str =
        "Keep rows whose scalar fields match every condition (eq, ne, lt, le, gt, ge, in, not_in, is_null, is_not_null).";
    fn example() -> Self {
        FilterConfig {
            conditions: vec![Condition {
                field: "year".into(),
                op: Op::Ge,
                value: Some(serde_json::json!(2020)),
            }],
        }
    }
    fn build(&self) -> Result<Box<dyn Transformer>> {
        if self.conditions.is_empty() {
            return Err(Error::config(
                "filter",
                "`where` must hold at least one condition",
            ));
        }
        for c in &self.conditions {
            let list = matches!(c.op, Op::In | Op::NotIn);
            let none = matches!(c.op, Op::IsNull | Op::IsNotNull);
            match (&c.value, list, none) {
                (Some(_), _, true) => {
                    return Err(Error::config(
                        "filter",
                        format!("`{:?}` on `{}` takes no value", c.op, c.field),
                    ))
                }
                (None, _, false) => {
                    return Err(Error::config(
                        "filter",
                        format!("`{:?}` on `{}` needs a value", c.op, c.field),
                    ))
                }
                (Some(v), true, _) if !v.is_array() => {
                    return Err(Error::config(
                        "filter",
                        format!("`{:?}` on `{}` needs a list value", c.op, c.field),
                    ))
                }
                (Some(v), false, false) if !is_scalar(v) => {
                    return Err(Error::config(
                        "filter",
                        format!(
                            "the value for `{}` must be a number, string or bool",
                            c.field
                        ),
                    ))
                }
                _ => {}
            }
        }
        Ok(Box::new(Filter {
            conditions: self.conditions.clone(),
        }))
    }
}

fn is_scalar(v: &serde_json::Value) -> bool {
    v.is_number() || v.is_string() || v.is_boolean()
}

#[derive(Debug)]
struct Filter {
    conditions: Vec<Condition>,
}

fn comparable(dt: &DataType) -> bool {
    dt.is_numeric()
        || matches!(
            dt,
            DataType::Boolean | DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        )
}

/// Builds a one-row array of `to` from a JSON scalar.
fn literal(field: &str, value: &serde_json::Value, to: &DataType) -> Result<Scalar<ArrayRef>> {
    let raw: ArrayRef = match value {
        serde_json::Value::Bool(b) => Arc::new(BooleanArray::from(vec![*b])),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Arc::new(Int64Array::from(vec![i])),
            None => Arc::new(Float64Array::from(vec![n.as_f64().unwrap_or(f64::NAN)])),
        },
        serde_json::Value::String(s) => Arc::new(StringArray::from(vec![s.as_str()])),
        other => {
            return Err(Error::config(
                "filter",
                format!("value {other} for `{field}` is not a scalar"),
            ))
        }
    };
    let cast = cast(&raw, to).map_err(|e| {
        Error::config(
            "filter",
            format!("value {value} cannot be compared with `{field}` ({to}): {e}"),
        )
    })?;
    if cast.is_null(0) {
        return Err(Error::config(
            "filter",
            format!("value {value} cannot be compared with `{field}` ({to})"),
        ));
    }
    Ok(Scalar::new(cast))
}

impl Filter {
    fn check(&self, schema: &SchemaRef) -> Result<()> {
        for c in &self.conditions {
            let f = schema.field(field_index(schema, &c.field, "filter")?);
            if !comparable(f.data_type()) && !matches!(c.op, Op::IsNull | Op::IsNotNull) {
                return Err(Error::schema(format!(
                    "`filter` can only compare scalar fields; `{}` is {}",
                    c.field,
                    f.data_type()
                )));
            }
            if let Some(v) = &c.value {
                let values: Vec<&serde_json::Value> = match v {
                    serde_json::Value::Array(items) => items.iter().collect(),
                    single => vec![single],
                };
                for v in values {
                    literal(&c.field, v, f.data_type())?;
                }
            }
        }
        Ok(())
    }

    fn mask(&self, c: &Condition, column: &ArrayRef) -> Result<BooleanArray> {
        type Compare = fn(&dyn Datum, &dyn Datum) -> std::result::Result<BooleanArray, ArrowError>;
        let compare = |f: Compare, v: &serde_json::Value| -> Result<BooleanArray> {
            let lit = literal(&c.field, v, column.data_type())?;
            Ok(f(column, &lit)?)
        };
        let any_of = |f: Compare, items: &[serde_json::Value], all: bool| -> Result<BooleanArray> {
            let mut acc = BooleanArray::from(vec![all; column.len()]);
            for v in items {
                let m = compare(f, v)?;
                acc = if all {
                    boolean::and_kleene(&acc, &m)?
                } else {
                    boolean::or_kleene(&acc, &m)?
                };
            }
            Ok(acc)
        };
        let value = c.value.as_ref();
        let list = match value {
            Some(serde_json::Value::Array(items)) => items.as_slice(),
            _ => &[],
        };
        let scalar = || {
            value.ok_or_else(|| {
                Error::config(
                    "filter",
                    format!("`{:?}` on `{}` needs a value", c.op, c.field),
                )
            })
        };
        match c.op {
            Op::IsNull => Ok(is_null(column)?),
            Op::IsNotNull => Ok(is_not_null(column)?),
            Op::In => any_of(cmp::eq, list, false),
            Op::NotIn => any_of(cmp::neq, list, true),
            Op::Eq => compare(cmp::eq, scalar()?),
            Op::Ne => compare(cmp::neq, scalar()?),
            Op::Lt => compare(cmp::lt, scalar()?),
            Op::Le => compare(cmp::lt_eq, scalar()?),
            Op::Gt => compare(cmp::gt, scalar()?),
            Op::Ge => compare(cmp::gt_eq, scalar()?),
        }
    }
}

impl Transformer for Filter {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        self.check(input)?;
        Ok(Arc::clone(input))
    }

    fn transform(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let schema = batch.schema();
        let mut keep: Option<BooleanArray> = None;
        for c in &self.conditions {
            let column = batch.column(field_index(&schema, &c.field, "filter")?);
            let m = self.mask(c, column)?;
            keep = Some(match keep {
                Some(k) => boolean::and_kleene(&k, &m)?,
                None => m,
            });
        }
        match keep {
            Some(k) => Ok(filter_record_batch(&batch, &k)?),
            None => Ok(batch),
        }
    }
}
