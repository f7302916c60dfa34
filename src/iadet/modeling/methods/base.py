"""The training-method interface: one hook on the RoI-pooled features, and what it returns.

During training only, :class:`iadet.modeling.roi_heads.HookedRoIHeads` calls the method with

* ``features`` ``(N, C, H, W)`` — the RoI-pooled features of the sampled RoIs of the batch,
* ``labels`` ``(N,)`` int64 — each RoI's ground-truth class, 0 = background,
* ``score_fn`` — a callable running box head + predictor: ``(M, C, H, W) -> (M, K + 1)`` logits,
* ``batch`` — a :class:`RoIBatch` with the rest (proposals, regression targets, iteration ...),

and the method returns an :class:`RoIOutput`: the features the box head trains on, optionally
the subset of RoIs they are (OHEM), the losses of its own parameters (an adversary's) and
scalars to log. Nothing leaves a method any other way. ``none`` is the identity. The eval path
never sees a method, so inference is exactly torchvision's.

A method may own an adversary (ASDN, ASTN): its parameters are the method module's own
parameters. The heads return its losses in the detector's loss dict under
:data:`ADVERSARY_PREFIX`; the engine differentiates them with respect to the adversary's
parameters only (:func:`split_losses`), so no detector parameter is ever touched by them.

What a method needs from the training loop besides the hook (its stage schedule, its
optimiser, recording for pictures) it declares by name in :meth:`RoIMethod.training_hooks`;
the engine provides those hooks (:mod:`iadet.engine.hooks`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import Tensor, nn

from iadet.config.methods import ImageAugmentationParams, MethodParams, method_params

ScoreFn = Callable[[Tensor], Tensor]

ADVERSARY_PREFIX = "adversary."
"""Loss-dict keys of a method's own (adversary) losses start with this; the rest are the detector's."""


@dataclass
class RoIBatch:
    """The sampled RoIs of one training iteration, as the box head sees them (read-only for methods).

    Attributes:
        proposals: per image, ``(R_i, 4)`` boxes ``x1, y1, x2, y2`` in the resized image's pixels.
        labels: ``(N,)`` int64 ground-truth class per RoI (0 = background), ``N = sum R_i``.
        regression_targets: ``(N, 4)`` encoded box targets.
        image_index: ``(N,)`` int64, the image of the batch each RoI comes from.
        image_shapes: per image, ``(height, width)`` after resizing.
        iteration: the training iteration (0-based).
    """

    proposals: list[Tensor]
    labels: Tensor
    regression_targets: Tensor
    image_index: Tensor
    image_shapes: list[tuple[int, int]]
    iteration: int = 0


@dataclass
class RoIOutput:
    """What a method did to the RoI features of one iteration.

    Attributes:
        features: ``(N', C, H, W)`` the features the box head trains on; ``N' = N`` unless ``keep`` is set.
        keep: ``(N',)`` int64 indices of the sampled RoIs ``features`` are (OHEM trains on a subset);
            ``None``: all ``N``, in order.
        losses: losses of the method's own parameters (``loss_asdn``, ``loss_astn``), never the detector's.
        stats: scalars to log with the step's metrics (e.g. ``ia_masked_fraction``).
    """

    features: Tensor
    keep: Tensor | None = None
    losses: dict[str, Tensor] = field(default_factory=dict)
    stats: dict[str, float] = field(default_factory=dict)


def split_losses(loss_dict: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """``(detector losses, adversary losses)`` of a detector's training loss dict.

    The adversary's come back without :data:`ADVERSARY_PREFIX` (``"adversary.loss_asdn"`` ->
    ``"loss_asdn"``). A training loop of one's own sums the first for the detector and gives the
    second's gradients to the method's parameters only (``torch.autograd.grad(..., method.parameters())``).
    """
    detector = {k: v for k, v in loss_dict.items() if not k.startswith(ADVERSARY_PREFIX)}
    adversary = {
        k[len(ADVERSARY_PREFIX) :]: v for k, v in loss_dict.items() if k.startswith(ADVERSARY_PREFIX)
    }
    return detector, adversary


# params class -> method class; filled by ``class X(RoIMethod, params=XParams)``
IMPLEMENTATIONS: dict[type[MethodParams], type[RoIMethod]] = {}


class RoIMethod(nn.Module):
    """Base class: the identity (``method.name=none``).

    A subclass names its parameter class, ``class InvertedAttention(RoIMethod, params=IAParams)``,
    and is then what :func:`build_method` builds for every preset of that class. The parameters
    arrive checked (:func:`iadet.config.methods.method_params`).
    """

    Params: ClassVar[type[MethodParams]] = MethodParams

    def __init_subclass__(cls, params: type[MethodParams] | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if params is not None:
            cls.Params = params
            IMPLEMENTATIONS[params] = cls

    def __init__(self, params: MethodParams | None = None) -> None:
        super().__init__()
        self.params = params if params is not None else self.Params()
        self.iteration = 0
        self.max_iters = 1

    # --- the hook -------------------------------------------------------------------------
    def forward(self, features: Tensor, labels: Tensor, score_fn: ScoreFn, batch: RoIBatch) -> RoIOutput:
        return RoIOutput(features)

    def sample_proposals(self, heads: nn.Module, proposals: list[Tensor], targets: list[dict[str, Tensor]]):
        """Match and sample RoIs; the default is torchvision's ``select_training_samples``."""
        return heads.select_training_samples(proposals, targets)

    # --- what the engine provides ---------------------------------------------------------
    def training_hooks(self) -> list[str]:
        """Names of the engine hooks this method needs besides its iteration clock (which every
        method gets): ``"stages"`` (A-Fast-RCNN's stage schedule: the method then has
        ``trains_detector()``, ``extra_state()``, ``load_extra_state()``), ``"adversary"`` (its own
        optimiser: ``make_adversary_optimizer()``), ``"attention"`` (recording for the IA paper's Fig. 5)."""
        return []

    def setup(self, model: nn.Module) -> None:
        """Called once with the built detector (e.g. to size an adversary to its RoI features)."""

    def start_iteration(self, iteration: int, max_iters: int) -> None:
        """The iteration clock: called by the engine before each training iteration."""
        self.iteration = iteration
        self.max_iters = max_iters


IMPLEMENTATIONS[MethodParams] = RoIMethod


def build_method(params: MethodParams | Mapping[str, Any]) -> RoIMethod:
    """The method module for checked parameters (a mapping is checked first, as a config's is).

    The method's class must have been imported (``iadet.modeling.methods`` imports them all). The
    image-space baselines (``random-erasing`` ...) get the identity: they act on the training images.
    """
    params = method_params(params)
    if isinstance(params, ImageAugmentationParams):
        return RoIMethod(params)  # acts in the data pipeline (iadet.data.augment); the RoI features pass
    try:
        cls = IMPLEMENTATIONS[type(params)]
    except KeyError:
        raise TypeError(f"no RoIMethod implements {type(params).__name__}") from None
    return cls(params)


def adversary_parameters(method: nn.Module) -> list[nn.Parameter]:
    """The method's trainable parameters (an adversary's; empty for parameter-free methods)."""
    return [p for p in method.parameters() if p.requires_grad]
