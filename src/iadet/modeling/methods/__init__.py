"""Training methods on the RoI-feature hook.

Importing this package imports every module in it, and each module registers its methods
with :func:`register_method`; adding a method is adding a file.
"""

import importlib
import pkgutil

from iadet.modeling.methods.base import (
    METHODS,
    RoIBatch,
    RoIMethod,
    build_method,
    method_names,
    register_method,
    resolve_method_params,
)

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "METHODS",
    "RoIBatch",
    "RoIMethod",
    "build_method",
    "method_names",
    "register_method",
    "resolve_method_params",
]
