"""A drop-in for ``timm.data.Mixup`` (mixup and CutMix), keeping timm's name:

    mixup_fn = fastmix.timm.Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1,
                                  num_classes=1000)
    x, target = mixup_fn(x, target)      # x mixed in place, target dense soft targets

Built on fastmix's fused CutMix/mixup kernel and soft targets; needs PyTorch.
"""
from __future__ import annotations

from typing import Optional

from torch import Tensor

import fastmix as _fm
from ._args import LAYOUTS, check_mix_config
from ._args import cut_config as _cut_config
from ._generators import AnyGenerator as _Generator
from ._lib import raise_invalid
from ._torch_functional import images_view as _images_view

__all__ = ["Mixup"]


class Mixup:
    """A drop-in for ``timm.data.Mixup``: ``x, target = mixup_fn(x, target)``
    mixes x in place and returns dense, smoothed soft targets ``(batch,
    num_classes)`` (float32), as timm does.

    timm's arguments and semantics: no fold, FLIP pairing (sample i with
    batch - 1 - i), an even batch, and ``mode`` "batch" (one draw for the
    batch), "pair" (one per pair i, batch - 1 - i) or "elem" (one per
    sample).  With probability ``prob`` a draw mixes (else lambda 1, the
    sample unchanged): mixup with lambda ~ Beta(mixup_alpha, mixup_alpha),
    or CutMix (``cutmix_alpha > 0`` or ``cutmix_minmax``; with both enabled
    CutMix with probability ``switch_prob``), which pastes the partner's
    pixels inside a box (timm's ``rand_bbox``, or ``rand_bbox_minmax`` for
    ``cutmix_minmax``, where timm sets cutmix_alpha to 1) and, with
    ``correct_lam`` or ``cutmix_minmax``, makes lambda ``1 - box area /
    (H * W)``.  CutMix needs x of shape (batch, channels, height, width) (or
    (batch, height, width)); a channels-last x is mixed in its own memory
    format.  Mixup alone takes any shape with the batch first.  The soft targets are
    ``(1 - eps) * (lam * onehot(y1) + (1 - lam) * onehot(y2)) + eps /
    num_classes``, from ``fastmix_soft_targets``.  The last call's draw is
    kept in ``self.lambdas``, ``self.partners`` (an unmixed sample is its own
    partner) and ``self.boxes`` (``fastmix.cutmix_sample``'s: (y0, x0, y1, x1),
    -1s for mixup, 0s unmixed); ``mixed_target(target)`` gives it as the
    ``MixedTarget`` of ``fastmix.torch.cross_entropy``, which computes the
    same loss as the soft targets without building them (pass
    ``label_smoothing`` there too).  ``mixup_enabled = False`` leaves
    batches unmixed, as in timm.  The draw is not timm's (NumPy's) random
    stream: it is ``fastmix_cutmix`` with a (seed, offset) from
    ``generator`` (a ``fastmix.DeviceGenerator`` on x's device: its
    device-seed form, with no host draw).
    """

    def __init__(self, mixup_alpha: float = 1.0, cutmix_alpha: float = 0.0, cutmix_minmax=None,
                 prob: float = 1.0, switch_prob: float = 0.5, mode: str = "batch",
                 correct_lam: bool = True, label_smoothing: float = 0.1,
                 num_classes: int = 1000,
                 generator: Optional[_Generator] = None):
        func = "fastmix.timm.Mixup"
        if mode not in ("batch", "pair", "elem"):
            raise_invalid(f"{func}: mode must be 'batch', 'pair' or 'elem', got {mode!r}")
        if cutmix_minmax is not None:
            cutmix_alpha = 1.0  # as timm: minmax forces CutMix
        self.mixup_alpha, self.cutmix_alpha = mixup_alpha, cutmix_alpha
        self.cutmix_minmax = cutmix_minmax
        self.mix_prob, self.switch_prob, self.mode = prob, switch_prob, mode
        self.correct_lam = bool(correct_lam)
        self.label_smoothing, self.num_classes = float(label_smoothing), int(num_classes)
        self.generator = generator
        self.mixup_enabled = True
        # the values are the C library's to check (and name), when built
        check_mix_config(func, _cut_config(func, **self._kwargs()))
        self.lambdas = self.partners = self.boxes = None

    def _kwargs(self):
        return dict(mixup_alpha=self.mixup_alpha, cutmix_alpha=self.cutmix_alpha,
                    cutmix_minmax=self.cutmix_minmax,
                    prob=self.mix_prob if self.mixup_enabled else 0.0,
                    switch_prob=self.switch_prob, mode=self.mode, pairing="flip",
                    correct_lam=self.correct_lam, fold=False)

    def __call__(self, x: Tensor, target: Tensor):
        func = "fastmix.timm.Mixup"
        b = x.shape[0]
        if b % 2 != 0:
            raise_invalid(f"{func}: the batch size must be even (timm pairs sample i with "
                          f"batch - 1 - i), got {b}")
        if isinstance(self.generator, _fm.DeviceGenerator):
            g = self.generator  # drawn where the work runs (its state on x's device)
        else:
            seed, offset = _fm.next_draw(self.generator)
            g = _fm.Generator(seed)
            g.offset = offset
        kw = self._kwargs()
        if b and x.numel() == 0:  # nothing to mix: only the draw
            h, w = (x.shape[-2], x.shape[-1]) if x.dim() >= 3 else (1, 1)
            lam, par, boxes = _fm.cutmix_sample(b, max(h, 1), max(w, 1), **kw, generator=g,
                                                like=x)
        else:
            # NCHW, or a channels-last x as its NHWC view; without CutMix any
            # shape (the draw does not depend on the image size).
            cut = self.cutmix_alpha > 0.0 or self.cutmix_minmax is not None
            view, layout = _images_view(x, cut)
            _, lam, par, boxes = _fm.cutmix(view, **kw, layout=list(LAYOUTS)[layout], generator=g,
                                            out=view)
        self.lambdas, self.partners, self.boxes = lam, par, boxes
        targets = _fm.soft_targets(target, self.num_classes, lam.to(target.device),
                                   par.to(target.device), label_smoothing=self.label_smoothing)
        return x, targets

    def mixed_target(self, target: Tensor):
        """The last call's mixing of ``target`` (int64 labels) as a
        ``fastmix.torch.MixedTarget`` for the fused loss."""
        if self.lambdas is None:
            raise_invalid("fastmix.timm.Mixup.mixed_target: no batch has been mixed yet")
        from .torch import MixedTarget
        return MixedTarget(target, self.lambdas.to(target.device),
                           self.partners.to(target.device))
