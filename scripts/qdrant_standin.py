#!/usr/bin/env python3
"""A STAND-IN for a Qdrant server, for vmig's tests: no real Qdrant server can run on these
machines (no registry ships it). It serves the two REST endpoints the `qdrant` source uses, as
Qdrant's OpenAPI document (qdrant/qdrant docs/redoc/master/openapi.json) describes them:

  GET  /collections/{collection_name}               -> {"result": CollectionInfo, "status", "time"}
  POST /collections/{collection_name}/points/scroll -> {"result": ScrollResult, "status", "time"}

over collections held by the `qdrant-client` package's local mode (QdrantClient(":memory:")),
an independent implementation of Qdrant's storage and scroll semantics (ids ordered integers
first, then UUIDs; cosine vectors normalised; `offset` inclusive; `next_page_offset`). Requests
are parsed with qdrant-client's pydantic models (`qdrant_client.http.models.ScrollRequest`,
generated from that OpenAPI document) and answers serialised with its models too, so the
stand-in checks the requests vmig sends against the specification. Errors follow the real
server: 404 `{"status": {"error": "Not found: Collection `x` doesn't exist!"}}`, 401 with a
plain-text body for a missing or wrong `api-key` header, 400 for a request that does not fit
the schema.

What a test compares against is written next to it: `--out DIR` gets `<collection>.jsonl`, one
point per line as qdrant-client's own local-mode `scroll` returns it (all points, in order), and
`ready` (the port) once the server listens.

  python qdrant_standin.py --port 18300 --out DIR [--collections mixed,ints,...] [--points N]
                           [--api-key KEY] [--die-after-scrolls N]

`--die-after-scrolls N` makes the process exit abruptly (no answer, connection reset) on the
(N+1)-th scroll request that asks for vectors: a server that stops mid-scroll.
"""

import argparse
import json
import os
import random
import re
import struct
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pydantic import ValidationError
from qdrant_client import QdrantClient
from qdrant_client.http import models

U64_MAX = 2**64 - 1


def payload(rng, i):
    """Nested payloads of every JSON type; some keys missing, some null, one key of mixed types."""
    p = {
        "n": rng.randrange(-(2**40), 2**40),
        "score": rng.random() * 100 - 50,
        "tag": rng.choice(["a", "b", "ünï", "日本", ""]),
        "flag": rng.random() < 0.5,
        "nested": {"list": [rng.randrange(10) for _ in range(rng.randrange(4))], "obj": {"k": f"v{i}", "z": None}},
        "mix": i if i % 3 else f"s{i}",
    }
    if i % 11 == 0:
        del p["tag"]
    if i % 13 == 0:
        p["score"] = None
    if i % 97 == 0:
        return {}
    return p


def f32(x):
    """x rounded to float32: Qdrant keeps sparse values as float32, local mode as float64."""
    return struct.unpack("f", struct.pack("f", x))[0]


def sparse(rng):
    k = rng.randrange(0, 6)
    idx = sorted(rng.sample(range(1000), k))
    return models.SparseVector(indices=idx, values=[f32(rng.uniform(-1, 1)) for _ in idx])


def build(client, names, points):
    rng = random.Random(18)
    if "mixed" in names:
        # Integer ids (with gaps, and one above 2^63-1) and random UUIDs; two named dense vectors
        # (cosine: normalised by Qdrant) and a sparse one.
        client.create_collection(
            "mixed",
            vectors_config={
                "dense": models.VectorParams(size=8, distance=models.Distance.COSINE),
                "img": models.VectorParams(size=3, distance=models.Distance.DOT),
            },
            sparse_vectors_config={"sp": models.SparseVectorParams()},
        )
        batch = []
        for i in range(points):
            if i % 2 == 0:
                pid = i * 7 + 3
            elif i == 1:
                pid = U64_MAX
            else:
                pid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            vec = {"dense": [rng.uniform(-1, 1) for _ in range(8)], "sp": sparse(rng)}
            if i % 5:
                vec["img"] = [rng.uniform(-1, 1) for _ in range(3)]
            else:
                vec["img"] = [0.5, -0.25, 1.0]
            batch.append(models.PointStruct(id=pid, vector=vec, payload=payload(rng, i)))
            if len(batch) == 2000:
                client.upsert("mixed", batch)
                batch = []
        if batch:
            client.upsert("mixed", batch)
    if "ints" in names:
        # The unnamed vector, integer ids below 2^63 (an Int64 primary key), typed payload.
        client.create_collection("ints", vectors_config=models.VectorParams(size=4, distance=models.Distance.DOT))
        client.upsert(
            "ints",
            [
                models.PointStruct(
                    id=i * 3 + 1,
                    vector=[rng.uniform(-2, 2) for _ in range(4)],
                    payload={"k": i, "name": f"p{i}", "w": i / 8, "ok": i % 2 == 0},
                )
                for i in range(1500)
            ],
        )
    if "u8" in names:
        client.create_collection(
            "u8",
            vectors_config=models.VectorParams(size=16, distance=models.Distance.EUCLID, datatype=models.Datatype.UINT8),
        )
        client.upsert(
            "u8",
            [models.PointStruct(id=i, vector=[float(rng.randrange(256)) for _ in range(16)]) for i in range(300)],
        )
    if "manh" in names:
        client.create_collection("manh", vectors_config=models.VectorParams(size=2, distance=models.Distance.MANHATTAN))
        client.upsert("manh", [models.PointStruct(id=i, vector=[i, -i]) for i in range(10)])
    if "multi" in names:
        client.create_collection(
            "multi",
            vectors_config={
                "colbert": models.VectorParams(
                    size=2,
                    distance=models.Distance.COSINE,
                    multivector_config=models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM),
                ),
                "plain": models.VectorParams(size=2, distance=models.Distance.EUCLID),
            },
        )
        client.upsert(
            "multi",
            [models.PointStruct(id=i, vector={"colbert": [[1.0, 0.0], [0.0, 1.0]], "plain": [i, 1.0]}) for i in range(5)],
        )


