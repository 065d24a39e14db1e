"""Un-Hans page (``/unhans``): correct the model for an artifact (ClArC) and compare variants.

``?concept=<class id>:<mask token>&artifact=<id>&variant=<id>``: the artifact samples come
from the explorer's or the lab's selection (``concept``) or from a stored cluster. A
correction runs as a background job (:func:`spray_dash.data.run_unhans`, i.e.
:func:`precompute.clarc.unhans.run_unhans`) and is stored as a model variant of the run;
the page lists the variants (``variant``) with their before/after report, the paste test's
histograms, the cleaning list's highest-scoring samples of other classes and, on request,
live heatmaps of the original and the corrected model. Browsing never imports torch.
"""
from __future__ import annotations

from typing import Optional

import dash
from dash import Input, Output, State, callback, dcc, html, no_update

from precompute.errors import SprayError, StoreError

from .. import data, ids, lab_views
from .. import lab_components as parts
from .. import unhans_components as components
from .. import unhans_views as views
from ..jobs import JobState, jobs
from ..url_sync import sync_url

HEATMAP_SAMPLES = 6


def _sizes():
    return {row["id"]: int(row["n"]) for row in data.leaderboard()}


def _known_variant(variant_id: Optional[str]) -> Optional[str]:
    try:
        return data.variant(variant_id).id if variant_id else None
    except StoreError:
        return None


def _class_name(cid: Optional[str]) -> Optional[str]:
    return data.class_name(cid) if cid and data.has_class(cid) else None


def layout(concept: Optional[str] = None, variant: Optional[str] = None, artifact: Optional[str] = None, **_query):
    parsed = views.parse_concept(concept, _sizes())
    classes = data.class_names()
    origin = parsed[0] if parsed else (classes[0]["id"] if classes else None)
    sources = [{"label": "a stored cluster", "value": "cluster"}]
    if parsed:
        sources.insert(0, {"label": f"the selection it was opened with ({len(parsed[1])} samples)",
                           "value": "selection"})
    default_clustering = data.class_view(origin).summary.get("default_clustering") if origin else None
    entries = data.artifact_entries()
    artifact = artifact if artifact in {entry["id"] for entry in entries} else \
        views.default_artifact(entries, _class_name(origin))
    variant = _known_variant(variant)
    return html.Div(className="lab-page", children=[
        dcc.Store(id=ids.UNHANS_JOB, data=None),
        dcc.Store(id=ids.UNHANS_CONCEPT, data=concept if parsed else None),
        dcc.Store(id=ids.UNHANS_VARIANT, data=variant),
        dcc.Store(id=ids.UNHANS_URL_SYNC, data=None),
        dcc.Store(id=ids.UNHANS_URL_SYNC_DONE, data=None),
        dcc.Interval(id=ids.UNHANS_POLL, interval=700, disabled=True),
        html.Div(className="page-head", children=[html.Div([
            html.H1("Un-Hans the model"),
            html.P(className="lede", children=(
                "Correct the model for an artifact it uses (Class Artifact Compensation). The artifact samples and "
                "the rest of their class define the artifact's direction in a layer; P-ClArC projects it out, "
                "A-ClArC fine-tunes with the artifact pasted into every class. Each correction is measured before "
                "and after on held-out data and kept as a model variant of the run.")),
        ])]),
        html.Div(className="lab-grid", children=[
            components.samples_panel(classes, origin, sources, default_clustering or "", locked=bool(parsed)),
            components.correction_panel(views.artifact_options(entries, lab_views.artifact_label, _class_name(origin)),
                                        artifact, views.layer_placeholder(data.default_layer())),
        ]),
        html.Div(className="panel", children=[
            html.H3("3 · Model variants"),
            dcc.Dropdown(id=ids.UNHANS_VARIANTS, options=views.variant_options(data.variants()),
                         value=variant, placeholder="no variant yet"),
            html.Div(id=ids.UNHANS_REPORT),
            html.Button("Show heatmaps: original vs corrected", id=ids.UNHANS_SHOW_HEATMAPS,
                        className="button secondary", n_clicks=0),
            html.Div(id=ids.UNHANS_HEATMAPS, className="examples"),
        ]),
    ])


