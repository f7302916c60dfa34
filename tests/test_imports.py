"""The package's import graph: no circles, and each layer imports only from the layers below it.

config -> data -> pretraining -> (evaluation, modeling) -> engine -> (robustness, visualization, export) -> benchmark -> cli,
with errors / serialization / lock_owner / plotting / training_hooks under everything. Imports inside functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "iadet"

LAYERS = {
    "errors": 0,
    "serialization": 0,
    "lock_owner": 0,
    "training_hooks": 0,
    "plotting": 0,
    "config": 1,
    "data": 2,
    "pretraining": 2.5,
    "evaluation": 3,
    "modeling": 3,
    "engine": 4,
    "robustness": 5,
    "visualization": 5,
    "export": 5,
    "comparison": 6,
    "cli": 7,
    "transforms": 8,
    "__main__": 8,
    "__init__": 8,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for target in targets:
                if target in modules and target != name:
                    edges.add(target)
        graph[name] = edges
    return graph


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layer(module: str) -> tuple[str, int]:
    top = _top(module)
    return top, LAYERS[top]


def test_every_package_has_a_layer():
    unlayered = sorted({_top(m) for m in _graph()} - set(LAYERS))
    assert unlayered == [], f"give these a layer in LAYERS: {unlayered}"
    assert not set(LAYERS) - {_top(m) for m in _graph()}, "LAYERS names a package that does not exist"


def test_no_layer_imports_a_layer_above_it():
    bad = []
    for module, edges in _graph().items():
        top, rank = _layer(module)
        for target in edges:
            other, other_rank = _layer(target)
            if other != top and (other_rank > rank or (other_rank == rank and rank not in (0,))):
                bad.append(f"{module} -> {target}")
    assert bad == []


def test_no_import_circles():
    graph = _graph()
    # package __init__ modules re-export their children: an edge child -> its own package is not a circle
    for module in graph:
        graph[module] = {t for t in graph[module] if not module.startswith(t + ".")}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []
