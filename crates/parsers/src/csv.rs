//! The `csv` and `tsv` parsers: one row per record, a header row naming the columns.
//!
//! Both formats are one implementation: `csv` splits cells at `,` (or its `delimiter` option),
//! `tsv` at a tab. Records follow RFC 4180: a cell that starts with `"` is quoted, may hold the
//! delimiter, line breaks and `""` (one `"`), and must end with `"` followed by the delimiter or
//! the end of the line (anything else is an error, not a guess); records end with `\n` or
//! `\r\n`; blank lines are skipped (as Python's `csv.DictReader` and pandas do); the last record
//! may lack its line break. Cells must be UTF-8; a UTF-8 byte-order mark before the header is
//! dropped.
//!
//! **Header.** The first record names the columns and is required: an empty file, an empty or
//! repeated column name, or a first line of values (a number or a `[` vector where a name
//! belongs) fails saying so. Every later record must have exactly as many cells ("ragged" rows
//! fail naming the line).
//!
//! **Schema.** As in the `json` parser (same `fields` types and `sample_rows`, default 1000,
//! at most `batch_rows`): inferred from the sampled rows column by column — `true`/`false`
//! (any case) → `Bool`, integers → `Int64`, other numbers → `Double`, cells that are JSON
//! arrays (`[0.1, 0.2]`) → `FloatVector(len)` when all are numeric with one length, else
//! `Array<…>` or `JSON`; JSON objects (`{"a": 1}`) → `JSON`; anything else, and columns that mix
//! kinds, → `VarChar` (a CSV cell is text). An empty cell is `null` (the column then is nullable), except in `VarChar` columns,
//! where it is the empty string. With `vector_separator = " "` (or any string), a cell of numbers
//! separated by it (`0.1 0.2 0.3`) is a vector too (around a whitespace separator, runs are
//! allowed). `fields` overrides any column's type; when it gives every column's complete type,
//! no sample is read (then only `?` makes a column nullable). With the job's planned schema, the
//! header must name exactly its fields (in any order) and no sample is read.
//!
//! **Exact values** as in the `json` parser: numbers go from their text straight to the column's
//! type (`float` and vectors to the nearest `f32`); a float cell may also spell `inf` or `nan`
//! (Python's `csv` writes them so), but a number beyond the type's range fails. Vector elements
//! must be JSON numbers.
//!
//! **Errors** name the file, the line (1-based, of the record's first line), the byte offset and
//! the column, and what to do.
//!
//! **Resume.** This parser splits records itself (rather than using arrow-csv's decoder, which
//! reports neither record offsets nor physical line numbers), so it knows where each record
//! starts, quoted line breaks included: [`Parser::next_row_offset`] is the start of the line
//! after the last returned record and [`Parser::seek`] restarts there (the header is read first).
//! After a resume, errors name the byte offset but not the line.

use std::collections::{BTreeMap, HashMap};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use vmig_core::parse::{ParseInput, ParsePosition, Parser, ParserConfig};
use vmig_core::types::MilvusType;
use vmig_core::{Error, Result};

use super::json::{
    is_json_number, location, parse_fields, quote, sample_rows, show_byte, Origin, Plan, Progress,
    RowText, Stats, TypeSpec,
};

/// Options of the `csv` format (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvParserConfig {
    /// The cell delimiter, one ASCII character (default `,`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    /// Vectors may also be written as numbers separated by this (e.g. `" "`), besides
    /// `[0.1, 0.2]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector_separator: Option<String>,
    /// Rows read to infer the schema (default 1000; at most `batch_rows` are used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_rows: Option<usize>,
    /// Column name → type (`int64`, `float_vector(768)`, `json`, `varchar?`, …), as for `json`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
}

/// Options of the `tsv` format: the `csv` options without `delimiter` (always a tab).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TsvParserConfig {
    /// As for `csv`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector_separator: Option<String>,
    /// As for `csv`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_rows: Option<usize>,
    /// As for `csv`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
}

fn example_fields() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("embedding".into(), "float_vector(768)".into()),
        ("id".into(), "int64".into()),
    ])
}

/// The delimiter byte of `delimiter`.
fn delimiter(plugin: &str, delimiter: Option<&str>) -> Result<u8> {
    let Some(d) = delimiter else {
        return Ok(b',');
    };
    match d.as_bytes() {
        [b] if b.is_ascii() && !matches!(b, b'"' | b'\r' | b'\n') => Ok(*b),
        _ => Err(Error::config(
            plugin,
            format!(
                "`delimiter` is {d:?}; it must be one ASCII character other than `\"` and line breaks"
            ),
        )),
    }
}

