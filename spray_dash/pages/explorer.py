"""``/class/<name>``: linked embedding, spectrum, cluster quick-select, gallery, prototype, export.

The URL holds the view (``?map=&dims=&color=&k=&cluster=|sel=&page=``): the layout
restores it, and every change is written back with ``history.replaceState``.
Callbacks only unpack inputs and call pure functions (:mod:`spray_dash.views`,
:mod:`spray_dash.figures`, :mod:`spray_dash.selection`).
"""
from __future__ import annotations

from typing import Optional
from urllib.parse import quote, unquote

import dash
import numpy as np
from dash import ALL, Input, Output, Patch, State, callback, clientside_callback, ctx, dcc, html, no_update

from precompute.errors import SprayError

from .. import data, figures, ids, views
from ..lab_actions import save_box, save_proposal
from ..routes import export_url, prototype_url
from ..selection import ViewState, decode_mask, encode_mask, indices_from_selected_data, page_slice, \
    parse_view_state, view_query


PER_PAGE = 48


# ---------------------------------------------------------------------------------------------
# layout
# ---------------------------------------------------------------------------------------------
def _state_from_store(view, stored: Optional[dict]) -> ViewState:
    family, k = views.default_view(view)
    return parse_view_state(stored or {}, maps=list(view.maps), families=view.families,
                            q=view.spectral.shape[1], n=view.n, default_family=family, default_k=k)


def _initial_selection(view, state: ViewState) -> dict:
    if state.sel:
        indices = decode_mask(state.sel, view.n)
        return {"token": state.sel, "count": int(len(indices)), "cluster": None}
    if state.cluster is not None:
        for group in views.groups(view, state):
            if group.key == state.cluster:
                return {"token": encode_mask(group.indices, view.n), "count": int(len(group.indices)),
                        "cluster": group.key}
    return {"token": None, "count": 0, "cluster": None}


def _not_found(name: str):
    return html.Div(className="empty-state", children=[
        html.H2("Unknown class"),
        html.P(f"“{name}” is not a finished class of this run."),
        dcc.Link("Back to the leaderboard", href="/"),
    ])


def _header(view, rank_row: Optional[dict], neighbours: tuple):
    summary = view.summary
    prev_row, next_row = neighbours
    facts = [
        ("τ", f"{summary.get('tau', 0):.3f}"),
        ("rank", f"{rank_row['rank']} / {len(data.leaderboard())}" if rank_row else "–"),
        ("samples", str(view.n)),
        ("accuracy", f"{summary.get('accuracy', 0):.1%}"),
        ("eigengap k", str(summary.get("eigengap_k"))),
        ("default", str(summary.get("default_clustering"))),
    ]
    return html.Div(className="class-head", children=[
        html.Div(className="class-title", children=[
            dcc.Link("← leaderboard", href="/", className="back-link"),
            html.H1(view.name),
        ]),
        html.Div(className="facts", children=[
            html.Div(className="fact", children=[html.Span(label), html.B(value)]) for label, value in facts
        ]),
        html.Div(className="class-nav", children=[
            dcc.Link(f"‹ {prev_row['name']}", href=f"/class/{quote(prev_row['name'])}", className="nav-prev",
                     title="higher τ") if prev_row else html.Span(),
            dcc.Link(f"{next_row['name']} ›", href=f"/class/{quote(next_row['name'])}", className="nav-next",
                     title="lower τ") if next_row else html.Span(),
        ]),
    ])


