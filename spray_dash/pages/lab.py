"""``/lab``: test a Clever-Hans hypothesis live, by pasting an artifact or inpainting it away.

``?artifact=<id>&origin=<class>&removal=<class id>:<mask token>&experiment=<id>``:
the explorer links here with a proposed or cut-out artifact and the selection it came
from. Experiments run in the background (:mod:`spray_dash.jobs`) with a progress bar
and cancel. Each is saved in ``RUN/experiments`` and listed below, with CSV/JSON export.
A link opens the Un-Hans page with the artifact and the selection, to correct the model for it.
"""
from __future__ import annotations

import base64
from typing import Optional
from urllib.parse import urlencode

import dash
import dash_ag_grid as dag
from dash import Input, Output, State, callback, ctx, dcc, html, no_update

from precompute.errors import SprayError, StoreError
from precompute.lab import ARTIFACT_LIMITS

from .. import data, ids, lab_views
from .. import lab_components as parts
from ..jobs import JobState, jobs
from ..routes import artifact_url
from ..selection import decode_mask
from ..unhans_views import unhans_url
from ..url_sync import sync_url

EXPERIMENTS_PAGE_SIZE = 10
EXPERIMENTS_PAGE_SIZES = [10, 25, 50]  # AG Grid warns (#94, #95) unless the page size is one of these


