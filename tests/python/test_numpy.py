"""The NumPy API against float64 references, the documented arithmetic, the
error contract and the C ABI's seeds and offsets."""
import ctypes

import numpy as np
import pytest

import fastmix
import _reference as ref
from conftest import last_error

DTYPES = ["float32", "float16"]
try:
    import ml_dtypes  # noqa: F401
    DTYPES.append("bfloat16")
except ImportError:
    pass


def np_dtype(name):
    if name == "bfloat16":
        import ml_dtypes
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def images(rng, shape, dtype):
    return (rng.standard_normal(shape) * 3).astype(np_dtype(dtype))


def c_sample(alpha, fold, pairing, seed, offset, batch):
    """fastmix_sample called directly through the C ABI."""
    lam = np.full(batch, np.nan, np.float32)
    par = np.full(batch, -7, np.int64)
    st = fastmix._lib.lib.fastmix_sample(0, alpha, fold, pairing, seed, offset, batch,
                                         lam.ctypes.data, par.ctypes.data, None)
    assert st == 0, last_error()
    return lam, par


# ---------------------------------------------------------------- library ---

def test_library_info():
    assert fastmix.cuda_device_count() >= 0
    major, minor, patch = (int(v) for v in fastmix.__version__.split("."))
    assert fastmix._lib.lib.fastmix_version() == major * 10000 + minor * 100 + patch


# -------------------------------------------------------------- generator ---

def test_generator_offsets_match_c():
    g = fastmix.Generator(1234)
    assert (g.seed, g.offset) == (1234, 0)
    for offset in range(3):
        lam, par = fastmix.sample(37, 0.4, generator=g)
        assert g.offset == offset + 1
        clam, cpar = c_sample(0.4, 1, 0, 1234, offset, 37)
        np.testing.assert_array_equal(lam, clam)
        np.testing.assert_array_equal(par, cpar)


def test_generator_state_and_manual_seed():
    g = fastmix.Generator(2 ** 64 - 1)
    a = fastmix.sample(16, 1.0, generator=g)
    g.offset = 0
    b = fastmix.sample(16, 1.0, generator=g)
    np.testing.assert_array_equal(a[0], b[0])
    g.set_state((5, 9))
    assert g.get_state() == (5, 9)
    fastmix.manual_seed(77)
    a = fastmix.sample(16)
    fastmix.manual_seed(77)
    b = fastmix.sample(16)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    c = fastmix.sample(16)
    assert not np.array_equal(a[0], c[0])
    clam, _ = c_sample(0.4, 1, 0, 77, 1, 16)
    np.testing.assert_array_equal(c[0], clam)
    for bad in (-1, 2 ** 64):
        with pytest.raises(fastmix.InvalidValueError):
            fastmix.Generator(bad)
    with pytest.raises(TypeError):
        fastmix.Generator(1.5)


# ----------------------------------------------------------------- sample ---

@pytest.mark.parametrize("batch", [0, 1, 2, 3, 7, 64, 1001])
@pytest.mark.parametrize("pairing", ["permutation", "cycle", "flip"])
def test_sample_structure(batch, pairing):
    for fold in (True, False):
        lam, par = fastmix.sample(batch, 0.7, fold=fold, pairing=pairing,
                                  generator=fastmix.Generator(batch))
        assert lam.dtype == np.float32 and par.dtype == np.int64
        assert lam.shape == (batch,) and par.shape == (batch,)
        assert not np.isnan(lam).any()
        assert ((lam >= 0) & (lam <= 1)).all()
        if fold:
            assert (lam >= 0.5).all()
        np.testing.assert_array_equal(np.sort(par), np.arange(batch))  # a permutation
        if pairing == "flip":
            np.testing.assert_array_equal(par, np.arange(batch)[::-1])
        if pairing == "cycle" and batch >= 2:
            # one cycle through the whole batch
            seen, i = set(), 0
            for _ in range(batch):
                seen.add(i)
                i = par[i]
            assert i == 0 and len(seen) == batch
            if batch > 2:
                assert (par[par] != np.arange(batch)).all()


def test_sample_lambdas_do_not_depend_on_batch():
    a, _ = fastmix.sample(10, 0.3, generator=fastmix.Generator(5))
    b, _ = fastmix.sample(100, 0.3, generator=fastmix.Generator(5))
    np.testing.assert_array_equal(a, b[:10])


