"""CutMix (mixup or CutMix chosen per sample): the draw against timm's box
formulas and the distributions they imply, the apply against a float64
NumPy reference written here from the contract in include/fastmix/fastmix.h
(never computed with fastmix), fastmix.timm.Mixup against timm's formulas,
fastmix.torch.MixUp with CutMix and the fused loss, and the
torchvision-compatible fastmix.torch.CutMix.

Statistical tests use a fixed seed per test (from its name), printed on
failure; FASTMIX_TEST_SEED=<int> mixes another seed in, to explore."""
import ctypes
import os
import zlib

import numpy as np
import pytest

import fastmix
import _reference as ref
from conftest import edge_boxes, hand_made_draw, last_error

P_MIN = 1e-4  # p-value threshold of the statistical tests
N_STAT = 20000

DTYPES = ["float32", "float16"]
try:
    import ml_dtypes  # noqa: F401
    DTYPES.append("bfloat16")
except ImportError:
    pass


@pytest.fixture
def seed(request):
    s = zlib.crc32(request.node.nodeid.encode())
    extra = os.environ.get("FASTMIX_TEST_SEED")
    return (s ^ int(extra)) % (1 << 63) if extra else s


def np_dtype(name):
    if name == "bfloat16":
        import ml_dtypes
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def to64(a):
    if hasattr(a, "detach"):  # a torch tensor
        return a.detach().cpu().double().numpy()
    return np.asarray(a, dtype=np.float64)


def npy(a):
    return a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)


# --------------------------------------------------------------- references ---

def ref_apply(x, lambdas, partners, boxes, layout="nchw"):
    """float64 reference of fastmix_cutmix_apply: box (-1, -1, -1, -1) blends
    lam * x[i] + (1 - lam) * x[p]; any other box keeps x[i] and takes x[p]'s
    pixels at rows [y0, y1), columns [x0, x1) of every channel."""
    x = to64(x)
    lam, par, boxes = to64(lambdas), npy(partners).astype(np.int64), npy(boxes).astype(np.int64)
    out = x.copy()
    for i in range(x.shape[0]):
        p = par[i]
        y0, x0, y1, x1 = boxes[i]
        if (boxes[i] == -1).all():
            out[i] = lam[i] * x[i] + (1.0 - lam[i]) * x[p]
        elif layout == "nhwc" or x.ndim == 3:
            out[i][y0:y1, x0:x1] = x[p][y0:y1, x0:x1]
        else:
            out[i][..., y0:y1, x0:x1] = x[p][..., y0:y1, x0:x1]
    return out


def ref_bound(x, lambdas, partners, boxes, dtype):
    """0 for a cut (an exact copy), _reference.blend_bound for a blended sample."""
    x64 = to64(x)
    if x64.shape[0] == 0:
        return np.zeros_like(x64)
    bound = ref.blend_bound(x64, to64(lambdas), npy(partners).astype(np.int64), dtype)
    blends = (npy(boxes) == -1).all(axis=1)
    bound[~blends] = 0.0
    return bound


def assert_applied(out, x, lambdas, partners, boxes, layout="nchw", dtype="float32"):
    want = ref_apply(x, lambdas, partners, boxes, layout)
    got = to64(out)
    assert got.shape == want.shape
    err = np.abs(got - want)
    bound = ref_bound(x, lambdas, partners, boxes, dtype)
    bad = ~(err <= bound)
    assert not bad.any(), (f"{bad.sum()} elements off, first at {np.argwhere(bad)[0]}: got "
                           f"{got[bad][0]}, want {want[bad][0]}")


def ch_candidates(n, lam):
    """timm's rand_bbox side int(n * sqrt(1 - lam)), in float64 from the
    float32 lambda, as the C library computes it: one exact candidate (kept
    as a pair for the callers)."""
    t = np.floor(n * np.sqrt(1.0 - lam.astype(np.float64))).astype(np.int64)
    return t, t


def axis_consistent(lo, hi, half, n):
    """Whether some centre c in [0, n) gives lo = clip(c - half), hi = clip(c + half)."""
    c = np.arange(n)[None, :]
    return ((np.clip(c - half[:, None], 0, n) == lo[:, None])
            & (np.clip(c + half[:, None], 0, n) == hi[:, None])).any(axis=1)


