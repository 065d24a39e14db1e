"""``/``: every class ranked by tau, sortable, searchable and paged; a click opens the class."""
from __future__ import annotations

import dash
import dash_ag_grid as dag
from dash import Input, Output, State, callback, clientside_callback, dcc, html

from .. import data, figures, ids
from ..compare_views import run_columns, runs_leaderboard


# Classes without a tau (too few samples) have tau and rank null: they stay last whichever way
# those columns are sorted (sprayNullsLast, in assets/dashAgGridFunctions.js).
COLUMNS = [
    {"field": "rank", "headerName": "#", "width": 70, "sort": "asc", "filter": "agNumberColumnFilter",
     "comparator": {"function": "sprayNullsLast"},
     "valueFormatter": {"function": "params.value == null ? '—' : String(params.value)"},
     "tooltipField": "tau_note"},
    {"field": "name", "headerName": "class", "cellRenderer": "ClassLink", "flex": 2, "minWidth": 160,
     "filter": "agTextColumnFilter"},
    {"field": "tau", "headerName": "τ", "width": 160, "filter": "agNumberColumnFilter",
     "comparator": {"function": "sprayNullsLast"},
     "valueFormatter": {"function": "params.value == null ? 'too few samples' : d3.format('.3f')(params.value)"},
     "tooltipField": "tau_note", "cellClassRules": {"no-tau": "params.value == null"},
     "headerTooltip": "mean Fisher separability of the k-means clusterings, k = 2..30"},
    {"field": "n", "headerName": "samples", "width": 120, "filter": "agNumberColumnFilter"},
    {"field": "accuracy", "headerName": "accuracy", "width": 125, "filter": "agNumberColumnFilter",
     "comparator": {"function": "sprayNullsLast"},
     "valueFormatter": {"function": "params.value == null ? '—' : d3.format('.1%')(params.value)"},
     "headerTooltip": "top-1 accuracy of the model on the class's samples ('—': the run does not know the "
                      "predictions, e.g. an imported ViRelAy project)"},
    {"field": "eigengap_k", "headerName": "eigengap k", "width": 135, "filter": "agNumberColumnFilter",
     "headerTooltip": "cluster count suggested by the largest relative eigengap"},
    {"field": "spectrum", "headerName": "spectrum", "cellRenderer": "SpectrumGlyph", "width": 140,
     "sortable": False, "filter": False, "cellClass": "spectrum-cell",
     "cellDataType": False},  # a list drawn by its renderer: no inferred "object" type (AG Grid warning #48)
    {"field": "default_clustering", "headerName": "default clustering", "flex": 1, "minWidth": 150},
]
# Columns of optional analyses: shown only when some class has the value (a run without masks
# or a perturbation scan shows neither column, and no error).
OPTIONAL_COLUMNS = [
    {"field": "default_separability", "headerName": "separability", "width": 140, "filter": "agNumberColumnFilter",
     "comparator": {"function": "sprayNullsLast"},
     "valueFormatter": {"function": "params.value == null ? '—' : d3.format('.3f')(params.value)"},
     "headerTooltip": "a second truth-free class score beside τ: the Fisher separability of the default clustering "
                      "(the one the explorer shows first); sort by it to rank the classes by it"},
    {"field": "right_reason", "headerName": "right reason", "width": 140, "filter": "agNumberColumnFilter",
     "comparator": {"function": "sprayNullsLast"},
     "valueFormatter": {"function": "params.value == null ? '—' : d3.format('.2f')(params.value)"},
     "tooltipValueGetter": {"function": "params.data.right_reason_chance == null ? null : "
                                        "'chance level (mask area): ' + d3.format('.2f')(params.data.right_reason_chance)"},
     "headerTooltip": "mean share of the decisive relevance (the fewest pixels holding 80 % of the positive "
                      "relevance) that lies on the object mask; low = right for the wrong reason (run --masks)"},
    {"field": "off_object_sensitivity", "headerName": "off-object", "width": 130, "filter": "agNumberColumnFilter",
     "comparator": {"function": "sprayNullsLast"},
     "valueFormatter": {"function": "params.value == null ? '—' : d3.format('.0%')(params.value)"},
     "headerTooltip": "perturbation scan: mean share of the drop in p(true) caused by occluding regions off the "
                      "object (python -m precompute perturb)"},
    {"field": "validation_in_suspect", "headerName": "val. in suspect", "width": 150,
     "filter": "agNumberColumnFilter", "comparator": {"function": "sprayNullsLast"},
     "valueFormatter": {"function": "params.value == null ? '—' : params.value + ' of ' + params.data.n_validation"},
     "tooltipValueGetter": {"function": "params.data.validation_accuracy == null ? null : 'validation accuracy ' + "
                                        "d3.format('.1%')(params.data.validation_accuracy) + (params.data."
                                        "validation_accuracy_without == null ? '' : ', without them ' + "
                                        "d3.format('.1%')(params.data.validation_accuracy_without))"},
     "headerTooltip": "validation images in the class's artifact-suspect cluster (the default clustering's "
                      "cluster separated most from the rest): they inflate the measured accuracy (run --val-data)"},
]


