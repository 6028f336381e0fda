"""Driver for scripts/bench-serve (see there): the same job run by `vmig migrate` (CLI) and by a
`vmig serve` this script starts (HTTP), alternating, on one machine in one session.

  * CLI: `vmig -q migrate JOB --progress none --json`, its own process; wall time from spawn to
    exit, CPU time from wait4's rusage, and the rate the CLI itself reports (`rows_per_second`
    of `--json`: rows over its pipeline's seconds).
  * HTTP: `POST /v1/jobs?name=ID` of the same job text (`application/toml`), then
    `GET /v1/jobs/ID` every --poll seconds on one keep-alive connection; wall time from just
    before the POST to the first answer that reads `done`. CPU time is the server process's
    (utime + stime from /proc, before and after: the job, the requests and the polling). The
    server's own rate is the job's `rows_per_second` once done (rows over ended_at − started_at,
    taken at full precision; the `started_at`/`ended_at` strings themselves have 1 s steps).

Both run into a SQLite state store of their own in the data root (the CLI's next to its job
files, the server's `.vmig/state.db`), each run under a fresh job name with a fresh output
directory or collection, so no run resumes another. The server runs from a private copy of the
binary (the target directory may be shared), which the CLI runs too; it listens on a free
loopback port with a random token, and its data root is a temporary directory that holds the
inputs (hard links when on the same file system, else copies) and the outputs.

Every run's row count is checked: rows_written of the run, and the output itself (Parquet
footers; Milvus count(*) with Strong consistency, then the collection is dropped).
"""
import argparse
import glob
import http.client
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from benchlib import median_spread, run_measured

HERE = os.path.dirname(os.path.abspath(__file__))
ALLOW_ENV = ["VMIG_MILVUS_URI", "VMIG_MILVUS_USER", "VMIG_MILVUS_PASSWORD"]


class Server:
    """`vmig serve` on a free loopback port with a random token, stopped by SIGTERM."""

    def __init__(self, vmig, root, log):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.token = secrets.token_hex(32)
        env = dict(os.environ, VMIG_API_TOKEN=self.token)
        cmd = [vmig, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-root", root]
        for name in ALLOW_ENV:
            cmd += ["--allow-env", name]
        self.log = log
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=open(log, "ab"), stderr=subprocess.STDOUT)
        self.conn = None
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"vmig serve exited ({self.proc.returncode}):\n{open(log).read()}")
            try:
                if self.call("GET", "/healthz")[0] == 200:
                    break
            except OSError:
                self.conn = None
            if time.monotonic() > deadline:
                raise SystemExit(f"vmig serve did not answer /healthz in 30 s:\n{open(log).read()}")
            time.sleep(0.05)

    def call(self, method, path, body=None, ctype=None):
        """One request on the kept-alive connection; returns (status, decoded JSON or None)."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"authorization": f"Bearer {self.token}"}
        if ctype:
            headers["content-type"] = ctype
        self.conn.request(method, path, body=body, headers=headers)
        r = self.conn.getresponse()
        data = r.read()
        return r.status, (json.loads(data) if data else None)

    def cpu_seconds(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def run(self, name, text, poll):
        """Submits the job and polls it until it is done: (wall s, server CPU s, job view)."""
        cpu0 = self.cpu_seconds()
        start = time.perf_counter()
        status, body = self.call("POST", f"/v1/jobs?name={name}", text.encode(), "application/toml")
        if status != 201:
            raise SystemExit(f"POST /v1/jobs?name={name}: {status} {body}")
        while True:
            status, job = self.call("GET", f"/v1/jobs/{name}")
            if status != 200:
                raise SystemExit(f"GET /v1/jobs/{name}: {status} {job}")
            if job["state"] == "done":
                secs = time.perf_counter() - start
                break
            if job["state"] in ("failed", "cancelled"):
                raise SystemExit(f"job {name} {job['state']}: {job.get('error')}\n{open(self.log).read()[-4000:]}")
            time.sleep(poll)
        return secs, self.cpu_seconds() - cpu0, job

    def stop(self):
        if self.conn is not None:
            self.conn.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def place(src, dst):
    """src into the data root: a hard link when the file system allows it, else a copy."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def parquet_rows(path):
    import pyarrow.parquet as pq

    files = glob.glob(os.path.join(path, "**", "*.parquet"), recursive=True)
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


