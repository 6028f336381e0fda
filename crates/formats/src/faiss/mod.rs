//! Layout parser for Faiss index files: which byte ranges of a file hold which vectors and ids.
//!
//! [`parse_layout`] reads only headers and small arrays through a random-access [`ReadAt`]: it
//! never touches the vector bodies, so a 500 GB index is parsed with a few dozen small reads.
//! The result, a [`FaissLayout`], lists [`Block`]s — runs of rows whose codes are contiguous in
//! the file and whose ids are either implicit (`first..first+rows`), stored as `rows × i64`
//! at a known offset, or stored as inner ids to translate through an id map. A reader then streams each block in chunks of its own choosing and turns
//! the bytes into Arrow with the helpers in this module ([`vectors_from_le`], [`ids_from_le`],
//! [`implicit_ids`], [`first_non_finite`]), or with [`read_rows`] for small reads.
//!
//! # Supported index types (vectors are recovered bit-exactly)
//!
//! | fourcc | class | blocks |
//! |---|---|---|
//! | `IxF2`, `IxFI`, `IxFl` | `IndexFlatL2`, `IndexFlatIP`, `IndexFlat` (any metric) | one block, implicit ids `0..ntotal` |
//! | `IHNf` | `IndexHNSWFlat` (with its storage; the graph is skipped) | one block (the nested flat storage), implicit ids |
//! | `IwFl` | `IndexIVFFlat` (`ilar` lists, `full` or `sprs`; any direct map; any skippable coarse quantizer) | one block per non-empty list, in list order, ids stored in the list |
//! | `IvFl`, `IvFL` | `IndexIVFFlat`, legacy formats (all lists' ids first, then all lists' codes as `vec<f32>` / `vec<u8>`) | as `IwFl` |
//! | `IwFd` | `IndexIVFFlatDedup` | as `IwFl`, then one 1-row block per entry of its `instances` table (a duplicate: the stored vector it equals, the duplicate's id from the table) |
//! | `IxRF` with a flat refine index | `IndexRefineFlat` / `IndexRefine(base, IndexFlat*)`, the base any index vmig can skip (flat, HNSW, PQ, SQ, residual, 2-level, IVF-Flat/PQ/SQ, id map, refine) | one block (the refine index's flat storage), implicit ids `0..ntotal` (`IndexRefine` has no `add_with_ids`; its search uses the base's labels as positions in the refine index); the (possibly lossy) base is skipped |
//! | `IxMp`, `IxM2` over any of the above | `IndexIDMap`, `IndexIDMap2` | flat, HNSW, refine: one block, ids from the id map; IVF: the IVF's blocks with [`BlockIds::Mapped`] ids through [`FaissLayout::id_map`] |
//! | `IBxF` | `IndexBinaryFlat` | one block, implicit ids |
//! | `IBHf` | `IndexBinaryHNSW` (its nested `IndexBinaryFlat` storage; the graph is skipped) | one block, implicit ids |
//! | `IBwF` | `IndexBinaryIVF` (`ilar` lists; a flat or HNSW binary quantizer) | one block per non-empty list, ids stored in the list |
//! | `IBMp`, `IBM2` over any binary type above | `IndexBinaryIDMap`, `IndexBinaryIDMap2` | as `IxMp` |
//!
//! Every lossy type (PQ, SQ, additive quantisers, pre-transforms, …) is refused with
//! [`Error::Unsupported`](vmig_core::Error::Unsupported) naming the fourcc, the class and why —
//! so is an `IndexRefine` whose *refine* index is lossy. Lossless types still refused, each
//! naming itself: NSG and NNDescent graphs (`INSf`, `INNf`), HNSW-CAGRA (`IHNc`, `IHc2`),
//! binary hash indexes (`IBHh`, `IBHm`), SVS (`ISVD`), Panorama variants (`IwP2`, `IxFP`, …),
//! inverted lists kept outside the file (`ilod`, `il00`) and nested id maps.
//!
//! # Id maps over IVF indexes: the lookup table
//!
//! `IndexIDMap::add_with_ids` adds the vectors to its inner index *without* ids, so an inner IVF
//! index stores sequential inner ids (`0, 1, …` in insertion order) in its lists, and the user's
//! id of inner id `i` is `id_map[i]` (Faiss translates every search result the same way). The
//! lists are therefore read as usual — codes and stored inner ids contiguous per list — and the
//! ids are [`BlockIds::Mapped`]: each stored value is a position in the id map, which
//! [`FaissLayout::id_map`] locates (`ntotal × i64` at a known offset). A reader loads that table
//! once and keeps it while it reads (8 bytes per row: 800 MB for 10^8 rows — the one buffer
//! whose size follows `ntotal` rather than the chunk size, accepted because the alternative, a
//! random 8-byte read per row, is far slower on object stores) and translates each chunk with
//! [`map_ids`]; a stored value outside `0..ntotal` is a located data error
//! ([`mapped_id_error`]). The parser does not read the lists' ids, so it does not check that
//! they are a permutation of `0..ntotal`: Faiss's `add_with_ids` always makes one; after
//! `remove_ids` Faiss compacts the id map but leaves the inner ids unrenumbered, so the ones
//! past its end are reported and the others map exactly as Faiss's own search maps them; two
//! entries with one inner id would get one id, which the Milvus sink refuses as a duplicate
//! primary key.
//!
//! # IVFFlatDedup duplicates
//!
//! `IndexIVFFlatDedup` stores each distinct vector of a list once; an added vector equal to a
//! stored one only gets an entry `(stored id, new id)` in the `instances` table, which Faiss
//! writes after the IVF header, before the inverted lists. Its `ntotal` counts both. vmig restores
//! every duplicate: the parser reads the table (16 bytes per duplicate) and, only when it is not
//! empty, the stored ids of the lists (8 bytes per stored entry, in 64 KiB reads) to find the
//! entry each duplicate repeats; each duplicate then costs one [`Block`] (about 50 bytes) in the
//! layout. A stored id named by the table but held by no entry is a data error, one held by two
//! entries (which vector would its duplicates repeat?) is refused.
//!
//! # Validation
//!
//! Every size field is checked before anything is read or allocated for it: `ntotal` against the
//! bytes left in the file (each row needs its codes, plus 8 bytes where ids or an id map are
//! stored, plus 12 bytes of HNSW graph arrays), an IVF's `nlist` against its coarse quantizer's
//! own count (one centroid per list; a crafted `nlist` = 2^28 fails at once instead of reading
//! 2 GiB of list sizes), sparse list pairs against `nlist`, and `full` list sizes (and legacy
//! per-list `vec`s) are read one by one keeping only the non-empty lists, so memory is bounded by
//! what the file holds, never by a header field. Such errors name the file, the field's byte
//! offset, the field, its value and the largest value the file could hold.
//!
//! `d > 0`; element counts (`ntotal·d` floats, `ntotal·code_size` bytes, id map length =
//! `ntotal`, nested `ntotal` and `d` equal the outer ones, an `IndexRefine`'s base and refine
//! `ntotal` equal its own); `vec<T>` lengths below 2^40 (Faiss's own bound); IVF
//! `code_size == 4·d` (binary: `d/8`), list-sizes count `== nlist`, `Σ sizes == ntotal` (minus
//! the duplicates for `IwFd`), every sparse `list_no < nlist` and not repeated; legacy code
//! vectors hold exactly `rows × d` floats; the dedup table has an even length and at most
//! `ntotal` pairs; binary `d` a multiple of 8 and `code_size == d/8`. The index must end exactly at
//! the end of the file. Every failure is an [`Error::Data`](vmig_core::Error::Data) located as
//! `"<name> at byte <offset>"` saying what was expected there; nothing panics, whatever the input.
//!
//! # Row order
//!
//! Rows come out block by block: flat, HNSW, refine and their id maps in storage order; IVF
//! indexes grouped by inverted list (list 0 first), entries of a list in stored order — not in
//! insertion order — then, for `IwFd`, the duplicates in the order of its `instances` table.
//! Resume positions must therefore name a block and a row inside it.

