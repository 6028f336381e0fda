#!/usr/bin/env python3
"""Writes the Faiss index fixtures vmig's tests read, with the real faiss-cpu library.

Run with the project's venv python (scripts/pyenv pins faiss-cpu 1.15.1, numpy):

    $(scripts/pyenv) crates/formats/tests/data/faiss/generate.py [OUTDIR]

OUTDIR defaults to this script's directory. Everything is seeded and single-threaded, and the
CPU-dependent code paths are pinned (faiss's SIMD level to AVX2, OpenBLAS's kernels to Haswell,
set below before either library loads), so two runs with the same library versions write
identical bytes on any x86-64 machine with AVX2. Without the pins, training (k-means, the
residual quantizer's beam search) rounds differently on an AVX-512 machine and the trained
fixtures (e.g. ivf_rcq_quantizer) come out with other centroids and list assignments.

For every fixture vmig must read, the expected rows are written next to it, taken from what
faiss itself loads back from the file (read_index + reconstruct_n / id_map / invlists):

    <name>.faiss       the index
    <name>.ids.i64     expected ids, int64 little-endian, in vmig's row order
    <name>.vecs.bin    expected vectors, raw little-endian float32 (or packed bits for binary
                       indexes), same order

vmig's row order: flat / HNSW / refine / IDMap in storage order; IVF grouped by inverted list
(list 0 first), entries of a list in stored order, then (IndexIVFFlatDedup) the duplicates in the
order of its instances table.

Faiss no longer writes the legacy IVFFlat formats (`IvFl`, `IvFL`); those two fixtures are built
here byte by byte from a real `IwFl` file (the layout of index_read.cpp's legacy branch), and
faiss-cpu itself must load them back: the expected rows come from what faiss reads.

manifest.json describes every fixture (what faiss says about it) for the tests.
"""

import json
import os
import sys

# Pinned before faiss (and its bundled OpenBLAS) load: both pick their kernels from the CPU.
os.environ["FAISS_SIMD_LEVEL"] = "AVX2"
os.environ["OPENBLAS_CORETYPE"] = "Haswell"

import faiss  # noqa: E402
import numpy as np  # noqa: E402

D = 8
SEED = 20240601
faiss.omp_set_num_threads(1)
if faiss.SIMDConfig.get_level_name() != "AVX2":
    sys.exit(f"generate.py: faiss runs at SIMD level {faiss.SIMDConfig.get_level_name()}, not AVX2")

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(SEED)
manifest = {"faiss_version": faiss.__version__, "fixtures": []}


def data(n, d=D):
    return rng.standard_normal((n, d)).astype("float32")


def sparse_ids(n):
    """Unique, unsorted, non-sequential int64 ids, some negative and some large."""
    ids = rng.choice(np.arange(-5000, 10_000_000, 7, dtype=np.int64), size=n, replace=False)
    ids[: min(n, 3)] = [2**62 + 11, -(2**40), 123456789012][: min(n, 3)]
    return ids.astype("int64")


def path(name):
    return os.path.join(OUT, name + ".faiss")


def expected_float(name, index_path, **info):
    """Reads the file back with faiss and writes the rows vmig must produce."""
    idx = faiss.read_index(index_path)
    ids, vecs, extra = float_rows(idx)
    ids.astype("<i8").tofile(os.path.join(OUT, name + ".ids.i64"))
    vecs.astype("<f4").tofile(os.path.join(OUT, name + ".vecs.bin"))
    record(name, idx, supported=True, binary=False, rows=len(ids), **extra, **info)


