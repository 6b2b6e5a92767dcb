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

from typing import List, NamedTuple, Optional, Tuple, Union

import numpy as _np
import torch
from torch import Tensor

import fastmix as _fm
from ._args import (LAYOUTS, MODES, PAIRINGS, REDUCTIONS, alpha_value, check_mix_config,
                    check_sampler, cut_config, layout_code, mode_code, pairing_code, real_value,
                    reduction_code)
from ._arrays import FLOAT_DTYPES as _DTYPE_CODES
from ._generators import generator_by_key, generator_key, resolve, wrap_state
from ._lib import MAX_NORM_CHANNELS, raise_invalid
from ._loss import fused_loss
from ._u8 import check_u8, norm_values, u8_images

__all__ = ["MixedTarget", "MixUp", "CutMix", "MixUpU8", "cross_entropy", "MixUpCrossEntropyLoss",
           "mixup", "blend", "cutmix", "cutmix_apply", "cutmix_u8", "cutmix_apply_u8",
           "soft_targets", "binary_cross_entropy"]

_U64 = 1 << 64
# What a `generator=` argument takes: a host Generator, or a DeviceGenerator
# (graph-safe: drawn by the *_device_seed operators, with no host work).
_Generator = Union[_fm.Generator, _fm.DeviceGenerator]


def _to_i64(v: int) -> int:   # uint64 -> the int64 a schema "int" can carry
    return v - _U64 if v >= (1 << 63) else v


def _to_u64(v: int) -> int:
    return v % _U64


def _fake_draw(ref: Tensor, batch: int, boxes: bool = True) -> tuple:
    """The fake (shape-only) results of a draw, on ref's device: lambdas
    float32 (batch,), partners int64 (batch,) and, for the CutMix draws,
    boxes int32 (batch, 4)."""
    lam = ref.new_empty((batch,), dtype=torch.float32)
    par = ref.new_empty((batch,), dtype=torch.int64)
    if not boxes:
        return lam, par
    return lam, par, ref.new_empty((batch, 4), dtype=torch.int32)


def _fake_images(x: Tensor) -> Tensor:
    """The fake image output of an out-of-place operator: contiguous, x's shape."""
    return torch.empty_like(x, memory_format=torch.contiguous_format)


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
    return (_fake_images(x),) + _fake_draw(x, x.shape[0], boxes=False)


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
    return _fake_draw(x, x.shape[0], boxes=False)


@torch.library.custom_op("fastmix::blend", mutates_args=())
def _blend_op(x: Tensor, lambdas: Tensor, partners: Tensor) -> Tensor:
    x = x.contiguous()
    return _fm.blend(x, lambdas, partners)


@_blend_op.register_fake
def _(x, lambdas, partners):
    return _fake_images(x)


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


def _cut_kwargs(config: List[float], mix_mode: int, pairing: int, correct_lam: bool, fold: bool):
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
    g = _fm.Generator(_to_u64(seed))
    g.offset = _to_u64(offset)
    return _fm.cutmix(x, **_cut_kwargs(config, mix_mode, pairing, correct_lam, fold),
                      layout=list(LAYOUTS)[image_layout], generator=g)


@_cutmix_op.register_fake
def _(x, config, mix_mode, pairing, correct_lam, fold, image_layout, seed, offset):
    return (_fake_images(x),) + _fake_draw(x, x.shape[0])


@torch.library.custom_op("fastmix::cutmix_", mutates_args=("x",))
def _cutmix_inplace_op(x: Tensor, config: List[float], mix_mode: int, pairing: int,
                       correct_lam: bool, fold: bool, image_layout: int, seed: int,
                       offset: int) -> Tuple[Tensor, Tensor, Tensor]:
    g = _fm.Generator(_to_u64(seed))
    g.offset = _to_u64(offset)
    _, lam, par, boxes = _fm.cutmix(x, **_cut_kwargs(config, mix_mode, pairing, correct_lam, fold),
                                    layout=list(LAYOUTS)[image_layout], generator=g, out=x)
    return lam, par, boxes


@_cutmix_inplace_op.register_fake
def _(x, config, mix_mode, pairing, correct_lam, fold, image_layout, seed, offset):
    return _fake_draw(x, x.shape[0])


@torch.library.custom_op("fastmix::cutmix_apply", mutates_args=())
def _cutmix_apply_op(x: Tensor, lambdas: Tensor, partners: Tensor, boxes: Tensor,
                     image_layout: int) -> Tensor:
    x = x.contiguous()
    return _fm.cutmix_apply(x, lambdas, partners, boxes, layout=list(LAYOUTS)[image_layout])


@_cutmix_apply_op.register_fake
def _(x, lambdas, partners, boxes, image_layout):
    return _fake_images(x)


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


def _fake_loss(logits, reduction, need_grad):
    """The (loss, grad) shapes of the fused loss operators, for torch.compile."""
    b = logits.shape[0]
    loss = logits.new_empty((b,) if reduction == 0 else (), dtype=torch.float32)
    grad = (torch.empty_like(logits, memory_format=torch.contiguous_format) if need_grad
            else logits.new_empty((0,)))
    return loss, grad


@_ce_op.register_fake
def _(logits, labels, lambdas, partners, reduction, label_smoothing, ignore_index, need_grad):
    return _fake_loss(logits, reduction, need_grad)


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


# The general loss (fastmix_loss): class weights, probability targets and
# the binary cross-entropy.  target: int labels (with optional lambdas and
# partners) or float targets of the logits' shape.
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
    return _fake_loss(logits, reduction, need_grad)


def _loss_setup(ctx, inputs, output):
    ctx.reduction = inputs[7]
    ctx.mark_non_differentiable(output[1])
    ctx.save_for_backward(output[1])


def _loss_backward(ctx, grad_loss, _grad_grad):
    # The fused gradient, scaled by grad_output as the cross-entropy's is.
    return _ce_backward(ctx, grad_loss, _grad_grad)[:1] + (None,) * 11


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


def _u8_shape(x: Tensor, in_layout: int, out_layout: int):
    """The shape of the uint8 path's output buffer: (batch, channels, height,
    width) for NCHW out, (batch, height, width, channels) for NHWC."""
    if in_layout == LAYOUTS["nchw"]:
        b, c, h, w = x.shape
    else:
        b, h, w, c = x.shape
    return (b, c, h, w) if out_layout == LAYOUTS["nchw"] else (b, h, w, c)


