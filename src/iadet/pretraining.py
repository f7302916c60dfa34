"""Pretraining a backbone as an image classifier on the built-in task: the ImageNet stand-in.

The papers fine-tune ImageNet-pretrained backbones; nothing can be downloaded here, so
:func:`pretrain` trains a backbone trunk (global average pooling + one linear layer on top) on
:mod:`iadet.data.synth.classification`, a 58-class problem disjoint from the detection classes,
and writes the trunk's state dict with the keys the detector's backbone has: it loads through
``model.backbone_weights`` like torchvision's ImageNet weights.

``model.backbone_weights=builtin`` names the weights of the default :class:`PretrainConfig`
(:func:`builtin_weights`): a bundled file ``iadet/data/builtin/<backbone>-<fingerprint>.pth`` when
one matches, else ``$IADET_CACHE/pretrain/<backbone>-seed<seed>-<fingerprint>/backbone.pth`` (or
``~/.cache/iadet``), made on first use. The fingerprint covers the task's version and every field
of the config, seed included, so stale weights are never reused.

Reproducible bit for bit from the seed on CPU (same torch and CPU kind): the trunk is
re-initialised from the seed, the images are pure functions of (seed, split, index), batches and
augmentation come from a seeded ``torch.Generator``, deterministic algorithms are on and the
thread count is fixed by the config (reductions may split differently on another count).

A second training loop (a classifier's, not a detector's), so a module of its own, on a layer of its own between
the data and the models: ``model.backbone_weights=builtin`` (resolved in :mod:`iadet.modeling.weights`) makes the
weights through it without the engine. It imports no model code: callers pass a trunk instance.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from iadet.errors import ConfigError, TrainingError, closest
from iadet.serialization import save_atomic, save_json_atomic

WEIGHTS_FILE = "backbone.pth"
RECORD_FILE = "pretrain.json"

PRETRAINABLE: dict[str, str] = {"tiny": "TinyBackbone"}
"""Backbones ``iadet pretrain`` and ``builtin`` support: name -> class name of the trunk in
:mod:`iadet.modeling.backbones`."""

TINY_STAGE_STARTS = (0, 3, 6, 9, 12)
"""Index in :class:`~iadet.modeling.backbones.TinyBackbone` of each of its five conv blocks (conv, norm, ReLU)."""

BUNDLED_DIR = Path(__file__).resolve().parent / "data" / "builtin"
"""Where small, reproducible pretrained weights ship with the package (``<backbone>-<fingerprint>.pth``)."""

_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)
"""torchvision's ``GeneralizedRCNNTransform`` normalisation: the detector sees images normalised the same way."""


