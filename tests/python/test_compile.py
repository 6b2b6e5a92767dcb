"""torch.compile with the default backend, inductor (which generates C++ on
the CPU), and fullgraph=True: the mixing step compiles to one graph, for a
host fastmix.Generator (the draw is the fastmix::host_draw operator, run by
the compiled code) and for a fastmix.DeviceGenerator (the state tensor is
read and advanced by the operators); every call draws afresh, and the draws
are bitwise the eager calls' at the same (seed, offset)."""
import numpy as np
import pytest

import fastmix

torch = pytest.importorskip("torch")
import fastmix.torch as ft  # noqa: E402
from torch._dynamo.testing import CompileCounterWithBackend  # noqa: E402


def host(seed, offset):
    """A host Generator whose next draw is (seed, offset)."""
    g = fastmix.Generator(seed)
    g.offset = offset
    return g


def same(a, b):
    """Bitwise equality of tensors, or of tuples of them."""
    if not isinstance(a, tuple):
        a, b = (a,), (b,)
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert u.dtype == v.dtype and u.shape == v.shape
        u, v = u.detach().contiguous(), v.detach().contiguous()
        assert torch.equal(u.view(-1).view(torch.uint8), v.view(-1).view(torch.uint8))


def images(rng, shape=(8, 3, 6, 6)):
    return torch.from_numpy(rng.standard_normal(shape).astype(np.float32))


def make_generator(kind, seed):
    """The generator a compiled step draws from, and a function that reads
    the offset its next draw will use."""
    if kind == "device":
        dg = fastmix.DeviceGenerator(seed, device="cpu", offset=5)
        return dg, lambda: dg.get_state()[1]
    if kind == "default":
        fastmix.manual_seed(seed)
        return None, lambda: fastmix.default_generator.offset
    g = host(seed, 5)
    return g, lambda: g.offset


def compiled(step):
    """step compiled by inductor with fullgraph=True, and the counter of the
    frames it compiled (a recompile, e.g. for a draw baked into the graph as a
    constant, would count twice)."""
    torch._dynamo.reset()
    counter = CompileCounterWithBackend("inductor")
    return torch.compile(step, backend=counter, fullgraph=True), counter


@pytest.mark.parametrize("kind", ["host", "default", "device"])
def test_functional_mixup_draws_afresh_in_order(rng, kind):
    gen, next_offset = make_generator(kind, 23)
    start = next_offset()

    def step(x):
        ft.mixup(x, 0.4, generator=gen)          # result unused: the draw is still taken
        xm, lam, par = ft.mixup(x, 0.7, pairing="cycle", generator=gen)
        xi, lam2, par2 = ft.mixup(x.clone(), 0.4, generator=gen, inplace=True)
        return xm * 2, lam, par, xi, lam2, par2

    fn, counter = compiled(step)
    seen = set()
    for k in range(4):
        x = images(rng)
        got = fn(x)
        o = start + 3 * k
        xm, lam, par = ft.mixup(x, 0.7, pairing="cycle", generator=host(23, o + 1))
        want_i = ft.mixup(x.clone(), 0.4, generator=host(23, o + 2), inplace=True)
        same(got, (xm * 2, lam, par) + want_i)
        assert next_offset() == o + 3
        seen.add(tuple(got[1].tolist()))
    assert counter.frame_count == 1
    assert len(seen) == 4


@pytest.mark.parametrize("kind", ["host", "device"])
@pytest.mark.parametrize("grad", [False, True], ids=["fused", "grad"])
def test_modules_and_the_loss(rng, kind, grad):
    # MixUp (mixup; mixup or CutMix per sample) and CutMix, each followed by a
    # model and the fused loss, one graph forward and backward.  Without a
    # gradient for x the fused draw-and-mix operators run; with one, the draw
    # operators and the differentiable apply.
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(108, 5))
    gen, next_offset = make_generator(kind, 41)
    start = next_offset()

    def mixers(g):
        return [ft.MixUp(0.4, generator=g), ft.MixUp(0.8, cutmix_alpha=1.0, generator=g),
                ft.CutMix(1.0, generator=g)]

    mods = mixers(gen)

    def step(x, y):
        loss, outs = 0.0, []
        for mix in mods:
            xm, target = mix(x, y)
            loss = loss + ft.cross_entropy(model(xm), target, label_smoothing=0.1)
            outs += [xm, *target]
        return (loss, *outs)

    fn, counter = compiled(step)
    y = torch.from_numpy(rng.integers(0, 5, 8))
    for k in range(3):
        x = images(rng).requires_grad_(grad)
        model.zero_grad(set_to_none=True)
        got = fn(x, y)
        got[0].backward()
        got_grads = [p.grad.clone() for p in model.parameters()]
        got_xgrad = x.grad.clone() if grad else None

        xe = x.detach().clone().requires_grad_(grad)
        model.zero_grad(set_to_none=True)
        o = start + 3 * k
        loss, outs = 0.0, []
        for j, mix in enumerate(mixers(host(41, o))):
            mix.generator = host(41, o + j)
            xm, target = mix(xe, y)
            loss = loss + ft.cross_entropy(model(xm), target, label_smoothing=0.1)
            outs += [xm, *target]
        loss.backward()

        same(tuple(got[1:]), tuple(outs))           # mixed images, labels, lambdas, partners
        assert got[1].requires_grad == grad
        torch.testing.assert_close(got[0], loss, rtol=1e-6, atol=1e-6)
        for g, p in zip(got_grads, model.parameters()):
            torch.testing.assert_close(g, p.grad, rtol=1e-5, atol=1e-6)
        if grad:
            torch.testing.assert_close(got_xgrad, xe.grad, rtol=1e-5, atol=1e-6)
        assert next_offset() == o + 3
    assert counter.frame_count == 1


