"""fastmix's general loss from Python: the cross-entropy with class weights
and with probability targets, and the binary cross-entropy with logits
(labels mixed and smoothed as timm does, or dense targets; threshold,
pos_weight), through fastmix.cross_entropy / binary_cross_entropy (NumPy)
and fastmix.torch (autograd), against float64 references written here and
against PyTorch's F.cross_entropy / F.binary_cross_entropy_with_logits,
including PyTorch's own OpInfo sample inputs for those two functions."""
import numpy as np
import pytest

import fastmix

torch = pytest.importorskip("torch")
F = torch.nn.functional
fmt = pytest.importorskip("fastmix.torch")


# ---- float64 references -------------------------------------------------------
def _lse(z):
    m = z.max(axis=1, keepdims=True)
    return (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]


def ref_ce_labels(z, y, lam=None, par=None, w=None, eps=0.0, ignore=-100, reduction="mean"):
    """Per term PyTorch's (1 - eps) w[y] (lse - z_y) + eps / C sum_c w_c (lse - z_c),
    the two terms weighted by lam and 1 - lam; returns (loss, d loss / d z)."""
    z = z.astype(np.float64)
    n, c = z.shape
    w = np.ones(c) if w is None else w.astype(np.float64)
    lse = _lse(z)
    p = np.exp(z - lse[:, None])
    rows, u, denom = np.zeros(n), np.zeros((n, c)), 0.0
    for i in range(n):
        terms = [(y[i], 1.0 if lam is None else float(lam[i]))]
        if lam is not None:
            terms.append((y[par[i]], 1.0 - float(lam[i])))
        for yy, s in terms:
            if yy == ignore or s == 0.0:
                continue
            rows[i] += s * ((1 - eps) * w[yy] * (lse[i] - z[i, yy])
                            + eps / c * (w * (lse[i] - z[i])).sum())
            u[i, yy] += s * (1 - eps) * w[yy]
            u[i] += s * eps / c * w
            denom += s * w[yy]
    grad = u.sum(axis=1, keepdims=True) * p - u
    return _reduce(rows, grad, denom, reduction)


def ref_ce_dense(z, t, w=None, eps=0.0, reduction="mean"):
    z = z.astype(np.float64)
    n, c = z.shape
    w = np.ones(c) if w is None else w.astype(np.float64)
    u = w * ((1 - eps) * t.astype(np.float64) + eps / c)
    logp = z - _lse(z)[:, None]
    rows = -(u * logp).sum(axis=1)
    grad = u.sum(axis=1, keepdims=True) * np.exp(logp) - u
    return _reduce(rows, grad, float(n), reduction)


def ref_bce(z, t, w=None, pw=None, reduction="mean"):
    """F.binary_cross_entropy_with_logits per element; "none" summed per row."""
    z = z.astype(np.float64)
    n, c = z.shape
    w = np.ones(c) if w is None else w.astype(np.float64)
    pw = np.ones(c) if pw is None else pw.astype(np.float64)
    sp = np.logaddexp(0, z)  # softplus(z); softplus(-z) = sp - z
    el = w * (pw * t * (sp - z) + (1 - t) * sp)
    sig = 1 / (1 + np.exp(-z))
    grad = w * ((1 - t + pw * t) * sig - pw * t)
    return _reduce(el.sum(axis=1), grad, float(n * c), reduction)


def timm_targets(y, c, lam=None, par=None, eps=0.0, threshold=None):
    """timm's mixup_target: smoothed one-hots, mixed by lam; then bce_target_thresh."""
    off = eps / c
    one = np.full((len(y), c), off)
    one[np.arange(len(y)), y] = 1 - eps + off
    t = one if lam is None else lam[:, None] * one + (1 - lam[:, None]) * one[par]
    return t if threshold is None else (t > threshold).astype(np.float64)


def _reduce(rows, grad, denom, reduction):
    if reduction == "none":
        return rows, grad
    if reduction == "sum":
        return rows.sum(), grad
    return rows.sum() / denom, grad / denom


def close(got, want, rtol=1e-5, atol=1e-6):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert not np.isnan(got).any() and not np.isnan(want).any()
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def scale_of(want):
    return max(1.0, float(np.abs(want).max()) if np.size(want) else 1.0)


