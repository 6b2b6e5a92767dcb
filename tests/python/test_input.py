"""The uint8 input path (fastmix.cutmix_u8 / cutmix_apply_u8, fastmix.torch's
cutmix_u8 / cutmix_apply_u8 / MixUpU8, fastmix.loader) against a reference
written here from the contract in include/fastmix/fastmix.h, never computed
with fastmix:
  v   = the mixed pixel: a mixup sample's fl(fl(lam * a) + fl((1 - lam) * b))
        in float32, a CutMix sample's own or partner's byte;
  out = fl(fl(v * scale) + shift), scale = fl(1 / (255 std)), shift =
        fl(-mean / std) computed in float64, rounded once to the dtype;
evaluated in NumPy float32 arithmetic (one rounding per operation, never
fused) and compared bitwise, and within rounding against the exact
(v / 255 - mean) / std in float64.  Outputs are poisoned (NaN) first."""
import ctypes
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import fastmix
from conftest import REPO, edge_boxes, hand_made_draw, last_error

torch = pytest.importorskip("torch")
import fastmix.loader as fl  # noqa: E402
import fastmix.torch as ft  # noqa: E402

EPS32 = float(np.finfo(np.float32).eps)
LAYOUTS = ["nhwc", "nchw"]
DTYPES = ["float32", "float16", "bfloat16"]  # bfloat16 through PyTorch (NumPy has none)
TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


# --------------------------------------------------------------- reference ---

def npy(a):
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def to_nchw(x, layout):
    return x if layout == "nchw" else x.transpose(0, 3, 1, 2)


def from_nchw(a, layout):
    return a if layout == "nchw" else a.transpose(0, 2, 3, 1)


def ref_u8(x, mean, std, lambdas, partners, boxes, in_layout, out_layout):
    """(out32, exact, bound32) in out_layout's shape: out32 the header's
    float32 formula, bit for bit; exact the float64 (v / 255 - mean) / std of
    the exact mixed value; bound32 a bound on |out32 - exact|."""
    xc = to_nchw(npy(x), in_layout)
    b, c, h, w = xc.shape
    lam = npy(lambdas).astype(np.float32)
    par = npy(partners).astype(np.int64)
    boxes = npy(boxes).astype(np.int64)
    m32 = np.broadcast_to(np.asarray(mean, np.float32), (c,))
    s32 = np.broadcast_to(np.asarray(std, np.float32), (c,))
    m64, s64 = m32.astype(np.float64), s32.astype(np.float64)
    scale = (1.0 / (255.0 * s64)).astype(np.float32)[:, None, None]
    shift = (-m64 / s64).astype(np.float32)[:, None, None]
    v32 = np.empty(xc.shape, np.float32)
    v64 = np.empty(xc.shape, np.float64)
    terms = np.zeros(xc.shape, np.float64)  # |lam a| + |(1 - lam) b| of blended samples
    for i in range(b):
        a, p = xc[i], xc[par[i]]
        if (boxes[i] == -1).all():
            lam32 = np.float32(lam[i])
            mu32 = np.float32(1.0) - lam32
            v32[i] = lam32 * a.astype(np.float32) + mu32 * p.astype(np.float32)
            lam64 = float(lam32)
            v64[i] = lam64 * a + (1.0 - lam64) * p.astype(np.float64)
            terms[i] = np.abs(lam64 * a) + np.abs((1.0 - lam64) * p)
        else:
            y0, x0, y1, x1 = boxes[i]
            v = a.astype(np.float64)
            v[:, y0:y1, x0:x1] = p[:, y0:y1, x0:x1]
            v32[i], v64[i] = v, v
    out32 = v32 * scale + shift  # two float32 operations, each rounded
    exact = (v64 / 255.0 - m64[:, None, None]) / s64[:, None, None]
    sc64 = np.abs(1.0 / (255.0 * s64))[:, None, None]
    bound = (3 * EPS32 * terms * sc64
             + EPS32 * (2 * np.abs(v64) * sc64 + np.abs(m64 / s64)[:, None, None] + np.abs(exact)))
    return (from_nchw(out32, out_layout), from_nchw(exact, out_layout),
            from_nchw(bound, out_layout))


def bits(a, dtype):
    """The bits of an output (NumPy or torch) as a NumPy integer array."""
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().contiguous()
        return a.view(torch.int16 if a.element_size() == 2 else torch.int32).numpy()
    return np.ascontiguousarray(a).view(np.uint16 if a.itemsize == 2 else np.uint32).astype(
        np.int64).astype(np.int16 if a.itemsize == 2 else np.int32)


def rounded(out32, dtype):
    """out32 rounded once (to nearest even) to dtype, as bits."""
    if dtype == "float32":
        return out32.astype(np.float32).view(np.int32)
    if dtype == "float16":
        return out32.astype(np.float16).view(np.int16)
    return torch.from_numpy(np.ascontiguousarray(out32)).to(torch.bfloat16).view(
        torch.int16).numpy()


