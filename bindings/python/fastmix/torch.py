"""PyTorch layer of fastmix: autograd, nn.Modules, torch.compile.

    mixup = fastmix.torch.MixUp(alpha=0.4)
    x, target = mixup(images, labels)                   # target: a MixedTarget
    loss = fastmix.torch.cross_entropy(model(x), target)
    loss.backward()

The kernels are registered as custom operators (``torch.ops.fastmix.*``,
through ``torch.library.custom_op``) with fake implementations, so
``torch.compile`` traces them without breaking the graph.  The loss is a
fused forward: the kernel writes the loss and its gradient w.r.t. the logits
in one pass; backward only scales that gradient by ``grad_output``.  The
drop-in for timm's ``Mixup`` is ``fastmix.timm.Mixup``.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import torch
from torch import Tensor

import fastmix as _fm
from ._lib import (PAIRINGS, REDUCTIONS, alpha_value, check_sampler, pairing_code, raise_invalid,
                   reduction_code)

__all__ = ["MixedTarget", "MixUp", "cross_entropy", "MixUpCrossEntropyLoss", "mixup", "blend",
           "soft_targets"]

_U64 = 1 << 64


def _to_i64(v: int) -> int:   # uint64 -> the int64 a schema "int" can carry
    return v - _U64 if v >= (1 << 63) else v


def _to_u64(v: int) -> int:
    return v % _U64


# ---------------------------------------------------------------- operators ---

@torch.library.custom_op("fastmix::mixup", mutates_args=())
def _mixup_op(x: Tensor, alpha: float, fold: bool, pairing: int, seed: int,
              offset: int) -> Tuple[Tensor, Tensor, Tensor]:
    x = x.contiguous()
    g = _fm.Generator(_to_u64(seed))
    g.offset = _to_u64(offset)
    return _fm.mixup(x, alpha, fold=fold, pairing=list(PAIRINGS)[pairing], generator=g)


@_mixup_op.register_fake
def _(x, alpha, fold, pairing, seed, offset):
    b = x.shape[0]
    return (torch.empty_like(x, memory_format=torch.contiguous_format),
            x.new_empty((b,), dtype=torch.float32), x.new_empty((b,), dtype=torch.int64))


@torch.library.custom_op("fastmix::mixup_", mutates_args=("x",))
def _mixup_inplace_op(x: Tensor, alpha: float, fold: bool, pairing: int, seed: int,
                      offset: int) -> Tuple[Tensor, Tensor]:
    g = _fm.Generator(_to_u64(seed))
    g.offset = _to_u64(offset)
    _, lam, par = _fm.mixup(x, alpha, fold=fold, pairing=list(PAIRINGS)[pairing], generator=g,
                            out=x)
    return lam, par


@_mixup_inplace_op.register_fake
def _(x, alpha, fold, pairing, seed, offset):
    b = x.shape[0]
    return x.new_empty((b,), dtype=torch.float32), x.new_empty((b,), dtype=torch.int64)


@torch.library.custom_op("fastmix::blend", mutates_args=())
def _blend_op(x: Tensor, lambdas: Tensor, partners: Tensor) -> Tensor:
    x = x.contiguous()
    return _fm.blend(x, lambdas, partners)


@_blend_op.register_fake
def _(x, lambdas, partners):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _blend_backward(ctx, grad_out, *rest):
    # out[i] = lam[i] x[i] + (1 - lam[i]) x[p[i]]:  dx = lam * g, plus (1 - lam) g at p.
    lam, par = ctx.saved_tensors
    shape = (-1,) + (1,) * (grad_out.dim() - 1)
    lam = lam.detach().float().view(shape)
    gx = (grad_out * lam).to(grad_out.dtype)
    gx.index_add_(0, par.long(), (grad_out * (1 - lam)).to(grad_out.dtype))
    return gx


def _mixup_setup(ctx, inputs, output):
    _, lam, par = output
    ctx.mark_non_differentiable(lam, par)
    ctx.save_for_backward(lam, par)


def _mixup_backward(ctx, grad_out, grad_lam, grad_par):
    return _blend_backward(ctx, grad_out), None, None, None, None, None


def _blend_setup(ctx, inputs, output):
    _, lam, par = inputs
    ctx.save_for_backward(lam, par)


def _blend_bwd(ctx, grad_out):
    return _blend_backward(ctx, grad_out), None, None


_mixup_op.register_autograd(_mixup_backward, setup_context=_mixup_setup)
_blend_op.register_autograd(_blend_bwd, setup_context=_blend_setup)


@torch.library.custom_op("fastmix::cross_entropy", mutates_args=())
def _ce_op(logits: Tensor, labels: Tensor, lambdas: Optional[Tensor], partners: Optional[Tensor],
           reduction: int, label_smoothing: float, ignore_index: int,
           need_grad: bool) -> Tuple[Tensor, Tensor]:
    logits = logits.contiguous()
    if need_grad:
        return _fm.cross_entropy(logits, labels, lambdas, partners,
                                 reduction=list(REDUCTIONS)[reduction],
                                 label_smoothing=label_smoothing, ignore_index=ignore_index,
                                 return_grad=True)
    loss = _fm.cross_entropy(logits, labels, lambdas, partners,
                             reduction=list(REDUCTIONS)[reduction],
                             label_smoothing=label_smoothing, ignore_index=ignore_index)
    return loss, logits.new_empty((0,))


@_ce_op.register_fake
def _(logits, labels, lambdas, partners, reduction, label_smoothing, ignore_index, need_grad):
    b = logits.shape[0]
    loss = logits.new_empty((b,) if reduction == 0 else (), dtype=torch.float32)
    grad = (torch.empty_like(logits, memory_format=torch.contiguous_format) if need_grad
            else logits.new_empty((0,)))
    return loss, grad


def _ce_setup(ctx, inputs, output):
    ctx.reduction = inputs[4]
    ctx.mark_non_differentiable(output[1])
    ctx.save_for_backward(output[1])


def _ce_backward(ctx, grad_loss, _grad_grad):
    (grad,) = ctx.saved_tensors
    if grad.numel() == 0 and grad.dim() == 1:
        raise RuntimeError("fastmix.torch.cross_entropy: the gradient was not computed "
                           "(the logits did not require grad in the forward pass)")
    # Skip the scaling when grad_output is exactly 1 (loss.backward() on a
    # scalar loss); only checked where it costs no device synchronisation.
    # Never while tracing (fake and functional tensors are Tensor subclasses).
    if (type(grad_loss) is torch.Tensor and grad_loss.device.type == "cpu"
            and not torch.compiler.is_compiling() and bool((grad_loss == 1).all())):
        return grad, None, None, None, None, None, None, None
    scale = grad_loss.reshape(-1, 1) if ctx.reduction == 0 else grad_loss
    return (grad * scale).to(grad.dtype), None, None, None, None, None, None, None


_ce_op.register_autograd(_ce_backward, setup_context=_ce_setup)


@torch.library.custom_op("fastmix::soft_targets", mutates_args=())
def _soft_targets_op(labels: Tensor, num_classes: int, lambdas: Optional[Tensor],
                     partners: Optional[Tensor], label_smoothing: float,
                     dtype: torch.dtype) -> Tensor:
    return _fm.soft_targets(labels, num_classes, lambdas, partners,
                            label_smoothing=label_smoothing, dtype=dtype)


@_soft_targets_op.register_fake
def _(labels, num_classes, lambdas, partners, label_smoothing, dtype):
    return labels.new_empty((labels.shape[0], num_classes), dtype=dtype)


# ------------------------------------------------------------ functional API ---

class MixedTarget(NamedTuple):
    """What the loss needs of a mixed batch: sample i is lambdas[i] of label
    labels[i] and 1 - lambdas[i] of label labels[partners[i]]."""
    labels: Tensor
    lambdas: Tensor
    partners: Tensor


@torch.compiler.disable
def _draw(generator) -> Tuple[int, int]:
    # Python state: runs eagerly (a graph break) inside torch.compile.
    seed, offset = _fm.next_draw(generator)
    return _to_i64(seed), _to_i64(offset)


def mixup(x: Tensor, alpha: float = 0.4, *, fold: bool = True, pairing: str = "permutation",
          generator: Optional[_fm.Generator] = None, inplace: bool = False):
    """``fastmix.mixup`` for tensors: returns ``(x_mixed, lambdas, partners)``;
    differentiable w.r.t. x (out of place).  It takes no labels: for
    ``(x_mixed, target)`` use ``MixUp()(x, labels)``.  ``inplace=True``
    overwrites x, which autograd cannot follow: refused, as PyTorch refuses
    in-place operations, when x requires grad."""
    func = "fastmix.torch.mixup"
    a = alpha_value(alpha, func)
    code = pairing_code(pairing, func)
    if inplace and x.requires_grad and torch.is_grad_enabled():
        raise RuntimeError(f"{func}: inplace=True on a tensor that requires grad: "
                           + ("a leaf Variable that requires grad is being used in an in-place "
                              "operation." if x.is_leaf else
                              "its gradient would be wrong; mix out of place"))
    seed, offset = _draw(generator)
    if inplace:
        lam, par = torch.ops.fastmix.mixup_(x, a, bool(fold), code, seed, offset)
        return x, lam, par
    return torch.ops.fastmix.mixup(x, a, bool(fold), code, seed, offset)


def blend(x: Tensor, lambdas: Tensor, partners: Tensor) -> Tensor:
    """``fastmix.blend`` for tensors, differentiable w.r.t. x."""
    return torch.ops.fastmix.blend(x, lambdas, partners)


def soft_targets(labels: Tensor, num_classes: int, lambdas: Optional[Tensor] = None,
                 partners: Optional[Tensor] = None, *, label_smoothing: float = 0.0,
                 dtype: torch.dtype = torch.float32) -> Tensor:
    return torch.ops.fastmix.soft_targets(labels, int(num_classes), lambdas, partners,
                                          float(label_smoothing), dtype)


def cross_entropy(logits: Tensor, target, reduction: str = "mean", label_smoothing: float = 0.0,
                  ignore_index: int = -100) -> Tensor:
    """The mixup cross-entropy ``lam * CE(z, y1) + (1 - lam) * CE(z, y2)`` per
    sample, reduced ("mean" divides by the summed weights of the labels that
    are not ``ignore_index``, like ``F.cross_entropy``), for ``target`` a
    ``MixedTarget`` or plain int64 labels.  Differentiable w.r.t. logits; the
    loss is float32 whatever the logits' dtype (bf16/fp16 under autocast)."""
    if isinstance(target, MixedTarget) or (isinstance(target, tuple) and len(target) == 3):
        labels, lambdas, partners = target
    else:
        labels, lambdas, partners = target, None, None
    red = reduction_code(reduction, "fastmix.torch.cross_entropy")
    need_grad = bool(torch.is_grad_enabled() and logits.requires_grad)
    loss, _ = torch.ops.fastmix.cross_entropy(logits, labels, lambdas, partners,
                                              red,
                                              float(label_smoothing), int(ignore_index),
                                              need_grad)
    return loss


