"""The uint8 input path: uint8 images in, mixed and normalized float images
out, in one pass (``cutmix_apply_u8``; ``cutmix_u8`` with its draw)."""
from __future__ import annotations

import ctypes

import numpy as _np

from . import _arrays as _a
from . import _operands as _o
from ._args import LAYOUTS, cut_config, layout_code
from ._calls import draw_outputs, run, run_drawing
from ._generators import resolve
from ._lib import (MAX_BATCH, MAX_NORM_CHANNELS, InvalidValueError, Status, check, lib,
                   raise_invalid)

_U8_DUMMY = (ctypes.c_int64 * 2)()  # never read or written: the checks run with batch 0


def norm_values(value, channels: int, func: str, name: str):
    """mean or std as a contiguous host float32 array of `channels` values:
    a real number (every channel), or a sequence of `channels` (or 1) real
    numbers: a list, a tuple, a NumPy array, a CPU tensor.  Never a device
    array: the C library reads mean and std on the host during the call, so
    a CUDA tensor is refused rather than copied (which would synchronize)."""
    t = _a.loaded_torch()
    if t is not None and isinstance(value, t.Tensor):
        if value.device.type != "cpu":
            raise_invalid(f"{func}: {name} must be host values (a sequence of floats; the C "
                          f"library reads them on the host), got a tensor on {value.device}")
        value = value.detach().to(t.float64).numpy()
    elif _a.is_cupy(value) or hasattr(value, "__cuda_array_interface__"):
        raise_invalid(f"{func}: {name} must be host values (a sequence of floats; the C library "
                      f"reads them on the host), got a {type(value).__name__} on the GPU")
    try:
        a = _np.asarray(value)
    except (TypeError, ValueError):
        a = _np.asarray(None)
    if a.dtype.kind not in "iuf":  # bools, strings, None, objects, complex
        raise_invalid(f"{func}: {name} must be a real number or a sequence of real numbers, "
                      f"got {value!r}")
    if a.ndim > 1 or (a.ndim == 1 and a.shape[0] not in (1, channels)):
        raise_invalid(f"{func}: {name} must have {channels} values (one per channel of x), or "
                      f"be a single number, got shape {tuple(a.shape)}")
    a = _np.broadcast_to(a.astype(_np.float64).reshape(-1), (channels,))
    return _np.ascontiguousarray(a, dtype=_np.float32)


def u8_images(func, x, in_lay: int):
    """x's Desc, batch, channels, height, width and sample stride (bytes): a
    4-d uint8 array, each image dense in in_layout."""
    dx = _a.describe(x, func, "x")
    if dx.dtype != "uint8":
        raise_invalid(f"{func}: x has dtype {dx.dtype}; the uint8 input path takes uint8 "
                      "images (fastmix.cutmix mixes float images)")
    name = list(LAYOUTS)[in_lay]
    if len(dx.shape) != 4:
        want = ("(batch, channels, height, width)" if in_lay == 0 else
                "(batch, height, width, channels)")
        raise_invalid(f"{func}: x must have shape {want} for in_layout {name!r}, got "
                      f"{tuple(dx.shape)}")
    try:
        batch, _, stride = _a.sample_layout(dx, func, "x")
    except InvalidValueError as e:
        hint = _o.channels_last_hint(dx).replace("layout=", "in_layout=") if in_lay == 0 else ""
        if not hint:
            raise
        raise InvalidValueError(str(e) + hint, Status.INVALID_VALUE) from None
    if in_lay == 0:
        _, c, h, w = dx.shape
    else:
        _, h, w, c = dx.shape
    if not 1 <= c <= MAX_NORM_CHANNELS:
        raise_invalid(f"{func}: x has {c} channels (in_layout {name!r}, shape "
                      f"{tuple(dx.shape)}); the uint8 input path takes 1 to "
                      f"{MAX_NORM_CHANNELS} (FASTMIX_MAX_NORM_CHANNELS)")
    return dx, batch, c, h, w, stride


