"""Similarity search: pooled |relevance| vectors, the faiss index against brute force, the stored index, the CLI."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from precompute.cli import main
from precompute.search import build_index, relevance_vectors, search
from precompute.search.vectors import pool_matrix
from precompute.store import RunStore

ROOT = Path(__file__).resolve().parents[3]


def test_vectors_pool_absolute_relevance_to_the_grid_and_have_unit_length():
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(3, 16, 16)).astype(np.float32)
    got = relevance_vectors(maps, grid=4)
    pooled = np.abs(maps).reshape(3, 4, 4, 4, 4).sum(axis=(2, 4)).reshape(3, 16)  # 4x4 blocks, by hand
    np.testing.assert_allclose(got, pooled / np.linalg.norm(pooled, axis=1, keepdims=True), rtol=1e-5)
    # the sign does not matter: an artifact drawing negative relevance is found like a positive one
    np.testing.assert_allclose(relevance_vectors(-maps, grid=4), got, rtol=1e-6)
    assert np.all(relevance_vectors(np.zeros((1, 7, 9)), grid=4) == 0)
    # uneven sizes: area weights, every pixel counted once
    weights = pool_matrix(10, 4)
    np.testing.assert_allclose(weights.sum(axis=0), 1.0)
    np.testing.assert_allclose(weights.sum(axis=1), 2.5)


def test_exact_index_equals_brute_force_and_hnsw_finds_most_of_it():
    rng = np.random.default_rng(1)
    vectors = np.abs(rng.normal(size=(3000, 64))).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[:20] + 0.01
    brute = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    _, exact = search(build_index(vectors, kind="exact"), queries, 10)
    np.testing.assert_array_equal(exact, brute)
    _, approximate = search(build_index(vectors, kind="hnsw"), queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(approximate, brute)])
    assert recall > 0.8


@pytest.fixture(scope="module")
def planted_run(demo_run, tmp_path_factory):
    """A run of three demo classes in which 6 crescent and 6 ring images carry the star class's watermark."""
    from precompute.lab import library_artifact_of

    tmp = tmp_path_factory.mktemp("planted")
    data = tmp / "data"
    demo = RunStore(demo_run)
    watermark = library_artifact_of(demo, "star")
    planted = []
    for name in ("star", "crescent", "ring"):
        shutil.copytree(demo.data_root() / name, data / name)
        if name != "star":
            for path in sorted((data / name).iterdir())[:6]:
                image = np.asarray(Image.open(path).convert("RGB")).astype(np.float32)
                x, y = watermark.position
                patch = watermark.rgba[:image.shape[0] - y, :image.shape[1] - x].astype(np.float32)
                alpha = patch[..., 3:] / 255
                region = image[y:y + patch.shape[0], x:x + patch.shape[1]]
                image[y:y + patch.shape[0], x:x + patch.shape[1]] = region * (1 - alpha) + patch[..., :3] * alpha
                Image.fromarray(image.round().astype(np.uint8)).save(path)
                planted.append(f"{name}/{path.name}")
    (tmp / "classes.json").write_text(json.dumps(demo.label_names()))
    out = tmp / "run"
    process = subprocess.run(
        [sys.executable, "-m", "precompute", "run", "--data", str(data), "--model", "spray_demo_vgg",
         "--weights", str(demo_run / "model" / "weights.pt"), "--out", str(out), "--image-size", "64",
         "--normalize", "none", "--class-index", str(tmp / "classes.json"), "--maps", "umap", "--quiet"],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert process.returncode == 0, process.stderr
    return out, set(planted), demo_run


def test_similar_finds_the_pasted_watermark_in_other_classes(planted_run):
    from precompute.evaluate import evaluate_run

    out, planted, demo_run = planted_run
    assert (out / "search" / "search.json").is_file()  # run built the index when it finished
    cluster = evaluate_run(out, demo_run / "truth.csv")["classes"]["star"]["best_clustering"]
    process = subprocess.run([sys.executable, "-m", "precompute", "similar", str(out), "--class", "star",
                              "--cluster", cluster, "--top", "1000", "--other-classes"],
                             capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert process.returncode == 0, process.stderr
    results = json.loads(process.stdout.strip().splitlines()[-1])["results"]
    assert len(results) == 160 and all(row["class"] in ("crescent", "ring") for row in results)
    scores = [row["score"] for row in results]
    assert scores == sorted(scores, reverse=True)
    is_planted = np.array([row["path"] in planted for row in results])
    ranks = np.flatnonzero(is_planted)
    # the 12 planted images rank above the 148 clean ones: the area under the ROC curve is the mean,
    # over planted images, of the share of clean images ranked below them
    auc = np.mean([np.sum(~is_planted[r:]) / np.sum(~is_planted) for r in ranks])
    assert auc > 0.85, (auc, ranks)
    assert is_planted[:12].sum() >= 6


def test_a_stale_or_foreign_index_is_a_one_line_error(planted_run, tmp_path, capsys):
    out, _, demo_run = planted_run
    copy = tmp_path / "run"
    shutil.copytree(demo_run, copy, ignore=shutil.ignore_patterns("data", "holdout", "variants", "experiments"))
    shutil.rmtree(copy / "search", ignore_errors=True)
    shutil.copytree(out / "search", copy / "search")  # another run's index
    argv = ["similar", str(copy), "--class", "star", "--sample", "star/0000.png"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "belongs to another run" in err[0]
    shutil.rmtree(copy / "search")
    assert main(argv) == 2 and "no similarity index yet" in capsys.readouterr().err
    assert main(["index", str(copy)]) == 0
    capsys.readouterr()
    assert main(argv + ["--top", "3"]) == 0
    results = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["results"]
    assert len(results) == 3 and "star/0000.png" not in [row["path"] for row in results]
    assert main(["similar", str(copy), "--class", "star", "--sample", "nope.png"]) == 2
    assert "not a sample of class star" in capsys.readouterr().err


def test_query_by_a_heatmap_file_finds_the_sample_it_came_from(planted_run, tmp_path, capsys):
    out, _, _ = planted_run
    store = RunStore(out)
    cid = store.id_for_name("crescent")
    path = str(store.arrays(cid)["paths"][7])
    np.save(tmp_path / "mine.npy", -store.heatmaps(cid)[7].astype(np.float32))  # the sign does not matter
    assert main(["similar", str(out), "--class", "crescent", "--heatmap", str(tmp_path / "mine.npy"), "--top", "3"]) == 0
    results = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["results"]
    assert results[0]["path"] == path and results[0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert main(["similar", str(out), "--class", "star", "--heatmap", str(tmp_path / "mine.npy"),
                 "--other-classes", "--top", "200"]) == 0
    assert all(row["class"] != "star" for row in json.loads(capsys.readouterr().out.strip().splitlines()[-1])["results"])
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    np.save(tmp_path / "cube.npy", np.zeros((2, 3, 4)))
    for bad, message in (("bad.npy", "not a .npy array"), ("cube.npy", "expected a heatmap of shape (H, W)")):
        assert main(["similar", str(out), "--class", "star", "--heatmap", str(tmp_path / bad)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0]
