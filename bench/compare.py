#!/usr/bin/env python3
"""fastmix against what users run today, in one run, on the same data.

    python bench/compare.py [--device cpu|cuda] [--quick] [--compile] [--json PATH]

Mixup: NumPy (``lam * x + (1 - lam) * x[perm]``, CPU), PyTorch eager in the
fastai form (``torch.lerp(x[perm], x, lam)`` with per-sample lambdas drawn by
``torch.distributions.Beta``) and in the timm form (``x.mul_(lam).add_(
x.flip(0).mul_(1 - lam))``), and with --compile (default on CUDA) the same
under ``torch.compile``.  Loss: ``lam * F.cross_entropy(z, y1) + (1 - lam) *
F.cross_entropy(z, y2)`` forward and backward, and timm's soft-target path
(dense mixed targets, ``-(t * log_softmax(z)).sum(-1).mean()``).  Each row
prints the median times and the ratio peer / fastmix (> 1: fastmix is faster).
The last line is the training-step overhead: mix + loss + gradient of a
256x3x224x224 batch with 1000 classes.

Timing: median of repeated runs after a warm-up; on CUDA with events around
each run (the work is queued on the current stream).  Shared machines are
noisy: read the ratios, measured side by side, not the absolute times.
"""
import argparse
import json
import statistics
import sys
import time

import numpy as np

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # NumPy-only comparison
    torch = None

import fastmix

if torch is not None:
    import fastmix.torch as fmt


def timer(device, reps, fn):
    """Median and min seconds of fn() over reps runs after one warm-up."""
    fn()
    times = []
    for _ in range(reps):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


class Table:
    def __init__(self, device):
        self.device, self.rows = device, []
        print(f"{'case':<44} {'peer':<26} {'peer ms':>9} {'fastmix ms':>11} {'ratio':>7}")

    def add(self, case, peer, t_peer, t_fm):
        ratio = t_peer[0] / t_fm[0]
        self.rows.append(dict(case=case, peer=peer, device=self.device, peer_median_s=t_peer[0],
                              peer_min_s=t_peer[1], fastmix_median_s=t_fm[0],
                              fastmix_min_s=t_fm[1], ratio=ratio))
        print(f"{case:<44} {peer:<26} {1e3 * t_peer[0]:9.3f} {1e3 * t_fm[0]:11.3f} {ratio:6.2f}x",
              flush=True)


def fastai_mix(x, alpha, gen):
    """fastai v1's MixUp: per-sample Beta weights, folded, gathered partners, lerp."""
    b = x.shape[0]
    lam = torch.distributions.Beta(alpha, alpha).sample((b,)).to(x.device)
    lam = torch.stack([lam, 1 - lam], 1).max(1)[0]
    perm = torch.randperm(b, device=x.device, generator=gen)
    shape = (b,) + (1,) * (x.dim() - 1)
    return torch.lerp(x[perm], x, lam.view(shape).to(x.dtype)), lam, perm


def timm_mix(x, lam):
    """timm's Mixup, batch mode: one lambda, flipped batch, in place."""
    return x.mul_(lam).add_(x.flip(0).mul_(1.0 - lam))


def two_ce(z, y, lam, perm):
    return (lam * F.cross_entropy(z, y, reduction="none")
            + (1 - lam) * F.cross_entropy(z, y[perm], reduction="none")).mean()


