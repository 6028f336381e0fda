//! Reading byte ranges of one file — local, or an object in a store — as [`Bytes`].
//!
//! Sources that stream a large file (Faiss inverted lists, Milvus 1.x `.rv`/`.uid` segments)
//! read it as ranges of a few MiB and hand the bytes to Arrow without copying them again. The
//! main design decision is how local ranges are read: into buffers taken from a process-wide
//! pool ([`BufferPool`]) and filled by `read(2)` without being zeroed first. A buffer returns to
//! the pool when the last Arrow array (or [`Bytes`]) using it is dropped, so a steady stream
//! reuses the same few buffers instead of asking the kernel for fresh pages — zeroing and
//! faulting in a new page costs as much as reading it. Object-store ranges are ranged GETs.

use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::error::{Error, Result};
use crate::store::StoreLocation;

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
}