def _dense_samples(x: Tensor) -> Tensor:
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
    g = _fm.Generator(_to_u64(seed))
    g.offset = _to_u64(offset)
    return _fm.cutmix_u8(_dense_samples(x), mean, std, dtype=dtype,
                         in_layout=list(LAYOUTS)[in_layout], out_layout=list(LAYOUTS)[out_layout],
                         generator=g, **_cut_kwargs(config, mix_mode, pairing, correct_lam, fold))


@_cutmix_u8_op.register_fake
def _(x, mean, std, dtype, in_layout, out_layout, config, mix_mode, pairing, correct_lam, fold,
      seed, offset):
    return (x.new_empty(_u8_shape(x, in_layout, out_layout), dtype=dtype),) + _fake_draw(
        x, x.shape[0])


@torch.library.custom_op("fastmix::cutmix_apply_u8", mutates_args=())
def _cutmix_apply_u8_op(x: Tensor, mean: List[float], std: List[float], lambdas: Tensor,
                        partners: Tensor, boxes: Tensor, dtype: torch.dtype, in_layout: int,
                        out_layout: int) -> Tensor:
    return _fm.cutmix_apply_u8(_dense_samples(x), mean, std, lambdas, partners, boxes,
                               dtype=dtype, in_layout=list(LAYOUTS)[in_layout],
                               out_layout=list(LAYOUTS)[out_layout])


@_cutmix_apply_u8_op.register_fake
def _(x, mean, std, lambdas, partners, boxes, dtype, in_layout, out_layout):
    return x.new_empty(_u8_shape(x, in_layout, out_layout), dtype=dtype)


# ------------------------------------------------- device-seed operators ---
# The draws of a fastmix.DeviceGenerator: (seed, offset) is the tensor
# seed_offset (two int64 holding the uint64 bits), read by the kernel when it
# runs and advanced by offset_increment in stream order, so the operators
# mutate it (mutates_args) and need no host value: a CUDA graph captured once
# draws afresh at every replay.  Operators that mutate an input cannot have
# an autograd formula, so the differentiable path draws with
# sample_device_seed / cutmix_sample_device_seed and applies the draw with the
# differentiable blend / cutmix_apply (bitwise the fused result, by the C
# contract); the fused operators serve x that needs no gradient.

def _dg(seed_offset: Tensor, offset_increment: int):
    return wrap_state(seed_offset, _to_u64(offset_increment))


@torch.library.custom_op("fastmix::sample_device_seed", mutates_args=("seed_offset",))
def _sample_ds_op(seed_offset: Tensor, offset_increment: int, batch: int, alpha: float,
                  fold: bool, pairing: int) -> Tuple[Tensor, Tensor]:
    return _fm.sample(batch, alpha, fold=fold, pairing=list(PAIRINGS)[pairing],
                      generator=_dg(seed_offset, offset_increment))


@_sample_ds_op.register_fake
def _(seed_offset, offset_increment, batch, alpha, fold, pairing):
    return _fake_draw(seed_offset, batch, boxes=False)


@torch.library.custom_op("fastmix::mixup_device_seed", mutates_args=("seed_offset",))
def _mixup_ds_op(x: Tensor, alpha: float, fold: bool, pairing: int, seed_offset: Tensor,
                 offset_increment: int) -> Tuple[Tensor, Tensor, Tensor]:
    x = x.contiguous()
    return _fm.mixup(x, alpha, fold=fold, pairing=list(PAIRINGS)[pairing],
                     generator=_dg(seed_offset, offset_increment))


@_mixup_ds_op.register_fake
def _(x, alpha, fold, pairing, seed_offset, offset_increment):
    return (_fake_images(x),) + _fake_draw(x, x.shape[0], boxes=False)


@torch.library.custom_op("fastmix::mixup_device_seed_", mutates_args=("x", "seed_offset"))
def _mixup_ds_inplace_op(x: Tensor, alpha: float, fold: bool, pairing: int, seed_offset: Tensor,
                         offset_increment: int) -> Tuple[Tensor, Tensor]:
    _, lam, par = _fm.mixup(x, alpha, fold=fold, pairing=list(PAIRINGS)[pairing],
                            generator=_dg(seed_offset, offset_increment), out=x)
    return lam, par


@_mixup_ds_inplace_op.register_fake
def _(x, alpha, fold, pairing, seed_offset, offset_increment):
    return _fake_draw(x, x.shape[0], boxes=False)


@torch.library.custom_op("fastmix::cutmix_sample_device_seed", mutates_args=("seed_offset",))
def _cutmix_sample_ds_op(seed_offset: Tensor, offset_increment: int, batch: int, height: int,
                         width: int, config: List[float], mix_mode: int, pairing: int,
                         correct_lam: bool, fold: bool) -> Tuple[Tensor, Tensor, Tensor]:
    return _fm.cutmix_sample(batch, height, width,
                             **_cut_kwargs(config, mix_mode, pairing, correct_lam, fold),
                             generator=_dg(seed_offset, offset_increment))


@_cutmix_sample_ds_op.register_fake
def _(seed_offset, offset_increment, batch, height, width, config, mix_mode, pairing,
      correct_lam, fold):
    return _fake_draw(seed_offset, batch)


@torch.library.custom_op("fastmix::cutmix_device_seed", mutates_args=("seed_offset",))
def _cutmix_ds_op(x: Tensor, config: List[float], mix_mode: int, pairing: int, correct_lam: bool,
                  fold: bool, image_layout: int, seed_offset: Tensor,
                  offset_increment: int) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    x = x.contiguous()
    return _fm.cutmix(x, **_cut_kwargs(config, mix_mode, pairing, correct_lam, fold),
                      layout=list(LAYOUTS)[image_layout],
                      generator=_dg(seed_offset, offset_increment))


@_cutmix_ds_op.register_fake
def _(x, config, mix_mode, pairing, correct_lam, fold, image_layout, seed_offset,
      offset_increment):
    return (_fake_images(x),) + _fake_draw(x, x.shape[0])


@torch.library.custom_op("fastmix::cutmix_device_seed_", mutates_args=("x", "seed_offset"))
def _cutmix_ds_inplace_op(x: Tensor, config: List[float], mix_mode: int, pairing: int,
                          correct_lam: bool, fold: bool, image_layout: int, seed_offset: Tensor,
                          offset_increment: int) -> Tuple[Tensor, Tensor, Tensor]:
    _, lam, par, boxes = _fm.cutmix(x, **_cut_kwargs(config, mix_mode, pairing, correct_lam, fold),
                                    layout=list(LAYOUTS)[image_layout],
                                    generator=_dg(seed_offset, offset_increment), out=x)
    return lam, par, boxes


