"""The Un-Hans page's view models, data access and routes, on a synthetic run with a stored variant."""
import io
import shutil
import subprocess
import sys
import zipfile

import dash
import pytest

from precompute.store import ExperimentWriter, RunStore, Variant
from spray_dash import data, unhans_views as views
from spray_dash.selection import encode_mask

REPORT = {
    "clean_accuracy": {"before": 0.93, "after": 0.942},
    "origin_accuracy": {"before": 0.96, "after": 0.96},
    "artifact_accuracy": {"before": 0.674, "after": 0.932},
    "paste": {"before": {"mean_delta_prob": 0.328, "mean_delta_rank": 3.04, "flip_rate": 0.335},
              "after": {"mean_delta_prob": 0.008, "mean_delta_rank": 0.1, "flip_rate": 0.01},
              "control_before": {"mean_delta_prob": 0.01, "mean_delta_rank": 0.0, "flip_rate": 0.0},
              "control_after": {"mean_delta_prob": 0.008, "mean_delta_rank": 0.0, "flip_rate": 0.0},
              "n": 3, "delta_probs": {"before": [0.5, 0.3, 0.2], "after": [0.0, 0.01, 0.02]}},
    "artifact_relevance": {"before": 0.65, "after": 0.13},
    "origin_tau": {"before": 2.55, "after": 1.13},
    "artifact_f1": {"before": 1.0, "after": 0.56},
}


def test_methods_offered_are_the_registered_corrections():
    from precompute.clarc import CAV_METHODS, CORRECTIONS

    assert set(views.METHODS) == set(CORRECTIONS.names())
    assert set(views.CAV_CHOICES) == set(CAV_METHODS.names())


def test_report_rows_show_each_figure_before_and_after():
    rows = {label: (before, after) for label, before, after in views.report_rows(REPORT)}
    assert rows["clean held-out accuracy"] == ("93.0 %", "94.2 %")
    assert rows["paste test: mean Δp(origin)"] == ("+0.328", "+0.008")
    assert rows["paste control: mean Δp(origin)"] == ("+0.010", "+0.008")
    assert rows["τ of the origin class"] == ("2.55", "1.13")
    # a report without an artifact has no paste rows, and no error
    bare = {k: v for k, v in REPORT.items() if k != "paste"}
    assert not any(label.startswith("paste") for label, _, _ in views.report_rows(bare))
    assert views.paste_deltas(REPORT) == ([0.5, 0.3, 0.2], [0.0, 0.01, 0.02]) and views.paste_deltas(bare) is None


def test_the_paste_histograms_of_both_models_are_overlaid():
    from spray_dash.figures import delta_histogram

    fig = delta_histogram(*views.paste_deltas(REPORT), names=("original model", "corrected"))
    assert [(t.type, t.name, list(t.x)) for t in fig.data] == [("histogram", "original model", [0.5, 0.3, 0.2]),
                                                               ("histogram", "corrected", [0.0, 0.01, 0.02])]
    assert fig.layout.barmode == "overlay"


def test_concept_parameter_round_trips_and_refuses_junk():
    token = encode_mask([1, 4, 7], 10)
    assert views.parse_concept(views.concept_param("c0001", token), {"c0001": 10}) == ("c0001", [1, 4, 7])
    for junk in (None, "", "c0001", "c9999:" + token, "c0001:!!", "c0001:" + encode_mask([], 10)):
        assert views.parse_concept(junk, {"c0001": 10}) is None


@pytest.fixture
def run_with_variant(app, synthetic_run, tmp_path):
    """The synthetic run with one stored P-ClArC-like variant, served by the session's app."""
    run = tmp_path / "run"
    shutil.copytree(synthetic_run, run, ignore=shutil.ignore_patterns("experiments", "variants"))
    store = RunStore(run)
    cid = store.finished_ids()[0]
    paths = [str(p) for p in store.arrays(cid)["paths"]]
    other = store.finished_ids()[1]
    other_path = str(store.arrays(other)["paths"][2])
    origin = store.class_info(cid)
    cleaning = ("path,class,score,in_selection\n" + f"{paths[0]},{origin['name']},9.5,1\n"
                + f"{other_path},{store.class_info(other)['name']},7.25,0\n" + "gone/x.png,nowhere,1.0,0\n")
    record = Variant(id="p-1", name="p-1", method="pclarc", created="2026-12-03T00:00:00", layer="classifier.3:input",
                     origin={"id": cid, "name": origin["name"], "label": origin["label"]},
                     selection={"source": "test", "indices": [0, 3, 5], "n": 3}, report=REPORT,
                     params={"projection": "excess", "warnings": ["measured on the run's own data"]},
                     base_weights_sha256="abc")
    ExperimentWriter(store).save_variant(record, {"projection.pt": b"P", "concept.pt": b"C",
                                                  "cleaning.csv": cleaning.encode()})
    bare = Variant(id="a-2", name="a-2", method="aclarc", created="2026-12-03T00:01:00", layer="features.4",
                   origin=record.origin, selection=record.selection, report={}, params={"layer_requested": "features.4"})
    ExperimentWriter(store).save_variant(bare, {"weights.pt": b"W"})
    data.configure(app.server, run)
    yield store, other, other_path
    data.configure(app.server, synthetic_run)


