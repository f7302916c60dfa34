"""The training loop: one function, :func:`train`, used by ``iadet train`` and ``iadet compare``.

Per iteration::

    method.start_iteration(i)                     # stages, ramps (A-Fast-RCNN, MAL-style IA)
    losses = model(images, targets)               # the method acts inside roi_heads
    adversary grads <- d(adversary losses)/d(adversary params)   (never the detector's)
    detector grads  <- d(sum of detector losses)/d(detector params)   (AMP-scaled on CUDA)
    optimizer.step(); scheduler.step(); adversary_optimizer.step()

Everything that decides the next iteration is in ``checkpoint.pth``: model, optimiser,
scheduler, AMP scaler, the adversary and its optimiser, every RNG, and the position in the
data order (epoch, batch) — so ``--resume`` continues exactly, bit for bit on CPU in
deterministic mode. SIGINT/SIGTERM finish the current iteration, write a checkpoint and
return; a non-finite loss stops with the iteration and the loss terms, keeping the last good
checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from iadet.config import Config, config_diff, save_config
from iadet.data.catalog import data_root, open_split
from iadet.data.dataset import DetectionDataset, collate, ignore_signals_in_worker
from iadet.data.masks import mask_loader_for
from iadet.data.proposals import Proposals, load_proposals
from iadet.data.sampler import TrainBatchSampler, shard
from iadet.engine import distributed as dist
from iadet.engine.checkpoint import FORMAT, VERSION, load_file, rng_state, save_atomic, set_rng_state
from iadet.engine.inference import evaluate_split
from iadet.engine.metrics import MetricsWriter
from iadet.engine.schedule import lr_factor, schedule_length
from iadet.errors import ConfigError, TrainingError
from iadet.modeling.detector import build_model
from iadet.modeling.methods import build_method

# keys that do not change what is computed: a resume may change them without --force
OPERATIONAL_KEYS = {
    "data.num_workers",
    "train.log_every",
    "train.checkpoint_every",
    "train.eval_every",
    "train.eval_at_end",
    "train.device",
    "eval.batch_size",
    "eval.max_images",
}


@dataclass
class TrainResult:
    output: Path
    iterations: int
    interrupted: bool
    evaluation: dict[str, Any] | None = None


class _StopFlag:
    """Turns SIGINT/SIGTERM into a flag the loop checks between iterations."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        if threading_main():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.signal = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


class _OutputLock:
    """``OUTPUT/.lock`` held for the run: a second run on the same directory is refused."""

    def __init__(self, output: Path, enabled: bool) -> None:
        self.path = output / ".lock"
        self.enabled = enabled
        self.held = False

    def __enter__(self) -> _OutputLock:
        if not self.enabled:
            return self
        me = f"{socket.gethostname()} {os.getpid()}"
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self.path.read_text(encoding="utf-8", errors="replace").strip()
                host, _, pid = owner.partition(" ")
                if host == socket.gethostname() and pid.isdigit() and not _alive(int(pid)):
                    self.path.unlink(missing_ok=True)  # left behind by a run that was killed
                    continue
                raise TrainingError(
                    f"{self.path.parent}: another run is writing to this directory (lock held by {owner or '?'}); "
                    f"remove {self.path} if that run is gone"
                ) from None
            with os.fdopen(fd, "w") as f:
                f.write(me)
            self.held = True
            return self
        raise TrainingError(f"{self.path}: cannot take the output lock")

    def __exit__(self, *exc) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _set_determinism(enabled: bool, device: torch.device) -> None:
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        # torchvision's CUDA RoIAlign backward has no deterministic kernel: warn instead of failing
        torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
        torch.backends.cudnn.benchmark = False
    else:
        torch.use_deterministic_algorithms(False)


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_config(config: Config) -> tuple[Config, Any]:
    """Fill in what the data decides (root of the built-in data, class names); open the train split."""
    root = data_root(config.data) if dist.is_main() else None
    dist.barrier()
    root = data_root(config.data) if root is None else root
    split = open_split(root, config.data.train_split, fmt=config.data.format, classes=config.data.classes)
    config.data.classes = list(split.classes)
    if config.data.root is None:
        config.data.root = None  # keep "built-in" visible in config.yaml; the cache path is derived
    return config, split


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def train(
    config: Config,
    output: str | Path,
    *,
    resume: bool = False,
    force: bool = False,
    quiet: bool = False,
) -> TrainResult:
    """Train ``config`` into ``output``; see the module docstring for what is written."""
    output = Path(output)
    device = dist.init_from_env(config.train.device)
    main = dist.is_main()
    if main:
        output.mkdir(parents=True, exist_ok=True)
    dist.barrier()
    with _OutputLock(output, enabled=main), _StopFlag() as stop:
        return _train(config, output, device, stop, resume=resume, force=force, quiet=quiet)


