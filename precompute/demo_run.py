"""Build the embedded demo store: generate the dataset, train the model, run SpRAy on it.

``python -m precompute demo --out runs/demo`` and ``python app.py`` (first start) both
call :func:`build_demo_store`. Each step is skipped when its output already exists,
so an interrupted build resumes.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

from .analysis import AnalysisConfig
from .pipeline import RunConfig, run
from .store import DEMO_REPORT, SEARCH_DIR, SEARCH_META, TRUTH, RunStore, RunWriter

__all__ = ["DEMO_MODEL", "DEMO_IMAGE_SIZE", "demo_config", "demo_store_ready", "build_demo_store"]

DEMO_MODEL = "spray_demo_vgg"
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
    )


def demo_store_ready(out: Path) -> bool:
    """True if ``out`` holds a finished demo store with its similarity index.

    A demo built before the index existed is not ready: :func:`build_demo_store` then only
    adds the index (every class is finished already).
    """
    try:
        store = RunStore(out)
    except Exception:
        return False
    report = store.report()
    return (bool(report.get("finished")) and len(store.finished_ids()) == len(store.manifest.get("classes", []))
            and (Path(out) / SEARCH_DIR / SEARCH_META).is_file())


def build_demo_store(out: Path, *, seed: int = 0, force: bool = False, progress: bool = True,
                     log: Callable[[str], None] = print, n_per_class: int = 200, epochs: int = 15) -> Path:
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
    """
    from .demo import build_demo_assets

    out = Path(out)
    if force and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / DEMO_REPORT).is_file() or not (out / "model" / "weights.pt").is_file():
        log(f"building the demo dataset and training its model in {out} ...")
        build_demo_assets(out, seed=seed, progress=progress, n_per_class=n_per_class, epochs=epochs)
    log("running SpRAy on the demo ...")
    run(demo_config(out, seed=seed), progress=progress, log=log)
    writer = RunWriter(out)
    writer.update_manifest(demo={"truth": TRUTH, "report": writer.demo_report(), "seed": seed})
    writer.save_artifacts(writer.artifacts())
    return out
