//! Reading byte ranges of one file — local, or an object in a store — as [`Bytes`].
//!
//! Sources that stream a large file (Faiss inverted lists, Milvus 1.x `.rv`/`.uid` segments)
//! read it as ranges of a few MiB and hand the bytes to Arrow without copying them again. The
//! main design decision is how local ranges are read: into buffers taken from a process-wide
//! pool ([`BufferPool`]) and filled by `read(2)` without being zeroed first. A buffer returns to
//! the pool when the last Arrow array (or [`Bytes`]) using it is dropped, so a steady stream
//! reuses the same few buffers instead of asking the kernel for fresh pages — zeroing and
//! faulting in a new page costs as much as reading it. Object-store ranges are ranged GETs.
//!
//! [`read_ahead`] is the one chunked read-ahead stream of the sources that read such a file
//! front to back (Faiss, Milvus 1.x): chunks of [`RangeReader::chunk_bytes`] are read on spawned
//! tasks, [`READS_IN_FLIGHT`] at a time, while the chunk before is decoded into batches; ranges
//! are read with [`RangeReader::read_exact`], which turns a short read into an error naming the
//! file and the offset.

use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use std::future::Future;

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::source::AbortOnDrop;
use crate::store::StoreLocation;

/// Bytes a [`read_ahead`] chunk of an object in a store holds (about: a chunk holds whole
/// batches): large enough that request latency is hidden.
pub const STORE_CHUNK_BYTES: u64 = 8 * 1024 * 1024;

/// The same for local files. Batches borrow their chunk's buffer, so a batch waiting in a
/// sink's row group keeps its whole chunk alive: small chunks keep that overhead low and the
/// data in the CPU caches between the read and the sink's write, and local reads gain nothing
/// from large requests.
pub const LOCAL_CHUNK_BYTES: u64 = 2 * 1024 * 1024;

/// Chunk reads in flight per [`read_ahead`] stream: the next chunk is read while the current
/// one is decoded (and one more is queued).
pub const READS_IN_FLIGHT: usize = 2;

/// Where the ranges of one file are read from.
#[derive(Debug, Clone)]
pub enum RangeReader {
    /// A local file, read on Tokio's blocking pool into pooled buffers.
    Local(Arc<LocalFile>),
    /// An object in a store, read with ranged GETs.
    Store {
        /// The store.
        store: Arc<dyn ObjectStore>,
        /// The object.
        path: Path,
    },
}

impl RangeReader {
    /// A reader of `location`: local files directly, anything else through its store. Opens
    /// nothing yet; a missing local file is reported by the first read.
    pub fn new(location: &StoreLocation) -> RangeReader {
        match &location.local {
            Some(path) => RangeReader::Local(Arc::new(LocalFile::new(path.clone(), None))),
            None => RangeReader::Store {
                store: Arc::clone(&location.store),
                path: location.path.clone(),
            },
        }
    }

    /// Reads `range` in full (see [`RangeReader::read_ranges`]).
    ///
    /// # Errors
    /// I/O and object-store errors.
    pub async fn read_range(&self, range: Range<u64>) -> Result<Bytes> {
        match self {
            RangeReader::Store { store, path } => Ok(store.get_range(path, range).await?),
            RangeReader::Local(_) => Ok(self
                .read_ranges(vec![range])
                .await?
                .pop()
                .unwrap_or_default()),
        }
    }

    /// Bytes per [`read_ahead`] chunk for this reader: [`LOCAL_CHUNK_BYTES`] or
    /// [`STORE_CHUNK_BYTES`].
    pub fn chunk_bytes(&self) -> u64 {
        match self {
            RangeReader::Local(_) => LOCAL_CHUNK_BYTES,
            RangeReader::Store { .. } => STORE_CHUNK_BYTES,
        }
    }

    /// Reads each of `ranges` in full, in order (one request for a single range), and checks
    /// that every range came back whole.
    ///
    /// # Errors
    /// I/O and object-store errors; [`Error::Data`] at `<name> at byte <start>` for a range that
    /// came back short (the file ended early, or changed while it was read).
    pub async fn read_exact(&self, name: &str, ranges: Vec<Range<u64>>) -> Result<Vec<Bytes>> {
        let data = match ranges.as_slice() {
            [one] => vec![self.read_range(one.clone()).await?],
            _ => self.read_ranges(ranges.clone()).await?,
        };
        for (range, bytes) in ranges.iter().zip(&data) {
            let want = range.end.saturating_sub(range.start);
            if bytes.len() as u64 != want {
                return Err(Error::data(
                    format!("{name} at byte {}", range.start),
                    format!(
                        "expected {want} bytes but read {} (did the file change while it was read?)",
                        bytes.len()
                    ),
                ));
            }
        }
        Ok(data)
    }