@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.2, 0.4, 1.0, 2.0, 8.0, 100.0])
@pytest.mark.parametrize("fold", [False, True])
def test_sample_beta_distribution(alpha, fold):
    stats = pytest.importorskip("scipy.stats")
    n = 20000
    lam, _ = fastmix.sample(n, alpha, fold=fold, generator=fastmix.Generator(int(alpha * 1000)))
    beta = stats.beta(alpha, alpha)
    if fold:
        # max(t, 1 - t) for a symmetric Beta: P(L <= x) = 2 F(x) - 1 on [1/2, 1].
        F = lambda x: np.clip(2 * beta.cdf(x) - 1, 0, 1)  # noqa: E731
    else:
        F = beta.cdf
    # scipy's kstest assumes continuous data; the lambdas are float32 and are
    # "a few ulp accurate" (docs/design.md).  Near 1 an ulp is 6e-8, and for
    # small alpha that scale holds real mass (a fifth of Beta(0.05, 0.05) lies
    # within half an ulp of 1), so a 1-ulp rounding of the sampler's sigmoid
    # is visible to a KS test at full resolution.  The statistic is therefore
    # the distance of the two CDFs at every observed value (before and after
    # its step: ties are fine; a value v stands for the variates that round
    # to it, [v - ulp_below/2, v + ulp_above/2], which matters at 0 where the
    # values below half the smallest subnormal are stored as 0: 18% of
    # Beta(0.01, 0.01)) below 1 - 2^-14, plus at that cut: the top
    # 1024 ulps are tested as one bin, where a few ulps of error move F by
    # less than 1e-4.  The p-value of the continuous KS distribution is
    # conservative for this coarser statistic.
    cut = 1.0 - 2.0 ** -14
    lam64 = lam.astype(np.float64)
    vals, counts = np.unique(lam, return_counts=True)
    ecdf = np.cumsum(counts) / n
    before = np.concatenate([[0.0], ecdf[:-1]])
    keep = vals.astype(np.float64) <= cut
    v = vals[keep].astype(np.float64)
    up = (np.nextafter(vals[keep], np.float32(2)).astype(np.float64) - v) / 2
    down = (v - np.nextafter(vals[keep], np.float32(-1)).astype(np.float64)) / 2
    stat = max(np.abs(ecdf[keep] - F(v + up)).max(initial=0),
               np.abs(before[keep] - F(np.maximum(v - down, 0.0))).max(initial=0),
               abs(np.mean(lam64 <= cut) - F(cut)))
    res = (stat, stats.kstwo.sf(stat, n))
    assert not np.isnan(lam).any()
    assert res[1] > 1e-4, (alpha, fold, res)


def test_sample_offsets_independent():
    stats = pytest.importorskip("scipy.stats")
    g = fastmix.Generator(99)
    a, _ = fastmix.sample(20000, 1.0, fold=False, generator=g)
    b, _ = fastmix.sample(20000, 1.0, fold=False, generator=g)
    r, p = stats.pearsonr(a, b)
    assert p > 1e-4, r


@pytest.mark.parametrize("pairing", ["permutation", "cycle"])
def test_sample_partner_uniform(pairing):
    stats = pytest.importorskip("scipy.stats")
    batch, draws = 8, 4000
    g = fastmix.Generator(3)
    counts = np.zeros((batch, batch))
    for _ in range(draws):
        _, par = fastmix.sample(batch, 1.0, pairing=pairing, generator=g)
        counts[np.arange(batch), par] += 1
    for i in range(batch):
        obs = counts[i] if pairing == "permutation" else np.delete(counts[i], i)
        if pairing == "cycle":
            assert counts[i, i] == 0
        assert stats.chisquare(obs).pvalue > 1e-4


@pytest.mark.parametrize("alpha", [0.0, -1.0, float("nan"), float("inf"), 1e39])
def test_sample_bad_alpha(alpha):
    g = fastmix.Generator(1)
    with pytest.raises(fastmix.InvalidValueError) as e:
        fastmix.sample(4, alpha, generator=g)
    assert str(e.value) == last_error() and "alpha" in str(e.value)
    assert e.value.status == fastmix.Status.INVALID_VALUE
    assert g.offset == 0  # a failed draw does not advance the generator


def test_sample_bad_arguments():
    with pytest.raises(fastmix.InvalidValueError) as e:
        fastmix.sample(-1)
    assert str(e.value) == last_error() and "batch" in str(e.value)
    with pytest.raises(fastmix.InvalidValueError) as e:
        fastmix.sample(fastmix.MAX_BATCH + 1)
    assert str(e.value) == last_error()
    with pytest.raises(fastmix.InvalidValueError, match="pairing"):
        fastmix.sample(4, pairing="random")
    with pytest.raises(TypeError):
        fastmix.sample(4, generator=np.random.default_rng(0))
    assert isinstance(fastmix.InvalidValueError("x", 1), ValueError)


