"""Un-Hans a model: concept, correction, verification and cleaning list in one call.

:func:`run_unhans` is what ``python -m precompute unhans`` and the lab's "Un-Hans" panel
both run; :func:`save_variant` stores its result as a model variant of the run
(``RUN/variants/<id>/``, written atomically through the store). Steps, in order:

1. the artifact samples (a stored cluster, a lasso selection or a file of paths) and the
   rest of their class (the clean reference) give the concept at the chosen layer;
2. the correction method (:data:`precompute.clarc.CORRECTIONS`) makes the corrected model;
3. both models are measured on held-out data (:mod:`precompute.clarc.verify`);
4. every sample of the run is scored along the CAV (:mod:`precompute.clarc.cleaning`).
"""
from __future__ import annotations

import copy
import io
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ConfigError, SprayError
from ..store import (
    CLEANING,
    VARIANT_CONCEPT,
    VARIANT_PROJECTION,
    VARIANT_WEIGHTS,
    RunStore,
    Variant,
    checked_id,
    datetime_now,
    new_record_id,
)
from ..samples import check_selection
from .finetune import FinetuneRecipe

__all__ = ["UnhansSpec", "UnhansResult", "run_unhans", "save_variant", "default_eval_data", "training_set",
           "check_name_free", "check_rgba_png"]

Progress = Callable[[int, int, str], None]


@dataclass
class UnhansSpec:
    """What to correct, how, and how to check it.

    Attributes
    ----------
    origin_id : str
        Class id of the artifact's class.
    selection : list of int
        The artifact samples: indices into the origin class.
    selection_source : str
        Where they came from (``cluster kmeans_lead-k2/cluster-1``, ``lasso``, a file).
    method : str
        A name in :data:`precompute.clarc.CORRECTIONS`.
    layer : str or None
        ``NAME`` or ``NAME:input``; None is the input of the last ``nn.Linear``.
    cav : str
        A name in :data:`precompute.clarc.CAV_METHODS`.
    projection : str
        P-ClArC's mode: ``excess`` (default) or ``full`` (:mod:`precompute.clarc.projection`).
    artifact : str or None
        An RGBA PNG path or the name/id of an artifact of the run; None takes the run
        library's artifact of the origin class, if there is one.
    position : str
        ``original``, ``random``, ``x,y``, a corner (see :meth:`precompute.lab.Placement.parse`).
    eval_data : Path or None
        Held-out ImageFolder; None is :func:`default_eval_data`.
    recipe : FinetuneRecipe
    subset_classes : int or None
        Fine-tune on the origin class plus ``K - 1`` other classes (seeded); None is all.
    name : str or None
        Variant id; None makes ``<method>-<time>-<hex>``.
    seed : int
    device : str
    """

    origin_id: str
    selection: List[int]
    selection_source: str
    method: str = "pclarc"
    layer: Optional[str] = None
    cav: str = "signal"
    projection: str = "excess"
    artifact: Optional[str] = None
    position: str = "original"
    eval_data: Optional[Path] = None
    recipe: FinetuneRecipe = field(default_factory=FinetuneRecipe)
    subset_classes: Optional[int] = None
    name: Optional[str] = None
    seed: int = 0
    device: str = "auto"


@dataclass
class UnhansResult:
    """A finished correction, not yet saved: the variant record and its files (name -> bytes)."""

    record: Variant
    files: Dict[str, bytes]
    cleaning: List[Dict[str, object]]
    warnings: List[str]


def check_rgba_png(text: Optional[str]) -> None:
    """Refuse an ``--artifact`` file that is not a PNG with an alpha channel (names of run artifacts pass)."""
    if not text or not Path(text).is_file():
        return
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(text) as image:
            has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
            kind = image.format
    except (OSError, UnidentifiedImageError):
        raise ConfigError(f"--artifact {text}: not an image (expected an RGBA PNG)") from None
    if kind != "PNG" or not has_alpha:
        raise ConfigError(f"--artifact {text}: a {kind} in mode {image.mode}, not an RGBA PNG; the alpha channel "
                          "says which pixels are the artifact")


