"""A real torch.distributed job (two processes, gloo, on the CPU) running
docs/examples/ddp_mixup.py: the ranks draw different lambdas, a second run
repeats the first bit for bit, and the first gradient equals the mean of the
ranks' gradients computed in this single process."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
if not dist.is_available():
    pytest.skip("torch.distributed is not available", allow_module_level=True)

import fastmix  # noqa: E402
import fastmix.torch as fmt  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "ddp_mixup.py"
SEED, STEPS, WORLD = 31, 3, 2


def run_job(out):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={WORLD}", str(EXAMPLE), "--steps", str(STEPS), "--seed", str(SEED),
           "--out", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return [torch.load(out / f"rank{r}.pt") for r in range(WORLD)]


def test_ddp_job(tmp_path):
    a = run_job(tmp_path / "a")
    b = run_job(tmp_path / "b")
    # the ranks draw independently: different lambdas at every step
    for step in range(STEPS):
        assert not torch.equal(a[0]["draws"][step][0], a[1]["draws"][step][0])
    # a second run repeats the first bit for bit
    for r in range(WORLD):
        for (l1, p1), (l2, p2) in zip(a[r]["draws"], b[r]["draws"]):
            assert torch.equal(l1, l2) and torch.equal(p1, p2)
        for w1, w2 in zip(a[r]["weights"], b[r]["weights"]):
            assert torch.equal(w1, w2)
    # DDP keeps the replicas equal
    for w0, w1 in zip(a[0]["weights"], a[1]["weights"]):
        assert torch.equal(w0, w1)

    # the first step again, in this one process: each rank's draw from its
    # own generator, each rank's loss and gradient, averaged as DDP does
    sys.path.insert(0, str(EXAMPLE.parent))
    try:
        import ddp_mixup as ex
    finally:
        sys.path.pop(0)
    grads = []
    for r in range(WORLD):
        net = ex.model(SEED)
        gen = fastmix.Generator(SEED, rank=r, world_size=WORLD)
        x, y = ex.data(SEED, r, 0)
        xm, target = fmt.MixUp(alpha=0.4, generator=gen)(x, y)
        assert torch.equal(target.lambdas, a[r]["draws"][0][0])
        fmt.cross_entropy(net(xm), target).backward()
        grads.append([p.grad for p in net.parameters()])
    for k, got in enumerate(a[0]["first_grad"]):
        want = (grads[0][k] + grads[1][k]) / WORLD
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-7), (got - want).abs().max()


def test_rank_generators():
    g = [fastmix.Generator(5, rank=r, world_size=3) for r in range(3)]
    offsets = [[gen.next_draw()[1] for _ in range(4)] for gen in g]
    assert offsets == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8, 11]]
    assert g[1].seed == 5 and g[1].rank == 1 and g[1].world_size == 3
    g[2].manual_seed(5)
    assert g[2].offset == 2
    for bad in ({"rank": 3, "world_size": 3}, {"rank": -1, "world_size": 2},
                {"rank": 0, "world_size": 0}):
        with pytest.raises(fastmix.InvalidValueError):
            fastmix.Generator(1, **bad)