ANALYSIS_TAU_PREFIX = "analysis_tau_"  # spray_dash.data's leaderboard rows: tau of each added analysis


def analysis_columns(rows) -> list:
    """One τ column per analysis added with ``python -m precompute analyse`` (by distance), sortable to rank by it."""
    names = sorted({key[len(ANALYSIS_TAU_PREFIX):] for row in rows for key in row
                    if key.startswith(ANALYSIS_TAU_PREFIX)})
    return [{"field": ANALYSIS_TAU_PREFIX + name, "headerName": f"τ {name}", "width": 130,
             "filter": "agNumberColumnFilter", "comparator": {"function": "sprayNullsLast"},
             "valueFormatter": {"function": "params.value == null ? '—' : d3.format('.3f')(params.value)"},
             "headerTooltip": f"τ of the {name} analysis (the same heatmaps under the {name} distance); "
                              "sort by it to rank the classes by it, open a class to switch its explorer to it"}
            for name in names]


def columns(rows) -> list:
    """The leaderboard's columns: the fixed ones, one τ per added analysis, then each optional one some row
    has a value for."""
    return COLUMNS + analysis_columns(rows) + [column for column in OPTIONAL_COLUMNS
                                               if any(row.get(column["field"]) is not None for row in rows)]


#: With several runs served: a link to the compare page for the row's class.
COMPARE_COLUMN = {"colId": "compare", "field": "name", "headerName": "", "width": 120, "sortable": False,
                  "filter": False, "cellRenderer": "CompareLink", "pinned": "right",
                  "headerTooltip": "this class in every served run, side by side"}


def with_other_runs(rows) -> tuple:
    """``(rows, columns)``: the primary run's rows and columns, plus tau, rank and rank change of
    every other served run (:func:`spray_dash.compare_views.runs_leaderboard`) and the compare link."""
    others = {run: data.leaderboard(run) for run in data.run_names()[1:]}
    if not others:
        return rows, columns(rows)
    return runs_leaderboard(rows, others), columns(rows) + run_columns(list(others)) + [COMPARE_COLUMN]


PAGE_SIZE = 25
PAGE_SIZES = [25, 50, 100]  # AG Grid warns (#94, #95) unless the page size is one of its selector's sizes


def layout(**_query):
    rows, column_defs = with_other_runs(data.leaderboard())
    info = data.run_info()
    top = rows[0]["name"] if rows and rows[0]["tau"] is not None else None
    return html.Div(className="leaderboard-page", children=[
        html.Div(className="page-head", children=[
            html.Div(children=[
                html.H1("Which classes look Clever-Hans-like?"),
                html.P(className="lede", children=[
                    f"{len(rows)} classes of {info['model']}, ranked by τ: the mean separability of the "
                    "clusters of their LRP heatmaps. A high τ means the model uses clearly distinct strategies "
                    "for the class, for instance a watermark or a border, and is worth a look.",
                    *([" Beside it: τ and rank of the same classes in ",
                       html.B(", ".join(data.run_names()[1:])), " (the same data, another model); ",
                       dcc.Link("compare them →", href="/compare")] if len(data.run_names()) > 1 else []),
                ]),
            ]),
            html.Div(id=ids.RUN_INFO, className="run-facts", children=[
                html.Div([html.Span("model"), html.B(info["model"])]),
                html.Div([html.Span("composite"), html.B(info["composite"])]),
                html.Div([html.Span("kNN / q"), html.B(f"{info['neighbors']} / {info['eigenvectors']}")]),
            ]),
        ]),
        tau_overview(rows),
        html.Div(className="toolbar", children=[
            dcc.Input(id=ids.LEADERBOARD_SEARCH, type="search", placeholder="Search classes…", debounce=False,
                      className="search", autoComplete="off"),
            html.Span(className="hint", children=(f"Start with {top}." if top else "No finished classes yet.")),
        ]),
        dag.AgGrid(
            id=ids.LEADERBOARD,
            rowData=rows,
            columnDefs=column_defs,
            defaultColDef={"sortable": True, "resizable": True, "floatingFilter": False},
            dashGridOptions={"pagination": True, "paginationPageSize": PAGE_SIZE,
                             "paginationPageSizeSelector": PAGE_SIZES, "animateRows": False,
                             "rowSelection": {"mode": "singleRow", "checkboxes": False, "enableClickSelection": True},
                             "tooltipShowDelay": 300, "suppressCellFocus": True, "domLayout": "autoHeight",
                             "suppressColumnVirtualisation": True},  # every served run's columns, even off screen
            getRowId="params.data.id",
            className="ag-theme-quartz leaderboard-grid",
            style={"width": "100%"},
        ),
        dcc.Location(id=ids.NAVIGATE, refresh="callback-nav"),
    ])


