"""The cleaning list: every sample of the run scored by its activation along the CAV.

A high score means the sample's activations lie far along the artifact direction, past
the clean reference: it probably carries the artifact. High scores in *other* classes
are the same artifact elsewhere; the CSV (``path,class,score,in_selection``) is what a
user relabels or drops samples from.
"""
from __future__ import annotations

import csv
import io
from typing import Callable, Dict, List, Optional, Sequence

from ..store import RunStore
from .concept import Concept
from .layers import LayerRef, capture_activations

__all__ = ["CLEANING_COLUMNS", "cleaning_rows", "cleaning_csv"]

CLEANING_COLUMNS = ("path", "class", "score", "in_selection")


def cleaning_rows(store: RunStore, model, concept: Concept, origin_id: str, selection: Sequence[int], *,
                  normalization: str, device, batch_size: int = 64,
                  status: Optional[Callable[[str], None]] = None) -> List[Dict[str, object]]:
    """Score every sample of every finished class; rows sorted by score, highest first.

    Returns
    -------
    list of dict
        ``path`` (relative to the data root), ``class`` (name), ``class_id``, ``index``
        (in its class), ``score`` (``vᵀa − r``) and ``in_selection`` (0/1).
    """
    from ..lab import model_inputs
    from ..lab.session import to_tensor

    chosen = {int(i) for i in selection}
    layer = LayerRef.parse(concept.layer)
    rows: List[Dict[str, object]] = []
    ids = store.finished_ids()
    for number, cid in enumerate(ids):
        paths = [str(p) for p in store.arrays(cid)["paths"]]
        batches = (to_tensor(model_inputs(store, paths[i:i + batch_size])) for i in range(0, len(paths), batch_size))
        scores = concept.scores(capture_activations(model, layer, batches, normalization=normalization,
                                                    device=device))
        name = store.class_info(cid)["name"]
        rows += [{"path": path, "class": name, "class_id": cid, "index": i, "score": float(scores[i]),
                  "in_selection": int(cid == origin_id and i in chosen)} for i, path in enumerate(paths)]
        if status:
            status(f"cleaning list: class {number + 1}/{len(ids)}")
    rows.sort(key=lambda row: -row["score"])
    return rows


def cleaning_csv(rows: Sequence[Dict[str, object]]) -> bytes:
    """The CSV export: ``path,class,score,in_selection``, highest score first."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CLEANING_COLUMNS)
    for row in rows:
        writer.writerow([row["path"], row["class"], f"{row['score']:.6g}", row["in_selection"]])
    return out.getvalue().encode()