def _train(
    config: Config,
    output: Path,
    device: torch.device,
    stop: _StopFlag,
    *,
    resume: bool,
    force: bool,
    quiet: bool,
) -> TrainResult:
    main = dist.is_main()
    ckpt_path = output / "checkpoint.pth"
    checkpoint = None
    if resume:
        if not ckpt_path.is_file():
            raise TrainingError(f"{output}: nothing to resume (no checkpoint.pth)")
        checkpoint = load_file(ckpt_path)
        if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
            raise TrainingError(f"{ckpt_path}: not an iadet training checkpoint")
    elif ckpt_path.exists() or (output / "model_final.pth").exists():
        raise TrainingError(
            f"{output} already holds a training run; pass --resume to continue it, or choose another --output"
        )

    config, train_split = resolve_config(config)
    if checkpoint is not None:
        diff = [k for k in config_diff(checkpoint["config"], config.to_dict()) if k not in OPERATIONAL_KEYS]
        if diff and not force:
            raise TrainingError(
                f"--resume with a different config than the checkpoint's: {', '.join(diff)} (pass --force to resume anyway)"
            )
    if main:
        save_config(config, output / "config.yaml")

    tcfg = config.train
    world = dist.world_size()
    if tcfg.batch_size % world:
        raise TrainingError(f"train.batch_size={tcfg.batch_size} is not divisible by the {world} processes")
    _set_determinism(tcfg.deterministic, device)
    _seed_everything(tcfg.seed)

    proposals = _open_proposals(config, train_split)
    num_classes = len(train_split.classes) + 1
    method = build_method(config.method)
    model = build_model(config.model, num_classes, method)
    method.setup(model)
    model.to(device)
    method.to(device)
    _seed_everything(tcfg.seed + dist.rank())

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=tcfg.lr, momentum=tcfg.momentum, weight_decay=tcfg.weight_decay)
    sampler = TrainBatchSampler(
        [r.aspect_ratio for r in train_split.records],
        tcfg.batch_size,
        seed=tcfg.seed,
        group_by_aspect_ratio=config.data.aspect_ratio_grouping,
        flip=config.data.flip,
    )
    iters_per_epoch = len(sampler)
    max_iters = schedule_length(tcfg, iters_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(tcfg, iters_per_epoch))
    use_amp = tcfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    adv_optimizer = method.make_adversary_optimizer()

    start_iter, start_epoch, start_batch = 0, 0, 0
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        scaler.load_state_dict(checkpoint["scaler"])
        adversary = checkpoint.get("adversary")
        if adversary:
            method.load_state_dict(adversary["state"])
            method.load_extra_state(adversary.get("extra", {}))
            if adv_optimizer is not None and adversary.get("optimizer"):
                adv_optimizer.load_state_dict(adversary["optimizer"])
        progress_state = checkpoint["progress"]
        start_iter = int(progress_state["iteration"])
        start_epoch = int(progress_state["epoch"])
        start_batch = int(progress_state["batch_in_epoch"])
        rng = checkpoint["rng"]
        set_rng_state(rng[dist.rank()] if isinstance(rng, list) else rng)

    if world > 1:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    dataset = DetectionDataset(
        train_split.records,
        train=True,
        use_difficult=config.data.use_difficult,
        mask_loader=mask_loader_for(train_split) if config.model.detector == "mask_rcnn" else None,
        proposals=proposals.for_record if proposals is not None else None,
    )
    writer = MetricsWriter(output, enabled=main)
    if checkpoint is not None:
        writer.truncate_after(start_iter)

    def save_checkpoint(iteration: int, epoch: int, batch_in_epoch: int) -> None:
        rngs = dist.all_gather_object(rng_state())
        if not main:
            return
        state = {
            "format": FORMAT,
            "version": VERSION,
            "model": _unwrap(model).state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "adversary": {
                "name": config.method["name"],
                "state": method.state_dict(),
                "optimizer": adv_optimizer.state_dict() if adv_optimizer is not None else {},
                "extra": method.extra_state(),
            },
            "progress": {"iteration": iteration, "epoch": epoch, "batch_in_epoch": batch_in_epoch},
            "rng": rngs if world > 1 else rngs[0],
            "config": config.to_dict(),
            "classes": list(train_split.classes),
        }
        save_atomic(state, ckpt_path)

    def batches():
        epoch, first = start_epoch, start_batch
        while True:
            plan = sampler.epoch(epoch)[first:]
            loader = DataLoader(
                dataset,
                batch_sampler=[shard(b, dist.rank(), world) for b in plan],
                num_workers=config.data.num_workers,
                collate_fn=collate,
                pin_memory=device.type == "cuda",
                generator=torch.Generator(),  # never draw from the global RNG (exact resume)
                worker_init_fn=ignore_signals_in_worker,
            )
            for k, (images, targets) in enumerate(loader):
                yield epoch, first + k, images, targets
            epoch, first = epoch + 1, 0

    show_bar = main and not quiet and sys.stdout.isatty()
    bar = tqdm(
        total=max_iters, initial=start_iter, desc="train", unit="it", disable=not show_bar, dynamic_ncols=True
    )
    iteration = start_iter
    epoch, batch_in_epoch = start_epoch, start_batch
    interrupted = False
    adv_params = method.adversary_parameters()
    if main and not quiet and not show_bar:
        print(
            f"training {config.method['name']} for {max_iters} iterations ({iters_per_epoch}/epoch) in {output}",
            flush=True,
        )

    model.train()
    data_iter = batches() if start_iter < max_iters else iter(())
    tick = time.perf_counter()
    try:
        for epoch, batch_in_epoch, images, targets in data_iter:
            data_time = time.perf_counter() - tick
            images = [im.to(device, non_blocking=True) for im in images]
            targets = [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in targets]
            method.start_iteration(iteration, max_iters)
            trains_detector = method.trains_detector()
            grad_context = contextlib.nullcontext() if trains_detector else torch.no_grad()
            with grad_context, torch.autocast(device.type, enabled=use_amp):
                loss_dict = model(images, targets)
            loss = sum(loss_dict.values())
            batch = getattr(method, "last_batch", None)
            adv_losses = batch.adversary_losses if batch is not None else {}
            adv_loss = sum(adv_losses.values()) if adv_losses else None

            finite = bool(torch.isfinite(loss).item()) and (
                adv_loss is None or bool(torch.isfinite(adv_loss).item())
            )
            if dist.any_true(not finite, device):
                terms = ", ".join(
                    f"{k}={float(v.detach()):.4g}" for k, v in {**loss_dict, **adv_losses}.items()
                )
                kept = (
                    f"the last good checkpoint {ckpt_path} is kept"
                    if ckpt_path.exists()
                    else "no checkpoint yet"
                )
                raise TrainingError(f"non-finite loss at iteration {iteration + 1}: {terms}; {kept}")

            lr_used = optimizer.param_groups[0]["lr"]
            optimizer.zero_grad(set_to_none=True)
            adv_grads = None
            if adv_loss is not None and adv_params and adv_loss.requires_grad:
                adv_grads = torch.autograd.grad(
                    adv_loss, adv_params, retain_graph=trains_detector, allow_unused=True
                )
            if trains_detector:
                scaler.scale(loss).backward()
                if tcfg.clip_grad_norm:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(params, tcfg.clip_grad_norm)
                scaler.step(optimizer)
                scaler.update()
            if adv_optimizer is not None:
                adv_optimizer.zero_grad(set_to_none=True)
                if adv_grads is not None:
                    for p, g in zip(adv_params, adv_grads):
                        p.grad = g if g is not None else torch.zeros_like(p)
                dist.average_gradients(adv_params)
                adv_optimizer.step()
            with warnings.catch_warnings():
                # the schedule follows the global iteration, also while the detector is frozen
                # (A-Fast-RCNN's ASDN pre-training), where torch warns that no optimizer.step ran
                warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before")
                scheduler.step()
            iteration += 1
            batch_in_epoch += 1

            now = time.perf_counter()
            step_time = now - tick
            tick = now
            bar.update(1)
            if iteration % max(tcfg.log_every, 1) == 0 or iteration == max_iters:
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                terms = {"loss": loss, **loss_dict, **adv_losses}
                names = list(terms)
                # under DDP, log the mean over ranks (the loss of the whole global batch)
                values = dist.all_reduce_mean(
                    torch.stack([terms[k].detach().float() for k in names])
                ).tolist()
                row = {
                    "type": "train",
                    "iter": iteration,
                    "epoch": epoch,
                    **dict(zip(names, values)),
                    "lr": lr_used,
                    "time": step_time,
                    "data_time": data_time,
                }
                if batch is not None:
                    row.update(batch.stats)
                writer.log(row)
                bar.set_postfix(loss=f"{row['loss']:.3f}", refresh=False)
                if main and not quiet and not show_bar:
                    print(
                        f"iter {iteration}/{max_iters} loss {row['loss']:.4f} lr {row['lr']:.2e} {step_time:.3f}s/it",
                        flush=True,
                    )

            if tcfg.eval_every and iteration % tcfg.eval_every == 0 and iteration < max_iters:
                _evaluate(
                    model,
                    config,
                    output,
                    iteration,
                    device,
                    writer,
                    quiet=quiet,
                    write_file=False,
                    proposals=proposals,
                )
                tick = time.perf_counter()

            stop_now = dist.any_true(stop.signal is not None, device)
            if (
                stop_now
                or (tcfg.checkpoint_every and iteration % tcfg.checkpoint_every == 0)
                or iteration >= max_iters
            ):
                save_checkpoint(iteration, epoch, batch_in_epoch)
            if stop_now:
                interrupted = True
                break
            if iteration >= max_iters:
                break
    finally:
        bar.close()
        close = getattr(data_iter, "close", None)
        if close is not None:
            close()

    if interrupted:
        writer.close()
        if main:
            print(
                f"iadet: interrupted at iteration {iteration}/{max_iters}; checkpoint saved to {ckpt_path}.\n"
                f"Resume with: iadet train --config {output / 'config.yaml'} --output {output} --resume",
                file=sys.stderr,
                flush=True,
            )
        return TrainResult(output, iteration, interrupted=True)

    if main:
        save_atomic(_unwrap(model).state_dict(), output / "model_final.pth")
    evaluation = None
    if tcfg.eval_at_end:
        evaluation = _evaluate(
            model,
            config,
            output,
            iteration,
            device,
            writer,
            quiet=quiet,
            write_file=True,
            proposals=proposals,
        )
    writer.close()
    dist.barrier()
    return TrainResult(output, iteration, interrupted=False, evaluation=evaluation)


