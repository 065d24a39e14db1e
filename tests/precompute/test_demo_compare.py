"""The demo's second model: a small ResNet trained on the demo's data and analysed into a second run."""
import json

import pytest

from precompute.demo import ARTIFACTS
from precompute.demo_run import build_demo_comparison, comparison_dir, demo_comparison_ready
from precompute.errors import ConfigError
from precompute.evaluate import evaluate_run
from precompute.models import load_model
from precompute.models.canonizers import canonizers_for
from precompute.store import RunStore, TRUTH


def test_comparison_run_is_complete_and_beside_the_demo(demo_run, demo_compare_run):
    assert demo_compare_run == comparison_dir(demo_run) and demo_comparison_ready(demo_compare_run)
    first, second = RunStore(demo_run), RunStore(demo_compare_run)
    assert second.manifest["model"]["spec"] == "spray_demo_resnet" != first.manifest["model"]["spec"]
    assert second.manifest["demo"]["compares_with"] == demo_run.name
    assert [c["name"] for c in second.manifest["classes"]] == [c["name"] for c in first.manifest["classes"]]
    for cid in first.finished_ids():  # the same samples, training and held-out, in the same order
        name = first.summary(cid)["name"]
        assert list(second.arrays(second.id_for_name(name))["paths"]) == list(first.arrays(cid)["paths"])
        assert second.summary(second.id_for_name(name))["n_validation"] == first.summary(cid)["n_validation"]


def test_second_model_is_a_residual_network_that_lrp_canonizes(demo_compare_run):
    store = RunStore(demo_compare_run)
    info = store.manifest["model"]
    model = load_model(info["spec"], store.root / info["weights"], info["num_classes"])
    assert any(type(m).__name__ == "BasicBlock" for m in model.modules())
    assert [type(c).__name__ for c in canonizers_for(model)] == ["ResNetCanonizer"]


def test_second_model_leans_on_the_planted_artifacts(demo_compare_run):
    report = json.loads((demo_compare_run / "model" / "report.json").read_text())
    assert report["architecture"] == "spray_demo_resnet"
    for name, effect in report["paste_effect"].items():  # as tests/precompute/test_demo.py asks of the demo's VGG
        control = effect["control"]
        assert effect["mean_delta_prob"] - control["mean_delta_prob"] >= 0.15, (name, effect)
        assert effect["flip_rate"] > control["flip_rate"] + 0.1, (name, effect)


def test_second_model_has_the_same_artifact_clusters(demo_compare_run):
    result = evaluate_run(demo_compare_run, demo_compare_run / TRUTH)
    fixed = {artifact: figures["best_f1"] for entry in result["classes"].values()
             for artifact, figures in entry["artifacts"].items() if not ARTIFACTS.get(artifact).posed}
    assert len(fixed) == 6
    assert all(f1 >= 0.9 for f1 in fixed.values()), fixed


def test_comparison_of_a_folder_that_is_not_a_demo_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="not a built demo") as caught:
        build_demo_comparison(tmp_path / "nothing", progress=False, log=lambda message: None)
    assert "\n" not in str(caught.value)