@_cutmix_ds_inplace_op.register_fake
def _(x, config, mix_mode, pairing, correct_lam, fold, image_layout, seed_offset,
      offset_increment):
    return _fake_draw(x, x.shape[0])


# Not differentiable (uint8 images in), like fastmix::cutmix_u8.
@torch.library.custom_op("fastmix::cutmix_u8_device_seed", mutates_args=("seed_offset",))
def _cutmix_u8_ds_op(x: Tensor, mean: List[float], std: List[float], dtype: torch.dtype,
                     in_layout: int, out_layout: int, config: List[float], mix_mode: int,
                     pairing: int, correct_lam: bool, fold: bool, seed_offset: Tensor,
                     offset_increment: int) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    return _fm.cutmix_u8(_dense_samples(x), mean, std, dtype=dtype,
                         in_layout=list(LAYOUTS)[in_layout], out_layout=list(LAYOUTS)[out_layout],
                         generator=_dg(seed_offset, offset_increment),
                         **_cut_kwargs(config, mix_mode, pairing, correct_lam, fold))


@_cutmix_u8_ds_op.register_fake
def _(x, mean, std, dtype, in_layout, out_layout, config, mix_mode, pairing, correct_lam, fold,
      seed_offset, offset_increment):
    return (x.new_empty(_u8_shape(x, in_layout, out_layout), dtype=dtype),) + _fake_draw(
        x, x.shape[0])


# -------------------------------------------- host draws inside torch.compile ---
# A host fastmix.Generator is Python state.  Eagerly, a call takes its
# (seed, offset) before the operator (_draw); inside torch.compile that
# would be a graph break, or, traced, one draw baked into the graph as a
# constant.  There the draw is an operator of its own instead, which the
# compiled code calls at every run: fastmix::host_draw takes the next
# (seed, offset) of the Generator numbered `generator` (generator_key) and
# returns it as two int64 on the CPU; the device-seed operators then read
# it as their state (increment 0: a temporary, nothing to advance).  The
# result is bitwise the eager call's: the same (seed, offset), the same C
# call.  The operator is registered as having an ordered side effect, so the
# compiler keeps every draw and keeps them in program order (no dead-code
# elimination, no reordering, no merging of two identical calls), and is
# tagged as not capturable in a CUDA graph (a replay would repeat the
# captured draw): under mode="reduce-overhead" it runs outside the graphs.

def _host_draw_tags() -> dict:
    """custom_op's tags= for fastmix::host_draw, where this PyTorch has them."""
    import inspect
    if "tags" not in inspect.signature(torch.library.custom_op).parameters:
        return {}
    tags = tuple(t for t in (getattr(torch.Tag, "nondeterministic_seeded", None),
                             getattr(torch.Tag, "cudagraph_unsafe", None)) if t is not None)
    return {"tags": tags} if tags else {}


@torch.library.custom_op("fastmix::host_draw", mutates_args=(), **_host_draw_tags())
def _host_draw_op(generator: int) -> Tensor:
    g = generator_by_key(generator)
    if g is None:
        raise RuntimeError(f"fastmix::host_draw: there is no fastmix.Generator numbered "
                           f"{generator} (it no longer exists)")
    seed, offset = g.next_draw()
    return torch.tensor([_to_i64(seed), _to_i64(offset)], dtype=torch.int64)


@_host_draw_op.register_fake
def _(generator):
    return torch.empty((2,), dtype=torch.int64)


def _register_ordered_effect(qualname: str) -> None:
    """Marks an operator as having an ordered side effect.  PyTorch's
    registration is private and has moved between releases: where neither
    known form works, a warning says what is lost."""
    try:
        from torch._higher_order_ops import effects
        register = getattr(torch.library, "_register_effectful_op", None)
        if register is not None:
            register(qualname, effects._EffectType.ORDERED)
        else:
            namespace, name = qualname.split("::")
            effects._register_effectful_op(getattr(getattr(torch.ops, namespace), name).default,
                                           effects._EffectType.ORDERED)
    except Exception as e:  # noqa: BLE001  (any failure of a private API)
        import warnings
        warnings.warn(f"fastmix.torch: PyTorch {torch.__version__} could not mark {qualname} as "
                      f"an ordered side effect ({type(e).__name__}: {e}); inside torch.compile a "
                      "host Generator's draw whose result is unused may be dropped or reordered; "
                      "a DeviceGenerator is not affected", RuntimeWarning, stacklevel=2)


_register_ordered_effect("fastmix::host_draw")


# ------------------------------------------------------------ functional API ---

class MixedTarget(NamedTuple):
    """What the loss needs of a mixed batch: sample i is lambdas[i] of label
    labels[i] and 1 - lambdas[i] of label labels[partners[i]]."""
    labels: Tensor
    lambdas: Tensor
    partners: Tensor


@torch.compiler.disable
def _draw(generator) -> Tuple[int, int]:
    # Eagerly only: _seed_state gives the draw inside torch.compile.
    seed, offset = _fm.next_draw(generator)
    return _to_i64(seed), _to_i64(offset)


def _seed_state(func: str, generator, x: Tensor) -> Optional[Tuple[Tensor, int]]:
    """What the device-seed operators draw with, ``(state, increment)``: a
    fastmix.DeviceGenerator's state tensor (which must be on x's device) and
    increment; inside torch.compile, a host Generator's next draw taken by
    fastmix::host_draw when the compiled code runs (on x's device), with
    increment 0.  None for a host Generator eagerly: drawn on the host by
    _draw, for the operators that take (seed, offset) as numbers.
    Traceable: no host synchronization, no Python state changed."""
    if isinstance(generator, _fm.DeviceGenerator):
        return _device_state(func, generator, x), _to_i64(generator.increment)
    if not torch.compiler.is_compiling():
        return None
    state = torch.ops.fastmix.host_draw(generator_key(resolve(generator)))
    if x.device.type != "cpu":
        state = state.to(x.device, non_blocking=True)
    return state, 0


def _device_state(func: str, generator, x: Tensor) -> Tensor:
    """The state tensor of a fastmix.DeviceGenerator, which must be a tensor
    on x's device."""
    state = generator.state
    if not isinstance(state, Tensor):
        raise TypeError(f"{func}: the DeviceGenerator's state is a {type(state).__name__}; "
                        "fastmix.torch needs a torch tensor: make it with "
                        "fastmix.DeviceGenerator(seed, device=x.device)")
    if state.device != x.device:
        raise_invalid(f"{func}: the DeviceGenerator's state is on {state.device}, but x is on "
                      f"{x.device}; make it with fastmix.DeviceGenerator(seed, device=x.device)")
    return state


