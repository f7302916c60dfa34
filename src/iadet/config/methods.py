"""The ``method`` section: every training method's parameters as a typed, self-checking dataclass.

A method is chosen by name (``method.name=ia``); a *preset* is a name for a parameter class plus
defaults that differ from the class's (``ia-code`` is :class:`IAParams` with the authors' released
code's values). :func:`method_params` builds the instance from a mapping, once, when the config
is loaded: unknown names and keys, wrong types, unknown choices and out-of-range values are all
errors there, before any data is touched. The config then holds that instance
(``config.method``); the model side (:mod:`iadet.modeling.methods`) builds the method module from it.

The classes live here, not beside the methods, so that ``config`` depends on nothing above it;
each one cites the paper (section, table) its defaults come from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from iadet.config.coerce import build_section, short_repr
from iadet.errors import ConfigError, closest

# ----------------------------------------------------------------------------------------------
# checks shared by the classes below


def _in_range(params: Any, keys: tuple[str, ...], low: float = 0.0, high: float = 1.0) -> None:
    for key in keys:
        value = getattr(params, key)
        if value is not None and not low <= value <= high:
            raise ConfigError(f"method.{key} must be in [{low:g}, {high:g}], got {value}")


def _non_negative(params: Any, keys: tuple[str, ...]) -> None:
    for key in keys:
        value = getattr(params, key)
        if value is not None and value < 0:
            raise ConfigError(f"method.{key} must be >= 0, got {value}")


def _one_of(params: Any, key: str, valid: tuple[str, ...]) -> None:
    value = getattr(params, key)
    if value not in valid:
        raise ConfigError(f"method.{key}: unknown value {short_repr(value)} (valid: {', '.join(valid)})")


# ----------------------------------------------------------------------------------------------
# the parameter classes


@dataclass
class MethodParams:
    """``method.*`` of ``none``; the base of every method's parameters."""

    name: str = "none"
    """The method (a registered preset name)."""

    def __post_init__(self) -> None:
        """Subclasses check their choices and ranges here (and call ``super().__post_init__()``)."""


IA_STRATEGIES = ("soft", "hard", "overturn", "random")
IA_ORIENTATIONS = ("spatial", "channel", "spatial+channel")
IA_SELECTIONS = ("random", "drop", "all")
IA_RAMPS = ("constant", "warmup", "triangle")


@dataclass
class IAParams(MethodParams):
    """``method.*`` for ``ia`` / ``ia-code`` (every key overridable with ``--set method.<key>=...``)."""

    strategy: str = "soft"
    """``soft`` (top-k), ``hard`` (0.5 on min-max normalised), ``overturn`` (1 - A), ``random`` (Table 2)."""
    orientation: str = "spatial+channel"
    """``spatial``, ``channel`` or ``spatial+channel`` (Table 3)."""
    spatial_ratio: float = 1 / 3
    """Fraction of the H x W cells inverted per RoI (the paper: 33%; the code: 18/49)."""
    channel_ratio: float = 0.8
    """Fraction of channels (largest ``w``) handed to the spatial inversion by Eq. 4 (the paper: 80%)."""
    select: str = "random"
    """Which RoIs get IA: ``random`` (``roi_ratio`` of all sampled RoIs, the paper), ``drop`` (largest
    confidence drop, the code), ``all``."""
    roi_ratio: float = 0.2
    """``select=random``: fraction of the sampled RoIs inverted (the paper: 20%)."""
    fg_ratio: float = 0.2
    """``select=drop``: fraction of foreground RoIs (the code: top 20% by drop)."""
    bg_ratio: float = 1 / 30
    """``select=drop``: fraction of background RoIs (the code: top 1/30 by drop)."""
    drop_offset: float = 0.01
    """``select=drop``: ``change = p_before[gt] - p_after[gt] - drop_offset`` (the code: 0.01)."""
    ramp: str = "constant"
    """Schedule of the selected fraction: ``constant``, ``warmup`` (0 -> full over ``ramp_iters``), or
    ``triangle`` (0 -> full at mid-training -> 0, as MAL ramps its masked ratio)."""
    ramp_iters: int = 0
    """``ramp=warmup``: iterations of the linear warm-up."""
    save_attention_every: int = 0
    """Every N iterations record the attention ``M`` (Eq. 1) of fixed RoIs, the ground-truth boxes of the
    first training batch, into the checkpoint for ``iadet visualize evolution`` (Fig. 5); 0 = off."""
    save_attention_rois: int = 8
    """``save_attention_every``: how many ground-truth boxes to follow."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _one_of(self, "strategy", IA_STRATEGIES)
        _one_of(self, "orientation", IA_ORIENTATIONS)
        _one_of(self, "select", IA_SELECTIONS)
        _one_of(self, "ramp", IA_RAMPS)
        _in_range(self, ("spatial_ratio", "channel_ratio", "roi_ratio", "fg_ratio", "bg_ratio"))
        _non_negative(self, ("ramp_iters", "save_attention_every"))
        if self.save_attention_rois < 1:
            raise ConfigError(f"method.save_attention_rois must be >= 1, got {self.save_attention_rois}")


@dataclass
class ScheduleParams(MethodParams):
    warmup_iters: int | None = None
    """Stage (a), the detector alone, in iterations; ``None``: ``warmup_fraction`` of ``train.max_iters``."""
    warmup_fraction: float = 0.125
    """Stage (a) as a fraction of the run (the paper: 10k of 80k)."""
    image_share: float = 0.5
    """Share of each iteration's images whose foreground RoIs are modified (the paper and code: 1 of 2)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _in_range(self, ("image_share", "warmup_fraction"))
        _non_negative(self, ("warmup_iters",))


