"""Command line: ``python -m precompute {run,demo,analyse,evaluate,paste,unhans,index,similar,perturb,...} ...``.

Errors a user can cause are printed as one ``error:`` line naming the file and the
reason (exit status 2); an interrupted run says how to resume (exit status 130).
``run`` checks its paths and option names before it imports torch, torchvision or
zennit, so such errors come at once.

This module is long on purpose: one parser builder and one thin handler per command,
each calling into the package that does the work, so the whole command line reads in
one place.
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
    group.add_argument("--distance", default="euclidean",
                       help="euclidean (paper), cosine, wasserstein or gw (Gromov-Wasserstein), or several, "
                            "comma-separated: the first is the run's primary analysis, the others are added "
                            "from the stored heatmaps as 'analyse' adds them (default euclidean)")
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
    run.add_argument("--variant", type=Path, default=None,
                     help="a corrected model from 'unhans': its folder RUN/variants/ID (weights and projections "
                          "are applied after --weights, the run's original weights)")
    run.add_argument("--val-data", type=Path, default=None,
                     help="validation ImageFolder with the same class names: analysed with the training images in "
                          "one embedding, each sample marked by its split")
    run.add_argument("--val-masks", type=Path, default=None,
                     help="object masks mirroring --val-data (with --masks and --val-data)")
    run.add_argument("--masks", type=Path, default=None,
                     help="object masks mirroring --data (MASKS/<class>/<image>.png, nonzero = object): adds the "
                          "right-reason score; on a finished run it scores the stored heatmaps without recomputing")
    run.add_argument("--force", action="store_true", help="recompute finished classes")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_analysis_options(run)

    analyse = commands.add_parser(
        "analyse", help="add analyses under other distances to a finished run, from its stored heatmaps",
        description="Runs the spectral analysis of each finished class again under another distance (no "
                    "attribution) and stores it beside the run's primary analysis; resumable.")
    analyse.add_argument("run", type=Path, help="run directory")
    analyse.add_argument("--distance", required=True,
                         help="one or more distances, comma-separated: cosine, wasserstein, gw, euclidean")
    analyse.add_argument("--classes", type=_class_list, default=None,
                         help="comma-separated class names or ids (default: every finished class)")
    analyse.add_argument("--pool", type=_positive_int, default=None,
                         help="sum-pool heatmaps to an N x N grid first (default: the run's --pool)")
    analyse.add_argument("--force", action="store_true", help="recompute classes that have the analysis")
    analyse.add_argument("--quiet", action="store_true", help="no progress bars")

    demo = commands.add_parser("demo", help="build the embedded demo store (dataset, model and analysis)")
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="run directory (default runs/demo)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--force", action="store_true", help="rebuild from scratch")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.add_argument("--no-compare", action="store_true",
                      help="skip the second model (a small ResNet on the same data, run OUT-resnet) that the "
                           "compare view sets beside the demo")

    evaluate = commands.add_parser("evaluate", help="score a run's clusters against known artifacts",
                                   description="Prints one JSON object on the last line of stdout.")
    evaluate.add_argument("run", type=Path, help="run directory")
    evaluate.add_argument("--truth", type=Path, default=None,
                          help="CSV with columns path,class,artifact (default RUN/truth.csv)")
    evaluate.add_argument("--analysis", default=None,
                          help="the analysis to score, by its distance (default: the run's primary analysis)")
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
    _add_unhans(commands)
    _add_search(commands)
    _add_perturb(commands)
    _add_interop(commands)
    return parser


def _add_search(commands) -> None:
    index = commands.add_parser("index", help="(re)build the run's similarity index (run does it when it finishes)")
    index.add_argument("run", type=Path, help="run directory")
    similar = commands.add_parser(
        "similar", help="the samples of every class whose relevance lies where a selection's does",
        description="Queries the run's similarity index (pooled |relevance|, cosine). Prints one JSON object on "
                    "the last line of stdout: {\"results\": [{\"class\", \"path\", \"score\"}, ...]}, best first.")
    similar.add_argument("run", type=Path, help="run directory")
    similar.add_argument("--class", dest="origin", required=True, help="the class of the query samples")
    which = similar.add_mutually_exclusive_group(required=True)
    which.add_argument("--cluster", help="query by this cluster's prototype: CLUSTERING/cluster-C")
    which.add_argument("--sample", help="query by one sample: its path relative to the data root")
    which.add_argument("--heatmap", type=Path, help="query by a heatmap of your own: a .npy file of shape (H, W)")
    similar.add_argument("--top", type=_positive_int, default=50, help="number of results (default 50)")
    similar.add_argument("--other-classes", action="store_true", help="leave out the query's own class")


def _add_unhans(commands) -> None:
    unhans = commands.add_parser(
        "unhans", help="correct the model for an artifact (ClArC) and verify it before and after",
        description="Defines the artifact concept from a cluster or a list of samples, corrects the model "
                    "(P-ClArC, A-ClArC or RR-ClArC), measures both models on held-out data and stores the "
                    "corrected model as a variant of the run (RUN/variants/ID) with a cleaning list. "
                    "Prints one JSON object on the last line of stdout.")
    unhans.add_argument("run", type=Path, help="run directory")
    unhans.add_argument("--origin", required=True, help="the class whose samples carry the artifact")
    which = unhans.add_mutually_exclusive_group(required=True)
    which.add_argument("--cluster", help="the artifact samples: CLUSTERING/cluster-C, as evaluate prints "
                                         "best_clustering (e.g. kmeans_lead-k2/cluster-1)")
    which.add_argument("--samples", type=Path, help="the artifact samples: a file with one path a line, or a CSV "
                                                    "with a path column (the explorer's export)")
    unhans.add_argument("--method", default="pclarc", help="pclarc (default, no training), aclarc or rrclarc")
    unhans.add_argument("--artifact", default=None,
                        help="RGBA PNG or the name of an artifact of the run (default: the run library's artifact "
                             "of the origin class, if any); A-ClArC pastes it, the verification uses it")
    unhans.add_argument("--position", default="original", help="where to paste it: original (default), random, x,y")
    unhans.add_argument("--layer", default=None,
                        help="NAME (output of that module) or NAME:input; default: the input of the last Linear")
    unhans.add_argument("--cav", default="signal", help="signal (default: signal pattern, the mean difference) or svm")
    unhans.add_argument("--projection", choices=["excess", "full"], default="excess",
                        help="P-ClArC: excess (default) removes only what lies beyond the clean reference along the "
                             "CAV; full sets every sample's component to it (the paper's formula)")
    unhans.add_argument("--eval-data", type=Path, default=None,
                        help="held-out ImageFolder with the run's class names (default: the demo's holdout, "
                             "else the run's data with a warning)")
    unhans.add_argument("--epochs", type=_positive_int, default=10, help="fine-tuning epochs (default 10)")
    unhans.add_argument("--lr", type=float, default=3e-3, help="SGD learning rate of the fine-tuning (default 3e-3)")
    unhans.add_argument("--trainable", choices=["all", "linear", "after_layer"], default=None,
                        help="what the fine-tuning trains (BatchNorm always stays frozen): all (A-ClArC's default: "
                             "convolutions and linear layers), linear (the head only, as Reveal2Revise) or "
                             "after_layer (RR-ClArC's default: the layers after --layer)")
    unhans.add_argument("--batch-size", type=_positive_int, default=32, help="fine-tuning batch size (default 32)")
    unhans.add_argument("--rr-lambda", type=float, default=None, help="RR-ClArC's penalty weight (default 100)")
    unhans.add_argument("--subset-classes", type=_positive_int, default=None,
                        help="fine-tune on the origin class and K-1 random others (default: all classes)")
    unhans.add_argument("--seed", type=int, default=0)
    unhans.add_argument("--name", default=None, help="variant id (default: METHOD-TIME-HEX)")
    unhans.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    unhans.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_perturb(sub) -> None:
    perturb = sub.add_parser("perturb", help="perturbation scan: how much occluding each region of a grid lowers "
                                             "p(true class), per sample; off-object sensitivity per class")
    perturb.add_argument("run", type=Path, help="run directory")
    perturb.add_argument("--classes", type=_class_list, default=None, help="only these classes: a,b,c (default all)")
    perturb.add_argument("--grid", type=int, default=8, help="cells per side of the occlusion grid (default 8)")
    perturb.add_argument("--batch-size", type=_positive_int, default=256, help="occluded images per forward pass")
    perturb.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    perturb.add_argument("--force", action="store_true", help="scan classes again that were scanned with this grid")
    perturb.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_interop(commands) -> None:
    export = commands.add_parser(
        "export-virelay", help="write a run as a ViRelAy project (YAML, label map, input/attribution/analysis HDF5)",
        description="Writes OUT/project.yaml and the files it names; open it with ViRelAy (virelay OUT/project.yaml). "
                    "Prints one JSON object on the last line of stdout. See docs/interop.md.")
    export.add_argument("run", type=Path, help="run directory")
    export.add_argument("out", type=Path, help="project folder to create (new or empty)")
    export.add_argument("--classes", type=_class_list, default=None, help="only these classes: a,b,c (default all)")
    export.add_argument("--force", action="store_true", help="replace an earlier export in OUT")
    export.add_argument("--quiet", action="store_true", help="no line per class")
    imported = commands.add_parser(
        "import-virelay", help="turn a ViRelAy/CoRelAy project into a run store the app serves",
        description="Keeps the project's embeddings and clusterings, computes tau and the default clustering from "
                    "its spectral embedding, and says what it lacks (a project has no model, so no lab). Prints one "
                    "JSON object on the last line of stdout. See docs/interop.md.")
    imported.add_argument("project", type=Path, help="the project's YAML file")
    imported.add_argument("out", type=Path, help="run directory to create (new or empty)")
    imported.add_argument("--analysis", default=None, help="the analysis method to import (default: the first)")
    imported.add_argument("--seed", type=int, default=0, help="seed of what is computed (default 0)")
    imported.add_argument("--force", action="store_true", help="replace the run store in OUT")
    imported.add_argument("--quiet", action="store_true", help="no line per class")


def _cmd_run(args: argparse.Namespace) -> int:
    # Paths first, with nothing heavy imported: a mistyped path is reported in a fraction
    # of a second instead of after torch, zennit and the analysis libraries have loaded.
    check_run_paths(args.data, args.model, args.weights, args.out, args.class_index)
    from .analyses import parse_distances
    from .analysis import AnalysisConfig
    from .pipeline import RunConfig, run

    distances = parse_distances(args.distance)  # the first is the run's; the others are added after it
    config = RunConfig(
        data=args.data, model=args.model, weights=args.weights, out=args.out,
        num_classes=args.num_classes, class_index=args.class_index, image_size=args.image_size,
        normalize=args.normalize, composite=args.composite, device=args.device,
        batch_size=args.batch_size, workers=args.workers,
        classes=tuple(args.classes) if args.classes else None,
        analysis=AnalysisConfig(neighbors=args.neighbors, eigenvectors=args.eigenvectors, pool=args.pool,
                                distance=distances[0], maps=tuple(args.maps), seed=args.seed),
        thumb_size=args.thumb_size, force=args.force, engine=args.engine,
        lrp_backend=args.lrp_backend, precision=args.precision, variant=args.variant, masks=args.masks,
        val_data=args.val_data, val_masks=args.val_masks,
    ).check()  # option values and names (engine, distance, maps), still without torch
    report = run(config, progress=not args.quiet, log=lambda msg: print(msg, file=sys.stderr))
    _print_summary(report)
    if distances[1:]:
        from .analyses import add_analysis

        for distance in distances[1:]:
            add_analysis(args.out, distance, classes=args.classes, force=args.force, progress=not args.quiet,
                         log=lambda msg: print(msg, file=sys.stderr))
    return 0


def _cmd_analyse(args: argparse.Namespace) -> int:
    from .analyses import add_analysis, parse_distances
    from .store import RunStore

    RunStore(args.run)  # a one-line error for a folder that is not a run, before any work
    options = {} if args.pool is None else {"pool": args.pool}
    for distance in parse_distances(args.distance):
        done = add_analysis(args.run, distance, classes=args.classes, force=args.force, progress=not args.quiet,
                            log=lambda msg: print(msg, file=sys.stderr), **options)
        print(f"{distance}: {len(done)} classes analysed; see them with: python app.py {args.run}", file=sys.stderr)
    return 0


def _print_summary(report: dict) -> None:
    done = sum(1 for entry in report.get("classes", {}).values() if entry.get("status") == "done")
    skipped = len(report.get("skipped_files", {}))
    print(f"finished: {report.get('classes_finished', done)} classes, {report.get('samples', 0)} images, "
          f"{skipped} files skipped (see report.json)", file=sys.stderr)


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo_run import build_demo_comparison, build_demo_store

    def log(message: str) -> None:
        print(message, file=sys.stderr)

    out = build_demo_store(args.out, seed=args.seed, force=args.force, progress=not args.quiet, log=log)
    if args.no_compare:
        print(f"demo store ready in {out}; serve it with: python app.py {out}", file=sys.stderr)
        return 0
    second = build_demo_comparison(out, seed=args.seed, force=args.force, progress=not args.quiet, log=log)
    print(f"demo stores ready in {out} and {second}; serve them with: python app.py {out} {second}",
          file=sys.stderr)
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_run
    from .store import TRUTH

    truth = args.truth or (args.run / TRUTH)
    if not truth.is_file():
        raise ConfigError(f"{truth}: truth file not found; pass --truth FILE (columns path,class,artifact)")
    result = evaluate_run(args.run, truth, analysis=args.analysis)
    if args.table:
        from .evaluate import markdown_table
        from .store import RunStore

        demo = RunStore(args.run).manifest.get("demo") or {}
        print(markdown_table(result, accuracy=(demo.get("report") or {}).get("holdout_accuracy")))
        from .evaluate import reason_table

        reasons = reason_table(result)
        if reasons:
            print("\n" + reasons)
    print(json.dumps(result, sort_keys=True))
    return 0


def _origin(args: argparse.Namespace):
    """The run's store and the class id of ``--origin``."""
    from .store import RunStore

    store = RunStore(args.run)
    try:
        return store, store.id_for_name(args.origin)
    except SprayError:
        raise ConfigError(f"--origin {args.origin!r}: no such class in {store.root}") from None


