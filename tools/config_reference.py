"""Print the configuration reference of docs/configuration.md (Markdown tables) from the schema's attribute docstrings.

python tools/config_reference.py > /tmp/config.md
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path

import iadet.config.schema as schema
from iadet.config.methods import method_names, method_preset


def attribute_docs(path: Path) -> dict[tuple[str, str], tuple[str, str]]:
    """``(class, field) -> (default source, docstring)`` for the dataclasses of a module."""
    source = path.read_text()
    docs = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        for i, stmt in enumerate(node.body):
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                doc = ""
                nxt = node.body[i + 1] if i + 1 < len(node.body) else None
                if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
                    doc = " ".join(str(nxt.value.value).split())
                default = ast.get_source_segment(source, stmt.value) if stmt.value else ""
                if "default_factory=lambda: " in default:
                    default = default.split("lambda: ", 1)[1].rstrip(")")
                docs[(node.name, stmt.target.id)] = (default, doc.replace("``", "`"))
    return docs


def inherited_docs(cls: type) -> dict[tuple[str, str], tuple[str, str]]:
    """``attribute_docs`` keyed by ``cls``'s name, with the fields it inherits from dataclass bases: the
    nearest class that sets a field gives its default, the nearest that documents it its docstring."""
    merged: dict[str, tuple[str, str]] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        for (owner, field), (default, doc) in attribute_docs(Path(inspect.getfile(klass))).items():
            if owner == klass.__name__:
                merged[field] = (default, doc or merged.get(field, ("", ""))[1])
    return {(cls.__name__, field): value for field, value in merged.items()}


def section_table(name: str, cls: type, docs) -> str:
    rows = [f"| `{name}.` key | default | meaning |", "|---|---|---|"]
    for f in dataclasses.fields(cls):
        if name == "method" and f.name == "name":
            continue  # the method itself, chosen by name
        default, doc = docs.get((cls.__name__, f.name), ("", ""))
        rows.append(f"| `{f.name}` | `{default}` | {doc} |")
    return "\n".join(rows)


def main() -> None:
    docs = attribute_docs(Path(schema.__file__))
    for name, cls in schema.SECTIONS.items():
        print(f"## `{name}`\n\n{section_table(name, cls, docs)}\n")
    seen = set()
    names = method_names()
    for method in names:
        params = method_preset(method).params
        if params in seen or len(dataclasses.fields(params)) <= 1 or method.startswith("test-"):
            continue
        seen.add(params)
        users = [m for m in names if method_preset(m).params is params]
        print(f"## `method.` for {', '.join(f'`{u}`' for u in users)}\n")
        print(section_table("method", params, inherited_docs(params)) + "\n")


if __name__ == "__main__":
    main()