def u8_out(func, dx: "_a.Desc", out, dtype, batch, c, h, w, out_lay: int):
    """out's Desc (allocated when None, in x's library on x's device), the
    array, its fastmix_dtype and its sample stride (elements)."""
    shape = (batch, c, h, w) if out_lay == 0 else (batch, h, w, c)
    lay = list(LAYOUTS)[out_lay]
    do = None
    if out is not None:
        do = _a.describe(out, func, "out")
        _a.same_device(dx, do, func, "out", "x")
    if dtype is None:
        name = do.dtype if do is not None else "float32"
    else:
        try:
            name = _a.dtype_name(dtype)
        except InvalidValueError:
            name = repr(dtype)
    code = _a.FLOAT_DTYPES.get(name)
    if code is None:
        what = f"dtype must be float32, float16 or bfloat16, got {name}" if dtype is not None \
            else f"out has dtype {name}; fastmix takes float32, float16 and bfloat16"
        raise_invalid(f"{func}: {what}")
    if do is None:
        if name == "bfloat16" and dx.lib == "cupy":
            raise_invalid(f"{func}: dtype bfloat16: CuPy has no bfloat16 arrays; use float32 or "
                          "float16, or PyTorch tensors")
        if name == "bfloat16" and dx.lib == "numpy":
            try:
                import ml_dtypes  # noqa: F401  (NumPy itself has no bfloat16)
            except ImportError:
                raise_invalid(f"{func}: dtype bfloat16 with NumPy arrays needs the ml_dtypes "
                              "package; use float32 or float16, or PyTorch tensors")
        out = _a.empty(dx, shape, name)
        do = _a.describe(out, func, "out")
    elif tuple(do.shape) != shape or do.dtype != name:
        raise_invalid(f"{func}: out must have shape {shape} (out_layout {lay!r}) and dtype "
                      f"{name}, got {tuple(do.shape)} {do.dtype}")
    try:
        _, _, ostride = _a.sample_layout(do, func, "out")
    except InvalidValueError as e:
        hint = ""
        if out_lay == 0 and do.lib == "torch":
            hint = " (a channels_last out is out_layout='nhwc', passed as out.permute(0, 2, 3, 1))"
        raise InvalidValueError(str(e) + hint, Status.INVALID_VALUE) from None
    return do, out, code, ostride


def check_u8(func, cfg, in_lay, batch, c, h, w, stride, mean, std, code, out_lay, ostride):
    """Checks the arguments of the uint8 path in C with batch 0 on the CPU
    (nothing read or written), so that their errors carry the C library's
    message and come before a draw is taken: the config (fastmix_cutmix_u8;
    None: fastmix_cutmix_apply_u8, no draw), the sizes, layouts, dtype, and
    every mean and std value."""
    b = batch if (batch < 0 or batch > MAX_BATCH) else 0
    dummy = ctypes.addressof(_U8_DUMMY)
    cpu = _a.DEVICE_CPU
    if cfg is None:
        check(lib.fastmix_cutmix_apply_u8(cpu, in_lay, dummy, b, c, h, w, stride,
                                          mean.ctypes.data, std.ctypes.data, code, out_lay, dummy,
                                          ostride, dummy, dummy, dummy, None))
    else:
        check(lib.fastmix_cutmix_u8(cpu, ctypes.byref(cfg), 0, 0, in_lay, dummy, b, c, h, w,
                                    stride, mean.ctypes.data, std.ctypes.data, code, out_lay,
                                    dummy, ostride, dummy, dummy, dummy, None))


def check_u8_memory(func, dx: "_a.Desc", do: "_a.Desc", batch, elems, stride, ostride):
    """What the C library checks of out's address (aligned, not overlapping
    x), checked here too so that a fused call refused for it takes no draw."""
    if batch == 0 or elems == 0:
        return
    if do.ptr % do.itemsize:
        raise_invalid(f"{func}: out must be aligned to its element size ({do.itemsize} bytes)")
    x_end = dx.ptr + (batch - 1) * stride + elems
    out_end = do.ptr + ((batch - 1) * ostride + elems) * do.itemsize
    if dx.ptr < out_end and do.ptr < x_end:
        raise_invalid(f"{func}: out overlaps x (uint8 in, {do.dtype} out: there is no in place)")


