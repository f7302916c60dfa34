"""The ``method`` section: the registry of training methods and the base of their typed, self-checking parameters.

A method is chosen by name (``method.name=ia``). Each method's module, beside its implementation, defines its
parameter class (a :class:`MethodParams` dataclass, checking its values in ``__post_init__``) and registers its
names with :func:`register_preset`: a *preset* is a parameter class plus the defaults that differ from the class's
(``ia-code`` is ``IAParams`` with the authors' released code's values). :func:`method_params` builds the instance
from a mapping, once, when the config is loaded: unknown names and keys, wrong types, unknown choices and
out-of-range values are all errors there, before any data is touched.

The registry is filled by importing the method modules, found by :func:`discover_methods` by name, so that this
layer imports nothing above it: every module of the packages in :data:`METHOD_PACKAGES` (the RoI-feature methods
of :mod:`iadet.modeling.methods`, the image-space baselines of :mod:`iadet.data.augmentations`) and every module an
installed distribution declares under the ``iadet.methods`` entry-point group (a method outside this repository).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from iadet.config.coerce import build_section, short_repr
from iadet.errors import ConfigError, closest

# ----------------------------------------------------------------------------------------------
# checks for the parameter classes' __post_init__


def check_in_range(params: Any, keys: tuple[str, ...], low: float = 0.0, high: float = 1.0) -> None:
    """Each of ``params.<key>`` is ``None`` or in ``[low, high]``, else a :class:`ConfigError` naming the key."""
    for key in keys:
        value = getattr(params, key)
        if value is not None and not low <= value <= high:
            raise ConfigError(f"method.{key} must be in [{low:g}, {high:g}], got {value}")


def check_non_negative(params: Any, keys: tuple[str, ...]) -> None:
    """Each of ``params.<key>`` is ``None`` or ``>= 0``."""
    for key in keys:
        value = getattr(params, key)
        if value is not None and value < 0:
            raise ConfigError(f"method.{key} must be >= 0, got {value}")


def check_one_of(params: Any, key: str, valid: tuple[str, ...]) -> None:
    """``params.<key>`` is one of ``valid``."""
    value = getattr(params, key)
    if value not in valid:
        raise ConfigError(f"method.{key}: unknown value {short_repr(value)} (valid: {', '.join(valid)})")


# ----------------------------------------------------------------------------------------------
# the base class


@dataclass
class MethodParams:
    """``method.*`` of ``none``; the base of every method's parameters."""

    name: str = "none"
    """The method (a registered preset name)."""

    def __post_init__(self) -> None:
        """Subclasses check their choices and ranges here (and call ``super().__post_init__()``)."""


# ----------------------------------------------------------------------------------------------
# the registry of presets

FAMILIES = ("baseline", "Inverted Attention", "A-Fast-RCNN", "feature space", "image space")
"""What a method is, in the order :func:`method_names` lists them: the baseline, the two papers' methods (with the
A-Fast-RCNN paper's own baselines), the other methods on RoI features, the image-space baselines."""

METHOD_PACKAGES = ("iadet.modeling.methods", "iadet.data.augmentations")
"""The packages whose every module is imported by :func:`discover_methods` (in this order, each alphabetically)."""

ENTRY_POINT_GROUP = "iadet.methods"
"""Installed distributions declare modules of their own methods here (``[project.entry-points."iadet.methods"]``)."""


@dataclass(frozen=True)
class MethodPreset:
    """A method name: its parameter class, the defaults it overrides, a one-line description and its family."""

    params: type[MethodParams]
    defaults: Mapping[str, Any]
    doc: str
    family: str = "feature space"


METHOD_PRESETS: dict[str, MethodPreset] = {}
"""Every registered name, in registration order (:func:`method_names` gives the listing order)."""

IMPLEMENTATIONS: dict[type[MethodParams], type] = {}
"""Parameter class -> the class that implements it (a ``RoIMethod``, or an image-space transform), filled by
:func:`register_implementation` (``class X(RoIMethod, params=XParams)``)."""

RETIRED_KEYS = {"keep_last"}
"""``method.*`` keys of earlier versions that computed nothing (a debugging dump): ignored when a stored
config (an older checkpoint) still has them."""

_discovered = False
_module_order: dict[str, int] = {__name__: -1}


