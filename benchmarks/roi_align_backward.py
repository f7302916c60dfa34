"""RoIAlign's backward on the CPU: torchvision's kernel against a channel-vectorised one.

Profiling one `make demo` training run (`quick` preset, tiny backbone) shows torchvision's CPU
``_roi_align_backward`` taking about a third of every training step: its kernel loops over every
(RoI, channel, bin, sample) and recomputes the bilinear weights for each channel. RoIAlign is linear
in its input with weights that do not depend on the channel, so its backward is one scatter-add of
``weight x grad_output`` rows, vectorised over channels (``index_add_`` on a channels-last view).
:class:`RoIAlignFastBackward` keeps torchvision's forward and computes that backward with the
kernel's own sampling rules (``aligned``, fixed ``sampling_ratio > 0``; it falls back to
torchvision's backward for the adaptive ``sampling_ratio <= 0``). The gradient is the same sum in
another order: equal up to float32 rounding, not bit for bit.

    python benchmarks/roi_align_backward.py                      # the demo's shapes
    python benchmarks/roi_align_backward.py --channels 256 --height 50 --width 68 --rois 512 --batch 2 --sampling-ratio 2

Prints the time of torchvision's backward and of this one, and the largest difference of the two
gradients. It changes nothing in iadet; it measures what moving RoIAlign's backward would save.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torchvision.ops import roi_align


def _sample_points(rois, spatial_scale, oh, ow, ratio, aligned, height, width):
    """Corner indices ``(K, P, S, 4)`` into ``H * W`` and weights ``(K, P, S, 4)`` (/count), as
    torchvision's ``roi_align_backward_kernel_impl`` and ``bilinear_interpolate_gradient`` compute them."""
    dev, dt = rois.device, rois.dtype
    offset = 0.5 if aligned else 0.0
    start_w = rois[:, 1] * spatial_scale - offset
    start_h = rois[:, 2] * spatial_scale - offset
    roi_w = rois[:, 3] * spatial_scale - offset - start_w
    roi_h = rois[:, 4] * spatial_scale - offset - start_h
    if not aligned:
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    bin_h, bin_w = roi_h / oh, roi_w / ow
    ph = torch.arange(oh, device=dev, dtype=dt)
    pw = torch.arange(ow, device=dev, dtype=dt)
    i = (torch.arange(ratio, device=dev, dtype=dt) + 0.5) / ratio
    # y: (K, oh, ratio), x: (K, ow, ratio)
    y = start_h[:, None, None] + (ph[None, :, None] + i[None, None, :]) * bin_h[:, None, None]
    x = start_w[:, None, None] + (pw[None, :, None] + i[None, None, :]) * bin_w[:, None, None]
    # broadcast to (K, oh, ow, ratio_y, ratio_x)
    y = y[:, :, None, :, None].expand(-1, oh, ow, ratio, ratio)
    x = x[:, None, :, None, :].expand(-1, oh, ow, ratio, ratio)
    outside = (y < -1.0) | (y > height) | (x < -1.0) | (x > width)
    y, x = y.clamp(min=0), x.clamp(min=0)
    y_low, x_low = y.floor().long(), x.floor().long()
    top_y, top_x = y_low >= height - 1, x_low >= width - 1
    y_low = torch.where(top_y, height - 1, y_low)
    x_low = torch.where(top_x, width - 1, x_low)
    y_high = torch.where(top_y, y_low, y_low + 1)
    x_high = torch.where(top_x, x_low, x_low + 1)
    y = torch.where(top_y, y_low.to(dt), y)
    x = torch.where(top_x, x_low.to(dt), x)
    ly, lx = y - y_low, x - x_low
    hy, hx = 1.0 - ly, 1.0 - lx
    count = max(ratio * ratio, 1)
    weights = torch.stack([hy * hx, hy * lx, ly * hx, ly * lx], -1) / count
    index = torch.stack(
        [y_low * width + x_low, y_low * width + x_high, y_high * width + x_low, y_high * width + x_high], -1
    )
    weights = weights.masked_fill(outside[..., None], 0.0)
    index = index.masked_fill(outside[..., None], 0)
    k = rois.shape[0]
    return index.reshape(k, oh * ow, ratio * ratio * 4), weights.reshape(k, oh * ow, ratio * ratio * 4)


class RoIAlignFastBackward(torch.autograd.Function):
    """``torchvision.ops.roi_align`` (forward unchanged) with a channel-vectorised backward."""

    @staticmethod
    def forward(ctx, input, rois, spatial_scale, oh, ow, sampling_ratio, aligned):
        ctx.save_for_backward(rois)
        ctx.args = (input.shape, spatial_scale, oh, ow, sampling_ratio, aligned)
        return roi_align(input, rois, (oh, ow), spatial_scale, sampling_ratio, aligned)

    @staticmethod
    def backward(ctx, grad_out):
        (rois,) = ctx.saved_tensors
        (b, c, h, w), spatial_scale, oh, ow, ratio, aligned = ctx.args
        if ratio <= 0:  # adaptive grid: a different sample count per RoI
            grad = torch.ops.torchvision._roi_align_backward(
                grad_out.contiguous(), rois, spatial_scale, oh, ow, b, c, h, w, ratio, aligned
            )
            return grad, None, None, None, None, None, None
        index, weights = _sample_points(rois, spatial_scale, oh, ow, ratio, aligned, h, w)
        index = index + (rois[:, 0].long() * (h * w))[:, None, None]
        g = grad_out.reshape(rois.shape[0], c, oh * ow).transpose(1, 2)  # (K, P, C)
        rows = (weights[..., None] * g[:, :, None, :]).reshape(-1, c)
        grad = torch.zeros(b * h * w, c, dtype=grad_out.dtype, device=grad_out.device)
        grad.index_add_(0, index.reshape(-1), rows)
        return grad.view(b, h, w, c).permute(0, 3, 1, 2).contiguous(), None, None, None, None, None, None


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
    args = p.parse_args(argv)

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
            y = RoIAlignFastBackward.apply(x, rois, *spec)
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