def assert_u8(out, x, mean, std, lambdas, partners, boxes, in_layout, out_layout, dtype):
    """out (out_layout's shape) bitwise the reference, and within rounding of the exact value."""
    out32, exact, bound32 = ref_u8(x, mean, std, lambdas, partners, boxes, in_layout, out_layout)
    got_bits = bits(out, dtype)
    want_bits = rounded(out32, dtype)
    assert got_bits.shape == want_bits.shape
    bad = got_bits != want_bits
    assert not bad.any(), (f"{bad.sum()} of {bad.size} elements differ from the float32 formula, "
                           f"first at {np.argwhere(bad)[0]}")
    got = (out.detach().cpu().double().numpy() if isinstance(out, torch.Tensor)
           else np.asarray(out, np.float64))
    eps = {"float32": EPS32, "float16": 2.0 ** -10, "bfloat16": 2.0 ** -7}[dtype]
    tiny = {"float32": 2.0 ** -149, "float16": 2.0 ** -24, "bfloat16": 2.0 ** -133}[dtype]
    bound = bound32 + 0.5 * eps * (np.abs(exact) + bound32) + tiny
    err = np.abs(got - exact)
    far = ~(err <= bound)
    assert not far.any(), (f"{far.sum()} elements beyond rounding of the exact value, first at "
                           f"{np.argwhere(far)[0]}: got {got[far][0]}, want {exact[far][0]}")


def make_draw(rng, b, h, w):
    """A hand-made draw with every kind of box: blends (lambda 0 and 1
    included), unmixed (0 box, its own partner), full, empty (at an edge and
    inside), single pixels at the corners, edge strips, a cut from itself."""
    kinds = edge_boxes(h, w) + [(-1, -1, -1, -1), (-1, -1, -1, -1), (0, 0, h, 1)]
    lam, par, boxes = hand_made_draw(rng, b, h, w, kinds, 0.4)
    if b > 9:
        lam[9] = 0.0  # all partner
    if b > 10:
        lam[10] = 1.0  # all itself, blended
    if b > 4:
        par[4] = 4  # a cut from itself: a copy
    return lam, par, boxes


def norm_values(rng, c):
    mean = rng.random(c).astype(np.float32)
    std = (0.05 + rng.random(c)).astype(np.float32)
    std[0] = np.float32(0.01)  # large outputs (up to 100)
    return mean, std


def images(rng, shape, layout):
    b, c, h, w = shape
    s = (b, h, w, c) if layout == "nhwc" else shape
    x = rng.integers(0, 256, s, dtype=np.uint8)
    if x.size:
        x.reshape(-1)[:2] = (0, 255)
    return x


def out_shape(shape, layout):
    b, c, h, w = shape
    return (b, h, w, c) if layout == "nhwc" else shape


SHAPES = [(13, 3, 7, 9), (11, 1, 1, 6), (12, 4, 8, 1), (10, 3, 1, 1), (1, 3, 4, 4), (0, 3, 4, 4),
          (14, 4, 5, 3), (12, 1, 6, 5)]


# ------------------------------------------------------------------- apply ---

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("out_layout", LAYOUTS)
@pytest.mark.parametrize("in_layout", LAYOUTS)
def test_apply_reference(rng, in_layout, out_layout, shape, dtype):
    b, c, h, w = shape
    x = images(rng, shape, in_layout)
    mean, std = norm_values(rng, c)
    lam, par, boxes = make_draw(rng, b, h, w)
    if dtype == "bfloat16":  # through PyTorch tensors, the library that has bfloat16
        xa, lama, para, boxa = (torch.from_numpy(a) for a in (x, lam, par, boxes))
        out = torch.full(out_shape(shape, out_layout), float("nan"), dtype=torch.bfloat16)
    else:
        xa, lama, para, boxa = x, lam, par, boxes
        out = np.full(out_shape(shape, out_layout), np.nan, dtype)
    x0 = x.copy()
    r = fastmix.cutmix_apply_u8(xa, mean, std, lama, para, boxa, in_layout=in_layout,
                                out_layout=out_layout, out=out)
    assert r is out
    assert_u8(out, x, mean, std, lam, par, boxes, in_layout, out_layout, dtype)
    np.testing.assert_array_equal(x, x0)  # the input is left alone
    # allocated: x's library, out_layout's shape, dtype
    alloc = fastmix.cutmix_apply_u8(xa, mean, std, lama, para, boxa, dtype=dtype,
                                    in_layout=in_layout, out_layout=out_layout)
    assert type(alloc) is type(out) and tuple(alloc.shape) == out_shape(shape, out_layout)
    np.testing.assert_array_equal(bits(alloc, dtype), bits(out, dtype))


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("out_layout", LAYOUTS)
@pytest.mark.parametrize("in_layout", LAYOUTS)
def test_strided_batches_and_untouched_gaps(rng, in_layout, out_layout, dtype):
    b, c, h, w = 9, 3, 5, 7
    base = images(rng, (2 * b, c, h, w), in_layout)
    x = base[::2]  # a batch stride of two images
    mean, std = norm_values(rng, c)
    lam, par, boxes = make_draw(rng, b, h, w)
    out_base = np.full((2 * b,) + out_shape((b, c, h, w), out_layout)[1:], np.nan, dtype)
    out = out_base[1::2]
    fastmix.cutmix_apply_u8(x, mean, std, lam, par, boxes, in_layout=in_layout,
                            out_layout=out_layout, out=out)
    assert_u8(out, x, mean, std, lam, par, boxes, in_layout, out_layout, dtype)
    assert np.isnan(out_base[::2]).all()  # the elements between images are never written
    # the same through the fused form, PyTorch views of the same memory
    g = fastmix.Generator(5)
    xt = torch.from_numpy(base)[::2]
    o, lam2, par2, boxes2 = fastmix.cutmix_u8(xt, mean, std, dtype=dtype, in_layout=in_layout,
                                              out_layout=out_layout, mixup_alpha=0.5,
                                              prob=0.8, generator=g)
    assert isinstance(o, torch.Tensor)
    assert_u8(o, x, mean, std, lam2, par2, boxes2, in_layout, out_layout, dtype)