def _needs_grad(x: Tensor) -> bool:
    return torch.is_grad_enabled() and x.requires_grad


_FLOATS = (torch.float32, torch.float16, torch.bfloat16)


def _check_float(func: str, x: Tensor):
    """The dtype check of the differentiable device-seed path, made before
    its draw (the fused operators make it in the C call's arguments)."""
    if x.dtype not in _FLOATS:
        raise_invalid(f"{func}: x has dtype {str(x.dtype).replace('torch.', '')}; fastmix takes "
                      "float32, float16 and bfloat16")
    if x.dim() < 1:
        raise_invalid(f"{func}: x must have a batch dimension, got a 0-d array")


def mixup(x: Tensor, alpha: float = 0.4, *, fold: bool = True, pairing: str = "permutation",
          generator: Optional[_Generator] = None, inplace: bool = False):
    """``fastmix.mixup`` for tensors: returns ``(x_mixed, lambdas, partners)``;
    differentiable w.r.t. x (out of place).  It takes no labels: for
    ``(x_mixed, target)`` use ``MixUp()(x, labels)``.  ``inplace=True``
    overwrites x, which autograd cannot follow: refused, as PyTorch refuses
    in-place operations, when x requires grad.  ``generator``: a
    ``fastmix.Generator`` (None: the default one), drawn on the host (inside
    ``torch.compile`` by the operator ``fastmix::host_draw``), or a
    ``fastmix.DeviceGenerator`` with its state on x's device, drawn by the
    operator (no host work: CUDA graphs, ``fullgraph=True``); then an x that
    requires grad is drawn and blended by two operators, bitwise the same."""
    func = "fastmix.torch.mixup"
    a = alpha_value(alpha, func)
    code = pairing_code(pairing, func)
    if inplace:
        _refuse_inplace_grad(func, x)
    drawn = _seed_state(func, generator, x)
    if drawn is not None:  # drawn by the operator, where the work runs
        state, inc = drawn
        if inplace:
            lam, par = torch.ops.fastmix.mixup_device_seed_(x, a, bool(fold), code, state, inc)
            return x, lam, par
        if _needs_grad(x):
            _check_float(func, x)
            lam, par = torch.ops.fastmix.sample_device_seed(state, inc, x.shape[0], a,
                                                            bool(fold), code)
            return torch.ops.fastmix.blend(x, lam, par), lam, par
        return torch.ops.fastmix.mixup_device_seed(x, a, bool(fold), code, state, inc)
    seed, offset = _draw(generator)
    if inplace:
        lam, par = torch.ops.fastmix.mixup_(x, a, bool(fold), code, seed, offset)
        return x, lam, par
    return torch.ops.fastmix.mixup(x, a, bool(fold), code, seed, offset)


def blend(x: Tensor, lambdas: Tensor, partners: Tensor) -> Tensor:
    """``fastmix.blend`` for tensors, differentiable w.r.t. x."""
    return torch.ops.fastmix.blend(x, lambdas, partners)


def _images_view(x: Tensor, cut: bool):
    """x as the operators see it, and the layout code: a 4-d tensor whose
    samples are dense channels-last (torch.channels_last) as its (batch,
    height, width, channels) view, NHWC; (batch, channels, height, width),
    (batch, height, width) or more dimensions as they are, NCHW; without
    CutMix, a tensor of fewer than 3 dimensions as (batch, 1, elems)."""
    if x.dim() == 4:
        _, c, h, w = x.shape
        s = x.stride()
        nchw = (w == 1 or s[3] == 1) and (h == 1 or s[2] == w) and (c == 1 or s[1] == h * w)
        nhwc = (c == 1 or s[1] == 1) and (w == 1 or s[3] == c) and (h == 1 or s[2] == w * c)
        if nhwc and not nchw:
            return x.permute(0, 2, 3, 1), LAYOUTS["nhwc"]
    if x.dim() < 3 and not cut and x.dim() >= 1:
        elems = 1
        for n in x.shape[1:]:
            elems *= n
        try:
            return x.view(x.shape[0], 1, elems), LAYOUTS["nchw"]
        except RuntimeError:
            raise_invalid(f"the elements of each sample of x must be contiguous (shape "
                          f"{tuple(x.shape)}, strides {tuple(x.stride())} in elements)")
    return x, LAYOUTS["nchw"]


def _from_view(out: Tensor, x: Tensor, layout: int) -> Tensor:
    """An operator's output back in x's shape (x's memory format for NHWC)."""
    if layout == LAYOUTS["nhwc"]:
        return out.permute(0, 3, 1, 2)
    return out.view(x.shape) if out.dim() != x.dim() else out


def _refuse_inplace_grad(func: str, x: Tensor):
    if x.requires_grad and torch.is_grad_enabled():
        raise RuntimeError(f"{func}: inplace=True on a tensor that requires grad: "
                           + ("a leaf Variable that requires grad is being used in an in-place "
                              "operation." if x.is_leaf else
                              "its gradient would be wrong; mix out of place"))


@torch.compiler.disable
def _cut_config(func, mixup_alpha, cutmix_alpha, cutmix_minmax, prob, switch_prob, mode, pairing,
                correct_lam, fold):
    # The operators' config arguments, checked by the C library (a ctypes
    # call: runs eagerly inside torch.compile, as the draw does).
    cfg = cut_config(func, mixup_alpha, cutmix_alpha, cutmix_minmax, prob, switch_prob, mode,
                      pairing, correct_lam, fold)
    check_mix_config(func, cfg)
    config = [cfg.mixup_alpha, cfg.cutmix_alpha, cfg.cutmix_min, cfg.cutmix_max, cfg.prob,
              cfg.switch_prob]
    ints = (cfg.mode, cfg.pairing, bool(cfg.correct_lam), bool(cfg.fold))
    cut = cfg.cutmix_alpha > 0.0 or cfg.cutmix_min != 0.0 or cfg.cutmix_max != 0.0
    return config, ints, cut


