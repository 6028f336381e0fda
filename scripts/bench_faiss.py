"""Driver for scripts/bench-faiss (see there). Each measured command runs as its own child
process so its peak RSS and CPU time come from the kernel (wait4 rusage)."""
import os
import shutil
import subprocess
import sys

from benchlib import args, print_table, rounds

BASELINE = r'''
import sys, faiss, numpy as np, pyarrow as pa, pyarrow.parquet as pq
index, out = sys.argv[1], sys.argv[2]
whole = faiss.read_index(index)  # keep alive: the IVF view borrows it
ivf = faiss.extract_index_ivf(whole)
inv, d = faiss.downcast_InvertedLists(ivf.invlists), ivf.d
writer = None
for l in range(ivf.nlist):
    n = inv.list_size(l)
    if n == 0:
        continue
    ids = faiss.rev_swig_ptr(inv.get_ids(l), n).copy()
    vecs = faiss.rev_swig_ptr(inv.get_codes(l), n * inv.code_size).copy().view("<f4")
    vec_col = pa.ListArray.from_arrays(pa.array(np.arange(0, (n + 1) * d, d, dtype=np.int32)), pa.array(vecs))
    table = pa.table({"id": pa.array(ids), "vector": vec_col})
    if writer is None:
        writer = pq.ParquetWriter(out, table.schema, compression="none")
    writer.write_table(table)
writer.close()
'''


def generate(path, gib):
    import faiss
    import numpy as np

    d, nlist = 128, 1024
    n = int(gib * (1 << 30) / (4 * d + 8))
    print(f"generating {path}: IVFFlat n={n} d={d} nlist={nlist} (once)", file=sys.stderr)
    rng = np.random.default_rng(7)
    quantizer = faiss.IndexFlatL2(d)
    index = faiss.IndexIVFFlat(quantizer, d, nlist)
    index.train(rng.standard_normal((64 * nlist, d)).astype("float32"))
    step = 200_000
    for start in range(0, n, step):
        m = min(step, n - start)
        index.add(rng.standard_normal((m, d)).astype("float32"))
    tmp = path + ".tmp"
    faiss.write_index(index, tmp)
    os.rename(tmp, path)


def main():
    a = args()
    index = os.path.join(a.work, f"ivfflat-{a.gib:g}gib.faiss")
    if not os.path.exists(index):
        # In a child process: a fork of a driver that had faiss's 1.5 GB in memory would report
        # that as every later child's peak RSS.
        subprocess.run([sys.executable, __file__, "--generate", index, str(a.gib)], check=True)
    size = os.path.getsize(index)
    out = os.path.join(a.work, "out")
    job = os.path.join(a.work, "job.toml")
    with open(job, "w") as f:
        f.write(f'[source]\ntype = "faiss"\npath = "{index}"\n\n[sink]\ntype = "files"\nformat = "parquet"\n'
                f'compression = "none"\npath = "{out}/vmig"\noverwrite = true\n')

    cmds = {
        "cp": ["cp", index, os.path.join(out, "copy.faiss")],
        # Without a state store, and with the default one (progress saved at every flush and
        # every 30 s; `--restart` because the previous run of the same job finished).
        "vmig (--state none)": [a.vmig, "-q", "migrate", job, "--progress", "none", "--state", "none"],
        "vmig (state)": [a.vmig, "-q", "migrate", job, "--progress", "none", "--restart"],
        "python (faiss + pyarrow)": [sys.executable, "-c", BASELINE, index, os.path.join(out, "python.parquet")],
    }
    subprocess.run(["cat", index], stdout=subprocess.DEVNULL, check=True)  # warm the page cache

    def order(r):
        # The two vmig runs swap places every other round, so neither always follows cp.
        names = list(cmds)
        if r % 2:
            i, j = names.index("vmig (--state none)"), names.index("vmig (state)")
            names[i], names[j] = names[j], names[i]
        return names

    results = rounds(cmds, out, a.runs, order=order)
    mib = size / (1 << 20)
    print(f"\nFaiss IVFFlat {mib:.0f} MiB -> uncompressed Parquet, median of {a.runs} runs, {os.cpu_count()} cores\n")
    print_table(results, mib, "cp")
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--generate":
        generate(sys.argv[2], float(sys.argv[3]))
    else:
        main()
