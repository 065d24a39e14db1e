"""``/compare?class=<name>&runs=<a,b,...>&cluster=<CLUSTERING/cluster-C>|sel=<token>``: one class in several runs.

The app serves several runs of the same data with ``python app.py RUN_A RUN_B`` (the paper's
appendix: do VGG-16, VGG-19 and DenseNet-121 share their artifacts?). For one class, this page
shows each run's tau and rank, a group of samples (a cluster of the first run named, the
*reference*, or a selection lassoed in the explorer) in every run's map, the same samples'
heatmaps side by side, and for each other run the cluster that best matches the group (F1 and
overlap) among all its stored clusterings and in its default clustering. The URL holds the view.
"""
from __future__ import annotations

from typing import List, Optional
from urllib.parse import quote, urlencode

import dash
import numpy as np
from dash import Input, Output, State, callback, ctx, dcc, html, no_update

from .. import compare_views as cv
from .. import data, figures, ids
from ..routes import thumb_url
from ..selection import decode_mask
from ..url_sync import sync_url

HEATMAP_ROWS = 8  # samples of the group shown side by side
SELECTED_COLOR, OTHER_COLOR = "#dc2626", "#c5cad3"


def _class_names(runs: List[str]) -> List[str]:
    """Classes finished in every one of ``runs``, by name."""
    names = None
    for run in runs:
        here = {row["name"] for row in data.leaderboard(run)}
        names = here if names is None else names & here
    return sorted(names or [])


def _explain_single_run():
    return html.Div(className="empty-state", children=[
        html.H2("One run is served"),
        html.P(["The compare view needs several runs of the same data: ",
                html.Code("python app.py RUN_A RUN_B"), " (or a folder of runs). ",
                "The embedded demo serves its second model's run beside the first."]),
        dcc.Link("Back to the leaderboard", href="/"),
    ])


def layout(runs: Optional[str] = None, cluster: Optional[str] = None, sel: Optional[str] = None, **query):
    served = data.run_names()
    if len(served) < 2:
        return _explain_single_run()
    chosen = cv.parse_runs(runs, served)
    names = _class_names(chosen)
    name = query.get("class")  # not a parameter: a Python keyword
    if name not in names:
        top = [row["name"] for row in data.leaderboard(chosen[0]) if row["name"] in names]
        name = top[0] if top else None
    return html.Div(className="compare-page", children=[
        dcc.Store(id=ids.COMPARE_SELECTION, data=sel or None),
        dcc.Store(id=ids.COMPARE_URL_SYNC, data=None),
        dcc.Store(id=ids.COMPARE_URL_SYNC_DONE, data=None),
        html.Div(className="page-head", children=[html.Div([
            html.H1("Do the models share their strategies?"),
            html.P(className="lede", children=(
                "One class in several runs of the same data. A group of samples that one model treats apart, "
                "a cluster of the first run listed or a selection from its explorer, is looked for in every other "
                "run: the cluster that matches it best, with its F1 and how much of the group it holds. The same "
                "samples' heatmaps are shown side by side.")),
        ])]),
        html.Div(className="controls", children=[
            html.Label(className="wide", children=[
                "runs (the first is the reference)",
                dcc.Dropdown(id=ids.COMPARE_RUNS, options=served, value=chosen, multi=True, clearable=False)]),
            html.Label(["class", dcc.Dropdown(id=ids.COMPARE_CLASS, options=names, value=name, clearable=False)]),
            html.Label(className="wide", children=[
                "group", dcc.Dropdown(id=ids.COMPARE_CLUSTER, value=None if sel else cluster, clearable=False,
                                      placeholder="the explorer's selection" if sel else "a cluster")]),
        ]),
        html.P(id=ids.COMPARE_NOTE, className="hint"),
        html.Div(id=ids.COMPARE_TABLE, className="panel compare-table"),
        html.Div(id=ids.COMPARE_MAPS, className="compare-maps"),
        html.Div(id=ids.COMPARE_HEATMAPS, className="panel compare-heatmaps"),
    ])


