"""Un-Hans page (``/unhans``): correct the model for an artifact (ClArC) and compare variants.

The artifact samples come from the explorer's selection (``?concept=<class id>:<mask token>``)
or from a stored cluster. A correction runs as a background job
(:func:`spray_dash.data.run_unhans`, i.e. :func:`precompute.clarc.unhans.run_unhans`) and is
stored as a model variant of the run; the page lists the variants (``?variant=<id>``) with
their before/after report, the paste test's histograms, live heatmaps of the original and the
corrected model, and the cleaning list's highest-scoring samples of other classes.
"""
from __future__ import annotations

import base64
from typing import Optional
from urllib.parse import urlencode

import dash
from dash import Input, Output, State, callback, ctx, dcc, html, no_update

from precompute.errors import SprayError, StoreError

from .. import data, figures, ids
from .. import lab_components as parts
from .. import lab_views
from .. import unhans_views as views
from ..jobs import JobState, jobs
from ..routes import thumb_url, variant_cleaning_url, variant_zip_url
from ..url_sync import sync_url

HEATMAP_SAMPLES = 6


def _sizes():
    return {row["id"]: int(row["n"]) for row in data.leaderboard()}


def _known_variant(variant_id: Optional[str]) -> Optional[str]:
    try:
        return data.variant(variant_id).id if variant_id else None
    except StoreError:
        return None


def layout(concept: Optional[str] = None, variant: Optional[str] = None, **_query):
    parsed = views.parse_concept(concept, _sizes())
    classes = data.class_names()
    origin = parsed[0] if parsed else (classes[0]["id"] if classes else None)
    sources = [{"label": "a stored cluster", "value": "cluster"}]
    if parsed:
        sources.insert(0, {"label": f"the explorer's selection ({len(parsed[1])} samples)", "value": "selection"})
    default_clustering = data.class_view(origin).summary.get("default_clustering") if origin else None
    artifacts = [{"label": "the run's artifact of the class (default)", "value": ""}] + [
        {"label": lab_views.artifact_label(entry), "value": entry["id"]} for entry in data.artifact_entries()]
    return html.Div(className="lab-page", children=[
        dcc.Store(id=ids.UNHANS_JOB, data=None),
        dcc.Store(id=ids.UNHANS_CONCEPT, data=concept if parsed else None),
        dcc.Store(id=ids.UNHANS_VARIANT, data=_known_variant(variant)),
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
            html.Div(className="panel", children=[
                html.H3("1 · Artifact samples"),
                html.Label("class"),
                dcc.Dropdown(id=ids.UNHANS_ORIGIN, value=origin, clearable=False, disabled=bool(parsed),
                             options=[{"label": row["name"], "value": row["id"]} for row in classes]),
                html.Label("from"),
                dcc.RadioItems(id=ids.UNHANS_SOURCE, options=sources, value=sources[0]["value"]),
                html.Div(className="inline-inputs", children=[
                    dcc.Input(id=ids.UNHANS_CLUSTERING, type="text", value=default_clustering or "",
                              placeholder="clustering, e.g. kmeans_lead-k2"),
                    dcc.Input(id=ids.UNHANS_CLUSTER, type="number", value=1, min=0, step=1),
                ]),
            ]),
            html.Div(className="panel", children=[
                html.H3("2 · Correction"),
                dcc.RadioItems(id=ids.UNHANS_METHOD, value="pclarc",
                               options=[{"label": text, "value": name} for name, text in views.METHODS.items()]),
                html.Label("layer"),
                dcc.Input(id=ids.UNHANS_LAYER, type="text", value="",
                          placeholder="default: the input of the last Linear (or NAME, NAME:input)"),
                html.Label("concept direction"),
                dcc.RadioItems(id=ids.UNHANS_CAV, value="signal",
                               options=[{"label": text, "value": name} for name, text in views.CAV_CHOICES.items()]),
                html.Label("artifact (pasted by A-ClArC, used by the verification)"),
                dcc.Dropdown(id=ids.UNHANS_ARTIFACT, options=artifacts, value="", clearable=False),
                html.Div(className="inline-inputs", children=[
                    html.Label(["fine-tuning epochs ", dcc.Input(id=ids.UNHANS_EPOCHS, type="number", value=10,
                                                                  min=1, max=100, step=1)]),
                    html.Label(["name ", dcc.Input(id=ids.UNHANS_NAME, type="text", value="",
                                                    placeholder="optional")]),
                ]),
                html.Div(className="run-row", children=[
                    html.Button("Correct and verify", id=ids.UNHANS_RUN, className="button accent", n_clicks=0),
                    html.Button("Cancel", id=ids.UNHANS_CANCEL, className="button secondary", n_clicks=0,
                                disabled=True),
                ]),
                html.Div(id=ids.UNHANS_PROGRESS),
                html.Div(id=ids.UNHANS_MESSAGE, className="message"),
            ]),
        ]),
        html.Div(className="panel", children=[
            html.H3("3 · Model variants"),
            dcc.Dropdown(id=ids.UNHANS_VARIANTS, options=views.variant_options(data.variants()),
                         value=_known_variant(variant), placeholder="no variant yet"),
            html.Div(id=ids.UNHANS_REPORT),
            html.Button("Show heatmaps: original vs corrected", id=ids.UNHANS_SHOW_HEATMAPS,
                        className="button secondary", n_clicks=0),
            html.Div(id=ids.UNHANS_HEATMAPS, className="examples"),
        ]),
    ])