def timm_box_consistent(boxes, lam, h, w):
    """Per sample: the box is timm's rand_bbox(lam) for some centre."""
    b = boxes.astype(np.int64)
    ok_h = np.zeros(len(b), bool)
    ok_w = np.zeros(len(b), bool)
    for ch in ch_candidates(h, lam):
        ok_h |= axis_consistent(b[:, 0], b[:, 2], ch // 2, h)
    for cw in ch_candidates(w, lam):
        ok_w |= axis_consistent(b[:, 1], b[:, 3], cw // 2, w)
    return ok_h & ok_w


def corrected(boxes, h, w):
    """float32 of the float64 1 - area / (h * w)."""
    b = boxes.astype(np.float64)
    return (1.0 - (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) / (float(h) * float(w))).astype(
        np.float32)


def flip(n):
    return np.arange(n - 1, -1, -1)


# --------------------------------------------------------------- the draw ---

def draw(batch, h, w, seed, **kw):
    return fastmix.cutmix_sample(batch, h, w, generator=fastmix.Generator(seed), **kw)


def test_sample_shapes_and_generator(seed):
    g = fastmix.Generator(seed)
    lam, par, boxes = fastmix.cutmix_sample(9, 7, 5, mixup_alpha=0.5, generator=g)
    assert lam.dtype == np.float32 and lam.shape == (9,)
    assert par.dtype == np.int64 and par.shape == (9,)
    assert boxes.dtype == np.int32 and boxes.shape == (9, 4)
    assert g.offset == 1
    lam2, par2, boxes2 = fastmix.cutmix_sample(9, 7, 5, mixup_alpha=0.5, generator=g)
    assert not np.array_equal(lam, lam2)
    again = draw(9, 7, 5, seed, mixup_alpha=0.5)
    for a, b in zip((lam, par, boxes), again):
        np.testing.assert_array_equal(a, b)
    lam, par, boxes = fastmix.cutmix_sample(0, 3, 3)
    assert lam.shape == (0,) and boxes.shape == (0, 4)


def test_sample_matches_the_c_abi_and_the_device_seed_form(seed):
    cfg = fastmix._lib.MixConfig(0.8, 1.0, 0.0, 0.0, 0.7, 0.5, 0, 0, 1, 0)
    b, h, w = 33, 12, 10
    lam = np.full(b, np.nan, np.float32)
    par = np.full(b, -7, np.int64)
    boxes = np.full((b, 4), -9, np.int32)
    st = fastmix._lib.lib.fastmix_cutmix_sample(0, ctypes.byref(cfg), seed, 3, b, h, w,
                                                lam.ctypes.data, par.ctypes.data,
                                                boxes.ctypes.data, None)
    assert st == 0, last_error()
    g = fastmix.Generator(seed)
    g.offset = 3
    got = fastmix.cutmix_sample(b, h, w, mixup_alpha=0.8, cutmix_alpha=1.0, prob=0.7,
                                switch_prob=0.5, pairing="permutation", generator=g)
    for a, c in zip(got, (lam, par, boxes)):
        np.testing.assert_array_equal(a, c)
    # the device-seed form: seed and offset read from (host) memory, offset advanced
    so = np.array([seed, 3], dtype=np.uint64)
    lam2 = np.full(b, np.nan, np.float32)
    par2 = np.full(b, -7, np.int64)
    boxes2 = np.full((b, 4), -9, np.int32)
    st = fastmix._lib.lib.fastmix_cutmix_sample_device_seed(
        0, ctypes.byref(cfg), so.ctypes.data, 5, b, h, w, lam2.ctypes.data, par2.ctypes.data,
        boxes2.ctypes.data, None)
    assert st == 0, last_error()
    assert so[1] == 8
    for a, c in zip((lam2, par2, boxes2), (lam, par, boxes)):
        np.testing.assert_array_equal(a, c)
    # and the fused device-seed form gives the same draw and images
    x = np.random.default_rng(seed).standard_normal((b, 3, h, w)).astype(np.float32)
    out = np.full_like(x, np.nan)
    so = np.array([seed, 3], dtype=np.uint64)
    lam3 = np.full(b, np.nan, np.float32)
    par3 = np.full(b, -7, np.int64)
    boxes3 = np.full((b, 4), -9, np.int32)
    st = fastmix._lib.lib.fastmix_cutmix_device_seed(
        0, 0, ctypes.byref(cfg), so.ctypes.data, 1, 0, x.ctypes.data, out.ctypes.data, b, 3, h,
        w, 3 * h * w, lam3.ctypes.data, par3.ctypes.data, boxes3.ctypes.data, None)
    assert st == 0, last_error()
    assert so[1] == 4
    for a, c in zip((lam3, par3, boxes3), (lam, par, boxes)):
        np.testing.assert_array_equal(a, c)
    assert_applied(out, x, lam, par, boxes)


@pytest.mark.parametrize("mixup_alpha,cutmix_alpha,minmax",
                         [(0.8, 1.0, None), (0.0, 1.0, None), (0.0, 0.0, (0.2, 0.7)),
                          (0.4, 0.0, (0.1, 0.9)), (0.5, 0.0, None)])
@pytest.mark.parametrize("prob", [1.0, 0.6])
@pytest.mark.parametrize("correct_lam", [True, False])
def test_sample_structure(seed, mixup_alpha, cutmix_alpha, minmax, prob, correct_lam):
    b, h, w = 257, 13, 8
    lam, par, boxes = draw(b, h, w, seed, mixup_alpha=mixup_alpha, cutmix_alpha=cutmix_alpha,
                           cutmix_minmax=minmax, prob=prob, correct_lam=correct_lam,
                           pairing="flip")
    ctx = dict(seed=seed)
    unmixed = (boxes == 0).all(axis=1) & (par == np.arange(b))
    blends = (boxes == -1).all(axis=1)
    cuts = ~unmixed & ~blends
    assert not np.isnan(lam).any()
    # unmixed: lambda 1, itself, box (0, 0, 0, 0)
    assert (lam[unmixed] == 1.0).all(), ctx
    if prob == 1.0:
        assert not unmixed.any(), ctx
    else:
        assert unmixed.any() and (~unmixed).any(), ctx
    # mixed samples take the pairing's partner
    np.testing.assert_array_equal(par[~unmixed], flip(b)[~unmixed])
    # mixup samples: box -1, lambda in [0, 1]
    if mixup_alpha == 0.0:
        assert not blends.any()
    assert ((lam[blends] >= 0) & (lam[blends] <= 1)).all()
    if cutmix_alpha == 0.0 and minmax is None:
        assert not cuts.any()
        return
    assert cuts.any(), ctx
    cb = boxes[cuts].astype(np.int64)
    assert ((0 <= cb[:, 0]) & (cb[:, 0] <= cb[:, 2]) & (cb[:, 2] <= h)).all()
    assert ((0 <= cb[:, 1]) & (cb[:, 1] <= cb[:, 3]) & (cb[:, 3] <= w)).all()
    if correct_lam or minmax is not None:
        # lambda is exactly float32(1 - area / (H * W))
        np.testing.assert_array_equal(lam[cuts], corrected(boxes[cuts], h, w))
    if minmax is not None:
        ch, cw = cb[:, 2] - cb[:, 0], cb[:, 3] - cb[:, 1]
        assert ((int(h * minmax[0]) <= ch) & (ch < max(int(h * minmax[1]), int(h * minmax[0]) + 1))
                ).all()
        assert ((int(w * minmax[0]) <= cw) & (cw < max(int(w * minmax[1]), int(w * minmax[0]) + 1))
                ).all()
    elif not correct_lam:
        # the raw Beta lambda; the box is timm's rand_bbox of it
        ok = timm_box_consistent(boxes[cuts], lam[cuts], h, w)
        assert ok.all(), (ctx, boxes[cuts][~ok][:5], lam[cuts][~ok][:5])


def test_mixup_only_is_fastmix_sample(seed):
    # the documented identity: prob 1, mode elem, mixup only
    for pairing in ("permutation", "cycle", "flip", "roll"):
        for fold in (True, False):
            lam, par, boxes = draw(65, 9, 9, seed, mixup_alpha=0.3, cutmix_alpha=0.0,
                                   pairing=pairing, fold=fold)
            slam, spar = fastmix.sample(65, 0.3, fold=fold, pairing=pairing,
                                        generator=fastmix.Generator(seed))
            np.testing.assert_array_equal(lam, slam)
            np.testing.assert_array_equal(par, spar)
            assert (boxes == -1).all()


@pytest.mark.parametrize("pairing,want", [("flip", lambda b: flip(b)),
                                          ("roll", lambda b: (np.arange(b) - 1) % b)])
def test_sample_fixed_pairings(seed, pairing, want):
    for b in (1, 2, 5, 8):
        _, par, _ = draw(b, 4, 4, seed, pairing=pairing)
        np.testing.assert_array_equal(par, want(b))
    _, par, _ = draw(64, 4, 4, seed, pairing="permutation")
    np.testing.assert_array_equal(np.sort(par), np.arange(64))
    _, par, _ = draw(64, 4, 4, seed, pairing="cycle")
    assert (par != np.arange(64)).all()


@pytest.mark.parametrize("b", [2, 7, 8, 31])
def test_sample_pair_mode(seed, b):
    for k in range(20):
        lam, par, boxes = draw(b, 11, 6, seed + k, mixup_alpha=0.5, cutmix_alpha=1.0, prob=0.7,
                               mode="pair", correct_lam=bool(k % 2))
        np.testing.assert_array_equal(lam, lam[::-1])
        np.testing.assert_array_equal(boxes, boxes[::-1])
        unmixed = (boxes == 0).all(axis=1) & (par == np.arange(b))
        np.testing.assert_array_equal(par[~unmixed], flip(b)[~unmixed])
    # pairing None means flip for mode "pair"; an explicit other pairing is refused by C
    draw(4, 3, 3, seed, mode="pair")
    with pytest.raises(fastmix.InvalidValueError, match="pairing") as e:
        draw(4, 3, 3, seed, mode="pair", pairing="permutation")
    assert str(e.value) == last_error()


@pytest.mark.parametrize("pairing", ["permutation", "roll", "flip"])
def test_sample_batch_mode(seed, pairing):
    kinds = set()
    for k in range(40):
        lam, par, boxes = draw(9, 10, 12, seed + k, mixup_alpha=0.5, cutmix_alpha=1.0, prob=0.8,
                               mode="batch", pairing=pairing)
        assert (lam == lam[0]).all() and (boxes == boxes[0]).all()
        if (boxes[0] == 0).all() and (par == np.arange(9)).all():
            kinds.add("unmixed")
            assert lam[0] == 1.0
        else:
            kinds.add("mixup" if boxes[0, 0] == -1 else "cutmix")
            if pairing == "roll":
                np.testing.assert_array_equal(par, (np.arange(9) - 1) % 9)
    assert kinds == {"unmixed", "mixup", "cutmix"}, seed


def test_sample_switch_and_prob_extremes(seed):
    b = 500
    _, _, boxes = draw(b, 8, 8, seed, mixup_alpha=0.5, cutmix_alpha=1.0, switch_prob=0.0)
    assert (boxes == -1).all()
    lam, _, boxes = draw(b, 8, 8, seed, mixup_alpha=0.5, cutmix_alpha=1.0, switch_prob=1.0)
    assert (boxes >= 0).all()
    np.testing.assert_array_equal(lam, corrected(boxes, 8, 8))
    lam, par, boxes = draw(b, 8, 8, seed, mixup_alpha=0.5, cutmix_alpha=1.0, prob=0.0)
    assert (lam == 1).all() and (par == np.arange(b)).all() and (boxes == 0).all()


def test_sample_switch_and_prob_rates(seed):
    stats = pytest.importorskip("scipy.stats")
    lam, par, boxes = draw(N_STAT, 16, 16, seed, mixup_alpha=0.5, cutmix_alpha=1.0, prob=0.6,
                           switch_prob=0.3, pairing="cycle")
    unmixed = par == np.arange(N_STAT)  # a cycle never pairs a mixed sample with itself
    assert ((boxes[unmixed] == 0).all()) and (lam[unmixed] == 1).all()
    mixed = int((~unmixed).sum())
    assert stats.binomtest(mixed, N_STAT, 0.6).pvalue > P_MIN, (seed, mixed)
    cut = int((boxes[~unmixed, 0] >= 0).sum())
    assert stats.binomtest(cut, mixed, 0.3).pvalue > P_MIN, (seed, cut, mixed)


@pytest.mark.parametrize("alpha", [0.4, 1.0, 2.5])
@pytest.mark.parametrize("fold", [False, True])
def test_cutmix_beta_lambda_distribution(seed, alpha, fold):
    stats = pytest.importorskip("scipy.stats")
    h, w = 37, 53
    lam, _, boxes = draw(N_STAT, h, w, seed, cutmix_alpha=alpha, correct_lam=False, fold=fold)
    assert (boxes >= 0).all()
    ok = timm_box_consistent(boxes, lam, h, w)
    assert ok.all(), (seed, boxes[~ok][:5], lam[~ok][:5])
    beta = stats.beta(alpha, alpha)
    cdf = (lambda v: np.clip(2 * beta.cdf(v) - 1, 0, 1)) if fold else beta.cdf
    if fold:
        assert (lam >= 0.5).all()
    p = stats.kstest(lam.astype(np.float64), cdf).pvalue
    assert p > P_MIN, (seed, alpha, fold, p)


def test_cutmix_beta_box_centre_uniform(seed):
    # Given the side and a box not clipped at the top, the centre cy =
    # y0 + ch // 2 is uniform on {ch//2 + 1, ..., H - 1} (cy uniform on
    # [0, H) conditioned on cy > ch // 2); likewise the columns.  A
    # randomised probability integral transform makes that U(0, 1).
    stats = pytest.importorskip("scipy.stats")
    h, w = 29, 41
    lam, _, boxes = draw(N_STAT, h, w, seed, cutmix_alpha=1.0, correct_lam=False)
    rng = np.random.default_rng(seed)
    for axis, n in ((0, h), (1, w)):
        lo_c, hi_c = ch_candidates(n, lam)
        half = lo_c // 2
        lo = boxes[:, axis].astype(np.int64)
        keep = (lo_c == hi_c) & (lo > 0) & (n - 1 - half >= 1)
        c = lo[keep] + half[keep]
        span = n - 1 - half[keep]
        assert ((c >= half[keep] + 1) & (c <= n - 1)).all()
        u = (c - half[keep] - 1 + rng.random(c.shape)) / span
        p = stats.kstest(u, "uniform").pvalue
        assert p > P_MIN, (seed, axis, p)


def test_cutmix_minmax_distribution(seed):
    # side ~ uniform integer in [int(n * min), int(n * max)), the two sides
    # independent; the corner uniform in [0, n - side); lambda exactly 1 - area / (H * W)
    stats = pytest.importorskip("scipy.stats")
    h, w, mm = 32, 27, (0.2, 0.8)
    lam, _, boxes = draw(N_STAT, h, w, seed, cutmix_alpha=0.0, cutmix_minmax=mm,
                         correct_lam=False)
    b = boxes.astype(np.int64)
    ch, cw = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    np.testing.assert_array_equal(lam, corrected(boxes, h, w))  # always corrected
    hl, hh = int(h * mm[0]), int(h * mm[1])
    wl, wh = int(w * mm[0]), int(w * mm[1])
    assert ch.min() >= hl and ch.max() < hh and cw.min() >= wl and cw.max() < wh
    joint = np.zeros((hh - hl, wh - wl))
    np.add.at(joint, (ch - hl, cw - wl), 1)
    p = stats.chisquare(joint.ravel()).pvalue  # uniform on the product: both marginals, independent
    assert p > P_MIN, (seed, p)
    for side in (np.bincount(ch - hl, minlength=hh - hl), np.bincount(cw - wl, minlength=wh - wl)):
        assert stats.chisquare(side).pvalue > P_MIN, seed
    # 1 - lambda = (ch / H) * (cw / W): the exact distribution of the product of the two
    # discrete uniforms, against the observed area ratios (chi-square over the values)
    vals = np.outer(np.arange(hl, hh), np.arange(wl, wh)).ravel()
    uniq, inv = np.unique(vals, return_inverse=True)
    expect = np.bincount(inv).astype(np.float64) / len(vals) * N_STAT
    obs = np.zeros(len(uniq))
    np.add.at(obs, np.searchsorted(uniq, ch * cw), 1)
    assert np.isin(ch * cw, uniq).all()
    assert stats.chisquare(obs, expect).pvalue > P_MIN, seed
    # the corner, given the side: uniform in [0, n - side)
    rng = np.random.default_rng(seed)
    for lo, side, n in ((b[:, 0], ch, h), (b[:, 1], cw, w)):
        assert ((lo >= 0) & (lo + side <= n) & (lo < np.maximum(n - side, 1))).all()
        u = (lo + rng.random(lo.shape)) / (n - side)
        assert stats.kstest(u, "uniform").pvalue > P_MIN, seed


def test_minmax_side_range_is_timms_for_decimal_bounds(seed):
    # timm: cut_h = randint(int(H * min), int(H * max)) in float64
    for h, mm in [(10, (0.3, 0.7)), (100, (0.3, 0.7))]:
        _, _, boxes = draw(20000, h, h, seed, cutmix_alpha=0.0, cutmix_minmax=mm)
        ch = boxes[:, 2].astype(np.int64) - boxes[:, 0]
        assert ch.max() == int(h * mm[1]) - 1, (h, mm, ch.max())


def test_minmax_empty_range_gives_its_lower_end(seed):
    # int(H * min) == int(H * max): the side is that value (timm would raise)
    lam, _, boxes = draw(50, 4, 4, seed, cutmix_alpha=0.0, cutmix_minmax=(0.5, 0.6))
    b = boxes.astype(np.int64)
    assert ((b[:, 2] - b[:, 0]) == 2).all() and ((b[:, 3] - b[:, 1]) == 2).all()
    assert (lam == np.float32(0.75)).all()


# ---------------------------------------------------------------- errors ---

def test_sample_bad_config(seed):
    g = fastmix.Generator(seed)
    cases = [
        (dict(mixup_alpha=0.0, cutmix_alpha=0.0), "neither"),
        (dict(cutmix_alpha=-1.0), "cutmix_alpha"),
        (dict(mixup_alpha=float("nan")), "mixup_alpha"),
        (dict(prob=1.5), "prob"),
        (dict(switch_prob=-0.1), "switch_prob"),
        (dict(cutmix_minmax=(0.8, 0.2)), "cutmix_min"),
        (dict(cutmix_minmax=(0.2, 1.2)), "cutmix_min"),
    ]
    for kw, name in cases:
        with pytest.raises(fastmix.InvalidValueError, match=name) as e:
            fastmix.cutmix_sample(8, 4, 4, generator=g, **kw)
        assert str(e.value) == last_error(), kw
    # only Python can tell these
    for kw, name in [(dict(cutmix_minmax=(0, 0)), "cutmix_minmax"),
                     (dict(cutmix_minmax=0.5), "cutmix_minmax"),
                     (dict(prob="1"), "prob"), (dict(mode="half"), "mode"),
                     (dict(pairing="shift"), "pairing"), (dict(mixup_alpha=None), "mixup_alpha")]:
        with pytest.raises(fastmix.InvalidValueError, match=name):
            fastmix.cutmix_sample(8, 4, 4, generator=g, **kw)
    for bad in ((0, "height"), (-3, "height")):
        with pytest.raises(fastmix.InvalidValueError, match=bad[1]):
            fastmix.cutmix_sample(8, bad[0], 4, generator=g)
    with pytest.raises(fastmix.InvalidValueError, match="width"):
        fastmix.cutmix_sample(8, 4, 2 ** 31, generator=g)
    with pytest.raises(fastmix.InvalidValueError, match="batch"):
        fastmix.cutmix_sample(-1, 4, 4, generator=g)
    assert g.offset == 0  # no failed call took a draw


# ----------------------------------------------------------------- apply ---

def make_draw(rng, b, h, w):
    """A hand-made draw covering every kind of box: blends, unmixed, full,
    empty (at an edge and inside), single pixels at the corners, edge strips,
    and boxes whose partner is the sample itself."""
    lam, par, boxes = hand_made_draw(rng, b, h, w, edge_boxes(h, w) + [(0, 0, h, 1)], 0.3)
    if b > 3:
        par[3] = 3  # a cut from itself: a copy
    return lam, par, boxes


SHAPES = [(13, 3, 7, 9), (11, 1, 1, 6), (10, 5, 8, 1), (12, 4, 1, 1), (1, 3, 4, 4),
          (0, 3, 4, 4), (16, 3, 16, 16)]


def layout_shape(shape, layout):
    b, c, h, w = shape
    return (b, h, w, c) if layout == "nhwc" else shape


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_apply_reference(rng, dtype, shape, layout):
    b, c, h, w = shape
    x = (rng.standard_normal(layout_shape(shape, layout)) * 3).astype(np_dtype(dtype))
    lam, par, boxes = make_draw(rng, b, h, w)
    x0 = x.copy()
    out = np.full_like(x, np.nan)
    r = fastmix.cutmix_apply(x, lam, par, boxes, layout=layout, out=out)
    assert r is out
    assert_applied(out, x, lam, par, boxes, layout, dtype)
    np.testing.assert_array_equal(x, x0)  # the input is left alone
    alloc = fastmix.cutmix_apply(x, lam, par, boxes, layout=layout)
    assert alloc.dtype == x.dtype and alloc.shape == x.shape
    np.testing.assert_array_equal(alloc.view(np.uint8), out.view(np.uint8))
    # cut samples: the exact bits
    cuts = (boxes >= 0).all(axis=1)
    if cuts.any():
        want = ref_apply(x.astype(np.float64), lam, par, boxes, layout)
        np.testing.assert_array_equal(out[cuts].astype(np.float64), want[cuts])
    # in place: bitwise the same as out of place
    inplace = x.copy()
    r = fastmix.cutmix_apply(inplace, lam, par, boxes, layout=layout, out=inplace)
    assert r is inplace
    np.testing.assert_array_equal(inplace.view(np.uint8), out.view(np.uint8))


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_apply_3d_is_one_channel(rng, layout):
    b, h, w = 9, 5, 7
    x = rng.standard_normal((b, h, w)).astype(np.float32)
    lam, par, boxes = make_draw(rng, b, h, w)
    out = fastmix.cutmix_apply(x, lam, par, boxes, layout=layout)
    assert_applied(out, x, lam, par, boxes, layout)
    np.testing.assert_array_equal(out, fastmix.cutmix_apply(x[:, None], lam, par, boxes)[:, 0])


def test_apply_more_dims_are_channels(rng):
    # (batch, frames, channels, H, W): every frame and channel shares the box
    x = rng.standard_normal((6, 3, 2, 5, 4)).astype(np.float32)
    lam, par, boxes = make_draw(rng, 6, 5, 4)
    out = fastmix.cutmix_apply(x, lam, par, boxes)
    assert_applied(out, x, lam, par, boxes)
    flat = fastmix.cutmix_apply(x.reshape(6, 6, 5, 4), lam, par, boxes)
    np.testing.assert_array_equal(out.reshape(6, 6, 5, 4), flat)


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_apply_strided_samples(rng, layout):
    b, c, h, w = 7, 3, 6, 5
    shape = layout_shape((b, c, h, w), layout)
    lam, par, boxes = make_draw(rng, b, h, w)
    # every other sample of a bigger batch
    base = rng.standard_normal((2 * b,) + shape[1:]).astype(np.float32)
    x = base[::2]
    out = fastmix.cutmix_apply(x, lam, par, boxes, layout=layout)
    assert_applied(out, x, lam, par, boxes, layout)
    assert out.strides == x.strides  # allocated with x's sample stride
    before = base.copy()
    fastmix.cutmix_apply(x, lam, par, boxes, layout=layout, out=x)
    np.testing.assert_array_equal(base[1::2], before[1::2])  # the other samples untouched
    np.testing.assert_array_equal(base[::2], out)
    # an over-allocated sample stride: the padding is never written
    n = c * h * w
    big = np.full((b, n + 7), 123.0, np.float32)
    xs = big[:, :n].reshape(shape)
    assert np.shares_memory(xs, big)
    xs[...] = rng.standard_normal(shape)
    x0 = xs.copy()
    o = np.full_like(big, -5.0)
    os_ = o[:, :n].reshape(shape)
    fastmix.cutmix_apply(xs, lam, par, boxes, layout=layout, out=os_)
    assert_applied(os_, x0, lam, par, boxes, layout)
    assert (o[:, n:] == -5.0).all()
    fastmix.cutmix_apply(xs, lam, par, boxes, layout=layout, out=xs)
    np.testing.assert_array_equal(xs, os_)
    assert (big[:, n:] == 123.0).all()
    # out with another sample stride than x's is refused
    with pytest.raises(fastmix.InvalidValueError, match="stride"):
        fastmix.cutmix_apply(xs, lam, par, boxes, layout=layout, out=np.empty_like(x0))


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_apply_large_rows_in_place(rng, layout, dtype):
    # rows longer than the CPU's in-place segments (a box edge inside a
    # segment, several segments per row) and more than one thread's share
    b, c, h, w = 64, 3, 5, 1500
    x = rng.standard_normal(layout_shape((b, c, h, w), layout)).astype(dtype)
    lam, par, boxes = make_draw(rng, b, h, w)
    for i in range(10, b, 3):
        boxes[i] = (1, 700 + i, h - 1, 1400 - i)  # columns across segment boundaries
        lam[i] = corrected(boxes[i:i + 1], h, w)[0]
    out = fastmix.cutmix_apply(x, lam, par, boxes, layout=layout)
    assert_applied(out, x, lam, par, boxes, layout, dtype)
    inplace = x.copy()
    fastmix.cutmix_apply(inplace, lam, par, boxes, layout=layout, out=inplace)
    np.testing.assert_array_equal(inplace.view(np.uint8), out.view(np.uint8))


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_is_sample_then_apply_and_mask(rng, seed, layout, dtype):
    b, c, h, w = 24, 3, 11, 14
    x = (rng.standard_normal(layout_shape((b, c, h, w), layout)) * 2).astype(np.float32)
    x = x.astype(np_dtype(dtype))
    kw = dict(mixup_alpha=0.8, cutmix_alpha=1.0, prob=0.8, switch_prob=0.5, mode="elem",
              correct_lam=True)
    out = np.full_like(x, np.nan)
    r, lam, par, boxes = fastmix.cutmix(x, layout=layout, generator=fastmix.Generator(seed),
                                        out=out, **kw)
    assert r is out
    slam, spar, sboxes = draw(b, h, w, seed, **kw)
    np.testing.assert_array_equal(lam, slam)
    np.testing.assert_array_equal(par, spar)
    np.testing.assert_array_equal(boxes, sboxes)
    applied = fastmix.cutmix_apply(x, slam, spar, sboxes, layout=layout)
    np.testing.assert_array_equal(out.view(np.uint8), applied.view(np.uint8))
    assert_applied(out, x, lam, par, boxes, layout, dtype)
    inplace = x.copy()
    fastmix.cutmix(inplace, layout=layout, generator=fastmix.Generator(seed), out=inplace, **kw)
    np.testing.assert_array_equal(inplace.view(np.uint8), out.view(np.uint8))
    # the same draw on a one-channel mask of the batch
    mask = rng.integers(0, 5, layout_shape((b, 1, h, w), layout)).astype(np.float32)
    mixed_mask = fastmix.cutmix_apply(mask, lam, par, boxes, layout=layout)
    assert_applied(mixed_mask, mask, lam, par, boxes, layout)


def test_apply_torch_bfloat16_and_channels_last(rng):
    torch = pytest.importorskip("torch")
    b, c, h, w = 10, 3, 9, 7
    x = torch.from_numpy(rng.standard_normal((b, c, h, w)).astype(np.float32)).to(torch.bfloat16)
    lam, par, boxes = make_draw(rng, b, h, w)
    lam_t, par_t, boxes_t = torch.from_numpy(lam), torch.from_numpy(par), torch.from_numpy(boxes)
    out = torch.full_like(x, float("nan"))
    fastmix.cutmix_apply(x, lam_t, par_t, boxes_t, out=out)
    assert_applied(out, x, lam, par, boxes, "nchw", "bfloat16")
    # int64 boxes and float64 lambdas are converted
    out2 = fastmix.cutmix_apply(x, lam_t.double(), par_t, boxes_t.long())
    assert torch.equal(out2.view(torch.int16), out.view(torch.int16))
    # channels-last: as its NHWC view, the same result
    xc = x.contiguous(memory_format=torch.channels_last)
    with pytest.raises(fastmix.InvalidValueError, match="permute"):
        fastmix.cutmix_apply(xc, lam_t, par_t, boxes_t)
    oc = fastmix.cutmix_apply(xc.permute(0, 2, 3, 1), lam_t, par_t, boxes_t, layout="nhwc")
    assert torch.equal(oc.permute(0, 3, 1, 2).view(torch.int16), out.view(torch.int16))
    # fused, torch arrays in, torch arrays out
    o, l2, p2, b2 = fastmix.cutmix(x, mixup_alpha=0.5, generator=fastmix.Generator(3))
    assert isinstance(o, torch.Tensor) and o.dtype == torch.bfloat16
    assert l2.dtype == torch.float32 and p2.dtype == torch.int64 and b2.dtype == torch.int32
    assert_applied(o, x, l2, p2, b2, "nchw", "bfloat16")
    lam_s, _, _ = fastmix.cutmix_sample(4, 3, 3, like=x)
    assert isinstance(lam_s, torch.Tensor)


def test_apply_errors(rng):
    b, c, h, w = 4, 2, 5, 6
    x = rng.standard_normal((b, c, h, w)).astype(np.float32)
    lam, par, boxes = make_draw(rng, b, h, w)
    out = np.full_like(x, np.nan)

    def fails(match, *args, c_message=False, **kw):
        with pytest.raises(fastmix.InvalidValueError, match=match) as e:
            fastmix.cutmix_apply(*args, **kw)
        if c_message:
            assert str(e.value) == last_error()
        return e

    fails("layout", x, lam, par, boxes, layout="NCWH")
    fails("layout", x, lam, par, boxes, layout=1)
    fails("x must have shape", x[:, 0, 0], lam, par, boxes)
    fails("x must have shape", x[:, None], lam, par, boxes, layout="nhwc")
    fails(r"boxes must have shape \(4, 4\)", x, lam, par, boxes[:, :3])
    fails(r"boxes must have shape \(4, 4\)", x, lam, par, boxes[:3])
    fails("boxes has dtype", x, lam, par, boxes.astype(np.float32))
    fails("lambdas", x, lam[:3], par, boxes)
    fails("partners", x, lam, par.astype(np.float32), boxes)
    fails("dtype", x.astype(np.float64), lam, par, boxes)
    fails("out must have", x, lam, par, boxes, out=out[:, :1])
    fails("contiguous", x.transpose(0, 1, 3, 2), lam, par, boxes)
    for bad in ([0, 0, h + 1, w], [2, 0, 1, w], [-1, 0, 2, 2], [0, 3, 1, 2], [0, 0, 1, w + 1],
                [-1, -1, -1, 0]):
        bb = boxes.copy()
        bb[2] = bad
        fails(r"boxes\[2\]", x, lam, par, bb, out=out, c_message=True)
        assert np.isnan(out).all()  # a failed call writes nothing
    pp = par.copy()
    pp[1] = b
    fails("partners", x, lam, pp, boxes, out=out, c_message=True)
    assert np.isnan(out).all()
    # out overlapping x other than exactly: the C library refuses it
    base = np.zeros(x.size + 1, np.float32)
    fails("overlap", base[:-1].reshape(x.shape), lam, par, boxes,
          out=base[1:].reshape(x.shape), c_message=True)
    # zero channels or an empty image: the C library names it
    fails("channels", np.zeros((b, 0, h, w), np.float32), lam, par, boxes, c_message=True)
    fails("height", np.zeros((b, c, 0, w), np.float32), lam, par, boxes, c_message=True)


def test_apply_batch_zero_and_fused_errors(seed):
    x = np.zeros((0, 3, 4, 4), np.float32)
    out = fastmix.cutmix_apply(x, np.zeros(0, np.float32), np.zeros(0, np.int64),
                               np.zeros((0, 4), np.int32))
    assert out.shape == x.shape
    o, lam, par, boxes = fastmix.cutmix(x)
    assert o.shape == x.shape and boxes.shape == (0, 4)
    g = fastmix.Generator(seed)
    x = np.zeros((4, 3, 4, 4), np.float32)
    with pytest.raises(fastmix.InvalidValueError, match="pairing"):
        fastmix.cutmix(x, mode="pair", pairing="roll", generator=g)
    with pytest.raises(fastmix.InvalidValueError, match="prob"):
        fastmix.cutmix(x, prob=-1.0, generator=g)
    with pytest.raises(fastmix.InvalidValueError, match="layout"):
        fastmix.cutmix(x, layout="chw", generator=g)
    with pytest.raises(TypeError):
        fastmix.cutmix([[1.0]], generator=g)
    assert g.offset == 0


# ------------------------------------------------------------------ torch ---

@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def onehot64(torch, y, c):
    return torch.nn.functional.one_hot(y.long(), c).double()


def timm_targets(torch, y, c, lam, eps):
    """timm's mixup_target: smoothed one-hot, the partner is y.flip(0)."""
    lam = lam.double().view(-1, 1)
    mixed = lam * onehot64(torch, y, c) + (1 - lam) * onehot64(torch, y.flip(0), c)
    return (1 - eps) * mixed + eps / c


TIMM_CONFIGS = [
    dict(mixup_alpha=0.8, cutmix_alpha=1.0),
    dict(mixup_alpha=0.0, cutmix_alpha=1.0),
    dict(mixup_alpha=0.0, cutmix_alpha=1.0, correct_lam=False),
    dict(mixup_alpha=0.8, cutmix_alpha=0.0, cutmix_minmax=(0.3, 0.7)),
    dict(mixup_alpha=0.8, cutmix_alpha=1.0, prob=0.5, switch_prob=0.7),
]


@pytest.mark.parametrize("mode", ["batch", "pair", "elem"])
@pytest.mark.parametrize("cfg", TIMM_CONFIGS)
@pytest.mark.parametrize("channels_last", [False, True])
def test_timm_mixup_cutmix(torch, seed, mode, cfg, channels_last):
    import fastmix.timm as ftimm
    b, c, h, w, classes, eps = 16, 3, 12, 10, 7, 0.1
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, c, h, w, generator=gen)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, classes, (b,), generator=gen)
    mix = ftimm.Mixup(mode=mode, label_smoothing=eps, num_classes=classes,
                      generator=fastmix.Generator(seed), **cfg)
    if cfg.get("cutmix_minmax") is not None:
        assert mix.cutmix_alpha == 1.0  # as timm
    x0 = x.clone()
    xm, target = mix(x, y)
    assert xm is x  # in place
    assert x.is_contiguous(memory_format=torch.channels_last) == channels_last
    lam, par, boxes = mix.lambdas, mix.partners, mix.boxes
    assert lam.dtype == torch.float32 and boxes.shape == (b, 4)
    unmixed = (boxes == 0).all(1) & (par == torch.arange(b))
    assert torch.equal(par[~unmixed], torch.arange(b - 1, -1, -1)[~unmixed])  # timm's flip
    assert (lam[unmixed] == 1).all()
    if mode == "batch":
        assert (lam == lam[0]).all() and (boxes == boxes[0]).all()
    if mode == "pair":
        assert torch.equal(lam, lam.flip(0)) and torch.equal(boxes, boxes.flip(0))
    cuts = (boxes >= 0).all(1) & ~unmixed
    if cfg["mixup_alpha"] == 0.0:
        assert not (boxes == -1).any()
    if cfg.get("correct_lam", True) or cfg.get("cutmix_minmax") is not None:
        assert torch.equal(lam[cuts], torch.from_numpy(corrected(boxes[cuts].numpy(), h, w)))
    else:
        assert timm_box_consistent(boxes[cuts].numpy(), lam[cuts].numpy(), h, w).all()
    assert_applied(x, x0, lam, par, boxes, "nchw", "float32")
    assert target.dtype == torch.float32 and target.shape == (b, classes)
    torch.testing.assert_close(target.double(), timm_targets(torch, y, classes, lam, eps),
                               rtol=1e-6, atol=1e-7)
    # the fused loss on mixed_target equals SoftTargetCrossEntropy on the dense targets
    z = torch.randn(b, classes, generator=gen, dtype=torch.float64)
    want = (-(target.double() * torch.log_softmax(z, 1)).sum(1)).mean()
    import fastmix.torch as ft
    got = ft.cross_entropy(z.float(), mix.mixed_target(y), label_smoothing=eps)
    assert abs(got.item() - want.item()) <= 1e-5 * abs(want.item())


