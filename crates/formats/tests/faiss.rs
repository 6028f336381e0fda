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
        all.len() >= 34,
        "manifest lists {} supported fixtures",
        all.len()
    );
    // Every type vmig reads has a fixture.
    let fourccs: HashSet<&str> = all.iter().map(|f| f["fourcc"].as_str().unwrap()).collect();
    for want in [
        "IxF2", "IxFI", "IxFl", "IxMp", "IxM2", "IwFl", "IvFl", "IvFL", "IwFd", "IHNf", "IxRF",
        "IBxF", "IBMp", "IBM2", "IBwF", "IBHf",
    ] {
        assert!(fourccs.contains(want), "no fixture for {want}");
    }
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
                .filter_map(|b| Some((b.list_no?, b.rows)))
                .collect();
            assert_eq!(got, want, "{name}");
        }
        // IndexIVFFlatDedup: one 1-row block per duplicate, after the lists.
        let duplicates = f["duplicates"].as_u64().unwrap_or(0);
        let tail: Vec<_> = layout
            .blocks
            .iter()
            .skip_while(|b| b.list_no.is_some())
            .filter(|_| layout.nlist.is_some())
            .collect();
        assert_eq!(tail.len() as u64, duplicates, "{name}");
        assert!(tail.iter().all(|b| b.list_no.is_none() && b.rows == 1));
        // Id maps over IVF indexes translate stored inner ids through the table.
        let inner_ivf = f["inner"].as_str().is_some_and(|i| i.contains("IVF"));
        assert_eq!(layout.id_map.is_some(), inner_ivf, "{name}");
        if let Some(t) = layout.id_map {
            assert_eq!(t.len, layout.ntotal, "{name}");
            assert!(layout
                .blocks
                .iter()
                .all(|b| matches!(b.ids, BlockIds::Mapped { .. })));
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
    assert!(all.len() >= 8);
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
            "refine_lossy",
            "IxRF",
            "IndexRefine (fourcc `IxRF`) whose refine index is IndexScalarQuantizer (fourcc `IxSQ`)",
            "cannot be recovered",
        ),
    ] {
        let msg = unsupported_message(name);
        assert!(msg.contains(&format!("`{fourcc}`")), "{name}: {msg}");
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
        match read_rows(&bytes, layout, i, 0..n) {
            Ok(_) => {}
            // A corrupted inner id is found when it is translated, and located.
            Err(Error::Data { location, message }) if matches!(b.ids, BlockIds::Mapped { .. }) => {
                assert!(location.contains(" at byte "), "{location}");
                assert!(message.contains("stores the inner id"), "{message}");
            }
            Err(e) => panic!("block {i}: {e}"),
        }
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

fn stored_at(b: &vmig_formats::faiss::Block) -> u64 {
    match b.ids {
        BlockIds::Stored { offset } | BlockIds::Mapped { offset } => offset,
        BlockIds::Implicit { .. } => panic!("implicit ids"),
    }
}

/// The types added for issue #15 at the offsets Faiss's index_write.cpp gives them (d = 8).
#[test]
fn new_types_have_the_documented_layouts() {
    // IwFd: fourcc + header (4 + 33), nlist and nprobe (16), IxF2 quantizer of 8 centroids
    // (4 + 33 + 8 + 8·8·4 = 301), direct map (1 + 8): the instances table at 363, 140 ids
    // (70 pairs), then `ilar` at 1491.
    let bytes = fixture("ivf_dedup");
    assert_eq!(&bytes[1491..1495], b"ilar");
    let l = parse("ivf_dedup");
    assert_eq!(
        l.description,
        "IndexIVFFlatDedup (nlist 8, quantizer IndexFlatL2)"
    );
    assert_eq!((l.ntotal, l.nlist), (370, Some(8)));
    // ilar, nlist, code_size, `full`, 8 sizes.
    assert_eq!(l.blocks[0].codes_offset, 1491 + 4 + 8 + 8 + 4 + 8 + 8 * 8);
    let lists: Vec<_> = l.blocks.iter().filter(|b| b.list_no.is_some()).collect();
    let dups: Vec<_> = l.blocks.iter().filter(|b| b.list_no.is_none()).collect();
    assert_eq!((lists.len(), dups.len()), (8, 70));
    let stored: u64 = lists.iter().map(|b| b.rows).sum();
    assert_eq!(stored, 300);
    for (j, b) in dups.iter().enumerate() {
        // The duplicate id is the second of pair j; its codes are a stored entry's.
        assert_eq!(stored_at(b), 363 + 8 + 16 * j as u64 + 8);
        assert!(lists.iter().any(|s| {
            b.codes_offset >= s.codes_offset
                && b.codes_offset < s.codes_offset + s.rows * 32
                && (b.codes_offset - s.codes_offset) % 32 == 0
        }));
    }
    assert!(parse("ivf_dedup_nodup")
        .blocks
        .iter()
        .all(|b| b.list_no.is_some()));

    // IvFl / IvFL: header and quantizer (16 centroids) end at 610; then 16 vec<i64> of ids
    // (list 0 empty, list 1 first), the direct map at 2738, the codes from 2747.
    for (name, fourcc) in [("ivf_legacy_floats", "IvFl"), ("ivf_legacy_bytes", "IvFL")] {
        let l = parse(name);
        assert_eq!(l.fourcc, fourcc);
        assert_eq!(
            l.description,
            "IndexIVFFlat (legacy format) (nlist 16, quantizer IndexFlatL2)"
        );
        assert_eq!(l.blocks[0].list_no, Some(1));
        assert_eq!(stored_at(&l.blocks[0]), 610 + 8 + 8);
        assert_eq!(l.blocks[0].codes_offset, 2747 + 8 + 8);
        assert_eq!(l.blocks.len(), 7);
    }

    // IBHf: binary header (4 + 21), the graph, then the IBxF storage ending the file.
    let l = parse("binary_hnsw");
    assert_eq!(l.description, "IndexBinaryHNSW (storage IndexBinaryFlat)");
    assert_eq!((l.dim, l.row_bytes, l.ntotal), (64, 8, 500));
    assert_eq!(l.blocks[0].codes_offset, 75_826 - 500 * 8);
    assert_eq!(l.blocks[0].ids, BlockIds::Implicit { first: 0 });
    assert!(parse("binary_hnsw_empty").blocks.is_empty());

    let l = parse("binary_ivf_lists");
    assert_eq!(
        l.description,
        "IndexBinaryIVF (nlist 16, quantizer IndexBinaryFlat)"
    );
    assert_eq!(l.blocks.len(), 4);

    // IxRF: the refine IxF2 ends 4 bytes (k_factor) before the end of the file.
    let l = parse("refine_ivfpq");
    assert_eq!(
        l.description,
        "IndexRefineFlat (base IndexIVFPQ, refine IndexFlatL2)"
    );
    assert_eq!(l.blocks[0].codes_offset, 26_218 - 4 - 400 * 32);
    assert_eq!(l.blocks[0].ids, BlockIds::Implicit { first: 0 });
    assert_eq!(
        parse("refine_sq8").description,
        "IndexRefineFlat (base IndexScalarQuantizer, refine IndexFlatIP)"
    );
    let l = parse("idmap_refine");
    assert_eq!(
        l.description,
        "IndexIDMap over IndexRefineFlat (base IndexScalarQuantizer, refine IndexFlatL2)"
    );
    assert_eq!(
        l.blocks[0].ids,
        BlockIds::Stored {
            offset: 9_876 - 1_600
        }
    );

    // Id maps over IVF: the table is the file's last ntotal × 8 bytes.
    let l = parse("idmap2_ivf");
    assert_eq!(
        l.description,
        "IndexIDMap2 over IndexIVFFlat (nlist 8, quantizer IndexFlatL2)"
    );
    let t = l.id_map.unwrap();
    assert_eq!(
        (t.offset, t.len, t.class),
        (29_304 - 4_800, 600, "IndexIDMap2")
    );
    assert_eq!(t.range(), 29_304 - 4_800..29_304);
    let t = parse("binary_idmap_ivf").id_map.unwrap();
    assert_eq!(
        (t.offset, t.len, t.class),
        (9_940 - 2_400, 300, "IndexBinaryIDMap")
    );
    assert_eq!(parse("idmap_ivf").nlist, Some(4));
}

fn data_error(bytes: &[u8], name: &str) -> (String, String) {
    match parse_layout(&bytes, name) {
        Err(Error::Data { location, message }) => (location, message),
        Err(e) => panic!("{name}: expected a data error, got {e:?}"),
        Ok(l) => panic!("{name}: parsed as {}", l.description),
    }
}

fn put_u64(bytes: &mut [u8], at: usize, v: u64) {
    bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn get_i64(bytes: &[u8], at: usize) -> i64 {
    i64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

#[test]
fn corrupt_dedup_files_name_the_byte_and_the_field() {
    let orig = fixture("ivf_dedup");

    // Cut inside the instances table: ntotal (stored entries and duplicates) cannot fit.
    let bytes = &orig[..363 + 8 + 100];
    assert_eq!(
        data_error(bytes, "d.faiss"),
        (
            "d.faiss at byte 8".to_string(),
            "ntotal of the IndexIVFFlatDedup header = 370 cannot be right: each needs at least 16 \
             bytes (an entry or a 16-byte (stored id, duplicate id) pair), so at most 27 fit in \
             the 434 bytes left after byte 37 (the file ends at byte 471); the file is corrupted \
             or truncated"
                .to_string()
        )
    );
    let mut bytes = orig.clone();
    put_u64(&mut bytes, 363, 1 << 30);
    assert_eq!(
        data_error(&bytes, "d.faiss"),
        (
            "d.faiss at byte 371".to_string(),
            "expected the instances table of the IndexIVFFlatDedup (vec<i64> of (stored id, \
             duplicate id) pairs): 1073741824 elements of 8 bytes (8589934592 bytes), file ends \
             at byte 13587"
                .to_string()
        )
    );

    let mut bytes = orig.clone();
    put_u64(&mut bytes, 363, 139);
    assert_eq!(
        data_error(&bytes, "d.faiss"),
        (
            "d.faiss at byte 363".to_string(),
            "the IndexIVFFlatDedup instances table holds 139 ids; they must come in (stored id, \
             duplicate id) pairs"
                .to_string()
        )
    );

    // ntotal one more than the stored entries and the duplicates.
    let mut bytes = orig.clone();
    put_u64(&mut bytes, 8, 371);
    let (location, message) = data_error(&bytes, "d.faiss");
    assert_eq!(location, "d.faiss at byte 1511");
    assert_eq!(
        message,
        "the inverted lists hold 300 entries in all but ntotal minus the duplicates is 301"
    );

    // A pair naming a stored id that no list holds.
    let mut bytes = orig.clone();
    put_u64(&mut bytes, 363 + 8 + 16 * 5, 7);
    assert_eq!(
        data_error(&bytes, "d.faiss"),
        (
            "d.faiss at byte 451".to_string(),
            "entry 5 of the IndexIVFFlatDedup instances table says a duplicate repeats the stored \
             id 7, but no inverted list holds id 7"
                .to_string()
        )
    );

    // A stored id held twice, which the table names: ambiguous.
    let l = parse("ivf_dedup");
    let key = get_i64(&orig, 363 + 8);
    let victim = l
        .blocks
        .iter()
        .find(|b| b.list_no.is_some() && get_i64(&orig, stored_at(b) as usize) != key)
        .unwrap();
    let at = stored_at(victim) as usize;
    let mut bytes = orig.clone();
    bytes[at..at + 8].copy_from_slice(&key.to_le_bytes());
    let err = parse_layout(&bytes, "d.faiss").unwrap_err();
    let Error::Unsupported { location, message } = &err else {
        panic!("{err:?}")
    };
    assert!(
        location == &format!("d.faiss at byte {at}")
            || message.contains(&format!(
                "entry 0 of inverted list {}",
                victim.list_no.unwrap()
            )),
        "{location}: {message}"
    );
    assert!(
        message.contains(&format!("stores id {key} twice")),
        "{message}"
    );
    assert!(message.contains("cannot be known"), "{message}");
}

#[test]
fn corrupt_legacy_binary_and_refine_files_name_the_byte_and_the_field() {
    // Legacy IvFl: list 1 holds 20 ids, so its codes must be 20 × 8 floats.
    let mut bytes = fixture("ivf_legacy_floats");
    put_u64(&mut bytes, 2747 + 8, 161);
    assert_eq!(
        data_error(&bytes, "l.faiss"),
        (
            "l.faiss at byte 2755".to_string(),
            "the codes of inverted list 1 hold 161 floats but the list has 20 ids, so 20 × 8 = \
             160 were expected"
                .to_string()
        )
    );
    let mut bytes = fixture("ivf_legacy_bytes");
    put_u64(&mut bytes, 2747 + 8, 641);
    assert_eq!(
        data_error(&bytes, "l.faiss").1,
        "the codes of inverted list 1 hold 641 bytes but the list has 20 ids, so 20 × 32 = 640 \
         were expected"
    );
    let mut bytes = fixture("ivf_legacy_floats");
    put_u64(&mut bytes, 618, 300);
    assert_eq!(
        data_error(&bytes, "l.faiss"),
        (
            "l.faiss at byte 618".to_string(),
            "inverted list 1 has 300 ids, which takes the lists past ntotal = 250 entries"
                .to_string()
        )
    );
    put_u64(&mut bytes, 618, 1_000_000);
    assert_eq!(
        data_error(&bytes, "l.faiss"),
        (
            "l.faiss at byte 626".to_string(),
            "expected the ids of inverted list 1 (vec<i64>, legacy format): 1000000 elements of 8 \
             bytes (8000000 bytes), file ends at byte 10875"
                .to_string()
        )
    );
    let bytes = fixture("ivf_legacy_floats");
    // Truncated: ntotal is checked against what is left before any list is read.
    assert_eq!(
        data_error(&bytes[..700], "l.faiss"),
        (
            "l.faiss at byte 8".to_string(),
            "ntotal of the IndexIVFFlat (legacy format) header = 250 cannot be right: each needs \
             at least 40 bytes (a vector of d = 8 floats and its 8-byte id), so at most 16 fit \
             in the 663 bytes left after byte 37 (the file ends at byte 700); the file is \
             corrupted or truncated"
                .to_string()
        )
    );

    // IndexBinaryHNSW: the graph's levels array must have ntotal entries.
    let mut bytes = fixture("binary_hnsw");
    put_u64(&mut bytes, 141, 499);
    assert_eq!(
        data_error(&bytes, "h.faiss"),
        (
            "h.faiss at byte 141".to_string(),
            "the HNSW levels array has 499 entries but ntotal is 500".to_string()
        )
    );

    // IndexBinaryIVF: the lists' code size must be d / 8.
    let mut bytes = fixture("binary_ivf_lists");
    let at = bytes.windows(4).position(|w| w == b"ilar").unwrap() + 12;
    put_u64(&mut bytes, at, 17);
    assert_eq!(
        data_error(&bytes, "b.faiss"),
        (
            format!("b.faiss at byte {at}"),
            "the inverted lists have code_size 17; an IndexBinaryIVF of d = 128 bits stores d / 8 \
             = 16 bytes per vector"
                .to_string()
        )
    );

    // IndexRefine: its ntotal must be its base index's.
    let mut bytes = fixture("refine_ivfpq");
    put_u64(&mut bytes, 8, 399);
    assert_eq!(
        data_error(&bytes, "r.faiss"),
        (
            "r.faiss at byte 37".to_string(),
            "the IndexRefine has ntotal 399 but its base index (IndexIVFPQ) holds 400 vectors"
                .to_string()
        )
    );

    // An id map over IVF: an inner id outside the id map is found when it is translated.
    let mut bytes = fixture("idmap2_ivf");
    let l = parse("idmap2_ivf");
    let at = stored_at(&l.blocks[0]) as usize;
    put_u64(&mut bytes, at, 600);
    let layout = parse_layout(&bytes, "m.faiss").unwrap();
    let err = read_rows(&bytes, &layout, 0, 0..2).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "invalid data at faiss index at byte {at}: entry 0 of inverted list 0 stores the \
             inner id 600, but the id map of the IndexIDMap2 has 600 ids (inner ids 0..600): the \
             file is corrupted, or remove_ids changed the index in a way its id map no longer \
             describes"
        )
    );
    let cut = bytes.len() - 100;
    let (location, message) = data_error(&bytes[..cut], "m.faiss");
    assert_eq!(location, format!("m.faiss at byte {}", 29_304 - 4_800));
    assert_eq!(
        message,
        format!(
            "expected the id map of the IndexIDMap2 (vec<i64>): 600 elements of 8 bytes (4800 \
             bytes), file ends at byte {cut}"
        )
    );
}
