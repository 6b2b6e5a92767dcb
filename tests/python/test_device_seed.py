"""fastmix.DeviceGenerator: (seed, offset) in device memory, drawn by the
*_device_seed entry points (read when the work runs, advanced in stream
order).  On the CPU backend: the draws are bitwise the plain calls with
(seed, offset), (seed, offset + 1), ...; the state advances by exactly one
(world_size) per call and not at all on a failure; fastmix.torch's functions,
modules and operators take it, also under torch.compile.  On CUDA (skipped
without a GPU): the same draws, torch.cuda.graphs capture and replay, and
torch.compile(mode="reduce-overhead")."""
import ctypes

import numpy as np
import pytest

import fastmix

try:
    import torch
except ImportError:  # the NumPy tests run without PyTorch
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="needs PyTorch")
HAS_CUDA = (torch is not None and torch.cuda.is_available()
            and fastmix.cuda_device_count() > 0)
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device (fastmix and PyTorch)")

if torch is not None:
    import fastmix.torch as ft
    import fastmix.timm as ftimm

U64 = 1 << 64
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def host(seed, offset, world_size=1):
    """A host Generator whose next draw is (seed, offset)."""
    g = fastmix.Generator(seed, world_size=world_size)
    g.offset = offset
    return g


def _host(a):
    """(dtype name, shape, bytes) of an array or tensor, on the host."""
    if torch is not None and isinstance(a, torch.Tensor):
        a = a.detach().cpu().contiguous()
        name = str(a.dtype).replace("torch.", "")
        if a.dtype == torch.bfloat16:  # NumPy has none: its bits as int16
            a = a.view(torch.int16)
        return name, tuple(a.shape), a.numpy().tobytes()
    a = np.asarray(a)
    return a.dtype.name, a.shape, a.tobytes()


def same(a, b):
    """Bitwise equality of two results (arrays or tensors, or tuples of them)."""
    if not isinstance(a, tuple):
        a, b = (a,), (b,)
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert _host(u) == _host(v)


# The five functions of the NumPy-level API, each as call(generator) -> result.
def _calls(rng):
    x = rng.standard_normal((9, 3, 6, 5)).astype(np.float32)
    u8 = rng.integers(0, 256, (9, 6, 5, 3), dtype=np.uint8)
    return {
        "sample": lambda g: fastmix.sample(9, 0.4, pairing="cycle", generator=g),
        "mixup": lambda g: fastmix.mixup(x, 0.7, generator=g),
        "cutmix_sample": lambda g: fastmix.cutmix_sample(9, 6, 5, mixup_alpha=0.8,
                                                         cutmix_alpha=1.0, generator=g),
        "cutmix": lambda g: fastmix.cutmix(x, mixup_alpha=0.8, cutmix_alpha=1.0, prob=0.9,
                                           generator=g),
        "cutmix_u8": lambda g: fastmix.cutmix_u8(u8, MEAN, STD, mixup_alpha=0.8,
                                                 cutmix_alpha=1.0, generator=g),
    }


FUNCS = ["sample", "mixup", "cutmix_sample", "cutmix", "cutmix_u8"]


# ------------------------------------------------------------- the CPU backend ---

@pytest.mark.parametrize("func", FUNCS)
@pytest.mark.parametrize("seed,offset", [(5, 0), (2 ** 64 - 1, 2 ** 64 - 2), (2 ** 63, 12345)])
def test_draws_are_the_plain_calls_in_sequence(rng, func, seed, offset):
    call = _calls(rng)[func]
    dg = fastmix.DeviceGenerator(seed, offset=offset)
    assert isinstance(dg.state, np.ndarray) and dg.state.dtype == np.int64
    assert dg.get_state() == (seed, offset)
    for k in range(4):  # across the 2^64 wrap for offset 2^64 - 2
        got = call(dg)
        same(got, call(host(seed, (offset + k) % U64)))
        assert dg.get_state() == (seed, (offset + k + 1) % U64)  # one per call, exactly
    # the bits of the state are the C API's two uint64
    assert [int(v) for v in dg.state.view(np.uint64)] == [seed, (offset + 4) % U64]