def test_timm_mixup_layouts_agree_and_options(torch, seed):
    import fastmix.timm as ftimm
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(8, 3, 9, 11, generator=gen)
    y = torch.randint(0, 5, (8,), generator=gen)
    kw = dict(mixup_alpha=0.5, cutmix_alpha=1.0, mode="elem", num_classes=5)
    a = x.clone()
    ftimm.Mixup(generator=fastmix.Generator(seed), **kw)(a, y)
    cl = x.contiguous(memory_format=torch.channels_last)
    ftimm.Mixup(generator=fastmix.Generator(seed), **kw)(cl, y)
    assert torch.equal(a, cl)
    # mixup_enabled = False: nothing mixed
    m = ftimm.Mixup(generator=fastmix.Generator(seed), **kw)
    m.mixup_enabled = False
    xx = x.clone()
    m(xx, y)
    assert torch.equal(xx, x) and (m.lambdas == 1).all()
    # mixup alone takes any shape; CutMix needs images
    flat = torch.randn(8, 6, generator=gen)
    f0 = flat.clone()
    mm = ftimm.Mixup(mixup_alpha=0.5, mode="elem", num_classes=5,
                     generator=fastmix.Generator(seed))
    mm(flat, y)
    lam = mm.lambdas.double().view(-1, 1)
    torch.testing.assert_close(flat.double(), lam * f0.double() + (1 - lam) * f0.flip(0).double(),
                               rtol=1e-6, atol=1e-6)
    with pytest.raises(fastmix.InvalidValueError, match="shape"):
        ftimm.Mixup(cutmix_alpha=1.0, num_classes=5)(torch.zeros(8, 6), y)
    with pytest.raises(fastmix.InvalidValueError, match="even"):
        ftimm.Mixup(cutmix_alpha=1.0, num_classes=5)(torch.zeros(7, 3, 4, 4), y[:7])
    with pytest.raises(fastmix.InvalidValueError, match="prob"):
        ftimm.Mixup(cutmix_alpha=1.0, prob=1.5)
    with pytest.raises(fastmix.InvalidValueError, match="switch_prob"):
        ftimm.Mixup(cutmix_alpha=1.0, switch_prob=2.0)
    with pytest.raises(fastmix.InvalidValueError, match="cutmix_min"):
        ftimm.Mixup(cutmix_minmax=(0.9, 0.1))
    # an empty image batch: only the draw
    e = torch.zeros(4, 0, 3, 3)
    ftimm.Mixup(cutmix_alpha=1.0, num_classes=5)(e, y[:4])


