"""``/lab``: test a Clever-Hans hypothesis live, by pasting an artifact or inpainting it away.

``?artifact=<id>&origin=<class>&removal=<class id>:<mask token>&experiment=<id>``:
the explorer links here with a proposed or cut-out artifact and the selection it came
from. Experiments run in the background (:mod:`spray_dash.jobs`) with a progress bar
and cancel. Each is saved in ``RUN/experiments`` and listed below, with CSV/JSON export.
"""
from __future__ import annotations

import base64
from typing import Optional
from urllib.parse import urlencode

import dash
import dash_ag_grid as dag
from dash import Input, Output, State, callback, clientside_callback, ctx, dcc, html, no_update

from precompute.errors import SprayError
from precompute.lab import (
    ARTIFACT_LIMITS,
    PasteSpec,
    RemovalSpec,
    artifact_from_entry,
    rgba_to_png,
    run_paste_experiment,
    run_removal_experiment,
)
from precompute.store import ExperimentWriter, StoreError

from .. import data, figures, ids, lab_views
from ..lab_actions import save_proposal
from ..jobs import jobs
from ..routes import artifact_url, experiment_export_url
from ..selection import decode_mask

PLACEMENTS = [{"label": "where it was found", "value": "original"}, {"label": "corner", "value": "corner"},
              {"label": "position", "value": "xy"}, {"label": "random", "value": "random"}]
CORNERS = [{"label": name, "value": value} for name, value in
           (("bottom left", "bl"), ("bottom right", "br"), ("top left", "tl"), ("top right", "tr"))]
EXPERIMENT_COLUMNS = [
    {"field": "created", "headerName": "created", "width": 190, "sort": "desc"},
    {"field": "kind", "width": 95},
    {"field": "origin", "headerName": "class", "width": 110},
    {"field": "artifact", "flex": 1, "minWidth": 140},
    {"field": "n", "width": 75},
    {"field": "mean_delta_rank", "headerName": "μ(Δrank)", "width": 110,
     "valueFormatter": {"function": "params.value == null ? '' : d3.format('+.2f')(params.value)"}},
    {"field": "mean_delta_prob", "headerName": "μ(Δp)", "width": 100,
     "valueFormatter": {"function": "params.value == null ? '' : d3.format('+.3f')(params.value)"}},
    {"field": "flip_rate", "headerName": "flips", "width": 90,
     "valueFormatter": {"function": "params.value == null ? '' : d3.format('.0%')(params.value)"}},
    {"field": "control_delta_prob", "headerName": "control μ(Δp)", "width": 130,
     "valueFormatter": {"function": "params.value == null ? '' : d3.format('+.3f')(params.value)"}},
]


def _removal_selection(text: Optional[str]):
    """``<class id>:<mask token>`` -> (class id, indices) or None (invalid values are ignored)."""
    if not isinstance(text, str) or ":" not in text:
        return None
    cid, token = text.split(":", 1)
    if not data.store().has_class(cid):
        return None
    indices = decode_mask(token, data.class_view(cid).n)
    return (cid, indices) if indices is not None and len(indices) else None


def _artifact_options():
    return [{"label": lab_views.artifact_label(entry), "value": entry["id"]} for entry in data.artifact_entries()]


