"""The perturbation scan of a run's classes: ``python -m precompute perturb``.

Per class: the samples as the model saw them (:func:`precompute.lab.model_inputs`), the
run's model (:class:`precompute.lab.ModelSession`, so the scan watches exactly the
analysed model), the occlusion maps (:mod:`precompute.perturb.occlusion`) and the share
of each map's drop off the object (:mod:`precompute.perturb.summary`). The reference
region is the class's object masks when ``run --masks`` stored them, else each heatmap's
decisive region (the fewest pixels holding 80 % of its positive relevance,
:func:`precompute.right_reason.top_relevance_region`): without masks the summary says how
much the model's certainty depends on regions where LRP puts little evidence.

Each class is written as one file when it is done; a class already scanned with the same
grid and reference is skipped, so an interrupted scan resumes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import numpy as np

from ..errors import ConfigError
from ..masks import unpack_masks
from ..progress import progress_bar
from ..right_reason import TOP_RELEVANCE_SHARE, top_relevance_region
from ..store import PERTURBATION, RunStore, RunWriter
from .summary import OCCLUSION_FILL, cell_cover, off_object_share

__all__ = ["DEFAULT_GRID", "PerturbSpec", "check_spec", "perturb_classes", "scan_class"]

#: Cells per side of the default grid (8 x 8 = 64 occlusions an image).
DEFAULT_GRID = 8


@dataclass(frozen=True)
class PerturbSpec:
    """What ``perturb`` is asked to do.

    Attributes
    ----------
    class_ids : tuple of str
        Finished classes to scan.
    grid : int
        Cells per side.
    device : str
        ``auto``, ``cpu`` or ``cuda``.
    batch_size : int
        Occluded images per forward pass.
    force : bool
        Scan classes again that were scanned with the same grid and reference.
    """

    class_ids: tuple
    grid: int = DEFAULT_GRID
    device: str = "auto"
    batch_size: int = 256
    force: bool = False


def check_spec(store: RunStore, spec: PerturbSpec) -> None:
    """One-line :class:`ConfigError` for a class not analysed, or a grid the images cannot hold."""
    if not spec.class_ids:
        raise ConfigError(f"no finished class to scan in {store.root}")
    for cid in spec.class_ids:
        if not store.has_class(cid):
            raise ConfigError(f"class {cid!r} is not analysed yet in {store.root}")
    side = min(min(store.summary(cid)["heatmap_shape"]) for cid in spec.class_ids)
    if not 2 <= spec.grid <= side:
        raise ConfigError(f"--grid {spec.grid}: must be between 2 and the image side ({side} pixels)")
    if spec.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {spec.batch_size}")


def _reference(store: RunStore, cid: str, heatmaps: np.ndarray):
    """``(regions (n, H, W) bool, name)``: the object masks if stored, else the LRP decisive regions."""
    masks = store.class_masks(cid)
    if masks is not None:
        return unpack_masks(masks["object_mask"], heatmaps.shape[1:]), "mask"
    return top_relevance_region(heatmaps, TOP_RELEVANCE_SHARE), "lrp"


def _done_before(store: RunStore, cid: str, grid: int) -> bool:
    info = store.summary(cid).get("perturbation") or {}
    reference = "mask" if store.class_masks(cid) is not None else "lrp"
    return info.get("grid") == grid and info.get("reference") == reference


def scan_class(store: RunStore, session, cid: str, spec: PerturbSpec,
               on_image: Optional[Callable[[int], None]] = None) -> Dict[str, object]:
    """Scan one class and write ``perturbation.npz``; return its summary keys.

    Parameters
    ----------
    store : RunStore
    session : precompute.lab.ModelSession
        The run's model.
    cid : str
    spec : PerturbSpec
    on_image : callable, optional
        Called with the number of images finished.
    """
    from ..lab import model_inputs
    from ..lab.session import to_tensor

    started = time.perf_counter()
    summary = store.summary(cid)
    paths = [str(path) for path in store.arrays(cid)["paths"]]
    images = to_tensor(model_inputs(store, paths))
    from .occlusion import occlusion_maps

    maps, base = occlusion_maps(session.predict_proba, images, [int(summary["label"])] * len(paths), spec.grid,
                                batch_size=spec.batch_size, on_image=on_image)
    heatmaps = np.asarray(store.heatmaps(cid), dtype=np.float32)
    regions, reference = _reference(store, cid, heatmaps)
    cover = cell_cover(regions, spec.grid)
    off = off_object_share(maps, cover)
    valid = np.isfinite(off)
    keys = {
        "off_object_sensitivity": float(np.nanmean(off)) if valid.any() else None,
        "perturbation": {"grid": spec.grid, "fill": OCCLUSION_FILL, "reference": reference,
                         "scored": int(valid.sum()), "seconds": round(time.perf_counter() - started, 2)},
    }
    RunWriter(store.root).write_class_part(cid, PERTURBATION, {
        "maps": maps, "base_prob": base, "off_object": off, "reference_cover": cover}, keys)
    return keys


def perturb_classes(store: RunStore, spec: PerturbSpec, *, progress: bool = True,
                    log: Callable[[str], None] = print) -> List[Dict[str, object]]:
    """Scan the spec's classes (skipping those done before), one file per class as each finishes.

    torch's thread count is set to the usable cores for the scan and restored after.

    Returns
    -------
    list of dict
        Per class, in the spec's order: ``class``, ``n``, ``off_object_sensitivity``,
        ``reference`` and ``skipped`` (True if it was scanned before).
    """
    check_spec(store, spec)
    todo = [cid for cid in spec.class_ids if spec.force or not _done_before(store, cid, spec.grid)]
    if len(todo) < len(spec.class_ids):
        log(f"resuming: {len(spec.class_ids) - len(todo)} of {len(spec.class_ids)} classes were scanned with this "
            "grid before and are kept (--force scans them again)")
    if todo:
        import torch

        from ..lab import ModelSession
        from ..workers import attribution_threads

        threads_before = torch.get_num_threads()
        torch.set_num_threads(attribution_threads(0))
        session = ModelSession(store, device=spec.device, batch_size=spec.batch_size)
        total = sum(int(store.summary(cid)["n"]) for cid in todo)
        try:
            with progress_bar(total=total, desc="perturb", unit="img", disable=not progress) as bar:
                for cid in todo:
                    bar.set_postfix_str(store.summary(cid)["name"], refresh=False)
                    scan_class(store, session, cid, spec, on_image=bar.update)
        finally:
            session.close()
            torch.set_num_threads(threads_before)
    results = []
    for cid in spec.class_ids:
        summary = store.summary(cid)
        results.append({"class": summary["name"], "n": int(summary["n"]),
                        "off_object_sensitivity": summary.get("off_object_sensitivity"),
                        "reference": (summary.get("perturbation") or {}).get("reference"),
                        "skipped": cid not in todo})
    return results
