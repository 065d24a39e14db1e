"""Pure helpers of the artifact lab page: records in, plain data out; the registry of experiment kinds."""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from precompute.errors import SprayError
from precompute.lab import Placement, PasteSpec, RemovalSpec, run_paste_experiment, run_removal_experiment
from precompute.lab.artifacts import MAX_PROPOSAL_AREA
from precompute.registry import Registry

from . import ids
from .routes import experiment_file_url

__all__ = ["ExperimentKind", "EXPERIMENT_KINDS", "experiment_kinds", "kind_for_button", "LabInputs",
           "experiment_title",
           "placement_from_inputs", "placement_controls_disabled", "placement_options", "summary_rows",
           "example_items", "experiment_rows", "deltas", "artifact_label", "artifact_facts", "decode_rgba",
           "artifact_coverage", "preview_background", "PLACEMENTS"]

PLACEMENTS = [{"label": "where it was found", "value": "original"}, {"label": "corner", "value": "corner"},
              {"label": "position", "value": "xy"}, {"label": "random", "value": "random"}]


def placement_from_inputs(mode: str, corner: str, x, y, scale, opacity) -> Placement:
    """A validated :class:`Placement` from the page's controls."""
    return Placement(mode=mode or "original", corner=corner or "bl", x=int(x or 0), y=int(y or 0),
                     scale=float(scale or 1.0), opacity=float(1.0 if opacity is None else opacity)).validate()


def placement_controls_disabled(mode: Optional[str]) -> Tuple[bool, bool, bool]:
    """``(corner, x, y)``: which placement controls do not apply to placement ``mode``.

    The corner only applies to ``corner``, the x and y positions only to ``xy``; for
    ``original`` (where it was found) and ``random`` none of the three does.
    """
    return mode != "corner", mode != "xy", mode != "xy"


def placement_options(has_position: bool) -> List[Dict[str, object]]:
    """The placement dropdown's options; "where it was found" needs a known original position."""
    return [{**option, "disabled": option["value"] == "original" and not has_position} for option in PLACEMENTS]


