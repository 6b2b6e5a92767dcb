"""Trains a tiny CNN on synthetic uint8 images through fastmix's uint8 input
path: the DataLoader collates bytes (fast_collate_u8), PrefetchLoaderU8
copies them to the device and mixes (mixup or CutMix per sample) and
normalizes them in one pass, and the fused loss takes the MixedTarget; a
validation loader without mixing only normalizes.
On the GPU when there is one (float16 images, channels-last), else on the
CPU (float32); a few seconds.

    python docs/examples/loader_u8.py [--epochs 3] [--workers 0] [--device cpu]
"""
import argparse
import time

import numpy as np
import torch

import fastmix
import fastmix.torch as ft
from fastmix.loader import PrefetchLoaderU8, fast_collate_u8

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # torchvision's, in the 0-1 scale


class SyntheticImages(torch.utils.data.Dataset):
    """uint8 HWC images (as np.asarray(PIL image) gives them) of 4 classes:
    each class has its own colour and a bright bar in its own quadrant."""

    def __init__(self, n, size=16, seed=0):
        rng = np.random.default_rng(seed)
        self.labels = rng.integers(0, 4, n)
        colours = np.array([[200, 60, 60], [60, 200, 60], [60, 60, 200], [180, 180, 60]])
        noise = rng.normal(0.0, 40.0, (n, size, size, 3))
        images = colours[self.labels][:, None, None, :] + noise
        half = size // 2
        for i, y in enumerate(self.labels):
            r, c = divmod(int(y), 2)
            images[i, r * half:(r + 1) * half, c * half + 2:c * half + 4] += 80
        self.images = np.clip(images, 0, 255).astype(np.uint8)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.images[i], int(self.labels[i])  # (H, W, C) uint8, label


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    args = parser.parse_args()
    torch.manual_seed(0)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = device.type == "cuda"
    if not cuda:
        torch.set_num_threads(1)  # a tiny model: more threads only add synchronization

    dataset = SyntheticImages(1024)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch, shuffle=True,
                                         num_workers=args.workers, collate_fn=fast_collate_u8,
                                         pin_memory=cuda, drop_last=True,
                                         generator=torch.Generator().manual_seed(0))
    # uint8 (B, 16, 16, 3) batches in; (B, 3, 16, 16) normalized, mixed images out.
    loader = PrefetchLoaderU8(loader, MEAN, STD, device=device,
                              dtype=torch.float16 if cuda else torch.float32,
                              channels_last=cuda, mixup_alpha=0.8, cutmix_alpha=1.0,
                              generator=fastmix.Generator(0))

    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(32 * 4, 4)).to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    start, running, first, step = time.time(), None, None, 0
    for epoch in range(args.epochs):
        for x, target in loader:                     # x: float, target: ft.MixedTarget
            with torch.autocast(device.type, dtype=torch.float16, enabled=cuda):
                logits = model(x)
            loss = ft.cross_entropy(logits, target, label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            running = loss.item() if running is None else 0.9 * running + 0.1 * loss.item()
            first = running if first is None else first
            step += 1
        print(f"epoch {epoch}  step {step:4d}  loss {running:.4f}", flush=True)
    # Validation: the same loader without mixing only normalizes, and yields the labels.
    val = torch.utils.data.DataLoader(SyntheticImages(256, seed=1), batch_size=128,
                                      collate_fn=fast_collate_u8, pin_memory=cuda)
    val = PrefetchLoaderU8(val, MEAN, STD, device=device, dtype=torch.float32)
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, labels in val:
            correct += (model(x).argmax(1) == labels).sum().item()
            total += labels.numel()
    print(f"first loss {first:.4f}  last loss {running:.4f}  accuracy {correct / total:.3f}  "
          f"({time.time() - start:.1f} s, {device})")


if __name__ == "__main__":
    main()
