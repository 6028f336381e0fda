"""Driver for scripts/bench-milvus (see there); runs with the Milvus venv's python (pymilvus).

Every measured tool runs as its own child process (CPU time from the kernel, wait4 rusage):
  * pymilvus: a fresh collection (id INT64 primary key, vector FLOAT_VECTOR), then column inserts
    of 10k rows (from the .npy files, as lists) and a flush; its time is from the first insert until the flush is done (reading
    the .npy files and creating the collection are not counted).
  * vmig insert / vmig bulk: `vmig migrate job.toml`, wall time of the whole process (start-up,
    collection creation, reading the Faiss file, staging, import/flush: everything counts).
After each run the collection gets a FLAT index and is loaded so `count(*)` (Strong) can be
checked against the row count; then it is dropped.

`--generate DIR N D` (run by the faiss venv's python) writes the input once.
"""
import argparse
import os
import shutil
import subprocess
import sys
import time

from benchlib import run_measured

BATCH = 10_000
SIZES = {"full": [(1_000_000, 128), (200_000, 768)], "small": [(100_000, 128), (20_000, 768)]}


def stem(work, n, d):
    return os.path.join(work, f"idmap2-flat-{n}x{d}")


def generate(work, n, d):
    """IndexIDMap2(IndexFlatL2) with shuffled sparse int64 ids and seeded vectors, plus the same
    ids and vectors as .npy (the Faiss file is written last: it marks the set complete)."""
    import faiss
    import numpy as np

    base = stem(work, n, d)
    print(f"generating {base}.faiss: IDMap2(FlatL2) n={n} d={d} (once)", file=sys.stderr)
    rng = np.random.default_rng(1000 + d)
    ids = (np.arange(n, dtype=np.int64) * 1000 + rng.integers(0, 1000, n) + 10**12)[rng.permutation(n)]
    vecs = np.lib.format.open_memmap(base + ".vectors.npy.tmp", mode="w+", dtype="<f4", shape=(n, d))
    index = faiss.IndexIDMap2(faiss.IndexFlatL2(d))
    step = 100_000
    for start in range(0, n, step):
        m = min(step, n - start)
        vecs[start:start + m] = rng.standard_normal((m, d), dtype=np.float32)
        index.add_with_ids(np.ascontiguousarray(vecs[start:start + m]), ids[start:start + m])
    vecs.flush()
    del vecs
    with open(base + ".ids.npy.tmp", "wb") as f:
        np.save(f, ids, allow_pickle=False)
    os.rename(base + ".ids.npy.tmp", base + ".ids.npy")
    os.rename(base + ".vectors.npy.tmp", base + ".vectors.npy")
    faiss.write_index(index, base + ".faiss.tmp")
    os.rename(base + ".faiss.tmp", base + ".faiss")


def connect():
    from pymilvus import connections

    connections.connect(uri=os.environ["VMIG_MILVUS_URI"], user=os.environ["VMIG_MILVUS_USER"],
                        password=os.environ["VMIG_MILVUS_PASSWORD"], timeout=30)


def baseline(name, base, d):
    """The Python baseline, in its own process: prints the insert→flush seconds."""
    import numpy as np
    from pymilvus import Collection, CollectionSchema, DataType, FieldSchema, utility

    connect()
    ids = np.load(base + ".ids.npy")
    vecs = np.load(base + ".vectors.npy")
    if utility.has_collection(name):
        utility.drop_collection(name)
    schema = CollectionSchema([
        FieldSchema("id", DataType.INT64, is_primary=True, auto_id=False),
        FieldSchema("vector", DataType.FLOAT_VECTOR, dim=d),
    ])
    col = Collection(name, schema)
    start = time.perf_counter()
    for i in range(0, len(ids), BATCH):
        # Python lists: a little faster through pymilvus 2.3.7 than the ndarray slices themselves.
        col.insert([ids[i:i + BATCH].tolist(), vecs[i:i + BATCH].tolist()])
    col.flush()
    print(time.perf_counter() - start)


def check_and_drop(name, n):
    """count(*) with Strong consistency must equal n (needs an index and a load: FLAT)."""
    from pymilvus import Collection, utility

    col = Collection(name)
    col.create_index("vector", {"index_type": "FLAT", "metric_type": "L2", "params": {}})
    col.load()
    got = col.query(expr="", output_fields=["count(*)"], consistency_level="Strong")[0]["count(*)"]
    col.release()
    utility.drop_collection(name)
    if got != n:
        raise SystemExit(f"{name}: count(*) = {got}, expected {n}")


