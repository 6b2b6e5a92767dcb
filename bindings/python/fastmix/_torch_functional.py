"""fastmix.torch's functional API for tensors: ``mixup``, ``blend``,
``cutmix``, ``cutmix_apply``, ``cutmix_u8``, ``cutmix_apply_u8`` and
``soft_targets``, each on the custom operators, drawing from a host
Generator or a DeviceGenerator."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ._args import LAYOUTS, alpha_value, check_mix_config, cut_config, layout_code, pairing_code
from ._arrays import FLOAT_DTYPES as _DTYPE_CODES
from ._generators import AnyGenerator as _Generator
from ._lib import raise_invalid
from ._torch_draws import eager_draw, seed_state
from ._torch_ops import dense_samples
from ._u8 import check_u8, norm_values, u8_images

# The float dtypes of fastmix's images.
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _needs_grad(x: Tensor) -> bool:
    return torch.is_grad_enabled() and x.requires_grad


def _check_float(func: str, x: Tensor):
    """The dtype check of the differentiable device-seed path, made before
    its draw (the fused operators make it in the C call's arguments)."""
    if x.dtype not in FLOAT_DTYPES:
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
    drawn = seed_state(func, generator, x)
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
    seed, offset = eager_draw(generator)
    if inplace:
        lam, par = torch.ops.fastmix.mixup_(x, a, bool(fold), code, seed, offset)
        return x, lam, par
    return torch.ops.fastmix.mixup(x, a, bool(fold), code, seed, offset)


def blend(x: Tensor, lambdas: Tensor, partners: Tensor) -> Tensor:
    """``fastmix.blend`` for tensors, differentiable w.r.t. x."""
    return torch.ops.fastmix.blend(x, lambdas, partners)


def _channels_last(x: Tensor) -> bool:
    """Whether x is 4-d with samples dense channels-last (torch.channels_last)
    and not dense (batch, channels, height, width)."""
    if x.dim() != 4:
        return False
    _, c, h, w = x.shape
    s = x.stride()
    nchw = (w == 1 or s[3] == 1) and (h == 1 or s[2] == w) and (c == 1 or s[1] == h * w)
    nhwc = (c == 1 or s[1] == 1) and (w == 1 or s[3] == c) and (h == 1 or s[2] == w * c)
    return nhwc and not nchw


def images_view(x: Tensor, cut: bool):
    """x as the operators see it, and the layout code: a 4-d tensor whose
    samples are dense channels-last (torch.channels_last) as its (batch,
    height, width, channels) view, NHWC; (batch, channels, height, width),
    (batch, height, width) or more dimensions as they are, NCHW; without
    CutMix, a tensor of fewer than 3 dimensions as (batch, 1, elems)."""
    if _channels_last(x):
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
def op_config(func, mixup_alpha, cutmix_alpha, cutmix_minmax, prob, switch_prob, mode, pairing,
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
    config, ints, cut = op_config(func, mixup_alpha, cutmix_alpha, cutmix_minmax, prob,
                                    switch_prob, mode, pairing, correct_lam, fold)
    return cutmix_with_config(func, x, config, ints, cut, generator, inplace)


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


def cutmix_with_config(func: str, x: Tensor, config, ints, cut: bool, generator, inplace: bool):
    """cutmix after its config is checked (op_config)."""
    if inplace:
        _refuse_inplace_grad(func, x)
    xv, layout = images_view(x, cut)
    drawn = seed_state(func, generator, x)
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
    seed, offset = eager_draw(generator)
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
    xv, layout = images_view(x, True)
    return _from_view(torch.ops.fastmix.cutmix_apply(xv, lambdas, partners, boxes, layout), x,
                      layout)


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
    if dtype not in FLOAT_DTYPES:
        raise_invalid(f"{func}: dtype must be torch.float32, torch.float16 or torch.bfloat16, "
                      f"got {dtype}")
    in_lay = layout_code(in_layout, func, "in_layout")
    out_lay = layout_code(out_layout, func, "out_layout")
    if in_lay == LAYOUTS["nchw"] and _channels_last(x):
        x, in_lay = x.permute(0, 2, 3, 1), LAYOUTS["nhwc"]
    xv = dense_samples(x) if x.dim() == 4 else x
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
    config, ints, _ = op_config(func, mixup_alpha, cutmix_alpha, cutmix_minmax, prob,
                                  switch_prob, mode, pairing, correct_lam, fold)
    xv, in_lay, out_lay, m, s = _u8_args(func, x, mean, std, dtype, in_layout, out_layout,
                                         (mixup_alpha, cutmix_alpha, cutmix_minmax, prob,
                                          switch_prob, mode, pairing, correct_lam, fold))
    drawn = seed_state(func, generator, x)
    if drawn is not None:  # drawn by the operator, where the work runs
        out, lam, par, boxes = torch.ops.fastmix.cutmix_u8_device_seed(
            xv, m, s, dtype, in_lay, out_lay, config, *ints, *drawn)
        return _u8_result(out, out_lay), lam, par, boxes
    seed, offset = eager_draw(generator)
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
