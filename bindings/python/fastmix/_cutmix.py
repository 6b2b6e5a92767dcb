"""CutMix: ``cutmix_sample`` draws mixup or CutMix per sample (timm's
``Mixup`` draw), ``cutmix_apply`` applies a draw to a batch of float
images, ``cutmix`` does both in one call."""
from __future__ import annotations

import ctypes
import operator

from . import _arrays as _a
from . import _operands as _o
from ._args import check_mix_config, cut_config, layout_code
from ._calls import draw_outputs, run, run_drawing
from ._generators import resolve
from ._lib import InvalidValueError, Status, raise_invalid


def _image_dims(func, d: "_a.Desc", layout: int):
    """(channels, height, width) of a batch of images in `layout`: NCHW is
    (batch, channels, height, width), where further dimensions before height
    count as channels too (a video's frames); NHWC is (batch, height, width,
    channels); (batch, height, width) is one channel in either."""
    shape = tuple(d.shape)
    if len(shape) == 3:
        return 1, shape[1], shape[2]
    if layout == 0 and len(shape) >= 4:
        c = 1
        for s in shape[1:-2]:
            c *= s
        return c, shape[-2], shape[-1]
    if layout == 1 and len(shape) == 4:
        return shape[3], shape[1], shape[2]
    want = ("(batch, channels, height, width) or (batch, height, width)" if layout == 0 else
            "(batch, height, width, channels) or (batch, height, width)")
    name = "nchw" if layout == 0 else "nhwc"
    raise_invalid(f"{func}: x must have shape {want} for layout {name!r}, got {shape}")




def _cut_images(func, x, out, layout):
    """_images for CutMix: x's and out's Descs (out allocated like x when
    None) and the images' channels, height, width and sample stride."""
    try:
        dx, do, out, dtype, batch, _, stride = _o.images(func, x, out)
    except InvalidValueError as e:
        hint = ""
        if layout == 0 and "of each sample of x" in str(e):
            hint = _o.channels_last_hint(_a.describe(x, func, "x"))
        if not hint:
            raise
        raise InvalidValueError(str(e) + hint, Status.INVALID_VALUE) from None
    c, h, w = _image_dims(func, dx, layout)
    return dx, do, out, dtype, batch, c, h, w, stride




def cutmix_sample(batch, height, width, *, mixup_alpha=0.0, cutmix_alpha=1.0, cutmix_minmax=None,
                  prob=1.0, switch_prob=0.5, mode="elem", pairing=None, correct_lam=True,
                  fold=False, generator=None, like=None):
    """Draws mixup or CutMix per sample (timm's ``Mixup`` draw) for a batch of
    ``height`` x ``width`` images.

    Returns ``(lambdas, partners, boxes)``: float32 ``(batch,)``, int64
    ``(batch,)`` and int32 ``(batch, 4)``; NumPy arrays, or arrays of
    ``like``'s library on its device.  ``boxes[i]`` is ``(y0, x0, y1, x1)``
    (rows ``[y0, y1)``, columns ``[x0, x1)``) for a CutMix sample,
    ``(-1, -1, -1, -1)`` for a mixup sample and ``(0, 0, 0, 0)`` for a
    sample left unmixed (lambda 1, its own partner).

    - ``mixup_alpha > 0`` enables mixup, lambda ~ Beta(mixup_alpha,
      mixup_alpha); ``cutmix_alpha > 0`` CutMix with lambda ~
      Beta(cutmix_alpha, cutmix_alpha) and timm's box; ``cutmix_minmax=(min,
      max)`` CutMix with box sides uniform in ``[min, max)`` of the image's
      (``cutmix_alpha`` unused, lambda always corrected).  0 (None) turns
      each off; at least one must be on.
    - ``prob``: the probability that a sample is mixed at all;
      ``switch_prob``: the probability of CutMix when both are on.
    - ``mode``: "elem" (a draw per sample), "pair" (i and batch-1-i share
      one; needs the "flip" pairing) or "batch" (one draw for the batch).
    - ``pairing``: "permutation", "cycle", "flip" or "roll"; None is "flip"
      for mode "pair" and "permutation" otherwise.
    - ``correct_lam``: a Beta CutMix lambda becomes ``1 - box area / (height
      * width)``, the share of the sample's own pixels; ``fold``: both Beta
      draws are folded to ``max(l, 1 - l)``.
    """
    func = "fastmix.cutmix_sample"
    batch, height, width = operator.index(batch), operator.index(height), operator.index(width)
    cfg = cut_config(func, mixup_alpha, cutmix_alpha, cutmix_minmax, prob, switch_prob, mode,
                  pairing, correct_lam, fold)
    g = resolve(generator)
    ref = _o.draw_ref(g, like, func)
    check_mix_config(func, cfg, batch, height, width)
    (lambdas, partners, boxes), (dl, dp, db) = draw_outputs(ref, batch, func, boxes=True)
    scratch = _a.Scratch(ref)
    run_drawing("fastmix_cutmix_sample", g, ref, func, "like", (ctypes.byref(cfg),),
                (batch, height, width, scratch.ptr(dl), scratch.ptr(dp), scratch.ptr(db)))
    return lambdas, partners, boxes


