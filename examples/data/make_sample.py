"""Writes examples/data/sample.faiss, the index the README's first command migrates.

A real faiss-cpu IndexIVFFlat (L2, 16 lists) holding 2,000 seeded 64-d vectors added with
explicit ids 1_000_000 + 3·i, so the migrated ids are visibly the index's own ids.
Run with the project's venv:  $(scripts/pyenv) examples/data/make_sample.py
"""
import os

import faiss
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(20261125)
n, d, nlist = 2000, 64, 16
xb = rng.standard_normal((n, d)).astype("float32")
ids = (1_000_000 + 3 * np.arange(n)).astype("int64")
quantizer = faiss.IndexFlatL2(d)
index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_L2)
index.train(xb)
index.add_with_ids(xb, ids)
faiss.write_index(index, os.path.join(HERE, "sample.faiss"))
print(f"wrote sample.faiss: {index.ntotal} vectors, d={d}, nlist={nlist}")
