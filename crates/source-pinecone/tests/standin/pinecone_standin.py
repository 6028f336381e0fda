"""A STAND-IN for Pinecone (a hosted service that cannot run here), for vmig's tests.

It serves, on one port, the parts of Pinecone's REST API version 2025-10 that the `pinecone`
source uses: the control plane's `GET /indexes/{name}` and the data plane's
`POST /describe_index_stats`, `GET /vectors/list` and `GET /vectors/fetch`, over records read
from a JSON file. It is NOT Pinecone: it is written from the published OpenAPI documents
(pinecone-io/pinecone-api, 2025-10/db_data_2025-10.oas.yaml and db_control_2025-10.oas.yaml).

So that it cannot drift from those documents, every answer it sends (successes and errors) is
first checked against the models that the official Python SDK (`pinecone` 8.1.2, API 2025-10)
generates from the same OpenAPI documents: types and required properties by the SDK's own
`validate_and_convert_types`, and, stricter than the SDK, no property the model does not
declare. An answer that does not fit is replaced by HTTP 500 `STAND-IN DRIFT …` and counted;
`GET /_standin/stats` reports the counts, and the tests assert there was none.

Usage: python pinecone_standin.py DATA.json PORT

DATA.json: {"api_key": "...", "index": {"name", "dimension" (null for sparse), "metric",
"vector_type", "kind": "serverless" | "pod"}, "namespaces": {"ns": [record, ...]},
"throttle_every": N (0: never; every Nth data-plane request answers 429, alternately with
`Retry-After: 1` and without; the time until the same request comes again is recorded), "die_after_lists": N (0: never; the process exits while
answering list request N+1), "volatile_tokens": bool (pagination tokens of an earlier process
are refused with 400)}. A record is {"id", "values"?, "sparseValues"?, "metadata"?} as Pinecone
returns it.
"""

import base64
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

from pinecone.config import OpenApiConfiguration
from pinecone.openapi_support import validate_and_convert_types
from pinecone.openapi_support.model_utils import OpenApiModel
from pinecone.core.openapi.db_data.model.list_response import ListResponse
from pinecone.core.openapi.db_data.model.fetch_response import FetchResponse
from pinecone.core.openapi.db_data.model.index_description import IndexDescription
from pinecone.core.openapi.db_data.model.rpc_status import RpcStatus
from pinecone.core.openapi.db_control.model.index_model import IndexModel
from pinecone.core.openapi.db_control.model.error_response import ErrorResponse
from pinecone.core.openapi.db_control.model.pod_spec import PodSpec
from pinecone.core.openapi.db_control.model.serverless_spec_response import ServerlessSpecResponse

API_VERSION = "2025-10"
CONFIG = OpenApiConfiguration()


def undeclared(data, model, path):
    """Properties of `data` that `model` (a generated class) does not declare, recursively."""
    out = []
    if not (isinstance(model, type) and issubclass(model, OpenApiModel)) or not isinstance(data, dict):
        return out
    names = {v: k for k, v in model.attribute_map.items()}
    types = model.openapi_types
    for key, value in data.items():
        if key not in names:
            out.append(f"{path}.{key}")
            continue
        for t in types[names[key]]:
            if isinstance(t, list) and isinstance(value, list):
                for i, item in enumerate(value):
                    for inner in t:
                        out += undeclared(item, inner, f"{path}.{key}[{i}]")
            elif isinstance(t, dict) and isinstance(value, dict):
                for k2, item in value.items():
                    for inner in list(t.values())[0]:
                        out += undeclared(item, inner, f"{path}.{key}[{k2!r}]")
            else:
                out += undeclared(value, t, f"{path}.{key}")
    return out


class State:
    def __init__(self, data):
        self.data = data
        self.lock = threading.Lock()
        self.requests = 0
        self.lists = 0
        self.fetches = 0
        self.drift = []
        self.throttled_with_retry_after = 0
        self.throttled_without = 0
        # request line -> when a 429 with Retry-After answered it; the gap to the same request
        # again is recorded when it comes.
        self.retry_after_sent = {}
        self.retry_after_gaps = []
        self.max_fetch_ids = 0
        self.epoch = os.urandom(4).hex() if data.get("volatile_tokens") else "0"
        self.sorted = {
            ns: sorted(recs, key=lambda r: r["id"].encode("utf-8"))
            for ns, recs in data["namespaces"].items()
        }
        self.by_id = {ns: {r["id"]: r for r in recs} for ns, recs in data["namespaces"].items()}