dash.register_page(__name__, path="/unhans", name="Un-Hans", order=3, layout=layout)


# ---------------------------------------------------------------------------------------------
# the form
# ---------------------------------------------------------------------------------------------
@callback(Output(ids.UNHANS_CLUSTERING, "value"), Output(ids.UNHANS_ARTIFACT, "options"),
          Output(ids.UNHANS_ARTIFACT, "value"), Input(ids.UNHANS_ORIGIN, "value"), prevent_initial_call=True)
def class_defaults(origin):
    """A new class: its default clustering, and its library artifact as the artifact."""
    if not origin or not data.has_class(origin):
        return no_update, no_update, no_update
    entries, name = data.artifact_entries(), data.class_name(origin)
    return (data.class_view(origin).summary.get("default_clustering") or "",
            views.artifact_options(entries, lab_views.artifact_label, name), views.default_artifact(entries, name))


@callback(Output(ids.UNHANS_CORNER, "disabled"), Output(ids.UNHANS_X, "disabled"), Output(ids.UNHANS_Y, "disabled"),
          Input(ids.UNHANS_POSITION, "value"))
def placement_controls(mode):
    """Only the controls that apply to the chosen placement are enabled (as in the lab)."""
    return lab_views.placement_controls_disabled(mode)


# ---------------------------------------------------------------------------------------------
# running a correction
# ---------------------------------------------------------------------------------------------
def _selection(concept, source, origin, clustering, cluster):
    """``(origin id, indices, source text)`` from the page's inputs; SprayError when they do not say."""
    if source == "selection":
        parsed = views.parse_concept(concept, _sizes())
        if parsed is None:
            raise SprayError("the selection is gone; choose a stored cluster")
        return parsed[0], parsed[1], "lasso selection"
    if not origin:
        raise SprayError("choose the class")
    text = f"{str(clustering or '').strip()}/cluster-{int(cluster or 0)}"
    return origin, data.cluster_selection(origin, text), f"cluster {text}"


@callback(
    Output(ids.UNHANS_JOB, "data"),
    Output(ids.UNHANS_POLL, "disabled"),
    Output(ids.UNHANS_MESSAGE, "children"),
    Input(ids.UNHANS_RUN, "n_clicks"),
    State(ids.UNHANS_CONCEPT, "data"),
    State(ids.UNHANS_SOURCE, "value"),
    State(ids.UNHANS_ORIGIN, "value"),
    State(ids.UNHANS_CLUSTERING, "value"),
    State(ids.UNHANS_CLUSTER, "value"),
    State(ids.UNHANS_METHOD, "value"),
    State(ids.UNHANS_LAYER, "value"),
    State(ids.UNHANS_CAV, "value"),
    State(ids.UNHANS_ARTIFACT, "value"),
    State(ids.UNHANS_POSITION, "value"),
    State(ids.UNHANS_CORNER, "value"),
    State(ids.UNHANS_X, "value"),
    State(ids.UNHANS_Y, "value"),
    State(ids.UNHANS_EPOCHS, "value"),
    State(ids.UNHANS_LR, "value"),
    State(ids.UNHANS_NAME, "value"),
    prevent_initial_call=True,
)
def start(clicks, concept, source, origin, clustering, cluster, method, layer, cav, artifact, position, corner, x, y,
          epochs, lr, name):
    """Check the inputs, then correct and verify in the background (torch loads now, not before)."""
    if not clicks:
        return no_update, no_update, no_update
    try:
        origin_id, indices, text = _selection(concept, source, origin, clustering, cluster)
        spec = data.unhans_spec(origin_id=origin_id, indices=indices, source=text, method=method,
                                layer=str(layer or "").strip() or None, cav=cav, artifact=artifact or None,
                                position=views.position_text(position, corner, x, y),
                                epochs=int(epochs) if epochs else None, lr=float(lr) if lr else None,
                                name=str(name or "").strip() or None)
    except (SprayError, TypeError, ValueError) as error:
        return no_update, True, parts.error(error)

    def work(progress, cancel):
        return data.run_unhans(spec, progress=progress, cancel=cancel)

    return jobs.submit("unhans", work), False, parts.hint(f"{method} started…")


