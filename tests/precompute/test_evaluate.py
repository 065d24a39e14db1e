"""F1 scoring of stored clusters against truth files."""
import json

import numpy as np
import pytest

from precompute.errors import ConfigError
from precompute.evaluate import best_cluster, cluster_f1, read_truth


def brute_f1(labels, truth):
    best = (0.0, 0)
    for c in np.unique(labels):
        members = labels == c
        tp = np.sum(members & truth)
        precision = tp / members.sum()
        recall = tp / truth.sum() if truth.sum() else 0
        f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
        if f1 > best[0]:
            best = (f1, int(c))
    return best


@pytest.mark.parametrize("seed", range(5))
def test_cluster_f1_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, 50)
    truth = rng.random(50) < 0.3
    f1, cluster = cluster_f1(labels, truth)
    ref_f1, ref_cluster = brute_f1(labels, truth)
    assert f1 == pytest.approx(ref_f1)
    assert cluster == ref_cluster


def test_best_cluster_names_clustering_and_cluster():
    truth = np.array([1, 1, 0, 0, 0, 0], bool)
    names = np.array(["kmeans-k2", "ward-k2"])
    labels = np.array([[0, 1, 0, 1, 0, 1], [1, 1, 0, 0, 0, 0]])
    assert best_cluster(names, labels, truth) == (1.0, "ward-k2/cluster-1")
    f1, name = best_cluster(names, labels, truth, only="kmeans-k2")
    assert name.startswith("kmeans-k2/") and f1 < 1.0


def test_read_truth(tmp_path):
    path = tmp_path / "truth.csv"
    path.write_text("path,class,artifact\na\\1.png,a,\nb/2.png,b,watermark\n")
    assert read_truth(path) == {"a/1.png": ("a", ""), "b/2.png": ("b", "watermark")}
    (tmp_path / "bad.csv").write_text("file,label\n")
    with pytest.raises(ConfigError, match="missing column"):
        read_truth(tmp_path / "bad.csv")
    with pytest.raises(ConfigError, match="not found"):
        read_truth(tmp_path / "none.csv")


def test_evaluate_reports_right_reason_and_the_occlusion_peak(demo_run, capsys):
    """On the test demo (masks for every class, star scanned): the figures behind the README's second table."""
    import json

    from precompute.cli import main

    assert main(["evaluate", str(demo_run), "--table"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])
    star, diamond = result["classes"]["star"], result["classes"]["diamond"]
    assert star["peak_on_artifact"] >= 0.8 and star["peak_on_artifact_clean"] < 0.3
    assert star["off_object_artifact"] > star["off_object_clean"]
    # two artifacts at two places: each sample's peak is scored against its own artifact's cells
    assert diamond["peak_on_artifact"] >= 0.6 and diamond["peak_on_artifact_clean"] < 0.3
    for name, entry in result["classes"].items():
        assert entry["right_reason_clean"] > entry["right_reason_chance"], name
        if entry["planted"]:
            assert entry["right_reason_artifact"] < 0.5 * entry["right_reason_clean"], name
        if name not in ("star", "diamond"):
            assert "peak_on_artifact" not in entry  # not scanned
    row = next(line for line in out if line.startswith("| star | watermark | 0."))
    assert f"{100 * star['peak_on_artifact']:.0f} %" in row
    row = next(line for line in out if line.startswith("| diamond | colour-bar, date-stamp | 0."))
    assert f"{100 * diamond['peak_on_artifact']:.0f} %" in row


def test_a_truth_file_matching_no_sample_is_an_error_naming_both_sides(tmp_path, capsys):
    from precompute.cli import main
    from precompute.store import RunStore
    from precompute.synthetic import write_synthetic_store

    run = tmp_path / "run"
    write_synthetic_store(run, n_classes=2, n_per_class=30, size=16, planted_every=2, maps=("tsne",))
    store = RunStore(run)
    sample = str(store.arrays("c0000")["paths"][0])
    assert main(["evaluate", str(run)]) == 0  # the run's own truth file matches
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # the second class score: the default clustering's stored Fisher separability, ranked like tau
    for name, entry in result["classes"].items():
        arrays, summary = store.arrays(store.id_for_name(name)), store.summary(store.id_for_name(name))
        names = [str(n) for n in arrays["clustering_names"]]
        assert entry["separability"] == pytest.approx(arrays["fisher"][names.index(summary["default_clustering"])])
        assert entry["separability"] == pytest.approx(summary["default_separability"])
    by_score = sorted(result["classes"], key=lambda name: -result["classes"][name]["separability"])
    assert [result["classes"][name]["separability_rank"] for name in by_score] == [1, 2]
    planted = [entry for entry in result["classes"].values() if entry["planted"]]
    assert result["scores"]["separability"]["mean_rank_planted"] == np.mean([e["separability_rank"] for e in planted])
    assert result["scores"]["tau"]["planted"] == len(planted) == 1
    wrong = tmp_path / "truth.csv"
    wrong.write_text("path,class,artifact\nelsewhere/class_0000/0001.png,class_0000,corner\n")
    assert main(["evaluate", str(run), "--truth", str(wrong)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "none of its 1 paths" in err
    assert "'elsewhere/class_0000/0001.png'" in err and repr(sample) in err


def test_evaluate_scores_each_artifact_of_a_class_on_its_own(tmp_path, capsys):
    """A class with two artifacts: ``artifacts`` has each one's best and default-view F1."""
    import csv

    from precompute.cli import main
    from precompute.store import RunStore
    from precompute.synthetic import write_synthetic_store

    run = tmp_path / "run"
    write_synthetic_store(run, n_classes=2, n_per_class=40, size=16, planted_every=2, maps=())
    store = RunStore(run)
    rows = list(csv.DictReader(open(run / "truth.csv")))
    planted = [row for row in rows if row["artifact"]]
    for i, row in enumerate(planted):  # split the planted group into two named artifacts
        row["artifact"] = "first" if i % 2 else "second"
    truth = tmp_path / "two.csv"
    with open(truth, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "class", "artifact"])
        writer.writeheader()
        writer.writerows(rows)
    assert main(["evaluate", str(run), "--truth", str(truth), "--table"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    result = json.loads(printed[-1])
    name = planted[0]["class"]
    for artifact, figures in result["classes"][name]["artifacts"].items():  # a table row of its own
        assert (f"| ↳ | {artifact} ({figures['n']}) | | | {figures['best_f1']:.2f} | {figures['default_f1']:.2f} |"
                in printed)
    assert any(line.startswith(f"| {name} | 2 artifacts, together |") for line in printed)
    entry = result["classes"][name]
    assert set(entry["artifacts"]) == {"first", "second"}
    arrays = store.arrays(store.id_for_name(name))
    paths = [str(p) for p in arrays["paths"]]
    default = entry["default_clustering"]
    names = [str(n) for n in arrays["clustering_names"]]
    for artifact, figures in entry["artifacts"].items():
        members = {row["path"] for row in planted if row["artifact"] == artifact}
        own = np.array([p in members for p in paths])
        assert figures["n"] == len(members) == own.sum()
        best = max(brute_f1(labels, own)[0] for labels in arrays["clustering_labels"])
        assert figures["best_f1"] == pytest.approx(best)
        assert figures["default_f1"] == pytest.approx(brute_f1(arrays["clustering_labels"][names.index(default)],
                                                               own)[0])
        assert figures["best_f1"] < entry["best_f1"]  # half of the group cannot match a whole cluster as well
    clean = [entry for entry in result["classes"].values() if not entry["planted"]]
    assert clean and all(entry["artifacts"] == {} for entry in clean)
