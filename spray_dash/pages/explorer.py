"""``/class/<name>``: linked embedding, spectrum, cluster quick-select, gallery, prototype, export.

The URL holds the view (``?map=&dims=&color=&k=&cluster=|sel=&page=``): the layout
restores it, and every change is written back with ``history.replaceState``.
Callbacks only unpack inputs and call pure functions (:mod:`spray_dash.views`,
:mod:`spray_dash.figures`, :mod:`spray_dash.selection`, and the component builders of
:mod:`spray_dash.explorer_components`); data comes from :mod:`spray_dash.data`.
"""
from __future__ import annotations

from typing import Optional
from urllib.parse import quote, unquote, urlencode

import dash
import numpy as np
from dash import ALL, Input, Output, Patch, State, callback, clientside_callback, ctx, dcc, html, no_update

from precompute.errors import SprayError
from precompute.store import MEDOID_PROTOTYPE_ANALYSES

from .. import data, figures, ids, views
from .. import explorer_components as parts
from ..routes import export_url, prototype_url
from ..selection import ViewState, decode_mask, encode_mask, indices_from_selected_data, page_slice, \
    parse_view_state, view_query
from ..url_sync import sync_url


PER_PAGE = 48
OVERLAY_OPACITY = 0.85
"""Default heatmap opacity of the gallery's overlay mode. The image underneath is shown
dimmed in greys (assets/style.css), so the heatmap's reds and blues stay readable; see
docs/ui.md."""


# ---------------------------------------------------------------------------------------------
# layout
# ---------------------------------------------------------------------------------------------
def _state_from_store(view, stored: Optional[dict]) -> ViewState:
    family, k = views.default_view(view)
    return parse_view_state(stored or {}, maps=list(view.maps), families=view.families,
                            q=view.spectral.shape[1], n=view.n, default_family=family, default_k=k,
                            colors=views.plain_colors(view))


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


def layout(name: Optional[str] = None, **query):
    name = unquote(name or "")
    cid = data.class_id_for_name(name)
    if cid is None:
        return parts.unknown_class(name)
    view = data.class_view(cid, analysis=views.requested_analysis(data.analysis_names(cid), query.get("analysis")))
    state = _state_from_store(view, query)
    selection = _initial_selection(view, state)
    rows = data.leaderboard()
    position = next((i for i, row in enumerate(rows) if row["id"] == cid), None)
    rank_row = rows[position] if position is not None else None
    neighbours = (rows[position - 1] if position else None,
                  rows[position + 1] if position is not None and position + 1 < len(rows) else None)
    spectral_style = {} if state.map == "spectral" else {"display": "none"}
    dims = views.spectral_dimension_options(view)
    eigengap_k = view.summary.get("eigengap_k")
    default_note = views.default_k_note(eigengap_k, view.summary.get("default_clustering"),
                                        data.run_info().get("default_rule", "lead_eigengap"))
    return html.Div(className="explorer-page", children=[
        dcc.Store(id=ids.CLASS_ID, data=cid),
        dcc.Store(id=ids.ANALYSIS, data=view.analysis),
        dcc.Location(id=ids.NAVIGATE_ANALYSIS, refresh="callback-nav"),
        dcc.Store(id=ids.VIEW_STATE, data=None),
        dcc.Store(id=ids.SELECTION, data=selection),
        dcc.Store(id=ids.GALLERY_PAGE, data=state.page),
        dcc.Store(id=ids.URL_SYNC, data=None),
        dcc.Store(id=ids.URL_SYNC_DONE, data=None),
        dcc.Store(id=ids.FOCUS, data=None),
        dcc.Store(id=ids.HOVER_CAPTIONS, data=views.hover_captions(view, data.label_names())),
        dcc.Location(id=ids.NAVIGATE_LAB, refresh="callback-nav"),
        parts.header(view, rank_row, neighbours, default_note, sum(row["rank"] is not None for row in rows)),
        html.Div(className="controls", children=[
            html.Label(className="analysis-select", style={} if len(view.analyses) > 1 else {"display": "none"},
                       children=["analysis", dcc.Dropdown(id=ids.ANALYSIS_SELECT, value=view.analysis,
                                                          options=views.analysis_options(view),
                                                          clearable=False, searchable=False)]),
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
                    html.Div(id=ids.TOOLTIP_CAPTION, className="tooltip-caption"),
                ]),
            ]),
            html.Div(className="side", children=parts.side_panels(
                figures.spectrum_figure(view.eigenvalues, int(eigengap_k or 0)), default_note,
                bool(selection.get("token")), can_compare=len(data.run_names()) > 1)),
        ]),
        parts.gallery_panel(OVERLAY_OPACITY),
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
    State(ids.ANALYSIS, "data"),
    State(ids.SELECTION, "data"),
)
def render_embedding(map_name, dim_x, dim_y, color, k, cid, analysis, selection):
    """Draw the map for the chosen view and colouring; keep the current selection highlighted."""
    view = data.class_view(cid, analysis=analysis)
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
    return parts.group_buttons(views.groups(view, state), selection.get("cluster") if selection else None)


