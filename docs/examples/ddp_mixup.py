"""Mixup with the fused loss under DistributedDataParallel.

Every rank builds ``fastmix.Generator(seed, rank=rank, world_size=world)``
from the same seed: rank r's k-th draw uses offset ``k * world + r``, so the
ranks draw independent lambdas and partners, and a run with the same seed
repeats bit for bit (on the CPU; on CUDA too, the draws and the blend being
bitwise reproducible).  Run, on the CPU with the gloo backend:

    torchrun --standalone --nproc_per_node 2 docs/examples/ddp_mixup.py [--steps 20]

With ``--out DIR`` each rank saves its draws, its first gradient and the
final weights to DIR/rank{r}.pt (tests/python/test_distributed.py reads them).
"""
import argparse
import os

import torch
import torch.distributed as dist

import fastmix
import fastmix.torch as fmt


def data(seed, rank, step, batch=8):
    """This rank's shard of step `step`: images and labels from a CPU torch
    generator seeded by (seed, rank, step), so that any process can rebuild it."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + rank * 10_007 + step)
    return torch.randn(batch, 3, 8, 8, generator=g), torch.randint(0, 10, (batch,), generator=g)


def model(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 10))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=2017)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()

    net = torch.nn.parallel.DistributedDataParallel(model(args.seed))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    mix = fmt.MixUp(alpha=0.4, generator=fastmix.Generator(args.seed, rank=rank, world_size=world))
    draws, first_grad = [], None
    for step in range(args.steps):
        x, y = data(args.seed, rank, step)
        xm, target = mix(x, y)
        loss = fmt.cross_entropy(net(xm), target)
        opt.zero_grad()
        loss.backward()  # DDP averages the gradients of the ranks
        if step == 0:
            first_grad = [p.grad.clone() for p in net.parameters()]
        opt.step()
        draws.append((target.lambdas.clone(), target.partners.clone()))
        if rank == 0 and (step % 5 == 0 or step == args.steps - 1):
            print(f"step {step}: loss {loss.item():.4f}")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        torch.save({"draws": draws, "first_grad": first_grad,
                    "weights": [p.detach().clone() for p in net.parameters()]},
                   os.path.join(args.out, f"rank{rank}.pt"))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
