"""The pipeline package's shape: the engines share public stages, and the Ray engine needs nothing of the local one."""
import ast
from pathlib import Path

import precompute.pipeline as pipeline

PACKAGE = Path(pipeline.__file__).parent


def _imports(module: str):
    """``(module imported from, name)`` of every ``from ... import`` in ``precompute/pipeline/<module>.py``."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    return [(node.module or "", node.level, alias.name) for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) for alias in node.names]


def test_no_module_of_the_package_imports_a_private_name():
    offenders = [(path.stem, source, name) for path in sorted(PACKAGE.glob("*.py"))
                 for source, _, name in _imports(path.stem) if name.startswith("_") and not name.startswith("__")]
    assert offenders == []


def test_the_ray_engine_imports_the_stages_not_the_local_engine():
    sources = {source for source, level, _ in _imports("ray") if level == 1}
    assert sources == {"attribution", "config", "stages"}


def test_both_engines_are_registered_by_name():
    assert pipeline.ENGINES.names() == ["local", "ray"]
    assert pipeline.ENGINES.get("local") is pipeline.run_local