# ------------------------------------------------------------------ blend ---

SHAPES = [(0, 3, 4), (1, 3, 4), (2, 5), (7, 3, 4, 5), (33,), (5, 0), (16, 1, 257)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_blend_reference(rng, dtype, shape):
    x = images(rng, shape, dtype)
    b = shape[0]
    lam = rng.random(b).astype(np.float32)
    par = rng.integers(0, max(b, 1), b)  # any partners in range, not only permutations
    x0 = x.copy()
    out = np.full(shape, np.nan, dtype=np_dtype(dtype))
    res = fastmix.blend(x, lam, par, out=out)
    assert res is out
    np.testing.assert_array_equal(x, x0)  # the input is read only
    got = out.astype(np.float64)
    assert not np.isnan(got).any()
    err = np.abs(got - ref.blend(x0, lam, par))
    assert (err <= ref.blend_bound(x0, lam, par, dtype)).all()
    # The documented arithmetic exactly: float32 products and sum, one rounding.
    l32 = lam.reshape((-1,) + (1,) * (len(shape) - 1))
    exact = (l32 * x0.astype(np.float32) + (np.float32(1) - l32) * x0.astype(np.float32)[par])
    np.testing.assert_array_equal(out, exact.astype(np_dtype(dtype)))
    # out=None allocates; out=x blends in place, bitwise the same.
    np.testing.assert_array_equal(fastmix.blend(x, lam, par), out)
    inplace = x.copy()
    assert fastmix.blend(inplace, lam, par, out=inplace) is inplace
    np.testing.assert_array_equal(inplace, out)


def test_blend_lambda_one_is_identity(rng):
    x = images(rng, (9, 17), "float32")
    out = fastmix.blend(x, np.ones(9, np.float32), rng.permutation(9))
    np.testing.assert_array_equal(out, x)


@pytest.mark.parametrize("dtype", DTYPES)
def test_blend_strided_samples(rng, dtype):
    big = images(rng, (6, 3, 2, 4, 4), dtype)
    x = big[:, 1]  # samples of 32 contiguous elements, 96 apart
    lam = rng.random(6).astype(np.float32)
    par = rng.permutation(6)
    outbig = np.full(big.shape, np.nan, dtype=big.dtype)
    out = outbig[:, 1]
    fastmix.blend(x, lam, par, out=out)
    assert np.isnan(outbig[:, 0].astype(np.float64)).all()  # between samples: untouched
    assert np.isnan(outbig[:, 2].astype(np.float64)).all()
    err = np.abs(out.astype(np.float64) - ref.blend(x, lam, par))
    assert (err <= ref.blend_bound(x, lam, par, dtype)).all()
    alloc = fastmix.blend(x, lam, par)
    assert alloc.shape == x.shape
    np.testing.assert_array_equal(alloc, out)
    # in place on the strided view leaves the other columns alone
    before = big.copy()
    fastmix.blend(x, lam, par, out=x)
    np.testing.assert_array_equal(big[:, 1], out)
    np.testing.assert_array_equal(big[:, [0, 2]], before[:, [0, 2]])


def test_blend_lambdas_partners_conversion(rng):
    x = images(rng, (5, 8), "float32")
    lam64 = rng.random(5)
    par32 = rng.permutation(5).astype(np.int32)
    got = fastmix.blend(x, lam64, par32)
    want = fastmix.blend(x, lam64.astype(np.float32), par32.astype(np.int64))
    np.testing.assert_array_equal(got, want)
    strided = np.repeat(lam64.astype(np.float32), 2)[::2]
    np.testing.assert_array_equal(fastmix.blend(x, strided, par32), want)


def _poisoned(shape, dtype="float32"):
    return np.full(shape, np.nan, dtype=np_dtype(dtype))


def _assert_poisoned(out):
    assert np.isnan(out.astype(np.float64)).all()


def test_blend_bad_partner_writes_nothing(rng):
    x = images(rng, (4, 6), "float32")
    lam = rng.random(4).astype(np.float32)
    for bad in (4, -1, 10 ** 12):
        par = np.array([0, 1, bad, 3])
        out = _poisoned((4, 6))
        with pytest.raises(fastmix.InvalidValueError) as e:
            fastmix.blend(x, lam, par, out=out)
        assert str(e.value) == last_error() and "partners[2]" in str(e.value)
        _assert_poisoned(out)
    inplace = x.copy()
    with pytest.raises(fastmix.InvalidValueError):
        fastmix.blend(inplace, lam, np.array([0, 1, 4, 3]), out=inplace)
    np.testing.assert_array_equal(inplace, x)


def test_blend_bad_arguments(rng):
    x = images(rng, (4, 6), "float32")
    lam = rng.random(4).astype(np.float32)
    par = rng.permutation(4)
    cases = [
        (dict(x=x.astype(np.float64)), "dtype"),
        (dict(x=x.astype(np.int32)), "dtype"),
        (dict(lambdas=lam[:3]), "lambdas"),
        (dict(partners=par[:3]), "partners"),
        (dict(partners=par.astype(np.float32)), "partners"),
        (dict(out_shape=(4, 5)), "shape"),
        (dict(out_dtype="float16"), "dtype"),
        (dict(x=np.asarray(x, order="F")[:, ::2]), "contiguous"),
        (dict(x=np.ones((), np.float32)), "batch"),
    ]
    for change, word in cases:
        xx = change.get("x", x)
        out = _poisoned(change.get("out_shape", xx.shape if xx.ndim else (1,)),
                        change.get("out_dtype", "float32"))
        with pytest.raises(fastmix.InvalidValueError, match=word):
            fastmix.blend(xx, change.get("lambdas", lam), change.get("partners", par), out=out)
        _assert_poisoned(out)
    with pytest.raises(TypeError):
        fastmix.blend([[1.0]], lam, par)


def test_blend_overlap_and_negative_stride(rng):
    buf = images(rng, (5, 6), "float32")
    lam = rng.random(4).astype(np.float32)
    par = rng.permutation(4)
    before = buf.copy()
    with pytest.raises(fastmix.InvalidValueError) as e:
        fastmix.blend(buf[0:4], lam, par, out=buf[1:5])
    assert str(e.value) == last_error() and "overlap" in str(e.value)
    np.testing.assert_array_equal(buf, before)
    outbuf = _poisoned((4, 6))
    out = outbuf[::-1]
    with pytest.raises(fastmix.InvalidValueError) as e:
        fastmix.blend(buf[3::-1], lam, par, out=out)  # samples going backwards
    assert str(e.value) == last_error()
    _assert_poisoned(out)


# ------------------------------------------------------------------ mixup ---

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(0, 4), (1, 3, 2), (7, 3, 4, 4), (64, 10), (5, 0)])
@pytest.mark.parametrize("pairing", ["permutation", "cycle", "flip"])
def test_mixup_is_sample_then_blend(rng, dtype, shape, pairing):
    x = images(rng, shape, dtype)
    x0 = x.copy()
    out = _poisoned(shape, dtype)
    g = fastmix.Generator(int(rng.integers(2 ** 63)))
    seed = g.seed
    res, lam, par = fastmix.mixup(x, 0.4, pairing=pairing, generator=g, out=out)
    assert res is out and g.offset == 1
    np.testing.assert_array_equal(x, x0)
    slam, spar = fastmix.sample(shape[0], 0.4, pairing=pairing, generator=fastmix.Generator(seed))
    np.testing.assert_array_equal(lam, slam)
    np.testing.assert_array_equal(par, spar)
    np.testing.assert_array_equal(out, fastmix.blend(x, slam, spar))
    assert not np.isnan(out.astype(np.float64)).any()
    err = np.abs(out.astype(np.float64) - ref.blend(x0, lam, par))
    assert (err <= ref.blend_bound(x0, lam, par, dtype)).all()
    # in place, and the C ABI with the same seed and offset
    inplace = x.copy()
    r2, lam2, _ = fastmix.mixup(inplace, 0.4, pairing=pairing,
                                generator=fastmix.Generator(seed), out=inplace)
    assert r2 is inplace
    np.testing.assert_array_equal(inplace, out)
    clam, cpar = c_sample(0.4, 1, ["permutation", "cycle", "flip"].index(pairing), seed, 0,
                          shape[0])
    np.testing.assert_array_equal(lam2, clam)
    np.testing.assert_array_equal(par, cpar)