def register_preset(
    name: str,
    params: type[MethodParams],
    defaults: Mapping[str, Any] | None = None,
    doc: str = "",
    family: str = "feature space",
) -> None:
    """Make ``method.name=<name>`` build ``params`` with ``defaults`` over its own defaults.

    Called at the top level of the method's module. The defaults are checked now, by building them: a preset
    cannot hold a value its class refuses. A name registered twice is an error.
    """
    if name in METHOD_PRESETS:
        raise ValueError(f"method '{name}' is registered twice ({METHOD_PRESETS[name].params.__module__})")
    if family not in FAMILIES:
        raise ValueError(f"preset '{name}': unknown family {family!r} (one of {', '.join(FAMILIES)})")
    fields = {f.name for f in dataclasses.fields(params)}
    unknown = set(defaults or {}) - fields
    if unknown:
        raise ValueError(f"preset '{name}': {params.__name__} has no field(s) {', '.join(sorted(unknown))}")
    params(name=name, **dict(defaults or {}))
    METHOD_PRESETS[name] = MethodPreset(
        params, dict(defaults or {}), doc or (params.__doc__ or "").strip(), family
    )


def register_implementation(params: type[MethodParams], implementation: type) -> None:
    """Record that ``implementation`` is what a method with parameters ``params`` runs (one class per ``params``)."""
    known = IMPLEMENTATIONS.get(params)
    if (
        known is not None
        and known is not implementation
        and known.__qualname__ != implementation.__qualname__
    ):
        raise ValueError(
            f"{params.__name__} is implemented twice: {known.__qualname__}, {implementation.__qualname__}"
        )
    IMPLEMENTATIONS[params] = implementation


def implementation(params: MethodParams | type[MethodParams]) -> type:
    """The class registered for ``params``'s class (after :func:`discover_methods`)."""
    discover_methods()
    cls = params if isinstance(params, type) else type(params)
    try:
        return IMPLEMENTATIONS[cls]
    except KeyError:
        raise TypeError(f"nothing implements {cls.__name__}") from None


def discover_methods() -> None:
    """Import every method module once (:data:`METHOD_PACKAGES`, then the ``iadet.methods`` entry points),
    which registers their presets. Called by the lookups below; cheap after the first call."""
    global _discovered
    if _discovered:
        return
    _discovered = True  # first: a method module that lists the methods while it is imported must not recurse
    try:
        modules: list[str] = []
        for package_name in METHOD_PACKAGES:
            package = importlib.import_module(package_name)
            found = sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name)
            modules += [f"{package_name}.{m.name}" for m in found]
        modules += [ep.value for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)]
        for rank, module in enumerate(modules):
            _module_order.setdefault(module, rank)
            importlib.import_module(module)
    except BaseException:
        _discovered = False
        raise


def method_names() -> list[str]:
    """Every registered method name, by family (:data:`FAMILIES`), then module, then registration order."""
    discover_methods()
    position = {name: k for k, name in enumerate(METHOD_PRESETS)}

    def key(name: str) -> tuple[int, int, int]:
        preset = METHOD_PRESETS[name]
        module = _module_order.get(preset.params.__module__, len(_module_order))
        return FAMILIES.index(preset.family), module, position[name]

    return sorted(METHOD_PRESETS, key=key)


def method_preset(name: str) -> MethodPreset:
    """The registered preset ``name`` (a :class:`ConfigError` with the closest names when unknown). A name not
    registered yet runs :func:`discover_methods` first (so ``none``, or a method whose module is already imported,
    imports nothing)."""
    if name not in METHOD_PRESETS:
        discover_methods()
    if name not in METHOD_PRESETS:
        names = method_names()
        raise ConfigError(
            f"unknown method {short_repr(name)}{closest(name, names)}; valid methods: {', '.join(names)}"
        )
    return METHOD_PRESETS[name]


register_preset("none", MethodParams, doc="the baseline: features pass unchanged", family="baseline")


def method_params(raw: Mapping[str, Any] | MethodParams, origin: str = "config") -> MethodParams:
    """The checked parameters of a ``method`` section ``{"name": ..., key: value, ...}``.

    Keys left out take the preset's defaults, then the class's. Values are coerced as every
    config value (``"0.5"`` -> 0.5); an unknown name or key, a wrong type, an unknown choice or
    a value out of range raises :class:`~iadet.errors.ConfigError` naming the key.
    """
    if isinstance(raw, MethodParams):
        return raw
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{origin}: section 'method' must be a mapping")
    values = {k: v for k, v in raw.items() if k not in RETIRED_KEYS}
    name = values.pop("name", "none")
    if not isinstance(name, str):
        raise ConfigError(f"{origin}: method.name: expected a method name, got {short_repr(name)}")
    try:
        preset = method_preset(name)
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc}") from None
    return build_section(preset.params, "method", {**preset.defaults, **values, "name": name}, origin)