fn vector_separator(plugin: &str, sep: Option<&String>) -> Result<Option<String>> {
    match sep {
        Some(s) if s.is_empty() => {
            Err(Error::config(plugin, "`vector_separator` may not be empty"))
        }
        Some(s) if s.contains(['[', ']', '"']) => Err(Error::config(
            plugin,
            "`vector_separator` may not hold `[`, `]` or `\"`",
        )),
        other => Ok(other.cloned()),
    }
}

/// The checked options of either format.
#[derive(Debug)]
struct Options {
    delim: u8,
    sep: Option<String>,
    sample_rows: usize,
    specs: BTreeMap<String, TypeSpec>,
}

impl CsvParserConfig {
    /// The options checked, errors naming the format `plugin`.
    fn options(&self, plugin: &str) -> Result<Options> {
        Ok(Options {
            delim: delimiter(plugin, self.delimiter.as_deref())?,
            sep: vector_separator(plugin, self.vector_separator.as_ref())?,
            sample_rows: sample_rows(plugin, self.sample_rows)?,
            specs: parse_fields(plugin, &self.fields)?,
        })
    }
}

impl TsvParserConfig {
    /// These options as `csv` options with a tab delimiter.
    fn as_csv(&self) -> CsvParserConfig {
        CsvParserConfig {
            delimiter: Some("\t".into()),
            vector_separator: self.vector_separator.clone(),
            sample_rows: self.sample_rows,
            fields: self.fields.clone(),
        }
    }
}

impl ParserConfig for CsvParserConfig {
    const NAME: &'static str = "csv";
    const SUMMARY: &'static str =
        "comma-separated values with a header row (RFC 4180 quoting); vectors as [..] cells; types inferred or given";
    const EXTENSIONS: &'static [&'static str] = &["csv"];

    fn example() -> Self {
        Self {
            fields: example_fields(),
            ..Self::default()
        }
    }

    fn validate(&self) -> Result<()> {
        self.options(Self::NAME).map(drop)
    }

    fn build(&self, input: &ParseInput) -> Result<Box<dyn Parser>> {
        Ok(Box::new(CsvParser::new(input, self.options(Self::NAME)?)))
    }
}

impl ParserConfig for TsvParserConfig {
    const NAME: &'static str = "tsv";
    const SUMMARY: &'static str =
        "tab-separated values with a header row; vectors as [..] cells; types inferred or given";
    const EXTENSIONS: &'static [&'static str] = &["tsv"];

    fn example() -> Self {
        Self {
            fields: example_fields(),
            ..Self::default()
        }
    }

    fn validate(&self) -> Result<()> {
        self.as_csv().options(Self::NAME).map(drop)
    }

    fn build(&self, input: &ParseInput) -> Result<Box<dyn Parser>> {
        Ok(Box::new(CsvParser::new(
            input,
            self.as_csv().options(Self::NAME)?,
        )))
    }
}

// ---------------------------------------------------------------------------------------------
// Records.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a cell.
    CellStart,
    /// In a cell that is not quoted.
    Unquoted,
    /// In a quoted cell.
    Quoted,
    /// After a `"` in a quoted cell: an escaped quote or the cell's end.
    QuoteInQuoted,
    /// After `"\r` that ended a quoted cell: expects `\n`.
    CrAfterQuote,
}

/// What went wrong while splitting records.
#[derive(Debug)]
enum SplitError {
    /// A byte after a quoted cell's closing quote.
    AfterQuote { at: u64, byte: u8 },
    /// The input ended inside a quoted cell that started at `at`.
    Unterminated { at: u64, line: Option<u64> },
}

/// Splits bytes into records of cells (RFC 4180), across chunks.
#[derive(Debug)]
struct Splitter {
    delim: u8,
    state: State,
    /// The current record's cells, unquoted, one after the other.
    data: Vec<u8>,
    /// The end of each complete cell in `data`.
    ends: Vec<usize>,
    cell_quoted: bool,
    /// The offset and line where the current record starts.
    start: u64,
    start_line: Option<u64>,
    /// The offset and line of the current quoted cell's opening quote.
    quote_at: u64,
    quote_line: Option<u64>,
    pos: u64,
    line: u64,
    lines_known: bool,
}