def cutmix(x: Tensor, *, mixup_alpha: float = 0.0, cutmix_alpha: float = 1.0,
           cutmix_minmax=None, prob: float = 1.0, switch_prob: float = 0.5, mode: str = "elem",
           pairing: Optional[str] = None, correct_lam: bool = True, fold: bool = False,
           generator: Optional[_Generator] = None, inplace: bool = False):
    """``fastmix.cutmix`` for tensors: returns ``(x_mixed, lambdas, partners,
    boxes)``, with the arguments of ``fastmix.cutmix_sample``.  ``x`` is
    ``(batch, channels, height, width)`` (more dimensions before height
    count as channels) or ``(batch, height, width)``; a channels-last tensor
    is mixed in its own memory format (no copy).  Without CutMix, any shape
    with the batch first.  Differentiable w.r.t. x out of place (the
    gradient of a CutMix sample's pixel goes to the image it came from);
    ``inplace=True`` overwrites x and is refused when x requires grad.
    ``generator``: as for ``mixup`` (a ``fastmix.DeviceGenerator``: drawn by
    the operator, graph-safe)."""
    func = "fastmix.torch.cutmix"
    config, ints, cut = _cut_config(func, mixup_alpha, cutmix_alpha, cutmix_minmax, prob,
                                    switch_prob, mode, pairing, correct_lam, fold)
    return _cutmix(func, x, config, ints, cut, generator, inplace)


def _view_hw(func: str, xv: Tensor, layout: int):
    """The height and width fastmix.cutmix takes of the operators' view of x
    (as fastmix.cutmix takes them, from the shape alone)."""
    shape = tuple(xv.shape)
    if len(shape) == 3:
        return shape[1], shape[2]
    if layout == LAYOUTS["nchw"] and len(shape) >= 4:
        return shape[-2], shape[-1]
    if layout == LAYOUTS["nhwc"] and len(shape) == 4:
        return shape[1], shape[2]
    raise_invalid(f"{func}: x must have shape (batch, channels, height, width) or (batch, "
                  f"height, width), got {shape}")


def _cutmix(func: str, x: Tensor, config, ints, cut: bool, generator, inplace: bool):
    """ft.cutmix after its config is checked (_cut_config)."""
    if inplace:
        _refuse_inplace_grad(func, x)
    xv, layout = _images_view(x, cut)
    drawn = _seed_state(func, generator, x)
    if drawn is not None:  # drawn by the operator, where the work runs
        state, inc = drawn
        args = (config,) + ints + (layout, state, inc)
        if inplace:
            lam, par, boxes = torch.ops.fastmix.cutmix_device_seed_(xv, *args)
            return x, lam, par, boxes
        if _needs_grad(x):
            _check_float(func, x)
            h, w = _view_hw(func, xv, layout)
            lam, par, boxes = torch.ops.fastmix.cutmix_sample_device_seed(
                state, inc, xv.shape[0], h, w, config, *ints)
            out = torch.ops.fastmix.cutmix_apply(xv, lam, par, boxes, layout)
        else:
            out, lam, par, boxes = torch.ops.fastmix.cutmix_device_seed(xv, *args)
        return _from_view(out, x, layout), lam, par, boxes
    seed, offset = _draw(generator)
    args = (config,) + ints + (layout, seed, offset)
    if inplace:
        lam, par, boxes = torch.ops.fastmix.cutmix_(xv, *args)
        return x, lam, par, boxes
    out, lam, par, boxes = torch.ops.fastmix.cutmix(xv, *args)
    return _from_view(out, x, layout), lam, par, boxes


def cutmix_apply(x: Tensor, lambdas: Tensor, partners: Tensor, boxes: Tensor) -> Tensor:
    """``fastmix.cutmix_apply`` for tensors (a channels-last x in its own
    memory format), differentiable w.r.t. x: applies a draw of ``cutmix``
    to another tensor of the batch, e.g. a ``(batch, 1, height, width)``
    mask."""
    xv, layout = _images_view(x, True)
    return _from_view(torch.ops.fastmix.cutmix_apply(xv, lambdas, partners, boxes, layout), x,
                      layout)


_U8_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@torch.compiler.disable
def _u8_args(func: str, x: Tensor, mean, std, dtype, in_layout, out_layout, config=None):
    """The uint8 operators' arguments, checked before the draw: x (a 4-d
    uint8 tensor; with in_layout "nchw", a channels_last tensor is read as
    its NHWC view, without a copy), the layout codes, mean and std as lists
    of float32 values (checked by the C library, with the draw options of
    fastmix.cutmix_sample when `config` holds them: mixup_alpha, cutmix_alpha,
    cutmix_minmax, prob, switch_prob, mode, pairing, correct_lam, fold)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{func}: x must be a torch.Tensor, not {type(x).__name__}")
    if dtype not in _U8_DTYPES:
        raise_invalid(f"{func}: dtype must be torch.float32, torch.float16 or torch.bfloat16, "
                      f"got {dtype}")
    in_lay = layout_code(in_layout, func, "in_layout")
    out_lay = layout_code(out_layout, func, "out_layout")
    if in_lay == LAYOUTS["nchw"] and x.dim() == 4:
        _, c, h, w = x.shape
        st = x.stride()
        nchw = (w == 1 or st[3] == 1) and (h == 1 or st[2] == w) and (c == 1 or st[1] == h * w)
        nhwc = (c == 1 or st[1] == 1) and (w == 1 or st[3] == c) and (h == 1 or st[2] == w * c)
        if nhwc and not nchw:
            x, in_lay = x.permute(0, 2, 3, 1), LAYOUTS["nhwc"]
    xv = _dense_samples(x) if x.dim() == 4 else x
    dx, batch, c, h, w, stride = u8_images(func, xv, in_lay)
    m = norm_values(mean, c, func, "mean")
    s = norm_values(std, c, func, "std")
    code = _DTYPE_CODES[str(dtype).replace("torch.", "")]
    elems = c * h * w
    cfg = None if config is None else cut_config(func, *config)
    check_u8(func, cfg, in_lay, batch, c, h, w, stride, m, s, code, out_lay, elems)
    return xv, in_lay, out_lay, [float(v) for v in m], [float(v) for v in s]


def _u8_result(out: Tensor, out_layout: int) -> Tensor:
    """The (batch, channels, height, width) view of an output buffer: NHWC
    buffers as their permuted view, in torch.channels_last memory format."""
    return out.permute(0, 3, 1, 2) if out_layout == LAYOUTS["nhwc"] else out


def cutmix_u8(x: Tensor, mean, std, *, dtype: torch.dtype = torch.float32,
              in_layout: str = "nhwc", out_layout: str = "nchw", mixup_alpha: float = 0.0,
              cutmix_alpha: float = 1.0, cutmix_minmax=None, prob: float = 1.0,
              switch_prob: float = 0.5, mode: str = "elem", pairing: Optional[str] = None,
              correct_lam: bool = True, fold: bool = False,
              generator: Optional[_Generator] = None):
    """``fastmix.cutmix_u8`` for tensors: uint8 images in, mixed and
    normalized images of ``dtype`` out, in one pass.  Returns ``(x_mixed,
    lambdas, partners, boxes)``; ``MixedTarget(labels, lambdas, partners)``
    is the target of ``cross_entropy``.

    ``x``: uint8, ``(batch, height, width, channels)`` for ``in_layout="nhwc"``
    (decoded HWC images, stacked, as ``fastmix.loader.fast_collate_u8``
    gives them), ``(batch, channels, height, width)`` for "nchw" (a
    channels_last tensor is read as it is stored).  ``mean``, ``std``: host
    values in the 0-1 scale, one per channel (or one).  ``x_mixed`` is
    always ``(batch, channels, height, width)``: contiguous for
    ``out_layout="nchw"``, and for "nhwc" the permuted view of an NHWC
    buffer, i.e. a ``torch.channels_last`` tensor.  Not differentiable
    (uint8 in).  The draw options are ``fastmix.cutmix_sample``'s."""
    func = "fastmix.torch.cutmix_u8"
    config, ints, _ = _cut_config(func, mixup_alpha, cutmix_alpha, cutmix_minmax, prob,
                                  switch_prob, mode, pairing, correct_lam, fold)
    xv, in_lay, out_lay, m, s = _u8_args(func, x, mean, std, dtype, in_layout, out_layout,
                                         (mixup_alpha, cutmix_alpha, cutmix_minmax, prob,
                                          switch_prob, mode, pairing, correct_lam, fold))
    drawn = _seed_state(func, generator, x)
    if drawn is not None:  # drawn by the operator, where the work runs
        out, lam, par, boxes = torch.ops.fastmix.cutmix_u8_device_seed(
            xv, m, s, dtype, in_lay, out_lay, config, *ints, *drawn)
        return _u8_result(out, out_lay), lam, par, boxes
    seed, offset = _draw(generator)
    out, lam, par, boxes = torch.ops.fastmix.cutmix_u8(xv, m, s, dtype, in_lay, out_lay, config,
                                                       *ints, seed, offset)
    return _u8_result(out, out_lay), lam, par, boxes


