"""Training methods on the RoI-pooled features, one module each.

A method's module holds, together, its parameter class, its presets (``register_preset``: the names users
choose, ``method.name=ia``) and its implementation, linked to its parameters by a class keyword
(``class InvertedAttention(RoIMethod, params=IAParams)``). Nothing lists the modules: the registry
(:func:`iadet.config.methods.discover_methods`) imports every module of this package, so a new method is one
new file here (see ``docs/adding-a-method.md``).
"""

from iadet.config.methods import method_names
from iadet.modeling.methods.base import (
    BoxScorer,
    NonFiniteLoss,
    RoIBatch,
    RoIMethod,
    RoIOutput,
    adversary_parameters,
    build_method,
)

__all__ = [
    "BoxScorer",
    "NonFiniteLoss",
    "RoIBatch",
    "RoIMethod",
    "RoIOutput",
    "adversary_parameters",
    "build_method",
    "method_names",
]
