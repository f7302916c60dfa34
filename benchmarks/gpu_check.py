"""The GPU check: does iadet train, run fast, match torchvision and resume on a GPU? One command, under 10 minutes.

``bash benchmarks/gpu_check.sh`` runs the items below, each with its own time budget and status (``pass``,
``fail`` or ``skip``, with the error's one line), each in its own process on a GPU (a crash, a CUDA error
or an overrun stops that item only), and writes ``summary.json`` and ``report.md`` to
``benchmarks/results/gpu/`` (plus ``logs/`` and every run's ``metrics.jsonl`` under ``runs/``):

``prepare``
    Data of VOC and COCO shape, made by the built-in generator (``iadet.data.synth``) at 500x375,
    375x500 and 640x480 (a VOC directory each), and backbone weights: torchvision's random
    initialisation with the BatchNorm statistics calibrated on those images, saved as local files and
    passed as ``model.backbone_weights`` -- which makes iadet build the papers' detector exactly as
    with ImageNet weights (FrozenBatchNorm, stem and res2 / conv1-conv2 frozen) without a download.
``env``
    Device, driver, torch/CUDA/cuDNN versions, the commit and the command.
``train-r50-fpn``, ``train-vgg16``, ``train-mask-rcnn``, ``train-r101-c4``
    Every registered method (the RoI methods and the image-space baselines) trains a few iterations
    under AMP with finite losses: Faster R-CNN R50-FPN and Mask R-CNN R50-FPN at 800 px on COCO-shape
    images, VGG16 with RoIPool and ResNet-101-C4 at 600 px on VOC-shape images (128 RoIs per image,
    the papers'). A-Fast-RCNN's runs go through all their stages (warm-up, ASDN pre-training,
    joint), checked from the ``adv_stage`` each iteration logs. The ``none`` run also checks that the
    stem stayed frozen and that BatchNorm is frozen.
``parity``
    iadet's trained detector (``ia``, eval mode, loaded by ``iadet.engine.loading.load_detector``)
    against torchvision's own ``FasterRCNN`` / ``MaskRCNN`` built with its public API and loading the
    same ``model_final.pth`` with ``strict=True``: boxes, scores, labels (and masks) equal, in float32
    and under autocast.
``speed``
    Images per second, ``torch.cuda.max_memory_allocated`` (after ``gc.collect()``, ``empty_cache()``
    and ``reset_peak_memory_stats()``) for ``none``, ``ia``, ``ia-code`` and ``asdn+astn`` (its joint
    stage) on R50-FPN at 800 px, and IA's step-time ratio to ``none`` against its FLOP floor (one step
    counted with ``FlopCounterMode``, as ``benchmarks/train_overhead.py --flops``).
``torchvision``
    iadet's ``none`` against a plain torchvision loop (stock ``FasterRCNN``, the same model settings,
    data, SGD, ``GradScaler`` + ``autocast``) from the same initial weights: images per second and the
    loss at each step (the first step's must agree).
``resume``
    Two iterations with ``train.device=cpu``, then ``resume=True`` with ``train.device=cuda`` (with
    AMP, and without).
``ddp``
    ``torchrun --nproc_per_node=1`` with ``train.device=cuda`` (NCCL), and 2 processes where 2 GPUs exist.

``--dry`` checks the script itself on the CPU in about a minute: tiny sizes, every item exercised (the
training items with the tiny backbone standing in) or skipped with the reason where it needs CUDA.
A test runs it (tests/benchmarks/test_gpu_check.py).

Training goes through iadet's config and ``iadet.engine.training_run.train`` (and the ``iadet train`` CLI
under torchrun), as a user would.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import gc
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_OUTPUT = ROOT / "benchmarks" / "results" / "gpu"

STAGES = ("warmup", "pretrain", "joint")
"""A-Fast-RCNN's stages, in the order of the ``adv_stage`` statistic its methods log each iteration."""

SPEED_METHODS = ("none", "ia", "ia-code", "asdn+astn")
FLOP_METHODS = ("none", "ia", "ia-code")
MATRIX_FIRST = ("none", "ia", "ia-code", "asdn", "fixed-asdn", "astn", "asdn+astn")
"""Trained first in each training item (if a budget runs out, these have run)."""
DRY_SUBSET = ("none", "asdn+astn", "cutout")
"""``--dry``: the methods of the training items other than the first (the first trains every method)."""

# detector settings passed to both iadet (as model.* keys) and torchvision's constructors
MODEL_KEYS = (
    "min_size",
    "max_size",
    "rpn_pre_nms_top_n_train",
    "rpn_pre_nms_top_n_test",
    "rpn_post_nms_top_n_train",
    "rpn_post_nms_top_n_test",
    "rpn_batch_size_per_image",
    "box_batch_size_per_image",
    "box_positive_fraction",
    "box_score_thresh",
    "box_nms_thresh",
    "box_detections_per_img",
)


@dataclasses.dataclass(frozen=True)
class Arch:
    """A detector of the check: what ``model.*`` builds, on which data, at which size."""

    name: str
    detector: str
    backbone: str
    weights: str | None
    """Backbone weights made by ``prepare`` (``resnet50``, ``resnet101``, ``vgg16``); None: random init."""
    data: str
    """``coco`` (640x480) or ``voc`` (500x375 and 375x500)."""
    min_size: int
    max_size: int
    rois: int
    """``model.box_batch_size_per_image``."""
    extra: tuple[str, ...] = ()
    about: str = ""


ARCHS = {
    "r50-fpn": Arch(
        "r50-fpn", "faster_rcnn", "resnet50_fpn", "resnet50", "coco", 800, 1333, 512,
        about="Faster R-CNN ResNet-50-FPN (torchvision's), COCO-shape 640x480 images at 800 px, 512 RoIs/image",
    ),
    "vgg16": Arch(
        "vgg16", "faster_rcnn", "vgg16", "vgg16", "voc", 600, 1000, 128,
        about="Faster R-CNN VGG16 with RoIPool (py-faster-rcnn's), VOC-shape 500x375/375x500 at 600 px, 128 RoIs",
    ),
    "mask-rcnn": Arch(
        "mask-rcnn", "mask_rcnn", "resnet50_fpn", "resnet50", "coco", 800, 1333, 512,
        about="Mask R-CNN ResNet-50-FPN, COCO-shape 640x480 images at 800 px, 512 RoIs/image",
    ),
    "r101-c4": Arch(
        "r101-c4", "faster_rcnn", "resnet101_c4", "resnet101", "voc", 600, 1000, 128,
        about="Faster R-CNN ResNet-101-C4 (res5 head, the papers'), VOC-shape images at 600 px, 128 RoIs",
    ),
}  # fmt: skip
DRY_RPN = (
    "model.rpn_pre_nms_top_n_train=300",
    "model.rpn_post_nms_top_n_train=100",
    "model.rpn_pre_nms_top_n_test=150",
    "model.rpn_post_nms_top_n_test=50",
)


def dry_arch(arch: Arch, *, tiny: bool) -> Arch:
    """``--dry``'s stand-in: the same detector and data, small images; the tiny backbone when ``tiny``."""
    return dataclasses.replace(
        arch,
        backbone="tiny" if tiny else arch.backbone,
        weights=None if tiny else arch.weights,
        min_size=64,
        max_size=96,
        rois=32,
        extra=DRY_RPN,
        about=f"dry stand-in of {arch.name}: {'tiny backbone, ' if tiny else ''}64 px, 32 RoIs",
    )


# ----------------------------------------------------------------------------------------------
# small helpers


def one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:400]


