//! A staging file whose data is written back to disk while it is still being written.
//!
//! A staging file is `fsync`ed when it is finished, so that a unit the sink records is on disk.
//! Left alone, the kernel keeps a freshly written file in dirty pages (it starts writing back
//! only past a share of memory), so that final `fsync` waits for the whole file — for a 1 GiB
//! file a third of the time it took to write it. [`StagingFile`] instead asks a thread of its
//! own to `fdatasync` every [`StagingFile::SYNC_EVERY`] bytes: the disk works while the
//! writer keeps encoding, and the final `fsync` waits only for the tail.

use std::fs::File;
use std::io::{self, Write};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::thread::JoinHandle;

/// A file opened for writing, synced in the background as it grows (see the module docs).
#[derive(Debug)]
pub struct StagingFile {
    file: File,
    written: u64,
    next_sync: u64,
    syncer: Option<Syncer>,
}

/// The thread that syncs, and the way to wake it.
#[derive(Debug)]
struct Syncer {
    wake: SyncSender<()>,
    thread: JoinHandle<io::Result<()>>,
}

impl StagingFile {
    /// Bytes written between two background syncs.
    pub const SYNC_EVERY: u64 = 64 << 20;

    /// Wraps `file`; with `background_sync`, starts the syncing thread on a second handle.
    ///
    /// # Errors
    /// When the handle cannot be duplicated or the thread cannot start.
    pub fn new(file: File, background_sync: bool) -> io::Result<StagingFile> {
        let syncer = if background_sync {
            let handle = file.try_clone()?;
            // One pending request at most: a request made while a sync runs is merged into
            // the next one.
            let (wake, requests) = mpsc::sync_channel::<()>(1);
            let thread = std::thread::Builder::new()
                .name("vmig-sync".into())
                .spawn(move || {
                    while requests.recv().is_ok() {
                        handle.sync_data()?;
                    }
                    Ok(())
                })?;
            Some(Syncer { wake, thread })
        } else {
            None
        };
        Ok(StagingFile {
            file,
            written: 0,
            next_sync: Self::SYNC_EVERY,
            syncer,
        })
    }

    /// Stops the syncing thread, then (with `sync`) flushes everything to disk with `fsync`,
    /// and returns the file.
    ///
    /// # Errors
    /// The first error of a background sync, or of the final one. A background error is
    /// returned here because the kernel reports a write-back error to one sync only.
    pub fn finish(mut self, sync: bool) -> io::Result<File> {
        if let Some(syncer) = self.syncer.take() {
            drop(syncer.wake);
            syncer
                .thread
                .join()
                .map_err(|_| io::Error::other("the background sync thread panicked"))??;
        }
        if sync {
            self.file.sync_all()?;
        }
        Ok(self.file)
    }

    fn wrote(&mut self, n: usize) {
        self.written += n as u64;
        if self.written < self.next_sync {
            return;
        }
        self.next_sync = self.written + Self::SYNC_EVERY;
        if let Some(syncer) = &self.syncer {
            match syncer.wake.try_send(()) {
                // A request is already pending, or the thread stopped on an error that
                // `finish` reports.
                Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
            }
        }
    }
}

impl Write for StagingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.wrote(n);
        Ok(n)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let n = self.file.write_vectored(bufs)?;
        self.wrote(n);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_pass_through_and_finish_returns_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        for background in [false, true] {
            let mut f = StagingFile::new(File::create(&path).unwrap(), background).unwrap();
            let chunk = vec![7u8; 1 << 20];
            // Crosses SYNC_EVERY, so the thread syncs at least once.
            for _ in 0..(StagingFile::SYNC_EVERY >> 20) + 3 {
                f.write_all(&chunk).unwrap();
            }
            let file = f.finish(true).unwrap();
            assert_eq!(
                file.metadata().unwrap().len(),
                StagingFile::SYNC_EVERY + (3 << 20)
            );
        }
    }
}