def ivf_lists(ivf, dtype, width, extra, downcast=faiss.downcast_index):
    """The entries of an IVF index's lists, list by list: (stored ids, codes as `dtype` rows)."""
    invlists = faiss.downcast_InvertedLists(ivf.invlists)
    all_ids, all_vecs, sizes = [], [], []
    for lst in range(ivf.nlist):
        n = invlists.list_size(lst)
        sizes.append(int(n))
        if n == 0:
            continue
        ids = faiss.rev_swig_ptr(invlists.get_ids(lst), n).copy()
        codes = faiss.rev_swig_ptr(invlists.get_codes(lst), n * invlists.code_size).copy()
        all_ids.append(ids.astype("int64"))
        all_vecs.append(codes.view(dtype).reshape(n, width))
    extra["nlist"] = int(ivf.nlist)
    extra["list_sizes"] = sizes
    extra["direct_map"] = int(ivf.direct_map.type)
    extra["quantizer"] = type(downcast(ivf.quantizer)).__name__
    if not all_ids:
        return np.zeros(0, "int64"), np.zeros((0, width), dtype)
    return np.concatenate(all_ids), np.concatenate(all_vecs)


def float_rows(idx):
    idx = faiss.downcast_index(idx)
    extra = {}
    if isinstance(idx, (faiss.IndexIDMap, faiss.IndexIDMap2)):
        inner = faiss.downcast_index(idx.index)
        id_map = faiss.vector_to_array(idx.id_map).astype("int64")
        extra["inner"] = type(inner).__name__
        ivf = faiss.try_extract_index_ivf(inner)
        if ivf is not None:
            # The inner IVF stores sequential inner ids; the id map translates them.
            inner_ids, vecs = ivf_lists(ivf, "float32", ivf.d, extra)
            return id_map[inner_ids], vecs, extra
        vecs = inner.reconstruct_n(0, inner.ntotal) if inner.ntotal else np.zeros((0, idx.d), "float32")
        return id_map, vecs, extra
    if isinstance(idx, faiss.IndexRefine):
        # Rows are the refine index's vectors, numbered 0..ntotal (IndexRefine has no ids).
        refine = faiss.downcast_index(idx.refine_index)
        extra["base"] = type(faiss.downcast_index(idx.base_index)).__name__
        extra["refine"] = type(refine).__name__
        n = refine.ntotal
        vecs = refine.reconstruct_n(0, n) if n else np.zeros((0, idx.d), "float32")
        return np.arange(n, dtype="int64"), vecs, extra
    ivf = faiss.try_extract_index_ivf(idx)
    if ivf is not None:
        ids, vecs = ivf_lists(ivf, "float32", ivf.d, extra)
        return ids, vecs, extra
    n = idx.ntotal
    vecs = idx.reconstruct_n(0, n) if n else np.zeros((0, idx.d), "float32")
    return np.arange(n, dtype="int64"), vecs, extra


def binary_rows(idx, info):
    """(ids, packed rows) of a binary index as faiss holds them, in vmig's row order."""
    idx = faiss.downcast_IndexBinary(idx)
    if isinstance(idx, (faiss.IndexBinaryIDMap, faiss.IndexBinaryIDMap2)):
        inner = faiss.downcast_IndexBinary(idx.index)
        info["inner"] = type(inner).__name__
        id_map = faiss.vector_to_array(idx.id_map).astype("int64")
        inner_ids, vecs = binary_rows(inner, info)
        info["inner"] = type(inner).__name__
        return id_map[inner_ids], vecs
    if isinstance(idx, faiss.IndexBinaryIVF):
        return ivf_lists(idx, "uint8", idx.code_size, info, faiss.downcast_IndexBinary)
    if isinstance(idx, faiss.IndexBinaryHNSW):
        storage = faiss.downcast_IndexBinary(idx.storage)
        info["storage"] = type(storage).__name__
        return np.arange(idx.ntotal, dtype="int64"), faiss.vector_to_array(storage.xb)
    return np.arange(idx.ntotal, dtype="int64"), faiss.vector_to_array(idx.xb)


def expected_binary(name, index_path, **info):
    idx = faiss.read_index_binary(index_path)
    ids, vecs = binary_rows(idx, info)
    assert vecs.size == idx.ntotal * idx.code_size
    ids.astype("<i8").tofile(os.path.join(OUT, name + ".ids.i64"))
    vecs.astype("u1").tofile(os.path.join(OUT, name + ".vecs.bin"))
    record(name, idx, supported=True, binary=True, rows=len(ids), **info)


