//! The layout parser: walks the headers of a Faiss index file and records where the vector and
//! id bodies are, without reading them.

use std::collections::HashMap;

use vmig_core::{Error, Result};

use super::catalogue::{class_name, printable, refusal_reason};
use super::cursor::Cursor;
use super::{Block, BlockIds, FaissLayout, IdMapTable, Metric, ReadAt, VectorKind, MAX_VEC_LEN};

/// Nesting deeper than this is certainly a corrupted file (real files nest at most 3 levels).
const MAX_DEPTH: usize = 8;

/// Parses the layout of the Faiss index in `r`. `name` (a path or URL) is used in messages.
///
/// Reads only headers and small arrays: for IVF indexes the list sizes, for HNSW indexes the
/// 8-byte counts of the graph arrays (the graph itself is skipped); for an `IndexIVFFlatDedup`
/// with duplicates, its `instances` table and the stored ids of its lists.
///
/// # Errors
/// * [`Error::Data`] when the file is truncated, has trailing bytes, an unknown fourcc or
///   inconsistent counts; the location is `"<name> at byte <offset>"`.
/// * [`Error::Unsupported`] for index types vmig refuses (lossy or out of scope), naming the
///   fourcc, the class and why.
/// * [`Error::Io`] (with context) when a read fails.
pub fn parse_layout(r: &dyn ReadAt, name: &str) -> Result<FaissLayout> {
    let mut cur = Cursor::new(r, name);
    if cur.size() == 0 {
        return Err(cur.data_err(
            0,
            "the file is empty; a Faiss index starts with a 4-byte fourcc such as `IxF2`",
        ));
    }
    let head = cur.peek_fourcc("4-byte fourcc of the index")?;
    let p = if head.starts_with(b"IB") {
        parse_binary(&mut cur, 0)?
    } else {
        parse_float(&mut cur, 0)?
    };
    if cur.pos() != cur.size() {
        return Err(cur.data_err(
            cur.pos(),
            format!(
                "the {} ends here but the file has {} more bytes (it is {} bytes long); trailing \
                 data means a corrupted file or a format variant vmig does not know",
                p.description,
                cur.size() - cur.pos(),
                cur.size()
            ),
        ));
    }
    Ok(FaissLayout {
        fourcc: String::from_utf8_lossy(&p.fourcc).into_owned(),
        description: p.description,
        dim: p.dim,
        ntotal: p.ntotal,
        metric: p.metric,
        vectors: p.kind,
        row_bytes: p.row_bytes,
        nlist: p.nlist,
        file_size: cur.size(),
        blocks: p.blocks,
        id_map: p.id_map,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// One block of implicit ids `0..ntotal` in storage order.
    Flat,
    /// As `Flat`, behind an HNSW graph.
    Hnsw,
    /// As `Flat`: the refine index of an `IndexRefine`.
    Refine,
    IdMap,
    /// Blocks with stored ids (inverted lists, dedup duplicates).
    Ivf,
}

struct Parsed {
    fourcc: [u8; 4],
    class: &'static str,
    description: String,
    shape: Shape,
    dim: usize,
    ntotal: u64,
    metric: Metric,
    kind: VectorKind,
    row_bytes: usize,
    nlist: Option<u64>,
    blocks: Vec<Block>,
    id_map: Option<IdMapTable>,
}

struct FloatHeader {
    d: usize,
    ntotal: u64,
    /// Byte offset of the `ntotal` field, for errors about it.
    ntotal_at: u64,
    metric: Metric,
}

fn float_header(cur: &mut Cursor<'_>, class: &str) -> Result<FloatHeader> {
    let at = cur.pos();
    let d = cur.i32(&format!("dimension d (i32) of the {class} header"))?;
    if d <= 0 {
        return Err(cur.data_err(
            at,
            format!("the {class} header has dimension d = {d}; it must be > 0"),
        ));
    }
    let nt_at = cur.pos();
    let ntotal = cur.i64(&format!("ntotal (i64) of the {class} header"))?;
    let ntotal = u64::try_from(ntotal).map_err(|_| {
        cur.data_err(
            nt_at,
            format!("the {class} header has ntotal = {ntotal}; it must be ≥ 0"),
        )
    })?;
    cur.skip(
        16,
        &format!("two reserved i64 fields of the {class} header"),
    )?;
    cur.u8(&format!("is_trained flag of the {class} header"))?;
    let code = cur.i32(&format!("metric type (i32) of the {class} header"))?;
    let arg = if code > 1 {
        Some(cur.f32(&format!(
            "metric_arg (f32) of the {class} header, present because its metric type {code} > 1"
        ))?)
    } else {
        None
    };
    Ok(FloatHeader {
        d: d as usize,
        ntotal,
        ntotal_at: nt_at,
        metric: Metric::from_code(code, arg),
    })
}

/// The error for a fourcc vmig does not read at this place.
fn refuse(cur: &Cursor<'_>, fourcc: &[u8; 4], at: u64, expected: &str) -> Error {
    let shown = printable(fourcc);
    match (class_name(fourcc), refusal_reason(fourcc)) {
        (Some(class), Some(reason)) => {
            cur.unsupported(at, format!("{class} (fourcc `{shown}`) {reason}"))
        }
        (Some(_), None) if fourcc == b"null" => cur.unsupported(
            at,
            format!("expected {expected} but found fourcc `null` (no index was saved here)"),
        ),
        (Some(class), None) => cur.unsupported(
            at,
            format!("expected {expected} but found {class} (fourcc `{shown}`), which vmig does not read at this place"),
        ),
        (None, _) => cur.data_err(
            at,
            format!(
                "unknown fourcc `{shown}` (0x{:08x}) where {expected} was expected: not a Faiss \
                 index file, a corrupted one, or an index type newer than vmig knows",
                u32::from_le_bytes(*fourcc)
            ),
        ),
    }
}

fn depth_check(cur: &Cursor<'_>, depth: usize) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(cur.data_err(
            cur.pos(),
            format!("indexes are nested more than {MAX_DEPTH} levels deep: the file is corrupted"),
        ));
    }
    Ok(())
}

fn parse_float(cur: &mut Cursor<'_>, depth: usize) -> Result<Parsed> {
    depth_check(cur, depth)?;
    let at = cur.pos();
    let what = if depth == 0 {
        "4-byte fourcc of the index"
    } else {
        "4-byte fourcc of the nested index"
    };
    let fourcc = cur.fourcc(what)?;
    match &fourcc {
        b"IxF2" | b"IxFI" | b"IxFl" => parse_flat(cur, fourcc),
        b"IxMp" | b"IxM2" => parse_idmap(cur, fourcc, depth),
        b"IwFl" | b"IvFl" | b"IvFL" | b"IwFd" => parse_ivf_flat(cur, fourcc, depth),
        b"IHNf" => parse_hnsw_flat(cur, depth),
        b"IxRF" => parse_refine(cur, depth),
        _ => Err(refuse(cur, &fourcc, at, "a float index")),
    }
}