@callback(
    Output(ids.SELECTION, "data"),
    Output(ids.EMBEDDING, "figure", allow_duplicate=True),
    Output(ids.GALLERY_PAGE, "data", allow_duplicate=True),
    Output(ids.CLUSTER_BUTTONS, "children", allow_duplicate=True),
    Input(ids.EMBEDDING, "selectedData"),
    Input({"type": ids.CLUSTER_BUTTON, "index": ALL}, "n_clicks"),
    Input(ids.CLEAR_SELECTION, "n_clicks"),
    State(ids.CLASS_ID, "data"),
    State(ids.ANALYSIS, "data"),
    State(ids.VIEW_STATE, "data"),
    prevent_initial_call=True,
)
def select(selected_data, _cluster_clicks, _clear, cid, analysis, stored_view):
    """A lasso/box/click selection, a group button, or "clear" sets the selection."""
    view = data.class_view(cid, analysis=analysis)
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
    State(ids.ANALYSIS, "data"),
)
def render_gallery(selection, page, stored_view, cid, analysis):
    """Fill the gallery, prototype and export links from the selection (images load by URL)."""
    view = data.class_view(cid, analysis=analysis)
    token = selection.get("token") if selection else None
    indices = decode_mask(token, view.n) if token else None
    if indices is None or len(indices) == 0:
        return parts.empty_gallery(), "", True, True, parts.empty_prototype(), parts.no_export(), ""
    start, stop, page, pages = page_slice(len(indices), page or 0, PER_PAGE)
    tiles = [parts.gallery_tile(item) for item in views.gallery_items(view, indices[start:stop], data.label_names())]
    clustering = views.current_clustering(view, _state_from_store(view, stored_view)) or ""
    summary = parts.selection_summary(len(indices), view.n, int(np.sum(view.true_rank[indices] == 1)))
    shown = None if view.analysis == view.analyses[0] else view.analysis
    export = parts.export_links(export_url(cid, "csv", token, clustering, shown),
                                export_url(cid, "json", token, clustering, shown))
    medoid_of = view.analysis if view.analysis in MEDOID_PROTOTYPE_ANALYSES else None
    prototype = parts.prototype(prototype_url(cid, token, medoid_of), medoid_of)
    return tiles, f"{start + 1}–{stop} of {len(indices)} · page {page + 1}/{pages}", page == 0, \
        page >= pages - 1, prototype, export, summary


@callback(Output(ids.NAVIGATE_ANALYSIS, "href"), Input(ids.ANALYSIS_SELECT, "value"),
          State(ids.ANALYSIS, "data"), State(ids.CLASS_ID, "data"), prevent_initial_call=True)
def switch_analysis(chosen, shown, cid):
    """Another analysis redraws the whole page: its maps, clusterings, spectrum and default view differ."""
    if not chosen or chosen == shown:
        return no_update
    view = data.class_view(cid, analysis=chosen)
    return f"/class/{quote(view.name)}{views.analysis_query(view, first=True)}"


@callback(Output(ids.PROPOSE, "disabled"), Input(ids.SELECTION, "data"))
def propose_enabled(selection):
    return not (selection and selection.get("token"))


@callback(Output(ids.TO_UNHANS, "href"), Output(ids.TO_SIMILAR, "href"), Output(ids.TO_COMPARE, "href"),
          Input(ids.SELECTION, "data"), State(ids.CLASS_ID, "data"))
def selection_links(selection, cid):
    """The Un-Hans, Find-elsewhere and compare pages with this selection (or without one)."""
    token = selection.get("token") if selection else None
    query = "?" + urlencode({"concept": f"{cid}:{token}"}) if token and cid else ""
    compare = {"class": data.class_name(cid)} if cid and data.has_class(cid) else {}
    compare.update({"sel": token} if token and compare else {})
    return "/unhans" + query, "/similar" + query, "/compare" + ("?" + urlencode(compare) if compare else "")


