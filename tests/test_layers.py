"""The package's import graph has no circle, lazy imports (inside functions) included (issue 13)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "vertex_env"


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Modules of the package that `path` imports anywhere (top level or inside a function).

    `from vertex_env.x import y` counts as an import of `vertex_env.x.y` when that is a module, else of
    `vertex_env.x` (importing a submodule only initialises its package, which is not a dependency of ours)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module in modules:
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & set(modules)
            out |= submodules
            if len(submodules) < len(node.names):
                out.add(node.module)
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the stack, 2 done

    def visit(name: str, stack: list[str]) -> None:
        state[name] = 1
        for dep in sorted(graph[name]):
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    return cycles


def test_no_import_circle_even_through_lazy_imports() -> None:
    modules = _modules()
    graph = {name: _imports(path, modules) - {name} for name, path in modules.items()}
    assert len(graph) > 40
    assert _cycles(graph) == []


def test_the_circle_finder_finds_a_circle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


# The layers, top to bottom: data flows down, imports never go up (DESIGN.md "Layers").
# A module's layer is its package (vertex_env.cli.*, vertex_env.proxy.*, …) or, for the public modules that
# keep their import paths, the layer it belongs to.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("vertex_env.cli", "vertex_env.__main__"),
    ("vertex_env.proxy",),
    ("vertex_env.sinks", "vertex_env.api", "vertex_env.testing"),
    ("vertex_env.environment",),
    ("vertex_env.core",),
    ("vertex_env.emulator",),
    ("vertex_env.config",),
    ("vertex_env.system",),
    ("vertex_env.errors", "vertex_env._version"),
)
# Who may use the emulator: the CLI (the `emulator` and `demo` commands) and the pytest plugin. It ships with the
# product but nothing on a token's path leans on it.
EMULATOR_USERS = ("vertex_env.cli", "vertex_env.testing", "vertex_env.emulator")


def _layer(module: str) -> int | None:
    for rank, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    return None  # the package's __init__: the public face, above everything


def _violations(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for name, deps in sorted(graph.items()):
        here = _layer(name)
        for dep in sorted(deps):
            there = _layer(dep)
            if here is None or there is None:
                continue
            if there < here:
                found.append(f"{name} imports {dep}, a layer above it")
            elif dep.startswith("vertex_env.emulator") and not name.startswith(EMULATOR_USERS):
                found.append(f"{name} imports the emulator")
    return found


def test_every_module_has_a_layer() -> None:
    unplaced = [name for name in _modules() if _layer(name) is None and name != "vertex_env"]
    assert unplaced == []


def test_no_module_imports_from_a_layer_above_it_lazy_imports_included() -> None:
    modules = _modules()
    graph = {name: _imports(path, modules) - {name} for name, path in modules.items()}
    assert {_layer(name) for name in graph} >= set(range(len(LAYERS)))  # every layer has modules
    assert _violations(graph) == []


def test_the_layer_check_finds_a_planted_upward_import() -> None:
    graph = {
        "vertex_env.core.source": {"vertex_env.config.profile", "vertex_env.sinks.render"},
        "vertex_env.system.files": {"vertex_env.errors"},
        "vertex_env.sinks.status": {"vertex_env.cli.group"},
        "vertex_env.core.cache": {"vertex_env.emulator.state"},
    }
    assert _violations(graph) == [
        "vertex_env.core.cache imports the emulator",
        "vertex_env.core.source imports vertex_env.sinks.render, a layer above it",
        "vertex_env.sinks.status imports vertex_env.cli.group, a layer above it",
    ]
