"""The training loop's hooks (:class:`~iadet.engine.train_loop.HookBase`), in the order they run.

Method hooks — every method gets :class:`MethodClock`; the others a method asks for by name
(:meth:`~iadet.modeling.methods.RoIMethod.training_hooks`, built by :func:`method_hooks`):

* ``stages`` — :class:`StageSchedule`, A-Fast-RCNN's warm-up / ASDN pre-training / joint stages;
* ``adversary`` — :class:`AdversaryOptimizer`, the adversary's own SGD on its own losses;
* ``attention`` — :class:`AttentionRecording`, the attention of fixed RoIs for the IA paper's Fig. 5.

Loop hooks — :class:`MetricsLogger`, :class:`PeriodicEvaluation`, :class:`StopOnSignal`,
:class:`Checkpointer`.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import torch
from tqdm import tqdm

from iadet.engine import distributed as dist
from iadet.engine.attention_recording import AttentionRecorder
from iadet.engine.metrics import MetricsWriter
from iadet.engine.train_loop import HookBase
from iadet.errors import TrainingError
from iadet.modeling.methods import RoIMethod, adversary_parameters

# ----------------------------------------------------------------------------------------------
# what methods need


class MethodClock(HookBase):
    """Tells the method the iteration before each step (ramps, stages, which images are chosen)."""

    def before_step(self) -> None:
        self.trainer.method.start_iteration(self.trainer.iter, self.trainer.max_iters)


class StageSchedule(HookBase):
    """A-Fast-RCNN's stages: freezes the detector during ASDN pre-training; keeps the stage across resumes."""

    def before_step(self) -> None:
        self.trainer.trains_detector = self.trainer.method.trains_detector()

    def state_dict(self) -> dict[str, Any]:
        return {"extra": self.trainer.method.extra_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.trainer.method.load_extra_state(state.get("extra", {}))


class AdversaryOptimizer(HookBase):
    """The adversary's own SGD: its losses differentiated with respect to its parameters only.

    The gradients are taken right after the forward pass (before the detector's backward frees
    the graph or its update changes the weights the losses were computed with); the step follows
    the detector's. Under DDP the gradients are averaged over ranks.
    """

    def __init__(self, method: RoIMethod) -> None:
        self.params = adversary_parameters(method)
        self.optimizer = method.make_adversary_optimizer()
        self.grads: tuple[torch.Tensor | None, ...] | None = None

    def after_forward(self) -> None:
        losses = self.trainer.step.adversary_losses
        self.grads = None
        if not losses or not self.params:
            return
        loss = sum(losses.values())
        if loss.requires_grad:
            self.grads = torch.autograd.grad(
                loss, self.params, retain_graph=self.trainer.trains_detector, allow_unused=True
            )

    def after_step(self) -> None:
        if self.optimizer is None:
            return
        self.optimizer.zero_grad(set_to_none=True)
        if self.grads is not None:
            for p, g in zip(self.params, self.grads):
                p.grad = g if g is not None else torch.zeros_like(p)
        dist.average_gradients(self.params)
        self.optimizer.step()
        self.grads = None

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict() if self.optimizer is not None else {}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.optimizer is not None and state.get("optimizer"):
            self.optimizer.load_state_dict(state["optimizer"])


class AttentionRecording(HookBase):
    """Records the attention of fixed RoIs every ``method.save_attention_every`` iterations (Fig. 5)."""

    def __init__(self, model: torch.nn.Module, every: int, max_rois: int) -> None:
        self.recorder = AttentionRecorder(model, every=every, max_rois=max_rois)

    def before_step(self) -> None:
        self.recorder.start_iteration(self.trainer.iter, self.trainer.max_iters)

    def after_train(self) -> None:
        self.recorder.remove()

    def state_dict(self) -> dict[str, Any]:
        return {"extra": {"attention_evolution": self.recorder.state_dict()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        recorded = state.get("extra", {}).get("attention_evolution")
        if recorded is not None:
            self.recorder.load_state_dict(recorded)


def method_hooks(method: RoIMethod, model: torch.nn.Module) -> list[HookBase]:
    """The hooks ``method`` needs, on the unwrapped detector ``model``: the clock, then those it names."""
    hooks: list[HookBase] = [MethodClock()]
    for name in method.training_hooks():
        if name == "stages":
            hooks.append(StageSchedule())
        elif name == "adversary":
            hooks.append(AdversaryOptimizer(method))
        elif name == "attention":
            p = method.params
            hooks.append(AttentionRecording(model, p.save_attention_every, p.save_attention_rois))
        else:
            raise ValueError(f"{type(method).__name__} asks for an unknown training hook '{name}'")
    return hooks


# ----------------------------------------------------------------------------------------------
# what every run has


class MetricsLogger(HookBase):
    """Every ``log_every`` steps (and the last), one ``metrics.jsonl`` row: the loss terms averaged over
    DDP ranks, the learning rate, timings and the model's statistics; a tqdm bar on a terminal,
    a printed line otherwise (unless ``quiet``)."""

    def __init__(self, writer: MetricsWriter, log_every: int, *, quiet: bool, description: str) -> None:
        self.writer = writer
        self.log_every = max(log_every, 1)
        self.quiet = quiet
        self.description = description
        self.show_bar = dist.is_main() and not quiet and sys.stdout.isatty()
        self.bar: tqdm | None = None

    def before_train(self) -> None:
        t = self.trainer
        self.bar = tqdm(
            total=t.max_iters,
            initial=t.iter,
            desc="train",
            unit="it",
            disable=not self.show_bar,
            dynamic_ncols=True,
        )
        if dist.is_main() and not self.quiet and not self.show_bar:
            print(self.description, flush=True)

    def after_step(self) -> None:
        t, step = self.trainer, self.trainer.step
        self.bar.update(1)
        if t.iter % self.log_every and t.iter != t.max_iters:
            return
        if t.device.type == "cuda":
            torch.cuda.synchronize(t.device)
        terms = {"loss": step.loss, **step.losses, **step.adversary_losses}
        names = list(terms)
        # under DDP, log the mean over ranks (the loss of the whole global batch)
        values = dist.all_reduce_mean(torch.stack([terms[k].detach().float() for k in names])).tolist()
        row = {
            "type": "train",
            "iter": t.iter,
            "epoch": step.epoch,
            **dict(zip(names, values)),
            "lr": step.lr,
            "time": step.time,
            "data_time": step.data_time,
            **step.stats,
        }
        self.writer.log(row)
        self.bar.set_postfix(loss=f"{row['loss']:.3f}", refresh=False)
        if dist.is_main() and not self.quiet and not self.show_bar:
            print(
                f"iter {t.iter}/{t.max_iters} loss {row['loss']:.4f} lr {row['lr']:.2e} {step.time:.3f}s/it",
                flush=True,
            )

    def after_train(self) -> None:
        if self.bar is not None:
            self.bar.close()


class PeriodicEvaluation(HookBase):
    """Calls ``evaluate(iteration)`` every ``every`` steps before the last (the last is the caller's)."""

    def __init__(self, every: int, evaluate: Callable[[int], Any]) -> None:
        self.every = every
        self.evaluate = evaluate

    def after_step(self) -> None:
        t = self.trainer
        if self.every and t.iter % self.every == 0 and t.iter < t.max_iters:
            self.evaluate(t.iter)


class Interrupted(TrainingError):
    """SIGINT/SIGTERM during a phase that stops at once instead of at the end of a step (evaluation);
    the exit status is ``128 + signal``, as a shell reports a process killed by it."""

    def __init__(self, signum: int, message: str = "") -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(message or f"interrupted by {signal.Signals(signum).name}")


class SignalFlag:
    """Turns SIGINT/SIGTERM into a flag (installed for a whole run, set-up included); a second
    SIGINT stops at once, and so does any signal inside :meth:`immediate` (an evaluation)."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self.previous: dict[int, Any] = {}
        self.raise_now = False

    def __enter__(self) -> SignalFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.signal is not None and signum == signal.SIGINT and not self.raise_now:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.signal = signum
        if self.raise_now:
            self.raise_now = False
            raise Interrupted(signum)

    @contextlib.contextmanager
    def immediate(self) -> Iterator[None]:
        """Inside, a signal raises :class:`Interrupted` at once (as does one already received):
        for phases that cannot stop at a step's end and checkpoint, such as an evaluation."""
        if self.signal is not None:
            raise Interrupted(self.signal)
        self.raise_now = True
        try:
            yield
        finally:
            self.raise_now = False

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


class StopOnSignal(HookBase):
    """Ends the loop after the step during which SIGINT/SIGTERM arrived (on any DDP rank)."""

    def __init__(self, flag: SignalFlag) -> None:
        self.flag = flag

    def after_step(self) -> None:
        t = self.trainer
        if dist.any_true(self.flag.signal is not None, t.device):
            t.stop_requested = True


class Checkpointer(HookBase):
    """Writes the training checkpoint (atomically, through ``save``) every ``every`` steps, at the
    last step and when the loop is asked to stop; ``save(iteration, epoch, position)``. The saver
    refuses weights that are not finite (see the trainer), keeping the last good checkpoint."""

    def __init__(self, every: int, save: Callable[[int, int, int], None]) -> None:
        self.every = every
        self.save = save

    def after_step(self) -> None:
        t, step = self.trainer, self.trainer.step
        if t.stop_requested or (self.every and t.iter % self.every == 0) or t.iter >= t.max_iters:
            self.save(t.iter, step.epoch, step.position)