def test_state_is_what_the_c_api_reads(rng):
    # A DeviceGenerator's state passed to the C entry point by hand draws the same.
    dg = fastmix.DeviceGenerator(77, offset=9)
    lam, par = fastmix.sample(6, 0.5, generator=dg)
    so = np.array([77, 9], dtype=np.uint64)
    lam_c = np.empty(6, np.float32)
    par_c = np.empty(6, np.int64)
    st = fastmix._lib.lib.fastmix_sample_device_seed(0, 0.5, 1, 0, so.ctypes.data, 1, 6,
                                                     lam_c.ctypes.data, par_c.ctypes.data, None)
    assert st == 0 and list(so) == [77, 10]
    same((lam, par), (lam_c, par_c))
    out = np.empty((6, 4), np.float32)
    x = rng.standard_normal((6, 4)).astype(np.float32)
    st = fastmix._lib.lib.fastmix_mixup_device_seed(0, 0, 0.5, 1, 0, so.ctypes.data, 1,
                                                    x.ctypes.data, out.ctypes.data, 6, 4, 4,
                                                    lam_c.ctypes.data, par_c.ctypes.data, None)
    assert st == 0 and list(so) == [77, 11]
    same((out, lam_c, par_c), fastmix.mixup(x, 0.5, generator=dg))
    assert dg.get_state() == (77, 11)


def test_outputs_in_place_and_like(rng):
    x = rng.standard_normal((8, 2, 4, 4)).astype(np.float32)
    dg = fastmix.DeviceGenerator(3)
    want = fastmix.mixup(x, 0.4, generator=host(3, 0))
    y = x.copy()
    r, lam, par = fastmix.mixup(y, 0.4, generator=dg, out=y)
    assert r is y
    same((y, lam, par), want)
    want = fastmix.cutmix(x, generator=host(3, 1))
    y = x.copy()
    r, lam, par, boxes = fastmix.cutmix(y, generator=dg, out=y)
    same((y, lam, par, boxes), want)
    assert dg.get_state() == (3, 2)


@pytest.mark.parametrize("func,bad", [
    ("sample", dict(alpha=-1.0)), ("sample", dict(alpha=float("nan"))),
    ("mixup", dict(alpha=0.0)), ("cutmix_sample", dict(prob=2.0)),
    ("cutmix", dict(switch_prob=-0.5)), ("cutmix_u8", dict(std=0.0))])
def test_a_failed_call_leaves_the_state_untouched(rng, func, bad):
    x = rng.standard_normal((4, 3, 5, 5)).astype(np.float32)
    u8 = rng.integers(0, 256, (4, 5, 5, 3), dtype=np.uint8)
    dg = fastmix.DeviceGenerator(1, offset=7)
    before = dg.state.copy()
    with pytest.raises(fastmix.InvalidValueError):
        if func == "sample":
            fastmix.sample(4, bad["alpha"], generator=dg)
        elif func == "mixup":
            fastmix.mixup(x, bad["alpha"], generator=dg)
        elif func == "cutmix_sample":
            fastmix.cutmix_sample(4, 5, 5, generator=dg, **bad)
        elif func == "cutmix":
            fastmix.cutmix(x, mixup_alpha=1.0, generator=dg, **bad)
        else:
            fastmix.cutmix_u8(u8, MEAN, bad["std"], generator=dg)
    assert dg.state.tobytes() == before.tobytes()
    assert dg.get_state() == (1, 7)


def test_a_call_failing_in_c_leaves_the_state_untouched(rng):
    # out overlapping x (one sample further on): refused by the device-seed
    # entry point itself, which then writes nothing, seed_offset included.
    base = rng.standard_normal((9, 4)).astype(np.float32)
    x, out = base[:8], base[1:]
    keep = base.copy()
    dg = fastmix.DeviceGenerator(2, offset=5)
    with pytest.raises(fastmix.InvalidValueError) as e:
        fastmix.mixup(x, 0.4, generator=dg, out=out)
    assert "fastmix_mixup_device_seed" in str(e.value)
    assert dg.get_state() == (2, 5) and base.tobytes() == keep.tobytes()
    with pytest.raises(fastmix.InvalidValueError) as e:
        fastmix.cutmix(base[:8].reshape(8, 1, 2, 2), generator=dg,
                       out=base[1:].reshape(8, 1, 2, 2))
    assert "fastmix_cutmix_device_seed" in str(e.value)
    assert dg.get_state() == (2, 5)


