//! The `json` parser: rows as JSON objects, in any of the three layouts vmig meets.
//!
//! | `layout` | the file                                   | written by                                        |
//! |----------|--------------------------------------------|---------------------------------------------------|
//! | `rows`   | `{"rows": [{…}, {…}, …]}`                  | Milvus row-based import files: vmig's JSON staging, milvus-migration's Elasticsearch dumps |
//! | `lines`  | one object per line (JSON Lines, NDJSON)   | most tools                                        |
//! | `array`  | `[{…}, {…}, …]`                            | `json.dump(list_of_dicts)`                        |
//!
//! Without `layout`, the first bytes decide: `[` is an array, `{` followed by `"rows"`, `:` and
//! `[` is a `rows` file, any other `{` starts JSON Lines (so a JSON Lines file whose first object
//! begins with an array-valued key `rows` needs `layout = "lines"`). A UTF-8 byte-order mark is
//! skipped.
//!
//! **Streaming, bounded memory.** The parser never holds the file: it finds each row's object by
//! tracking strings, escapes and nesting itself, across chunks of any size, has `serde_json`
//! validate that one object, and converts each value's text straight into an Arrow builder. It
//! holds one batch of rows (at most `batch_rows`) and the schema sample.
//!
//! **Schema.** Inferred from the first `sample_rows` rows (default 1000, and at most one batch,
//! `batch_rows`, because the sample's rows are the first batch), fields in the order they first
//! appear: `true`/`false` → `Bool`; integers → `Int64`; numbers with a fraction or exponent
//! (or integers mixed with them) → `Double`; strings → `VarChar`; objects → `JSON` (the object's
//! text, exactly as written); arrays of numbers that all have the same length → `FloatVector(len)`;
//! other arrays of one scalar kind → `Array<Int64|Double|Bool|VarChar>`; any other array → `JSON`.
//! A field that is `null` or missing in some sampled row is nullable. A field that holds two
//! kinds of values (numbers and strings, say), or only `null`, is an error: give its type.
//! Binary, float16 and bfloat16 vectors, narrower integers and `float` look like other types in
//! JSON, so they must be named in `fields` (`fields = { emb = "binary_vector(128)", score =
//! "float" }`). Types are Milvus's names, as `vmig plan` prints them (case and `_` do not matter;
//! `float32`, `float64` and `string` are also accepted): `bool`, `int8`…`int64`, `float`,
//! `double`, `varchar`, `json`, `array<int64>`, `float_vector(768)`, `binary_vector(256)`,
//! `float16_vector(8)`, `bfloat16_vector(8)`; a vector's dimension may be left out
//! (`float_vector`) to take it from the sample; a trailing `?` makes a field nullable. Fields
//! not named in `fields` are still inferred. When the job's schema is already planned (from its
//! first file), every file is read with it and no sample is taken.
//!
//! **Every row must fit the schema**: a key that is not a field, a vector of another length, a
//! string where a number belongs, a `null` or missing value in a field that is not nullable, a
//! key given twice — each fails naming the file, the line (1-based), the byte offset and the
//! field, and saying what to give in `fields`.
//!
//! **Exact values.** Each number is converted from its decimal text straight to its column's type:
//! a `float` or float-vector value is the nearest `f32` to the decimal (as Milvus's own import
//! reads it: `0.1` → `0x3dcccccd`, `1e-45` → the smallest subnormal, `-0.0` keeps its sign), never
//! a rounded `f64` rounded again; a number beyond the type's range (`1e39` for `float`) fails
//! instead of becoming infinity. Integers must be written as integers (`3`, not `3.0`) and fit
//! their type. Float16 vectors are the nearest `f16` to that `f32` and bfloat16 vectors its upper
//! 16 bits, which is what Milvus's import does with a JSON array for those types. Binary vectors
//! are arrays of byte values `0`–`255`, `dim / 8` of them (vmig's JSON staging writes them so).
//! A `JSON` field's object, array, number or boolean is kept as its exact text; a string in a
//! `JSON` field holds JSON text (how Milvus reads it, and how vmig writes non-object JSON values),
//! so its content is kept and must be valid JSON. vmig's own JSON staging output reads back to
//! the batch it was written from, given that batch's schema.
//!
//! **Resume.** A batch ends after a row's closing `}`; [`Parser::next_row_offset`] is the byte
//! after it, and [`Parser::seek`] restarts there in the layout read from the file's first bytes:
//! the rest of the file is read as `,{…}…]}` (rows/array) or `\n{…}…` (lines). After a resume,
//! errors name the byte offset but not the line (the lines before it were not read).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBufferBuilder, BooleanBuilder, FixedSizeBinaryArray, FixedSizeListArray,
    Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder, Int8Builder,
    ListArray, PrimitiveArray, RecordBatchOptions, StringBuilder,
};
use arrow::buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Field, Float16Type, Float32Type, Schema, SchemaRef,
};
use arrow::record_batch::RecordBatch;
use half::f16;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use vmig_core::parse::{ParseInput, ParsePosition, Parser, ParserConfig};
use vmig_core::types::{self, MilvusField, MilvusType};
use vmig_core::{Error, Result};

/// The default of `sample_rows` (json, csv, tsv): rows read to infer a schema.
pub const DEFAULT_SAMPLE_ROWS: usize = 1000;

/// How a JSON file holds its rows (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JsonLayout {
    /// Milvus row-based JSON: `{"rows": [{…}, …]}`.
    Rows,
    /// JSON Lines: one object per line.
    Lines,
    /// A top-level array of objects: `[{…}, …]`.
    Array,
}

impl JsonLayout {
    fn as_str(self) -> &'static str {
        match self {
            JsonLayout::Rows => "rows",
            JsonLayout::Lines => "lines",
            JsonLayout::Array => "array",
        }
    }
}

/// Options of the `json` format (see the module docs for what each does).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonParserConfig {
    /// `rows`, `lines` or `array`; default: detected from the file's first bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<JsonLayout>,
    /// Rows read to infer the schema (default 1000; at most `batch_rows` are used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_rows: Option<usize>,
    /// Field name → type (`int64`, `float_vector(768)`, `json`, `varchar?`, …) for fields whose
    /// type should not be inferred.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
}

impl ParserConfig for JsonParserConfig {
    const NAME: &'static str = "json";
    const SUMMARY: &'static str =
        "rows of JSON objects: Milvus row-based {\"rows\": [...]}, JSON Lines or an array; types inferred or given";
    const EXTENSIONS: &'static [&'static str] = &["json", "jsonl", "ndjson"];

    fn example() -> Self {
        Self {
            layout: None,
            sample_rows: None,
            fields: BTreeMap::from([
                ("embedding".into(), "float_vector(768)".into()),
                ("id".into(), "int64".into()),
            ]),
        }
    }

    fn validate(&self) -> Result<()> {
        sample_rows(Self::NAME, self.sample_rows)?;
        parse_fields(Self::NAME, &self.fields)?;
        Ok(())
    }

    fn build(&self, input: &ParseInput) -> Result<Box<dyn Parser>> {
        let sample = sample_rows(Self::NAME, self.sample_rows)?.min(input.batch_rows);
        let specs = parse_fields(Self::NAME, &self.fields)?;
        let plan = match &input.schema {
            Some(schema) => Some(Plan::from_schema(schema.clone(), Origin::Planned)?),
            None => None,
        };
        Ok(Box::new(JsonParser {
            input: input.clone(),
            configured: self.layout,
            layout: self.layout,
            sample_rows: sample,
            specs,
            plan,
            sample: Vec::new(),
            progress: Progress::default(),
            top: Top::Start,
            in_obj: false,
            detecting: false,
            depth: 0,
            in_str: false,
            esc: false,
            obj: Vec::new(),
            obj_start: 0,
            obj_line: Some(1),
            pos: 0,
            line: 1,
            lines_known: true,
        }))
    }
}

/// Checks `sample_rows` and returns it or its default.
pub(crate) fn sample_rows(plugin: &str, rows: Option<usize>) -> Result<usize> {
    match rows {
        Some(0) => Err(Error::config(plugin, "`sample_rows` must be at least 1")),
        Some(n) => Ok(n),
        None => Ok(DEFAULT_SAMPLE_ROWS),
    }
}