def layout(artifact: Optional[str] = None, origin: Optional[str] = None, removal: Optional[str] = None,
           experiment: Optional[str] = None, **_query):
    options = _artifact_options()
    known = {option["value"] for option in options}
    artifact = artifact if artifact in known else (options[0]["value"] if options else None)
    classes = data.class_names()
    names = {row["name"] for row in classes}
    selection = _removal_selection(removal)
    try:
        experiment = experiment if experiment and data.experiment(experiment) else None
    except StoreError:
        experiment = None
    return html.Div(className="lab-page", children=[
        dcc.Store(id=ids.LAB_JOB, data=None),
        dcc.Store(id=ids.LAB_REMOVAL, data=removal if selection else None),
        dcc.Store(id=ids.LAB_EXPERIMENT, data=experiment),
        dcc.Store(id=ids.LAB_URL_SYNC, data=None),
        dcc.Store(id=ids.LAB_URL_SYNC_DONE, data=None),
        dcc.Interval(id=ids.LAB_POLL, interval=500, disabled=True),
        html.Div(className="page-head", children=[html.Div([
            html.H1("Artifact lab"),
            html.P(className="lede", children=(
                "Test a hypothesis found by lasso. Paste the suspected artifact onto samples of other classes "
                "and watch its class of origin (the paper's Table 3 and Figure 7), or inpaint it away in the "
                "affected samples (Table 4). A control patch with the same mask and placement, in random colours, "
                "shows what any occlusion does.")),
        ])]),
        html.Div(className="lab-grid", children=[
            html.Div(className="panel", children=[
                html.H3("1 · Artifact"),
                dcc.Dropdown(id=ids.LAB_ARTIFACT, options=options, value=artifact, clearable=False,
                             placeholder="no artifact yet: upload one, or propose one from a selection"),
                dcc.Upload(id=ids.LAB_UPLOAD, className="upload", max_size=ARTIFACT_LIMITS["max_bytes"],
                           children=html.Div(["Drop an RGBA PNG here, or ", html.A("choose a file")])),
                html.Div(id=ids.LAB_UPLOAD_MESSAGE, className="message"),
                html.Div(id="lab-upload-limit", hidden=True, **{"data-bytes": str(ARTIFACT_LIMITS["max_bytes"])}),
                html.Div(className="artifact-preview", children=[
                    html.Div(className="checkerboard", children=html.Img(id=ids.LAB_PREVIEW, alt="artifact")),
                    html.Div(id=ids.LAB_FACTS, className="facts-list"),
                ]),
                html.Div(id=ids.LAB_ADJUST, className="adjust", style={"display": "none"}, children=[
                    html.H4("Adjust the proposal"),
                    html.Label(["relevance threshold", dcc.Slider(id=ids.LAB_THRESHOLD, min=0.1, max=0.9, step=0.05,
                                                                 value=0.3, marks=None,
                                                                 tooltip={"placement": "bottom"})]),
                    dcc.Checklist(id=ids.LAB_SHARED, value=["shared"], inline=True,
                                  options=[{"label": " use the pixels the selection shares", "value": "shared"}]),
                    html.Button("Propose again", id=ids.LAB_REPROPOSE, className="button secondary", n_clicks=0),
                ]),
            ]),
            html.Div(className="panel", children=[
                html.H3("2 · Experiment"),
                html.Div(className="form-grid", children=[
                    html.Label(["class of origin", dcc.Dropdown(
                        id=ids.LAB_ORIGIN, options=[{"label": r["name"], "value": r["id"]} for r in classes],
                        value=next((r["id"] for r in classes if r["name"] == origin), None) if origin in names else None,
                        clearable=False)]),
                    html.Label(["place it", dcc.Dropdown(id=ids.LAB_PLACEMENT, options=PLACEMENTS, value="original",
                                                         clearable=False, searchable=False)]),
                    html.Label(["corner", dcc.Dropdown(id=ids.LAB_CORNER, options=CORNERS, value="bl",
                                                       clearable=False, searchable=False)]),
                    html.Div(className="xy", children=[
                        html.Label(["x", dcc.Input(id=ids.LAB_X, type="number", value=0, step=1)]),
                        html.Label(["y", dcc.Input(id=ids.LAB_Y, type="number", value=0, step=1)]),
                    ]),
                    html.Label(["scale", dcc.Slider(id=ids.LAB_SCALE, min=0.25, max=3, step=0.05, value=1.0, marks=None,
                                                    tooltip={"placement": "bottom"})]),
                    html.Label(["opacity", dcc.Slider(id=ids.LAB_OPACITY, min=0, max=1, step=0.05, value=1.0,
                                                      marks=None, tooltip={"placement": "bottom"})]),
                    html.Label(["targets", dcc.Input(id=ids.LAB_N, type="number", value=64, min=1, max=5000, step=1)]),
                    html.Label(["seed", dcc.Input(id=ids.LAB_SEED, type="number", value=0, step=1)]),
                    html.Label(className="wide", children=[
                        "target classes (empty: all other classes)",
                        dcc.Dropdown(id=ids.LAB_TARGETS, multi=True,
                                     options=[{"label": r["name"], "value": r["id"]} for r in classes])]),
                ]),
                html.Div(className="run-row", children=[
                    html.Button("Run paste test", id=ids.LAB_RUN_PASTE, className="button", n_clicks=0),
                    html.Button(f"Run removal test on {len(selection[1])} selected samples" if selection
                                else "Removal test: select affected samples in the explorer first",
                                id=ids.LAB_RUN_REMOVAL, className="button secondary", n_clicks=0,
                                disabled=selection is None),
                    html.Button("Cancel", id=ids.LAB_CANCEL, className="button danger", n_clicks=0, disabled=True),
                ]),
                html.Div(id=ids.LAB_PROGRESS, className="progress"),
                html.Div(id=ids.LAB_MESSAGE, className="message"),
            ]),
        ]),
        html.Div(id=ids.LAB_RESULTS, className="panel results"),
        html.Div(className="panel", children=[
            html.H3("Experiments"),
            dag.AgGrid(id=ids.LAB_EXPERIMENTS, rowData=lab_views.experiment_rows(data.experiments()),
                       columnDefs=EXPERIMENT_COLUMNS, getRowId="params.data.id",
                       defaultColDef={"sortable": True, "resizable": True},
                       dashGridOptions={"domLayout": "autoHeight", "pagination": True, "paginationPageSize": 10,
                                        "suppressCellFocus": True},
                       className="ag-theme-quartz"),
        ]),
    ])


