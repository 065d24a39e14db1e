"""Pure builders of the class explorer's components: view models in, Dash components out.

No callbacks and no disk: :mod:`spray_dash.pages.explorer` reads the data through
:mod:`spray_dash.data`, turns it into view models with :mod:`spray_dash.views`, and
hands them to these functions.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple
from urllib.parse import quote

from dash import dcc, html

from . import figures, ids, views

__all__ = ["unknown_class", "header", "group_buttons", "gallery_tile", "empty_gallery", "empty_prototype",
           "no_export", "prototype", "export_links", "selection_summary", "inspector_caption", "sensitivity_panel",
           "tile_title", "side_panels",
           "gallery_panel", "GALLERY_MODES"]

GALLERY_MODES = [{"label": "side by side", "value": "side"}, {"label": "overlay", "value": "overlay"},
                 {"label": "images", "value": "image"}, {"label": "heatmaps", "value": "heatmap"}]


def unknown_class(name: str):
    """The page shown for a name that is not a finished class of the run."""
    return html.Div(className="empty-state", children=[
        html.H2("Unknown class"),
        html.P(f"“{name}” is not a finished class of this run."),
        dcc.Link("Back to the leaderboard", href="/"),
    ])


def header(view, rank_row: Optional[dict], neighbours: Tuple[Optional[dict], Optional[dict]], default_note: str,
           ranked_count: int):
    """Title, fact cards (τ, rank, samples, accuracy, eigengap k, default) and links to the τ neighbours.

    Parameters
    ----------
    view : spray_dash.data.ClassView
    rank_row : dict or None
        The class's leaderboard row.
    neighbours : (dict or None, dict or None)
        Leaderboard rows of the classes with the next higher and lower τ.
    default_note : str
        Why the default view has its k (:func:`spray_dash.views.default_k_note`).
    ranked_count : int
        How many classes have a rank.
    """
    summary = view.summary
    prev_row, next_row = neighbours
    tau, tau_tip = views.tau_text(summary.get("tau"), summary.get("tau_note"))
    ranked = rank_row is not None and rank_row["rank"] is not None
    primary = view.analyses[0] if view.analyses else view.analysis
    # the leaderboard ranks by the primary analysis; say so when another one is shown
    rank_tip = (f"rank by τ of the {primary} analysis" if view.analysis != primary else None) if ranked else tau_tip
    tau_label = "τ" if view.analysis == primary else f"τ {view.analysis}"
    facts = [
        (tau_label, tau, tau_tip or f"tau of the {view.analysis} analysis"),
        ("rank", f"{rank_row['rank']} / {ranked_count}" if ranked else "—", rank_tip),
        ("samples", str(view.n), None),
        ("accuracy", "—" if summary.get("accuracy") is None else f"{summary['accuracy']:.1%}", None),
        ("eigengap k", str(summary.get("eigengap_k")), "cluster count suggested by the largest relative eigengap"),
        ("default", str(summary.get("default_clustering")), default_note or None),
    ]
    return html.Div(className="class-head", children=[
        html.Div(className="class-title", children=[
            dcc.Link("← leaderboard", href="/", className="back-link"),
            html.H1(view.name),
        ]),
        html.Div(className="facts", children=[
            # labels are set in capitals by CSS; a symbol such as τ keeps its case (capital τ reads "T")
            html.Div(className="fact", title=tip, children=[
                html.Span(label, className=None if label.isascii() else "symbol"), html.B(value)])
            for label, value, tip in facts
        ]),
        html.Div(className="class-nav", children=[
            dcc.Link(f"‹ {prev_row['name']}", href=f"/class/{quote(prev_row['name'])}", className="nav-prev",
                     title="higher τ") if prev_row else html.Span(),
            dcc.Link(f"{next_row['name']} ›", href=f"/class/{quote(next_row['name'])}", className="nav-next",
                     title="lower τ") if next_row else html.Span(),
        ]),
    ])


def group_buttons(groups: Sequence[views.Group], active: Optional[int]):
    """Quick-select buttons of the current colouring (swatch, label, count), or a hint if there are none."""
    buttons = [html.Button(
        id={"type": ids.CLUSTER_BUTTON, "index": group.key}, n_clicks=0,
        className="cluster-button" + (" active" if active == group.key else ""),
        title=f"select {group.label}",
        children=[html.Span(className="swatch", style={"background": group.color}),
                  html.Span(group.label), html.B(f"{len(group.indices)}")],
    ) for group in groups]
    return buttons or html.Span(className="hint", children="No groups for this colouring.")


def tile_title(item: views.GalleryItem) -> str:
    """A tile's tooltip: index, path, p(true), and the right-reason and perturbation figures where stored."""
    lines = [f"#{item.index} {item.path}" + (" (validation)" if item.validation else ""),
             f"p(true) = {item.true_prob:.3f}"]
    if item.right_reason is not None:
        lines.append(f"right-reason score = {item.right_reason:.2f}")
    if item.off_object is not None:
        lines.append(f"off-object sensitivity = {item.off_object:.2f}")
    return "\n".join(lines)