/// Parses the `fields` option.
pub(crate) fn parse_fields(
    plugin: &str,
    fields: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, TypeSpec>> {
    fields
        .iter()
        .map(|(name, ty)| {
            if name.is_empty() {
                return Err(Error::config(plugin, "`fields` has an empty field name"));
            }
            parse_type(ty)
                .map(|t| (name.clone(), t))
                .map_err(|m| Error::config(plugin, format!("`fields.{name}`: {m}")))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Types named in `fields`.

/// A type named in `fields`: a Milvus type (a vector's `dim` is 0 when it is to come from the
/// sample) and whether the field is nullable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TypeSpec {
    pub(crate) kind: MilvusField,
    pub(crate) nullable: bool,
}

impl TypeSpec {
    /// Whether the type is complete (a vector's dimension is given).
    pub(crate) fn complete(&self) -> bool {
        !self.kind.kind.is_vector() || self.kind.dim > 0
    }
}

const TYPE_NAMES: &str = "bool, int8, int16, int32, int64, float, double, varchar, json, \
    array<element>, float_vector(dim), binary_vector(dim), float16_vector(dim), \
    bfloat16_vector(dim) (Milvus's type names; case and `_` do not matter; float32, float64 and \
    string are accepted too; a trailing `?` makes the field nullable)";

/// The Milvus type called `name` (case, `_` and spaces ignored), from the one type table.
fn milvus_type_named(name: &str) -> Option<MilvusType> {
    let norm: String = name
        .chars()
        .filter(|c| *c != '_' && !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect();
    match norm.as_str() {
        "float32" => return Some(MilvusType::Float),
        "float64" => return Some(MilvusType::Double),
        "string" => return Some(MilvusType::VarChar),
        _ => {}
    }
    MilvusType::ALL
        .into_iter()
        .find(|t| t.name().to_ascii_lowercase() == norm)
}

/// Parses a type as written in `fields` (see [`TYPE_NAMES`]).
pub(crate) fn parse_type(text: &str) -> std::result::Result<TypeSpec, String> {
    let bad = || format!("`{text}` is not a type; types are {TYPE_NAMES}");
    let t = text.trim();
    let (t, nullable) = match t.strip_suffix('?') {
        Some(rest) => (rest.trim_end(), true),
        None => (t, false),
    };
    if let Some((name, rest)) = t.split_once('<') {
        let inner = rest.strip_suffix('>').ok_or_else(bad)?;
        if milvus_type_named(name) != Some(MilvusType::Array) {
            return Err(bad());
        }
        let element = milvus_type_named(inner)
            .filter(|e| e.is_array_element())
            .ok_or_else(|| {
                format!(
                    "`{text}`: an array holds bool, int8…int64, float, double or varchar elements"
                )
            })?;
        return Ok(TypeSpec {
            kind: MilvusField {
                kind: MilvusType::Array,
                element: Some(element),
                dim: 0,
            },
            nullable,
        });
    }
    let (name, dim) = match t.split_once('(') {
        Some((name, rest)) => {
            let inner = rest.strip_suffix(')').ok_or_else(bad)?.trim();
            let dim = inner
                .parse::<usize>()
                .ok()
                .filter(|d| *d > 0 && i32::try_from(*d).is_ok())
                .ok_or_else(|| {
                    format!("`{text}`: the dimension `{inner}` is not a positive integer")
                })?;
            (name, Some(dim))
        }
        None => (t, None),
    };
    let kind = milvus_type_named(name).ok_or_else(bad)?;
    match kind {
        MilvusType::SparseFloatVector | MilvusType::Int8Vector => Err(format!(
            "`{text}`: {} vectors are not read by the json and csv parsers yet",
            if kind == MilvusType::Int8Vector {
                "int8"
            } else {
                "sparse"
            }
        )),
        MilvusType::Array => Err(format!(
            "`{text}`: name the element type, as in `array<int64>`"
        )),
        k if k.is_vector() && nullable => Err(format!(
            "`{text}`: a Milvus vector cannot be null, so it cannot be nullable"
        )),
        k if k.is_vector() => {
            let dim = dim.unwrap_or(0);
            if k == MilvusType::BinaryVector && !dim.is_multiple_of(8) {
                return Err(format!(
                    "`{text}`: a binary vector's dimension (in bits) must be a multiple of 8"
                ));
            }
            Ok(TypeSpec {
                kind: MilvusField {
                    kind: k,
                    element: None,
                    dim,
                },
                nullable,
            })
        }
        _ if dim.is_some() => Err(format!("`{text}`: only vector types take a dimension")),
        k => Ok(TypeSpec {
            kind: MilvusField::plain(k),
            nullable,
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Schema inference from a sample.

/// The kinds of values a sample can hold, for inference and its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cat {
    Bool,
    Number,
    Str,
    Object,
    Array,
}

impl Cat {
    const ALL: [Cat; 5] = [Cat::Bool, Cat::Number, Cat::Str, Cat::Object, Cat::Array];

    fn describe(self) -> &'static str {
        match self {
            Cat::Bool => "true/false",
            Cat::Number => "numbers",
            Cat::Str => "strings",
            Cat::Object => "objects",
            Cat::Array => "arrays",
        }
    }
}

/// What the sampled values of one field looked like.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stats {
    pub(crate) name: String,
    /// Rows in which the field is present (JSON) or non-empty (CSV).
    present: usize,
    /// A value was `null`, missing or (CSV) empty.
    nulls: bool,
    /// The first line at which each [`Cat`] was seen.
    first: [Option<u64>; 5],
    /// A number had a fraction or exponent.
    floats: bool,
    /// Arrays: their common length, or that lengths varied.
    arrays: usize,
    array_len: Option<usize>,
    array_len_varies: bool,
    /// Element kinds seen inside arrays.
    elem_bool: bool,
    elem_int: bool,
    elem_float: bool,
    elem_str: bool,
    elem_null: bool,
    elem_other: bool,
}

impl Stats {
    pub(crate) fn new(name: &str) -> Self {
        Stats {
            name: name.to_string(),
            ..Stats::default()
        }
    }

    fn see(&mut self, cat: Cat, line: u64) {
        let slot = &mut self.first[cat as usize];
        if slot.is_none() {
            *slot = Some(line);
        }
    }

    fn see_array<'a>(&mut self, elements: impl ExactSizeIterator<Item = &'a str>, line: u64) {
        self.see(Cat::Array, line);
        let len = elements.len();
        match self.array_len {
            None if self.arrays == 0 => self.array_len = Some(len),
            Some(l) if l == len => {}
            _ => {
                self.array_len_varies = true;
                self.array_len = None;
            }
        }
        self.arrays += 1;
        for e in elements {
            match e.as_bytes().first() {
                Some(b'n') => self.elem_null = true,
                Some(b't' | b'f') => self.elem_bool = true,
                Some(b'"') => self.elem_str = true,
                Some(b'{' | b'[') | None => self.elem_other = true,
                Some(_) if is_integer(e) => self.elem_int = true,
                Some(_) => self.elem_float = true,
            }
        }
    }

    /// Records one present JSON value (its raw text) seen at `line`.
    pub(crate) fn observe_json(&mut self, raw: &str, line: u64) {
        self.present += 1;
        match raw.as_bytes().first() {
            Some(b'n') => self.nulls = true,
            Some(b't' | b'f') => self.see(Cat::Bool, line),
            Some(b'"') => self.see(Cat::Str, line),
            Some(b'{') => self.see(Cat::Object, line),
            Some(b'[') => self.see_array(items(raw).into_iter(), line),
            _ => {
                self.see(Cat::Number, line);
                if !is_integer(raw) {
                    self.floats = true;
                }
            }
        }
    }

    /// Records one CSV cell seen at `line`.
    pub(crate) fn observe_text(&mut self, cell: &str, line: u64, sep: Option<&str>) {
        if cell.is_empty() {
            self.nulls = true;
            return;
        }
        self.present += 1;
        let t = cell.trim_matches(is_json_ws);
        if t.starts_with('[') {
            if serde_json::from_str::<IgnoredAny>(t).is_ok() {
                self.see_array(items(t).into_iter(), line);
            } else {
                self.see(Cat::Str, line);
            }
        } else if t.starts_with('{') && serde_json::from_str::<IgnoredAny>(t).is_ok() {
            self.see(Cat::Object, line);
        } else if t.eq_ignore_ascii_case("true") || t.eq_ignore_ascii_case("false") {
            self.see(Cat::Bool, line);
        } else if t.parse::<i64>().is_ok() {
            self.see(Cat::Number, line);
        } else if t.parse::<f64>().is_ok() {
            self.see(Cat::Number, line);
            self.floats = true;
        } else if let Some(pieces) = sep
            .filter(|s| t.contains(*s))
            .and_then(|s| separated_numbers(t, s))
        {
            self.see_array(pieces.into_iter(), line);
        } else {
            self.see(Cat::Str, line);
        }
    }

    /// Marks the field nullable when it was missing from some of `rows` sampled rows.
    pub(crate) fn rows_seen(&mut self, rows: usize) {
        if self.present < rows {
            self.nulls = true;
        }
    }

    /// The field's type and nullability: `spec` when given (a missing vector dimension taken
    /// from the sample), else inferred. `text_cells` (CSV) makes mixed or empty columns
    /// `VarChar` (every cell is text), where JSON refuses them.
    pub(crate) fn resolve(
        &self,
        spec: Option<TypeSpec>,
        text_cells: bool,
    ) -> std::result::Result<(MilvusField, bool), String> {
        let nullable = |kind: MilvusField, nulls: bool| {
            // Vectors are never nullable; an empty CSV cell is an empty string, not null.
            let text = text_cells && kind.kind == MilvusType::VarChar;
            (kind, nulls && !kind.kind.is_vector() && !text)
        };
        if let Some(spec) = spec {
            let mut kind = spec.kind;
            if kind.kind.is_vector() && kind.dim == 0 {
                let len = match (self.arrays, self.array_len) {
                    (0, _) => None,
                    (_, len) => len,
                }
                .filter(|l| *l > 0)
                .ok_or_else(|| {
                    format!(
                        "`fields` gives it as {} without a dimension, and the sample does not \
                         show one (no arrays, or arrays of different lengths); write it as `{}(dim)`",
                        kind.kind,
                        snake(kind.kind)
                    )
                })?;
                kind.dim = if kind.kind == MilvusType::BinaryVector {
                    len * 8
                } else {
                    len
                };
            }
            let (kind, nulls) = nullable(kind, self.nulls);
            return Ok((kind, spec.nullable || nulls));
        }
        let seen: Vec<(Cat, u64)> = Cat::ALL
            .iter()
            .filter_map(|c| self.first[*c as usize].map(|l| (*c, l)))
            .collect();
        let cat = match seen.as_slice() {
            [] if text_cells => {
                return Ok(nullable(MilvusField::plain(MilvusType::VarChar), false))
            }
            [] => {
                return Err(
                    "is null or missing in every sampled row, so its type cannot be inferred; \
                     give it in `fields` (e.g. `varchar?`)"
                        .into(),
                )
            }
            [(cat, _)] => *cat,
            _ if text_cells => return Ok(nullable(MilvusField::plain(MilvusType::VarChar), false)),
            many => {
                let kinds: Vec<String> = many
                    .iter()
                    .map(|(c, l)| format!("{} (first at line {l})", c.describe()))
                    .collect();
                return Err(format!(
                    "holds {}; give its type in `fields` (`json` keeps any value as JSON text)",
                    kinds.join(" and ")
                ));
            }
        };
        let plain = MilvusField::plain;
        let kind = match cat {
            Cat::Bool => plain(MilvusType::Bool),
            Cat::Number if self.floats => plain(MilvusType::Double),
            Cat::Number => plain(MilvusType::Int64),
            Cat::Str => plain(MilvusType::VarChar),
            Cat::Object => plain(MilvusType::Json),
            Cat::Array => self.array_kind(),
        };
        Ok(nullable(kind, self.nulls))
    }

    /// The columns of the sampled `stats` (all of `n` rows of the input `name`), each
    /// [`Stats::resolve`]d with its type in `specs`; an error names the input and the `what`
    /// (`field` or `column`).
    pub(crate) fn columns(
        stats: &mut [Stats],
        specs: &BTreeMap<String, TypeSpec>,
        text_cells: bool,
        name: &str,
        what: &str,
        n: usize,
    ) -> Result<Vec<(String, MilvusField, bool)>> {
        let mut columns = Vec::with_capacity(stats.len());
        for s in stats {
            let (kind, nullable) =
                s.resolve(specs.get(&s.name).copied(), text_cells)
                    .map_err(|m| {
                        Error::data(
                            format!("{name}, {what} `{}`", s.name),
                            format!("{m} (seen in the first {n} rows)"),
                        )
                    })?;
            columns.push((std::mem::take(&mut s.name), kind, nullable));
        }
        Ok(columns)
    }

    fn array_kind(&self) -> MilvusField {
        let numbers = self.elem_int || self.elem_float;
        let only_numbers = numbers && !self.elem_bool && !self.elem_str && !self.elem_other;
        if only_numbers && !self.elem_null && !self.array_len_varies {
            if let Some(dim) = self.array_len.filter(|d| *d > 0) {
                return MilvusField {
                    kind: MilvusType::FloatVector,
                    element: None,
                    dim,
                };
            }
        }
        let element = match (self.elem_bool, numbers, self.elem_str, self.elem_other) {
            (true, false, false, false) => Some(MilvusType::Bool),
            (false, true, false, false) if self.elem_float => Some(MilvusType::Double),
            (false, true, false, false) => Some(MilvusType::Int64),
            (false, false, true, false) => Some(MilvusType::VarChar),
            _ => None,
        };
        match element {
            Some(e) => MilvusField {
                kind: MilvusType::Array,
                element: Some(e),
                dim: 0,
            },
            None => MilvusField::plain(MilvusType::Json),
        }
    }
}

/// `float_vector` for `FloatVector`, as written in `fields`.
fn snake(t: MilvusType) -> String {
    let mut out = String::new();
    for (i, c) in t.name().chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The numbers of a CSV cell split by `sep`, when every piece is one.
fn separated_numbers<'a>(cell: &'a str, sep: &str) -> Option<Vec<&'a str>> {
    let skip_empty = sep.trim().is_empty();
    let pieces: Vec<&str> = cell
        .split(sep)
        .map(|p| p.trim_matches(is_json_ws))
        .filter(|p| !(skip_empty && p.is_empty()))
        .collect();
    pieces.iter().all(|p| is_json_number(p)).then_some(pieces)
}

// ---------------------------------------------------------------------------------------------
// The columns being built.

/// Where a plan's schema came from (for error messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The job's schema, planned from its first file.
    Planned,
    /// Inferred from this many sampled rows (with `fields` applied).
    Sample(usize),
    /// Every column named in `fields`.
    Fields,
}

/// The schema of a parser's batches and the builders of the batch being read.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) schema: SchemaRef,
    cols: Vec<Col>,
    index: HashMap<String, usize>,
    origin: Origin,
    /// Which fields the current row has set.
    seen: Vec<bool>,
    /// Complete rows in the builders.
    rows: usize,
}

#[derive(Debug)]
struct Col {
    kind: MilvusField,
    nullable: bool,
    builder: Builder,
}

impl Plan {
    /// A plan producing batches of exactly `schema`.
    pub(crate) fn from_schema(schema: SchemaRef, origin: Origin) -> Result<Plan> {
        let mut cols = Vec::with_capacity(schema.fields().len());
        let mut index = HashMap::new();
        for (i, f) in schema.fields().iter().enumerate() {
            let kind = types::milvus_field(f)?;
            if matches!(
                kind.kind,
                MilvusType::SparseFloatVector | MilvusType::Int8Vector
            ) {
                return Err(Error::unsupported(
                    format!("field `{}`", f.name()),
                    format!(
                        "{} vectors are not read by the json and csv parsers yet",
                        if kind.kind == MilvusType::Int8Vector {
                            "int8"
                        } else {
                            "sparse float"
                        }
                    ),
                ));
            }
            if index.insert(f.name().clone(), i).is_some() {
                return Err(Error::schema(format!(
                    "field `{}` appears twice in the schema",
                    f.name()
                )));
            }
            cols.push(Col {
                kind,
                nullable: f.is_nullable() && !kind.kind.is_vector(),
                builder: Builder::new(kind),
            });
        }
        Ok(Plan {
            seen: vec![false; cols.len()],
            schema,
            cols,
            index,
            origin,
            rows: 0,
        })
    }

    /// A plan for columns `(name, type, nullable)`, in order.
    pub(crate) fn from_columns(
        columns: Vec<(String, MilvusField, bool)>,
        origin: Origin,
    ) -> Result<Plan> {
        let fields = columns
            .iter()
            .map(|(name, kind, nullable)| {
                Ok(types::arrow_field(name, *kind)?.with_nullable(*nullable))
            })
            .collect::<Result<Vec<Field>>>()?;
        Plan::from_schema(Arc::new(Schema::new(fields)), origin)
    }

    /// The index of field `name`, trying `guess` first (rows usually keep the schema's order).
    pub(crate) fn find(&self, name: &str, guess: usize) -> Option<usize> {
        match self.schema.fields().get(guess) {
            Some(f) if f.name() == name => Some(guess),
            _ => self.index.get(name).copied(),
        }
    }

    pub(crate) fn kind(&self, i: usize) -> MilvusField {
        self.cols[i].kind
    }

    /// The field names, for messages.
    pub(crate) fn names(&self) -> String {
        let names: Vec<&str> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        names.join(", ")
    }

    /// What to do about a value that does not fit field `i`.
    fn hint(&self, i: usize) -> String {
        let name = self.schema.field(i).name();
        match self.origin {
            Origin::Sample(n) => format!(
                "the field's type was inferred from the first {n} rows; if rows differ, give it \
                 in `fields` (e.g. `fields = {{ \"{name}\" = \"json\" }}`)"
            ),
            Origin::Planned => format!(
                "the field is {} in the job's schema (planned from its first file); if the \
                 files differ, give the field's type in `fields`",
                self.cols[i].kind
            ),
            Origin::Fields => format!("the field is {} as `fields` gives it", self.cols[i].kind),
        }
    }

    /// What to do about a key that is not a field.
    pub(crate) fn unknown_hint(&self) -> String {
        match self.origin {
            Origin::Sample(n) => format!(
                "the fields were inferred from the first {n} rows; give this one's type in \
                 `fields` to include it"
            ),
            Origin::Planned => "the job's schema was planned from its first file; give this \
                 field's type in `fields` to include it"
                .into(),
            Origin::Fields => "give its type in `fields`".into(),
        }
    }

    pub(crate) fn begin_row(&mut self) {
        self.seen.fill(false);
    }

    /// Sets field `i` of the current row: null, or the value `push` appends.
    pub(crate) fn set(
        &mut self,
        i: usize,
        null: bool,
        push: impl FnOnce(&mut Builder, MilvusField) -> Msg,
    ) -> Msg {
        if std::mem::replace(&mut self.seen[i], true) {
            return Err("appears twice in this row".into());
        }
        let col = &mut self.cols[i];
        if null {
            if col.nullable {
                col.builder.append_null();
                return Ok(());
            }
            return Err(self.not_null(i, "is null"));
        }
        push(&mut col.builder, col.kind).map_err(|m| format!("{m}; {}", self.hint(i)))
    }

    fn not_null(&self, i: usize, what: &str) -> String {
        let name = self.schema.field(i).name();
        let kind = self.cols[i].kind;
        if kind.kind.is_vector() {
            return format!("{what}, but a Milvus vector cannot be null");
        }
        let why = match self.origin {
            Origin::Sample(n) => format!("it had a value in each of the first {n} rows"),
            Origin::Planned => "it is not nullable in the job's schema".into(),
            Origin::Fields => "`fields` does not make it nullable".into(),
        };
        format!(
            "{what}, but the field is not nullable ({why}); make it nullable in `fields` \
             (`\"{name}\" = \"{}?\"`)",
            spec_name(kind)
        )
    }

    /// Completes the current row: fields not set become null. Returns the name of a missing
    /// non-nullable field and the message.
    pub(crate) fn end_row(&mut self) -> std::result::Result<(), (String, String)> {
        for i in 0..self.cols.len() {
            if !self.seen[i] {
                if !self.cols[i].nullable {
                    let name = self.schema.field(i).name().clone();
                    return Err((name, self.not_null(i, "is missing")));
                }
                self.cols[i].builder.append_null();
            }
        }
        self.rows += 1;
        Ok(())
    }

    /// The rows built so far as a batch (`None` when there are none).
    pub(crate) fn take_batch(&mut self) -> Result<Option<RecordBatch>> {
        if self.rows == 0 {
            return Ok(None);
        }
        let arrays = self
            .cols
            .iter_mut()
            .zip(self.schema.fields())
            .map(|(c, f)| c.builder.finish(f.data_type()))
            .collect::<Result<Vec<_>>>()?;
        let rows = std::mem::take(&mut self.rows);
        Ok(Some(RecordBatch::try_new_with_options(
            self.schema.clone(),
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?))
    }

    /// Drops the rows built so far.
    pub(crate) fn clear(&mut self) {
        for c in &mut self.cols {
            c.builder = Builder::new(c.kind);
        }
        self.rows = 0;
    }
}

/// How `kind` is written in `fields`.
fn spec_name(kind: MilvusField) -> String {
    match (kind.kind, kind.element) {
        (MilvusType::Array, Some(e)) => format!("array<{}>", snake(e)),
        (k, _) if k.is_vector() => format!("{}({})", snake(k), kind.dim),
        (k, _) => snake(k),
    }
}

/// A value that does not fit: the message.
pub(crate) type Msg = std::result::Result<(), String>;

/// The Arrow builder of one column.
#[derive(Debug)]
pub(crate) enum Builder {
    Bool(BooleanBuilder),
    Int8(Int8Builder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float(Float32Builder),
    Double(Float64Builder),
    /// `VarChar` and `JSON`.
    Text(StringBuilder),
    /// A Milvus `Array`.
    List {
        element: MilvusType,
        item: Box<Builder>,
        offsets: Vec<i32>,
        valid: BooleanBufferBuilder,
    },
    F32 {
        dim: usize,
        values: Vec<f32>,
    },
    F16 {
        dim: usize,
        values: Vec<f16>,
    },
    /// Binary vectors (`dim / 8` bytes a row) and bfloat16 vectors (`2 × dim`).
    Bytes {
        dim: usize,
        bf16: bool,
        values: Vec<u8>,
    },
}

impl Builder {
    fn new(kind: MilvusField) -> Builder {
        match kind.kind {
            MilvusType::Bool => Builder::Bool(BooleanBuilder::new()),
            MilvusType::Int8 => Builder::Int8(Int8Builder::new()),
            MilvusType::Int16 => Builder::Int16(Int16Builder::new()),
            MilvusType::Int32 => Builder::Int32(Int32Builder::new()),
            MilvusType::Int64 => Builder::Int64(Int64Builder::new()),
            MilvusType::Float => Builder::Float(Float32Builder::new()),
            MilvusType::Double => Builder::Double(Float64Builder::new()),
            MilvusType::Array => {
                let element = kind.element.unwrap_or(MilvusType::VarChar);
                Builder::List {
                    element,
                    item: Box::new(Builder::new(MilvusField::plain(element))),
                    offsets: vec![0],
                    valid: BooleanBufferBuilder::new(0),
                }
            }
            MilvusType::FloatVector => Builder::F32 {
                dim: kind.dim,
                values: Vec::new(),
            },
            MilvusType::Float16Vector => Builder::F16 {
                dim: kind.dim,
                values: Vec::new(),
            },
            MilvusType::BinaryVector | MilvusType::BFloat16Vector => Builder::Bytes {
                dim: kind.dim,
                bf16: kind.kind == MilvusType::BFloat16Vector,
                values: Vec::new(),
            },
            // VarChar, JSON (sparse and int8 vectors are refused before a builder is made).
            _ => Builder::Text(StringBuilder::new()),
        }
    }

    fn append_null(&mut self) {
        match self {
            Builder::Bool(b) => b.append_null(),
            Builder::Int8(b) => b.append_null(),
            Builder::Int16(b) => b.append_null(),
            Builder::Int32(b) => b.append_null(),
            Builder::Int64(b) => b.append_null(),
            Builder::Float(b) => b.append_null(),
            Builder::Double(b) => b.append_null(),
            Builder::Text(b) => b.append_null(),
            Builder::List { offsets, valid, .. } => {
                offsets.push(offsets.last().copied().unwrap_or(0));
                valid.append(false);
            }
            // Vectors are never nullable (checked by the plan).
            Builder::F32 { .. } | Builder::F16 { .. } | Builder::Bytes { .. } => {}
        }
    }

    /// Appends one JSON value, given as its raw text (valid JSON, not `null`).
    pub(crate) fn push_json(&mut self, kind: MilvusField, raw: &str) -> Msg {
        match self {
            Builder::Bool(b) => match raw {
                "true" => b.append_value(true),
                "false" => b.append_value(false),
                _ => return Err(expected("true or false", raw)),
            },
            Builder::Int8(b) => b.append_value(int_in(json_int(raw)?, "Int8")?),
            Builder::Int16(b) => b.append_value(int_in(json_int(raw)?, "Int16")?),
            Builder::Int32(b) => b.append_value(int_in(json_int(raw)?, "Int32")?),
            Builder::Int64(b) => b.append_value(json_int(raw)?),
            Builder::Float(b) => b.append_value(number(raw)?),
            Builder::Double(b) => b.append_value(number(raw)?),
            Builder::Text(b) if kind.kind == MilvusType::Json => {
                b.append_value(json_text(raw)?.as_ref());
            }
            Builder::Text(b) => {
                let s = json_string(raw).ok_or_else(|| expected("a string", raw))?;
                b.append_value(s.as_ref());
            }
            Builder::List {
                element,
                item,
                offsets,
                valid,
            } => {
                if !raw.starts_with('[') {
                    return Err(expected("an array", raw));
                }
                let elements = items(raw);
                let kind = MilvusField::plain(*element);
                for (i, e) in elements.iter().enumerate() {
                    if *e == "null" {
                        item.append_null();
                    } else {
                        item.push_json(kind, e)
                            .map_err(|m| format!("element {i}: {m}"))?;
                    }
                }
                let last = offsets.last().copied().unwrap_or(0);
                let next = i32::try_from(elements.len())
                    .ok()
                    .and_then(|n| last.checked_add(n))
                    .ok_or("more array elements in one batch than Arrow's 32-bit offsets hold")?;
                offsets.push(next);
                valid.append(true);
            }
            Builder::F32 { .. } | Builder::F16 { .. } | Builder::Bytes { .. } => {
                if !raw.starts_with('[') {
                    return Err(expected("an array of numbers", raw));
                }
                self.push_vector(kind, raw, None)?;
            }
        }
        Ok(())
    }

    /// Appends one CSV cell (not empty, unless the column is `VarChar`).
    pub(crate) fn push_text(&mut self, kind: MilvusField, cell: &str, sep: Option<&str>) -> Msg {
        let t = cell.trim_matches(is_json_ws);
        match self {
            Builder::Bool(b) => {
                if t.eq_ignore_ascii_case("true") {
                    b.append_value(true);
                } else if t.eq_ignore_ascii_case("false") {
                    b.append_value(false);
                } else {
                    return Err(format!("expected true or false, found {}", quote(cell)));
                }
            }
            Builder::Int8(b) => b.append_value(int_in(text_int(t)?, "Int8")?),
            Builder::Int16(b) => b.append_value(int_in(text_int(t)?, "Int16")?),
            Builder::Int32(b) => b.append_value(int_in(text_int(t)?, "Int32")?),
            Builder::Int64(b) => b.append_value(text_int(t)?),
            Builder::Float(b) => b.append_value(text_float(t)?),
            Builder::Double(b) => b.append_value(text_float(t)?),
            Builder::Text(b) if kind.kind == MilvusType::Json => {
                serde_json::from_str::<IgnoredAny>(cell)
                    .map_err(|e| format!("{} is not JSON text: {}", quote(cell), bare(&e)))?;
                b.append_value(cell);
            }
            Builder::Text(b) => b.append_value(cell),
            Builder::List { .. } => {
                if !t.starts_with('[') || serde_json::from_str::<IgnoredAny>(t).is_err() {
                    return Err(format!(
                        "expected a JSON array like `[1, 2]`, found {}",
                        quote(cell)
                    ));
                }
                self.push_json(kind, t)?;
            }
            Builder::F32 { .. } | Builder::F16 { .. } | Builder::Bytes { .. } => {
                self.push_vector(kind, t, sep)?;
            }
        }
        Ok(())
    }

    /// Appends a vector written as `[n, n, …]` (or, with `sep`, `n<sep>n<sep>…`).
    fn push_vector(&mut self, kind: MilvusField, text: &str, sep: Option<&str>) -> Msg {
        let (n, want, unit) = match self {
            Builder::F32 { dim, values } => {
                let n = for_each_number(text, sep, |tok| {
                    values.push(number::<f32>(tok)?);
                    Ok(())
                })?;
                (n, *dim, "values")
            }
            Builder::F16 { dim, values } => {
                let n = for_each_number(text, sep, |tok| {
                    values.push(f16::from_f32(number::<f32>(tok)?));
                    Ok(())
                })?;
                (n, *dim, "values")
            }
            Builder::Bytes {
                dim,
                bf16: true,
                values,
            } => {
                let n = for_each_number(text, sep, |tok| {
                    // Milvus keeps a float32's upper half (Float32ToBFloat16Bytes).
                    let half = (number::<f32>(tok)?.to_bits() >> 16) as u16;
                    values.extend_from_slice(&half.to_le_bytes());
                    Ok(())
                })?;
                (n, *dim, "values")
            }
            Builder::Bytes {
                dim,
                bf16: false,
                values,
            } => {
                let n = for_each_number(text, sep, |tok| {
                    let byte = tok.parse::<u8>().map_err(|_| {
                        format!("{tok} is not a byte; a binary vector is an array of bytes 0–255")
                    })?;
                    values.push(byte);
                    Ok(())
                })?;
                (n, *dim / 8, "bytes (8 dimensions each)")
            }
            _ => return Err("not a vector column".into()),
        };
        if n != want {
            return Err(format!(
                "the vector has {n} {unit}, but the field is {kind}, which takes {want}"
            ));
        }
        Ok(())
    }

    /// The column built so far, as `data_type`, and a fresh builder.
    fn finish(&mut self, data_type: &DataType) -> Result<ArrayRef> {
        let array: ArrayRef = match self {
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Int8(b) => Arc::new(b.finish()),
            Builder::Int16(b) => Arc::new(b.finish()),
            Builder::Int32(b) => Arc::new(b.finish()),
            Builder::Int64(b) => Arc::new(b.finish()),
            Builder::Float(b) => Arc::new(b.finish()),
            Builder::Double(b) => Arc::new(b.finish()),
            Builder::Text(b) => Arc::new(b.finish()),
            Builder::List {
                item,
                offsets,
                valid,
                ..
            } => {
                let item_field = match data_type {
                    DataType::List(f) => f.clone(),
                    _ => Arc::new(Field::new_list_field(item.data_type(), true)),
                };
                let values = item.finish(item_field.data_type())?;
                let offsets =
                    OffsetBuffer::new(ScalarBuffer::from(std::mem::replace(offsets, vec![0])));
                let nulls = NullBuffer::new(valid.finish());
                let nulls = (nulls.null_count() > 0).then_some(nulls);
                Arc::new(ListArray::try_new(item_field, offsets, values, nulls)?)
            }
            Builder::F32 { dim, values } => {
                fixed_size_list::<Float32Type>(data_type, *dim, std::mem::take(values))?
            }
            Builder::F16 { dim, values } => {
                fixed_size_list::<Float16Type>(data_type, *dim, std::mem::take(values))?
            }
            Builder::Bytes { dim, bf16, values } => {
                let width = if *bf16 { *dim * 2 } else { *dim / 8 };
                Arc::new(FixedSizeBinaryArray::try_new(
                    width as i32,
                    Buffer::from_vec(std::mem::take(values)),
                    None,
                )?)
            }
        };
        if array.data_type() == data_type {
            Ok(array)
        } else {
            // LargeUtf8, Utf8View, LargeList, … in a planned schema.
            Ok(arrow::compute::cast(&array, data_type)?)
        }
    }

    /// The Arrow type this builder makes (for list items).
    fn data_type(&self) -> DataType {
        match self {
            Builder::Bool(_) => DataType::Boolean,
            Builder::Int8(_) => DataType::Int8,
            Builder::Int16(_) => DataType::Int16,
            Builder::Int32(_) => DataType::Int32,
            Builder::Int64(_) => DataType::Int64,
            Builder::Float(_) => DataType::Float32,
            Builder::Double(_) => DataType::Float64,
            _ => DataType::Utf8,
        }
    }
}

/// The item field of a fixed-size list column of `data_type` (the planned one when it is one).
/// `values` as a fixed-size list of `dim` values of `T` a row, of `data_type`.
fn fixed_size_list<T: ArrowPrimitiveType>(
    data_type: &DataType,
    dim: usize,
    values: Vec<T::Native>,
) -> Result<ArrayRef> {
    let values = Arc::new(PrimitiveArray::<T>::new(ScalarBuffer::from(values), None));
    Ok(Arc::new(FixedSizeListArray::try_new(
        list_item(data_type, T::DATA_TYPE),
        dim as i32,
        values,
        None,
    )?))
}

fn list_item(data_type: &DataType, item: DataType) -> Arc<Field> {
    match data_type {
        DataType::FixedSizeList(f, _) if f.data_type() == &item => f.clone(),
        _ => Arc::new(Field::new_list_field(item, true)),
    }
}

// ---------------------------------------------------------------------------------------------
// Values from text, exactly.

pub(crate) fn is_json_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// Whether `s` is a JSON number (`-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`).
pub(crate) fn is_json_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > start
    };
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == b.len()
}

/// Whether a JSON number has neither fraction nor exponent.
fn is_integer(s: &str) -> bool {
    !s.bytes().any(|c| matches!(c, b'.' | b'e' | b'E'))
}

/// `value` as a JSON excerpt for messages: what kind of value it is, and its start.
fn describe(raw: &str) -> String {
    match raw.as_bytes().first() {
        Some(b'"') => format!("the string {}", excerpt(raw)),
        Some(b'{') => format!("the object {}", excerpt(raw)),
        Some(b'[') => format!("the array {}", excerpt(raw)),
        Some(b't' | b'f' | b'n') => raw.to_string(),
        _ => format!("the number {}", excerpt(raw)),
    }
}

fn expected(what: &str, raw: &str) -> String {
    format!("expected {what}, found {}", describe(raw))
}

/// The first 40 characters of `text`.
fn excerpt(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// A CSV cell quoted for messages.
pub(crate) fn quote(cell: &str) -> String {
    format!("`{}`", excerpt(cell))
}

/// A serde_json error's message without its position (positions are named by the caller).
pub(crate) fn bare(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rsplit_once(" at line ") {
        Some((msg, _)) => msg.to_string(),
        None => text,
    }
}

fn json_int(raw: &str) -> std::result::Result<i64, String> {
    if !is_json_number(raw) {
        return Err(expected("an integer", raw));
    }
    if !is_integer(raw) {
        return Err(format!(
            "expected an integer, found the number {raw} (integer fields take integers only)"
        ));
    }
    raw.parse::<i64>()
        .map_err(|_| format!("{raw} does not fit Int64"))
}

fn text_int(t: &str) -> std::result::Result<i64, String> {
    t.parse::<i64>().map_err(|_| {
        if t.parse::<f64>().is_ok()
            && t.bytes()
                .all(|c| c.is_ascii_digit() || c == b'-' || c == b'+')
        {
            format!("{t} does not fit Int64")
        } else {
            format!("expected an integer, found {}", quote(t))
        }
    })
}

fn int_in<T: TryFrom<i64>>(v: i64, name: &str) -> std::result::Result<T, String> {
    T::try_from(v).map_err(|_| format!("{v} does not fit {name}"))
}

/// `f32` or `f64`, as parsed from text.
trait Float: std::str::FromStr + Copy {
    /// How messages name the type's range.
    const RANGE: &'static str;
    fn is_infinite(self) -> bool;
}

impl Float for f32 {
    const RANGE: &'static str = "a 32-bit float (±3.4028235e38)";
    fn is_infinite(self) -> bool {
        f32::is_infinite(self)
    }
}

impl Float for f64 {
    const RANGE: &'static str = "a 64-bit float (±1.7976931348623157e308)";
    fn is_infinite(self) -> bool {
        f64::is_infinite(self)
    }
}

/// `v`, the value of the text `t`, unless it overflowed to infinity (`t` does not spell it).
fn in_range<T: Float>(v: T, t: &str, spelled: bool) -> std::result::Result<T, String> {
    if v.is_infinite() && !spelled {
        return Err(format!("{t} is beyond the range of {}", T::RANGE));
    }
    Ok(v)
}

/// A JSON number as the nearest `T` (an `f32` never through `f64`); out of range fails.
fn number<T: Float>(tok: &str) -> std::result::Result<T, String> {
    if !is_json_number(tok) {
        return Err(expected("a number", tok));
    }
    let v = tok.parse::<T>().map_err(|_| expected("a number", tok))?;
    in_range(v, tok, false)
}

/// Whether a CSV float cell spells infinity or NaN itself (which Rust's parser reads).
fn spells_non_finite(t: &str) -> bool {
    t.bytes().any(|c| matches!(c, b'i' | b'I' | b'n' | b'N'))
}

/// A CSV float cell (which may spell `inf` or `nan`) as the nearest `T`; out of range fails.
fn text_float<T: Float>(t: &str) -> std::result::Result<T, String> {
    let v = t
        .parse::<T>()
        .map_err(|_| format!("expected a number, found {}", quote(t)))?;
    in_range(v, t, spells_non_finite(t))
}

/// The content of a JSON string value, unescaped (`None` when `raw` is not a string).
fn json_string(raw: &str) -> Option<Cow<'_, str>> {
    if !raw.starts_with('"') {
        return None;
    }
    if !raw.contains('\\') && raw.len() >= 2 {
        return Some(Cow::Borrowed(&raw[1..raw.len() - 1]));
    }
    serde_json::from_str::<String>(raw).ok().map(Cow::Owned)
}

/// The JSON text a `JSON` field keeps for `raw`: the value's own text, or a string's content
/// (which must be JSON text).
fn json_text(raw: &str) -> std::result::Result<Cow<'_, str>, String> {
    match json_string(raw) {
        None => Ok(Cow::Borrowed(raw)),
        Some(text) => match serde_json::from_str::<IgnoredAny>(&text) {
            Ok(_) => Ok(text),
            Err(e) => Err(format!(
                "{} is not JSON text ({}); a string in a JSON field must hold JSON, as Milvus \
                 reads it",
                describe(raw),
                bare(&e)
            )),
        },
    }
}