@pytest.mark.parametrize("c", [1, 2, 64])
def test_channel_counts_and_broadcast_mean_std(rng, c):
    b, h, w = 5, 3, 4
    x = images(rng, (b, c, h, w), "nhwc")
    lam, par, boxes = make_draw(rng, b, h, w)
    out = fastmix.cutmix_apply_u8(x, 0.5, [0.25], lam, par, boxes)
    assert_u8(out, x, [0.5] * c, [0.25] * c, lam, par, boxes, "nhwc", "nchw", "float32")
    # numbers of every kind: NumPy scalars and arrays, a CPU tensor, ints
    mean, std = norm_values(rng, c)
    for m, s in ((mean, std), (torch.from_numpy(mean), tuple(std.tolist())),
                 (list(mean.astype(np.float64)), std.astype(np.float16).astype(np.float32))):
        out = fastmix.cutmix_apply_u8(x, m, s, lam, par, boxes)
        assert_u8(out, x, npy(m), npy(s), lam, par, boxes, "nhwc", "nchw", "float32")
    out = fastmix.cutmix_apply_u8(x, 0, 1, lam, par, boxes)  # ints: v / 255
    assert_u8(out, x, [0.0] * c, [1.0] * c, lam, par, boxes, "nhwc", "nchw", "float32")


def test_identity_draw_is_plain_normalization(rng):
    b, c, h, w = 6, 3, 5, 4
    x = images(rng, (b, c, h, w), "nhwc")
    out = fastmix.cutmix_apply_u8(x, MEAN, STD, np.ones(b, np.float32), np.arange(b),
                                  np.zeros((b, 4), np.int32))
    m = np.asarray(MEAN, np.float32).astype(np.float64)[:, None, None]
    s = np.asarray(STD, np.float32).astype(np.float64)[:, None, None]
    want = (x.transpose(0, 3, 1, 2) / 255.0 - m) / s
    np.testing.assert_allclose(out, want, rtol=4 * EPS32, atol=8 * EPS32)
    # torchvision's ToTensor + Normalize, within float32 rounding
    tv = ((torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255.0
           - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1))
    torch.testing.assert_close(torch.from_numpy(out), tv, rtol=1e-6, atol=2e-6)


# ------------------------------------------------------------- fused forms ---

CONFIGS = [dict(), dict(mixup_alpha=0.8, cutmix_alpha=1.0, prob=0.8),
           dict(mixup_alpha=0.4, cutmix_alpha=0.0, fold=True),
           dict(mixup_alpha=0.0, cutmix_minmax=(0.2, 0.8), mode="batch", pairing="roll"),
           dict(mixup_alpha=1.0, cutmix_alpha=1.0, mode="pair", correct_lam=False)]


@pytest.mark.parametrize("cfg", range(len(CONFIGS)))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layouts", [("nhwc", "nchw"), ("nchw", "nhwc"), ("nhwc", "nhwc")])
def test_fused_is_sample_then_apply(rng, layouts, dtype, cfg):
    in_layout, out_layout = layouts
    kw = CONFIGS[cfg]
    b, c, h, w = 16, 3, 9, 11
    x = images(rng, (b, c, h, w), in_layout)
    if dtype == "bfloat16":
        x = torch.from_numpy(x)
    mean, std = norm_values(rng, c)
    g = fastmix.Generator(1234 + cfg)
    out, lam, par, boxes = fastmix.cutmix_u8(x, mean, std, dtype=dtype, in_layout=in_layout,
                                             out_layout=out_layout, generator=g, **kw)
    assert g.offset == 1
    assert lam.shape == (b,) and par.shape == (b,) and tuple(boxes.shape) == (b, 4)
    lam_s, par_s, boxes_s = fastmix.cutmix_sample(b, h, w, generator=fastmix.Generator(1234 + cfg),
                                                  like=x, **kw)
    for a, s in zip((lam, par, boxes), (lam_s, par_s, boxes_s)):
        np.testing.assert_array_equal(npy(a), npy(s))
    applied = fastmix.cutmix_apply_u8(x, mean, std, lam_s, par_s, boxes_s, dtype=dtype,
                                      in_layout=in_layout, out_layout=out_layout)
    np.testing.assert_array_equal(bits(out, dtype), bits(applied, dtype))
    assert_u8(out, npy(x), mean, std, lam, par, boxes, in_layout, out_layout, dtype)


def test_fused_matches_the_c_abi_and_the_device_seed_form(rng):
    lib = fastmix._lib.lib
    b, c, h, w = 12, 3, 6, 5
    x = images(rng, (b, c, h, w), "nhwc")
    mean, std = norm_values(rng, c)
    cfg = fastmix._lib.MixConfig(0.8, 1.0, 0.0, 0.0, 0.9, 0.5, 0, 0, 1, 0)

    def outputs():
        return (np.full((b, h, w, c), np.nan, np.float32), np.full(b, np.nan, np.float32),
                np.full(b, -7, np.int64), np.full((b, 4), -9, np.int32))

    o, lam, par, boxes = outputs()
    st = lib.fastmix_cutmix_u8(0, ctypes.byref(cfg), 77, 3, 1, x.ctypes.data, b, c, h, w,
                               c * h * w, mean.ctypes.data, std.ctypes.data, 0, 1, o.ctypes.data,
                               c * h * w, lam.ctypes.data, par.ctypes.data, boxes.ctypes.data,
                               None)
    assert st == 0, last_error()
    g = fastmix.Generator(77)
    g.offset = 3
    got = fastmix.cutmix_u8(x, mean, std, out_layout="nhwc", mixup_alpha=0.8, cutmix_alpha=1.0,
                            prob=0.9, generator=g)
    for a, want in zip(got, (o, lam, par, boxes)):
        np.testing.assert_array_equal(np.ascontiguousarray(a).view(np.uint8),
                                      want.view(np.uint8))
    # seed and offset read from (host) memory, the offset advanced by the increment
    so = np.array([77, 3], np.uint64)
    o2, lam2, par2, boxes2 = outputs()
    st = lib.fastmix_cutmix_u8_device_seed(0, ctypes.byref(cfg), so.ctypes.data, 5, 1,
                                           x.ctypes.data, b, c, h, w, c * h * w, mean.ctypes.data,
                                           std.ctypes.data, 0, 1, o2.ctypes.data, c * h * w,
                                           lam2.ctypes.data, par2.ctypes.data, boxes2.ctypes.data,
                                           None)
    assert st == 0, last_error()
    assert so[1] == 8
    for a, want in zip((o2, lam2, par2, boxes2), (o, lam, par, boxes)):
        np.testing.assert_array_equal(a.view(np.uint8), want.view(np.uint8))