def last_line(path: Path) -> str:
    """A dead child's error from its log: the last line naming an error, else the last line with words."""
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    errors = [line for line in lines if re.match(r"^[\w.]*(Error|Exception|Interrupt)\b", line)]
    worded = [line for line in lines if re.search(r"\w", line)]
    return (errors or worded or [""])[-1][:400]


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str, allow_nan=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def rel_diff(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


# ----------------------------------------------------------------------------------------------
# what an item records


class Record:
    """An item's checks and details, saved after every change (a killed child leaves what it did)."""

    def __init__(self, name: str, path: Path | None = None) -> None:
        self.name = name
        self.path = path
        self.data: dict[str, Any] = {"item": name, "checks": [], "details": {}}

    def check(self, name: str, status: str, error: str | None = None, *, optional: bool = False, **info):
        assert status in ("pass", "fail", "skip"), status
        row = {
            "name": name,
            "status": status,
            "error": error,
            **({"optional": True} if optional else {}),
            **info,
        }
        self.data["checks"].append(row)
        self.save()
        mark = {"pass": "ok  ", "fail": "FAIL", "skip": "skip"}[status]
        print(f"  [{self.name}] {mark} {name}" + (f": {error}" if error else ""), flush=True)
        return row

    def set(self, key: str, value: Any) -> None:
        self.data["details"][key] = value
        self.save()

    def save(self) -> None:
        if self.path is not None:
            write_json(self.path, self.data)


def item_status(checks: list[dict]) -> tuple[str, str | None]:
    """``fail`` if any check failed; ``skip`` if a required check was skipped; else ``pass``."""
    failed = [c for c in checks if c["status"] == "fail"]
    if failed:
        first = failed[0]
        more = f" (+{len(failed) - 1} more)" if len(failed) > 1 else ""
        return "fail", f"{first['name']}: {first.get('error') or 'failed'}{more}"
    if not checks:
        return "fail", "the item recorded no check"
    skipped = [c for c in checks if c["status"] == "skip" and not c.get("optional")]
    if skipped:
        return "skip", f"{skipped[0]['name']}: {skipped[0].get('error') or 'skipped'}" + (
            f" ({len(skipped)} of {len(checks)} checks skipped)" if len(checks) > 1 else ""
        )
    return "pass", None


# ----------------------------------------------------------------------------------------------
# the context every item gets


class Ctx:
    """Settings and paths shared by the items (a JSON file for the child processes), and the train helper."""

    def __init__(self, raw: dict[str, Any], item: str, budget: float) -> None:
        self.raw = raw
        self.item = item
        self.dry: bool = raw["dry"]
        self.device: str = raw["device"]
        self.cuda = self.device == "cuda"
        self.output = Path(raw["output"])
        self.scratch = Path(raw["scratch"])
        self.workers: int = raw["workers"]
        self.batch: int = raw["batch"]
        self.methods: list[str] = raw["methods"]
        self.fail_item: str | None = raw.get("fail_item")
        self.budget = budget
        self.deadline = time.monotonic() + budget

    # paths made by `prepare`
    def data(self, name: str) -> Path:
        return self.scratch / "data" / name

    def weights(self, name: str) -> Path:
        return self.scratch / "weights" / f"{name}-calibrated.pth"

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def arch(self, name: str, *, tiny: bool = True) -> Arch:
        arch = ARCHS[name]
        return dry_arch(arch, tiny=tiny) if self.dry else arch

    def needs(self, *paths: Path) -> None:
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise RuntimeError(f"not prepared (the prepare item failed?): {', '.join(missing)}")

    def overrides(self, arch: Arch, method: str, iters: int, *extra: str) -> list[str]:
        out = [
            f"model.detector={arch.detector}",
            f"model.backbone={arch.backbone}",
            f"model.min_size={arch.min_size}",
            f"model.max_size={arch.max_size}",
            f"model.box_batch_size_per_image={arch.rois}",
            *arch.extra,
            f"data.root={self.data(arch.data)}",
            f"data.num_workers={self.workers}",
            f"method.name={method}",
            f"train.max_iters={iters}",
            f"train.batch_size={self.batch}",
            "train.amp=true",
            f"train.device={self.device}",
            "train.log_every=1",
            "train.checkpoint_every=0",
            "train.eval_at_end=false",
            "train.warmup_iters=0",
            "train.seed=0",
        ]
        if arch.weights:
            self.needs(self.weights(arch.weights))
            out.append(f"model.backbone_weights={self.weights(arch.weights)}")
        self.needs(self.data(arch.data))
        return [*out, *extra]

    def run_dir(self, name: str) -> Path:
        run = self.scratch / "runs" / self.item / name.replace("+", "_").replace("/", "_")
        if run.exists():
            shutil.rmtree(run)
        return run

    def archive(self, run: Path) -> None:
        """Keep a run's small files (``metrics.jsonl``, ``config.yaml``) in the output, not its weights."""
        dest = self.output / "runs" / self.item / run.name
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("metrics.jsonl", "config.yaml"):
            if (run / name).is_file():
                shutil.copy2(run / name, dest / name)

    def train(self, name: str, overrides: list[str], *, resume: bool = False, run: Path | None = None):
        """``iadet.engine.training_run.train`` on ``overrides`` into a scratch run directory; its train rows."""
        from iadet.config import load_config
        from iadet.engine.training_run import train

        run = run or self.run_dir(name)
        try:
            train(load_config(None, overrides), run, resume=resume, force=resume, quiet=True)
        finally:
            self.archive(run)
        return train_rows(run), run

    def release(self, run: Path | None = None) -> None:
        """Delete a run's scratch directory and free what the last model held (reference cycles included)."""
        if run is not None:
            shutil.rmtree(run, ignore_errors=True)
        gc.collect()
        if self.cuda:
            import torch

            torch.cuda.empty_cache()

    def maybe_fail(self, where: str) -> None:
        """``--fail-item NAME[:hang]``: fail (or hang) on purpose, to test that the other items go on."""
        if self.fail_item and self.fail_item.split(":")[0] == self.item:
            if self.fail_item.endswith(":hang"):
                time.sleep(3600)
            raise RuntimeError(f"failed on purpose at {where} (--fail-item)")


def train_rows(run: Path) -> list[dict[str, Any]]:
    path = run / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            row = json.loads(line)
            if row.get("type") == "train":
                rows.append(row)
    return rows


def loss_problems(rows: list[dict[str, Any]], iters: int) -> list[str]:
    problems = []
    if len(rows) != iters:
        problems.append(f"{len(rows)} of {iters} iterations logged")
    for row in rows:
        bad = [
            k
            for k, v in row.items()
            if k.startswith("loss") and isinstance(v, (int, float)) and not finite(v)
        ]
        if bad:
            problems.append(f"non-finite {', '.join(bad)} at iteration {row.get('iter')}")
            break
    return problems


# ----------------------------------------------------------------------------------------------
# item: prepare


def merge_voc(parts: dict[str, Path], dest: Path) -> list[str]:
    """One VOC directory from several generated ones, their ids prefixed (``L_trainval_00000``...)."""
    files = (
        ("Annotations", ".xml"),
        ("JPEGImages", ".jpg"),
        ("SegmentationObject", ".png"),
        ("SegmentationClass", ".png"),
    )
    for sub, _ in files:
        (dest / sub).mkdir(parents=True, exist_ok=True)
    (dest / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    ids = []
    for prefix, src in parts.items():
        for image_id in (src / "ImageSets" / "Main" / "trainval.txt").read_text().split():
            new = f"{prefix}_{image_id}"
            for sub, ext in files:
                if (src / sub / f"{image_id}{ext}").is_file():
                    shutil.copy2(src / sub / f"{image_id}{ext}", dest / sub / f"{new}{ext}")
            ids.append(new)
        shutil.copy2(src / "classes.txt", dest / "classes.txt")
    (dest / "ImageSets" / "Main" / "trainval.txt").write_text("".join(f"{i}\n" for i in ids))
    return ids


def load_images(root: Path, count: int) -> list[Any]:
    """The first ``count`` training images of a VOC directory as float tensors in [0, 1] (torchvision's input)."""
    dataset = PlainVOC(root)
    return [dataset[i][0] for i in range(min(count, len(dataset)))]


def make_backbone_weights(name: str, path: Path, images: list[Any], device: str, size: int) -> dict[str, Any]:
    """torchvision's random initialisation of ``name``, BatchNorm statistics calibrated on ``images``.

    Without ImageNet weights (no download on the GPU machine), a random ResNet under FrozenBatchNorm
    with unit statistics grows its activations block by block (float16 overflows in ResNet-101); with
    the statistics of these images each layer is normalised as in training mode. VGG16 has no
    normalisation: its initialisation is saved as is.
    """
    import torch
    import torchvision
    from torch import nn

    torch.manual_seed(0)
    net = getattr(torchvision.models, name)(weights=None)
    info: dict[str, Any] = {"file": str(path)}
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    if bns:
        mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
        batch = []
        for image in images:
            scale = size / min(image.shape[-2:])
            resized = nn.functional.interpolate(image[None], scale_factor=scale, mode="bilinear")[0]
            batch.append((resized - mean) / std)
        shapes = {tuple(t.shape) for t in batch}
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # a cumulative average over the calibration batches
        net.to(device).train()
        with torch.no_grad():
            for shape in shapes:
                same = [t for t in batch if tuple(t.shape) == shape]
                net(torch.stack(same).to(device))
            net.eval()
            out = net(torch.stack([t for t in batch if tuple(t.shape) == next(iter(shapes))]).to(device))
        info["logit_std_after_calibration"] = float(out.float().std())
        info["calibration_images"] = len(batch)
        net.to("cpu")
    torch.save(net.state_dict(), path)
    info["size_mib"] = round(path.stat().st_size / 2**20, 1)
    return info


def item_prepare(c: Ctx, rec: Record) -> None:
    from iadet.data.synth import SynthPreset, generate_dataset

    c.maybe_fail("start")
    counts = {"coco": 4, "L": 2, "P": 2} if c.dry else {"coco": 8, "L": 6, "P": 4}
    shapes = {"coco": (480, 640), "L": (375, 500), "P": (500, 375)}  # (height, width)
    start = time.perf_counter()
    gen = c.scratch / "generated"
    made = {}
    for key, (h, w) in shapes.items():
        preset = SynthPreset(name=f"gpu-check-{key}-{w}x{h}", image_size=(h, w), trainval=counts[key], test=1)
        made[key] = generate_dataset(gen / key, preset, seed=0)
    data = c.scratch / "data"
    data.mkdir(parents=True, exist_ok=True)
    if c.data("coco").exists():
        shutil.rmtree(c.data("coco"))
    shutil.copytree(made["coco"], c.data("coco"))
    voc_ids = merge_voc({"L": made["L"], "P": made["P"]}, c.data("voc"))
    # two copies of one image: a batch whose order cannot matter (the plain torchvision loop's data)
    first = (made["coco"] / "ImageSets" / "Main" / "trainval.txt").read_text().split()[0]
    pair = merge_voc({"a": made["coco"], "b": made["coco"]}, c.data("pair"))
    keep = {f"a_{first}", f"b_{first}"}
    (c.data("pair") / "ImageSets" / "Main" / "trainval.txt").write_text(
        "".join(f"{i}\n" for i in pair if i in keep)
    )
    rec.check(
        "data",
        "pass",
        seconds=round(time.perf_counter() - start, 1),
        coco=f"{counts['coco']} images 640x480",
        voc=f"{counts['L']} images 500x375 + {counts['P']} images 375x500 ({len(voc_ids)})",
        pair=f"2 copies of coco {first}",
        root=str(data),
    )
    needed = ["resnet50"] if c.dry else ["resnet50", "resnet101", "vgg16"]
    images = load_images(c.data("coco"), 2 if c.dry else 4)
    (c.scratch / "weights").mkdir(parents=True, exist_ok=True)
    for name in needed:
        start = time.perf_counter()
        try:
            info = make_backbone_weights(name, c.weights(name), images, c.device, 96 if c.dry else 480)
            ok = "logit_std_after_calibration" not in info or finite(info["logit_std_after_calibration"])
            rec.check(
                f"weights {name}",
                "pass" if ok else "fail",
                None if ok else "non-finite output after calibration",
                seconds=round(time.perf_counter() - start, 1),
                **info,
            )
        except Exception as exc:
            rec.check(f"weights {name}", "fail", one_line(exc))


# ----------------------------------------------------------------------------------------------
# item: env


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=20)
        return done.stdout.strip() if done.returncode == 0 else ""

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no")) if commit else None
        return {"commit": commit or None, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def item_env(c: Ctx, rec: Record) -> None:
    import torch
    import torchvision

    import iadet

    c.maybe_fail("start")
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "iadet": getattr(iadet, "__version__", None),
        "cuda_build": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        **git_state(),
    }
    if torch.cuda.is_available():
        info["device_count"] = torch.cuda.device_count()
        info["devices"] = []
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            info["devices"].append(
                {
                    "name": p.name,
                    "capability": f"{p.major}.{p.minor}",
                    "memory_gib": round(p.total_memory / 2**30, 1),
                }
            )
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            smi = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
            )
            info["nvidia_smi"] = smi.stdout.strip() or None
    rec.set("env", info)
    rec.check("versions recorded", "pass", **{k: info[k] for k in ("torch", "cuda_build", "cudnn")})
    if c.cuda:
        rec.check("cuda", "pass", device=info["devices"][0]["name"], count=info["device_count"])
    else:
        rec.check("cuda", "skip", "dry run on the CPU", optional=True)