def test_mixup_strided_and_alloc(rng):
    big = images(rng, (9, 2, 3, 5), "float32")
    x = big[:, 0]
    out, lam, par = fastmix.mixup(x, 1.0, generator=fastmix.Generator(4))
    err = np.abs(out.astype(np.float64) - ref.blend(x, lam, par))
    assert (err <= ref.blend_bound(x, lam, par, "float32")).all()


def test_mixup_bad_arguments(rng):
    x = images(rng, (4, 6), "float32")
    g = fastmix.Generator(3)
    for alpha in (0.0, -2.0, float("nan")):
        out = _poisoned((4, 6))
        with pytest.raises(fastmix.InvalidValueError) as e:
            fastmix.mixup(x, alpha, generator=g, out=out)
        assert str(e.value) == last_error() and "alpha" in str(e.value)
        _assert_poisoned(out)
    inplace = x.copy()
    with pytest.raises(fastmix.InvalidValueError):
        fastmix.mixup(inplace, -1.0, out=inplace)
    np.testing.assert_array_equal(inplace, x)
    out = _poisoned((4, 6))
    with pytest.raises(fastmix.InvalidValueError, match="pairing"):
        fastmix.mixup(x, pairing="swap", out=out)
    _assert_poisoned(out)
    buf = np.concatenate([x, x[:1]])
    with pytest.raises(fastmix.InvalidValueError) as e:
        fastmix.mixup(buf[0:4], out=buf[1:5])
    assert "overlap" in str(e.value) and str(e.value) == last_error()
    assert g.offset == 0