dash.register_page(__name__, path="/lab", name="Artifact lab", order=2, layout=layout)


# ---------------------------------------------------------------------------------------------
# the artifact
# ---------------------------------------------------------------------------------------------
@callback(
    Output(ids.LAB_ARTIFACT, "options"),
    Output(ids.LAB_ARTIFACT, "value"),
    Output(ids.LAB_UPLOAD_MESSAGE, "children"),
    Input(ids.LAB_UPLOAD, "contents"),
    State(ids.LAB_UPLOAD, "filename"),
    prevent_initial_call=True,
)
def upload(contents, filename):
    """Validate an uploaded image and keep it as an artifact draft; bad files get a message."""
    from precompute.lab import load_artifact_image

    name = str(filename or "upload")[:80]
    try:
        if not isinstance(contents, str) or "," not in contents:
            raise SprayError(f"{name}: nothing was uploaded")
        payload = base64.b64decode(contents.split(",", 1)[1], validate=False)
        artifact = load_artifact_image(payload, name=name)
    except (SprayError, ValueError) as error:
        return no_update, no_update, html.Span(className="error", children=f"⚠ {error}")
    entry = ExperimentWriter(data.store()).save_artifact_draft(
        {**artifact.meta(), "name": name.rsplit(".", 1)[0]}, rgba_to_png(artifact.rgba))
    return _artifact_options(), entry["id"], html.Span(className="ok", children=f"✓ {name}: {artifact.size[0]}×"
                                                                               f"{artifact.size[1]} pixels")