def gallery_tile(item: views.GalleryItem):
    """One gallery tile: image and heatmap, the top-1 prediction and the true class's rank."""
    ok = item.true_rank == 1
    return html.Div(
        id={"type": ids.GALLERY_TILE, "index": item.index}, n_clicks=0, className="gallery-tile",
        title=tile_title(item), **{"data-index": str(item.index)},
        children=[
            html.Div(className="tile-images", children=[
                html.Img(src=item.image_url, className="tile-image", alt=item.path),
                html.Img(src=item.heatmap_url, className="tile-heatmap", alt="heatmap"),
            ] + ([html.Img(src=item.mask_url, className="tile-mask", alt="object outline")] if item.mask_url else [])),
            html.Div(className="tile-caption", children=[
                *([html.Span("val", className="tile-split", title="a validation image")] if item.validation else []),
                html.Span(item.top1, className="tile-pred"),
                html.Span(f"rank {item.true_rank}", className="tile-rank " + ("ok" if ok else "bad")),
            ]),
        ],
    )


def empty_gallery():
    return html.Div(className="empty-gallery", children=[
        html.B("Nothing selected yet."),
        html.Span(" Lasso a group of points in the map, or pick a group on the right."),
    ])


def empty_prototype():
    return html.Div(className="prototype-empty", children="prototype")


def no_export():
    return html.Span(id=ids.EXPORT_CSV, className="hint", children="export needs a selection")


def prototype(url: str, medoid_of: Optional[str] = None):
    """The selection's mean heatmap, loaded by URL; or its medoid's under the shape analysis ``medoid_of``."""
    if medoid_of:
        return html.Figure(title=f"the selection's most central sample in the {medoid_of} kNN graph: its samples "
                                 "share a shape at different places, which a mean would smear", children=[
            html.Img(src=url, alt="heatmap of the selection's medoid", className="prototype-img"),
            html.Figcaption(f"medoid heatmap ({medoid_of} prototype)"),
        ])
    return html.Figure(children=[
        html.Img(src=url, alt="mean heatmap of the selection", className="prototype-img"),
        html.Figcaption("mean heatmap (prototype)"),
    ])


def export_links(csv_url: str, json_url: str) -> List:
    return [html.A("⇩ CSV", id=ids.EXPORT_CSV, href=csv_url, download="", className="button"),
            html.A("⇩ JSON", id=ids.EXPORT_JSON, href=json_url, download="", className="button")]


def selection_summary(count: int, n: int, correct: int) -> List:
    return [html.B(f"{count}"), f" of {n} samples",
            html.Span(className="muted", children=f" · {correct / count:.0%} predicted correctly")]


def inspector_caption(item: views.GalleryItem):
    scores = []
    if item.right_reason is not None:
        scores.append(html.Span(className="right-reason", title="share of the decisive relevance (the fewest pixels "
                                "holding 80 % of the positive relevance) that lies on the object mask",
                                children=f"right-reason score {item.right_reason:.2f}"))
    return html.Div(className="inspector-caption", children=[
        html.B(f"#{item.index} "), html.Span(item.path), html.Br(),
        html.Span(f"predicted {item.top1} ({item.top1_prob:.0%}) · true class rank {item.true_rank}"),
        *([html.Br()] + scores if scores else []),
    ])


