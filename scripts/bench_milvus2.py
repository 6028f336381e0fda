"""Driver for scripts/bench-milvus2 (see there); runs with the Milvus venv's python (pymilvus).

Both tools copy the same source collection into a fresh target collection, each as its own child
process (CPU time from wait4 rusage):
  * pymilvus: `Collection.query_iterator(batch_size=BATCH, output_fields=[id, vector])` on the
    source, `insert` of every batch into the target, then `flush`; timed from the iterator's
    creation to the flush (connecting and creating the target collection are not counted).
  * vmig: `vmig migrate job.toml` (milvus2 source → milvus2 sink), wall time of the whole process
    (start-up, describe, target creation, reading, inserting, flush: everything counts).
Afterwards each target gets a FLAT index and is loaded, `count(*)` (Strong) must equal the source's
row count, and the target is dropped.
"""
import argparse
import os
import sys
import time

from benchlib import run_measured

BATCH = 10_000
DIM = 128
SIZES = {"full": 500_000, "small": 100_000}
SRC = "default"
DST = "target"


def connect():
    from pymilvus import connections

    user, pw = os.environ.get("VMIG_MILVUS_USER", "root"), os.environ.get("VMIG_MILVUS_PASSWORD", "Milvus")
    connections.connect(SRC, uri=os.environ["VMIG_MILVUS_URI"], user=user, password=pw, timeout=30)
    connections.connect(DST, uri=target_uri(), user=os.environ.get("VMIG_MILVUS_S3_USER", user),
                        password=os.environ.get("VMIG_MILVUS_S3_PASSWORD", pw), timeout=30)


def target_uri():
    return os.environ.get("VMIG_MILVUS_S3_URI") or os.environ["VMIG_MILVUS_URI"]


def ensure_source(name, n):
    """The source collection, built once (seeded) and reused while it has n rows and is loaded."""
    import numpy as np
    from pymilvus import Collection, CollectionSchema, DataType, FieldSchema, utility

    if utility.has_collection(name, using=SRC):
        col = Collection(name, using=SRC)
        col.load()
        got = col.query(expr="", output_fields=["count(*)"], consistency_level="Strong")[0]["count(*)"]
        if got == n:
            return
        utility.drop_collection(name, using=SRC)
    print(f"building source {name}: {n} x {DIM} (once)", file=sys.stderr, flush=True)
    schema = CollectionSchema([
        FieldSchema("id", DataType.INT64, is_primary=True, auto_id=False),
        FieldSchema("vector", DataType.FLOAT_VECTOR, dim=DIM),
    ])
    col = Collection(name, schema, using=SRC)
    rng = np.random.default_rng(6)
    for i in range(0, n, BATCH):
        m = min(BATCH, n - i)
        col.insert([list(range(i, i + m)), rng.standard_normal((m, DIM), dtype=np.float32).tolist()])
    col.flush()
    col.create_index("vector", {"index_type": "FLAT", "metric_type": "L2", "params": {}})
    col.load()


def baseline(source, target):
    """The pymilvus copy, in its own process: prints the iterator→flush seconds."""
    from pymilvus import Collection, CollectionSchema, DataType, FieldSchema, utility

    connect()
    if utility.has_collection(target, using=DST):
        utility.drop_collection(target, using=DST)
    schema = CollectionSchema([
        FieldSchema("id", DataType.INT64, is_primary=True, auto_id=False),
        FieldSchema("vector", DataType.FLOAT_VECTOR, dim=DIM),
    ])
    dst = Collection(target, schema, using=DST)
    src = Collection(source, using=SRC)
    start = time.perf_counter()
    it = src.query_iterator(batch_size=BATCH, output_fields=["id", "vector"])
    while True:
        rows = it.next()
        if not rows:
            break
        dst.insert(rows)
    it.close()
    dst.flush()
    print(time.perf_counter() - start)


def check_and_drop(name, n):
    from pymilvus import Collection, utility

    col = Collection(name, using=DST)
    if not col.indexes:
        col.create_index("vector", {"index_type": "FLAT", "metric_type": "L2", "params": {}})
    col.load()
    got = col.query(expr="", output_fields=["count(*)"], consistency_level="Strong")[0]["count(*)"]
    col.release()
    utility.drop_collection(name, using=DST)
    if got != n:
        raise SystemExit(f"{name}: count(*) = {got}, expected {n}")


def job_file(path, source, target):
    pre = "VMIG_MILVUS_S3" if os.environ.get("VMIG_MILVUS_S3_URI") else "VMIG_MILVUS"
    with open(path, "w") as f:
        f.write('[source]\ntype = "milvus2"\nuri = "${VMIG_MILVUS_URI}"\nuser = "${VMIG_MILVUS_USER}"\n'
                f'password = "${{VMIG_MILVUS_PASSWORD}}"\ncollection = "{source}"\n\n'
                f'[sink]\ntype = "milvus2"\nuri = "{target_uri()}"\nuser = "${{{pre}_USER}}"\n'
                f'password = "${{{pre}_PASSWORD}}"\ncollection = "{target}"\nif_exists = "drop"\n')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vmig", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--size", choices=SIZES, default="full")
    a = ap.parse_args()
    n = SIZES[a.size]
    from pymilvus import utility

    connect()
    source = f"bench_m2src_{n}"
    ensure_source(source, n)
    rows, names = [], []
    try:
        for tool, name in [("pymilvus query_iterator", "bench_m2src_pymilvus"), ("vmig migrate", "bench_m2src_vmig")]:
            names.append(name)
            if utility.has_collection(name, using=DST):
                utility.drop_collection(name, using=DST)
            print(f"{n} x {DIM}: {tool} ...", file=sys.stderr, flush=True)
            if tool.startswith("pymilvus"):
                _, cpu, out = run_measured([sys.executable, __file__, "--baseline", source, name])
                secs = float(out.strip().splitlines()[-1])
            else:
                job = os.path.join(a.work, f"{name}.toml")
                job_file(job, source, name)
                secs, cpu, _ = run_measured([a.vmig, "-q", "migrate", job, "--progress", "none", "--restart"])
            print(f"  {secs:.2f}s, {n / secs:,.0f} rows/s; checking count(*)", file=sys.stderr, flush=True)
            check_and_drop(name, n)
            rows.append((tool, secs, cpu))
    finally:
        for name in names:
            if utility.has_collection(name, using=DST):
                utility.drop_collection(name, using=DST)

    same = target_uri() == os.environ["VMIG_MILVUS_URI"]
    print(f"\nMilvus 2.3.5 {os.environ['VMIG_MILVUS_URI']} -> {'the same server' if same else target_uri()}, "
          f"{n:,} x {DIM}-d float32, {os.cpu_count()} cores; vmig: whole process, pymilvus: iterator to flush done\n")
    print(f"  {'tool':<26}{'rows':>10}{'seconds':>9}{'rows/s':>10}{'vs pymilvus':>13}{'CPU s':>8}")
    base_rate = n / rows[0][1]
    for tool, secs, cpu in rows:
        print(f"  {tool:<26}{n:>10,}{secs:>9.2f}{n / secs:>10,.0f}{n / secs / base_rate:>12.2f}x{cpu:>8.2f}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--baseline":
        baseline(sys.argv[2], sys.argv[3])
    else:
        main()