@callback(
    Output(ids.LAB_PREVIEW, "src"),
    Output(ids.LAB_FACTS, "children"),
    Output(ids.LAB_ADJUST, "style"),
    Output(ids.LAB_ORIGIN, "value"),
    Output(ids.LAB_PLACEMENT, "value"),
    Input(ids.LAB_ARTIFACT, "value"),
    State(ids.LAB_ORIGIN, "value"),
)
def show_artifact(artifact_id, origin_id):
    """Preview the artifact; default the class of origin and the placement from it."""
    if not artifact_id:
        return None, html.Span(className="hint", children="No artifact selected."), {"display": "none"}, \
            no_update, no_update
    try:
        entry = data.store().artifact_entry(artifact_id)
    except StoreError:
        return None, html.Span(className="error", children="⚠ unknown artifact"), {"display": "none"}, \
            no_update, no_update
    facts = [html.Div(className="fact-row", children=[html.Span(k), html.B(v)])
             for k, v in lab_views.artifact_facts(entry)]
    origin = origin_id
    if entry.get("class"):
        origin = next((row["id"] for row in data.class_names() if row["name"] == entry["class"]), origin_id)
    adjust = {} if entry.get("selection") else {"display": "none"}
    placement = "original" if entry.get("position") else "corner"
    return artifact_url(artifact_id), facts, adjust, origin, placement


@callback(
    Output(ids.LAB_ARTIFACT, "options", allow_duplicate=True),
    Output(ids.LAB_ARTIFACT, "value", allow_duplicate=True),
    Output(ids.LAB_UPLOAD_MESSAGE, "children", allow_duplicate=True),
    Input(ids.LAB_REPROPOSE, "n_clicks"),
    State(ids.LAB_ARTIFACT, "value"),
    State(ids.LAB_THRESHOLD, "value"),
    State(ids.LAB_SHARED, "value"),
    prevent_initial_call=True,
)
def repropose(_clicks, artifact_id, threshold, shared):
    """Recompute a proposal with other settings; it becomes a new draft."""
    try:
        entry = data.store().artifact_entry(artifact_id)
        cid, token = entry["selection"].split(":", 1)
        indices = decode_mask(token, data.class_view(cid).n)
        new = save_proposal(cid, indices, threshold=float(threshold), shared=bool(shared))
    except (SprayError, KeyError, AttributeError, ValueError) as error:
        return no_update, no_update, html.Span(className="error", children=f"⚠ {error}")
    return _artifact_options(), new["id"], html.Span(className="ok", children=f"✓ proposed by {new['method']}")


# ---------------------------------------------------------------------------------------------
# running experiments
# ---------------------------------------------------------------------------------------------
@callback(
    Output(ids.LAB_JOB, "data"),
    Output(ids.LAB_POLL, "disabled"),
    Output(ids.LAB_MESSAGE, "children"),
    Input(ids.LAB_RUN_PASTE, "n_clicks"),
    Input(ids.LAB_RUN_REMOVAL, "n_clicks"),
    State(ids.LAB_ARTIFACT, "value"),
    State(ids.LAB_ORIGIN, "value"),
    State(ids.LAB_PLACEMENT, "value"),
    State(ids.LAB_CORNER, "value"),
    State(ids.LAB_X, "value"),
    State(ids.LAB_Y, "value"),
    State(ids.LAB_SCALE, "value"),
    State(ids.LAB_OPACITY, "value"),
    State(ids.LAB_N, "value"),
    State(ids.LAB_SEED, "value"),
    State(ids.LAB_TARGETS, "value"),
    State(ids.LAB_REMOVAL, "data"),
    prevent_initial_call=True,
)
def start(_paste, _removal, artifact_id, origin_id, mode, corner, x, y, scale, opacity, n, seed, targets, removal):
    """Check the inputs, then start the experiment in the background."""
    if not ctx.triggered[0]["value"]:
        return no_update, no_update, no_update
    kind = "paste" if ctx.triggered_id == ids.LAB_RUN_PASTE else "removal"
    store = data.store()
    try:
        if not artifact_id:
            raise SprayError("choose or upload an artifact first")
        if not origin_id:
            raise SprayError("choose the class the artifact comes from")
        artifact = artifact_from_entry(store, artifact_id)
        placement = lab_views.placement_from_inputs(mode, corner, x, y, scale, opacity)
        if kind == "paste":
            spec = PasteSpec(origin_id=origin_id, placement=placement, n=int(n or 64), seed=int(seed or 0),
                             target_ids=list(targets) if targets else None)
            if not 1 <= spec.n <= 5000:
                raise SprayError("the number of targets must be between 1 and 5000")
        else:
            selection = _removal_selection(removal)
            if selection is None:
                raise SprayError("select affected samples in the explorer first")
            spec = RemovalSpec(class_id=selection[0], indices=[int(i) for i in selection[1]], placement=placement,
                               seed=int(seed or 0))
    except (SprayError, TypeError, ValueError) as error:
        return no_update, True, html.Span(className="error", children=f"⚠ {error}")

    def work(progress, cancel):
        from precompute.lab import ModelSession  # torch loads with the first experiment, not with the app

        session = ModelSession.for_store(store)
        runner = run_paste_experiment if kind == "paste" else run_removal_experiment
        record, files = runner(store, session, artifact, spec, progress=progress, cancel=cancel)
        ExperimentWriter(store).save_experiment(record, files)
        return record["id"]

    return jobs.submit(kind, work), False, html.Span(className="hint", children=f"{kind} test started…")