mod catalogue;
mod cursor;
mod decode;
mod parse;
mod read_at;

pub use catalogue::{class_name, refusal_reason};
pub use decode::{
    first_non_finite, ids_from_le, implicit_ids, map_ids, mapped_id_error, read_rows,
    vectors_from_le, DecodedRows,
};
pub use parse::parse_layout;
pub use read_at::ReadAt;

/// Faiss's sanity bound on the element count of a serialised `vec<T>` (it refuses `n ≥ 2^40`).
pub const MAX_VEC_LEN: u64 = 1 << 40;

/// The distance an index was built for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Metric {
    /// Faiss `METRIC_INNER_PRODUCT` (code 0) → Milvus `IP`.
    InnerProduct,
    /// Faiss `METRIC_L2` (code 1, squared Euclidean) → Milvus `L2`.
    L2,
    /// Binary indexes: Faiss stores code 1 but computes Hamming distance → Milvus `HAMMING`.
    Hamming,
    /// Any other Faiss metric (L1, Linf, Lp, Canberra, …), which has no Milvus equivalent.
    Other {
        /// The Faiss `MetricType` code (2 = L1, 3 = Linf, 4 = Lp, 20.. = Canberra, …).
        code: i32,
        /// The `metric_arg` stored with it (`p` for Lp).
        arg: f32,
    },
}