def c_weights(lam, par, boxes, h, w):
    """(own, part) per sample and pixel, float64, from the apply rule."""
    b = len(lam)
    own = np.zeros((b, h, w))
    part = np.zeros((b, h, w))
    for i in range(b):
        y0, x0, y1, x1 = (int(v) for v in boxes[i])
        if y0 == -1:
            own[i], part[i] = float(lam[i]), 1.0 - float(lam[i])
        else:
            own[i] = 1.0
            own[i, y0:y1, x0:x1] = 0.0
            part[i, y0:y1, x0:x1] = 1.0
    return own, part


@pytest.mark.parametrize("channels_last", [False, True])
def test_torch_cutmix_gradient(torch, seed, channels_last):
    import fastmix.torch as ft
    gen = torch.Generator().manual_seed(seed)
    b, c, h, w = 10, 3, 8, 9
    x = torch.randn(b, c, h, w, generator=gen)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    xm, lam, par, boxes = ft.cutmix(x, mixup_alpha=0.6, cutmix_alpha=1.0, prob=0.8,
                                    generator=fastmix.Generator(seed))
    assert xm.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert_applied(xm, x, lam, par, boxes)
    go = torch.randn(b, c, h, w, generator=gen)
    xm.backward(go)
    own, part = c_weights(lam.numpy(), par.numpy(), boxes.numpy(), h, w)
    g64 = go.double().numpy()
    want = own[:, None] * g64
    for i in range(b):
        want[par[i]] += part[i][None] * g64[i]
    np.testing.assert_allclose(x.grad.double().numpy(), want, rtol=1e-6, atol=1e-6)
    # cutmix_apply: the same gradient, and the draw on a mask
    x2 = x.detach().clone().requires_grad_()
    ft.cutmix_apply(x2, lam, par, boxes).backward(go)
    np.testing.assert_allclose(x2.grad.double().numpy(), want, rtol=1e-6, atol=1e-6)
    mask = (torch.rand(b, 1, h, w, generator=gen) > 0.5).float()
    assert_applied(ft.cutmix_apply(mask, lam, par, boxes), mask, lam, par, boxes)
    # in place on a tensor that requires grad is refused
    with pytest.raises(RuntimeError, match="requires grad"):
        ft.cutmix(x, inplace=True)
    with torch.no_grad():
        xi = x.detach().clone()
        r, lam_i, _, _ = ft.cutmix(xi, mixup_alpha=0.6, cutmix_alpha=1.0, prob=0.8,
                                   generator=fastmix.Generator(seed), inplace=True)
        assert r is xi and torch.equal(xi, xm.detach()) and torch.equal(lam_i, lam)


