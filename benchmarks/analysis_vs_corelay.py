#!/usr/bin/env python
"""One class's SpRAy analysis: ``precompute.analysis`` against CoRelAy's SpRAy recipe.

The script writes a synthetic class once, as the run store holds it: ``n`` float16
heatmaps (default 1,300 of 224x224, like an ImageNet class) with a planted group that
has its own relevance pattern (a corner square, 15 %), and with ``--second-group`` a
second one (a border band, 10 %). Then it runs each side in a **fresh process**, so each
pays its own interpreter start, imports and JIT compiles, alternating
ours, CoRelAy, ours, CoRelAy, ... for ``--rounds`` rounds, and reports:

* the machine (CPU model, cores) and the load average before and after;
* per-stage seconds of both sides (median over rounds);
* each child's peak resident memory (``ru_maxrss`` of that child, from ``os.wait4``);
* each side's best single-cluster F1 against every planted group
  (``precompute.evaluate.cluster_f1``);
* last line: ``speedup=<median over rounds of corelay wall / our wall> f1_ours=<> f1_corelay=<>``,
  where f1 is the best single-cluster F1 of the first planted group.

Sides
-----
ours
    ``precompute.analysis.analyse_heatmaps`` with the default ``AnalysisConfig`` (kNN 10,
    q = 32, k-means, Ward and leading-eigenvector k-means for k = 2..30, Fisher/tau, UMAP
    and t-SNE) on the float16 file opened as a memory map, as the store opens it. Its
    UMAP is the default ``"umap"`` map, UMAP in numpy (``precompute.stages.umap_numpy``);
    its t-SNE is openTSNE's.
corelay
    CoRelAy's own processors: ``SciPyPDist(metric='euclidean')``,
    ``SparseKNN(n_neighbors=10, symmetric=True)``, ``SymmetricNormalLaplacian``,
    ``EigenDecomposition(n_eigval=32)``, its ``KMeans`` for k = 2..30, ``UMAPEmbedding``
    (umap-learn, whose numba compilation this fresh process pays) and ``TSNEEmbedding``
    (scikit-learn's t-SNE), at their defaults (seeded where a processor accepts
    ``kwargs``). It computes no Fisher score, Ward or second k-means family.

CoRelAy is GPL-licensed: it is installed for this benchmark only
(``pip install -r benchmarks/requirements.txt``) and never imported by the product.
If it is missing or fails, the script says why, still measures our side, prints
``speedup=nan ... f1_corelay=nan`` and exits with status 2.

Usage::

    python benchmarks/analysis_vs_corelay.py                  # 3 rounds, one planted group
    python benchmarks/analysis_vs_corelay.py --second-group   # two planted groups
    python benchmarks/analysis_vs_corelay.py --n 300 --size 64 --rounds 1   # a quick check
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_jiffies, load_average, machine, median, spawn_timed, versions

PACKAGES = ("numpy", "scipy", "scikit-learn", "openTSNE", "umap-learn", "corelay")
"""The packages whose versions the report prints."""

ROOT = Path(__file__).resolve().parents[1]
SIDES = ("ours", "corelay")
GROUPS = {"corner": 0.15, "border": 0.10}


# ---------------------------------------------------------------------------------------------
# children: one side each, in a fresh interpreter
# ---------------------------------------------------------------------------------------------
class Clock:
    """Consecutive stage timings; ``time.monotonic`` is system-wide, so the parent's spawn time is comparable."""

    def __init__(self, spawned_at: float):
        self.stages = {"startup": time.monotonic() - spawned_at}
        self.last = time.monotonic()

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.stages[name] = self.stages.get(name, 0.0) + now - self.last
        self.last = now


