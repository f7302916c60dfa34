"""The wheel a user installs, not the editable checkout ``make test`` runs on.

The wheel is built once from a copy of the source tree, which keeps ``build/`` out of the checkout and stale
build output out of the wheel. It must hold every module, the package data (the bundled pretrained trunk behind
``model.backbone_weights=builtin``), the license and the console script. Installed with ``pip install --target``
(not editable), ``import iadet``, ``python -m iadet`` and the ``iadet`` script must then run from that copy.
The editable install in the venv must not shadow it: each check asserts where ``iadet`` was imported from.
"""

from __future__ import annotations

import configparser
import dataclasses
import email.parser
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

import iadet

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DATA = "iadet/data/builtin/"  # the bundled pretrained weights (pyproject's package-data)


def wheel_test(fn):
    """Builds (once per module) and inspects or installs the wheel: seconds, with subprocesses."""
    return pytest.mark.slow(pytest.mark.timeout(300)(fn))


@dataclasses.dataclass(frozen=True)
class Built:
    wheel: Path
    source: Path  # the copy of the tree the wheel was built from
    log: str  # pip's output, the build backend's warnings included


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    env.update(kwargs.pop("env", {}))
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240, **kwargs)


def _setuptools_major() -> int:
    try:
        match = re.match(r"\d+", metadata.version("setuptools"))
    except metadata.PackageNotFoundError:
        return 0
    return int(match.group()) if match else 0


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).is_file():  # a missing LICENSE makes the build fail (license-files), as it should
            shutil.copy2(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    )
    out = tmp_path_factory.mktemp("dist")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out), str(source)]
    if _setuptools_major() >= 77:  # pyproject's build-system.requires: no download needed
        cmd[4:4] = ["--no-build-isolation", "--no-index"]
    done = _run(cmd)
    log = done.stdout + done.stderr
    assert done.returncode == 0, f"pip wheel failed:\n{log}"
    wheels = list(out.glob("iadet-*.whl"))
    assert len(wheels) == 1, f"{[p.name for p in out.iterdir()]}\n{log}"
    return Built(wheels[0], source, log)


