"""The app's layers, checked on its source: one module touches the disk, pages stay thin.

- ``spray_dash/data.py`` is the only module of the app that reads or writes files: no
  other module calls ``open()`` (except on in-memory ``io.BytesIO`` buffers), a
  ``Path``/``numpy``/``os``/``shutil`` file function, reaches the store through
  ``data.store()``, or imports the store's reader and writers.
- No module imports another module's ``_private`` name, and the app's modules import
  each other without a cycle.
- No page module is longer than :data:`MAX_PAGE_LINES`.
Each failure names the file and line.
"""
import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "spray_dash"
DATA_ACCESS = APP / "data.py"
MAX_PAGE_LINES = 450

#: Methods and functions that read or write files (Path, numpy, os, shutil, PIL, json on files).
DISK_CALLS = {
    "read_text", "read_bytes", "write_text", "write_bytes", "mkdir", "makedirs", "unlink", "remove", "rmdir",
    "rmtree", "touch", "iterdir", "glob", "rglob", "scandir", "listdir", "walk", "copyfile", "copytree", "copy2",
    "save", "savez", "savez_compressed", "load", "fromfile", "tofile", "memmap", "dump",
}
#: What only data.py may import from precompute.store: the reader and the writers.
STORE_ACCESS = {"RunStore", "RunWriter", "ExperimentWriter", "write_json_atomic"}


def modules():
    return sorted(APP.rglob("*.py"))


def rel(path):
    return path.relative_to(APP.parent)


def in_memory(call: ast.Call) -> bool:
    """``X.open(io.BytesIO(...))``: decoding bytes already in memory."""
    first = call.args[0] if call.args else None
    return isinstance(first, ast.Call) and (
        (isinstance(first.func, ast.Attribute) and first.func.attr == "BytesIO")
        or (isinstance(first.func, ast.Name) and first.func.id == "BytesIO"))


def disk_access(tree):
    """(line, what) of every file access in a module's AST."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id == "open":
                found.append((node.lineno, "open()"))
            elif isinstance(func, ast.Attribute) and func.attr == "open" and not in_memory(node):
                found.append((node.lineno, f".open() of {ast.unparse(node.args[0]) if node.args else 'a file'}"))
            elif isinstance(func, ast.Attribute) and func.attr in DISK_CALLS:
                found.append((node.lineno, f"{ast.unparse(func)}()"))
        elif isinstance(node, ast.Attribute) and node.attr == "store" and ast.unparse(node.value) == "data":
            found.append((node.lineno, "data.store(): use a function of spray_dash.data"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").endswith("store"):
            for alias in node.names:
                if alias.name in STORE_ACCESS:
                    found.append((node.lineno, f"imports {node.module}.{alias.name}"))
    return found


def test_only_data_py_touches_the_disk():
    offenders = [f"{rel(path)}:{line}: {what}"
                 for path in modules() if path != DATA_ACCESS
                 for line, what in sorted(disk_access(ast.parse(path.read_text(encoding="utf-8"))))]
    assert not offenders, "only spray_dash/data.py may read or write files:\n" + "\n".join(offenders)


def test_the_rule_catches_file_access():
    """The check itself: each kind of access in a made-up module is found."""
    source = "\n".join([
        "from precompute.store import ExperimentWriter",
        "open('x')",
        "Path('x').read_text()",
        "Image.open(path)",
        "np.load('a.npy')",
        "data.store().summary('c0000')",
        "Image.open(io.BytesIO(png))",  # in memory: allowed
        "json.loads(text)",  # allowed
    ])
    assert [line for line, _ in disk_access(ast.parse(source))] == [1, 2, 3, 4, 5, 6]


def module_name(path):
    parts = list(path.relative_to(APP.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path, top_level_only=False):
    """(line, imported module, imported names) of a module, relative imports resolved.

    ``top_level_only``: only the imports that run when the module is imported (not those
    inside functions, which run later).
    """
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = ast.walk(tree)
    if top_level_only:
        nodes = [node for statement in tree.body if not isinstance(statement, (ast.FunctionDef, ast.ClassDef))
                 for node in ast.walk(statement)]
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(max(0, node.level - 1)):
                base = base.rpartition(".")[0]
            target = (f"{base}.{node.module}" if node.module else base) if node.level else node.module
            yield node.lineno, target, [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []


def test_no_private_names_cross_modules():
    offenders = [f"{rel(path)}:{line}: {name} from {target}"
                 for path in modules() for line, target, names in imports(path)
                 for name in names if name.startswith("_") and name != "__future__" and target != "__future__"]
    assert not offenders, "\n".join(offenders)


def test_no_import_cycles_in_the_app():
    known = {module_name(path): path for path in modules()}
    graph = {}
    for name, path in known.items():
        edges = set()
        for _, target, names in imports(path, top_level_only=True):
            submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in known]
            # "from package import module" imports the module; the package's __init__ runs first anyway
            edges.update(submodules if submodules else [target] if target in known else [])
        edges.discard(name)
        graph[name] = edges
    state = {}

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                pytest.fail("import cycle: " + " -> ".join(trail[trail.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


@pytest.mark.parametrize("path", sorted((APP / "pages").glob("*.py")), ids=lambda p: p.name)
def test_pages_stay_thin(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_PAGE_LINES, f"{rel(path)}: {lines} lines; move view building into views or components"