/// Calls `each` with every number of a vector written `[n, n, …]` or, with `sep`, `n<sep>n…`
/// (pieces around a whitespace separator may be empty), and returns how many there were.
/// Numbers must be JSON numbers.
pub(crate) fn for_each_number(
    text: &str,
    sep: Option<&str>,
    mut each: impl FnMut(&str) -> Msg,
) -> std::result::Result<usize, String> {
    let t = text.trim_matches(is_json_ws);
    let mut n = 0;
    let mut one = |tok: &str| {
        if !is_json_number(tok) {
            return Err(format!(
                "element {n} of the vector is {}, not a number",
                if tok.is_empty() {
                    "empty".into()
                } else {
                    describe(tok)
                }
            ));
        }
        each(tok).map_err(|m| format!("element {n} of the vector: {m}"))?;
        n += 1;
        Ok(())
    };
    if let Some(inner) = t.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or_else(|| format!("expected an array of numbers, found {}", describe(t)))?;
        if !inner.trim_matches(is_json_ws).is_empty() {
            for tok in inner.split(',') {
                one(tok.trim_matches(is_json_ws))?;
            }
        }
    } else if let Some(sep) = sep {
        let skip_empty = sep.trim().is_empty();
        for tok in t.split(sep) {
            let tok = tok.trim_matches(is_json_ws);
            if !(skip_empty && tok.is_empty()) {
                one(tok)?;
            }
        }
    } else {
        return Err(format!(
            "expected a vector written as an array of numbers (`[0.5, 1]`), found {}",
            quote(t)
        ));
    }
    Ok(n)
}