def test_torch_opcheck_and_compile(torch, seed):
    import fastmix.torch as ft
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(6, 3, 5, 7, generator=gen, requires_grad=True)
    cfg = [0.5, 1.0, 0.0, 0.0, 0.9, 0.5]
    torch.library.opcheck(torch.ops.fastmix.cutmix.default, (x, cfg, 0, 0, True, False, 0, 3, 1))
    torch.library.opcheck(torch.ops.fastmix.cutmix.default,
                          (x.detach().permute(0, 2, 3, 1).contiguous().requires_grad_(), cfg, 2,
                           3, True, False, 1, 3, 1))
    torch.library.opcheck(torch.ops.fastmix.cutmix_.default,
                          (x.detach().clone(), cfg, 1, 2, False, True, 0, 3, 1))
    _, lam, par, boxes = ft.cutmix(x.detach(), mixup_alpha=0.5, generator=fastmix.Generator(1))
    torch.library.opcheck(torch.ops.fastmix.cutmix_apply.default, (x, lam, par, boxes, 0))
    torch._dynamo.reset()
    model = torch.nn.Linear(3 * 5 * 7, 4)
    y = torch.randint(0, 4, (6,), generator=gen)

    def step(x, lam, par, boxes):
        xm = ft.cutmix_apply(x, lam, par, boxes)
        return ft.cross_entropy(model(xm.flatten(1)), ft.MixedTarget(y, lam, par))

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    xd = x.detach()
    torch.testing.assert_close(compiled(xd, lam, par, boxes), step(xd, lam, par, boxes))