def test_batch_zero():
    x = np.zeros((0, 4, 4, 3), np.uint8)
    out, lam, par, boxes = fastmix.cutmix_u8(x, MEAN, STD, generator=fastmix.Generator(0))
    assert out.shape == (0, 3, 4, 4) and out.dtype == np.float32 and boxes.shape == (0, 4)
    out = fastmix.cutmix_apply_u8(torch.from_numpy(x), MEAN, STD, torch.zeros(0),
                                  torch.zeros(0, dtype=torch.int64),
                                  torch.zeros(0, 4, dtype=torch.int32), dtype="bfloat16")
    assert isinstance(out, torch.Tensor) and out.shape == (0, 3, 4, 4)


# ------------------------------------------------------------------ errors ---

def test_errors_name_the_parameter(rng):
    b, c, h, w = 4, 3, 5, 6
    x = images(rng, (b, c, h, w), "nhwc")
    lam, par, boxes = make_draw(rng, b, h, w)
    g = fastmix.Generator(9)

    def fails(match, *args, c_message=False, poisoned=True, **kw):
        out = kw.get("out") if poisoned else None
        with pytest.raises(fastmix.InvalidValueError, match=match) as e:
            fastmix.cutmix_u8(*args, generator=g, **kw)
        if c_message:
            assert str(e.value) == last_error()
        if out is not None and out.dtype.kind == "f":
            assert np.isnan(out).all()  # a failed call writes nothing
        return e

    fails("dtype float32", x.astype(np.float32), MEAN, STD)
    fails("x must have shape", x[..., 0], MEAN, STD)
    fails("x must have shape", x[None], MEAN, STD)
    fails("mean must have 3 values", x, (0.5, 0.5), STD)
    fails("std must have 3 values", x, MEAN, np.ones((3, 1)))
    fails("mean must be a real number", x, "0.5", STD)
    fails("std must be a real number", x, MEAN, (0.2, None, 0.2))
    fails(r"std\[1\] must be finite and > 0", x, MEAN, (0.2, 0.0, 0.2), c_message=True)
    fails(r"std\[2\] must be finite and > 0", x, MEAN, (0.2, 0.2, -1.0), c_message=True)
    fails(r"std\[0\] must be finite", x, MEAN, (np.nan, 0.2, 0.2), c_message=True)
    fails(r"mean\[1\] must be finite", x, (0.1, np.inf, 0.1), STD, c_message=True)
    fails(r"std\[0\]", x, MEAN, (1e-50, 0.2, 0.2), c_message=True)  # 0 in float32
    fails("dtype must be float32, float16 or bfloat16", x, MEAN, STD, dtype="float64")
    fails("dtype must be float32, float16 or bfloat16", x, MEAN, STD, dtype=np.int32)
    fails("in_layout must be 'nchw' or 'nhwc'", x, MEAN, STD, in_layout="hwc")
    fails("out_layout must be 'nchw' or 'nhwc'", x, MEAN, STD, out_layout=None)
    fails("x has 65 channels", np.zeros((2, 3, 3, 65), np.uint8), 0.5, 0.5)
    fails("x has 0 channels", np.zeros((2, 3, 3, 0), np.uint8), 0.5, 0.5)
    fails("height", np.zeros((2, 0, 3, 3), np.uint8), MEAN, STD, c_message=True)
    fails("prob", x, MEAN, STD, prob=1.5, c_message=True)
    fails("pairing", x, MEAN, STD, mode="pair", pairing="roll", c_message=True)
    # out: shape, dtype, layout, density, overlap
    fails(r"out must have shape \(4, 3, 5, 6\)", x, MEAN, STD,
          out=np.full((4, 5, 6, 3), np.nan, np.float32))
    fails("out must have shape .* and dtype float16", x, MEAN, STD, dtype="float16",
          out=np.full((4, 3, 5, 6), np.nan, np.float32))
    fails("out has dtype float64", x, MEAN, STD, out=np.full((4, 3, 5, 6), np.nan))
    fails("contiguous", x, MEAN, STD, out=np.full((4, 3, 5, 12), np.nan, np.float32)[..., ::2])
    if not _has_ml_dtypes():
        fails("bfloat16 with NumPy arrays needs the ml_dtypes", x, MEAN, STD, dtype="bfloat16")
    buf = np.full(b * c * h * w, np.nan, np.float32)
    xo = buf.view(np.uint8)[:b * c * h * w].reshape(b, h, w, c)
    xo[...] = x
    fails("out overlaps x", xo, MEAN, STD, out=buf.reshape(b, c, h, w), poisoned=False)
    np.testing.assert_array_equal(xo, x)
    raw = np.full(b * c * h * w + 1, np.nan, np.float32)
    misaligned = raw.view(np.uint8)[2:2 + 4 * b * c * h * w].view(np.float32).reshape(b, c, h, w)
    fails("aligned", x, MEAN, STD, out=misaligned, poisoned=False)
    # a channels_last tensor passed as NCHW: the hint says how
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)
    fails("in_layout='nhwc'", xt, MEAN, STD, in_layout="nchw")
    # host values only
    fails("mean must be host values", x, torch.zeros(3, device="meta"), STD)
    with pytest.raises(TypeError):
        fastmix.cutmix_u8([[1, 2]], MEAN, STD, generator=g)
    assert g.offset == 0  # no failed call took a draw
    # the apply: lambdas, partners, boxes as for cutmix_apply, checked before writing
    out = np.full((b, c, h, w), np.nan, np.float32)

    def apply_fails(match, lam=lam, par=par, boxes=boxes, std=STD, c_message=False):
        with pytest.raises(fastmix.InvalidValueError, match=match) as e:
            fastmix.cutmix_apply_u8(x, MEAN, std, lam, par, boxes, out=out)
        if c_message:
            assert str(e.value) == last_error()
        assert np.isnan(out).all()

    apply_fails("lambdas must have shape", lam=lam[:-1])
    apply_fails("partners has dtype", par=par.astype(np.float32))
    apply_fails(r"boxes must have shape \(4, 4\)", boxes=boxes[:, :3])
    bad = par.copy()
    bad[2] = b
    apply_fails("partners", par=bad, c_message=True)
    bad = boxes.copy()
    bad[1] = (0, 0, h + 1, 1)
    apply_fails("boxes", boxes=bad, c_message=True)
    apply_fails(r"std\[1\]", std=(0.2, -0.2, 0.2), c_message=True)
    # out overlapping x: the C library refuses it
    xo = out.view(np.uint8).reshape(-1)[:b * c * h * w].reshape(b, h, w, c)
    with pytest.raises(fastmix.InvalidValueError, match="overlaps") as e:
        fastmix.cutmix_apply_u8(xo, MEAN, STD, lam, par, boxes, out=out)
    assert str(e.value) == last_error()


