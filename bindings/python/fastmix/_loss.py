"""The losses: the two-term mixup cross-entropy and the binary
cross-entropy (``fastmix_loss``, optionally with its gradient), and the
dense mixed targets ``soft_targets``."""
from __future__ import annotations

import ctypes
import operator

from . import _arrays as _a
from . import _operands as _o
from ._args import reduction_code
from ._calls import run
from ._lib import (LOSS_BINARY_CROSS_ENTROPY, LOSS_CROSS_ENTROPY, LossConfig, check, lib,
                   raise_invalid)


_FLOAT_KINDS = ("float32", "float16", "bfloat16", "float64")


def _dense_targets(func, dz, dt, batch, classes):
    """Dense targets of the logits' shape (batch, classes): their Desc (a
    float32 copy when their dtype is float64 or a row is not contiguous) and
    row stride."""
    _a.same_device(dz, dt, func, "target", "logits")
    if tuple(dt.shape) != (batch, classes):
        raise_invalid(f"{func}: probability targets must have the logits' shape "
                      f"{(batch, classes)}, got {tuple(dt.shape)}")
    if dt.dtype not in _a.FLOAT_DTYPES or (classes > 1 and batch > 0 and dt.strides[1] != 1):
        dt = _a.contiguous_copy(dt, "float32", func, "target")
    _, _, stride = _a.sample_layout(dt, func, "target")
    return dt, max(stride, classes)


def _class_vector(func, dz, v, classes, name):
    """A per-class float vector (weight, pos_weight) as contiguous float32."""
    d = _a.describe(v, func, name)
    _a.same_device(dz, d, func, name, "logits")
    if tuple(d.shape) != (classes,):
        raise_invalid(f"{func}: {name} must have shape (classes,) = ({classes},), got "
                      f"{tuple(d.shape)} (fastmix takes one {name} per class)")
    return _a.contiguous_1d(d, "float32", classes, func, name, _FLOAT_KINDS)


