"""The app's data-access layer: ranking, class views and memoisation."""
import numpy as np
import pytest

from precompute.store import RunStore
from spray_dash import data


def test_leaderboard_ranks_by_tau(app, synthetic_run):
    with app.server.app_context():
        rows = data.leaderboard()
    taus = [row["tau"] for row in rows]
    assert taus == sorted(taus, reverse=True)
    assert [row["rank"] for row in rows] == list(range(1, 5))
    store = RunStore(synthetic_run)
    for row in rows:
        assert row["tau"] == pytest.approx(store.summary(row["id"])["tau"], abs=1e-5)
        assert row["spectrum"] == pytest.approx(store.summary(row["id"])["eigenvalues"][:16], abs=1e-4)
    planted = {row["name"] for row in rows[:2]}
    assert planted == {"class_0000", "class_0002"}, "planted classes rank first"


def test_class_view_is_the_stored_arrays(app, synthetic_run):
    with app.server.app_context():
        view = data.class_view("c0002")
        assert data.class_id_for_name("class_0002") == "c0002"
        assert data.class_id_for_name("missing") is None
    arrays = RunStore(synthetic_run).arrays("c0002")
    np.testing.assert_array_equal(view.spectral, arrays["eigenvectors"])
    np.testing.assert_array_equal(view.maps["tsne"], arrays["maps"][0])
    assert view.families["ward"] == list(range(2, 31))
    np.testing.assert_array_equal(view.labels("ward", 3), arrays["clustering_labels"][
        list(arrays["clustering_names"]).index("ward-k3")])


def test_class_view_is_read_once(app, monkeypatch):
    calls = []
    original = RunStore.arrays

    def counting(self, cid, analysis=None):
        calls.append(cid)
        return original(self, cid, analysis)

    monkeypatch.setattr(RunStore, "arrays", counting)
    with app.server.app_context():
        data.cache.clear()  # class_view memoises through a private function
        for _ in range(5):
            data.class_view("c0003")
    assert calls == ["c0003"]


def test_leaderboard_has_the_second_class_score_and_its_column(app, synthetic_run):
    from spray_dash.pages import leaderboard

    store = RunStore(synthetic_run)
    with app.server.app_context():
        rows = data.leaderboard()
    for row in rows:
        assert row["default_separability"] == pytest.approx(store.summary(row["id"])["default_separability"], abs=1e-5)
    column = next(c for c in leaderboard.columns(rows) if c["field"] == "default_separability")
    assert column["comparator"] == {"function": "sprayNullsLast"}  # sortable: the classes ranked by it