def test_mixup_module_with_cutmix_and_the_fused_loss(torch, seed):
    import fastmix.torch as ft
    gen = torch.Generator().manual_seed(seed)
    b, c, h, w, classes, eps = 12, 3, 10, 8, 6, 0.1
    x = torch.randn(b, c, h, w, generator=gen)
    y = torch.randint(0, classes, (b,), generator=gen)
    m = ft.MixUp(alpha=0.4, cutmix_alpha=1.0, switch_prob=0.5, prob=0.9,
                 generator=fastmix.Generator(seed))
    xm, t = m(x, y)
    assert isinstance(t, ft.MixedTarget) and t.labels is y
    # the same draw as fastmix.torch.cutmix with MixUp's fold and pairing
    xr, lam, par, boxes = ft.cutmix(x, mixup_alpha=0.4, cutmix_alpha=1.0, switch_prob=0.5,
                                    prob=0.9, fold=True, pairing="permutation",
                                    generator=fastmix.Generator(seed))
    assert torch.equal(xm, xr) and torch.equal(t.lambdas, lam) and torch.equal(t.partners, par)
    assert (boxes[:, 0] == -1).any() and (boxes[:, 0] >= 0).any()
    assert_applied(xm, x, lam, par, boxes)
    # the fused loss against the float64 two-term cross-entropy with these lambdas
    z = torch.randn(b, classes, generator=gen, requires_grad=True)
    loss = ft.cross_entropy(z, t, label_smoothing=eps)
    want, grad = ref.cross_entropy(z.detach().numpy(), y.numpy(), lam.numpy(), par.numpy(),
                                   eps=eps)
    assert abs(loss.item() - want) <= 2e-6 * abs(want) + 1e-7
    loss.backward()
    np.testing.assert_allclose(z.grad.numpy(), grad, rtol=1e-5, atol=2e-7)
    # CutMix alone (alpha 0), and eval mode passes the batch through
    m0 = ft.MixUp(alpha=0.0, cutmix_alpha=1.0, generator=fastmix.Generator(seed))
    xm0, t0 = m0(x, y)
    assert not torch.equal(xm0, x)
    m0.eval()
    xe, te = m0(x, y)
    assert xe is x and (te.lambdas == 1).all()
    # prob or mode alone also take the CutMix draw (mixup only: any shape)
    mp = ft.MixUp(alpha=0.4, prob=0.5, mode="batch", generator=fastmix.Generator(seed))
    v = torch.randn(b, 5, generator=gen)
    vm, tv = mp(v, y)
    lv = tv.lambdas.double().view(-1, 1)
    assert (tv.lambdas == tv.lambdas[0]).all()
    torch.testing.assert_close(vm.double(), lv * v.double() + (1 - lv) * v[tv.partners].double(),
                               rtol=1e-6, atol=1e-6)
    # the defaults are today's fused mixup
    md = ft.MixUp(alpha=0.4, generator=fastmix.Generator(seed))
    out, lam_d, par_d = fastmix.mixup(x.numpy(), 0.4, generator=fastmix.Generator(seed))
    xd, td = md(x, y)
    np.testing.assert_array_equal(xd.numpy(), out)
    np.testing.assert_array_equal(td.lambdas.numpy(), lam_d)
    # bad options are refused when the module is built, by the C library
    with pytest.raises(fastmix.InvalidValueError, match="pairing"):
        ft.MixUp(cutmix_alpha=1.0, mode="pair")
    with pytest.raises(fastmix.InvalidValueError, match="switch_prob"):
        ft.MixUp(cutmix_alpha=1.0, switch_prob=3.0)
    with pytest.raises(fastmix.InvalidValueError, match="neither"):
        ft.MixUp(alpha=0.0, prob=0.5)
    ft.MixUp(alpha=0.4, cutmix_alpha=1.0, mode="pair", pairing="flip")
    assert "cutmix_alpha=1.0" in repr(ft.MixUp(cutmix_alpha=1.0))


