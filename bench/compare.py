#!/usr/bin/env python3
"""fastmix against what users run today, in one run, on the same data.

    python bench/compare.py [--device cpu|cuda] [--quick] [--compile] [--json PATH]
                            [--only SECTION[,SECTION...]]

Mixup: NumPy (``lam * x + (1 - lam) * x[perm]``, CPU), PyTorch eager in the
fastai form (``torch.lerp(x[perm], x, lam)`` with per-sample lambdas drawn by
``torch.distributions.Beta``) and in the timm form (``x.mul_(lam).add_(
x.flip(0).mul_(1 - lam))``), and with --compile (default on CUDA) the same
under ``torch.compile``.  Loss: ``lam * F.cross_entropy(z, y1) + (1 - lam) *
F.cross_entropy(z, y2)`` forward and backward, and timm's soft-target path
(dense mixed targets, ``-(t * log_softmax(z)).sum(-1).mean()``).  Loss forms
(``--only loss-forms``): class weights with label smoothing under mixup
(``lam * F.cross_entropy(z, y1, weight=w, label_smoothing=0.1) + (1 - lam) *
...(y2)`` per sample, over the summed mixed weights), probability targets
(``F.cross_entropy(z, probs)``) and timm's mixed binary cross-entropy (dense
mixed smoothed target, then ``F.binary_cross_entropy_with_logits``, also with
``pos_weight``) against ``fastmix.torch.cross_entropy`` /
``binary_cross_entropy``, forward and backward.  CutMix: timm's
``Mixup`` (per-sample mode: a Python loop over the batch, one box copy or one
blend per sample) and torchvision's ``v2.CutMix`` (one box for the batch,
``roll``), the libraries themselves when installed, else their algorithms
written here (the row says which).  uint8 input: ``fastmix.torch.cutmix_u8``
(one pass: uint8 NHWC in, mixed, normalized NCHW float out) against
torchvision's ``v2.ToDtype`` + ``v2.Normalize`` + ``v2.MixUp`` (or the
same three steps in torch ops when torchvision is not installed).  Each row
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


def timm_elem_mix(x, mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5):
    """timm's Mixup._mix_elem (mode "elem", correct_lam): per sample, CutMix
    (box paste) or mixup (blend) with the flipped partner, in a Python loop."""
    b, _, h, w = x.shape
    x_orig = x.clone()
    use_cut = np.random.rand(b) < switch_prob
    lam = np.where(use_cut, np.random.beta(cutmix_alpha, cutmix_alpha, b),
                   np.random.beta(mixup_alpha, mixup_alpha, b)).astype(np.float32)
    for i in range(b):
        j = b - i - 1
        if use_cut[i]:
            r = np.sqrt(1 - lam[i])
            ch, cw = int(h * r), int(w * r)
            cy, cx = np.random.randint(0, h), np.random.randint(0, w)
            y0, y1 = np.clip(cy - ch // 2, 0, h), np.clip(cy + ch // 2, 0, h)
            x0, x1 = np.clip(cx - cw // 2, 0, w), np.clip(cx + cw // 2, 0, w)
            x[i][:, y0:y1, x0:x1] = x_orig[j][:, y0:y1, x0:x1]
            lam[i] = 1 - (y1 - y0) * (x1 - x0) / float(h * w)
        else:
            x[i] = x[i] * lam[i] + x_orig[j] * (1 - lam[i])
    return x, lam


def torchvision_cutmix(x, alpha=1.0):
    """torchvision.transforms.v2.CutMix's algorithm: one Beta draw and one
    box for the batch, partners by roll(1, 0), out of place."""
    _, _, h, w = x.shape
    lam = float(np.random.beta(alpha, alpha))
    r = np.sqrt(1.0 - lam)
    rh, rw = int(h * r), int(w * r)
    cy, cx = np.random.randint(0, h), np.random.randint(0, w)
    y0, y1 = max(cy - rh // 2, 0), min(cy + rh // 2, h)
    x0, x1 = max(cx - rw // 2, 0), min(cx + rw // 2, w)
    out = x.clone()
    out[..., y0:y1, x0:x1] = x.roll(1, 0)[..., y0:y1, x0:x1]
    return out, 1.0 - (x1 - x0) * (y1 - y0) / (w * h)


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


def weighted_two_ce(z, y, lam, perm, w, smoothing=0.1):
    """fastai's mixup loss with class weights and smoothing: per sample lam *
    CE(y1) + (1 - lam) * CE(y2) (``F.cross_entropy(weight=w, label_smoothing=)``,
    reduction "none"), over the summed mixed weights of the targets (PyTorch's
    weighted mean; what fastmix's "mean" computes)."""
    y2 = y[perm]
    loss = (lam * F.cross_entropy(z, y, weight=w, label_smoothing=smoothing, reduction="none")
            + (1 - lam) * F.cross_entropy(z, y2, weight=w, label_smoothing=smoothing,
                                          reduction="none"))
    return loss.sum() / (lam * w[y] + (1 - lam) * w[y2]).sum()


def timm_mixed_bce(z, y, lam, perm, num_classes, smoothing=0.1, pos_weight=None):
    """timm's BCE under mixup: the dense smoothed mixed one-hot target
    (``mixup_target``, per-sample lambdas and partners here), then
    ``F.binary_cross_entropy_with_logits`` (mean over the elements)."""
    off, on = smoothing / num_classes, 1.0 - smoothing + smoothing / num_classes
    y1 = torch.full((y.shape[0], num_classes), off, device=z.device).scatter_(1, y.view(-1, 1), on)
    y2 = torch.full((y.shape[0], num_classes), off, device=z.device).scatter_(
        1, y[perm].view(-1, 1), on)
    lam = lam.view(-1, 1)
    target = y1 * lam + y2 * (1.0 - lam)
    return F.binary_cross_entropy_with_logits(z, target, pos_weight=pos_weight)


SECTIONS = ("mixup", "cutmix", "u8", "loss", "overhead", "loss-forms")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions and smaller batches")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (default on CUDA)")
    ap.add_argument("--json", help="write the rows as JSON here")
    ap.add_argument("--only", help="comma-separated sections to run (default all): "
                    + ", ".join(SECTIONS))
    args = ap.parse_args()
    only = set(SECTIONS) if not args.only else set(args.only.split(","))
    if not only <= set(SECTIONS):
        ap.error(f"--only: unknown section(s) {', '.join(sorted(only - set(SECTIONS)))}; "
                 f"choose from {', '.join(SECTIONS)}")
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
    if dev == "cpu" and "mixup" in only:
        xn = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
        outn = np.empty_like(xn)
        t_fm_np = timer(dev, reps, lambda: fastmix.mixup(xn, 0.4, generator=g, out=outn))

        def numpy_mix():
            lam = np.random.beta(0.4, 0.4, b).astype(np.float32)
            lam = np.maximum(lam, 1 - lam).reshape(b, 1, 1, 1)
            perm = np.random.permutation(b)
            return lam * xn + (1 - lam) * xn[perm]
        table.add(case, "numpy", timer(dev, reps, numpy_mix), t_fm_np)
    if torch is not None and "mixup" in only:
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

    # ---- CutMix ------------------------------------------------------------
    if torch is not None and "cutmix" in only:
        case = f"cutmix+mixup per sample {'x'.join(map(str, shape))} float32"
        x = torch.randn(shape, device=dev)
        y = torch.randint(0, 1000, (b,), device=dev)
        xw = x.clone()
        t_fm = timer(dev, reps, lambda: fmt.cutmix(xw, mixup_alpha=0.8, cutmix_alpha=1.0,
                                                    pairing="flip", generator=g, inplace=True))
        try:
            from timm.data import Mixup as TimmMixup
            timm_fn = TimmMixup(mixup_alpha=0.8, cutmix_alpha=1.0, mode="elem", num_classes=1000)
            table.add(case + " in place", "timm Mixup (elem)", timer(dev, reps, lambda: timm_fn(xw, y)),
                      t_fm)
        except ImportError:
            table.add(case + " in place", "timm's loop (rewritten)",
                      timer(dev, reps, lambda: timm_elem_mix(xw)), t_fm)
        case = f"cutmix batch box {'x'.join(map(str, shape))} float32"
        t_fm = timer(dev, reps, lambda: fmt.CutMix(1.0, generator=g)(x, y))
        try:
            from torchvision.transforms import v2
            tv = v2.CutMix(alpha=1.0, num_classes=1000)
            table.add(case, "torchvision v2.CutMix", timer(dev, reps, lambda: tv(x, y)), t_fm)
        except ImportError:
            table.add(case, "torchvision's (rewritten)", timer(dev, reps, lambda: torchvision_cutmix(x)),
                      t_fm)

    # ---- uint8 in, mixed and normalized out ------------------------------------
    if torch is not None and "u8" in only:
        mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
        xu = torch.randint(0, 256, (b, 224, 224, 3), dtype=torch.uint8, device=dev)
        y = torch.randint(0, 1000, (b,), device=dev)
        case = f"uint8 {b}x224x224x3 -> mixup -> float32 NCHW"
        t_fm = timer(dev, reps, lambda: fmt.cutmix_u8(xu, mean, std, mixup_alpha=0.8,
                                                       cutmix_alpha=0.0, generator=g))
        m = torch.tensor(mean, device=dev).view(1, 3, 1, 1)
        s = torch.tensor(std, device=dev).view(1, 3, 1, 1)
        try:
            from torchvision.transforms import v2
            pipe = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])
            mix = v2.MixUp(alpha=0.8, num_classes=1000)
            table.add(case, "torchvision v2 (3 steps)",
                      timer(dev, reps, lambda: mix(pipe(xu.permute(0, 3, 1, 2)), y)), t_fm)
        except ImportError:
            def three_steps():
                t = xu.permute(0, 3, 1, 2).float() / 255.0       # ToDtype(scale=True)
                t = (t - m) / s                                  # Normalize
                lam = float(np.random.beta(0.8, 0.8))            # MixUp: one lambda, roll
                return t.roll(1, 0).mul_(1.0 - lam).add_(t.mul(lam))
            table.add(case, "torchvision's 3 steps (rewritten)", timer(dev, reps, three_steps),
                      t_fm)

    # ---- loss + gradient ------------------------------------------------------
    if torch is not None and "loss" in only:
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
    if torch is not None and "overhead" in only:
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

    # ---- loss forms: class weights, probability targets, binary (timm) ---------
    if torch is not None and "loss-forms" in only:
        shapes = [(256, 1000)] + ([] if args.quick else [(4096, 1000), (1024, 22000)])
        for n, c in shapes:
            r = min(reps, 5) if n * c > 2_000_000 else reps
            z = torch.randn(n, c, device=dev, requires_grad=True)
            y = torch.randint(0, c, (n,), device=dev)
            lam = torch.rand(n, device=dev)
            perm = torch.randperm(n, device=dev)
            target = fmt.MixedTarget(y, lam, perm)
            w = torch.rand(c, device=dev) + 0.5
            pw = torch.rand(c, device=dev) + 0.5
            probs = torch.softmax(torch.randn(n, c, device=dev), -1)

            def step(loss_fn):
                def run():
                    z.grad = None
                    loss_fn().backward()
                return run

            rows = [
                ("CE weight+smooth mixup", "torch eager (2xCE weight)",
                 lambda: fmt.cross_entropy(z, target, weight=w, label_smoothing=0.1),
                 lambda: weighted_two_ce(z, y, lam, perm, w, 0.1)),
                ("CE prob targets", "F.cross_entropy(z, probs)",
                 lambda: fmt.cross_entropy(z, probs),
                 lambda: F.cross_entropy(z, probs)),
                ("BCE mixup", "torch eager (timm BCE)",
                 lambda: fmt.binary_cross_entropy(z, target, label_smoothing=0.1),
                 lambda: timm_mixed_bce(z, y, lam, perm, c, 0.1)),
                ("BCE mixup pos_weight", "torch eager (timm BCE pw)",
                 lambda: fmt.binary_cross_entropy(z, target, label_smoothing=0.1, pos_weight=pw),
                 lambda: timm_mixed_bce(z, y, lam, perm, c, 0.1, pw)),
            ]
            for name, peer, fm_loss, peer_loss in rows:
                t_fm = timer(dev, r, step(fm_loss))
                table.add(f"{name} {n}x{c} float32", peer, timer(dev, r, step(peer_loss)), t_fm)

    if args.json:
        with open(args.json, "w") as f:
            json.dump(table.rows, f, indent=1)


if __name__ == "__main__":
    main()
