"""Build the embedded demo store: generate the dataset, train the model, run SpRAy on it.

``python -m precompute demo --out runs/demo`` and ``python app.py`` (first start) both
call :func:`build_demo_store`, then :func:`build_demo_comparison`, which trains the
demo's second model (a small ResNet) on the same data and analyses it into a second
run, ``runs/demo-resnet``, for the compare view. Each step is skipped when its output
already exists, so an interrupted build resumes.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Callable, Optional, Sequence

from .analysis import AnalysisConfig
from .errors import ConfigError
from .pipeline import RunConfig, run
from .store import (ARTIFACTS_DIR, DEMO_REPORT, HOLDOUT_TRUTH, SEARCH_DIR, SEARCH_META, TRUTH, RunStore, RunWriter,
                    write_truth_rows)

__all__ = ["DEMO_MODEL", "DEMO_IMAGE_SIZE", "COMPARE_MODEL", "COMPARE_SUFFIX", "demo_config", "demo_store_ready",
           "build_demo_store", "comparison_dir", "comparison_config", "demo_comparison_ready", "build_demo_comparison"]

DEMO_MODEL = "spray_demo_vgg"
DEMO_MASKS = "masks"  # precompute.demo.MASKS_FOLDER, named here without importing torch
DEMO_HOLDOUT_MASKS = "holdout-masks"  # precompute.demo.HOLDOUT_MASKS_FOLDER
DEMO_IMAGE_SIZE = 64
COMPARE_MODEL = "spray_demo_resnet"  # precompute.demo.train.SECOND_ARCHITECTURE
COMPARE_SUFFIX = "-resnet"  # the comparison run of DIR is DIR-resnet
COMPARE_REPORT = "model/report.json"  # precompute.demo.train.MODEL_REPORT


def demo_config(out: Path, *, seed: int = 0, force: bool = False) -> RunConfig:
    """The ``run`` configuration of the demo store in ``out``."""
    out = Path(out)
    return RunConfig(
        data=out / "data",
        model=DEMO_MODEL,
        weights=out / "model" / "weights.pt",
        out=out,
        image_size=DEMO_IMAGE_SIZE,
        normalize="none",
        batch_size=64,
        analysis=AnalysisConfig(seed=seed),
        force=force,
        masks=out / DEMO_MASKS,
        val_data=out / "holdout",  # the held-out split analysed with the training images (Figure 8)
        val_masks=out / DEMO_HOLDOUT_MASKS,
    )


def demo_store_ready(out: Path) -> bool:
    """True if ``out`` holds a finished demo store with its held-out split analysed, its similarity
    index, right-reason scores and perturbation scans.

    A demo built before these existed is not ready: :func:`build_demo_store` then only adds
    what is missing (every class is finished already).
    """
    try:
        store = RunStore(out)
    except Exception:
        return False
    report = store.report()
    ids = store.finished_ids()
    demo = store.manifest.get("demo") or {}
    return (bool(report.get("finished")) and len(ids) == len(store.manifest.get("classes", []))
            and (Path(out) / SEARCH_DIR / SEARCH_META).is_file()
            and "val_root" in store.manifest.get("data", {})
            and all("masks" in store.summary(cid) for cid in ids) and "perturbed" in demo
            and all("perturbation" in store.summary(store.id_for_name(name)) for name in demo["perturbed"]))


def _add_holdout_truth(out: Path) -> None:
    """Append the held-out images to ``truth.csv`` once, by their paths in the run (``../holdout/...``),
    so that ``evaluate`` scores the validation samples too."""
    import csv

    truth, holdout = out / TRUTH, out / HOLDOUT_TRUTH
    if not truth.is_file() or not holdout.is_file():
        return
    with open(truth, newline="", encoding="utf-8") as handle:
        if any(row["path"].startswith("../holdout/") for row in csv.DictReader(handle)):
            return
    with open(holdout, newline="", encoding="utf-8") as handle:
        rows = [("../holdout/" + row["path"], row["class"], row["artifact"]) for row in csv.DictReader(handle)]
    write_truth_rows(truth, rows, append=True)


def build_demo_store(out: Path, *, seed: int = 0, force: bool = False, progress: bool = True,
                     log: Callable[[str], None] = print, n_per_class: int = 200, epochs: int = 15,
                     perturb: Optional[Sequence[str]] = None) -> Path:
    """Generate, train and analyse the demo into ``out``; return ``out``.

    Parameters
    ----------
    out : path
        Run directory; the dataset (``data/``), model (``model/``), artifacts
        (``artifacts/``) and ``truth.csv`` are written inside it.
    seed : int
        Seed of the dataset, the training and the analysis.
    force : bool
        Rebuild everything.
    progress : bool
        Show progress bars.
    log : callable
        Receives one line per step.
    n_per_class, epochs : int
        Images per class and training epochs. The defaults make the demo of the README;
        the test suite builds a smaller one (see ``tests/conftest.py``).
    perturb : sequence of str, optional
        Classes given a perturbation scan (:mod:`precompute.perturb`); default the six
        with a planted artifact (about 2 minutes on 2 cores), ``()`` for none.
    """
    from .threads import pin_x86_kernels

    pin_x86_kernels()  # before torch's first kernel, so that a resumed build trains and attributes as a fresh one
    from .demo import build_demo_assets

    out = Path(out)
    if force and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / DEMO_REPORT).is_file() or not (out / "model" / "weights.pt").is_file():
        log(f"building the demo dataset and training its model in {out} ...")
        build_demo_assets(out, seed=seed, progress=progress, n_per_class=n_per_class, epochs=epochs)
    elif not (out / DEMO_MASKS).is_dir() or not (out / DEMO_HOLDOUT_MASKS).is_dir():
        # a demo built before masks existed: draw its masks only
        from .demo.dataset import generate_dataset

        log("drawing the demo's object masks ...")
        built = RunStore(out).demo_report()
        size = int(built.get("image_size", DEMO_IMAGE_SIZE))
        for folder, masks, stream, count in (("data", DEMO_MASKS, "data", built["n_per_class"]),
                                             ("holdout", DEMO_HOLDOUT_MASKS, "holdout", built["holdout_per_class"])):
            generate_dataset(out / folder, seed=int(built.get("seed", seed)), n_per_class=int(count), stream=stream,
                             image_size=size, masks_root=out / masks, images=False, progress=progress)
    # A demo analysed before validation data joined the analysis is analysed again (its model stays).
    manifest = out / "manifest.json"
    again = manifest.is_file() and "val_root" not in RunStore(out).manifest.get("data", {})
    _add_holdout_truth(out)
    log("running SpRAy on the demo ...")
    run(demo_config(out, seed=seed, force=again), progress=progress, log=log)
    writer = RunWriter(out)
    if perturb is None:  # the classes with a planted artifact
        perturb = sorted({entry["class"] for entry in writer.artifacts() if entry.get("class")})
    if perturb:
        from .perturb.scan import PerturbSpec, perturb_classes

        log(f"perturbation scan of {', '.join(perturb)} ...")
        perturb_classes(writer, PerturbSpec(class_ids=tuple(writer.id_for_name(name) for name in perturb)),
                        progress=progress, log=log)
    writer.update_manifest(demo={"truth": TRUTH, "report": writer.demo_report(), "seed": seed,
                                 "perturbed": list(perturb)})
    writer.save_artifacts(writer.artifacts())
    return out


# ------------------------------------------------------------------------- the second model
def comparison_dir(demo_dir: Path) -> Path:
    """The default folder of the demo's comparison run: ``DIR-resnet`` beside the demo ``DIR``."""
    demo_dir = Path(demo_dir)
    return demo_dir.parent / (demo_dir.name + COMPARE_SUFFIX)