impl Splitter {
    fn new(delim: u8) -> Self {
        Splitter {
            delim,
            state: State::CellStart,
            data: Vec::new(),
            ends: Vec::new(),
            cell_quoted: false,
            start: 0,
            start_line: Some(1),
            quote_at: 0,
            quote_line: None,
            pos: 0,
            line: 1,
            lines_known: true,
        }
    }

    fn cur_line(&self) -> Option<u64> {
        self.lines_known.then_some(self.line)
    }

    /// Restarts at byte `offset`, the start of a record (on line 1 when `offset` is 0).
    fn restart(&mut self, offset: u64) {
        self.state = State::CellStart;
        self.data.clear();
        self.ends.clear();
        self.cell_quoted = false;
        self.pos = offset;
        self.line = 1;
        self.lines_known = offset == 0;
        self.start = offset;
        self.start_line = self.cur_line();
    }

    fn end_cell(&mut self) {
        self.ends.push(self.data.len());
        self.cell_quoted = false;
        self.state = State::CellStart;
    }

    /// Forgets the record just returned; the next one starts at the current position.
    fn next_record(&mut self) {
        self.data.clear();
        self.ends.clear();
        self.cell_quoted = false;
        self.state = State::CellStart;
        self.start = self.pos;
        self.start_line = self.cur_line();
    }

    /// Ends the line at byte `i` of the chunk that started at `base`: a record, or a blank
    /// line that is skipped. True for a record.
    fn line_end(&mut self, base: u64, i: usize) -> bool {
        self.line += 1;
        if self.ends.is_empty() && self.data.is_empty() && !self.cell_quoted {
            // A blank line: the next record starts after it.
            self.start = base + i as u64 + 1;
            self.start_line = self.cur_line();
            self.state = State::CellStart;
            return false;
        }
        self.end_cell();
        true
    }

    /// Consumes bytes of `buf` until a record is complete: (bytes used, record complete).
    fn feed(&mut self, buf: &[u8]) -> std::result::Result<(usize, bool), SplitError> {
        let base = self.pos;
        let mut i = 0;
        let mut done = false;
        while i < buf.len() {
            match self.state {
                State::CellStart => {
                    let b = buf[i];
                    if b == b'"' {
                        self.state = State::Quoted;
                        self.cell_quoted = true;
                        self.quote_at = base + i as u64;
                        self.quote_line = self.cur_line();
                    } else if b == self.delim {
                        self.end_cell();
                    } else if b == b'\n' {
                        if self.line_end(base, i) {
                            i += 1;
                            done = true;
                            break;
                        }
                    } else {
                        self.data.push(b);
                        self.state = State::Unquoted;
                    }
                    i += 1;
                }
                State::Unquoted => {
                    let rest = &buf[i..];
                    let n = rest
                        .iter()
                        .position(|&c| c == self.delim || c == b'\n')
                        .unwrap_or(rest.len());
                    self.data.extend_from_slice(&rest[..n]);
                    i += n;
                    let Some(&b) = buf.get(i) else {
                        break;
                    };
                    if b == self.delim {
                        self.end_cell();
                    } else {
                        // `\r\n`: the `\r` is part of the line break.
                        let cell_start = self.ends.last().copied().unwrap_or(0);
                        if self.data.len() > cell_start && self.data.last() == Some(&b'\r') {
                            self.data.pop();
                        }
                        if self.line_end(base, i) {
                            i += 1;
                            done = true;
                            break;
                        }
                    }
                    i += 1;
                }
                State::Quoted => {
                    let rest = &buf[i..];
                    let n = rest.iter().position(|&c| c == b'"').unwrap_or(rest.len());
                    self.line += rest[..n].iter().filter(|c| **c == b'\n').count() as u64;
                    self.data.extend_from_slice(&rest[..n]);
                    i += n;
                    if i < buf.len() {
                        self.state = State::QuoteInQuoted;
                        i += 1;
                    }
                }
                State::QuoteInQuoted => {
                    let b = buf[i];
                    if b == b'"' {
                        self.data.push(b'"');
                        self.state = State::Quoted;
                    } else if b == self.delim {
                        self.end_cell();
                    } else if b == b'\n' {
                        self.line += 1;
                        self.end_cell();
                        i += 1;
                        done = true;
                        break;
                    } else if b == b'\r' {
                        self.state = State::CrAfterQuote;
                    } else {
                        self.pos = base + i as u64;
                        return Err(SplitError::AfterQuote {
                            at: base + i as u64,
                            byte: b,
                        });
                    }
                    i += 1;
                }
                State::CrAfterQuote => {
                    let b = buf[i];
                    if b != b'\n' {
                        self.pos = base + i as u64;
                        return Err(SplitError::AfterQuote {
                            at: base + i as u64 - 1,
                            byte: b'\r',
                        });
                    }
                    self.line += 1;
                    self.end_cell();
                    i += 1;
                    done = true;
                    break;
                }
            }
        }
        self.pos = base + i as u64;
        Ok((i, done))
    }

