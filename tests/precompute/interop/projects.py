"""Small ViRelAy projects written as CoRelAy writes them, made inside the tests (no downloads).

:func:`write_corelay_project` follows CoRelAy's ``docs/examples/virelay_analysis.py``:
categories named by WordNet id, the spectral embedding with the trivial eigenvector last
and rows scaled to unit length, ``kmeans-02`` names, a DBSCAN clustering with noise (-1),
HDBSCAN, agglomerative clusterings and a boolean ``train_split``; logits as predictions,
channels-first float attributions and images in [0, 1].
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict

import numpy as np

from precompute.stages import EuclideanKNN, SpectralEmbedding, knn_affinity
from precompute.synthetic import synthetic_heatmaps

CLASSES = [("n01440764", "tench"), ("n02102040", "springer"), ("n02979186", "cassette")]


def corelay_embedding(heatmaps: np.ndarray, q: int = 8):
    """CoRelAy's spectral embedding of ``heatmaps`` (n, H, W): eigenvalues descending, rows unit length.

    Returns ``(eigenvalues (q,), embedding (n, q), ours)``, ``ours`` the ascending, unscaled
    embedding of :class:`precompute.stages.SpectralEmbedding` it was made from.
    """
    knn = EuclideanKNN(n_neighbors=10).fit(heatmaps.reshape(len(heatmaps), -1))
    fitted = SpectralEmbedding(q).fit(knn_affinity(knn.indices_))
    vectors = fitted.embedding_[:, ::-1].astype(np.float64)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return fitted.eigenvalues_[::-1].copy(), vectors.astype(np.float32), fitted.embedding_


def write_corelay_project(folder: Path, *, n: int = 40, size: int = 16, seed: int = 0) -> Dict[str, object]:
    """Write ``folder/project.yaml`` and its files; return what a test checks against.

    Returns
    -------
    dict
        ``project`` (the YAML path) and, per WordNet id, ``embedding`` (as written),
        ``eigenvalues``, ``kmeans`` (k -> labels) and ``samples`` (its indices).
    """
    import h5py
    import yaml
    from sklearn.cluster import KMeans

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    heatmaps, labels = [], []
    for label, _ in enumerate(CLASSES):
        data = synthetic_heatmaps(n, size, groups={"corner": 0.25} if label == 0 else {}, seed=seed + label)
        heatmaps.append(data.heatmaps)
        labels += [label] * n
    heatmaps, labels = np.concatenate(heatmaps), np.array(labels)
    total = len(labels)
    attributions = np.repeat(heatmaps[:, None] / 3.0, 3, axis=1).astype(np.float32)  # (N, 3, H, W)
    images = rng.random((total, 3, size, size)).astype(np.float32)  # channels first, in [0, 1]
    logits = rng.normal(size=(total, 1000)).astype(np.float32)
    logits[np.arange(total), labels] += 5.0
    with h5py.File(folder / "input.h5", "w") as handle:
        handle["data"] = images
        handle["label"] = labels.astype(np.uint8)  # as ViRelAy's own example writes them
    with h5py.File(folder / "attribution.h5", "w") as handle:
        handle["attribution"] = attributions
        handle["label"] = labels.astype(np.uint16)
        handle["prediction"] = logits
    expected: Dict[str, object] = {"project": folder / "project.yaml"}
    with h5py.File(folder / "analysis.h5", "w") as handle:
        for label, (wnid, _) in enumerate(CLASSES):
            samples = np.flatnonzero(labels == label)
            eigenvalues, embedding, ours = corelay_embedding(attributions[samples].sum(axis=1))
            group = handle.require_group(wnid)
            group["index"] = samples.astype(np.uint32)
            embeddings = group.require_group("embedding")
            embeddings["spectral"] = embedding
            embeddings["spectral"].attrs["eigenvalue"] = eigenvalues.astype(np.float32)
            for name in ("tsne", "umap"):
                embeddings[name] = rng.normal(size=(len(samples), 2)).astype(np.float32)
                embeddings[name].attrs["embedding"] = "spectral"
                embeddings[name].attrs["index"] = np.array([0, 1])
            clusters = group.require_group("cluster")
            kmeans = {}
            for k in (2, 3, 4, 5):
                kmeans[k] = KMeans(n_clusters=k, n_init=3, random_state=0).fit(embedding).labels_
                clusters[f"kmeans-{k:02d}"] = kmeans[k]
                clusters[f"kmeans-{k:02d}"].attrs.update({"embedding": "spectral", "k": k,
                                                          "index": np.arange(embedding.shape[1], dtype=np.uint32)})
                clusters[f"agglomerative-{k:02d}"] = rng.integers(0, k, len(samples))
                clusters[f"agglomerative-{k:02d}"].attrs["k"] = k
            dbscan = rng.integers(-1, 3, len(samples))
            clusters["dbscan-eps=0.5"] = dbscan
            clusters["hdbscan"] = rng.integers(-1, 2, len(samples))
            clusters["train_split"] = rng.random(len(samples)) < 0.8
            expected[wnid] = {"embedding": embedding, "eigenvalues": eigenvalues, "ours": ours, "kmeans": kmeans,
                              "samples": samples, "dbscan": dbscan}
    (folder / "label-map.json").write_text(json.dumps(
        [{"index": i, "word_net_id": wnid, "name": name} for i, (wnid, name) in enumerate(CLASSES)]
        + [{"index": i, "word_net_id": f"n{i:08d}", "name": f"other {i}"} for i in range(len(CLASSES), 1000)]))
    (folder / "project.yaml").write_text(yaml.safe_dump({"project": {
        "name": "CoRelAy test", "model": "VGG16", "label_map": "label-map.json",
        "dataset": {"name": "tiny", "type": "hdf5", "path": "input.h5", "input_width": size, "input_height": size,
                    "up_sampling_method": "none", "down_sampling_method": "none"},
        "attributions": {"attribution_method": "LRP Epsilon Gamma Box", "attribution_strategy": "true_label",
                         "sources": ["attribution.h5"]},
        "analyses": [{"analysis_method": "spectral_analysis", "sources": ["analysis.h5"]}],
    }}, sort_keys=False))
    return expected