# ----------------------------------------------------------------------------------------------
# items: train-<arch>


def method_kind(method: str) -> str:
    try:
        from iadet.config.methods import implementation, method_preset
        from iadet.modeling.methods import RoIMethod

        return "roi" if issubclass(implementation(method_preset(method).params), RoIMethod) else "image"
    except Exception:  # a registry that changed shape: still train the method
        return "roi"


def method_plan(method: str, dry: bool) -> tuple[int, list[str], set[str] | None]:
    """``(iterations, method overrides, expected stages)``: a short run that still has every stage."""
    from iadet.config.methods import method_preset

    fields = {f.name for f in dataclasses.fields(method_preset(method).params)}
    extra: list[str] = []
    if "ramp" in fields:  # DropBlock / GridMask ramp from 0: at full strength from the first iteration
        extra.append("method.ramp=constant")
    stage = 1 if dry else 2
    if "pretrain_iters" in fields:  # ASDN: warm-up, ASDN pre-training (detector frozen), joint
        extra += ["method.warmup_iters=1", f"method.pretrain_iters={stage}"]
        return 1 + 2 * stage, extra, set(STAGES)
    if "warmup_iters" in fields and "lr" in fields:  # ASTN alone: warm-up, joint
        extra.append("method.warmup_iters=1")
        return 1 + stage, extra, {"warmup", "joint"}
    return (1 if dry else 3), extra, None


def matrix_methods(c: Ctx, first: bool) -> list[str]:
    from iadet.config.methods import method_names

    names = [m for m in method_names() if not m.startswith("test-")]
    if c.methods:
        names = [m for m in c.methods if m in names] + [m for m in c.methods if m not in names]
    ordered = [m for m in MATRIX_FIRST if m in names] + [m for m in names if m not in MATRIX_FIRST]
    if c.dry and not first:
        ordered = [m for m in ordered if m in DRY_SUBSET]
    return ordered


FROZEN_STEM = {
    "resnet50": ("conv1.weight", ("backbone.body.conv1.weight", "backbone.conv1.weight")),
    "resnet101": ("conv1.weight", ("backbone.body.conv1.weight", "backbone.conv1.weight")),
    "vgg16": ("features.0.weight", ("backbone.0.weight",)),
}


def frozen_check(c: Ctx, arch: Arch, run: Path, rec: Record) -> None:
    """The papers' freezing: the stem equals the given weights after training; no BatchNorm statistics move."""
    import torch

    if not arch.weights:
        rec.check("frozen stem and BatchNorm", "skip", "no backbone weights (random init)", optional=True)
        return
    final = torch.load(run / "model_final.pth", map_location="cpu", weights_only=True, mmap=True)
    given = torch.load(c.weights(arch.weights), map_location="cpu", weights_only=True, mmap=True)
    key, candidates = FROZEN_STEM[arch.weights]
    ours = next((k for k in candidates if k in final), None)
    problems = []
    if ours is None:
        problems.append(f"no stem weight among {candidates}")
    elif not torch.equal(final[ours].float(), given[key].float()):
        problems.append(f"{ours} changed in training (the stem should be frozen)")
    tracked = [k for k in final if k.endswith("num_batches_tracked")]
    if tracked:
        problems.append(f"trainable BatchNorm ({tracked[0]}...): expected FrozenBatchNorm2d")
    frozen_bn = sum(1 for k in final if k.endswith("running_var"))
    rec.check(
        "frozen stem and BatchNorm",
        "fail" if problems else "pass",
        "; ".join(problems) or None,
        frozen_bn_layers=frozen_bn,
    )