    /// The input ended: whether a last record (without a line break) is complete.
    fn finish(&mut self) -> std::result::Result<bool, SplitError> {
        match self.state {
            State::Quoted => Err(SplitError::Unterminated {
                at: self.quote_at,
                line: self.quote_line,
            }),
            State::CellStart if self.ends.is_empty() => Ok(false),
            State::Unquoted | State::CellStart | State::QuoteInQuoted | State::CrAfterQuote => {
                if self.state == State::Unquoted
                    && self.ends.is_empty()
                    && self.data.as_slice() == b"\r"
                {
                    return Ok(false);
                }
                self.end_cell();
                Ok(true)
            }
        }
    }
}

/// A sampled record, kept until the schema is inferred.
#[derive(Debug)]
struct Rec {
    data: Vec<u8>,
    ends: Vec<usize>,
    start: u64,
    line: Option<u64>,
}

impl Rec {
    fn at<'a>(&self, name: &'a str) -> RecAt<'a> {
        RecAt {
            name,
            start: self.start,
            line: self.line,
        }
    }
}

/// Where a record sits, for messages.
struct RecAt<'a> {
    name: &'a str,
    start: u64,
    line: Option<u64>,
}

impl RecAt<'_> {
    fn loc(&self) -> String {
        location(self.name, self.start, self.line)
    }

    fn column(&self, header: &[String], c: usize) -> String {
        match header.get(c) {
            Some(name) => format!("{}, column `{name}`", self.loc()),
            None => format!("{}, column {}", self.loc(), c + 1),
        }
    }
}

/// The cells of a record as text.
fn cells<'a>(
    data: &'a [u8],
    ends: &[usize],
    at: &RecAt<'_>,
    header: &[String],
) -> Result<Vec<&'a str>> {
    let mut out = Vec::with_capacity(ends.len());
    let mut s = 0;
    for (c, &e) in ends.iter().enumerate() {
        let cell = std::str::from_utf8(&data[s..e]).map_err(|err| {
            Error::data(
                at.column(header, c),
                format!(
                    "the cell is not valid UTF-8 (after {} bytes of it); CSV files must be UTF-8",
                    err.valid_up_to()
                ),
            )
        })?;
        out.push(cell);
        s = e;
    }
    Ok(out)
}

/// Checks that a record has one cell per column.
fn check_width(ends: &[usize], header: &[String], at: &RecAt<'_>) -> Result<()> {
    if ends.len() == header.len() {
        return Ok(());
    }
    Err(Error::data(
        at.loc(),
        format!(
            "the row has {} cells, but the header has {} columns ({}); every row needs one cell \
             per column (quote cells that hold the delimiter)",
            ends.len(),
            header.len(),
            header.join(", ")
        ),
    ))
}

/// Converts one record into `plan`'s builders (`map`: header column → plan field).
fn push_record(
    plan: &mut Plan,
    map: &[usize],
    header: &[String],
    rec: (&[u8], &[usize]),
    at: &RecAt<'_>,
    sep: Option<&str>,
) -> Result<()> {
    let (data, ends) = rec;
    check_width(ends, header, at)?;
    let cells = cells(data, ends, at, header)?;
    plan.begin_row();
    for (c, cell) in cells.into_iter().enumerate() {
        let i = map[c];
        let null = cell.is_empty() && plan.kind(i).kind != MilvusType::VarChar;
        plan.set(i, null, |b, kind| b.push_text(kind, cell, sep))
            .map_err(|m| Error::data(at.column(header, c), m))?;
    }
    plan.end_row()
        .map_err(|(field, m)| Error::data(format!("{}, column `{field}`", at.loc()), m))
}

// ---------------------------------------------------------------------------------------------
// The parser.

