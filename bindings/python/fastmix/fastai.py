"""fastai v2 callback: mixup on fastmix's fused kernels.

    from fastmix.fastai import MixUp
    learn = vision_learner(dls, resnet18, loss_func=CrossEntropyLossFlat(), cbs=MixUp(0.4))
    learn.fit_one_cycle(5)

``MixUp(alpha=0.4)`` takes the place of ``fastai.callback.mixup.MixUp(alpha=0.4)``
with its semantics: in training (not in validation) every batch is blended with
a permutation of itself, sample i with weight ``lam[i] = max(t, 1 - t)``,
``t ~ Beta(alpha, alpha)`` drawn per sample, and with a loss whose targets are
labels (the loss has fastai's ``y_int``, or the targets are integers, which
fastai's callback would fail to blend) the loss becomes ``lam * loss(pred, y) + (1 - lam) * loss(pred, y[partner])``, reduced
as the loss reduces; other targets (floats: one-hot, regression) are blended
like the inputs.  What differs: the blend and the draw are one fastmix kernel
(``fastmix.torch.mixup``), and for the cross-entropies (fastai's
``CrossEntropyLossFlat``, ``LabelSmoothingCrossEntropy(Flat)``, PyTorch's
``nn.CrossEntropyLoss``) the two-term loss is fastmix's fused cross-entropy,
loss and gradient in one pass; the draw comes from ``generator`` (a
``fastmix.Generator`` or ``DeviceGenerator``; None: fastmix's default one),
not from PyTorch's random state.

Importing this module imports fastai; ``import fastmix`` does not.
"""
from __future__ import annotations

from typing import Optional

import torch
from fastai.callback.core import Callback
from fastai.losses import BaseLoss, LabelSmoothingCrossEntropy

import fastmix as _fm
import fastmix.torch as _ft
from ._args import PAIRINGS, alpha_value, check_sampler

__all__ = ["MixUp"]

_FUSED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _plain(t: torch.Tensor) -> torch.Tensor:
    """t as a torch.Tensor (fastai's batches are TensorBase subclasses)."""
    return t.as_subclass(torch.Tensor) if type(t) is not torch.Tensor else t


