//! An out-of-tree parser plugin, and a `vmig` that includes it.
//!
//! `vrec` is a small binary record format made up for this example: the 4 bytes `VREC`, the
//! dimension as a little-endian `u32`, then one record per row — the id as a little-endian
//! `i64` and the vector as `dim` little-endian `f32`s. The parser below is a push decoder (no
//! I/O) registered with one macro line; the `files` source then reads `*.vrec` files from a
//! local directory or a bucket, in parallel partitions, resumably, like any built-in format.
//!
//! This program is also a complete `vmig` command with the plugin linked in
//! ([`vmig_cli::main_from`]):
//!
//! * `cargo run -p vmig-examples --example custom_parser` — self-check: writes three `.vrec`
//!   files, runs `vmig plugins` (the `vrec` parser is listed) and `vmig migrate` on
//!   `examples/data/custom-parser.toml`, then checks every id and vector bit of the Parquet
//!   output;
//! * `cargo run -p vmig-examples --example custom_parser -- <any vmig arguments>` — that `vmig`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use arrow::array::{AsArray, Float32Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Float32Type, Int64Type, Schema, SchemaRef};
use serde::{Deserialize, Serialize};
use vmig::parse::{ParseInput, ParsePosition, Parser, ParserConfig};
use vmig::vector::{float_vector_array, float_vector_field};
use vmig::{Error, Result};

/// `format = "vrec"`: no options.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VrecConfig {}

impl ParserConfig for VrecConfig {
    const NAME: &'static str = "vrec";
    const SUMMARY: &'static str = "VREC records: an i64 id and a float32 vector (example plugin)";
    const EXTENSIONS: &'static [&'static str] = &["vrec"];

    fn example() -> Self {
        VrecConfig {}
    }

    fn build(&self, input: &ParseInput) -> Result<Box<dyn Parser>> {
        Ok(Box::new(VrecParser {
            input: input.clone(),
            header: Vec::new(),
            dim: None,
            rows: Vec::new(),
            pending: Vec::new(),
            rows_out: 0,
        }))
    }
}

vmig::register_parser!(VrecConfig);

const HEADER: u64 = 8;

#[derive(Debug)]
struct VrecParser {
    input: ParseInput,
    /// The header's bytes until it is complete.
    header: Vec<u8>,
    dim: Option<usize>,
    /// Complete records of the current batch.
    rows: Vec<u8>,
    /// An incomplete record.
    pending: Vec<u8>,
    /// Rows returned so far.
    rows_out: u64,
}

impl VrecParser {
    fn record_bytes(&self) -> Option<usize> {
        self.dim.map(|d| 8 + 4 * d)
    }

    fn schema_for(dim: usize) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            float_vector_field("vector", dim),
        ]))
    }

    fn read_header(&mut self) -> Result<()> {
        if &self.header[..4] != b"VREC" {
            return Err(Error::data(
                format!("{} at byte 0", self.input.name),
                "not a VREC file (it does not start with `VREC`)",
            ));
        }
        let dim = u32::from_le_bytes([
            self.header[4],
            self.header[5],
            self.header[6],
            self.header[7],
        ]) as usize;
        if dim == 0 {
            return Err(Error::data(
                format!("{} at byte 4", self.input.name),
                "the dimension is 0",
            ));
        }
        if let Some(size) = self.input.size {
            let body = size.saturating_sub(HEADER);
            if body % (8 + 4 * dim as u64) != 0 {
                return Err(Error::data(
                    self.input.name.clone(),
                    format!("{size} bytes is not a header and whole records of {} bytes: the file is truncated", 8 + 4 * dim),
                ));
            }
        }
        if let Some(planned) = &self.input.schema {
            if planned.as_ref() != Self::schema_for(dim).as_ref() {
                return Err(Error::schema(format!(
                    "{}: its vectors have dimension {dim}, unlike the first file's",
                    self.input.name
                )));
            }
        }
        self.dim = Some(dim);
        Ok(())
    }
}

impl Parser for VrecParser {
    fn schema(&self) -> Option<SchemaRef> {
        self.dim.map(Self::schema_for)
    }

    fn total_rows(&self) -> Option<u64> {
        let size = self.input.size?;
        Some((size - HEADER) / self.record_bytes()? as u64)
    }

    fn next_row_offset(&self) -> Option<u64> {
        Some(HEADER + self.rows_out * self.record_bytes()? as u64)
    }

    fn seek(&mut self, to: &ParsePosition) -> Result<()> {
        let record = self.record_bytes().ok_or_else(|| {
            Error::unsupported(self.input.name.clone(), "seek before the header was read")
        })? as u64;
        let at = HEADER + to.rows * record;
        if to.offset.is_some_and(|o| o != at) {
            return Err(Error::data(
                self.input.name.clone(),
                format!("row {} starts at byte {at}, not {:?}", to.rows, to.offset),
            ));
        }
        self.rows_out = to.rows;
        self.rows.clear();
        self.pending.clear();
        Ok(())
    }