def layout(name: Optional[str] = None, **query):
    name = unquote(name or "")
    cid = data.class_id_for_name(name)
    if cid is None:
        return _not_found(name)
    view = data.class_view(cid)
    state = _state_from_store(view, query)
    selection = _initial_selection(view, state)
    rows = data.leaderboard()
    position = next((i for i, row in enumerate(rows) if row["id"] == cid), None)
    rank_row = rows[position] if position is not None else None
    neighbours = (rows[position - 1] if position else None,
                  rows[position + 1] if position is not None and position + 1 < len(rows) else None)
    spectral_style = {} if state.map == "spectral" else {"display": "none"}
    dims = views.spectral_dimension_options(view)
    return html.Div(className="explorer-page", children=[
        dcc.Store(id=ids.CLASS_ID, data=cid),
        dcc.Store(id=ids.VIEW_STATE, data=None),
        dcc.Store(id=ids.SELECTION, data=selection),
        dcc.Store(id=ids.GALLERY_PAGE, data=state.page),
        dcc.Store(id=ids.URL_SYNC, data=None),
        dcc.Store(id=ids.URL_SYNC_DONE, data=None),
        dcc.Store(id=ids.FOCUS, data=None),
        dcc.Location(id=ids.NAVIGATE_LAB, refresh="callback-nav"),
        _header(view, rank_row, neighbours),
        html.Div(className="controls", children=[
            html.Label(["view", dcc.Dropdown(id=ids.MAP_SELECT, options=views.map_options(view), value=state.map,
                                             clearable=False, searchable=False)]),
            html.Div(id=ids.SPECTRAL_DIMS, className="spectral-dims", style=spectral_style, children=[
                html.Label(["x", dcc.Dropdown(id=ids.SPECTRAL_X, options=dims, value=state.dims[0],
                                              clearable=False)]),
                html.Label(["y", dcc.Dropdown(id=ids.SPECTRAL_Y, options=dims, value=state.dims[1],
                                              clearable=False)]),
            ]),
            html.Label(className="wide", children=[
                "colour by", dcc.Dropdown(id=ids.COLOR_SELECT, options=views.color_options(view),
                                          value=state.color, clearable=False, searchable=False)]),
            html.Label(["clusters", dcc.Dropdown(id=ids.K_SELECT, options=views.k_options(view, state.color),
                                                 value=state.k, clearable=False)]),
            html.Span(className="hint", children="Lasso or box-select points; click a tile to find it in the map."),
        ]),
        html.Div(className="explorer-grid", children=[
            html.Div(className="panel embedding-panel", children=[
                dcc.Graph(id=ids.EMBEDDING, className="embedding-graph", clear_on_unhover=True,
                          config={"displaylogo": False, "scrollZoom": True,
                                  "modeBarButtonsToRemove": ["autoScale2d", "toImage"]}),
                dcc.Tooltip(id=ids.EMBEDDING_TOOLTIP, direction="right", className="point-tooltip", children=[
                    html.Div(className="tooltip-images", children=[
                        html.Img(id="tooltip-image", className="tooltip-img"),
                        html.Img(id="tooltip-heatmap", className="tooltip-img"),
                    ]),
                    html.Div(id="tooltip-caption", className="tooltip-caption"),
                ]),
            ]),
            html.Div(className="side", children=[
                html.Div(className="panel", children=[
                    html.H3("Eigenvalue spectrum"),
                    dcc.Graph(id=ids.SPECTRUM, config={"displayModeBar": False},
                              figure=figures.spectrum_figure(view.eigenvalues, int(view.summary.get("eigengap_k", 1)))),
                ]),
                html.Div(className="panel", children=[
                    html.Div(className="panel-head", children=[
                        html.H3("Groups"),
                        html.Button("clear selection", id=ids.CLEAR_SELECTION, className="link-button", n_clicks=0),
                    ]),
                    html.Div(id=ids.CLUSTER_BUTTONS, className="cluster-buttons"),
                ]),
                html.Div(className="panel selection-panel", children=[
                    html.H3("Selection"),
                    html.Div(id=ids.SELECTION_SUMMARY, className="selection-summary"),
                    html.Div(className="prototype-row", children=[
                        html.Div(id=ids.PROTOTYPE, className="prototype"),
                        html.Div(className="selection-actions", children=[
                            html.Div(id=ids.EXPORT, className="export"),
                            html.Button("Propose artifact → lab", id=ids.PROPOSE, className="button accent",
                                        n_clicks=0, disabled=not selection.get("token"),
                                        title="cut the region this selection's heatmaps share out of a sample, "
                                              "and test it in the artifact lab"),
                        ]),
                    ]),
                ]),
                html.Div(className="panel inspector-panel", children=[
                    html.H3("Sample"),
                    html.Div(id=ids.INSPECTOR, className="inspector", children=html.Span(
                        className="hint", children="Click a gallery tile to see it here; draw a box on it to cut "
                                                   "that region out as an artifact.")),
                    dcc.Graph(id=ids.INSPECTOR_GRAPH, style={"display": "none"},
                              config={"displayModeBar": False, "modeBarButtonsToAdd": ["drawrect", "eraseshape"]}),
                    html.Div(className="inspector-actions", children=[
                        html.Button("Cut box → lab", id=ids.INSPECTOR_CUT, className="button secondary", n_clicks=0,
                                    disabled=True),
                        html.Span(id=ids.INSPECTOR_MESSAGE, className="message"),
                    ]),
                ]),
            ]),
        ]),
        html.Div(className="panel gallery-panel", children=[
            html.Div(className="gallery-toolbar", children=[
                html.H3("Samples"),
                dcc.RadioItems(id=ids.GALLERY_MODE, className="segmented", value="side", inline=True,
                               options=[{"label": "side by side", "value": "side"},
                                        {"label": "overlay", "value": "overlay"},
                                        {"label": "images", "value": "image"},
                                        {"label": "heatmaps", "value": "heatmap"}]),
                html.Div(className="opacity", children=[
                    html.Span("heatmap opacity"),
                    dcc.Slider(id=ids.GALLERY_OPACITY, min=0, max=1, step=0.05, value=0.6, marks=None,
                               tooltip={"placement": "bottom"}),
                ]),
                html.Div(className="pager", children=[
                    html.Button("‹", id=ids.GALLERY_PREV, className="pager-button", n_clicks=0),
                    html.Span(id=ids.GALLERY_PAGER),
                    html.Button("›", id=ids.GALLERY_NEXT, className="pager-button", n_clicks=0),
                ]),
            ]),
            html.Div(id=ids.GALLERY, className="gallery mode-side"),
        ]),
    ])