def make_train_item(arch_name: str) -> Callable[[Ctx, Record], None]:
    def item(c: Ctx, rec: Record) -> None:
        arch = c.arch(arch_name)
        first = arch_name == next(iter(ARCHS))
        methods = matrix_methods(c, first)
        rec.set("arch", dataclasses.asdict(arch))
        rec.set("methods", {m: method_kind(m) for m in methods})
        c.maybe_fail("start")
        longest = 0.0
        for method in methods:
            if c.remaining() < max(3.0, 1.3 * longest):
                rec.check(method, "skip", f"the item's time budget ({c.budget:.0f} s) is spent")
                continue
            start = time.perf_counter()
            run = None
            try:
                iters, extra, stages = method_plan(method, c.dry)
                rows, run = c.train(method, c.overrides(arch, method, iters, *extra))
                problems = loss_problems(rows, iters)
                seen = sorted(
                    {STAGES[int(r["adv_stage"])] for r in rows if finite(r.get("adv_stage"))},
                    key=STAGES.index,
                )
                if stages is not None and set(seen) != stages:
                    problems.append(
                        f"stages {seen or 'not logged'}, expected {sorted(stages, key=STAGES.index)}"
                    )
                rec.check(
                    method,
                    "fail" if problems else "pass",
                    "; ".join(problems) or None,
                    kind=method_kind(method),
                    iters=len(rows),
                    stages=seen or None,
                    first_loss=rows[0].get("loss") if rows else None,
                    final_loss=rows[-1].get("loss") if rows else None,
                    wall_s=round(time.perf_counter() - start, 2),
                )
                if method == "none":
                    try:
                        frozen_check(c, arch, run, rec)
                    except Exception as exc:
                        rec.check("frozen stem and BatchNorm", "fail", one_line(exc))
            except Exception as exc:
                rec.check(
                    method,
                    "fail",
                    one_line(exc),
                    kind=method_kind(method),
                    wall_s=round(time.perf_counter() - start, 2),
                )
            finally:
                c.release(run)
            longest = max(longest, time.perf_counter() - start)

    item.__doc__ = f"every method trains under AMP with finite losses: {ARCHS[arch_name].about}"
    return item


# ----------------------------------------------------------------------------------------------
# torchvision without iadet: a dataset, the stock detectors, a plain training loop


class PlainVOC:
    """A VOC directory as a user would read it for torchvision: PIL, ``xml.etree``, difficult objects dropped."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.ids = (self.root / "ImageSets" / "Main" / "trainval.txt").read_text().split()
        self.classes = (self.root / "classes.txt").read_text().split()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int):
        import xml.etree.ElementTree as ET

        import torch
        from PIL import Image
        from torchvision.transforms.v2 import functional as F

        image_id = self.ids[index]
        with Image.open(self.root / "JPEGImages" / f"{image_id}.jpg") as im:
            image = F.to_dtype(F.pil_to_tensor(im.convert("RGB")), torch.float32, scale=True)
        height, width = image.shape[-2:]
        boxes, labels = [], []
        for obj in ET.parse(self.root / "Annotations" / f"{image_id}.xml").getroot().findall("object"):
            if (obj.findtext("difficult") or "0").strip() == "1":
                continue
            bb = obj.find("bndbox")
            x1, y1, x2, y2 = (float(bb.findtext(t)) - 1 for t in ("xmin", "ymin", "xmax", "ymax"))
            x1, y1, x2, y2 = max(x1, 0.0), max(y1, 0.0), min(x2, width - 1.0), min(y2, height - 1.0)
            boxes.append((x1, y1, max(x2, x1 + 1.0), max(y2, y1 + 1.0)))
            labels.append(self.classes.index(obj.findtext("name").strip()) + 1)
        target = {
            "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.int64),
        }
        return image, target


class Forever:
    """A sampler that repeats ``range(n)`` without end (one DataLoader for the whole run, as iadet's)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __iter__(self) -> Iterator[int]:
        while True:
            yield from range(self.n)


def collate_lists(batch: list) -> tuple[list, list]:
    images, targets = zip(*batch)
    return list(images), list(targets)


def stock_detector(detector: str, num_classes: int, settings: dict[str, Any]):
    """torchvision's R50-FPN detector from its public API, FrozenBatchNorm as with pretrained weights."""
    from torchvision.models.detection import FasterRCNN, MaskRCNN
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
    from torchvision.ops.misc import FrozenBatchNorm2d

    backbone = resnet_fpn_backbone(
        backbone_name="resnet50", weights=None, norm_layer=FrozenBatchNorm2d, trainable_layers=3
    )
    cls = MaskRCNN if detector == "mask_rcnn" else FasterRCNN
    return cls(backbone, num_classes=num_classes, **settings)


def plain_training(
    model,
    dataset: PlainVOC,
    *,
    iters: int,
    batch: int,
    device: str,
    workers: int,
    lr: float,
    momentum: float,
    weight_decay: float,
    seed: int,
) -> list[dict[str, float]]:
    """A training loop as torchvision's references write it: SGD, autocast + GradScaler; per-step loss and time
    (timed as iadet's metrics: from fetching the batch to the optimiser step)."""
    import torch
    from torch.utils.data import DataLoader

    cuda = device == "cuda"
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)
    loader = DataLoader(
        dataset,
        batch_size=batch,
        sampler=Forever(len(dataset)),
        num_workers=workers,
        collate_fn=collate_lists,
        pin_memory=cuda,
        generator=torch.Generator(),
    )
    torch.manual_seed(seed)
    rows = []
    batches = iter(loader)
    for step in range(iters):
        start = time.perf_counter()
        images, targets = next(batches)
        images = [im.to(device, non_blocking=True) for im in images]
        targets = [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in targets]
        with torch.autocast(device, enabled=cuda):
            loss_dict = model(images, targets)
        loss = sum(loss_dict.values())
        loss_value = loss.item()
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        rows.append({"iter": step + 1, "loss": loss_value, "time": time.perf_counter() - start})
        if cuda:
            torch.cuda.synchronize()
    del batches
    return rows


def detector_settings(model_cfg: Any) -> dict[str, Any]:
    return {k: getattr(model_cfg, k) for k in MODEL_KEYS}


# ----------------------------------------------------------------------------------------------
# item: parity


def compare_outputs(ours: list[dict], stock: list[dict]) -> tuple[bool, dict[str, Any]]:
    import torch

    info: dict[str, Any] = {"detections": [int(o["boxes"].shape[0]) for o in ours]}
    same = len(ours) == len(stock)
    worst = 0.0
    for a, b in zip(ours, stock):
        for key in a.keys() | b.keys():
            if key not in a or key not in b or a[key].shape != b[key].shape:
                same = False
                info.setdefault("differs", []).append(f"{key}: shape")
                continue
            if not torch.equal(a[key], b[key]):
                same = False
                info.setdefault("differs", []).append(key)
                if a[key].is_floating_point():
                    worst = max(worst, float((a[key].float() - b[key].float()).abs().max()))
    if not same:
        info["max_abs_difference"] = worst
    return same, info


def item_parity(c: Ctx, rec: Record) -> None:
    import torch

    from iadet.engine.loading import load_detector

    c.maybe_fail("start")
    images = load_images(c.data("coco"), 2 if c.dry else 4)
    for name in ("r50-fpn", "mask-rcnn"):
        arch = c.arch(name, tiny=False)
        run = None
        try:
            iters = 1 if c.dry else 4
            # score threshold 0: a barely trained detector still returns its boxes (100 per image; --dry: 20)
            keep = ["model.box_score_thresh=0.0", f"model.box_detections_per_img={20 if c.dry else 100}"]
            rows, run = c.train(f"ia-{name}", c.overrides(arch, "ia", iters, *keep))
            problems = loss_problems(rows, iters)
            if problems:
                raise RuntimeError("; ".join(problems))
            ours, cfg = load_detector(run / "model_final.pth", device=c.device)
            stock = stock_detector(arch.detector, len(cfg.data.classes) + 1, detector_settings(cfg.model))
            state = torch.load(run / "model_final.pth", map_location="cpu", weights_only=True)
            stock.load_state_dict(state, strict=True)
            stock.to(c.device).eval()
            batch = [im.to(c.device) for im in images]
            modes = [("float32", False)] + ([("autocast", True)] if c.cuda else [])
            for mode, amp in modes:
                with torch.inference_mode(), torch.autocast(c.device, enabled=amp):
                    a = [{k: v.cpu() for k, v in o.items()} for o in ours(batch)]
                    again = [{k: v.cpu() for k, v in o.items()} for o in ours(batch)]
                    b = [{k: v.cpu() for k, v in o.items()} for o in stock(batch)]
                same, info = compare_outputs(a, b)
                repeatable, _ = compare_outputs(a, again)
                empty = sum(info["detections"]) == 0
                error = (
                    None
                    if same
                    else f"outputs differ from torchvision's ({', '.join(info.get('differs', []))})"
                )
                if same and empty:
                    error = "no detections to compare"
                rec.check(
                    f"{name} {mode}",
                    "pass" if same and not empty else "fail",
                    error,
                    detector=arch.detector,
                    strict_load=True,
                    run_to_run_identical=repeatable,
                    **info,
                )
        except Exception as exc:
            rec.check(f"{name}", "fail", one_line(exc))
        finally:
            c.release(run)


