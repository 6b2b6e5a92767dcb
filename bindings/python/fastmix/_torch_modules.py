"""fastmix.torch's nn.Modules: ``MixUp`` (mixup, and timm's CutMix
options), ``CutMix`` (torchvision's), ``MixUpU8`` (uint8 images in) and
``MixUpCrossEntropyLoss``."""
from __future__ import annotations

from typing import Optional

import numpy as _np
import torch
from torch import Tensor

from ._args import (LAYOUTS, alpha_value, check_mix_config, check_sampler, cut_config,
                    layout_code, mode_code, pairing_code, real_value)
from ._arrays import FLOAT_DTYPES as _DTYPE_CODES
from ._generators import AnyGenerator as _Generator
from ._lib import MAX_NORM_CHANNELS, raise_invalid
from ._torch_functional import (FLOAT_DTYPES, cutmix_apply_u8, cutmix_u8, cutmix_with_config,
                                mixup, op_config, soft_targets)
from ._torch_loss import MixedTarget, cross_entropy
from ._u8 import check_u8, norm_values


def _cached_config(module, options):
    """op_config of a module's CutMix options, kept on the module while
    they stay the same: computed when the module is built, so that its
    forward (under torch.compile: a comparison of constants) does not call
    the C library's check again, and traces without a graph break."""
    cache = module._cut_cache
    if cache is None or cache[0] != options:
        cache = (options, op_config("fastmix.torch.cutmix", *options))
        module._cut_cache = cache
    return cache[1]


def _check_labels_per_sample(func: str, x: Tensor, y: Tensor) -> None:
    """The modules' labels: one entry (a label or a row of targets) per sample of x."""
    if x.dim() < 1 or y.dim() < 1 or y.shape[0] != x.shape[0]:
        raise_invalid(f"{func}: labels must have one entry per sample: x has shape "
                      f"{tuple(x.shape)}, labels {tuple(y.shape)}")


class MixUp(torch.nn.Module):
    """Mixes a batch: ``x_mixed, target = mixup(x, y)``.

    Each sample i gets ``lambdas[i] ~ Beta(alpha, alpha)`` (folded to
    ``max(l, 1 - l)`` when ``fold``) and a partner ``partners[i]`` (``pairing``:
    "permutation", "cycle", "flip" or "roll"); ``x_mixed[i] = lambdas[i] * x[i] +
    (1 - lambdas[i]) * x[partners[i]]``; ``target`` is a ``MixedTarget(y,
    lambdas, partners)`` for ``fastmix.torch.cross_entropy``.  Each call takes
    one (seed, offset) draw from ``generator`` (fastmix's default one when
    None; a ``fastmix.DeviceGenerator`` draws on the device, graph-safe).
    In eval mode the batch passes unchanged (lambdas 1).  ``inplace=True``
    mixes x in place (no autograd through x then).

    CutMix and timm's options: ``cutmix_alpha > 0`` (Beta(cutmix_alpha,
    cutmix_alpha)) or ``cutmix_minmax=(min, max)`` add CutMix, chosen per
    sample with probability ``switch_prob`` when ``alpha > 0`` too (``alpha=0``:
    CutMix only); ``prob`` is the probability that a sample is mixed at all;
    ``mode`` "elem", "pair" (needs ``pairing="flip"``) or "batch" says who
    shares a draw; ``correct_lam`` makes a CutMix lambda the share of the
    sample's own pixels; ``fold`` folds both Beta draws.  Then x must be
    ``(batch, channels, height, width)`` (channels-last works in place) or
    ``(batch, height, width)``, and the draw is ``fastmix.torch.cutmix``'s.
    The defaults (no CutMix, ``prob=1``, ``mode="elem"``) are plain mixup,
    ``fastmix.torch.mixup``.  The target is a ``MixedTarget`` either way: a
    CutMix sample is ``lambdas[i]`` of its own label.
    """

    def __init__(self, alpha: float = 0.4, fold: bool = True, pairing: str = "permutation",
                 generator: Optional[_Generator] = None, inplace: bool = False,
                 cutmix_alpha: float = 0.0, switch_prob: float = 0.5, cutmix_minmax=None,
                 prob: float = 1.0, mode: str = "elem", correct_lam: bool = True):
        super().__init__()
        func = "fastmix.torch.MixUp"
        self.alpha = alpha_value(alpha, func)
        self.fold, self.pairing = bool(fold), pairing
        self.generator, self.inplace = generator, inplace
        self.cutmix_alpha, self.switch_prob, self.cutmix_minmax = cutmix_alpha, switch_prob, \
            cutmix_minmax
        self.prob, self.mode, self.correct_lam = prob, mode, bool(correct_lam)
        cfg = cut_config(func, self.alpha, cutmix_alpha, cutmix_minmax, prob, switch_prob, mode,
                          pairing, correct_lam, fold)
        # Plain mixup (the fused fastmix_mixup) unless an option needs the CutMix draw.
        self._plain = (cfg.cutmix_alpha == 0.0 and cutmix_minmax is None and cfg.prob == 1.0
                       and mode_code(mode, func) == 0)
        if self._plain:
            check_sampler(func, self.alpha, int(self.fold), pairing_code(pairing, func), 0)
        else:
            check_mix_config(func, cfg)
        self._cut_cache = None
        if not self._plain:
            _cached_config(self, self._cut_options())

    def _cut_options(self):
        return (self.alpha, self.cutmix_alpha, self.cutmix_minmax, self.prob, self.switch_prob,
                self.mode, self.pairing, self.correct_lam, self.fold)

    def forward(self, x: Tensor, y: Tensor):
        _check_labels_per_sample("fastmix.torch.MixUp", x, y)
        if not self.training:
            b = x.shape[0]
            return x, MixedTarget(y, torch.ones(b, device=x.device),
                                  torch.arange(b, device=x.device))
        if self._plain:
            xm, lam, par = mixup(x, self.alpha, fold=self.fold, pairing=self.pairing,
                                 generator=self.generator, inplace=self.inplace)
        else:
            config, ints, cut = _cached_config(self, self._cut_options())
            xm, lam, par, _ = cutmix_with_config("fastmix.torch.cutmix", x, config, ints, cut,
                                                 self.generator, self.inplace)
        return xm, MixedTarget(y, lam, par)

    def extra_repr(self):
        r = f"alpha={self.alpha}, fold={self.fold}, pairing={self.pairing!r}"
        if not self._plain:
            r += (f", cutmix_alpha={self.cutmix_alpha}, cutmix_minmax={self.cutmix_minmax}, "
                  f"switch_prob={self.switch_prob}, prob={self.prob}, mode={self.mode!r}, "
                  f"correct_lam={self.correct_lam}")
        return r


