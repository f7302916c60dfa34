"""Training methods on the RoI-feature hook; importing this package registers all of them."""

from iadet.modeling.methods.base import (
    METHODS,
    RoIBatch,
    RoIMethod,
    build_method,
    method_names,
    register_method,
    resolve_method_params,
)

__all__ = [
    "METHODS",
    "RoIBatch",
    "RoIMethod",
    "build_method",
    "method_names",
    "register_method",
    "resolve_method_params",
]
