"""Find elsewhere: the CSV route and the page's layout, on a copy of the synthetic run with its index."""
import shutil

import pytest

from precompute.search import build_search_index
from precompute.store import RunStore
from spray_dash import data
from spray_dash.selection import encode_mask


@pytest.fixture
def indexed_run(app, synthetic_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(synthetic_run, run, ignore=shutil.ignore_patterns("experiments", "variants", "search"))
    build_search_index(run)
    data.configure(app.server, run)
    yield RunStore(run)
    data.configure(app.server, synthetic_run)


def test_similar_csv_lists_other_classes_best_first(indexed_run, client):
    cid = indexed_run.finished_ids()[0]
    n = indexed_run.summary(cid)["n"]
    token = encode_mask(range(5), n)
    response = client.get(f"/similar/{cid}.csv?sel={token}&top=7")
    assert response.status_code == 200
    lines = response.data.decode().splitlines()
    assert lines[0] == "rank,class,path,score,run" and len(lines) == 8
    rows = [line.split(",") for line in lines[1:]]
    own = indexed_run.class_info(cid)["name"]
    assert all(row[1] != own for row in rows)
    scores = [float(row[3]) for row in rows]
    assert scores == sorted(scores, reverse=True)
    assert all(row[4] == indexed_run.root.name for row in rows)  # the run's name, never its path
    for bad in (f"/similar/{cid}.csv", f"/similar/{cid}.csv?sel=zz", "/similar/c9999.csv?sel=" + token,
                f"/similar/{cid}.csv?sel={token}&top=x", "/similar/../manifest.csv"):
        assert client.get(bad).status_code == 404, bad


def test_similar_page_groups_by_class_and_explains_a_missing_index(indexed_run, app):
    from spray_dash.pages import similar

    cid = indexed_run.finished_ids()[0]
    token = encode_mask(range(5), indexed_run.summary(cid)["n"])
    with app.server.app_context():
        page = str(similar.layout(concept=f"{cid}:{token}", top="30"))
        assert "similar-results" in page and "similar-group" in page
        assert "Lasso a group" in str(similar.layout(concept="junk"))
        shutil.rmtree(indexed_run.root / "search")
        assert "no similarity index yet" in str(similar.layout(concept=f"{cid}:{token}"))
