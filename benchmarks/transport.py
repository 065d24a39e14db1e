#!/usr/bin/env python
"""Cost and recall of the Wasserstein and Gromov-Wasserstein distances on one class.

A synthetic class of ``--n`` maps (default 1,300, an ImageNet class) of ``--size``
pixels (default 64) with two planted groups: a fixed corner square (15 %, what
Euclidean SpRAy finds) and the same small hook at a random place, angle, scale and
mirroring (30 %, ``precompute.synthetic``'s ``"posed-mark"``, what only a
pose-invariant distance can group). For each distance (euclidean, cosine, wasserstein,
gw) it prints:

* the distance stage's seconds (the kNN graph) and the whole analysis's seconds
  without the 2-D maps, and their ratio to Euclidean's, measured in the same run;
* the best single-cluster F1 of each planted group (``precompute.evaluate.cluster_f1``);
* for wasserstein and gw, the **recall of true neighbours**: for ``--queries`` random
  maps, the distance to every other map is solved exactly (all pairs of those rows);
  recall is the share of each query's true 10 nearest neighbours that the candidate-pair
  kNN graph holds, and coverage the share that were among its candidate pairs at all.

On a CUDA machine it also times the GW batch backend (POT's entropic batched solver on
torch, ``backend="batch", device="cuda"``); elsewhere it says there is no GPU. The CPU
batch backend's cost per pair is printed for comparison with the exact solver.

Thread counts are set before numpy loads (one BLAS thread a process; the transport
solvers use one process a core), so a loaded machine does not oversubscribe.

Usage::

    python benchmarks/transport.py                      # 1,300 maps, 40 recall queries
    python benchmarks/transport.py --n 300 --queries 10 # a quick check
"""
from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from precompute.analysis import AnalysisConfig, analyse_heatmaps  # noqa: E402
from precompute.evaluate import cluster_f1  # noqa: E402
from precompute.stages import DISTANCES  # noqa: E402
from precompute.stages.clouds import grid_maps, relevance_clouds  # noqa: E402
from precompute.stages.transport import pair_distances  # noqa: E402
from precompute.synthetic import synthetic_heatmaps  # noqa: E402
from precompute.threads import usable_cores  # noqa: E402

GROUPS = {"corner": 0.15, "posed-mark": 0.30}
K = 10


def best_f1(result, planted: np.ndarray, group: str) -> float:
    truth = planted == group
    return max(cluster_f1(labels, truth)[0] for labels in result.arrays["clustering_labels"])