def record(name, idx, supported, binary, **info):
    entry = {
        "name": name,
        "file": name + ".faiss",
        "bytes": os.path.getsize(path(name)),
        "class": type(idx).__name__,
        "supported": supported,
        "binary": binary,
        "d": int(idx.d),
        "ntotal": int(idx.ntotal),
        "metric_type": int(idx.metric_type),
    }
    if not binary:
        entry["metric_arg"] = float(idx.metric_arg)
    entry.update(info)
    with open(path(name), "rb") as f:
        head = f.read(4).decode("latin-1")
    assert head == entry["fourcc"], (name, head, entry["fourcc"])
    manifest["fixtures"].append(entry)


def refused(name, index_path, binary=False, **info):
    idx = faiss.read_index_binary(index_path) if binary else faiss.read_index(index_path)
    record(name, idx, supported=False, binary=binary, **info)


def ivf_flat(nlist, metric=faiss.METRIC_L2, quantizer=None):
    q = quantizer or (faiss.IndexFlatL2(D) if metric == faiss.METRIC_L2 else faiss.IndexFlatIP(D))
    idx = faiss.IndexIVFFlat(q, D, nlist, metric)
    idx.cp.seed = SEED
    return idx, q


def main():
    # --- flat --------------------------------------------------------------------------------
    for name, idx, n in [("flat_l2", faiss.IndexFlatL2(D), 1000), ("flat_ip", faiss.IndexFlatIP(D), 300)]:
        idx.add(data(n))
        faiss.write_index(idx, path(name))
        expected_float(name, path(name), fourcc="IxF2" if name == "flat_l2" else "IxFI")

    idx = faiss.IndexFlat(D, faiss.METRIC_L1)
    idx.add(data(100))
    faiss.write_index(idx, path("flat_l1"))
    expected_float("flat_l1", path("flat_l1"), fourcc="IxFl")

    idx = faiss.IndexFlat(D, faiss.METRIC_Lp)
    idx.metric_arg = 3.0
    idx.add(data(50))
    faiss.write_index(idx, path("flat_lp3"))
    expected_float("flat_lp3", path("flat_lp3"), fourcc="IxFl")

    idx = faiss.IndexFlatL2(D)
    faiss.write_index(idx, path("flat_empty"))
    expected_float("flat_empty", path("flat_empty"), fourcc="IxF2")

    # A flat index holding NaN and Inf (faiss stores whatever was added); ids from an IDMap.
    x = data(40)
    x[5, 3] = np.nan
    x[17, 0] = np.inf
    idx = faiss.IndexIDMap(faiss.IndexFlatL2(D))
    idx.add_with_ids(x, (np.arange(40, dtype="int64") * 3 + 1000))
    faiss.write_index(idx, path("idmap_nan"))
    expected_float("idmap_nan", path("idmap_nan"), fourcc="IxMp", non_finite_rows=[5, 17])

    # --- IDMap / IDMap2 ------------------------------------------------------------------------
    for name, cls, fourcc in [("idmap_flat", faiss.IndexIDMap, "IxMp"), ("idmap2_flat", faiss.IndexIDMap2, "IxM2")]:
        idx = cls(faiss.IndexFlatL2(D))
        idx.add_with_ids(data(1000), sparse_ids(1000))
        faiss.write_index(idx, path(name))
        expected_float(name, path(name), fourcc=fourcc)

    idx = faiss.IndexIDMap(faiss.IndexFlatIP(D))
    faiss.write_index(idx, path("idmap_empty"))
    expected_float("idmap_empty", path("idmap_empty"), fourcc="IxMp")

    # --- HNSW ------------------------------------------------------------------------------------
    idx = faiss.IndexHNSWFlat(D, 16)
    idx.add(data(1000))
    faiss.write_index(idx, path("hnsw_flat"))
    expected_float("hnsw_flat", path("hnsw_flat"), fourcc="IHNf")

    idx = faiss.IndexIDMap(faiss.IndexHNSWFlat(D, 8, faiss.METRIC_INNER_PRODUCT))
    idx.add_with_ids(data(200), sparse_ids(200))
    faiss.write_index(idx, path("idmap_hnsw"))
    expected_float("idmap_hnsw", path("idmap_hnsw"), fourcc="IxMp")

    # --- IVFFlat ---------------------------------------------------------------------------------
    idx, _q = ivf_flat(4)
    x = data(1000)
    idx.train(x)
    idx.add(x)
    faiss.write_index(idx, path("ivf_full"))
    expected_float("ivf_full", path("ivf_full"), fourcc="IwFl", lists="full")

    # Sparse lists: 64 lists trained on 64 separated clusters, data added from only 5 of them.
    centres = rng.standard_normal((64, D)).astype("float32") * 20
    train = (centres[rng.integers(0, 64, 4000)] + data(4000) * 0.1).astype("float32")
    idx, _q = ivf_flat(64)
    idx.train(train)
    chosen = centres[[3, 17, 18, 40, 63]]
    x = (chosen[rng.integers(0, 5, 300)] + data(300) * 0.1).astype("float32")
    idx.add_with_ids(x, sparse_ids(300))
    faiss.write_index(idx, path("ivf_sprs"))
    expected_float("ivf_sprs", path("ivf_sprs"), fourcc="IwFl", lists="sprs")

    idx, _q = ivf_flat(8, faiss.METRIC_INNER_PRODUCT)
    x = data(300)
    idx.train(x)
    idx.add(x)
    idx.make_direct_map()  # DirectMap::Array (needs sequential ids)
    faiss.write_index(idx, path("ivf_dm_array"))
    expected_float("ivf_dm_array", path("ivf_dm_array"), fourcc="IwFl")

    idx, _q = ivf_flat(8)
    x = data(300)
    idx.train(x)
    idx.set_direct_map_type(faiss.DirectMap.Hashtable)
    idx.add_with_ids(x, sparse_ids(300))
    faiss.write_index(idx, path("ivf_dm_hash"))
    expected_float("ivf_dm_hash", path("ivf_dm_hash"), fourcc="IwFl")

    # IVF whose coarse quantizer is itself an HNSW index (skipped by parsing it).
    idx = faiss.index_factory(D, "IVF16_HNSW8,Flat")
    x = data(400)
    idx.train(x)
    idx.add(x)
    faiss.write_index(idx, path("ivf_hnsw_quantizer"))
    expected_float("ivf_hnsw_quantizer", path("ivf_hnsw_quantizer"), fourcc="IwFl")

    # Other coarse quantizers: IndexPQ, ResidualCoarseQuantizer, MultiIndexQuantizer.
    for name, spec in [
        ("ivf_pq_quantizer", "IVF16(PQ2x2),Flat"),
        ("ivf_rcq_quantizer", "IVF16(RCQ2x2),Flat"),
        ("ivf_imi_quantizer", "IMI2x2,Flat"),
    ]:
        idx = faiss.index_factory(D, spec)
        idx.train(data(500))
        idx.add_with_ids(data(60), sparse_ids(60))
        faiss.write_index(idx, path(name))
        expected_float(name, path(name), fourcc="IwFl")

    idx, _q = ivf_flat(4)
    idx.train(data(200))
    faiss.write_index(idx, path("ivf_empty"))
    expected_float("ivf_empty", path("ivf_empty"), fourcc="IwFl", lists="sprs")

    # --- binary ----------------------------------------------------------------------------------
    xb = rng.integers(0, 256, size=(1000, 4), dtype="uint8")
    idx = faiss.IndexBinaryFlat(32)
    idx.add(xb)
    faiss.write_index_binary(idx, path("binary_flat"))
    expected_binary("binary_flat", path("binary_flat"), fourcc="IBxF")

    idx = faiss.IndexBinaryIDMap(faiss.IndexBinaryFlat(32))
    idx.add_with_ids(xb, sparse_ids(1000))
    faiss.write_index_binary(idx, path("binary_idmap"))
    expected_binary("binary_idmap", path("binary_idmap"), fourcc="IBMp")

    xb = rng.integers(0, 256, size=(300, 8), dtype="uint8")
    idx = faiss.IndexBinaryIDMap2(faiss.IndexBinaryFlat(64))
    idx.add_with_ids(xb, sparse_ids(300))
    faiss.write_index_binary(idx, path("binary_idmap2"))
    expected_binary("binary_idmap2", path("binary_idmap2"), fourcc="IBM2")

    # --- refused ---------------------------------------------------------------------------------
    x = data(1000)
    idx = faiss.index_factory(D, "IVF4,PQ2")
    idx.train(x)
    idx.add(x)
    faiss.write_index(idx, path("ivfpq"))
    refused("ivfpq", path("ivfpq"), fourcc="IwPQ")

    idx = faiss.IndexPQ(D, 2, 8)
    idx.train(x)
    idx.add(x)
    faiss.write_index(idx, path("pq"))
    refused("pq", path("pq"), fourcc="IxPq")

    idx = faiss.IndexScalarQuantizer(D, faiss.ScalarQuantizer.QT_8bit)
    idx.train(x)
    idx.add(x)
    faiss.write_index(idx, path("sq8"))
    refused("sq8", path("sq8"), fourcc="IxSQ")

    x = data(200)
    idx = faiss.index_factory(D, "IVF4,SQ8")
    idx.train(x)
    idx.add(x)
    faiss.write_index(idx, path("ivfsq8"))
    refused("ivfsq8", path("ivfsq8"), fourcc="IwSq")

    idx = faiss.index_factory(D, "HNSW8_SQ8")
    idx.train(x)
    idx.add(x[:100])
    faiss.write_index(idx, path("hnsw_sq8"))
    refused("hnsw_sq8", path("hnsw_sq8"), fourcc="IHNs")

    idx = faiss.IndexHNSWFlat(D, 8)
    idx.add(x[:100])
    faiss.write_index(idx, path("hnsw_skip_storage"), faiss.IO_FLAG_SKIP_STORAGE)
    manifest["fixtures"].append({
        "name": "hnsw_skip_storage", "file": "hnsw_skip_storage.faiss",
        "bytes": os.path.getsize(path("hnsw_skip_storage")), "class": "IndexHNSWFlat",
        "supported": False, "binary": False, "d": D, "ntotal": 100, "metric_type": 1,
        "fourcc": "IHNf",
    })

    idx = faiss.index_factory(D, "PCA4,Flat")
    idx.train(x)
    idx.add(x[:100])
    faiss.write_index(idx, path("pretransform"))
    refused("pretransform", path("pretransform"), fourcc="IxPT")

    ivf, _q = ivf_flat(4)
    ivf.train(x)
    idx = faiss.IndexIDMap(ivf)
    idx.add_with_ids(x[:100], sparse_ids(100))
    faiss.write_index(idx, path("idmap_ivf"))
    expected_float("idmap_ivf", path("idmap_ivf"), fourcc="IxMp")

    xb = rng.integers(0, 256, size=(200, 4), dtype="uint8")
    idx = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(32), 32, 4)
    idx.train(xb)
    idx.add(xb)
    faiss.write_index_binary(idx, path("binary_ivf"))
    expected_binary("binary_ivf", path("binary_ivf"), fourcc="IBwF")

    issue_15()

    manifest["fixtures"].sort(key=lambda f: f["name"])
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")