def test_two_generators_are_independent(rng):
    calls = _calls(rng)
    a = fastmix.DeviceGenerator(11, offset=100)
    b = fastmix.DeviceGenerator(11, offset=200)
    ka = kb = 0
    for i, func in enumerate(FUNCS * 2):
        if i % 3 == 2:
            same(calls[func](b), calls[func](host(11, 200 + kb)))
            kb += 1
        else:
            same(calls[func](a), calls[func](host(11, 100 + ka)))
            ka += 1
    assert a.get_state() == (11, 100 + ka) and b.get_state() == (11, 200 + kb)
    assert a.state is not b.state


def test_device_draws_leave_host_generators_alone(rng):
    fastmix.manual_seed(4)
    dg = fastmix.DeviceGenerator(4)
    for func in FUNCS:
        _calls(rng)[func](dg)
    assert fastmix.default_generator.get_state() == (4, 0)
    assert dg.get_state() == (4, len(FUNCS))


def test_rank_and_world_size(rng):
    # draw k of rank r is (seed, k * world_size + r), as for Generator
    for r in range(3):
        dg = fastmix.DeviceGenerator(9, rank=r, world_size=3)
        g = fastmix.Generator(9, rank=r, world_size=3)
        assert dg.increment == 3 and dg.rank == r and dg.world_size == 3
        for k in range(3):
            same(fastmix.sample(5, generator=dg), fastmix.sample(5, generator=g))
            assert dg.get_state() == (9, (k + 1) * 3 + r) == g.get_state()
    with pytest.raises(fastmix.InvalidValueError, match="rank"):
        fastmix.DeviceGenerator(1, rank=2, world_size=2)


def test_continuing_a_host_generator_and_sync():
    g = fastmix.Generator(21, rank=1, world_size=2)
    first = fastmix.sample(6, generator=g)                   # offset 1
    dg = g.device_generator()
    assert dg.generator is g and dg.get_state() == (21, 3) and dg.increment == 2
    assert g.get_state() == (21, 3)                          # not advanced
    second = fastmix.sample(6, generator=dg)                 # offset 3
    third = fastmix.sample(6, generator=dg)                  # offset 5
    assert g.get_state() == (21, 3)                          # until sync
    assert dg.sync() == (21, 7) and g.get_state() == (21, 7)
    fourth = fastmix.sample(6, generator=g)                  # offset 7: after the device's
    ref = fastmix.Generator(21, rank=1, world_size=2)
    for got in (first, second, third, fourth):
        same(got, fastmix.sample(6, generator=ref))


def test_state_access():
    dg = fastmix.DeviceGenerator(2 ** 64 - 1, rank=1, world_size=4)
    assert dg.get_state() == (2 ** 64 - 1, 1)
    assert list(dg.state) == [-1, 1]                          # int64 with the uint64 bits
    dg.set_state((5, 2 ** 64 - 1))
    assert dg.get_state() == (5, 2 ** 64 - 1) and dg.sync() == (5, 2 ** 64 - 1)
    assert dg.manual_seed(8) is dg and dg.get_state() == (8, 1)
    assert fastmix.DeviceGenerator(rank=1, world_size=2).manual_seed().get_state()[1] == 1
    assert fastmix.DeviceGenerator().get_state()[1] == 0      # a random seed, offset 0
    assert dg.device == "cpu" and "DeviceGenerator" in repr(dg)
    for bad in (-1, 2 ** 64):
        with pytest.raises(fastmix.InvalidValueError):
            fastmix.DeviceGenerator(bad)
        with pytest.raises(fastmix.InvalidValueError):
            dg.set_state((1, bad))
    with pytest.raises(TypeError):
        fastmix.DeviceGenerator(1.5)
    assert dg.get_state() == (8, 1)


def test_next_draw_refuses_a_device_generator():
    with pytest.raises(TypeError, match="DeviceGenerator"):
        fastmix.next_draw(fastmix.DeviceGenerator(1))
    with pytest.raises(TypeError, match="DeviceGenerator"):
        fastmix.sample(4, generator=object())