dash.register_page(__name__, path="/compare", name="Compare runs", order=5, layout=layout)
sync_url(ids.COMPARE_URL_SYNC, ids.COMPARE_URL_SYNC_DONE)


def _group(view, cluster: Optional[str], token: Optional[str]):
    """``(indices, text)`` of the reference run's group: the explorer's selection, else a cluster."""
    if token:
        indices = decode_mask(token, view.n)
        if indices is not None and len(indices):
            return np.asarray(indices, dtype=np.int64), f"the explorer's selection ({len(indices)} samples)"
    indices = cv.cluster_indices(cluster, view.clustering_names, view.clustering_labels)
    if indices is None:
        return None, ""
    return indices, cluster


def _fact(value, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def _match_cell(match: Optional[cv.ClusterMatch]):
    if match is None:
        return html.Td("—")
    return html.Td(className="match", children=[
        html.B(f"F1 {match.f1:.2f}"), f" · {match.overlap:.0%} of the group in ",
        html.Code(match.label), f" ({match.size} samples)"])


def _table(chosen: List[str], name: str, views: dict, matches: dict):
    head = ["run", "model", "τ", "rank", "Δ rank", "accuracy", "default clustering",
            "best-matching cluster (all clusterings)", "in its default clustering"]
    rows = []
    reference_rank = None
    for run in chosen:
        board = data.leaderboard(run)
        row = next((r for r in board if r["name"] == name), {})
        ranked = sum(r["rank"] is not None for r in board)
        rank = row.get("rank")
        if run == chosen[0]:
            reference_rank = rank
        change = None if rank is None or reference_rank is None or run == chosen[0] else reference_rank - rank
        best, default = matches.get(run, (None, None))
        rows.append(html.Tr(**{"data-run": run}, children=[
            html.Td(html.B(run)), html.Td(data.run_info(run)["model"]),
            html.Td(_fact(row.get("tau"), ".3f")), html.Td(f"{rank} of {ranked}" if rank else "—"),
            html.Td("reference" if run == chosen[0] else cv.rank_change_text(change)),
            html.Td(_fact(row.get("accuracy"), ".1%")),
            html.Td(views[run].summary.get("default_clustering") or "—"),
            *( [html.Td("the group itself", colSpan=2, className="hint")] if run == chosen[0]
               else [_match_cell(best), _match_cell(default)]),
        ]))
    return html.Table(className="results-table compare-results", children=[html.Thead(html.Tr([html.Th(h) for h in head])),
                                                        html.Tbody(rows)])


def _map_panel(run: str, view, chosen_here: np.ndarray):
    coords = view.maps.get("umap", next(iter(view.maps.values()), None)) if view.maps else None
    if coords is None:
        return html.Div(className="panel", children=[html.H3(run), html.P("no 2-D map stored", className="hint")])
    selected = np.zeros(view.n, dtype=bool)
    selected[chosen_here] = True
    colors = [SELECTED_COLOR if flag else OTHER_COLOR for flag in selected]
    map_name = "umap" if "umap" in view.maps else next(iter(view.maps))
    return html.Div(className="panel compare-map", **{"data-run": run}, children=[
        html.H3(f"{run} · {map_name}"),
        dcc.Graph(figure=figures.embedding_figure(coords, colors, selected=None, revision=run, height=320),
                  config={"displayModeBar": False}),
    ])


def _heatmap_grid(chosen: List[str], views: dict, cids: dict, rows_here: dict, indices: np.ndarray):
    reference = chosen[0]
    shown = indices[:HEATMAP_ROWS]
    header = html.Div(className="compare-row compare-head", children=[
        html.Span("image"), *[html.Span(run) for run in chosen]])
    lines = [header]
    for index in shown:
        cells = [html.Img(src=thumb_url(cids[reference], "image", int(index), reference), className="tile-image",
                          title=str(views[reference].paths[int(index)]))]
        for run in chosen:
            there = rows_here[run].get(int(index))
            cells.append(html.Span("not in this run", className="hint") if there is None else
                         html.Img(src=thumb_url(cids[run], "heatmap", there, run), className="tile-heatmap",
                                  **{"data-run": run, "data-index": str(there)}))
        lines.append(html.Div(className="compare-row", children=cells))
    more = len(indices) - len(shown)
    if more > 0:
        lines.append(html.P(f"and {more} more samples of the group", className="hint"))
    return lines


@callback(
    Output(ids.COMPARE_CLUSTER, "options"),
    Output(ids.COMPARE_CLUSTER, "value"),
    Output(ids.COMPARE_SELECTION, "data"),
    Output(ids.COMPARE_NOTE, "children"),
    Output(ids.COMPARE_TABLE, "children"),
    Output(ids.COMPARE_MAPS, "children"),
    Output(ids.COMPARE_HEATMAPS, "children"),
    Output(ids.COMPARE_URL_SYNC, "data"),
    Input(ids.COMPARE_RUNS, "value"),
    Input(ids.COMPARE_CLASS, "value"),
    Input(ids.COMPARE_CLUSTER, "value"),
    State(ids.COMPARE_SELECTION, "data"),
)
def compare(runs, name, cluster, token):
    """Everything the page shows for its runs, class and group."""
    chosen = cv.parse_runs(",".join(runs or []), data.run_names())
    if not name:
        return [], None, None, "No class is finished in every chosen run.", None, None, None, no_update
    cids = {run: data.class_id_for_name(name, run) for run in chosen}
    if any(cid is None for cid in cids.values()):
        missing = ", ".join(run for run, cid in cids.items() if cid is None)
        return [], None, None, f"{name} is not a finished class of {missing}.", None, None, None, no_update
    views = {run: data.class_view(cids[run], run) for run in chosen}
    reference = views[chosen[0]]
    options = cv.cluster_options(reference.clustering_names, reference.clustering_labels, reference.summary)
    if ctx.triggered_id in (ids.COMPARE_RUNS, ids.COMPARE_CLASS):
        token = None  # a selection belongs to its class and reference run
        cluster = None
    if ctx.triggered_id == ids.COMPARE_CLUSTER and cluster != "selection":
        token = None
    if not token and cluster not in [option["value"] for option in options] and \
            cv.cluster_indices(cluster, reference.clustering_names, reference.clustering_labels) is None:
        cluster = cv.default_cluster(reference.clustering_names, reference.clustering_labels, reference.summary)
    if token:
        options = [{"label": "the explorer's selection", "value": "selection"}, *options]
        cluster_value = "selection"
    else:
        cluster_value = cluster
    indices, text = _group(reference, cluster, token)
    if indices is None:
        return options, cluster_value, token, "This class has no clustering to compare.", None, None, None, no_update
    matches, rows_here, chosen_in, notes = {}, {}, {}, []
    for run in chosen:
        here, there = cv.shared_samples(reference.paths, views[run].paths)
        rows_here[run] = dict(zip(here.tolist(), there.tolist()))
        chosen_in[run] = np.asarray([rows_here[run][i] for i in indices.tolist() if i in rows_here[run]],
                                    dtype=np.int64)
        if run == chosen[0]:
            continue
        if len(here) < reference.n:
            notes.append(f"{run} holds {len(here)} of the {reference.n} samples")
        other = views[run]
        selected = np.isin(there, chosen_in[run])
        labels = other.clustering_labels[:, there]
        matches[run] = (cv.best_match(selected, other.clustering_names, labels),
                        cv.best_match(selected, other.clustering_names, labels,
                                      only=[other.summary.get("default_clustering")]))
    note = f"{name}: the group is {text} of {chosen[0]}" + ("; " + "; ".join(notes) if notes else "") + "."
    query = {"class": name, "runs": ",".join(chosen)}
    query.update({"sel": token} if token else {"cluster": cluster})
    return (options, cluster_value, token, note, _table(chosen, name, views, matches),
            [_map_panel(run, views[run], chosen_in[run]) for run in chosen],
            _heatmap_grid(chosen, views, cids, rows_here, indices), "/compare?" + urlencode(query, quote_via=quote))