dash.register_page(__name__, path_template="/class/<name>", name="Class explorer", order=1, layout=layout)


# ---------------------------------------------------------------------------------------------
# callbacks
# ---------------------------------------------------------------------------------------------

@callback(
    Output(ids.EMBEDDING, "figure"),
    Output(ids.CLUSTER_BUTTONS, "children"),
    Output(ids.K_SELECT, "options"),
    Output(ids.K_SELECT, "value"),
    Output(ids.K_SELECT, "disabled"),
    Output(ids.SPECTRAL_DIMS, "style"),
    Output(ids.VIEW_STATE, "data"),
    Input(ids.MAP_SELECT, "value"),
    Input(ids.SPECTRAL_X, "value"),
    Input(ids.SPECTRAL_Y, "value"),
    Input(ids.COLOR_SELECT, "value"),
    Input(ids.K_SELECT, "value"),
    State(ids.CLASS_ID, "data"),
    State(ids.SELECTION, "data"),
)
def render_embedding(map_name, dim_x, dim_y, color, k, cid, selection):
    """Draw the map for the chosen view and colouring; keep the current selection highlighted."""
    view = data.class_view(cid)
    state = _state_from_store(view, {"map": map_name, "dims": f"{dim_x},{dim_y}", "color": color, "k": k})
    coords, axes = views.coordinates(view, state)
    colors, colorbar = views.coloring(view, state)
    selected = decode_mask(selection["token"], view.n) if selection and selection.get("token") else None
    figure = figures.embedding_figure(coords, colors, colorbar=colorbar, selected=selected, axis_titles=axes,
                                      revision=f"{cid}-{state.map}-{state.dims}")
    buttons = _group_buttons(view, state, selection)
    stored = {"map": state.map, "dims": f"{state.dims[0]},{state.dims[1]}", "color": state.color, "k": state.k}
    return (figure, buttons, views.k_options(view, state.color), state.k, state.k is None,
            {} if state.map == "spectral" else {"display": "none"}, stored)


def _group_buttons(view, state: ViewState, selection: Optional[dict]):
    active = selection.get("cluster") if selection else None
    buttons = []
    for group in views.groups(view, state):
        buttons.append(html.Button(
            id={"type": ids.CLUSTER_BUTTON, "index": group.key}, n_clicks=0,
            className="cluster-button" + (" active" if active == group.key else ""),
            title=f"select {group.label}",
            children=[html.Span(className="swatch", style={"background": group.color}),
                      html.Span(group.label), html.B(f"{len(group.indices)}")],
        ))
    return buttons or html.Span(className="hint", children="No groups for this colouring.")


