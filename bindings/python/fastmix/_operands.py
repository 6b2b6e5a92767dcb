"""The array arguments the calls share: float images (with an optional out
of the same layout), lambdas and partners, CutMix boxes, and the array whose
library and device a draw's results take."""
from __future__ import annotations

import numpy as _np

from . import _arrays as _a
from ._generators import DeviceGenerator
from ._lib import NoDeviceError, Status, raise_invalid

# The array `like` defaults to: results are NumPy arrays on the CPU.
_dummy = _np.zeros(4, dtype=_np.float64)


def float_dtype(d: "_a.Desc", func: str, name: str) -> int:
    """The fastmix_dtype of a float array (float32, float16, bfloat16)."""
    code = _a.FLOAT_DTYPES.get(d.dtype)
    if code is None:
        raise_invalid(f"{func}: {name} has dtype {d.dtype}; fastmix takes float32, float16 "
                      "and bfloat16")
    return code


def _like(like, func):
    """The Desc whose library and device results take (NumPy on the CPU by default)."""
    if like is None:
        return _a.describe(_dummy, func, "like")
    t = _a.loaded_torch()
    if t is not None and isinstance(like, (t.device, str)) and not isinstance(like, _np.ndarray):
        dev = t.device(like)
        if dev.type == "cuda" and not t.cuda.is_available():
            raise NoDeviceError(f"{func}: like={like!r} asks for CUDA, but PyTorch sees no "
                                "usable CUDA device", Status.NO_DEVICE)
        return _a.describe(t.empty(0, device=dev), func, "like")
    return _a.describe(like, func, "like")


def draw_ref(g, like, func):
    """The Desc whose library and device a draw's results take: ``like``'s;
    with no ``like``, a DeviceGenerator's state's, else NumPy on the CPU."""
    return _like(g.state if like is None and isinstance(g, DeviceGenerator) else like, func)


def images(func, x, out):
    """x's and out's Descs (out allocated like x, with its sample stride,
    when None), out, x's fastmix_dtype and its batch, sample size and
    sample stride (elements)."""
    dx = _a.describe(x, func, "x")
    dtype = float_dtype(dx, func, "x")
    batch, elems, stride = _a.sample_layout(dx, func, "x")
    if out is None:
        out = _a.empty(dx, dx.shape, dx.dtype, sample_stride=stride)
        do = _a.describe(out, func, "out")
    else:
        do = _a.describe(out, func, "out")
        _a.same_device(dx, do, func, "out", "x")
        if do.shape != dx.shape or do.dtype != dx.dtype:
            raise_invalid(f"{func}: out must have x's shape {tuple(dx.shape)} and dtype "
                          f"{dx.dtype}, got {tuple(do.shape)} {do.dtype}")
        _, _, ostride = _a.sample_layout(do, func, "out")
        if batch > 1 and ostride != stride:
            raise_invalid(f"{func}: out must have x's sample stride ({stride} elements), "
                          f"got {ostride}")
    return dx, do, out, dtype, batch, elems, stride


def pair(func, ref, batch, lambdas, partners, ref_name="labels", required=False):
    """Descs of lambdas and partners on ref's device (named ref_name in
    messages).  Optional ones may be None (NULL to C, which checks that both
    or neither are given); required ones must be arrays."""
    dl = dp = None
    if lambdas is not None or required:
        dl = _a.describe(lambdas, func, "lambdas")
        _a.same_device(ref, dl, func, "lambdas", ref_name)
        dl = _a.contiguous_1d(dl, "float32", batch, func, "lambdas",
                              ("float32", "float16", "bfloat16", "float64"))
    if partners is not None or required:
        dp = _a.describe(partners, func, "partners")
        _a.same_device(ref, dp, func, "partners", ref_name)
        dp = _a.contiguous_1d(dp, "int64", batch, func, "partners", _a.INT_DTYPES)
    return dl, dp


def channels_last_hint(d: "_a.Desc") -> str:
    """A hint for 4-d NCHW images whose samples are dense channels-last."""
    if len(d.shape) != 4:
        return ""
    _, c, h, w = d.shape
    s = d.strides
    if (c == 1 or s[1] == 1) and (w == 1 or s[3] == c) and (h == 1 or s[2] == w * c):
        view = "permute" if d.lib == "torch" else "transpose"
        return (f" (its samples are channels-last: pass x.{view}(0, 2, 3, 1), a view, with "
                "layout='nhwc')")
    return ""


def boxes(func, ref: "_a.Desc", boxes, batch):
    """boxes as a contiguous int32 array of batch * 4 elements on ref's device."""
    db = _a.describe(boxes, func, "boxes")
    _a.same_device(ref, db, func, "boxes", "x")
    if tuple(db.shape) != (batch, 4):
        raise_invalid(f"{func}: boxes must have shape ({batch}, 4), got {tuple(db.shape)}")
    if db.dtype not in _a.INT_DTYPES:
        raise_invalid(f"{func}: boxes has dtype {db.dtype}; expected one of "
                      f"{', '.join(_a.INT_DTYPES)}")
    flat = _a.describe(db.obj.reshape(-1), func, "boxes")
    return _a.contiguous_1d(flat, "int32", 4 * batch, func, "boxes", _a.INT_DTYPES)