def dump(obj):
    return obj.model_dump(mode="json")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--collections", default="mixed,ints,u8,manh,multi")
    ap.add_argument("--points", type=int, default=52000)
    ap.add_argument("--api-key")
    ap.add_argument("--die-after-scrolls", type=int)
    args = ap.parse_args()

    started = time.time()
    client = QdrantClient(":memory:")
    names = [n for n in args.collections.split(",") if n]
    build(client, names, args.points)
    os.makedirs(args.out, exist_ok=True)
    for name in names:
        total = client.count(name).count
        pts, _ = client.scroll(name, limit=total + 1, with_payload=True, with_vectors=True)
        with open(os.path.join(args.out, f"{name}.jsonl"), "w") as f:
            for p in pts:
                f.write(json.dumps(dump(p)) + "\n")
    lock = threading.Lock()
    state = {"vector_scrolls": 0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def send(self, code, body, ctype="application/json"):
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(code)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def error(self, code, message):
            self.send(code, {"status": {"error": message}, "time": 0.0})

        def authorised(self):
            if not args.api_key:
                return True
            key = self.headers.get("api-key")
            if key is None:
                self.send(401, "Must provide an API key or an Authorization bearer token", "text/plain")
                return False
            if key != args.api_key:
                self.send(401, "Invalid API key or JWT", "text/plain")
                return False
            return True

        def collection(self, name):
            if not client.collection_exists(name):
                self.error(404, f"Not found: Collection `{name}` doesn't exist!")
                return False
            return True

        def do_GET(self):
            if not self.authorised():
                return
            m = re.fullmatch(r"/collections/([^/?]+)", self.path.split("?")[0])
            if not m:
                return self.error(404, f"Not found: {self.path}")
            if not self.collection(m.group(1)):
                return
            info = client.get_collection(m.group(1))
            self.send(200, {"result": dump(info), "status": "ok", "time": 0.0})

        def do_POST(self):
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length)
            if not self.authorised():
                return
            m = re.fullmatch(r"/collections/([^/?]+)/points/scroll", self.path.split("?")[0])
            if not m:
                return self.error(404, f"Not found: {self.path}")
            name = m.group(1)
            if not self.collection(name):
                return
            try:
                req = models.ScrollRequest.model_validate_json(raw or b"{}")
            except ValidationError as e:
                return self.error(400, f"Format error in JSON body: {e}")
            if req.order_by is not None:
                return self.error(400, "the stand-in does not serve order_by (vmig never sends it)")
            wants_vectors = req.with_vector not in (None, False, [])
            if wants_vectors and args.die_after_scrolls is not None:
                with lock:
                    state["vector_scrolls"] += 1
                    if state["vector_scrolls"] > args.die_after_scrolls:
                        os._exit(3)
            try:
                pts, nxt = client.scroll(
                    name,
                    scroll_filter=req.filter,
                    limit=req.limit if req.limit is not None else 10,
                    offset=req.offset,
                    with_payload=req.with_payload if req.with_payload is not None else True,
                    with_vectors=req.with_vector if req.with_vector is not None else False,
                )
            except (ValueError, TypeError) as e:
                return self.error(400, f"Bad request: {e}")
            result = models.ScrollResult(points=pts, next_page_offset=nxt)
            self.send(200, {"result": dump(result), "status": "ok", "time": 0.0})

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    with open(os.path.join(args.out, "ready"), "w") as f:
        f.write(str(args.port))
    print(f"qdrant stand-in on 127.0.0.1:{args.port} ({', '.join(names)}) after {time.time() - started:.1f}s", file=sys.stderr)
    server.serve_forever()


if __name__ == "__main__":
    main()