@callback(
    Output(ids.SELECTION, "data"),
    Output(ids.EMBEDDING, "figure", allow_duplicate=True),
    Output(ids.GALLERY_PAGE, "data", allow_duplicate=True),
    Output(ids.CLUSTER_BUTTONS, "children", allow_duplicate=True),
    Input(ids.EMBEDDING, "selectedData"),
    Input({"type": ids.CLUSTER_BUTTON, "index": ALL}, "n_clicks"),
    Input(ids.CLEAR_SELECTION, "n_clicks"),
    State(ids.CLASS_ID, "data"),
    State(ids.VIEW_STATE, "data"),
    prevent_initial_call=True,
)
def select(selected_data, _cluster_clicks, _clear, cid, stored_view):
    """A lasso/box/click selection, a group button, or "clear" sets the selection."""
    view = data.class_view(cid)
    state = _state_from_store(view, stored_view)
    trigger = ctx.triggered_id
    patch = Patch()
    cluster = None
    if trigger == ids.EMBEDDING:
        # Plotly already shows the user's own selection; touching the figure would
        # re-render it and fire a deselect event that clears the selection again.
        patch = no_update
        indices = indices_from_selected_data(selected_data, view.n)
    elif isinstance(trigger, dict) and trigger.get("type") == ids.CLUSTER_BUTTON:
        if not ctx.triggered[0]["value"]:
            return no_update, no_update, no_update, no_update
        group = next((g for g in views.groups(view, state) if g.key == trigger["index"]), None)
        if group is None:
            return no_update, no_update, no_update, no_update
        indices, cluster = group.indices, group.key
        # Only selectedpoints: clearing layout.selections here would make Plotly emit a
        # deselect event, which would clear this very selection again.
        patch["data"][0]["selectedpoints"] = [int(i) for i in indices]
    else:
        indices = None
        patch["layout"]["selections"] = []
        patch["data"][0]["selectedpoints"] = None
    if indices is None or len(indices) == 0:
        selection = {"token": None, "count": 0, "cluster": None}
    else:
        selection = {"token": encode_mask(indices, view.n), "count": int(len(indices)), "cluster": cluster}
    return selection, patch, 0, _group_buttons(view, state, selection)


@callback(
    Output(ids.GALLERY_PAGE, "data"),
    Input(ids.GALLERY_PREV, "n_clicks"),
    Input(ids.GALLERY_NEXT, "n_clicks"),
    State(ids.GALLERY_PAGE, "data"),
    prevent_initial_call=True,
)
def turn_page(_prev, _next, page):
    return max(0, (page or 0) + (1 if ctx.triggered_id == ids.GALLERY_NEXT else -1))


@callback(
    Output(ids.GALLERY, "children"),
    Output(ids.GALLERY_PAGER, "children"),
    Output(ids.GALLERY_PREV, "disabled"),
    Output(ids.GALLERY_NEXT, "disabled"),
    Output(ids.PROTOTYPE, "children"),
    Output(ids.EXPORT, "children"),
    Output(ids.SELECTION_SUMMARY, "children"),
    Input(ids.SELECTION, "data"),
    Input(ids.GALLERY_PAGE, "data"),
    Input(ids.VIEW_STATE, "data"),
    State(ids.CLASS_ID, "data"),
)
def render_gallery(selection, page, stored_view, cid):
    """Fill the gallery, prototype and export links from the selection (images load by URL)."""
    view = data.class_view(cid)
    token = selection.get("token") if selection else None
    indices = decode_mask(token, view.n) if token else None
    if indices is None or len(indices) == 0:
        hint = html.Div(className="empty-gallery", children=[
            html.B("Nothing selected yet."),
            html.Span(" Lasso a group of points in the map, or pick a group on the right."),
        ])
        return hint, "", True, True, html.Div(className="prototype-empty", children="prototype"), \
            html.Span(id=ids.EXPORT_CSV, className="hint", children="export needs a selection"), ""
    start, stop, page, pages = page_slice(len(indices), page or 0, PER_PAGE)
    items = views.gallery_items(view, indices[start:stop], data.label_names())
    tiles = [_tile(item, view.label) for item in items]
    state = _state_from_store(view, stored_view)
    clustering = views.current_clustering(state) or ""
    correct = int(np.sum(view.true_rank[indices] == 1))
    summary = [html.B(f"{len(indices)}"), f" of {view.n} samples",
               html.Span(className="muted", children=f" · {correct / len(indices):.0%} predicted correctly")]
    prototype = html.Figure(children=[
        html.Img(src=prototype_url(cid, token), alt="mean heatmap of the selection", className="prototype-img"),
        html.Figcaption("mean heatmap (prototype)"),
    ])
    export = [
        html.A("⇩ CSV", id=ids.EXPORT_CSV, href=export_url(cid, "csv", token, clustering), download="",
               className="button"),
        html.A("⇩ JSON", id=ids.EXPORT_JSON, href=export_url(cid, "json", token, clustering), download="",
               className="button"),
    ]
    return tiles, f"{start + 1}–{stop} of {len(indices)} · page {page + 1}/{pages}", page == 0, \
        page >= pages - 1, prototype, export, summary


