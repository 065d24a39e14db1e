"""Build the embedded demo store: generate the dataset, train the model, run SpRAy on it.

``python -m precompute demo --out runs/demo`` and ``python app.py`` (first start) both
call :func:`build_demo_store`. Each step is skipped when its output already exists,
so an interrupted build resumes.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable, Optional, Sequence

from .analysis import AnalysisConfig
from .pipeline import RunConfig, run
from .store import (DEMO_REPORT, HOLDOUT_TRUTH, SEARCH_DIR, SEARCH_META, TRUTH, RunStore, RunWriter,
                    write_truth_rows)

__all__ = ["DEMO_MODEL", "DEMO_IMAGE_SIZE", "demo_config", "demo_store_ready", "build_demo_store"]

DEMO_MODEL = "spray_demo_vgg"
DEMO_MASKS = "masks"  # precompute.demo.MASKS_FOLDER, named here without importing torch
DEMO_HOLDOUT_MASKS = "holdout-masks"  # precompute.demo.HOLDOUT_MASKS_FOLDER
DEMO_IMAGE_SIZE = 64


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
        Classes given a perturbation scan (:mod:`precompute.perturb`); default the four
        with a planted artifact (about 80 s on 2 cores), ``()`` for none.
    """
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