def _has_ml_dtypes():
    try:
        import ml_dtypes  # noqa: F401
        return True
    except ImportError:
        return False


# ------------------------------------------------------------------ torch ---

@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_cutmix_u8_layouts(rng, dtype):
    tdt = TORCH_DTYPES[dtype]
    b, c, h, w = 10, 3, 7, 5
    x = torch.from_numpy(images(rng, (b, c, h, w), "nhwc"))
    kw = dict(mixup_alpha=0.8, cutmix_alpha=1.0, prob=0.9)
    o, lam, par, boxes = ft.cutmix_u8(x, MEAN, STD, dtype=tdt, generator=fastmix.Generator(4),
                                      **kw)
    assert o.shape == (b, c, h, w) and o.dtype == tdt and o.is_contiguous()
    assert lam.dtype == torch.float32 and par.dtype == torch.int64 and boxes.dtype == torch.int32
    assert_u8(o, x.numpy(), MEAN, STD, lam, par, boxes, "nhwc", "nchw", dtype)
    # the NumPy-level function, the same draw: the same bits
    if dtype != "bfloat16":
        on, *_ = fastmix.cutmix_u8(x.numpy(), MEAN, STD, dtype=dtype,
                                   generator=fastmix.Generator(4), **kw)
        np.testing.assert_array_equal(bits(o, dtype), bits(on, dtype))
    # out_layout "nhwc": a (B, C, H, W) tensor in channels_last memory format
    ocl, lam2, *_ = ft.cutmix_u8(x, MEAN, STD, dtype=tdt, out_layout="nhwc",
                                 generator=fastmix.Generator(4), **kw)
    assert ocl.shape == (b, c, h, w) and ocl.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(lam2, lam) and torch.equal(bits_t(ocl), bits_t(o))
    # in_layout "nchw": contiguous NCHW, and a channels_last tensor read as it is stored
    xn = x.permute(0, 3, 1, 2).contiguous()
    on2, *_ = ft.cutmix_u8(xn, MEAN, STD, dtype=tdt, in_layout="nchw",
                           generator=fastmix.Generator(4), **kw)
    assert torch.equal(bits_t(on2), bits_t(o))
    xcl = x.permute(0, 3, 1, 2)  # channels_last, no copy
    assert xcl.is_contiguous(memory_format=torch.channels_last)
    on3, *_ = ft.cutmix_u8(xcl, MEAN, STD, dtype=tdt, in_layout="nchw",
                           generator=fastmix.Generator(4), **kw)
    assert torch.equal(bits_t(on3), bits_t(o))
    # images that are not dense (a crop) are copied; a strided batch is read in place
    big = torch.from_numpy(images(rng, (2 * b, c, h + 2, w), "nhwc"))
    crop = big[::2, 1:h + 1]
    oc, lc, pc, bc = ft.cutmix_u8(crop, MEAN, STD, dtype=tdt, generator=fastmix.Generator(6), **kw)
    assert_u8(oc, crop.numpy(), MEAN, STD, lc, pc, bc, "nhwc", "nchw", dtype)


def bits_t(t):
    t = t.contiguous()
    return t.view(torch.int16 if t.element_size() == 2 else torch.int32)


