"""Flask routes serving stored images and exports by URL (never base64 in callbacks).

* ``/thumb/<class id>/<image|heatmap|mask>/<index>.webp[?run=<name>]``: a stored thumbnail (``mask``: the
  object mask's outline on transparency, where the run has masks) of the primary run or of
  another served run (the compare page);
* ``/prototype/<class id>.webp?sel=<mask token>[&analysis=gw]``: the mean heatmap of a
  selection, or under a shape analysis (GW) its medoid's heatmap;
* ``/export/<class id>.<csv|json>?sel=<mask token>&clustering=<name>``: a selection's table;
* ``/artifact/<artifact id>.png``: an artifact of the lab (library or draft);
* ``/experiment/<experiment id>/<file>``: an experiment's thumbnails;
* ``/experiment/<experiment id>.<csv|json>``: an experiment's record, per sample;
* ``/variant/<variant id>/cleaning.csv``: a model variant's cleaning list;
* ``/variant/<variant id>.zip``: a model variant (record, weights or projection, CAV, cleaning list) and how to load it;
* ``/variant/<variant id>/heatmap/<index>/<original|corrected>.webp``: a live heatmap of a sample of its class.

Only ids, kinds and indices that exist in the store are served; anything else,
including path tricks, gets a plain 404. Thumbnails and prototypes are immutable for
a given class folder, so they carry an ETag and long cache headers.
"""
from __future__ import annotations

import csv
import io
import json
import re
from typing import Optional
from urllib.parse import quote

from flask import Blueprint, Response, abort, request

from precompute.errors import StoreError
from precompute.store import MEDOID_PROTOTYPE_ANALYSES, is_class_id, parse_clustering_name

from . import data
from .selection import decode_mask, export_csv, export_json, export_rows

__all__ = ["blueprint", "thumb_url", "prototype_url", "export_url", "artifact_url", "experiment_file_url",
           "experiment_export_url", "variant_cleaning_url", "variant_zip_url", "variant_heatmap_url"]

blueprint = Blueprint("spray_routes", __name__)

_CACHE_SECONDS = 7 * 24 * 3600


def thumb_url(cid: str, kind: str, index: int, run: Optional[str] = None) -> str:
    """URL of a stored thumbnail of the primary run, or of the served run ``run``."""
    return f"/thumb/{cid}/{kind}/{int(index)}.webp" + (f"?run={quote(run)}" if run else "")


def prototype_url(cid: str, token: str, analysis: Optional[str] = None) -> str:
    """URL of a selection's prototype: its mean heatmap, or its medoid's under a shape analysis (``analysis``)."""
    return f"/prototype/{cid}.webp?sel={token}" + (f"&analysis={quote(analysis)}" if analysis else "")


def export_url(cid: str, fmt: str, token: str, clustering: str = "", analysis: Optional[str] = None) -> str:
    """URL of a selection export (``fmt`` is ``csv`` or ``json``), with the cluster labels of
    ``clustering`` in ``analysis`` (default the run's primary analysis)."""
    suffix = f"&clustering={clustering}" if clustering else ""
    suffix += f"&analysis={analysis}" if clustering and analysis else ""
    return f"/export/{cid}.{fmt}?sel={token}{suffix}"


def _class_or_404(cid: str, run: Optional[str] = None) -> str:
    if not is_class_id(cid) or (run is not None and run not in data.run_names()) or not data.has_class(cid, run):
        abort(404)
    return cid


def _cached(payload: bytes, mimetype: str, etag: str) -> Response:
    response = Response(payload, mimetype=mimetype)
    response.set_etag(etag)
    response.headers["Cache-Control"] = f"public, max-age={_CACHE_SECONDS}, immutable"
    return response.make_conditional(request)


def _class_version(cid: str, run: Optional[str] = None) -> str:
    summary = data.class_view(cid, run).summary
    return f"{summary.get('n')}-{summary.get('bytes')}"


@blueprint.route("/thumb/<cid>/<kind>/<int:index>.webp")
def thumbnail(cid: str, kind: str, index: int) -> Response:
    run = request.args.get("run") or None
    _class_or_404(cid, run)
    if kind not in ("image", "heatmap", "mask"):
        abort(404)
    try:
        payload = data.thumbnail(cid, kind, index, run)
    except StoreError:
        abort(404)
    prefix = re.sub(r"[^A-Za-z0-9._-]", "_", run) + "-" if run and run != data.run_name() else ""
    return _cached(payload, "image/webp", f"{prefix}{cid}-{_class_version(cid, run)}-{kind}-{index}")


