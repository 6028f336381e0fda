//! `vmig_formats::faiss` against real-world Faiss index files that other projects committed to
//! public GitHub repositories: the corpus in `../shared/realworld-faiss` (relative to the
//! workspace root; `VMIG_REALWORLD_FAISS` overrides the path), read from there at test time.
//!
//! Its `manifest.json` lists every file. For each `lossless: true` file, vmig's rows sorted by
//! id (stably, as `expected.order` says) must equal `ids` and `vectors` of its
//! `<file>.expected.npz` bit for bit (extracted with faiss-cpu 1.15.1); each `lossless: false`
//! file must be refused naming its fourcc and class. Without the corpus the test is skipped
//! loudly, unless `CI=true`, where it fails.
#![allow(clippy::unwrap_used)] // test helpers may panic on a broken corpus

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use arrow::array::{Array, FixedSizeBinaryArray, FixedSizeListArray, Float32Array};
use serde_json::Value;
use vmig_core::Error;
use vmig_formats::faiss::{parse_layout, read_rows, FaissLayout, VectorKind};

fn corpus() -> Option<PathBuf> {
    vmig_testing::service::shared_corpus(
        "realworld-faiss",
        "VMIG_REALWORLD_FAISS",
        "the real-world Faiss corpus",
    )
}

fn u16_at(b: &[u8], at: usize) -> usize {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap()) as usize
}

fn u32_at(b: &[u8], at: usize) -> u64 {
    u64::from(u32::from_le_bytes(b[at..at + 4].try_into().unwrap()))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// The members of a `.npz` (a zip archive) written by `numpy.savez`: stored, not compressed;
/// numpy writes zip64 local headers, so sizes and offsets come from the central directory (and
/// its zip64 extra field where a 32-bit field is saturated).
fn npz_members(bytes: &[u8]) -> HashMap<String, Vec<u8>> {
    let eocd = (0..=bytes.len().saturating_sub(22))
        .rev()
        .find(|&i| bytes[i..i + 4] == [0x50, 0x4b, 0x05, 0x06])
        .expect("no end-of-central-directory record: not a zip file");
    let entries = u16_at(bytes, eocd + 10);
    let mut at = u32_at(bytes, eocd + 16) as usize;
    assert!(
        at != 0xffff_ffff,
        "zip64 central directories are not handled"
    );
    let mut out = HashMap::new();
    for _ in 0..entries {
        assert_eq!(bytes[at..at + 4], [0x50, 0x4b, 0x01, 0x02], "central entry");
        let method = u16_at(bytes, at + 10);
        let mut size = u32_at(bytes, at + 20);
        let name_len = u16_at(bytes, at + 28);
        let extra_len = u16_at(bytes, at + 30);
        let comment_len = u16_at(bytes, at + 32);
        let mut local = u32_at(bytes, at + 42);
        let name = String::from_utf8(bytes[at + 46..at + 46 + name_len].to_vec()).unwrap();
        // Zip64 extra field: the saturated fields, in the order uncompressed, compressed, offset.
        let extra = &bytes[at + 46 + name_len..at + 46 + name_len + extra_len];
        let mut e = 0;
        while e + 4 <= extra.len() {
            let (id, len) = (u16_at(extra, e), u16_at(extra, e + 2));
            if id == 1 {
                let mut f = e + 4;
                if u32_at(bytes, at + 24) == 0xffff_ffff {
                    f += 8;
                }
                if size == 0xffff_ffff {
                    size = u64_at(extra, f);
                    f += 8;
                }
                if local == 0xffff_ffff {
                    local = u64_at(extra, f);
                }
            }
            e += 4 + len;
        }
        assert_eq!(method, 0, "{name}: compressed npz members are not handled");
        let l = local as usize;
        assert_eq!(bytes[l..l + 4], [0x50, 0x4b, 0x03, 0x04], "local header");
        let data = l + 30 + u16_at(bytes, l + 26) + u16_at(bytes, l + 28);
        out.insert(name, bytes[data..data + size as usize].to_vec());
        at += 46 + name_len + extra_len + comment_len;
    }
    out
}

/// `ids` and the raw little-endian bytes of `vectors` of an expected `.npz`.
fn expected(path: &Path, binary: bool) -> (Vec<i64>, Vec<u8>, Vec<u64>) {
    let members = npz_members(&std::fs::read(path).unwrap());
    let ids = npyz::NpyFile::new(&members["ids.npy"][..]).unwrap();
    let ids: Vec<i64> = ids.into_vec().unwrap();
    let vectors = npyz::NpyFile::new(&members["vectors.npy"][..]).unwrap();
    let shape = vectors.shape().to_vec();
    let bytes = if binary {
        vectors.into_vec::<u8>().unwrap()
    } else {
        vectors
            .into_vec::<f32>()
            .unwrap()
            .iter()
            .flat_map(|v| v.to_bits().to_le_bytes())
            .collect()
    };
    (ids, bytes, shape)
}

/// Every row of the index as (id, vector bytes), in vmig's row order.
fn rows(bytes: &[u8], layout: &FaissLayout) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    for (i, b) in layout.blocks.iter().enumerate() {
        let r = read_rows(&bytes, layout, i, 0..b.rows).unwrap();
        let vecs: Vec<Vec<u8>> = match layout.vectors {
            VectorKind::Float32 => {
                let l = r
                    .vectors
                    .as_any()
                    .downcast_ref::<FixedSizeListArray>()
                    .unwrap();
                let v = l.values().as_any().downcast_ref::<Float32Array>().unwrap();
                let v = &v.values()[l.offset() * layout.dim..][..l.len() * layout.dim];
                v.chunks(layout.dim)
                    .map(|row| row.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect())
                    .collect()
            }
            VectorKind::Binary => {
                let a = r
                    .vectors
                    .as_any()
                    .downcast_ref::<FixedSizeBinaryArray>()
                    .unwrap();
                a.iter().map(|row| row.unwrap().to_vec()).collect()
            }
        };
        out.extend(r.ids.values().iter().copied().zip(vecs));
    }
    out
}