def _class_ids(store, names: List[str], option: str) -> List[str]:
    """Class ids of the class ``names`` given to ``option``; a one-line error for an unknown one."""
    ids = []
    for name in names:
        try:
            ids.append(store.id_for_name(name))
        except SprayError:
            raise ConfigError(f"{option}: no class {name!r} in {store.root}") from None
    return ids


def _cmd_paste(args: argparse.Namespace) -> int:
    from .lab import ModelSession, PasteSpec, Placement, resolve_artifact, run_paste_experiment
    from .store import ExperimentWriter

    store, origin_id = _origin(args)
    targets = _class_ids(store, args.targets, "--targets") if args.targets else None
    artifact = resolve_artifact(store, args.artifact)
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


def _cmd_unhans(args: argparse.Namespace) -> int:
    store, origin_id = _origin(args)
    if not store.has_class(origin_id):
        raise ConfigError(f"--origin {args.origin!r}: the class is not analysed yet in {store.root}")
    from .clarc.unhans import UnhansSpec, check_name_free, run_unhans, save_variant
    from .samples import check_selection, selection_from_cluster, selection_from_file
    from .clarc import variant_summary
    from .clarc.corrections import default_recipe

    if args.cluster:
        selection, source = selection_from_cluster(store, origin_id, args.cluster), f"cluster {args.cluster}"
    else:
        selection, source = selection_from_file(store, origin_id, args.samples), f"samples {args.samples.name}"
    check_selection(store, origin_id, selection)
    check_name_free(store, args.name)
    recipe = default_recipe(args.method, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed,
                            trainable=args.trainable, rr_lambda=args.rr_lambda if args.method == "rrclarc" else None)
    spec = UnhansSpec(origin_id=origin_id, selection=selection, selection_source=source, method=args.method,
                      layer=args.layer, cav=args.cav, projection=args.projection, artifact=args.artifact,
                      position=args.position,
                      eval_data=args.eval_data, recipe=recipe, subset_classes=args.subset_classes,
                      name=args.name, seed=args.seed, device=args.device)
    from .progress import progress_bar

    with progress_bar(total=1000, desc="unhans", disable=args.quiet, unit="‰", leave=False) as bar:
        def progress(done, total, text):
            bar.update(done - bar.n)
            bar.set_postfix_str(text, refresh=False)

        result = run_unhans(store, spec, progress=progress)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    path = save_variant(store, result)
    print(f"saved {path}", file=sys.stderr)
    print(json.dumps(variant_summary(result.record)))
    return 0


