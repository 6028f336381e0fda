//! Writes a generated Milvus 1.x data directory, for `scripts/bench-milvus1` and for trying the
//! `milvus1` source by hand:
//!
//! ```text
//! cargo run --release -p vmig-source-milvus1 --example gen_milvus1 -- OUT_DIR ROWS [DIM] [SEGMENTS]
//! ```
//!
//! Collection `bench` (float, L2, DIM dimensions, default 128) with SEGMENTS segments (default 8):
//! the first half in the collection itself, the rest in partition `part_b`; every segment has
//! one deleted row in 1,000 (unsorted offsets).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use vmig_testing::milvus1::{FileType, Metric, Milvus1Gen};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: gen_milvus1 OUT_DIR ROWS [DIM] [SEGMENTS]");
        std::process::exit(2);
    }
    let out = std::path::PathBuf::from(&args[0]);
    let rows: usize = args[1].parse().expect("ROWS is a number");
    let dim: usize = args
        .get(2)
        .map_or(128, |d| d.parse().expect("DIM is a number"));
    let segments: usize = args
        .get(3)
        .map_or(8, |s| s.parse().expect("SEGMENTS is a number"));
    let mut g = Milvus1Gen::new(2024);
    let c = g.collection("bench", dim, Metric::L2);
    let p = g.partition(c, "part_b");
    let per = rows.div_ceil(segments);
    let mut left = rows;
    for s in 0..segments {
        let n = per.min(left);
        left -= n;
        let deletes: Vec<i32> = (0..n as i32).rev().step_by(1000).collect();
        let table = if s < segments / 2 { c } else { p };
        let kind = if s % 2 == 0 {
            FileType::Raw
        } else {
            FileType::Backup
        };
        g.segment(table, n, &deletes, kind);
    }
    g.write_dir(&out).await.expect("writing the data directory");
    eprintln!(
        "wrote {rows} rows of dim {dim} in {segments} segments to {}",
        out.display()
    );
}
