"""fastmix.torch's custom operators that take their draw as numbers (seed,
offset), with their fake implementations for torch.compile and their
autograd formulas: the fused loss's forward writes the gradient w.r.t.
the logits in the same pass, and its backward only scales it."""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import Tensor

import fastmix as _fm
from ._args import LAYOUTS, MODES, PAIRINGS, REDUCTIONS
from ._loss import fused_loss

_U64 = 1 << 64


def to_i64(v: int) -> int:   # uint64 -> the int64 a schema "int" can carry
    return v - _U64 if v >= (1 << 63) else v


def to_u64(v: int) -> int:
    return v % _U64


def _host_generator(seed: int, offset: int) -> "_fm.Generator":
    """A Generator whose next draw is (seed, offset), given as schema ints."""
    g = _fm.Generator(to_u64(seed))
    g.offset = to_u64(offset)
    return g


def fake_draw(ref: Tensor, batch: int, boxes: bool = True) -> tuple:
    """The fake (shape-only) results of a draw, on ref's device: lambdas
    float32 (batch,), partners int64 (batch,) and, for the CutMix draws,
    boxes int32 (batch, 4)."""
    lam = ref.new_empty((batch,), dtype=torch.float32)
    par = ref.new_empty((batch,), dtype=torch.int64)
    if not boxes:
        return lam, par
    return lam, par, ref.new_empty((batch, 4), dtype=torch.int32)


def fake_images(x: Tensor) -> Tensor:
    """The fake image output of an out-of-place operator: contiguous, x's shape."""
    return torch.empty_like(x, memory_format=torch.contiguous_format)


# ---------------------------------------------------------------- operators ---

@torch.library.custom_op("fastmix::mixup", mutates_args=())
def _mixup_op(x: Tensor, alpha: float, fold: bool, pairing: int, seed: int,
              offset: int) -> Tuple[Tensor, Tensor, Tensor]:
    x = x.contiguous()
    g = _host_generator(seed, offset)
    return _fm.mixup(x, alpha, fold=fold, pairing=list(PAIRINGS)[pairing], generator=g)


@_mixup_op.register_fake
def _(x, alpha, fold, pairing, seed, offset):
    return (fake_images(x),) + fake_draw(x, x.shape[0], boxes=False)


@torch.library.custom_op("fastmix::mixup_", mutates_args=("x",))
def _mixup_inplace_op(x: Tensor, alpha: float, fold: bool, pairing: int, seed: int,
                      offset: int) -> Tuple[Tensor, Tensor]:
    g = _host_generator(seed, offset)
    _, lam, par = _fm.mixup(x, alpha, fold=fold, pairing=list(PAIRINGS)[pairing], generator=g,
                            out=x)
    return lam, par


@_mixup_inplace_op.register_fake
def _(x, alpha, fold, pairing, seed, offset):
    return fake_draw(x, x.shape[0], boxes=False)


@torch.library.custom_op("fastmix::blend", mutates_args=())
def _blend_op(x: Tensor, lambdas: Tensor, partners: Tensor) -> Tensor:
    x = x.contiguous()
    return _fm.blend(x, lambdas, partners)


@_blend_op.register_fake
def _(x, lambdas, partners):
    return fake_images(x)


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


def cut_kwargs(config: List[float], mix_mode: int, pairing: int, correct_lam: bool, fold: bool):
    """fastmix.cutmix's keyword arguments from an operator's config: the six
    floats of fastmix_mix_config (min and max both 0: no cutmix_minmax)."""
    ma, ca, lo, hi, prob, switch = config
    return dict(mixup_alpha=ma, cutmix_alpha=ca,
                cutmix_minmax=None if (lo == 0.0 and hi == 0.0) else (lo, hi), prob=prob,
                switch_prob=switch, mode=list(MODES)[mix_mode], pairing=list(PAIRINGS)[pairing],
                correct_lam=correct_lam, fold=fold)


@torch.library.custom_op("fastmix::cutmix", mutates_args=())
def _cutmix_op(x: Tensor, config: List[float], mix_mode: int, pairing: int, correct_lam: bool,
               fold: bool, image_layout: int, seed: int,
               offset: int) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    x = x.contiguous()
    g = _host_generator(seed, offset)
    return _fm.cutmix(x, **cut_kwargs(config, mix_mode, pairing, correct_lam, fold),
                      layout=list(LAYOUTS)[image_layout], generator=g)


@_cutmix_op.register_fake
def _(x, config, mix_mode, pairing, correct_lam, fold, image_layout, seed, offset):
    return (fake_images(x),) + fake_draw(x, x.shape[0])


@torch.library.custom_op("fastmix::cutmix_", mutates_args=("x",))
def _cutmix_inplace_op(x: Tensor, config: List[float], mix_mode: int, pairing: int,
                       correct_lam: bool, fold: bool, image_layout: int, seed: int,
                       offset: int) -> Tuple[Tensor, Tensor, Tensor]:
    g = _host_generator(seed, offset)
    _, lam, par, boxes = _fm.cutmix(x, **cut_kwargs(config, mix_mode, pairing, correct_lam, fold),
                                    layout=list(LAYOUTS)[image_layout], generator=g, out=x)
    return lam, par, boxes


