"""Pure builders of the Un-Hans page's components: records and view models in, Dash components out.

No callbacks and no disk: :mod:`spray_dash.pages.unhans` reads through :mod:`spray_dash.data`
and hands plain data to these functions. Images are served by URL (:mod:`spray_dash.routes`):
the stored thumbnails, and the live heatmaps, which the route computes on first request.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

from dash import dcc, html

from . import figures, ids
from . import lab_components as parts
from . import unhans_views as views
from .routes import thumb_url, variant_cleaning_url, variant_heatmap_url, variant_zip_url

__all__ = ["samples_panel", "correction_panel", "report", "heatmaps"]


def samples_panel(classes: Sequence[Mapping[str, str]], origin: Optional[str], sources: List[Dict[str, str]],
                  clustering: str, locked: bool):
    """Step 1: the class and where the artifact samples come from (the explorer's selection or a stored cluster)."""
    return html.Div(className="panel", children=[
        html.H3("1 · Artifact samples"),
        html.Label("class"),
        dcc.Dropdown(id=ids.UNHANS_ORIGIN, value=origin, clearable=False, disabled=locked,
                     options=[{"label": row["name"], "value": row["id"]} for row in classes]),
        html.Label("from"),
        dcc.RadioItems(id=ids.UNHANS_SOURCE, options=sources, value=sources[0]["value"]),
        html.Div(className="inline-inputs", children=[
            dcc.Input(id=ids.UNHANS_CLUSTERING, type="text", value=clustering,
                      placeholder="clustering, e.g. kmeans_lead-k2"),
            dcc.Input(id=ids.UNHANS_CLUSTER, type="number", value=1, min=0, step=1),
        ]),
    ])


def correction_panel(artifact_options: List[Dict[str, str]], artifact: Optional[str], layer_hint: str):
    """Step 2: method, layer, concept direction, artifact and its placement, fine-tuning, name; run and cancel."""
    return html.Div(className="panel", children=[
        html.H3("2 · Correction"),
        dcc.RadioItems(id=ids.UNHANS_METHOD, value="pclarc",
                       options=[{"label": text, "value": name} for name, text in views.METHODS.items()]),
        html.Label("layer"),
        dcc.Input(id=ids.UNHANS_LAYER, type="text", value="", placeholder="NAME or NAME:input; blank: the default",
                  style={"width": "100%"}),
        html.Div(id=ids.UNHANS_LAYER_HINT, className="hint", children=layer_hint),
        html.Label("concept direction"),
        dcc.RadioItems(id=ids.UNHANS_CAV, value="signal",
                       options=[{"label": text, "value": name} for name, text in views.CAV_CHOICES.items()]),
        html.Label("artifact (pasted by A-ClArC, used by the verification)"),
        dcc.Dropdown(id=ids.UNHANS_ARTIFACT, options=artifact_options, value=artifact,
                     placeholder="none: the report leaves out the paste figures"),
        html.Div(className="form-grid", children=[
            *parts.placement_controls(ids.UNHANS_POSITION, ids.UNHANS_CORNER, ids.UNHANS_X, ids.UNHANS_Y),
            html.Label(["fine-tuning epochs", dcc.Input(id=ids.UNHANS_EPOCHS, type="number", value=10, min=1,
                                                        max=100, step=1)]),
            html.Label(["learning rate", dcc.Input(id=ids.UNHANS_LR, type="number", value=None, min=0, step="any",
                                                   placeholder="method's default (3e-3)")]),
            html.Label(["name", dcc.Input(id=ids.UNHANS_NAME, type="text", value="", placeholder="optional")]),
        ]),
        html.Div(className="run-row", children=[
            html.Button("Correct and verify", id=ids.UNHANS_RUN, className="button accent", n_clicks=0),
            html.Button("Cancel", id=ids.UNHANS_CANCEL, className="button secondary", n_clicks=0, disabled=True),
        ]),
        html.Div(id=ids.UNHANS_PROGRESS, className="progress"),
        html.Div(id=ids.UNHANS_MESSAGE, className="message"),
    ])


def _cleaning_tile(row: Mapping[str, Any]):
    return html.A(href=f"/class/{row['class']}", className="gallery-tile", title=f"{row['path']} · score "
                  f"{row['score']:.2f}", children=[
                      html.Img(src=thumb_url(row["class_id"], "image", row["index"]), alt=row["path"]),
                      html.Span(className="tile-caption", children=f"{row['class']} · {row['score']:.1f}")])


def report(record, cleaning: Sequence[Mapping[str, Any]]) -> List:
    """A variant's before/after table, the paste test's Δp histograms (original and corrected model
    overlaid), its warnings, the cleaning list's highest scores in other classes and the downloads."""
    table = html.Table(id=ids.UNHANS_SUMMARY, className="results-table", children=[
        html.Thead(html.Tr([html.Th("figure"), html.Th("original model"), html.Th("corrected")])),
        html.Tbody([html.Tr([html.Td(label), html.Td(before), html.Td(after)])
                    for label, before, after in views.report_rows(record.report)]),
    ])
    deltas = views.paste_deltas(record.report)
    histogram = dcc.Graph(figure=figures.delta_histogram(*deltas, names=("original model", "corrected")),
                          config={"displayModeBar": False}) if deltas else None
    eval_data = record.report.get("eval_data") or {}
    warnings = (record.params or {}).get("warnings") or []
    return [
        html.P(className="hint", children=f"{views.variant_title(record)} · {record.selection.get('n')} artifact "
               f"samples ({record.selection.get('source')}) · measured on {eval_data.get('n', '?')} held-out "
               f"images · {record.seconds or 0:.0f} s"),
        *[html.P(className="warning", children=f"⚠ {text}") for text in warnings],
        html.Div(className="results-grid", children=[table, histogram]),
        html.H4("The same artifact elsewhere: highest cleaning scores in other classes"),
        html.Div(id=ids.UNHANS_CLEANING, className="gallery", children=[_cleaning_tile(row) for row in cleaning]
                 or parts.no_results("No sample of another class scores along the artifact's direction.")),
        html.Div(className="export", children=[
            html.A("cleaning list (CSV)", id=ids.UNHANS_CLEANING_CSV, href=variant_cleaning_url(record.id),
                   download="", className="button"),
            html.A("export the variant (zip)", id=ids.UNHANS_ZIP, href=variant_zip_url(record.id), download="",
                   className="button"),
        ]),
    ]


def heatmaps(record, indices: Sequence[int]) -> List:
    """Per artifact sample: the image, the run's model's heatmap and the corrected model's, w.r.t. the
    class of origin (the heatmaps are computed by their route when the browser asks for them)."""
    def figure(src: str, caption: str):
        return html.Figure([html.Img(src=src, alt=caption), html.Figcaption(caption)])

    cid = record.origin["id"]
    return [html.Div(className="example", children=[
        html.Div(className="example-pair", style={"gridTemplateColumns": "repeat(3, 1fr)"}, children=[
            figure(thumb_url(cid, "image", index), f"sample {index}"),
            figure(variant_heatmap_url(record.id, index, "original"), "original model"),
            figure(variant_heatmap_url(record.id, index, "corrected"), "corrected")])])
        for index in indices]