def soft_target_ce(z, y, lam, num_classes, smoothing=0.1):
    """timm: dense smoothed one-hot targets of the flipped pairs, then SoftTargetCrossEntropy."""
    off, on = smoothing / num_classes, 1.0 - smoothing + smoothing / num_classes
    y1 = torch.full((y.shape[0], num_classes), off, device=z.device).scatter_(1, y.view(-1, 1), on)
    y2 = torch.full((y.shape[0], num_classes), off, device=z.device).scatter_(1, y.flip(0).view(-1, 1), on)
    target = y1 * lam + y2 * (1.0 - lam)
    return torch.sum(-target * F.log_softmax(z, dim=-1), dim=-1).mean()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions and smaller batches")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (default on CUDA)")
    ap.add_argument("--json", help="write the rows as JSON here")
    args = ap.parse_args()
    dev = args.device
    if dev == "cuda" and (torch is None or not torch.cuda.is_available()):
        sys.exit("compare.py: --device cuda needs PyTorch with a CUDA device")
    use_compile = args.compile or dev == "cuda"
    reps = 5 if args.quick else (30 if dev == "cuda" else 10)
    if torch is not None:
        torch.manual_seed(0)
        gen = torch.Generator(device=dev).manual_seed(0)
    name = torch.cuda.get_device_name() if dev == "cuda" else f"CPU, {torch.get_num_threads() if torch else '?'} threads"
    print(f"compare.py: fastmix {fastmix.__version__} on {name}" +
          (f", torch {torch.__version__}" if torch else "") + f", numpy {np.__version__}")
    table = Table(dev)
    g = fastmix.Generator(0)

    # ---- mixup -------------------------------------------------------------
    b = 64 if args.quick else 256
    shape = (b, 3, 224, 224)
    case = f"mixup {'x'.join(map(str, shape))} float32"
    if dev == "cpu":
        xn = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
        outn = np.empty_like(xn)
        t_fm_np = timer(dev, reps, lambda: fastmix.mixup(xn, 0.4, generator=g, out=outn))

        def numpy_mix():
            lam = np.random.beta(0.4, 0.4, b).astype(np.float32)
            lam = np.maximum(lam, 1 - lam).reshape(b, 1, 1, 1)
            perm = np.random.permutation(b)
            return lam * xn + (1 - lam) * xn[perm]
        table.add(case, "numpy", timer(dev, reps, numpy_mix), t_fm_np)
    if torch is not None:
        x = torch.randn(shape, device=dev)
        xw = x.clone()
        t_fm = timer(dev, reps, lambda: fmt.mixup(x, 0.4, generator=g))
        table.add(case, "torch eager (fastai)", timer(dev, reps, lambda: fastai_mix(x, 0.4, gen)), t_fm)
        t_fm_inplace = timer(dev, reps, lambda: fmt.mixup(xw, 0.4, generator=g, inplace=True))
        table.add(case + " in place", "torch eager (timm)", timer(dev, reps, lambda: timm_mix(xw, 0.7)),
                  t_fm_inplace)
        if use_compile:
            cmix = torch.compile(lambda t, lam, perm: torch.lerp(t[perm], t, lam.view(-1, 1, 1, 1)))
            lam = torch.rand(b, device=dev)
            perm = torch.randperm(b, device=dev)
            table.add(case, "torch.compile (fastai)", timer(dev, reps, lambda: cmix(x, lam, perm)), t_fm)

    # ---- loss + gradient ------------------------------------------------------
    if torch is not None:
        shapes = [(256, 1000), (4096, 1000)] + ([] if args.quick or dev == "cpu" else [(4096, 32000)])
        for n, c in shapes:
            for dt in ([torch.float32, torch.bfloat16] if dev == "cuda" else [torch.float32]):
                z = torch.randn(n, c, device=dev, dtype=dt, requires_grad=True)
                y = torch.randint(0, c, (n,), device=dev)
                lam = torch.rand(n, device=dev)
                perm = torch.randperm(n, device=dev)
                target = fmt.MixedTarget(y, lam, perm)

                def fm_step():
                    z.grad = None
                    fmt.cross_entropy(z, target).backward()

                def eager_step():
                    z.grad = None
                    two_ce(z.float() if dt != torch.float32 else z, y, lam, perm).backward()

                def timm_step():
                    z.grad = None
                    soft_target_ce(z.float() if dt != torch.float32 else z, y, lam.mean(), c).backward()

                t_fm = timer(dev, reps, fm_step)
                label = f"loss+grad {n}x{c} {str(dt).replace('torch.', '')}"
                table.add(label, "torch eager (2 x CE)", timer(dev, reps, eager_step), t_fm)
                table.add(label, "torch eager (timm soft)", timer(dev, reps, timm_step), t_fm)
                if use_compile:
                    cstep = torch.compile(lambda zz: two_ce(zz.float(), y, lam, perm))

                    def compiled_step():
                        z.grad = None
                        cstep(z).backward()
                    table.add(label, "torch.compile (2 x CE)", timer(dev, reps, compiled_step), t_fm)

        # ---- the training-step overhead -------------------------------------
        n, c = b, 1000
        x = torch.randn(shape, device=dev)
        z = torch.randn(n, c, device=dev, requires_grad=True)
        y = torch.randint(0, c, (n,), device=dev)

        def fm_overhead():
            z.grad = None
            xm, tgt = fmt.MixUp(0.4, generator=g)(x, y)
            fmt.cross_entropy(z, tgt).backward()

        def eager_overhead():
            z.grad = None
            xm, lam, perm = fastai_mix(x, 0.4, gen)
            two_ce(z, y, lam, perm).backward()
        t_fm = timer(dev, reps, fm_overhead)
        table.add(f"training-step overhead {'x'.join(map(str, shape))}, {c} classes",
                  "torch eager (fastai)", timer(dev, reps, eager_overhead), t_fm)
        if use_compile:
            cmix = torch.compile(lambda t, lam, perm: torch.lerp(t[perm], t, lam.view(-1, 1, 1, 1)))
            closs = torch.compile(lambda zz, lam, perm: two_ce(zz, y, lam, perm))

            def compiled_overhead():
                z.grad = None
                lam = torch.rand(n, device=dev)
                perm = torch.randperm(n, device=dev)
                cmix(x, lam, perm)
                closs(z, lam, perm).backward()
            table.add(f"training-step overhead {'x'.join(map(str, shape))}, {c} classes",
                      "torch.compile (fastai)", timer(dev, reps, compiled_overhead), t_fm)

    if args.json:
        with open(args.json, "w") as f:
            json.dump(table.rows, f, indent=1)


if __name__ == "__main__":
    main()
