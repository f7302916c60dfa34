"""The training-method interface: one hook on the RoI-pooled features.

During training only, :class:`iadet.modeling.roi_heads.HookedRoIHeads` hands every method

* ``features`` ``(N, C, H, W)`` — the RoI-pooled features of the sampled RoIs of the batch,
* ``labels`` ``(N,)`` int64 — each RoI's ground-truth class, 0 = background,
* ``score_fn`` — a callable running box head + predictor: ``(M, C, H, W) -> (M, K + 1)`` logits,
* ``batch`` — a :class:`RoIBatch` with the rest (proposals, regression targets, iteration ...),

and trains the detector on the features the method returns. ``none`` is the identity. The
eval path never sees a method, so inference is exactly torchvision's.

A method may own an adversary (ASDN, ASTN): its parameters are the method module's own
parameters, trained by the engine with a separate optimiser from the losses the method puts in
``batch.adversary_losses``; the engine gives them gradients only with respect to the
adversary's parameters, so no detector parameter is ever touched by an adversary's loss.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from iadet.errors import ConfigError

ScoreFn = Callable[[Tensor], Tensor]


@dataclass
class RoIBatch:
    """The sampled RoIs of one training iteration, as the box head sees them.

    Attributes:
        proposals: per image, ``(R_i, 4)`` boxes ``x1, y1, x2, y2`` in the resized image's pixels.
        labels: ``(N,)`` int64 ground-truth class per RoI (0 = background), ``N = sum R_i``.
        regression_targets: ``(N, 4)`` encoded box targets.
        image_index: ``(N,)`` int64, the image of the batch each RoI comes from.
        image_shapes: per image, ``(height, width)`` after resizing.
        iteration: the training iteration (0-based).
        keep: set by a method to train the box head on a subset of the RoIs only (OHEM).
        adversary_losses: losses for the method's own parameters (not the detector's).
        stats: scalars to log (e.g. the fraction of RoIs masked).
    """

    proposals: list[Tensor]
    labels: Tensor
    regression_targets: Tensor
    image_index: Tensor
    image_shapes: list[tuple[int, int]]
    iteration: int = 0
    keep: Tensor | None = None
    adversary_losses: dict[str, Tensor] = field(default_factory=dict)
    stats: dict[str, float] = field(default_factory=dict)


@dataclass
class NoParams:
    """``none`` has no parameters."""


class RoIMethod(nn.Module):
    """Base class: the identity (``method.name=none``)."""

    Params: ClassVar[type] = NoParams

    def __init__(self, params: Any = None) -> None:
        super().__init__()
        self.params = params if params is not None else self.Params()
        self.iteration = 0
        self.max_iters = 1

    # --- the hook -------------------------------------------------------------------------
    def forward(self, features: Tensor, labels: Tensor, score_fn: ScoreFn, batch: RoIBatch) -> Tensor:
        return features

    def sample_proposals(self, heads: nn.Module, proposals: list[Tensor], targets: list[dict[str, Tensor]]):
        """Match and sample RoIs; the default is torchvision's ``select_training_samples``."""
        return heads.select_training_samples(proposals, targets)

    # --- the engine's view ----------------------------------------------------------------
    def setup(self, model: nn.Module) -> None:
        """Called once with the built detector (e.g. to size an adversary to its RoI features)."""

    def start_iteration(self, iteration: int, max_iters: int) -> None:
        """Called by the engine before each training iteration."""
        self.iteration = iteration
        self.max_iters = max_iters

    def trains_detector(self) -> bool:
        """False while only the adversary trains (A-Fast-RCNN's ASDN pre-training)."""
        return True

    def adversary_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def make_adversary_optimizer(self) -> torch.optim.Optimizer | None:
        """The adversary's optimiser, or None when the method has no trainable parameters."""
        return None

    def extra_state(self) -> dict[str, Any]:
        """Plain-typed state besides parameters (e.g. a stage) saved under ``adversary``."""
        return {}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        pass


# ----------------------------------------------------------------------------------------------
# registry

METHODS: dict[str, tuple[type[RoIMethod], dict[str, Any], str]] = {}


def register_method(name: str, defaults: Mapping[str, Any] | None = None, doc: str = ""):
    """Register ``cls`` under ``name``; ``defaults`` override its ``Params`` defaults (a preset)."""

    def wrap(cls: type[RoIMethod]) -> type[RoIMethod]:
        METHODS[name] = (cls, dict(defaults or {}), doc or (cls.__doc__ or "").strip().splitlines()[0])
        return cls

    return wrap


register_method("none", doc="the baseline: features pass unchanged")(RoIMethod)


def method_names() -> list[str]:
    _load_all()
    return list(METHODS)


def _load_all() -> None:
    import iadet.modeling.methods  # noqa: F401  (registers every method)


def resolve_method_params(raw: Mapping[str, Any], origin: str = "config") -> dict[str, Any]:
    """Validate ``method.*`` against the chosen method; return ``{"name": ..., **params}``."""
    _load_all()
    from iadet.config.config import check_params

    raw = dict(raw)
    name = str(raw.pop("name", "none"))
    if name not in METHODS:
        raise ConfigError(f"{origin}: unknown method '{name}'; valid methods: {', '.join(METHODS)}")
    cls, defaults, _ = METHODS[name]
    params = check_params(cls.Params, {**defaults, **raw}, "method", origin)
    return {"name": name, **params}


def build_method(method_config: Mapping[str, Any]) -> RoIMethod:
    """Instantiate the method of a ``method`` section; keys it leaves out take the registered
    preset's defaults (``fixed-asdn``, ``ia-code``), as :func:`resolve_method_params` does."""
    _load_all()
    config = dict(method_config)
    name = config.pop("name", "none")
    if name not in METHODS:
        raise ConfigError(f"unknown method '{name}'; valid methods: {', '.join(METHODS)}")
    cls, defaults, _ = METHODS[name]
    config = {**defaults, **config}
    fields = {f.name for f in dataclasses.fields(cls.Params)}
    unknown = set(config) - fields
    if unknown:
        raise ConfigError(f"method '{name}' has no parameter(s) {', '.join(sorted(unknown))}")
    method = cls(cls.Params(**config))
    method.method_name = name
    return method