@needs_torch
def test_torch_state_and_results(rng):
    dg = fastmix.DeviceGenerator(6, device="cpu")
    assert isinstance(dg.state, torch.Tensor) and dg.state.dtype == torch.int64
    lam, par = fastmix.sample(7, generator=dg)                 # like= the state: torch
    assert isinstance(lam, torch.Tensor)
    same((lam, par), fastmix.sample(7, generator=host(6, 0), like=torch.device("cpu")))
    lam, par = fastmix.sample(7, generator=dg, like=np.zeros(1))  # NumPy, the same memory space
    assert isinstance(lam, np.ndarray)
    same((lam, par), fastmix.sample(7, generator=host(6, 1)))
    x = torch.from_numpy(rng.standard_normal((5, 3, 4, 4)).astype(np.float32))
    same(fastmix.cutmix(x, generator=dg), fastmix.cutmix(x, generator=host(6, 2)))
    # a NumPy state drives torch CPU tensors too (the same host memory)
    dn = fastmix.DeviceGenerator(6, offset=3)
    same(fastmix.mixup(x, generator=dn), fastmix.mixup(x, generator=host(6, 3)))
    same(fastmix.DeviceGenerator(1, device=x).state, torch.tensor([1, 0]))


# ---------------------------------------------------------------- fastmix.torch ---

def _images(rng, shape=(8, 3, 6, 6), channels_last=False):
    x = torch.from_numpy(rng.standard_normal(shape).astype(np.float32))
    return x.to(memory_format=torch.channels_last) if channels_last else x


@needs_torch
@pytest.mark.parametrize("kind", ["mixup", "mixcut", "prob", "cutmix", "cutmix_soft",
                                  "mixupu8", "timm"])
def test_modules_match_host_draws(rng, kind):
    y = torch.from_numpy(rng.integers(0, 5, 8))
    u8 = torch.from_numpy(rng.integers(0, 256, (8, 6, 6, 3), dtype=np.uint8))

    def make(gen):
        if kind == "mixup":
            return ft.MixUp(0.4, generator=gen)
        if kind == "mixcut":
            return ft.MixUp(0.8, cutmix_alpha=1.0, fold=False, generator=gen)
        if kind == "prob":
            return ft.MixUp(0.8, prob=0.5, generator=gen)
        if kind in ("cutmix", "cutmix_soft"):
            return ft.CutMix(1.0, num_classes=5 if kind == "cutmix_soft" else None,
                             generator=gen)
        if kind == "mixupu8":
            return ft.MixUpU8(MEAN, STD, torch.float16, mixup_alpha=0.8, generator=gen)
        return ftimm.Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, num_classes=5, generator=gen)

    dg = fastmix.DeviceGenerator(31, device="cpu", offset=10)
    mod = make(dg)
    for k in range(3):
        x = u8 if kind == "mixupu8" else _images(rng, channels_last=(k == 1))
        xd, xh = x.clone(), x.clone()
        got = mod(xd, y)
        want = make(host(31, 10 + k))(xh, y)
        same(got[0], want[0])
        if kind == "timm" or kind == "cutmix_soft":
            same(got[1], want[1])
        else:
            same(tuple(got[1]), tuple(want[1]))
        assert dg.get_state() == (31, 11 + k)


@needs_torch
@pytest.mark.parametrize("func", ["mixup", "cutmix", "mixcut"])
def test_functional_paths(rng, func):
    # fused (no grad), in place, and differentiable (a draw operator then the
    # differentiable apply): all bitwise the host draws, with equal gradients.
    def call(x, gen, inplace=False):
        if func == "mixup":
            return ft.mixup(x, 0.4, generator=gen, inplace=inplace)
        return ft.cutmix(x, mixup_alpha=0.8 if func == "mixcut" else 0.0, generator=gen,
                         inplace=inplace)

    x = _images(rng)
    dg = fastmix.DeviceGenerator(8, device="cpu")
    same(call(x, dg), call(x, host(8, 0)))
    xi = x.clone()
    got = call(xi, dg, inplace=True)
    assert got[0] is xi
    same(got, call(x.clone(), host(8, 1), inplace=True))
    xg, xh = x.clone().requires_grad_(), x.clone().requires_grad_()
    got, want = call(xg, dg), call(xh, host(8, 2))
    same(got, want)
    assert got[0].requires_grad
    w = torch.from_numpy(rng.standard_normal(tuple(x.shape)).astype(np.float32))
    (got[0] * w).sum().backward()
    (want[0] * w).sum().backward()
    same(xg.grad, xh.grad)
    assert dg.get_state() == (8, 3)
    with pytest.raises(RuntimeError, match="inplace"):
        call(xg, dg, inplace=True)
    assert dg.get_state() == (8, 3)


