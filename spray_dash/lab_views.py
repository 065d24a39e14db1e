"""Pure helpers of the artifact lab page: records in, plain data out."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np

from precompute.lab import Placement

from .routes import experiment_file_url

__all__ = ["placement_from_inputs", "summary_rows", "example_items", "experiment_rows", "deltas", "artifact_label"]


def placement_from_inputs(mode: str, corner: str, x, y, scale, opacity) -> Placement:
    """A validated :class:`Placement` from the page's controls."""
    return Placement(mode=mode or "original", corner=corner or "bl", x=int(x or 0), y=int(y or 0),
                     scale=float(scale or 1.0), opacity=float(1.0 if opacity is None else opacity)).validate()


def summary_rows(record: Dict) -> List[Dict[str, object]]:
    """The paper's Table 3 (paste) or Table 4 (removal) row, plus its control, for display."""
    summary = record["summary"]
    rows = []
    for arm, values in (("artifact" if record["kind"] == "paste" else "inpainted", summary),
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


def artifact_facts(entry: Optional[Dict]) -> List[tuple]:
    """(label, value) facts shown beside an artifact's preview."""
    if not entry:
        return []
    facts = [("source", entry.get("source", "")), ("class", entry.get("class") or "unknown"),
             ("size", "×".join(str(v) for v in entry.get("size", [])) or "?"),
             ("position", ", ".join(str(v) for v in entry["position"]) if entry.get("position") else "unknown")]
    if entry.get("method"):
        facts.append(("found by", entry["method"]))
    if entry.get("relevance_share") is not None:
        facts.append(("relevance inside", f"{entry['relevance_share']:.0%}"))
    return facts