def cutmix_apply_u8(x, mean, std, lambdas, partners, boxes, *, dtype=None, in_layout="nhwc",
                    out_layout="nchw", out=None):
    """Applies a draw of ``cutmix_sample`` to a batch of uint8 images and
    normalizes, in one pass: ``out = (v / 255 - mean) / std`` per channel,
    where v is the mixed pixel (a mixup sample's float32 blend of the two
    bytes, a CutMix sample's own or partner's byte), rounded once to
    ``dtype``.

    ``x``: uint8 ``(batch, height, width, channels)`` for ``in_layout="nhwc"``
    (decoders' HWC images, stacked), ``(batch, channels, height, width)`` for
    "nchw"; each image dense, the batch may be strided; 1 to 64 channels.
    ``mean``, ``std``: one value per channel (or one for all), in the 0-1
    scale (torchvision's ``(0.485, 0.456, 0.406)``, ``(0.229, 0.224,
    0.225)``); host values (a list, a tuple, a NumPy array, a CPU tensor),
    rounded to float32.  ``dtype``: float32, float16 or bfloat16 (a name, a
    NumPy dtype or a torch.dtype); None is out's dtype, or float32.  The
    result, allocated when ``out`` is None in x's library on x's device, is
    ``(batch, channels, height, width)`` for ``out_layout="nchw"`` and
    ``(batch, height, width, channels)`` for "nhwc"; a given ``out`` must
    have that shape and dtype (each image dense, the batch may be strided).
    ``lambdas``, ``partners``, ``boxes``: as for ``cutmix_apply``.  Returns
    ``out``.
    """
    func = "fastmix.cutmix_apply_u8"
    in_lay = layout_code(in_layout, func, "in_layout")
    out_lay = layout_code(out_layout, func, "out_layout")
    dx, batch, c, h, w, stride = u8_images(func, x, in_lay)
    m = norm_values(mean, c, func, "mean")
    s = norm_values(std, c, func, "std")
    do, out, code, ostride = u8_out(func, dx, out, dtype, batch, c, h, w, out_lay)
    dl, dp = _o.pair(func, dx, batch, lambdas, partners, "x", required=True)
    db = _o.boxes(func, dx, boxes, batch)
    scratch = _a.Scratch(dx)
    run("fastmix_cutmix_apply_u8", dx, in_lay, scratch.ptr(dx), batch, c, h, w, stride,
        m.ctypes.data, s.ctypes.data, code, out_lay, scratch.ptr(do), ostride, scratch.ptr(dl),
        scratch.ptr(dp), scratch.ptr(db))
    return out


def cutmix_u8(x, mean, std, *, dtype=None, in_layout="nhwc", out_layout="nchw", mixup_alpha=0.0,
              cutmix_alpha=1.0, cutmix_minmax=None, prob=1.0, switch_prob=0.5, mode="elem",
              pairing=None, correct_lam=True, fold=False, generator=None, out=None):
    """``cutmix_sample`` for x's images followed by ``cutmix_apply_u8``,
    bitwise the same, in one call (on CUDA a small draw kernel, then one
    pass that reads each byte once and writes each output element once):
    uint8 images in, mixed and normalized float images out.  The draw
    options are ``cutmix_sample``'s, the image arguments
    ``cutmix_apply_u8``'s.  Returns ``(out, lambdas, partners, boxes)``.
    Invalid arguments raise before a draw is taken from the generator.
    """
    func = "fastmix.cutmix_u8"
    cfg = cut_config(func, mixup_alpha, cutmix_alpha, cutmix_minmax, prob, switch_prob, mode,
                  pairing, correct_lam, fold)
    in_lay = layout_code(in_layout, func, "in_layout")
    out_lay = layout_code(out_layout, func, "out_layout")
    g = resolve(generator)
    dx, batch, c, h, w, stride = u8_images(func, x, in_lay)
    m = norm_values(mean, c, func, "mean")
    s = norm_values(std, c, func, "std")
    do, out, code, ostride = u8_out(func, dx, out, dtype, batch, c, h, w, out_lay)
    check_u8(func, cfg, in_lay, batch, c, h, w, stride, m, s, code, out_lay, ostride)
    check_u8_memory(func, dx, do, batch, c * h * w, stride, ostride)
    (lambdas, partners, boxes), (dl, dp, db) = draw_outputs(dx, batch, func, boxes=True)
    scratch = _a.Scratch(dx)
    run_drawing("fastmix_cutmix_u8", g, dx, func, "x", (ctypes.byref(cfg),),
                (in_lay, scratch.ptr(dx), batch, c, h, w, stride, m.ctypes.data, s.ctypes.data,
                 code, out_lay, scratch.ptr(do), ostride, scratch.ptr(dl), scratch.ptr(dp),
                 scratch.ptr(db)))
    return out, lambdas, partners, boxes
