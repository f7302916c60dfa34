"""The README stays true: its two commands come first, its config tables match the schema, every command is named."""

import contextlib
import io
import re
import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_opens_with_demo_and_test():
    first_lines = README.splitlines()[:6]
    assert any("make demo" in line for line in first_lines) and any(
        "make test" in line for line in first_lines
    )
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_config_tables_are_generated_from_the_schema():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        runpy.run_path(str(ROOT / "tools" / "config_reference.py"), run_name="__main__")
    assert out.getvalue().strip() in README, (
        "README config tables are stale: python tools/config_reference.py"
    )


def _section(heading: str) -> str:
    """The README's text under ``heading`` up to the next heading of any level."""
    start = README.index(heading + "\n") + len(heading) + 1
    return re.split(r"\n#{2,4} ", README[start:], maxsplit=1)[0]


def test_every_command_and_method_is_documented():
    from iadet.cli import COMMANDS
    from iadet.modeling.attach import list_methods

    listed = re.search(r"`iadet --help` lists every command \(([^)]*)\)", README)
    assert listed, "README: the sentence listing every command is gone"
    assert re.findall(r"`([\w-]+)`", listed.group(1)) == list(COMMANDS)
    # every RoI method has a row of the methods table, every image-space one is in the baselines' section
    table = _section("## Methods")
    rows = {
        name
        for line in table.splitlines()
        if line.startswith("| `")
        for name in re.findall(r"`([^`]+)`", line.split(" | ")[0])
    }
    assert set(list_methods()) <= rows, set(list_methods()) - rows
    baselines = _section("### The baselines a user would try first")
    for method in list_methods("image"):
        assert f"`{method}`" in baselines, method
