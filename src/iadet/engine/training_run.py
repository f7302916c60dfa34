"""``train()``: set a run up, resume it, run the loop, save and evaluate. Used by ``iadet train`` and ``compare``.

The loop itself is :class:`~iadet.engine.train_loop.Trainer` with hooks (:mod:`iadet.engine.hooks`);
this module builds them from a config::

    model           <- build_model(config.model, ...)
    method          <- iadet.attach(model, config.method, max_iters=...)   (RoI methods)
    data            <- TrainBatchSampler.iterate(epoch, batch) through a DataLoader
    hooks           <- the method's (attention recording) + metrics, evaluation,
                       signals, checkpoints

Everything that decides the next iteration is in ``checkpoint.pth``: model, optimiser,
scheduler, AMP scaler, the adversary and its optimiser, every RNG, and the position in the
data order (epoch, batch) — so ``--resume`` continues exactly, bit for bit on CPU in
deterministic mode. SIGINT/SIGTERM finish the current iteration, write a checkpoint and
return; a non-finite loss stops with the iteration and the loss terms, keeping the last good
checkpoint.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from iadet.config import Config, config_diff, save_config
from iadet.data.augmentations.base import ImageAugmentationParams, build_image_augmentation
from iadet.data.catalog import data_root, open_split
from iadet.data.dataset import DetectionDataset, ignore_signals_in_worker
from iadet.data.masks import mask_loader_for
from iadet.data.proposals import Proposals, load_proposals
from iadet.data.sampler import TrainBatchSampler
from iadet.engine import distributed as dist
from iadet.engine.checkpoint import (
    FORMAT,
    VERSION,
    load_file,
    load_scaler_state,
    method_section,
    resume_rng_state,
    rng_state,
    save_atomic,
    set_rng_state,
)
from iadet.engine.determinism import seed_everything, set_determinism
from iadet.engine.hooks import Checkpointer, MetricsLogger, PeriodicEvaluation, StopOnSignal
from iadet.engine.inference import evaluate_split
from iadet.engine.metrics import MetricsWriter
from iadet.engine.output_lock import OutputLock
from iadet.engine.rank_shards import PositionedSamples, RankShards, collate_positioned
from iadet.engine.schedule import lr_factor, schedule_length
from iadet.engine.signals import Interrupted, SignalFlag
from iadet.engine.train_loop import LoadedBatch, NonFiniteLoss, Trainer
from iadet.errors import ConfigError, TrainingError
from iadet.modeling.attach import attach
from iadet.modeling.detector import build_model
from iadet.modeling.methods import RoIMethod
from iadet.serialization import remove_stale_temporaries, save_json_atomic

# keys that do not change what is computed: a resume may change them without --force
OPERATIONAL_KEYS = {
    "data.num_workers",
    "data.max_image_pixels",  # limits on the input, not what is computed from it
    "data.follow_symlinks",
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


def resolve_config(config: Config) -> tuple[Config, Any]:
    """Fill in what the data decides (the class names); open the train split."""
    root = data_root(config.data) if dist.is_main() else None
    dist.barrier()
    root = data_root(config.data) if root is None else root
    split = open_split(root, config.data.train_split, fmt=config.data.format, classes=config.data.classes)
    config.data.classes = list(split.classes)
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
    with OutputLock(output, enabled=main), SignalFlag() as stop:
        return _Run(config, output, device, stop, resume=resume, force=force, quiet=quiet).run()


class _Run:
    """One training run: set-up (or resume), the loop, the final model and evaluation."""

    def __init__(
        self,
        config: Config,
        output: Path,
        device: torch.device,
        stop: SignalFlag,
        *,
        resume: bool,
        force: bool,
        quiet: bool,
    ) -> None:
        self.output, self.device, self.stop, self.quiet = output, device, stop, quiet
        self.main = dist.is_main()
        self.ckpt_path = output / "checkpoint.pth"
        if self.main:  # under the output lock: no other run is writing here
            remove_stale_temporaries(output, (self.ckpt_path.name, "model_final.pth"))
        checkpoint = self._open_checkpoint(resume)
        self.config, self.train_split = resolve_config(config)
        batch, images = self.config.train.batch_size, len(self.train_split)
        if batch > images:
            raise ConfigError(
                f"train.batch_size={batch} is larger than the training split "
                f"{self.train_split.name} ({images} images): use at most {images}"
            )
        if checkpoint is not None:
            self._check_resumable(checkpoint, force)
        if self.main:
            save_config(self.config, output / "config.yaml")
        self.checkpoint = checkpoint

    # --- set-up -----------------------------------------------------------------------------
    def _open_checkpoint(self, resume: bool) -> dict[str, Any] | None:
        if resume:
            if not self.ckpt_path.is_file():
                raise TrainingError(f"{self.output}: nothing to resume (no checkpoint.pth)")
            checkpoint = load_file(self.ckpt_path)
            if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
                raise TrainingError(f"{self.ckpt_path}: not an iadet training checkpoint")
            return checkpoint
        if self.ckpt_path.exists() or (self.output / "model_final.pth").exists():
            raise TrainingError(
                f"{self.output} already holds a training run; pass --resume to continue it, or choose another --output"
            )
        return None

    def _check_resumable(self, checkpoint: dict[str, Any], force: bool) -> None:
        saved = Config.from_dict(checkpoint["config"], origin=str(self.ckpt_path)).to_dict()
        diff = [k for k in config_diff(saved, self.config.to_dict()) if k not in OPERATIONAL_KEYS]
        if diff and not force:
            raise TrainingError(
                f"--resume with a different config than the checkpoint's: {', '.join(diff)} (pass --force to resume anyway)"
            )

    def run(self) -> TrainResult:
        config, tcfg, device = self.config, self.config.train, self.device
        world = dist.world_size()
        if tcfg.batch_size % world:
            raise TrainingError(
                f"train.batch_size={tcfg.batch_size} is not divisible by the {world} processes"
            )
        set_determinism(tcfg.deterministic, device)
        seed_everything(tcfg.seed)

        self.proposals = _open_proposals(config, self.train_split)
        num_classes = len(self.train_split.classes) + 1
        sampler = TrainBatchSampler(
            [r.aspect_ratio for r in self.train_split.records],
            tcfg.batch_size,
            seed=tcfg.seed,
            group_by_aspect_ratio=config.data.aspect_ratio_grouping,
            flip=config.data.flip,
        )
        iters_per_epoch = len(sampler)
        max_iters = schedule_length(tcfg, iters_per_epoch)
        model, method = self._model_and_method(num_classes, max_iters)
        seed_everything(tcfg.seed + dist.rank())

        optimizer, scheduler, scaler, use_amp = self._optimisation(model, iters_per_epoch)
        hooks = method.training_hooks(model)

        checkpoint = self.checkpoint
        start_iter, start_epoch, start_batch = (
            (0, 0, 0)
            if checkpoint is None
            else self._restore(checkpoint, model, optimizer, scheduler, scaler)
        )

        self.model = model
        if world > 1:
            model = nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )
        self.writer = MetricsWriter(self.output, enabled=self.main)
        if checkpoint is not None:
            self.writer.truncate_after(start_iter)
        description = f"training {config.method.name} for {max_iters} iterations ({iters_per_epoch}/epoch) in {self.output}"
        hooks += [
            MetricsLogger(self.writer, tcfg.log_every, quiet=self.quiet, description=description),
            PeriodicEvaluation(tcfg.eval_every, lambda it: self._evaluate(it, write_file=False)),
            StopOnSignal(self.stop),
            Checkpointer(tcfg.checkpoint_every, self._save_checkpoint),
        ]
        data = self._batches(sampler, start_epoch, start_batch, max_iters)
        self.trainer = Trainer(
            model,
            method,
            optimizer,
            scheduler,
            scaler,
            data,
            device=device,
            max_iters=max_iters,
            start_iter=start_iter,
            use_amp=use_amp,
            clip_grad_norm=tcfg.clip_grad_norm,
            hooks=hooks,
        )
        if checkpoint is not None:
            self.trainer.load_method_state(method_section(checkpoint))
        try:
            self.trainer.train()
        except NonFiniteLoss as exc:
            kept = (
                f"the last good checkpoint {self.ckpt_path} is kept"
                if self.ckpt_path.exists()
                else "no checkpoint yet"
            )
            raise TrainingError(f"{exc}; {kept}") from None
        finally:
            data.close()
        return self._finish()

    def _model_and_method(self, num_classes: int, max_iters: int) -> tuple[nn.Module, RoIMethod]:
        """The detector with its method attached, on the run's device."""
        config = self.config
        model = build_model(config.model, num_classes)
        # the public way in (iadet.attach), as in a user's own loop. The image-space baselines act in
        # the data pipeline (_dataset); their detector gets the identity method, so that it trains
        # through the same heads as the baseline `none` (on the CPU: the same deterministic RoIAlign
        # backward) and comparisons differ in the data only
        method = attach(
            model,
            RoIMethod(config.method) if isinstance(config.method, ImageAugmentationParams) else config.method,
            max_iters=max_iters,
        )
        model.to(self.device)
        method.to(self.device)
        return model, method

    def _optimisation(
        self, model: nn.Module, iters_per_epoch: int
    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR, torch.amp.GradScaler, bool]:
        """SGD on the detector's trainable parameters, its schedule, and the AMP scaler (CUDA only)."""
        tcfg = self.config.train
        optimizer = torch.optim.SGD(
            [p for p in model.parameters() if p.requires_grad],
            lr=tcfg.lr,
            momentum=tcfg.momentum,
            weight_decay=tcfg.weight_decay,
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(tcfg, iters_per_epoch))
        use_amp = tcfg.amp and self.device.type == "cuda"
        return optimizer, scheduler, torch.amp.GradScaler("cuda", enabled=use_amp), use_amp

    def _restore(
        self,
        checkpoint: dict[str, Any],
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        scaler: torch.amp.GradScaler,
    ) -> tuple[int, int, int]:
        """Load a checkpoint's model, optimiser, scheduler, scaler and RNG states; ``(iteration, epoch,
        batch in epoch)`` to continue from (the method's state is loaded by the trainer)."""
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        load_scaler_state(scaler, checkpoint["scaler"])  # a CPU run's is empty: fresh on a GPU
        progress = checkpoint["progress"]
        rng, warning = resume_rng_state(checkpoint["rng"], dist.rank(), dist.world_size())
        if warning and self.main:
            print(f"iadet: warning: {self.ckpt_path}: {warning}", file=sys.stderr, flush=True)
        if rng is None:  # a rank the saved run did not have
            seed_everything(self.config.train.seed + dist.rank())
        else:
            set_rng_state(rng)
        return int(progress["iteration"]), int(progress["epoch"]), int(progress["batch_in_epoch"])

    def _batches(
        self, sampler: TrainBatchSampler, epoch: int, batch: int, max_iters: int
    ) -> Iterator[LoadedBatch]:
        """The sampler's batches from ``(epoch, batch)`` on, loaded by one DataLoader, each with its position."""
        rank, world = dist.rank(), dist.world_size()
        loader = DataLoader(
            PositionedSamples(self._dataset()),
            batch_sampler=RankShards(sampler, epoch, batch, rank, world, max_iters),
            num_workers=self.config.data.num_workers,
            collate_fn=collate_positioned,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator(),  # never draw from the global RNG (exact resume)
            worker_init_fn=ignore_signals_in_worker,
        )
        yield from loader

    def _dataset(self) -> DetectionDataset:
        split, config = self.train_split, self.config
        return DetectionDataset(
            split.records,
            train=True,
            use_difficult=config.data.use_difficult,
            mask_loader=mask_loader_for(split) if config.model.detector == "mask_rcnn" else None,
            proposals=self.proposals.for_record if self.proposals is not None else None,
            augment=build_image_augmentation(config.method),
        )

    # --- outputs ----------------------------------------------------------------------------
    def _save_checkpoint(self, iteration: int, epoch: int, batch_in_epoch: int) -> None:
        """Every rank calls it (two collectives: the RNG states, the weight check); rank 0 writes."""
        rngs = dist.all_gather_object(rng_state())
        self._check_finite_weights(f"iteration {iteration}")
        if not self.main:
            return
        t = self.trainer
        state = {
            "format": FORMAT,
            "version": VERSION,
            "model": self.model.state_dict(),
            "optimizer": t.optimizer.state_dict(),
            "scheduler": t.scheduler.state_dict(),
            "scaler": t.scaler.state_dict(),
            "method": t.method_state(),
            "progress": {"iteration": iteration, "epoch": epoch, "batch_in_epoch": batch_in_epoch},
            "rng": rngs if dist.world_size() > 1 else rngs[0],
            "config": self.config.to_dict(),
            "classes": list(self.train_split.classes),
        }
        save_atomic(state, self.ckpt_path)

    def _check_finite_weights(self, when: str) -> None:
        """Refuse to save weights holding NaN or infinity (the last good checkpoint stays).

        Collective: every rank checks its own weights and learns every other rank's verdict, so all
        raise together. (Were only rank 0 to raise, the others would wait for it in their next
        collective until ``IADET_DIST_TIMEOUT``.)
        """
        bad = next(
            (
                name
                for name, value in self.model.state_dict().items()
                if value.is_floating_point() and not bool(torch.isfinite(value).all())
            ),
            None,
        )
        verdicts = dist.all_gather_object(bad)
        culprit = next(((rank, name) for rank, name in enumerate(verdicts) if name is not None), None)
        if culprit is None:
            return
        rank, name = culprit
        where = f" on rank {rank}" if len(verdicts) > 1 else ""
        kept = "the last good checkpoint is kept" if self.ckpt_path.exists() else "none saved"
        raise TrainingError(
            f"the weights are not finite at {when} ({name} holds NaN or infinity{where}): "
            f"not saved, {kept}; lower train.lr or set train.clip_grad_norm"
        )

    def _finish(self) -> TrainResult:
        t = self.trainer
        if t.interrupted:
            self.writer.close()
            if self.main:
                print(
                    f"iadet: interrupted at iteration {t.iter}/{t.max_iters}; checkpoint saved to {self.ckpt_path}.\n"
                    f"Resume with: iadet train --config {self.output / 'config.yaml'} --output {self.output} --resume",
                    file=sys.stderr,
                    flush=True,
                )
            return TrainResult(self.output, t.iter, interrupted=True)
        self._check_finite_weights("the end of training")  # collective: every rank raises
        if self.main:
            save_atomic(self.model.state_dict(), self.output / "model_final.pth")
        evaluation = None
        if self.config.train.eval_at_end:
            try:
                evaluation = self._evaluate(t.iter, write_file=True)
            except Interrupted as exc:
                raise Interrupted(
                    exc.signum,
                    f"{exc} during the final evaluation; {self.output / 'model_final.pth'} is saved, "
                    f"eval.json is not (iadet eval --checkpoint {self.output / 'model_final.pth'} writes it)",
                ) from None
        self.writer.close()
        dist.barrier()
        return TrainResult(self.output, t.iter, interrupted=False, evaluation=evaluation)

    def _evaluate(self, iteration: int, *, write_file: bool) -> dict[str, Any] | None:
        config = self.config
        try:
            with self.stop.immediate():  # a signal stops an evaluation at once, not when it ends
                _, _, summary = evaluate_split(
                    self.model,
                    config,
                    config.data.test_split,
                    self.device,
                    progress=self.main and not self.quiet and sys.stdout.isatty(),
                    proposals=self.proposals,
                )
        except Interrupted:
            if write_file:
                raise
            return None  # a periodic evaluation: the loop stops after this step and checkpoints
        if summary is None:
            return None
        summary["checkpoint"] = str(self.output / "model_final.pth")
        self.writer.log(
            {
                "type": "eval",
                "iter": iteration,
                **{k: v for k, v in summary.items() if k in ("split", "metric", "mAP", "AP", "AP50", "AP75")},
            }
        )
        if write_file:
            save_json_atomic(summary, self.output / "eval.json")
        if not self.quiet:
            print(f"{summary['split']}: {summary['metric']} mAP = {summary['mAP']:.4f}", flush=True)
        return summary


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