    /// Reads each of `ranges` in full, in order. A range past the end of the file comes back
    /// short (local files) or as an error (stores): callers check lengths.
    ///
    /// # Errors
    /// I/O and object-store errors.
    pub async fn read_ranges(&self, ranges: Vec<Range<u64>>) -> Result<Vec<Bytes>> {
        match self {
            RangeReader::Local(file) => {
                let file = Arc::clone(file);
                tokio::task::spawn_blocking(move || {
                    ranges
                        .iter()
                        .map(|r| file.read_range(r.clone()))
                        .collect::<Result<Vec<_>>>()
                })
                .await
                .map_err(|e| Error::External(Box::new(e)))?
            }
            RangeReader::Store { store, path } => Ok(store.get_ranges(path, &ranges).await?),
        }
    }
}

/// A chunked read-ahead stream: `read` turns each of `plans` (in order) into a chunk, on a
/// spawned task with [`READS_IN_FLIGHT`] of them running at once, and `decode` turns each chunk
/// into items, which come out in the order of the plans.
///
/// Reads run ahead while the consumer works through the previous chunk's items. Plans are
/// taken from `plans` only as reads are started; dropping the stream aborts the reads in
/// flight, and none is started once `cancel` is cancelled (that read yields
/// [`Error::Cancelled`]). An error from `read` is yielded in the chunk's place.
pub fn read_ahead<P, C, T, R, RF, D, I>(
    plans: impl IntoIterator<Item = P, IntoIter: Send + 'static>,
    cancel: CancellationToken,
    read: R,
    decode: D,
) -> impl Stream<Item = Result<T>> + Send + 'static
where
    P: Send + 'static,
    C: Send + 'static,
    T: Send + 'static,
    R: Fn(P) -> RF + Send + 'static,
    RF: Future<Output = Result<C>> + Send + 'static,
    D: Fn(C) -> I + Send + 'static,
    I: IntoIterator<Item = Result<T>>,
    I::IntoIter: Send + 'static,
{
    futures::stream::iter(plans)
        .map(move |plan| {
            let cancelled = cancel.is_cancelled();
            // Spawned, so the read progresses while the consumer is busy with earlier chunks.
            let task = (!cancelled).then(|| AbortOnDrop::spawn(read(plan)));
            async move {
                match task {
                    Some(task) => task.await,
                    None => Err(Error::Cancelled),
                }
            }
        })
        .buffered(READS_IN_FLIGHT)
        .map_ok(move |chunk| futures::stream::iter(decode(chunk)))
        .try_flatten()
}

/// Range reads of a local file (blocking). Each read seeks a handle of its own and lets
/// [`Read::read_to_end`] fill a pooled buffer's spare capacity, which std does without zeroing
/// it (`pread` would need an initialised buffer). Handles are opened on demand and kept for
/// reuse (one per concurrent read), so concurrent reads never share a file offset.
#[derive(Debug)]
pub struct LocalFile {
    path: PathBuf,
    idle: Mutex<Vec<std::fs::File>>,
}

impl LocalFile {
    /// Reads from `path`; `first` is an already open handle on it, if there is one.
    pub fn new(path: PathBuf, first: Option<std::fs::File>) -> Self {
        LocalFile {
            path,
            idle: Mutex::new(first.into_iter().collect()),
        }
    }

    /// The file read.
    pub fn path(&self) -> &FsPath {
        &self.path
    }

    /// Reads `range` in full, or up to the end of the file (blocking).
    ///
    /// # Errors
    /// I/O errors, naming the file and the range.
    pub fn read_range(&self, range: Range<u64>) -> Result<Bytes> {
        let len = range.end.saturating_sub(range.start);
        let cap = usize::try_from(len).map_err(|_| {
            Error::data(
                self.path.display().to_string(),
                format!("range {range:?} is too large"),
            )
        })?;
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut file = match idle {
            Some(f) => f,
            None => std::fs::File::open(&self.path)
                .map_err(|e| Error::from(e).context(format!("opening {}", self.path.display())))?,
        };
        // The kernel copies fastest when source and destination sit at the same offset inside
        // a cache line, so the data starts in `buf` at the file offset's offset in a line —
        // when that keeps 8-byte values aligned, as Arrow needs them (a misaligned column
        // would be copied again); otherwise at the start of a line.
        let mut buf = BufferPool::global().take(cap + LINE);
        let at = range.start as usize % LINE;
        let at = if at.is_multiple_of(8) { at } else { 0 };
        let shift = at.wrapping_sub(buf.as_ptr() as usize) % LINE;
        buf.resize(shift, 0);
        file.seek(SeekFrom::Start(range.start))
            .and_then(|_| (&mut file).take(len).read_to_end(&mut buf))
            .map_err(|e| {
                Error::from(e).context(format!(
                    "reading bytes {range:?} of {}",
                    self.path.display()
                ))
            })?;
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(file);
        Ok(BufferPool::global().bytes(buf).slice(shift..))
    }
}

