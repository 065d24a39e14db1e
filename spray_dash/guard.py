"""Request hygiene for a dashboard shared on a network.

* Malformed calls of Dash's callback endpoint (not JSON, unknown callback, wrong shapes)
  are answered with 400 before Dash sees them. Otherwise Dash raises inside its
  dispatcher and answers 500. Real callback errors still surface.
* Request bodies are capped (the artifact upload is the largest legitimate one).
* Unknown files under Dash's own ``/_dash-component-suites/`` are 404 (Dash raises there).
* Responses say what they are (``nosniff``) and may not be framed by other sites.
"""
from __future__ import annotations

from flask import Response, request

__all__ = ["install_guards", "MAX_REQUEST_BYTES"]

MAX_REQUEST_BYTES = 16 * 1024 * 1024
_CALLBACK_PATH = "/_dash-update-component"


def _valid_items(items) -> bool:
    return isinstance(items, list) and all(
        (isinstance(item, dict) and "id" in item and isinstance(item.get("property"), str))
        or (isinstance(item, list) and _valid_items(item))  # pattern-matching ALL inputs come as lists
        for item in items
    )


def install_guards(app) -> None:
    """Install the checks on a Dash app's Flask server."""
    server = app.server
    server.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES

    @server.before_request
    def reject_malformed_callbacks():
        if request.path != _CALLBACK_PATH or request.method != "POST":
            return None
        payload = request.get_json(silent=True)
        outputs = payload.get("outputs") if isinstance(payload, dict) else None
        if (
            not isinstance(payload, dict)
            or payload.get("output") not in app.callback_map
            or not (isinstance(outputs, dict) or _valid_items(outputs))
            or not _valid_items(payload.get("inputs", []))
            or not _valid_items(payload.get("state", []))
        ):
            return Response("bad callback request", status=400, mimetype="text/plain")
        return None

    from dash.exceptions import DependencyException

    @server.errorhandler(DependencyException)
    def unknown_component_file(_error):
        # Dash raises this for /_dash-component-suites/ paths outside its libraries: a 404, not a 500
        return Response("not found", status=404, mimetype="text/plain")

    @server.after_request
    def security_headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response