def test_torch_cutmix_apply_u8_and_errors(rng):
    b, c, h, w = 6, 3, 4, 5
    x = torch.from_numpy(images(rng, (b, c, h, w), "nhwc"))
    lam, par, boxes = (torch.from_numpy(a) for a in make_draw(rng, b, h, w))
    o = ft.cutmix_apply_u8(x, MEAN, STD, lam, par, boxes, dtype=torch.float16,
                           out_layout="nhwc")
    assert o.shape == (b, c, h, w) and o.is_contiguous(memory_format=torch.channels_last)
    assert_u8(o.permute(0, 2, 3, 1), x.numpy(), MEAN, STD, lam, par, boxes, "nhwc", "nhwc",
              "float16")
    g = fastmix.Generator(0)
    with pytest.raises(fastmix.InvalidValueError, match="dtype must be torch.float32"):
        ft.cutmix_u8(x, MEAN, STD, dtype=torch.float64, generator=g)
    with pytest.raises(fastmix.InvalidValueError, match="x has dtype float32"):
        ft.cutmix_u8(x.float(), MEAN, STD, generator=g)
    with pytest.raises(fastmix.InvalidValueError, match="mean must have 3 values"):
        ft.cutmix_u8(x, (0.5, 0.5), STD, generator=g)
    with pytest.raises(fastmix.InvalidValueError, match=r"std\[0\]"):
        ft.cutmix_u8(x, MEAN, 0.0, generator=g)
    with pytest.raises(fastmix.InvalidValueError, match="switch_prob"):
        ft.cutmix_u8(x, MEAN, STD, mixup_alpha=0.5, switch_prob=2.0, generator=g)
    with pytest.raises(fastmix.InvalidValueError, match="in_layout"):
        ft.cutmix_u8(x, MEAN, STD, in_layout="NHCW", generator=g)
    with pytest.raises(TypeError):
        ft.cutmix_u8(x.numpy(), MEAN, STD, generator=g)
    assert g.offset == 0


def test_torch_ops_opcheck_and_compile(rng):
    b, c, h, w = 5, 3, 4, 6
    x = torch.from_numpy(images(rng, (b, c, h, w), "nhwc"))
    lam, par, boxes = (torch.from_numpy(a) for a in make_draw(rng, b, h, w))
    cfg = [0.8, 1.0, 0.0, 0.0, 1.0, 0.5]
    for dtype in (torch.float32, torch.bfloat16):
        for lay in (0, 1):
            torch.library.opcheck(torch.ops.fastmix.cutmix_u8.default,
                                  (x, list(MEAN), list(STD), dtype, 1, lay, cfg, 0, 0, True,
                                   False, 3, 1))
            torch.library.opcheck(torch.ops.fastmix.cutmix_apply_u8.default,
                                  (x, list(MEAN), list(STD), lam, par, boxes, dtype, 1, lay))
    torch._dynamo.reset()
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(c * h * w, 4))
    y = torch.randint(0, 4, (b,))

    def step(xu8, lam, par, boxes):
        xf = ft.cutmix_apply_u8(xu8, MEAN, STD, lam, par, boxes)
        return ft.cross_entropy(model(xf), ft.MixedTarget(y, lam, par))

    compiled = torch.compile(step, backend="aot_eager")
    torch.testing.assert_close(compiled(x, lam, par, boxes), step(x, lam, par, boxes))


def test_mixupu8_module(rng):
    b, c, h, w = 8, 3, 6, 7
    x = torch.from_numpy(images(rng, (b, c, h, w), "nhwc"))
    y = torch.randint(0, 10, (b,))
    mod = ft.MixUpU8(MEAN, STD, torch.float16, mixup_alpha=0.8, cutmix_alpha=1.0,
                     generator=fastmix.Generator(11))
    assert "mean=(0.485, 0.456, 0.406)" in repr(mod) and "mixup_alpha=0.8" in repr(mod)
    xm, t = mod(x, y)
    assert isinstance(t, ft.MixedTarget) and t.labels is y
    assert xm.shape == (b, c, h, w) and xm.dtype == torch.float16
    want, lam, par, boxes = ft.cutmix_u8(x, MEAN, STD, dtype=torch.float16, mixup_alpha=0.8,
                                         cutmix_alpha=1.0, generator=fastmix.Generator(11))
    assert torch.equal(bits_t(xm), bits_t(want)) and torch.equal(t.lambdas, lam)
    assert torch.equal(t.partners, par) and torch.equal(mod.boxes, boxes)
    # the fused loss takes the target
    logits = torch.randn(b, 10, requires_grad=True)
    ft.cross_entropy(logits, t).backward()
    # eval mode and mixup_enabled = False: normalization only, no draw taken
    offset = mod.generator.offset
    for switch in ("eval", "disabled"):
        if switch == "eval":
            mod.eval()
        else:
            mod.train()
            mod.mixup_enabled = False
        xe, te = mod(x, y)
        assert (te.lambdas == 1).all() and torch.equal(te.partners, torch.arange(b))
        assert_u8(xe, x.numpy(), MEAN, STD, te.lambdas, te.partners, torch.zeros(b, 4), "nhwc",
                  "nchw", "float16")
    assert mod.generator.offset == offset
    # no mixing at all: a Normalize for uint8 images; channels_last; NCHW input
    norm = ft.MixUpU8(0.5, 0.25, torch.bfloat16, mixup_alpha=0.0, cutmix_alpha=0.0,
                      channels_last=True, in_layout="nchw")
    xn, tn = norm(x.permute(0, 3, 1, 2).contiguous(), y)
    assert xn.is_contiguous(memory_format=torch.channels_last) and xn.dtype == torch.bfloat16
    assert_u8(xn, x.numpy(), [0.5] * c, [0.25] * c, tn.lambdas, tn.partners, torch.zeros(b, 4),
              "nhwc", "nchw", "bfloat16")
    # errors
    with pytest.raises(fastmix.InvalidValueError, match=r"std\[1\]"):
        ft.MixUpU8(MEAN, (0.2, 0.0, 0.2))
    with pytest.raises(fastmix.InvalidValueError, match="as many values"):
        ft.MixUpU8(MEAN, (0.2, 0.2))
    with pytest.raises(fastmix.InvalidValueError, match="dtype"):
        ft.MixUpU8(MEAN, STD, torch.float64)
    with pytest.raises(fastmix.InvalidValueError, match="prob"):
        ft.MixUpU8(MEAN, STD, prob=-0.5)
    with pytest.raises(fastmix.InvalidValueError, match="labels"):
        mod.train()
        mod.mixup_enabled = True
        mod(x, y[:-1])
    with pytest.raises(fastmix.InvalidValueError, match="mean must have 4 values"):
        mod(torch.zeros(2, 3, 3, 4, dtype=torch.uint8), y[:2])