# ----------------------------------------------------------------------------------------------
# item: speed


def step_flops(c: Ctx, overrides: list[str]) -> int:
    """FLOPs of one training step (the first: the same images and sampled RoIs for every method),
    counted as ``benchmarks/train_overhead.py --flops`` counts them."""
    sys.path.insert(0, str(HERE))
    from iadet.config import load_config
    from iadet.engine.training_run import train
    from train_overhead import _StepFlopCounter

    run = c.run_dir(f"flops-{time.monotonic_ns()}")
    try:
        with _StepFlopCounter(display=False) as counter:
            train(load_config(None, overrides), run, quiet=True)
        return int(counter.get_total_flops())
    finally:
        c.release(run)


def item_speed(c: Ctx, rec: Record) -> None:
    import torch

    arch = c.arch("r50-fpn")
    iters, skip = (4, 1) if c.dry else (50, 10)
    rec.set(
        "setting",
        {**dataclasses.asdict(arch), "iters": iters, "skip": skip, "batch_size": c.batch, "amp": c.cuda},
    )
    c.maybe_fail("start")
    results: dict[str, dict[str, Any]] = {}
    for method in SPEED_METHODS:
        if c.remaining() < 5:
            rec.check(method, "skip", f"the item's time budget ({c.budget:.0f} s) is spent")
            continue
        joint = ["method.warmup_iters=0", "method.pretrain_iters=0"] if method == "asdn+astn" else []
        run = None
        try:
            c.release()
            if c.cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            rows, run = c.train(method, c.overrides(arch, method, iters, *joint))
            problems = loss_problems(rows, iters)
            times = [r["time"] for r in rows][skip:]
            if not times:
                problems.append("no timed iterations")
            median = statistics.median(times) if times else float("nan")
            row = {
                "median_s_per_iter": median,
                "images_per_s": c.batch / median if times else None,
                "peak_memory_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1) if c.cuda else None,
                "peak_reserved_mib": round(torch.cuda.max_memory_reserved() / 2**20, 1) if c.cuda else None,
                "iterations_timed": len(times),
                "final_loss": rows[-1].get("loss") if rows else None,
            }
            results[method] = row
            rec.check(method, "fail" if problems else "pass", "; ".join(problems) or None, **row)
        except Exception as exc:
            rec.check(method, "fail", one_line(exc))
        finally:
            c.release(run)
    if "none" in results:
        base = results["none"]["median_s_per_iter"]
        for row in results.values():
            row["ratio"] = row["median_s_per_iter"] / base
    rec.set("methods", results)
    # IA's FLOP floor: 1 + FLOPs(the probe's extra box-head forward and input-gradient pass) / FLOPs(step)
    flops: dict[str, int] = {}
    for method in FLOP_METHODS:
        if c.remaining() < 5:
            break
        try:
            flops[method] = step_flops(c, c.overrides(arch, method, 1, "data.num_workers=0"))
        except Exception as exc:
            rec.check(f"flops {method}", "fail", one_line(exc))
    rec.set("step_gflops", {m: f / 1e9 for m, f in flops.items()})
    for method in ("ia", "ia-code"):
        if method not in flops or "none" not in flops or method not in results or "none" not in results:
            rec.check(f"{method} vs its FLOP floor", "skip", "not measured (budget or an earlier failure)")
            continue
        floor = flops[method] / flops["none"]
        ratio = results[method]["ratio"]
        results[method]["floor"] = floor
        rec.check(
            f"{method} vs its FLOP floor",
            "pass",
            ratio=round(ratio, 4),
            floor=round(floor, 4),
            above_floor=round(ratio - floor, 4),
            note="measured step-time ratio to none; the floor counts convolutions and matrix products only",
        )
    rec.set("methods", results)


# ----------------------------------------------------------------------------------------------
# item: torchvision


def item_torchvision(c: Ctx, rec: Record) -> None:
    import torch

    from iadet.config import load_config

    c.maybe_fail("start")
    arch = c.arch("r50-fpn", tiny=False)
    arch = dataclasses.replace(arch, data="pair", weights=None)
    iters, skip = (3, 1) if c.dry else (30, 5)
    c.needs(c.data("pair"), c.weights("resnet50"))
    # the same initial weights for both: the stock model, its backbone from the calibrated file
    dataset = PlainVOC(c.data("pair"))
    base = c.overrides(arch, "none", iters, "data.flip=false")
    cfg = load_config(None, base)
    settings = detector_settings(cfg.model)
    torch.manual_seed(0)
    model = stock_detector("faster_rcnn", len(dataset.classes) + 1, settings)
    body = torch.load(c.weights("resnet50"), map_location="cpu", weights_only=True)
    missing, _ = model.backbone.body.load_state_dict(body, strict=False)
    if missing:
        raise RuntimeError(f"calibrated ResNet-50 weights do not fit torchvision's body: {missing[:3]}")
    init = c.scratch / "torchvision-init.pth"
    torch.save(model.state_dict(), init)
    rec.set(
        "setting",
        {
            "iters": iters,
            "skip": skip,
            "batch_size": c.batch,
            "model": settings,
            "lr": cfg.train.lr,
            "momentum": cfg.train.momentum,
            "weight_decay": cfg.train.weight_decay,
            "data": "2 copies of one 640x480 image (batch order cannot matter)",
            "init": "same file",
        },
    )

    results: dict[str, list[dict[str, float]]] = {}
    start = time.perf_counter()
    try:
        results["torchvision"] = plain_training(
            model,
            dataset,
            iters=iters,
            batch=c.batch,
            device=c.device,
            workers=c.workers,
            lr=cfg.train.lr,
            momentum=cfg.train.momentum,
            weight_decay=cfg.train.weight_decay,
            seed=0,
        )
        problems = loss_problems([{"type": "train", **r} for r in results["torchvision"]], iters)
        rec.check(
            "plain torchvision loop",
            "fail" if problems else "pass",
            "; ".join(problems) or None,
            wall_s=round(time.perf_counter() - start, 1),
        )
    except Exception as exc:
        rec.check("plain torchvision loop", "fail", one_line(exc))
    del model
    c.release()
    run = None
    start = time.perf_counter()
    try:
        rows, run = c.train("none", [*base, f"model.weights={init}"])
        results["iadet"] = [{"iter": r["iter"], "loss": r["loss"], "time": r["time"]} for r in rows]
        problems = loss_problems(rows, iters)
        rec.check(
            "iadet none",
            "fail" if problems else "pass",
            "; ".join(problems) or None,
            wall_s=round(time.perf_counter() - start, 1),
        )
    except Exception as exc:
        rec.check("iadet none", "fail", one_line(exc))
    finally:
        c.release(run)
    rec.set("steps", results)
    if len(results) < 2 or not results["iadet"] or not results["torchvision"]:
        rec.check("same loss from the same init", "skip", "a run failed")
        return
    ours, theirs = results["iadet"], results["torchvision"]
    first = rel_diff(ours[0]["loss"], theirs[0]["loss"])
    n = min(len(ours), len(theirs), 5)
    last_ours = statistics.fmean(r["loss"] for r in ours[-n:])
    last_theirs = statistics.fmean(r["loss"] for r in theirs[-n:])
    rec.check(
        "same loss from the same init",
        "pass" if first <= 2e-3 else "fail",
        None if first <= 2e-3 else f"first-step losses differ by {first:.2%}",
        first_step={"iadet": ours[0]["loss"], "torchvision": theirs[0]["loss"], "relative_difference": first},
        **{
            f"mean_of_last_{n}": {
                "iadet": last_ours,
                "torchvision": last_theirs,
                "relative_difference": rel_diff(last_ours, last_theirs),
            }
        },
    )
    speed = {}
    for name, steps in results.items():
        median = statistics.median(r["time"] for r in steps[skip:])
        speed[name] = {"median_s_per_iter": median, "images_per_s": c.batch / median}
    ratio = speed["iadet"]["images_per_s"] / speed["torchvision"]["images_per_s"]
    if c.dry:
        rec.check(
            "throughput within 10% of torchvision",
            "skip",
            "timings on a shared CPU",
            optional=True,
            ratio=ratio,
            **speed,
        )
    else:
        rec.check(
            "throughput within 10% of torchvision",
            "pass" if ratio >= 0.9 else "fail",
            None if ratio >= 0.9 else f"iadet none reaches {ratio:.0%} of the plain loop's images/s",
            ratio=ratio,
            **speed,
        )