// ---------------------------------------------------------------------------------------------
// One row object, parsed into raw values.

/// The top-level items of a valid JSON array or object text (`[…]`, `{…}`), trimmed: the
/// elements of an array, the `"key": value` members of an object. The text must have been
/// validated (by serde_json); this only finds where the items are.
pub(crate) fn items(text: &str) -> Vec<&str> {
    let b = text.as_bytes();
    let end = b.len().saturating_sub(1);
    let mut out = Vec::new();
    let (mut depth, mut in_str, mut esc) = (0u32, false, false);
    let mut start = 1.min(end);
    for (i, &c) in b.iter().enumerate().take(end).skip(1) {
        if in_str {
            if esc {
                esc = false;
            } else if c == b'\\' {
                esc = true;
            } else if c == b'"' {
                in_str = false;
            }
            continue;
        }
        match c {
            b'"' => in_str = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b',' if depth == 0 => {
                out.push(text[start..i].trim_matches(is_json_ws));
                start = i + 1;
            }
            _ => {}
        }
    }
    let last = text[start..end].trim_matches(is_json_ws);
    if !last.is_empty() || !out.is_empty() {
        out.push(last);
    }
    out
}

/// A member `"key": value` of a valid object: the key (unescaped) and the value's text.
fn member(item: &str) -> (Cow<'_, str>, &str) {
    let b = item.as_bytes();
    let mut i = 1;
    let mut esc = false;
    while i < b.len() {
        let c = b[i];
        if esc {
            esc = false;
        } else if c == b'\\' {
            esc = true;
        } else if c == b'"' {
            break;
        }
        i += 1;
    }
    let key = &item[..(i + 1).min(item.len())];
    let value = item[(i + 1).min(item.len())..]
        .trim_start_matches(is_json_ws)
        .strip_prefix(':')
        .unwrap_or_default()
        .trim_matches(is_json_ws);
    (json_string(key).unwrap_or(Cow::Borrowed(key)), value)
}

