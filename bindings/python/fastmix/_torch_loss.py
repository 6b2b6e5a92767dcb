"""fastmix.torch's losses: ``cross_entropy`` and ``binary_cross_entropy``
on the fused loss operator (loss and gradient in one pass), for a
``MixedTarget``, int labels or float targets, in the shapes PyTorch's
losses take."""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor

from ._args import reduction_code
from ._lib import raise_invalid


class MixedTarget(NamedTuple):
    """What the loss needs of a mixed batch: sample i is lambdas[i] of label
    labels[i] and 1 - lambdas[i] of label labels[partners[i]]."""
    labels: Tensor
    lambdas: Tensor
    partners: Tensor



def _labels_of(target):
    """(labels, lambdas, partners) of a MixedTarget, a (labels, lambdas,
    partners) tuple or plain labels."""
    if isinstance(target, MixedTarget) or (isinstance(target, tuple) and len(target) == 3):
        return tuple(target)
    return target, None, None


def _no_grad_inputs(func: str, **tensors) -> None:
    for name, t in tensors.items():
        if isinstance(t, Tensor) and t.requires_grad and torch.is_grad_enabled():
            raise NotImplementedError(f"{func}: the gradient with respect to {name} is not "
                                      f"supported (only the logits'); pass {name}.detach()")


def _spatial(func: str, logits: Tensor, labels, lambdas, partners, dense: bool):
    """Spatial logits (N, C, d1, ...) as rows (N*d1*..., C): C moved last (a
    copy), labels (N, d1, ...) or dense targets (N, C, d1, ...) flattened
    alike, and each sample's lambda and partner given to every one of its
    positions (the partner of position q of sample n is position q of
    sample partners[n])."""
    n, c = logits.shape[0], logits.shape[1]
    rest = tuple(logits.shape[2:])
    positions = 1
    for d in rest:
        positions *= d
    rows = logits.movedim(1, -1).reshape(-1, c)
    if dense:
        if tuple(labels.shape) != tuple(logits.shape):
            raise_invalid(f"{func}: probability targets must have the logits' shape "
                          f"{tuple(logits.shape)}, got {tuple(labels.shape)}")
        return rows, labels.movedim(1, -1).reshape(-1, c), None, None
    if tuple(labels.shape) != (n,) + rest:
        raise_invalid(f"{func}: for logits of shape {tuple(logits.shape)} the labels must have "
                      f"shape {(n,) + rest}, got {tuple(labels.shape)}")
    labels = labels.reshape(-1)
    if lambdas is not None and partners is not None:
        pos = torch.arange(positions, device=partners.device, dtype=torch.int64)
        partners = (partners.to(torch.int64).reshape(n, 1) * positions + pos).reshape(-1)
        lambdas = lambdas.reshape(n, 1).expand(n, positions).reshape(-1)
    return rows, labels, lambdas, partners


def _general_loss(func: str, kind: int, logits: Tensor, target, weight, pos_weight,
                  reduction: str, label_smoothing: float, ignore_index: int,
                  target_threshold) -> Tensor:
    labels, lambdas, partners = _labels_of(target)
    if not isinstance(labels, Tensor):
        raise_invalid(f"{func}: target must be a tensor of int labels, a MixedTarget or a float "
                      f"tensor of probabilities, got {type(labels).__name__}")
    _no_grad_inputs(func, target=labels, weight=weight, pos_weight=pos_weight)
    red = reduction_code(reduction, func)
    dense = labels.is_floating_point()
    shape = None  # the shape of a "none" loss, when it is not (rows,)
    if kind == 0 and logits.dim() == 1:  # unbatched (C,), as F.cross_entropy takes it
        logits = logits.unsqueeze(0)
        labels = labels.unsqueeze(0)
        shape = ()
    elif kind == 0 and logits.dim() > 2:
        shape = (logits.shape[0],) + tuple(logits.shape[2:])
        logits, labels, lambdas, partners = _spatial(func, logits, labels, lambdas, partners,
                                                     dense)
    elif kind == 1 and logits.dim() > 2 and dense:
        # (..., C): one row per leading index, the loss of "none" summed over C.
        if tuple(labels.shape) != tuple(logits.shape):
            raise_invalid(f"{func}: target must have the logits' shape {tuple(logits.shape)}, "
                          f"got {tuple(labels.shape)}")
        shape = tuple(logits.shape[:-1])
        logits, labels = logits.reshape(-1, logits.shape[-1]), labels.reshape(-1, logits.shape[-1])
    elif logits.dim() != 2:
        raise_invalid(f"{func}: logits must have shape (batch, classes), got "
                      f"{tuple(logits.shape)}" + (" (targets of the same shape are taken "
                                                   "per row of the last dimension)"
                                                   if kind == 1 else ""))
    need_grad = bool(torch.is_grad_enabled() and logits.requires_grad)
    loss, _ = torch.ops.fastmix.loss(logits, labels, lambdas, partners, weight, pos_weight, kind,
                                     red, float(label_smoothing), int(ignore_index),
                                     -1.0 if target_threshold is None
                                     else float(target_threshold), need_grad)
    if red == 0 and shape is not None:
        loss = loss.reshape(shape)
    return loss


def cross_entropy(logits: Tensor, target, reduction: str = "mean", label_smoothing: float = 0.0,
                  ignore_index: int = -100, weight: Optional[Tensor] = None) -> Tensor:
    """The mixup cross-entropy ``lam * CE(z, y1) + (1 - lam) * CE(z, y2)`` per
    sample, reduced ("mean" divides by the summed weights of the labels that
    are not ``ignore_index``, like ``F.cross_entropy``), for ``target`` a
    ``MixedTarget`` or plain int64 labels.  Differentiable w.r.t. logits; the
    loss is float32 whatever the logits' dtype (bf16/fp16 under autocast).

    As ``F.cross_entropy``: ``weight`` (one float per class), ``target`` a
    float tensor of probabilities of the logits' shape ("mean" divides by the
    batch), unbatched ``(C,)`` logits, and spatial logits ``(N, C, d1, ...)``
    with labels ``(N, d1, ...)`` (moved to rows ``(N*d1*..., C)``, a copy; a
    MixedTarget's lambdas and partners apply to every position of a sample).
    """
    return _general_loss("fastmix.torch.cross_entropy", 0, logits, target, weight, None,
                         reduction, label_smoothing, ignore_index, None)


def binary_cross_entropy(logits: Tensor, target, reduction: str = "mean",
                         label_smoothing: float = 0.0, weight: Optional[Tensor] = None,
                         pos_weight: Optional[Tensor] = None,
                         target_threshold: Optional[float] = None) -> Tensor:
    """Binary cross-entropy with logits per class, fused with its gradient.

    ``target``: a ``MixedTarget`` or int labels (the per-class target is
    timm's mixed one-hot, never built), or a float tensor of the logits'
    shape (``F.binary_cross_entropy_with_logits``).  Smoothed as timm does
    (``(1 - eps) * t + eps / classes``) and, with ``target_threshold``
    (timm's ``bce_target_thresh``), set to ``t > threshold``.  ``weight`` and
    ``pos_weight``: one float per class.  "mean" divides by ``batch *
    classes``; "none" gives one value per row, summed over the classes (the
    last dimension).  Every label must be a class (no ignore_index)."""
    return _general_loss("fastmix.torch.binary_cross_entropy", 1, logits, target, weight,
                         pos_weight, reduction, label_smoothing, -100, target_threshold)