class CutMix(torch.nn.Module):
    """``torchvision.transforms.v2.CutMix`` on fastmix's fused kernel:
    ``x_mixed, target = CutMix(alpha=1.0)(x, y)``.

    torchvision's semantics: one lambda ~ Beta(alpha, alpha) and one box for
    the whole batch, sample i takes the box from sample ``i - 1`` (``roll``:
    ``partners[i] = (i - 1) mod batch``), and the lambda is corrected to the
    share of the sample's own pixels, ``1 - box area / (height * width)``.
    The box is timm's ``rand_bbox`` (torchvision rounds the half side
    ``int(0.5 * sqrt(1 - lam) * W)`` instead of ``int(W * sqrt(1 - lam)) // 2``,
    which can differ by one pixel).  Mixed out of place (torchvision clones),
    or in place with ``inplace=True``; like torchvision's transform it mixes
    in eval mode too.

    ``x``: ``(batch, channels, height, width)`` (a channels-last tensor stays
    channels-last; more dimensions before height, e.g. a video's frames,
    share the box) or ``(batch, height, width)``.  ``y``: int labels
    ``(batch,)``, or one-hot/soft targets ``(batch, classes)`` (a float
    tensor).  The target is, for int labels, a ``MixedTarget(y, lambdas,
    partners)`` for ``fastmix.torch.cross_entropy`` when ``num_classes`` is
    None and torchvision's dense ``(batch, num_classes)`` float32 targets
    ``lam * onehot(y) + (1 - lam) * onehot(y).roll(1, 0)`` when it is given;
    for float targets, those targets mixed the same way.  The last call's
    boxes are in ``self.boxes``.
    """

    def __init__(self, alpha: float = 1.0, num_classes: Optional[int] = None, *,
                 generator: Optional[_Generator] = None, inplace: bool = False):
        super().__init__()
        func = "fastmix.torch.CutMix"
        self.alpha = alpha_value(alpha, func)
        if num_classes is not None:
            num_classes = int(num_classes)
            if num_classes < 1:
                raise_invalid(f"{func}: num_classes must be None or >= 1, got {num_classes}")
        self.num_classes, self.generator, self.inplace = num_classes, generator, inplace
        check_mix_config(func, cut_config(func, 0.0, self.alpha, None, 1.0, 0.5, "batch", "roll",
                                           True, False))
        self._cut_cache = None
        _cached_config(self, self._cut_options())
        self.boxes = None

    def _cut_options(self):
        return (0.0, self.alpha, None, 1.0, 0.5, "batch", "roll", True, False)

    def forward(self, x: Tensor, y: Tensor):
        func = "fastmix.torch.CutMix"
        _check_labels_per_sample(func, x, y)
        soft = y.is_floating_point()
        if soft and y.dim() != 2:
            raise_invalid(f"{func}: float targets must have shape (batch, classes), got "
                          f"{tuple(y.shape)}")
        if not soft and y.dim() != 1:
            raise_invalid(f"{func}: int labels must have shape (batch,), got {tuple(y.shape)}")
        config, ints, cut = _cached_config(self, self._cut_options())
        xm, lam, par, self.boxes = cutmix_with_config("fastmix.torch.cutmix", x, config, ints,
                                                      cut, self.generator, self.inplace)
        if soft:
            lam = lam.to(y.device, y.dtype).view(-1, 1)
            return xm, lam * y + (1 - lam) * y[par.to(y.device)]
        if self.num_classes is None:
            return xm, MixedTarget(y, lam, par)
        return xm, soft_targets(y, self.num_classes, lam.to(y.device), par.to(y.device))

    def extra_repr(self):
        return f"alpha={self.alpha}, num_classes={self.num_classes}"


