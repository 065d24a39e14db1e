#!/usr/bin/env python
"""A run's analysis time with the numpy UMAP (default ``"umap"``) against umap-learn (``"umap-learn"``).

The question (issue 12): does UMAP in numpy (``precompute.stages.umap_numpy``) save
enough of a run's analysis time to be worth keeping instead of umap-learn? umap-learn's
numba compiles its kernels once in every process (about 13.5 s of CPU), so the answer
depends on how many classes one process analyses; this benchmark measures it on a whole
data set, as a run analyses it.

Data
----
``--run RUN``
    Every ``RUN/classes/c*/heatmaps.npy`` of a run store, e.g. the demo's
    (``python -m precompute demo --out runs/demo``).
``--synthetic N_CLASSES,N_MAPS,SIZE``
    ``N_CLASSES`` classes of ``precompute.synthetic.synthetic_heatmaps(N_MAPS, SIZE)``,
    written once as float16 ``.npy`` files (as the store holds them); class ``i`` has
    seed ``--seed + i`` and planted groups cycling through: corner 15 %; none; border
    10 %; corner 10 % + border 10 %.

Sides
-----
numpy
    ``analyse_heatmaps`` with the default ``AnalysisConfig`` except
    ``maps=("umap", "tsne")`` (which is the default).
umap-learn
    The same with ``maps=("umap-learn", "tsne")``.

Each side analyses **all classes in one fresh process** (a run analyses all its classes
in one process and pays numba's compile once), each class read with ``numpy.load`` and
converted to float32 as ``precompute.pipeline`` does. Sides alternate numpy, umap-learn,
numpy, umap-learn, ... for ``--rounds`` rounds. Both children run with
``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS`` and
``NUMBA_NUM_THREADS`` set to ``--threads`` (default 1); the analysis still runs its own
two Python threads (Gram slabs, and t-SNE beside the clusterings) where two cores are
usable.

Reported, per side and round: the share of the CPUs that other processes used while
the child ran (a shared machine makes wall times noisy; CPU seconds are steadier), the
child's process wall and CPU seconds, and **the analysis**: the sum over classes of
``analyse_heatmaps``'s wall seconds (imports and reading excluded) and the child's CPU
seconds over the same calls (``time.process_time``, both threads), split into the first
class (which pays numba's compile) and the rest. Then, per round, against the
umap-learn child of the same round: "numpy saves X % (wall) / Y % (CPU)" of the
analysis. Quality: mean trustworthiness (k = 10) of each side's UMAP against the
spectral embedding it was computed from.

With ``--warm-repeats R`` (default 3; 0 skips it), each child then fits its own UMAP
``R`` more times in the same, now warm, process on the spectral embedding of the first
class and of the largest class, inside ``threadpoolctl.threadpool_limits(1)``: the cost
of one fit once numba has compiled (CPU and wall seconds; not part of the analysis).

Usage::

    python benchmarks/umap_choice.py --run runs/demo               # the demo store, 2 rounds
    python benchmarks/umap_choice.py --synthetic 4,1300,64         # four 1,300-map classes
    python benchmarks/umap_choice.py --synthetic 2,150,32 --rounds 1   # a quick check
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

from machine import load_average, machine, median, spawn_timed, versions

PACKAGES = ("numpy", "scipy", "scikit-learn", "openTSNE", "umap-learn", "numba")
"""The packages whose versions the report prints."""

ROOT = Path(__file__).resolve().parents[1]
SIDES = {"numpy": "umap", "umap-learn": "umap-learn"}  # side -> its UMAP's name in precompute.analysis.MAPS
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
GROUP_CYCLE = ({"corner": 0.15}, {}, {"border": 0.10}, {"corner": 0.10, "border": 0.10})


# ---------------------------------------------------------------------------------------------
# child: one side, all classes, in a fresh interpreter
# ---------------------------------------------------------------------------------------------
def run_child(side: str, files: list, out: Path, seed: int, warm_repeats: int, spawned_at: float) -> int:
    started = time.monotonic()
    try:
        import numpy as np

        sys.path.insert(0, str(ROOT))
        from precompute.analysis import MAPS, AnalysisConfig, analyse_heatmaps

        imports = time.monotonic() - started
        umap_name = SIDES[side]
        config = AnalysisConfig(maps=(umap_name, "tsne"), seed=seed)
        classes, embeddings, pairs = [], [], []
        for path in files:
            heatmaps = np.load(path)
            wall, cpu = time.perf_counter(), time.process_time()
            result = analyse_heatmaps(heatmaps.astype(np.float32), config)  # as precompute.pipeline does
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            names = [str(name) for name in result.arrays["map_names"]]
            umap_2d = result.arrays["maps"][names.index(umap_name)]
            embeddings.append(result.arrays["eigenvectors"])
            pairs.append((result.arrays["eigenvectors"], umap_2d))
            classes.append({"file": str(path), "n": len(heatmaps), "wall": wall, "cpu": cpu,
                            "umap": result.timings.get(f"map:{umap_name}", 0.0)})
        from sklearn.manifold import trustworthiness

        trust = [float(trustworthiness(emb, m2d, n_neighbors=min(10, len(emb) // 2 - 1))) for emb, m2d in pairs]
        warm = []
        if warm_repeats > 0:
            from threadpoolctl import threadpool_limits

            largest = max(range(len(embeddings)), key=lambda i: len(embeddings[i]))
            with threadpool_limits(1):
                for index in dict.fromkeys([0, largest]):
                    X = embeddings[index]
                    for _ in range(warm_repeats):
                        wall, cpu = time.perf_counter(), time.process_time()
                        MAPS.get(umap_name)(random_state=seed + 1).fit(X)
                        warm.append({"class": index, "n": len(X), "wall": time.perf_counter() - wall,
                                     "cpu": time.process_time() - cpu})
    except Exception as error:  # reported by the parent, not as a traceback
        out.write_text(json.dumps({"error": f"{type(error).__name__}: {error}"}))
        return 1
    out.write_text(json.dumps({"startup": started - spawned_at, "imports": imports, "classes": classes,
                               "analysis": sum(c["wall"] for c in classes),
                               "analysis_cpu": sum(c["cpu"] for c in classes), "trust": trust, "warm": warm}))
    return 0


# ---------------------------------------------------------------------------------------------
# parent
# ---------------------------------------------------------------------------------------------




def run_files(run: Path) -> list:
    files = sorted((run / "classes").glob("c*/heatmaps.npy"))
    if not files:
        raise SystemExit(f"no classes/c*/heatmaps.npy under {run}: is it a run store? "
                         "(the demo's: python -m precompute demo --out runs/demo)")
    return files


def synthetic_files(spec: str, workdir: Path, seed: int) -> list:
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from precompute.synthetic import synthetic_heatmaps

    n_classes, n_maps, size = (int(v) for v in spec.split(","))
    files = []
    for i in range(n_classes):
        data = synthetic_heatmaps(n_maps, size, groups=GROUP_CYCLE[i % len(GROUP_CYCLE)], seed=seed + i)
        path = workdir / f"c{i:04d}.npy"
        np.save(path, data.heatmaps.astype(np.float16))
        files.append(path)
    return files


def spawn(side: str, files: list, out: Path, seed: int, threads: int, warm_repeats: int) -> dict:
    """Run one side in a fresh interpreter: its report, plus wall, CPU and others' CPU share."""
    env = dict(os.environ, **{name: str(threads) for name in THREAD_VARS})
    report = spawn_timed(lambda spawned_at: [sys.executable, str(Path(__file__).resolve()), "--child", side,
                                           "--child-out", str(out), "--seed", str(seed),
                                           "--warm-repeats", str(warm_repeats), "--spawned-at", repr(spawned_at),
                                           *map(str, files)], out, env)
    report["side"] = side
    return report