/// Where one row's text sits in the input.
struct RowAt<'a> {
    name: &'a str,
    /// Byte offset of the row's first byte.
    start: u64,
    /// Line of the row's first byte (unknown after a resume).
    line: Option<u64>,
}

impl RowAt<'_> {
    /// The location of byte `off` of the row `text`.
    fn loc(&self, text: &[u8], off: usize) -> String {
        let off = off.min(text.len());
        let line = self
            .line
            .map(|l| l + text[..off].iter().filter(|c| **c == b'\n').count() as u64);
        location(self.name, self.start + off as u64, line)
    }
}

/// A row's keys and values (their JSON text), in order.
type Members<'a> = Vec<(Cow<'a, str>, &'a str)>;

/// Checks and splits the object `text` (a row found by the scanner).
fn parse_row<'a>(text: &'a [u8], at: &RowAt<'_>) -> Result<Members<'a>> {
    let s = std::str::from_utf8(text).map_err(|e| {
        Error::data(
            at.loc(text, e.valid_up_to()),
            "invalid UTF-8 (JSON text must be UTF-8)",
        )
    })?;
    if let Err(e) = serde_json::from_str::<IgnoredAny>(s) {
        // serde_json counts lines from 1 and columns (bytes) from 1 within the object.
        let line_start: usize = text
            .split_inclusive(|c| *c == b'\n')
            .take(e.line().saturating_sub(1))
            .map(<[u8]>::len)
            .sum();
        let off = line_start + e.column().saturating_sub(1);
        return Err(Error::data(
            at.loc(text, off),
            format!("invalid JSON: {}", bare(&e)),
        ));
    }
    Ok(items(s).into_iter().map(member).collect())
}