def _cmd_index(args: argparse.Namespace) -> int:
    from .search import build_search_index
    from .store import RunStore

    RunStore(args.run)  # a clear error for a folder that is not a run
    meta = build_search_index(args.run, force=True)
    print(f"indexed {meta['count']} samples of {len(meta['classes'])} classes in {args.run / 'search'}",
          file=sys.stderr)
    return 0


def _cmd_similar(args: argparse.Namespace) -> int:
    from .search import find_similar

    store, origin_id = _origin(args)
    if args.heatmap:
        from .search import load_heatmap

        results = find_similar(store, cid=origin_id, heatmap=load_heatmap(args.heatmap.read_bytes(),
                                                                          name=str(args.heatmap)),
                               top=args.top, other_classes=args.other_classes)
        print(json.dumps({"results": [{k: row[k] for k in ("class", "path", "score")} for row in results]}))
        return 0
    if args.cluster:
        from .samples import selection_from_cluster

        indices = selection_from_cluster(store, origin_id, args.cluster)
    else:
        paths = [str(p) for p in store.arrays(origin_id)["paths"]]
        if args.sample not in paths:
            raise ConfigError(f"--sample {args.sample!r}: not a sample of class {args.origin} "
                              f"(paths are relative to the data root, e.g. {paths[0]!r})")
        indices = [paths.index(args.sample)]
    results = find_similar(store, cid=origin_id, indices=indices, top=args.top, other_classes=args.other_classes)
    print(json.dumps({"results": [{k: row[k] for k in ("class", "path", "score")} for row in results]}))
    return 0