def _bar_title(bar) -> str:
    if bar["tau"] is None:  # classes without a tau come last, so the whole bar has none
        if bar["last_rank"] == bar["rank"]:
            return f"{bar['name']}: {bar['note']}"
        return f"{bar['last_rank'] - bar['rank'] + 1} classes with too few samples for τ; opens {bar['name']}"
    if bar["last_rank"] == bar["rank"]:
        return f"#{bar['rank']} {bar['name']}: τ = {bar['tau']:.3f}"
    last = "too few samples" if bar["tau_last"] is None else f"{bar['tau_last']:.3f}"
    return f"#{bar['rank']}–{bar['last_rank']}: τ = {bar['tau']:.3f}–{last}; opens #{bar['rank']} {bar['name']}"


def _bar_class(bar) -> str:
    return "tau-bar" + (" top" if bar["top"] else "") + (" no-tau" if bar["tau"] is None else "")


def _caption_end(rows) -> str:
    ranked = sum(row["tau"] is not None for row in rows)
    return f"rank {ranked}" + (f" · then {len(rows) - ranked} with too few samples" if ranked < len(rows) else "")


def tau_overview(rows) -> html.Div:
    """The strip of every class's tau, highest first; each bar links to its class.

    A bar shows no text: a ``dcc.Link`` without children would print its href, so
    each holds an empty span, and its ``title`` names the class and its tau.
    """
    from urllib.parse import quote

    bars = figures.tau_overview_bars([r["tau"] for r in rows], [r["name"] for r in rows],
                                     notes=[r.get("tau_note") for r in rows])
    top = bars[0]["tau"] if bars and bars[0]["tau"] is not None else None
    return html.Div(id=ids.TAU_OVERVIEW, className="tau-overview", children=[
        html.Div(className="tau-axis", children=[html.Span("τ –" if top is None else f"τ {top:.2f}"),
                                                 html.Span("0")]),
        html.Div(className="tau-bars", children=[
            dcc.Link(href=f"/class/{quote(bar['name'])}", className=_bar_class(bar), title=_bar_title(bar),
                     style={"height": f"{bar['height']}%"},
                     children=html.Span(className="tau-bar-fill", **{"aria-hidden": "true"}))
            for bar in bars
        ]),
        html.Div(className="tau-caption", children=[html.Span("rank 1"), html.Span(_caption_end(rows))]),
    ])


# Typing filters instantly, in the browser.

dash.register_page(__name__, path="/", name="Leaderboard", order=0, layout=layout)

clientside_callback(
    "function (text, options) { return Object.assign({}, options, {quickFilterText: text || ''}); }",
    Output(ids.LEADERBOARD, "dashGridOptions", allow_duplicate=True),
    Input(ids.LEADERBOARD_SEARCH, "value"),
    State(ids.LEADERBOARD, "dashGridOptions"),
    prevent_initial_call=True,
)


@callback(Output(ids.NAVIGATE, "pathname"), Input(ids.LEADERBOARD, "cellClicked"), prevent_initial_call=True)
def open_class(cell):
    """A click on a row opens that class (the name cell and the tau bars are links themselves)."""
    from urllib.parse import quote

    if cell and cell.get("colId") not in ("name", "compare"):  # those cells are links themselves
        row = next((r for r in data.leaderboard() if r["id"] == cell.get("rowId")), None)
        if row:
            return f"/class/{quote(row['name'])}"
    return dash.no_update