# --- issue #15: the other lossless types ---------------------------------------------------------
# A generator of its own, so the fixtures above keep their bytes.
rng15 = np.random.default_rng(SEED + 15)


def data15(n, d=D):
    return rng15.standard_normal((n, d)).astype("float32")


def ids63(n):
    """Unique random non-negative 63-bit ids, unsorted."""
    ids = np.unique(rng15.integers(0, 2**63 - 1, size=2 * n, dtype=np.int64))[:n]
    assert len(ids) == n
    rng15.shuffle(ids)
    return ids.astype("int64")


def clustered(n, centres, picked, noise=0.1):
    return (centres[picked[rng15.integers(0, len(picked), n)]] + data15(n, centres.shape[1]) * noise).astype("float32")


def ivf_prefix_len(idx):
    """Bytes of fourcc + IVF header up to the end of its coarse quantizer (metric L2/IP)."""
    assert idx.metric_type <= 1
    return 4 + 33 + 16 + len(faiss.serialize_index(idx.quantizer))


def write_legacy_ivfflat(src_path, dst_path, fourcc):
    """Rewrites an `IwFl` file (direct map: none) in the legacy `IvFl` / `IvFL` layout:
    fourcc, IVF header and quantizer, nlist × vec<i64> ids, the direct map, nlist × codes
    (vec<f32> for `IvFl`, vec<u8> for `IvFL`)."""
    idx = faiss.read_index(src_path)
    raw = open(src_path, "rb").read()
    q_end = ivf_prefix_len(idx)
    assert raw[:4] == b"IwFl" and raw[q_end : q_end + 9] == b"\x00" + bytes(8)
    assert raw[q_end + 9 : q_end + 13] == b"ilar"
    invlists = faiss.downcast_InvertedLists(idx.invlists)
    out = bytearray(fourcc.encode() + raw[4:q_end])
    for lst in range(idx.nlist):
        n = invlists.list_size(lst)
        ids = faiss.rev_swig_ptr(invlists.get_ids(lst), n).astype("<i8") if n else np.zeros(0, "<i8")
        out += np.uint64(n).tobytes() + ids.tobytes()
    out += raw[q_end : q_end + 9]  # direct map: type 0, empty array
    for lst in range(idx.nlist):
        n = invlists.list_size(lst)
        codes = faiss.rev_swig_ptr(invlists.get_codes(lst), n * invlists.code_size).tobytes() if n else b""
        count = len(codes) // 4 if fourcc == "IvFl" else len(codes)
        out += np.uint64(count).tobytes() + codes
    with open(dst_path, "wb") as f:
        f.write(out)