impl Metric {
    /// The Milvus 2.x metric name (`IP`, `L2`, `HAMMING`), or `None` when Milvus has no
    /// equivalent and the user must choose.
    pub fn milvus_name(&self) -> Option<&'static str> {
        match self {
            Metric::InnerProduct => Some("IP"),
            Metric::L2 => Some("L2"),
            Metric::Hamming => Some("HAMMING"),
            Metric::Other { .. } => None,
        }
    }

    /// The Faiss name of the metric (`METRIC_L2`, `METRIC_L1`, …; `METRIC_<code>` if unknown).
    pub fn faiss_name(&self) -> String {
        match self {
            Metric::InnerProduct => "METRIC_INNER_PRODUCT".into(),
            Metric::L2 => "METRIC_L2".into(),
            Metric::Hamming => "Hamming (binary index)".into(),
            Metric::Other { code, .. } => match code {
                2 => "METRIC_L1".into(),
                3 => "METRIC_Linf".into(),
                4 => "METRIC_Lp".into(),
                20 => "METRIC_Canberra".into(),
                21 => "METRIC_BrayCurtis".into(),
                22 => "METRIC_JensenShannon".into(),
                23 => "METRIC_Jaccard".into(),
                24 => "METRIC_NaNEuclidean".into(),
                25 => "METRIC_GOWER".into(),
                other => format!("METRIC_{other}"),
            },
        }
    }

    /// The metric of a float index from its header fields.
    pub fn from_code(code: i32, arg: Option<f32>) -> Metric {
        match code {
            0 => Metric::InnerProduct,
            1 => Metric::L2,
            code => Metric::Other {
                code,
                arg: arg.unwrap_or(0.0),
            },
        }
    }
}

/// What one row of the index holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorKind {
    /// `dim` little-endian `f32` values.
    Float32,
    /// `dim / 8` bytes of packed bits (Faiss and Milvus use the same bit order).
    Binary,
}

/// Where the ids of a block's rows come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockIds {
    /// Row `i` of the block has id `first + i` (flat and HNSW indexes).
    Implicit {
        /// Id of the block's first row.
        first: i64,
    },
    /// `rows × i64` little-endian ids start at this byte offset (id maps, IVF lists).
    Stored {
        /// Byte offset of the first id in the file.
        offset: u64,
    },
    /// `rows × i64` little-endian inner ids start at this byte offset (the lists of an IVF index
    /// inside an id map); row `i`'s id is entry `inner id` of [`FaissLayout::id_map`].
    Mapped {
        /// Byte offset of the first inner id in the file.
        offset: u64,
    },
}