# ------------------------------------------------------------------ modules ---

class MixUp(torch.nn.Module):
    """Mixes a batch: ``x_mixed, target = mixup(x, y)``.

    Each sample i gets ``lambdas[i] ~ Beta(alpha, alpha)`` (folded to
    ``max(l, 1 - l)`` when ``fold``) and a partner ``partners[i]`` (``pairing``:
    "permutation", "cycle" or "flip"); ``x_mixed[i] = lambdas[i] * x[i] +
    (1 - lambdas[i]) * x[partners[i]]``; ``target`` is a ``MixedTarget(y,
    lambdas, partners)`` for ``fastmix.torch.cross_entropy``.  Each call takes
    one (seed, offset) draw from ``generator`` (fastmix's default one when
    None).  In eval mode the batch passes unchanged (lambdas 1).
    ``inplace=True`` mixes x in place (no autograd through x then).
    """

    def __init__(self, alpha: float = 0.4, fold: bool = True, pairing: str = "permutation",
                 generator: Optional[_fm.Generator] = None, inplace: bool = False):
        super().__init__()
        func = "fastmix.torch.MixUp"
        self.alpha = alpha_value(alpha, func)
        check_sampler(func, self.alpha, int(bool(fold)), pairing_code(pairing, func), 0)
        self.fold, self.pairing = bool(fold), pairing
        self.generator, self.inplace = generator, inplace

    def forward(self, x: Tensor, y: Tensor):
        if x.dim() < 1 or y.dim() < 1 or y.shape[0] != x.shape[0]:
            raise_invalid(f"fastmix.torch.MixUp: labels must have one entry per sample: x has "
                          f"shape {tuple(x.shape)}, labels {tuple(y.shape)}")
        if not self.training:
            b = x.shape[0]
            return x, MixedTarget(y, torch.ones(b, device=x.device),
                                  torch.arange(b, device=x.device))
        xm, lam, par = mixup(x, self.alpha, fold=self.fold, pairing=self.pairing,
                             generator=self.generator, inplace=self.inplace)
        return xm, MixedTarget(y, lam, par)

    def extra_repr(self):
        return f"alpha={self.alpha}, fold={self.fold}, pairing={self.pairing!r}"


class MixUpCrossEntropyLoss(torch.nn.Module):
    """``fastmix.torch.cross_entropy`` as a module: ``loss = crit(logits, target)``."""

    def __init__(self, reduction: str = "mean", label_smoothing: float = 0.0,
                 ignore_index: int = -100):
        super().__init__()
        self.reduction, self.label_smoothing = reduction, float(label_smoothing)
        self.ignore_index = int(ignore_index)

    def forward(self, logits: Tensor, target) -> Tensor:
        return cross_entropy(logits, target, self.reduction, self.label_smoothing,
                             self.ignore_index)
