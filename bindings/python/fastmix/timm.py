"""A drop-in for the mixup part of ``timm.data.Mixup``, keeping timm's name:

    mixup_fn = fastmix.timm.Mixup(mixup_alpha=0.8, label_smoothing=0.1, num_classes=1000)
    x, target = mixup_fn(x, target)      # x mixed in place, target dense soft targets

Built on fastmix's sampling, blending and soft targets; needs PyTorch.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

import fastmix as _fm
from ._lib import NotSupportedError, Status, raise_invalid

__all__ = ["Mixup"]


class Mixup:
    """A drop-in for the mixup part of ``timm.data.Mixup``:
    ``x, target = mixup_fn(x, target)`` mixes x in place and returns dense,
    smoothed soft targets ``(batch, num_classes)`` (float32), as timm does.

    timm's semantics: no fold, FLIP pairing (sample i with batch - 1 - i), an
    even batch, and ``mode`` "batch" (one lambda for the batch), "pair" (one
    per pair i, batch - 1 - i) or "elem" (one per sample); each lambda is
    ``Beta(mixup_alpha, mixup_alpha)`` with probability ``prob``, else 1 (no
    mixing).  The soft targets are ``(1 - eps) * (lam * onehot(y1) + (1 - lam)
    * onehot(y2)) + eps / num_classes``, from ``fastmix_soft_targets``.
    CutMix (``cutmix_alpha > 0`` or ``cutmix_minmax``) raises
    ``fastmix.NotSupportedError`` for now.  The lambdas and partners of the
    last call are kept in ``self.lambdas`` and ``self.partners``;
    ``mixed_target(target)`` gives them as the ``MixedTarget`` of
    ``fastmix.torch.cross_entropy``, which computes the same loss as the soft
    targets without building them (pass ``label_smoothing`` there too).
    """

    def __init__(self, mixup_alpha: float = 1.0, cutmix_alpha: float = 0.0, cutmix_minmax=None,
                 prob: float = 1.0, switch_prob: float = 0.5, mode: str = "batch",
                 correct_lam: bool = True, label_smoothing: float = 0.1,
                 num_classes: int = 1000, generator: Optional[_fm.Generator] = None):
        if cutmix_alpha > 0.0 or cutmix_minmax is not None:
            raise NotSupportedError("fastmix.timm.Mixup: CutMix (cutmix_alpha > 0 or "
                                    "cutmix_minmax) is not supported yet", Status.NOT_SUPPORTED)
        if mode not in ("batch", "pair", "elem"):
            raise_invalid(f"fastmix.timm.Mixup: mode must be 'batch', 'pair' or 'elem', "
                          f"got {mode!r}")
        if not 0.0 <= prob <= 1.0:
            raise_invalid(f"fastmix.timm.Mixup: prob must be in [0, 1], got {prob}")
        self.mixup_alpha, self.mix_prob, self.mode = float(mixup_alpha), float(prob), mode
        self.label_smoothing, self.num_classes = float(label_smoothing), int(num_classes)
        self.switch_prob, self.correct_lam = switch_prob, correct_lam  # CutMix only
        self.generator = generator
        self.mixup_enabled = True
        self.lambdas = self.partners = None

    def __call__(self, x: Tensor, target: Tensor):
        b = x.shape[0]
        if b % 2 != 0:
            raise_invalid(f"fastmix.timm.Mixup: the batch size must be even (timm pairs "
                          f"sample i with batch - 1 - i), got {b}")
        seed, offset = _fm.next_draw(self.generator)
        g = _fm.Generator(seed)
        g.offset = offset
        lam, par = _fm.sample(b, self.mixup_alpha, fold=False, pairing="flip", generator=g,
                              like=x)
        # Whether each lambda is used (probability prob): a CPU torch generator
        # seeded from the same (seed, offset), so a call is reproducible.
        tg = torch.Generator().manual_seed((seed * 0x9E3779B97F4A7C15 + offset) % (1 << 63))
        use = torch.rand(b, generator=tg) < self.mix_prob
        if not self.mixup_enabled:
            use[:] = False
        use = use.to(x.device)
        one = torch.ones_like(lam)
        if self.mode == "batch":
            lam = torch.where(use[0], lam[0], one[0]).expand(b).contiguous()
        elif self.mode == "pair":
            half = torch.where(use[: b // 2], lam[: b // 2], one[: b // 2])
            lam = torch.cat([half, half.flip(0)])
        else:
            lam = torch.where(use, lam, one)
        self.lambdas, self.partners = lam, par
        if b and not bool((lam == 1).all()):
            _fm.blend(x, lam, par, out=x)
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
