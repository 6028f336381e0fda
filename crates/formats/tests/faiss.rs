//! `vmig_formats::faiss` against real files written by faiss-cpu 1.15.1.
//!
//! The fixtures and the expected rows next to them come from `tests/data/faiss/generate.py`
//! (see its header); `manifest.json` says what faiss reports about each file.
#![allow(clippy::unwrap_used)] // test helpers may panic on broken fixtures

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use arrow::array::{Array, FixedSizeBinaryArray, FixedSizeListArray, Float32Array};
use serde_json::Value;
use vmig_core::Error;
use vmig_formats::faiss::{
    first_non_finite, parse_layout, read_rows, BlockIds, FaissLayout, Metric, ReadAt, VectorKind,
};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/faiss")
}

fn manifest() -> Vec<Value> {
    let text = std::fs::read_to_string(dir().join("manifest.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["fixtures"].as_array().unwrap().clone()
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(format!("{name}.faiss"))).unwrap()
}

fn supported() -> Vec<Value> {
    manifest()
        .into_iter()
        .filter(|f| f["supported"].as_bool().unwrap())
        .collect()
}

fn refused() -> Vec<Value> {
    manifest()
        .into_iter()
        .filter(|f| !f["supported"].as_bool().unwrap())
        .collect()
}

fn parse(name: &str) -> FaissLayout {
    parse_layout(&fixture(name), name).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Every id and the raw bytes of every vector, block by block, via `read_rows`.
fn decode_all(r: &dyn ReadAt, layout: &FaissLayout) -> (Vec<i64>, Vec<u8>) {
    let mut ids = Vec::new();
    let mut vecs = Vec::new();
    for (i, b) in layout.blocks.iter().enumerate() {
        // Two reads per block, split unevenly, to exercise offsets inside blocks.
        let mid = b.rows / 3;
        for range in [0..mid, mid..b.rows] {
            let rows = read_rows(r, layout, i, range.clone()).unwrap();
            assert_eq!(rows.ids.len() as u64, range.end - range.start);
            assert_eq!(rows.vectors.len() as u64, range.end - range.start);
            ids.extend_from_slice(rows.ids.values());
            match layout.vectors {
                VectorKind::Float32 => {
                    let l = rows
                        .vectors
                        .as_any()
                        .downcast_ref::<FixedSizeListArray>()
                        .unwrap();
                    assert_eq!(l.value_length() as usize, layout.dim);
                    let v = l.values().as_any().downcast_ref::<Float32Array>().unwrap();
                    let v = &v.values()[l.offset() * layout.dim..][..l.len() * layout.dim];
                    for x in v {
                        vecs.extend_from_slice(&x.to_bits().to_le_bytes());
                    }
                }
                VectorKind::Binary => {
                    let b = rows
                        .vectors
                        .as_any()
                        .downcast_ref::<FixedSizeBinaryArray>()
                        .unwrap();
                    assert_eq!(b.value_length() as usize, layout.dim / 8);
                    for row in b.iter() {
                        vecs.extend_from_slice(row.unwrap());
                    }
                }
            }
        }
    }
    (ids, vecs)
}

fn expected(name: &str) -> (Vec<i64>, Vec<u8>) {
    let ids = std::fs::read(dir().join(format!("{name}.ids.i64"))).unwrap();
    let ids = ids
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let vecs = std::fs::read(dir().join(format!("{name}.vecs.bin"))).unwrap();
    (ids, vecs)
}

#[test]
fn every_supported_fixture_has_the_right_layout_and_rows() {
    let all = supported();
    assert!(
        all.len() >= 20,
        "manifest lists {} supported fixtures",
        all.len()
    );
    for f in all {
        let name = f["name"].as_str().unwrap();
        let bytes = fixture(name);
        let layout = parse_layout(&bytes, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(layout.fourcc, f["fourcc"].as_str().unwrap(), "{name}");
        assert_eq!(layout.dim as u64, f["d"].as_u64().unwrap(), "{name}");
        assert_eq!(layout.ntotal, f["ntotal"].as_u64().unwrap(), "{name}");
        assert_eq!(layout.file_size, f["bytes"].as_u64().unwrap(), "{name}");
        assert_eq!(layout.file_size, bytes.len() as u64, "{name}");
        let binary = f["binary"].as_bool().unwrap();
        let metric_type = f["metric_type"].as_i64().unwrap() as i32;
        let want_metric = if binary {
            Metric::Hamming
        } else {
            Metric::from_code(metric_type, Some(f["metric_arg"].as_f64().unwrap() as f32))
        };
        assert_eq!(layout.metric, want_metric, "{name}");
        assert_eq!(
            layout.vectors,
            if binary {
                VectorKind::Binary
            } else {
                VectorKind::Float32
            },
            "{name}"
        );
        assert_eq!(
            layout.row_bytes,
            if binary {
                layout.dim / 8
            } else {
                layout.dim * 4
            },
            "{name}"
        );
        assert_eq!(layout.nlist, f["nlist"].as_u64(), "{name}");
        let rows: u64 = layout.blocks.iter().map(|b| b.rows).sum();
        assert_eq!(rows, layout.ntotal, "{name}");
        assert!(layout.blocks.iter().all(|b| b.rows > 0), "{name}");
        if let Some(sizes) = f["list_sizes"].as_array() {
            let want: Vec<(u64, u64)> = sizes
                .iter()
                .enumerate()
                .filter(|(_, s)| s.as_u64().unwrap() > 0)
                .map(|(i, s)| (i as u64, s.as_u64().unwrap()))
                .collect();
            let got: Vec<(u64, u64)> = layout
                .blocks
                .iter()
                .map(|b| (b.list_no.unwrap(), b.rows))
                .collect();
            assert_eq!(got, want, "{name}");
        }

        let (ids, vecs) = decode_all(&bytes, &layout);
        let (want_ids, want_vecs) = expected(name);
        assert_eq!(ids.len(), f["rows"].as_u64().unwrap() as usize, "{name}");
        assert_eq!(ids, want_ids, "{name}: ids differ");
        assert!(vecs == want_vecs, "{name}: vector bytes differ");

        // The same through a real file handle.
        let file = std::fs::File::open(dir().join(format!("{name}.faiss"))).unwrap();
        let from_file = parse_layout(&file, name).unwrap();
        assert_eq!(from_file, layout, "{name}");
        assert_eq!(decode_all(&file, &from_file).0, want_ids, "{name}");
    }
}

#[test]
fn sizes_and_offsets_match_the_reference_table() {
    // formats.md A.11 (d = 8, n = 1000).
    for (name, size) in [
        ("flat_l2", 32_045),
        ("idmap_flat", 40_090),
        ("idmap2_flat", 40_090),
        ("ivf_full", 40_299),
        ("ivfpq", 18_532),
        ("pq", 10_278),
        ("hnsw_flat", 176_090),
        ("sq8", 8_145),
        ("binary_flat", 4_033),
        ("binary_idmap", 12_066),
    ] {
        assert_eq!(fixture(name).len(), size, "{name}");
    }
    let l = parse("flat_l2");
    assert_eq!(l.description, "IndexFlatL2");
    assert_eq!(l.blocks.len(), 1);
    assert_eq!(l.blocks[0].codes_offset, 4 + 33 + 8);
    assert_eq!(l.blocks[0].ids, BlockIds::Implicit { first: 0 });

    let l = parse("idmap2_flat");
    assert_eq!(l.description, "IndexIDMap2 over IndexFlatL2");
    assert_eq!(l.blocks[0].codes_offset, 4 + 33 + 4 + 33 + 8);
    assert_eq!(
        l.blocks[0].ids,
        BlockIds::Stored {
            offset: 4 + 33 + 32_045 + 8
        }
    );

    let l = parse("ivf_full");
    assert_eq!(
        l.description,
        "IndexIVFFlat (nlist 4, quantizer IndexFlatL2)"
    );
    assert_eq!(l.blocks.len(), 4);
    let header = 4 + 33 + 8 + 8 + (4 + 33 + 8 + 4 * 32) + 9 + (4 + 8 + 8 + 4 + 8 + 4 * 8);
    assert_eq!(l.blocks[0].codes_offset, header);
    let mut at = header;
    for b in &l.blocks {
        assert_eq!(b.codes_offset, at);
        assert_eq!(
            b.ids,
            BlockIds::Stored {
                offset: at + b.rows * 32
            }
        );
        at += b.rows * 40;
    }
    assert_eq!(at, 40_299);

    let l = parse("hnsw_flat");
    assert_eq!(l.description, "IndexHNSWFlat (storage IndexFlatL2)");
    assert_eq!(l.blocks[0].codes_offset, 176_090 - 32_000);

    let l = parse("binary_flat");
    assert_eq!((l.dim, l.row_bytes), (32, 4));
    assert_eq!(l.blocks[0].codes_offset, 4 + 21 + 8);
    let l = parse("binary_idmap");
    assert_eq!(l.description, "IndexBinaryIDMap over IndexBinaryFlat");
    assert_eq!(
        l.blocks[0].ids,
        BlockIds::Stored {
            offset: 4 + 21 + 4_033 + 8
        }
    );

    let l = parse("flat_l1");
    assert_eq!(l.metric, Metric::Other { code: 2, arg: 0.0 });
    assert_eq!(l.metric.milvus_name(), None);
    assert_eq!(l.blocks[0].codes_offset, 4 + 37 + 8);
    let l = parse("flat_lp3");
    assert_eq!(l.metric, Metric::Other { code: 4, arg: 3.0 });
    assert_eq!(l.metric.faiss_name(), "METRIC_Lp");
    assert_eq!(parse("flat_ip").metric.milvus_name(), Some("IP"));
    assert_eq!(parse("flat_l2").metric.milvus_name(), Some("L2"));
    assert_eq!(parse("binary_idmap2").metric.milvus_name(), Some("HAMMING"));

    let l = parse("ivf_sprs");
    assert_eq!(l.nlist, Some(64));
    assert_eq!(l.blocks.len(), 5);
    assert!(parse("flat_empty").blocks.is_empty());
    assert!(parse("ivf_empty").blocks.is_empty());
    assert!(parse("idmap_empty").blocks.is_empty());
    for (name, q) in [
        ("ivf_hnsw_quantizer", "IndexHNSWFlat"),
        ("ivf_pq_quantizer", "IndexPQ"),
        ("ivf_rcq_quantizer", "ResidualCoarseQuantizer"),
        ("ivf_imi_quantizer", "MultiIndexQuantizer"),
    ] {
        assert!(parse(name).description.contains(q), "{name}");
    }
}

#[test]
fn non_finite_values_are_found_where_faiss_stored_them() {
    let bytes = fixture("idmap_nan");
    let layout = parse_layout(&bytes, "idmap_nan").unwrap();
    let rows = read_rows(&bytes, &layout, 0, 0..layout.ntotal).unwrap();
    let l = rows
        .vectors
        .as_any()
        .downcast_ref::<FixedSizeListArray>()
        .unwrap();
    let v = l.values().as_any().downcast_ref::<Float32Array>().unwrap();
    assert_eq!(first_non_finite(v.values(), 8), Some((5, 3)));
    assert_eq!(first_non_finite(&v.values()[6 * 8..], 8), Some((11, 0)));
    assert_eq!(rows.ids.value(5), 1015);
}

fn unsupported_message(name: &str) -> String {
    match parse_layout(&fixture(name), name) {
        Err(e @ Error::Unsupported { .. }) => e.to_string(),
        Err(e) => panic!("{name}: expected Unsupported, got {e:?}"),
        Ok(l) => panic!("{name}: parsed as {}", l.description),
    }
}

#[test]
fn refused_types_say_what_and_why() {
    let all = refused();
    assert!(all.len() >= 9);
    for f in &all {
        let name = f["name"].as_str().unwrap();
        let msg = unsupported_message(name);
        assert!(msg.contains(name), "{name}: location missing: {msg}");
        assert!(msg.contains("at byte "), "{name}: {msg}");
    }
    for (name, fourcc, class, why) in [
        ("ivfpq", "IwPQ", "IndexIVFPQ", "cannot be recovered"),
        ("pq", "IxPq", "IndexPQ", "product-quantised"),
        ("sq8", "IxSQ", "IndexScalarQuantizer", "scalar-quantised"),
        (
            "ivfsq8",
            "IwSq",
            "IndexIVFScalarQuantizer",
            "cannot be recovered",
        ),
        ("hnsw_sq8", "IHNs", "IndexHNSWSQ", "cannot be recovered"),
        ("pretransform", "IxPT", "IndexPreTransform", "transform"),
        (
            "hnsw_skip_storage",
            "IHNf",
            "IndexHNSWFlat",
            "IO_FLAG_SKIP_STORAGE",
        ),
        (
            "idmap_ivf",
            "IxMp",
            "IndexIDMap over IndexIVFFlat",
            "lookup table",
        ),
        ("binary_ivf", "IBwF", "IndexBinaryIVF", "not supported"),
    ] {
        let msg = unsupported_message(name);
        if name != "idmap_ivf" {
            assert!(msg.contains(&format!("`{fourcc}`")), "{name}: {msg}");
        }
        assert!(msg.contains(class), "{name}: {msg}");
        assert!(msg.contains(why), "{name}: {msg}");
    }
    assert!(unsupported_message("ivfpq").contains("at byte 0"));
    // The skipped storage is located where the `null` fourcc is.
    let bytes = fixture("hnsw_skip_storage");
    let msg = unsupported_message("hnsw_skip_storage");
    assert!(
        msg.contains(&format!("at byte {}", bytes.len() - 4)),
        "{msg}"
    );
}

#[test]
fn unknown_fourccs_are_named_with_their_offset() {
    let mut bytes = fixture("flat_l2");
    bytes[..4].copy_from_slice(b"Zq\x01\xff");
    let err = parse_layout(&bytes, "x.faiss").unwrap_err();
    assert!(matches!(err, Error::Data { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("x.faiss at byte 0"), "{msg}");
    assert!(msg.contains(r"`Zq\x01\xff`"), "{msg}");

    let mut bytes = fixture("idmap_flat");
    bytes[37..41].copy_from_slice(b"ABCD");
    let msg = parse_layout(&bytes, "y").unwrap_err().to_string();
    assert!(
        msg.contains("y at byte 37") && msg.contains("`ABCD`"),
        "{msg}"
    );

    // Inverted lists that are not in the file.
    let mut bytes = fixture("ivf_full");
    let at = bytes.windows(4).position(|w| w == b"ilar").unwrap();
    bytes[at..at + 4].copy_from_slice(b"il00");
    let err = parse_layout(&bytes, "z").unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&format!("z at byte {at}")),
        "{err}"
    );
    bytes[at..at + 4].copy_from_slice(b"ilod");
    let msg = parse_layout(&bytes, "z").unwrap_err().to_string();
    assert!(
        msg.contains("`ilod`") && msg.contains("OnDiskInvertedLists"),
        "{msg}"
    );

    let err = parse_layout(&Vec::<u8>::new(), "empty").unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
}

/// Offsets worth cutting or corrupting: every byte of small files and of the first and last
/// 600 bytes of large ones, plus a strided sample in between.
fn interesting_offsets(len: usize) -> Vec<usize> {
    let mut set: Vec<usize> = if len <= 3000 {
        (0..len).collect()
    } else {
        (0..600)
            .chain((600..len - 600).step_by(97))
            .chain(len - 600..len)
            .collect()
    };
    set.dedup();
    set
}

#[test]
fn truncation_anywhere_is_a_data_error_naming_the_offset() {
    for f in supported() {
        let name = f["name"].as_str().unwrap();
        let bytes = fixture(name);
        for cut in interesting_offsets(bytes.len()) {
            let err = match parse_layout(&&bytes[..cut], name) {
                Err(e) => e,
                Ok(_) => panic!("{name} truncated at {cut} parsed"),
            };
            let Error::Data { location, message } = &err else {
                panic!("{name} cut at {cut}: expected a data error, got {err:?}")
            };
            assert!(
                location.starts_with(&format!("{name} at byte ")),
                "{location}"
            );
            if cut > 0 {
                assert!(
                    message.contains(&format!("file ends at byte {cut}")),
                    "{name} cut at {cut}: {message}"
                );
            }
        }
    }
}

#[test]
fn trailing_bytes_are_an_error_at_the_end_of_the_index() {
    for f in supported() {
        let name = f["name"].as_str().unwrap();
        let mut bytes = fixture(name);
        let len = bytes.len();
        for extra in [1usize, 100] {
            bytes.resize(len + extra, 0);
            let err = parse_layout(&bytes, name).unwrap_err();
            let Error::Data { location, message } = &err else {
                panic!("{name}: {err:?}")
            };
            assert_eq!(location, &format!("{name} at byte {len}"));
            assert!(
                message.contains(&format!("{extra} more bytes")),
                "{message}"
            );
        }
    }
}

/// A tiny deterministic generator, so the corruption test needs no extra dependency.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

fn check_consistent(layout: &FaissLayout, bytes: &[u8]) {
    let size = bytes.len() as u64;
    assert_eq!(layout.file_size, size);
    let rows: u64 = layout.blocks.iter().map(|b| b.rows).sum();
    assert_eq!(rows, layout.ntotal);
    for (i, b) in layout.blocks.iter().enumerate() {
        let codes = b.codes_range(layout.row_bytes, 0..b.rows);
        assert!(codes.end <= size);
        if let Some(ids) = b.ids_range(0..b.rows) {
            assert!(ids.end <= size);
        }
        let n = b.rows.min(3);
        read_rows(&bytes, layout, i, 0..n).unwrap();
    }
}

#[test]
fn corrupted_bytes_never_panic() {
    let mut rng = Lcg(0x5eed);
    let mut parsed_ok = 0usize;
    let mut names = HashSet::new();
    for f in manifest() {
        let name = f["name"].as_str().unwrap().to_string();
        names.insert(name.clone());
        let orig = fixture(&name);
        for at in interesting_offsets(orig.len()) {
            for mode in 0..3 {
                let mut bytes = orig.clone();
                bytes[at] = match mode {
                    0 => bytes[at] ^ (1 << (rng.next() % 8)),
                    1 => 0xff,
                    _ => rng.next() as u8,
                };
                if let Ok(layout) = parse_layout(&bytes, &name) {
                    check_consistent(&layout, &bytes);
                    parsed_ok += 1;
                }
            }
        }
        // Multi-byte garbage over headers.
        for _ in 0..200 {
            let mut bytes = orig.clone();
            let at = (rng.next() as usize) % bytes.len().min(400);
            let end = (at + 8).min(bytes.len());
            for b in &mut bytes[at..end] {
                *b = rng.next() as u8;
            }
            if let Ok(layout) = parse_layout(&bytes, &name) {
                check_consistent(&layout, &bytes);
            }
        }
    }
    // Flipping bits inside vector bodies leaves a valid file.
    assert!(parsed_ok > 1000, "{parsed_ok}");
    assert!(names.len() > 25);
}

/// Regenerates the fixtures with the pinned faiss-cpu and checks they are byte-identical to the
/// committed ones (the generator is seeded and single-threaded).
#[test]
fn fixtures_are_reproducible_from_the_generator() {
    let python = match std::env::var("VMIG_PYTHON") {
        Ok(p) if !p.is_empty() => p,
        _ if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => {
            panic!("VMIG_PYTHON is not set but CI=true: run scripts/pyenv and export it")
        }
        _ => {
            eprintln!("SKIPPED: VMIG_PYTHON is not set, so the fixture regeneration test cannot run (see scripts/pyenv)");
            return;
        }
    };
    let out = std::env::temp_dir().join(format!("vmig-faiss-fixtures-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = std::process::Command::new(&python)
        .arg(dir().join("generate.py"))
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "generate.py failed: {}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    let mut committed: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "generate.py")
        .collect();
    committed.sort();
    let mut fresh: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    fresh.sort();
    assert_eq!(committed, fresh);
    for n in &committed {
        let a = std::fs::read(dir().join(n)).unwrap();
        let b = std::fs::read(out.join(n)).unwrap();
        assert!(a == b, "{n} differs from a fresh run of generate.py");
    }
    let _ = std::fs::remove_dir_all(&out);
}

/// A file of `size` bytes: `head` followed by zeros (a sparse file, as a crafted header can come
/// with). Counts the bytes read and refuses to read more than `budget`, so a parser that reads or
/// allocates in proportion to a size field fails instead of using gigabytes.
struct Padded {
    head: Vec<u8>,
    size: u64,
    budget: u64,
    read: std::sync::atomic::AtomicU64,
}

impl ReadAt for Padded {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        use std::sync::atomic::Ordering;
        let total = self.read.fetch_add(buf.len() as u64, Ordering::Relaxed) + buf.len() as u64;
        if total > self.budget || offset + buf.len() as u64 > self.size {
            return Err(std::io::Error::other(format!(
                "read budget exceeded: {total} bytes read"
            )));
        }
        for (i, b) in buf.iter_mut().enumerate() {
            *b = self
                .head
                .get(offset as usize + i)
                .copied()
                .unwrap_or_default();
        }
        Ok(())
    }
}

/// `ivf_full` (d 8, nlist 4, IndexFlatL2 quantizer, `full` lists): byte offsets of its fields.
const IVF_NTOTAL_AT: usize = 8;
const IVF_NLIST_AT: usize = 37;
const QUANTIZER_NTOTAL_AT: usize = 53 + 4 + 4;
const ILAR_NLIST_AT: usize = 239;

fn ivf_with_nlist(nlist: u64) -> Vec<u8> {
    let mut bytes = fixture("ivf_full");
    assert_eq!(&bytes[235..239], b"ilar");
    for at in [IVF_NLIST_AT, ILAR_NLIST_AT] {
        bytes[at..at + 8].copy_from_slice(&nlist.to_le_bytes());
    }
    bytes
}

/// Issue #11: `nlist` = 2^28 made `vmig plan` read 2^28 list sizes into a 2 GiB vector. Here the
/// file is long enough to hold them (zeros after the real bytes), so only the comparison with the
/// quantizer's 4 centroids can stop it — and it must, before the sizes are read.
#[test]
fn ivf_nlist_of_2_pow_28_is_refused_before_the_list_sizes_are_read() {
    let head = ivf_with_nlist(1 << 28);
    let padded = Padded {
        size: head.len() as u64 + (1u64 << 28) * 8,
        head,
        budget: 1 << 20,
        read: Default::default(),
    };
    let err = parse_layout(&padded, "big.faiss").unwrap_err();
    let Error::Data { location, message } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(location, "big.faiss at byte 37");
    assert_eq!(
        message,
        "the IVF header has nlist = 268435456 but its coarse quantizer (IndexFlatL2 at byte 53) \
         holds 4 centroids, one per list, so nlist must be 4; the file is corrupted"
    );
    let read = padded.read.load(std::sync::atomic::Ordering::Relaxed);
    assert!(read <= 64 * 1024, "{read} bytes read");
}

/// A quantizer claiming 2^28 centroids is bounded by the file's length before anything else.
#[test]
fn size_fields_are_checked_against_the_file_length_first() {
    let mut bytes = ivf_with_nlist(1 << 28);
    let at = QUANTIZER_NTOTAL_AT;
    bytes[at..at + 8].copy_from_slice(&(1u64 << 28).to_le_bytes());
    let err = parse_layout(&bytes, "q.faiss").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid data at q.faiss at byte 61: ntotal of the IndexFlatL2 header = 268435456 cannot be right: each \
         needs at least 32 bytes (a vector of d = 8 floats), so at most 1256 fit in the 40209 \
         bytes left after byte 90 (the file ends at byte 40299); the file is corrupted or \
         truncated"
    );

    let mut bytes = fixture("ivf_full");
    let at = IVF_NTOTAL_AT;
    bytes[at..at + 8].copy_from_slice(&(1i64 << 40).to_le_bytes());
    let err = parse_layout(&bytes, "n.faiss").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid data at n.faiss at byte 8: ntotal of the IndexIVFFlat header = 1099511627776 cannot be right: \
         each needs at least 40 bytes (a vector of d = 8 floats and its 8-byte id), so at most \
         1006 fit in the 40262 bytes left after byte 37 (the file ends at byte 40299); the file \
         is corrupted or truncated"
    );
}

/// `full` list sizes are read one by one against `ntotal`: a size past it stops the read there.
#[test]
fn a_list_size_past_ntotal_is_named() {
    let mut bytes = fixture("ivf_full");
    let at = 267 + 8; // sizes[1]
    bytes[at..at + 8].copy_from_slice(&(1u64 << 50).to_le_bytes());
    let err = parse_layout(&bytes, "l.faiss").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid data at l.faiss at byte 275: inverted list 1 has size 1125899906842624, which takes the lists \
         past ntotal = 1000 entries"
    );
}