/// The offset of `value` (a slice of `text`) in `text`.
fn offset_in(text: &[u8], value: &str) -> usize {
    (value.as_ptr() as usize).saturating_sub(text.as_ptr() as usize)
}

/// Converts one row object into `plan`'s builders.
fn push_json_row(plan: &mut Plan, text: &[u8], at: &RowAt<'_>) -> Result<()> {
    let row = parse_row(text, at)?;
    plan.begin_row();
    let mut guess = 0;
    for (key, raw) in &row {
        let raw = *raw;
        let here = || at.loc(text, offset_in(text, raw));
        let Some(i) = plan.find(key, guess) else {
            return Err(Error::data(
                here(),
                format!(
                    "key `{key}` is not a field of the schema ({}); {}",
                    plan.names(),
                    plan.unknown_hint()
                ),
            ));
        };
        guess = i + 1;
        plan.set(i, raw == "null", |b, kind| b.push_json(kind, raw))
            .map_err(|m| Error::data(format!("{}, field `{key}`", here()), m))?;
    }
    plan.end_row()
        .map_err(|(field, m)| Error::data(format!("{}, field `{field}`", at.loc(text, 0)), m))
}

// ---------------------------------------------------------------------------------------------
// The parser.

/// Where the scanner stands outside a row's object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Top {
    /// Before the first non-whitespace byte.
    Start,
    /// Before the first row: after `[` (array, rows).
    BeforeFirst,
    /// After a row's closing `}`.
    AfterRow,
    /// After a `,` between rows.
    AfterComma,
    /// After the closing `]` of a `rows` file (expects `}`).
    AfterArray,
    /// After the end of the array (or `rows` object): only whitespace may follow.
    Done,
}

/// Whether `obj` (the first bytes of the file's first object) begins `{"rows": [`.
enum Prefix {
    Yes,
    No,
    Maybe,
}

