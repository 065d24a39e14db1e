"""``/``: every class ranked by tau, sortable, searchable and paged; a click opens the class."""
from __future__ import annotations

import dash
import dash_ag_grid as dag
from dash import Input, Output, State, callback, clientside_callback, dcc, html

from .. import data, figures, ids


COLUMNS = [
    {"field": "rank", "headerName": "#", "width": 70, "sort": "asc", "filter": "agNumberColumnFilter"},
    {"field": "name", "headerName": "class", "cellRenderer": "ClassLink", "flex": 2, "minWidth": 160,
     "filter": "agTextColumnFilter"},
    {"field": "tau", "headerName": "τ", "width": 110, "filter": "agNumberColumnFilter",
     "valueFormatter": {"function": "d3.format('.3f')(params.value)"},
     "headerTooltip": "mean Fisher separability of the k-means clusterings, k = 2..30"},
    {"field": "n", "headerName": "samples", "width": 120, "filter": "agNumberColumnFilter"},
    {"field": "accuracy", "headerName": "accuracy", "width": 125, "filter": "agNumberColumnFilter",
     "valueFormatter": {"function": "d3.format('.1%')(params.value)"}},
    {"field": "eigengap_k", "headerName": "eigengap k", "width": 135, "filter": "agNumberColumnFilter",
     "headerTooltip": "cluster count suggested by the largest relative eigengap"},
    {"field": "spectrum", "headerName": "spectrum", "cellRenderer": "SpectrumGlyph", "width": 130,
     "sortable": False, "filter": False},
    {"field": "default_clustering", "headerName": "default clustering", "flex": 1, "minWidth": 150},
]


def layout(**_query):
    rows = data.leaderboard()
    info = data.run_info()
    top = rows[0]["name"] if rows else None
    return html.Div(className="leaderboard-page", children=[
        html.Div(className="page-head", children=[
            html.Div(children=[
                html.H1("Which classes look Clever-Hans-like?"),
                html.P(className="lede", children=[
                    f"{len(rows)} classes of {info['model']}, ranked by τ: the mean separability of the "
                    "clusters of their LRP heatmaps. A high τ means the model uses clearly distinct strategies "
                    "for the class, for instance a watermark or a border, and is worth a look.",
                ]),
            ]),
            html.Div(id=ids.RUN_INFO, className="run-facts", children=[
                html.Div([html.Span("model"), html.B(info["model"])]),
                html.Div([html.Span("composite"), html.B(info["composite"])]),
                html.Div([html.Span("kNN / q"), html.B(f"{info['neighbors']} / {info['eigenvectors']}")]),
            ]),
        ]),
        dcc.Graph(id=ids.TAU_OVERVIEW, className="tau-overview", config={"displayModeBar": False},
                  figure=figures.tau_overview_figure([r["tau"] for r in rows], [r["name"] for r in rows])),
        html.Div(className="toolbar", children=[
            dcc.Input(id=ids.LEADERBOARD_SEARCH, type="search", placeholder="Search classes…", debounce=False,
                      className="search", autoComplete="off"),
            html.Span(className="hint", children=(f"Start with {top}." if top else "No finished classes yet.")),
        ]),
        dag.AgGrid(
            id=ids.LEADERBOARD,
            rowData=rows,
            columnDefs=COLUMNS,
            defaultColDef={"sortable": True, "resizable": True, "floatingFilter": False},
            dashGridOptions={"pagination": True, "paginationPageSize": 50, "animateRows": False,
                             "rowSelection": {"mode": "singleRow", "checkboxes": False, "enableClickSelection": True},
                             "tooltipShowDelay": 300, "suppressCellFocus": True, "domLayout": "autoHeight"},
            getRowId="params.data.id",
            className="ag-theme-quartz leaderboard-grid",
            style={"width": "100%"},
        ),
        dcc.Location(id=ids.NAVIGATE, refresh="callback-nav"),
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


@callback(Output(ids.NAVIGATE, "pathname"), Input(ids.LEADERBOARD, "cellClicked"),
          Input(ids.TAU_OVERVIEW, "clickData"), prevent_initial_call=True)
def open_class(cell, bar):
    """A click on a row or on a bar of the tau overview opens that class."""
    from urllib.parse import quote

    trigger = dash.ctx.triggered_id
    if trigger == ids.LEADERBOARD and cell and cell.get("colId") != "name":
        row = next((r for r in data.leaderboard() if r["id"] == cell.get("rowId")), None)
        if row:
            return f"/class/{quote(row['name'])}"
    if trigger == ids.TAU_OVERVIEW and bar and bar.get("points"):
        return f"/class/{quote(str(bar['points'][0]['customdata']))}"
    return dash.no_update