#[test]
fn every_real_world_file_is_read_bit_exactly_or_refused_by_name() {
    let Some(dir) = corpus() else {
        return;
    };
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let files = manifest["files"].as_array().unwrap();
    let (mut read, mut refused, mut empty) = (0, 0, 0);
    for f in files {
        let name = f["file"].as_str().unwrap();
        let magic = f["magic"].as_str().unwrap();
        let class = f["faiss_class"].as_str().unwrap();
        let ntotal = f["ntotal"].as_u64().unwrap();
        let d = f["d"].as_u64().unwrap();
        let bytes = std::fs::read(dir.join(name)).unwrap();
        assert_eq!(
            bytes.len() as u64,
            f["size_bytes"].as_u64().unwrap(),
            "{name}"
        );
        if !f["lossless"].as_bool().unwrap() {
            let err = parse_layout(&bytes, name).unwrap_err();
            let Error::Unsupported { location, message } = &err else {
                panic!("{name}: expected a refusal, got {err:?}")
            };
            assert_eq!(location, &format!("{name} at byte 0"), "{name}");
            assert!(
                message.starts_with(&format!("{class} (fourcc `{magic}`) stores ")),
                "{name}: {message}"
            );
            assert!(
                message.contains("cannot be recovered exactly"),
                "{name}: {message}"
            );
            refused += 1;
            continue;
        }
        let layout = parse_layout(&bytes, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        let binary = f["is_binary"].as_bool().unwrap();
        assert_eq!(layout.fourcc, magic, "{name}");
        assert_eq!((layout.ntotal, layout.dim as u64), (ntotal, d), "{name}");
        assert_eq!(layout.vectors == VectorKind::Binary, binary, "{name}");
        let want_metric = match f["metric"].as_str().unwrap() {
            "l2" => "L2",
            "inner_product" => "IP",
            "hamming" => "HAMMING",
            other => panic!("{name}: metric {other}"),
        };
        assert_eq!(layout.metric.milvus_name(), Some(want_metric), "{name}");

        let exp = &f["expected"];
        assert_eq!(
            exp["order"].as_str().unwrap(),
            "ids ascending (stable: ties keep storage order)",
            "{name}: the comparison below sorts that way"
        );
        let (want_ids, want_vecs, shape) =
            expected(&dir.join(exp["file"].as_str().unwrap()), binary);
        let row_bytes = layout.row_bytes as u64;
        assert_eq!(
            shape,
            [ntotal, if binary { row_bytes } else { d }],
            "{name}: expected vectors' shape"
        );
        let mut got = rows(&bytes, &layout);
        got.sort_by_key(|(id, _)| *id); // stable
        let ids: Vec<i64> = got.iter().map(|(id, _)| *id).collect();
        let vecs: Vec<u8> = got.into_iter().flat_map(|(_, v)| v).collect();
        assert_eq!(ids, want_ids, "{name}: ids differ");
        assert!(vecs == want_vecs, "{name}: vectors differ");
        if ntotal == 0 {
            assert!(layout.blocks.is_empty(), "{name}");
            empty += 1;
        }
        read += 1;
    }
    eprintln!(
        "real-world corpus: {read} files read bit-exactly ({empty} empty), {refused} refused, \
         of {}",
        files.len()
    );
    assert_eq!(read + refused, files.len());
    assert!(
        read >= 19 && refused >= 2 && empty >= 1,
        "{read} {refused} {empty}"
    );
}
