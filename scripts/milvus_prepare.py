"""Prepares a Milvus 2.3.5 standalone data directory with the PyPI package's own config writer
and binary extractor (no server is started). Used by scripts/milvus.

usage: milvus_prepare.py DATA_DIR BASE_PORT
Every port is explicit (B .. B+9; etcd peer B+10; metrics B+11), components bind loopback,
authentication is on (root / Milvus), graceful stop is 5 s.
"""
import sys

import milvus

data_dir, base = sys.argv[1], int(sys.argv[2])
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
cfg.resolve()
milvus._initialize_data_files(cfg.base_data_dir)
print(cfg.base_data_dir)
