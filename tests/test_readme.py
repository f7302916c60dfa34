"""The README stays true: its two commands come first, its config tables match the schema, every command is named."""

import contextlib
import io
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


def test_every_command_and_method_is_documented():
    from iadet.cli import COMMANDS
    from iadet.modeling.methods import method_names

    for command in COMMANDS:
        assert f"`{command}`" in README, command
    for method in method_names():
        if not method.startswith("test-"):
            assert f"`{method}`" in README, method
