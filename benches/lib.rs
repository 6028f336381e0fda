//! vmig-benches: whole-pipeline criterion benches (`cargo bench -p vmig-benches`).
//!
//! `faiss_to_parquet` measures Faiss → uncompressed Parquet throughput in bytes of index read per
//! second. The comparison against `cp` and a Python baseline on a ~1 GiB real faiss-cpu file is
//! `scripts/bench-faiss`.
#![warn(missing_docs)]

use std::io::Write;
use std::path::Path;

/// Writes an `IndexFlatL2` file (`IxF2`) of `rows` seeded vectors, following Faiss's
/// `write_index` layout: fourcc, header (d, ntotal, two dummies, is_trained, metric), then the
/// vectors as a count-prefixed float array. Only for benches: tests use files written by faiss-cpu.
///
/// # Errors
/// When the file cannot be written.
pub fn write_flat_l2(path: &Path, rows: usize, dim: usize, seed: u64) -> std::io::Result<u64> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    f.write_all(b"IxF2")?;
    f.write_all(&(dim as i32).to_le_bytes())?;
    f.write_all(&(rows as i64).to_le_bytes())?;
    f.write_all(&(1i64 << 20).to_le_bytes())?;
    f.write_all(&(1i64 << 20).to_le_bytes())?;
    f.write_all(&[1u8])?;
    f.write_all(&1i32.to_le_bytes())?;
    f.write_all(&((rows * dim) as u64).to_le_bytes())?;
    let chunk = 4096;
    let mut done = 0;
    while done < rows {
        let n = chunk.min(rows - done);
        for v in vmig_testing::gen::vectors(seed ^ done as u64, n, dim) {
            f.write_all(&v.to_le_bytes())?;
        }
        done += n;
    }
    f.flush()?;
    Ok(std::fs::metadata(path)?.len())
}