def child_ours(data: Path, out: Path, seed: int, clock: Clock) -> dict:
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from precompute.analysis import AnalysisConfig, analyse_heatmaps

    # scikit-learn and openTSNE are imported by analyse_heatmaps itself, on a second
    # thread during the distance stage, as in a real run.
    clock.lap("imports")
    heatmaps = np.load(data, mmap_mode="r")  # as RunStore.heatmaps opens a class
    clock.lap("read")
    result = analyse_heatmaps(heatmaps, AnalysisConfig(seed=seed))
    clock.last = time.monotonic()
    clock.stages.update(result.timings)
    np.savez(out.with_suffix(".npz"), names=result.arrays["clustering_names"], labels=result.arrays["clustering_labels"])
    # A map computed on a second thread: its seconds overlap the clustering stages, and
    # "wait:<map>" is what the first thread spent waiting for it.
    overlapping = [name for name in result.timings if name.startswith("map:") and f"wait:{name[4:]}" in result.timings]
    return {"default_clustering": result.summary["default_clustering"], "tau": result.summary["tau"],
            "overlapping": overlapping}


def child_corelay(data: Path, out: Path, seed: int, clock: Clock) -> dict:
    import numpy as np
    from corelay.processor.affinity import SparseKNN
    from corelay.processor.clustering import KMeans
    from corelay.processor.distance import SciPyPDist
    from corelay.processor.embedding import EigenDecomposition, TSNEEmbedding, UMAPEmbedding
    from corelay.processor.laplacian import SymmetricNormalLaplacian

    clock.lap("imports")
    heatmaps = np.load(data)
    X = heatmaps.reshape(len(heatmaps), -1)
    clock.lap("read")
    distances = SciPyPDist(metric="euclidean")(X)
    del X, heatmaps
    clock.lap("distance (pdist)")
    affinity = SparseKNN(n_neighbors=10, symmetric=True)(distances)
    del distances
    clock.lap("kNN affinity")
    laplacian = SymmetricNormalLaplacian()(affinity)
    clock.lap("laplacian")
    _, eigenvectors = EigenDecomposition(n_eigval=32)(laplacian)
    clock.lap("eigsh")
    labels = [KMeans(n_clusters=k, kwargs={"random_state": seed})(eigenvectors) for k in range(2, 31)]
    clock.lap("k-means x29")
    UMAPEmbedding()(eigenvectors)
    clock.lap("UMAP")
    TSNEEmbedding(kwargs={"random_state": seed})(eigenvectors)
    clock.lap("t-SNE")
    names = np.array([f"kmeans-k{k}" for k in range(2, 31)])
    np.savez(out.with_suffix(".npz"), names=names, labels=np.stack(labels).astype(np.int16))
    return {}


def run_child(side: str, data: Path, out: Path, seed: int, spawned_at: float) -> int:
    import resource

    clock = Clock(spawned_at)
    try:
        extra = (child_ours if side == "ours" else child_corelay)(data, out, seed, clock)
    except Exception as error:  # reported by the parent, not as a traceback
        out.write_text(json.dumps({"error": f"{type(error).__name__}: {error}", "stages": clock.stages}))
        return 1
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out.write_text(json.dumps({"stages": clock.stages, "maxrss_self_kb": rss_kb, **extra}))
    return 0


# ---------------------------------------------------------------------------------------------
# parent
# ---------------------------------------------------------------------------------------------



