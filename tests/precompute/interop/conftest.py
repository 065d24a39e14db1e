"""Fixtures of the ViRelAy tests: the session's demo store exported once, and that export imported once."""
import pytest

from precompute.interop import export_virelay, import_virelay


@pytest.fixture(scope="session")
def virelay_export(demo_run, tmp_path_factory):
    """``(folder, result)`` of ``export_virelay(demo_run, folder)``; ``demo_run`` itself is only read."""
    folder = tmp_path_factory.mktemp("virelay") / "demo-project"
    return folder, export_virelay(demo_run, folder)


@pytest.fixture(scope="session")
def virelay_roundtrip(virelay_export, tmp_path_factory):
    """The run store imported back from :func:`virelay_export`'s project."""
    run = tmp_path_factory.mktemp("virelay-import") / "run"
    import_virelay(virelay_export[0] / "project.yaml", run)
    return run