@_cutmix_inplace_op.register_fake
def _(x, config, mix_mode, pairing, correct_lam, fold, image_layout, seed, offset):
    return fake_draw(x, x.shape[0])


@torch.library.custom_op("fastmix::cutmix_apply", mutates_args=())
def _cutmix_apply_op(x: Tensor, lambdas: Tensor, partners: Tensor, boxes: Tensor,
                     image_layout: int) -> Tensor:
    x = x.contiguous()
    return _fm.cutmix_apply(x, lambdas, partners, boxes, layout=list(LAYOUTS)[image_layout])


@_cutmix_apply_op.register_fake
def _(x, lambdas, partners, boxes, image_layout):
    return fake_images(x)


def _cutmix_backward(grad_out, lam, par, boxes, layout):
    # out[i] = own * x[i] + part * x[p[i]] per pixel (every channel alike):
    # a mixup sample (box -1) has own = lam, part = 1 - lam; a CutMix sample
    # part = 1 inside its box, 0 outside, and own = 1 - part.  So dx = own * g,
    # plus part * g at p (index_add: an unmixed sample is also its own partner).
    b = grad_out.shape[0]
    if layout == 1 and grad_out.dim() == 4:  # (batch, height, width, channels)
        h, w = grad_out.shape[1], grad_out.shape[2]
        shape = (b, h, w, 1)
    else:                                    # (batch, ..., height, width)
        h, w = grad_out.shape[-2], grad_out.shape[-1]
        shape = (b,) + (1,) * (grad_out.dim() - 3) + (h, w)
    box = boxes.detach().long()
    rows = torch.arange(h, device=grad_out.device)
    cols = torch.arange(w, device=grad_out.device)
    inside = (((rows >= box[:, 0:1]) & (rows < box[:, 2:3]))[:, :, None]
              & ((cols >= box[:, 1:2]) & (cols < box[:, 3:4]))[:, None, :]).float()
    lam = lam.detach().float().view(b, 1, 1)
    blends = (box[:, 0] == -1).view(b, 1, 1)
    own = torch.where(blends, lam, 1 - inside).view(shape)
    part = torch.where(blends, 1 - lam, inside).view(shape)
    gx = (grad_out * own).to(grad_out.dtype)
    gx.index_add_(0, par.long(), (grad_out * part).to(grad_out.dtype))
    return gx


def _cutmix_setup(ctx, inputs, output):
    _, lam, par, boxes = output
    ctx.layout = inputs[6]
    ctx.mark_non_differentiable(lam, par, boxes)
    ctx.save_for_backward(lam, par, boxes)


def _cutmix_bwd(ctx, grad_out, grad_lam, grad_par, grad_boxes):
    lam, par, boxes = ctx.saved_tensors
    return (_cutmix_backward(grad_out, lam, par, boxes, ctx.layout), None, None, None, None, None,
            None, None, None)


def _cutmix_apply_setup(ctx, inputs, output):
    _, lam, par, boxes, layout = inputs
    ctx.layout = layout
    ctx.save_for_backward(lam, par, boxes)


def _cutmix_apply_bwd(ctx, grad_out):
    lam, par, boxes = ctx.saved_tensors
    return _cutmix_backward(grad_out, lam, par, boxes, ctx.layout), None, None, None, None


_cutmix_op.register_autograd(_cutmix_bwd, setup_context=_cutmix_setup)
_cutmix_apply_op.register_autograd(_cutmix_apply_bwd, setup_context=_cutmix_apply_setup)

# The loss (fastmix_loss): the cross-entropy and the binary cross-entropy
# (kind), class weights, probability targets.  target: int labels (with
# optional lambdas and partners) or float targets of the logits' shape.
@torch.library.custom_op("fastmix::loss", mutates_args=())
def _loss_op(logits: Tensor, target: Tensor, lambdas: Optional[Tensor],
             partners: Optional[Tensor], weight: Optional[Tensor], pos_weight: Optional[Tensor],
             kind: int, reduction: int, label_smoothing: float, ignore_index: int,
             target_threshold: float, need_grad: bool) -> Tuple[Tensor, Tensor]:
    logits = logits.contiguous()
    loss, grad = fused_loss("fastmix.torch.cross_entropy" if kind == 0
                            else "fastmix.torch.binary_cross_entropy", kind, logits, target,
                            lambdas, partners, weight=weight, pos_weight=pos_weight,
                            reduction=list(REDUCTIONS)[reduction],
                            label_smoothing=label_smoothing, ignore_index=ignore_index,
                            target_threshold=None if target_threshold < 0 else target_threshold,
                            return_grad=need_grad, grad_scale=1.0)
    return loss, grad if need_grad else logits.new_empty((0,))