@dataclass
class AdversaryParams(ScheduleParams):
    lr: float = 0.001
    """The adversary's SGD learning rate, constant (the code's solver: 0.001)."""
    momentum: float = 0.9
    """The adversary's SGD momentum (the code's solver)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _non_negative(self, ("lr", "momentum"))


ASTN_OBJECTIVES = ("max-loss", "background")


@dataclass
class ASDNParams(AdversaryParams):
    """``method.*`` for ``asdn`` / ``fixed-asdn`` (defaults: the released code)."""

    pretrain_iters: int | None = None
    """Stage (b), ASDN pre-training with the detector frozen; ``None``: ``pretrain_fraction`` of the run."""
    pretrain_fraction: float = 0.125
    """Stage (b) as a fraction of the run (the paper: 10k of 80k; the code: 25k)."""
    width: int = 256
    """Channels of the ASDN's four 3x3 conv layers."""
    window_size: int = 0
    """Stage (b) occlusion window side in cells; 0: ``round(d / 3)`` (2 on 7 x 7)."""
    window_stride: int = 0
    """Stage (b) window stride; 0: the window size (16 windows on 7 x 7, as the code)."""
    drop_fraction: float = 15 / 49
    """Cells dropped per mask, as a fraction of ``H * W`` (the code: 15 of 49; the paper: 1/3)."""
    pool_fraction: float = 20 / 49
    """The top cells of the heat-map they are drawn from (the code: 20 of 49; the paper: 1/2)."""
    drop_threshold: float = 0.1
    """A sampled mask teaches the ASDN only if ``p_after[gt] + drop_threshold < p_before[gt]`` (the code)."""
    loss_weight: float = 0.0025
    """Weight of the ASDN's joint-stage loss (the code)."""
    pretrain_loss_weight: float = 1.0
    """Weight of the ASDN's pre-training loss (the code)."""
    weight_decay: float = 0.0005
    """On the ASDN's conv weights (the code's solver; biases: none, and twice the learning rate, as Caffe's)."""
    joint_update: bool = True
    """Train the ASDN in stage (c); ``false`` is ``fixed-asdn`` (Table 2: frozen after pre-training)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _in_range(self, ("pretrain_fraction", "drop_fraction", "pool_fraction"))
        _non_negative(self, ("pretrain_iters", "window_size", "window_stride", "weight_decay"))
        if self.width < 1:
            raise ConfigError(f"method.width must be >= 1, got {self.width}")


@dataclass
class ASTNParams(AdversaryParams):
    """``method.*`` for ``astn`` (the paper's Sec. 4.2.2; no released code)."""

    blocks: int = 4
    """Channel blocks, each with its own angle (the paper: 4)."""
    max_angle: float = 10.0
    """Bound on each angle in degrees (the paper: 10, clockwise and anti-clockwise)."""
    hidden: int = 0
    """Width of the localisation network's hidden layers; 0: the box head's (``fc6`` out), else 1024."""
    pool: int = 7
    """The localisation network reads the features average-pooled to at most ``pool x pool`` (a C4
    head's 14 x 14 -> 7 x 7); 0: never pooled."""
    init_from_head: bool = True
    """Initialise its first two layers from the box head's ``fc6``/``fc7`` when the shapes fit."""
    objective: str = "background"
    """``background``: push the foreground RoIs to the background class, as the ASTN section says (Sec. 4.2.2);
    ``max-loss``: maximise the detector's classification loss (the general objective of Sec. 3)."""
    astn_loss_weight: float = 1.0
    """Weight of the ASTN's loss."""
    astn_lr: float | None = None
    """The ASTN's learning rate; ``None``: ``method.lr``. Its last layer starts at zero (the identity),
    so the angles grow from 0 as it learns; short runs may want more than 0.001."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _one_of(self, "objective", ASTN_OBJECTIVES)
        if self.blocks < 1:
            raise ConfigError(f"method.blocks must be at least 1, got {self.blocks}")
        _non_negative(self, ("max_angle", "hidden", "pool", "astn_lr"))


@dataclass
class FusionParams(ASDNParams, ASTNParams):
    """``method.*`` for ``asdn+astn``: every ASDN and ASTN parameter."""


@dataclass
class RandomDropoutParams(ScheduleParams):
    """``method.*`` for ``random-dropout``."""

    warmup_fraction: float = 0.0
    """Iterations before masking starts, as a fraction of the run (0: from the first; 0.125: the ASDN's warm-up)."""
    drop_fraction: float = 15 / 49
    """Cells dropped per foreground RoI, as a fraction of ``H * W`` (the ASDN's count: 15 of 49)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _in_range(self, ("drop_fraction",))


@dataclass
class HardDropoutParams(ScheduleParams):
    """``method.*`` for ``hard-dropout``."""

    warmup_fraction: float = 0.0
    """Iterations before masking starts, as a fraction of the run (0: from the first; 0.125: the ASDN's warm-up)."""
    window_size: int = 0
    """Occlusion window side in cells; 0: ``round(d / 3)`` (2 on 7 x 7)."""
    window_stride: int = 0
    """Window stride; 0: the window size (16 windows on 7 x 7)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _non_negative(self, ("window_size", "window_stride"))


@dataclass
class JitterParams(MethodParams):
    """``method.*`` for ``jitter``."""

    scale: float = 0.1
    """Scale jitter: box sides times a factor in ``[1/(1+scale), 1+scale]`` (log-uniform)."""
    aspect: float = 0.1
    """Aspect-ratio jitter: ``w/h`` times a factor in ``[1/(1+aspect), 1+aspect]`` (log-uniform)."""
    rotation: float = 10.0
    """Rotation jitter of the pooled RoI features, degrees, uniform in ``+-rotation`` (the ASTN's bound)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _non_negative(self, ("scale", "aspect", "rotation"))


@dataclass
class OHEMParams(MethodParams):
    """``method.*`` for ``ohem``."""

    batch_size_per_image: int = 0
    """Hard RoIs kept per image; 0: ``model.box_batch_size_per_image``."""
    nms_thresh: float = 0.7
    """IoU of the NMS among the RoIs ranked by loss (the OHEM paper: 0.7; 1.0 turns it off)."""
    box_loss: bool = True
    """Rank by classification + box-regression loss (the paper); ``false``: classification only."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _non_negative(self, ("batch_size_per_image",))
        _in_range(self, ("nms_thresh",))


@dataclass
class DropBlockParams(MethodParams):
    """``method.*`` for ``dropblock``: DropBlock (Ghiasi et al. 2018) on the RoI-pooled features."""

    drop_prob: float = 0.1
    """Target share of dropped units, ``1 - keep_prob`` (the paper: keep_prob 0.9)."""
    block_size: int = 0
    """Side of the dropped square blocks in cells; 0: ``d // 2`` made odd (3 on 7 x 7, 7 on 14 x 14, 3 on 6 x 6),
    the paper's ratio of block to map for ResNet's conv4 (7 on 14 x 14)."""
    ramp: str = "linear"
    """``linear``: ``drop_prob`` grows from 0 to its target over the run (the paper's scheduled DropBlock);
    ``constant``: the target from the first iteration."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _in_range(self, ("drop_prob",), 0.0, 0.99)
        _non_negative(self, ("block_size",))
        _one_of(self, "ramp", ("linear", "constant"))


@dataclass
class ImageAugmentationParams(MethodParams):
    """Base of the image-space baselines: they act in the data pipeline, the detector is the baseline's."""

    fill: str = "mean"
    """What erased pixels become: ``mean`` (the detector's input mean, ImageNet's, i.e. 0 after
    normalisation), ``random`` (uniform in [0, 1] per pixel and channel) or ``zero`` (black)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _one_of(self, "fill", ("mean", "random", "zero"))


RANDOM_ERASING_MODES = ("image", "object", "image+object")


@dataclass
class RandomErasingParams(ImageAugmentationParams):
    """``method.*`` for ``random-erasing`` (Zhong et al. 2017, Alg. 1 and Sec. 4.3; defaults: the paper's)."""

    mode: str = "image+object"
    """``image`` (IRE: one rectangle anywhere in the image), ``object`` (ORE: one inside each ground-truth
    box, each independently) or ``image+object`` (I+ORE, the paper's best on VOC07: 74.8 -> 76.2)."""
    probability: float = 0.5
    """``p``: chance that the image (and, independently, each object) is erased."""
    area_min: float = 0.02
    """``s_l``: smallest erased area, as a fraction of the image's (or the box's) area."""
    area_max: float = 0.4
    """``s_h``: largest erased area, as a fraction."""
    aspect_min: float = 0.3
    """``r_1``: the erased rectangle's aspect ratio is uniform in ``[r_1, 1/r_1]``."""
    fill: str = "random"
    """``random`` (Alg. 1: uniform random values), ``mean`` (its classification code's choice) or ``zero``."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _one_of(self, "mode", RANDOM_ERASING_MODES)
        _in_range(self, ("probability", "area_min", "area_max"))
        if not 0.0 < self.aspect_min <= 1.0:
            raise ConfigError(f"method.aspect_min must be in (0, 1], got {self.aspect_min}")
        if self.area_min > self.area_max:
            raise ConfigError(
                f"method.area_min ({self.area_min}) must not exceed method.area_max ({self.area_max})"
            )


@dataclass
class HideAndSeekParams(ImageAugmentationParams):
    """``method.*`` for ``hide-and-seek`` (Singh and Lee 2017; defaults: the paper's and its code's)."""

    grid_sizes: list[int] = dataclasses.field(default_factory=lambda: [0, 16, 32, 44, 56])
    """Patch sides in pixels, one drawn per image; 0 = no hiding (the code's list)."""
    hide_prob: float = 0.5
    """Each patch is hidden with this probability (the paper: 0.5)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _in_range(self, ("hide_prob",))
        if not self.grid_sizes or any(s < 0 for s in self.grid_sizes):
            raise ConfigError(
                f"method.grid_sizes must be a non-empty list of sizes >= 0, got {self.grid_sizes}"
            )


@dataclass
class CutoutParams(ImageAugmentationParams):
    """``method.*`` for ``cutout`` (DeVries and Taylor 2017)."""

    size: float = 1 / 3
    """Side of the square cut out, as a fraction of the image's shorter side (the paper's STL-10 setting,
    32 of 96 pixels; CIFAR-10 used 16 of 32)."""
    size_px: int = 0
    """Side in pixels instead of ``size``; 0: use ``size``."""
    holes: int = 1
    """Squares per image (the paper: 1)."""
    probability: float = 1.0
    """Chance an image is cut (the paper: always)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _in_range(self, ("size", "probability"))
        _non_negative(self, ("size_px",))
        if self.holes < 1:
            raise ConfigError(f"method.holes must be >= 1, got {self.holes}")


@dataclass
class GridMaskParams(ImageAugmentationParams):
    """``method.*`` for ``gridmask`` (Chen et al. 2020; defaults: its detection code)."""

    ratio: float = 0.5
    """``r``: the kept stripes are ``ceil(r * d)`` wide, so squares of side ``d - ceil(r * d)`` are dropped."""
    d_min: int = 2
    """Smallest grid unit ``d`` in pixels (the code: 2)."""
    d_max: int = 0
    """Largest ``d`` (exclusive); 0: the image's shorter side (the code: ``min(h, w)``)."""
    probability: float = 0.7
    """Chance an image is masked, reached at the end of ``ramp`` (the code: 0.7)."""
    ramp: str = "linear"
    """``linear``: the probability grows from 0 to ``probability`` over the run (the code); ``constant``."""
    rotate: float = 0.0
    """The grid is rotated by an angle uniform in ``[0, rotate)`` degrees (the code's detection setting: none)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _in_range(self, ("ratio", "probability"))
        _one_of(self, "ramp", ("linear", "constant"))
        if self.d_min < 1:
            raise ConfigError(f"method.d_min must be >= 1, got {self.d_min}")
        if self.d_max and self.d_max <= self.d_min:
            raise ConfigError(f"method.d_max ({self.d_max}) must exceed method.d_min ({self.d_min}), or be 0")
        _in_range(self, ("rotate",), 0.0, 360.0)


# ----------------------------------------------------------------------------------------------
# the registry of presets


@dataclass(frozen=True)
class MethodPreset:
    """A method name: its parameter class, the defaults it overrides, a one-line description."""

    params: type[MethodParams]
    defaults: Mapping[str, Any]
    doc: str


METHOD_PRESETS: dict[str, MethodPreset] = {}

RETIRED_KEYS = {"keep_last"}
"""``method.*`` keys of earlier versions that computed nothing (a debugging dump): ignored when a stored
config (an older checkpoint) still has them."""


def register_preset(
    name: str, params: type[MethodParams], defaults: Mapping[str, Any] | None = None, doc: str = ""
) -> None:
    """Make ``method.name=<name>`` build ``params`` with ``defaults`` over its own defaults.

    The defaults are checked now, by building them: a preset cannot hold a value its class refuses.
    """
    fields = {f.name for f in dataclasses.fields(params)}
    unknown = set(defaults or {}) - fields
    if unknown:
        raise ValueError(f"preset '{name}': {params.__name__} has no field(s) {', '.join(sorted(unknown))}")
    params(name=name, **dict(defaults or {}))
    METHOD_PRESETS[name] = MethodPreset(params, dict(defaults or {}), doc or (params.__doc__ or "").strip())


register_preset("none", MethodParams, doc="the baseline: features pass unchanged")
register_preset(
    "ia", IAParams, doc="Inverted Attention as the paper describes it (soft, spatial+channel, 20% of RoIs)"
)
register_preset(
    "ia-code",
    IAParams,
    defaults={
        "strategy": "soft",
        "orientation": "spatial",
        "spatial_ratio": 18 / 49,
        "select": "drop",
        "fg_ratio": 0.2,
        "bg_ratio": 1 / 30,
        "drop_offset": 0.01,
    },
    doc="Inverted Attention as the authors' released code does it (spatial, 18/49 cells, confidence-drop RoIs)",
)
register_preset(
    "asdn",
    ASDNParams,
    doc="A-Fast-RCNN ASDN: warm-up, ASDN pre-training, joint adversarial dropout (the released code)",
)
register_preset(
    "fixed-asdn",
    ASDNParams,
    defaults={"joint_update": False},
    doc="A-Fast-RCNN ASDN frozen after pre-training (Table 2's 'fixed ASDN')",
)
register_preset(
    "astn", ASTNParams, doc="A-Fast-RCNN ASTN: adversarial rotation of 4 channel blocks, +-10 degrees"
)
register_preset("asdn+astn", FusionParams, doc="A-Fast-RCNN full model: ASDN mask then ASTN rotation")
register_preset(
    "random-dropout",
    RandomDropoutParams,
    doc="A-Fast-RCNN baseline: random spatial dropout, as many cells as ASDN",
)
register_preset(
    "hard-dropout",
    HardDropoutParams,
    doc="A-Fast-RCNN baseline: the hardest sliding-window dropout, every iteration",
)
register_preset(
    "jitter",
    JitterParams,
    doc="A-Fast-RCNN baseline for the ASTN: random scale/aspect/rotation jitter of proposals",
)
register_preset(
    "ohem",
    OHEMParams,
    doc="Online hard example mining (Shrivastava et al. 2016), A-Fast-RCNN's Sec. 5.4 comparison",
)

register_preset(
    "dropblock",
    DropBlockParams,
    doc="DropBlock (Ghiasi et al. 2018) on the RoI-pooled features of every sampled RoI",
)
register_preset(
    "random-erasing",
    RandomErasingParams,
    doc="image-space baseline: Random Erasing (Zhong et al. 2017), image- and object-aware",
)
register_preset(
    "hide-and-seek",
    HideAndSeekParams,
    doc="image-space baseline: Hide-and-Seek (Singh and Lee 2017), grid patches hidden with p=0.5",
)
register_preset("cutout", CutoutParams, doc="image-space baseline: Cutout (DeVries and Taylor 2017)")
register_preset("gridmask", GridMaskParams, doc="image-space baseline: GridMask (Chen et al. 2020)")


def method_names() -> list[str]:
    """Every registered method name, in registration order."""
    return list(METHOD_PRESETS)


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
    if name not in METHOD_PRESETS:
        raise ConfigError(
            f"{origin}: unknown method {short_repr(name)}{closest(name, METHOD_PRESETS)}; valid methods: {', '.join(METHOD_PRESETS)}"
        )
    preset = METHOD_PRESETS[name]
    return build_section(preset.params, "method", {**preset.defaults, **values, "name": name}, origin)
