"""The package's wings: no module imports in a circle, nothing imports upward from paths, the public API holds."""

import ast
import importlib
from pathlib import Path

import migsd

PACKAGE = Path(migsd.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` that can run: all but ``if TYPE_CHECKING:`` blocks."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            continue
        yield node
        yield from _runtime_nodes(node)


def _imports(path: Path) -> set[str]:
    """The package modules ``path`` imports, at load time or inside a function (a lazy import is still an edge)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("migsd"):
            found.add(node.module)
    return found


def _graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports; the top package (the public API gathering every wing) left out."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m not in (name, "migsd")}
            for name, path in modules.items()}


def test_no_module_imports_in_a_circle():
    graph = _graph()
    state: dict[str, int] = {}
    circles = []

    def visit(node, trail):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append(trail[trail.index(nxt):] + [nxt] if nxt in trail else trail + [nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert not circles, circles


def test_paths_imports_nothing_from_the_package():
    assert _graph()["migsd.paths"] == set()


def test_model_outputs_and_scenarios_import_alone():
    for name in ("migsd.model", "migsd.outputs", "migsd.scenarios", "migsd.paths"):
        assert importlib.import_module(name)


def test_the_public_api_is_unchanged():
    assert migsd.__all__ == [
        "DataError", "MigsdError", "Model", "ModelError", "RegionError", "Scenario", "ScenarioError",
        "add_indicators", "build_region_model", "check_model", "list_scenarios", "load_model", "open_results", "read_scenario", "run_scenarios",
        "testing", "to_netcdf", "ureg", "yield_year",
    ]
    for name in migsd.__all__:
        assert getattr(migsd, name) is not None
