"""The registry of methods (iadet.config.methods): one module per method, found by name, in a stable order."""

from __future__ import annotations

import importlib.metadata
import sys
from dataclasses import dataclass

import pytest

from iadet.config import methods as registry
from iadet.config.methods import (
    FAMILIES,
    METHOD_PACKAGES,
    METHOD_PRESETS,
    MethodParams,
    discover_methods,
    implementation,
    method_names,
    method_params,
    method_preset,
    register_preset,
)
from iadet.errors import ConfigError


def test_every_builtin_method_is_found_without_a_list() -> None:
    names = method_names()
    assert names[:3] == ["none", "ia", "ia-code"]
    for expected in ("asdn", "fixed-asdn", "astn", "asdn+astn", "random-dropout", "hard-dropout", "jitter",
                     "ohem", "dropblock", "random-erasing", "hide-and-seek", "cutout", "gridmask"):  # fmt: skip
        assert expected in names
    families = [FAMILIES.index(method_preset(n).family) for n in names]
    assert families == sorted(families), "listed by family"
    assert method_preset("cutout").family == "image space" and method_preset("asdn").family == "A-Fast-RCNN"


def test_one_method_one_module() -> None:
    """A preset's parameter class and the class that implements it are defined in the same module."""
    apart = []
    for name in method_names():
        params = method_preset(name).params
        if params is MethodParams:  # `none`: the base class of both sides
            continue
        cls = implementation(params)
        if cls.__module__ != params.__module__:
            apart.append(f"{name}: {params.__module__} vs {cls.__module__}")
    assert apart == []
    packages = {method_preset(n).params.__module__.rsplit(".", 1)[0] for n in method_names() if n != "none"}
    assert packages == set(METHOD_PACKAGES)


def test_the_listing_order_does_not_depend_on_import_order(clean_registry) -> None:
    before = method_names()
    # as if two modules were imported last (a user importing them first gives the opposite: the same test)
    moved = {name: METHOD_PRESETS.pop(name) for name in ("ia", "ia-code", "cutout")}
    METHOD_PRESETS.update(moved)
    assert method_names() == before


def test_a_name_registered_twice_or_a_bad_family_is_refused(clean_registry) -> None:
    with pytest.raises(ValueError, match="'ia' is registered twice"):
        register_preset("ia", MethodParams)
    with pytest.raises(ValueError, match="unknown family 'magic'"):
        register_preset("new-one", MethodParams, family="magic")
    with pytest.raises(ValueError, match="has no field"):
        register_preset("new-two", MethodParams, defaults={"drop": 0.5})
    with pytest.raises(ConfigError, match="unknown method 'cutuot' .did you mean 'cutout'"):
        method_params({"name": "cutuot"})


def test_an_installed_distribution_adds_methods_by_entry_point(clean_registry, monkeypatch, tmp_path) -> None:
    """A module declared under the ``iadet.methods`` group is imported by discovery, like the built-in ones."""
    (tmp_path / "my_lab_methods.py").write_text(
        "from dataclasses import dataclass\n"
        "from iadet.config.methods import MethodParams, register_preset\n\n"
        "@dataclass\n"
        "class LabParams(MethodParams):\n"
        "    strength: float = 0.5\n\n"
        "register_preset('lab-method', LabParams, doc='a method of someone else\\'s package')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_lab_methods", raising=False)
    point = importlib.metadata.EntryPoint(name="lab-method", value="my_lab_methods", group="iadet.methods")
    monkeypatch.setattr(
        registry.importlib.metadata, "entry_points", lambda group: [point] if group == "iadet.methods" else []
    )
    monkeypatch.setattr(registry, "_discovered", False)
    assert "lab-method" not in METHOD_PRESETS  # not imported yet
    names = method_names()
    assert names.index("lab-method") == names.index("dropblock") + 1  # last of its family, "feature space"
    assert method_params({"name": "lab-method", "strength": "0.25"}).strength == 0.25
    sys.modules.pop("my_lab_methods", None)


def test_a_failed_discovery_is_retried(monkeypatch) -> None:
    monkeypatch.setattr(registry, "_discovered", False)
    monkeypatch.setattr(registry, "METHOD_PACKAGES", ("iadet.no_such_package",))
    with pytest.raises(ModuleNotFoundError):
        discover_methods()
    assert registry._discovered is False


@dataclass
class _Unused(MethodParams):
    pass


def test_implementation_of_an_unregistered_class_names_it() -> None:
    with pytest.raises(TypeError, match="nothing implements _Unused"):
        implementation(_Unused)
