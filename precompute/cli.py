"""Command line: ``python -m precompute {run,demo,evaluate} ...``.

Errors a user can cause are printed as one ``error:`` line naming the file and the
reason (exit status 2); an interrupted run says how to resume (exit status 130).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional

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
    run.add_argument("--workers", type=int, default=None, help="DataLoader workers (default min(4, cpus-1))")
    run.add_argument("--classes", type=_class_list, default=None, help="only these classes: a,b,c")
    run.add_argument("--thumb-size", type=_positive_int, default=128, help="thumbnail side in pixels (default 128)")
    run.add_argument("--engine", default="local", help="local (default)")
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
    return parser


def _cmd_run(args: argparse.Namespace) -> int:
    from .analysis import AnalysisConfig
    from .engine import RunConfig, run

    config = RunConfig(
        data=args.data, model=args.model, weights=args.weights, out=args.out,
        num_classes=args.num_classes, class_index=args.class_index, image_size=args.image_size,
        normalize=args.normalize, composite=args.composite, device=args.device,
        batch_size=args.batch_size, workers=args.workers,
        classes=tuple(args.classes) if args.classes else None,
        analysis=AnalysisConfig(neighbors=args.neighbors, eigenvectors=args.eigenvectors, pool=args.pool,
                                distance=args.distance, maps=tuple(args.maps), seed=args.seed),
        thumb_size=args.thumb_size, force=args.force, engine=args.engine,
    )
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

    truth = args.truth or (args.run / "truth.csv")
    if not truth.is_file():
        raise ConfigError(f"{truth}: truth file not found; pass --truth FILE (columns path,class,artifact)")
    result = evaluate_run(args.run, truth)
    print(json.dumps(result, sort_keys=True))
    return 0


COMMANDS = {"run": _cmd_run, "demo": _cmd_demo, "evaluate": _cmd_evaluate}


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except SprayError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished classes are kept; run the same command again to resume", file=sys.stderr)
        return 130
