"""A timm-style input pipeline on fastmix's uint8 path: the images travel as
bytes (a quarter of float32's), from the workers to pinned memory to the
GPU, where one pass mixes (mixup or CutMix) and normalizes them into the
dtype the model takes.  It replaces timm's ``fast_collate`` /
``FastCollateMixup`` + ``PrefetchLoader`` pair:

    import fastmix.loader as fl
    import fastmix.torch as ft

    loader = torch.utils.data.DataLoader(dataset, batch_size=256, shuffle=True, num_workers=8,
                                         collate_fn=fl.fast_collate_u8, pin_memory=True,
                                         drop_last=True)
    loader = fl.PrefetchLoaderU8(loader, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                                 dtype=torch.float16, mixup_alpha=0.8, cutmix_alpha=1.0)
    for x, target in loader:              # x: (B, C, H, W) float16 on the GPU; target: MixedTarget
        loss = ft.cross_entropy(model(x), target, label_smoothing=0.1)

``dataset[i]`` is ``(image, label)``: a uint8 HWC NumPy array (what
``np.asarray(pil_image)`` gives), or a uint8 CHW tensor (what
``torchvision.io.decode_image`` gives).  Needs PyTorch; runs on the CPU too
(``device="cpu"``, the default where CUDA is unavailable).
"""
from __future__ import annotations

import contextlib
import operator
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from ._generators import AnyGenerator as _Generator
from ._lib import NoDeviceError, Status, raise_invalid
from .torch import MixedTarget, MixUpU8

__all__ = ["fast_collate_u8", "PrefetchLoaderU8"]


def _hwc(image, func: str, i: int):
    """One image as a uint8 (H, W, C) array or tensor: a tensor is CHW (or
    HW), anything else goes through np.asarray and is HWC (or HW)."""
    if isinstance(image, Tensor):
        if image.dtype != torch.uint8:
            raise_invalid(f"{func}: batch[{i}]'s image has dtype {image.dtype}; "
                          "fast_collate_u8 takes uint8 images")
        if image.dim() == 2:
            return image.unsqueeze(-1)
        if image.dim() == 3:
            return image.permute(1, 2, 0)  # (C, H, W), torchvision's, to (H, W, C)
        raise_invalid(f"{func}: batch[{i}]'s image must be a (channels, height, width) tensor, "
                      f"got shape {tuple(image.shape)}")
    try:
        a = np.asarray(image)
    except Exception as e:  # noqa: BLE001  (what np.asarray raises for a non-image)
        raise TypeError(f"{func}: batch[{i}]'s image must be a NumPy array, a PIL image or a "
                        f"tensor, not {type(image).__name__} ({e})") from None
    if a.dtype != np.uint8:
        raise_invalid(f"{func}: batch[{i}]'s image has dtype {a.dtype}; fast_collate_u8 takes "
                      "uint8 images")
    if a.ndim == 2:
        return a[:, :, None]
    if a.ndim != 3:
        raise_invalid(f"{func}: batch[{i}]'s image must be a (height, width, channels) array, "
                      f"got shape {a.shape}")
    return a


def fast_collate_u8(batch, *, pin_memory: Optional[bool] = None):
    """``collate_fn`` of a DataLoader: a list of ``(image, label)`` pairs to
    ``(images, labels)``, a uint8 ``(B, H, W, C)`` tensor (the bytes, never
    converted: the GPU normalizes them) and an int64 ``(B,)`` tensor.

    An image is a uint8 NumPy array ``(H, W, C)`` or ``(H, W)`` (or a PIL
    image, through ``np.asarray``), or a uint8 tensor ``(C, H, W)`` or
    ``(H, W)``; all of a batch must have the same size.  A label is an
    integer (Python's, NumPy's, a 0-d tensor).

    ``pin_memory``: None pins the result (allocated pinned, filled once, no
    extra copy) when called in the main process with CUDA available; in a
    worker process it does not (pinned memory does not cross processes), and
    ``DataLoader(..., pin_memory=True)`` pins the batch in the main process.
    """
    func = "fastmix.loader.fast_collate_u8"
    if len(batch) == 0:
        raise_invalid(f"{func}: batch must hold at least one (image, label) pair")
    images, labels = [], []
    for i, item in enumerate(batch):
        try:
            image, label = item
        except (TypeError, ValueError):
            raise_invalid(f"{func}: batch[{i}] must be an (image, label) pair, got "
                          f"{type(item).__name__}")
        images.append(_hwc(image, func, i))
        try:
            labels.append(operator.index(label))
        except TypeError:
            labels.append(None)
        if labels[-1] is None:
            raise_invalid(f"{func}: batch[{i}]'s label must be an integer, got "
                          f"{type(label).__name__}")
        if tuple(images[i].shape) != tuple(images[0].shape):
            raise_invalid(f"{func}: the images of a batch must have the same size (H, W, C): "
                          f"batch[0] is {tuple(images[0].shape)}, batch[{i}] "
                          f"{tuple(images[i].shape)}")
    if pin_memory is None:
        pin_memory = torch.utils.data.get_worker_info() is None and torch.cuda.is_available()
    h, w, c = images[0].shape
    out = torch.empty((len(images), h, w, c), dtype=torch.uint8, pin_memory=bool(pin_memory))
    view = out.numpy()
    for i, image in enumerate(images):
        if isinstance(image, Tensor):
            out[i].copy_(image)
        else:
            view[i] = image
    y = torch.tensor(labels, dtype=torch.int64)
    return out, (y.pin_memory() if pin_memory else y)