@needs_torch
def test_torch_failures_take_no_draw(rng):
    dg = fastmix.DeviceGenerator(8, device="cpu")
    x64 = torch.zeros(4, 3, 4, 4, dtype=torch.float64)
    for requires_grad in (False, True):
        x = x64.clone().requires_grad_(requires_grad)
        with pytest.raises(fastmix.InvalidValueError, match="dtype"):
            ft.mixup(x, 0.4, generator=dg)
        with pytest.raises(fastmix.InvalidValueError, match="dtype"):
            ft.cutmix(x, generator=dg)
    with pytest.raises(fastmix.InvalidValueError):
        ft.mixup(torch.zeros(4, 3), -1.0, generator=dg)
    with pytest.raises(fastmix.InvalidValueError):
        ft.cutmix_u8(torch.zeros(4, 5, 5, 3, dtype=torch.uint8), MEAN, 0.0, generator=dg)
    assert dg.get_state() == (8, 0)
    with pytest.raises(TypeError, match="torch tensor"):
        ft.mixup(torch.zeros(4, 3), generator=fastmix.DeviceGenerator(1))  # a NumPy state


@needs_torch
def test_cutmix_u8_functional(rng):
    u8 = torch.from_numpy(rng.integers(0, 256, (6, 5, 7, 3), dtype=np.uint8))
    dg = fastmix.DeviceGenerator(12, device="cpu")
    for k, out_layout in enumerate(["nchw", "nhwc"]):
        got = ft.cutmix_u8(u8, MEAN, STD, dtype=torch.bfloat16, out_layout=out_layout,
                           mixup_alpha=0.5, generator=dg)
        want = ft.cutmix_u8(u8, MEAN, STD, dtype=torch.bfloat16, out_layout=out_layout,
                            mixup_alpha=0.5, generator=host(12, k))
        same(got, want)
        assert got[0].shape == (6, 3, 5, 7)
    assert dg.get_state() == (12, 2)


@needs_torch
def test_opcheck_device_seed_operators(rng):
    x = _images(rng, (6, 3, 4, 5))
    u8 = torch.from_numpy(rng.integers(0, 256, (6, 4, 5, 3), dtype=np.uint8))
    cfg = [0.5, 1.0, 0.0, 0.0, 1.0, 0.5]

    def so():
        return torch.tensor([7, 2], dtype=torch.int64)

    ops = torch.ops.fastmix
    for op, args in [
            (ops.sample_device_seed.default, (so(), 1, 6, 0.4, True, 0)),
            (ops.mixup_device_seed.default, (x, 0.4, True, 0, so(), 1)),
            (ops.mixup_device_seed_.default, (x.clone(), 0.4, True, 0, so(), 1)),
            (ops.cutmix_sample_device_seed.default, (so(), 1, 6, 4, 5, cfg, 0, 0, True, False)),
            (ops.cutmix_device_seed.default, (x, cfg, 0, 0, True, False, 0, so(), 1)),
            (ops.cutmix_device_seed_.default, (x.clone(), cfg, 0, 0, True, False, 0, so(), 1)),
            (ops.cutmix_u8_device_seed.default, (u8, list(MEAN), list(STD), torch.float32, 1, 0,
                                                  cfg, 0, 0, True, False, so(), 3))]:
        torch.library.opcheck(op, args)
    # the operator reads and advances the tensor it is given
    state = so()
    lam, par = ops.sample_device_seed(state, 3, 6, 0.4, True, 0)
    assert state.tolist() == [7, 5]
    same((lam, par), fastmix.sample(6, 0.4, generator=host(7, 2)))