@pytest.fixture
def rng():
    return np.random.default_rng()


REDS = ["none", "mean", "sum"]


# ---- NumPy: fastmix.cross_entropy / binary_cross_entropy ------------------------
@pytest.mark.parametrize("reduction", REDS)
@pytest.mark.parametrize("mix", [False, True])
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_numpy_cross_entropy_class_weights(rng, reduction, mix, eps):
    n, c = 13, 37
    z = rng.normal(0, 3, (n, c + 3)).astype(np.float32)[:, :c]  # strided rows
    y = rng.integers(0, c, n)
    y[rng.random(n) < 0.2] = -100
    w = (rng.random(c) * 1.9 + 0.1).astype(np.float32)
    lam = rng.random(n).astype(np.float32) if mix else None
    par = rng.permutation(n) if mix else None
    loss, grad = fastmix.cross_entropy(z, y, lam, par, weight=w, reduction=reduction,
                                       label_smoothing=eps, return_grad=True, grad_scale=0.5)
    want, wgrad = ref_ce_labels(z, y, lam, par, w, eps, -100, reduction)
    close(loss, want, atol=1e-6 * scale_of(want))
    close(grad, 0.5 * wgrad, atol=1e-6)


@pytest.mark.parametrize("reduction", REDS)
@pytest.mark.parametrize("dtype", ["float32", "float16", "float64"])
def test_numpy_cross_entropy_probabilities(rng, reduction, dtype):
    n, c = 9, 101
    z = rng.normal(0, 3, (n, c)).astype(np.float32)
    t = rng.dirichlet(np.ones(c), n).astype(dtype)
    w = (rng.random(c) + 0.5).astype(np.float32)
    loss, grad = fastmix.cross_entropy(z, t, weight=w, reduction=reduction, label_smoothing=0.1,
                                       return_grad=True)
    want, wgrad = ref_ce_dense(z, t.astype(np.float64), w, 0.1, reduction)
    close(loss, want, atol=1e-6 * scale_of(want))
    close(grad, wgrad, atol=1e-6)


