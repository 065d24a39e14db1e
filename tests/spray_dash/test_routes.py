"""Thumbnail, prototype and export routes: valid requests served with cache headers, anything else 404."""
import csv
import io
import json

import numpy as np
import pytest
from PIL import Image

from precompute.store import RunStore
from spray_dash.selection import encode_mask


def test_thumbnail_is_the_stored_bytes_with_cache_headers(client, synthetic_run):
    response = client.get("/thumb/c0001/heatmap/3.webp")
    assert response.status_code == 200 and response.mimetype == "image/webp"
    assert response.data == RunStore(synthetic_run).thumbnail("c0001", "heatmap", 3)
    assert "max-age" in response.headers["Cache-Control"] and response.headers["ETag"]
    again = client.get("/thumb/c0001/heatmap/3.webp", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304


@pytest.mark.parametrize("path", [
    "/thumb/c0001/heatmap/90.webp", "/thumb/c0001/heatmap/-1.webp", "/thumb/c9999/image/0.webp",
    "/thumb/c0001/manifest/0.webp", "/thumb/c0001/image/0.png", "/thumb/..%2F..%2Fmanifest.json",
    "/thumb/c0001/../../manifest.json", "/thumb/%2Fetc%2Fpasswd/image/0.webp", "/thumb/c0001/image/1e3.webp",
    "/prototype/c0001.webp", "/prototype/c0001.webp?sel=@@@", "/prototype/c0009.webp?sel=AAAA",
    "/export/c0001.xml?sel=AAAA", "/export/c0001.csv?sel=", "/export/c0001.csv",
])
def test_bad_requests_are_404(client, path):
    assert client.get(path).status_code == 404


def test_prototype_is_the_mean_heatmap(client, synthetic_run):
    store = RunStore(synthetic_run)
    n = store.summary("c0000")["n"]
    token = encode_mask(range(10), n)
    response = client.get(f"/prototype/c0000.webp?sel={token}")
    assert response.status_code == 200
    image = np.asarray(Image.open(io.BytesIO(response.data)).convert("RGB"))
    mean = store.heatmaps("c0000")[:10].astype(np.float32).mean(axis=0)
    # the brightest red cell of the rendering sits where the mean relevance peaks
    peak = np.unravel_index(np.argmax(mean), mean.shape)
    scale = image.shape[0] // mean.shape[0]
    assert image[peak[0] * scale + scale // 2, peak[1] * scale + scale // 2, 0] > 200


def test_exports_list_exactly_the_selection(client, synthetic_run):
    store = RunStore(synthetic_run)
    n = store.summary("c0000")["n"]
    chosen = [0, 7, 42]
    token = encode_mask(chosen, n)
    response = client.get(f"/export/c0000.csv?sel={token}&clustering=ward-k3")
    assert response.status_code == 200 and "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.data.decode())))
    paths = store.arrays("c0000")["paths"]
    assert [int(r["index"]) for r in rows] == chosen
    assert [r["path"] for r in rows] == [str(paths[i]) for i in chosen]
    labels = store.arrays("c0000")["clustering_labels"][list(store.arrays("c0000")["clustering_names"]).index("ward-k3")]
    assert [int(r["cluster"]) for r in rows] == [int(labels[i]) for i in chosen]
    doc = json.loads(client.get(f"/export/c0000.json?sel={token}").data)
    assert [s["index"] for s in doc["samples"]] == chosen and doc["class"] == "class_0000"
    assert client.get(f"/export/c0000.csv?sel={token}&clustering=ward-k99").status_code == 404


def test_exports_name_the_run_never_its_path(client, synthetic_run):
    """The selection's JSON export once held the run's absolute path on the server."""
    from precompute.store import ExperimentWriter

    ExperimentWriter(RunStore(synthetic_run)).save_experiment(
        {"id": "paste-run-name", "kind": "paste", "created": "2026", "summary": {},
         "rows": [{"class_id": "c0001", "index": 3, "path": "class_0001/00003.png"}]}, {})
    token = encode_mask([0, 7, 42], RunStore(synthetic_run).summary("c0000")["n"])
    exports = [f"/export/c0000.csv?sel={token}", f"/export/c0000.json?sel={token}&clustering=ward-k3",
               "/experiment/paste-run-name.csv", "/experiment/paste-run-name.json"]
    server_paths = {str(synthetic_run), str(synthetic_run.resolve()), str(synthetic_run.parent.resolve())}
    for url in exports:
        response = client.get(url)
        assert response.status_code == 200, url
        body = response.get_data(as_text=True)
        assert not [path for path in server_paths if path in body], url
        if url.split("?")[0].endswith(".json"):
            assert json.loads(body)["run"] == synthetic_run.name == "run"
        else:
            assert {row["run"] for row in csv.DictReader(io.StringIO(body))} == {"run"}
    shell = client.get("/_dash-layout").get_data(as_text=True)  # the top bar, on every page
    assert "run run" in shell and not [path for path in server_paths if path in shell]


def routed_page(app, client, path):
    """The page content that Dash Pages' router produces for ``path`` (as JSON text), as the browser asks for it."""
    from tests.spray_dash.conftest import callback_key, post_callback

    pathname, _, search = path.partition("?")
    status, body = post_callback(client, callback_key(app, "_pages_content.children"),
                                 [("_pages_content", "children"), ("_pages_store", "data")],
                                 inputs=[("_pages_location", "pathname", pathname),
                                         ("_pages_location", "search", "?" + search if search else "")])
    assert status == 200, body
    return json.dumps(body["response"]["_pages_content"]["children"], ensure_ascii=False)


@pytest.mark.parametrize("path, expected, absent", [
    ("/", ['"leaderboard"', '"tau-overview"', "class_0001"], ["Nothing here"]),
    ("/class/class_0001", ['"embedding"', '"gallery"', '"class_0001"', '"c0001"'], ["Unknown class"]),
    ("/class/class_0001?k=zz&map=1", ['"embedding"', '"c0001"'], ["Unknown class"]),  # bad query: default view
    ("/class/nope", ["Unknown class", "nope"], ['"embedding"']),
    ("/class/%2e%2e", ["Unknown class"], ['"embedding"']),
    ("/lab", ['"lab-artifact"', '"lab-run-paste"', '"lab-run-removal"'], ["Nothing here"]),
    ("/nothing/here", ["Nothing here"], ['"leaderboard"', '"embedding"']),
])
def test_pages_render_for_known_and_unknown_urls(app, client, path, expected, absent):
    """The shell answers 200 on any URL; what the router puts in it is the page."""
    assert client.get(path).status_code == 200
    page = routed_page(app, client, path)
    assert all(text in page for text in expected), (path, [text for text in expected if text not in page])
    assert not [text for text in absent if text in page], path


def test_lab_routes_serve_drafts_and_experiments(client, synthetic_run):
    from precompute.store import ExperimentWriter

    store = RunStore(synthetic_run)
    writer = ExperimentWriter(store)
    entry = writer.save_artifact_draft({"name": "box", "class": "class_0000", "position": [1, 2], "size": [3, 3]},
                                       b"\x89PNG-not-really")
    assert client.get(f"/artifact/{entry['id']}.png").data == b"\x89PNG-not-really"
    record = {"id": "paste-test-1", "kind": "paste", "created": "2026", "summary": {},
              "rows": [{"class_id": "c0001", "index": 3, "prob_before": 0.1, "prob_after": 0.6}]}
    writer.save_experiment(record, {"ex0-after.webp": b"webp"})
    assert client.get("/experiment/paste-test-1/ex0-after.webp").data == b"webp"
    rows = list(csv.DictReader(io.StringIO(client.get("/experiment/paste-test-1.csv").data.decode())))
    assert rows[0]["experiment"] == "paste-test-1" and rows[0]["prob_after"] == "0.6"
    assert json.loads(client.get("/experiment/paste-test-1.json").data)["id"] == "paste-test-1"


@pytest.mark.parametrize("path", [
    "/artifact/nope.png", "/artifact/..%2Fmanifest.png", "/artifact/lib-nothing.png",
    "/experiment/nope/ex0-after.webp", "/experiment/paste-test-1/record.json", "/experiment/paste-test-1/../x",
    "/experiment/paste-test-1.xml", "/experiment/artifacts/x.png", "/experiment/%2e%2e/manifest.json",
])
def test_lab_routes_refuse_everything_else(client, path):
    assert client.get(path).status_code == 404


def test_browsing_never_imports_torch(synthetic_run):
    """Pages, thumbnails and prototypes work without torch (about 500 MB): only the lab's model needs it."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import sys
        from precompute.store import RunStore
        from spray_dash import create_app
        from spray_dash.selection import encode_mask
        client = create_app({str(synthetic_run)!r}).server.test_client()
        n = RunStore({str(synthetic_run)!r}).summary("c0000")["n"]
        for url in ["/", "/class/class_0000", "/lab", "/thumb/c0000/heatmap/0.webp",
                    "/prototype/c0000.webp?sel=" + encode_mask(range(5), n)]:
            assert client.get(url).status_code == 200, url
        print("torch" in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "False"