@needs_torch
def test_compile_fullgraph_draws_afresh(rng):
    from torch._dynamo.testing import CompileCounterWithBackend
    torch._dynamo.reset()
    x = _images(rng)
    dg = fastmix.DeviceGenerator(17, device="cpu", offset=3)

    def step(x):
        xm, lam, par = ft.mixup(x, 0.4, generator=dg)
        return xm * 2, lam, par

    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(step, backend=counter, fullgraph=True)
    seen = []
    for k in range(4):
        xm, lam, par = compiled(x)
        want_x, want_lam, want_par = ft.mixup(x, 0.4, generator=host(17, 3 + k))
        same((xm, lam, par), (want_x * 2, want_lam, want_par))
        assert dg.get_state() == (17, 4 + k)
        seen.append(lam.tolist())
    assert counter.frame_count == 1  # one graph; the state is read from the tensor each call
    assert len({tuple(s) for s in seen}) == 4
    torch._dynamo.reset()


@needs_torch
@pytest.mark.parametrize("kind", ["mixup", "mixcut", "cutmix"])
def test_compile_fullgraph_modules_with_the_loss(rng, kind):
    # the modules' forward traces whole with a DeviceGenerator: the CutMix
    # config is checked when the module is built, the draw is an operator.
    from torch._dynamo.testing import CompileCounterWithBackend
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(108, 5))
    dg = fastmix.DeviceGenerator(40, device="cpu")

    def make(gen):
        if kind == "mixup":
            return ft.MixUp(0.4, generator=gen)
        if kind == "mixcut":
            return ft.MixUp(0.8, cutmix_alpha=1.0, generator=gen)
        return ft.CutMix(1.0, generator=gen)

    mix = make(dg)

    def step(x, y):
        xm, target = mix(x, y)
        return ft.cross_entropy(model(xm), target, label_smoothing=0.1), target

    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(step, backend=counter, fullgraph=True)
    y = torch.from_numpy(rng.integers(0, 5, 8))
    for k in range(3):
        x = _images(rng)
        loss, target = compiled(x, y)
        loss.backward()
        xm, want = make(host(40, k))(x, y)
        same(tuple(target), tuple(want))
        torch.testing.assert_close(loss, ft.cross_entropy(model(xm), want, label_smoothing=0.1))
        assert dg.get_state() == (40, k + 1)
    assert counter.frame_count == 1
    torch._dynamo.reset()


# -------------------------------------------------------------------------- CUDA ---

def _cuda_pair(rng, func):
    """The call of FUNCS `func` on the CPU (NumPy) and on CUDA (tensors), as
    call(generator) -> result."""
    dev = torch.device("cuda")
    x = rng.standard_normal((9, 3, 6, 5)).astype(np.float32)
    u8 = rng.integers(0, 256, (9, 6, 5, 3), dtype=np.uint8)
    xc, u8c = torch.from_numpy(x).to(dev), torch.from_numpy(u8).to(dev)
    cut = dict(mixup_alpha=0.8, cutmix_alpha=1.0)
    if func == "sample":  # no like=: NumPy for a host generator, the state's tensors else
        def call(g):
            return fastmix.sample(9, 0.4, pairing="cycle", generator=g)
        return call, call
    if func == "cutmix_sample":
        def call(g):
            return fastmix.cutmix_sample(9, 6, 5, generator=g, **cut)
        return call, call
    if func == "mixup":
        return (lambda g: fastmix.mixup(x, 0.7, generator=g),
                lambda g: fastmix.mixup(xc, 0.7, generator=g))
    if func == "cutmix":
        return (lambda g: fastmix.cutmix(x, prob=0.9, generator=g, **cut),
                lambda g: fastmix.cutmix(xc, prob=0.9, generator=g, **cut))
    return (lambda g: fastmix.cutmix_u8(u8, MEAN, STD, generator=g, **cut),
            lambda g: fastmix.cutmix_u8(u8c, MEAN, STD, generator=g, **cut))


@needs_cuda
@pytest.mark.parametrize("func", FUNCS)
def test_cuda_draws_match_the_cpu(rng, func):
    on_cpu, on_cuda = _cuda_pair(rng, func)
    seed, offset = 2 ** 63 + 5, 2 ** 64 - 2
    dg = fastmix.DeviceGenerator(seed, device="cuda", offset=offset)
    assert dg.state.device.type == "cuda" and dg.device == "cuda:0"
    for k in range(3):  # across the 2^64 wrap
        got = on_cuda(dg)  # results on the state's device (sample: like= the state)
        assert all(t.device.type == "cuda" for t in got)
        want = on_cpu(host(seed, (offset + k) % U64))
        torch.cuda.synchronize()
        same(got, want)
        assert dg.get_state() == (seed, (offset + k + 1) % U64)


