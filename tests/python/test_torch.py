"""fastmix.torch on the CPU: the loss against F.cross_entropy, its gradient
against autograd, the modules, timm's Mixup formula, autocast, torch.compile."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import fastmix  # noqa: E402
import fastmix.torch as ft  # noqa: E402
import fastmix.timm as ftimm  # noqa: E402


@pytest.fixture
def gen(rng):
    return torch.Generator().manual_seed(int(rng.integers(2 ** 62)))


def reference_loss(z, y, lam, par, reduction, eps, ignore_index):
    """lam * CE(z, y1) + (1 - lam) * CE(z, y2) with F.cross_entropy, in float64;
    "mean" divides by the summed weights of the labels that count (the C
    contract: sum / sum(w1 + w2)), which is F.cross_entropy's mean when there
    is no mixing."""
    z = z.double()
    ce = lambda t: F.cross_entropy(z, t, reduction="none", label_smoothing=eps,  # noqa: E731
                                   ignore_index=ignore_index)
    if lam is None:
        lam = torch.ones(z.shape[0], dtype=torch.float64)
        par = torch.arange(z.shape[0])
        w2 = torch.zeros_like(lam)
    else:
        lam = lam.double()
        w2 = (1 - lam) * (y[par] != ignore_index)
    w1 = lam * (y != ignore_index)
    rows = lam * ce(y) + (1 - lam) * ce(y[par])  # F.cross_entropy gives 0 for ignore_index
    if reduction == "none":
        return rows
    if reduction == "sum":
        return rows.sum()
    return rows.sum() / (w1 + w2).sum()


CASES = [(red, eps, ign, mixed) for red in ("none", "mean", "sum") for eps in (0.0, 0.1)
         for ign in (None, 2) for mixed in (True, False)]


@pytest.mark.parametrize("reduction,eps,ignore,mixed", CASES)
def test_cross_entropy_matches_torch(gen, reduction, eps, ignore, mixed):
    b, c = 13, 6
    z = (torch.randn(b, c, generator=gen) * 3).requires_grad_()
    y = torch.randint(0, c, (b,), generator=gen)
    ignore_index = -100 if ignore is None else ignore
    lam = torch.rand(b, generator=gen) if mixed else None
    par = torch.randperm(b, generator=gen) if mixed else None
    target = ft.MixedTarget(y, lam, par) if mixed else y
    loss = ft.cross_entropy(z, target, reduction=reduction, label_smoothing=eps,
                            ignore_index=ignore_index)
    z64 = z.detach().double().requires_grad_()
    want = reference_loss(z64, y, lam, par, reduction, eps, ignore_index)
    assert loss.dtype == torch.float32 and loss.shape == want.shape
    torch.testing.assert_close(loss.double(), want.detach(), rtol=2e-5, atol=2e-6)
    # gradient: against autograd through the expression, with grad_output 1
    # (the unscaled path) and with a random grad_output (the scaled one)
    for go in (torch.ones_like(want), torch.rand(want.shape, generator=gen, dtype=torch.float64)):
        z.grad = z64.grad = None
        loss = ft.cross_entropy(z, target, reduction=reduction, label_smoothing=eps,
                                ignore_index=ignore_index)
        loss.backward(go.float())
        want = reference_loss(z64, y, lam, par, reduction, eps, ignore_index)
        want.backward(go)
        assert not torch.isnan(z.grad).any()
        torch.testing.assert_close(z.grad.double(), z64.grad, rtol=1e-5, atol=2e-6)


def test_cross_entropy_gradcheck(gen):
    # gradcheck differentiates numerically in float64, but the kernel computes
    # in float32: a loss of size ~3 carries ~2e-7 of rounding, which central
    # differences with eps=1e-3 turn into ~3e-4 of noise, so atol=2e-3 (the
    # truncation error is ~eps^2 = 1e-6).  The exact comparison is the
    # autograd test above; this one checks backward's plumbing (scaling by
    # grad_output, reductions) against finite differences.
    b, c = 5, 4
    y = torch.randint(0, c, (b,), generator=gen)
    lam = torch.rand(b, generator=gen)
    par = torch.randperm(b, generator=gen)
    for reduction in ("none", "mean", "sum"):
        def fn(z64):
            return ft.cross_entropy(z64.float(), ft.MixedTarget(y, lam, par), reduction=reduction,
                                    label_smoothing=0.1).double()
        z = torch.randn(b, c, generator=gen, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(fn, (z,), eps=1e-3, atol=2e-3, rtol=1e-2)


def test_cross_entropy_no_grad_and_errors(gen):
    z = torch.randn(4, 5, generator=gen)
    y = torch.randint(0, 5, (4,), generator=gen)
    with torch.no_grad():
        loss = ft.cross_entropy(z.requires_grad_(), y)
    torch.testing.assert_close(loss, F.cross_entropy(z.detach(), y))
    y[1] = 7
    with pytest.raises(fastmix.LabelOutOfRangeError):
        ft.cross_entropy(z, y)
    with pytest.raises(fastmix.InvalidValueError):
        ft.cross_entropy(z, y, reduction="batchmean")
    crit = ft.MixUpCrossEntropyLoss(reduction="sum", label_smoothing=0.2)
    y[1] = 0
    torch.testing.assert_close(crit(z, y), F.cross_entropy(z, y, reduction="sum",
                                                           label_smoothing=0.2))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_cross_entropy_autocast_and_half(gen, dtype):
    model = torch.nn.Linear(8, 10)
    x = torch.randn(16, 8, generator=gen)
    y = torch.randint(0, 10, (16,), generator=gen)
    target = ft.MixedTarget(y, torch.rand(16, generator=gen), torch.randperm(16, generator=gen))
    if dtype == torch.bfloat16:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(x)
    else:
        logits = model(x).to(dtype)
    assert logits.dtype == dtype
    logits.retain_grad()
    loss = ft.cross_entropy(logits, target, label_smoothing=0.1)
    assert loss.dtype == torch.float32
    loss.backward()
    assert logits.grad.dtype == dtype and model.weight.grad is not None
    z64 = logits.detach().double().requires_grad_()
    want = reference_loss(z64, y, target.lambdas, target.partners, "mean", 0.1, -100)
    want.backward()
    torch.testing.assert_close(loss.double(), want.detach(), rtol=2e-5, atol=2e-6)
    tol = 2 ** -8 if dtype == torch.bfloat16 else 2 ** -11
    torch.testing.assert_close(logits.grad.double(), z64.grad, rtol=tol, atol=1e-6)


def test_mixup_module(rng):
    x = torch.from_numpy(rng.standard_normal((9, 3, 4, 4)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 10, 9))
    m = ft.MixUp(alpha=0.4, generator=fastmix.Generator(11))
    xm, t = m(x, y)
    assert isinstance(t, ft.MixedTarget) and t.labels is y
    out, lam, par = fastmix.mixup(x.numpy(), 0.4, generator=fastmix.Generator(11))
    np.testing.assert_array_equal(xm.numpy(), out)
    np.testing.assert_array_equal(t.lambdas.numpy(), lam)
    np.testing.assert_array_equal(t.partners.numpy(), par)
    xm2, t2 = m(x, y)  # the next offset
    assert not torch.equal(t2.lambdas, t.lambdas)
    m.eval()
    xe, te = m(x, y)
    assert xe is x and torch.equal(te.lambdas, torch.ones(9))
    # in place
    mi = ft.MixUp(alpha=0.4, generator=fastmix.Generator(11), inplace=True)
    xi = x.clone()
    r, _ = mi(xi, y)
    assert r is xi
    np.testing.assert_array_equal(xi.numpy(), out)


def test_mixup_gradient_wrt_input(gen):
    x = torch.randn(6, 5, generator=gen, dtype=torch.float32, requires_grad=True)
    xm, lam, par = ft.mixup(x, 1.0, generator=fastmix.Generator(2))
    go = torch.randn(6, 5, generator=gen)
    xm.backward(go)
    x64 = x.detach().double().requires_grad_()
    l64 = lam.double()[:, None]
    (l64 * x64 + (1 - l64) * x64[par]).backward(go.double())
    torch.testing.assert_close(x.grad.double(), x64.grad, rtol=1e-6, atol=1e-6)


def timm_mixup_target(target, num_classes, lam, smoothing):
    """timm.data.mixup.mixup_target, rewritten here from its formula:
    one_hot with off = smoothing / C and on = 1 - smoothing + off, the
    partner is target.flip(0), y1 * lam + y2 * (1 - lam)."""
    off = smoothing / num_classes
    on = 1.0 - smoothing + off
    def one_hot(t):  # noqa: E306
        return torch.full((t.shape[0], num_classes), off, dtype=torch.float64).scatter_(
            1, t.long().view(-1, 1), on)
    lam = lam.double().view(-1, 1)
    return one_hot(target) * lam + one_hot(target.flip(0)) * (1.0 - lam)


@pytest.mark.parametrize("mode", ["batch", "pair", "elem"])
@pytest.mark.parametrize("prob", [1.0, 0.5, 0.0])
@pytest.mark.parametrize("smoothing", [0.1, 0.0])
def test_timm_mixup(gen, mode, prob, smoothing):
    b, c = 16, 10
    x = torch.randn(b, 3, 4, 4, generator=gen)
    y = torch.randint(0, c, (b,), generator=gen)
    mix = ftimm.Mixup(mixup_alpha=0.8, prob=prob, mode=mode, label_smoothing=smoothing,
                   num_classes=c, generator=fastmix.Generator(5))
    x0 = x.clone()
    xm, target = mix(x, y)
    assert xm is x  # in place, like timm
    lam = mix.lambdas
    assert lam.shape == (b,) and not torch.isnan(lam).any()
    if mode == "batch":
        assert (lam == lam[0]).all()
    if mode == "pair":
        torch.testing.assert_close(lam, lam.flip(0), rtol=0, atol=0)
    if prob == 0.0:
        assert (lam == 1).all()
        assert torch.equal(x, x0)
    if prob == 1.0:
        assert (lam < 1).any()
    want_x = lam.double().view(-1, 1, 1, 1) * x0.double() + \
        (1 - lam.double().view(-1, 1, 1, 1)) * x0.flip(0).double()
    torch.testing.assert_close(x.double(), want_x, rtol=1e-6, atol=1e-6)
    assert target.dtype == torch.float32 and target.shape == (b, c)
    torch.testing.assert_close(target.double(), timm_mixup_target(y, c, lam, smoothing),
                               rtol=1e-6, atol=1e-7)


def test_timm_mixup_lives_in_fastmix_timm():
    # One MixUp in fastmix.torch; timm's spelling only in fastmix.timm.
    assert fastmix.timm.Mixup is ftimm.Mixup
    assert not hasattr(ft, "Mixup") and "Mixup" not in ft.__all__


def test_timm_mixup_arguments():
    ftimm.Mixup(cutmix_alpha=1.0)  # CutMix is supported
    assert ftimm.Mixup(cutmix_minmax=(0.2, 0.8)).cutmix_alpha == 1.0  # as timm sets it
    with pytest.raises(fastmix.InvalidValueError):
        ftimm.Mixup(mode="half")
    with pytest.raises(fastmix.InvalidValueError, match="even"):
        ftimm.Mixup(num_classes=3)(torch.zeros(3, 2), torch.zeros(3, dtype=torch.long))
    with pytest.raises(fastmix.InvalidValueError) as e:
        ftimm.Mixup(mixup_alpha=0.0, num_classes=3)(torch.zeros(4, 2),
                                                     torch.zeros(4, dtype=torch.long))
    assert "alpha" in str(e.value)


def test_soft_targets_torch(gen):
    y = torch.randint(0, 5, (6,), generator=gen)
    lam = torch.rand(6, generator=gen)
    par = torch.randperm(6, generator=gen)
    t = ft.soft_targets(y, 5, lam, par, label_smoothing=0.1, dtype=torch.bfloat16)
    assert t.dtype == torch.bfloat16
    want = torch.from_numpy(fastmix.soft_targets(y.numpy(), 5, lam.numpy(), par.numpy(),
                                                 label_smoothing=0.1))
    torch.testing.assert_close(t.float(), want, rtol=2 ** -8, atol=0)
    t = fastmix.soft_targets(y, 5, dtype=torch.float16)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float16


def test_plain_api_with_tensors(gen):
    x = torch.randn(5, 2, 3, generator=gen).to(torch.bfloat16)
    out, lam, par = fastmix.mixup(x, generator=fastmix.Generator(1))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.bfloat16
    assert lam.dtype == torch.float32 and par.dtype == torch.int64
    want = lam.double().view(-1, 1, 1) * x.double() + (1 - lam.double().view(-1, 1, 1)) * \
        x[par].double()
    torch.testing.assert_close(out.double(), want, rtol=2 ** -8, atol=1e-30)
    # strided samples, in place
    big = torch.randn(5, 3, 4, generator=gen)
    view = big[:, 1]
    before = big.clone()
    fastmix.blend(view, lam, par, out=view)
    assert torch.equal(big[:, 0], before[:, 0]) and torch.equal(big[:, 2], before[:, 2])
    empty = torch.empty(0, 3)
    out, lam, par = fastmix.mixup(empty)
    assert out.shape == (0, 3) and lam.shape == (0,)
    lam, par = fastmix.sample(4, like=x)
    assert isinstance(lam, torch.Tensor)


# ------------------------------------------------------------ torch.compile ---

def test_opcheck(gen):
    x = torch.randn(6, 5, generator=gen, requires_grad=True)
    z = torch.randn(6, 7, generator=gen, requires_grad=True)
    y = torch.randint(0, 7, (6,), generator=gen)
    lam = torch.rand(6, generator=gen)
    par = torch.randperm(6, generator=gen)
    torch.library.opcheck(torch.ops.fastmix.mixup.default, (x, 0.4, True, 0, 3, 1))
    torch.library.opcheck(torch.ops.fastmix.mixup_.default, (x.detach().clone(), 0.4, True, 0, 3, 1))
    torch.library.opcheck(torch.ops.fastmix.blend.default, (x, lam, par))
    for red in (0, 1, 2):
        torch.library.opcheck(torch.ops.fastmix.loss.default,
                              (z, y, lam, par, None, None, 0, red, 0.1, -100, -1.0, True))
    torch.library.opcheck(torch.ops.fastmix.soft_targets.default,
                          (y, 7, lam, par, 0.1, torch.float32))


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compile_fullgraph(gen, backend):
    # inductor generates and compiles C++ for the CPU (about 30 s here)
    torch._dynamo.reset()
    model = torch.nn.Linear(12, 7)
    x = torch.randn(8, 12, generator=gen)
    y = torch.randint(0, 7, (8,), generator=gen)
    lam = torch.rand(8, generator=gen)
    par = torch.randperm(8, generator=gen)

    def step(x, y, lam, par):
        xm = ft.blend(x, lam, par)
        return ft.cross_entropy(model(xm), ft.MixedTarget(y, lam, par), label_smoothing=0.1)

    compiled = torch.compile(step, fullgraph=True, backend=backend)
    loss = compiled(x, y, lam, par)
    loss.backward()
    g_compiled = model.weight.grad.clone()
    model.weight.grad = None
    want = step(x, y, lam, par)
    want.backward()
    torch.testing.assert_close(loss, want)
    torch.testing.assert_close(g_compiled, model.weight.grad)


def test_alpha_must_be_a_real_number():
    x = torch.randn(8, 3, 4, 4)
    labels = torch.randint(0, 10, (8,))
    # the labels in alpha's place: refused with a hint, never converted
    with pytest.raises(fastmix.InvalidValueError, match="takes no labels"):
        ft.mixup(x, labels)
    for bad in ("0.4", None, torch.tensor(0.4), float("nan"), 0.0, -1.0):
        with pytest.raises(fastmix.InvalidValueError, match="alpha"):
            ft.mixup(x, bad)
        with pytest.raises(fastmix.InvalidValueError, match="alpha"):
            ft.MixUp(alpha=bad)  # at construction, not at the first call
        with pytest.raises(fastmix.InvalidValueError, match="alpha"):
            fastmix.sample(8, bad)
        with pytest.raises(fastmix.InvalidValueError, match="alpha"):
            fastmix.mixup(x.numpy(), bad)
    # NumPy scalars and ints are real numbers
    ft.mixup(x, np.float32(0.4))
    ft.MixUp(alpha=1)(x, labels)


def test_mixup_module_checks_the_labels_at_the_call():
    with pytest.raises(fastmix.InvalidValueError, match="one entry per sample"):
        ft.MixUp()(torch.randn(8, 3, 4, 4), torch.randint(0, 10, (6,)))


def test_inplace_mixup_of_a_tensor_that_requires_grad_is_refused():
    leaf = torch.randn(8, 3, 4, 4, requires_grad=True)
    before = leaf.detach().clone()
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        ft.MixUp(inplace=True)(leaf, torch.arange(8))
    with pytest.raises(RuntimeError, match="requires grad"):
        ft.mixup(leaf * 2, inplace=True)
    assert torch.equal(leaf.detach(), before)
    with torch.no_grad():  # outside autograd, as PyTorch allows
        ft.mixup(leaf, inplace=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA device")
def test_like_cuda_without_a_device_is_no_device_error():
    with pytest.raises(fastmix.NoDeviceError, match="CUDA"):
        fastmix.sample(8, 0.4, like=torch.device("cuda"))
    with pytest.raises(fastmix.NoDeviceError):
        fastmix.sample(8, 0.4, like="cuda:0")


@pytest.mark.parametrize("mode", ["batch", "pair", "elem"])
def test_timm_mixup_partners_feed_the_fused_loss(gen, mode):
    eps, C, b = 0.1, 11, 8
    mixup_fn = ftimm.Mixup(mixup_alpha=0.8, mode=mode, label_smoothing=eps, num_classes=C,
                           generator=fastmix.Generator(int(torch.randint(1 << 30, (1,), generator=gen))))
    with pytest.raises(fastmix.InvalidValueError):
        mixup_fn.mixed_target(torch.zeros(b, dtype=torch.int64))  # nothing mixed yet
    x = torch.randn(b, 3, 4, 4, generator=gen)
    y = torch.randint(0, C, (b,), generator=gen)
    _, dense = mixup_fn(x, y)
    target = mixup_fn.mixed_target(y)
    assert torch.equal(target.partners, torch.arange(b - 1, -1, -1))  # timm's flip
    z = torch.randn(b, C, generator=gen, dtype=torch.float64)
    want = (-(dense.double() * F.log_softmax(z, dim=1)).sum(1)).mean()
    got = ft.cross_entropy(z.float(), target, label_smoothing=eps)
    assert abs(got.item() - want.item()) <= 1e-5 * abs(want.item())
