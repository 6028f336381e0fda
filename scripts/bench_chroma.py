#!/usr/bin/env python3
"""Driver of scripts/bench-chroma (see there): loads the bench collection once, then times, interleaved
round by round, the server ceiling (raw HTTP paging of `get`), the Python script a user would write
(chromadb client + pyarrow -> Parquet) and vmig -> Parquet. Each run is a child process, so CPU time
and peak RSS come from the kernel (benchlib.run: wait4 rusage)."""
import argparse
import json
import os
import sys
import time
import urllib.parse
import urllib.request

import numpy as np

from benchlib import ceiling_python_vmig

API = "api/v2/tenants/default_tenant/databases/default_database/collections"


def call(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()[:500]


def load(url, name, rows, dim):
    """Creates and fills the collection unless it already holds rows rows: ids `r<i>`, metadata
    `n` (int) and `tag` (str), a short document, random float32 vectors (seeded)."""
    status, col = call("GET", f"{url}/{API}/{name}")
    if status == 200:
        _, n = call("GET", f"{url}/{API}/{col['id']}/count")
        if n == rows:
            print(f"==> {name}: {rows} rows already loaded", file=sys.stderr)
            return
        call("DELETE", f"{url}/{API}/{name}")
    status, col = call("POST", f"{url}/{API}", {"name": name, "metadata": {"hnsw:space": "l2"}})
    assert status == 200, col
    rng = np.random.default_rng(768)
    chunk = 1000
    start = time.perf_counter()
    for lo in range(0, rows, chunk):
        hi = min(lo + chunk, rows)
        vecs = rng.standard_normal((hi - lo, dim), dtype=np.float32)
        body = {
            "ids": [f"r{i}" for i in range(lo, hi)],
            # float32 -> Python float is exact; Chroma parses it back to the same float32.
            "embeddings": vecs.tolist(),
            "metadatas": [{"n": i, "tag": f"t{i % 7}"} for i in range(lo, hi)],
            "documents": [f"document {i}" for i in range(lo, hi)],
        }
        status, r = call("POST", f"{url}/{API}/{col['id']}/add", body)
        assert status in (200, 201), r
        if hi % 20000 == 0:
            print(f"    loaded {hi}/{rows} ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    _, n = call("GET", f"{url}/{API}/{col['id']}/count")
    assert n == rows, n


def drop(url, name):
    status, r = call("DELETE", f"{url}/{API}/{name}")
    print(f"==> dropped {name}" if status == 200 else f"==> {name}: HTTP {status} {r}", file=sys.stderr)


# The ceiling: one keep-alive HTTP connection asking for the same pages as the others (embeddings,
# documents, metadatas), each body read whole and discarded unparsed.
CEILING = r"""
import http.client, json, sys, urllib.parse
url, cid, rows, page = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
u = urllib.parse.urlsplit(url)
c = http.client.HTTPConnection(u.hostname, u.port)
path = f"/api/v2/tenants/default_tenant/databases/default_database/collections/{cid}/get"
total = 0
for off in range(0, rows, page):
    body = json.dumps({"limit": page, "offset": off, "include": ["embeddings", "documents", "metadatas"]})
    c.request("POST", path, body, {"content-type": "application/json"})
    r = c.getresponse()
    data = r.read()
    assert r.status == 200, data[:300]
    total += len(data)
print(total)
"""

# What a user would write: the chromadb client's get() by limit/offset, pyarrow -> Parquet.
PYTHON = r"""
import sys, urllib.parse
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
import chromadb
url, name, out, dim, page = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
u = urllib.parse.urlsplit(url)
client = chromadb.HttpClient(host=u.hostname, port=u.port)
col = client.get_collection(name)
total = col.count()
schema = pa.schema([("id", pa.string()), ("embedding", pa.list_(pa.float32(), dim)),
                    ("document", pa.string()), ("n", pa.int64()), ("tag", pa.string())])
w = pq.ParquetWriter(out, schema, compression="none")
for off in range(0, total, page):
    r = col.get(limit=page, offset=off, include=["embeddings", "documents", "metadatas"])
    vecs = np.asarray(r["embeddings"], dtype=np.float32)
    metas = r["metadatas"]
    w.write_batch(pa.record_batch([
        pa.array(r["ids"]),
        pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1)), dim),
        pa.array(r["documents"]),
        pa.array([m.get("n") for m in metas], pa.int64()),
        pa.array([m.get("tag") for m in metas]),
    ], schema=schema))
w.close()
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vmig", required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--page", type=int, default=1000)
    ap.add_argument("--drop", action="store_true", help="drop the bench collection and exit")
    a = ap.parse_args()
    name = f"vmig_bench_{a.rows}x{a.dim}"
    if a.drop:
        drop(a.url, name)
        return
    os.makedirs(a.work, exist_ok=True)
    load(a.url, name, a.rows, a.dim)
    _, col = call("GET", f"{a.url}/{API}/{name}")
    out = os.path.join(a.work, "out")
    ceiling = os.path.join(a.work, "ceiling.py")
    script = os.path.join(a.work, "user_script.py")
    with open(ceiling, "w") as f:
        f.write(CEILING)
    with open(script, "w") as f:
        f.write(PYTHON)
    cmds = {
        "ceiling (raw HTTP get)": [sys.executable, ceiling, a.url, col["id"], str(a.rows), str(a.page)],
        "python (chromadb+pyarrow)": [sys.executable, script, a.url, name, f"{out}/python.parquet",
                                      str(a.dim), str(a.page)],
    }
    ceiling_python_vmig(cmds, a, f'type = "chroma"\nurl = "{a.url}"\ncollection = "{name}"\nbatch_size = {a.page}\n',
                       f"Chroma {a.rows} x {a.dim}-d (+ id, document, 2 metadata keys) -> uncompressed Parquet, pages of {a.page}")


if __name__ == "__main__":
    main()