# ----------------------------------------------------------------------------------------------
# item: resume


def item_resume(c: Ctx, rec: Record) -> None:
    import torch

    c.maybe_fail("start")
    # the CPU leg trains a real R50-FPN at a reduced size (CPU seconds, not minutes); --dry: the tiny stand-in
    arch = c.arch("r50-fpn")
    if not c.dry:
        arch = dataclasses.replace(arch, min_size=480, max_size=800)
    base = c.overrides(arch, "none", 2, "train.device=cpu", "data.num_workers=0")
    cpu_run = c.run_dir("cpu")
    try:
        rows, _ = c.train("cpu", base, run=cpu_run)
        problems = loss_problems(rows, 2)
        if not (cpu_run / "checkpoint.pth").is_file():
            problems.append("no checkpoint.pth")
        rec.check(
            "2 iterations on the CPU",
            "fail" if problems else "pass",
            "; ".join(problems) or None,
            losses=[r.get("loss") for r in rows],
        )
    except Exception as exc:
        rec.check("2 iterations on the CPU", "fail", one_line(exc))
        return
    legs = [("cuda", "true"), ("cuda", "false")] if c.cuda else [("cpu", "true")]
    if not c.cuda:
        rec.check("resume on cuda", "skip", "needs CUDA (dry run: resumed on the CPU instead)")
    for device, amp in legs:
        name = f"resume on {device}, amp={amp}" + (" (CPU stand-in)" if device == "cpu" else "")
        run = c.run_dir(f"resume-{device}-amp-{amp}")
        try:
            shutil.copytree(cpu_run, run)
            overrides = [
                *base,
                f"train.device={device}",
                f"train.amp={amp}",
                "train.max_iters=4",
                f"data.num_workers={c.workers}",
            ]
            rows, _ = c.train(run.name, overrides, resume=True, run=run)
            problems = loss_problems(rows, 4)
            if [r.get("iter") for r in rows] != [1, 2, 3, 4]:
                problems.append(f"iterations logged {[r.get('iter') for r in rows]}, expected [1, 2, 3, 4]")
            state = torch.load(run / "checkpoint.pth", map_location="cpu", weights_only=True)
            done = state.get("progress", {}).get("iteration")
            if done != 4:
                problems.append(f"checkpoint at iteration {done}, expected 4")
            rec.check(
                name,
                "fail" if problems else "pass",
                "; ".join(problems) or None,
                losses=[r.get("loss") for r in rows],
            )
        except Exception as exc:
            rec.check(name, "fail", one_line(exc))
        finally:
            c.release(run)
    c.release(cpu_run)


# ----------------------------------------------------------------------------------------------
# item: ddp


def item_ddp(c: Ctx, rec: Record) -> None:
    import torch

    c.maybe_fail("start")
    arch = c.arch("r50-fpn")
    iters = 2 if c.dry else 10
    gpus = torch.cuda.device_count() if c.cuda else 0
    rec.set(
        "note",
        "iadet starts a process group only when WORLD_SIZE > 1 (iadet.engine.distributed."
        "init_from_env): with --nproc_per_node=1 the run is one process, neither DDP nor NCCL",
    )
    runs = [(1, "nccl" if c.cuda else "cpu stand-in"), (2, "nccl")]
    for nproc, backend in runs:
        name = f"torchrun --nproc_per_node={nproc} ({backend})"
        if nproc == 1 and not c.cuda:
            rec.check(
                "torchrun --nproc_per_node=1 (nccl)", "skip", "needs CUDA (dry run: the CPU stand-in below)"
            )
        if nproc == 2 and gpus < 2:
            reason = f"{gpus} GPU{'s' if gpus != 1 else ''}: NCCL needs one GPU per process"
            rec.check(name, "skip", reason, optional=c.cuda)
            continue
        if c.remaining() < 10:
            rec.check(name, "skip", f"the item's time budget ({c.budget:.0f} s) is spent")
            continue
        run = c.run_dir(f"nproc{nproc}")
        overrides = c.overrides(arch, "none", iters, f"train.device={'cuda' if c.cuda else 'cpu'}")
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            "-m",
            "iadet",
            "train",
            "--output",
            str(run),
            "--quiet",
        ]
        for o in overrides:
            cmd += ["--set", o]
        log = c.output / "logs" / f"ddp-nproc{nproc}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        try:
            with log.open("w") as out:
                done = subprocess.run(
                    cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, timeout=max(5.0, c.remaining() - 3)
                )
            c.archive(run)
            rows = train_rows(run)
            problems = loss_problems(rows, iters)
            if done.returncode != 0:
                problems.insert(0, f"exit status {done.returncode}: {last_line(log)}")
            rec.check(
                name,
                "fail" if problems else "pass",
                "; ".join(problems) or None,
                wall_s=round(time.perf_counter() - start, 1),
                log=str(log.relative_to(c.output)),
                command=" ".join(cmd[:9]) + " ...",
            )
        except subprocess.TimeoutExpired:
            rec.check(name, "fail", f"did not finish within {c.remaining():.0f} s", log=str(log))
        finally:
            c.release(run)


# ----------------------------------------------------------------------------------------------
# the items, their phases and budgets


@dataclasses.dataclass(frozen=True)
class Item:
    fn: Callable[[Ctx, Record], None]
    phase: int
    """0: first, one by one; 1: side by side (checks, not timings); 2: one by one, alone on the GPU."""
    budget: float
    """Seconds on a GPU (``--dry``: ``dry_budget``); the item stops starting new runs when it is spent."""
    dry_budget: float
    needs_data: bool = True
    title: str = ""


ITEMS: dict[str, Item] = {
    "prepare": Item(item_prepare, 0, 60, 60, needs_data=False, title="data and backbone weights"),
    "env": Item(item_env, 0, 20, 20, needs_data=False, title="device and versions"),
    **{
        f"train-{name}": Item(make_train_item(name), 1, 170, 90, title=f"every method trains: {name}")
        for name in ARCHS
    },
    "parity": Item(item_parity, 1, 90, 60, title="inference identical to torchvision's"),
    "speed": Item(item_speed, 2, 110, 60, title="images/s, peak memory, IA vs its FLOP floor"),
    "torchvision": Item(item_torchvision, 2, 60, 60, title="iadet none vs a plain torchvision loop"),
    "resume": Item(item_resume, 2, 60, 60, title="a CPU run resumed on the GPU"),
    "ddp": Item(item_ddp, 2, 60, 60, title="torchrun (NCCL)"),
}
GRACE_S = 20.0
"""A child running past its budget by this much is killed (its item fails; the others go on); ``--dry``: 3 s."""
MIN_ITEM_S = 10.0


# ----------------------------------------------------------------------------------------------
# running the items: in this process (--dry) or one child process each (on a GPU)


def run_in_process(name: str, raw: dict[str, Any], budget: float, result: Path) -> dict[str, Any]:
    rec = Record(name, result)
    c = Ctx(raw, name, budget)
    try:
        ITEMS[name].fn(c, rec)
    except Exception as exc:
        rec.check("item", "fail", one_line(exc))
        rec.set("traceback", traceback.format_exc()[-3000:])
    finally:
        c.release()
    return rec.data


