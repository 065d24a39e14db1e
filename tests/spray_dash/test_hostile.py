"""Hostile and broken requests: never a 500, never a stack trace, never a file outside the store."""
import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

PREFIXES = ["/", "/class/", "/thumb/", "/thumb/c0000/", "/thumb/c0000/image/", "/prototype/", "/export/",
            "/artifact/", "/experiment/", "/lab", "/lab/", "/assets/", "/_dash-component-suites/"]
SEGMENTS = st.one_of(
    st.sampled_from(["..", "%2e%2e", "%2E%2E%2F", "..%2f", "%2f", "%00", "c0000", "c9999", "image", "heatmap",
                     "0.webp", "-1.webp", "99999999999999999999.webp", "manifest.json", "etc", "passwd",
                     "%ff%fe", "class_0001", "lab", "record.json", "artifacts", "~", "%5c..%5c", "\u00e9", "a" * 300]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/?#"), min_size=1,
            max_size=12),
)
QUERIES = st.one_of(
    st.just(""),
    st.sampled_from(["?sel=%%%", "?sel=" + "A" * 9000, "?k=-1&map=../x", "?cluster=1e9", "?page=nan",
                     "?dims=1,1,1", "?a=%zz", "?sel=AAAA&clustering=../../x", "?artifact=../manifest",
                     "?experiment=%00", "?removal=c0000:%%%", "?removal=../x:y"]),
    st.dictionaries(st.sampled_from(["map", "k", "sel", "color", "cluster", "dims", "page", "artifact", "origin",
                                     "removal", "experiment"]), st.text(max_size=30), max_size=4).map(
        lambda d: "?" + "&".join(f"{k}={v}" for k, v in d.items())),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=st.sampled_from(PREFIXES), segments=st.lists(SEGMENTS, max_size=4), query=QUERIES)
def test_fuzzed_urls_never_fail(client, prefix, segments, query):
    path = prefix + "/".join(segments) + query
    response = client.get(path)
    assert response.status_code in (200, 301, 302, 304, 308, 400, 404, 405), (path, response.status_code)
    body = response.get_data()
    assert b"Traceback" not in body and b'File "' not in body, path


@pytest.mark.parametrize("path", ["/thumb/../../manifest.json", "/thumb/c0000/image/../../../manifest.json",
                                  "/export/..%2F..%2Fmanifest.json", "/artifact/../../manifest.png",
                                  "/experiment/../../../etc/passwd", "/thumb//etc/passwd"])
def test_traversal_gets_404_not_a_file(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert b"schema_version" not in response.get_data() and b"root:" not in response.get_data()


@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b"{}", b'{"output": "nope"}',
                                  b'{"output": "explorer-selection.data", "outputs": 1, "inputs": "x"}',
                                  json.dumps({"output": "x" * 10000}).encode()])
def test_malformed_callback_calls_get_400(client, body):
    response = client.post("/_dash-update-component", data=body, content_type="application/json")
    assert response.status_code == 400


def test_oversized_requests_are_refused(client):
    response = client.post("/_dash-update-component", data=b"x" * (17 * 1024 * 1024), content_type="application/json")
    assert response.status_code == 413


def test_security_headers(client):
    response = client.get("/thumb/c0000/image/0.webp")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"


def digest_tree(root: Path, skip: str = "experiments"):
    digests = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and skip not in path.relative_to(root).parts:
            digests[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def test_browsing_leaves_the_store_untouched(client, synthetic_run):
    before = digest_tree(synthetic_run)
    for path in ("/", "/class/class_0000?map=tsne&color=ward&k=3&cluster=1", "/thumb/c0000/image/1.webp",
                 "/thumb/c0001/heatmap/2.webp", "/lab", "/export/c0000.csv?sel=AAAA"):
        client.get(path)
    assert digest_tree(synthetic_run) == before


def test_public_host_warns_and_debug_is_off(monkeypatch, capsys, synthetic_run):
    import app as app_module
    from dash import Dash

    served, debug_runs = [], []
    monkeypatch.setattr(app_module, "serve", lambda app, **kwargs: served.append(kwargs))
    monkeypatch.setattr(Dash, "run", lambda self, **kwargs: debug_runs.append(kwargs))
    assert app_module.main([str(synthetic_run), "--port", "8999"]) == 0
    assert served[-1]["host"] == "127.0.0.1" and not debug_runs, "production server, debug off, loopback only"
    assert "WARNING" not in capsys.readouterr().err
    assert app_module.main([str(synthetic_run), "--host", "0.0.0.0", "--port", "8999"]) == 0
    err = capsys.readouterr().err
    assert "WARNING" in err and "anyone" in err
    assert served[-1]["host"] == "0.0.0.0" and not debug_runs
    assert app_module.main([str(synthetic_run), "--debug", "--port", "8999"]) == 0
    assert debug_runs[-1]["debug"] is True and debug_runs[-1]["host"] == "127.0.0.1"


def test_app_refuses_a_missing_run(capsys, tmp_path):
    import app as app_module

    assert app_module.main([str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "not a SpRAy run" in err and "Traceback" not in err
