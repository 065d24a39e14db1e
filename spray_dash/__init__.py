"""SpRAy Studio's dashboard: serves a precompute run store in the browser.

``create_app(run_dir)`` (or ``create_app([RUN_A, RUN_B, ...])``) returns a Dash app with the
class leaderboard (``/``), the class explorer (``/class/<name>``), the artifact lab (``/lab``),
Un-Hans (``/unhans``), Find elsewhere (``/similar``) and, with several runs, the compare page
(``/compare``). The app reads the stores through :mod:`spray_dash.data` and never recomputes them.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Optional

__all__ = ["create_app", "ASSETS_DIR", "PAGES"]

PAGES = ("leaderboard", "explorer", "lab", "unhans", "similar", "compare", "not_found_404")

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"


def create_app(run_dir, *, cache_config: Optional[dict] = None, title: str = "SpRAy Studio"):
    """Build the Dash app for the run directory ``run_dir``, or for several runs.

    Parameters
    ----------
    run_dir : path or sequence of paths
        A run written by ``python -m precompute``, or several runs of the same data (the
        first is the primary run, shown by every page but the compare page); read-only,
        but for the lab's experiments and Un-Hans's variants, written into the primary run.
    cache_config : dict, optional
        flask-caching settings (default: in-process SimpleCache).
    title : str
        Browser title.

    Returns
    -------
    dash.Dash
        ``app.server`` is the Flask app (WSGI).
    """
    import dash
    from dash import Dash, dcc, html

    from . import data, guard, routes

    app = Dash(
        __name__,
        use_pages=True,
        pages_folder="",  # pages are imported below, after the app exists
        assets_folder=str(ASSETS_DIR),
        title=title,
        update_title=None,
        suppress_callback_exceptions=True,
    )
    data.configure(app.server, run_dir, cache_config)
    app.server.register_blueprint(routes.blueprint)
    guard.install_guards(app)
    for page in PAGES:  # each page module calls dash.register_page when imported
        importlib.import_module(f"{__name__}.pages.{page}")

    info = data.run_info()
    app.layout = html.Div(className="app-shell", children=[
        html.Header(className="topbar", children=[
            dcc.Link(className="brand", href="/", children=[
                html.Span("SpRAy", className="brand-strong"), html.Span(" Studio"),
            ]),
            html.Nav(className="topnav", children=[
                dcc.Link("Leaderboard", href="/", className="topnav-link"),
                dcc.Link("Artifact lab", href="/lab", className="topnav-link"),
                dcc.Link("Un-Hans", href="/unhans", className="topnav-link"),
                *([dcc.Link("Compare runs", href="/compare", className="topnav-link")]
                  if len(data.run_names()) > 1 else []),
            ]),
            html.Span(className="topbar-run", title=f"run {info['name']}" + (
                f" (also served: {', '.join(data.run_names()[1:])})" if len(data.run_names()) > 1 else ""),
                      children=f"{info['model']} · {info['classes_total']} classes"),
        ]),
        html.Main(className="page", children=dash.page_container),
    ])
    return app