@callback(Output(ids.PROPOSE, "disabled"), Input(ids.SELECTION, "data"))
def propose_enabled(selection):
    return not (selection and selection.get("token"))


@callback(
    # href, not pathname/search: dcc.Location prefers a changed href, and ours is stale
    # because the view's URL is kept with history.replaceState
    Output(ids.NAVIGATE_LAB, "href"),
    Output(ids.INSPECTOR_MESSAGE, "children"),
    Input(ids.PROPOSE, "n_clicks"),
    Input(ids.INSPECTOR_CUT, "n_clicks"),
    State(ids.SELECTION, "data"),
    State(ids.INSPECTOR_GRAPH, "relayoutData"),
    State(ids.FOCUS, "data"),
    State(ids.CLASS_ID, "data"),
    prevent_initial_call=True,
)
def to_lab(_propose, _cut, selection, relayout, focus, cid):
    """Make an artifact draft from the selection (proposal) or from a drawn box, and open the lab."""
    if not ctx.triggered[0]["value"]:
        return no_update, no_update
    view = data.class_view(cid)
    params = {"origin": view.name}
    try:
        if ctx.triggered_id == ids.PROPOSE:
            token = selection.get("token") if selection else None
            indices = decode_mask(token, view.n) if token else None
            if indices is None or not len(indices):
                return no_update, no_update
            entry = save_proposal(cid, indices)
            params["removal"] = f"{cid}:{token}"
        else:
            box = figures.box_from_relayout(relayout)
            if focus is None or box is None:
                return no_update, html.Span(className="error", children="Draw a box on the sample first.")
            entry = save_box(cid, int(focus), box)
    except SprayError as error:
        return no_update, html.Span(className="error", children=f"⚠ {error}")
    from urllib.parse import urlencode

    return "/lab?" + urlencode({"artifact": entry["id"], **params}), ""


@callback(
    Output(ids.INSPECTOR, "children"),
    Output(ids.INSPECTOR_GRAPH, "figure"),
    Output(ids.INSPECTOR_GRAPH, "style"),
    Output(ids.INSPECTOR_CUT, "disabled"),
    Input(ids.FOCUS, "data"),
    State(ids.CLASS_ID, "data"),
)
def inspect(focus, cid):
    """Show the clicked sample large, ready for a box to be drawn on it."""
    view = data.class_view(cid)
    if focus is None or not 0 <= int(focus) < view.n:
        return no_update, no_update, {"display": "none"}, True
    index = int(focus)
    height, width = view.summary.get("heatmap_shape", [64, 64])
    item = views.gallery_items(view, [index], data.label_names())[0]
    figure = figures.inspector_figure(item.image_url, item.heatmap_url, width, height)
    caption = html.Div(className="inspector-caption", children=[
        html.B(f"#{index} "), html.Span(item.path), html.Br(),
        html.Span(f"predicted {item.top1} ({item.top1_prob:.0%}) · true class rank {item.true_rank}"),
    ])
    return caption, figure, {"display": "block"}, False


