"""Find elsewhere (``/similar?concept=<class id>:<mask token>&top=N``): the selection's relevance pattern
in every other class.

**Find elsewhere →** in the explorer opens it with the lasso. The run's similarity index
(``RUN/search/``, :mod:`precompute.search`) ranks every sample of the other classes by the
cosine similarity of its pooled |relevance| to the selection's prototype; the page groups
the best ``top`` by class, with thumbnails, scores and a link that opens each sample in its
class, and exports the list as CSV. A heatmap of one's own (a ``.npy`` array (H, W)) can be
dropped on the page to search every class for its pattern.
"""
from __future__ import annotations

from typing import Dict, List, Optional
from urllib.parse import quote

import base64

import dash
from dash import Input, Output, State, callback, dcc, html

from precompute.errors import SprayError, StoreError

from .. import data
from ..routes import similar_export_url, thumb_url
from ..selection import encode_mask
from ..unhans_views import parse_concept

TOPS = (30, 60, 120, 240)


def _grouped(rows: List[dict]) -> Dict[str, List[dict]]:
    """Results by class, the class with the best match first (rows arrive best first)."""
    groups: Dict[str, List[dict]] = {}
    for row in rows:
        groups.setdefault(row["class"], []).append(row)
    return groups


def _tile(row: dict):
    token = encode_mask([row["index"]], data.class_view(row["class_id"]).n)
    return html.A(className="gallery-tile similar-tile", href=f"/class/{quote(row['class'])}?sel={token}",
                  title=f"{row['path']}\nscore {row['score']:.3f}", **{"data-index": str(row["index"])}, children=[
                      html.Div(className="tile-images", children=[
                          html.Img(src=thumb_url(row["class_id"], "image", row["index"]), className="tile-image"),
                          html.Img(src=thumb_url(row["class_id"], "heatmap", row["index"]), className="tile-heatmap"),
                      ]),
                      html.Div(className="tile-caption", children=[html.Span(row["class"]),
                                                                   html.B(f"{row['score']:.3f}")]),
                  ])


def _groups(rows: List[dict]) -> List:
    return [html.Div(className="panel similar-group", **{"data-class": cls}, children=[
        html.H3(f"{cls} · {len(items)} · best {items[0]['score']:.3f}"),
        html.Div(className="gallery", children=[_tile(row) for row in items]),
    ]) for cls, items in _grouped(rows).items()]


def _upload():
    return html.Div(className="panel", children=[
        dcc.Upload(id="similar-upload", className="upload", max_size=64 * 1024 * 1024,
                   children=html.Div(["Or drop a heatmap of your own (.npy, shape H × W) to find its pattern in every "
                                      "class, or ", html.A("choose a file")])),
        html.Div(id="similar-upload-results"),
    ])


def layout(concept: Optional[str] = None, top: Optional[str] = None, **_query):
    sizes = {row["id"]: int(row["n"]) for row in data.leaderboard()}
    parsed = parse_concept(concept, sizes)
    head = html.Div(className="page-head", children=[html.Div([
        html.H1("Find elsewhere"),
        html.P(className="lede", children=(
            "The samples of every other class whose relevance lies where the selection's does (cosine similarity "
            "of |relevance| pooled to an 8×8 grid: an artifact that is evidence for its own class draws negative "
            "relevance elsewhere, and is found all the same).")),
    ])])
    if parsed is None:
        return html.Div(className="lab-page", children=[head, html.Div(className="empty-gallery", children=(
            "Lasso a group in a class's explorer, then click “Find elsewhere →”.")), _upload()])
    cid, indices = parsed
    try:
        count = int(top) if top and int(top) in TOPS else 60
    except ValueError:
        count = 60
    name = data.class_name(cid)
    try:
        rows = data.similar(cid, indices, top=count)
    except StoreError as error:
        return html.Div(className="lab-page", children=[head, html.Div(className="error", children=f"⚠ {error}")])
    token = concept.split(":", 1)[1]
    groups = _grouped(rows)
    return html.Div(className="lab-page", children=[
        head,
        html.P(id="similar-summary", children=[
            html.B(f"{len(indices)}"), f" samples of {name} · the best {len(rows)} matches in ",
            html.B(f"{len(groups)}"), " other classes · show ",
            *[part for n in TOPS for part in (html.A(str(n), href=f"/similar?concept={concept}&top={n}",
                                                     className="link-button" + (" active" if n == count else "")),
                                              " ")],
            " · ", html.A("export CSV", id="similar-export", href=similar_export_url(cid, token, count),
                          className="link-button"),
            " · ", html.A(f"back to {name}", href=f"/class/{quote(name)}?sel={token}", className="link-button"),
        ]),
        html.Div(id="similar-results", children=_groups(rows)),
        _upload(),
    ])


dash.register_page(__name__, path="/similar", name="Find elsewhere", order=4, layout=layout)


@callback(Output("similar-upload-results", "children"), Input("similar-upload", "contents"),
          State("similar-upload", "filename"), prevent_initial_call=True)
def search_uploaded(contents, filename):
    """Search every class for an uploaded heatmap's pattern; a bad file gets one line."""
    name = str(filename or "heatmap")[:80]
    try:
        if not isinstance(contents, str) or "," not in contents:
            raise SprayError(f"{name}: nothing was uploaded")
        rows = data.similar_to_heatmap(base64.b64decode(contents.split(",", 1)[1]), name)
    except (SprayError, ValueError) as error:
        return html.Div(className="error", children=f"⚠ {error}")
    return [html.P(id="similar-upload-summary", children=f"{name}: the best {len(rows)} matches"), *_groups(rows)]
