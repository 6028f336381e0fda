//! The parser conformance check: [`check_parser`] runs one [`Parser`] over one input in every
//! way a reader may feed it and requires the same rows each time.
//!
//! * Chunking: the input in 1-byte chunks (inputs up to 64 KiB), 7-byte, 4 KiB and one chunk,
//!   must give identical rows (random-access parsers are given the ranges they ask for);
//! * every batch has the parser's schema and at most `batch_rows` rows;
//! * resuming: after every batch, a new parser fed from the start until its schema is known,
//!   (given the planned schema, as a resuming source does: [`ParseInput::schema`]),
//!   then [`Parser::seek`] to the position reached (`rows`, and the byte offset the parser
//!   reported), then fed the bytes from that offset, must yield exactly the rows that followed.
//!   A parser that refuses `seek` is checked for refusing with [`vmig_core::Error::Unsupported`].
//!
//! Failures panic naming the check and the chunk size or position: this is a test helper.

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use bytes::Bytes;
use vmig_core::parse::{parse_all, parse_bytes, ParseInput, ParsePosition, Parser, Wanted};
use vmig_core::Error;

/// What [`check_parser`] found: every row of the input, and how resuming went.
#[derive(Debug)]
pub struct ParserReport {
    /// All rows, as one batch.
    pub rows: RecordBatch,
    /// Positions at which a resumed parser was checked.
    pub resumed_at: Vec<ParsePosition>,
    /// Whether the parser resumes by itself (`seek` accepted), or refuses so the reader
    /// re-parses from the start.
    pub seeks: bool,
}

/// Runs the checks described in the module docs on `bytes`, building each parser with
/// `build(input)` for a [`ParseInput`] named `name` with `batch_rows`, and returns the rows.
///
/// # Panics
/// When a check fails or the parser fails on the input.
pub fn check_parser(
    build: &dyn Fn(&ParseInput) -> Box<dyn Parser>,
    name: &str,
    bytes: &[u8],
    batch_rows: usize,
) -> ParserReport {
    let input = ParseInput::new(name, batch_rows).with_size(bytes.len() as u64);
    let bytes = Bytes::copy_from_slice(bytes);
    let mut chunks = vec![7, 4096, bytes.len().max(1)];
    if bytes.len() <= 64 * 1024 {
        chunks.insert(0, 1);
    }
    let mut reference: Option<RecordBatch> = None;
    for chunk in chunks {
        let mut parser = build(&input);
        let batches = parse_bytes(parser.as_mut(), &bytes, chunk)
            .unwrap_or_else(|e| panic!("{name}: parsing in {chunk}-byte chunks failed: {e}"));
        let schema = parser
            .schema()
            .unwrap_or_else(|| panic!("{name}: no schema after the whole input"));
        for (i, b) in batches.iter().enumerate() {
            assert_eq!(
                b.schema(),
                schema,
                "{name}: batch {i} ({chunk}-byte chunks) does not have the parser's schema"
            );
            assert!(
                b.num_rows() <= batch_rows,
                "{name}: batch {i} has {} rows, more than batch_rows = {batch_rows}",
                b.num_rows()
            );
        }
        let all = concat_batches(&schema, &batches)
            .unwrap_or_else(|e| panic!("{name}: batches do not concatenate: {e}"));
        match &reference {
            None => reference = Some(all),
            Some(r) => assert_eq!(
                r, &all,
                "{name}: {chunk}-byte chunks gave other rows than smaller chunks"
            ),
        }
    }
    let rows = reference.unwrap_or_else(|| panic!("{name}: no chunk size was tried"));
    let (resumed_at, seeks) = check_resume(build, &input, &bytes, &rows);
    ParserReport {
        rows,
        resumed_at,
        seeks,
    }
}