def expected_dedup(name, index_path, x, ids, **info):
    """An IndexIVFFlatDedup: the stored entries from faiss's lists, then one row per entry of
    its instances table (which faiss does not expose to Python: read from the file, right
    after the IVF header and its empty direct map), each checked against the data added."""
    idx = faiss.read_index(index_path)
    extra = {}
    ivf = faiss.downcast_index(idx)
    stored_ids, stored_vecs = ivf_lists(ivf, "float32", ivf.d, extra)
    raw = open(index_path, "rb").read()
    at = ivf_prefix_len(ivf) + 9
    count = int(np.frombuffer(raw, "<u8", 1, at)[0])
    tab = np.frombuffer(raw, "<i8", count, at + 8).reshape(-1, 2)
    assert raw[at + 8 + 8 * count : at + 12 + 8 * count] == b"ilar"
    by_id = {int(i): k for k, i in enumerate(ids)}
    stored_at = {int(i): k for k, i in enumerate(stored_ids)}
    dup_vecs = []
    for key, dup in tab:
        # The duplicate's vector is the one added with its id, bit for bit the stored one.
        v = x[by_id[int(dup)]]
        assert v.tobytes() == stored_vecs[stored_at[int(key)]].tobytes()
        dup_vecs.append(v)
    assert len(stored_ids) + len(tab) == idx.ntotal
    all_ids = np.concatenate([stored_ids, tab[:, 1].astype("int64")])
    all_vecs = np.concatenate([stored_vecs] + ([np.stack(dup_vecs)] if dup_vecs else []))
    # Every id added comes out exactly once, with the vector added under it.
    assert sorted(all_ids.tolist()) == sorted(int(i) for i in ids)
    for i, v in zip(all_ids, all_vecs):
        assert v.tobytes() == x[by_id[int(i)]].tobytes()
    all_ids.astype("<i8").tofile(os.path.join(OUT, name + ".ids.i64"))
    all_vecs.astype("<f4").tofile(os.path.join(OUT, name + ".vecs.bin"))
    record(name, idx, supported=True, binary=False, rows=len(all_ids), duplicates=len(tab), **extra, **info)


