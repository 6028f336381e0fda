#!/usr/bin/env python3
"""Driver of scripts/bench-pgvector (see there): loads the bench table once, then times, interleaved
round by round, the server ceiling (psql \\copy … (FORMAT binary) to /dev/null), the Python script a
user would write (psycopg 3 + pgvector-python + pyarrow -> Parquet) and vmig -> Parquet. Each run is
a child process, so CPU time and peak RSS come from the kernel (benchlib.run: wait4 rusage)."""
import argparse
import os
import sys
import time
import urllib.parse

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from benchlib import ceiling_python_vmig

DB = "vmig_bench"


def db_url(url, db):
    u = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(u._replace(path=f"/{db}"))


def load(url, table, rows, dim):
    """Creates database vmig_bench (if missing) and fills `table` unless it already holds rows rows:
    id bigint primary key, n integer, tag text, embedding vector(dim) (random float32, seeded)."""
    with psycopg.connect(url, autocommit=True) as c:
        if not c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB,)).fetchone():
            c.execute(f"CREATE DATABASE {DB}")
    with psycopg.connect(db_url(url, DB), autocommit=True) as c:
        c.execute("CREATE EXTENSION IF NOT EXISTS vector")
        register_vector(c)
        if c.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0]:
            if c.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == rows:
                print(f"==> {table}: {rows} rows already loaded", file=sys.stderr)
                return
            c.execute(f"DROP TABLE {table}")
        c.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, n integer NOT NULL, tag text, "
                  f"embedding vector({dim}) NOT NULL)")
        rng = np.random.default_rng(768)
        start = time.perf_counter()
        with c.cursor().copy(f"COPY {table} (id, n, tag, embedding) FROM STDIN WITH (FORMAT BINARY)") as cp:
            cp.set_types(["int8", "int4", "text", "vector"])
            for lo in range(0, rows, 10_000):
                hi = min(lo + 10_000, rows)
                vecs = rng.standard_normal((hi - lo, dim), dtype=np.float32)
                for k, i in enumerate(range(lo, hi)):
                    cp.write_row((i, i, f"t{i % 7}", vecs[k]))
                print(f"    loaded {hi}/{rows} ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
        c.execute(f"VACUUM ANALYZE {table}")


def drop(url, table):
    with psycopg.connect(db_url(url, DB), autocommit=True) as c:
        c.execute(f"DROP TABLE IF EXISTS {table}")
    print(f"==> dropped {DB}.{table}", file=sys.stderr)


# What a user would write: a server-side (named) cursor, fetchmany by pages, pgvector's numpy
# arrays, pyarrow -> Parquet.
PYTHON = r"""
import sys
import numpy as np, psycopg, pyarrow as pa, pyarrow.parquet as pq
from pgvector.psycopg import register_vector
url, table, out, dim, page = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
schema = pa.schema([("id", pa.int64()), ("n", pa.int32()), ("tag", pa.string()),
                    ("embedding", pa.list_(pa.float32(), dim))])
w = pq.ParquetWriter(out, schema, compression="none")
with psycopg.connect(url) as conn:
    register_vector(conn)
    with conn.cursor(name="export") as cur:
        cur.itersize = page
        cur.execute(f"SELECT id, n, tag, embedding FROM {table} ORDER BY id")
        while rows := cur.fetchmany(page):
            vecs = np.stack([r[3].to_numpy() for r in rows])
            w.write_batch(pa.record_batch([
                pa.array([r[0] for r in rows], pa.int64()),
                pa.array([r[1] for r in rows], pa.int32()),
                pa.array([r[2] for r in rows]),
                pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1)), dim),
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
    ap.add_argument("--drop", action="store_true", help="drop the bench table and exit")
    a = ap.parse_args()
    table = f"bench_{a.rows}x{a.dim}"
    if a.drop:
        drop(a.url, table)
        return
    os.makedirs(a.work, exist_ok=True)
    load(a.url, table, a.rows, a.dim)
    url = db_url(a.url, DB)
    out = os.path.join(a.work, "out")
    script = os.path.join(a.work, "user_script.py")
    with open(script, "w") as f:
        f.write(PYTHON)
    cmds = {
        "ceiling (psql \\copy binary)": [
            "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-c",
            f"\\copy (SELECT id, n, tag, embedding FROM {table} ORDER BY id) TO '/dev/null' (FORMAT binary)"],
        "python (psycopg+pyarrow)": [sys.executable, script, url, table, f"{out}/python.parquet",
                                     str(a.dim), str(a.page)],
    }
    ceiling_python_vmig(cmds, a, f'type = "pgvector"\nurl = "{url}"\ntable = "{table}"\n',
                       f"pgvector {a.rows} x {a.dim}-d (+ id bigint, n int, tag text) -> uncompressed Parquet, pages of {a.page}")


if __name__ == "__main__":
    main()
