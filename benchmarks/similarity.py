"""Similarity search: build time, query latency, recall@100 and memory of the index.

Run with ``python benchmarks/similarity.py [--n 1280000] [--queries 200]``. The vectors
are synthetic (the issue allows it): non-negative, clustered like pooled |relevance|
maps (1,000 prototypes on the 8x8 grid, each sample a prototype plus noise), unit length,
64 dimensions (:data:`precompute.search.vectors.GRID`). The baseline, measured in the
same run, is exact search (faiss ``IndexFlatIP``); recall@100 is the share of the exact
top 100 that the index returns.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from machine import load_average, machine  # noqa: E402

from precompute.search.index import build_index, index_to_bytes, search  # noqa: E402


def synthetic(n: int, d: int = 64, prototypes: int = 1000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.gamma(0.6, 1.0, size=(prototypes, d)).astype(np.float32)
    out = np.empty((n, d), np.float32)
    for start in range(0, n, 200_000):
        stop = min(n, start + 200_000)
        pick = rng.integers(0, prototypes, stop - start)
        block = centres[pick] * rng.uniform(0.5, 1.5, (stop - start, 1)) + rng.gamma(0.5, 0.3, (stop - start, d))
        out[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, nargs="+", default=[2000, 1_280_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    print(f"machine: {machine()}; load {load_average()}; faiss threads {args.threads}")
    print("| vectors | index | build | query p50 | query p95 | recall@100 | index size | RSS peak |")
    print("|---|---|---|---|---|---|---|---|")
    for n in args.n:
        vectors = synthetic(n)
        queries = synthetic(args.queries, seed=1)
        exact = build_index(vectors, kind="exact", threads=args.threads)
        _, truth = search(exact, queries, 100)
        for kind in (["exact"] if n <= 100_000 else ["exact", "hnsw"]):
            start = time.perf_counter()
            index = exact if kind == "exact" else build_index(vectors, kind=kind, threads=args.threads)
            build = 0.0 if kind == "exact" else time.perf_counter() - start
            times, recall = [], []
            for q in range(len(queries)):
                t = time.perf_counter()
                _, ids = search(index, queries[q], 100)
                times.append(time.perf_counter() - t)
                recall.append(len(set(ids[0]) & set(truth[q])) / len(truth[q]))
            size = len(index_to_bytes(index)) / 2 ** 20
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"| {n:,} | {kind} | {build:.1f} s | {1000 * np.median(times):.2f} ms | "
                  f"{1000 * np.percentile(times, 95):.2f} ms | {np.mean(recall):.3f} | {size:.0f} MiB | {rss:.0f} MiB |",
                  flush=True)
            del index
    print(f"(pid {os.getpid()})")


if __name__ == "__main__":
    main()
