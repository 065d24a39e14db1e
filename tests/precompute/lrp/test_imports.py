"""The LRP and model packages import no private name of another module, and form no import cycle."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("precompute/lrp", "precompute/models")
PACKAGES_AS_NAMES = {package.replace("/", ".") for package in PACKAGES}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path):
    """``(imported module, imported names)`` for each import in the file, relative imports resolved."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            module = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else [])) \
                if node.level else node.module
            yield module, [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []


def _files():
    return sorted(path for package in PACKAGES for path in (ROOT / package).glob("*.py"))


@pytest.mark.parametrize("path", _files(), ids=lambda path: str(path.relative_to(ROOT)))
def test_no_private_names_from_other_modules(path):
    for module, names in _imports(path):
        private = [name for name in names if name.startswith("_") and name != "__future__"]
        assert not (module.startswith("precompute") and private), f"{path.name} imports {private} from {module}"


def test_no_import_cycles():
    graph = {}
    for path in _files():
        graph[_module_name(path)] = set()
        for module, names in _imports(path):
            for target in [module] + [f"{module}.{name}" for name in names]:
                graph[_module_name(path)].add(target)
    graph = {module: {target for target in targets if target in graph and target != module}
             for module, targets in graph.items()}
    # A package's __init__ imports its modules; only cycles among the modules themselves count.
    modules = {module: targets for module, targets in graph.items() if module not in PACKAGES_AS_NAMES}

    def visit(module, stack):
        if module in stack:
            cycle = stack[stack.index(module):] + [module]
            pytest.fail(f"import cycle: {' -> '.join(cycle)}")
        for target in modules.get(module, ()):
            visit(target, stack + [module])

    for module in modules:
        visit(module, [])