@callback(
    Output(ids.LAB_PROGRESS, "children"),
    Output(ids.LAB_POLL, "disabled", allow_duplicate=True),
    Output(ids.LAB_EXPERIMENT, "data"),
    Output(ids.LAB_MESSAGE, "children", allow_duplicate=True),
    Output(ids.LAB_CANCEL, "disabled"),
    Output(ids.LAB_RUN_PASTE, "disabled"),
    Output(ids.LAB_EXPERIMENTS, "rowData"),
    Input(ids.LAB_POLL, "n_intervals"),
    State(ids.LAB_JOB, "data"),
    prevent_initial_call=True,
)
def poll(_n, job_id):
    """Show the job's progress; when it ends, show its experiment."""
    status = jobs.status(job_id)
    if status is None:
        return "", True, no_update, no_update, True, False, no_update
    done, total = status["done"], max(status["total"], 1)
    bar = html.Div(className="progress-track", children=[
        html.Div(className="progress-fill", style={"width": f"{100 * done / total:.0f}%"}),
        html.Span(className="progress-text", children=f"{status['state']} · {done}/{status['total'] or '?'}"),
    ])
    if status["state"] in ("queued", "running"):
        return bar, False, no_update, no_update, False, True, no_update
    rows = lab_views.experiment_rows(data.experiments())
    if status["state"] == "done":
        return bar, True, status["result"], html.Span(className="ok", children="✓ done, saved below"), True, False, rows
    message = "cancelled" if status["state"] == "cancelled" else f"⚠ {status['error']}"
    return bar, True, no_update, html.Span(className="error", children=message), True, False, rows


@callback(Output(ids.LAB_MESSAGE, "children", allow_duplicate=True), Input(ids.LAB_CANCEL, "n_clicks"),
          State(ids.LAB_JOB, "data"), prevent_initial_call=True)
def cancel(_clicks, job_id):
    return html.Span(className="hint", children="cancelling…" if jobs.cancel(job_id) else "nothing to cancel")


# ---------------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------------
@callback(Output(ids.LAB_EXPERIMENT, "data", allow_duplicate=True), Input(ids.LAB_EXPERIMENTS, "cellClicked"),
          prevent_initial_call=True)
def open_experiment(cell):
    return cell.get("rowId") if cell else no_update