def _tile(item: views.GalleryItem, true_label: int):
    ok = item.true_rank == 1
    return html.Div(
        id={"type": ids.GALLERY_TILE, "index": item.index}, n_clicks=0, className="gallery-tile",
        title=f"#{item.index} {item.path}\np(true) = {item.true_prob:.3f}", **{"data-index": str(item.index)},
        children=[
            html.Div(className="tile-images", children=[
                html.Img(src=item.image_url, className="tile-image", alt=item.path),
                html.Img(src=item.heatmap_url, className="tile-heatmap", alt="heatmap"),
            ]),
            html.Div(className="tile-caption", children=[
                html.Span(item.top1, className="tile-pred"),
                html.Span(f"rank {item.true_rank}", className="tile-rank " + ("ok" if ok else "bad")),
            ]),
        ],
    )


@callback(
    Output(ids.EMBEDDING, "figure", allow_duplicate=True),
    Output(ids.FOCUS, "data"),
    Input({"type": ids.GALLERY_TILE, "index": ALL}, "n_clicks"),
    State(ids.CLASS_ID, "data"),
    State(ids.VIEW_STATE, "data"),
    prevent_initial_call=True,
)
def focus_tile(_clicks, cid, stored_view):
    """A click on a tile rings its point in the map (two-way link)."""
    trigger = ctx.triggered_id
    if not isinstance(trigger, dict) or not ctx.triggered[0]["value"]:
        return no_update, no_update
    view = data.class_view(cid)
    index = int(trigger["index"])
    if not 0 <= index < view.n:
        return no_update, no_update
    coords, _ = views.coordinates(view, _state_from_store(view, stored_view))
    patch = Patch()
    patch["data"][1]["x"] = [float(coords[index, 0])]
    patch["data"][1]["y"] = [float(coords[index, 1])]
    patch["data"][1]["customdata"] = [index]
    return patch, index


@callback(
    Output(ids.URL_SYNC, "data"),
    Input(ids.VIEW_STATE, "data"),
    Input(ids.SELECTION, "data"),
    Input(ids.GALLERY_PAGE, "data"),
    State(ids.CLASS_ID, "data"),
    prevent_initial_call=True,
)
def url_for_view(stored_view, selection, page, cid):
    """The URL that restores this view."""
    if not stored_view:
        return no_update
    view = data.class_view(cid)
    state = _state_from_store(view, stored_view)
    state.page = page or 0
    state.sel = None
    state.cluster = None
    if selection and selection.get("token"):
        if selection.get("cluster") is not None:
            state.cluster = selection["cluster"]
        else:
            state.sel = selection["token"]
    return f"/class/{quote(view.name)}{view_query(state)}"


clientside_callback(
    """function (url) {
        if (url && window.location.pathname + window.location.search !== url) {
            window.history.replaceState(window.history.state, "", url);
        }
        return window.dash_clientside.no_update;
    }""",
    Output(ids.URL_SYNC_DONE, "data"),
    Input(ids.URL_SYNC, "data"),
    prevent_initial_call=True,
)

clientside_callback(
    """function (hover, cid) {
        var none = window.dash_clientside.no_update;
        if (!hover || !hover.points || !hover.points.length) { return [false, none, none, none, none]; }
        var point = hover.points[0];
        var index = Array.isArray(point.customdata) ? point.customdata[0] : point.customdata;
        if (index === undefined || index === null) { return [false, none, none, none, none]; }
        return [true, point.bbox, "/thumb/" + cid + "/image/" + index + ".webp",
                "/thumb/" + cid + "/heatmap/" + index + ".webp", "#" + index];
    }""",
    Output(ids.EMBEDDING_TOOLTIP, "show"),
    Output(ids.EMBEDDING_TOOLTIP, "bbox"),
    Output("tooltip-image", "src"),
    Output("tooltip-heatmap", "src"),
    Output("tooltip-caption", "children"),
    Input(ids.EMBEDDING, "hoverData"),
    State(ids.CLASS_ID, "data"),
)

clientside_callback(
    """function (mode, opacity) {
        return ["gallery mode-" + mode, {"--overlay-opacity": String(opacity)}];
    }""",
    Output(ids.GALLERY, "className"),
    Output(ids.GALLERY, "style"),
    Input(ids.GALLERY_MODE, "value"),
    Input(ids.GALLERY_OPACITY, "value"),
)