class FilesJob:
    """Faiss IVFFlat (bench-faiss's cached input) → Parquet in the data root."""

    def __init__(self, a, root):
        src = os.path.join(a.work, "bench-faiss", f"ivfflat-{a.gib:g}gib.faiss")
        if not os.path.exists(src):
            os.makedirs(os.path.dirname(src), exist_ok=True)
            subprocess.run([a.faiss_python, os.path.join(HERE, "bench_faiss.py"), "--generate", src, str(a.gib)],
                           check=True)
        self.index = os.path.join(root, "in", os.path.basename(src))
        place(src, self.index)
        self.root, self.compression = root, a.compression
        self.rows = None  # from the first run, then checked against it
        mib = os.path.getsize(self.index) / (1 << 20)
        self.title = f"Faiss IVFFlat {mib:,.0f} MiB (128-d float32) -> Parquet ({a.compression}) in the data root"
        self.key = "files"

    def text(self, name):
        return (f'[source]\ntype = "faiss"\npath = "{self.index}"\n\n[sink]\ntype = "files"\n'
                f'format = "parquet"\ncompression = "{self.compression}"\npath = "{self.out(name)}"\n')

    def out(self, name):
        return os.path.join(self.root, "out", name)

    def check(self, name, written):
        got = parquet_rows(self.out(name))
        if self.rows is None:
            self.rows = got
        if not got == written == self.rows:
            raise SystemExit(f"{name}: {got} rows in the Parquet files, rows_written {written}, expected {self.rows}")
        shutil.rmtree(self.out(name))

    def cleanup(self):
        pass


class MilvusJob:
    """bench-milvus's IndexIDMap2(FlatL2) input → Milvus 2.3.5 (VMIG_MILVUS_*), insert or bulk."""

    def __init__(self, a, root):
        import bench_milvus

        self.bm = bench_milvus
        work = os.path.join(a.work, "bench-milvus")
        n, d = a.milvus_rows, 128
        src = bench_milvus.stem(work, n, d) + ".faiss"
        if not os.path.exists(src):
            os.makedirs(work, exist_ok=True)
            subprocess.run([a.faiss_python, os.path.join(HERE, "bench_milvus.py"), "--generate", work, str(n), str(d)],
                           check=True)
        self.index = os.path.join(root, "in", os.path.basename(src))
        place(src, self.index)
        self.root, self.rows, self.mode = root, n, a.milvus_mode
        self.title = f"Faiss IDMap2(FlatL2) {n:,} x {d}-d float32 -> Milvus 2.3.5 ({a.milvus_mode} mode) on loopback"
        self.key = "milvus"
        self.names = []
        try:
            bench_milvus.connect()
        except Exception as e:  # noqa: BLE001 -- pymilvus raises its own and grpc's errors
            raise SystemExit(f"Milvus at {os.environ['VMIG_MILVUS_URI']} does not answer ({e}); start it "
                             "(scripts/services start) or run only the files job") from None

    def text(self, name):
        self.names.append(name)
        stage = os.path.join(self.root, "stage", name) if self.mode == "bulk" else None
        path = os.path.join(self.root, "jobtext.toml")
        # bench-milvus's job (credentials as ${VMIG_MILVUS_*}, `if_exists = "drop"`), verbatim.
        self.bm.job_file(path, self.index, name, self.mode, stage)
        with open(path) as f:
            return f.read()

    def check(self, name, written):
        if written != self.rows:
            raise SystemExit(f"{name}: rows_written {written}, expected {self.rows}")
        self.bm.check_and_drop(name, self.rows)
        shutil.rmtree(os.path.join(self.root, "stage", name), ignore_errors=True)

    def cleanup(self):
        from pymilvus import utility

        for name in self.names:
            try:
                if utility.has_collection(name):
                    utility.drop_collection(name)
            except Exception as e:  # noqa: BLE001 -- cleanup must not hide the error that stopped the bench
                print(f"could not drop {name}: {e}", file=sys.stderr)


def bench(job, vmig, server, rounds, warmup, poll, log):
    """warmup rounds (not counted: the first writes into a fresh data root, or a first
    connection, cost more), then rounds × (CLI, HTTP), their order swapped every other round;
    returns {path: [run, ...]}."""
    results = {"CLI": [], "HTTP": []}
    clidir = os.path.join(job.root, "cli")
    os.makedirs(clidir, exist_ok=True)
    for r in range(-warmup, rounds):
        for path in (["CLI", "HTTP"] if r % 2 == 0 else ["HTTP", "CLI"]):
            label = f"round {r + 1}" if r >= 0 else f"warm-up {r + warmup + 1}"
            # Underscores only: the name is also a Milvus collection's.
            name = f"bench_serve_{job.key}_{path.lower()}_" + (f"r{r + 1}" if r >= 0 else f"w{r + warmup + 1}")
            text = job.text(name)
            os.sync()  # the previous run's writes are not this one's to pay for
            if path == "CLI":
                jobfile = os.path.join(clidir, f"{name}.toml")
                with open(jobfile, "w") as f:
                    f.write(text)
                secs, cpu, out = run_measured([vmig, "-q", "migrate", jobfile, "--progress", "none", "--json"])
                summary = json.loads(out)
                written, own = summary["rows_written"], summary["seconds"]
                own_rate = written / own
            else:
                secs, cpu, view = server.run(name, text, poll)
                written, own_rate = view["rows_written"], view["rows_per_second"]
                own = written / own_rate if own_rate else float("nan")
            job.check(name, written)
            run = {"secs": secs, "rows": written, "rate": written / secs, "own_rate": own_rate, "cpu": cpu}
            if r >= 0:
                results[path].append(run)
            line = (f"{job.key} {label} {path:<4}: {secs:6.2f} s, {run['rate']:>9,.0f} rows/s "
                    f"(own: {own:.2f} s, {own_rate:,.0f} rows/s), {cpu:.2f} CPU s")
            print(line, file=sys.stderr, flush=True)
            log.write(line + "\n")
            log.flush()
    return results


