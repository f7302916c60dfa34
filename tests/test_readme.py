"""The README and its pages stay true: the two commands come first, the README is a front page, the config tables
(docs/configuration.md) match the schema, every command and method is named, every link resolves."""

import contextlib
import io
import re
import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"


def test_readme_opens_with_demo_and_test():
    first_lines = README.splitlines()[:6]
    assert any("make demo" in line for line in first_lines) and any(
        "make test" in line for line in first_lines
    )
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_the_readme_is_a_front_page():
    assert len(README.splitlines()) <= 200, "the README is a front page: put the detail in docs/"
    assert "iadet.attach(model" in README  # the three-line library case


def test_config_tables_are_generated_from_the_schema():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        runpy.run_path(str(ROOT / "tools" / "config_reference.py"), run_name="__main__")
    assert out.getvalue().strip() in (DOCS / "configuration.md").read_text(), (
        "docs/configuration.md is stale: python tools/config_reference.py"
    )


def _section(text: str, heading: str) -> str:
    """``text`` under ``heading`` up to the next heading of any level."""
    start = text.index(heading + "\n") + len(heading) + 1
    return re.split(r"\n#{1,4} ", text[start:], maxsplit=1)[0]


def test_every_command_and_method_is_documented():
    from iadet.cli import COMMANDS
    from iadet.modeling.attach import list_methods

    listed = re.search(r"`iadet --help` lists every command \(([^)]*)\)", README)
    assert listed, "README: the sentence listing every command is gone"
    assert re.findall(r"`([\w-]+)`", listed.group(1)) == list(COMMANDS)
    # every RoI method has a row of the methods table, every image-space one is in the baselines' section
    methods = (DOCS / "methods.md").read_text()
    table = _section(methods, "# Methods")
    rows = {
        name
        for line in table.splitlines()
        if line.startswith("| `")
        for name in re.findall(r"`([^`]+)`", line.split(" | ")[0])
    }
    assert set(list_methods()) <= rows, set(list_methods()) - rows
    baselines = _section(methods, "## The baselines a user would try first")
    for method in list_methods("image"):
        assert f"`{method}`" in baselines, method


def test_every_link_of_the_readme_and_docs_resolves():
    bad = []
    for page in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, fragment = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                bad.append(f"{page.name}: {target}")
            elif fragment and dest.suffix == ".md":
                headings = re.findall(r"(?m)^#{1,6} (.*)$", dest.read_text())
                anchors = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}
                if fragment not in anchors:
                    bad.append(f"{page.name}: {target}")
    assert bad == []


def test_every_readme_picture_is_redrawn_by_readme_pictures_sh():
    """Issue 28's contract: `benchmarks/readme_pictures.sh` names (and so redraws) every picture the README shows."""
    script = (ROOT / "benchmarks" / "readme_pictures.sh").read_text()
    pictures = re.findall(r"!\[[^]]*\]\(([^)\s]+)\)", (ROOT / "README.md").read_text())
    assert pictures, "the README shows no picture"
    assert [p for p in pictures if p not in script] == []


def test_committed_results_hold_no_symbolic_links():
    """`iadet compare --finished-only` refuses a run directory that links out of its output, so a link in the
    committed results breaks `benchmarks/readme_pictures.sh` (the post-hoc control once linked the headline's runs)."""
    links = [str(p.relative_to(ROOT)) for p in (ROOT / "benchmarks" / "results").rglob("*") if p.is_symlink()]
    assert links == []
