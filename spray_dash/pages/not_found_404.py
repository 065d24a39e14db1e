"""A friendly page for unknown URLs (never a stack trace)."""
import dash
from dash import dcc, html



def layout(**_query):
    return html.Div(className="empty-state", children=[
        html.H2("Nothing here"),
        html.P("This address does not match a page or a class of this run."),
        dcc.Link("Back to the leaderboard", href="/"),
    ])


dash.register_page(__name__, path="/404", name="Not found", layout=layout)
