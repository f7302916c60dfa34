"""The public way in: :func:`attach` a training method to a torchvision two-stage detector, :func:`detach` it.

::

    model = torchvision.models.detection.fasterrcnn_resnet50_fpn(num_classes=21)
    method = iadet.attach(model, "ia")                      # or "asdn+astn", max_iters=N, ...
    for images, targets in loader:                          # any loop that sums the loss dict
        loss = sum(model(images, targets).values())
        optimizer.zero_grad(); loss.backward()
        if method.trains_detector():                        # false only while ASDN pre-trains
            optimizer.step()

:func:`attach` replaces ``model.roi_heads`` by :class:`~iadet.modeling.roi_heads.RoIHeadsWithMethod`
(the same submodules, so parameters and ``state_dict`` keys are unchanged: the trained weights load
into the stock constructor with ``strict=True``), gives the method what it needs before the first
step (an adversary sized to the RoI features and its optimiser, the run's length) and registers
one forward hook on the detector: while A-Fast-RCNN pre-trains the ASDN against a frozen detector,
the detector's losses keep their values but carry zero gradient, so a loop that does not ask
:meth:`~iadet.modeling.methods.base.RoIMethod.trains_detector` still gives the detector no gradient
(SGD momentum and weight decay do move it then; the method warns once). ``iadet train`` attaches
its methods through this same function.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn
from torchvision.models.detection.roi_heads import RoIHeads

from iadet.config.methods import MethodParams, implementation, method_names, method_params, method_preset
from iadet.errors import ConfigError
from iadet.modeling.methods import RoIMethod, build_method
from iadet.modeling.roi_heads import RoIHeadsWithMethod, attach_method

__all__ = ["attach", "attached_method", "detach", "list_methods", "parse_method"]


def list_methods(kind: str = "roi") -> list[str]:
    """The method names :func:`attach` accepts (``kind="roi"``), the image-space baselines, which are
    data transforms in :mod:`iadet.transforms` (``"image"``), or both (``"all"``)."""
    if kind not in ("roi", "image", "all"):
        raise ValueError(f"kind must be 'roi', 'image' or 'all', got {kind!r}")
    names = []
    for name in method_names():
        image = not issubclass(implementation(method_preset(name).params), RoIMethod)
        if kind == "all" or (kind == "image") == image:
            names.append(name)
    return names


def parse_method(spec: str | Mapping[str, Any] | MethodParams, **params: Any) -> MethodParams:
    """Checked parameters from a name (``"ia"``), a variant (``"ia:strategy=random:roi_ratio=0.3"``),
    a mapping (``{"name": "ia", "strategy": "random"}``) or a parameters object, with ``params`` over them.

    Raises ``ValueError`` naming an unknown method or key, a bad value, or an image-space baseline.
    """
    if isinstance(spec, MethodParams):
        values: dict[str, Any] = {k: getattr(spec, k) for k in spec.__dataclass_fields__}
    elif isinstance(spec, Mapping):
        values = dict(spec)
    elif isinstance(spec, str):
        name, *pairs = spec.split(":")
        values = {"name": name}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise ValueError(f"method variant '{spec}': '{pair}' is not key=value")
            values[key] = value
    else:
        raise TypeError(
            f"method must be a name, a 'name:key=value' variant, a mapping or a MethodParams, "
            f"got {type(spec).__name__}"
        )
    if isinstance(spec, MethodParams) and not params:
        checked = spec
    else:
        try:
            checked = method_params({**values, **params}, origin="iadet.attach")
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
    cls = implementation(checked)
    if not issubclass(cls, RoIMethod):
        raise ValueError(
            f"'{checked.name}' is an image-space augmentation, not a method on RoI features: it is the "
            f"data transform iadet.transforms.{cls.__name__} "
            "(put it in your dataset's transforms, e.g. a torchvision.transforms.v2.Compose)"
        )
    return checked


def _check_model(model: nn.Module) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torchvision detector (an nn.Module), got {type(model).__name__}")
    if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)) or hasattr(
        model, "_orig_mod"
    ):
        raise ValueError(
            f"the model is wrapped ({type(model).__name__}): attach before wrapping, "
            "method = iadet.attach(model, ...); model = DistributedDataParallel(model) / torch.compile(model)"
        )
    heads = getattr(model, "roi_heads", None)
    if not isinstance(heads, RoIHeads):
        raise TypeError(
            f"{type(model).__name__} has no RoI heads: iadet's methods act on the RoI-pooled features of "
            "two-stage detectors (torchvision's FasterRCNN and MaskRCNN)"
        )
    if heads.has_keypoint():
        raise TypeError(
            f"{type(model).__name__}: keypoint heads are not supported (FasterRCNN and MaskRCNN are)"
        )


def _unwrapped(model: nn.Module) -> nn.Module:
    """The detector inside a DDP / DataParallel and / or ``torch.compile`` wrapper."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def attached_method(model: nn.Module) -> RoIMethod | None:
    """The method attached to ``model`` (unwrapping DDP / ``torch.compile``), or ``None``."""
    heads = getattr(_unwrapped(model), "roi_heads", None)
    return heads.roi_method if isinstance(heads, RoIHeadsWithMethod) else None