    fn decode(&mut self, buf: &[u8]) -> Result<usize> {
        let mut used = 0;
        if self.dim.is_none() {
            let take = (HEADER as usize - self.header.len()).min(buf.len());
            self.header.extend_from_slice(&buf[..take]);
            used += take;
            if self.header.len() < HEADER as usize {
                return Ok(used);
            }
            self.read_header()?;
        }
        let record = self.record_bytes().unwrap_or(1);
        let full = self.input.batch_rows * record;
        while used < buf.len() && self.rows.len() < full {
            let want = record - self.pending.len();
            let take = want.min(buf.len() - used);
            self.pending.extend_from_slice(&buf[used..used + take]);
            used += take;
            if self.pending.len() == record {
                self.rows.append(&mut self.pending);
            }
        }
        Ok(used)
    }

    fn flush(&mut self) -> Result<Option<RecordBatch>> {
        let (Some(dim), Some(record)) = (self.dim, self.record_bytes()) else {
            return Ok(None);
        };
        if self.rows.is_empty() {
            return Ok(None);
        }
        let n = self.rows.len() / record;
        let mut ids = Vec::with_capacity(n);
        let mut values = Vec::with_capacity(n * dim);
        for r in self.rows.chunks_exact(record) {
            let (id, v) = r.split_at(8);
            ids.push(i64::from_le_bytes(
                id.try_into()
                    .map_err(|_| Error::data(self.input.name.clone(), "short id"))?,
            ));
            values.extend(
                v.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            );
        }
        self.rows.clear();
        self.rows_out += n as u64;
        let vectors = float_vector_array(Float32Array::from(values), dim)?;
        let schema = Self::schema_for(dim);
        Ok(Some(RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from(ids)), Arc::new(vectors)],
        )?))
    }

    fn finish(&mut self) -> Result<Option<RecordBatch>> {
        if self.dim.is_none() {
            return Err(Error::data(
                format!("{} at byte {}", self.input.name, self.header.len()),
                "the file ends inside its 8-byte header",
            ));
        }
        if !self.pending.is_empty() {
            let at = self.next_row_offset().unwrap_or(0) + self.rows.len() as u64;
            return Err(Error::data(
                format!("{} at byte {at}", self.input.name),
                "the file ends inside a record: it is truncated",
            ));
        }
        self.flush()
    }
}

/// Writes `rows` records of dimension `dim` with ids from `first_id`; returns them.
fn write_vrec(
    path: &Path,
    first_id: i64,
    rows: usize,
    dim: usize,
) -> std::io::Result<Vec<(i64, Vec<u32>)>> {
    let mut bytes = b"VREC".to_vec();
    bytes.extend_from_slice(&(dim as u32).to_le_bytes());
    let mut written = Vec::new();
    for r in 0..rows {
        let id = first_id + r as i64;
        bytes.extend_from_slice(&id.to_le_bytes());
        let bits: Vec<u32> = (0..dim)
            .map(|c| match (r + c) % 5 {
                0 => (-0.0f32).to_bits(),
                1 => 0x0000_0001, // the smallest subnormal
                2 => 0x7fc0_1234, // a NaN with a payload
                _ => ((id as f32) * 0.5 + c as f32).to_bits(),
            })
            .collect();
        for b in &bits {
            bytes.extend_from_slice(&b.to_le_bytes());
        }
        written.push((id, bits));
    }
    std::fs::write(path, bytes)?;
    Ok(written)
}

fn self_check() -> std::result::Result<(), Box<dyn std::error::Error>> {
    assert!(
        vmig::registry::parsers()?.contains_key("vrec"),
        "the example parser is registered"
    );
    let input = tempfile::tempdir()?;
    let output = tempfile::tempdir()?;
    let mut want = Vec::new();
    for (i, rows) in [40, 0, 25].into_iter().enumerate() {
        want.extend(write_vrec(
            &input.path().join(format!("part-{i}.vrec")),
            1000 * i as i64,
            rows,
            16,
        )?);
    }
    // The job file names its directories through these variables.
    std::env::set_var("VMIG_EXAMPLE_IN", input.path());
    std::env::set_var("VMIG_EXAMPLE_OUT", output.path().join("out"));
    let job = vmig_examples::data_dir().join("custom-parser.toml");
    for args in [
        vec!["vmig", "plugins"],
        vec![
            "vmig",
            "migrate",
            job.to_str().ok_or("non-UTF-8 path")?,
            "--state",
            "none",
            "--progress",
            "none",
        ],
    ] {
        if vmig_cli::main_from(args.iter().copied()) != ExitCode::SUCCESS {
            return Err(format!("`{}` failed", args.join(" ")).into());
        }
    }

    let mut got = Vec::new();
    for batch in vmig_examples::parquet_batches(&output.path().join("out"))? {
        let ids = batch.column(0).as_primitive::<Int64Type>();
        let vectors = batch.column(1).as_list::<i32>();
        for r in 0..batch.num_rows() {
            let bits = vectors
                .value(r)
                .as_primitive::<Float32Type>()
                .values()
                .iter()
                .map(|x| x.to_bits())
                .collect();
            got.push((ids.value(r), bits));
        }
    }
    got.sort();
    assert_eq!(got.len(), 65);
    assert_eq!(got, want, "every id and vector bit arrives as written");
    println!("ok: {} rows of 3 .vrec files migrated bit-exact", got.len());
    Ok(())
}

fn main() -> ExitCode {
    if std::env::args_os().len() > 1 {
        return vmig_cli::main();
    }
    match self_check() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("custom_parser: {e}");
            ExitCode::FAILURE
        }
    }
}