def _device(device) -> torch.device:
    """The device to mix on: the current CUDA device, else the CPU."""
    if device is None:
        return (torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available()
                else torch.device("cpu"))
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise NoDeviceError(f"fastmix.loader.PrefetchLoaderU8: device={device!r} asks for "
                                "CUDA, but PyTorch sees no usable CUDA device", Status.NO_DEVICE)
        return torch.device("cuda", torch.cuda.current_device() if dev.index is None
                            else dev.index)
    if dev.type != "cpu":
        raise_invalid(f"fastmix.loader.PrefetchLoaderU8: device must be cpu or cuda, got {dev}")
    return dev


class PrefetchLoaderU8:
    """Wraps a DataLoader that yields ``(images, labels)`` batches of uint8
    images (``fast_collate_u8``'s) and yields ``(x, target)``: ``x`` the
    batch mixed and normalized on ``device`` as ``fastmix.torch.MixUpU8``
    does it (one pass: ``(v / 255 - mean) / std`` of the mixed pixel v,
    rounded once to ``dtype``), ``(B, C, H, W)``, ``torch.channels_last``
    with ``channels_last=True``.

    On CUDA each batch is copied to the GPU (``non_blocking``, from pinned
    memory) and mixed on a side stream while the model runs on the current
    stream with the previous batch; the current stream waits for the side
    stream before a batch is handed out, and the tensors handed out are
    recorded on the current stream (safe to free there).  On the CPU
    (``device="cpu"``, or ``device=None`` without CUDA) the same runs
    inline.

    Mixing: the options of ``fastmix.torch.cutmix_u8`` (``mixup_alpha``,
    ``cutmix_alpha``, ``cutmix_minmax``, ``prob``, ``switch_prob``,
    ``mode``, ``pairing``, ``correct_lam``, ``fold``), one (seed, offset)
    draw per batch from ``generator`` (a ``fastmix.DeviceGenerator`` on
    ``device`` is read and advanced on the loader's side stream: give the
    loader one of its own).  All off (the defaults, as timm's
    loader without mixup): only normalization, and ``target`` is the int64
    labels on ``device``.  With any on, ``target`` is a ``MixedTarget`` for
    ``fastmix.torch.cross_entropy``; ``mixup_enabled = False`` (timm's
    ``mixup_off_epoch``) then normalizes only, the target still a
    ``MixedTarget`` (lambdas 1).  ``in_layout``: the batches' layout,
    "nhwc" (``fast_collate_u8``'s) or "nchw".
    """

    def __init__(self, loader, mean, std, *, dtype: torch.dtype = torch.float16,
                 channels_last: bool = False, in_layout: str = "nhwc", device=None,
                 mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0, cutmix_minmax=None,
                 prob: float = 1.0, switch_prob: float = 0.5, mode: str = "elem",
                 pairing: Optional[str] = None, correct_lam: bool = True, fold: bool = False,
                 generator: Optional[_Generator] = None):
        self.loader = loader
        self.device = _device(device)
        self.mix = MixUpU8(mean, std, dtype, in_layout=in_layout, channels_last=channels_last,
                           mixup_alpha=mixup_alpha, cutmix_alpha=cutmix_alpha,
                           cutmix_minmax=cutmix_minmax, prob=prob, switch_prob=switch_prob,
                           mode=mode, pairing=pairing, correct_lam=correct_lam, fold=fold,
                           generator=generator)

    @property
    def mixup_enabled(self) -> bool:
        return self.mix.mixing and self.mix.mixup_enabled

    @mixup_enabled.setter
    def mixup_enabled(self, value: bool):
        self.mix.mixup_enabled = bool(value)

    def __len__(self):
        return len(self.loader)

    @property
    def sampler(self):
        return self.loader.sampler

    @property
    def dataset(self):
        return self.loader.dataset

    def _prepare(self, images, labels):
        func = "fastmix.loader.PrefetchLoaderU8"
        if not isinstance(images, Tensor) or not isinstance(labels, Tensor):
            raise TypeError(f"{func}: the loader must yield (images, labels) tensors (use "
                            f"collate_fn=fastmix.loader.fast_collate_u8), got "
                            f"({type(images).__name__}, {type(labels).__name__})")
        images = images.to(self.device, non_blocking=True)
        labels = labels.to(self.device, non_blocking=True)
        x, target = self.mix(images, labels)
        return x, (target if self.mix.mixing else labels)

    def __iter__(self):
        cuda = self.device.type == "cuda"
        stream = torch.cuda.Stream(self.device) if cuda else None
        pending = None
        for images, labels in self.loader:
            with (torch.cuda.stream(stream) if cuda else contextlib.nullcontext()):
                ready = self._prepare(images, labels)
            if pending is not None:
                yield pending
            if cuda:
                current = torch.cuda.current_stream(self.device)
                current.wait_stream(stream)  # the batch is ready before the current stream reads it
                x, target = ready
                for t in (x,) + (tuple(target) if isinstance(target, MixedTarget) else (target,)):
                    t.record_stream(current)  # allocated on the side stream, used on this one
            pending = ready
        if pending is not None:
            yield pending
