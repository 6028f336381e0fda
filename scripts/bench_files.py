"""Driver for scripts/bench-files (see there). Each measured command runs as its own child
process so its peak RSS and CPU time come from the kernel (wait4 rusage)."""
import os
import shutil
import subprocess
import sys

from benchlib import args, print_table, rounds

DIM = 128

# What a user would write: read the whole fvecs with numpy (the TEXMEX recipe), write Parquet.
PY_FVECS = r'''
import sys, numpy as np, pyarrow as pa, pyarrow.parquet as pq
src, out = sys.argv[1], sys.argv[2]
raw = np.fromfile(src, dtype="<i4")
d = int(raw[0])
vecs = raw.reshape(-1, d + 1)[:, 1:].copy().view("<f4")
n = vecs.shape[0]
vec_col = pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1)), d)
table = pa.table({"id": pa.array(np.arange(n, dtype=np.int64)), "vector": vec_col})
pq.write_table(table, out, compression="none")
'''

# The same for Parquet, streamed by row group (reading it whole would need the file's size in RAM).
PY_PARQUET = r'''
import sys, pyarrow.parquet as pq
src, out = sys.argv[1], sys.argv[2]
f = pq.ParquetFile(src)
writer = None
for i in range(f.num_row_groups):
    t = f.read_row_group(i)
    if writer is None:
        writer = pq.ParquetWriter(out, t.schema, compression="none")
    writer.write_table(t)
writer.close()
'''


def generate(kind, path, gib):
    import numpy as np

    n = int(gib * (1 << 30) / (4 * DIM + 8))
    print(f"generating {path}: {kind} n={n} d={DIM} (once)", file=sys.stderr)
    rng = np.random.default_rng(11)
    tmp = path + ".tmp"
    step = 100_000
    if kind == "fvecs":
        with open(tmp, "wb") as f:
            for start in range(0, n, step):
                m = min(step, n - start)
                rec = np.empty((m, DIM + 1), dtype="<i4")
                rec[:, 0] = DIM
                rec[:, 1:] = rng.standard_normal((m, DIM)).astype("<f4").view("<i4")
                rec.tofile(f)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        writer = None
        for start in range(0, n, step):
            m = min(step, n - start)
            vecs = rng.standard_normal((m, DIM)).astype("<f4").reshape(-1)
            offsets = pa.array(np.arange(0, (m + 1) * DIM, DIM, dtype=np.int32))
            table = pa.table({
                "id": pa.array(np.arange(start, start + m, dtype=np.int64)),
                "vector": pa.ListArray.from_arrays(offsets, pa.array(vecs)),
            })
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema, compression="none")
            writer.write_table(table, row_group_size=step)
        writer.close()
    os.rename(tmp, path)


def main():
    a = args()
    for kind, baseline in (("fvecs", PY_FVECS), ("parquet", PY_PARQUET)):
        src = os.path.join(a.work, f"input-{a.gib:g}gib.{kind}")
        if not os.path.exists(src):
            subprocess.run([sys.executable, __file__, "--generate", kind, src, str(a.gib)], check=True)
        size = os.path.getsize(src)
        out = os.path.join(a.work, "out")
        job = os.path.join(a.work, f"job-{kind}.toml")
        with open(job, "w") as f:
            f.write(f'[source]\ntype = "files"\npath = "{src}"\n\n[sink]\ntype = "files"\nformat = "parquet"\n'
                    f'compression = "none"\npath = "{out}/vmig"\noverwrite = true\n')
        cmds = {
            "cp": ["cp", src, os.path.join(out, "copy")],
            "vmig (--state none)": [a.vmig, "-q", "migrate", job, "--progress", "none", "--state", "none"],
            f"python ({'numpy' if kind == 'fvecs' else 'pyarrow'} + pyarrow)": [
                sys.executable, "-c", baseline, src, os.path.join(out, "python.parquet")],
        }
        subprocess.run(["cat", src], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
        results = rounds(cmds, out, a.runs, label=f"{kind} ")
        mib = size / (1 << 20)
        print(f"\n{kind} {mib:.0f} MiB (d={DIM}) -> uncompressed Parquet, median of {a.runs} runs, {os.cpu_count()} cores\n")
        print_table(results, mib, "cp")
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--generate":
        generate(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    else:
        main()
