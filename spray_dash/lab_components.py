"""Pure builders of the artifact lab's components: records and view models in, Dash components out.

No callbacks and no disk: :mod:`spray_dash.pages.lab` reads through :mod:`spray_dash.data`
and hands plain data to these functions.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

from dash import dcc, html

from . import figures, lab_views
from .routes import experiment_export_url

__all__ = ["CORNERS", "EXPERIMENT_COLUMNS", "run_buttons", "facts", "progress_bar", "results", "no_results",
           "error", "ok", "hint"]

CORNERS = [{"label": name, "value": value} for name, value in
           (("bottom left", "bl"), ("bottom right", "br"), ("top left", "tl"), ("top right", "tr"))]
_SIGNED_2 = {"function": "params.value == null ? '' : d3.format('+.2f')(params.value)"}
_SIGNED_3 = {"function": "params.value == null ? '' : d3.format('+.3f')(params.value)"}
EXPERIMENT_COLUMNS = [
    {"field": "created", "headerName": "created", "width": 190, "sort": "desc"},
    {"field": "kind", "width": 95},
    {"field": "origin", "headerName": "class", "width": 110},
    {"field": "artifact", "flex": 1, "minWidth": 140},
    {"field": "n", "width": 75},
    {"field": "mean_delta_rank", "headerName": "μ(Δrank)", "width": 110, "valueFormatter": _SIGNED_2},
    {"field": "mean_delta_prob", "headerName": "μ(Δp)", "width": 100, "valueFormatter": _SIGNED_3},
    {"field": "flip_rate", "headerName": "flips", "width": 90,
     "valueFormatter": {"function": "params.value == null ? '' : d3.format('.0%')(params.value)"}},
    {"field": "control_delta_prob", "headerName": "control μ(Δp)", "width": 130, "valueFormatter": _SIGNED_3},
]


def error(text: str):
    return html.Span(className="error", children=f"⚠ {text}")


def ok(text: str):
    return html.Span(className="ok", children=f"✓ {text}")


def hint(text: str):
    return html.Span(className="hint", children=text)


def run_buttons(selection: Optional[Tuple[str, object]]) -> List:
    """One run button per experiment kind, in the registry's order."""
    buttons = []
    for kind in lab_views.experiment_kinds():
        text, disabled = kind.button(selection)
        buttons.append(html.Button(text, id=kind.button_id, className=kind.button_class, n_clicks=0,
                                   disabled=disabled))
    return buttons


def facts(rows: Sequence[tuple]) -> List:
    """The artifact's facts (:func:`spray_dash.lab_views.artifact_facts`), a ``warning`` row marked."""
    return [html.Div(className="fact-row warning" if label == "warning" else "fact-row",
                     children=[html.Span(label), html.B(value)]) for label, value in rows]


def progress_bar(status: Dict[str, object]):
    """A job's progress (``status`` from :meth:`spray_dash.jobs.JobManager.status`), with what runs now if the
    job says (its ``text``): then the bar counts in per cent, else in the job's own steps."""
    done, total = status["done"], max(status["total"], 1)
    text = status.get("text")
    count = f"{100 * done / total:.0f} %" if text else f"{done}/{status['total'] or '?'}"
    return html.Div(className="progress-track", children=[
        html.Div(className="progress-fill", style={"width": f"{100 * done / total:.0f}%"}),
        html.Span(className="progress-text", children=" · ".join(
            dict.fromkeys(filter(None, (status["state"], text, count))))),  # "done" once, not "done · done"
    ])


def no_results(text: str = "Results appear here when an experiment has run."):
    return html.Div(className="empty-gallery", children=text)


def results(record: Dict, title: str) -> List:
    """Table 3 or 4 row with its control, a histogram of the changes, and Figure-7 examples."""
    exp_id, origin = record["id"], record["origin"]["name"]
    subject = f"p({origin})"
    header = html.Tr([html.Th(h) for h in ("", "samples", "μ(Δ rank)", f"μ(Δ {subject})", f"now predicted {origin}")])
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
    return [
        html.Div(className="panel-head", children=[
            html.H2(title),
            html.Div(className="export", children=[
                html.A("⇩ CSV", href=experiment_export_url(exp_id, "csv"), download="", className="button"),
                html.A("⇩ JSON", href=experiment_export_url(exp_id, "json"), download="", className="button"),
            ]),
        ]),
        html.P(className="hint", children=(
            f"Relevance maps are computed w.r.t. {origin}, the class of origin. "
            "Δ rank > 0: the class moved towards rank 1.")),
        html.Div(className="results-grid", children=[
            html.Table(id="lab-summary", className="results-table", children=[html.Thead(header), html.Tbody(body)]),
            dcc.Graph(figure=figures.delta_histogram(changes["artifact"], changes["control"], label=f"Δ {subject}"),
                      config={"displayModeBar": False}),
        ]),
        html.H3("Examples (the paper's Figure 7)"),
        html.Div(className="examples", children=examples),
    ]


def placement_controls(placement_id: str, corner_id: str, x_id: str, y_id: str) -> List:
    """Where to paste an artifact: the placement, its corner and its x, y (those that do not apply disabled)."""
    corner_off, x_off, y_off = lab_views.placement_controls_disabled("original")
    return [
        html.Label(["place it", dcc.Dropdown(id=placement_id, options=lab_views.PLACEMENTS, value="original",
                                             clearable=False, searchable=False)]),
        html.Label(["corner", dcc.Dropdown(id=corner_id, options=CORNERS, value="bl", clearable=False,
                                           searchable=False, disabled=corner_off)]),
        html.Div(className="xy", children=[
            html.Label(["x", dcc.Input(id=x_id, type="number", value=0, step=1, disabled=x_off)]),
            html.Label(["y", dcc.Input(id=y_id, type="number", value=0, step=1, disabled=y_off)]),
        ]),
    ]