def cutmix_apply_u8(x: Tensor, mean, std, lambdas: Tensor, partners: Tensor, boxes: Tensor, *,
                    dtype: torch.dtype = torch.float32, in_layout: str = "nhwc",
                    out_layout: str = "nchw") -> Tensor:
    """``fastmix.cutmix_apply_u8`` for tensors (the arguments and result of
    ``cutmix_u8``): applies a draw to uint8 images and normalizes.  With
    ``lambdas`` 1, ``partners`` ``arange(batch)`` and ``boxes`` 0 it only
    normalizes (each output the image's own, exactly)."""
    func = "fastmix.torch.cutmix_apply_u8"
    xv, in_lay, out_lay, m, s = _u8_args(func, x, mean, std, dtype, in_layout, out_layout)
    out = torch.ops.fastmix.cutmix_apply_u8(xv, m, s, lambdas, partners, boxes, dtype, in_lay,
                                            out_lay)
    return _u8_result(out, out_lay)


def soft_targets(labels: Tensor, num_classes: int, lambdas: Optional[Tensor] = None,
                 partners: Optional[Tensor] = None, *, label_smoothing: float = 0.0,
                 dtype: torch.dtype = torch.float32) -> Tensor:
    return torch.ops.fastmix.soft_targets(labels, int(num_classes), lambdas, partners,
                                          float(label_smoothing), dtype)


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
    if (weight is None and logits.dim() == 2 and isinstance(target, (MixedTarget, tuple, Tensor))
            and not _labels_of(target)[0].is_floating_point()):
        labels, lambdas, partners = _labels_of(target)
        red = reduction_code(reduction, "fastmix.torch.cross_entropy")
        need_grad = bool(torch.is_grad_enabled() and logits.requires_grad)
        loss, _ = torch.ops.fastmix.cross_entropy(logits, labels, lambdas, partners, red,
                                                  float(label_smoothing), int(ignore_index),
                                                  need_grad)
        return loss
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


# ------------------------------------------------------------------ modules ---

def _cached_config(module, options):
    """_cut_config of a module's CutMix options, kept on the module while
    they stay the same: computed when the module is built, so that its
    forward (under torch.compile: a comparison of constants) does not call
    the C library's check again, and traces without a graph break."""
    cache = module._cut_cache
    if cache is None or cache[0] != options:
        cache = (options, _cut_config("fastmix.torch.cutmix", *options))
        module._cut_cache = cache
    return cache[1]


def _check_labels_per_sample(func: str, x: Tensor, y: Tensor) -> None:
    """The modules' labels: one entry (a label or a row of targets) per sample of x."""
    if x.dim() < 1 or y.dim() < 1 or y.shape[0] != x.shape[0]:
        raise_invalid(f"{func}: labels must have one entry per sample: x has shape "
                      f"{tuple(x.shape)}, labels {tuple(y.shape)}")