def _open_proposals(config: Config, train_split: Any) -> Proposals | None:
    """Fast R-CNN's proposals (``data.proposals``), checked to cover every training image."""
    if config.model.detector != "fast_rcnn":
        return None
    if not config.data.proposals:
        raise ConfigError(
            "model.detector=fast_rcnn needs data.proposals=FILE (precomputed proposals; `iadet proposals` makes them)"
        )
    proposals = load_proposals(config.data.proposals)
    proposals.check(train_split.records, train_split.name)
    return proposals


def _evaluate(
    model: nn.Module,
    config: Config,
    output: Path,
    iteration: int,
    device: torch.device,
    writer: MetricsWriter,
    *,
    quiet: bool,
    write_file: bool,
    proposals: Proposals | None = None,
) -> dict[str, Any] | None:
    _, _, summary = evaluate_split(
        _unwrap(model),
        config,
        config.data.test_split,
        device,
        progress=dist.is_main() and not quiet and sys.stdout.isatty(),
        proposals=proposals,
    )
    if summary is None:
        return None
    summary["checkpoint"] = str(output / "model_final.pth")
    writer.log(
        {
            "type": "eval",
            "iter": iteration,
            **{k: v for k, v in summary.items() if k in ("split", "metric", "mAP", "AP", "AP50", "AP75")},
        }
    )
    if write_file:
        (output / "eval.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    if not quiet:
        print(f"{summary['split']}: {summary['metric']} mAP = {summary['mAP']:.4f}", flush=True)
    return summary