@dataclass(frozen=True)
class PretrainConfig:
    """Every setting of a pretraining run; the defaults are ``builtin``'s (about 8 minutes on 2 cores)."""

    backbone: str = "tiny"
    seed: int = 0
    train_images: int = 32_000
    """Images of the ``train`` split, generated once and seen once per epoch (random crop and flip)."""
    val_images: int = 2_900
    """Images of the held-out ``val`` split (50 per class): top-1 is measured on it after every epoch."""
    epochs: int = 8
    batch_size: int = 128
    lr: float = 0.05
    """Peak learning rate of SGD (Nesterov momentum), after a linear warm-up, then a cosine decay to 0."""
    momentum: float = 0.9
    weight_decay: float = 5e-4
    """On conv and linear weights only (not on norm parameters or biases)."""
    warmup_iters: int = 200
    crop_padding: int = 4
    """Random crops of the image padded by this many pixels (reflection), as on CIFAR."""
    threads: int = 2
    """``torch.set_num_threads`` during the run: part of the recipe, since the sums may split by thread."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PretrainConfig:
        names = {f.name for f in fields(cls)}
        unknown = [k for k in values if k not in names]
        if unknown:
            raise ConfigError(f"unknown pretraining setting '{unknown[0]}'{closest(unknown[0], names)}")
        return cls(**values)

    def validate(self) -> None:
        if self.backbone not in PRETRAINABLE:
            raise ConfigError(
                f"cannot pretrain backbone '{self.backbone}'{closest(self.backbone, PRETRAINABLE)}; "
                f"supported: {', '.join(PRETRAINABLE)}"
            )
        if self.seed < 0:
            raise ConfigError(f"pretraining seed must be >= 0, got {self.seed}")
        for name in ("train_images", "val_images", "epochs", "batch_size", "threads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"pretraining {name} must be at least 1, got {getattr(self, name)}")
        if self.batch_size > self.train_images:
            raise ConfigError(
                f"pretraining batch_size {self.batch_size} exceeds train_images {self.train_images}"
            )
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"pretraining lr must be a positive number, got {self.lr}")
        if (
            self.warmup_iters < 0
            or self.crop_padding < 0
            or self.weight_decay < 0
            or not 0 <= self.momentum < 1
        ):
            raise ConfigError(
                "pretraining warmup_iters, crop_padding, weight_decay must be >= 0 and momentum in [0, 1)"
            )


def fingerprint(cfg: PretrainConfig) -> str:
    """12 hex digits that change with the task's version, its size and classes, and every config field."""
    from iadet.data.synth import classification as task

    text = json.dumps(
        {
            "task": "iadet.data.synth.classification",
            "task_version": task.TASK_VERSION,
            "image_size": task.IMAGE_SIZE,
            "classes": list(task.CLASSES),
            "config": cfg.to_dict(),
        },
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def weights_digest(state: dict[str, Tensor]) -> str:
    """SHA-256 of the tensors' names, shapes, dtypes and bytes, in key order (independent of file layout)."""
    digest = hashlib.sha256()
    for key, value in state.items():
        value = value.detach().cpu().contiguous()
        digest.update(f"{key}:{tuple(value.shape)}:{value.dtype};".encode())
        digest.update(value.numpy().tobytes())
    return digest.hexdigest()


class Classifier(nn.Module):
    """A backbone trunk, global average pooling and a linear layer: ``(B, 3, H, W) -> (B, classes)``."""

    def __init__(self, trunk: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.trunk = trunk
        self.fc = nn.Linear(int(trunk.out_channels), num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.trunk(x).mean(dim=(2, 3)))


def backbone_name(trunk: nn.Module) -> str:
    """The :data:`PRETRAINABLE` name of a trunk instance; :class:`ConfigError` for other backbones."""
    for name, cls_name in PRETRAINABLE.items():
        if type(trunk).__name__ == cls_name:
            return name
    raise ConfigError(
        f"model.backbone_weights=builtin: built-in pretrained weights exist for the {', '.join(PRETRAINABLE)} "
        f"backbone only, not {type(trunk).__name__}; give a torchvision weights name or a .pth file"
    )


def freeze_tiny(trunk: nn.Sequential, trainable_stages: int) -> None:
    """Freeze all but the top ``trainable_stages`` of the tiny backbone's five conv blocks.

    The papers' rule as for VGG16 (:func:`~iadet.modeling.backbones._freeze_vgg`): with pretrained
    weights 3 stages train by default, so the first two blocks keep their pretrained values.
    """
    if not 0 <= trainable_stages <= 5:
        raise ConfigError(f"model.trainable_backbone_layers must be in 0..5 for tiny, got {trainable_stages}")
    first_trained = TINY_STAGE_STARTS[5 - trainable_stages] if trainable_stages > 0 else len(trunk)
    for index, layer in enumerate(trunk):
        if index < first_trained:
            layer.requires_grad_(False)


@contextlib.contextmanager
def _reproducible(threads: int) -> Iterator[None]:
    """Deterministic algorithms, a fixed thread count and a private RNG state, all restored afterwards."""
    previous_threads = torch.get_num_threads()
    previous_det = torch.are_deterministic_algorithms_enabled()
    previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        torch.use_deterministic_algorithms(previous_det, warn_only=previous_warn)
        torch.set_num_threads(previous_threads)


def _reinitialise(module: nn.Module) -> None:
    """Draw every parameter afresh from the current (seeded) RNG, in module order."""
    for sub in module.modules():
        reset = getattr(sub, "reset_parameters", None)
        if callable(reset):
            reset()


def _lr_at(cfg: PretrainConfig, iteration: int, total: int) -> float:
    """Linear warm-up from 10% to the peak, then cosine decay to 0 at ``total``."""
    if iteration < cfg.warmup_iters:
        return cfg.lr * (0.1 + 0.9 * iteration / cfg.warmup_iters)
    span = max(1, total - cfg.warmup_iters)
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * (iteration - cfg.warmup_iters) / span))


