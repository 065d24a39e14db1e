"""The synthetic store writer: ``analysis_pool`` reuses analyses but keeps every class its own."""
import numpy as np

import precompute.analysis
from precompute.evaluate import read_truth
from precompute.synthetic import write_synthetic_store

SHAPE = dict(n_classes=5, n_per_class=40, size=12, planted_every=2, maps=("tsne",), thumb_pool=4)
ANALYSIS_ARRAYS = ("eigenvalues", "eigenvectors", "knn_indices", "knn_distances", "clustering_names",
                   "clustering_labels", "fisher", "map_names", "maps", "relevance_sum")
PREDICTION_ARRAYS = ("top_classes", "top_probs", "true_prob", "true_rank")


def test_analysis_pool_analyses_only_the_pool_and_keeps_each_class_its_own(tmp_path, monkeypatch):
    calls = []
    analyse = precompute.analysis.analyse_heatmaps
    monkeypatch.setattr(precompute.analysis, "analyse_heatmaps", lambda *a, **k: calls.append(1) or analyse(*a, **k))
    pooled = write_synthetic_store(tmp_path / "pooled", analysis_pool=2, **SHAPE)
    assert len(calls) == 2, "only the pool's classes are analysed"

    full = write_synthetic_store(tmp_path / "full", **SHAPE)
    assert len(calls) == 2 + 5
    assert pooled.finished_ids() == full.finished_ids() == [f"c{i:04d}" for i in range(5)]
    assert pooled.manifest["synthetic"]["analysis_pool"] == 2
    truth = read_truth(tmp_path / "pooled" / "truth.csv")
    for record in pooled.classes():
        label = record.label
        source = f"c{label % 2:04d}"
        arrays, reference = pooled.arrays(record.id), full.arrays(record.id)
        source_arrays = pooled.arrays(source)
        assert record.name == f"class_{label:04d}" and record.summary["id"] == record.id
        assert record.summary.get("analysis_source") == (source if label >= 2 else None)
        for name in ANALYSIS_ARRAYS:
            np.testing.assert_array_equal(arrays[name], source_arrays[name], err_msg=name)
        # predictions and paths are the class's own, the same as without the pool
        for name in PREDICTION_ARRAYS + ("paths",):
            np.testing.assert_array_equal(arrays[name], reference[name], err_msg=name)
        assert all(str(p).startswith(record.name + "/") for p in arrays["paths"])
        assert (arrays["top_classes"][:, 0] == label).mean() > 0.5
        np.testing.assert_array_equal(pooled.heatmaps(record.id), pooled.heatmaps(source))
        assert record.summary["tau"] == pooled.summary(source)["tau"]
        # the truth follows the reused heatmaps
        planted = [truth[str(p)][1] for p in arrays["paths"]]
        source_planted = [truth[str(p)][1] for p in source_arrays["paths"]]
        assert planted == source_planted
        assert pooled.thumbnail(record.id, "image", 5) == pooled.thumbnail(source, "image", 5)
    # the analysed classes are exactly those of a store without a pool
    for cid in ("c0000", "c0001"):
        for name in ANALYSIS_ARRAYS:
            np.testing.assert_array_equal(pooled.arrays(cid)[name], full.arrays(cid)[name], err_msg=name)
    assert any(truth[str(p)][1] for p in pooled.arrays("c0002")["paths"]), "class 2 reuses planted class 0"