fn parse_flat(cur: &mut Cursor<'_>, fourcc: [u8; 4]) -> Result<Parsed> {
    let class = class_name(&fourcc).unwrap_or("IndexFlat");
    let h = float_header(cur, class)?;
    cur.check_fits(
        h.ntotal_at,
        &format!("ntotal of the {class} header"),
        h.ntotal,
        h.d as u64 * 4,
        &format!("a vector of d = {} floats", h.d),
    )?;
    let n_at = cur.pos();
    let (n, codes_offset) = cur.vec_header(4, &format!("the {class} vectors (xbvec of f32)"))?;
    let expected = h.ntotal.checked_mul(h.d as u64);
    if expected != Some(n) {
        return Err(cur.data_err(
            n_at,
            format!(
                "the {class} vectors hold {n} floats but ntotal × d = {} × {} = {}",
                h.ntotal,
                h.d,
                expected.map_or("overflow".to_string(), |e| e.to_string())
            ),
        ));
    }
    cur.skip(n * 4, &format!("the {class} vectors"))?;
    Ok(Parsed {
        fourcc,
        class,
        description: class.to_string(),
        shape: Shape::Flat,
        dim: h.d,
        ntotal: h.ntotal,
        metric: h.metric,
        kind: VectorKind::Float32,
        row_bytes: h.d * 4,
        nlist: None,
        blocks: single_block(h.ntotal, codes_offset),
        id_map: None,
    })
}

fn single_block(rows: u64, codes_offset: u64) -> Vec<Block> {
    if rows == 0 {
        return Vec::new();
    }
    vec![Block {
        list_no: None,
        rows,
        codes_offset,
        ids: BlockIds::Implicit { first: 0 },
    }]
}

/// Replaces the implicit ids of `blocks` by the id map stored at `ids_offset`.
fn with_id_map(blocks: Vec<Block>, ids_offset: u64) -> Vec<Block> {
    let mut offset = ids_offset;
    blocks
        .into_iter()
        .map(|b| {
            let out = Block {
                ids: BlockIds::Stored { offset },
                ..b
            };
            offset += b.rows * 8;
            out
        })
        .collect()
}

/// Turns the stored (inner) ids of an IVF index's blocks into ids mapped through an id map.
fn mapped_through_id_map(blocks: Vec<Block>) -> Vec<Block> {
    blocks
        .into_iter()
        .map(|b| match b.ids {
            BlockIds::Stored { offset } => Block {
                ids: BlockIds::Mapped { offset },
                ..b
            },
            _ => b,
        })
        .collect()
}

fn parse_idmap(cur: &mut Cursor<'_>, fourcc: [u8; 4], depth: usize) -> Result<Parsed> {
    let class = class_name(&fourcc).unwrap_or("IndexIDMap");
    let h = float_header(cur, class)?;
    check_id_map_fits(cur, class, h.ntotal_at, h.ntotal)?;
    let inner_at = cur.pos();
    let inner = parse_float(cur, depth + 1)?;
    let header = IdMapHeader {
        fourcc,
        class,
        ntotal: h.ntotal,
        dim: h.d,
        metric: h.metric,
        kind: VectorKind::Float32,
    };
    read_id_map(cur, header, inner_at, inner)
}

/// An id map's `ntotal` must leave room for its 8-byte ids (checked before the nested index).
fn check_id_map_fits(cur: &Cursor<'_>, class: &str, at: u64, ntotal: u64) -> Result<()> {
    cur.check_fits(
        at,
        &format!("ntotal of the {class} header"),
        ntotal,
        8,
        "an 8-byte id in the id map",
    )
}

/// What an id-map wrapper's own header said.
struct IdMapHeader {
    fourcc: [u8; 4],
    class: &'static str,
    ntotal: u64,
    dim: usize,
    metric: Metric,
    kind: VectorKind,
}

/// The part every id map (float or binary) shares: after the nested index, checks it agrees
/// with the wrapper's header, reads the `vec<i64>` of ids and points the blocks at them —
/// directly for flat-like inner indexes (row `i` has `id_map[i]`), through the table for IVF
/// ones (an entry storing inner id `i` has `id_map[i]`).
fn read_id_map(
    cur: &mut Cursor<'_>,
    h: IdMapHeader,
    inner_at: u64,
    inner: Parsed,
) -> Result<Parsed> {
    let class = h.class;
    if inner.shape == Shape::IdMap {
        return Err(cur.unsupported(
            inner_at,
            format!(
                "{class} over {} (nested id maps) is not supported",
                inner.description
            ),
        ));
    }
    if inner.ntotal != h.ntotal || inner.dim != h.dim {
        return Err(cur.data_err(
            inner_at,
            format!(
                "{class} has ntotal {} and d {} but its nested {} has ntotal {} and d {}",
                h.ntotal, h.dim, inner.description, inner.ntotal, inner.dim
            ),
        ));
    }
    let n_at = cur.pos();
    let (n, ids_offset) = cur.vec_header(8, &format!("the id map of the {class} (vec<i64>)"))?;
    if n != h.ntotal {
        return Err(cur.data_err(
            n_at,
            format!(
                "the id map of the {class} has {n} ids but ntotal is {}",
                h.ntotal
            ),
        ));
    }
    cur.skip(n * 8, "the id map")?;
    let (blocks, id_map) = if inner.shape == Shape::Ivf {
        let table = IdMapTable {
            offset: ids_offset,
            len: n,
            class,
        };
        (mapped_through_id_map(inner.blocks), Some(table))
    } else {
        (with_id_map(inner.blocks, ids_offset), None)
    };
    Ok(Parsed {
        fourcc: h.fourcc,
        class,
        description: format!("{class} over {}", inner.description),
        shape: Shape::IdMap,
        dim: h.dim,
        ntotal: h.ntotal,
        metric: h.metric,
        kind: h.kind,
        row_bytes: inner.row_bytes,
        nlist: inner.nlist,
        blocks,
        id_map,
    })
}

/// Skips a serialised HNSW graph, checking its per-vector arrays against the header's `ntotal`
/// (and, first, that the file can hold them at all). `ntotal_at` is where the header holds it.
fn skip_hnsw_graph(cur: &mut Cursor<'_>, ntotal: u64, ntotal_at: u64, class: &str) -> Result<()> {
    cur.check_fits(
        ntotal_at,
        &format!("ntotal of the {class} header"),
        ntotal,
        12,
        "a 4-byte level and an 8-byte neighbour offset in the graph",
    )?;
    cur.skip_vec(8, "the HNSW assign_probas (vec<f64>)")?;
    cur.skip_vec(4, "the HNSW cum_nneighbor_per_level (vec<i32>)")?;
    let at = cur.pos();
    let (levels, _) = cur.skip_vec(4, "the HNSW levels (vec<i32>)")?;
    if levels != ntotal {
        return Err(cur.data_err(
            at,
            format!("the HNSW levels array has {levels} entries but ntotal is {ntotal}"),
        ));
    }
    let at = cur.pos();
    let (offsets, _) = cur.skip_vec(8, "the HNSW offsets (vec<u64>)")?;
    if Some(offsets) != ntotal.checked_add(1) {
        return Err(cur.data_err(
            at,
            format!(
                "the HNSW offsets array has {offsets} entries but ntotal + 1 is {}",
                ntotal.saturating_add(1)
            ),
        ));
    }
    cur.skip_vec(4, "the HNSW neighbors (vec<i32>)")?;
    cur.skip(
        20,
        "HNSW entry_point, max_level, efConstruction, efSearch and upper_beam (5 × i32)",
    )
}