dash.register_page(__name__, path="/unhans", name="Un-Hans", order=3, layout=layout)


def _selection(concept, source, origin, clustering, cluster):
    """``(origin id, indices, source text)`` from the page's inputs; SprayError when they do not say."""
    if source == "selection":
        parsed = views.parse_concept(concept, _sizes())
        if parsed is None:
            raise SprayError("the explorer's selection is gone; choose a stored cluster")
        return parsed[0], parsed[1], "explorer selection"
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
    State(ids.UNHANS_EPOCHS, "value"),
    State(ids.UNHANS_NAME, "value"),
    prevent_initial_call=True,
)
def start(clicks, concept, source, origin, clustering, cluster, method, layer, cav, artifact, epochs, name):
    """Check the inputs, then correct and verify in the background (torch loads now, not before)."""
    if not clicks:
        return no_update, no_update, no_update
    try:
        origin_id, indices, text = _selection(concept, source, origin, clustering, cluster)
        spec = data.unhans_spec(origin_id=origin_id, indices=indices, source=text, method=method,
                                layer=str(layer or "").strip() or None, cav=cav, artifact=artifact or None,
                                epochs=int(epochs or 10), name=str(name or "").strip() or None)
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
    Input(ids.UNHANS_POLL, "n_intervals"),
    State(ids.UNHANS_JOB, "data"),
    prevent_initial_call=True,
)
def poll(_n, job_id):
    """Show the job's progress; when it ends, list and open its variant."""
    status = jobs.status(job_id)
    if status is None:
        return "", True, no_update, no_update, no_update, True, False
    bar, state = parts.progress_bar(status), JobState(status["state"])
    if not state.finished:
        return bar, False, no_update, no_update, no_update, False, True
    options = views.variant_options(data.variants())
    if state is JobState.DONE:
        return bar, True, options, status["result"], parts.ok("done: the variant is saved"), True, False
    message = parts.error("cancelled") if state is JobState.CANCELLED else parts.error(status["error"])
    return bar, True, options, no_update, message, True, False


@callback(Output(ids.UNHANS_MESSAGE, "children", allow_duplicate=True), Input(ids.UNHANS_CANCEL, "n_clicks"),
          State(ids.UNHANS_JOB, "data"), prevent_initial_call=True)
def cancel(_clicks, job_id):
    return parts.hint("cancelling…" if jobs.cancel(job_id) else "nothing to cancel")


@callback(Output(ids.UNHANS_VARIANT, "data"), Input(ids.UNHANS_VARIANTS, "value"), prevent_initial_call=True)
def choose_variant(variant_id):
    return variant_id


