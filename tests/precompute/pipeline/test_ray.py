"""``--engine ray`` on a local Ray session: the same store as the local engine, and resumable."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from precompute.analysis import AnalysisConfig
from precompute.pipeline import RunConfig, run
from precompute.errors import ConfigError
from precompute.models import build_model
from precompute.store import THUMB_KINDS, RunStore
from tests.helpers.tiny_data import make_image_folder
from tests.helpers.tiny_models import write_model_file

ray = pytest.importorskip("ray")

QUIET = dict(progress=False, log=lambda message: None)


@pytest.fixture(scope="module")
def ray_session():
    """Ray on this machine, as ``run`` would start it; shut down only if started here."""
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A tiny ImageFolder (with one undecodable file) and a tiny ``file.py:function`` model."""
    root = tmp_path_factory.mktemp("ray")
    data, _ = make_image_folder(root / "data", n=8)
    (data / "bee" / "broken.png").write_bytes(b"not a png")
    model = f"{write_model_file(root)}:build"
    weights = root / "w.pt"
    torch.save(build_model(model, 3).state_dict(), weights)
    return root, data, model, weights


def _config(inputs, out: str, engine: str, relative: bool = False, **options) -> RunConfig:
    root, data, model, weights = inputs
    if relative:  # paths as typed in the run directory's parent
        data, model, weights, root = Path("data"), "file.py:build", Path("w.pt"), Path(".")
    return RunConfig(data=data, model=model, weights=weights, out=root / out, image_size=24, normalize="none",
                     batch_size=3, workers=0, analysis=AnalysisConfig(maps=("tsne",)), engine=engine, **options)


@pytest.fixture(scope="module")
def local_run(inputs, one_torch_thread):
    run(_config(inputs, "local", "local"), **QUIET)
    return RunStore(inputs[0] / "local")


def _assert_same_store(expected: RunStore, actual: RunStore) -> None:
    assert actual.finished_ids() == expected.finished_ids()
    for cid in expected.finished_ids():
        want, got = expected.arrays(cid), actual.arrays(cid)
        assert sorted(got) == sorted(want)
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=f"{cid} {name}")
        np.testing.assert_array_equal(actual.heatmaps(cid), expected.heatmaps(cid))
        for kind in THUMB_KINDS:
            name = f"thumbs-{kind}.bin"
            assert (actual.classes_dir / cid / name).read_bytes() == (expected.classes_dir / cid / name).read_bytes()
        want, got = expected.summary(cid), actual.summary(cid)
        want.pop("seconds"), got.pop("seconds")
        assert got == want
    report = json.loads((actual.root / "report.json").read_text())
    assert report["classes"] == expected.report()["classes"]
    assert report["skipped_files"] == expected.report()["skipped_files"]


def test_ray_engine_matches_local_engine(inputs, local_run, ray_session):
    report = run(_config(inputs, "ray", "ray"), **QUIET)
    store = RunStore(inputs[0] / "ray")
    assert store.finished_ids() == ["c0000", "c0001", "c0002"]
    assert list(report["skipped_files"]) == ["bee/broken.png"]
    assert store.manifest["run"]["engine"] == "ray" and store.manifest["run"]["device"] == "cpu"
    assert store.manifest["model"] == local_run.manifest["model"]
    _assert_same_store(local_run, store)


def test_ray_engine_resumes_a_run(inputs, local_run, ray_session, one_torch_thread, monkeypatch):
    # Relative paths: the Ray workers were started in another working directory.
    monkeypatch.chdir(inputs[0])
    out = inputs[0] / "resumed"
    run(_config(inputs, "resumed", "local", relative=True, classes=("ant",)), **QUIET)
    kept = (out / "classes" / "c0000" / "summary.json").stat().st_mtime_ns
    lines = []
    run(_config(inputs, "resumed", "ray", relative=True), progress=False, log=lines.append)
    assert "resuming: 1 of 3 classes are finished and kept" in lines
    assert (out / "classes" / "c0000" / "summary.json").stat().st_mtime_ns == kept
    _assert_same_store(local_run, RunStore(out))


def test_cuda_on_a_cluster_without_gpu_is_refused_before_any_work(inputs, ray_session):
    with pytest.raises(ConfigError, match="no GPU"):
        run(_config(inputs, "never", "ray", device="cuda"), **QUIET)
    assert not (inputs[0] / "never").exists()


def test_the_local_engine_does_not_import_ray(tmp_path):
    # A run folder that exists: RunConfig.check() looks at the paths before the names.
    code = ("import sys; import precompute.cli, precompute.pipeline; "
            f"precompute.pipeline.RunConfig(data={str(tmp_path)!r}, model='m', weights=None, "
            f"out={str(tmp_path / 'o')!r}, engine='ray').validate(); "
            "sys.exit('ray' in sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[3])


def test_ray_engine_runs_a_gw_analysis_as_the_local_engine_does(inputs, ray_session, one_torch_thread):
    """GW as the primary distance: the Ray analysis tasks (one CPU, ``process_limit(1)``) give the local result."""
    gw = AnalysisConfig(maps=("tsne",), distance="gw")
    import dataclasses

    run(dataclasses.replace(_config(inputs, "gw-local", "local"), analysis=gw), **QUIET)
    run(dataclasses.replace(_config(inputs, "gw-ray", "ray"), analysis=gw), **QUIET)
    expected, actual = RunStore(inputs[0] / "gw-local"), RunStore(inputs[0] / "gw-ray")
    assert expected.primary_analysis == actual.primary_analysis == "gw"
    for cid in expected.finished_ids():
        for name in ("knn_indices", "knn_distances", "eigenvectors", "clustering_labels"):
            np.testing.assert_array_equal(actual.arrays(cid)[name], expected.arrays(cid)[name], err_msg=name)
