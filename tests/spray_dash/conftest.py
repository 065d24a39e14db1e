"""One synthetic store and one app for the dashboard's in-process tests."""
import pytest

from precompute.synthetic import write_synthetic_store


@pytest.fixture(scope="session")
def synthetic_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic") / "run"
    write_synthetic_store(out, n_classes=4, n_per_class=90, size=24, planted_every=2, maps=("tsne",))
    return out


@pytest.fixture(scope="session")
def app(synthetic_run):
    from spray_dash import create_app

    return create_app(synthetic_run)


@pytest.fixture
def client(app):
    client = app.server.test_client()
    assert client.get("/").status_code == 200  # Dash sets up its callbacks on the first request
    return client


def callback_key(app, first_output: str) -> str:
    """The app's key of the callback whose first output is ``first_output`` (``id.prop``)."""
    keys = [key for key in app.callback_map if key.startswith(".." + first_output) or key == first_output]
    assert len(keys) == 1, keys
    return keys[0]


def post_callback(client, output: str, outputs, inputs, state=(), changed=()):
    """POST a Dash callback the way the browser does; return (status, response JSON)."""
    def props(items):
        return [{"id": cid, "property": prop, "value": value} for cid, prop, value in items]

    payload = {
        "output": output,
        "outputs": [{"id": cid, "property": prop} for cid, prop in outputs],
        "inputs": props(inputs),
        "state": props(state),
        "changedPropIds": list(changed),
    }
    response = client.post("/_dash-update-component", json=payload)
    return response.status_code, (response.get_json() if response.status_code == 200 else response.data)
