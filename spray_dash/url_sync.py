"""Keep the address bar in step with a page's view, without a navigation.

A page writes the URL of its current view into a ``dcc.Store``; :func:`sync_url` registers
the clientside callback that puts it in the address bar with ``history.replaceState``, so
a copied link restores the view and the back button is not flooded.
"""
from dash import Input, Output, clientside_callback

__all__ = ["sync_url"]

REPLACE_URL = """function (url) {
    if (url && window.location.pathname + window.location.search !== url) {
        window.history.replaceState(window.history.state, "", url);
    }
    return window.dash_clientside.no_update;
}"""


def sync_url(url_store: str, done_store: str) -> None:
    """Register the callback that shows ``url_store``'s URL (``done_store`` is its dummy output)."""
    clientside_callback(REPLACE_URL, Output(done_store, "data"), Input(url_store, "data"), prevent_initial_call=True)