/// Cache line size assumed for aligning reads (64 bytes on x86-64 and most ARM cores).
const LINE: usize = 64;

/// Byte buffers kept for reuse after the data read into them is dropped (see the module
/// documentation). Holds at most [`BufferPool::MAX_BYTES`] of idle capacity; beyond that,
/// returned buffers are freed.
#[derive(Debug)]
pub struct BufferPool {
    idle: Mutex<Vec<Vec<u8>>>,
}

impl BufferPool {
    /// Idle capacity kept at most.
    pub const MAX_BYTES: usize = 64 << 20;

    /// The process-wide pool.
    pub fn global() -> &'static BufferPool {
        static POOL: BufferPool = BufferPool {
            idle: Mutex::new(Vec::new()),
        };
        &POOL
    }

    /// An empty buffer with at least `capacity` bytes of capacity: the smallest idle one that is
    /// large enough, or else a new one with an eighth more room (so that slightly larger
    /// requests later fit it). A miss also frees the largest idle buffer, which is too small:
    /// idle memory stays made of buffers that fit the requests being made.
    pub fn take(&self, capacity: usize) -> Vec<u8> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let best = idle
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= capacity)
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i);
        if let Some(i) = best {
            return idle.swap_remove(i);
        }
        let largest = idle
            .iter()
            .enumerate()
            .max_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i);
        if let Some(i) = largest {
            drop(idle.swap_remove(i));
        }
        drop(idle);
        Vec::with_capacity(capacity.saturating_add(capacity / 8))
    }

    /// `buf`'s contents as [`Bytes`] that give the buffer back to this pool when dropped.
    pub fn bytes(&'static self, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(Pooled { buf, pool: self })
    }

    /// `buf`'s contents as an Arrow buffer that gives the buffer back to this pool when the
    /// last array using it is dropped: how a parser hands out a batch's values without the
    /// allocator keeping every batch's memory once the sink drops it. A `buf` not aligned to
    /// `align` bytes (allocators align such buffers to 16; Arrow needs a value's width) is
    /// copied into an aligned buffer instead.
    pub fn arrow_buffer(&'static self, buf: Vec<u8>, align: usize) -> arrow::buffer::Buffer {
        if !(buf.as_ptr() as usize).is_multiple_of(align.max(1)) {
            let copy = arrow::buffer::Buffer::from_slice_ref(&buf);
            self.give_back(buf);
            return copy;
        }
        arrow::buffer::Buffer::from(self.bytes(buf))
    }

    /// Frees every idle buffer (the pipeline runner does at the end of a job). Buffers still
    /// lent out come back later as usual.
    pub fn clear(&self) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    fn give_back(&self, mut buf: Vec<u8>) {
        buf.clear();
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let held: usize = idle.iter().map(Vec::capacity).sum();
        if held + buf.capacity() <= Self::MAX_BYTES {
            idle.push(buf);
        }
    }
}