def test_cleaning_gallery_is_the_top_of_other_classes_located_in_the_run(run_with_variant):
    store, other, other_path = run_with_variant
    rows = data.variant_cleaning_elsewhere("p-1")
    # the origin class's row is passed over, and so is the path the run does not hold
    assert [(row["class_id"], row["index"], row["path"], row["score"]) for row in rows] == [(other, 2, other_path, 7.25)]
    assert data.locate_sample(store.class_info(other)["name"], other_path) == (other, 2)
    assert data.locate_sample("nowhere", other_path) is None and data.locate_sample("x", "gone/x.png") is None


def test_the_default_layer_is_named_only_once_known(run_with_variant):
    store = run_with_variant[0]
    assert data.default_layer() is None  # no variant says it used the default layer, and nothing ran here
    record = store.variant("p-1")
    copy = Variant.from_dict({**record.to_dict(), "id": "p-3", "name": "p-3", "layer": "fc:input",
                              "params": {"layer_requested": None}})
    ExperimentWriter(store).save_variant(copy, {})
    assert data.default_layer() == "fc:input"
    assert "named once the model has loaded" in views.layer_placeholder(None)
    assert views.layer_placeholder("fc:input").startswith("blank: fc:input")


def test_variant_routes_serve_the_zip_and_the_cleaning_list(run_with_variant, client):
    response = client.get("/variant/p-1.zip")
    assert response.status_code == 200 and response.mimetype == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.data)) as archive:
        names = set(archive.namelist())
        assert names == {"p-1/variant.json", "p-1/projection.pt", "p-1/concept.pt", "p-1/cleaning.csv",
                         "p-1/LOADING.txt"}
        assert archive.read("p-1/projection.pt") == b"P"
        loading = archive.read("p-1/LOADING.txt").decode()
    # LOADING.txt: the variant's facts, then the loader's and the projection's documentation from precompute
    assert loading.startswith("Model variant p-1 of run run: pclarc for class ")
    assert "weights_only=True" in loading and "apply_variant" in loading  # precompute/clarc/variants.py
    assert "projection mode: excess" in loading and "max(0, vᵀa − r)" in loading  # precompute/clarc/projection.py
    assert str(run_with_variant[0].root.parent) not in loading
    with zipfile.ZipFile(io.BytesIO(client.get("/variant/a-2.zip").data)) as archive:
        assert set(archive.namelist()) == {"a-2/variant.json", "a-2/weights.pt", "a-2/LOADING.txt"}
        assert "vᵀa − r" not in archive.read("a-2/LOADING.txt").decode()  # no projection, no projection docs
    csv_response = client.get("/variant/p-1/cleaning.csv")
    assert csv_response.status_code == 200 and csv_response.data.startswith(b"path,class,score,in_selection")
    assert "p-1-cleaning.csv" in csv_response.headers["Content-Disposition"]
    for bad in ("/variant/nope.zip", "/variant/..%2Fmanifest.zip", "/variant/p-1/weights.pt", "/variant/p-1/x",
                "/variant/a-2/cleaning.csv",  # a variant without a cleaning list
                "/variant/p-1/heatmap/0/other.webp", "/variant/nope/heatmap/0/original.webp",
                "/variant/p-1/heatmap/90/corrected.webp", "/variant/p-1/heatmap/-1/original.webp",
                "/variant/p%2F1/heatmap/0/original.webp", "/variant/" + "x" * 70 + ".zip"):
        assert client.get(bad).status_code == 404, bad


