"""The project's shape, checked on its source: no reaching into private names, no import cycles, small modules.

Each check walks the AST of every module of ``precompute`` and ``spray_dash`` and fails
with the offending module and import, so a regression names itself.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set, Tuple

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("precompute", "spray_dash")
MAX_LINES = 450
"""A module longer than this says why in its docstring, with the words "long on purpose"."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> Dict[str, Path]:
    return {module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


def resolve(importer: str, path: Path, node: ast.ImportFrom) -> str:
    """Absolute module name of a ``from ... import`` in module ``importer``."""
    if not node.level:
        return node.module or ""
    package = importer.split(".") if path.name == "__init__.py" else importer.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def project_imports(known: Dict[str, Path]) -> List[Tuple[str, str, str, int]]:
    """``(importer, imported module, imported name or "", line)`` for every import of a project module."""
    found = []
    for name, path in known.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found += [(name, alias.name, "", node.lineno) for alias in node.names
                          if alias.name.split(".")[0] in PACKAGES]
            elif isinstance(node, ast.ImportFrom):
                source = resolve(name, path, node)
                if source.split(".")[0] not in PACKAGES:
                    continue
                for alias in node.names:
                    submodule = f"{source}.{alias.name}"
                    if submodule in known:  # "from . import figures" imports a module, not a name
                        found.append((name, submodule, "", node.lineno))
                    else:
                        found.append((name, source, alias.name, node.lineno))
    return found


def test_no_module_imports_a_private_name_of_another():
    known = modules()
    offenders = [f"{importer}:{line} imports {name} from {source}"
                 for importer, source, name, line in project_imports(known)
                 if name.startswith("_") and not name.startswith("__") and source != importer]
    assert offenders == [], "\n".join(offenders)


def test_there_is_no_import_cycle():
    known = modules()
    graph: Dict[str, Set[str]] = {name: set() for name in known}
    for importer, source, _, _ in project_imports(known):
        target = source
        while target and target not in known:  # "from precompute.lrp.fast import X" -> that module
            target = target.rpartition(".")[0]
        if target and target != importer:
            graph[importer].add(target)
    state: Dict[str, int] = {}
    stack: List[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)


def test_modules_are_small_or_say_why():
    long = []
    for name, path in modules().items():
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        if lines > MAX_LINES and "long on purpose" not in (ast.get_docstring(ast.parse(text)) or ""):
            long.append(f"{name}: {lines} lines")
    assert long == [], "\n".join(long)


def test_the_cycle_check_finds_a_cycle(tmp_path, monkeypatch):
    """The checker itself: two modules importing each other are reported by name."""
    import pytest

    package = tmp_path / "spray_dash"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from .b import thing\n")
    (package / "b.py").write_text("from spray_dash.a import other\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    monkeypatch.setitem(globals(), "PACKAGES", ("spray_dash",))
    with pytest.raises(AssertionError, match="spray_dash.a -> spray_dash.b -> spray_dash.a"):
        test_there_is_no_import_cycle()
