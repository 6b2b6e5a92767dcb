"""The same operations on CUDA (PyTorch and CuPy) against the CPU backend:
the draws bitwise, blends bitwise (both backends round the same float32
arithmetic once), the loss to float32 accuracy.  Skipped without a GPU."""
import numpy as np
import pytest

import fastmix

torch = pytest.importorskip("torch")
if fastmix.cuda_device_count() == 0 or not torch.cuda.is_available():
    pytest.skip("no CUDA device (fastmix.cuda_device_count() == 0 or torch has no CUDA)",
                allow_module_level=True)

import fastmix.torch as ft  # noqa: E402
import fastmix.timm as ftimm  # noqa: E402

DEVICES = [f"cuda:{i}" for i in range(min(torch.cuda.device_count(), 2))]
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(0, 3), (1, 3, 8, 8), (7, 3, 5, 5), (64, 3, 32, 32)])
@pytest.mark.parametrize("pairing", ["permutation", "cycle", "flip"])
def test_mixup_matches_cpu(device, dtype, shape, pairing):
    x = torch.randn(shape).to(dtype)
    xc = x.to(device)
    out_cpu, lam_cpu, par_cpu = fastmix.mixup(x, 0.4, pairing=pairing,
                                              generator=fastmix.Generator(7))
    out = torch.full_like(xc, float("nan"))
    r, lam, par = fastmix.mixup(xc, 0.4, pairing=pairing, generator=fastmix.Generator(7), out=out)
    assert r is out and lam.device == device and par.device == device
    torch.cuda.synchronize(device)
    assert torch.equal(lam.cpu(), lam_cpu) and torch.equal(par.cpu(), par_cpu)
    assert torch.equal(out.cpu(), out_cpu)
    inplace = xc.clone()
    fastmix.mixup(inplace, 0.4, pairing=pairing, generator=fastmix.Generator(7), out=inplace)
    assert torch.equal(inplace.cpu(), out_cpu)
    blended = fastmix.blend(xc, lam, par)
    assert torch.equal(blended.cpu(), out_cpu)
    slam, spar = fastmix.sample(shape[0], 0.4, pairing=pairing, generator=fastmix.Generator(7),
                                like=xc)
    assert slam.device == device and torch.equal(slam.cpu(), lam_cpu)