@pytest.mark.parametrize("channels_last", [False, True])
def test_torchvision_cutmix(torch, seed, channels_last):
    import fastmix.torch as ft
    gen = torch.Generator().manual_seed(seed)
    b, c, h, w, classes = 9, 3, 14, 11, 5
    x = torch.randn(b, c, h, w, generator=gen)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, classes, (b,), generator=gen)
    x0 = x.clone()
    cm = ft.CutMix(alpha=1.0, generator=fastmix.Generator(seed))
    seen_cut = False
    for _ in range(5):
        xm, t = cm(x, y)
        assert torch.equal(x, x0)  # out of place, as torchvision
        assert xm.is_contiguous(memory_format=torch.channels_last) == channels_last
        assert isinstance(t, ft.MixedTarget)
        lam, par, boxes = t.lambdas, t.partners, cm.boxes
        assert torch.equal(par, (torch.arange(b) - 1) % b)  # roll(1, 0)
        assert (lam == lam[0]).all() and (boxes == boxes[0]).all() and (boxes >= 0).all()
        assert torch.equal(lam, torch.from_numpy(corrected(boxes.numpy(), h, w)))
        assert_applied(xm, x0, lam, par, boxes)
        # torchvision's own expression: output[..., y0:y1, x0:x1] = x.roll(1, 0)[..., box]
        y0, x0_, y1, x1 = (int(v) for v in boxes[0])
        tv = x0.clone()
        tv[..., y0:y1, x0_:x1] = x0.roll(1, 0)[..., y0:y1, x0_:x1]
        assert torch.equal(xm, tv)
        seen_cut |= bool(lam[0] < 1)
    assert seen_cut
    # dense targets with num_classes: torchvision's one-hot mix
    cd2 = ft.CutMix(alpha=1.0, num_classes=classes, generator=fastmix.Generator(seed))
    xm2, dense2 = cd2(x, y)
    torch.testing.assert_close(dense2.sum(1), torch.ones(b))
    l2 = float(corrected(cd2.boxes.numpy(), h, w)[0])
    one = onehot64(torch, y, classes)
    want = one.roll(1, 0) * (1.0 - l2) + one * l2
    assert dense2.dtype == torch.float32 and dense2.shape == (b, classes)
    torch.testing.assert_close(dense2.double(), want, rtol=1e-6, atol=1e-7)
    # one-hot (float) targets are mixed the same way
    xm3, soft = ft.CutMix(alpha=1.0, generator=fastmix.Generator(seed))(x, one.float())
    torch.testing.assert_close(soft.double(), want, rtol=1e-6, atol=1e-7)
    # it mixes in eval mode too, like torchvision's transform
    ce = ft.CutMix(alpha=1.0, generator=fastmix.Generator(seed)).eval()
    assert torch.equal(ce(x, y)[0], xm3)
    # in place
    xi = x.clone()
    r, _ = ft.CutMix(alpha=1.0, generator=fastmix.Generator(seed), inplace=True)(xi, y)
    assert r is xi and torch.equal(xi, xm3)
    with pytest.raises(fastmix.InvalidValueError, match="alpha"):
        ft.CutMix(alpha=0.0)
    with pytest.raises(fastmix.InvalidValueError, match="num_classes"):
        ft.CutMix(num_classes=0)
    with pytest.raises(fastmix.InvalidValueError, match="one entry per sample"):
        ft.CutMix()(x, y[:3])