def _removal_selection(text: Optional[str]):
    """``<class id>:<mask token>`` -> (class id, indices) or None (invalid values are ignored)."""
    if not isinstance(text, str) or ":" not in text:
        return None
    cid, token = text.split(":", 1)
    if not data.has_class(cid):
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
                    html.Div(id=ids.LAB_PREVIEW_BOX, className="checkerboard",
                             children=html.Img(id=ids.LAB_PREVIEW, alt="artifact")),
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
                    *parts.placement_controls(ids.LAB_PLACEMENT, ids.LAB_CORNER, ids.LAB_X, ids.LAB_Y),
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
                html.Div(className="run-row", children=parts.run_buttons(selection) + [
                    html.Button("Cancel", id=ids.LAB_CANCEL, className="button danger", n_clicks=0, disabled=True),
                ]),
                html.Div(id=ids.LAB_PROGRESS, className="progress"),
                html.Div(id=ids.LAB_MESSAGE, className="message"),
                dcc.Link("Un-Hans the model for this artifact →", id=ids.LAB_TO_UNHANS, className="button secondary",
                         href=unhans_url(removal if selection else None, None, artifact),
                         title="correct the model for the artifact (ClArC), with the selection the lab was opened "
                               "with as the artifact samples, verified before and after"),
            ]),
        ]),
        html.Div(id=ids.LAB_RESULTS, className="panel results"),
        html.Div(className="panel", children=[
            html.H3("Experiments"),
            dag.AgGrid(id=ids.LAB_EXPERIMENTS, rowData=lab_views.experiment_rows(data.experiments()),
                       columnDefs=parts.EXPERIMENT_COLUMNS, getRowId="params.data.id",
                       defaultColDef={"sortable": True, "resizable": True},
                       dashGridOptions={"domLayout": "autoHeight", "pagination": True,
                                        "paginationPageSize": EXPERIMENTS_PAGE_SIZE,
                                        "paginationPageSizeSelector": EXPERIMENTS_PAGE_SIZES,
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
        return no_update, no_update, parts.error(error)
    entry = data.save_upload(artifact, name)
    return _artifact_options(), entry["id"], parts.ok(f"{name}: {artifact.size[0]}×{artifact.size[1]} pixels")


@callback(
    Output(ids.LAB_PREVIEW, "src"),
    Output(ids.LAB_FACTS, "children"),
    Output(ids.LAB_ADJUST, "style"),
    Output(ids.LAB_ORIGIN, "value"),
    Output(ids.LAB_PLACEMENT, "value"),
    Output(ids.LAB_PLACEMENT, "options"),
    Output(ids.LAB_PREVIEW_BOX, "className"),
    Input(ids.LAB_ARTIFACT, "value"),
    State(ids.LAB_ORIGIN, "value"),
)
def show_artifact(artifact_id, origin_id):
    """Preview the artifact on a background that contrasts with it; default the class of origin
    and the placement from it; warn if it covers most of the image."""
    if not artifact_id:
        return None, parts.hint("No artifact selected."), {"display": "none"}, no_update, no_update, no_update, \
            no_update
    try:
        entry = data.artifact_entry(artifact_id)
        rgba = lab_views.decode_rgba(data.artifact_png(artifact_id))
    except (StoreError, OSError, ValueError):
        return None, parts.error("unknown artifact"), {"display": "none"}, no_update, no_update, no_update, no_update
    side = data.run_info().get("image_size")
    coverage = lab_views.artifact_coverage(rgba, entry.get("image_size") or ([side, side] if side else None))
    facts = parts.facts(lab_views.artifact_facts(entry, coverage))
    origin = origin_id
    if entry.get("class"):
        origin = next((row["id"] for row in data.class_names() if row["name"] == entry["class"]), origin_id)
    adjust = {} if entry.get("selection") else {"display": "none"}
    has_position = bool(entry.get("position"))
    placement = "original" if has_position else ("random" if entry.get("placement") == "random" else "corner")
    return (artifact_url(artifact_id), facts, adjust, origin, placement, lab_views.placement_options(has_position),
            f"checkerboard {lab_views.preview_background(rgba)}")


@callback(
    Output(ids.LAB_CORNER, "disabled"),
    Output(ids.LAB_X, "disabled"),
    Output(ids.LAB_Y, "disabled"),
    Input(ids.LAB_PLACEMENT, "value"),
)
def placement_controls(mode):
    """Only the controls that apply to the chosen placement are enabled."""
    return lab_views.placement_controls_disabled(mode)


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
        entry = data.artifact_entry(artifact_id)
        cid, token = entry["selection"].split(":", 1)
        indices = decode_mask(token, data.class_view(cid).n)
        new = data.save_proposal(cid, indices, threshold=float(threshold), shared=bool(shared))
    except (SprayError, KeyError, AttributeError, ValueError) as error:
        return no_update, no_update, parts.error(error)
    return _artifact_options(), new["id"], parts.ok(f"proposed by {new['method']}")


# ---------------------------------------------------------------------------------------------
# running experiments
# ---------------------------------------------------------------------------------------------
@callback(
    Output(ids.LAB_JOB, "data"),
    Output(ids.LAB_POLL, "disabled"),
    Output(ids.LAB_MESSAGE, "children"),
    *[Input(kind.button_id, "n_clicks") for kind in lab_views.experiment_kinds()],
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
def start(*values):
    """Check the inputs, then start the experiment of the button pressed in the background."""
    artifact_id, origin_id, mode, corner, x, y, scale, opacity, n, seed, targets, removal = \
        values[len(lab_views.experiment_kinds()):]
    kind = lab_views.kind_for_button(ctx.triggered_id)
    if kind is None or not ctx.triggered[0]["value"]:
        return no_update, no_update, no_update
    try:
        if not artifact_id:
            raise SprayError("choose or upload an artifact first")
        if not origin_id:
            raise SprayError("choose the class the artifact comes from")
        artifact = data.artifact(artifact_id)
        spec = kind.build(lab_views.LabInputs(
            origin_id=origin_id, placement=lab_views.placement_from_inputs(mode, corner, x, y, scale, opacity),
            n=int(n or 64), seed=int(seed or 0), targets=list(targets) if targets else None,
            selection=_removal_selection(removal)))
    except (SprayError, TypeError, ValueError) as error:
        return no_update, True, parts.error(error)

    def work(progress, cancel):
        return data.run_experiment(kind.runner, artifact, spec, progress=progress, cancel=cancel)

    return jobs.submit(kind.name, work), False, parts.hint(f"{kind.name} test started…")


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
    bar, state = parts.progress_bar(status), JobState(status["state"])
    if not state.finished:
        return bar, False, no_update, no_update, False, True, no_update
    rows = lab_views.experiment_rows(data.experiments())
    if state is JobState.DONE:
        return bar, True, status["result"], parts.ok("done, saved below"), True, False, rows
    message = html.Span(className="error", children="cancelled") if state is JobState.CANCELLED \
        else parts.error(status["error"])
    return bar, True, no_update, message, True, False, rows


@callback(Output(ids.LAB_MESSAGE, "children", allow_duplicate=True), Input(ids.LAB_CANCEL, "n_clicks"),
          State(ids.LAB_JOB, "data"), prevent_initial_call=True)
def cancel(_clicks, job_id):
    return parts.hint("cancelling…" if jobs.cancel(job_id) else "nothing to cancel")


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
        return parts.no_results()
    try:
        record = data.experiment(exp_id)
    except StoreError:
        return parts.no_results("That experiment does not exist.")
    return parts.results(record, lab_views.experiment_title(record))


@callback(Output(ids.LAB_URL_SYNC, "data"), Input(ids.LAB_ARTIFACT, "value"), Input(ids.LAB_ORIGIN, "value"),
          Input(ids.LAB_EXPERIMENT, "data"), State(ids.LAB_REMOVAL, "data"))
def url_for_lab(artifact_id, origin_id, exp_id, removal):
    params = {}
    if artifact_id:
        params["artifact"] = artifact_id
    if origin_id and data.has_class(origin_id):
        params["origin"] = data.class_name(origin_id)
    if removal:
        params["removal"] = removal
    if exp_id:
        params["experiment"] = exp_id
    return "/lab" + ("?" + urlencode(params) if params else "")


sync_url(ids.LAB_URL_SYNC, ids.LAB_URL_SYNC_DONE)


@callback(Output(ids.LAB_TO_UNHANS, "href"), Input(ids.LAB_ARTIFACT, "value"), State(ids.LAB_REMOVAL, "data"),
          prevent_initial_call=True)
def unhans_link(artifact_id, removal):
    """The Un-Hans page with this artifact, and the lab's selection as the artifact samples."""
    return unhans_url(removal, None, artifact_id)