@_loss_op.register_fake
def _(logits, target, lambdas, partners, weight, pos_weight, kind, reduction, label_smoothing,
      ignore_index, target_threshold, need_grad):
    b = logits.shape[0]
    loss = logits.new_empty((b,) if reduction == 0 else (), dtype=torch.float32)
    grad = (torch.empty_like(logits, memory_format=torch.contiguous_format) if need_grad
            else logits.new_empty((0,)))
    return loss, grad


def _loss_setup(ctx, inputs, output):
    ctx.reduction = inputs[7]
    ctx.mark_non_differentiable(output[1])
    ctx.save_for_backward(output[1])


def _loss_backward(ctx, grad_loss, _grad_grad):
    # The fused gradient, scaled by grad_output.
    (grad,) = ctx.saved_tensors
    if grad.numel() == 0 and grad.dim() == 1:
        raise RuntimeError("fastmix.torch.cross_entropy: the gradient was not computed "
                           "(the logits did not require grad in the forward pass)")
    nones = (None,) * 11
    # Skip the scaling when grad_output is exactly 1 (loss.backward() on a
    # scalar loss); only checked where it costs no device synchronisation.
    # Never while tracing (fake and functional tensors are Tensor subclasses).
    if (type(grad_loss) is torch.Tensor and grad_loss.device.type == "cpu"
            and not torch.compiler.is_compiling() and bool((grad_loss == 1).all())):
        return (grad,) + nones
    scale = grad_loss.reshape(-1, 1) if ctx.reduction == 0 else grad_loss
    return ((grad * scale).to(grad.dtype),) + nones


_loss_op.register_autograd(_loss_backward, setup_context=_loss_setup)


@torch.library.custom_op("fastmix::soft_targets", mutates_args=())
def _soft_targets_op(labels: Tensor, num_classes: int, lambdas: Optional[Tensor],
                     partners: Optional[Tensor], label_smoothing: float,
                     dtype: torch.dtype) -> Tensor:
    return _fm.soft_targets(labels, num_classes, lambdas, partners,
                            label_smoothing=label_smoothing, dtype=dtype)


@_soft_targets_op.register_fake
def _(labels, num_classes, lambdas, partners, label_smoothing, dtype):
    return labels.new_empty((labels.shape[0], num_classes), dtype=dtype)


def u8_shape(x: Tensor, in_layout: int, out_layout: int):
    """The shape of the uint8 path's output buffer: (batch, channels, height,
    width) for NCHW out, (batch, height, width, channels) for NHWC."""
    if in_layout == LAYOUTS["nchw"]:
        b, c, h, w = x.shape
    else:
        b, h, w, c = x.shape
    return (b, c, h, w) if out_layout == LAYOUTS["nchw"] else (b, h, w, c)


def dense_samples(x: Tensor) -> Tensor:
    """x, or a copy when an image (a sample) is not dense; a strided batch
    (x[::2]) is passed as it is."""
    expect = 1
    for size, stride in zip(reversed(x.shape[1:]), reversed(x.stride()[1:])):
        if size != 1 and stride != expect:
            return x.contiguous()
        expect *= size
    return x


# Not differentiable (uint8 images in): no autograd formula is registered.
@torch.library.custom_op("fastmix::cutmix_u8", mutates_args=())
def _cutmix_u8_op(x: Tensor, mean: List[float], std: List[float], dtype: torch.dtype,
                  in_layout: int, out_layout: int, config: List[float], mix_mode: int,
                  pairing: int, correct_lam: bool, fold: bool, seed: int,
                  offset: int) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    g = _host_generator(seed, offset)
    return _fm.cutmix_u8(dense_samples(x), mean, std, dtype=dtype,
                         in_layout=list(LAYOUTS)[in_layout], out_layout=list(LAYOUTS)[out_layout],
                         generator=g, **cut_kwargs(config, mix_mode, pairing, correct_lam, fold))


@_cutmix_u8_op.register_fake
def _(x, mean, std, dtype, in_layout, out_layout, config, mix_mode, pairing, correct_lam, fold,
      seed, offset):
    return (x.new_empty(u8_shape(x, in_layout, out_layout), dtype=dtype),) + fake_draw(
        x, x.shape[0])


@torch.library.custom_op("fastmix::cutmix_apply_u8", mutates_args=())
def _cutmix_apply_u8_op(x: Tensor, mean: List[float], std: List[float], lambdas: Tensor,
                        partners: Tensor, boxes: Tensor, dtype: torch.dtype, in_layout: int,
                        out_layout: int) -> Tensor:
    return _fm.cutmix_apply_u8(dense_samples(x), mean, std, lambdas, partners, boxes,
                               dtype=dtype, in_layout=list(LAYOUTS)[in_layout],
                               out_layout=list(LAYOUTS)[out_layout])


@_cutmix_apply_u8_op.register_fake
def _(x, mean, std, lambdas, partners, boxes, dtype, in_layout, out_layout):
    return x.new_empty(u8_shape(x, in_layout, out_layout), dtype=dtype)