def _normalise(images: Tensor) -> Tensor:
    """uint8 ``(B, 3, H, W)`` -> float, normalised as torchvision's detection transform does."""
    mean = torch.tensor(_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(_STD).view(1, 3, 1, 1)
    return (images.float() / 255.0 - mean) / std


def _augment(images: Tensor, padding: int, generator: torch.Generator) -> Tensor:
    """Random crops of the reflection-padded images and random horizontal flips (float, unnormalised)."""
    batch, _, height, width = images.shape
    x = images.float()
    if padding:
        x = nn.functional.pad(x, (padding, padding, padding, padding), mode="reflect")
        offsets = torch.randint(0, 2 * padding + 1, (batch, 2), generator=generator).tolist()
        x = torch.stack([x[i, :, dy : dy + height, dx : dx + width] for i, (dy, dx) in enumerate(offsets)])
    flip = torch.rand(batch, generator=generator) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)


@torch.no_grad()
def _top1(model: nn.Module, images: Tensor, labels: Tensor, batch: int = 500) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(images), batch):
        logits = model(_normalise(images[start : start + batch]))
        correct += int((logits.argmax(1) == labels[start : start + batch]).sum())
    model.train()
    return correct / max(1, len(images))


def pretrain(
    trunk: nn.Module,
    cfg: PretrainConfig,
    output: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Pretrain (a copy of) ``trunk`` on the built-in classification task; return (state dict, record).

    ``trunk`` only gives the architecture: its copy is re-initialised from ``cfg.seed``. With
    ``output``, writes ``pretrain.json`` (the record: config, fingerprint, top-1 per epoch, times)
    then ``backbone.pth`` (the trunk's state dict, the keys of the detector's backbone), both
    atomically, so a complete ``backbone.pth`` means a complete run.
    """
    from iadet.data.synth import classification as task

    cfg.validate()
    name = backbone_name(trunk)
    if name != cfg.backbone:
        raise ConfigError(f"pretraining config is for backbone '{cfg.backbone}' but the trunk is '{name}'")
    fp = fingerprint(cfg)
    start = time.perf_counter()
    with _reproducible(cfg.threads):
        torch.manual_seed(cfg.seed)
        trunk = copy.deepcopy(trunk)
        _reinitialise(trunk)
        trunk.requires_grad_(True)
        model = Classifier(trunk, len(task.CLASSES))
        model.train()

        log(f"pretrain: rendering {cfg.train_images} training and {cfg.val_images} validation images "
            f"({len(task.CLASSES)} classes, {task.IMAGE_SIZE}x{task.IMAGE_SIZE})")  # fmt: skip
        train_x, train_y = task.render_split(cfg.seed, "train", cfg.train_images)
        val_x, val_y = task.render_split(cfg.seed, "val", cfg.val_images)
        train_images = torch.from_numpy(train_x).permute(0, 3, 1, 2).contiguous()
        val_images = torch.from_numpy(val_x).permute(0, 3, 1, 2).contiguous()
        train_labels, val_labels = torch.from_numpy(train_y), torch.from_numpy(val_y)
        del train_x, val_x
        render_seconds = time.perf_counter() - start
        log(f"pretrain: rendered in {render_seconds:.0f} s")

        decay = [p for n, p in model.named_parameters() if p.ndim > 1]
        no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
        optimizer = torch.optim.SGD(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0,
        )  # fmt: skip
        generator = torch.Generator().manual_seed(cfg.seed)
        per_epoch = cfg.train_images // cfg.batch_size
        total = per_epoch * cfg.epochs
        mean, std = torch.tensor(_MEAN).view(1, 3, 1, 1), torch.tensor(_STD).view(1, 3, 1, 1)
        epochs: list[dict[str, Any]] = []
        iteration = 0
        for epoch in range(1, cfg.epochs + 1):
            order = torch.randperm(cfg.train_images, generator=generator)
            loss_sum, correct, seen = 0.0, 0, 0
            for step in range(per_epoch):
                index = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
                x = (_augment(train_images[index], cfg.crop_padding, generator) / 255.0 - mean) / std
                y = train_labels[index]
                for group in optimizer.param_groups:
                    group["lr"] = _lr_at(cfg, iteration, total)
                logits = model(x)
                loss = nn.functional.cross_entropy(logits, y)
                if not torch.isfinite(loss):
                    raise TrainingError(
                        f"pretraining loss is {loss.item()} at iteration {iteration}; lower --lr"
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                iteration += 1
                loss_sum += loss.item() * len(y)
                correct += int((logits.detach().argmax(1) == y).sum())
                seen += len(y)
            val_top1 = _top1(model, val_images, val_labels)
            row = {
                "epoch": epoch,
                "iterations": iteration,
                "train_loss": round(loss_sum / max(1, seen), 4),
                "train_top1": round(correct / max(1, seen), 4),
                "val_top1": round(val_top1, 4),
                "seconds": round(time.perf_counter() - start, 1),
            }
            epochs.append(row)
            log(f"pretrain: epoch {epoch}/{cfg.epochs}  loss {row['train_loss']:.3f}  "
                f"train top-1 {100 * row['train_top1']:.1f}%  val top-1 {100 * val_top1:.1f}%  "
                f"({row['seconds']:.0f} s)")  # fmt: skip

    state = {k: v.detach().clone() for k, v in model.trunk.state_dict().items()}
    seconds = time.perf_counter() - start
    record = {
        "task": {
            "name": "iadet.data.synth.classification",
            "version": task.TASK_VERSION,
            "classes": len(task.CLASSES),
            "image_size": task.IMAGE_SIZE,
            "train_images": cfg.train_images,
            "val_images": cfg.val_images,
        },
        "config": cfg.to_dict(),
        "seed": cfg.seed,
        "fingerprint": fp,
        "iterations": total,
        "epochs": epochs,
        "val_top1": epochs[-1]["val_top1"],
        "seconds": round(seconds, 1),
        "render_seconds": round(render_seconds, 1),
        "weights_sha256": weights_digest(state),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
    }
    if output is not None:
        out = Path(output)
        save_json_atomic(record, out / RECORD_FILE)
        save_atomic(state, out / WEIGHTS_FILE)
    return state, record


def _cached_weights_ok(root: Path, fp: str, log: Callable[[str], None]) -> bool:
    """Whether ``root`` holds finished pretrained weights of fingerprint ``fp``, checked against their record
    (``pretrain.json``: the fingerprint and the weights' SHA-256). A damaged file, or one another version
    wrote, is removed (with a line saying so) to be made again: it is never loaded."""
    weights, record = root / WEIGHTS_FILE, root / RECORD_FILE
    if not weights.is_file():
        return False
    try:
        saved = json.loads(record.read_text(encoding="utf-8"))
        state = torch.load(weights, map_location="cpu", weights_only=True)
        ok = saved.get("fingerprint") == fp and weights_digest(state) == saved.get("weights_sha256")
    except Exception:  # noqa: BLE001  (any unreadable file is a damaged cache)
        ok = False
    if not ok:
        log(f"the cached pretrained backbone in {root} is damaged or from another version: making it again")
        weights.unlink(missing_ok=True)
    return ok


def builtin_weights(trunk: nn.Module, log: Callable[[str], None] | None = None) -> Path:
    """The file ``model.backbone_weights=builtin`` names for ``trunk``'s backbone: the bundled one if
    its fingerprint matches, else the cached one, made on first use (a file lock guards concurrent runs)."""
    from iadet.data.catalog import cache_dir, make_once

    name = backbone_name(trunk)
    cfg = PretrainConfig(backbone=name)
    fp = fingerprint(cfg)
    bundled = BUNDLED_DIR / f"{name}-{fp}.pth"
    if bundled.is_file():
        return bundled
    root = cache_dir() / "pretrain" / f"{name}-seed{cfg.seed}-{fp}"
    weights = root / WEIGHTS_FILE
    if log is None:

        def log(line: str) -> None:
            print(f"iadet: {line}", file=sys.stderr, flush=True)

    if _cached_weights_ok(root, fp, log):
        return weights

    def make() -> None:
        log(f"making the built-in pretrained '{name}' backbone (model.backbone_weights=builtin): about 8 "
            f"minutes on 2 CPU cores, once; cached in {root}")  # fmt: skip
        pretrain(trunk, cfg, root, log=log)

    make_once(root.parent / f".{root.name}.lock", ready=lambda: _cached_weights_ok(root, fp, log), make=make)
    return weights
