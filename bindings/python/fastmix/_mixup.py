"""Mixup: ``sample`` draws the weights and partners, ``blend`` mixes a
batch with them, ``mixup`` does both in one pass."""
from __future__ import annotations

import operator

from . import _arrays as _a
from . import _operands as _o
from ._args import alpha_value, check_sampler, pairing_code
from ._calls import draw_outputs, run, run_drawing
from ._generators import resolve


def sample(batch, alpha=0.4, *, fold=True, pairing="permutation", generator=None, like=None):
    """Draws the mixing weights of a batch and each sample's partner.

    Returns ``(lambdas, partners)``: float32 and int64 arrays of shape
    ``(batch,)`` with ``lambdas[i] ~ Beta(alpha, alpha)`` (folded to
    ``max(l, 1 - l)`` when ``fold``) and ``partners`` a permutation of
    ``range(batch)`` chosen by ``pairing`` ("permutation", "cycle", "flip" or
    "roll").
    They are NumPy arrays, or arrays of ``like``'s library on its device
    (with a ``DeviceGenerator`` and no ``like``: its state's library and
    device).
    """
    func = "fastmix.sample"
    batch = operator.index(batch)
    alpha = alpha_value(alpha, func)
    fold = 1 if fold else 0
    pairing = pairing_code(pairing, func)
    g = resolve(generator)
    ref = _o.draw_ref(g, like, func)
    check_sampler(func, alpha, fold, pairing, batch)
    (lambdas, partners), (dl, dp) = draw_outputs(ref, batch, func, boxes=False)
    scratch = _a.Scratch(ref)
    run_drawing("fastmix_sample", g, ref, func, "like", (alpha, fold, pairing),
                (batch, scratch.ptr(dl), scratch.ptr(dp)))
    return lambdas, partners


def blend(x, lambdas, partners, *, out=None):
    """``out[i] = lambdas[i] * x[i] + (1 - lambdas[i]) * x[partners[i]]``.

    ``x``: batch first, each sample contiguous (samples may be strided),
    float32, float16 or bfloat16.  ``out=None`` allocates the result (with x's
    sample stride); ``out=x`` blends in place.  Returns ``out``.
    """
    func = "fastmix.blend"
    dx, do, out, dtype, batch, elems, stride = _o.images(func, x, out)
    dl, dp = _o.pair(func, dx, batch, lambdas, partners, "x", required=True)
    scratch = _a.Scratch(dx)
    run("fastmix_blend", dx, dtype, scratch.ptr(dx), scratch.ptr(do), batch, elems, stride,
        scratch.ptr(dl), scratch.ptr(dp))
    return out


def mixup(x, alpha=0.4, *, fold=True, pairing="permutation", generator=None, out=None):
    """Draws lambdas and partners and blends the batch, in one pass (one
    kernel launch on CUDA); bitwise ``sample`` followed by ``blend``.

    Returns ``(out, lambdas, partners)``; ``out=x`` mixes in place.
    """
    func = "fastmix.mixup"
    alpha = alpha_value(alpha, func)
    fold = 1 if fold else 0
    pairing = pairing_code(pairing, func)
    g = resolve(generator)
    dx, do, out, dtype, batch, elems, stride = _o.images(func, x, out)
    check_sampler(func, alpha, fold, pairing, batch)
    (lambdas, partners), (dl, dp) = draw_outputs(dx, batch, func, boxes=False)
    scratch = _a.Scratch(dx)
    run_drawing("fastmix_mixup", g, dx, func, "x", (dtype, alpha, fold, pairing),
                (scratch.ptr(dx), scratch.ptr(do), batch, elems, stride, scratch.ptr(dl),
                 scratch.ptr(dp)))
    return out, lambdas, partners