def job_file(path, faiss_path, name, mode, stage=None):
    with open(path, "w") as f:
        f.write(f'[source]\ntype = "faiss"\npath = "{faiss_path}"\n\n'
                f'[sink]\ntype = "milvus2"\nuri = "${{VMIG_MILVUS_URI}}"\nuser = "${{VMIG_MILVUS_USER}}"\n'
                f'password = "${{VMIG_MILVUS_PASSWORD}}"\ncollection = "{name}"\nmode = "{mode}"\n'
                f'if_exists = "drop"\n')
        if stage:
            f.write(f'stage = "{stage}"\n')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vmig", required=True)
    ap.add_argument("--faiss-python", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--size", choices=SIZES, default="full")
    ap.add_argument("--runs", type=int, default=1,
                    help="runs of every tool, interleaved; the table shows the median")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    stage_root = os.path.join(os.environ["VMIG_MILVUS_STAGE"], "bench")
    for n, d in SIZES[a.size]:
        if not os.path.exists(stem(a.work, n, d) + ".faiss"):
            subprocess.run([a.faiss_python, __file__, "--generate", a.work, str(n), str(d)], check=True)

    from pymilvus import utility

    connect()
    tables, names = [], []
    try:
        for n, d in SIZES[a.size]:
            base = stem(a.work, n, d)
            subprocess.run(["cat", base + ".faiss", base + ".ids.npy", base + ".vectors.npy"],
                           stdout=subprocess.DEVNULL, check=True)  # warm the page cache
            tools = [("pymilvus (10k batches)", f"bench_pymilvus_{d}"),
                     ("vmig insert", f"bench_vmig_insert_{d}"),
                     ("vmig insert (no state)", f"bench_vmig_insert_nostate_{d}"),
                     ("vmig bulk", f"bench_vmig_bulk_{d}")]
            measured = {tool: [] for tool, _ in tools}
            for tool, name in tools * a.runs:
                names.append(name)
                if utility.has_collection(name):
                    utility.drop_collection(name)
                print(f"{n} x {d}: {tool} ...", file=sys.stderr, flush=True)
                if tool.startswith("pymilvus"):
                    wall, cpu, out = run_measured([sys.executable, __file__, "--baseline", name, base, str(d)])
                    secs = float(out.strip().splitlines()[-1])
                else:
                    mode = tool.split()[1]
                    stage = os.path.join(stage_root, name) if mode == "bulk" else None
                    job = os.path.join(a.work, f"{name}.toml")
                    job_file(job, base + ".faiss", name, mode, stage)
                    # `--restart`: an earlier bench run of the same job file finished; "no state"
                    # runs without a state store, to show what saving progress costs.
                    state = ["--state", "none"] if "no state" in tool else ["--restart"]
                    secs, cpu, _ = run_measured([a.vmig, "-q", "migrate", job, "--progress", "none", *state])
                    if stage:
                        shutil.rmtree(stage, ignore_errors=True)
                print(f"  {secs:.2f}s, {n / secs:,.0f} rows/s; checking count(*)", file=sys.stderr, flush=True)
                check_and_drop(name, n)
                measured[tool].append((secs, cpu))
            rows = []
            for tool, _ in tools:
                runs = sorted(measured[tool])
                secs, cpu = runs[len(runs) // 2]
                rows.append((tool, n, secs, cpu))
            tables.append((n, d, rows))
    finally:
        for name in names:
            if utility.has_collection(name):
                utility.drop_collection(name)
        shutil.rmtree(stage_root, ignore_errors=True)

    print(f"\nFaiss IDMap2(FlatL2) -> Milvus 2.3.5 standalone on loopback, {os.cpu_count()} cores, "
          f"median of {a.runs} interleaved run(s); vmig: whole process, pymilvus: first insert to flush done\n")
    for n, d, rows in tables:
        print(f"{n:,} x {d}-d float32")
        print(f"  {'tool':<24}{'rows':>11}{'seconds':>9}{'rows/s':>10}{'vs pymilvus':>13}{'CPU s':>8}")
        base_rate = rows[0][1] / rows[0][2]
        for tool, n_, secs, cpu in rows:
            print(f"  {tool:<24}{n_:>11,}{secs:>9.2f}{n_ / secs:>10,.0f}{n_ / secs / base_rate:>12.2f}x{cpu:>8.2f}")
        print()


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--generate":
        generate(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif len(sys.argv) == 5 and sys.argv[1] == "--baseline":
        baseline(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
