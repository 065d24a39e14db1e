"""Pure view models of the Un-Hans page: methods, placement, the before/after report, the page's URL.

Nothing here imports torch or reads the disk: the page shows stored variants while
browsing, and loads torch only when a correction runs or live heatmaps are asked for.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import urlencode

from .selection import decode_mask

__all__ = ["METHODS", "CAV_CHOICES", "REPORT_ROWS", "report_rows", "parse_concept", "concept_param",
           "variant_options", "paste_deltas", "variant_title", "position_text", "layer_placeholder",
           "default_artifact", "artifact_options", "heatmap_indices", "unhans_url"]

#: The correction methods offered, in order, with their label (names of ``precompute.clarc.CORRECTIONS``;
#: a test checks that they match without this module importing torch).
METHODS: Dict[str, str] = {
    "pclarc": "P-ClArC: project the artifact out (no training, seconds)",
    "aclarc": "A-ClArC: fine-tune with the artifact pasted into every class (about a minute on the demo)",
    "rrclarc": "RR-ClArC: fine-tune the sensitivity along the artifact away",
}
CAV_CHOICES: Dict[str, str] = {"signal": "signal pattern (mean difference)", "svm": "linear SVM"}


def _pct(value: Optional[float]) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def _signed(value: Optional[float]) -> str:
    return "–" if value is None else f"{value:+.3f}"


def _plain(value: Optional[float]) -> str:
    return "–" if value is None else f"{value:.2f}"


@dataclass(frozen=True)
class ReportRow:
    """One line of the report: a label, where its ``{before, after}`` pair is, and how to show it."""

    label: str
    get: Callable[[Mapping[str, Any]], Optional[Mapping[str, Any]]]
    show: Callable[[Optional[float]], str]


def _paste(key: str) -> Callable[[Mapping[str, Any]], Optional[Mapping[str, Any]]]:
    def get(report):
        paste = report.get("paste")
        return {"before": paste["before"][key], "after": paste["after"][key]} if paste else None
    return get


REPORT_ROWS: Tuple[ReportRow, ...] = (
    ReportRow("clean held-out accuracy", lambda r: r.get("clean_accuracy"), _pct),
    ReportRow("accuracy of the origin class", lambda r: r.get("origin_accuracy"), _pct),
    ReportRow("accuracy, artifact pasted on every image", lambda r: r.get("artifact_accuracy"), _pct),
    ReportRow("paste test: mean Δp(origin)", _paste("mean_delta_prob"), _signed),
    ReportRow("paste test: mean Δrank", _paste("mean_delta_rank"), _signed),
    ReportRow("paste test: flip rate", _paste("flip_rate"), _pct),
    ReportRow("paste control: mean Δp(origin)",
              lambda r: ({"before": r["paste"]["control_before"]["mean_delta_prob"],
                          "after": r["paste"]["control_after"]["mean_delta_prob"]} if r.get("paste") else None),
              _signed),
    ReportRow("positive relevance on the artifact", lambda r: r.get("artifact_relevance"), _pct),
    ReportRow("τ of the origin class", lambda r: r.get("origin_tau"), _plain),
    ReportRow("artifact cluster's best F1", lambda r: r.get("artifact_f1"), _plain),
)


def report_rows(report: Mapping[str, Any]) -> List[Tuple[str, str, str]]:
    """``(label, before, after)`` per :data:`REPORT_ROWS` entry the report has."""
    rows = []
    for row in REPORT_ROWS:
        pair = row.get(report)
        if pair is not None:
            rows.append((row.label, row.show(pair.get("before")), row.show(pair.get("after"))))
    return rows


def paste_deltas(report: Mapping[str, Any]) -> Optional[Tuple[List[float], List[float]]]:
    """Per-image Δp(origin) of the paste test, before and after, or None."""
    paste = report.get("paste") or {}
    deltas = paste.get("delta_probs")
    return (list(deltas["before"]), list(deltas["after"])) if deltas else None


def parse_concept(text: Optional[str], sizes: Mapping[str, int]) -> Optional[Tuple[str, List[int]]]:
    """``<class id>:<mask token>`` (the explorer's selection) -> ``(class id, indices)``, or None if invalid."""
    if not text or ":" not in str(text):
        return None
    cid, token = str(text).split(":", 1)
    if cid not in sizes:
        return None
    indices = decode_mask(token, sizes[cid])
    if indices is None or not len(indices):
        return None
    return cid, [int(i) for i in indices]


def concept_param(cid: str, token: str) -> str:
    return f"{cid}:{token}"


def variant_title(record) -> str:
    return f"{record.name} · {record.method} · {record.origin.get('name', '?')} · {record.layer}"


def variant_options(records: Sequence[Any]) -> List[Dict[str, str]]:
    return [{"label": variant_title(r), "value": r.id} for r in records]


def position_text(mode: Optional[str], corner: Optional[str], x, y) -> str:
    """The placement controls (the lab's: ``original``, ``corner``, ``xy``, ``random``) as
    :attr:`precompute.clarc.unhans.UnhansSpec.position` (``original``, ``random``, ``tl``, ``x,y``)."""
    if mode == "corner":
        return corner or "bl"
    if mode == "xy":
        return f"{int(x or 0)},{int(y or 0)}"
    return mode or "original"


def layer_placeholder(default: Optional[str]) -> str:
    """What a blank layer field means, naming the layer when it is known."""
    if default:
        return f"blank: {default} (the input of the last Linear)"
    return "blank: the input of the last Linear (named once the model has loaded); or NAME, NAME:input"


def default_artifact(entries: Sequence[Mapping[str, Any]], origin_name: Optional[str]) -> Optional[str]:
    """Id of the run library's artifact found in class ``origin_name`` (the correction's default), or None."""
    return next((e["id"] for e in entries if e.get("source") == "library" and e.get("class") == origin_name), None)


def artifact_options(entries: Sequence[Mapping[str, Any]], label: Callable[[Mapping[str, Any]], str],
                     origin_name: Optional[str]) -> List[Dict[str, str]]:
    """The artifact dropdown's options, the class's own library artifact first and marked as the default."""
    own = default_artifact(entries, origin_name)
    options = [{"label": label(e) + ("  ·  default" if e["id"] == own else ""), "value": e["id"]} for e in entries]
    return sorted(options, key=lambda option: option["value"] != own)


def heatmap_indices(record, n: int) -> List[int]:
    """The first ``n`` artifact samples of a variant (indices into its class of origin)."""
    return [int(i) for i in list(record.selection.get("indices") or [])[:n]]


def unhans_url(concept: Optional[str], variant: Optional[str], artifact: Optional[str] = None) -> str:
    """The page's address for a view: the artifact samples, the chosen variant and artifact."""
    params = {key: value for key, value in (("concept", concept), ("artifact", artifact), ("variant", variant))
              if value}
    return "/unhans" + ("?" + urlencode(params) if params else "")