fn rows_prefix(obj: &[u8]) -> Prefix {
    let mut i = 0;
    let ws = |i: &mut usize| {
        while obj
            .get(*i)
            .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
        {
            *i += 1;
        }
    };
    for part in [&b"{"[..], b"\"rows\"", b":", b"["] {
        ws(&mut i);
        for &c in part {
            match obj.get(i) {
                None => return Prefix::Maybe,
                Some(&b) if b == c => i += 1,
                Some(_) => return Prefix::No,
            }
        }
    }
    Prefix::Yes
}

/// Where a row-by-row text parser (`json`, `csv`, `tsv`) is: rows read and returned, and the
/// byte offsets a reader resumes at ([`Parser::next_row_offset`], [`Parser::seek`]).
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// Rows read and not yet flushed (in the plan's builders, or in the sample).
    pub(crate) pending: usize,
    /// Rows returned so far (including those before a resume point).
    rows_out: u64,
    /// The offset after the last complete row.
    pub(crate) last_end: u64,
    /// The offset after the last returned row.
    flushed_end: u64,
    /// Set by `seek` until a row was read: errors then suggest the file changed.
    pub(crate) resumed_at: Option<u64>,
}

impl Progress {
    /// Whether a whole batch of `batch_rows` rows is pending (decode takes no more bytes).
    pub(crate) fn full(&self, batch_rows: usize) -> bool {
        self.pending >= batch_rows
    }

    /// [`Parser::next_row_offset`]: the byte after the last returned row (0 before any).
    pub(crate) fn next_row_offset(&self) -> Option<u64> {
        Some(if self.rows_out == 0 {
            0
        } else {
            self.flushed_end
        })
    }

    /// [`Parser::seek`] of the input `name` to `to`: checks that the schema (`plan`) and what
    /// comes before it are `known` (`(what, whether)`) and the position, drops the rows built
    /// in `plan`, and returns the offset to read on from.
    pub(crate) fn seek(
        &mut self,
        name: &str,
        to: &ParsePosition,
        plan: Option<&mut Plan>,
        known: (&str, bool),
    ) -> Result<u64> {
        let (Some(plan), (_, true)) = (plan, known) else {
            return Err(Error::unsupported(
                name,
                format!("seek before {} and schema are known", known.0),
            ));
        };
        let offset = match (to.rows, to.offset) {
            (0, None | Some(0)) => 0,
            (_, None) => {
                return Err(Error::unsupported(
                    name,
                    "the resume position has no byte offset",
                ))
            }
            (0, Some(o)) => {
                return Err(Error::data(
                    format!("{name}, byte {o}"),
                    "a position before the first row must be at byte 0",
                ))
            }
            (_, Some(o)) => o,
        };
        plan.clear();
        self.pending = 0;
        self.rows_out = to.rows;
        self.last_end = offset;
        self.flushed_end = offset;
        self.resumed_at = (to.rows != 0).then_some(offset);
        Ok(offset)
    }

    /// [`Parser::flush`]: the pending rows of `plan` (none before the schema is known).
    pub(crate) fn flush(&mut self, plan: Option<&mut Plan>) -> Result<Option<RecordBatch>> {
        let Some(plan) = plan else {
            return Ok(None);
        };
        if self.pending == 0 {
            return Ok(None);
        }
        let batch = plan.take_batch()?;
        self.rows_out += self.pending as u64;
        self.pending = 0;
        self.flushed_end = self.last_end;
        Ok(batch)
    }

    /// `message`, asking whether the file changed when reading just resumed.
    pub(crate) fn resumed_message(&self, message: String) -> String {
        match self.resumed_at {
            Some(r) => format!(
                "{message} (reading resumed at byte {r}: was the file changed since the checkpoint?)"
            ),
            None => message,
        }
    }

    /// A data error in the first row after a resume, with [`Progress::resumed_message`].
    pub(crate) fn resumed_error(&self, e: Error) -> Error {
        match e {
            Error::Data { location, message } => {
                Error::data(location, self.resumed_message(message))
            }
            e => e,
        }
    }
}

/// A text parser that finds its rows in the bytes itself (`json`, `csv`, `tsv`);
/// [`RowText::decode_rows`] is its [`Parser::decode`].
pub(crate) trait RowText {
    /// Where the parser is.
    fn progress(&self) -> &Progress;

    /// The most rows a batch holds.
    fn batch_rows(&self) -> usize;

    /// Reads bytes from the front of `buf` (at least one): how many, and whether a row ended
    /// with them.
    fn scan(&mut self, buf: &[u8]) -> Result<(usize, bool)>;

    /// Takes the row that just ended.
    fn row(&mut self) -> Result<()>;

    /// [`Parser::decode`]: scans `buf` row by row until it ends or a batch is full.
    fn decode_rows(&mut self, buf: &[u8]) -> Result<usize> {
        let full = self.batch_rows();
        if self.progress().full(full) {
            return Ok(0);
        }
        let mut i = 0;
        while i < buf.len() {
            let (used, ended) = self.scan(&buf[i..])?;
            i += used;
            if ended {
                self.row()?;
                if self.progress().full(full) {
                    return Ok(i);
                }
            }
        }
        Ok(i)
    }
}

/// `name, line l, byte b` (without the line when it is unknown, after a resume).
pub(crate) fn location(name: &str, byte: u64, line: Option<u64>) -> String {
    match line {
        Some(l) => format!("{name}, line {l}, byte {byte}"),
        None => format!("{name}, byte {byte}"),
    }
}

/// A sampled row, kept until the schema is inferred.
#[derive(Debug)]
struct SampleRow {
    text: Vec<u8>,
    start: u64,
    line: Option<u64>,
}

/// The push decoder of one JSON input ([`JsonParserConfig`] and the module docs say what it
/// reads).
#[derive(Debug)]
pub struct JsonParser {
    input: ParseInput,
    configured: Option<JsonLayout>,
    /// The layout, once configured or detected.
    layout: Option<JsonLayout>,
    sample_rows: usize,
    specs: BTreeMap<String, TypeSpec>,
    plan: Option<Plan>,
    sample: Vec<SampleRow>,
    /// Rows read and returned, and where to resume.
    progress: Progress,
    // The scanner.
    top: Top,
    in_obj: bool,
    /// Inside the first object while deciding whether it is `{"rows": [`.
    detecting: bool,
    depth: u32,
    in_str: bool,
    esc: bool,
    obj: Vec<u8>,
    obj_start: u64,
    obj_line: Option<u64>,
    /// The offset of the next byte.
    pos: u64,
    /// The line of the next byte (meaningful when `lines_known`).
    line: u64,
    lines_known: bool,
}

impl JsonParser {
    fn cur_line(&self) -> Option<u64> {
        self.lines_known.then_some(self.line)
    }

    fn loc(&self, byte: u64, line: Option<u64>) -> String {
        location(&self.input.name, byte, line)
    }

    /// An error in the file's structure at byte `at` (the current line).
    fn structure(&self, at: u64, message: String) -> Error {
        Error::data(
            self.loc(at, self.cur_line()),
            self.progress.resumed_message(message),
        )
    }

    fn unexpected(&self, b: u8, at: u64) -> Error {
        let found = show_byte(b);
        let layout = self.layout.unwrap_or(JsonLayout::Lines);
        let message = match (self.top, layout) {
            (Top::Start, _) => match self.configured {
                Some(JsonLayout::Rows) => format!(
                    "a `rows` file must begin with `{{\"rows\": [` (Milvus row-based JSON); this \
                     one begins with {found}"
                ),
                Some(JsonLayout::Array) => {
                    format!("an `array` file must begin with `[`; this one begins with {found}")
                }
                _ => format!("expected a JSON object (a row) or an array of them, found {found}"),
            },
            (Top::AfterRow, JsonLayout::Lines) | (_, JsonLayout::Lines) => format!(
                "expected the next row (a JSON object) after the previous one, found {found}"
            ),
            (Top::BeforeFirst | Top::AfterComma, _) => {
                format!("expected a row (a JSON object), found {found}")
            }
            (Top::AfterRow, _) => format!("expected `,` or `]` after a row, found {found}"),
            (Top::AfterArray, _) => format!(
                "expected `}}` closing the `rows` object after its array, found {found} (a \
                 Milvus row-based file holds only the key `rows`)"
            ),
            (Top::Done, _) => format!("expected the end of the file, found {found}"),
        };
        self.structure(at, message)
    }

    fn open(&mut self, at: u64) {
        self.in_obj = true;
        self.depth = 1;
        self.in_str = false;
        self.esc = false;
        self.obj.clear();
        self.obj.push(b'{');
        self.obj_start = at;
        self.obj_line = self.cur_line();
    }

    /// Tracks one byte inside an object; true when it closed the object.
    fn obj_byte(&mut self, b: u8) -> bool {
        if self.in_str {
            if self.esc {
                self.esc = false;
            } else if b == b'\\' {
                self.esc = true;
            } else if b == b'"' {
                self.in_str = false;
            }
            return false;
        }
        match b {
            b'"' => self.in_str = true,
            b'{' | b'[' => self.depth += 1,
            b'}' | b']' => {
                self.depth = self.depth.saturating_sub(1);
                return self.depth == 0;
            }
            _ => {}
        }
        false
    }

