"""RoIAlign's backward on the CPU: torchvision's kernel against a channel-vectorised one.

Profiling one `make demo` training run (`quick` preset, tiny backbone) shows torchvision's CPU
``_roi_align_backward`` taking about a third of every training step: its kernel loops over every
(RoI, channel, bin, sample) and recomputes the bilinear weights for each channel. RoIAlign is linear
in its input with weights that do not depend on the channel, so its backward is one scatter-add of
``weight x grad_output`` rows, vectorised over channels (``index_add_`` on a channels-last view).
:class:`~iadet.modeling.roi_align.RoIAlignFunction` keeps torchvision's forward and computes that backward with the
kernel's own sampling rules (``aligned``, fixed ``sampling_ratio > 0``; it falls back to
torchvision's backward for the adaptive ``sampling_ratio <= 0``). The gradient is the same sum in
another order: equal up to float32 rounding, not bit for bit. iadet's training uses it on the CPU
(``iadet.modeling.roi_align``); this script measures it against torchvision's.

    python benchmarks/roi_align_backward.py                      # the demo's shapes
    python benchmarks/roi_align_backward.py --channels 256 --height 50 --width 68 --rois 512 --batch 2 --sampling-ratio 2
    python benchmarks/roi_align_backward.py --train 40 --rounds 3   # whole training steps of the quick preset

``--train N`` times whole training iterations of the ``quick`` preset (``make demo``'s runs, method
``none`` and ``ia``), torchvision's pooling and iadet's alternated round by round, so machine load
hits both alike; it prints the median seconds per iteration and their ratio.

Prints the time of torchvision's backward and of iadet's, and the largest difference of the two
gradients.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torchvision.ops import roi_align

from iadet.modeling.roi_align import RoIAlignFunction


def train_steps(iterations: int, rounds: int, skip: int = 3) -> None:
    """Median seconds per training iteration of the quick preset, torchvision's RoIAlign backward vs iadet's."""
    import tempfile
    from pathlib import Path

    from iadet.config import load_config
    from iadet.engine.metrics import read_metrics
    from iadet.engine.training_run import train
    from iadet.modeling import roi_heads

    ours = roi_heads.pool_box_features
    times: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for method in ("none", "ia"):
                for pooling in ("torchvision", "iadet"):
                    roi_heads.pool_box_features = ours if pooling == "iadet" else (lambda pool, *a: pool(*a))
                    out = Path(tmp) / f"{method}-{pooling}-{r}"
                    overrides = [f"method.name={method}", f"train.max_iters={iterations}", f"train.seed={r}"]
                    overrides += ["train.eval_at_end=false", "train.checkpoint_every=0", "train.log_every=1"]
                    train(load_config("quick", overrides), out, quiet=True)
                    rows = [
                        x["time"] for x in read_metrics(out / "metrics.jsonl") if x.get("type") == "train"
                    ]
                    times.setdefault((method, pooling), []).extend(rows[skip:])
    roi_heads.pool_box_features = ours
    print(
        f"quick preset training, {iterations} iterations x {rounds} rounds, {torch.get_num_threads()} threads"
    )
    for method in ("none", "ia"):
        before = statistics.median(times[(method, "torchvision")])
        after = statistics.median(times[(method, "iadet")])
        print(
            f"  {method:<5} torchvision {before:.3f} s/iter, iadet {after:.3f} s/iter ({before / after:.2f}x faster)"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # the demo: quick preset, tiny backbone (128 channels, stride 8), 4 images ~160x220, 64 RoIs each
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--channels", type=int, default=128)
    p.add_argument("--height", type=int, default=20)
    p.add_argument("--width", type=int, default=28)
    p.add_argument("--rois", type=int, default=64, help="per image")
    p.add_argument("--scale", type=float, default=1 / 8)
    p.add_argument("--sampling-ratio", type=int, default=1)
    p.add_argument("--aligned", action="store_true")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--train", type=int, default=0, metavar="N", help="time N training iterations instead")
    p.add_argument("--rounds", type=int, default=3, help="--train: alternations of the two")
    args = p.parse_args(argv)
    if args.train:
        train_steps(args.train, args.rounds)
        return 0

    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(args.batch, args.channels, args.height, args.width, generator=gen)
    boxes = []
    for i in range(args.batch):
        xy = torch.rand(args.rois, 2, generator=gen) * torch.tensor([args.width, args.height]) / args.scale
        wh = (
            torch.rand(args.rois, 2, generator=gen)
            * 0.6
            * torch.tensor([args.width, args.height])
            / args.scale
        )
        boxes.append(torch.cat([torch.full((args.rois, 1), float(i)), xy - wh / 4, xy + wh], 1))
    rois = torch.cat(boxes)
    rois[:5, 1:] = torch.tensor([-30.0, -30.0, 1e4, 1e4])  # partly outside the image: the edge rules
    grad_out = torch.randn(len(rois), args.channels, 7, 7, generator=gen)
    spec = (args.scale, 7, 7, args.sampling_ratio, args.aligned)

    def step(fast: bool) -> tuple[torch.Tensor, float]:
        x = feats.clone().requires_grad_(True)
        if fast:
            y = RoIAlignFunction.apply(x, rois, *spec)
        else:
            y = roi_align(x, rois, (7, 7), args.scale, args.sampling_ratio, args.aligned)
        start = time.perf_counter()
        y.backward(grad_out)
        return x.grad, time.perf_counter() - start

    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.repeats):
        for fast in (False, True):
            grad, t = step(fast)
            times[fast].append(t)
    ref, fast = step(False)[0], step(True)[0]
    diff = (ref - fast).abs().max().item()
    rel = diff / ref.abs().max().item()
    print(
        f"RoIAlign backward, {len(rois)} RoIs, features {tuple(feats.shape)}, sampling_ratio {args.sampling_ratio}, "
        f"aligned {args.aligned}, {torch.get_num_threads()} threads:\n"
        f"  torchvision {1e3 * statistics.median(times[False]):.1f} ms, channel-vectorised "
        f"{1e3 * statistics.median(times[True]):.1f} ms "
        f"({statistics.median(times[False]) / statistics.median(times[True]):.1f}x); "
        f"max |difference| {diff:.2e} ({rel:.1e} of the largest gradient)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