def report(job, results, rounds, warmup, poll):
    """The table of one job: per path the median, min, max and spread of the wall rows/s, the
    median own rate and CPU seconds; then HTTP/CLI."""
    rows = results["CLI"][0]["rows"]
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    out = [f"\n{job.title}: {rows:,} rows, {rounds} rounds of CLI and HTTP after {warmup} warm-up, "
           f"order swapped every other round, {os.cpu_count()} cores (load average after: {load}); "
           f"HTTP polled every {poll * 1000:.0f} ms",
           f"  {'path':<6}{'median s':>10}{'rows/s median':>15}{'min':>11}{'max':>11}{'spread':>8}"
           f"{'own rows/s':>12}{'CPU s':>7}"]
    med = {}
    for path, runs in results.items():
        m, lo, hi, spread = median_spread([x["rate"] for x in runs])
        own = median_spread([x["own_rate"] for x in runs])[0]
        secs = median_spread([x["secs"] for x in runs])[0]
        cpu = median_spread([x["cpu"] for x in runs])[0]
        med[path] = (m, own)
        out.append(f"  {path:<6}{secs:>10.2f}{m:>15,.0f}{lo:>11,.0f}{hi:>11,.0f}{spread:>7.1f}%{own:>12,.0f}{cpu:>7.2f}")
    pairs = [h["rate"] / c["rate"] for c, h in zip(results["CLI"], results["HTTP"])]
    pm, plo, phi, _ = median_spread(pairs)
    out.append(f"  HTTP/CLI: {med['HTTP'][0] / med['CLI'][0]:.3f}x (medians of wall rows/s; per round "
               f"{pm:.3f}x median, {plo:.3f}-{phi:.3f}x); own rates {med['HTTP'][1] / med['CLI'][1]:.3f}x")
    out.append("  spread = (max - min) / median; own = the CLI's --json rows_per_second and the server's "
               "rows_per_second (started_at -> ended_at)")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vmig", required=True)
    ap.add_argument("--faiss-python", required=True)
    ap.add_argument("--work", required=True, help="VMIG_WORK: the cached inputs of bench-faiss and bench-milvus")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1, help="rounds run first and not counted")
    ap.add_argument("--jobs", choices=["all", "files", "milvus"], default="all")
    ap.add_argument("--gib", type=float, default=1.0, help="size of the Faiss IVFFlat input of the files job")
    ap.add_argument("--compression", default="zstd", help="the files job's Parquet compression")
    ap.add_argument("--milvus-rows", type=int, default=100_000)
    ap.add_argument("--milvus-mode", choices=["insert", "bulk"], default="insert")
    ap.add_argument("--poll", type=float, default=0.02, help="seconds between two GET /v1/jobs/ID")
    ap.add_argument("--tmp", default=None, help="where the temporary directory goes (default: $TMPDIR)")
    ap.add_argument("--log", default=None, help="also append the per-run lines and the tables here")
    a = ap.parse_args()

    want = ["files", "milvus"] if a.jobs == "all" else [a.jobs]
    if "milvus" in want and not os.environ.get("VMIG_MILVUS_URI"):
        if a.jobs == "milvus":
            raise SystemExit("VMIG_MILVUS_URI is not set: source $VMIG_WORK/services.env (scripts/services start)")
        print("VMIG_MILVUS_URI is not set: the Milvus job is skipped", file=sys.stderr)
        want.remove("milvus")

    tmp = tempfile.mkdtemp(prefix="vmig-bench-serve-", dir=a.tmp)
    root = os.path.join(tmp, "root")
    os.makedirs(root)
    log = open(a.log, "a") if a.log else open(os.devnull, "w")
    log.write(f"\n== bench-serve {time.strftime('%Y-%m-%d %H:%M:%S %Z')}: rounds {a.rounds} (+{a.warmup} warm-up), "
              f"jobs {' '.join(want)}, temporary directory under {a.tmp or tempfile.gettempdir()}\n")
    server, jobs = None, []
    try:
        # One binary for both paths, copied: another checkout may rebuild the shared target.
        vmig = os.path.join(tmp, "vmig")
        shutil.copy2(a.vmig, vmig)
        server = Server(vmig, root, os.path.join(tmp, "serve.log"))
        tables = []
        for key in want:  # every job's input and connection first: fail before any run
            jobs.append(FilesJob(a, root) if key == "files" else MilvusJob(a, root))
        for job in jobs:
            subprocess.run(["cat", job.index], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
            print(f"==> {job.title}", file=sys.stderr, flush=True)
            tables.append((job, bench(job, vmig, server, a.rounds, a.warmup, a.poll, log)))
        for job, results in tables:
            text = report(job, results, a.rounds, a.warmup, a.poll)
            sys.stdout.write(text)
            log.write(text)
    finally:
        try:
            if server is not None:
                server.stop()
            for job in jobs:
                job.cleanup()
        finally:
            log.close()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
