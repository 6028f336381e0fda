#!/usr/bin/env python3
"""Driver of scripts/bench-es: loads the index once, then times the server ceiling (curl paging a
scroll), a Python baseline (elasticsearch-py scroll -> pyarrow Parquet) and vmig -> Parquet.
Each run is a child process, so CPU time and peak RSS come from the kernel (wait4 rusage)."""
import argparse
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request

import numpy as np


def call(method, url, body=None, ctype="application/json"):
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": ctype})
    try:
        with urllib.request.urlopen(req) as r:
            return json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return {"status": e.code, "error": e.read().decode()[:500]}


def load(url, index, docs, dim):
    c = call("GET", f"{url}/{index}/_count")
    if c.get("count") == docs:
        print(f"==> {index}: {docs} documents already loaded", file=sys.stderr)
        return
    call("DELETE", f"{url}/{index}")
    mapping = {
        "settings": {"number_of_shards": 2, "number_of_replicas": 0},
        "mappings": {"properties": {
            "n": {"type": "long"},
            "tag": {"type": "keyword"},
            # No HNSW graph: the bench measures reading, and building one would take hours here.
            "v": {"type": "dense_vector", "dims": dim, "index": False},
        }},
    }
    r = call("PUT", f"{url}/{index}", json.dumps(mapping))
    assert r.get("acknowledged"), r
    rng = np.random.default_rng(768)
    chunk = 500
    start = time.perf_counter()
    for lo in range(0, docs, chunk):
        hi = min(lo + chunk, docs)
        vecs = rng.standard_normal((hi - lo, dim), dtype=np.float32)
        lines = []
        for k, i in enumerate(range(lo, hi)):
            lines.append(json.dumps({"index": {"_index": index, "_id": f"d{i}"}}))
            v = ",".join("%.7g" % x for x in vecs[k])
            lines.append(f'{{"n":{i},"tag":"t{i % 7}","v":[{v}]}}')
        r = call("POST", f"{url}/_bulk", "\n".join(lines) + "\n", "application/x-ndjson")
        assert r.get("errors") is False, str(r)[:500]
        if lo % 20000 == 0:
            print(f"    loaded {hi}/{docs} ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    call("POST", f"{url}/{index}/_refresh")
    assert call("GET", f"{url}/{index}/_count").get("count") == docs


GUARD_KIB = 8 * 1024 * 1024
READY = None  # (url, index, docs) to wait for after a restart


def noida_rss_kib():
    out = subprocess.run(["ps", "-C", "noida-db", "-o", "rss="], capture_output=True, text=True).stdout
    return max([int(x) for x in out.split()] or [0])


def restart(es):
    """Restarts the stand-in so every run starts from the same, small memory footprint (noida-db
    keeps what a scroll materialised long after the scroll is freed)."""
    subprocess.run([es, "stop"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run([es, "start"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if READY:
        url, index, docs = READY
        for _ in range(600):
            if call("GET", f"{url}/{index}/_count").get("count") == docs:
                return
            time.sleep(0.2)
        raise SystemExit(f"{index} did not come back with {docs} documents after the restart")


def run(cmd, env=None, es=None):
    """Runs one timed child. A guard stops the stand-in (and so the run) if its memory passes
    8 GiB: noida-db materialises whole scrolls and can otherwise exhaust a shared machine."""
    if es:
        restart(es)
    stop = threading.Event()
    tripped = []

    def guard():
        while not stop.wait(0.5):
            if noida_rss_kib() > GUARD_KIB:
                tripped.append(noida_rss_kib())
                subprocess.run([es, "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                return

    t = threading.Thread(target=guard, daemon=True)
    if es:
        t.start()
    start = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    _, status, ru = os.wait4(p.pid, 0)
    out = p.stdout.read().decode() if p.stdout else ""
    err = p.stderr.read().decode() if p.stderr else ""
    secs = time.perf_counter() - start
    stop.set()
    if tripped:
        raise SystemExit(f"the stand-in passed 8 GiB RSS ({tripped[0] // 1024} MiB) and was stopped; use fewer documents")
    if status != 0:
        raise SystemExit(f"{cmd[0]} failed ({status}):\n{out}\n{err}")
    return secs, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, out


CEILING = r"""
set -euo pipefail
url=$1; index=$2; tmp=$3
curl -sf -o "$tmp" -XPOST "$url/$index/_search?scroll=5m" -H 'content-type: application/json' \
    -d '{"size":1000,"sort":["_doc"]}'
pages=0
while :; do
    id=$(head -c 2000 "$tmp" | grep -o '"_scroll_id":"[^"]*"' | cut -d'"' -f4)
    [[ $(stat -c %s "$tmp") -lt 1000 ]] && break
    pages=$((pages + 1))
    curl -sf -o "$tmp" -XPOST "$url/_search/scroll" -H 'content-type: application/json' \
        -d "{\"scroll\":\"5m\",\"scroll_id\":\"$id\"}"
done
curl -sf -o /dev/null -XDELETE "$url/_search/scroll" -H 'content-type: application/json' \
    -d "{\"scroll_id\":[\"$id\"]}"
echo "$pages"
"""

PYTHON = r"""
import sys
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
from elasticsearch import Elasticsearch
url, index, out, dim = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
es = Elasticsearch(url, request_timeout=300)
schema = pa.schema([("id", pa.string()), ("n", pa.int64()), ("tag", pa.string()),
                    ("v", pa.list_(pa.float32(), dim))])
w = pq.ParquetWriter(out, schema, compression="none")
r = es.search(index=index, scroll="5m", size=1000, sort=["_doc"])
sid, rows = r["_scroll_id"], 0
while r["hits"]["hits"]:
    hits = r["hits"]["hits"]
    vecs = np.array([h["_source"]["v"] for h in hits], dtype=np.float32)
    batch = pa.record_batch([
        pa.array([h["_id"] for h in hits]),
        pa.array([h["_source"]["n"] for h in hits], pa.int64()),
        pa.array([h["_source"]["tag"] for h in hits]),
        pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1)), dim),
    ], schema=schema)
    w.write_batch(batch)
    rows += len(hits)
    r = es.scroll(scroll_id=sid, scroll="5m")
    sid = r["_scroll_id"]
es.clear_scroll(scroll_id=sid)
w.close()
print(rows)
"""


def vmig_job(path, url, index, out, slices, method):
    with open(path, "w") as f:
        f.write(textwrap.dedent(f"""\
            [source]
            type = "elasticsearch"
            url = "{url}"
            index = "{index}"
            batch_size = 1000
            slices = {slices}
            method = "{method}"

            [sink]
            type = "files"
            path = "{out}"
            format = "parquet"
            overwrite = true
            """))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vmig", required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--es", required=True, help="scripts/es, to restart the stand-in between runs")
    ap.add_argument("--docs", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=768)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    index = f"vmig_bench_{a.docs}x{a.dim}"
    load(a.url, index, a.docs, a.dim)
    global READY
    READY = (a.url, index, a.docs)
    results = []

    ceiling = os.path.join(a.work, "ceiling.sh")
    with open(ceiling, "w") as f:
        f.write(CEILING)
    tmp = "/dev/shm/vmig-bench-es-page.json" if os.path.isdir("/dev/shm") else os.path.join(a.work, "page.json")
    print("==> server ceiling (curl scroll)", file=sys.stderr)
    secs, cpu, rss, _ = run(["bash", ceiling, a.url, index, tmp], es=a.es)
    os.remove(tmp)
    results.append(("server ceiling (curl)", secs, cpu, rss))

    print("==> Python baseline (elasticsearch-py + pyarrow)", file=sys.stderr)
    pyout = os.path.join(a.work, "python.parquet")
    script = os.path.join(a.work, "baseline.py")
    with open(script, "w") as f:
        f.write(PYTHON)
    secs, cpu, rss, out = run([sys.executable, script, a.url, index, pyout, str(a.dim)], es=a.es)
    assert int(out.strip()) == a.docs, out
    os.remove(pyout)
    results.append(("python (es-py + pyarrow)", secs, cpu, rss))

    # Scroll is what the ceiling and the baseline use; `auto` picks PIT + search_after on ES 8.15
    # (the stand-in re-runs the search for every search_after page, real Elasticsearch does not).
    for method, slices in (("scroll", 1), ("scroll", 2), ("auto", 1)):
        print(f"==> vmig -> Parquet, method = {method}, slices = {slices}", file=sys.stderr)
        out = os.path.join(a.work, f"vmig-{method}-{slices}")
        shutil.rmtree(out, ignore_errors=True)
        job = os.path.join(a.work, f"job-{method}-{slices}.toml")
        vmig_job(job, a.url, index, out, slices, method)
        env = dict(os.environ, RUST_LOG="warn")
        secs, cpu, rss, _ = run([a.vmig, "migrate", job, "--restart"], env, es=a.es)
        rows = 0
        import pyarrow.parquet as pq
        for root, _, files in os.walk(out):
            rows += sum(pq.ParquetFile(os.path.join(root, f)).metadata.num_rows
                        for f in files if f.endswith(".parquet"))
        assert rows == a.docs, f"vmig wrote {rows} rows"
        shutil.rmtree(out, ignore_errors=True)
        results.append((f"vmig {method} slices={slices}", secs, cpu, rss))

    base = a.docs / results[0][1]
    print(f"\n{a.docs} documents x {a.dim}-d, index {index} (2 shards), {os.cpu_count()} CPUs")
    print(f"{'run':<26}{'seconds':>9}{'docs/s':>9}{'vs ceiling':>12}{'CPU s':>8}{'peak RSS MiB':>14}")
    for name, secs, cpu, rss in results:
        rate = a.docs / secs
        print(f"{name:<26}{secs:>9.1f}{rate:>9.0f}{rate / base:>11.2f}x{cpu:>8.1f}{rss:>14.0f}")


if __name__ == "__main__":
    main()