/// A pooled buffer lent out as [`Bytes`].
struct Pooled {
    buf: Vec<u8>,
    pool: &'static BufferPool,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_after_the_bytes_are_dropped() {
        let pool: &'static BufferPool = Box::leak(Box::new(BufferPool {
            idle: Mutex::new(Vec::new()),
        }));
        let mut buf = pool.take(1000);
        buf.extend_from_slice(b"hello");
        let ptr = buf.as_ptr();
        let bytes = pool.bytes(buf);
        let part = bytes.slice(1..3);
        drop(bytes);
        assert_eq!(&part[..], b"el");
        assert!(pool.idle.lock().unwrap().is_empty(), "still lent out");
        drop(part);
        let again = pool.take(500);
        assert_eq!(again.as_ptr(), ptr);
        assert!(again.is_empty() && again.capacity() >= 1000);
        // Too small an idle buffer is not handed out for a larger request.
        pool.give_back(again);
        let larger = pool.take(1 << 20);
        assert_ne!(larger.as_ptr(), ptr);
        pool.clear();
        assert!(pool.idle.lock().unwrap().is_empty());
    }

    #[test]
    fn local_ranges_read_exactly_and_short_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let file = LocalFile::new(path.clone(), None);
        assert_eq!(&file.read_range(10..5000).unwrap()[..], &data[10..5000]);
        // Reused buffers hold no stale bytes beyond what was read.
        assert_eq!(&file.read_range(9990..20_000).unwrap()[..], &data[9990..]);
        // Data at an 8-byte multiple sits at its file offset's place in a cache line; other
        // data at the start of a line (so that Arrow can use either without copying).
        for start in [0u64, 8, 24, 64, 200, 3, 13, 1001] {
            let got = file.read_range(start..start + 300).unwrap();
            assert_eq!(&got[..], &data[start as usize..start as usize + 300]);
            let want = if start % 8 == 0 {
                start as usize % LINE
            } else {
                0
            };
            assert_eq!(got.as_ptr() as usize % LINE, want, "start {start}");
        }
        let missing = LocalFile::new(dir.path().join("nope"), None);
        let err = missing.read_range(0..1).unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
    }

    fn local_file(len: u32) -> (tempfile::TempDir, Vec<u8>, RangeReader) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let reader = RangeReader::Local(Arc::new(LocalFile::new(path, None)));
        (dir, data, reader)
    }

    #[tokio::test]
    async fn read_ahead_yields_exact_bytes_in_order() {
        let (_dir, data, reader) = local_file(10_000);
        assert_eq!(reader.chunk_bytes(), LOCAL_CHUNK_BYTES);
        let plans: Vec<(usize, Range<u64>)> = (0..10u64)
            .map(|i| (i as usize, i * 1000..(i + 1) * 1000))
            .collect();
        // Early chunks take longest, so reads finish out of order; items must not.
        let items: Vec<Bytes> = read_ahead(
            plans,
            CancellationToken::new(),
            move |(i, r): (usize, Range<u64>)| {
                let reader = reader.clone();
                async move {
                    tokio::time::sleep(std::time::Duration::from_millis(10 - i as u64)).await;
                    reader.read_exact("f.bin", vec![r]).await
                }
            },
            // Two items per chunk.
            |chunk: Vec<Bytes>| {
                let c = &chunk[0];
                [Ok(c.slice(..400)), Ok(c.slice(400..))]
            },
        )
        .try_collect()
        .await
        .unwrap();
        assert_eq!(items.len(), 20);
        assert_eq!(items.concat(), data);
    }

    #[tokio::test]
    async fn read_exact_names_the_file_and_offset_of_a_short_read() {
        let (_dir, data, reader) = local_file(10_000);
        let got = reader
            .read_exact("f.bin", vec![0..10, 5000..5100, 9990..10_000])
            .await
            .unwrap();
        assert_eq!(&got[1][..], &data[5000..5100]);
        assert_eq!(&got[2][..], &data[9990..]);
        let err = reader
            .read_exact("f.bin", vec![0..10, 9990..11_000])
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "invalid data at f.bin at byte 9990: expected 1010 bytes but read 10 (did the file change while it was read?)"
        );
        // Through read_ahead, the error takes the chunk's place and ends nothing else early.
        let results: Vec<Result<Bytes>> = read_ahead(
            [0..1000u64, 9500..10_500, 2000..3000],
            CancellationToken::new(),
            move |r| {
                let reader = reader.clone();
                async move { reader.read_exact("f.bin", vec![r]).await }
            },
            |chunk: Vec<Bytes>| chunk.into_iter().map(Ok),
        )
        .collect()
        .await;
        assert_eq!(&results[0].as_ref().unwrap()[..], &data[..1000]);
        let err = results[1].as_ref().unwrap_err().to_string();
        assert!(
            err.starts_with("invalid data at f.bin at byte 9500: expected 1000 bytes but read 500"),
            "{err}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_stream_stops_the_reads() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let started = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicUsize::new(0));
        let (s, f) = (Arc::clone(&started), Arc::clone(&finished));
        let mut stream = Box::pin(read_ahead(
            0..1000u64,
            CancellationToken::new(),
            move |i| {
                let (s, f) = (Arc::clone(&s), Arc::clone(&f));
                async move {
                    s.fetch_add(1, Ordering::SeqCst);
                    if i > 0 {
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                    f.fetch_add(1, Ordering::SeqCst);
                    Ok(i)
                }
            },
            |i| [Ok(i)],
        ));
        assert_eq!(stream.next().await.unwrap().unwrap(), 0);
        drop(stream);
        tokio::time::sleep(std::time::Duration::from_secs(10)).await;
        // Only the plans already taken were started, and none of them ran on after the drop.
        let n = started.load(Ordering::SeqCst);
        assert!(n <= READS_IN_FLIGHT + 1, "{n} reads started");
        assert_eq!(finished.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn no_read_starts_after_cancel() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        let results: Vec<Result<u32>> = read_ahead(
            [1u32, 2],
            cancel,
            |i| async move { panic!("read {i} started after cancel") },
            |i| [Ok(i)],
        )
        .collect()
        .await;
        assert_eq!(results.len(), 2);
        assert!(results.iter().all(|r| matches!(r, Err(Error::Cancelled))));
    }
}