class MixUpCrossEntropyLoss(torch.nn.Module):
    """``fastmix.torch.cross_entropy`` as a module: ``loss = crit(logits, target)``."""

    def __init__(self, reduction: str = "mean", label_smoothing: float = 0.0,
                 ignore_index: int = -100):
        super().__init__()
        self.reduction, self.label_smoothing = reduction, float(label_smoothing)
        self.ignore_index = int(ignore_index)

    def forward(self, logits: Tensor, target) -> Tensor:
        return cross_entropy(logits, target, self.reduction, self.label_smoothing,
                             self.ignore_index)


class MixUpU8(torch.nn.Module):
    """Normalize and mix uint8 images in one pass, the input stage of a
    training step: ``x, target = MixUpU8(mean, std)(images_u8, labels)``.

    ``images_u8``: uint8 ``(batch, height, width, channels)`` (``in_layout=
    "nhwc"``, the default: decoded HWC images, stacked) or ``(batch, channels,
    height, width)`` (``in_layout="nchw"``; a channels_last tensor is read as
    it is stored).  ``x``: ``(batch, channels, height, width)`` of ``dtype``
    (float32, float16, bfloat16), ``(v / 255 - mean) / std`` of the mixed
    pixel v, contiguous, or ``torch.channels_last`` with
    ``channels_last=True``.  ``target``: a ``MixedTarget(labels, lambdas,
    partners)`` for ``cross_entropy``.  ``mean``, ``std``: host values in
    the 0-1 scale, one per channel, or one for all.

    The draw options and their defaults are ``fastmix.torch.cutmix_u8``'s
    (``fastmix.cutmix_sample``'s: CutMix with ``cutmix_alpha=1.0``, mixup
    with ``mixup_alpha > 0``, ``prob``, ``switch_prob``, ``mode``,
    ``pairing``, ``correct_lam``, ``fold``); each call takes one (seed,
    offset) draw from ``generator`` (a ``fastmix.DeviceGenerator``: on the
    device, graph-safe).  ``mixup_alpha=0``, ``cutmix_alpha=0``
    and no ``cutmix_minmax``: normalization only.  In eval mode, or with
    ``mixup_enabled = False``, the batch is only normalized (lambdas 1,
    each sample its own partner, no draw taken).  The last draw's boxes are
    in ``self.boxes``.  Not differentiable (uint8 in).
    """

    def __init__(self, mean, std, dtype: torch.dtype = torch.float32, *, in_layout: str = "nhwc",
                 channels_last: bool = False, mixup_alpha: float = 0.0,
                 cutmix_alpha: float = 1.0, cutmix_minmax=None, prob: float = 1.0,
                 switch_prob: float = 0.5, mode: str = "elem", pairing: Optional[str] = None,
                 correct_lam: bool = True, fold: bool = False,
                 generator: Optional[_Generator] = None):
        super().__init__()
        func = "fastmix.torch.MixUpU8"
        if dtype not in FLOAT_DTYPES:
            raise_invalid(f"{func}: dtype must be torch.float32, torch.float16 or torch.bfloat16, "
                          f"got {dtype}")
        self.dtype, self.channels_last = dtype, bool(channels_last)
        self.in_layout = list(LAYOUTS)[layout_code(in_layout, func, "in_layout")]
        # mean and std as float32 values; their count is checked against x's
        # channels at each call, their values by the C library here.
        m = norm_values(mean, _count(mean), func, "mean")
        sd = norm_values(std, _count(std), func, "std")
        if len(m) != len(sd) and min(len(m), len(sd)) != 1:
            raise_invalid(f"{func}: mean and std must have as many values (one per channel), got "
                          f"{len(m)} and {len(sd)}")
        n = max(len(m), len(sd))
        if n > MAX_NORM_CHANNELS:
            raise_invalid(f"{func}: mean and std have {n} values; the uint8 input path takes 1 to "
                          f"{MAX_NORM_CHANNELS} channels (FASTMIX_MAX_NORM_CHANNELS)")
        self.mean = tuple(float(v) for v in norm_values(m, n, func, "mean"))
        self.std = tuple(float(v) for v in norm_values(sd, n, func, "std"))
        self._options = (mixup_alpha, cutmix_alpha, cutmix_minmax, prob, switch_prob, mode,
                         pairing, correct_lam, fold)
        self.mixing = not (real_value(mixup_alpha, func, "mixup_alpha") == 0.0
                           and real_value(cutmix_alpha, func, "cutmix_alpha") == 0.0
                           and cutmix_minmax is None)
        cfg = cut_config(func, *self._options) if self.mixing else None
        check_u8(func, cfg, 0, 0, n, 1, 1, n, _np.asarray(self.mean, _np.float32),
                 _np.asarray(self.std, _np.float32),
                 _DTYPE_CODES[str(dtype).replace("torch.", "")], 0, n)
        self.generator = generator
        self.mixup_enabled = True
        self.boxes = None

    def forward(self, x: Tensor, y: Tensor):
        func = "fastmix.torch.MixUpU8"
        _check_labels_per_sample(func, x, y)
        out_layout = "nhwc" if self.channels_last else "nchw"
        if self.mixing and self.mixup_enabled and self.training:
            ma, ca, mm, prob, sp, mode, pairing, cl, fold = self._options
            xm, lam, par, self.boxes = cutmix_u8(
                x, self.mean, self.std, dtype=self.dtype, in_layout=self.in_layout,
                out_layout=out_layout, mixup_alpha=ma, cutmix_alpha=ca, cutmix_minmax=mm,
                prob=prob, switch_prob=sp, mode=mode, pairing=pairing, correct_lam=cl, fold=fold,
                generator=self.generator)
            return xm, MixedTarget(y, lam, par)
        b = x.shape[0]
        lam = torch.ones(b, device=x.device)
        par = torch.arange(b, device=x.device)
        self.boxes = torch.zeros((b, 4), dtype=torch.int32, device=x.device)
        xm = cutmix_apply_u8(x, self.mean, self.std, lam, par, self.boxes, dtype=self.dtype,
                             in_layout=self.in_layout, out_layout=out_layout)
        return xm, MixedTarget(y, lam, par)

    def extra_repr(self):
        def short(values):  # the float32 values, as their shortest decimals
            return "(" + ", ".join(f"{v:.7g}" for v in values) + ")"
        r = (f"mean={short(self.mean)}, std={short(self.std)}, dtype={self.dtype}, "
             f"in_layout={self.in_layout!r}, channels_last={self.channels_last}")
        if self.mixing:
            ma, ca, mm, prob, sp, mode, pairing, cl, fold = self._options
            r += (f", mixup_alpha={ma}, cutmix_alpha={ca}, cutmix_minmax={mm}, prob={prob}, "
                  f"switch_prob={sp}, mode={mode!r}, pairing={pairing!r}, correct_lam={cl}, "
                  f"fold={fold}")
        return r


def _count(values) -> int:
    """How many values a mean or std holds (1 for a number)."""
    try:
        return len(values)
    except TypeError:
        return 1
