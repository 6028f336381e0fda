"""Driver for scripts/bench-milvus1 (see there). Each measured command runs as its own child
process so its peak RSS and CPU time come from the kernel (wait4 rusage)."""
import argparse
import os
import shutil
import subprocess

from benchlib import print_table, run


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vmig", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    tables = os.path.join(a.data, "db", "tables")
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(tables) for f in fs)
    out = os.path.join(a.work, "out")
    job = os.path.join(a.work, "job.toml")
    with open(job, "w") as f:
        f.write(f'[source]\ntype = "milvus1"\npath = "{a.data}"\n\n[sink]\ntype = "files"\nformat = "parquet"\n'
                f'compression = "none"\npath = "{out}/vmig"\noverwrite = true\n')
    cmds = {
        "cp -r (segment files)": ["cp", "-r", tables, os.path.join(out, "copy")],
        "vmig (--state none)": [a.vmig, "-q", "migrate", job, "--progress", "none", "--state", "none"],
        "vmig (state)": [a.vmig, "-q", "migrate", job, "--progress", "none", "--restart"],
    }
    results = {k: [] for k in cmds}
    for d, _, fs in os.walk(tables):  # warm the page cache
        for f in fs:
            subprocess.run(["cat", os.path.join(d, f)], stdout=subprocess.DEVNULL, check=True)
    for r in range(a.runs):
        for name, cmd in cmds.items():
            shutil.rmtree(out, ignore_errors=True)
            os.makedirs(out)
            results[name].append(run(cmd))
            print(f"run {r + 1} {name}: {results[name][-1][0]:.2f}s", flush=True)
    mib = size / (1 << 20)
    print(f"\nMilvus 1.x {mib:.0f} MiB of segment files -> uncompressed Parquet, median of {a.runs} runs, "
          f"{os.cpu_count()} cores\n")
    print_table(results, mib, "cp -r (segment files)")
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