@callback(
    # href, not pathname/search: dcc.Location prefers a changed href, and ours is stale
    # because the view's URL is kept with history.replaceState
    Output(ids.NAVIGATE_LAB, "href"),
    Output(ids.INSPECTOR_MESSAGE, "children"),
    Output(ids.PROPOSE_MESSAGE, "children"),
    Input(ids.PROPOSE, "n_clicks"),
    Input(ids.INSPECTOR_CUT, "n_clicks"),
    State(ids.SELECTION, "data"),
    State(ids.INSPECTOR_GRAPH, "relayoutData"),
    State(ids.FOCUS, "data"),
    State(ids.CLASS_ID, "data"),
    prevent_initial_call=True,
)
def to_lab(_propose, _cut, selection, relayout, focus, cid):
    """Make an artifact draft from the selection (proposal) or from a drawn box, and open the lab.

    A refusal (e.g. a proposal covering most of the image) is shown beside the button pressed.
    """
    if not ctx.triggered[0]["value"]:
        return no_update, no_update, no_update
    view = data.class_view(cid)
    params = {"origin": view.name}
    proposing = ctx.triggered_id == ids.PROPOSE
    try:
        if proposing:
            token = selection.get("token") if selection else None
            indices = decode_mask(token, view.n) if token else None
            if indices is None or not len(indices):
                return no_update, no_update, no_update
            entry = data.save_proposal(cid, indices)
            params["removal"] = f"{cid}:{token}"
        else:
            box = figures.box_from_relayout(relayout)
            if focus is None or box is None:
                return no_update, html.Span(className="error", children="Draw a box on the sample first."), no_update
            entry = data.save_box(cid, int(focus), box)
    except SprayError as error:
        message = html.Span(className="error", children=f"⚠ {error}")
        return (no_update, no_update, message) if proposing else (no_update, message, no_update)
    return "/lab?" + urlencode({"artifact": entry["id"], **params}), "", ""


@callback(
    Output(ids.INSPECTOR, "children"),
    Output(ids.INSPECTOR_GRAPH, "figure"),
    Output(ids.INSPECTOR_GRAPH, "style"),
    Output(ids.INSPECTOR_CUT, "disabled"),
    Output(ids.INSPECTOR_SENSITIVITY, "children"),
    Input(ids.FOCUS, "data"),
    State(ids.CLASS_ID, "data"),
)
def inspect(focus, cid):
    """Show the clicked sample large, ready for a box to be drawn on it, with its occlusion map if scanned."""
    view = data.class_view(cid)
    if focus is None or not 0 <= int(focus) < view.n:
        return no_update, no_update, {"display": "none"}, True, None
    index = int(focus)
    height, width = view.summary.get("heatmap_shape", [64, 64])
    item = views.gallery_items(view, [index], data.label_names())[0]
    figure = figures.inspector_figure(item.image_url, item.heatmap_url, width, height)
    return (parts.inspector_caption(item), figure, {"display": "block"}, False,
            parts.sensitivity_panel(view, item, width, height))


@callback(
    Output(ids.EMBEDDING, "figure", allow_duplicate=True),
    Output(ids.FOCUS, "data"),
    Input({"type": ids.GALLERY_TILE, "index": ALL}, "n_clicks"),
    State(ids.CLASS_ID, "data"),
    State(ids.ANALYSIS, "data"),
    State(ids.VIEW_STATE, "data"),
    prevent_initial_call=True,
)
def focus_tile(_clicks, cid, analysis, stored_view):
    """A click on a tile rings its point in the map (two-way link)."""
    trigger = ctx.triggered_id
    if not isinstance(trigger, dict) or not ctx.triggered[0]["value"]:
        return no_update, no_update
    view = data.class_view(cid, analysis=analysis)
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
    State(ids.ANALYSIS, "data"),
    prevent_initial_call=True,
)
def url_for_view(stored_view, selection, page, cid, analysis):
    """The URL that restores this view."""
    if not stored_view:
        return no_update
    view = data.class_view(cid, analysis=analysis)
    state = _state_from_store(view, stored_view)
    state.page = page or 0
    state.sel = None
    state.cluster = None
    if selection and selection.get("token"):
        if selection.get("cluster") is not None:
            state.cluster = selection["cluster"]
        else:
            state.sel = selection["token"]
    return f"/class/{quote(view.name)}{view_query(state)}{views.analysis_query(view)}"


sync_url(ids.URL_SYNC, ids.URL_SYNC_DONE)

clientside_callback(
    """function (hover, cid, captions) {
        var none = window.dash_clientside.no_update;
        if (!hover || !hover.points || !hover.points.length) { return [false, none, none, none, none]; }
        var point = hover.points[0];
        var index = Array.isArray(point.customdata) ? point.customdata[0] : point.customdata;
        if (index === undefined || index === null) { return [false, none, none, none, none]; }
        var caption = (captions && captions[index] !== undefined) ? captions[index] : "#" + index;
        return [true, point.bbox, "/thumb/" + cid + "/image/" + index + ".webp",
                "/thumb/" + cid + "/heatmap/" + index + ".webp", caption];
    }""",
    Output(ids.EMBEDDING_TOOLTIP, "show"),
    Output(ids.EMBEDDING_TOOLTIP, "bbox"),
    Output("tooltip-image", "src"),
    Output("tooltip-heatmap", "src"),
    Output(ids.TOOLTIP_CAPTION, "children"),
    Input(ids.EMBEDDING, "hoverData"),
    State(ids.CLASS_ID, "data"),
    State(ids.HOVER_CAPTIONS, "data"),
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