@callback(
    Output(ids.UNHANS_PROGRESS, "children"),
    Output(ids.UNHANS_POLL, "disabled", allow_duplicate=True),
    Output(ids.UNHANS_VARIANTS, "options"),
    Output(ids.UNHANS_VARIANTS, "value"),
    Output(ids.UNHANS_MESSAGE, "children", allow_duplicate=True),
    Output(ids.UNHANS_CANCEL, "disabled"),
    Output(ids.UNHANS_RUN, "disabled"),
    Output(ids.UNHANS_LAYER_HINT, "children"),
    Input(ids.UNHANS_POLL, "n_intervals"),
    State(ids.UNHANS_JOB, "data"),
    prevent_initial_call=True,
)
def poll(_n, job_id):
    """Show the job's progress; when it ends, list and open its variant."""
    status = jobs.status(job_id)
    if status is None:
        return "", True, no_update, no_update, no_update, True, False, no_update
    bar, state = parts.progress_bar(status), JobState(status["state"])
    if not state.finished:
        return bar, False, no_update, no_update, no_update, False, True, no_update
    options, hint = views.variant_options(data.variants()), views.layer_placeholder(data.default_layer())
    if state is JobState.DONE:
        return bar, True, options, status["result"], parts.ok("done: the variant is saved"), True, False, hint
    message = parts.error("cancelled") if state is JobState.CANCELLED else parts.error(status["error"])
    return bar, True, options, no_update, message, True, False, hint


@callback(Output(ids.UNHANS_MESSAGE, "children", allow_duplicate=True), Input(ids.UNHANS_CANCEL, "n_clicks"),
          State(ids.UNHANS_JOB, "data"), prevent_initial_call=True)
def cancel(_clicks, job_id):
    return parts.hint("cancelling…" if jobs.cancel(job_id) else "nothing to cancel")


# ---------------------------------------------------------------------------------------------
# the variants
# ---------------------------------------------------------------------------------------------
@callback(Output(ids.UNHANS_VARIANT, "data"), Input(ids.UNHANS_VARIANTS, "value"), prevent_initial_call=True)
def choose_variant(variant_id):
    return variant_id


@callback(Output(ids.UNHANS_REPORT, "children"), Output(ids.UNHANS_HEATMAPS, "children"),
          Input(ids.UNHANS_VARIANT, "data"))
def show_variant(variant_id):
    """The chosen variant's report (stored: no torch); its heatmaps only on request."""
    if not variant_id:
        return parts.no_results("Run a correction, or choose a variant above."), []
    try:
        record = data.variant(variant_id)
        cleaning = data.variant_cleaning_elsewhere(record.id)
    except (StoreError, OSError):
        return parts.no_results("That variant does not exist."), []
    return components.report(record, cleaning), []


@callback(Output(ids.UNHANS_HEATMAPS, "children", allow_duplicate=True), Input(ids.UNHANS_SHOW_HEATMAPS, "n_clicks"),
          State(ids.UNHANS_VARIANT, "data"), prevent_initial_call=True)
def show_heatmaps(clicks, variant_id):
    """Heatmaps of the first artifact samples w.r.t. the class of origin, the run's model beside the
    corrected one (their route computes them when the browser asks)."""
    if not clicks or not variant_id:
        return no_update
    try:
        record = data.variant(variant_id)
    except StoreError as error:
        return parts.error(error)
    return components.heatmaps(record, views.heatmap_indices(record, HEATMAP_SAMPLES))


@callback(Output(ids.UNHANS_URL_SYNC, "data"), Input(ids.UNHANS_VARIANT, "data"), Input(ids.UNHANS_ARTIFACT, "value"),
          State(ids.UNHANS_CONCEPT, "data"))
def url_for_page(variant_id, artifact, concept):
    return views.unhans_url(concept, variant_id, artifact)


sync_url(ids.UNHANS_URL_SYNC, ids.UNHANS_URL_SYNC_DONE)