def _report(record):
    rows = views.report_rows(record.report)
    table = html.Table(id="unhans-summary", className="results-table", children=[
        html.Thead(html.Tr([html.Th("figure"), html.Th("original model"), html.Th("corrected")])),
        html.Tbody([html.Tr([html.Td(label), html.Td(before), html.Td(after)]) for label, before, after in rows]),
    ])
    deltas = views.paste_deltas(record.report)
    histogram = dcc.Graph(figure=figures.delta_histogram(*deltas, names=("original model", "corrected")),
                          config={"displayModeBar": False}) if deltas else None
    cleaning = views.cleaning_elsewhere(data.variant_cleaning(record.id), record.origin.get("name"))
    tiles = [html.A(href=f"/class/{row['class']}", className="gallery-tile", title=f"{row['path']} · "
                    f"score {row['score']:.2f}", children=[
                        html.Img(src=thumb_url(row["class_id"], "image", row["index"])),
                        html.Span(className="tile-caption", children=f"{row['class']} · {row['score']:.1f}")])
             for row in cleaning]
    eval_data = record.report.get("eval_data") or {}
    return [
        html.P(className="hint", children=f"{views.variant_title(record)} · {record.selection.get('n')} artifact "
               f"samples ({record.selection.get('source')}) · measured on {eval_data.get('n', '?')} held-out "
               f"images · {record.seconds or 0:.0f} s"),
        html.Div(className="results-grid", children=[table, histogram]),
        html.H4("The same artifact elsewhere: highest cleaning scores in other classes"),
        html.Div(id="unhans-cleaning", className="gallery", children=tiles),
        html.Div(className="export", children=[
            html.A("cleaning list (CSV)", href=variant_cleaning_url(record.id), className="link-button"),
            html.A("export the variant (zip)", href=variant_zip_url(record.id), className="link-button"),
        ]),
    ]


@callback(Output(ids.UNHANS_REPORT, "children"), Output(ids.UNHANS_HEATMAPS, "children"),
          Input(ids.UNHANS_VARIANT, "data"))
def show_variant(variant_id):
    if not variant_id:
        return parts.no_results("Run a correction, or choose a variant above."), []
    try:
        record = data.variant(variant_id)
    except StoreError:
        return parts.no_results("That variant does not exist."), []
    return _report(record), []


def _data_uri(webp: bytes) -> str:
    return "data:image/webp;base64," + base64.b64encode(webp).decode()


@callback(Output(ids.UNHANS_HEATMAPS, "children", allow_duplicate=True), Input(ids.UNHANS_SHOW_HEATMAPS, "n_clicks"),
          State(ids.UNHANS_VARIANT, "data"), prevent_initial_call=True)
def show_heatmaps(clicks, variant_id):
    """Heatmaps of a few artifact samples w.r.t. the origin class: the run's model beside the corrected one."""
    if not clicks or not variant_id:
        return no_update
    try:
        record = data.variant(variant_id)
        indices = list(record.selection.get("indices", []))[:HEATMAP_SAMPLES]
        triples = data.variant_heatmaps(record.id, record.origin["id"], indices)
    except SprayError as error:
        return parts.error(error)
    def figure(src, caption):
        return html.Figure([html.Img(src=_data_uri(src)), html.Figcaption(caption)])

    return [html.Div(className="example", children=[
        html.Div(className="example-pair", style={"gridTemplateColumns": "repeat(3, 1fr)"}, children=[
            figure(image, f"sample {index}"), figure(before, "original model"), figure(after, "corrected")])])
        for index, (image, before, after) in zip(indices, triples)]


@callback(Output(ids.UNHANS_URL_SYNC, "data"), Input(ids.UNHANS_VARIANT, "data"), State(ids.UNHANS_CONCEPT, "data"))
def url_for_page(variant_id, concept):
    params = {key: value for key, value in (("concept", concept), ("variant", variant_id)) if value}
    return "/unhans" + ("?" + urlencode(params) if params else "")


sync_url(ids.UNHANS_URL_SYNC, ids.UNHANS_URL_SYNC_DONE)


@callback(Output(ids.UNHANS_CLUSTERING, "value"), Input(ids.UNHANS_ORIGIN, "value"), prevent_initial_call=True)
def default_clustering(origin):
    return data.class_view(origin).summary.get("default_clustering") or "" if origin and ctx.triggered else no_update