class Child:
    """One item in its own process (own CUDA context, own peak memory, killable)."""

    def __init__(
        self, name: str, raw_path: Path, budget: float, output: Path, threads: int | None, grace: float
    ) -> None:
        self.name, self.budget, self.grace = name, budget, grace
        self.result = output / "logs" / f"{name}.json"
        self.log = output / "logs" / f"{name}.log"
        self.result.unlink(missing_ok=True)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker",
            name,
            "--context",
            str(raw_path),
            "--result",
            str(self.result),
            "--worker-budget",
            str(budget),
        ]
        self.out = self.log.open("w")
        self.start = time.monotonic()
        self.proc = subprocess.Popen(
            cmd, stdout=self.out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True, env=env
        )
        self.killed = False

    def poll(self) -> bool:
        if self.proc.poll() is not None:
            return True
        if time.monotonic() - self.start > self.budget + self.grace:
            self.kill()
            return True
        return False

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.killed = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # this child's own session: it and its workers
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=30)

    def collect(self) -> dict[str, Any]:
        self.out.close()
        data = {"item": self.name, "checks": [], "details": {}}
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(self.result.read_text())
        if self.killed:
            data["checks"].append(
                {
                    "name": "time limit",
                    "status": "fail",
                    "error": f"killed at the hard limit ({self.budget + self.grace:.0f} s)",
                }
            )
        elif self.proc.returncode != 0:
            data["checks"].append(
                {
                    "name": "process",
                    "status": "fail",
                    "error": f"exit status {self.proc.returncode}: {last_line(self.log)}",
                }
            )
        data["log"] = str(self.log.relative_to(self.log.parent.parent))
        return data


def worker_main(args: argparse.Namespace) -> int:
    raw = json.loads(Path(args.context).read_text())
    run_in_process(args.worker, raw, args.worker_budget, Path(args.result))
    return 0


# ----------------------------------------------------------------------------------------------
# the report


def fmt(value: Any, spec: str = ".2f") -> str:
    return format(value, spec) if finite(value) else "–"


def report_markdown(summary: dict[str, Any]) -> str:
    env = summary.get("env") or {}
    items = summary["items"]
    lines = ["# iadet GPU check", ""]
    if summary["dry"]:
        lines += [
            "**Dry run on the CPU** (`--dry`): tiny stand-ins that check the script; no number here is a GPU result.",
            "",
        ]
    device = (env.get("devices") or [{}])[0].get("name") or summary.get("device")
    lines += [
        f"- device: {device} ({env.get('device_count', 0)} GPU(s)); driver: {env.get('nvidia_smi') or '–'}",
        f"- torch {env.get('torch')}, torchvision {env.get('torchvision')}, CUDA {env.get('cuda_build')}, "
        f"cuDNN {env.get('cudnn')}; iadet {env.get('iadet')} at {env.get('commit') or '?'}"
        + (" (uncommitted changes)" if env.get("dirty") else ""),
        f"- command: `{summary['command']}`; started {summary['started']}; {summary.get('wall_s', 0):.0f} s in all",
        f"- result: {summary.get('counts')}",
        "",
        "| item | status | seconds (budget) | what | first problem |",
        "|---|---|---|---|---|",
    ]
    for name, it in items.items():
        lines.append(
            f"| {name} | {it['status']} | {fmt(it.get('wall_s'), '.0f')} ({fmt(it.get('budget_s'), '.0f')}) "
            f"| {ITEMS[name].title if name in ITEMS else ''} | {it.get('error') or ''} |"
        )
    # the training matrix
    trains = {n: it for n, it in items.items() if n.startswith("train-")}
    if trains:
        methods: list[str] = []
        for it in trains.values():
            for check in it.get("checks", []):
                if check["name"] not in methods and check["name"] not in (
                    "frozen stem and BatchNorm",
                    "item",
                ):
                    methods.append(check["name"])
        lines += ["", "## Every method trains (AMP, frozen BatchNorm, finite losses)", ""]
        for name, it in trains.items():
            arch = it.get("details", {}).get("arch", {})
            if arch:
                lines.append(f"- {name}: {arch.get('about')}")
        lines += ["", "| method | " + " | ".join(trains) + " |", "|---" * (len(trains) + 1) + "|"]
        for method in methods:
            cells = []
            for it in trains.values():
                check = next((c for c in it.get("checks", []) if c["name"] == method), None)
                if check is None:
                    cells.append("")
                elif check["status"] == "pass":
                    stages = f", {'/'.join(check['stages'])}" if check.get("stages") else ""
                    cells.append(
                        f"pass ({check.get('iters')} it{stages}, {fmt(check.get('wall_s'), '.1f')} s)"
                    )
                else:
                    cells.append(f"**{check['status']}**: {check.get('error')}")
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        frozen = []
        for name, it in trains.items():
            for check in it.get("checks", []):
                if check["name"] == "frozen stem and BatchNorm":
                    frozen.append(
                        f"{name} {check['status']}" + (f" ({check['error']})" if check.get("error") else "")
                    )
        if frozen:
            lines += ["", "Frozen stem and BatchNorm (the `none` run): " + "; ".join(frozen) + "."]
    speed = items.get("speed", {}).get("details", {})
    if speed.get("methods"):
        s = speed.get("setting", {})
        lines += [
            "",
            "## Throughput and memory",
            "",
            f"{s.get('backbone')} {s.get('detector')}, {s.get('min_size')} px, batch {s.get('batch_size')}, "
            f"AMP {s.get('amp')}, {s.get('iters')} iterations ({s.get('skip')} left out of the median).",
            "",
            "| method | images/s | ms/iter | vs none | FLOP floor | peak MiB (allocated) |",
            "|---|---|---|---|---|---|",
        ]
        for m, r in speed["methods"].items():
            lines.append(
                f"| {m} | {fmt(r.get('images_per_s'))} | {fmt((r.get('median_s_per_iter') or 0) * 1e3, '.1f')} | "
                f"{fmt(r.get('ratio'), '.3f')}x | {fmt(r.get('floor'), '.3f')} | {fmt(r.get('peak_memory_mib'), '.0f')} |"
            )
    tv = items.get("torchvision", {})
    if tv.get("checks"):
        lines += ["", "## iadet `none` vs a plain torchvision loop (same init, data, settings)", ""]
        for check in tv["checks"]:
            extra = {k: v for k, v in check.items() if k not in ("name", "status", "error", "optional")}
            lines.append(
                f"- {check['name']}: **{check['status']}**"
                + (f" ({check['error']})" if check.get("error") else "")
                + (f" — `{json.dumps(extra, default=str)}`" if extra else "")
            )
    for name, heading in (
        ("parity", "Inference parity with torchvision"),
        ("resume", "Resume CPU → GPU"),
        ("ddp", "torchrun"),
    ):
        it = items.get(name, {})
        if not it.get("checks"):
            continue
        lines += ["", f"## {heading}", ""]
        for check in it["checks"]:
            lines.append(
                f"- {check['name']}: **{check['status']}**"
                + (f" — {check['error']}" if check.get("error") else "")
            )
        if it.get("details", {}).get("note"):
            lines.append(f"- note: {it['details']['note']}")
    lines += [
        "",
        "Per-item details: `summary.json`; logs: `logs/`; every run's `metrics.jsonl`: `runs/`.",
        "",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="Items: " + ", ".join(ITEMS))
    p.add_argument("--dry", action="store_true", help="CPU check of the script: tiny sizes, about a minute")
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    p.add_argument("--items", default=None, help="comma-separated subset of the items (default: all)")
    p.add_argument(
        "--methods", default=None, help="comma-separated methods of the training items (default: all)"
    )
    p.add_argument(
        "--budget", type=float, default=None, help="seconds for the whole check (default 540; --dry 600)"
    )
    p.add_argument("--budget-scale", type=float, default=1.0, help="multiply every item's budget")
    p.add_argument("--item-budget", action="append", default=[], metavar="ITEM=SECONDS")
    p.add_argument(
        "--isolate",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="each item in its own process (default: yes on a GPU, no with --dry)",
    )
    p.add_argument("--serial", action="store_true", help="never run items side by side")
    p.add_argument(
        "--scratch",
        type=Path,
        default=None,
        help="where a temporary directory for data, weights and checkpoints is made (default: /dev/shm when it has room)",
    )
    p.add_argument("--keep-scratch", action="store_true")
    p.add_argument("--fail-item", default=None, help=argparse.SUPPRESS)  # tests: ITEM or ITEM:hang
    # a child process
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--context", default=None, help=argparse.SUPPRESS)
    p.add_argument("--result", default=None, help=argparse.SUPPRESS)
    p.add_argument("--worker-budget", type=float, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def make_scratch(args: argparse.Namespace) -> Path:
    """A fresh directory (deleted at the end) for data, weights and checkpoints: under ``--scratch``, else in
    ``/dev/shm`` when it has room (checkpoints are written with fsync: on a disk that dominates short runs)."""
    base = args.scratch
    if base is None:
        shm = Path("/dev/shm")
        need = (2 if args.dry else 16) * 2**30
        if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > need:
            base = shm
    if base is not None:
        base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="iadet-gpu-check-", dir=base)).resolve()