def saving(ours: float, baseline: float) -> float:
    return 100.0 * (baseline - ours) / baseline if baseline > 0 else float("nan")



def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    data = parser.add_mutually_exclusive_group()
    data.add_argument("--run", type=Path, help="a run store: analyse its classes/c*/heatmaps.npy")
    data.add_argument("--synthetic", metavar="N_CLASSES,N_MAPS,SIZE",
                      help="synthetic classes (precompute.synthetic.synthetic_heatmaps), e.g. 4,1300,64")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of numpy + umap-learn (default 2)")
    parser.add_argument("--threads", type=int, default=1,
                        help="OMP/OPENBLAS/MKL/NUMBA_NUM_THREADS of both children (default 1)")
    parser.add_argument("--warm-repeats", type=int, default=3,
                        help="warm single-thread UMAP fits per side after the analysis (default 3; 0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write every child's report and the savings here (JSON)")
    parser.add_argument("--child", choices=tuple(SIDES), help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--spawned-at", type=float, help=argparse.SUPPRESS)
    parser.add_argument("files", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return run_child(args.child, args.files, args.child_out, args.seed, args.warm_repeats, args.spawned_at)
    if (args.run is None) == (args.synthetic is None):
        parser.error("give --run RUN or --synthetic N_CLASSES,N_MAPS,SIZE")
    if args.rounds < 1 or args.threads < 1:
        parser.error("--rounds and --threads must be at least 1")

    workdir = Path(tempfile.mkdtemp(prefix="spray-umap-bench-"))
    try:
        if args.run is not None:
            files, what = run_files(args.run), f"run store {args.run}"
        else:
            try:
                files, what = synthetic_files(args.synthetic, workdir, args.seed), f"synthetic {args.synthetic}"
            except ValueError:
                parser.error("--synthetic takes N_CLASSES,N_MAPS,SIZE, e.g. 4,1300,64")
        print(f"machine: {machine()}")
        print(f"software: {versions(PACKAGES)}")
        print(f"threads: {'='.join(THREAD_VARS)}={args.threads} in both children")
        print(f"data: {what}: {len(files)} classes; load average before: {load_average()}", flush=True)
        reports = {side: [] for side in SIDES}
        for round_ in range(args.rounds):
            for side in SIDES:
                report = spawn(side, files, workdir / f"{side}-{round_}.json", args.seed, args.threads,
                               args.warm_repeats)
                reports[side].append(report)
                if "error" in report:
                    print(f"round {round_ + 1}: {side} FAILED: {report['error']}")
                    return 1
                classes = report["classes"]
                print(f"round {round_ + 1}: {side:10s} process wall {report['wall']:7.2f} s, CPU {report['cpu']:6.1f} s; "
                      f"analysis {report['analysis']:7.2f} s (first class {classes[0]['wall']:.2f}), "
                      f"CPU {report['analysis_cpu']:6.1f} s; others used {100 * report['others']:.0f}% of the CPUs",
                      flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print()
    header = (f"{'round':>5s}  {'side':10s}  {'others':>6s}  {'analysis s':>10s}  {'CPU s':>7s}  "
              f"{'1st class s':>11s}  {'rest s':>7s}  {'rest CPU':>8s}  {'UMAP s':>7s}  {'trust':>6s}")
    print(header)
    print("-" * len(header))
    for round_ in range(args.rounds):
        for side in SIDES:
            r = reports[side][round_]
            c = r["classes"]
            print(f"{round_ + 1:5d}  {side:10s}  {100 * r['others']:5.0f}%  {r['analysis']:10.2f}  {r['analysis_cpu']:7.2f}  "
                  f"{c[0]['wall']:11.2f}  {sum(x['wall'] for x in c[1:]):7.2f}  {sum(x['cpu'] for x in c[1:]):8.2f}  "
                  f"{sum(x['umap'] for x in c):7.2f}  {sum(r['trust']) / len(r['trust']):6.4f}")
    print("(analysis: sum over classes of analyse_heatmaps; UMAP: its map stage, on the second thread where "
          "two cores are usable)")
    print()
    savings = []
    for round_ in range(args.rounds):
        ours, baseline = reports["numpy"][round_], reports["umap-learn"][round_]
        wall, cpu = saving(ours["analysis"], baseline["analysis"]), saving(ours["analysis_cpu"], baseline["analysis_cpu"])
        savings.append({"round": round_ + 1, "wall": wall, "cpu": cpu})
        print(f"round {round_ + 1}: numpy saves {wall:.0f} % (wall) / {cpu:.0f} % (CPU) of umap-learn's analysis")
    if args.rounds > 1:
        print(f"median: numpy saves {median([s['wall'] for s in savings]):.0f} % (wall) / "
              f"{median([s['cpu'] for s in savings]):.0f} % (CPU)")

    if args.warm_repeats > 0:
        print()
        print(f"warm fits of one UMAP, one thread, after the analysis ({args.warm_repeats} each, CPU s [wall s]):")
        sizes = sorted({(fit["class"], fit["n"]) for fit in reports["numpy"][-1]["warm"]})
        for index, n in sizes:
            cells = []
            for side in SIDES:
                fits = [f for f in reports[side][-1]["warm"] if f["class"] == index]
                cells.append(f"{side} " + " ".join(f"{f['cpu']:.2f} [{f['wall']:.2f}]" for f in fits))
            print(f"  class {index} ({n} maps): " + "; ".join(cells))
    print(f"load average after: {load_average()}")

    if args.out:
        args.out.write_text(json.dumps({"data": what, "threads": args.threads, "machine": machine(),
                                        "software": versions(PACKAGES), "reports": reports, "savings": savings}, indent=1))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