def test_views_of_the_form():
    assert views.position_text("original", "tr", 3, 4) == "original"
    assert views.position_text("random", None, None, None) == "random"
    assert views.position_text("corner", "tr", 0, 0) == "tr" and views.position_text("corner", None, 0, 0) == "bl"
    assert views.position_text("xy", "tr", 12, None) == "12,0" and views.position_text(None, None, 1, 1) == "original"
    from precompute.lab import Placement

    for mode in ("original", "random", "corner", "xy"):  # precompute reads each of them
        Placement.parse(views.position_text(mode, "tl", 5, 6)).validate()
    entries = [{"id": "art-1", "source": "draft", "class": "star"}, {"id": "lib-wm", "source": "library", "class": "star"},
               {"id": "lib-gb", "source": "library", "class": "arrow"}]
    assert views.default_artifact(entries, "star") == "lib-wm" and views.default_artifact(entries, "none") is None
    options = views.artifact_options(entries, lambda e: e["id"], "star")
    assert [o["value"] for o in options] == ["lib-wm", "art-1", "lib-gb"] and options[0]["label"].endswith("default")
    assert views.unhans_url(None, None) == "/unhans"
    assert views.unhans_url("c0001:abc", "v-1", "lib-wm") == "/unhans?concept=c0001%3Aabc&artifact=lib-wm&variant=v-1"


def test_the_form_refuses_bad_input_with_one_line(run_with_variant, app):
    from spray_dash.pages import unhans

    store = run_with_variant[0]
    cid = store.finished_ids()[0]
    n = len(store.arrays(cid)["paths"])
    every = views.concept_param(cid, encode_mask(range(n), n))
    form = dict(method="pclarc", layer="", cav="signal", artifact=None, position="original", corner="bl", x=0, y=0,
                epochs=10, lr=None)
    cases = {
        "no-cluster-9/cluster-1": (None, "cluster", cid, "no-cluster-k9", 1, "p-new"),
        "the whole class": (every, "selection", cid, "", 1, "p-new"),
        "taken": (views.concept_param(cid, encode_mask([1, 2], n)), "selection", cid, "", 1, "p-1"),
        "gone": ("c0001:!!", "selection", cid, "", 1, None),
    }
    with app.server.app_context():
        for case, (concept, source, origin, clustering, cluster, name) in cases.items():
            job, poll_off, message = unhans.start(1, concept, source, origin, clustering, cluster, *form.values(),
                                                  name)
            assert job is dash.no_update and poll_off is True, case
            assert "error" in str(message) and "\n" not in str(message.children), (case, message)
    assert {v.id for v in store.variants()} == {"p-1", "a-2"}  # nothing was written


def test_the_lab_links_here_with_its_selection_and_artifact(app):
    """(The explorer's link is followed by the browser test.)"""
    from spray_dash.pages import lab

    with app.server.app_context():
        cid = data.class_names()[0]["id"]
        token = encode_mask([1, 2], data.class_view(cid).n)
        page = str(lab.layout(removal=f"{cid}:{token}"))
        assert f"/unhans?concept={cid}%3A{token}" in page
        assert lab.unhans_link("lib-x", f"{cid}:{token}") == f"/unhans?concept={cid}%3A{token}&artifact=lib-x"


def test_the_page_lists_the_variant_and_browsing_it_imports_no_torch(run_with_variant, synthetic_run):
    probe = (
        "import sys\n"
        "from spray_dash import create_app\n"
        f"app = create_app({str(run_with_variant[0].root)!r})\n"
        "client = app.server.test_client()\n"
        "page = client.get('/unhans?variant=p-1')\n"
        "assert page.status_code == 200\n"
        "assert client.get('/variant/p-1/cleaning.csv').status_code == 200\n"
        "from spray_dash.pages import unhans\n"
        "with app.server.app_context():\n"
        "    assert 'p-1' in str(unhans.layout(variant='p-1'))\n"
        "    report, _ = unhans.show_variant('p-1')\n"
        "    assert 'unhans-summary' in str(report) and '94.2 %' in str(report)\n"
        "    assert 'measured on the run' in str(report) and 'thumb/' in str(report)\n"
        "    heatmaps = str(unhans.show_heatmaps(1, 'p-1'))\n"
        "    assert '/variant/p-1/heatmap/3/corrected.webp' in heatmaps and '/variant/p-1/heatmap/5/original.webp' in heatmaps\n"
        "    assert len(unhans.layout()) and 'a-2' in str(unhans.layout(variant='a-2'))\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"