STATE = None


def token_for(after):
    raw = json.dumps({"after": after, "e": STATE.epoch}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def after_of(token):
    try:
        t = json.loads(base64.urlsafe_b64decode(token.encode()))
    except Exception:
        return None
    if t.get("e") != STATE.epoch:
        return None
    return t.get("after")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def send(self, status, body, model, headers=()):
        problems = []
        payload = json.dumps(body).encode()
        checks = [(body, model, "$")]
        if model is IndexModel:
            # IndexModel declares `spec` as a free object (oneOf); check its variant too.
            for key, spec_model in (("serverless", ServerlessSpecResponse), ("pod", PodSpec)):
                if key in body.get("spec", {}):
                    checks.append((body["spec"][key], spec_model, f"$.spec.{key}"))
        for part, part_model, path in checks:
            try:
                # What is checked is exactly what is sent (parsed again: the SDK's checker
                # converts what it is given in place).
                validate_and_convert_types(json.loads(json.dumps(part)), (part_model,), [path], True, True, configuration=CONFIG)
            except Exception as e:
                problems.append(f"{type(e).__name__}: {e}")
            problems += [f"undeclared property {p}" for p in undeclared(part, part_model, path)]
        if problems:
            with STATE.lock:
                STATE.drift.append(f"{self.path}: {problems}")
            sys.stderr.write(f"STAND-IN DRIFT {self.path}: {problems}\n")
            status, headers = 500, ()
            payload = json.dumps({"code": 13, "message": f"STAND-IN DRIFT: {problems}", "details": []}).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(payload)

    def rpc_error(self, status, code, message, headers=()):
        # google.rpc.Status as the data plane's 4XX/5XX answers (rpcStatus).
        self.send(status, {"code": code, "message": message, "details": []}, RpcStatus, headers)

    def control_error(self, status, code, message):
        self.send(status, {"status": status, "error": {"code": code, "message": message}}, ErrorResponse)

    def common(self, control):
        if self.headers.get("X-Pinecone-Api-Version") != API_VERSION:
            msg = f"X-Pinecone-Api-Version must be {API_VERSION}, got {self.headers.get('X-Pinecone-Api-Version')!r}"
            if control:
                self.control_error(400, "INVALID_ARGUMENT", msg)
            else:
                self.rpc_error(400, 3, msg)
            return False
        if self.headers.get("Api-Key") != STATE.data["api_key"]:
            if control:
                self.control_error(401, "UNAUTHENTICATED", "Invalid API Key")
            else:
                self.rpc_error(401, 16, "Invalid API Key")
            return False
        if control:
            return True
        now = time.monotonic()
        with STATE.lock:
            STATE.requests += 1
            n = STATE.requests
            sent = STATE.retry_after_sent.pop(self.path, None)
            if sent is not None:
                STATE.retry_after_gaps.append(now - sent)
            every = STATE.data.get("throttle_every", 0)
            throttle = every and n % every == 0
            with_header = throttle and (n // every) % 2 == 1
            if throttle:
                if with_header:
                    STATE.throttled_with_retry_after += 1
                    STATE.retry_after_sent[self.path] = now
                else:
                    STATE.throttled_without += 1
        if throttle:
            msg = "Request failed. You've reached the max fetch requests per second per index (100). Try again later."
            self.rpc_error(429, 8, msg, [("Retry-After", "1")] if with_header else [])
            return False
        return True

    def do_GET(self):
        url = urlparse(self.path)
        q = parse_qs(url.query, keep_blank_values=True)
        if url.path == "/_standin/stats":
            with STATE.lock:
                body = {
                    "requests": STATE.requests,
                    "lists": STATE.lists,
                    "fetches": STATE.fetches,
                    "drift": STATE.drift,
                    "throttled_with_retry_after": STATE.throttled_with_retry_after,
                    "throttled_without": STATE.throttled_without,
                    "retry_after_gaps": STATE.retry_after_gaps,
                    "max_fetch_ids": STATE.max_fetch_ids,
                }
            payload = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        if url.path.startswith("/indexes/"):
            if not self.common(True):
                return
            name = unquote(url.path[len("/indexes/"):])
            idx = STATE.data["index"]
            if name != idx["name"]:
                self.control_error(404, "NOT_FOUND", f"Resource {name} not found")
                return
            host = self.headers.get("Host")
            if idx["kind"] == "pod":
                spec = {"pod": {"environment": "us-east1-gcp", "pod_type": "p1.x1", "replicas": 1, "shards": 1, "pods": 1}}
            else:
                spec = {"serverless": {"cloud": "aws", "region": "us-east-1",
                                       "read_capacity": {"mode": "OnDemand", "status": {"state": "Ready"}}}}
            body = {
                "name": idx["name"],
                "metric": idx["metric"],
                "host": host,
                "spec": spec,
                "status": {"ready": True, "state": "Ready"},
                "vector_type": idx["vector_type"],
                "deletion_protection": "disabled",
                "tags": {},
            }
            if idx.get("dimension") is not None:
                body["dimension"] = idx["dimension"]
            self.send(200, body, IndexModel)
            return
        if url.path == "/vectors/list":
            if not self.common(False):
                return
            with STATE.lock:
                STATE.lists += 1
                lists = STATE.lists
            die = STATE.data.get("die_after_lists", 0)
            if die and lists > die:
                sys.stderr.write("stand-in: stopping mid-list as asked\n")
                sys.stderr.flush()
                os._exit(0)
            if STATE.data["index"]["kind"] == "pod":
                self.rpc_error(400, 3, "The list operation is only supported for serverless indexes")
                return
            ns = q.get("namespace", [""])[0]
            limit = int(q.get("limit", ["100"])[0])
            prefix = q.get("prefix", [""])[0]
            token = q.get("paginationToken", [None])[0]
            recs = STATE.sorted.get(ns, [])
            after = None
            if token is not None:
                after = after_of(token)
                if after is None:
                    self.rpc_error(400, 3, "Invalid pagination token")
                    return
            ids = [r["id"] for r in recs if r["id"].startswith(prefix)]
            if after is not None:
                ids = [i for i in ids if i.encode() > after.encode()]
            page = ids[:limit]
            body = {"vectors": [{"id": i} for i in page], "namespace": ns, "usage": {"readUnits": 1}}
            if len(ids) > limit:
                body["pagination"] = {"next": token_for(page[-1])}
            self.send(200, body, ListResponse)
            return
        if url.path == "/vectors/fetch":
            if not self.common(False):
                return
            ids = q.get("ids", [])
            ns = q.get("namespace", [""])[0]
            with STATE.lock:
                STATE.fetches += 1
                STATE.max_fetch_ids = max(STATE.max_fetch_ids, len(ids))
            if len(ids) > 1000:
                self.rpc_error(400, 3, "Cannot fetch more than 1000 ids")
                return
            recs = STATE.by_id.get(ns, {})
            body = {
                "vectors": {i: recs[i] for i in ids if i in recs},
                "namespace": ns,
                "usage": {"readUnits": 1},
            }
            self.send(200, body, FetchResponse)
            return
        self.rpc_error(404, 5, f"Not found: {url.path}")

    def do_POST(self):
        url = urlparse(self.path)
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        if url.path == "/describe_index_stats":
            if not self.common(False):
                return
            try:
                json.loads(raw or b"{}")
            except ValueError:
                self.rpc_error(400, 3, "the body is not JSON")
                return
            idx = STATE.data["index"]
            spaces = {ns: {"vectorCount": len(r)} for ns, r in STATE.data["namespaces"].items() if r}
            body = {
                "namespaces": spaces,
                "indexFullness": 0.0,
                "totalVectorCount": sum(v["vectorCount"] for v in spaces.values()),
                "metric": idx["metric"],
                "vectorType": idx["vector_type"],
            }
            if idx.get("dimension") is not None:
                body["dimension"] = idx["dimension"]
            self.send(200, body, IndexDescription)
            return
        self.rpc_error(404, 5, f"Not found: {url.path}")


def main():
    global STATE
    data_file, port = sys.argv[1], int(sys.argv[2])
    with open(data_file) as f:
        STATE = State(json.load(f))
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    sys.stderr.write(f"stand-in: listening on 127.0.0.1:{port}\n")
    sys.stderr.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