def _like(out: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """out with t's tensor type and fastai metadata (as fastai's own
    transforms keep a TensorImage a TensorImage)."""
    if type(t) is torch.Tensor:
        return out
    out = out.as_subclass(type(t))
    if hasattr(out, "set_meta"):
        out.set_meta(t)
    return out


def _blend(t: torch.Tensor, lam: torch.Tensor, par: torch.Tensor) -> torch.Tensor:
    """lam[i] * t[i] + (1 - lam[i]) * t[par[i]]: fastmix's kernel for its
    dtypes, fastai's torch.lerp for others (float64 targets)."""
    if t.dtype in _FUSED_DTYPES:
        return _like(_ft.blend(_plain(t), lam, par), t)
    weight = lam.to(t.dtype).view((-1,) + (1,) * (t.dim() - 1))
    return torch.lerp(t[par], t, weight)


def _cross_entropy_config(loss_func) -> Optional[dict]:
    """fastmix.torch.cross_entropy's arguments when loss_func is a
    cross-entropy it computes (no class weights): reduction, label_smoothing
    and, for PyTorch's, ignore_index; None for any other loss."""
    func = loss_func.func if isinstance(loss_func, BaseLoss) else loss_func
    if isinstance(loss_func, BaseLoss) and loss_func.axis not in (-1, 1):
        return None
    if isinstance(func, torch.nn.CrossEntropyLoss) and func.weight is None:
        return dict(reduction=func.reduction, label_smoothing=float(func.label_smoothing),
                    ignore_index=int(func.ignore_index))
    if isinstance(func, LabelSmoothingCrossEntropy) and func.weight is None:
        return dict(reduction=func.reduction, label_smoothing=float(func.eps))
    return None


class MixUp(Callback):
    """fastai's ``MixUp`` callback on fastmix: ``MixUp(alpha=0.4)``.

    ``alpha``: the Beta(alpha, alpha) of the per-sample weights (folded to
    ``max(t, 1 - t)``, as fastai does).  ``generator``: where the draws come
    from (see the module's doc).  After each training batch's mix,
    ``self.lam`` and ``self.partners`` hold the draw (sample i is
    ``lam[i]`` of itself and ``1 - lam[i]`` of sample ``partners[i]``).
    """
    run_valid = False

    def __init__(self, alpha: float = 0.4, *, generator=None):
        func = "fastmix.fastai.MixUp"
        self.alpha = alpha_value(alpha, func)
        check_sampler(func, self.alpha, 1, PAIRINGS["permutation"], 0)  # alpha > 0, finite
        if generator is not None and not isinstance(generator, (_fm.Generator,
                                                                _fm.DeviceGenerator)):
            raise TypeError(f"{func}: generator must be a fastmix.Generator, a "
                            f"fastmix.DeviceGenerator or None, not {type(generator).__name__}")
        self.generator = generator
        self.lam = self.partners = None
        self.labels = False

    # -- the loss function, swapped in for the training phase only (as fastai's)
    def before_train(self):
        self.old_lf, self.learn.loss_func = self.learn.loss_func, self.lf

    def after_train(self):
        if self.learn.loss_func == self.lf:
            self.learn.loss_func = self.old_lf

    def after_cancel_train(self):
        self.after_train()

    def after_cancel_fit(self):
        self.after_train()

    # -- the mix
    def before_batch(self):
        xb = self.learn.xb
        x = xb[0]
        if x.dtype in _FUSED_DTYPES:
            xm, lam, par = _ft.mixup(_plain(x), self.alpha, generator=self.generator)
            xm = _like(xm, x)
        else:  # fastmix's draw alone, the blend in x's dtype
            lam, par = _fm.sample(x.shape[0], self.alpha, generator=self.generator, like=_plain(x))
            xm = _blend(x, lam, par)
        self.lam, self.partners = lam, par
        self.learn.xb = (xm,) + tuple(_blend(t, lam, par) for t in xb[1:])
        # Labels stay and the loss takes two terms when the loss says so
        # (fastai's y_int) or the targets are integers (which fastai would
        # try to blend, and fail); float targets are blended like x.
        yb = self.learn.yb
        self.labels = bool(getattr(self.old_lf, "y_int", False)) or any(
            not t.is_floating_point() for t in yb)
        if not self.labels:
            self.learn.yb = tuple(_blend(t, lam, par) for t in yb)

    def lf(self, pred, *yb):
        """The two-term loss of the mixed batch: lam * loss(pred, y) + (1 - lam)
        * loss(pred, y[partners]), reduced as the original loss; fastmix's
        fused cross-entropy where the loss is a cross-entropy on (batch,
        classes) predictions."""
        if not self.training or not self.labels:
            return self.old_lf(pred, *yb)
        lam, par = self.lam, self.partners
        config = _cross_entropy_config(self.old_lf)
        if (config is not None and len(yb) == 1 and pred.dim() == 2
                and yb[0].shape == pred.shape[:1] and pred.dtype in _FUSED_DTYPES):
            target = _ft.MixedTarget(_plain(yb[0]).long(), lam, par)
            return _ft.cross_entropy(_plain(pred), target, **config)
        # Any other loss: per-sample losses with reduction "none", as fastai.
        reduction = getattr(self.old_lf, "reduction", "mean")
        own = self._unreduced(pred, yb)
        partner = self._unreduced(pred, tuple(t[par] for t in yb))
        loss = torch.lerp(partner, own, lam.to(own.dtype).view((-1,) + (1,) * (own.dim() - 1)))
        return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss

    def _unreduced(self, pred, yb):
        lf = self.old_lf
        if hasattr(lf, "reduction"):
            saved = lf.reduction
            lf.reduction = "none"
            try:
                return lf(pred, *yb)
            finally:
                lf.reduction = saved
        return lf(pred, *yb, reduction="none")

    def __repr__(self):
        return f"fastmix.fastai.MixUp(alpha={self.alpha})"
