//! What "exact" means for Chroma: for each space, how many embedding values `get` returns with
//! other float32 bits than were inserted (printed; the README quotes the figures), and that the
//! source copies exactly what `get` returns, before and after Chroma's background work on the
//! collection (immediately after the inserts, and again after a pause and a second read).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

async fn measure(url: &str, name: &str, id: &str, inserted: &[Row], when: &str) -> usize {
    let want = get_all(url, id, None).await;
    let src = connect(config(url, name)).await;
    let got = batch_rows(&read_all(&src, 500).await);
    assert_rows_eq(&got, &want, &format!("{name} {when}: source vs get"));
    let mut by_get = want.clone();
    by_get.sort_by(|a, b| a.id.cmp(&b.id));
    let mut ins = inserted.to_vec();
    ins.sort_by(|a, b| a.id.cmp(&b.id));
    let (mut values, mut differ, mut rows, mut max_ulps) = (0usize, 0usize, 0usize, 0u32);
    for (g, w) in by_get.iter().zip(&ins) {
        assert_eq!(g.id, w.id);
        let mut row_differs = false;
        for (a, b) in g.embedding.iter().zip(&w.embedding) {
            values += 1;
            if a.to_bits() != b.to_bits() {
                differ += 1;
                row_differs = true;
                max_ulps = max_ulps.max(a.to_bits().abs_diff(b.to_bits()));
            }
        }
        rows += usize::from(row_differs);
    }
    eprintln!(
        "EXACTNESS {name} {when}: {differ} of {values} values ({rows} of {} rows) differ from the inserted bits, at most {max_ulps} ulp",
        ins.len()
    );
    differ
}

/// Set `VMIG_CHROMA_EXACT_REUSE=1` to measure collections a previous run filled (e.g. after a
/// server restart) instead of recreating them.
#[tokio::test]
async fn get_returns_the_inserted_bits_per_space() {
    let Some(url) = url() else { return };
    let reuse = std::env::var("VMIG_CHROMA_EXACT_REUSE").is_ok_and(|v| v == "1");
    // 50 rows stay in Chroma's log (below the HNSW `batch_size` of 100); 3000 rows are applied
    // to the HNSW segment (its files on disk grow to ~1 MB).
    for (n, tag) in [(50usize, "log"), (3000, "hnsw")] {
        let inserted = rows(n, 32, 17);
        for space in ["l2", "ip", "cosine"] {
            let name = format!("vmig_exact_{tag}_{space}");
            let id = if reuse {
                collection_id(&url, &name).await
            } else {
                let id = recreate(&url, &name, space).await;
                add(&url, &id, &inserted).await;
                id
            };
            let before = measure(&url, &name, &id, &inserted, "first read").await;
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            let after = measure(&url, &name, &id, &inserted, "2 s later").await;
            if space != "cosine" {
                assert_eq!(
                    (before, after),
                    (0, 0),
                    "{space}: l2 and ip keep the inserted bits"
                );
            }
        }
    }
}
