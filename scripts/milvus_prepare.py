"""Prepares a Milvus 2.3.5 standalone data directory with the PyPI package's own config writer
and binary extractor (no server is started). Used by scripts/milvus.

usage: milvus_prepare.py DATA_DIR BASE_PORT [KEY=VALUE ...]
Each KEY=VALUE is an extra config (like the launcher's --extra-config, e.g. common.storageType=minio);
the key must exist in the shipped template, and is checked in the generated configs/milvus.yaml.
Every port is explicit (B .. B+9; etcd peer B+10; metrics B+11), components bind loopback,
authentication is on (root / Milvus), graceful stop is 5 s.
"""
import os
import re
import socket
import sys

import milvus


def try_bind_port(self, port):
    """The writer test-binds every port before writing the config. Its own check binds without
    SO_REUSEADDR, so it fails for a minute after any earlier Milvus on these ports stopped
    (sockets in TIME_WAIT) — while the server itself (Go, SO_REUSEADDR) would bind fine. Check
    the way the server binds."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
        return sock
    except OSError:
        sock.close()
        return None


milvus.MilvusServerConfig.try_bind_port = try_bind_port

data_dir, base = sys.argv[1], int(sys.argv[2])
extra = []
for arg in sys.argv[3:]:
    key, sep, value = arg.partition("=")
    if not sep or not key:
        sys.exit(f"milvus_prepare.py: extra config {arg!r} is not KEY=VALUE")
    extra.append((key, value))
ports = {
    "proxy_port": base, "proxy_internal_port": base + 1, "etcd_port": base + 2,
    "root_coord_port": base + 3, "query_coord_port": base + 4, "query_node_port": base + 5,
    "index_coord_port": base + 6, "index_node_port": base + 7, "data_coord_port": base + 8,
    "data_node_port": base + 9,
}
cfg = milvus.MilvusServerConfig(data_dir=data_dir, **ports)
for comp in ("rootCoord", "proxy", "queryCoord", "queryNode", "indexCoord", "indexNode", "dataCoord", "dataNode"):
    cfg.set(f"{comp}.ip", "127.0.0.1")
cfg.set("common.gracefulStopTimeout", 5)
cfg.set("log.level", "warn")
cfg.set("authorization_enabled", True)
for key, value in extra:
    cfg.set(key, value)
cfg.resolve()
# The writer ignores keys the template lacks: check every extra key landed in the written config
# (a small indentation-based reader: the venv has no YAML library).
written, stack = {}, []
with open(os.path.join(cfg.base_data_dir, "configs", "milvus.yaml"), encoding="utf-8") as f:
    for line in f:
        m = re.match(r"^( *)([A-Za-z0-9_]+):([^#]*)", line)
        if not m:
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, m.group(2)))
        written.setdefault(".".join(k for _, k in stack), m.group(3).strip())
for key, value in extra:
    got = written.get(key)
    if got is None or got.strip("'\"").lower() != value.lower():
        sys.exit(f"milvus_prepare.py: {key}={value} did not land in configs/milvus.yaml (got {got!r})")
milvus._initialize_data_files(cfg.base_data_dir)
print(cfg.base_data_dir)