# ------------------------------------------------------------------ loader ---

def test_fast_collate_u8(rng):
    h, w = 5, 4
    hwc = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(3)]
    batch = [(hwc[0], 1), (torch.from_numpy(hwc[1]).permute(2, 0, 1).contiguous(), np.int64(2)),
             (hwc[2], torch.tensor(3))]
    images_, labels = fl.fast_collate_u8(batch)
    assert images_.dtype == torch.uint8 and images_.shape == (3, h, w, 3)
    assert labels.dtype == torch.int64 and labels.tolist() == [1, 2, 3]
    assert images_.is_pinned() == torch.cuda.is_available()
    np.testing.assert_array_equal(images_.numpy(), np.stack(hwc))
    gray, _ = fl.fast_collate_u8([(hwc[0][..., 0], 0), (torch.from_numpy(hwc[1][..., 0]), 1)],
                                 pin_memory=False)
    assert gray.shape == (2, h, w, 1) and not gray.is_pinned()
    np.testing.assert_array_equal(gray.numpy()[..., 0], np.stack([hwc[0][..., 0],
                                                                  hwc[1][..., 0]]))
    func = "fastmix.loader.fast_collate_u8"
    with pytest.raises(fastmix.InvalidValueError, match=r"same size.*batch\[1\]"):
        fl.fast_collate_u8([(hwc[0], 0), (hwc[1][:4], 1)])
    with pytest.raises(fastmix.InvalidValueError, match=r"batch\[1\]'s image has dtype float32"):
        fl.fast_collate_u8([(hwc[0], 0), (hwc[1].astype(np.float32), 1)])
    with pytest.raises(fastmix.InvalidValueError, match=r"batch\[0\]'s label must be an integer"):
        fl.fast_collate_u8([(hwc[0], 0.5)])
    with pytest.raises(fastmix.InvalidValueError, match=r"batch\[0\] must be an \(image, label\)"):
        fl.fast_collate_u8([hwc[0]])
    with pytest.raises(fastmix.InvalidValueError, match=func):
        fl.fast_collate_u8([])


class _Images(torch.utils.data.Dataset):
    def __init__(self, rng, n, h, w):
        self.x = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
        self.y = rng.integers(0, 7, n)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


def test_prefetch_loader_cpu(rng):
    ds = _Images(rng, 37, 6, 5)
    dl = torch.utils.data.DataLoader(ds, batch_size=8, collate_fn=fl.fast_collate_u8)
    kw = dict(mixup_alpha=0.8, cutmix_alpha=1.0, prob=0.9)
    loader = fl.PrefetchLoaderU8(dl, MEAN, STD, device="cpu", generator=fastmix.Generator(21),
                                 **kw)
    assert len(loader) == 5 and loader.dataset is ds and loader.mixup_enabled
    g = fastmix.Generator(21)
    n = 0
    for (x, t), (xu8, y) in zip(loader, dl):
        assert x.dtype == torch.float16 and x.shape == (xu8.shape[0], 3, 6, 5)  # the default
        assert isinstance(t, ft.MixedTarget) and torch.equal(t.labels, y)
        want, lam, par, boxes = ft.cutmix_u8(xu8, MEAN, STD, dtype=torch.float16, generator=g,
                                             **kw)
        assert torch.equal(bits_t(x), bits_t(want))
        assert torch.equal(t.lambdas, lam) and torch.equal(t.partners, par)
        assert_u8(x, xu8.numpy(), MEAN, STD, lam, par, boxes, "nhwc", "nchw", "float16")
        n += xu8.shape[0]
    assert n == 37
    # channels_last, float32
    cl = fl.PrefetchLoaderU8(dl, MEAN, STD, device="cpu", dtype=torch.float32,
                             channels_last=True, generator=fastmix.Generator(21), **kw)
    for (x, _), (xr, _) in zip(cl, fl.PrefetchLoaderU8(dl, MEAN, STD, device="cpu",
                                                        dtype=torch.float32,
                                                        generator=fastmix.Generator(21), **kw)):
        assert x.is_contiguous(memory_format=torch.channels_last) and torch.equal(x, xr)
    # no mixing (the default): normalization only, the labels as the target
    plain = fl.PrefetchLoaderU8(dl, MEAN, STD, dtype=torch.float32)
    assert not plain.mixup_enabled
    assert plain.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    plain = fl.PrefetchLoaderU8(dl, MEAN, STD, device="cpu", dtype=torch.float32)
    for (x, y), (xu8, yr) in zip(plain, dl):
        assert isinstance(y, torch.Tensor) and torch.equal(y, yr)
        b = xu8.shape[0]
        assert_u8(x, xu8.numpy(), MEAN, STD, np.ones(b), np.arange(b), np.zeros((b, 4)), "nhwc",
                  "nchw", "float32")
    # mixup_enabled = False: unmixed, still a MixedTarget, no draw taken
    gen = fastmix.Generator(3)
    off = fl.PrefetchLoaderU8(dl, MEAN, STD, device="cpu", generator=gen, **kw)
    off.mixup_enabled = False
    for x, t in off:
        assert isinstance(t, ft.MixedTarget) and (t.lambdas == 1).all()
    assert gen.offset == 0
    # a loader that yields something else
    with pytest.raises(TypeError, match="fast_collate_u8"):
        next(iter(fl.PrefetchLoaderU8([(np.zeros((1, 2, 2, 3), np.uint8), [0])], MEAN, STD,
                                      device="cpu")))
    if not torch.cuda.is_available():
        with pytest.raises(fastmix.NoDeviceError):
            fl.PrefetchLoaderU8(dl, MEAN, STD, device="cuda")
    with pytest.raises(fastmix.InvalidValueError, match="device"):
        fl.PrefetchLoaderU8(dl, MEAN, STD, device="meta")