def attach(
    model: nn.Module,
    method: str | Mapping[str, Any] | MethodParams | RoIMethod,
    *,
    max_iters: int | None = None,
    replace: bool = False,
    **params: Any,
) -> RoIMethod:
    """Attach a training method to ``model`` (in place) and return it.

    Args:
        model: a torchvision ``FasterRCNN`` or ``MaskRCNN`` (any backbone), not yet wrapped in
            DDP or ``torch.compile``; its device may change afterwards (the method follows it).
        method: a name from :func:`list_methods` (``"ia"``, ``"ia-code"``, ``"asdn+astn"`` ...), a
            variant (``"ia:strategy=random"``), a mapping or parameters object, or a method module.
        max_iters: the number of training steps of the run. Required by the methods whose schedule is
            a fraction of it (A-Fast-RCNN's stages, DropBlock's ramp, IA's triangle ramp).
        replace: replace a method attached before (otherwise that is an error).
        **params: the method's parameters, over its preset's (``roi_ratio=0.3``).

    Returns:
        The method module: ``trains_detector()``, ``statistics()``, ``state_dict()``, ``set_iteration()``.

    Raises:
        TypeError: ``model`` is not a two-stage detector, or ``method`` is of a wrong type.
        ValueError: a wrapped model, an unknown method or key, a bad value, an image-space baseline,
            a missing ``max_iters``, or a method already attached without ``replace=True``.
    """
    _check_model(model)
    if isinstance(method, RoIMethod):
        if params:
            raise ValueError("parameters cannot be given with a method module: build it with them")
        module = method
    else:
        module = build_method(parse_method(method, **params))
    if max_iters is not None and (
        isinstance(max_iters, bool) or int(max_iters) != max_iters or max_iters < 1
    ):
        raise ValueError(f"max_iters must be a positive integer, got {max_iters!r}")
    if max_iters is None and module.needs_max_iters():
        raise ValueError(
            f"method '{module.params.name}' has a schedule over the run: give the run's length, "
            f"iadet.attach(model, '{module.params.name}', max_iters=N)"
        )
    current = attached_method(model)
    if current is not None and not replace:
        raise ValueError(
            f"method '{current.params.name}' is already attached: pass replace=True, or iadet.detach(model) first"
        )
    module.attach_to(model, max_iters)
    attach_method(model, module)
    if not any(isinstance(hook, _StageGate) for hook in model._forward_hooks.values()):
        model.register_forward_hook(_StageGate())
    return module


def detach(model: nn.Module) -> nn.Module:
    """Give ``model`` back torchvision's own ``RoIHeads`` (the same submodules) and remove iadet's forward hook;
    returns ``model``. A model with nothing attached is returned as it is."""
    model = _unwrapped(model)
    heads = getattr(model, "roi_heads", None)
    if isinstance(heads, RoIHeadsWithMethod):
        model.roi_heads = heads.to_stock()
    for key, hook in list(model._forward_hooks.items()):
        if isinstance(hook, _StageGate):
            del model._forward_hooks[key]
    return model


class _StageGate:
    """Forward hook on the detector: while the attached method freezes the detector (ASDN
    pre-training), its losses keep their values and carry zero gradient. Holds nothing: a pickled
    detector carries no method, and its heads then run none."""

    def __call__(self, module: nn.Module, args: Any, output: Any) -> Any:
        heads = getattr(module, "roi_heads", None)
        method = heads.roi_method if isinstance(heads, RoIHeadsWithMethod) else None
        if method is None or not module.training or not isinstance(output, dict):
            return None
        if not method.detector_frozen_at(method.iteration - 1):
            return None
        return {k: _no_gradient(v) for k, v in output.items()}


def _no_gradient(value: Tensor) -> Tensor:
    """``value`` with a zero gradient (still connected, so DDP and GradScaler see every parameter)."""
    if not isinstance(value, Tensor) or not value.requires_grad:
        return value
    return value.detach() + 0.0 * value