def _cmd_perturb(args: argparse.Namespace) -> int:
    from .perturb.scan import PerturbSpec, perturb_classes
    from .store import RunStore

    store = RunStore(args.run)
    ids = _class_ids(store, args.classes, "--classes") if args.classes else store.finished_ids()
    spec = PerturbSpec(class_ids=tuple(ids), grid=args.grid, device=args.device, batch_size=args.batch_size,
                       force=args.force)
    results = perturb_classes(store, spec, progress=not args.quiet, log=lambda msg: print(msg, file=sys.stderr))
    print(json.dumps({"grid": args.grid, "classes": results}))
    return 0


def _cmd_export_virelay(args: argparse.Namespace) -> int:
    from .interop import export_virelay

    result = export_virelay(args.run, args.out, classes=args.classes, force=args.force,
                            log=None if args.quiet else lambda msg: print(msg, file=sys.stderr))
    print(f"ViRelAy project ready: open it with: virelay {result['project']}", file=sys.stderr)
    print(json.dumps({**result, "clusterings": len(result["clusterings"])}))
    return 0


def _cmd_import_virelay(args: argparse.Namespace) -> int:
    from .interop import import_virelay

    result = import_virelay(args.project, args.out, analysis=args.analysis, seed=args.seed, force=args.force,
                            log=None if args.quiet else lambda msg: print(msg, file=sys.stderr))
    print(f"run store ready in {result['run']}; serve it with: python app.py {result['run']}", file=sys.stderr)
    print(json.dumps(result))
    return 0


COMMANDS = {"run": _cmd_run, "demo": _cmd_demo, "analyse": _cmd_analyse, "evaluate": _cmd_evaluate, "paste": _cmd_paste,
            "unhans": _cmd_unhans, "index": _cmd_index, "similar": _cmd_similar, "perturb": _cmd_perturb,
            "export-virelay": _cmd_export_virelay, "import-virelay": _cmd_import_virelay}


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