# ------------------------------------------------------------------- CUDA ---

def cuda_devices():
    try:
        import torch
    except ImportError:
        return []
    if fastmix.cuda_device_count() == 0 or not torch.cuda.is_available():
        return []
    return [f"cuda:{i}" for i in range(min(torch.cuda.device_count(), 2))]


@pytest.mark.skipif(not cuda_devices(), reason="no CUDA device")
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("mode", ["elem", "pair", "batch"])
def test_cuda_matches_cpu(seed, dtype, layout, mode):
    import torch
    kw = dict(mixup_alpha=0.8, cutmix_alpha=1.0, prob=0.8, mode=mode)
    for dev in cuda_devices():
        for b, c, h, w in [(0, 3, 4, 4), (1, 3, 5, 5), (8, 3, 17, 13), (64, 3, 32, 32)]:
            shape = layout_shape((b, c, h, w), layout)
            x = torch.randn(shape).to(getattr(torch, dtype))
            o_cpu, l_cpu, p_cpu, b_cpu = fastmix.cutmix(x, layout=layout,
                                                        generator=fastmix.Generator(seed), **kw)
            xc = x.to(dev)
            out = torch.full_like(xc, float("nan"))
            r, lam, par, boxes = fastmix.cutmix(xc, layout=layout, out=out,
                                                generator=fastmix.Generator(seed), **kw)
            assert r is out and lam.device == xc.device and boxes.device == xc.device
            torch.cuda.synchronize(dev)
            assert torch.equal(lam.cpu(), l_cpu) and torch.equal(par.cpu(), p_cpu)
            assert torch.equal(boxes.cpu(), b_cpu)
            assert torch.equal(out.cpu().view(torch.int16 if dtype != "float32" else torch.int32),
                               o_cpu.view(torch.int16 if dtype != "float32" else torch.int32))
            inplace = xc.clone()
            fastmix.cutmix(inplace, layout=layout, out=inplace, generator=fastmix.Generator(seed),
                           **kw)
            assert torch.equal(inplace.cpu(), o_cpu)
            applied = fastmix.cutmix_apply(xc, lam, par, boxes, layout=layout)
            assert torch.equal(applied.cpu(), o_cpu)
            sl, sp, sb = fastmix.cutmix_sample(b, h, w, generator=fastmix.Generator(seed),
                                               like=xc, **kw)
            assert torch.equal(sb.cpu(), b_cpu) and torch.equal(sl.cpu(), l_cpu)