def comparison_config(demo_dir: Path, out: Path, *, seed: int = 0, force: bool = False) -> RunConfig:
    """The ``run`` configuration of the comparison run in ``out``: the demo's, with the second model."""
    return replace(demo_config(demo_dir, seed=seed, force=force), out=Path(out), model=COMPARE_MODEL,
                   weights=Path(out) / "model" / "weights.pt")


def demo_comparison_ready(out: Path) -> bool:
    """True if ``out`` holds a finished comparison run (:func:`build_demo_comparison`): every class
    analysed with its held-out split and masks, the similarity index, ``truth.csv``, and the manifest's
    record of the demo it compares with."""
    try:
        store = RunStore(out)
    except Exception:
        return False
    ids = store.finished_ids()
    demo = store.manifest.get("demo") or {}
    return (bool(store.report().get("finished")) and len(ids) == len(store.manifest.get("classes", []))
            and (Path(out) / SEARCH_DIR / SEARCH_META).is_file() and (Path(out) / TRUTH).is_file()
            and "val_root" in store.manifest.get("data", {})
            and all("masks" in store.summary(cid) for cid in ids) and bool(demo.get("compares_with")))


def build_demo_comparison(demo_dir: Path, out: Optional[Path] = None, *, seed: int = 0, force: bool = False,
                          progress: bool = True, log: Callable[[str], None] = print, epochs: int = 15) -> Path:
    """Train the demo's second model on the demo's data and analyse it into a second run; return its folder.

    The paper's appendix shows that models of different architectures trained on the same
    data share the same artifacts. The second model is a small residual network
    (``spray_demo_resnet``, :class:`precompute.demo.DemoResNet`) trained exactly as the demo's
    VGG (:func:`precompute.demo.train_second_model`); the run has the demo run's configuration
    (its data, held-out split, masks, image size and normalisation), so the app's compare
    view can set the two side by side.

    Parameters
    ----------
    demo_dir : path
        A demo run built by :func:`build_demo_store`; only read.
    out : path, optional
        The comparison run's folder; default :func:`comparison_dir` (``DIR-resnet``). It gets
        ``model/weights.pt``, ``model/report.json`` (held-out accuracy, training seconds and the
        paste effect of each artifact), the demo's ``truth.csv`` and artifact library, and the run.
    seed : int
        Seed of the training and the analysis.
    force : bool
        Rebuild everything.
    progress : bool
        Show progress bars.
    log : callable
        Receives one line per step.
    epochs : int
        Training epochs (the demo's are 15; the test suite's smaller demo uses fewer).

    Raises
    ------
    ConfigError
        If ``demo_dir`` is not a built demo.
    """
    from .threads import pin_x86_kernels

    pin_x86_kernels()  # before torch's first kernel of this process: the same model on any x86 CPU
    demo_dir = Path(demo_dir)
    out = comparison_dir(demo_dir) if out is None else Path(out)
    needed = ("data", "holdout", DEMO_MASKS, DEMO_HOLDOUT_MASKS, TRUTH, HOLDOUT_TRUTH, "manifest.json")
    missing = [name for name in needed if not (demo_dir / name).exists()]
    if missing:
        raise ConfigError(f"{demo_dir}: not a built demo (no {', '.join(missing)}); "
                          f"build it first: python -m precompute demo --out {demo_dir}")
    if out.resolve() == demo_dir.resolve():
        raise ConfigError(f"{out}: the comparison run needs its own folder, not the demo's")
    if force and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / COMPARE_REPORT).is_file() or not (out / "model" / "weights.pt").is_file():
        from .demo import train_second_model

        log(f"training the demo's second model ({COMPARE_MODEL}) ...")
        train_second_model(demo_dir, out, seed=seed, epochs=epochs, progress=progress)
    for name in (TRUTH, HOLDOUT_TRUTH):  # evaluate's ground truth: the same images, the same data root
        if not (out / name).is_file():
            shutil.copyfile(demo_dir / name, out / name)
    _add_holdout_truth(out)
    if not (out / ARTIFACTS_DIR).is_dir() and (demo_dir / ARTIFACTS_DIR).is_dir():
        shutil.copytree(demo_dir / ARTIFACTS_DIR, out / ARTIFACTS_DIR)  # the artifact library, for the lab
    log("running SpRAy on the second model ...")
    run(comparison_config(demo_dir, out, seed=seed), progress=progress, log=log)
    report = json.loads((out / COMPARE_REPORT).read_text(encoding="utf-8"))
    writer = RunWriter(out)
    # The demo is named by its folder's name only: a path of this machine must not reach the browser.
    writer.update_manifest(demo={"truth": TRUTH, "report": report, "seed": seed, "role": "second-model",
                                 "compares_with": demo_dir.resolve().name, "model_report": COMPARE_REPORT})
    return out
