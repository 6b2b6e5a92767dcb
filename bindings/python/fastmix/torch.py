"""PyTorch layer of fastmix: autograd, nn.Modules, torch.compile.

    mixup = fastmix.torch.MixUp(alpha=0.4)
    x, target = mixup(images, labels)                   # target: a MixedTarget
    loss = fastmix.torch.cross_entropy(model(x), target)
    loss.backward()

    mixup = fastmix.torch.MixUp(alpha=0.8, cutmix_alpha=1.0)  # mixup or CutMix per sample
    cutmix = fastmix.torch.CutMix(alpha=1.0)                  # torchvision's CutMix

    # uint8 images (B, H, W, C) in, normalized and mixed (B, C, H, W) float out, one pass:
    mix = fastmix.torch.MixUpU8(mean, std, torch.float16, mixup_alpha=0.8, cutmix_alpha=1.0)
    x, target = mix(images_u8, labels)

The kernels are registered as custom operators (``torch.ops.fastmix.*``,
through ``torch.library.custom_op``) with fake implementations, so
``torch.compile`` traces them without breaking the graph.  The loss is a
fused forward: the kernel writes the loss and its gradient w.r.t. the logits
in one pass; backward only scales that gradient by ``grad_output``.  The
drop-in for timm's ``Mixup`` is ``fastmix.timm.Mixup``.

Graph-safe draws: with ``generator=fastmix.DeviceGenerator(seed,
device="cuda")`` every draw is a device-seed operator
(``torch.ops.fastmix.*_device_seed``) that reads (seed, offset) from the
generator's state tensor and advances it on the device, with no host work:
a step captured by ``torch.cuda.graph`` or compiled with
``torch.compile(mode="reduce-overhead")`` draws afresh at every replay.
With a host ``fastmix.Generator``, ``torch.compile`` traces the draw as the
operator ``torch.ops.fastmix.host_draw``, run by the compiled code at every
call (outside CUDA graphs), so the mixing step compiles whole either way.
"""
from __future__ import annotations

from . import _torch_draws, _torch_ops  # noqa: F401  (register the operators)
from ._torch_functional import (blend, cutmix, cutmix_apply, cutmix_apply_u8, cutmix_u8, mixup,
                                soft_targets)
from ._torch_loss import MixedTarget, binary_cross_entropy, cross_entropy
from ._torch_modules import CutMix, MixUp, MixUpCrossEntropyLoss, MixUpU8

__all__ = ["MixedTarget", "MixUp", "CutMix", "MixUpU8", "cross_entropy", "MixUpCrossEntropyLoss",
           "mixup", "blend", "cutmix", "cutmix_apply", "cutmix_u8", "cutmix_apply_u8",
           "soft_targets", "binary_cross_entropy"]
