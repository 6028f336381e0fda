//! Experiment of issue #17: how fast does the `pgvector` source read a table by keyset pages
//! over the binary protocol (what it does), against one `COPY (SELECT …) TO STDOUT (FORMAT
//! binary)` per table, decoded by the same column decoders into batches of the same size?
//! Neither writes anything: both only build the Arrow batches, so the difference is the read
//! path alone. Rounds alternate the order.
//!
//! ```sh
//! cargo run --release -p vmig-source-pgvector --example copy_vs_query -- \
//!     postgres://postgres@127.0.0.1:15432/vmig_bench bench_100000x768 5
//! ```
//!
//! The COPY binary stream (PostgreSQL documentation, `COPY`, "Binary Format"): an 11-byte
//! signature `PGCOPY\n\xff\r\n\0`, a 32-bit flags word, a 32-bit header-extension length and
//! that many bytes; then per tuple a 16-bit field count followed, per field, by a 32-bit length
//! (−1 = NULL) and that many bytes in the type's binary send format — the same bytes a
//! binary-format result column carries; a field count of −1 ends the data. All integers are in
//! network byte order.

use std::time::Instant;

use futures::StreamExt;
use sqlx::{Connection, Executor};
use vmig_core::arrow::array::RecordBatch;
use vmig_core::{Source, SourceContext};
use vmig_source_pgvector::decode::ColumnBuilder;
use vmig_source_pgvector::schema::{plan, quote_ident, Key, Plan};
use vmig_source_pgvector::{PgvectorSource, PgvectorSourceConfig};

type Res<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Reads every partition of the source as the runner would; returns (rows, batches).
async fn by_query(config: &PgvectorSourceConfig) -> Res<(usize, usize)> {
    let source = PgvectorSource::connect(config.clone()).await?;
    let ctx = SourceContext::default();
    let mut rows = 0;
    let mut batches = 0;
    for p in source.partitions().await? {
        let mut s = source.open(&p.id, None, &ctx)?;
        while let Some(b) = s.next().await {
            rows += b?.batch.num_rows();
            batches += 1;
        }
    }
    Ok((rows, batches))
}

/// Parses one tuple at the start of `buf` into the builders; `None` when `buf` does not hold a
/// whole tuple yet, `Some(0)` at the trailer, else `Some(bytes used)`.
fn tuple(buf: &[u8], builders: &mut [ColumnBuilder]) -> Res<Option<usize>> {
    let Some(head) = buf.get(..2) else {
        return Ok(None);
    };
    let fields = i16::from_be_bytes([head[0], head[1]]);
    if fields == -1 {
        return Ok(Some(0));
    }
    // Find the end first, so a tuple split across chunks is not half-pushed.
    let mut at = 2;
    let mut spans = Vec::with_capacity(fields as usize);
    for _ in 0..fields {
        let Some(l) = buf.get(at..at + 4) else {
            return Ok(None);
        };
        let len = i32::from_be_bytes([l[0], l[1], l[2], l[3]]);
        at += 4;
        if len < 0 {
            spans.push(None);
        } else {
            let end = at + len as usize;
            if end > buf.len() {
                return Ok(None);
            }
            spans.push(Some((at, end)));
            at = end;
        }
    }
    for (b, s) in builders.iter_mut().zip(&spans) {
        b.push(s.map(|(x, y)| &buf[x..y]))?;
    }
    Ok(Some(at))
}

fn finish(plan: &Plan, builders: Vec<ColumnBuilder>) -> Res<RecordBatch> {
    let arrays = builders
        .into_iter()
        .map(ColumnBuilder::finish)
        .collect::<vmig_core::Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(plan.schema.clone(), arrays)?)
}

/// One `COPY … TO STDOUT (FORMAT binary)` of the whole table in key order, cut into batches of
/// `page` rows; returns (rows, batches).
async fn by_copy(config: &PgvectorSourceConfig, page: usize) -> Res<(usize, usize)> {
    let mut conn = sqlx::PgConnection::connect(&config.url).await?;
    conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY; SET TimeZone = 'UTC'")
        .await?;
    let plan = plan(&mut conn, config, "bench").await?;
    let select = plan
        .columns
        .iter()
        .map(|c| c.select.clone())
        .collect::<Vec<_>>()
        .join(", ");
    let order = match &plan.key {
        Key::Int(k) | Key::Text(k) | Key::Uuid(k) => format!(" ORDER BY {}", quote_ident(k)),
        Key::Ctid => String::new(),
    };
    let sql = format!(
        "COPY (SELECT {select} FROM {}{order}) TO STDOUT (FORMAT binary)",
        plan.from
    );
    let new = |p: &Plan| -> Vec<ColumnBuilder> {
        p.columns
            .iter()
            .map(|c| ColumnBuilder::new(&c.kind, c.dim))
            .collect()
    };
    let mut builders = new(&plan);
    let mut stream = conn.copy_out_raw(&sql).await?;
    let mut buf: Vec<u8> = Vec::new();
    let mut start = 0usize;
    let mut header = false;
    let (mut rows, mut batches, mut in_batch) = (0, 0, 0);
    while let Some(chunk) = stream.next().await {
        buf.drain(..start);
        start = 0;
        buf.extend_from_slice(&chunk?);
        if !header {
            if buf.len() < 19 {
                continue;
            }
            if &buf[..11] != b"PGCOPY\n\xff\r\n\0" {
                return Err("not a binary COPY stream".into());
            }
            let ext = u32::from_be_bytes([buf[15], buf[16], buf[17], buf[18]]) as usize;
            start = 19 + ext;
            header = true;
        }
        while let Some(used) = tuple(&buf[start..], &mut builders)? {
            if used == 0 {
                break;
            }
            start += used;
            rows += 1;
            in_batch += 1;
            if in_batch == page {
                let b = finish(&plan, std::mem::replace(&mut builders, new(&plan)))?;
                std::hint::black_box(b);
                batches += 1;
                in_batch = 0;
            }
        }
    }
    if in_batch > 0 {
        std::hint::black_box(finish(&plan, builders)?);
        batches += 1;
    }
    Ok((rows, batches))
}

#[tokio::main]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(url), Some(table)) = (args.get(1), args.get(2)) else {
        return Err("usage: copy_vs_query URL TABLE [rounds]".into());
    };
    let rounds: usize = args.get(3).map_or(Ok(3), |r| r.parse())?;
    let config = PgvectorSourceConfig::table(url.clone(), table.clone());
    let page = SourceContext::default().batch_rows.get();
    let (mut q, mut c) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        for which in if r % 2 == 0 { [0, 1] } else { [1, 0] } {
            let t = Instant::now();
            let (rows, batches) = if which == 0 {
                by_query(&config).await?
            } else {
                by_copy(&config, page).await?
            };
            let s = t.elapsed().as_secs_f64();
            let name = if which == 0 {
                "keyset query"
            } else {
                "COPY binary"
            };
            println!(
                "round {} {name}: {rows} rows in {batches} batches, {s:.3} s",
                r + 1
            );
            if which == 0 { &mut q } else { &mut c }.push(s);
        }
    }
    for v in [&mut q, &mut c] {
        v.sort_by(f64::total_cmp);
    }
    println!(
        "median: keyset query {:.3} s, COPY binary {:.3} s (COPY/query {:.2})",
        q[q.len() / 2],
        c[c.len() / 2],
        c[c.len() / 2] / q[q.len() / 2]
    );
    Ok(())
}