@pytest.fixture(scope="module")
def installed(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel installed by pip into a directory of its own (what ``pip install iadet`` lays out)."""
    target = tmp_path_factory.mktemp("site")
    done = _run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--no-compile"]
        + ["--target", str(target), str(built.wheel)]
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return target


def _run_installed(target: Path, cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    # PYTHONPATH comes before site-packages, where the editable install's path entry is; the working directory
    # is an empty one, so neither the checkout nor its src/ is on the path
    env = {"PYTHONPATH": str(target), "PYTHONNOUSERSITE": "1", "IADET_CACHE": str(cwd / "cache")}
    return _run(cmd, cwd=cwd, env=env)


def _dist_info(names: list[str]) -> str:
    dirs = {n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")}
    assert len(dirs) == 1, dirs
    return dirs.pop()


@wheel_test
def test_wheel_metadata_license_and_entry_point(built: Built):
    with zipfile.ZipFile(built.wheel) as zf:
        names = zf.namelist()
        info = _dist_info(names)
        meta = email.parser.Parser().parsestr(zf.read(f"{info}/METADATA").decode())
        license_text = zf.read(f"{info}/licenses/LICENSE")
        entry_points = configparser.ConfigParser(delimiters=("=",))
        entry_points.read_string(zf.read(f"{info}/entry_points.txt").decode())

    assert meta["Name"] == "iadet"
    assert meta["Version"] == iadet.__version__ == info.removesuffix(".dist-info").split("-")[1]
    assert meta["License-Expression"] == "MIT"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert meta.get("License") is None, "the deprecated License field is back (pyproject's license table?)"
    assert license_text == (ROOT / "LICENSE").read_bytes()
    assert "MIT License" in license_text.decode()
    assert entry_points["console_scripts"]["iadet"].strip() == "iadet.cli:main"


@wheel_test
def test_wheel_holds_every_module_and_the_package_data(built: Built):
    src = built.source / "src"
    expected = {p.relative_to(src).as_posix() for p in (src / "iadet").rglob("*") if p.is_file()}
    with zipfile.ZipFile(built.wheel) as zf:
        names = zf.namelist()
        info = _dist_info(names)
        shipped = {n for n in names if n.startswith("iadet/") and not n.endswith("/")}
        data = {n: zf.read(n) for n in shipped if n.startswith(PACKAGE_DATA)}

    assert {n.split("/")[0] for n in names} == {"iadet", info}, "only the package and its metadata"
    assert not [n for n in names if n.endswith(".pyc") or "__pycache__" in n]
    # a sub-package without __init__.py, or a data file pyproject's package-data does not name, is missing here
    assert shipped == expected, (
        f"missing from the wheel: {sorted(expected - shipped)}; not in the source: {sorted(shipped - expected)}"
    )
    assert any(n.endswith(".pth") for n in data), f"no bundled weights under {PACKAGE_DATA}"
    for name, blob in data.items():
        assert blob == (src / name).read_bytes(), name


@wheel_test
def test_build_prints_no_license_deprecation(built: Built):
    noisy = [
        line.strip()
        for line in built.log.splitlines()
        if "licen" in line.lower() and ("warning" in line.lower() or "deprecat" in line.lower())
    ]
    assert not noisy, "\n".join(noisy)


@wheel_test
def test_import_and_package_data_from_the_installed_wheel(installed: Path, tmp_path: Path):
    code = (
        "import json, importlib.resources, iadet, iadet.cli\n"
        "data = importlib.resources.files('iadet') / 'data' / 'builtin'\n"
        "print(json.dumps({'file': iadet.__file__, 'cli': iadet.cli.__file__, 'version': iadet.__version__,\n"
        "    'data': sorted(p.name for p in data.iterdir() if p.name.endswith('.pth'))}))\n"
    )
    done = _run_installed(installed, [sys.executable, "-c", code], tmp_path)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert Path(seen["file"]).is_relative_to(installed), f"imported {seen['file']}, not the wheel's copy"
    assert Path(seen["cli"]).is_relative_to(installed), seen["cli"]
    assert seen["version"] == iadet.__version__
    assert seen["data"], "no bundled weights in the installed package"


@wheel_test
def test_python_m_iadet_and_the_console_script(installed: Path, tmp_path: Path):
    script = installed / "bin" / "iadet"
    assert script.is_file(), f"pip made no console script: {sorted(p.name for p in installed.iterdir())}"
    for cmd in ([sys.executable, "-m", "iadet", "--help"], [str(script), "--help"]):
        done = _run_installed(installed, cmd, tmp_path)
        assert done.returncode == 0, f"{cmd}: {done.stderr}"
        assert done.stdout.startswith("usage: iadet"), done.stdout
        for command in ("train", "eval", "compare", "pretrain"):
            assert command in done.stdout, command


@wheel_test
def test_console_script_entry_point_function(installed: Path, tmp_path: Path):
    """Load the ``iadet`` console-script entry point from the installed metadata and call it."""
    (dist_info,) = installed.glob("iadet-*.dist-info")
    code = (
        "import inspect, sys\n"
        "from importlib.metadata import Distribution\n"
        f"eps = Distribution.at({str(dist_info)!r}).entry_points\n"
        "(ep,) = [e for e in eps if e.group == 'console_scripts' and e.name == 'iadet']\n"
        "main = ep.load()\n"
        "print(inspect.getfile(main))\n"
        "status = main([])\n"  # no command: prints the help and returns 0
        "sys.exit(status if status else main(['no-such-command']))\n"
    )
    done = _run_installed(installed, [sys.executable, "-c", code], tmp_path)
    # argparse exits 2 on the unknown command: the function ran both times and returned/raised as the CLI does
    assert done.returncode == 2, done.stdout + done.stderr
    where, _, usage = done.stdout.partition("\n")
    assert Path(where).is_relative_to(installed), f"entry point loaded from {where}"
    assert usage.startswith("usage: iadet"), usage
    assert "invalid choice: 'no-such-command'" in done.stderr


def test_release_files_name_this_version():
    """CITATION.cff, CHANGELOG.md and the README's BibTeX are bumped with iadet.__version__, and the citation
    names both papers."""
    import yaml

    version = iadet.__version__
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0"
    assert citation["version"] == version
    assert citation["license"] == "MIT"
    titles = {ref["title"] for ref in citation["references"]}
    assert titles == {
        "Improving Object Detection with Inverted Attention",
        "A-Fast-RCNN: Hard Positive Generation via Adversary for Object Detection",
    }
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(rf"^## \[{re.escape(version)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", changelog, re.M), (
        f"CHANGELOG.md has no '## [{version}] - YYYY-MM-DD' entry"
    )
    assert citation["date-released"] in changelog.split(f"## [{version}]")[1].splitlines()[0]
    readme = (ROOT / "README.md").read_text()
    assert re.findall(r"^\s*version\s*=\s*\{([^}]*)\}", readme, re.M) == [version], "README's @software entry"