/// The push decoder of one CSV or TSV input ([`CsvParserConfig`], [`TsvParserConfig`] and the
/// module docs say what it reads).
#[derive(Debug)]
pub struct CsvParser {
    input: ParseInput,
    sep: Option<String>,
    sample_rows: usize,
    specs: BTreeMap<String, TypeSpec>,
    split: Splitter,
    header: Option<Vec<String>>,
    /// Header column → plan field.
    map: Vec<usize>,
    plan: Option<Plan>,
    sample: Vec<Rec>,
    /// Rows read and returned, and where to resume.
    progress: Progress,
}

impl CsvParser {
    fn new(input: &ParseInput, options: Options) -> Self {
        CsvParser {
            input: input.clone(),
            sep: options.sep,
            sample_rows: options.sample_rows.min(input.batch_rows),
            specs: options.specs,
            split: Splitter::new(options.delim),
            header: None,
            map: Vec::new(),
            plan: None,
            sample: Vec::new(),
            progress: Progress::default(),
        }
    }

    fn at(&self) -> RecAt<'_> {
        RecAt {
            name: &self.input.name,
            start: self.split.start,
            line: self.split.start_line,
        }
    }

    fn split_error(&self, e: SplitError) -> Error {
        let header = self.header.as_deref().unwrap_or_default();
        let column = self.split.ends.len();
        let col = match header.get(column) {
            Some(name) => format!("column `{name}`"),
            None => format!("column {}", column + 1),
        };
        let name = &self.input.name;
        match e {
            SplitError::AfterQuote { at, byte } => {
                let line = match self.split.cur_line() {
                    Some(l) => format!(", line {l}"),
                    None => String::new(),
                };
                Error::data(
                    format!("{name}{line}, byte {at}, {col}"),
                    format!(
                        "a quoted cell must end with `\"` followed by the delimiter or the end of \
                         the line, but {} follows it (write a `\"` inside a quoted cell as `\"\"`)",
                        show_byte(byte)
                    ),
                )
            }
            SplitError::Unterminated { at, line } => {
                let line = line.map(|l| format!(", line {l}")).unwrap_or_default();
                Error::data(
                    format!("{name}{line}, byte {at}, {col}"),
                    "the file ends inside the quoted cell that starts here; it is truncated, or a \
                     quote is not closed",
                )
            }
        }
    }

    /// A complete record is in the splitter.
    fn record(&mut self) -> Result<()> {
        if self.header.is_none() {
            return self.read_header();
        }
        // Built from the fields (not `self.at()`), as `self.plan` is borrowed below.
        let at = RecAt {
            name: &self.input.name,
            start: self.split.start,
            line: self.split.start_line,
        };
        let header = self.header.as_deref().unwrap_or_default();
        if let Some(plan) = &mut self.plan {
            push_record(
                plan,
                &self.map,
                header,
                (&self.split.data, &self.split.ends),
                &at,
                self.sep.as_deref(),
            )
            .map_err(|e| self.progress.resumed_error(e))?;
            self.progress.resumed_at = None;
        } else {
            check_width(&self.split.ends, header, &at)?;
            self.sample.push(Rec {
                data: self.split.data.clone(),
                ends: self.split.ends.clone(),
                start: self.split.start,
                line: self.split.start_line,
            });
        }
        self.progress.pending += 1;
        self.progress.last_end = self.split.pos;
        if self.plan.is_none() && self.sample.len() >= self.sample_rows {
            self.infer()?;
        }
        Ok(())
    }

    fn read_header(&mut self) -> Result<()> {
        let at = self.at();
        let mut names: Vec<String> = cells(&self.split.data, &self.split.ends, &at, &[])?
            .into_iter()
            .map(str::to_string)
            .collect();
        if let Some(first) = names.first_mut() {
            if let Some(rest) = first.strip_prefix('\u{feff}') {
                *first = rest.to_string();
            }
        }
        let loc = at.loc();
        if let Some(value) = names
            .iter()
            .find(|n| is_json_number(n.trim()) || n.trim_start().starts_with('['))
        {
            return Err(Error::data(
                loc,
                format!(
                    "the first line holds values ({}), not column names: the {} parser needs a \
                     header row naming the columns",
                    quote(value),
                    if self.split.delim == b'\t' {
                        "tsv"
                    } else {
                        "csv"
                    }
                ),
            ));
        }
        let mut seen = HashMap::new();
        for (i, n) in names.iter().enumerate() {
            if n.is_empty() {
                return Err(Error::data(
                    loc,
                    format!("column {} of the header has no name", i + 1),
                ));
            }
            if let Some(j) = seen.insert(n.as_str(), i) {
                return Err(Error::data(
                    loc,
                    format!(
                        "the header names `{n}` twice (columns {} and {})",
                        j + 1,
                        i + 1
                    ),
                ));
            }
        }
        if let Some(missing) = self.specs.keys().find(|k| !seen.contains_key(k.as_str())) {
            return Err(Error::data(
                loc,
                format!(
                    "`fields` names `{missing}`, which is not a column of the header ({})",
                    names.join(", ")
                ),
            ));
        }
        if let Some(schema) = &self.input.schema {
            let fields: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            let mut map = Vec::with_capacity(names.len());
            for n in &names {
                match fields.iter().position(|f| f == n) {
                    Some(i) => map.push(i),
                    None => map.push(usize::MAX),
                }
            }
            if names.len() != fields.len() || map.contains(&usize::MAX) {
                return Err(Error::data(
                    loc,
                    format!(
                        "the header's columns ({}) are not the job's fields ({}), which were \
                         planned from its first file",
                        names.join(", "),
                        fields.join(", ")
                    ),
                ));
            }
            self.plan = Some(Plan::from_schema(schema.clone(), Origin::Planned)?);
            self.map = map;
        } else {
            self.map = (0..names.len()).collect();
            let all: Option<Vec<_>> = names
                .iter()
                .map(|n| {
                    self.specs
                        .get(n)
                        .filter(|s| s.complete())
                        .map(|s| (n.clone(), s.kind, s.nullable))
                })
                .collect();
            if let Some(columns) = all {
                self.plan = Some(Plan::from_columns(columns, Origin::Fields)?);
            }
        }
        self.header = Some(names);
        Ok(())
    }

    /// Infers the schema from the sampled records and converts them.
    fn infer(&mut self) -> Result<()> {
        let header = self.header.as_deref().unwrap_or_default();
        let name = self.input.name.as_str();
        let n = self.sample.len();
        if n == 0 {
            return Err(Error::data(
                name,
                "the file has a header but no rows, so there is nothing to infer its schema \
                 from; give every column's type in `fields`, or start the job with a file that \
                 has rows",
            ));
        }
        let sep = self.sep.as_deref();
        let mut stats: Vec<Stats> = header.iter().map(|h| Stats::new(h)).collect();
        for rec in &self.sample {
            let at = rec.at(name);
            for (c, cell) in cells(&rec.data, &rec.ends, &at, header)?
                .into_iter()
                .enumerate()
            {
                stats[c].observe_text(cell, rec.line.unwrap_or(0), sep);
            }
        }
        let columns = Stats::columns(&mut stats, &self.specs, true, name, "column", n)?;
        let mut plan = Plan::from_columns(columns, Origin::Sample(n))?;
        for rec in std::mem::take(&mut self.sample) {
            let at = rec.at(name);
            push_record(
                &mut plan,
                &self.map,
                header,
                (&rec.data, &rec.ends),
                &at,
                sep,
            )?;
        }
        self.plan = Some(plan);
        Ok(())
    }
}

