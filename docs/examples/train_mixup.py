"""Trains a small MLP with fastmix's mixup on synthetic 3x8x8 images of 10
classes, on the CPU, for a few seconds, and prints the loss going down.

    python docs/examples/train_mixup.py [--steps 100] [--device cpu]

The pattern: mix the batch, forward, fused mixup loss, backward.
"""
import argparse
import time

import torch

import fastmix
import fastmix.torch as ft


def synthetic_data(means, n, generator, device):
    """Images of 10 classes: each class has its own mean image, plus noise."""
    labels = torch.randint(0, 10, (n,), generator=generator)
    images = means[labels] + torch.randn(n, 3, 8, 8, generator=generator)
    return images.to(device), labels.to(device)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    fastmix.manual_seed(0)  # the mixup draws: step k uses offset k
    data = torch.Generator().manual_seed(0)
    means = torch.randn(10, 3, 8, 8, generator=data) * 0.5
    images, labels = synthetic_data(means, 4096, data, args.device)
    test_images, test_labels = synthetic_data(means, 1024, data, args.device)

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 128),
                                torch.nn.ReLU(), torch.nn.Linear(128, 10)).to(args.device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    mixup = ft.MixUp(alpha=0.4)          # fold=True, random permutation pairing
    start, running, first = time.time(), None, None
    for step in range(args.steps):
        idx = torch.randint(0, images.shape[0], (args.batch,), generator=data)
        x, y = images[idx], labels[idx]
        x, target = mixup(x, y)                         # 1. mix the batch
        logits = model(x)                               # 2. forward
        loss = ft.cross_entropy(logits, target,         # 3. fused two-term loss
                                label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()                                 # 4. backward
        opt.step()
        running = loss.item() if running is None else 0.9 * running + 0.1 * loss.item()
        first = running if first is None else first
        if step % 25 == 0 or step == args.steps - 1:
            print(f"step {step:4d}  loss {running:.4f}", flush=True)
    with torch.no_grad():
        model.eval()
        accuracy = (model(test_images).argmax(1) == test_labels).float().mean().item()
    print(f"first loss {first:.4f}  last loss {running:.4f}  test accuracy {accuracy:.3f}  "
          f"({time.time() - start:.1f} s)")


if __name__ == "__main__":
    main()
