"""Command line: ``python -m precompute {run,demo,evaluate,paste} ...``.

Errors a user can cause are printed as one ``error:`` line naming the file and the
reason (exit status 2); an interrupted run says how to resume (exit status 130).
``run`` checks its paths and option names before it imports torch, torchvision or
zennit, so such errors come at once.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional

from .checks import check_run_paths
from .errors import ConfigError, SprayError

__all__ = ["main", "build_parser"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _size_or_none(text: str) -> Optional[int]:
    if text.lower() in ("none", "0", "original"):
        return None
    return _positive_int(text)


def _class_list(text: str) -> List[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list of class folder names")
    return names


def _add_analysis_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("analysis")
    group.add_argument("--neighbors", type=_positive_int, default=10, help="k of the kNN graph (default 10)")
    group.add_argument("--eigenvectors", type=_positive_int, default=32, help="q eigenpairs of L_sym (default 32)")
    group.add_argument("--pool", type=_positive_int, default=None,
                       help="sum-pool heatmaps to an N x N grid first (default: off, as in the paper)")
    group.add_argument("--distance", default="euclidean", help="euclidean (paper) or cosine")
    group.add_argument("--maps", type=_class_list, default=["umap", "tsne"],
                       help="2-D maps of the spectral embedding to store (default umap,tsne)")
    group.add_argument("--seed", type=int, default=0, help="seed of every randomised stage (default 0)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m precompute``."""
    parser = argparse.ArgumentParser(
        prog="python -m precompute",
        description="SpRAy Studio precompute: LRP heatmaps and spectral relevance analysis into a run store.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="analyse an ImageFolder dataset with a classifier",
                              description="Analyse DIR/<class>/<image> with a classifier; resumable.")
    run.add_argument("--data", required=True, type=Path, help="ImageFolder root: DIR/<class>/<image>")
    run.add_argument("--model", required=True,
                     help="torchvision architecture (vgg16, resnet50, ...), a registered name, or path/file.py:function")
    run.add_argument("--weights", type=Path, default=None,
                     help="local state_dict file, loaded with torch.load(weights_only=True)")
    run.add_argument("--out", required=True, type=Path, help="run directory to write (resumed if it exists)")
    run.add_argument("--num-classes", type=_positive_int, default=None,
                     help="model outputs (default: number of class folders)")
    run.add_argument("--class-index", type=Path, default=None,
                     help="label names in model-output order: JSON list, JSON {name: index}, or one per line")
    run.add_argument("--image-size", type=_size_or_none, default=224,
                     help="resize + centre-crop side (default 224; 'none' keeps images as they are)")
    run.add_argument("--normalize", choices=["imagenet", "none"], default="imagenet",
                     help="input normalisation the model was trained with (default imagenet)")
    run.add_argument("--composite", default="epsilon_plus_flat",
                     help="zennit composite (default epsilon_plus_flat: the paper's rules)")
    run.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    run.add_argument("--batch-size", type=_positive_int, default=32)
    run.add_argument("--workers", type=int, default=None, help="DataLoader workers (default min(4, cpus-1); min(8, cpus-1) on CUDA)")
    run.add_argument("--classes", type=_class_list, default=None, help="only these classes: a,b,c")
    run.add_argument("--thumb-size", type=_positive_int, default=128, help="thumbnail side in pixels (default 128)")
    run.add_argument("--engine", default="local",
                     help="local (default): this process; ray: every GPU of a Ray cluster, analyses as Ray tasks "
                          "(a local Ray, or the cluster in RAY_ADDRESS; see README)")
    run.add_argument("--lrp-backend", choices=["auto", "fast", "zennit"], default="auto",
                     help="LRP implementation: fast (hook-free, about 2x faster), zennit, or auto (default): "
                          "fast where it reproduces zennit, else zennit")
    run.add_argument("--precision", choices=["fp32", "tf32", "bf16"], default="fp32",
                     help="CUDA arithmetic (default fp32; tf32/bf16 are faster but inexact: measure them first "
                          "with benchmarks/attribution.py --precision)")
    run.add_argument("--force", action="store_true", help="recompute finished classes")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_analysis_options(run)

    demo = commands.add_parser("demo", help="build the embedded demo store (dataset, model and analysis)")
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="run directory (default runs/demo)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--force", action="store_true", help="rebuild from scratch")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")

    evaluate = commands.add_parser("evaluate", help="score a run's clusters against known artifacts",
                                   description="Prints one JSON object on the last line of stdout.")
    evaluate.add_argument("run", type=Path, help="run directory")
    evaluate.add_argument("--truth", type=Path, default=None,
                          help="CSV with columns path,class,artifact (default RUN/truth.csv)")
    evaluate.add_argument("--table", action="store_true",
                          help="also print the README's Markdown table of planted classes (and, for the demo, "
                               "the held-out accuracy) before the JSON line")
    paste = commands.add_parser(
        "paste", help="paste an artifact onto samples of other classes and measure the model (Table 3)",
        description="Prints one JSON object on the last line of stdout; the experiment is saved in RUN/experiments.")
    paste.add_argument("run", type=Path, help="run directory")
    paste.add_argument("--artifact", required=True,
                       help="an RGBA PNG file, or the name/id of an artifact in the run (e.g. watermark)")
    paste.add_argument("--origin", required=True, help="the class the artifact was found in")
    paste.add_argument("--position", default="original",
                       help="original (default), random, corner (= bl), tl|tr|bl|br, or x,y in model-input pixels")
    paste.add_argument("--scale", type=float, default=1.0)
    paste.add_argument("--opacity", type=float, default=1.0)
    paste.add_argument("--n", type=_positive_int, default=64, help="number of target samples (default 64)")
    paste.add_argument("--seed", type=int, default=0)
    paste.add_argument("--targets", type=_class_list, default=None, help="draw targets only from these classes")
    paste.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    paste.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _cmd_run(args: argparse.Namespace) -> int:
    # Paths first, with nothing heavy imported: a mistyped path is reported in a fraction
    # of a second instead of after torch, zennit and the analysis libraries have loaded.
    check_run_paths(args.data, args.model, args.weights, args.out, args.class_index)
    from .analysis import AnalysisConfig
    from .pipeline import RunConfig, run

    config = RunConfig(
        data=args.data, model=args.model, weights=args.weights, out=args.out,
        num_classes=args.num_classes, class_index=args.class_index, image_size=args.image_size,
        normalize=args.normalize, composite=args.composite, device=args.device,
        batch_size=args.batch_size, workers=args.workers,
        classes=tuple(args.classes) if args.classes else None,
        analysis=AnalysisConfig(neighbors=args.neighbors, eigenvectors=args.eigenvectors, pool=args.pool,
                                distance=args.distance, maps=tuple(args.maps), seed=args.seed),
        thumb_size=args.thumb_size, force=args.force, engine=args.engine,
        lrp_backend=args.lrp_backend, precision=args.precision,
    ).check()  # option values and names (engine, distance, maps), still without torch
    report = run(config, progress=not args.quiet, log=lambda msg: print(msg, file=sys.stderr))
    _print_summary(report)
    return 0