class Stop(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args)
    if not args.dry and not cuda_available():
        print(
            "gpu_check: no CUDA device visible to torch (use --dry for the CPU check of the script)",
            file=sys.stderr,
        )
        return 2
    selected = list(ITEMS)
    if args.items:
        wanted = [s.strip() for s in args.items.split(",") if s.strip()]
        unknown = [s for s in wanted if s not in ITEMS]
        if unknown:
            print(
                f"gpu_check: unknown item(s) {', '.join(unknown)}; items: {', '.join(ITEMS)}", file=sys.stderr
            )
            return 2
        selected = [n for n in ITEMS if n in wanted]
    overrides = {}
    for text in args.item_budget:
        name, _, seconds = text.partition("=")
        overrides[name] = float(seconds)
    isolate = (not args.dry) if args.isolate is None else args.isolate
    grace = 3.0 if args.dry else GRACE_S
    total = args.budget or (600.0 if args.dry else 540.0)
    cpus = os.cpu_count() or 1

    output = args.output.resolve()
    output.mkdir(parents=True, exist_ok=True)
    for sub in ("runs", "logs"):
        shutil.rmtree(output / sub, ignore_errors=True)
    (output / "logs").mkdir()
    for stale in ("summary.json", "report.md"):
        (output / stale).unlink(missing_ok=True)
    scratch = make_scratch(args)
    raw = {
        "dry": args.dry,
        "device": "cpu" if args.dry else "cuda",
        "output": str(output),
        "scratch": str(scratch),
        "workers": 0 if args.dry else min(4, max(1, cpus // 4)),
        "batch": 2,
        "methods": [m.strip() for m in args.methods.split(",")] if args.methods else [],
        "fail_item": args.fail_item,
    }
    raw_path = scratch / "context.json"
    write_json(raw_path, raw)
    command = os.environ.get("GPU_CHECK_COMMAND") or " ".join(
        ["python", "benchmarks/gpu_check.py", *sys.argv[1:]]
    )
    import torch

    summary: dict[str, Any] = {
        "check": "iadet GPU check (benchmarks/gpu_check.py)",
        "dry": args.dry,
        "device": "cpu (dry run)" if args.dry else "cuda",
        "torch": torch.__version__,
        "cuda_build": torch.version.cuda,
        "command": command,
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "budget_s": total,
        "isolated": isolate,
        "scratch": str(scratch),
        "env": None,
        "items": {},
    }
    start = time.monotonic()
    deadline = start + total
    children: list[Child] = []

    def on_signal(signum, frame):
        raise Stop(f"stopped by {signal.Signals(signum).name}")

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}

    def budget_of(name: str) -> float:
        item = ITEMS[name]
        return overrides.get(name, (item.dry_budget if args.dry else item.budget) * args.budget_scale)

    def finish(name: str, data: dict[str, Any], wall: float, budget: float) -> None:
        status, error = item_status(data.get("checks", []))
        summary["items"][name] = {
            "status": status,
            "error": error,
            "wall_s": round(wall, 1),
            "budget_s": round(budget, 1),
            **data,
        }
        summary["items"][name].pop("item", None)
        if name == "env":
            summary["env"] = data.get("details", {}).get("env")
            devices = (summary["env"] or {}).get("devices") or []
            if devices and not args.dry:
                summary["device"] = devices[0]["name"]
        print(f"{name:<16} {status:<5} {wall:6.1f} s" + (f"  {error}" if error else ""), flush=True)
        write_json(output / "summary.json", summary)

    def skip(name: str, reason: str) -> None:
        finish(name, {"checks": [{"name": "item", "status": "skip", "error": reason}]}, 0.0, budget_of(name))

    def blocked(name: str) -> str | None:
        prep = summary["items"].get("prepare")
        if ITEMS[name].needs_data and "prepare" in selected and prep is not None and prep["status"] != "pass":
            return f"needs the prepared data and weights: prepare {prep['status']}ed ({prep['error']})"
        return None

    def reserve_after(phase: int, name: str | None = None) -> float:
        """Time kept for the items after ``name`` (or after ``phase``): a part of their budgets (what they
        typically take), so an item running long squeezes the later ones rather than cancelling them.
        Items that may run side by side (phase 1) count once, as the longest of them."""

        def typical(n: str) -> float:
            return min(budget_of(n), 0.3 * budget_of(n) + 10)

        total = 0.0
        for p in (0, 1, 2):
            names = [n for n in selected if ITEMS[n].phase == p]
            if p < phase or not names:
                continue
            if p == phase:
                names = names[names.index(name) + 1 :] if name is not None else []
            if p == 1 and isolate and not args.serial and p != phase:
                total += max((typical(n) for n in names), default=0.0)
            else:
                total += sum(typical(n) for n in names)
        return total

    try:
        for phase in (0, 1, 2):
            names = [n for n in selected if ITEMS[n].phase == phase]
            side_by_side = phase == 1 and isolate and not args.serial and len(names) > 1
            if side_by_side:
                memory = max(
                    (d.get("memory_gib", 0) for d in (summary.get("env") or {}).get("devices", [])), default=0
                )
                side_by_side = memory >= 40  # 4 detectors side by side need ~30 GB
            if side_by_side:
                runnable = []
                for name in names:
                    why = blocked(name)
                    if why:
                        skip(name, why)
                    else:
                        runnable.append(name)
                available = deadline - time.monotonic() - reserve_after(phase)
                threads = max(1, cpus // max(1, len(runnable)))
                for name in runnable:
                    budget = min(budget_of(name), available)
                    if budget < min(MIN_ITEM_S, budget_of(name)):
                        skip(name, "the check's time budget is spent")
                        continue
                    children.append(Child(name, raw_path, budget, output, threads, grace))
                while children:
                    time.sleep(0.5)
                    for child in [ch for ch in children if ch.poll()]:
                        children.remove(child)
                        finish(child.name, child.collect(), time.monotonic() - child.start, child.budget)
                continue
            for name in names:
                why = blocked(name)
                if why:
                    skip(name, why)
                    continue
                budget = min(budget_of(name), deadline - time.monotonic() - reserve_after(phase, name))
                if budget < min(MIN_ITEM_S, budget_of(name)):
                    skip(name, "the check's time budget is spent")
                    continue
                print(f"== {name} (budget {budget:.0f} s)", flush=True)
                t0 = time.monotonic()
                if isolate:
                    child = Child(name, raw_path, budget, output, None, grace)
                    children.append(child)
                    while not child.poll():
                        time.sleep(0.5)
                    children.remove(child)
                    data = child.collect()
                else:
                    data = run_in_process(name, raw, budget, output / "logs" / f"{name}.json")
                finish(name, data, time.monotonic() - t0, budget)
    except Stop as exc:
        summary["stopped"] = str(exc)
        print(f"gpu_check: {exc}; writing what is done", file=sys.stderr, flush=True)
    finally:
        for child in children:
            child.kill()
            finish(child.name, child.collect(), time.monotonic() - child.start, child.budget)
        for name in selected:
            if name not in summary["items"]:
                skip(name, summary.get("stopped") or "not run")
        for s, handler in previous.items():
            signal.signal(s, handler)
        summary["wall_s"] = round(time.monotonic() - start, 1)
        counts = {"pass": 0, "fail": 0, "skip": 0}
        for it in summary["items"].values():
            counts[it["status"]] += 1
        summary["counts"] = counts
        write_json(output / "summary.json", summary)
        (output / "report.md").write_text(report_markdown(summary), encoding="utf-8")
        if not args.keep_scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    print(
        f"gpu_check: {counts['pass']} pass, {counts['fail']} fail, {counts['skip']} skip in {summary['wall_s']:.0f} s; "
        f"wrote {output / 'summary.json'} and {output / 'report.md'}",
        flush=True,
    )
    return 1 if counts["fail"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