def decode_rgba(png: bytes) -> np.ndarray:
    """uint8 (h, w, 4) of an artifact's PNG."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGBA"))


def artifact_coverage(rgba: np.ndarray, image_size: Optional[Sequence[int]]) -> float:
    """Share of a (w, h) model input that the artifact's visible pixels (alpha > 25) cover.

    Uses the artifact's own size when the input size is unknown.
    """
    visible = int(np.count_nonzero(np.asarray(rgba)[..., 3] > 25))
    if image_size:
        width, height = (int(v) for v in image_size)
    else:
        height, width = np.asarray(rgba).shape[:2]
    return visible / max(1, width * height)


def preview_background(rgba: np.ndarray) -> str:
    """``dark`` or ``light``: the preview background that contrasts with the artifact's visible pixels.

    The mean luminance (Rec. 709) of the pixels, weighted by alpha, picks a dark
    background for light artifacts (white rounded corners vanish on a light checkerboard)
    and a light one otherwise.
    """
    rgba = np.asarray(rgba, dtype=np.float64)
    alpha = rgba[..., 3] / 255.0
    if alpha.sum() <= 0:
        return "light"
    luminance = rgba[..., :3] @ np.array([0.2126, 0.7152, 0.0722]) / 255.0
    return "dark" if float((luminance * alpha).sum() / alpha.sum()) > 0.6 else "light"


# ---------------------------------------------------------------------------------------------
# experiment kinds: one registered entry per test the lab runs
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LabInputs:
    """The lab's validated inputs, whatever the experiment.

    Attributes
    ----------
    origin_id : str
        Class id of the artifact's class of origin.
    placement : Placement
    n, seed : int
    targets : list of str or None
        Target class ids of a paste test (None: all other classes).
    selection : (str, ndarray of int) or None
        ``(class id, sample indices)`` the lab was opened with (the removal test's samples).
    """

    origin_id: str
    placement: Placement
    n: int
    seed: int
    targets: Optional[List[str]] = None
    selection: Optional[Tuple[str, np.ndarray]] = None


@dataclass(frozen=True)
class ExperimentKind:
    """One test of the lab: how it is started, run and shown.

    Attributes
    ----------
    name : str
        Registry key, stored as the record's ``kind``.
    order : int
        Position of its run button.
    button_id : str
        Id of its run button (:mod:`spray_dash.ids`).
    button_class : str
    arm : str
        Name of the treated arm in the results table (its control is ``control``).
    build : callable
        ``build(inputs: LabInputs) -> spec``; raises :class:`SprayError` with a message.
    runner : callable
        ``precompute.lab.run_*_experiment(store, session, artifact, spec, progress=, cancel=)``.
    button : callable
        ``button(selection) -> (text, disabled)`` of its run button.
    title : callable
        ``title(record) -> str``: the results' heading.
    """

    name: str
    order: int
    button_id: str
    button_class: str
    arm: str
    build: Callable[[LabInputs], object]
    runner: Callable
    button: Callable[[Optional[Tuple[str, np.ndarray]]], Tuple[str, bool]]
    title: Callable[[Dict], str]


EXPERIMENT_KINDS: Registry = Registry("experiment kind")


def experiment_kinds() -> List[ExperimentKind]:
    """Every registered experiment kind, in button order."""
    return sorted((EXPERIMENT_KINDS.get(name) for name in EXPERIMENT_KINDS), key=lambda kind: kind.order)


def kind_for_button(button_id) -> Optional[ExperimentKind]:
    """The experiment kind whose run button is ``button_id``, or None."""
    return next((kind for kind in experiment_kinds() if kind.button_id == button_id), None)


def _paste_spec(inputs: LabInputs) -> PasteSpec:
    spec = PasteSpec(origin_id=inputs.origin_id, placement=inputs.placement, n=inputs.n, seed=inputs.seed,
                     target_ids=list(inputs.targets) if inputs.targets else None)
    if not 1 <= spec.n <= 5000:
        raise SprayError("the number of targets must be between 1 and 5000")
    return spec


def _removal_spec(inputs: LabInputs) -> RemovalSpec:
    if inputs.selection is None:
        raise SprayError("select affected samples in the explorer first")
    cid, indices = inputs.selection
    return RemovalSpec(class_id=cid, indices=[int(i) for i in indices], placement=inputs.placement, seed=inputs.seed)


def _removal_button(selection) -> Tuple[str, bool]:
    if selection is None:
        return "Removal test: select affected samples in the explorer first", True
    return f"Run removal test on {len(selection[1])} selected samples", False


def _register(kind: ExperimentKind) -> ExperimentKind:
    return EXPERIMENT_KINDS.register(kind.name)(kind)


_register(ExperimentKind(
    name="paste", order=0, button_id=ids.LAB_RUN_PASTE, button_class="button", arm="artifact",
    build=_paste_spec, runner=run_paste_experiment, button=lambda selection: ("Run paste test", False),
    title=lambda record: f"Pasting {record['artifact']['name']} onto other classes"))
_register(ExperimentKind(
    name="removal", order=1, button_id=ids.LAB_RUN_REMOVAL, button_class="button secondary", arm="inpainted",
    build=_removal_spec, runner=run_removal_experiment, button=_removal_button,
    title=lambda record: f"Removing {record['artifact']['name']} from {record['origin']['name']} samples"))


def experiment_title(record: Dict) -> str:
    """Heading of an experiment's results, as its kind words it."""
    kind = record.get("kind")
    return EXPERIMENT_KINDS.get(kind).title(record) if kind in EXPERIMENT_KINDS else f"{kind} experiment"


def summary_rows(record: Dict) -> List[Dict[str, object]]:
    """The paper's Table 3 (paste) or Table 4 (removal) row, plus its control, for display."""
    summary = record["summary"]
    kind = record.get("kind")
    rows = []
    for arm, values in ((EXPERIMENT_KINDS.get(kind).arm if kind in EXPERIMENT_KINDS else str(kind), summary),
                        ("control", summary["control"])):
        rows.append({"arm": arm, "n": summary["n"], "mean_delta_rank": values["mean_delta_rank"],
                     "mean_delta_prob": values["mean_delta_prob"], "flip_rate": values["flip_rate"]})
    return rows


def deltas(record: Dict) -> Dict[str, np.ndarray]:
    """Per-sample Δp of the artifact arm and of the control."""
    rows = record.get("rows", [])
    before = np.array([r["prob_before"] for r in rows], dtype=float)
    return {"artifact": np.array([r["prob_after"] for r in rows]) - before,
            "control": np.array([r["prob_control"] for r in rows]) - before}


def example_items(record: Dict) -> List[Dict[str, object]]:
    """Figure-7 pairs: image and heatmap w.r.t. the class of origin, before and after."""
    items = []
    for example in record.get("examples", []):
        k = example["k"]
        items.append({
            **example,
            "before": experiment_file_url(record["id"], f"ex{k}-before.webp"),
            "before_heat": experiment_file_url(record["id"], f"ex{k}-before-heat.webp"),
            "after": experiment_file_url(record["id"], f"ex{k}-after.webp"),
            "after_heat": experiment_file_url(record["id"], f"ex{k}-after-heat.webp"),
        })
    return items


def experiment_rows(records: Sequence[Dict]) -> List[Dict[str, object]]:
    """One grid row per saved experiment."""
    rows = []
    for record in records:
        summary = record.get("summary", {})
        control = summary.get("control", {})
        rows.append({
            "id": record["id"], "created": record.get("created", ""), "kind": record.get("kind", ""),
            "origin": record.get("origin", {}).get("name", ""), "artifact": record.get("artifact", {}).get("name", ""),
            "n": summary.get("n"), "mean_delta_rank": summary.get("mean_delta_rank"),
            "mean_delta_prob": summary.get("mean_delta_prob"), "flip_rate": summary.get("flip_rate"),
            "control_delta_prob": control.get("mean_delta_prob"),
        })
    return rows


def artifact_label(entry: Dict) -> str:
    """Dropdown label of an artifact entry."""
    origin = entry.get("class") or "?"
    return f"{entry.get('name', entry['id'])}  ·  {entry.get('source', '')}  ·  from {origin}"


def artifact_facts(entry: Optional[Dict], coverage: Optional[float] = None) -> List[tuple]:
    """(label, value) facts shown beside an artifact's preview.

    ``coverage`` is the share of the image the artifact covers (:func:`artifact_coverage`);
    above :data:`precompute.lab.artifacts.MAX_PROPOSAL_AREA` a ``warning`` fact says that
    pasting it replaces most of each target.
    """
    if not entry:
        return []
    facts = [("source", entry.get("source", "")), ("class", entry.get("class") or "unknown"),
             ("size", "×".join(str(v) for v in entry.get("size", [])) or "?"),
             ("position", ", ".join(str(v) for v in entry["position"]) if entry.get("position") else "unknown")]
    if entry.get("method"):
        facts.append(("found by", entry["method"]))
    if entry.get("relevance_share") is not None:
        facts.append(("relevance inside", f"{entry['relevance_share']:.0%}"))
    if coverage is not None:
        facts.append(("covers", f"{coverage:.0%} of the image"))
        if coverage > MAX_PROPOSAL_AREA:
            facts.append(("warning", f"it covers more than {MAX_PROPOSAL_AREA:.0%} of the image: pasting it replaces "
                                     "most of each target, so the test measures that image, not an artifact"))
    return facts