/// The error for an HNSW index saved with `IO_FLAG_SKIP_STORAGE` (`null` where its storage
/// should be).
fn skipped_storage(cur: &Cursor<'_>, at: u64, class: &str, fourcc: &str) -> Error {
    cur.unsupported(
        at,
        format!(
            "{class} (fourcc `{fourcc}`) was saved without its storage (IO_FLAG_SKIP_STORAGE): \
             the file holds only the graph, not the vectors. Save the index again without that \
             flag, or read the flat storage index that was saved separately."
        ),
    )
}

/// What [`hnsw_storage`] checks the storage index of an HNSW index against.
struct HnswStorage<'a> {
    class: &'a str,
    fourcc: &'a str,
    /// What the storage's fourcc is, for a file that ends before it.
    what: &'a str,
    /// The flat index types the storage may be.
    expected: &'a str,
    ntotal: u64,
    d: usize,
}

/// The flat storage index that follows an HNSW graph (parsed by `parse`): it holds the vectors
/// exactly, so it must be there (not skipped at save time), flat, and of the HNSW index's
/// `ntotal` and `d`.
fn hnsw_storage(
    cur: &mut Cursor<'_>,
    h: HnswStorage<'_>,
    parse: impl FnOnce(&mut Cursor<'_>) -> Result<Parsed>,
) -> Result<Parsed> {
    let st_at = cur.pos();
    let next = cur.peek_fourcc(h.what)?;
    if &next == b"null" {
        return Err(skipped_storage(cur, st_at, h.class, h.fourcc));
    }
    let inner = parse(cur)?;
    if inner.shape != Shape::Flat {
        return Err(cur.unsupported(
            st_at,
            format!(
                "{} whose storage is {} is not supported (expected {})",
                h.class, inner.description, h.expected
            ),
        ));
    }
    if inner.ntotal != h.ntotal || inner.dim != h.d {
        return Err(cur.data_err(
            st_at,
            format!(
                "{} has ntotal {} and d {} but its storage {} has ntotal {} and d {}",
                h.class, h.ntotal, h.d, inner.description, inner.ntotal, inner.dim
            ),
        ));
    }
    Ok(inner)
}

fn parse_hnsw_flat(cur: &mut Cursor<'_>, depth: usize) -> Result<Parsed> {
    let class = "IndexHNSWFlat";
    let h = float_header(cur, class)?;
    skip_hnsw_graph(cur, h.ntotal, h.ntotal_at, class)?;
    let inner = hnsw_storage(
        cur,
        HnswStorage {
            class,
            fourcc: "IHNf",
            what: "4-byte fourcc of the HNSW storage index",
            expected: "IndexFlatL2 or IndexFlatIP",
            ntotal: h.ntotal,
            d: h.d,
        },
        |cur| parse_float(cur, depth + 1),
    )?;
    Ok(Parsed {
        fourcc: *b"IHNf",
        class,
        description: format!("IndexHNSWFlat (storage {})", inner.class),
        shape: Shape::Hnsw,
        dim: h.d,
        ntotal: h.ntotal,
        metric: h.metric,
        kind: VectorKind::Float32,
        row_bytes: inner.row_bytes,
        nlist: None,
        blocks: inner.blocks,
        id_map: None,
    })
}

/// `IndexRefine`: a base index (skipped, whatever it stores) and a refine index holding the
/// vectors. Its rows are the refine index's, numbered `0..ntotal`: `IndexRefine::add` adds each
/// vector to both indexes, it has no `add_with_ids`, and its search passes the base index's
/// labels through as positions in the refine index.
fn parse_refine(cur: &mut Cursor<'_>, depth: usize) -> Result<Parsed> {
    let class = "IndexRefine";
    let h = float_header(cur, class)?;
    let base_at = cur.pos();
    let base = skip_index(cur, depth + 1, "the base index of the IndexRefine")?;
    if base.ntotal != Some(h.ntotal) {
        return Err(cur.data_err(
            base_at,
            format!(
                "the IndexRefine has ntotal {} but its base index ({}) holds {}",
                h.ntotal,
                base.class,
                base.ntotal
                    .map_or("nothing".to_string(), |n| format!("{n} vectors"))
            ),
        ));
    }
    let refine_at = cur.pos();
    let rf = cur.peek_fourcc("4-byte fourcc of the refine index of the IndexRefine")?;
    if !matches!(&rf, b"IxF2" | b"IxFI" | b"IxFl") {
        let shown = printable(&rf);
        return Err(match (class_name(&rf), refusal_reason(&rf)) {
            (Some(c), Some(reason)) => cur.unsupported(
                refine_at,
                format!(
                    "IndexRefine (fourcc `IxRF`) whose refine index is {c} (fourcc `{shown}`) is \
                     not read: that refine index {reason}"
                ),
            ),
            (Some(c), None) => cur.unsupported(
                refine_at,
                format!(
                    "IndexRefine (fourcc `IxRF`) whose refine index is {c} (fourcc `{shown}`) is \
                     not read: vmig reads an IndexRefine only when its refine index is flat \
                     (IndexRefineFlat)"
                ),
            ),
            (None, _) => refuse(cur, &rf, refine_at, "the refine index of an IndexRefine"),
        });
    }
    let refine = parse_float(cur, depth + 1)?;
    if refine.ntotal != h.ntotal || refine.dim != h.d {
        return Err(cur.data_err(
            refine_at,
            format!(
                "the IndexRefine has ntotal {} and d {} but its refine index {} has ntotal {} and d {}",
                h.ntotal, h.d, refine.description, refine.ntotal, refine.dim
            ),
        ));
    }
    cur.f32("k_factor (f32) of the IndexRefine")?;
    Ok(Parsed {
        fourcc: *b"IxRF",
        class: "IndexRefineFlat",
        description: format!(
            "IndexRefineFlat (base {}, refine {})",
            base.class, refine.class
        ),
        shape: Shape::Refine,
        dim: h.d,
        ntotal: h.ntotal,
        metric: h.metric,
        kind: VectorKind::Float32,
        row_bytes: refine.row_bytes,
        nlist: None,
        blocks: refine.blocks,
        id_map: None,
    })
}

/// Reads `nlist` and `nprobe` of an IVF header, then its coarse quantizer (`quantizer` steps
/// over it and returns its class and number of centroids), and checks `nlist` against it.
fn ivf_lists_and_quantizer(
    cur: &mut Cursor<'_>,
    ntotal: u64,
    quantizer: impl FnOnce(&mut Cursor<'_>) -> Result<Skipped>,
) -> Result<(u64, u64, &'static str)> {
    let nlist_at = cur.pos();
    let nlist = cur.u64("nlist (u64) of the IVF header")?;
    if nlist == 0 || nlist >= MAX_VEC_LEN {
        return Err(cur.data_err(
            nlist_at,
            format!("the IVF header has nlist = {nlist}; it must be between 1 and 2^40"),
        ));
    }
    cur.u64("nprobe (u64) of the IVF header")?;
    let q_at = cur.pos();
    let q = quantizer(cur)?;
    check_nlist(cur, nlist_at, nlist, q_at, &q, ntotal)?;
    Ok((nlist, nlist_at, q.class))
}

/// Skips an IVF direct map, whatever its type.
fn skip_direct_map(cur: &mut Cursor<'_>) -> Result<()> {
    let dm_at = cur.pos();
    let dm_type = cur.u8("direct map type (i8: 0 none, 1 array, 2 hashtable)")?;
    if dm_type > 2 {
        return Err(cur.data_err(
            dm_at,
            format!(
                "unknown direct map type {dm_type}; expected 0 (none), 1 (array) or 2 (hashtable)"
            ),
        ));
    }
    cur.skip_vec(8, "the direct map array (vec<i64>)")?;
    if dm_type == 2 {
        cur.skip_vec(16, "the direct map hashtable (vec<(i64, i64)>)")?;
    }
    Ok(())
}

/// `IwFl`, the legacy `IvFl` / `IvFL`, and `IwFd`.
fn parse_ivf_flat(cur: &mut Cursor<'_>, fourcc: [u8; 4], depth: usize) -> Result<Parsed> {
    let class = match &fourcc {
        b"IwFd" => "IndexIVFFlatDedup",
        b"IwFl" => "IndexIVFFlat",
        _ => "IndexIVFFlat (legacy format)",
    };
    let dedup = &fourcc == b"IwFd";
    let h = float_header(cur, class)?;
    let row_bytes = h.d * 4;
    // Every entry stores 4·d bytes of codes and an 8-byte id; a dedup duplicate is a 16-byte
    // pair in its table instead.
    let entry = (row_bytes as u64).saturating_add(8);
    let (unit, unit_what) = if dedup {
        (
            entry.min(16),
            "an entry or a 16-byte (stored id, duplicate id) pair".to_string(),
        )
    } else {
        (
            entry,
            format!("a vector of d = {} floats and its 8-byte id", h.d),
        )
    };
    cur.check_fits(
        h.ntotal_at,
        &format!("ntotal of the {class} header"),
        h.ntotal,
        unit,
        &unit_what,
    )?;
    let (nlist, nlist_at, quantizer) = ivf_lists_and_quantizer(cur, h.ntotal, |c| {
        skip_index(c, depth + 1, "the IVF coarse quantizer")
    })?;
    let code_size = CodeSize {
        bytes: row_bytes as u64,
        why: format!(
            "an {class} of d = {} stores 4 × d = {row_bytes} bytes per vector",
            h.d
        ),
    };
    let blocks = match &fourcc {
        b"IvFl" | b"IvFL" => {
            let ids = legacy_list_ids(cur, nlist, nlist_at, h.ntotal)?;
            skip_direct_map(cur)?;
            legacy_list_codes(cur, nlist, ids, h.d as u64, &fourcc == b"IvFl")?
        }
        b"IwFd" => {
            skip_direct_map(cur)?;
            let table = dedup_table(cur, h.ntotal)?;
            let stored = h.ntotal - table.pairs;
            let lists = inverted_lists(cur, nlist, Some(&code_size), stored, class)?;
            let dups = restore_duplicates(cur, &lists, &table, row_bytes as u64)?;
            lists.into_iter().chain(dups).collect()
        }
        _ => {
            skip_direct_map(cur)?;
            inverted_lists(cur, nlist, Some(&code_size), h.ntotal, class)?
        }
    };
    Ok(Parsed {
        fourcc,
        class,
        description: format!("{class} (nlist {nlist}, quantizer {quantizer})"),
        shape: Shape::Ivf,
        dim: h.d,
        ntotal: h.ntotal,
        metric: h.metric,
        kind: VectorKind::Float32,
        row_bytes,
        nlist: Some(nlist),
        blocks,
        id_map: None,
    })
}

/// The code size inverted lists must have, and why (for the error).
struct CodeSize {
    bytes: u64,
    why: String,
}

/// Reads `ArrayInvertedLists` (`ilar`): its header, the list sizes, and the offsets of every
/// non-empty list's codes and ids, which must add up to `entries`. `code_size` is what the
/// owning index requires (`None` when the lists are only skipped: any code size the file holds).
fn inverted_lists(
    cur: &mut Cursor<'_>,
    nlist: u64,
    code_size: Option<&CodeSize>,
    entries: u64,
    class: &str,
) -> Result<Vec<Block>> {
    let il_at = cur.pos();
    let il = cur.fourcc("4-byte fourcc of the inverted lists")?;
    match &il {
        b"ilar" => {}
        b"il00" => {
            return Err(cur.unsupported(
                il_at,
                format!(
                    "the inverted lists of this {class} were not saved with it (fourcc `il00`): \
                     the file holds no vectors. Save the index together with its lists."
                ),
            ))
        }
        other => {
            return Err(cur.unsupported(
                il_at,
                format!(
                    "inverted lists of type `{}` (e.g. `ilod` = OnDiskInvertedLists, whose data \
                     lives in a separate .ivfdata file) are not stored inline; vmig reads only \
                     ArrayInvertedLists (`ilar`). Load the index with faiss, copy its lists into \
                     an ArrayInvertedLists (index.replace_invlists) and save it again.",
                    printable(other)
                ),
            ))
        }
    }
    let at = cur.pos();
    let il_nlist = cur.u64("nlist (u64) of the inverted lists")?;
    if il_nlist != nlist {
        return Err(cur.data_err(
            at,
            format!("the inverted lists have nlist {il_nlist} but the IVF header says {nlist}"),
        ));
    }
    let at = cur.pos();
    let list_code_size = cur.u64("code_size (u64) of the inverted lists")?;
    if let Some(want) = code_size {
        if list_code_size != want.bytes {
            return Err(cur.data_err(
                at,
                format!(
                    "the inverted lists have code_size {list_code_size}; {}",
                    want.why
                ),
            ));
        }
    }
    let lt_at = cur.pos();
    let list_type = cur.fourcc("4-byte list type of the inverted lists (`full` or `sprs`)")?;
    let sizes = match &list_type {
        b"full" => {
            let at = cur.pos();
            let (n, _) = cur.vec_header(8, "the list sizes (vec<u64>)")?;
            if n != nlist {
                return Err(cur.data_err(
                    at,
                    format!("the list sizes array has {n} entries but nlist is {nlist}"),
                ));
            }
            non_empty_lists(cur, n, entries)?
        }
        b"sprs" => sparse_lists(cur, nlist)?,
        other => {
            return Err(cur.data_err(
                lt_at,
                format!(
                    "unknown inverted-list size encoding `{}`; expected `full` or `sprs`",
                    printable(other)
                ),
            ))
        }
    };
    let total = sizes
        .iter()
        .try_fold(0u64, |acc, (_, s)| acc.checked_add(*s));
    if total != Some(entries) {
        return Err(cur.data_err(
            lt_at,
            format!(
                "the inverted lists hold {} entries in all but {}",
                total.map_or("more than 2^64".to_string(), |t| t.to_string()),
                if class == "IndexIVFFlatDedup" {
                    format!("ntotal minus the duplicates is {entries}")
                } else {
                    format!("ntotal is {entries}")
                }
            ),
        ));
    }
    let mut blocks = Vec::with_capacity(sizes.len());
    for (list_no, rows) in sizes {
        let codes_offset = cur.pos();
        let code_bytes = rows.checked_mul(list_code_size).ok_or_else(|| {
            cur.data_err(
                codes_offset,
                format!("inverted list {list_no} claims {rows} entries"),
            )
        })?;
        cur.skip(
            code_bytes,
            &format!("the codes of inverted list {list_no}: {rows} × {list_code_size} bytes"),
        )?;
        let ids_offset = cur.pos();
        let id_bytes = rows.checked_mul(8).ok_or_else(|| {
            cur.data_err(
                ids_offset,
                format!("inverted list {list_no} claims {rows} entries"),
            )
        })?;
        cur.skip(
            id_bytes,
            &format!("the ids of inverted list {list_no}: {rows} × 8 bytes"),
        )?;
        blocks.push(Block {
            list_no: Some(list_no),
            rows,
            codes_offset,
            ids: BlockIds::Stored { offset: ids_offset },
        });
    }
    Ok(blocks)
}

/// The `sprs` list sizes: `(list_no, size)` pairs, each list at most once; the non-empty ones
/// in list order.
fn sparse_lists(cur: &mut Cursor<'_>, nlist: u64) -> Result<Vec<(u64, u64)>> {
    let at = cur.pos();
    let (n, first) = cur.vec_header(
        8,
        "the (list_no, size) pairs of the sparse lists (vec<u64>)",
    )?;
    if !n.is_multiple_of(2) {
        return Err(cur.data_err(
            at,
            format!(
                "the sparse list sizes hold {n} numbers; they must come in (list_no, size) pairs"
            ),
        ));
    }
    if n / 2 > nlist {
        return Err(cur.data_err(
            at,
            format!(
                "the sparse list sizes name {} lists but nlist is {nlist}; each list \
                 appears at most once",
                n / 2
            ),
        ));
    }
    let flat = cur.u64s(n, "the (list_no, size) pairs")?;
    let mut pairs = Vec::with_capacity(flat.len() / 2);
    for (k, pair) in flat.chunks_exact(2).enumerate() {
        let (list_no, size) = (pair[0], pair[1]);
        if list_no >= nlist {
            return Err(cur.data_err(
                first + k as u64 * 16,
                format!("sparse list entry names list {list_no} but nlist is {nlist}"),
            ));
        }
        pairs.push((list_no, size, k));
    }
    pairs.sort_unstable();
    for w in pairs.windows(2) {
        if w[0].0 == w[1].0 {
            return Err(cur.data_err(
                first + w[1].2 as u64 * 16,
                format!("sparse list entry names list {} twice", w[1].0),
            ));
        }
    }
    Ok(pairs
        .into_iter()
        .filter(|p| p.1 > 0)
        .map(|(l, s, _)| (l, s))
        .collect())
}

/// The ids part of a legacy `IvFl`/`IvFL` file: one `vec<i64>` per list, right after the coarse
/// quantizer. Returns `(list_no, rows, ids offset)` of the non-empty lists, whose sizes must add
/// up to `ntotal` (read one by one: memory is bounded by `ntotal`, not `nlist`).
fn legacy_list_ids(
    cur: &mut Cursor<'_>,
    nlist: u64,
    nlist_at: u64,
    ntotal: u64,
) -> Result<Vec<(u64, u64, u64)>> {
    let start = cur.pos();
    // Each list has an 8-byte count here and another before its codes.
    cur.check_fits(
        nlist_at,
        "nlist of the legacy IVF header",
        nlist,
        16,
        "the 8-byte counts of a list's ids and codes",
    )?;
    let mut lists = Vec::new();
    let mut total = 0u64;
    for list_no in 0..nlist {
        let at = cur.pos();
        let (rows, ids_offset) = cur.vec_header(
            8,
            &format!("the ids of inverted list {list_no} (vec<i64>, legacy format)"),
        )?;
        total = match total.checked_add(rows) {
            Some(t) if t <= ntotal => t,
            _ => {
                return Err(cur.data_err(
                    at,
                    format!(
                        "inverted list {list_no} has {rows} ids, which takes the lists past \
                         ntotal = {ntotal} entries"
                    ),
                ))
            }
        };
        cur.skip(rows * 8, "the ids of an inverted list")?;
        if rows > 0 {
            lists.push((list_no, rows, ids_offset));
        }
    }
    if total != ntotal {
        return Err(cur.data_err(
            start,
            format!("the inverted lists hold {total} ids in all but ntotal is {ntotal}"),
        ));
    }
    Ok(lists)
}

/// The codes part of a legacy file, after the direct map: one vector per list, of `f32`
/// (`IvFl`, counted in floats) or of bytes (`IvFL`), each holding exactly its list's rows.
fn legacy_list_codes(
    cur: &mut Cursor<'_>,
    nlist: u64,
    ids: Vec<(u64, u64, u64)>,
    d: u64,
    floats: bool,
) -> Result<Vec<Block>> {
    let (elem, per_row, unit) = if floats {
        (4, d, "floats")
    } else {
        (1, 4 * d, "bytes")
    };
    let mut ids = ids.into_iter().peekable();
    let mut blocks = Vec::new();
    for list_no in 0..nlist {
        let (rows, ids_offset) = match ids.peek() {
            Some(&(l, rows, off)) if l == list_no => {
                ids.next();
                (rows, off)
            }
            _ => (0, 0),
        };
        let at = cur.pos();
        let (n, codes_offset) = cur.vec_header(
            elem,
            &format!(
                "the codes of inverted list {list_no} (vec<{}>, legacy format)",
                if floats { "f32" } else { "u8" }
            ),
        )?;
        // rows ≤ ntotal, whose entries were checked to fit in the file: no overflow.
        let want = rows.saturating_mul(per_row);
        if n != want {
            return Err(cur.data_err(
                at,
                format!(
                    "the codes of inverted list {list_no} hold {n} {unit} but the list has {rows} \
                     ids, so {rows} × {per_row} = {want} were expected"
                ),
            ));
        }
        cur.skip(n * elem, "the codes of an inverted list")?;
        if rows > 0 {
            blocks.push(Block {
                list_no: Some(list_no),
                rows,
                codes_offset,
                ids: BlockIds::Stored { offset: ids_offset },
            });
        }
    }
    Ok(blocks)
}

/// Where an `IndexIVFFlatDedup`'s `instances` table is.
struct DedupTable {
    /// Number of `(stored id, duplicate id)` pairs.
    pairs: u64,
    /// Byte offset of the first pair.
    first: u64,
}

fn dedup_table(cur: &mut Cursor<'_>, ntotal: u64) -> Result<DedupTable> {
    let at = cur.pos();
    let (n, first) = cur.vec_header(
        8,
        "the instances table of the IndexIVFFlatDedup (vec<i64> of (stored id, duplicate id) pairs)",
    )?;
    if !n.is_multiple_of(2) {
        return Err(cur.data_err(
            at,
            format!(
                "the IndexIVFFlatDedup instances table holds {n} ids; they must come in \
                 (stored id, duplicate id) pairs"
            ),
        ));
    }
    let pairs = n / 2;
    if pairs > ntotal {
        return Err(cur.data_err(
            at,
            format!(
                "the IndexIVFFlatDedup instances table has {pairs} duplicates but ntotal, which \
                 counts them, is {ntotal}"
            ),
        ));
    }
    cur.skip(n * 8, "the instances table")?;
    Ok(DedupTable { pairs, first })
}

/// One 1-row block per duplicate of an `IndexIVFFlatDedup`, in table order: the codes of the
/// stored entry it repeats, its id from the table. Reads the table and the lists' stored ids.
fn restore_duplicates(
    cur: &Cursor<'_>,
    lists: &[Block],
    table: &DedupTable,
    row_bytes: u64,
) -> Result<Vec<Block>> {
    if table.pairs == 0 {
        return Ok(Vec::new());
    }
    let mut keys = Vec::with_capacity(usize::try_from(table.pairs).unwrap_or(0));
    let mut wanted: HashMap<i64, Option<(usize, u64)>> = HashMap::new();
    cur.each_i64_at(
        table.first,
        table.pairs * 2,
        "the instances table",
        |k, v| {
            if k % 2 == 0 {
                keys.push(v);
                wanted.insert(v, None);
            }
            Ok(())
        },
    )?;
    for (bi, b) in lists.iter().enumerate() {
        let BlockIds::Stored { offset } = b.ids else {
            continue;
        };
        cur.each_i64_at(offset, b.rows, "the ids of an inverted list", |row, id| {
            let Some(slot) = wanted.get_mut(&id) else {
                return Ok(());
            };
            if let Some((b0, r0)) = *slot {
                let l0 = lists.get(b0).and_then(|b| b.list_no).unwrap_or_default();
                return Err(cur.unsupported(
                    offset + row * 8,
                    format!(
                        "the IndexIVFFlatDedup stores id {id} twice (entry {r0} of inverted \
                         list {l0} and entry {row} of inverted list {}), and its instances \
                         table names that id: which of the two vectors its duplicates repeat \
                         cannot be known",
                        b.list_no.unwrap_or_default()
                    ),
                ));
            }
            *slot = Some((bi, row));
            Ok(())
        })?;
    }
    let mut out = Vec::with_capacity(keys.len());
    for (j, key) in keys.into_iter().enumerate() {
        let at = table.first + j as u64 * 16;
        let Some(&Some((bi, row))) = wanted.get(&key) else {
            return Err(cur.data_err(
                at,
                format!(
                    "entry {j} of the IndexIVFFlatDedup instances table says a duplicate \
                     repeats the stored id {key}, but no inverted list holds id {key}"
                ),
            ));
        };
        let codes_offset = lists
            .get(bi)
            .map_or(0, |b| b.codes_offset + row * row_bytes);
        out.push(Block {
            list_no: None,
            rows: 1,
            codes_offset,
            ids: BlockIds::Stored { offset: at + 8 },
        });
    }
    Ok(out)
}

/// Checks the IVF header's `nlist` against its coarse quantizer, which holds one centroid per
/// list: a trained index has exactly `nlist` of them (an untrained, empty one none). This
/// bounds `nlist` by data the file really holds before the list sizes are read.
fn check_nlist(
    cur: &Cursor<'_>,
    nlist_at: u64,
    nlist: u64,
    q_at: u64,
    q: &Skipped,
    ntotal: u64,
) -> Result<()> {
    let Some(centroids) = q.ntotal else {
        return Ok(());
    };
    if centroids == nlist || (centroids == 0 && ntotal == 0) {
        return Ok(());
    }
    Err(cur.data_err(
        nlist_at,
        format!(
            "the IVF header has nlist = {nlist} but its coarse quantizer ({} at byte {q_at}) \
             holds {centroids} centroids, one per list, so nlist must be {centroids}; the file \
             is corrupted",
            q.class
        ),
    ))
}

/// Reads the `full` list sizes (`n` × u64, already checked to fit in the file) one by one and
/// keeps only the non-empty lists, so memory is bounded by `ntotal` (whose entries the file
/// holds), not by `nlist`; stops at the first list that would take the total past `ntotal`.
fn non_empty_lists(cur: &mut Cursor<'_>, n: u64, ntotal: u64) -> Result<Vec<(u64, u64)>> {
    let mut lists = Vec::new();
    let mut total = 0u64;
    for list_no in 0..n {
        let at = cur.pos();
        let size = cur.u64("the list sizes")?;
        if size == 0 {
            continue;
        }
        total = match total.checked_add(size) {
            Some(t) if t <= ntotal => t,
            _ => {
                return Err(cur.data_err(
                    at,
                    format!(
                        "inverted list {list_no} has size {size}, which takes the lists past \
                         ntotal = {ntotal} entries"
                    ),
                ))
            }
        };
        lists.push((list_no, size));
    }
    Ok(lists)
}

fn skip_pq(cur: &mut Cursor<'_>) -> Result<()> {
    cur.skip(24, "product quantizer d, M and nbits (3 × u64)")?;
    cur.skip_vec(4, "the product quantizer centroids (vec<f32>)")?;
    Ok(())
}

fn skip_sq(cur: &mut Cursor<'_>) -> Result<()> {
    cur.skip(
        28,
        "scalar quantizer qtype, rangestat, rangestat_arg, d and code_size",
    )?;
    cur.skip_vec(4, "the scalar quantizer trained values (vec<f32>)")?;
    Ok(())
}

fn skip_residual_quantizer(cur: &mut Cursor<'_>) -> Result<()> {
    cur.skip(16, "additive quantizer d and M (2 × u64)")?;
    cur.skip_vec(8, "the additive quantizer nbits (vec<u64>)")?;
    cur.u8("additive quantizer is_trained flag")?;
    cur.skip_vec(4, "the additive quantizer codebooks (vec<f32>)")?;
    let search_type = cur.i32("additive quantizer search type (i32)")?;
    cur.skip(8, "additive quantizer norm_min and norm_max (2 × f32)")?;
    if (6..=9).contains(&search_type) {
        cur.skip_vec(4, "the additive quantizer norm codes (xbvec)")?;
    }
    if search_type == 8 || search_type == 9 {
        cur.skip_vec(4, "the additive quantizer norm tables (vec<f32>)")?;
    }
    cur.skip(
        8,
        "residual quantizer train_type and max_beam_size (2 × i32)",
    )
}

/// What [`skip_index`] stepped over.
struct Skipped {
    /// Class name (`"none"` for `null`).
    class: &'static str,
    /// The `ntotal` of its header (`None` for `null`); for an IVF coarse quantizer, the number
    /// of centroids, which must equal the IVF's `nlist`.
    ntotal: Option<u64>,
}

/// Skips a whole float index of any type vmig knows how to step over (IVF coarse quantizers,
/// the base index of an `IndexRefine`); returns its class name and `ntotal`. `role` names the
/// place in messages (e.g. "the IVF coarse quantizer").
fn skip_index(cur: &mut Cursor<'_>, depth: usize, role: &str) -> Result<Skipped> {
    depth_check(cur, depth)?;
    let at = cur.pos();
    let fourcc = cur.fourcc(&format!("4-byte fourcc of {role}"))?;
    let Some(class) = class_name(&fourcc) else {
        return Err(refuse(cur, &fourcc, at, role));
    };
    let ntotal = match &fourcc {
        b"null" => {
            return Ok(Skipped {
                class: "none",
                ntotal: None,
            })
        }
        b"IxF2" | b"IxFI" | b"IxFl" => parse_flat(cur, fourcc)?.ntotal,
        b"IHNf" | b"IHNp" | b"IHNs" | b"IHN2" | b"IHNc" => {
            let h = float_header(cur, class)?;
            if &fourcc == b"IHNc" {
                cur.skip(
                    6,
                    "HNSW-CAGRA keep_max_size_level0, base_level_only and entry points",
                )?;
            }
            skip_hnsw_graph(cur, h.ntotal, h.ntotal_at, class)?;
            skip_index(cur, depth + 1, "the HNSW storage index")?;
            h.ntotal
        }
        b"IxPq" | b"IxPQ" | b"IxPo" => {
            let h = float_header(cur, class)?;
            skip_pq(cur)?;
            cur.skip_vec(1, "the PQ codes (vec<u8>)")?;
            if &fourcc != b"IxPQ" {
                cur.skip(9, "PQ search_type, encode_signs and polysemous_ht")?;
            }
            h.ntotal
        }
        b"IxSQ" => {
            let h = float_header(cur, class)?;
            skip_sq(cur)?;
            cur.skip_vec(1, "the SQ codes (vec<u8>)")?;
            h.ntotal
        }
        b"Imiq" => {
            let h = float_header(cur, class)?;
            skip_pq(cur)?;
            h.ntotal
        }
        b"ImRQ" => {
            let h = float_header(cur, class)?;
            skip_residual_quantizer(cur)?;
            cur.f32("residual coarse quantizer beam_factor (f32)")?;
            h.ntotal
        }
        b"IxRq" => {
            let h = float_header(cur, class)?;
            skip_residual_quantizer(cur)?;
            cur.u64("residual quantizer code_size (u64)")?;
            cur.skip_vec(1, "the residual quantizer codes (vec<u8>)")?;
            h.ntotal
        }
        b"IxMp" | b"IxM2" => {
            let h = float_header(cur, class)?;
            skip_index(cur, depth + 1, "the index inside an id map")?;
            cur.skip_vec(8, "the id map (vec<i64>)")?;
            h.ntotal
        }
        b"IxRF" => {
            let h = float_header(cur, class)?;
            skip_index(cur, depth + 1, "the base index of an IndexRefine")?;
            skip_index(cur, depth + 1, "the refine index of an IndexRefine")?;
            cur.f32("refine k_factor (f32)")?;
            h.ntotal
        }
        b"Ix2L" => {
            let h = float_header(cur, class)?;
            skip_index(cur, depth + 1, "the quantizer of an Index2Layer")?;
            cur.skip(9, "two-level nlist and quantizer_trains_alone")?;
            skip_pq(cur)?;
            cur.skip(24, "two-level code sizes (3 × u64)")?;
            cur.skip_vec(1, "the two-level codes (vec<u8>)")?;
            h.ntotal
        }
        b"IwFl" | b"IwPQ" | b"IwSq" | b"IwSQ" => {
            let h = float_header(cur, class)?;
            cur.check_fits(
                h.ntotal_at,
                &format!("ntotal of the {class} header"),
                h.ntotal,
                8,
                "an 8-byte id in an inverted list",
            )?;
            let (nlist, _, _) = ivf_lists_and_quantizer(cur, h.ntotal, |c| {
                skip_index(c, depth + 1, "the IVF coarse quantizer")
            })?;
            skip_direct_map(cur)?;
            match &fourcc {
                b"IwPQ" => {
                    cur.u8("IVFPQ by_residual flag")?;
                    cur.u64("IVFPQ code_size (u64)")?;
                    skip_pq(cur)?;
                }
                b"IwSq" => {
                    skip_sq(cur)?;
                    cur.u64("IVFSQ code_size (u64)")?;
                    cur.u8("IVFSQ by_residual flag")?;
                }
                b"IwSQ" => {
                    skip_sq(cur)?;
                    cur.u64("IVFSQ code_size (u64)")?;
                }
                _ => {}
            }
            inverted_lists(cur, nlist, None, h.ntotal, class)?;
            h.ntotal
        }
        _ => {
            return Err(cur.unsupported(
                at,
                format!(
                    "{role} is a {class} (fourcc `{}`), which vmig cannot skip over",
                    printable(&fourcc)
                ),
            ))
        }
    };
    Ok(Skipped {
        class,
        ntotal: Some(ntotal),
    })
}

struct BinaryHeader {
    d: usize,
    code_size: usize,
    ntotal: u64,
    /// Byte offset of the `ntotal` field, for errors about it.
    ntotal_at: u64,
}

fn binary_header(cur: &mut Cursor<'_>, class: &str) -> Result<BinaryHeader> {
    let at = cur.pos();
    let d = cur.i32(&format!("dimension d in bits (i32) of the {class} header"))?;
    if d <= 0 || d % 8 != 0 {
        return Err(cur.data_err(
            at,
            format!("the {class} header has d = {d} bits; it must be a positive multiple of 8"),
        ));
    }
    let at = cur.pos();
    let code_size = cur.i32(&format!("code_size (i32) of the {class} header"))?;
    if code_size != d / 8 {
        return Err(cur.data_err(
            at,
            format!("the {class} header has code_size {code_size}; for d = {d} bits it must be d / 8 = {}", d / 8),
        ));
    }
    let at = cur.pos();
    let ntotal = cur.i64(&format!("ntotal (i64) of the {class} header"))?;
    let ntotal = u64::try_from(ntotal).map_err(|_| {
        cur.data_err(
            at,
            format!("the {class} header has ntotal = {ntotal}; it must be ≥ 0"),
        )
    })?;
    cur.u8(&format!("is_trained flag of the {class} header"))?;
    cur.i32(&format!("metric type (i32) of the {class} header"))?;
    Ok(BinaryHeader {
        d: d as usize,
        code_size: code_size as usize,
        ntotal,
        ntotal_at: at,
    })
}

fn parse_binary(cur: &mut Cursor<'_>, depth: usize) -> Result<Parsed> {
    depth_check(cur, depth)?;
    let at = cur.pos();
    let what = if depth == 0 {
        "4-byte fourcc of the index"
    } else {
        "4-byte fourcc of the nested binary index"
    };
    let fourcc = cur.fourcc(what)?;
    match &fourcc {
        b"IBxF" => parse_binary_flat(cur, fourcc),
        b"IBMp" | b"IBM2" => {
            let class = class_name(&fourcc).unwrap_or("IndexBinaryIDMap");
            let h = binary_header(cur, class)?;
            check_id_map_fits(cur, class, h.ntotal_at, h.ntotal)?;
            let inner_at = cur.pos();
            let inner = parse_binary(cur, depth + 1)?;
            let header = IdMapHeader {
                fourcc,
                class,
                ntotal: h.ntotal,
                dim: h.d,
                metric: Metric::Hamming,
                kind: VectorKind::Binary,
            };
            read_id_map(cur, header, inner_at, inner)
        }
        b"IBHf" => parse_binary_hnsw(cur, depth),
        b"IBwF" => parse_binary_ivf(cur, depth),
        _ => Err(refuse(cur, &fourcc, at, "a binary index")),
    }
}

fn parse_binary_flat(cur: &mut Cursor<'_>, fourcc: [u8; 4]) -> Result<Parsed> {
    let class = "IndexBinaryFlat";
    let h = binary_header(cur, class)?;
    cur.check_fits(
        h.ntotal_at,
        "ntotal of the IndexBinaryFlat header",
        h.ntotal,
        h.code_size as u64,
        &format!("a vector of {} bytes", h.code_size),
    )?;
    let n_at = cur.pos();
    let (n, codes_offset) = cur.vec_header(1, "the IndexBinaryFlat codes (vec<u8>)")?;
    let expected = h.ntotal.checked_mul(h.code_size as u64);
    if expected != Some(n) {
        return Err(cur.data_err(
            n_at,
            format!(
                "the IndexBinaryFlat codes hold {n} bytes but ntotal × code_size = {} × {} = {}",
                h.ntotal,
                h.code_size,
                expected.map_or("overflow".to_string(), |e| e.to_string())
            ),
        ));
    }
    cur.skip(n, "the IndexBinaryFlat codes")?;
    Ok(Parsed {
        fourcc,
        class,
        description: class.to_string(),
        shape: Shape::Flat,
        dim: h.d,
        ntotal: h.ntotal,
        metric: Metric::Hamming,
        kind: VectorKind::Binary,
        row_bytes: h.code_size,
        nlist: None,
        blocks: single_block(h.ntotal, codes_offset),
        id_map: None,
    })
}

/// `IndexBinaryHNSW`: its graph (skipped) and its `IndexBinaryFlat` storage, which holds the
/// vectors exactly.
fn parse_binary_hnsw(cur: &mut Cursor<'_>, depth: usize) -> Result<Parsed> {
    let class = "IndexBinaryHNSW";
    let h = binary_header(cur, class)?;
    skip_hnsw_graph(cur, h.ntotal, h.ntotal_at, class)?;
    let inner = hnsw_storage(
        cur,
        HnswStorage {
            class,
            fourcc: "IBHf",
            what: "4-byte fourcc of the binary HNSW storage index",
            expected: "IndexBinaryFlat",
            ntotal: h.ntotal,
            d: h.d,
        },
        |cur| parse_binary(cur, depth + 1),
    )?;
    Ok(Parsed {
        fourcc: *b"IBHf",
        class,
        description: format!("IndexBinaryHNSW (storage {})", inner.class),
        shape: Shape::Hnsw,
        dim: h.d,
        ntotal: h.ntotal,
        metric: Metric::Hamming,
        kind: VectorKind::Binary,
        row_bytes: inner.row_bytes,
        nlist: None,
        blocks: inner.blocks,
        id_map: None,
    })
}

/// `IndexBinaryIVF`: a binary IVF header (its quantizer is a binary index with one centroid
/// per list), a direct map, and `ilar` lists of `d/8`-byte codes with stored ids.
fn parse_binary_ivf(cur: &mut Cursor<'_>, depth: usize) -> Result<Parsed> {
    let class = "IndexBinaryIVF";
    let h = binary_header(cur, class)?;
    cur.check_fits(
        h.ntotal_at,
        "ntotal of the IndexBinaryIVF header",
        h.ntotal,
        h.code_size as u64 + 8,
        &format!("a vector of {} bytes and its 8-byte id", h.code_size),
    )?;
    let (nlist, _, quantizer) = ivf_lists_and_quantizer(cur, h.ntotal, |c| {
        let q = parse_binary(c, depth + 1)?;
        Ok(Skipped {
            class: q.class,
            ntotal: Some(q.ntotal),
        })
    })?;
    skip_direct_map(cur)?;
    let code_size = CodeSize {
        bytes: h.code_size as u64,
        why: format!(
            "an IndexBinaryIVF of d = {} bits stores d / 8 = {} bytes per vector",
            h.d, h.code_size
        ),
    };
    let blocks = inverted_lists(cur, nlist, Some(&code_size), h.ntotal, class)?;
    Ok(Parsed {
        fourcc: *b"IBwF",
        class,
        description: format!("IndexBinaryIVF (nlist {nlist}, quantizer {quantizer})"),
        shape: Shape::Ivf,
        dim: h.d,
        ntotal: h.ntotal,
        metric: Metric::Hamming,
        kind: VectorKind::Binary,
        row_bytes: h.code_size,
        nlist: Some(nlist),
        blocks,
        id_map: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat_bytes(d: i32, rows: &[f32], metric: i32) -> Vec<u8> {
        let mut v = b"IxFl".to_vec();
        v.extend_from_slice(&d.to_le_bytes());
        v.extend_from_slice(&((rows.len() as i64) / d as i64).to_le_bytes());
        v.extend_from_slice(&(1i64 << 20).to_le_bytes());
        v.extend_from_slice(&(1i64 << 20).to_le_bytes());
        v.push(1);
        v.extend_from_slice(&metric.to_le_bytes());
        if metric > 1 {
            v.extend_from_slice(&0f32.to_le_bytes());
        }
        v.extend_from_slice(&(rows.len() as u64).to_le_bytes());
        for r in rows {
            v.extend_from_slice(&r.to_le_bytes());
        }
        v
    }

    #[test]
    fn hand_built_flat_parses_and_names_truncation() {
        let bytes = flat_bytes(2, &[1.0, 2.0, 3.0, 4.0], 2);
        let l = parse_layout(&bytes, "mem").unwrap();
        assert_eq!(l.ntotal, 2);
        assert_eq!(l.blocks[0].codes_offset, 4 + 37 + 8);
        let err = parse_layout(&&bytes[..bytes.len() - 1], "mem").unwrap_err();
        assert!(matches!(err, Error::Data { .. }), "{err}");
        assert!(err.to_string().contains("file ends at byte 64"), "{err}");
    }

    #[test]
    fn vec_counts_over_faiss_bound_are_rejected() {
        let mut bytes = flat_bytes(2, &[1.0, 2.0], 1);
        bytes[37..45].copy_from_slice(&(1u64 << 40).to_le_bytes());
        let err = parse_layout(&bytes, "mem").unwrap_err();
        assert!(err.to_string().contains("mem at byte 37"), "{err}");
        assert!(err.to_string().contains("2^40"), "{err}");
    }

    #[test]
    fn zero_dimension_is_rejected() {
        let mut bytes = flat_bytes(2, &[], 1);
        bytes[4..8].copy_from_slice(&0i32.to_le_bytes());
        let err = parse_layout(&bytes, "mem").unwrap_err();
        assert!(err.to_string().contains("must be > 0"), "{err}");
    }
}