def test_one_graph_no_break(rng):
    # torch._dynamo.explain: what a compile of the step finds (graph breaks
    # would each be a reason here), for both kinds of generator.
    x, y = images(rng), torch.from_numpy(rng.integers(0, 5, 8))
    for gen in (fastmix.Generator(3), fastmix.DeviceGenerator(3, device="cpu")):
        mix = ft.MixUp(0.8, cutmix_alpha=1.0, generator=gen)

        def step(x, y):
            xm, target = mix(x, y)
            return ft.cross_entropy(xm.flatten(1)[:, :5], target)

        torch._dynamo.reset()
        report = torch._dynamo.explain(step)(x, y)
        assert report.graph_count == 1 and report.graph_break_count == 0, report.break_reasons
        ops = [str(op) for graph_ops in report.ops_per_graph for op in graph_ops]
        draw = "host_draw" if isinstance(gen, fastmix.Generator) else "cutmix_device_seed"
        assert any(draw in op for op in ops), ops
    torch._dynamo.reset()


def test_host_draw_operator():
    g = fastmix.Generator(2**64 - 3, rank=1, world_size=4)
    g.offset = 2**64 - 2
    draws = [torch.ops.fastmix.host_draw(g._key) for _ in range(3)]
    want = [(2**64 - 3, (2**64 - 2 + 4 * k) % 2**64) for k in range(3)]
    assert [tuple(int(v) % 2**64 for v in d.tolist()) for d in draws] == want
    assert all(d.dtype == torch.int64 and d.shape == (2,) for d in draws)
    assert g.offset == (2**64 - 2 + 12) % 2**64
    # schema and fake implementation; the other opcheck tests compare two
    # calls, which are two different draws by design
    torch.library.opcheck(torch.ops.fastmix.host_draw.default, (g._key,),
                          test_utils=("test_schema", "test_faketensor"))
    key = g._key
    del g
    import gc
    gc.collect()
    with pytest.raises(RuntimeError, match="no fastmix.Generator numbered"):
        torch.ops.fastmix.host_draw(key)


def test_every_draw_operator_compiles(rng):
    # The operators themselves, called with explicit arguments: the ones that
    # take (seed, offset) as numbers and the device-seed ones, in one graph,
    # bitwise their eager results (the mutated state and in-place x included).
    x = images(rng, (6, 3, 4, 5))
    u8 = torch.from_numpy(rng.integers(0, 256, (6, 4, 5, 3), dtype=np.uint8))
    cfg = [0.5, 1.0, 0.0, 0.0, 0.9, 0.5]
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    ops = torch.ops.fastmix

    def step(x, u8, state):
        xi, xj = x.clone(), x.clone()
        return (ops.mixup(x, 0.4, True, 0, 7, 3),
                ops.mixup_(xi, 0.4, True, 1, 7, 4), xi,
                ops.cutmix(x, cfg, 0, 0, True, False, 0, 7, 5),
                ops.cutmix_(xj, cfg, 0, 0, True, False, 0, 7, 6), xj,
                ops.cutmix_u8(u8, mean, std, torch.float16, 1, 0, cfg, 0, 0, True, False, 7, 7),
                ops.sample_device_seed(state, 1, 6, 0.4, True, 0),
                ops.mixup_device_seed(x, 0.4, True, 0, state, 1),
                ops.cutmix_sample_device_seed(state, 1, 6, 4, 5, cfg, 0, 0, True, False),
                ops.cutmix_device_seed(x, cfg, 0, 0, True, False, 0, state, 1),
                ops.cutmix_u8_device_seed(u8, mean, std, torch.bfloat16, 1, 0, cfg, 0, 0, True,
                                          False, state, 1))

    def flat(results):
        out = []
        for r in results:
            out += list(r) if isinstance(r, (tuple, list)) else [r]
        return tuple(out)

    fn, counter = compiled(step)
    for k in range(2):
        state_c = torch.tensor([7, 8 + 5 * k])
        state_e = state_c.clone()
        got, want = flat(fn(x, u8, state_c)), flat(step(x, u8, state_e))
        same(got, want)
        assert state_c.tolist() == state_e.tolist() == [7, 13 + 5 * k]
    assert counter.frame_count == 1