# ----------------------------------------------------------- cross-entropy ---

def _logits(rng, b, c, dtype):
    return (rng.standard_normal((b, c)) * 4).astype(np_dtype(dtype))


def _labels(rng, b, c, ignore=None):
    y = rng.integers(0, c, b)
    if ignore is not None and b:
        y[rng.random(b) < 0.3] = ignore
    return y


def _ce_tolerance(dtype):
    # The loss is float32 (a few ulps of the row sums); the gradient is
    # float32 rounded once to the logits' dtype.
    return (2e-5, 1e-6) if dtype == "float32" else ((4e-3, 1e-6) if dtype == "float16"
                                                    else (1.6e-2, 1e-6))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("eps", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("mixed", [True, False])
@pytest.mark.parametrize("ignore", [None, -100, 3])
@pytest.mark.parametrize("b", [1, 7, 64])
def test_cross_entropy_reference(rng, dtype, reduction, eps, mixed, ignore, b):
    c = 10
    z = _logits(rng, b, c, dtype)
    y = _labels(rng, b, c, ignore)
    lam = rng.random(b).astype(np.float32) if mixed else None
    par = rng.permutation(b) if mixed else None
    ignore_index = -100 if ignore is None else ignore
    scale = 0.5
    loss, grad = fastmix.cross_entropy(z, y, lam, par, reduction=reduction, label_smoothing=eps,
                                       ignore_index=ignore_index, return_grad=True,
                                       grad_scale=scale)
    rloss, rgrad = ref.cross_entropy(z, y, lam, par, reduction, eps, ignore_index, scale)
    assert loss.dtype == np.float32 and loss.shape == ((b,) if reduction == "none" else ())
    assert grad.dtype == z.dtype and grad.shape == z.shape
    rtol, atol = _ce_tolerance(dtype)
    if reduction == "mean" and not np.isfinite(rloss):  # every weight is 0: NaN, documented
        assert np.isnan(loss)
        return
    np.testing.assert_allclose(loss, rloss, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(grad.astype(np.float64), rgrad, rtol=rtol, atol=atol)
    alone = fastmix.cross_entropy(z, y, lam, par, reduction=reduction, label_smoothing=eps,
                                  ignore_index=ignore_index)
    np.testing.assert_array_equal(alone, loss)


def test_cross_entropy_strided_rows(rng):
    big = _logits(rng, 6, 16, "float32")
    z = big[:, 2:12]  # 10 classes, rows 16 apart
    y = _labels(rng, 6, 10)
    lam = rng.random(6).astype(np.float32)
    par = rng.permutation(6)
    loss, grad = fastmix.cross_entropy(z, y, lam, par, reduction="sum", return_grad=True)
    rloss, rgrad = ref.cross_entropy(z, y, lam, par, "sum")
    np.testing.assert_allclose(loss, rloss, rtol=2e-5)
    np.testing.assert_allclose(grad, rgrad, rtol=2e-5, atol=1e-6)


def test_cross_entropy_empty_batch(rng):
    z = np.zeros((0, 5), np.float32)
    y = np.zeros(0, np.int64)
    assert fastmix.cross_entropy(z, y, reduction="sum") == 0
    assert np.isnan(fastmix.cross_entropy(z, y, reduction="mean"))
    assert fastmix.cross_entropy(z, y, reduction="none").shape == (0,)


def test_cross_entropy_bad_arguments(rng):
    z = _logits(rng, 4, 5, "float32")
    y = _labels(rng, 4, 5)
    lam = rng.random(4).astype(np.float32)
    par = rng.permutation(4)
    for bad in (5, -1, -100 + 1):
        yy = y.copy()
        yy[2] = bad
        with pytest.raises(fastmix.LabelOutOfRangeError) as e:
            fastmix.cross_entropy(z, yy, lam, par)
        assert isinstance(e.value, IndexError)
        assert str(e.value) == last_error() and "labels[2]" in str(e.value)
    with pytest.raises(fastmix.InvalidValueError) as e:
        fastmix.cross_entropy(z, y, lam, np.array([0, 1, 2, 9]))
    assert str(e.value) == last_error() and "partners" in str(e.value)
    for eps in (-0.1, 1.5, float("nan")):
        with pytest.raises(fastmix.InvalidValueError) as e:
            fastmix.cross_entropy(z, y, label_smoothing=eps)
        assert str(e.value) == last_error() and "label_smoothing" in str(e.value)
    with pytest.raises(fastmix.InvalidValueError) as e:
        fastmix.cross_entropy(z, y, lam, None)
    assert str(e.value) == last_error()
    with pytest.raises(fastmix.InvalidValueError) as e:
        fastmix.cross_entropy(z, y, None, par)
    assert str(e.value) == last_error()
    with pytest.raises(fastmix.InvalidValueError) as e:
        fastmix.cross_entropy(np.zeros((4, 0), np.float32), y)
    assert str(e.value) == last_error() and "classes" in str(e.value)
    with pytest.raises(fastmix.InvalidValueError, match="reduction"):
        fastmix.cross_entropy(z, y, reduction="avg")
    with pytest.raises(fastmix.InvalidValueError, match="shape"):
        fastmix.cross_entropy(z[None], y)
    with pytest.raises(fastmix.InvalidValueError, match="labels"):
        fastmix.cross_entropy(z, y[:3])
    with pytest.raises(fastmix.InvalidValueError, match="dtype"):
        fastmix.cross_entropy(z.astype(np.float64), y)
    with pytest.raises(fastmix.InvalidValueError, match="contiguous"):
        fastmix.cross_entropy(np.asfortranarray(z), y)


# ------------------------------------------------------------ soft targets ---

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("mixed", [True, False])
@pytest.mark.parametrize("b", [0, 1, 5, 64])
def test_soft_targets_reference(rng, dtype, eps, mixed, b):
    c = 7
    y = _labels(rng, b, c)
    lam = rng.random(b).astype(np.float32) if mixed else None
    par = rng.permutation(b) if mixed else None
    t = fastmix.soft_targets(y, c, lam, par, label_smoothing=eps,
                             dtype=None if dtype == "float32" else np_dtype(dtype))
    assert t.shape == (b, c) and t.dtype == np_dtype(dtype)
    want = ref.soft_targets(y, c, lam, par, eps)
    got = t.astype(np.float64)
    assert not np.isnan(got).any()
    rtol = {"float32": 1e-6, "float16": 2 ** -11, "bfloat16": 2 ** -8}[dtype]
    np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-7)
    if b:
        np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=c * rtol + 1e-6)


def test_soft_targets_bad_arguments(rng):
    y = _labels(rng, 4, 5)
    lam = rng.random(4).astype(np.float32)
    par = rng.permutation(4)
    yy = y.copy()
    yy[1] = 5
    with pytest.raises(fastmix.LabelOutOfRangeError) as e:
        fastmix.soft_targets(yy, 5, lam, par)
    assert str(e.value) == last_error() and "labels[1]" in str(e.value)
    with pytest.raises(fastmix.InvalidValueError) as e:
        fastmix.soft_targets(y, 0)
    assert str(e.value) == last_error() and "classes" in str(e.value)
    with pytest.raises(fastmix.InvalidValueError):
        fastmix.soft_targets(y, -1)
    with pytest.raises(fastmix.InvalidValueError) as e:
        fastmix.soft_targets(y, 5, label_smoothing=2.0)
    assert str(e.value) == last_error()
    with pytest.raises(fastmix.InvalidValueError) as e:
        fastmix.soft_targets(y, 5, lam)
    assert str(e.value) == last_error()
    with pytest.raises(fastmix.InvalidValueError, match="dtype"):
        fastmix.soft_targets(y, 5, dtype=np.float64)
