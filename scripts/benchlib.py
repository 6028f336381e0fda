"""Helpers shared by the scripts/bench_*.py benchmarks: run a command as a child and measure
its wall time, CPU time (user + system, from wait4's rusage) and peak RSS or output."""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def run(cmd):
    """Runs cmd with stdout discarded, then syncs so written data reaches the disk inside the
    timing; returns (wall seconds, CPU seconds, peak RSS MiB). Exits on failure with stderr."""
    start = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    err = p.stderr.read().decode() if p.stderr else ""
    subprocess.run(["sync"], check=True)
    secs = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{cmd[0]} failed ({status}):\n{err}")
    return secs, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024


def args():
    """The arguments every bench driver takes: --vmig (the binary), --work (its directory,
    created), --gib (input size) and --runs."""
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--vmig", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--gib", type=float, default=1.0)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    return a


def rounds(cmds, out, runs, label="", order=None):
    """Runs every command of cmds ({name: argv}) runs times, interleaved round by round (in the
    order order(round) gives, default cmds' order), each into a fresh empty directory out after
    writing back the previous command's dirty pages (so no command pays for the one before it);
    returns {name: [run(cmd) results]}."""
    results = {k: [] for k in cmds}
    for r in range(runs):
        for name in (order(r) if order else list(cmds)):
            shutil.rmtree(out, ignore_errors=True)
            os.makedirs(out)
            os.sync()
            results[name].append(run(cmds[name]))
            print(f"run {r + 1} {label}{name}: {results[name][-1][0]:.2f}s", file=sys.stderr)
    return results


def run_measured(cmd):
    """Runs cmd as a child; returns (wall seconds, CPU seconds, stdout). Output goes to temporary
    files so wait4 can reap the child itself and report its rusage. Exits on failure with the
    child's stderr and stdout."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        secs = time.perf_counter() - start
        p.returncode = rc = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        o, e = out.read().decode(), err.read().decode()
    if rc != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} failed ({rc}):\n{e}{o}")
    return secs, ru.ru_utime + ru.ru_stime, o


def print_table(results, mib, baseline):
    """Prints one row per tool of results ({name: [(secs, cpu, rss MiB), ...]}): median seconds,
    MiB/s for mib MiB, speed relative to the results[baseline] median, median CPU seconds and
    the largest peak RSS."""
    base_secs = statistics.median(s for s, _, _ in results[baseline])
    print(f"{'tool':<26}{'seconds':>9}{'MiB/s':>9}{'vs cp':>8}{'CPU s':>8}{'peak RSS MiB':>14}")
    for name, rs in results.items():
        secs = statistics.median(s for s, _, _ in rs)
        cpu = statistics.median(c for _, c, _ in rs)
        rss = max(m for _, _, m in rs)
        print(f"{name:<26}{secs:>9.2f}{mib / secs:>9.0f}{base_secs / secs:>8.2f}{cpu:>8.2f}{rss:>14.0f}")


def median_spread(values):
    """(median, min, max, spread %) of values; spread is (max − min) / median."""
    m = statistics.median(values)
    lo, hi = min(values), max(values)
    return m, lo, hi, 100 * (hi - lo) / m if m else float("nan")


def parquet_rows(path):
    """The rows of every .parquet file below path (pyarrow metadata, nothing decoded)."""
    import pyarrow.parquet as pq

    files = [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs if f.endswith(".parquet")]
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def ceiling_python_vmig(cmds, a, source_toml, title):
    """The source benches' common part. cmds holds the ceiling first and the Python script
    second ({name: argv}; the script writes into <work>/out); this adds vmig → uncompressed
    Parquet with 1 and 2 partitions of the `[source]` table source_toml, checks once that the
    script and vmig write a.rows rows, runs a.runs rotated interleaved rounds and prints median
    seconds, rows/s, the ratios to the ceiling and to the script, CPU s and peak RSS."""
    out = os.path.join(a.work, "out")
    for parts in (1, 2):
        job = os.path.join(a.work, f"job-{parts}.toml")
        with open(job, "w") as f:
            f.write(f"[source]\n{source_toml}partitions = {parts}\n\n"
                    f'[sink]\ntype = "files"\nformat = "parquet"\ncompression = "none"\n'
                    f'path = "{out}/vmig"\noverwrite = true\n')
        cmds[f"vmig partitions={parts}"] = [a.vmig, "-q", "migrate", job, "--progress", "none",
                                            "--state", "none"]
    names = list(cmds)
    for k in (names[1], "vmig partitions=1"):
        rounds({k: cmds[k]}, out, 1, "check ")
        got = parquet_rows(out)
        assert got == a.rows, f"{k} wrote {got} rows, not {a.rows}"
    # Each round in another order (rotated), so no tool always follows the same one.
    results = rounds(cmds, out, a.runs, order=lambda r: names[r % len(names):] + names[:r % len(names)])
    shutil.rmtree(out, ignore_errors=True)
    ceil = statistics.median(s for s, _, _ in results[names[0]])
    py = statistics.median(s for s, _, _ in results[names[1]])
    print(f"\n{title}, median of {a.runs} interleaved runs, {os.cpu_count()} CPUs\n")
    print(f"{'run':<30}{'seconds':>9}{'rows/s':>9}{'vs ceiling':>12}{'vs python':>11}{'CPU s':>8}"
          f"{'peak RSS MiB':>14}  (min-max s)")
    for k, rs in results.items():
        secs = statistics.median(s for s, _, _ in rs)
        cpu = statistics.median(c for _, c, _ in rs)
        rss = max(m for _, _, m in rs)
        lo, hi = min(s for s, _, _ in rs), max(s for s, _, _ in rs)
        print(f"{k:<30}{secs:>9.2f}{a.rows / secs:>9.0f}{ceil / secs:>11.2f}x{py / secs:>10.2f}x"
              f"{cpu:>8.2f}{rss:>14.0f}  ({lo:.2f}-{hi:.2f})")