def test_prefetch_loader_with_workers(rng):
    # the collate in worker processes (never pinned there), the mixing in this one
    ds = _Images(rng, 24, 4, 4)
    dl = torch.utils.data.DataLoader(ds, batch_size=6, collate_fn=fl.fast_collate_u8,
                                     num_workers=2)
    loader = fl.PrefetchLoaderU8(dl, MEAN, STD, device="cpu", cutmix_alpha=1.0,
                                 generator=fastmix.Generator(8))
    ref = fl.PrefetchLoaderU8(torch.utils.data.DataLoader(ds, batch_size=6,
                                                          collate_fn=fl.fast_collate_u8),
                              MEAN, STD, device="cpu", cutmix_alpha=1.0,
                              generator=fastmix.Generator(8))
    got = list(loader)
    want = list(ref)
    assert len(got) == len(want) == 4
    for (x, t), (xr, tr) in zip(got, want):
        assert torch.equal(bits_t(x), bits_t(xr)) and torch.equal(t.labels, tr.labels)


def test_loader_example():
    script = os.path.join(REPO, "docs", "examples", "loader_u8.py")
    r = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"first loss ([0-9.]+)\s+last loss ([0-9.]+)\s+accuracy ([0-9.]+)", r.stdout)
    assert m, r.stdout
    first, last, accuracy = (float(v) for v in m.groups())
    assert last < 0.8 * first, r.stdout
    assert accuracy > 0.8, r.stdout


# -------------------------------------------------------------------- CUDA ---

cuda = pytest.mark.skipif(fastmix.cuda_device_count() == 0 or not torch.cuda.is_available(),
                          reason="no CUDA device")


@cuda
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layouts", [("nhwc", "nchw"), ("nchw", "nhwc")])
def test_cuda_matches_cpu(rng, dtype, layouts):
    in_layout, out_layout = layouts
    b, c, h, w = 33, 3, 17, 23
    x = torch.from_numpy(images(rng, (2 * b, c, h, w), in_layout))[::2]
    mean, std = norm_values(rng, c)
    kw = dict(mixup_alpha=0.8, cutmix_alpha=1.0, prob=0.9, dtype=dtype, in_layout=in_layout,
              out_layout=out_layout)
    o_cpu, lam_cpu, par_cpu, box_cpu = fastmix.cutmix_u8(x, mean, std,
                                                         generator=fastmix.Generator(2), **kw)
    xc = x.cuda()
    o, lam, par, boxes = fastmix.cutmix_u8(xc, mean, std, generator=fastmix.Generator(2), **kw)
    torch.cuda.synchronize()
    assert o.is_cuda and lam.is_cuda
    for a, want in zip((lam, par, boxes), (lam_cpu, par_cpu, box_cpu)):
        assert torch.equal(a.cpu(), want)
    assert torch.equal(bits_t(o.cpu()), bits_t(o_cpu))
    applied = fastmix.cutmix_apply_u8(xc, mean, std, lam, par, boxes, dtype=dtype,
                                      in_layout=in_layout, out_layout=out_layout)
    torch.cuda.synchronize()
    assert torch.equal(bits_t(applied.cpu()), bits_t(o_cpu))


@cuda
def test_cuda_prefetch_loader(rng):
    ds = _Images(rng, 40, 9, 7)
    dl = torch.utils.data.DataLoader(ds, batch_size=8, collate_fn=fl.fast_collate_u8,
                                     pin_memory=True)
    kw = dict(mixup_alpha=0.8, cutmix_alpha=1.0, channels_last=True)
    on_gpu = list(fl.PrefetchLoaderU8(dl, MEAN, STD, device="cuda",
                                      generator=fastmix.Generator(1), **kw))
    on_cpu = list(fl.PrefetchLoaderU8(dl, MEAN, STD, device="cpu",
                                      generator=fastmix.Generator(1), **kw))
    assert len(on_gpu) == len(on_cpu) == 5
    for (x, t), (xr, tr) in zip(on_gpu, on_cpu):
        assert x.is_cuda and x.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(bits_t(x.cpu()), bits_t(xr)) and torch.equal(t.lambdas.cpu(),
                                                                         tr.lambdas)