def sensitivity_panel(view, item: views.GalleryItem, width: int, height: int):
    """The sample's occlusion map (perturbation scan) beside the heatmap; None if the class was not scanned."""
    if view.sensitivity is None:
        return None
    info = view.perturbation
    reference = "object mask" if info.get("reference") == "mask" else "LRP's decisive region"
    off = "—" if item.off_object is None else f"{item.off_object:.0%}"
    return html.Div(children=[
        html.H4("Occlusion sensitivity"),
        dcc.Graph(id=ids.SENSITIVITY_GRAPH, config={"displayModeBar": False},
                  figure=figures.sensitivity_figure(item.image_url, view.sensitivity[item.index], width, height,
                                                    size=220)),
        html.Div(className="hint", children=(
            f"Red: covering that cell ({info.get('grid')}×{info.get('grid')} grid, filled with the "
            f"{info.get('fill', 'image mean colour')}) lowers p(true). {off} of the drop lies outside the {reference}.")),
    ])


def side_panels(spectrum_figure, default_note: str, can_propose: bool, can_compare: bool = False) -> List:
    """The explorer's right column: spectrum, groups, selection (prototype, export, propose) and sample.

    ``can_compare``: several runs are served, so the selection can be compared across them.
    """
    return [
        html.Div(className="panel", children=[
            html.H3("Eigenvalue spectrum"),
            dcc.Graph(id=ids.SPECTRUM, config={"displayModeBar": False}, figure=spectrum_figure),
            html.P(id=ids.SPECTRUM_NOTE, className="hint spectrum-note", children=default_note),
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
                                n_clicks=0, disabled=not can_propose,
                                title="cut the region this selection's heatmaps share out of a sample, "
                                      "and test it in the artifact lab"),
                    html.Div(id=ids.PROPOSE_MESSAGE, className="message"),
                    dcc.Link("Find elsewhere →", id=ids.TO_SIMILAR, href="/similar", className="button secondary",
                             title="the samples of every other class whose relevance lies where this selection's "
                                   "does"),
                    dcc.Link("Compare runs →", id=ids.TO_COMPARE, href="/compare", className="button secondary",
                             style={} if can_compare else {"display": "none"},
                             title="this selection (or the class) in every served run: is it a cluster there too?"),
                    dcc.Link("Un-Hans this selection →", id=ids.TO_UNHANS, href="/unhans", className="button secondary",
                             title="correct the model for the artifact these samples carry (ClArC), verified "
                                   "before and after"),
                ]),
            ]),
        ]),
        html.Div(className="panel inspector-panel", children=[
            html.H3("Sample"),
            html.Div(id=ids.INSPECTOR, className="inspector", children=html.Span(
                className="hint", children="Click a gallery tile to see it here; draw a box on it to cut "
                                           "that region out as an artifact.")),
            html.Div(className="inspector-figures", children=[
                dcc.Graph(id=ids.INSPECTOR_GRAPH, style={"display": "none"},
                          config={"displayModeBar": False, "modeBarButtonsToAdd": ["drawrect", "eraseshape"]}),
                html.Div(id=ids.INSPECTOR_SENSITIVITY, className="inspector-sensitivity"),
            ]),
            html.Div(className="inspector-actions", children=[
                html.Button("Cut box → lab", id=ids.INSPECTOR_CUT, className="button secondary", n_clicks=0,
                            disabled=True),
                html.Span(id=ids.INSPECTOR_MESSAGE, className="message"),
            ]),
        ]),
    ]


def gallery_panel(opacity: float):
    """The gallery: its mode, the overlay's opacity, paging, and the tiles' container."""
    return html.Div(className="panel gallery-panel", children=[
        html.Div(className="gallery-toolbar", children=[
            html.H3("Samples"),
            dcc.RadioItems(id=ids.GALLERY_MODE, className="segmented", value="side", inline=True,
                           options=GALLERY_MODES),
            html.Div(className="opacity", children=[
                html.Span("heatmap opacity"),
                dcc.Slider(id=ids.GALLERY_OPACITY, min=0, max=1, step=0.05, value=opacity,
                           marks=None, tooltip={"placement": "bottom"}),
            ]),
            html.Div(className="pager", children=[
                html.Button("‹", id=ids.GALLERY_PREV, className="pager-button", n_clicks=0),
                html.Span(id=ids.GALLERY_PAGER),
                html.Button("›", id=ids.GALLERY_NEXT, className="pager-button", n_clicks=0),
            ]),
        ]),
        html.Div(id=ids.GALLERY, className="gallery mode-side"),
    ])
