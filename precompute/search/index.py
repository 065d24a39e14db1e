"""The nearest-neighbour index over a run's search vectors (faiss).

Why faiss: of the libraries the issue names, it has wheels for this platform (hnswlib
ships only a source package), exact and approximate indexes behind one interface, and
serialises to bytes. ``benchmarks/similarity.py`` measured its HNSW index against exact
search (``benchmarks/RESULTS.md``).

The index kind follows the size. Up to :data:`EXACT_LIMIT` vectors it is exact
(``IndexFlatIP``). On this 2-core machine that answers a top-100 query over 1.28 million
64-dimensional vectors (ImageNet's training set) in 35 ms (p95 60 ms) with recall 1 and
313 MiB: within the goal of 100 ms, recall 0.9 and 2 GB. HNSW (``IndexHNSWFlat``, M = 32,
efConstruction = 64, efSearch = :data:`EF_SEARCH`) answered in 0.4 ms but found only 80 %
of the exact top 100 at 200,000 clustered vectors, so it is used only beyond that size.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

__all__ = ["EXACT_LIMIT", "EF_SEARCH", "build_index", "search", "index_to_bytes", "index_from_bytes"]

EXACT_LIMIT = 2_000_000
EF_SEARCH = 256


def build_index(vectors: np.ndarray, *, kind: str = "auto", threads: int = 0):
    """An inner-product index over ``vectors`` (n, d) float32 (unit length: cosine similarity).

    ``kind``: ``auto``, ``exact`` or ``hnsw``; ``threads`` > 0 sets faiss's OpenMP threads.
    """
    import faiss

    if threads > 0:
        faiss.omp_set_num_threads(threads)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if kind == "auto":
        kind = "exact" if len(vectors) <= EXACT_LIMIT else "hnsw"
    if kind == "exact":
        index = faiss.IndexFlatIP(vectors.shape[1])
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(vectors.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 64
        index.hnsw.efSearch = EF_SEARCH
    else:
        raise ValueError(f"unknown index kind {kind!r}; known: auto, exact, hnsw")
    index.add(vectors)
    return index


def search(index, queries: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """``(scores, ids)``, each (q, k), best first; ids are rows of the indexed vectors (-1: none)."""
    queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    return index.search(queries, min(int(k), index.ntotal))


def index_to_bytes(index) -> bytes:
    import faiss

    return faiss.serialize_index(index).tobytes()


def index_from_bytes(payload: bytes):
    import faiss

    index = faiss.deserialize_index(np.frombuffer(payload, dtype=np.uint8))
    if hasattr(index, "hnsw"):
        index.hnsw.efSearch = EF_SEARCH
    return index
