"""fastmix: fused mixup kernels (sampling, blending, the two-term
cross-entropy) for NumPy, PyTorch and CuPy arrays, through the C library.

    lambdas, partners = fastmix.sample(batch, alpha=0.4)
    out = fastmix.blend(x, lambdas, partners)            # out=x blends in place
    out, lambdas, partners = fastmix.mixup(x, alpha=0.4)
    loss = fastmix.cross_entropy(logits, labels, lambdas, partners)

    # CutMix, or mixup and CutMix chosen per sample (timm's Mixup draw):
    out, lambdas, partners, boxes = fastmix.cutmix(x, cutmix_alpha=1.0, mixup_alpha=0.8)
    lambdas, partners, boxes = fastmix.cutmix_sample(batch, height, width, cutmix_alpha=1.0)
    out = fastmix.cutmix_apply(x, lambdas, partners, boxes)   # also to a mask of the batch

    # uint8 images (B, H, W, C) in, mixed and normalized float (B, C, H, W) out, one pass:
    out, lambdas, partners, boxes = fastmix.cutmix_u8(images, mean, std, dtype="float16",
                                                      mixup_alpha=0.8, cutmix_alpha=1.0)

Results are arrays of the input's library on the input's device.  CUDA work
is queued on the current stream of that library with the input's device
current.  The PyTorch layer (autograd, nn.Modules) is ``fastmix.torch`` and
the drop-in for timm's Mixup is ``fastmix.timm.Mixup``, each imported only
when asked for.

Randomness: every draw takes a (seed, offset) pair from a ``Generator``
(``Generator(seed)`` uses offset 0 for its first draw, then 1, 2, ...), and
is exactly ``fastmix_sample``/``fastmix_mixup`` (``fastmix_cutmix_sample``/
``fastmix_cutmix`` for the CutMix functions) of the C API with that seed and
offset, on either backend.  A ``DeviceGenerator`` keeps (seed, offset) in
device memory instead: the ``*_device_seed`` entry points read it when the
work runs and advance it in stream order, so a captured CUDA graph draws
afresh at every replay (see ``DeviceGenerator``).
"""
from __future__ import annotations

from ._version import __version__
from ._lib import (CudaError, FastmixError, InternalError, InvalidValueError,
                   LabelOutOfRangeError, NoDeviceError, NotSupportedError, Status,
                   MAX_BATCH, MAX_NORM_CHANNELS, library_path)
from ._generators import DeviceGenerator, Generator, default_generator, manual_seed, next_draw
from ._mixup import blend, mixup, sample
from ._loss import binary_cross_entropy, cross_entropy, soft_targets
from ._cutmix import cutmix, cutmix_apply, cutmix_sample
from ._u8 import cutmix_apply_u8, cutmix_u8
# Outside __all__ but reachable as fastmix.<name>: the library handle, its
# structs and constants, and the argument helpers.
from ._lib import (LOSS_BINARY_CROSS_ENTROPY, LOSS_CROSS_ENTROPY, LossConfig, check, lib,
                   raise_invalid)
from ._args import (LAYOUTS, alpha_value, check_mix_config, check_sampler, layout_code,
                    mix_config, pairing_code, reduction_code)

__all__ = [
    "__version__", "cuda_device_count", "manual_seed", "Generator", "DeviceGenerator",
    "default_generator",
    "sample", "blend", "mixup", "cross_entropy", "binary_cross_entropy", "soft_targets",
    "cutmix_sample",
    "cutmix_apply", "cutmix", "cutmix_u8", "cutmix_apply_u8", "Status", "FastmixError",
    "InvalidValueError", "NotSupportedError", "NoDeviceError", "CudaError",
    "LabelOutOfRangeError", "InternalError", "library_path", "MAX_BATCH", "MAX_NORM_CHANNELS",
    "next_draw",
]


def cuda_device_count() -> int:
    """Number of CUDA devices the library can use (0 without driver or GPU)."""
    return int(lib.fastmix_cuda_device_count())


def __getattr__(name):
    # `fastmix.torch`, `fastmix.timm`, `fastmix.loader` and `fastmix.fastai` are imported on
    # first use, so NumPy users need no PyTorch (nor fastai).
    if name in ("torch", "timm", "loader", "fastai"):
        import importlib
        return importlib.import_module("." + name, __name__)
    raise AttributeError(f"module 'fastmix' has no attribute {name!r}")