@needs_cuda
def test_cuda_state_must_be_on_the_device_of_the_work(rng):
    x = torch.zeros(4, 3, device="cuda")
    cpu_dg = fastmix.DeviceGenerator(1, device="cpu")
    with pytest.raises(fastmix.InvalidValueError, match="state is on cpu"):
        fastmix.mixup(x, generator=cpu_dg)
    with pytest.raises(fastmix.InvalidValueError, match="state is on"):
        ft.mixup(x, generator=cpu_dg)
    with pytest.raises(fastmix.InvalidValueError, match="state is on cuda"):
        fastmix.mixup(x.cpu(), generator=fastmix.DeviceGenerator(1, device="cuda"))
    assert cpu_dg.get_state() == (1, 0)


def _module(kind, gen):
    if kind == "mixup":
        return ft.MixUp(0.4, generator=gen)
    if kind == "mixcut":
        return ft.MixUp(0.8, cutmix_alpha=1.0, generator=gen)
    if kind == "cutmix":
        return ft.CutMix(1.0, generator=gen)
    return ft.MixUpU8(MEAN, STD, torch.float32, mixup_alpha=0.8, generator=gen)


@needs_cuda
@pytest.mark.parametrize("kind", ["mixup", "mixcut", "cutmix", "mixupu8"])
def test_cuda_graph_capture_replays_fresh_draws(rng, kind):
    # torch.cuda.graphs: a step (mix + model + fused loss + backward) captured
    # once; each replay draws with the next offset, bitwise the CPU's draw,
    # and the eager step makes no host synchronization.
    dev = torch.device("cuda")
    torch.manual_seed(0)
    model = torch.nn.Linear(3 * 16 * 16, 10).to(dev)
    if kind == "mixupu8":
        x_cpu = torch.from_numpy(rng.integers(0, 256, (16, 16, 16, 3), dtype=np.uint8))
    else:
        x_cpu = _images(rng, (16, 3, 16, 16))
    y_cpu = torch.from_numpy(rng.integers(0, 10, 16))
    x, y = x_cpu.to(dev), y_cpu.to(dev)
    seed = 1234
    dg = fastmix.DeviceGenerator(seed, device=dev, offset=40)
    mix = _module(kind, dg)

    def step():
        xm, target = mix(x, y)
        loss = ft.cross_entropy(model(xm.flatten(1)), target, label_smoothing=0.1)
        loss.backward()
        return xm, target.lambdas, target.partners, loss

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        mode = torch.cuda.get_sync_debug_mode()
        torch.cuda.set_sync_debug_mode("error")  # any host sync in the eager step raises
        try:
            for _ in range(3):
                model.zero_grad(set_to_none=True)
                step()
        finally:
            torch.cuda.set_sync_debug_mode(mode)
    torch.cuda.current_stream().wait_stream(side)
    assert dg.get_state() == (seed, 43)

    graph = torch.cuda.CUDAGraph()
    model.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        xm, lam, par, loss = step()
    assert dg.get_state() == (seed, 43)  # capturing runs nothing

    model_cpu = torch.nn.Linear(3 * 16 * 16, 10)
    model_cpu.load_state_dict({k: v.cpu() for k, v in model.state_dict().items()})
    draws = []
    for k in range(3):
        graph.replay()
        torch.cuda.synchronize()
        want_x, want_t = _module(kind, host(seed, 43 + k))(x_cpu, y_cpu)
        same((xm, lam, par), (want_x, want_t.lambdas, want_t.partners))
        with torch.no_grad():
            want_loss = ft.cross_entropy(model_cpu(want_x.flatten(1)), want_t,
                                         label_smoothing=0.1)
        torch.testing.assert_close(loss.detach().cpu(), want_loss, rtol=1e-4, atol=1e-5)
        assert torch.isfinite(model.weight.grad).all()
        draws.append(_host(xm)[2] + _host(lam)[2])
        assert dg.get_state() == (seed, 44 + k)
    assert len(set(draws)) == 3