/// A run of rows whose codes are contiguous in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// The inverted list these rows belong to (IVF indexes only; `None` for the duplicates an
    /// `IndexIVFFlatDedup` restores, which follow its lists).
    pub list_no: Option<u64>,
    /// Number of rows (always > 0 in a parsed layout).
    pub rows: u64,
    /// Byte offset of the first row's codes; row `i` starts at `codes_offset + i · row_bytes`.
    pub codes_offset: u64,
    /// Where the ids are.
    pub ids: BlockIds,
}

impl Block {
    /// The byte range holding the codes of `rows` (row indices inside this block).
    pub fn codes_range(
        &self,
        row_bytes: usize,
        rows: std::ops::Range<u64>,
    ) -> std::ops::Range<u64> {
        let rb = row_bytes as u64;
        let start = self
            .codes_offset
            .saturating_add(rows.start.saturating_mul(rb));
        let end = self
            .codes_offset
            .saturating_add(rows.end.saturating_mul(rb));
        start..end
    }

    /// The byte range holding the ids (for [`BlockIds::Mapped`], the inner ids) of `rows`, or
    /// `None` when the ids are implicit.
    pub fn ids_range(&self, rows: std::ops::Range<u64>) -> Option<std::ops::Range<u64>> {
        match self.ids {
            BlockIds::Implicit { .. } => None,
            BlockIds::Stored { offset } | BlockIds::Mapped { offset } => Some(
                offset.saturating_add(rows.start.saturating_mul(8))
                    ..offset.saturating_add(rows.end.saturating_mul(8)),
            ),
        }
    }
}

/// Everything a reader needs to stream the vectors and ids of a Faiss index file.
#[derive(Debug, Clone, PartialEq)]
pub struct FaissLayout {
    /// The outermost fourcc, e.g. `"IxM2"`.
    pub fourcc: String,
    /// Human description, e.g. `"IndexIDMap2 over IndexFlatL2"`.
    pub description: String,
    /// Dimension: floats per row, or bits per row for binary indexes.
    pub dim: usize,
    /// Number of rows (`ntotal`).
    pub ntotal: u64,
    /// The distance the index was built for.
    pub metric: Metric,
    /// Float or binary rows.
    pub vectors: VectorKind,
    /// Bytes per row in the file (`4·dim` or `dim/8`).
    pub row_bytes: usize,
    /// Number of inverted lists (IVF indexes only).
    pub nlist: Option<u64>,
    /// Size of the file in bytes (the index ends exactly there).
    pub file_size: u64,
    /// The row runs, in reading order; their `rows` add up to `ntotal`. Empty when `ntotal == 0`.
    pub blocks: Vec<Block>,
    /// The id map that [`BlockIds::Mapped`] blocks translate their inner ids through (an id map
    /// over an IVF index); `None` otherwise.
    pub id_map: Option<IdMapTable>,
}

/// Where an id map's `len × i64` ids are in the file (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMapTable {
    /// Byte offset of `id_map[0]`.
    pub offset: u64,
    /// Number of ids (the id map's `ntotal`).
    pub len: u64,
    /// The class of the id map (`IndexIDMap`, `IndexBinaryIDMap2`, …), for messages.
    pub class: &'static str,
}

impl IdMapTable {
    /// The byte range of the whole table.
    pub fn range(&self) -> std::ops::Range<u64> {
        self.offset..self.offset.saturating_add(self.len.saturating_mul(8))
    }
}

impl FaissLayout {
    /// Whether the ids are `0..ntotal` in row order (no id map, no inverted lists).
    pub fn has_implicit_ids(&self) -> bool {
        self.blocks
            .iter()
            .all(|b| matches!(b.ids, BlockIds::Implicit { .. }))
    }
}