def cutmix_apply(x, lambdas, partners, boxes, *, layout="nchw", out=None):
    """Applies a draw of ``cutmix_sample`` to a batch of images.  Sample i
    with box ``(-1, -1, -1, -1)`` is blended as ``blend`` does; any other
    keeps its own pixels except inside its box ``(y0, x0, y1, x1)``, where
    every channel takes the partner's (copied exactly).

    ``x``: ``(batch, channels, height, width)`` for ``layout="nchw"`` (more
    dimensions before height count as channels), ``(batch, height, width,
    channels)`` for "nhwc", or ``(batch, height, width)``; each sample dense
    in that layout, the samples may be strided; float32, float16 or
    bfloat16.  The same draw applies to another tensor of the batch (a mask)
    of any channel count.  ``boxes``: ``(batch, 4)``, any integer dtype.
    ``out=None`` allocates the result (with x's sample stride); ``out=x``
    works in place.  Returns ``out``.
    """
    func = "fastmix.cutmix_apply"
    lay = layout_code(layout, func)
    dx, do, out, dtype, batch, c, h, w, stride = _cut_images(func, x, out, lay)
    dl, dp = _o.pair(func, dx, batch, lambdas, partners, "x", required=True)
    db = _o.boxes(func, dx, boxes, batch)
    scratch = _a.Scratch(dx)
    run("fastmix_cutmix_apply", dx, dtype, lay, scratch.ptr(dx), scratch.ptr(do), batch, c, h, w,
        stride, scratch.ptr(dl), scratch.ptr(dp), scratch.ptr(db))
    return out


def cutmix(x, *, mixup_alpha=0.0, cutmix_alpha=1.0, cutmix_minmax=None, prob=1.0,
           switch_prob=0.5, mode="elem", pairing=None, correct_lam=True, fold=False,
           layout="nchw", generator=None, out=None):
    """``cutmix_sample`` for x's images followed by ``cutmix_apply``, bitwise
    the same, in one call (on CUDA a small draw kernel, then one pass over
    the images); the arguments are theirs.  Returns ``(out, lambdas,
    partners, boxes)``; ``out=x`` mixes in place.
    """
    func = "fastmix.cutmix"
    cfg = cut_config(func, mixup_alpha, cutmix_alpha, cutmix_minmax, prob, switch_prob, mode,
                  pairing, correct_lam, fold)
    lay = layout_code(layout, func)
    g = resolve(generator)
    dx, do, out, dtype, batch, c, h, w, stride = _cut_images(func, x, out, lay)
    check_mix_config(func, cfg, batch)
    (lambdas, partners, boxes), (dl, dp, db) = draw_outputs(dx, batch, func, boxes=True)
    scratch = _a.Scratch(dx)
    run_drawing("fastmix_cutmix", g, dx, func, "x", (dtype, ctypes.byref(cfg)),
                (lay, scratch.ptr(dx), scratch.ptr(do), batch, c, h, w, stride, scratch.ptr(dl),
                 scratch.ptr(dp), scratch.ptr(db)))
    return out, lambdas, partners, boxes