@callback(Output(ids.LAB_RESULTS, "children"), Input(ids.LAB_EXPERIMENT, "data"))
def show_results(exp_id):
    """Table 3 or 4 row with its control, a histogram of the changes, and Figure-7 examples."""
    if not exp_id:
        return html.Div(className="empty-gallery", children="Results appear here when an experiment has run.")
    try:
        record = data.experiment(exp_id)
    except StoreError:
        return html.Div(className="empty-gallery", children="That experiment does not exist.")
    paste = record["kind"] == "paste"
    subject = f"p({record['origin']['name']})"
    header = html.Tr([html.Th(h) for h in ("", "samples", "μ(Δ rank)", f"μ(Δ {subject})",
                                            f"now predicted {record['origin']['name']}")])
    body = [html.Tr(className=f"arm-{row['arm']}", children=[
        html.Td(row["arm"]), html.Td(row["n"]), html.Td(f"{row['mean_delta_rank']:+.2f}"),
        html.Td(f"{row['mean_delta_prob']:+.3f}"), html.Td(f"{row['flip_rate']:.0%}"),
    ]) for row in lab_views.summary_rows(record)]
    changes = lab_views.deltas(record)
    examples = [html.Div(className="example", children=[
        html.Div(className="example-pair", children=[
            html.Figure([html.Img(src=item["before"]), html.Figcaption(f"before · p={item['prob_before']:.2f}")]),
            html.Figure([html.Img(src=item["before_heat"]), html.Figcaption("relevance")]),
            html.Figure([html.Img(src=item["after"]), html.Figcaption(f"after · p={item['prob_after']:.2f}")]),
            html.Figure([html.Img(src=item["after_heat"]), html.Figcaption("relevance")]),
        ]),
        html.Div(className="example-caption", children=f"{item['class']} #{item['index']}"),
    ]) for item in lab_views.example_items(record)]
    title = (f"Pasting {record['artifact']['name']} onto other classes" if paste
             else f"Removing {record['artifact']['name']} from {record['origin']['name']} samples")
    return [
        html.Div(className="panel-head", children=[
            html.H2(title),
            html.Div(className="export", children=[
                html.A("⇩ CSV", href=experiment_export_url(exp_id, "csv"), download="", className="button"),
                html.A("⇩ JSON", href=experiment_export_url(exp_id, "json"), download="", className="button"),
            ]),
        ]),
        html.P(className="hint", children=(
            f"Relevance maps are computed w.r.t. {record['origin']['name']}, the class of origin. "
            "Δ rank > 0: the class moved towards rank 1.")),
        html.Div(className="results-grid", children=[
            html.Table(id="lab-summary", className="results-table", children=[html.Thead(header), html.Tbody(body)]),
            dcc.Graph(figure=figures.delta_histogram(changes["artifact"], changes["control"], label=f"Δ {subject}"),
                      config={"displayModeBar": False}),
        ]),
        html.H3("Examples (the paper's Figure 7)"),
        html.Div(className="examples", children=examples),
    ]


@callback(Output(ids.LAB_URL_SYNC, "data"), Input(ids.LAB_ARTIFACT, "value"), Input(ids.LAB_ORIGIN, "value"),
          Input(ids.LAB_EXPERIMENT, "data"), State(ids.LAB_REMOVAL, "data"))
def url_for_lab(artifact_id, origin_id, exp_id, removal):
    params = {}
    if artifact_id:
        params["artifact"] = artifact_id
    if origin_id and data.store().has_class(origin_id):
        params["origin"] = data.store().class_info(origin_id)["name"]
    if removal:
        params["removal"] = removal
    if exp_id:
        params["experiment"] = exp_id
    return "/lab" + ("?" + urlencode(params) if params else "")


clientside_callback(
    """function (url) {
        if (url && window.location.pathname + window.location.search !== url) {
            window.history.replaceState(window.history.state, "", url);
        }
        return window.dash_clientside.no_update;
    }""",
    Output(ids.LAB_URL_SYNC_DONE, "data"),
    Input(ids.LAB_URL_SYNC, "data"),
    prevent_initial_call=True,
)