def _print_summary(report: dict) -> None:
    done = sum(1 for entry in report.get("classes", {}).values() if entry.get("status") == "done")
    skipped = len(report.get("skipped_files", {}))
    print(f"finished: {report.get('classes_finished', done)} classes, {report.get('samples', 0)} images, "
          f"{skipped} files skipped (see report.json)", file=sys.stderr)


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo_run import build_demo_store

    out = build_demo_store(args.out, seed=args.seed, force=args.force, progress=not args.quiet,
                           log=lambda msg: print(msg, file=sys.stderr))
    print(f"demo store ready in {out}; serve it with: python app.py {out}", file=sys.stderr)
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_run
    from .store import TRUTH

    truth = args.truth or (args.run / TRUTH)
    if not truth.is_file():
        raise ConfigError(f"{truth}: truth file not found; pass --truth FILE (columns path,class,artifact)")
    result = evaluate_run(args.run, truth)
    if args.table:
        from .evaluate import markdown_table
        from .store import RunStore

        demo = RunStore(args.run).manifest.get("demo") or {}
        print(markdown_table(result, accuracy=(demo.get("report") or {}).get("holdout_accuracy")))
    print(json.dumps(result, sort_keys=True))
    return 0


def _resolve_artifact(store, text: str):
    """An artifact from a PNG path, or from the run's library/drafts by name or id."""
    from .lab import artifact_from_entry, load_artifact_image

    path = Path(text)
    if path.is_file():
        artifact = load_artifact_image(path.read_bytes(), name=path.stem)
        data = path.read_bytes()
        for entry in store.artifact_entries():  # the same PNG as a known artifact: reuse its position
            try:
                if store.artifact_png(entry["id"]) == data:
                    known = artifact_from_entry(store, entry["id"])
                    artifact.position, artifact.origin = known.position, known.origin
                    break
            except (OSError, SprayError):
                continue
        return artifact
    for entry in store.artifact_entries():
        if text in (entry["id"], entry.get("name")):
            return artifact_from_entry(store, entry["id"])
    names = ", ".join(sorted({entry.get("name", entry["id"]) for entry in store.artifact_entries()})) or "none"
    raise ConfigError(f"--artifact {text!r}: no such file, and no artifact of that name in the run (known: {names})")


def _cmd_paste(args: argparse.Namespace) -> int:
    from .lab import ModelSession, PasteSpec, Placement, run_paste_experiment
    from .store import ExperimentWriter, RunStore

    store = RunStore(args.run)
    try:
        origin_id = store.id_for_name(args.origin)
    except SprayError:
        raise ConfigError(f"--origin {args.origin!r}: no such class in {store.root}") from None
    targets = None
    if args.targets:
        targets = []
        for name in args.targets:
            try:
                targets.append(store.id_for_name(name))
            except SprayError:
                raise ConfigError(f"--targets: no class {name!r} in {store.root}") from None
    artifact = _resolve_artifact(store, args.artifact)
    placement = Placement.parse(args.position, scale=args.scale, opacity=args.opacity).validate()
    spec = PasteSpec(origin_id=origin_id, placement=placement, n=args.n, seed=args.seed, target_ids=targets)
    session = ModelSession(store, device=args.device)
    from tqdm.auto import tqdm

    with tqdm(total=args.n, desc="paste", unit="img", disable=args.quiet) as bar:
        def progress(done, total):
            bar.total = total
            bar.update(done - bar.n)

        record, files = run_paste_experiment(store, session, artifact, spec, progress=progress)
    path = ExperimentWriter(store).save_experiment(record, files)
    print(f"saved {path}", file=sys.stderr)
    summary = record["summary"]
    keys = ("mean_delta_rank", "mean_delta_prob", "flip_rate")
    print(json.dumps({"origin": summary["origin"], "n": summary["n"], **{k: summary[k] for k in keys},
                      "control": {k: summary["control"][k] for k in keys}}))
    return 0


COMMANDS = {"run": _cmd_run, "demo": _cmd_demo, "evaluate": _cmd_evaluate, "paste": _cmd_paste}


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except SprayError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # disk full, permission denied, ...: the user can act on these
        where = f"{error.filename}: " if error.filename else ""
        print(f"error: {where}{error.strerror or error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished classes are kept; run the same command again to resume", file=sys.stderr)
        return 130
