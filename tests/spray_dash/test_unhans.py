"""The Un-Hans page's view models, data access and routes, on a synthetic run with a stored variant."""
import io
import shutil
import subprocess
import sys
import zipfile

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
                     selection={"source": "test", "indices": [0], "n": 1}, report=REPORT,
                     base_weights_sha256="abc")
    ExperimentWriter(store).save_variant(record, {"projection.pt": b"P", "concept.pt": b"C",
                                                  "cleaning.csv": cleaning.encode()})
    data.configure(app.server, run)
    yield store, other, other_path
    data.configure(app.server, synthetic_run)


def test_cleaning_rows_know_their_class_and_index(run_with_variant):
    store, other, other_path = run_with_variant
    rows = data.variant_cleaning("p-1")
    assert [row["score"] for row in rows] == [9.5, 7.25, 1.0]
    elsewhere = views.cleaning_elsewhere(rows, store.variant("p-1").origin["name"])
    assert [(row["class_id"], row["index"]) for row in elsewhere] == [(other, 2)]  # the unknown path is left out


def test_variant_routes_serve_the_zip_and_the_cleaning_list(run_with_variant, client):
    response = client.get("/variant/p-1.zip")
    assert response.status_code == 200 and response.mimetype == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.data)) as archive:
        names = set(archive.namelist())
        assert names == {"p-1/variant.json", "p-1/projection.pt", "p-1/concept.pt", "p-1/cleaning.csv",
                         "p-1/LOADING.txt"}
        loading = archive.read("p-1/LOADING.txt").decode()
        assert "projection.pt" in loading and "weights_only=True" in loading and "/tmp" not in loading
    csv_response = client.get("/variant/p-1/cleaning.csv")
    assert csv_response.status_code == 200 and csv_response.data.startswith(b"path,class,score,in_selection")
    for bad in ("/variant/nope.zip", "/variant/..%2Fmanifest.zip", "/variant/p-1/weights.pt", "/variant/p-1/x"):
        assert client.get(bad).status_code == 404, bad


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
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"