@needs_cuda
def test_cuda_graph_capture_of_the_functional_forms(rng):
    dev = torch.device("cuda")
    x_cpu = _images(rng, (8, 3, 4, 4))
    u8_cpu = torch.from_numpy(rng.integers(0, 256, (8, 4, 4, 3), dtype=np.uint8))
    x, u8 = x_cpu.to(dev), u8_cpu.to(dev)
    dg = fastmix.DeviceGenerator(5, device=dev)

    def step():
        a = ft.mixup(x, 0.4, generator=dg)
        b = ft.cutmix(x, mixup_alpha=0.8, generator=dg)
        c = ft.cutmix_u8(u8, MEAN, STD, cutmix_alpha=1.0, generator=dg)
        lam, par = fastmix.sample(8, 0.4, generator=dg)
        return a, b, c, (lam, par)

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = step()
    for k in range(2):
        graph.replay()
        torch.cuda.synchronize()
        o = 4 + 4 * k
        same(out[0], ft.mixup(x_cpu, 0.4, generator=host(5, o)))
        same(out[1], ft.cutmix(x_cpu, mixup_alpha=0.8, generator=host(5, o + 1)))
        same(out[2], ft.cutmix_u8(u8_cpu, MEAN, STD, cutmix_alpha=1.0, generator=host(5, o + 2)))
        same(out[3], fastmix.sample(8, 0.4, generator=host(5, o + 3), like=x_cpu))
    assert dg.get_state() == (5, 12)


@needs_cuda
@pytest.mark.parametrize("kind", ["mixup", "mixcut", "cutmix"])
def test_cuda_compile_reduce_overhead_draws_afresh(rng, kind):
    # torch.compile(mode="reduce-overhead"): CUDA graphs (trees) that mutate
    # the generator's state, a static-address input; every call draws anew.
    from torch._dynamo.utils import counters
    torch._dynamo.reset()
    counters.clear()
    dev = torch.device("cuda")
    torch.manual_seed(0)
    model = torch.nn.Linear(3 * 16 * 16, 10).to(dev)
    dg = fastmix.DeviceGenerator(77, device=dev)
    mix = _module(kind, dg)

    def step(x, y):
        xm, target = mix(x, y)
        loss = ft.cross_entropy(model(xm.flatten(1)), target)
        return loss, xm, target.lambdas, target.partners

    compiled = torch.compile(step, mode="reduce-overhead", fullgraph=True)
    x_cpu = _images(rng, (16, 3, 16, 16))
    y_cpu = torch.from_numpy(rng.integers(0, 10, 16))
    x, y = x_cpu.to(dev), y_cpu.to(dev)
    draws = []
    for k in range(6):  # warm-up, recording, then replays
        torch.compiler.cudagraph_mark_step_begin()
        loss, xm, lam, par = compiled(x, y)
        # the graph's outputs are reused by the next call: copied now
        xm, lam, par = xm.detach().clone(), lam.clone(), par.clone()
        loss.backward()
        torch.cuda.synchronize()
        want_x, want = _module(kind, host(77, k))(x_cpu, y_cpu)
        same((xm, lam, par), (want_x, want.lambdas, want.partners))
        assert dg.get_state() == (77, k + 1)
        draws.append(_host(xm)[2] + _host(lam)[2])
    assert len(set(draws)) == 6
    assert counters["inductor"]["cudagraph_skips"] == 0
    torch._dynamo.reset()


@needs_cuda
def test_cupy_state(rng):
    cupy = pytest.importorskip("cupy")
    x = rng.standard_normal((8, 5)).astype(np.float32)
    xc = cupy.asarray(x)
    dg = fastmix.DeviceGenerator(3, device=xc)
    assert isinstance(dg.state, cupy.ndarray)
    for k in range(2):
        got = fastmix.mixup(xc, 0.4, generator=dg)
        same(tuple(cupy.asnumpy(t) for t in got), fastmix.mixup(x, 0.4, generator=host(3, k)))
    assert dg.get_state() == (3, 2)
    dg.set_state((4, 0))
    assert dg.get_state() == (4, 0)


def test_ctypes_prototypes_are_declared():
    lib = fastmix._lib.lib
    for name in ("fastmix_sample_device_seed", "fastmix_mixup_device_seed",
                 "fastmix_cutmix_sample_device_seed", "fastmix_cutmix_device_seed",
                 "fastmix_cutmix_u8_device_seed"):
        f = getattr(lib, name)
        assert f.argtypes is not None and ctypes.c_void_p in f.argtypes