impl RowText for CsvParser {
    fn progress(&self) -> &Progress {
        &self.progress
    }

    fn batch_rows(&self) -> usize {
        self.input.batch_rows
    }

    fn scan(&mut self, buf: &[u8]) -> Result<(usize, bool)> {
        self.split.feed(buf).map_err(|e| self.split_error(e))
    }

    fn row(&mut self) -> Result<()> {
        self.record()?;
        self.split.next_record();
        Ok(())
    }
}

impl Parser for CsvParser {
    fn schema(&self) -> Option<SchemaRef> {
        self.plan.as_ref().map(|p| p.schema.clone())
    }

    fn next_row_offset(&self) -> Option<u64> {
        self.progress.next_row_offset()
    }

    fn seek(&mut self, to: &ParsePosition) -> Result<()> {
        let known = ("the header", self.header.is_some());
        let offset = self
            .progress
            .seek(&self.input.name, to, self.plan.as_mut(), known)?;
        self.sample.clear();
        self.split.restart(offset);
        if to.rows == 0 {
            // From the start: the header is read again.
            self.header = None;
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
        if self.split.finish().map_err(|e| self.split_error(e))? {
            self.row()?;
        }
        if self.header.is_none() {
            return Err(Error::data(
                self.input.name.clone(),
                "the file is empty: a CSV file needs a header row naming its columns",
            ));
        }
        if self.plan.is_none() {
            self.infer()?;
        }
        self.flush()
    }
}

vmig_core::register_parser!(CsvParserConfig);
vmig_core::register_parser!(TsvParserConfig);