/// The positions after each batch of one run, as a reader would record them.
fn positions(parser: &mut dyn Parser, bytes: &Bytes, name: &str) -> Vec<ParsePosition> {
    let mut out = Vec::new();
    let mut rows = 0u64;
    let mut record = |parser: &dyn Parser, batch: Option<RecordBatch>| {
        if let Some(b) = batch {
            rows += b.num_rows() as u64;
            out.push(ParsePosition {
                rows,
                offset: parser.next_row_offset(),
            });
        }
    };
    let mut offset = 0usize;
    loop {
        match parser.wanted().unwrap_or_else(|e| panic!("{name}: {e}")) {
            Wanted::Stream => {
                if offset >= bytes.len() {
                    let b = parser.finish().unwrap_or_else(|e| panic!("{name}: {e}"));
                    record(&*parser, b);
                    return out;
                }
                let used = parser
                    .decode(&bytes[offset..])
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                offset += used;
                if offset < bytes.len() {
                    let b = parser.flush().unwrap_or_else(|e| panic!("{name}: {e}"));
                    let stuck = used == 0 && b.is_none();
                    record(&*parser, b);
                    if stuck && matches!(parser.wanted(), Ok(Wanted::Stream)) {
                        panic!("{name}: the parser neither consumed input nor returned rows");
                    }
                }
            }
            Wanted::Ranges(ranges) => {
                let data = ranges
                    .iter()
                    .map(|r| bytes.slice(r.start as usize..r.end as usize))
                    .collect();
                parser
                    .push_ranges(ranges, data)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            Wanted::Batch => {
                let b = parser.flush().unwrap_or_else(|e| panic!("{name}: {e}"));
                record(&*parser, b);
            }
            Wanted::Done => {
                let b = parser.finish().unwrap_or_else(|e| panic!("{name}: {e}"));
                record(&*parser, b);
                return out;
            }
        }
    }
}

fn check_resume(
    build: &dyn Fn(&ParseInput) -> Box<dyn Parser>,
    input: &ParseInput,
    bytes: &Bytes,
    rows: &RecordBatch,
) -> (Vec<ParsePosition>, bool) {
    let name = input.name.as_str();
    let all = positions(build(input).as_mut(), bytes, name);
    let mut checked = Vec::new();
    let mut seeks = true;
    for pos in all {
        if pos.rows as usize >= rows.num_rows() {
            continue;
        }
        // A resuming reader knows the planned schema, and feeds the input from its start until
        // the parser's schema is known (at once for formats that infer one, after the header
        // for formats that have one).
        let mut parser = build(&input.clone().with_schema(rows.schema()));
        let streaming = matches!(parser.wanted(), Ok(Wanted::Stream));
        let mut fed = 0usize;
        if streaming {
            while parser.schema().is_none() && fed < bytes.len() {
                let end = (fed + 1).min(bytes.len());
                let used = parser
                    .decode(&bytes[fed..end])
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                fed += used;
                if used == 0 {
                    let _ = parser.flush();
                }
            }
        }
        match parser.seek(&pos) {
            Err(Error::Unsupported { .. }) => {
                seeks = false;
                continue;
            }
            Err(e) => panic!("{name}: seek to {pos:?} failed: {e}"),
            Ok(()) => {}
        }
        // A parser that streamed its header may read the rest by random access.
        let streaming = streaming && matches!(parser.wanted(), Ok(Wanted::Stream));
        let rest = if streaming {
            let offset = pos.offset.unwrap_or_else(|| {
                panic!("{name}: seek accepted {pos:?}, a position without a byte offset")
            }) as usize;
            parse_all(parser.as_mut(), bytes[offset..].chunks(4096))
        } else {
            parse_bytes(parser.as_mut(), bytes, 4096)
        }
        .unwrap_or_else(|e| panic!("{name}: resumed at {pos:?}: {e}"));
        let schema = rows.schema();
        let rest = concat_batches(&schema, &rest)
            .unwrap_or_else(|e| panic!("{name}: resumed batches do not concatenate: {e}"));
        let from = pos.rows as usize;
        assert_eq!(
            rest,
            rows.slice(from, rows.num_rows() - from),
            "{name}: resumed at {pos:?}, the rows differ from those that followed it"
        );
        checked.push(pos);
    }
    (checked, seeks)
}