def _selection_or_404(cid: str):
    view = data.class_view(cid)
    indices = decode_mask(request.args.get("sel", ""), view.n)
    if indices is None or indices.size == 0:
        abort(404)
    return view, indices


@blueprint.route("/prototype/<cid>.webp")
def prototype(cid: str) -> Response:
    _class_or_404(cid)
    _, indices = _selection_or_404(cid)
    analysis = request.args.get("analysis")
    try:
        if analysis in MEDOID_PROTOTYPE_ANALYSES:  # shapes at any place: the mean would smear them
            payload = data.medoid_heatmap_image(cid, tuple(int(i) for i in indices), analysis)
        else:
            payload = data.mean_heatmap_image(cid, tuple(int(i) for i in indices))
    except StoreError:
        abort(404)
    tag = f"proto-{cid}-{_class_version(cid)}-{request.args.get('sel', '')}-{analysis or ''}"
    return _cached(payload, "image/webp", tag)


def _is_clustering_name(text: str) -> bool:
    try:
        parse_clustering_name(text)
    except StoreError:
        return False
    return True


@blueprint.route("/export/<cid>.<fmt>")
def export(cid: str, fmt: str) -> Response:
    _class_or_404(cid)
    if fmt not in ("csv", "json"):
        abort(404)
    view, indices = _selection_or_404(cid)
    clustering = request.args.get("clustering", "")
    analysis = request.args.get("analysis") or None
    if analysis is not None and analysis not in data.analysis_names(cid):
        abort(404)
    labels = None
    if clustering:
        labelled = data.class_view(cid, analysis=analysis)  # the samples are the same in every analysis
        if not _is_clustering_name(clustering) or clustering not in labelled.clustering_names:
            abort(404)
        labels = labelled.clustering_labels[labelled.clustering_names.index(clustering)]
    rows = export_rows(indices, class_name=view.name, paths=view.paths, label_names=data.label_names(),
                       top_classes=view.top_classes, top_probs=view.top_probs, true_rank=view.true_rank,
                       true_prob=view.true_prob, clustering=clustering or None, cluster_labels=labels)
    filename = f"{view.name}-selection-{len(rows)}.{fmt}"
    run = data.run_name()  # never the run's path on the server
    if fmt == "csv":
        body, mimetype = export_csv(rows, run=run), "text/csv"
    else:
        body, mimetype = export_json(rows, run=run, class_id=cid, class_name=view.name), "application/json"
    response = Response(body, mimetype=mimetype)
    safe_name = re.sub(r"[^A-Za-z0-9._-]", "_", filename)
    response.headers["Content-Disposition"] = f'attachment; filename="{safe_name}"'
    return response


def artifact_url(artifact_id: str) -> str:
    """URL of an artifact's RGBA PNG."""
    return f"/artifact/{artifact_id}.png"


def experiment_file_url(exp_id: str, name: str) -> str:
    """URL of a file saved with an experiment."""
    return f"/experiment/{exp_id}/{name}"


def experiment_export_url(exp_id: str, fmt: str) -> str:
    """URL of an experiment's export (``csv`` or ``json``)."""
    return f"/experiment/{exp_id}.{fmt}"


_RECORD_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


@blueprint.route("/artifact/<artifact_id>.png")
def artifact_png(artifact_id: str) -> Response:
    if not _RECORD_ID.match(artifact_id):
        abort(404)
    try:
        payload = data.artifact_png(artifact_id)
    except (StoreError, OSError):
        abort(404)
    return _cached(payload, "image/png", f"artifact-{artifact_id}")


@blueprint.route("/experiment/<exp_id>/<name>")
def experiment_file(exp_id: str, name: str) -> Response:
    if not _RECORD_ID.match(exp_id):
        abort(404)
    try:
        payload = data.experiment_file(exp_id, name)
    except (StoreError, OSError):
        abort(404)
    mimetype = "image/webp" if name.endswith(".webp") else "image/png"
    return _cached(payload, mimetype, f"exp-{exp_id}-{name}")


@blueprint.route("/experiment/<exp_id>.<fmt>")
def experiment_export(exp_id: str, fmt: str) -> Response:
    from precompute.lab import export_rows

    if not _RECORD_ID.match(exp_id) or fmt not in ("csv", "json"):
        abort(404)
    try:
        record = data.experiment(exp_id)
    except StoreError:
        abort(404)
    run = data.run_name()  # never the run's path on the server
    if fmt == "json":
        body, mimetype = json.dumps({"run": run, **record}, indent=1), "application/json"
    else:
        rows = [{**row, "run": run} for row in export_rows(record)]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["experiment", "run"],
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        body, mimetype = buffer.getvalue(), "text/csv"
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{exp_id}.{fmt}"'
    return response


