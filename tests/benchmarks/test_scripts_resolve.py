"""Every `iadet` name a benchmark script imports exists: a module moved or renamed in the package (as the layout
changes of issue 27 did) breaks the scripts under benchmarks/ silently otherwise, since only some have tests."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _python_sources() -> list[tuple[str, str]]:
    """``(where, source)``: each Python script, and each Python heredoc of a shell script."""
    sources = [(p.name, p.read_text()) for p in sorted(BENCHMARKS.glob("*.py"))]
    for script in sorted(BENCHMARKS.glob("*.sh")):
        text = script.read_text()
        for k, body in enumerate(re.findall(r"<<'(?:PY|PYEOF)'\n(.*?)\n(?:PY|PYEOF)\n", text, re.S)):
            sources.append((f"{script.name} (heredoc {k})", body))
    return sources


def _imports(source: str) -> list[tuple[str, str | None]]:
    """``(module, name)`` of every ``iadet`` import, at any depth (``name`` None for ``import iadet.x``)."""
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "iadet":
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names if alias.name.split(".")[0] == "iadet"]
    return found


@pytest.mark.parametrize(("where", "source"), [pytest.param(w, s, id=w) for w, s in _python_sources()])
def test_every_iadet_import_of_a_benchmark_script_resolves(where: str, source: str) -> None:
    missing = []
    for module_name, name in _imports(source):
        module = importlib.import_module(module_name)
        if name is not None and not hasattr(module, name):
            try:
                importlib.import_module(f"{module_name}.{name}")
            except ModuleNotFoundError:
                missing.append(f"{module_name}.{name}")
    assert missing == [], where


def test_the_scan_sees_the_scripts_and_their_heredocs() -> None:
    sources = dict(_python_sources())
    assert "weights_fingerprint.py" in sources
    assert any(where.startswith("readme_pictures.sh") for where in sources)
    heredocs = [s for w, s in sources.items() if w.startswith("readme_pictures.sh")]
    assert ("iadet.comparison.report", "write_report") in [i for s in heredocs for i in _imports(s)]