@pytest.mark.parametrize("reduction", REDS)
@pytest.mark.parametrize("mix", [False, True])
@pytest.mark.parametrize("threshold", [None, 0.2])
def test_numpy_binary_cross_entropy_labels_as_timm(rng, reduction, mix, threshold):
    n, c = 11, 23
    z = rng.normal(0, 3, (n, c)).astype(np.float32)
    y = rng.integers(0, c, n)
    lam = rng.random(n).astype(np.float32) if mix else None
    par = rng.permutation(n) if mix else None
    w = (rng.random(c) + 0.5).astype(np.float32)
    pw = (rng.random(c) * 2 + 0.5).astype(np.float32)
    loss, grad = fastmix.binary_cross_entropy(
        z, y, lam, par, weight=w, pos_weight=pw, reduction=reduction, label_smoothing=0.1,
        target_threshold=threshold, return_grad=True)
    t = timm_targets(y, c, None if lam is None else lam.astype(np.float64), par, 0.1, threshold)
    want, wgrad = ref_bce(z, t, w, pw, reduction)
    close(loss, want, atol=1e-6 * scale_of(want))
    close(grad, wgrad, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_numpy_binary_cross_entropy_dense(rng, dtype):
    n, c = 7, 19
    z = rng.normal(0, 2, (n, c)).astype(np.float32)
    tt = torch.rand(n, c).to(getattr(torch, dtype))
    loss = fastmix.binary_cross_entropy(torch.from_numpy(z), tt, reduction="sum")
    want, _ = ref_bce(z, tt.double().numpy(), reduction="sum")
    close(loss, want, atol=1e-6 * scale_of(want))


def test_numpy_empty_batch():
    z = np.zeros((0, 5), np.float32)
    assert np.isnan(fastmix.cross_entropy(z, np.zeros((0, 5), np.float32)))
    assert fastmix.binary_cross_entropy(z, np.zeros(0, np.int64), reduction="sum") == 0.0


# ---- PyTorch: against F.cross_entropy / F.binary_cross_entropy_with_logits --------
def _check_torch(ours, theirs, z):
    """Loss and gradient (with a random grad_output for "none") of ours vs theirs."""
    close(ours.detach(), theirs.detach(), rtol=2e-5, atol=1e-6)
    go = torch.rand_like(theirs) + 0.5
    g1, = torch.autograd.grad(ours, z, go)
    g2, = torch.autograd.grad(theirs, z, go)
    close(g1, g2, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("reduction", REDS)
@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_torch_cross_entropy_weight_matches_pytorch(reduction, eps):
    z = torch.randn(17, 31, requires_grad=True)
    y = torch.randint(0, 31, (17,))
    y[::5] = 3  # also a label equal to ignore_index below
    w = torch.rand(31) + 0.1
    _check_torch(fmt.cross_entropy(z, y, reduction=reduction, label_smoothing=eps, weight=w,
                                   ignore_index=3),
                 F.cross_entropy(z, y, reduction=reduction, label_smoothing=eps, weight=w,
                                 ignore_index=3), z)


@pytest.mark.parametrize("reduction", REDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_torch_cross_entropy_probabilities_matches_pytorch(reduction, dtype):
    z = torch.randn(12, 40, requires_grad=True)
    t = torch.softmax(torch.randn(12, 40), 1).to(dtype)
    w = torch.rand(40) + 0.5
    _check_torch(fmt.cross_entropy(z, t, reduction=reduction, weight=w, label_smoothing=0.1),
                 F.cross_entropy(z, t.float(), reduction=reduction, weight=w,
                                 label_smoothing=0.1), z)


@pytest.mark.parametrize("reduction", REDS)
def test_torch_cross_entropy_spatial_with_mixup(reduction):
    """Spatial logits (N, C, d1, d2) with a MixedTarget: every position of a
    sample mixes its label with the same position of the partner's."""
    n, c, h, w_ = 4, 6, 3, 5
    z = torch.randn(n, c, h, w_, requires_grad=True)
    y = torch.randint(0, c, (n, h, w_))
    lam = torch.rand(n)
    par = torch.randperm(n)
    ours = fmt.cross_entropy(z, fmt.MixedTarget(y, lam, par), reduction=reduction)
    # The reference: the two-term loss, each term F.cross_entropy over positions.
    l1 = F.cross_entropy(z, y, reduction="none")
    l2 = F.cross_entropy(z, y[par], reduction="none")
    lv = lam.view(n, 1, 1)
    theirs = lv * l1 + (1 - lv) * l2
    theirs = {"none": theirs, "sum": theirs.sum(), "mean": theirs.sum() / (n * h * w_)}[reduction]
    _check_torch(ours, theirs, z)


@pytest.mark.parametrize("reduction", REDS)
def test_torch_binary_cross_entropy_matches_pytorch(reduction):
    z = torch.randn(9, 14, 3, requires_grad=True)  # (..., C): rows of the last dimension
    t = torch.rand(9, 14, 3)
    w, pw = torch.rand(3) + 0.5, torch.rand(3) * 2 + 0.5
    theirs = F.binary_cross_entropy_with_logits(z, t, weight=w, pos_weight=pw,
                                                reduction=reduction)
    if reduction == "none":
        theirs = theirs.sum(-1)  # fastmix's "none": one value per row, summed over classes
    _check_torch(fmt.binary_cross_entropy(z, t, reduction=reduction, weight=w, pos_weight=pw),
                 theirs, z)


def test_torch_binary_cross_entropy_mixed_target_as_timm():
    n, c = 10, 12
    z = torch.randn(n, c, requires_grad=True)
    y, lam, par = torch.randint(0, c, (n,)), torch.rand(n), torch.randperm(n)
    t = torch.from_numpy(timm_targets(y.numpy(), c, lam.double().numpy(), par.numpy(), 0.1, 0.3))
    _check_torch(fmt.binary_cross_entropy(z, fmt.MixedTarget(y, lam, par), label_smoothing=0.1,
                                          target_threshold=0.3),
                 F.binary_cross_entropy_with_logits(z, t.float()), z)


def test_torch_loss_op_registration():
    """The operator's fake implementation and autograd registration agree
    with the real one (torch.library.opcheck)."""
    z = torch.randn(5, 7, requires_grad=True)
    t = torch.rand(5, 7)
    w = torch.rand(7) + 0.5
    for args in [(z, t, None, None, w, None, 1, 0, 0.0, -100, -1.0, True),
                 (z, torch.randint(0, 7, (5,)), torch.rand(5), torch.randperm(5), w, None, 0, 1,
                  0.1, -100, -1.0, True)]:
        torch.library.opcheck(torch.ops.fastmix.loss.default, args,
                              test_utils=("test_schema", "test_faketensor",
                                          "test_autograd_registration"))


# ---- what is not supported fails clearly ---------------------------------------------
def test_errors_name_the_problem():
    z = torch.randn(4, 5, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3])
    with pytest.raises(fastmix.InvalidValueError, match="weight must have shape"):
        fmt.cross_entropy(z, y, weight=torch.ones(4))
    with pytest.raises(fastmix.InvalidValueError, match="lambdas and partners"):
        fastmix.cross_entropy(z.detach(), torch.rand(4, 5), torch.rand(4), torch.arange(4))
    with pytest.raises(fastmix.InvalidValueError, match="probability targets must have"):
        fmt.cross_entropy(z, torch.rand(4, 6))
    with pytest.raises(NotImplementedError, match="gradient with respect to target"):
        fmt.cross_entropy(z, torch.rand(4, 5, requires_grad=True))
    with pytest.raises(fastmix.LabelOutOfRangeError, match=r"labels\[1\]"):
        fmt.binary_cross_entropy(z, torch.tensor([0, -100, 2, 3]))
    with pytest.raises(fastmix.InvalidValueError, match=r"logits must have shape \(batch, "):
        fmt.binary_cross_entropy(torch.randn(5), torch.rand(5))
    with pytest.raises(fastmix.InvalidValueError, match="target_threshold"):
        fmt.binary_cross_entropy(z, y, target_threshold=1.5)
    with pytest.raises(fastmix.InvalidValueError, match="label_smoothing"):
        fmt.cross_entropy(z, y, weight=torch.ones(5), label_smoothing=2.0)


# ---- PyTorch's OpInfo sample inputs ------------------------------------------------
def _opinfo(name):
    pytest.importorskip("expecttest")
    from torch.testing._internal.common_methods_invocations import op_db
    return next(o for o in op_db if o.name == name)


def _bce_supported(s):
    """What fastmix's binary cross-entropy takes: logits with a class (last)
    dimension, weight and pos_weight None or one value per class."""
    c = s.input.shape[-1] if s.input.dim() >= 2 else None
    per_class = [v is None or tuple(v.shape) == (c,)
                 for v in (s.kwargs.get("weight"), s.kwargs.get("pos_weight"))]
    return c is not None and all(per_class)


@pytest.mark.parametrize("name", ["nn.functional.cross_entropy",
                                  "nn.functional.binary_cross_entropy_with_logits"])
def test_opinfo_samples(name, capsys):
    op = _opinfo(name)
    ours_fn = fmt.cross_entropy if "binary" not in name else fmt.binary_cross_entropy
    theirs_fn = F.cross_entropy if "binary" not in name else F.binary_cross_entropy_with_logits
    supported = total = 0
    for s in op.sample_inputs("cpu", torch.float32, requires_grad=True):
        total += 1
        z = s.input
        target = s.args[0].detach()
        kw = dict(s.kwargs)
        ok = "binary" not in name or _bce_supported(s)
        if not ok:
            with pytest.raises(fastmix.InvalidValueError,
                               match=r"logits must have shape|weight must have shape"):
                ours_fn(z, target, **kw)
            continue
        supported += 1
        theirs = theirs_fn(z, target, **kw)
        if "binary" in name and kw.get("reduction") == "none":
            theirs = theirs.sum(-1)  # fastmix's "none" sums each row over the classes
        _check_torch(ours_fn(z, target, **kw), theirs, z)
    with capsys.disabled():
        print(f"\n{name}: fastmix runs {supported} of PyTorch's {total} OpInfo samples")
    assert total > 0
    if "binary" not in name:
        assert supported == total  # every cross-entropy sample is supported