def variant_cleaning_url(variant_id: str) -> str:
    """URL of a variant's cleaning list (CSV)."""
    return f"/variant/{variant_id}/cleaning.csv"


def variant_zip_url(variant_id: str) -> str:
    """URL of a variant's export (zip)."""
    return f"/variant/{variant_id}.zip"


def variant_heatmap_url(variant_id: str, index: int, model: str) -> str:
    """URL of a live heatmap of sample ``index`` of the variant's class (``model``: original or corrected)."""
    return f"/variant/{variant_id}/heatmap/{int(index)}/{model}.webp"


#: What a variant's zip holds, in order, when the variant has it (variant.json always).
VARIANT_FILES = ("variant.json", "weights.pt", "projection.pt", "concept.pt", "cleaning.csv")


def _variant_or_404(variant_id: str):
    if not _RECORD_ID.match(variant_id):
        abort(404)
    try:
        return data.variant(variant_id)
    except StoreError:
        abort(404)


def _attachment(payload: bytes, mimetype: str, filename: str) -> Response:
    response = Response(payload, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@blueprint.route("/variant/<variant_id>/cleaning.csv")
def variant_cleaning(variant_id: str) -> Response:
    record = _variant_or_404(variant_id)
    try:
        payload = data.variant_file(record.id, "cleaning.csv")
    except (StoreError, OSError):
        abort(404)
    return _attachment(payload, "text/csv", f"{record.id}-cleaning.csv")


@blueprint.route("/variant/<variant_id>.zip")
def variant_zip(variant_id: str) -> Response:
    """The variant's files and LOADING.txt (how to load it without SpRAy Studio), as one zip."""
    import zipfile

    record = _variant_or_404(variant_id)
    buffer = io.BytesIO()
    try:
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in VARIANT_FILES:
                if name == "variant.json" or name in record.files:
                    archive.writestr(f"{record.id}/{name}", data.variant_file(record.id, name))
            archive.writestr(f"{record.id}/LOADING.txt", data.variant_loading_text(record))
    except (StoreError, OSError):
        abort(404)
    return _attachment(buffer.getvalue(), "application/zip", f"{record.id}.zip")


@blueprint.route("/variant/<variant_id>/heatmap/<int:index>/<model>.webp")
def variant_heatmap(variant_id: str, index: int, model: str) -> Response:
    """A live heatmap (the model runs on the first request; then it is cached)."""
    record = _variant_or_404(variant_id)
    if model not in data.HEATMAP_MODELS:
        abort(404)
    try:
        payload = data.variant_heatmap(record.id, index, model)
    except StoreError:
        abort(404)
    return _cached(payload, "image/webp", f"vheat-{record.id}-{record.created}-{index}-{model}")


def similar_export_url(cid: str, token: str, top: int) -> str:
    return f"/similar/{cid}.csv?sel={token}&top={int(top)}"


@blueprint.route("/similar/<cid>.csv")
def similar_export(cid: str) -> Response:
    """The "find elsewhere" results as CSV: rank, class, path, score (paths relative to the data root)."""
    _, indices = _selection_or_404(_class_or_404(cid))
    try:
        top = max(1, min(1000, int(request.args.get("top", "60"))))
        rows = data.similar(cid, [int(i) for i in indices], top=top)
    except (ValueError, StoreError):
        abort(404)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["rank", "class", "path", "score", "run"])
    for rank, row in enumerate(rows, 1):
        writer.writerow([rank, row["class"], row["path"], f"{row['score']:.6f}", data.run_name()])
    return _attachment(buffer.getvalue().encode(), "text/csv", f"similar-{cid}.csv")


_DATA_PREFIXES = ("/thumb/", "/prototype/", "/export/", "/artifact/", "/experiment/", "/variant/", "/similar/")


@blueprint.before_app_request
def only_known_resources():
    """Under the data prefixes, only this blueprint's routes answer: anything else is a 404,
    never the app's HTML page (Dash serves its page for every unknown path)."""
    if request.path.startswith(_DATA_PREFIXES) and not (request.endpoint or "").startswith(blueprint.name + "."):
        abort(404)