def fused_loss(func, kind, logits, target, lambdas, partners, *, weight, pos_weight,
               reduction, label_smoothing, ignore_index, target_threshold, return_grad,
               grad_scale):
    """fastmix_loss on (batch, classes) logits: target int labels (with
    optional lambdas and partners) or float probabilities of the logits'
    shape.  Returns (loss, grad or None)."""
    dz = _a.describe(logits, func, "logits")
    dtype = _o.float_dtype(dz, func, "logits")
    if len(dz.shape) != 2:
        raise_invalid(f"{func}: logits must have shape (batch, classes), got {tuple(dz.shape)} "
                      "(spatial logits (N, C, d1, ...): move C last and flatten to (N*d1*..., C), "
                      "or use fastmix.torch, which does it)")
    batch, classes, row = _a.sample_layout(dz, func, "logits")
    cfg = LossConfig()
    lib.fastmix_loss_config_init(ctypes.byref(cfg))
    cfg.kind = kind
    cfg.reduction = reduction_code(reduction, func)
    cfg.label_smoothing = float(label_smoothing)
    cfg.grad_scale = float(grad_scale)
    cfg.ignore_index = operator.index(ignore_index)
    cfg.target_threshold = -1.0 if target_threshold is None else float(target_threshold)
    scratch = _a.Scratch(dz)
    dt = _a.describe(target, func, "labels" if kind == LOSS_CROSS_ENTROPY else "target")
    dy = dl = dp = None
    if dt.dtype in _FLOAT_KINDS:
        if lambdas is not None or partners is not None:
            raise_invalid(f"{func}: lambdas and partners mix labels; with probability targets "
                          "pass the mixed targets themselves (and no lambdas or partners)")
        dt, tstride = _dense_targets(func, dz, dt, batch, classes)
        cfg.targets = scratch.ptr(dt)
        cfg.targets_dtype = _a.FLOAT_DTYPES[dt.dtype]
        cfg.targets_stride = tstride
    else:
        _a.same_device(dz, dt, func, "labels", "logits")
        dy = _a.contiguous_1d(dt, "int64", batch, func, "labels", _a.INT_DTYPES)
        dl, dp = _o.pair(func, dz, batch, lambdas, partners)
    dw = _class_vector(func, dz, weight, classes, "weight") if weight is not None else None
    dpw = (_class_vector(func, dz, pos_weight, classes, "pos_weight")
           if pos_weight is not None else None)
    cfg.class_weight = scratch.ptr(dw) if dw else None
    cfg.pos_weight = scratch.ptr(dpw) if dpw else None
    loss = _a.empty(dz, (batch,) if cfg.reduction == 0 else (), "float32")
    dloss = _a.describe(loss, func, "loss")
    grad = dgrad = None
    if return_grad:
        grad = _a.empty(dz, dz.shape, dz.dtype, sample_stride=row)
        dgrad = _a.describe(grad, func, "grad")
    ws_bytes = ctypes.c_size_t(0)
    check(lib.fastmix_loss_workspace_size(dz.device_code, batch, ctypes.byref(cfg),
                                          ctypes.byref(ws_bytes)))
    ws = dws = None  # ws stays referenced until the call has been queued
    if ws_bytes.value:
        ws = _a.empty(dz, ((ws_bytes.value + 7) // 8,), "int64")
        dws = _a.describe(ws, func, "workspace")
    run("fastmix_loss", dz, dtype, scratch.ptr(dz), batch, classes, row,
        scratch.ptr(dy) if dy else None, scratch.ptr(dl) if dl else None,
        scratch.ptr(dp) if dp else None, ctypes.byref(cfg), scratch.ptr(dloss),
        scratch.ptr(dgrad) if dgrad else None, dws.ptr if dws else None, ws_bytes.value)
    return loss, grad


def cross_entropy(logits, labels, lambdas=None, partners=None, *, weight=None, reduction="mean",
                  label_smoothing=0.0, ignore_index=-100, return_grad=False, grad_scale=1.0):
    """The mixup cross-entropy ``lam * CE(z, y1) + (1 - lam) * CE(z, y2)``
    with ``y1 = labels[i]``, ``y2 = labels[partners[i]]``, ``lam = lambdas[i]``
    (plain cross-entropy when both are None), in one pass over the logits.

    ``logits``: ``(batch, classes)``, rows may be strided; ``labels``: int
    class indices, or float probabilities of the logits' shape (as
    ``F.cross_entropy`` takes them; no lambdas or partners then).
    ``weight``: None or one float per class (PyTorch's ``weight=``: "mean"
    then divides by the summed weights of the targets; with probabilities by
    the batch).  Returns the float32 loss (shape ``(batch,)`` for reduction
    "none", ``()`` otherwise) and, with ``return_grad=True``, ``(loss, grad)``
    where grad is the gradient of ``grad_scale * loss`` w.r.t. the logits, of
    their dtype.
    """
    loss, grad = fused_loss("fastmix.cross_entropy", LOSS_CROSS_ENTROPY, logits, labels, lambdas,
                            partners, weight=weight, pos_weight=None, reduction=reduction,
                            label_smoothing=label_smoothing, ignore_index=ignore_index,
                            target_threshold=None, return_grad=return_grad,
                            grad_scale=grad_scale)
    return (loss, grad) if return_grad else loss


def binary_cross_entropy(logits, target, lambdas=None, partners=None, *, weight=None,
                         pos_weight=None, reduction="mean", label_smoothing=0.0,
                         target_threshold=None, return_grad=False, grad_scale=1.0):
    """Binary cross-entropy with logits per class, in one pass over the logits.

    ``target``: int labels (with optional ``lambdas`` and ``partners``: the
    per-class target is timm's mixed one-hot ``lam * [c == y1] + (1 - lam) *
    [c == y2]``, never built) or float targets of the logits' shape (as
    ``F.binary_cross_entropy_with_logits`` takes them).  Targets are smoothed
    as timm does (``(1 - eps) * t + eps / classes``), then, with
    ``target_threshold`` (timm's ``bce_target_thresh``), set to ``t >
    threshold``.  ``weight``, ``pos_weight``: None or one float per class.
    ``reduction``: "mean" divides by ``batch * classes`` (PyTorch's mean over
    elements), "sum", or "none": one value per row, summed over the classes.
    Every label must be a class (no ignore_index).  Returns as
    ``cross_entropy`` does.
    """
    loss, grad = fused_loss("fastmix.binary_cross_entropy", LOSS_BINARY_CROSS_ENTROPY, logits,
                            target, lambdas, partners, weight=weight, pos_weight=pos_weight,
                            reduction=reduction, label_smoothing=label_smoothing,
                            ignore_index=-100, target_threshold=target_threshold,
                            return_grad=return_grad, grad_scale=grad_scale)
    return (loss, grad) if return_grad else loss


def soft_targets(labels, num_classes, lambdas=None, partners=None, *, label_smoothing=0.0,
                 dtype=None):
    """Dense mixed, smoothed targets of shape ``(batch, num_classes)``:
    ``(1 - eps) * (lam * onehot(y1) + (1 - lam) * onehot(y2)) + eps / num_classes``.
    ``dtype``: float32 (default), float16 or bfloat16 (a name, NumPy dtype or
    torch.dtype).  The result is in labels' library on labels' device."""
    func = "fastmix.soft_targets"
    dy = _a.describe(labels, func, "labels")
    if len(dy.shape) != 1:
        raise_invalid(f"{func}: labels must have shape (batch,), got {tuple(dy.shape)}")
    batch = dy.shape[0]
    dy = _a.contiguous_1d(dy, "int64", batch, func, "labels", _a.INT_DTYPES)
    classes = operator.index(num_classes)
    if classes < 0:
        raise_invalid(f"{func}: num_classes must be >= 0, got {classes}")
    name = "float32" if dtype is None else _a.dtype_name(dtype)
    code = _a.FLOAT_DTYPES.get(name)
    if code is None:
        raise_invalid(f"{func}: dtype must be float32, float16 or bfloat16, got {name}")
    dl, dp = _o.pair(func, dy, batch, lambdas, partners)
    targets = _a.empty(dy, (batch, classes), name)
    dt = _a.describe(targets, func, "targets")
    scratch = _a.Scratch(dy)
    run("fastmix_soft_targets", dy, code, scratch.ptr(dy), scratch.ptr(dl) if dl else None,
        scratch.ptr(dp) if dp else None, batch, classes, float(label_smoothing), scratch.ptr(dt),
        classes)
    return targets
