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

vmig's row order: flat / HNSW / IDMap in storage order; IVF grouped by inverted list (list 0
first), entries of a list in stored order.

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


def float_rows(idx):
    idx = faiss.downcast_index(idx)
    extra = {}
    if isinstance(idx, (faiss.IndexIDMap, faiss.IndexIDMap2)):
        inner = faiss.downcast_index(idx.index)
        ids = faiss.vector_to_array(idx.id_map).astype("int64")
        vecs = inner.reconstruct_n(0, inner.ntotal) if inner.ntotal else np.zeros((0, idx.d), "float32")
        extra["inner"] = type(inner).__name__
        return ids, vecs, extra
    ivf = faiss.try_extract_index_ivf(idx)
    if ivf is not None:
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
            all_vecs.append(codes.view("float32").reshape(n, ivf.d))
        extra["nlist"] = int(ivf.nlist)
        extra["list_sizes"] = sizes
        extra["direct_map"] = int(ivf.direct_map.type)
        extra["quantizer"] = type(faiss.downcast_index(ivf.quantizer)).__name__
        if not all_ids:
            return np.zeros(0, "int64"), np.zeros((0, ivf.d), "float32"), extra
        return np.concatenate(all_ids), np.concatenate(all_vecs), extra
    n = idx.ntotal
    vecs = idx.reconstruct_n(0, n) if n else np.zeros((0, idx.d), "float32")
    return np.arange(n, dtype="int64"), vecs, extra


def expected_binary(name, index_path, **info):
    idx = faiss.read_index_binary(index_path)
    if isinstance(idx, (faiss.IndexBinaryIDMap, faiss.IndexBinaryIDMap2)):
        inner = faiss.downcast_IndexBinary(idx.index)
        ids = faiss.vector_to_array(idx.id_map).astype("int64")
        vecs = faiss.vector_to_array(inner.xb)
        info["inner"] = type(inner).__name__
    else:
        ids = np.arange(idx.ntotal, dtype="int64")
        vecs = faiss.vector_to_array(idx.xb)
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
    refused("idmap_ivf", path("idmap_ivf"), fourcc="IxMp")

    xb = rng.integers(0, 256, size=(200, 4), dtype="uint8")
    idx = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(32), 32, 4)
    idx.train(xb)
    idx.add(xb)
    faiss.write_index_binary(idx, path("binary_ivf"))
    refused("binary_ivf", path("binary_ivf"), binary=True, fourcc="IBwF")

    manifest["fixtures"].sort(key=lambda f: f["name"])
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
