//! A bounds-checked reading cursor over a [`ReadAt`], with a small read-ahead buffer.

use vmig_core::{Error, Result};

use super::{ReadAt, MAX_VEC_LEN};

/// Bytes fetched per refill of the header buffer (headers are tiny; one refill usually covers
/// every header between two skipped bodies).
const WINDOW: usize = 16 * 1024;

/// Reads little-endian fields sequentially; every failure names the byte offset and what was
/// expected there.
pub(crate) struct Cursor<'a> {
    r: &'a dyn ReadAt,
    name: &'a str,
    size: u64,
    pos: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(r: &'a dyn ReadAt, name: &'a str) -> Self {
        Cursor {
            size: r.size(),
            r,
            name,
            pos: 0,
            buf: Vec::new(),
            buf_start: 0,
        }
    }

    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// `"<name> at byte <offset>"`.
    pub(crate) fn location(&self, offset: u64) -> String {
        format!("{} at byte {offset}", self.name)
    }

    /// A data error at `offset`.
    pub(crate) fn data_err(&self, offset: u64, message: impl Into<String>) -> Error {
        Error::data(self.location(offset), message)
    }

    /// An unsupported-input error at `offset`.
    pub(crate) fn unsupported(&self, offset: u64, message: impl Into<String>) -> Error {
        Error::unsupported(self.location(offset), message)
    }

    fn truncated(&self, what: &str, len: u64) -> Error {
        self.data_err(
            self.pos,
            format!(
                "expected {what} ({len} bytes), file ends at byte {}",
                self.size
            ),
        )
    }

    /// Ensures `len` more bytes exist from the current position.
    pub(crate) fn require(&self, len: u64, what: &str) -> Result<()> {
        match self.pos.checked_add(len) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(self.truncated(what, len)),
        }
    }

    /// Returns the next `len` bytes (small reads only) and advances.
    pub(crate) fn bytes(&mut self, len: usize, what: &str) -> Result<&[u8]> {
        self.require(len as u64, what)?;
        let start = self.pos;
        let in_buf =
            start >= self.buf_start && start + len as u64 <= self.buf_start + self.buf.len() as u64;
        if !in_buf {
            let want = (self.size - start).min(WINDOW.max(len) as u64) as usize;
            self.buf.resize(want, 0);
            self.r.read_exact_at(start, &mut self.buf).map_err(|e| {
                Error::from(e).context(format!("reading {} at byte {start}", self.name))
            })?;
            self.buf_start = start;
        }
        let from = (start - self.buf_start) as usize;
        self.pos = start + len as u64;
        Ok(&self.buf[from..from + len])
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let b = self.bytes(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(crate) fn i32(&mut self, what: &str) -> Result<i32> {
        Ok(i32::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn f32(&mut self, what: &str) -> Result<f32> {
        Ok(f32::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn i64(&mut self, what: &str) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn fourcc(&mut self, what: &str) -> Result<[u8; 4]> {
        self.array(what)
    }

    /// Looks at the next fourcc without consuming it.
    pub(crate) fn peek_fourcc(&mut self, what: &str) -> Result<[u8; 4]> {
        let at = self.pos;
        let f = self.fourcc(what)?;
        self.pos = at;
        Ok(f)
    }

    /// Bytes left in the file after the current position.
    pub(crate) fn remaining(&self) -> u64 {
        self.size.saturating_sub(self.pos)
    }

    /// Checks, before anything is read or allocated for them, that `count` items of at least
    /// `unit` bytes each (`unit_what` says what one item is) fit in the rest of the file.
    /// `field` is the header field that claimed `count` and `at` its byte offset; the error
    /// names both, the value and the largest count that would fit.
    pub(crate) fn check_fits(
        &self,
        at: u64,
        field: &str,
        count: u64,
        unit: u64,
        unit_what: &str,
    ) -> Result<()> {
        let left = self.remaining();
        let unit = unit.max(1);
        if count.checked_mul(unit).is_some_and(|need| need <= left) {
            return Ok(());
        }
        Err(self.data_err(
            at,
            format!(
                "{field} = {count} cannot be right: each needs at least {unit} bytes \
                 ({unit_what}), so at most {} fit in the {left} bytes left after byte {} \
                 (the file ends at byte {}); the file is corrupted or truncated",
                left / unit,
                self.pos,
                self.size
            ),
        ))
    }

    /// Skips `len` bytes that must exist.
    pub(crate) fn skip(&mut self, len: u64, what: &str) -> Result<()> {
        self.require(len, what)?;
        self.pos += len;
        Ok(())
    }

    /// Reads the `u64` element count of a `vec<T>` and checks Faiss's bound and that the
    /// elements fit in the file. Returns `(count, offset of the first element)`; the cursor
    /// stays at the first element.
    pub(crate) fn vec_header(&mut self, elem_size: u64, what: &str) -> Result<(u64, u64)> {
        let at = self.pos;
        let n = self.u64(&format!("8-byte element count of {what}"))?;
        if n >= MAX_VEC_LEN {
            return Err(self.data_err(
                at,
                format!(
                    "{what} claims {n} elements, over Faiss's limit of 2^40: the file is corrupted"
                ),
            ));
        }
        let bytes = n * elem_size; // n < 2^40, elem_size ≤ 16: no overflow
        if self.pos.checked_add(bytes).is_none_or(|e| e > self.size) {
            return Err(self.data_err(
                self.pos,
                format!(
                    "expected {what}: {n} elements of {elem_size} bytes ({bytes} bytes), file ends at byte {}",
                    self.size
                ),
            ));
        }
        Ok((n, self.pos))
    }

    /// Skips a whole `vec<T>`; returns `(count, offset of the first element)`.
    pub(crate) fn skip_vec(&mut self, elem_size: u64, what: &str) -> Result<(u64, u64)> {
        let (n, at) = self.vec_header(elem_size, what)?;
        self.pos += n * elem_size;
        Ok((n, at))
    }

    /// Reads `buf.len()` bytes at `offset`, leaving the cursor where it is.
    pub(crate) fn read_at(&self, offset: u64, buf: &mut [u8], what: &str) -> Result<()> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > self.size) {
            return Err(self.data_err(
                offset,
                format!(
                    "expected {what} ({} bytes), file ends at byte {}",
                    buf.len(),
                    self.size
                ),
            ));
        }
        self.r
            .read_exact_at(offset, buf)
            .map_err(|e| Error::from(e).context(format!("reading {} at byte {offset}", self.name)))
    }

    /// Calls `each(k, value)` for the `n` little-endian `i64`s at `offset`, read in 64 KiB pieces
    /// without moving the cursor.
    pub(crate) fn each_i64_at(
        &self,
        offset: u64,
        n: u64,
        what: &str,
        mut each: impl FnMut(u64, i64) -> Result<()>,
    ) -> Result<()> {
        const PIECE: u64 = 8192;
        let mut buf = vec![0u8; (n.min(PIECE) * 8) as usize];
        let mut done = 0u64;
        while done < n {
            let take = (n - done).min(PIECE);
            let bytes = &mut buf[..(take * 8) as usize];
            self.read_at(offset.saturating_add(done * 8), bytes, what)?;
            for (k, c) in bytes.chunks_exact(8).enumerate() {
                let mut v = [0u8; 8];
                v.copy_from_slice(c);
                each(done + k as u64, i64::from_le_bytes(v))?;
            }
            done += take;
        }
        Ok(())
    }

    /// Reads `n` little-endian `u64`s (the caller has checked that they fit in the file).
    pub(crate) fn u64s(&mut self, n: u64, what: &str) -> Result<Vec<u64>> {
        self.require(n.saturating_mul(8), what)?;
        let mut out = Vec::with_capacity(usize::try_from(n.min(1 << 20)).unwrap_or(0));
        for _ in 0..n {
            out.push(self.u64(what)?);
        }
        Ok(out)
    }
}
