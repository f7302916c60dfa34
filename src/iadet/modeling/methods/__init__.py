"""Training methods on the RoI-feature hook.

Each module defines method classes that name their parameter class
(``class InvertedAttention(RoIMethod, params=IAParams)``); the names users choose
(``method.name=ia``) are presets of those parameter classes, in :mod:`iadet.config.methods`.
Importing this package imports every method, so :func:`build_method` knows them all.
"""

from iadet.config.methods import method_names
from iadet.modeling.methods import (  # noqa: F401  (each module registers its method classes)
    adversarial,
    dropblock,
    dropout_baselines,
    inverted_attention,
    jitter,
    ohem,
)
from iadet.modeling.methods.base import (
    IMPLEMENTATIONS,
    BoxScorer,
    NonFiniteLoss,
    RoIBatch,
    RoIMethod,
    RoIOutput,
    adversary_parameters,
    build_method,
)

__all__ = [
    "IMPLEMENTATIONS",
    "BoxScorer",
    "NonFiniteLoss",
    "RoIBatch",
    "RoIMethod",
    "RoIOutput",
    "adversary_parameters",
    "build_method",
    "method_names",
]
