"""The training-method interface: one module on the RoI-pooled features, and what it returns.

During training only, :class:`iadet.modeling.roi_heads.RoIHeadsWithMethod` calls the method with

* ``features`` ``(N, C, H, W)`` — the RoI-pooled features of the sampled RoIs of the batch,
* ``batch`` — a :class:`RoIBatch`: each RoI's ground-truth label, its proposal, regression target
  and image, and ``batch.head``, the detector's box head and predictor as one read-only callable
  (:class:`BoxScorer`, ``(M, C, H, W) -> (M, K + 1)`` logits) for the methods that probe it,

and the method returns an :class:`RoIOutput`: the features the box head trains on, optionally
the subset of RoIs they are (OHEM), the losses of its own parameters (an adversary's) and
scalars to log. ``none`` is the identity. The eval path never sees a method, so inference is
exactly torchvision's. A method may also change the proposals before they are sampled
(:meth:`RoIMethod.transform_proposals`, the jitter baseline) or ask for every proposal instead of
the sampled 25% foreground / 75% background (:attr:`RoIMethod.samples_every_proposal`, OHEM).

A method is self-contained, so that it trains the same in any training loop (``iadet train``,
torchvision's reference ``train_one_epoch``, a Lightning module, ten lines of one's own):

* **its clock** — it counts its own training steps (:attr:`RoIMethod.iteration`, one per training
  forward of the detector); ramps and stages follow it. :meth:`RoIMethod.set_iteration` sets it
  (gradient accumulation, a resume without :meth:`~torch.nn.Module.state_dict`);
* **its adversary** — a method that owns parameters (ASDN, ASTN) trains them itself, inside the
  forward pass, with its own optimiser on its own losses (:meth:`RoIMethod.step_adversary`), and
  averages their gradients over DDP ranks. Its losses never join the detector's loss dict, so
  no detector parameter can receive a gradient from them, whatever the loop does with that dict;
  their values are in :meth:`RoIMethod.statistics`;
* **its state** — iteration, stage, adversary and its optimiser go to and from
  ``state_dict()`` (plain tensors, numbers, strings: ``torch.load(weights_only=True)`` reads it);
* **its statistics** — :meth:`RoIMethod.statistics` after each step (masked fraction, adversary
  losses, angles ...), without any logging framework.

The one thing a method cannot do from inside the forward pass is to skip the user's optimiser
step: while A-Fast-RCNN pre-trains its ASDN the detector is frozen. :meth:`RoIMethod.trains_detector`
says whether the step just run updates the detector (``if method.trains_detector(): optimizer.step()``);
in that stage the detector's losses carry zero gradient anyway (see :mod:`iadet.modeling.attach`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.distributed as torch_dist
from torch import Tensor, nn

from iadet.config.methods import MethodParams, implementation, method_params, register_implementation
from iadet.errors import TrainingError
from iadet.training_hooks import HookBase

ScoreFn = Callable[[Tensor], Tensor]


class NonFiniteLoss(TrainingError):
    """A loss term is NaN or infinite; the message names the iteration and every term."""


class BoxScorer(nn.Module):
    """The detector's box head and predictor, as the methods probe them.

    ``scorer(x)`` gives the class logits ``(M, K + 1)`` of pooled features ``x`` ``(M, C, H, W)``;
    :meth:`predict` gives ``(class_logits, box_regression)``. It holds the detector's own modules
    (shared, not copied) and lives outside the detector's module tree, so the detector's state dict
    is unchanged; :func:`~iadet.modeling.methods.probes.eval_mode` puts them in eval mode for a probe.
    """

    def __init__(self, box_head: nn.Module, box_predictor: nn.Module) -> None:
        super().__init__()
        self.box_head = box_head
        self.box_predictor = box_predictor

    def forward(self, features: Tensor) -> Tensor:
        return self.box_predictor(self.box_head(features))[0]

    def predict(self, features: Tensor) -> tuple[Tensor, Tensor]:
        return self.box_predictor(self.box_head(features))


@dataclass
class RoIBatch:
    """The sampled RoIs of one training iteration, as the box head sees them (read-only for methods).

    Attributes:
        labels: ``(N,)`` int64 ground-truth class per RoI (0 = background), ``N = sum R_i``.
        proposals: per image, ``(R_i, 4)`` boxes ``x1, y1, x2, y2`` in the resized image's pixels.
        regression_targets: ``(N, 4)`` encoded box targets.
        image_index: ``(N,)`` int64, the image of the batch each RoI comes from.
        image_shapes: per image, ``(height, width)`` after resizing.
        head: the box head and predictor, ``(M, C, H, W) -> (M, K + 1)`` logits (a :class:`BoxScorer`
            in the detector; any such callable in a test, or ``None`` for a method that never probes).
    """

    labels: Tensor
    proposals: list[Tensor]
    regression_targets: Tensor
    image_index: Tensor
    image_shapes: list[tuple[int, int]]
    head: ScoreFn | None = None


@dataclass
class RoIOutput:
    """What a method did to the RoI features of one iteration.

    Attributes:
        features: ``(N', C, H, W)`` the features the box head trains on; ``N' = N`` unless ``keep`` is set.
        keep: ``(N',)`` int64 indices of the sampled RoIs ``features`` are (OHEM trains on a subset);
            ``None``: all ``N``, in order.
        losses: losses of the method's own parameters (``loss_asdn``, ``loss_astn``), never the detector's;
            the method trains on them itself (:meth:`RoIMethod.step_adversary`).
        stats: scalars to log with the step's metrics (e.g. ``ia_masked_fraction``); floats or 0-dim tensors.
    """

    features: Tensor
    keep: Tensor | None = None
    losses: dict[str, Tensor] = field(default_factory=dict)
    stats: dict[str, float | Tensor] = field(default_factory=dict)


def average_over_ranks(grads: list[Tensor]) -> None:
    """All-reduce (mean, in place) ``grads`` over the DDP ranks in one flattened call; a no-op
    without a process group. Every rank must pass tensors of the same shapes, in the same order."""
    if not grads or not (torch_dist.is_available() and torch_dist.is_initialized()):
        return
    world = torch_dist.get_world_size()
    if world == 1:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch_dist.all_reduce(flat)
    flat /= world
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


class RoIMethod(nn.Module):
    """Base class: the identity (``method.name=none``).

    A subclass names its parameter class, ``class InvertedAttention(RoIMethod, params=IAParams)``,
    and is then what :func:`build_method` builds for every preset of that class. The parameters
    arrive checked (:func:`iadet.config.methods.method_params`).

    Attributes:
        params: the checked parameters.
        iteration: training steps done (the index of the next one); one per training forward.
        max_iters: the length of the run, for the methods whose schedule is a fraction of it
            (:meth:`needs_max_iters`); ``None`` when not given.
        optimizer: the adversary's own optimiser (:meth:`make_adversary_optimizer`), ``None`` without one.
    """

    Params: ClassVar[type[MethodParams]] = MethodParams

    def __init_subclass__(cls, params: type[MethodParams] | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if params is not None:
            cls.Params = params
            register_implementation(params, cls)

    def __init__(self, params: MethodParams | None = None) -> None:
        super().__init__()
        self.params = params if params is not None else self.Params()
        self.iteration = 0
        self.max_iters: int | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self._stats: dict[str, float | Tensor] = {}
        self._asked_step = -1  # the latest step trains_detector() was asked about
        self._warned_unasked = False

    # --- forward: the method on the RoI features -------------------------------------------------------------------------
    samples_every_proposal: ClassVar[bool] = False
    """True: the heads match every proposal to the ground truth and skip torchvision's 25% / 75%
    foreground / background subsampling (OHEM chooses its own RoIs)."""

    def forward(self, features: Tensor, batch: RoIBatch) -> RoIOutput:
        return RoIOutput(features)

    def transform_proposals(self, proposals: list[Tensor]) -> list[Tensor]:
        """The proposals the heads match and sample, per image ``(R_i, 4)``; the identity here."""
        return proposals

    def training_hooks(self, model: nn.Module) -> list[HookBase]:
        """Hooks this method hands a training loop that runs hooks (``iadet train``'s), on the detector
        ``model``: what it needs of the loop besides its own forward (IA's attention recording).
        None here; a plain loop can ignore them (they record, they do not train)."""
        return []

    # --- the clock ------------------------------------------------------------------------
    def needs_max_iters(self) -> bool:
        """Whether the schedule is a fraction of the run (a ramp over it, stages as fractions): such a
        method must be given ``max_iters``."""
        return False

    def set_iteration(self, iteration: int) -> None:
        """Set the clock: ``iteration`` steps are done. For gradient accumulation (one step per
        optimiser step, not per forward) or a resume that does not restore :meth:`state_dict`."""
        if isinstance(iteration, bool) or not isinstance(iteration, int):
            raise TypeError(f"iteration must be an int (steps done), got {type(iteration).__name__}")
        if iteration < 0:
            raise ValueError(f"iteration must be >= 0, got {iteration}")
        self.iteration = int(iteration)
        self._asked_step = self.iteration - 1  # the steps before were not this loop's to ask about

    def begin_step(self) -> None:
        """Called by the heads at the start of each training forward: the step ``self.iteration``."""
        if self.needs_max_iters() and self.max_iters is None:
            raise RuntimeError(
                f"method '{self.params.name}' has a schedule over the run: give it max_iters "
                f"(iadet.attach(model, '{self.params.name}', max_iters=N))"
            )
        last = self.iteration - 1
        if (
            last >= 0
            and self.detector_frozen_at(last)
            and self._asked_step < last
            and not self._warned_unasked
        ):
            self._warned_unasked = True
            warnings.warn(
                f"method '{self.params.name}' froze the detector at step {last} (A-Fast-RCNN's ASDN "
                "pre-training) but trains_detector() was not asked: the detector's losses carried zero "
                "gradient, yet SGD momentum and weight decay still moved it. Step the detector's "
                "optimiser only `if method.trains_detector():`",
                stacklevel=2,
            )
        self.start_iteration(self.iteration, self.max_iters or 1)

    def start_iteration(self, iteration: int, max_iters: int) -> None:
        """What a subclass computes once per step from the clock (its stage); called by :meth:`begin_step`."""

    def end_step(self, out: RoIOutput) -> None:
        """Called by the heads after the method's forward: trains the adversary on ``out.losses``,
        keeps the statistics, advances the clock."""
        losses = {k: v.detach() for k, v in out.losses.items()}
        if out.losses:
            self.step_adversary(out.losses)
        self._stats = {**out.stats, **losses}
        self.iteration += 1

    def trains_detector(self, iteration: int | None = None) -> bool:
        """Whether the detector is updated at step ``iteration`` (default: the step whose forward ran
        last). False only while A-Fast-RCNN's ASDN pre-trains against a frozen detector: a training
        loop then skips the detector's optimiser step (``if method.trains_detector(): optimizer.step()``)."""
        if iteration is None:
            if self.iteration == 0:
                raise RuntimeError(
                    f"method '{self.params.name}': trains_detector() asks about the step just run, and no "
                    "training step has run yet (model.train() and a forward with targets); for the next "
                    "step, ask trains_detector(method.iteration)"
                )
            iteration = self.iteration - 1
        self._asked_step = max(self._asked_step, int(iteration))
        return not self.detector_frozen_at(int(iteration))

    def detector_frozen_at(self, iteration: int) -> bool:
        """Whether step ``iteration`` freezes the detector (a subclass's schedule; never, here)."""
        return False

    # --- the adversary --------------------------------------------------------------------
    def make_adversary_optimizer(self) -> torch.optim.Optimizer | None:
        """The adversary's own optimiser (with its paper's settings), ``None`` for parameter-free methods."""
        return None

    def setup(self, model: nn.Module) -> None:
        """Called once with the built detector: size an adversary to its RoI features; then the
        adversary's optimiser is made."""

    def attach_to(self, model: nn.Module, max_iters: int | None = None) -> None:
        """Everything needed before the first step: :meth:`setup` with ``model``, the adversary's
        optimiser, ``max_iters`` and the device of the model's parameters."""
        self.max_iters = None if max_iters is None else int(max_iters)
        self.setup(model)
        self.optimizer = self.make_adversary_optimizer()
        device = next((p.device for p in model.parameters()), None)
        if device is not None:
            self.to(device)

    def step_adversary(self, losses: Mapping[str, Tensor]) -> None:
        """One update of the method's own parameters on the sum of ``losses`` (and of nothing else).

        The gradients are taken with respect to the method's parameters only, so the detector gets
        nothing from these losses; a parameter without a gradient this step (the idle ASTN while the
        ASDN pre-trains) gets zeros. Under DDP the gradients are averaged over ranks (one call).
        """
        params = adversary_parameters(self)
        with torch.enable_grad():  # the detector's forward may run under no_grad (a frozen stage)
            loss = sum(losses.values())
        if not params or self.optimizer is None or not loss.requires_grad:
            return
        if not bool(torch.isfinite(loss.detach()).all()):
            terms = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in losses.items())
            raise NonFiniteLoss(f"non-finite adversary loss at iteration {self.iteration + 1}: {terms}")
        grads = [
            g.contiguous() if g is not None else None  # autograd may return expanded views (a plain sum's)
            for g in torch.autograd.grad(loss, params, allow_unused=True)
        ]
        self.optimizer.zero_grad(set_to_none=True)
        present = [g for g in grads if g is not None]
        average_over_ranks(present)
        for p, g in zip(params, grads):
            p.grad = g if g is not None else torch.zeros_like(p)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def _apply(self, fn, recurse=True):  # noqa: ANN001  (nn.Module's signature)
        # keep the optimiser's state (momentum buffers) on the parameters' device
        out = super()._apply(fn, recurse)
        if self.optimizer is not None:
            for state in self.optimizer.state.values():
                for key, value in state.items():
                    if isinstance(value, Tensor) and value.dim() > 0:
                        state[key] = fn(value)
        return out

    def follow_device(self, device: torch.device) -> None:
        """Move the method (and its optimiser's state) to ``device`` if its parameters are elsewhere
        (the detector was moved after :func:`iadet.attach`)."""
        p = next(self.parameters(), None)
        if p is not None and p.device != device:
            self.to(device)

    # --- statistics and state -------------------------------------------------------------
    def statistics(self) -> dict[str, float]:
        """The last training step's scalars: e.g. ``ia_masked_fraction``, ``loss_asdn``,
        ``astn_abs_angle``, ``adv_stage`` (empty before the first step). Reading them synchronises
        with the device once."""
        return {k: float(v) for k, v in self._stats.items()}

    def raw_statistics(self) -> dict[str, float | Tensor]:
        """:meth:`statistics` without the conversion to floats (0-dim tensors stay on the device)."""
        return dict(self._stats)

    def training_state(self) -> dict[str, Any]:
        """A subclass's own training state besides its parameters (its stage ...): plain values."""
        return {}

    def load_training_state(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`training_state`."""

    def get_extra_state(self) -> dict[str, Any]:
        """The training state in ``state_dict()['_extra_state']``: clock, optimiser and the subclass's."""
        return {
            "kind": type(self).__name__,
            "name": self.params.name,
            "iteration": self.iteration,
            "max_iters": -1 if self.max_iters is None else self.max_iters,
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else {},
            **self.training_state(),
        }

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        """As ``nn.Module``'s; a state of another kind of method is refused first, in one line. A state
        without ``_extra_state`` (parameters only, as checkpoints before iadet 0.2 hold them) loads the
        parameters and leaves the training state as it is."""
        extra = state_dict.get("_extra_state") if isinstance(state_dict, Mapping) else None
        if isinstance(extra, Mapping):
            self._check_kind(extra)
        result = super().load_state_dict(state_dict, strict=False, assign=assign)
        missing = [k for k in result.missing_keys if k != "_extra_state"]
        if strict and (missing or result.unexpected_keys):
            raise RuntimeError(
                f"Error(s) in loading state_dict for {type(self).__name__}: missing keys {missing}, "
                f"unexpected keys {result.unexpected_keys}"
            )
        return result

    def _check_kind(self, state: Mapping[str, Any]) -> None:
        kind = state.get("kind", type(self).__name__)
        if kind != type(self).__name__:
            raise ValueError(
                f"a state of method '{state.get('name', kind)}' ({kind}) cannot be loaded into "
                f"method '{self.params.name}' ({type(self).__name__})"
            )

    def set_extra_state(self, state: Any) -> None:
        if not isinstance(state, Mapping):
            raise ValueError(f"not a method state: {type(state).__name__}")
        self._check_kind(state)
        self.set_iteration(int(state.get("iteration", self.iteration)))
        max_iters = int(state.get("max_iters", -1))
        if self.max_iters is None and max_iters >= 0:  # the run's length given at attach wins
            self.max_iters = max_iters
        if self.optimizer is not None and state.get("optimizer"):
            self.optimizer.load_state_dict(state["optimizer"])
        self.load_training_state(state)


register_implementation(MethodParams, RoIMethod)


def build_method(params: MethodParams | Mapping[str, Any]) -> RoIMethod:
    """The method module for checked parameters (a mapping is checked first, as a config's is).

    The method's class is the one registered for its parameter class (``class X(RoIMethod, params=XParams)``;
    :func:`iadet.config.methods.implementation` imports every method module first). The image-space baselines
    (``random-erasing`` ...) act on the training images, not on RoI features: they are data transforms
    (:mod:`iadet.transforms`), and asking for one here is an error that names it.
    """
    params = method_params(params)
    cls = implementation(params)
    if not issubclass(cls, RoIMethod):
        raise TypeError(
            f"'{params.name}' is an image-space augmentation, not a method on RoI features: "
            f"use the data transform iadet.transforms.{cls.__name__}"
        )
    return cls(params)


def adversary_parameters(method: nn.Module) -> list[nn.Parameter]:
    """The method's trainable parameters (an adversary's; empty for parameter-free methods)."""
    return [p for p in method.parameters() if p.requires_grad]
