//! Header reads of an index in an object store (body reads use [`vmig_core::ranges`]).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use object_store::path::Path;
use object_store::{GetOptions, ObjectStore};
use vmig_core::Result;
use vmig_formats::faiss::ReadAt;

/// The size of an object (a HEAD request).
pub(crate) async fn object_size(store: &Arc<dyn ObjectStore>, path: &Path) -> Result<u64> {
    let meta = store
        .get_opts(path, GetOptions::new().with_head(true))
        .await?
        .meta;
    Ok(meta.size)
}

/// Bytes fetched per request while parsing headers; small enough to be cheap, large enough that
/// a header plus the next small array come in one request.
const READ_AHEAD: u64 = 256 * 1024;

/// A synchronous [`ReadAt`] over an object store, for the header parser running on a blocking
/// thread: each miss fetches at least [`READ_AHEAD`] bytes with one ranged GET (driven by
/// `Handle::block_on`) and keeps them for the next reads.
#[derive(Debug)]
pub(crate) struct StoreReadAt {
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: u64,
    handle: tokio::runtime::Handle,
    cache: Mutex<Option<(u64, Bytes)>>,
}

impl StoreReadAt {
    pub(crate) fn new(
        store: Arc<dyn ObjectStore>,
        path: Path,
        size: u64,
        handle: tokio::runtime::Handle,
    ) -> Self {
        StoreReadAt {
            store,
            path,
            size,
            handle,
            cache: Mutex::new(None),
        }
    }
}

impl ReadAt for StoreReadAt {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let len = buf.len() as u64;
        let end = offset
            .checked_add(len)
            .filter(|&e| e <= self.size)
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!(
                        "read of {len} bytes at {offset} is past the end ({} bytes)",
                        self.size
                    ),
                )
            })?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((start, data)) = cache.as_ref() {
            if offset >= *start && end <= start + data.len() as u64 {
                let from = (offset - start) as usize;
                buf.copy_from_slice(&data[from..from + buf.len()]);
                return Ok(());
            }
        }
        let fetch_end = end.max(offset.saturating_add(READ_AHEAD)).min(self.size);
        let range = offset..fetch_end;
        let data = self
            .handle
            .block_on(async {
                self.store
                    .get_opts(
                        &self.path,
                        GetOptions::new().with_range(Some(range.clone())),
                    )
                    .await?
                    .bytes()
                    .await
            })
            .map_err(std::io::Error::other)?;
        if (data.len() as u64) < len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "the store returned {} bytes for range {range:?}",
                    data.len()
                ),
            ));
        }
        buf.copy_from_slice(&data[..buf.len()]);
        *cache = Some((offset, data));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use object_store::ObjectStoreExt;

    #[test]
    fn store_reads_are_cached_and_bounded() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let path = Path::from("a/b.faiss");
        let data: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        rt.block_on(store.put(&path, data.clone().into())).unwrap();
        let r = StoreReadAt::new(store, path, 1000, rt.handle().clone());
        let out = rt
            .block_on(rt.spawn_blocking(move || {
                let mut a = [0u8; 4];
                r.read_exact_at(10, &mut a).unwrap();
                let mut b = [0u8; 4];
                r.read_exact_at(996, &mut b).unwrap();
                assert_eq!(
                    r.read_exact_at(998, &mut b).unwrap_err().to_string(),
                    "read of 4 bytes at 998 is past the end (1000 bytes)"
                );
                (a, b)
            }))
            .unwrap();
        assert_eq!(out.0, [10, 11, 12, 13]);
        assert_eq!(out.1, [(996 % 256) as u8, 229, 230, 231]);
    }
}