    /// Scans object bytes until the object closes or `buf` ends: (bytes used, closed).
    fn scan_object(&mut self, buf: &[u8]) -> (usize, bool) {
        let mut i = 0;
        let mut closed = false;
        let mut newlines = 0;
        while i < buf.len() {
            let b = buf[i];
            i += 1;
            if b == b'\n' {
                newlines += 1;
            }
            if self.obj_byte(b) {
                closed = true;
                break;
            }
        }
        self.obj.extend_from_slice(&buf[..i]);
        self.pos += i as u64;
        self.line += newlines;
        (i, closed)
    }

    /// Handles one byte outside an object, or inside the first one while detecting the
    /// layout; true when it closed a row's object.
    fn step(&mut self, b: u8) -> Result<bool> {
        let at = self.pos;
        let mut closed = false;
        if self.in_obj {
            self.obj.push(b);
            closed = self.obj_byte(b);
            match rows_prefix(&self.obj) {
                Prefix::Yes => {
                    self.layout = Some(JsonLayout::Rows);
                    self.in_obj = false;
                    self.detecting = false;
                    self.obj.clear();
                    self.top = Top::BeforeFirst;
                }
                Prefix::No if self.configured == Some(JsonLayout::Rows) => {
                    self.top = Top::Start;
                    return Err(self.unexpected(b, self.obj_start));
                }
                Prefix::No => {
                    self.layout = Some(JsonLayout::Lines);
                    self.detecting = false;
                }
                Prefix::Maybe => {}
            }
        } else if matches!(b, b' ' | b'\t' | b'\n' | b'\r')
            || (self.top == Top::Start && bom_byte(at, b))
        {
        } else {
            let container = self.layout != Some(JsonLayout::Lines);
            match (self.top, b) {
                (Top::Start, b'{') => match self.configured {
                    Some(JsonLayout::Array) => return Err(self.unexpected(b, at)),
                    Some(JsonLayout::Lines) => self.open(at),
                    _ => {
                        self.open(at);
                        self.detecting = true;
                    }
                },
                (Top::Start, b'[') if matches!(self.configured, None | Some(JsonLayout::Array)) => {
                    self.layout = Some(JsonLayout::Array);
                    self.top = Top::BeforeFirst;
                }
                (Top::BeforeFirst | Top::AfterComma, b'{') => self.open(at),
                (Top::AfterRow, b'{') if !container => self.open(at),
                (Top::BeforeFirst, b']') | (Top::AfterRow, b']') if container => {
                    self.top = if self.layout == Some(JsonLayout::Rows) {
                        Top::AfterArray
                    } else {
                        Top::Done
                    };
                }
                (Top::AfterRow, b',') if container => self.top = Top::AfterComma,
                (Top::AfterArray, b'}') => self.top = Top::Done,
                _ => return Err(self.unexpected(b, at)),
            }
        }
        self.pos += 1;
        if b == b'\n' {
            self.line += 1;
        }
        Ok(closed)
    }

    /// A row's object is complete in `self.obj`.
    fn row_done(&mut self) -> Result<()> {
        self.in_obj = false;
        self.detecting = false;
        self.top = Top::AfterRow;
        self.progress.last_end = self.pos;
        let text = std::mem::take(&mut self.obj);
        let at = RowAt {
            name: &self.input.name,
            start: self.obj_start,
            line: self.obj_line,
        };
        if let Some(plan) = &mut self.plan {
            let done = push_json_row(plan, &text, &at);
            self.obj = text;
            self.obj.clear();
            done.map_err(|e| self.progress.resumed_error(e))?;
        } else {
            self.sample.push(SampleRow {
                text,
                start: self.obj_start,
                line: self.obj_line,
            });
            if self.sample.len() >= self.sample_rows {
                self.progress.pending += 1;
                return self.infer();
            }
        }
        self.progress.resumed_at = None;
        self.progress.pending += 1;
        Ok(())
    }

    /// Infers the schema from the sampled rows and converts them.
    fn infer(&mut self) -> Result<()> {
        let n = self.sample.len();
        let name = self.input.name.as_str();
        if n == 0 {
            return Err(Error::data(
                name,
                "the file holds no rows, so there is nothing to infer its schema from; give \
                 the fields' types in `fields`, or start the job with a file that has rows",
            ));
        }
        let mut stats: Vec<Stats> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for row in &self.sample {
            let at = RowAt {
                name,
                start: row.start,
                line: row.line,
            };
            let obj = parse_row(&row.text, &at)?;
            for (key, raw) in &obj {
                let i = match index.get(key.as_ref()) {
                    Some(i) => *i,
                    None => {
                        index.insert(key.to_string(), stats.len());
                        stats.push(Stats::new(key));
                        stats.len() - 1
                    }
                };
                stats[i].observe_json(raw, row.line.unwrap_or(0));
            }
        }
        for field in self.specs.keys() {
            if !index.contains_key(field) {
                stats.push(Stats::new(field));
            }
        }
        for s in &mut stats {
            s.rows_seen(n);
        }
        let columns = Stats::columns(&mut stats, &self.specs, false, name, "field", n)?;
        if columns.is_empty() {
            return Err(Error::data(
                name,
                format!("the first {n} rows are empty objects; there are no fields to read"),
            ));
        }
        let mut plan = Plan::from_columns(columns, Origin::Sample(n))?;
        for row in std::mem::take(&mut self.sample) {
            let at = RowAt {
                name,
                start: row.start,
                line: row.line,
            };
            push_json_row(&mut plan, &row.text, &at)?;
        }
        self.plan = Some(plan);
        Ok(())
    }
}

/// Bytes of a UTF-8 byte-order mark at the start of the input.
fn bom_byte(at: u64, b: u8) -> bool {
    matches!((at, b), (0, 0xEF) | (1, 0xBB) | (2, 0xBF))
}

/// A byte for messages: `x`, or its value.
pub(crate) fn show_byte(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("`{}`", b as char)
    } else {
        format!("byte 0x{b:02x}")
    }
}

impl RowText for JsonParser {
    fn progress(&self) -> &Progress {
        &self.progress
    }

    fn batch_rows(&self) -> usize {
        self.input.batch_rows
    }

    fn scan(&mut self, buf: &[u8]) -> Result<(usize, bool)> {
        match buf.first() {
            Some(_) if self.in_obj && !self.detecting => Ok(self.scan_object(buf)),
            Some(&b) => Ok((1, self.step(b)?)),
            None => Ok((0, false)),
        }
    }

    fn row(&mut self) -> Result<()> {
        self.row_done()
    }
}

impl Parser for JsonParser {
    fn schema(&self) -> Option<SchemaRef> {
        // With the planned schema and a detected layout, the layout must be read first, so
        // that a resumed parser knows how the rest of the file continues.
        self.layout?;
        self.plan.as_ref().map(|p| p.schema.clone())
    }

    fn next_row_offset(&self) -> Option<u64> {
        self.progress.next_row_offset()
    }

    fn seek(&mut self, to: &ParsePosition) -> Result<()> {
        let known = ("the file's layout", self.layout.is_some());
        let offset = self
            .progress
            .seek(&self.input.name, to, self.plan.as_mut(), known)?;
        self.sample.clear();
        self.in_obj = false;
        self.detecting = false;
        self.depth = 0;
        self.obj.clear();
        self.pos = offset;
        if to.rows == 0 {
            self.top = Top::Start;
            self.line = 1;
            self.lines_known = true;
        } else {
            self.top = Top::AfterRow;
            self.lines_known = false;
        }
        Ok(())
    }

    fn decode(&mut self, buf: &[u8]) -> Result<usize> {
        self.decode_rows(buf)
    }

    fn flush(&mut self) -> Result<Option<RecordBatch>> {
        self.progress.flush(self.plan.as_mut())
    }

    fn finish(&mut self) -> Result<Option<RecordBatch>> {
        if self.in_obj {
            return Err(Error::data(
                self.loc(self.obj_start, self.obj_line),
                format!(
                    "the file ends inside the row that starts here (after {} bytes of it); it is \
                     truncated",
                    self.obj.len()
                ),
            ));
        }
        match (self.layout, self.top) {
            (None, _) => match self.configured {
                Some(l @ (JsonLayout::Rows | JsonLayout::Array)) => {
                    return Err(Error::data(
                        self.loc(self.pos, self.cur_line()),
                        format!("the file is empty, but a `{}` file holds an array of rows", l.as_str()),
                    ))
                }
                // An empty file is an empty JSON Lines file.
                _ => self.layout = Some(JsonLayout::Lines),
            },
            (Some(JsonLayout::Lines), _) | (Some(_), Top::Done) => {}
            (Some(JsonLayout::Rows), Top::AfterArray) => {
                return Err(self.structure(
                    self.pos,
                    "the file ends after the rows array, without the `}` that closes `{\"rows\": [`; it is truncated".into(),
                ))
            }
            (Some(_), _) => {
                return Err(self.structure(
                    self.pos,
                    "the file ends before the `]` that closes its array of rows; it is truncated"
                        .into(),
                ))
            }
        }
        if self.plan.is_none() {
            self.infer()?;
        }
        self.flush()
    }
}

vmig_core::register_parser!(JsonParserConfig);