def recall(name: str, heatmaps: np.ndarray, knn, queries: np.ndarray, workers: int) -> tuple:
    """(recall, coverage, seconds) of the candidate kNN graph against exact rows for ``queries``."""
    n = len(heatmaps)
    shape = heatmaps.shape[1:]
    clouds = relevance_clouds(grid_maps(heatmaps.reshape(n, -1), shape), type(knn).default_points)
    pairs = np.array([(q, j) for q in queries for j in range(n) if j != q])
    started = time.perf_counter()
    exact = pair_distances(clouds, pairs, name, workers=workers).reshape(len(queries), n - 1)
    seconds = time.perf_counter() - started
    solved = {(int(i), int(j)) for i, j in knn.pairs_}
    hits, covered = [], []
    for row, q in enumerate(queries):
        others = np.array([j for j in range(n) if j != q])
        true = set(others[np.lexsort((others, exact[row]))[:K]].tolist())
        hits.append(len(true & set(knn.indices_[q].tolist())) / K)
        covered.append(sum((min(q, j), max(q, j)) in solved for j in true) / K)
    return float(np.mean(hits)), float(np.mean(covered)), seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1300)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    workers = min(4, usable_cores())
    print(f"machine: {os.cpu_count()} CPUs, {usable_cores()} usable; load {os.getloadavg()[0]:.2f}; "
          f"transport workers {workers}")
    data = synthetic_heatmaps(args.n, args.size, groups=GROUPS, seed=args.seed)
    print(f"class: {args.n} maps of {args.size}x{args.size}; planted "
          + ", ".join(f"{g} {int((data.planted == g).sum())}" for g in GROUPS))
    rng = np.random.default_rng(args.seed)
    queries = rng.choice(args.n, size=min(args.queries, args.n), replace=False)
    rows = []
    for name in ("euclidean", "cosine", "wasserstein", "gw"):
        distance = DISTANCES.get(name)
        started = time.perf_counter()
        if getattr(distance, "spatial", False):
            knn = distance(n_neighbors=K).fit(data.heatmaps.reshape(args.n, -1), shape=data.heatmaps.shape[1:])
        else:
            knn = distance(n_neighbors=K).fit(data.heatmaps.reshape(args.n, -1))
        knn_seconds = time.perf_counter() - started
        started = time.perf_counter()
        result = analyse_heatmaps(data.heatmaps, AnalysisConfig(distance=name, maps=()))
        total = time.perf_counter() - started
        f1 = {group: best_f1(result, data.planted, group) for group in GROUPS}
        line = {"distance": name, "knn_s": knn_seconds, "analysis_s": total, **f1}
        if hasattr(knn, "pairs_"):
            line["pairs"] = len(knn.pairs_)
            line["recall"], line["coverage"], line["exact_rows_s"] = recall(name, data.heatmaps, knn, queries,
                                                                           workers)
        rows.append(line)
        print(f"  {name}: kNN {knn_seconds:.1f} s, analysis {total:.1f} s, "
              + ", ".join(f"F1 {g} {v:.3f}" for g, v in f1.items())
              + (f", {line['pairs']} pairs, recall@{K} {line['recall']:.3f}, coverage {line['coverage']:.3f}"
                 if "pairs" in line else ""), flush=True)
    base = rows[0]
    print("\n| distance | kNN s | analysis s (no maps) | x Euclidean | pairs solved | recall@10 | coverage "
          "| F1 corner | F1 posed-mark |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['distance']} | {row['knn_s']:.1f} | {row['analysis_s']:.1f} | "
              f"{row['analysis_s'] / base['analysis_s']:.1f} | {row.get('pairs', '—')} | "
              + (f"{row['recall']:.3f} | {row['coverage']:.3f}" if "recall" in row else "— | —")
              + f" | {row['corner']:.3f} | {row['posed-mark']:.3f} |")
    n_all = args.n * (args.n - 1) // 2
    gw = rows[-1]
    per_pair = gw["exact_rows_s"] / (len(queries) * (args.n - 1))
    print(f"\nall {n_all} pairs would take about {n_all * per_pair:.0f} s for gw at the measured "
          f"{per_pair * 1e3:.2f} ms a pair on {workers} processes; the candidates solve {gw['pairs']}")
    batch_figures(data, args.n)
    return 0


def batch_figures(data, n: int) -> None:
    """The GW batch backend's cost per pair: on CPU here, on CUDA where there is one."""
    import torch

    from precompute.stages.transport import gw_batch_distances

    clouds = relevance_clouds(grid_maps(data.heatmaps.reshape(n, -1), data.heatmaps.shape[1:]),
                              DISTANCES.get("gw").default_points)
    rng = np.random.default_rng(1)
    pairs = np.sort(rng.choice(n, size=(2000, 2)), axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    started = time.perf_counter()
    pair_distances(clouds, pairs, "gw", workers=1)
    cg = (time.perf_counter() - started) / len(pairs)
    started = time.perf_counter()
    gw_batch_distances(clouds, pairs, device="cpu")
    batch_cpu = (time.perf_counter() - started) / len(pairs)
    print(f"gw per pair, one process: exact conditional gradient {cg * 1e3:.2f} ms; batch backend on CPU "
          f"{batch_cpu * 1e3:.2f} ms")
    if torch.cuda.is_available():
        gw_batch_distances(clouds, pairs[:64], device="cuda")  # CUDA start-up
        torch.cuda.synchronize()
        started = time.perf_counter()
        gw_batch_distances(clouds, pairs, device="cuda")
        torch.cuda.synchronize()
        gpu = (time.perf_counter() - started) / len(pairs)
        print(f"gw batch backend on {torch.cuda.get_device_name(0)}: {gpu * 1e3:.3f} ms a pair "
              f"({cg / gpu:.1f}x one CPU process)")
    else:
        print("gpu: no CUDA device here; on a GPU machine this line gives the batch backend's figure")


if __name__ == "__main__":
    sys.exit(main())