def wait_until_idle(limit: float, idle_share: float = 0.9, window: float = 2.0) -> float:
    """Wait (at most ``limit`` seconds) until the machine was ``idle_share`` idle for ``window`` s; the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        before = cpu_jiffies()
        time.sleep(window)
        after = cpu_jiffies()
        total = after[1] - before[1]
        if total <= 0 or 1 - (after[0] - before[0]) / total >= idle_share:
            break
    return time.monotonic() - started



def write_case(workdir: Path, n: int, size: int, second: bool, seed: int) -> tuple:
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from precompute.synthetic import synthetic_heatmaps

    groups = dict(GROUPS) if second else {"corner": GROUPS["corner"]}
    data = synthetic_heatmaps(n, size, groups=groups, seed=seed)
    path = workdir / "heatmaps.npy"
    np.save(path, data.heatmaps.astype(np.float16))
    return path, {name: data.planted == name for name in groups}


def spawn(side: str, data: Path, out: Path, seed: int, threads: int = 0) -> dict:
    """Run one side in a fresh interpreter; wall time and that child's own peak RSS.

    ``threads`` > 0 caps the child's OpenMP, BLAS and numba threads (environment variables).
    """
    env = dict(os.environ)
    if threads > 0:
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
            env[name] = str(threads)
    report = spawn_timed(lambda spawned_at: [sys.executable, str(Path(__file__).resolve()), "--child", side,
                                           "--data", str(data), "--out", str(out), "--seed", str(seed),
                                           "--spawned-at", repr(spawned_at)], out, env)
    report.setdefault("stages", {})
    return report


def best_f1(npz: Path, truth, default: str = "") -> tuple:
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from precompute.evaluate import cluster_f1

    with np.load(npz) as saved:
        names, labels = list(saved["names"]), saved["labels"]
    scores = [cluster_f1(row, truth)[0] for row in labels]
    best = int(np.argmax(scores))
    kmeans = [s for s, name in zip(scores, names) if str(name).startswith("kmeans-k")]
    chosen = [s for s, name in zip(scores, names) if str(name) == default]
    return (scores[best], str(names[best]), max(kmeans) if kmeans else float("nan"),
            chosen[0] if chosen else float("nan"))



def stage_table(reports: list) -> list:
    ok = [r for r in reports if "error" not in r]
    names = []
    for report in ok:
        names += [name for name in report["stages"] if name not in names]
    overlapping = {name for r in ok for name in r.get("overlapping", [])}
    rows = [(name + (" (2nd thread)" if name in overlapping else ""), median([r["stages"].get(name, 0.0) for r in ok]))
            for name in names]
    accounted = [sum(v for k, v in r["stages"].items() if k not in overlapping) for r in ok]
    rows.append(("exit and other", median([r["wall"] - a for r, a in zip(ok, accounted)])))
    rows.append(("WALL (fresh process)", median([r["wall"] for r in ok])))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1300, help="heatmaps in the class (default 1300)")
    parser.add_argument("--size", type=int, default=224, help="heatmap side (default 224)")
    parser.add_argument("--second-group", action="store_true", help="plant a second group (border band, 10%%)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of ours+corelay (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sides", default="ours,corelay", help="comma-separated subset of ours,corelay")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                        help="before each child, wait up to SECONDS for 2 s with the CPUs 90%% idle "
                             "(the goal is stated for a quiet machine; default: don't wait)")
    parser.add_argument("--corelay-threads", type=int, default=0, metavar="N",
                        help="cap CoRelAy's OpenMP/BLAS/numba threads at N (a check: scikit-learn's t-SNE and "
                             "k-means slow down many times with 2 threads while other processes run; "
                             "default: as installed)")
    parser.add_argument("--workdir", type=Path, help="keep the data and child reports here (default: a temp dir)")
    parser.add_argument("--child", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--spawned-at", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return run_child(args.child, args.data, args.out, args.seed, args.spawned_at)

    sides = [s for s in args.sides.split(",") if s]
    if not set(sides) <= set(SIDES) or not sides:
        parser.error(f"--sides must name some of {', '.join(SIDES)}")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="spray-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}")
    print(f"software: {versions(PACKAGES)}")
    print(f"load average before: {load_average()}")
    if args.corelay_threads:
        print(f"CoRelAy's child runs with OMP/OPENBLAS/MKL/NUMBA_NUM_THREADS={args.corelay_threads}")
    started = time.monotonic()
    data, truths = write_case(workdir, args.n, args.size, args.second_group, args.seed)
    group_text = ", ".join(f"{name} {100 * mask.mean():.0f}%" for name, mask in truths.items())
    print(f"case: {args.n} heatmaps {args.size}x{args.size} float16 ({data.stat().st_size / 2**20:.0f} MiB), "
          f"planted: {group_text}; written in {time.monotonic() - started:.1f} s")

    reports = {side: [] for side in sides}
    broken = {}
    for round_ in range(args.rounds):
        for side in sides:
            if side in broken:
                continue
            out = workdir / f"{side}-{round_}.json"
            waited = wait_until_idle(args.wait_idle) if args.wait_idle > 0 else 0.0
            report = spawn(side, data, out, args.seed, args.corelay_threads if side == "corelay" else 0)
            report["waited"] = waited
            reports[side].append(report)
            if "error" in report:
                broken[side] = report["error"]
                print(f"round {round_ + 1}: {side} FAILED: {report['error']}")
                continue
            report["f1"] = {name: best_f1(out.with_suffix(".npz"), mask, report.get("default_clustering", ""))
                            for name, mask in truths.items()}
            print(f"round {round_ + 1}: {side:8s} wall {report['wall']:6.2f} s  CPU {report['cpu']:6.2f} s  peak RSS "
                  f"{report['maxrss_kb'] / 1024:5.0f} MiB  other processes used {100 * report['others']:3.0f}% "
                  f"of the CPUs meanwhile" + (f" (waited {waited:.0f} s for a quiet machine)" if waited >= 1 else ""))

    print()
    tables = {side: stage_table(reports[side]) for side in sides}
    for side in sides:
        if side in broken and not any("error" not in r for r in reports[side]):
            continue
        print(f"{side}: per-stage seconds, median of {sum('error' not in r for r in reports[side])} fresh processes")
        for name, seconds in tables[side]:
            print(f"  {name:30s} {seconds:7.3f}")
    print()
    print(f"{'':30s}" + "".join(f"{side:>22s}" for side in sides))
    ok = {side: [r for r in reports[side] if "error" not in r] for side in sides}

    def row(label, fn):
        cells = []
        for side in sides:
            try:
                cells.append(fn(ok[side]) if ok[side] else "failed")
            except (KeyError, ValueError):
                cells.append("n/a")
        print(f"{label:30s}" + "".join(f"{c:>22s}" for c in cells))

    row("wall, median (s)", lambda rs: f"{median([r['wall'] for r in rs]):.2f}")
    row("wall, each round (s)", lambda rs: " ".join(f"{r['wall']:.1f}" for r in rs))
    row("CPU time, median (s)", lambda rs: f"{median([r['cpu'] for r in rs]):.2f}")
    row("others' CPU share, each round", lambda rs: " ".join(f"{100 * r['others']:.0f}%" for r in rs))
    row("peak RSS, max (MiB)", lambda rs: f"{max(r['maxrss_kb'] for r in rs) / 1024:.0f}")
    for name in truths:
        row(f"best F1 '{name}'", lambda rs, name=name: f"{median([r['f1'][name][0] for r in rs]):.3f}")
        row(f"  best k-means F1 '{name}'", lambda rs, name=name: f"{median([r['f1'][name][2] for r in rs]):.3f}")
        row(f"  found in '{name}'", lambda rs, name=name: rs[-1]["f1"][name][1])
        if "ours" in sides:
            row(f"  default clustering F1 '{name}'", lambda rs, name=name: f"{median([r['f1'][name][3] for r in rs]):.3f}"
                if rs[-1]["f1"][name][3] == rs[-1]["f1"][name][3] else "-")
    if "ours" in sides and ok["ours"]:
        print(f"ours: default clustering {ok['ours'][-1]['default_clustering']}, tau {ok['ours'][-1]['tau']:.3f}")
    for side, error in broken.items():
        print(f"{side} could not run: {error}")
        if side == "corelay":
            print("  install it for the benchmark with: pip install -r benchmarks/requirements.txt")
    print(f"load average after: {load_average()}")
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)

    first = next(iter(truths))
    ratios = [c["wall"] / o["wall"] for o, c in zip(reports.get("ours", []), reports.get("corelay", []))
              if "error" not in o and "error" not in c]
    speedup = median(ratios) if ratios else float("nan")

    def f1_of(side):
        values = [r["f1"][first][0] for r in ok.get(side, [])]
        return f"{median(values):.3f}" if values else "nan"

    if ratios:
        print(f"corelay/ours wall ratio per round: {' '.join(f'{r:.1f}' for r in ratios)}")
    print(f"speedup={speedup:.1f} f1_ours={f1_of('ours')} f1_corelay={f1_of('corelay')}")
    return 2 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