def default_eval_data(store: RunStore) -> Tuple[Path, Optional[str]]:
    """The demo's held-out split, else the run's own data with a warning."""
    holdout = store.root / "holdout"
    if store.manifest.get("demo") and holdout.is_dir():
        return holdout, None
    return store.data_root(), ("no --eval-data: the figures are measured on the run's own (training) data, "
                               "which the model has seen")


# -------------------------------------------------------------------------- the run
class _Steps:
    """Progress over weighted steps: ``progress(done, 1000, text)``."""

    def __init__(self, progress: Optional[Progress], weights: Dict[str, float]):
        self.progress, self.total = progress, sum(weights.values())
        self.weights, self.done = weights, 0.0
        self.current = None

    def start(self, name: str, text: str) -> None:
        if self.current is not None:
            self.done += self.weights[self.current]
        self.current = name
        self.report(0.0, text)

    def report(self, fraction: float, text: str) -> None:
        if self.progress:
            value = self.done + self.weights.get(self.current, 0) * min(1.0, fraction)
            self.progress(int(1000 * value / self.total), 1000, text)


def _check_cancel(cancel: Optional[threading.Event]) -> None:
    from ..lab import Cancelled

    if cancel is not None and cancel.is_set():
        raise Cancelled()


def _placement_positions(placement, artifact, size: int, seed: int) -> List[Tuple[int, int]]:
    from ..lab import resolve_positions

    rng = np.random.default_rng([seed, 5])
    count = 256 if placement.mode == "random" else 1
    return resolve_positions(placement, artifact, (size, size), count, rng)


def training_set(store: RunStore, origin_id: str, selection: Sequence[int], subset: Optional[int], seed: int):
    """The run's samples as a :class:`precompute.clarc.corrections.TrainingSet`.

    ``subset`` classes (the origin and ``subset - 1`` others drawn with ``seed``), or all;
    the ``selection`` of the origin class is marked as already carrying the artifact. A
    run's validation images (``run --val-data``) are left out: the correction never trains
    on the data it may be checked on.
    """
    import torch

    from ..lab import model_inputs
    from .corrections import TrainingSet

    ids = store.finished_ids()
    if subset is not None:
        others = [cid for cid in ids if cid != origin_id]
        rng = np.random.default_rng(seed)
        ids = [origin_id] + sorted(rng.choice(others, size=min(len(others), subset - 1), replace=False).tolist())
    images, labels, carries = [], [], []
    chosen = set(int(i) for i in selection)
    for cid in ids:
        arrays = store.arrays(cid)
        train = np.flatnonzero(arrays["split"] == 0) if "split" in arrays else np.arange(len(arrays["paths"]))
        images.append(model_inputs(store, [str(arrays["paths"][i]) for i in train]))
        labels += [int(store.class_info(cid)["label"])] * len(train)
        carries += [cid == origin_id and int(i) in chosen for i in train]
    tensor = torch.from_numpy(np.concatenate(images)).permute(0, 3, 1, 2).contiguous()
    return TrainingSet(images=tensor, labels=torch.tensor(labels), carries_artifact=torch.tensor(carries),
                       class_ids=list(ids))


