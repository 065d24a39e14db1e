"""Selections, URL state and exports: pure functions."""
import csv
import io
import json
from urllib.parse import parse_qsl

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spray_dash.selection import (
    ViewState,
    decode_mask,
    encode_mask,
    export_csv,
    export_json,
    export_rows,
    indices_from_selected_data,
    page_slice,
    parse_view_state,
    view_query,
)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 3000).flatmap(lambda n: st.tuples(st.just(n), st.sets(st.integers(0, n - 1)))))
def test_mask_round_trip(case):
    n, indices = case
    token = encode_mask(indices, n)
    assert decode_mask(token, n).tolist() == sorted(indices)
    assert all(c.isalnum() or c in "-_" for c in token), "URL-safe"


def test_mask_tokens_stay_short():
    rng = np.random.default_rng(0)
    token = encode_mask(rng.choice(1300, 700, replace=False), 1300)
    assert len(token) < 260


@pytest.mark.parametrize("token", ["", "!!!", "AAAA", "x" * 10000, encode_mask([5], 10)])
def test_malformed_or_foreign_tokens_are_rejected(token):
    # the last one belongs to a class of 10 samples, not 300
    assert decode_mask(token, 300) is None


def test_token_with_bits_beyond_n_is_rejected():
    assert decode_mask(encode_mask([9], 10), 9) is None


def test_indices_from_selected_data():
    payload = {"points": [{"customdata": 4}, {"customdata": [2]}, {"customdata": 99}, {"customdata": "x"},
                          {"customdata": 4}]}
    assert indices_from_selected_data(payload, 10).tolist() == [2, 4]
    assert indices_from_selected_data(None, 10) is None
    assert indices_from_selected_data({"points": []}, 10) is None


FAMILIES = {"kmeans": [2, 3, 4], "ward": [2, 3]}


def parse(query, n=50):
    return parse_view_state(query, maps=["umap", "tsne"], families=FAMILIES, q=8, n=n,
                            default_family="ward", default_k=3)


def test_view_state_round_trips_through_the_url():
    token = encode_mask([1, 5, 7], 50)
    state = ViewState(map="spectral", dims=(2, 5), color="kmeans", k=4, sel=token, page=2)
    query = dict(parse_qsl(view_query(state)[1:]))
    restored = parse(query)
    assert (restored.map, restored.dims, restored.color, restored.k, restored.sel, restored.page) == \
        ("spectral", (2, 5), "kmeans", 4, token, 2)


@pytest.mark.parametrize("query", [
    {}, {"map": "../../etc"}, {"k": "-1"}, {"k": "10000000000000000000"}, {"color": "<script>"},
    {"dims": "a,b"}, {"dims": "1,1"}, {"dims": "1,99"}, {"cluster": "x"}, {"sel": "%%%"}, {"page": "-5"},
    {"color": "kmeans", "k": "7"},
])
def test_hostile_queries_fall_back_to_defaults(query):
    state = parse(query)
    assert state.map in ("umap", "tsne", "spectral")
    assert state.color in ("kmeans", "ward", "correct", "prob")
    assert state.k in FAMILIES.get(state.color, [None])
    assert all(0 <= d < 8 for d in state.dims) and state.dims[0] != state.dims[1]
    assert state.sel is None and state.page >= 0


def test_cluster_in_range_is_kept_and_sel_wins():
    assert parse({"color": "ward", "k": "3", "cluster": "2"}).cluster == 2
    assert parse({"color": "ward", "k": "3", "cluster": "3"}).cluster is None
    token = encode_mask([3], 50)
    state = parse({"color": "ward", "k": "3", "cluster": "1", "sel": token})
    assert state.sel == token and state.cluster is None


def test_page_slice():
    assert page_slice(100, 0, 48) == (0, 48, 0, 3)
    assert page_slice(100, 2, 48) == (96, 100, 2, 3)
    assert page_slice(100, 99, 48) == (96, 100, 2, 3)
    assert page_slice(0, 0, 48) == (0, 0, 0, 1)


def test_exports_hold_the_selection():
    n = 6
    rows = export_rows(
        [1, 4], class_name="bee", paths=[f"bee/{i}.png" for i in range(n)], label_names=["ant", "bee", "cat"],
        top_classes=np.tile([1, 0, 2], (n, 1)), top_probs=np.full((n, 3), 0.5, np.float32),
        true_rank=np.ones(n, np.int32), true_prob=np.full(n, 0.5, np.float32),
        clustering="ward-k2", cluster_labels=np.array([0, 1, 0, 1, 1, 0]))
    parsed = list(csv.DictReader(io.StringIO(export_csv(rows, run="run-1"))))
    assert [r["path"] for r in parsed] == ["bee/1.png", "bee/4.png"]
    assert [r["cluster"] for r in parsed] == ["1", "1"]
    assert parsed[0]["top5"] == "bee|ant|cat" and parsed[0]["top1"] == "bee"
    assert {r["run"] for r in parsed} == {"run-1"}
    doc = json.loads(export_json(rows, run="run-1", class_id="c0001", class_name="bee"))
    assert doc["count"] == 2 and doc["samples"][1]["index"] == 4 and doc["run"] == "run-1"


def test_selection_medoid_is_the_most_connected_selected_sample():
    from spray_dash.selection import selection_medoid

    # sample 2 is everybody's neighbour; 5 is not selected although it is central too
    knn = np.array([[2, 5], [2, 5], [0, 1], [2, 5], [2, 5], [2, 0]])
    dist = np.array([[1.0, 2.0], [1.0, 2.0], [1.0, 1.0], [1.0, 2.0], [1.0, 2.0], [1.0, 1.0]])
    assert selection_medoid(knn, dist, [0, 1, 2, 3, 4]) == 2
    assert selection_medoid(knn, dist, [0, 1, 3, 4]) in (0, 1, 3, 4)
    # equal degrees: the smaller mean distance to selected neighbours wins, then the smaller index
    knn = np.array([[1], [0], [3], [2]])
    dist = np.array([[3.0], [3.0], [1.0], [1.0]])
    assert selection_medoid(knn, dist, [0, 1, 2, 3]) == 2
    assert selection_medoid(knn, dist, [0, 1]) == 0
    assert selection_medoid(knn, dist, [3]) == 3  # a lone sample is its own medoid
