"""The exported demo project in the real ViRelAy 0.6.1: its own WSGI app, in its own virtual environment.

The first test of a machine builds the environment (``virelay_env.virelay_python``, 17 s
measured); every later session reuses it. Each test asks ViRelAy's app in one subprocess.
"""
import pytest
import yaml

from precompute.store import RunStore
from tests.precompute.interop.projects import CLASSES, write_corelay_project
from tests.precompute.interop.virelay_env import ask_virelay, virelay_python

COLOR_MAPS = ("gray-red", "black-green", "black-fire-red", "black-yellow", "blue-white-red", "afm-hot", "jet",
              "seismic")


@pytest.fixture(scope="module")
def python():
    return virelay_python()


def test_virelay_lists_every_class_embedding_and_clustering_and_serves_them(python, virelay_export, demo_run):
    folder, exported = virelay_export
    store = RunStore(demo_run)
    star = store.id_for_name("star")
    n_star = len(store.heatmaps(star))
    last = exported["samples"] - 1  # the last sample: ViRelAy finds it without an index array
    urls = ["/api/projects", "/api/projects/0",
            f"/api/projects/0/dataset/{last}", f"/api/projects/0/dataset/{last}/image",
            f"/api/projects/0/attributions/{last}",
            *[f"/api/projects/0/attributions/{last}/heatmap?colorMap={c}&superimpose={s}"
              for c in COLOR_MAPS for s in ("false", "true")],
            *[f"/api/projects/0/analyses/spectral?category=star&clustering={c}&embedding={e}"
              for c in ("kmeans-05", "kmeans_lead-02", "ward-30") for e in ("spectral", "umap", "tsne")]]
    answers = {a["url"]: a for a in ask_virelay(python, [folder / "project.yaml"], urls)}
    assert all(a["status"] == 200 for a in answers.values()), [(u, a["status"], a["json"]) for u, a in
                                                               answers.items() if a["status"] != 200]
    name = yaml.safe_load((folder / "project.yaml").read_text())["project"]["name"]
    assert answers["/api/projects"]["json"][0]["name"] == name
    method, = answers["/api/projects/0"]["json"]["analysisMethods"]
    assert sorted(c["name"] for c in method["categories"]) == sorted(r.name for r in store.classes())
    assert all(c["humanReadableName"] == c["name"] for c in method["categories"])
    assert sorted(method["embeddings"]) == ["spectral", "tsne", "umap"]
    assert sorted(method["clusterings"]) == sorted(exported["clusterings"])
    sample = answers[f"/api/projects/0/dataset/{last}"]["json"]
    assert sample["labels"][0]["name"] == store.label_names()[-1] and sample["width"] == 64
    image = answers[f"/api/projects/0/dataset/{last}/image"]
    assert image["mimetype"] == "image/jpeg" and image["bytes"] > 100
    attribution = answers[f"/api/projects/0/attributions/{last}"]["json"]
    assert len(attribution["prediction"]) == 10 and attribution["labels"][0]["index"] == 9
    assert {a["mimetype"] for u, a in answers.items() if "/heatmap" in u} == {"image/jpeg"}
    analysis = answers["/api/projects/0/analyses/spectral?category=star&clustering=kmeans-05&embedding=umap"]["json"]
    assert analysis["humanReadableCategoryName"] == "star" and len(analysis["embedding"]) == n_star
    arrays = store.arrays(star)
    position = list(arrays["clustering_names"]).index("kmeans-k5")
    assert [p["cluster"] for p in analysis["embedding"]] == arrays["clustering_labels"][position].tolist()
    spectral = answers["/api/projects/0/analyses/spectral?category=star&clustering=kmeans-05&embedding=spectral"]
    eigenvalues = spectral["json"]["eigenvalues"]
    assert eigenvalues == sorted(eigenvalues, reverse=True) and abs(eigenvalues[-1]) < 1e-9  # CoRelAy's order


def test_virelay_reads_the_corelay_style_test_project(python, tmp_path):
    """The hand-made CoRelAy project of the import tests is a valid ViRelAy project too (so they test the real format)."""
    project = write_corelay_project(tmp_path / "p", n=12)["project"]
    wnid = CLASSES[0][0]
    urls = ["/api/projects/0", "/api/projects/0/dataset/0/image", "/api/projects/0/attributions/0/heatmap",
            f"/api/projects/0/analyses/spectral-analysis?category={wnid}&clustering=dbscan-eps=0.5&embedding=tsne"]
    answers = ask_virelay(python, [project], urls)
    assert [a["status"] for a in answers] == [200] * 4, answers
    method, = answers[0]["json"]["analysisMethods"]
    assert {c["humanReadableName"] for c in method["categories"]} == {name for _, name in CLASSES}
