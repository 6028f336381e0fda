//! [`ReadAt`]: positioned, synchronous reads from a file, a buffer or anything else.

use std::sync::Arc;

/// A random-access byte source of known size.
///
/// Implementations MUST either fill `buf` completely or return an error; reading past
/// [`ReadAt::size`] is an error of kind [`std::io::ErrorKind::UnexpectedEof`].
pub trait ReadAt: Send + Sync {
    /// Total size in bytes.
    fn size(&self) -> u64;

    /// Reads exactly `buf.len()` bytes starting at `offset`.
    ///
    /// # Errors
    /// When the range extends past [`ReadAt::size`] or the underlying read fails.
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
}

fn eof(offset: u64, len: usize, size: u64) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        format!("read of {len} bytes at offset {offset} goes past the end ({size} bytes)"),
    )
}

fn slice_read(data: &[u8], offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
    let size = data.len() as u64;
    let start = usize::try_from(offset).map_err(|_| eof(offset, buf.len(), size))?;
    let end = start
        .checked_add(buf.len())
        .filter(|&e| e <= data.len())
        .ok_or_else(|| eof(offset, buf.len(), size))?;
    buf.copy_from_slice(&data[start..end]);
    Ok(())
}

impl ReadAt for [u8] {
    fn size(&self) -> u64 {
        self.len() as u64
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        slice_read(self, offset, buf)
    }
}

impl ReadAt for Vec<u8> {
    fn size(&self) -> u64 {
        self.len() as u64
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        slice_read(self, offset, buf)
    }
}

impl ReadAt for bytes::Bytes {
    fn size(&self) -> u64 {
        self.len() as u64
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        slice_read(self, offset, buf)
    }
}

/// Positioned reads on a local file (`pread`; no shared cursor, so one `File` can serve many
/// threads). [`ReadAt::size`] is the length when called; it is 0 if the metadata cannot be read,
/// which makes any parse fail with a "file ends at byte 0" error.
impl ReadAt for std::fs::File {
    fn size(&self) -> u64 {
        self.metadata().map(|m| m.len()).unwrap_or(0)
    }

    #[cfg(unix)]
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }

    #[cfg(windows)]
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let mut done = 0usize;
        while done < buf.len() {
            let n = std::os::windows::fs::FileExt::seek_read(
                self,
                &mut buf[done..],
                offset + done as u64,
            )?;
            if n == 0 {
                return Err(eof(offset, buf.len(), self.size()));
            }
            done += n;
        }
        Ok(())
    }
}

impl<T: ReadAt + ?Sized> ReadAt for &T {
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        (**self).read_exact_at(offset, buf)
    }
}

impl<T: ReadAt + ?Sized> ReadAt for Box<T> {
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        (**self).read_exact_at(offset, buf)
    }
}

impl<T: ReadAt + ?Sized> ReadAt for Arc<T> {
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        (**self).read_exact_at(offset, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_read_exactly_or_fail() {
        let data = vec![1u8, 2, 3, 4, 5];
        let mut b = [0u8; 2];
        data.read_exact_at(3, &mut b).unwrap();
        assert_eq!(b, [4, 5]);
        assert_eq!(
            data.read_exact_at(4, &mut b).unwrap_err().to_string(),
            "read of 2 bytes at offset 4 goes past the end (5 bytes)"
        );
        assert_eq!(
            data.read_exact_at(u64::MAX, &mut b)
                .unwrap_err()
                .to_string(),
            "read of 2 bytes at offset 18446744073709551615 goes past the end (5 bytes)"
        );
        let bytes = bytes::Bytes::from(data);
        bytes.read_exact_at(0, &mut b).unwrap();
        assert_eq!(b, [1, 2]);
        assert_eq!(ReadAt::size(&bytes), 5);
    }
}