def test_strided_and_stream(device):
    big = torch.randn(16, 3, 4, 4, device=device)
    view = big[:, 1]
    lam, par = fastmix.sample(16, 1.0, generator=fastmix.Generator(1), like=big)
    want = fastmix.blend(view.cpu(), lam.cpu(), par.cpu())
    s = torch.cuda.Stream(device)
    with torch.cuda.stream(s):
        out = fastmix.blend(view, lam, par)  # queued on s
    s.synchronize()
    assert torch.equal(out.cpu(), want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_cross_entropy_matches_cpu(device, dtype, reduction, eps):
    b, c = 37, 1000
    z = (torch.randn(b, c) * 3).to(dtype)
    y = torch.randint(0, c, (b,))
    y[3] = -100
    lam, par = torch.rand(b), torch.randperm(b)
    loss_cpu, grad_cpu = fastmix.cross_entropy(z, y, lam, par, reduction=reduction,
                                               label_smoothing=eps, return_grad=True)
    loss, grad = fastmix.cross_entropy(z.to(device), y.to(device), lam.to(device),
                                       par.to(device), reduction=reduction,
                                       label_smoothing=eps, return_grad=True)
    assert loss.device == device and grad.dtype == dtype
    torch.testing.assert_close(loss.cpu(), loss_cpu, rtol=1e-5, atol=1e-6)
    tol = {torch.float32: 1e-5, torch.float16: 2 ** -10, torch.bfloat16: 2 ** -7}[dtype]
    torch.testing.assert_close(grad.cpu().float(), grad_cpu.float(), rtol=tol, atol=1e-6)
    zc = z.to(device).requires_grad_()
    l2 = ft.cross_entropy(zc, ft.MixedTarget(y.to(device), lam.to(device), par.to(device)),
                          reduction=reduction, label_smoothing=eps)
    l2.backward(torch.ones_like(l2))
    torch.testing.assert_close(zc.grad.cpu().float(), grad_cpu.float(), rtol=tol, atol=1e-6)


def test_soft_targets_and_timm_mixup(device):
    y = torch.randint(0, 10, (8,))
    lam, par = torch.rand(8), torch.randperm(8)
    t = fastmix.soft_targets(y.to(device), 10, lam.to(device), par.to(device),
                             label_smoothing=0.1)
    torch.testing.assert_close(t.cpu(), fastmix.soft_targets(y, 10, lam, par,
                                                             label_smoothing=0.1))
    x = torch.randn(8, 3, 4, 4)
    xc = x.to(device)
    mix_cpu = ftimm.Mixup(mixup_alpha=0.8, mode="elem", num_classes=10,
                       generator=fastmix.Generator(3))
    mix_gpu = ftimm.Mixup(mixup_alpha=0.8, mode="elem", num_classes=10,
                       generator=fastmix.Generator(3))
    _, t_cpu = mix_cpu(x, y)
    _, t_gpu = mix_gpu(xc, y.to(device))
    assert torch.equal(xc.cpu(), x) and torch.equal(t_gpu.cpu(), t_cpu)


def test_autocast_training_step(device):
    model = torch.nn.Linear(48, 10).to(device)
    x = torch.randn(32, 3, 4, 4, device=device)
    y = torch.randint(0, 10, (32,), device=device)
    xm, target = ft.MixUp(0.4)(x, y)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits = model(xm.flatten(1))
    loss = ft.cross_entropy(logits, target)
    loss.backward()
    assert torch.isfinite(loss) and model.weight.grad is not None


def test_compile_cuda(device):
    torch._dynamo.reset()
    z = torch.randn(16, 10, device=device, requires_grad=True)
    y = torch.randint(0, 10, (16,), device=device)
    f = torch.compile(lambda z, y: ft.cross_entropy(z, y, label_smoothing=0.1), fullgraph=True)
    torch.testing.assert_close(f(z, y), torch.nn.functional.cross_entropy(z, y,
                                                                          label_smoothing=0.1))


def test_cupy():
    cupy = pytest.importorskip("cupy")
    x = np.random.default_rng(0).standard_normal((9, 3, 8)).astype(np.float32)
    out_cpu, lam_cpu, par_cpu = fastmix.mixup(x, 0.4, generator=fastmix.Generator(5))
    for i in range(min(cupy.cuda.runtime.getDeviceCount(), 2)):
        with cupy.cuda.Device(i):
            xc = cupy.asarray(x)
            s = cupy.cuda.Stream()
            with s:
                out, lam, par = fastmix.mixup(xc, 0.4, generator=fastmix.Generator(5))
            s.synchronize()
        assert isinstance(out, cupy.ndarray) and out.device.id == i
        np.testing.assert_array_equal(cupy.asnumpy(out), out_cpu)
        np.testing.assert_array_equal(cupy.asnumpy(lam), lam_cpu)
        np.testing.assert_array_equal(cupy.asnumpy(par), par_cpu)
        z = cupy.asarray(np.random.default_rng(1).standard_normal((9, 5)).astype(np.float32))
        yy = cupy.asarray(np.arange(9) % 5)
        np.testing.assert_allclose(
            cupy.asnumpy(fastmix.cross_entropy(z, yy, lam, par)),
            fastmix.cross_entropy(cupy.asnumpy(z), cupy.asnumpy(yy), lam_cpu, par_cpu),
            rtol=1e-5)


def test_cuda_errors(device):
    x = torch.randn(4, 3, device=device)
    lam, par = torch.rand(4, device=device), torch.randperm(4, device=device)
    with pytest.raises(fastmix.InvalidValueError, match="lambdas"):
        fastmix.blend(x, lam.cpu(), par)  # another device: refused in Python
    with pytest.raises(fastmix.InvalidValueError):
        fastmix.mixup(x, -1.0)