class MixUp(torch.nn.Module):
    """Mixes a batch: ``x_mixed, target = mixup(x, y)``.

    Each sample i gets ``lambdas[i] ~ Beta(alpha, alpha)`` (folded to
    ``max(l, 1 - l)`` when ``fold``) and a partner ``partners[i]`` (``pairing``:
    "permutation", "cycle", "flip" or "roll"); ``x_mixed[i] = lambdas[i] * x[i] +
    (1 - lambdas[i]) * x[partners[i]]``; ``target`` is a ``MixedTarget(y,
    lambdas, partners)`` for ``fastmix.torch.cross_entropy``.  Each call takes
    one (seed, offset) draw from ``generator`` (fastmix's default one when
    None; a ``fastmix.DeviceGenerator`` draws on the device, graph-safe).
    In eval mode the batch passes unchanged (lambdas 1).  ``inplace=True``
    mixes x in place (no autograd through x then).

    CutMix and timm's options: ``cutmix_alpha > 0`` (Beta(cutmix_alpha,
    cutmix_alpha)) or ``cutmix_minmax=(min, max)`` add CutMix, chosen per
    sample with probability ``switch_prob`` when ``alpha > 0`` too (``alpha=0``:
    CutMix only); ``prob`` is the probability that a sample is mixed at all;
    ``mode`` "elem", "pair" (needs ``pairing="flip"``) or "batch" says who
    shares a draw; ``correct_lam`` makes a CutMix lambda the share of the
    sample's own pixels; ``fold`` folds both Beta draws.  Then x must be
    ``(batch, channels, height, width)`` (channels-last works in place) or
    ``(batch, height, width)``, and the draw is ``fastmix.torch.cutmix``'s.
    The defaults (no CutMix, ``prob=1``, ``mode="elem"``) are plain mixup,
    ``fastmix.torch.mixup``.  The target is a ``MixedTarget`` either way: a
    CutMix sample is ``lambdas[i]`` of its own label.
    """

    def __init__(self, alpha: float = 0.4, fold: bool = True, pairing: str = "permutation",
                 generator: Optional[_Generator] = None, inplace: bool = False,
                 cutmix_alpha: float = 0.0, switch_prob: float = 0.5, cutmix_minmax=None,
                 prob: float = 1.0, mode: str = "elem", correct_lam: bool = True):
        super().__init__()
        func = "fastmix.torch.MixUp"
        self.alpha = alpha_value(alpha, func)
        self.fold, self.pairing = bool(fold), pairing
        self.generator, self.inplace = generator, inplace
        self.cutmix_alpha, self.switch_prob, self.cutmix_minmax = cutmix_alpha, switch_prob, \
            cutmix_minmax
        self.prob, self.mode, self.correct_lam = prob, mode, bool(correct_lam)
        cfg = cut_config(func, self.alpha, cutmix_alpha, cutmix_minmax, prob, switch_prob, mode,
                          pairing, correct_lam, fold)
        # Plain mixup (today's fused fastmix_mixup) unless an option needs the CutMix draw.
        self._plain = (cfg.cutmix_alpha == 0.0 and cutmix_minmax is None and cfg.prob == 1.0
                       and mode_code(mode, func) == 0)
        if self._plain:
            check_sampler(func, self.alpha, int(self.fold), pairing_code(pairing, func), 0)
        else:
            check_mix_config(func, cfg)
        self._cut_cache = None
        if not self._plain:
            _cached_config(self, self._cut_options())

    def _cut_options(self):
        return (self.alpha, self.cutmix_alpha, self.cutmix_minmax, self.prob, self.switch_prob,
                self.mode, self.pairing, self.correct_lam, self.fold)

    def forward(self, x: Tensor, y: Tensor):
        _check_labels_per_sample("fastmix.torch.MixUp", x, y)
        if not self.training:
            b = x.shape[0]
            return x, MixedTarget(y, torch.ones(b, device=x.device),
                                  torch.arange(b, device=x.device))
        if self._plain:
            xm, lam, par = mixup(x, self.alpha, fold=self.fold, pairing=self.pairing,
                                 generator=self.generator, inplace=self.inplace)
        else:
            config, ints, cut = _cached_config(self, self._cut_options())
            xm, lam, par, _ = _cutmix("fastmix.torch.cutmix", x, config, ints, cut,
                                      self.generator, self.inplace)
        return xm, MixedTarget(y, lam, par)

    def extra_repr(self):
        r = f"alpha={self.alpha}, fold={self.fold}, pairing={self.pairing!r}"
        if not self._plain:
            r += (f", cutmix_alpha={self.cutmix_alpha}, cutmix_minmax={self.cutmix_minmax}, "
                  f"switch_prob={self.switch_prob}, prob={self.prob}, mode={self.mode!r}, "
                  f"correct_lam={self.correct_lam}")
        return r


class CutMix(torch.nn.Module):
    """``torchvision.transforms.v2.CutMix`` on fastmix's fused kernel:
    ``x_mixed, target = CutMix(alpha=1.0)(x, y)``.

    torchvision's semantics: one lambda ~ Beta(alpha, alpha) and one box for
    the whole batch, sample i takes the box from sample ``i - 1`` (``roll``:
    ``partners[i] = (i - 1) mod batch``), and the lambda is corrected to the
    share of the sample's own pixels, ``1 - box area / (height * width)``.
    The box is timm's ``rand_bbox`` (torchvision rounds the half side
    ``int(0.5 * sqrt(1 - lam) * W)`` instead of ``int(W * sqrt(1 - lam)) // 2``,
    which can differ by one pixel).  Mixed out of place (torchvision clones),
    or in place with ``inplace=True``; like torchvision's transform it mixes
    in eval mode too.

    ``x``: ``(batch, channels, height, width)`` (a channels-last tensor stays
    channels-last; more dimensions before height, e.g. a video's frames,
    share the box) or ``(batch, height, width)``.  ``y``: int labels
    ``(batch,)``, or one-hot/soft targets ``(batch, classes)`` (a float
    tensor).  The target is, for int labels, a ``MixedTarget(y, lambdas,
    partners)`` for ``fastmix.torch.cross_entropy`` when ``num_classes`` is
    None and torchvision's dense ``(batch, num_classes)`` float32 targets
    ``lam * onehot(y) + (1 - lam) * onehot(y).roll(1, 0)`` when it is given;
    for float targets, those targets mixed the same way.  The last call's
    boxes are in ``self.boxes``.
    """

    def __init__(self, alpha: float = 1.0, num_classes: Optional[int] = None, *,
                 generator: Optional[_Generator] = None, inplace: bool = False):
        super().__init__()
        func = "fastmix.torch.CutMix"
        self.alpha = alpha_value(alpha, func)
        if num_classes is not None:
            num_classes = int(num_classes)
            if num_classes < 1:
                raise_invalid(f"{func}: num_classes must be None or >= 1, got {num_classes}")
        self.num_classes, self.generator, self.inplace = num_classes, generator, inplace
        check_mix_config(func, cut_config(func, 0.0, self.alpha, None, 1.0, 0.5, "batch", "roll",
                                           True, False))
        self._cut_cache = None
        _cached_config(self, self._cut_options())
        self.boxes = None

    def _cut_options(self):
        return (0.0, self.alpha, None, 1.0, 0.5, "batch", "roll", True, False)

    def forward(self, x: Tensor, y: Tensor):
        func = "fastmix.torch.CutMix"
        _check_labels_per_sample(func, x, y)
        soft = y.is_floating_point()
        if soft and y.dim() != 2:
            raise_invalid(f"{func}: float targets must have shape (batch, classes), got "
                          f"{tuple(y.shape)}")
        if not soft and y.dim() != 1:
            raise_invalid(f"{func}: int labels must have shape (batch,), got {tuple(y.shape)}")
        config, ints, cut = _cached_config(self, self._cut_options())
        xm, lam, par, self.boxes = _cutmix("fastmix.torch.cutmix", x, config, ints, cut,
                                           self.generator, self.inplace)
        if soft:
            lam = lam.to(y.device, y.dtype).view(-1, 1)
            return xm, lam * y + (1 - lam) * y[par.to(y.device)]
        if self.num_classes is None:
            return xm, MixedTarget(y, lam, par)
        return xm, soft_targets(y, self.num_classes, lam.to(y.device), par.to(y.device))

    def extra_repr(self):
        return f"alpha={self.alpha}, num_classes={self.num_classes}"


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