def issue_15():
    # --- IndexBinaryHNSW -----------------------------------------------------------------------
    xb = rng15.integers(0, 256, size=(500, 8), dtype="uint8")
    idx = faiss.IndexBinaryHNSW(64, 16)
    idx.add(xb)
    faiss.write_index_binary(idx, path("binary_hnsw"))
    expected_binary("binary_hnsw", path("binary_hnsw"), fourcc="IBHf")

    idx = faiss.IndexBinaryHNSW(32, 8)
    faiss.write_index_binary(idx, path("binary_hnsw_empty"))
    expected_binary("binary_hnsw_empty", path("binary_hnsw_empty"), fourcc="IBHf")

    # --- IndexBinaryIVF: 16 lists trained on 16 clusters, data from 5 of them (empty lists) --------
    centres = rng15.integers(0, 256, size=(16, 16), dtype="uint8")
    def near(picked, n):
        rows = centres[rng15.choice(picked, n)].copy()
        flips = rng15.integers(0, 256, size=rows.shape, dtype="uint8") & rng15.integers(0, 256, size=rows.shape, dtype="uint8") & rng15.integers(0, 256, size=rows.shape, dtype="uint8")
        return rows ^ flips
    quantizer = faiss.IndexBinaryFlat(128)
    idx = faiss.IndexBinaryIVF(quantizer, 128, 16)
    idx.cp.seed = SEED
    idx.train(near(np.arange(16), 2000))
    xb = near(np.array([1, 4, 5, 9, 14]), 400)
    idx.add_with_ids(xb, ids63(400))
    faiss.write_index_binary(idx, path("binary_ivf_lists"))
    expected_binary("binary_ivf_lists", path("binary_ivf_lists"), fourcc="IBwF")

    quantizer2 = faiss.IndexBinaryFlat(128)
    inner = faiss.IndexBinaryIVF(quantizer2, 128, 8)
    inner.cp.seed = SEED
    inner.train(near(np.arange(16), 1000))
    idx = faiss.IndexBinaryIDMap(inner)
    idx.add_with_ids(near(np.arange(16), 300), ids63(300))
    faiss.write_index_binary(idx, path("binary_idmap_ivf"))
    expected_binary("binary_idmap_ivf", path("binary_idmap_ivf"), fourcc="IBMp")

    # --- IndexIDMap2 over IndexIVFFlat, random 63-bit ids, added in three batches -----------------
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatL2(D), D, 8)
    ivf.cp.seed = SEED
    ivf.train(data15(800))
    idx = faiss.IndexIDMap2(ivf)
    ids = ids63(600)
    x = data15(600)
    for a, b in [(0, 100), (100, 350), (350, 600)]:
        idx.add_with_ids(x[a:b], ids[a:b])
    faiss.write_index(idx, path("idmap2_ivf"))
    expected_float("idmap2_ivf", path("idmap2_ivf"), fourcc="IxM2")

    # --- IndexIVFFlatDedup with real duplicates (some vectors three times) -------------------------
    x = data15(300)
    copies = rng15.choice(300, 60, replace=False)
    again = copies[:10]
    x = np.concatenate([x, x[copies], x[again]]).astype("float32")
    ids = ids63(len(x))
    q = faiss.IndexFlatL2(D)
    idx = faiss.IndexIVFFlatDedup(q, D, 8)
    idx.cp.seed = SEED
    idx.train(data15(500))
    idx.add_with_ids(x[:200], ids[:200])
    idx.add_with_ids(x[200:], ids[200:])
    assert idx.ntotal == len(x)
    faiss.write_index(idx, path("ivf_dedup"))
    expected_dedup("ivf_dedup", path("ivf_dedup"), x, ids, fourcc="IwFd")

    q2 = faiss.IndexFlatIP(D)
    idx = faiss.IndexIVFFlatDedup(q2, D, 4, faiss.METRIC_INNER_PRODUCT)
    idx.cp.seed = SEED
    idx.train(data15(200))
    x = data15(50)
    ids = np.arange(50, dtype="int64") * 11
    idx.add_with_ids(x, ids)
    faiss.write_index(idx, path("ivf_dedup_nodup"))
    expected_dedup("ivf_dedup_nodup", path("ivf_dedup_nodup"), x, ids, fourcc="IwFd")

    # --- legacy IvFl / IvFL, from an IwFl with empty lists and sparse ids --------------------------
    centres = rng15.standard_normal((16, D)).astype("float32") * 20
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatL2(D), D, 16)
    ivf.cp.seed = SEED
    ivf.train(clustered(2000, centres, np.arange(16)))
    ivf.add_with_ids(clustered(250, centres, np.array([0, 2, 3, 7, 8, 9, 11, 12, 15])), ids63(250))
    tmp = os.path.join(OUT, "legacy_source.tmp")
    faiss.write_index(ivf, tmp)
    for name, fourcc in [("ivf_legacy_floats", "IvFl"), ("ivf_legacy_bytes", "IvFL")]:
        write_legacy_ivfflat(tmp, path(name), fourcc)
        expected_float(name, path(name), fourcc=fourcc)
        # faiss read the legacy file back into the same lists as the original.
        original, legacy = faiss.read_index(tmp), faiss.read_index(path(name))
        a_ids, a_vecs, _ = float_rows(original)
        b_ids, b_vecs, _ = float_rows(legacy)
        assert (a_ids == b_ids).all() and a_vecs.tobytes() == b_vecs.tobytes()
    os.remove(tmp)

    # --- IndexRefineFlat over lossy bases ----------------------------------------------------------
    base = faiss.index_factory(D, "IVF4,PQ4")
    idx = faiss.IndexRefineFlat(base)
    x = data15(400)
    idx.train(x)
    idx.add(x)
    faiss.write_index(idx, path("refine_ivfpq"))
    expected_float("refine_ivfpq", path("refine_ivfpq"), fourcc="IxRF")

    base = faiss.IndexScalarQuantizer(D, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    idx = faiss.IndexRefineFlat(base)
    x = data15(300)
    idx.train(x)
    idx.add(x)
    faiss.write_index(idx, path("refine_sq8"))
    expected_float("refine_sq8", path("refine_sq8"), fourcc="IxRF")

    base = faiss.IndexScalarQuantizer(D, faiss.ScalarQuantizer.QT_8bit)
    refine = faiss.IndexRefineFlat(base)
    idx = faiss.IndexIDMap(refine)
    x = data15(200)
    idx.train(x)
    idx.add_with_ids(x, ids63(200))
    faiss.write_index(idx, path("idmap_refine"))
    expected_float("idmap_refine", path("idmap_refine"), fourcc="IxMp")

    # A refine index that is itself lossy: refused.
    base = faiss.index_factory(D, "IVF4,PQ4")
    sq = faiss.IndexScalarQuantizer(D, faiss.ScalarQuantizer.QT_8bit)
    idx = faiss.IndexRefine(base, sq)
    x = data15(300)
    idx.train(x)
    idx.add(x)
    faiss.write_index(idx, path("refine_lossy"))
    refused("refine_lossy", path("refine_lossy"), fourcc="IxRF")


if __name__ == "__main__":
    main()