def _torch_bytes(obj) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def run_unhans(store: RunStore, spec: UnhansSpec, *, progress: Optional[Progress] = None,
               cancel: Optional[threading.Event] = None, base_model=None) -> UnhansResult:
    """Define the concept, correct the model, verify before against after, score the run.

    Parameters
    ----------
    store : RunStore
    spec : UnhansSpec
    progress : callable, optional
        ``progress(done, total, text)``.
    cancel : threading.Event, optional
        Checked between steps and every training batch; raises :class:`precompute.lab.Cancelled`.
    base_model : nn.Module, optional
        The run's model, already loaded (the lab passes its session's); never modified.

    Raises
    ------
    ConfigError
        Bad input, before anything is computed: unknown method, layer or artifact,
        an empty selection or the whole class.
    """
    import torch

    from ..lab import ModelSession, Placement, library_artifact_of, load_run_model, model_inputs, resolve_artifact
    from ..lab.session import to_tensor
    from ..lrp.precision import resolve_device
    from .cleaning import cleaning_csv, cleaning_rows
    from .concept import CAV_METHODS, fit_concept
    from .corrections import CORRECTIONS, CorrectionInput
    from .layers import capture_activations, resolve_layer
    from .projection import PROJECTION_MODES
    from .verify import load_eval_set, model_figures, origin_spray, stored_spray, verification

    started = time.perf_counter()
    warnings: List[str] = []
    correct = CORRECTIONS.get(spec.method)
    CAV_METHODS.get(spec.cav)
    if spec.projection not in PROJECTION_MODES:
        raise ConfigError(f"--projection {spec.projection!r}: expected one of {', '.join(PROJECTION_MODES)}")
    spec.recipe.validate()
    origin = store.class_info(spec.origin_id)
    label, origin_name = int(origin["label"]), origin["name"]
    selection = check_selection(store, spec.origin_id, spec.selection)
    if spec.subset_classes is not None and spec.subset_classes < 2:
        raise ConfigError(f"--subset-classes must be at least 2 (the origin and one more), got {spec.subset_classes}")
    check_rgba_png(spec.artifact)
    artifact = resolve_artifact(store, spec.artifact) if spec.artifact else library_artifact_of(store, origin_name)
    placement = Placement.parse(spec.position).validate()
    if artifact is not None and placement.mode == "original" and artifact.position is None:
        raise ConfigError(f"artifact {artifact.name!r} has no known original position; pass --position x,y or random")
    if artifact is None:
        warnings.append("no artifact image: the artifact accuracy, paste test and artifact relevance are left out")
    eval_dir, warning = (Path(spec.eval_data), None) if spec.eval_data else default_eval_data(store)
    if warning:
        warnings.append(warning)
    if not Path(eval_dir).is_dir():
        raise ConfigError(f"--eval-data {eval_dir}: not a folder")
    info = store.manifest_record().model
    base = base_model if base_model is not None else load_run_model(store)
    layer = resolve_layer(base, spec.layer)
    device = resolve_device(spec.device)
    weights = {"concept": 1, "correct": 40 if spec.method != "pclarc" else 1, "verify": 12, "spray": 6,
               "cleaning": 3}
    steps = _Steps(progress, weights)

    steps.start("concept", f"concept at {layer}")
    origin = store.arrays(spec.origin_id)
    paths = [str(p) for p in origin["paths"]]
    batch = 64
    model = copy.deepcopy(base).to(device).eval()
    batches = (to_tensor(model_inputs(store, paths[i:i + batch])) for i in range(0, len(paths), batch))
    acts = capture_activations(model, layer, batches, normalization=info.normalization, device=device)
    mask = np.zeros(len(paths), bool)
    mask[selection] = True
    train = origin["split"] == 0 if "split" in origin else np.ones(len(paths), bool)  # never fit on validation images
    if not (mask & train).any():
        raise ConfigError("the artifact samples are all validation images (run --val-data); select training "
                          "images too")
    concept = fit_concept(acts[mask & train], acts[~mask & train], layer=str(layer), method=spec.cav,
                          seed=spec.seed)
    _check_cancel(cancel)

    steps.start("correct", f"{spec.method} ...")
    size = int(info.image_size or model_inputs(store, paths[:1]).shape[1])
    given = CorrectionInput(
        model=model, concept=concept, normalization=info.normalization, device=device, recipe=spec.recipe,
        training=lambda: training_set(store, spec.origin_id, selection, spec.subset_classes, spec.recipe.seed),
        artifact_patch=artifact.tensor() if artifact is not None else None,
        positions=_placement_positions(placement, artifact, size, spec.seed) if artifact is not None else (),
        progress=lambda done, total, text: steps.report(done / max(total, 1), text), cancel=cancel,
        projection_mode=spec.projection, origin_label=label)
    corrected = correct(given)
    _check_cancel(cancel)

    steps.start("verify", "verifying on held-out data")
    eval_set = load_eval_set(store, Path(eval_dir))
    before_session = ModelSession(store, device=spec.device, model=copy.deepcopy(base))
    after_session = ModelSession(store, device=spec.device, model=corrected.model)
    try:
        before = model_figures(before_session, eval_set, label, artifact, placement, seed=spec.seed)
        steps.report(0.5, "verifying the corrected model")
        after = model_figures(after_session, eval_set, label, artifact, placement, seed=spec.seed)
        _check_cancel(cancel)
        steps.start("spray", "SpRAy on the origin class with the corrected model")
        spray_after = origin_spray(store, after_session, spec.origin_id, selection,
                                   status=lambda text: steps.report(0.5, text))
    finally:
        before_session.close()
        after_session.close()
    report = verification(before, after, stored_spray(store, spec.origin_id, selection), spray_after)
    report["eval_data"] = {"source": eval_set.source, "n": int(len(eval_set.labels))}
    _check_cancel(cancel)

    steps.start("cleaning", "scoring every sample along the CAV")
    rows = cleaning_rows(store, copy.deepcopy(base).to(device).eval(), concept, spec.origin_id, selection,
                         normalization=info.normalization, device=device)
    elsewhere = [row for row in rows if row["class_id"] != spec.origin_id][:10]
    report["cleaning"] = {"n": len(rows), "top_other": [{k: row[k] for k in ("path", "class", "score")}
                                                        for row in elsewhere]}

    variant_id = spec.name or new_record_id(spec.method)
    files = {VARIANT_CONCEPT: _torch_bytes({"layer": concept.layer, "vector": torch.from_numpy(concept.vector),
                                            "reference": torch.tensor(concept.reference)}),
             CLEANING: cleaning_csv(rows)}
    if corrected.projections:
        files[VARIANT_PROJECTION] = _torch_bytes([p.state() for p in corrected.projections])
    if corrected.weights_changed:
        files[VARIANT_WEIGHTS] = _torch_bytes({k: v.detach().cpu() for k, v in corrected.model.state_dict().items()})
    record = Variant(
        id=variant_id, name=spec.name or variant_id, method=spec.method, created=datetime_now(), layer=str(layer),
        origin={"id": spec.origin_id, "name": origin_name, "label": label},
        selection={"source": spec.selection_source, "indices": selection, "n": len(selection)},
        concept=concept.meta(), artifact=artifact.meta() if artifact is not None else None,
        params={"layer_requested": spec.layer, "cav": spec.cav,
                "projection": spec.projection if spec.method == "pclarc" else None,
                "position": spec.position, "seed": spec.seed,
                "subset_classes": spec.subset_classes, "recipe": spec.recipe.to_dict() if spec.method != "pclarc"
                else None, "training": corrected.training, "device": str(device), "warnings": warnings},
        base_weights_sha256=info.weights_sha256, report=report, seconds=round(time.perf_counter() - started, 2))
    steps.report(1.0, "done")
    return UnhansResult(record=record, files=files, cleaning=rows, warnings=warnings)


def save_variant(store: RunStore, result: UnhansResult) -> Path:
    """Store the variant atomically (``RUN/variants/<id>/``); return its folder."""
    from ..store import ExperimentWriter

    return ExperimentWriter(store).save_variant(result.record, result.files)


def check_name_free(store: RunStore, name: Optional[str]) -> None:
    """Refuse a variant name that is taken or unsafe, before any work is done."""
    if not name:
        return
    try:
        checked_id(name)
    except SprayError:
        raise ConfigError(f"--name {name!r}: use letters, digits, '-' and '_' (up to 64)") from None
    if any(name in (v.id, v.name) for v in store.variants()):
        raise ConfigError(f"--name {name!r}: a model variant of that name exists already in {store.root}")