class MixUpU8(torch.nn.Module):
    """Normalize and mix uint8 images in one pass, the input stage of a
    training step: ``x, target = MixUpU8(mean, std)(images_u8, labels)``.

    ``images_u8``: uint8 ``(batch, height, width, channels)`` (``in_layout=
    "nhwc"``, the default: decoded HWC images, stacked) or ``(batch, channels,
    height, width)`` (``in_layout="nchw"``; a channels_last tensor is read as
    it is stored).  ``x``: ``(batch, channels, height, width)`` of ``dtype``
    (float32, float16, bfloat16), ``(v / 255 - mean) / std`` of the mixed
    pixel v, contiguous, or ``torch.channels_last`` with
    ``channels_last=True``.  ``target``: a ``MixedTarget(labels, lambdas,
    partners)`` for ``cross_entropy``.  ``mean``, ``std``: host values in
    the 0-1 scale, one per channel, or one for all.

    The draw options and their defaults are ``fastmix.torch.cutmix_u8``'s
    (``fastmix.cutmix_sample``'s: CutMix with ``cutmix_alpha=1.0``, mixup
    with ``mixup_alpha > 0``, ``prob``, ``switch_prob``, ``mode``,
    ``pairing``, ``correct_lam``, ``fold``); each call takes one (seed,
    offset) draw from ``generator`` (a ``fastmix.DeviceGenerator``: on the
    device, graph-safe).  ``mixup_alpha=0``, ``cutmix_alpha=0``
    and no ``cutmix_minmax``: normalization only.  In eval mode, or with
    ``mixup_enabled = False``, the batch is only normalized (lambdas 1,
    each sample its own partner, no draw taken).  The last draw's boxes are
    in ``self.boxes``.  Not differentiable (uint8 in).
    """

    def __init__(self, mean, std, dtype: torch.dtype = torch.float32, *, in_layout: str = "nhwc",
                 channels_last: bool = False, mixup_alpha: float = 0.0,
                 cutmix_alpha: float = 1.0, cutmix_minmax=None, prob: float = 1.0,
                 switch_prob: float = 0.5, mode: str = "elem", pairing: Optional[str] = None,
                 correct_lam: bool = True, fold: bool = False,
                 generator: Optional[_Generator] = None):
        super().__init__()
        func = "fastmix.torch.MixUpU8"
        if dtype not in _U8_DTYPES:
            raise_invalid(f"{func}: dtype must be torch.float32, torch.float16 or torch.bfloat16, "
                          f"got {dtype}")
        self.dtype, self.channels_last = dtype, bool(channels_last)
        self.in_layout = list(LAYOUTS)[layout_code(in_layout, func, "in_layout")]
        # mean and std as float32 values; their count is checked against x's
        # channels at each call, their values by the C library here.
        m = norm_values(mean, _count(mean), func, "mean")
        sd = norm_values(std, _count(std), func, "std")
        if len(m) != len(sd) and min(len(m), len(sd)) != 1:
            raise_invalid(f"{func}: mean and std must have as many values (one per channel), got "
                          f"{len(m)} and {len(sd)}")
        n = max(len(m), len(sd))
        if n > MAX_NORM_CHANNELS:
            raise_invalid(f"{func}: mean and std have {n} values; the uint8 input path takes 1 to "
                          f"{MAX_NORM_CHANNELS} channels (FASTMIX_MAX_NORM_CHANNELS)")
        self.mean = tuple(float(v) for v in norm_values(m, n, func, "mean"))
        self.std = tuple(float(v) for v in norm_values(sd, n, func, "std"))
        self._options = (mixup_alpha, cutmix_alpha, cutmix_minmax, prob, switch_prob, mode,
                         pairing, correct_lam, fold)
        self.mixing = not (real_value(mixup_alpha, func, "mixup_alpha") == 0.0
                           and real_value(cutmix_alpha, func, "cutmix_alpha") == 0.0
                           and cutmix_minmax is None)
        cfg = cut_config(func, *self._options) if self.mixing else None
        check_u8(func, cfg, 0, 0, n, 1, 1, n, _np.asarray(self.mean, _np.float32),
                 _np.asarray(self.std, _np.float32),
                 _DTYPE_CODES[str(dtype).replace("torch.", "")], 0, n)
        self.generator = generator
        self.mixup_enabled = True
        self.boxes = None

    def forward(self, x: Tensor, y: Tensor):
        func = "fastmix.torch.MixUpU8"
        _check_labels_per_sample(func, x, y)
        out_layout = "nhwc" if self.channels_last else "nchw"
        if self.mixing and self.mixup_enabled and self.training:
            ma, ca, mm, prob, sp, mode, pairing, cl, fold = self._options
            xm, lam, par, self.boxes = cutmix_u8(
                x, self.mean, self.std, dtype=self.dtype, in_layout=self.in_layout,
                out_layout=out_layout, mixup_alpha=ma, cutmix_alpha=ca, cutmix_minmax=mm,
                prob=prob, switch_prob=sp, mode=mode, pairing=pairing, correct_lam=cl, fold=fold,
                generator=self.generator)
            return xm, MixedTarget(y, lam, par)
        b = x.shape[0]
        lam = torch.ones(b, device=x.device)
        par = torch.arange(b, device=x.device)
        self.boxes = torch.zeros((b, 4), dtype=torch.int32, device=x.device)
        xm = cutmix_apply_u8(x, self.mean, self.std, lam, par, self.boxes, dtype=self.dtype,
                             in_layout=self.in_layout, out_layout=out_layout)
        return xm, MixedTarget(y, lam, par)

    def extra_repr(self):
        def short(values):  # the float32 values, as their shortest decimals
            return "(" + ", ".join(f"{v:.7g}" for v in values) + ")"
        r = (f"mean={short(self.mean)}, std={short(self.std)}, dtype={self.dtype}, "
             f"in_layout={self.in_layout!r}, channels_last={self.channels_last}")
        if self.mixing:
            ma, ca, mm, prob, sp, mode, pairing, cl, fold = self._options
            r += (f", mixup_alpha={ma}, cutmix_alpha={ca}, cutmix_minmax={mm}, prob={prob}, "
                  f"switch_prob={sp}, mode={mode!r}, pairing={pairing!r}, correct_lam={cl}, "
                  f"fold={fold}")
        return r


def _count(values) -> int:
    """How many values a mean or std holds (1 for a number)."""
    try:
        return len(values)
    except TypeError:
        return 1
