"""Static checks that catch bugs tests would only meet on rare paths (undefined names, dead imports)."""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_pyflakes_finds_nothing():
    api = pytest.importorskip("pyflakes.api")
    from pyflakes.reporter import Reporter
    import io

    out, err = io.StringIO(), io.StringIO()
    files = [str(p) for folder in ("precompute", "spray_dash", "tests", "benchmarks") for p in (ROOT / folder).rglob("*.py")]
    files.append(str(ROOT / "app.py"))
    count = api.checkRecursive(files, Reporter(out, err))
    assert count == 0, out.getvalue() + err.getvalue()
