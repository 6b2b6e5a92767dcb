"""How fastmix.torch's calls draw: the device-seed operators (the draws of
a fastmix.DeviceGenerator, with no host work), the operator
fastmix::host_draw (a host Generator's draw inside torch.compile), and the
choice between them and an eager host draw."""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import Tensor

import fastmix as _fm
from ._args import LAYOUTS, PAIRINGS
from ._generators import DeviceGenerator, generator_by_key, generator_key, resolve, wrap_state
from ._lib import raise_invalid
from ._torch_ops import cut_kwargs, dense_samples, fake_draw, fake_images, to_i64, to_u64, u8_shape


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
    return wrap_state(seed_offset, to_u64(offset_increment))


@torch.library.custom_op("fastmix::sample_device_seed", mutates_args=("seed_offset",))
def _sample_ds_op(seed_offset: Tensor, offset_increment: int, batch: int, alpha: float,
                  fold: bool, pairing: int) -> Tuple[Tensor, Tensor]:
    return _fm.sample(batch, alpha, fold=fold, pairing=list(PAIRINGS)[pairing],
                      generator=_dg(seed_offset, offset_increment))


@_sample_ds_op.register_fake
def _(seed_offset, offset_increment, batch, alpha, fold, pairing):
    return fake_draw(seed_offset, batch, boxes=False)


@torch.library.custom_op("fastmix::mixup_device_seed", mutates_args=("seed_offset",))
def _mixup_ds_op(x: Tensor, alpha: float, fold: bool, pairing: int, seed_offset: Tensor,
                 offset_increment: int) -> Tuple[Tensor, Tensor, Tensor]:
    x = x.contiguous()
    return _fm.mixup(x, alpha, fold=fold, pairing=list(PAIRINGS)[pairing],
                     generator=_dg(seed_offset, offset_increment))


@_mixup_ds_op.register_fake
def _(x, alpha, fold, pairing, seed_offset, offset_increment):
    return (fake_images(x),) + fake_draw(x, x.shape[0], boxes=False)


@torch.library.custom_op("fastmix::mixup_device_seed_", mutates_args=("x", "seed_offset"))
def _mixup_ds_inplace_op(x: Tensor, alpha: float, fold: bool, pairing: int, seed_offset: Tensor,
                         offset_increment: int) -> Tuple[Tensor, Tensor]:
    _, lam, par = _fm.mixup(x, alpha, fold=fold, pairing=list(PAIRINGS)[pairing],
                            generator=_dg(seed_offset, offset_increment), out=x)
    return lam, par


@_mixup_ds_inplace_op.register_fake
def _(x, alpha, fold, pairing, seed_offset, offset_increment):
    return fake_draw(x, x.shape[0], boxes=False)


@torch.library.custom_op("fastmix::cutmix_sample_device_seed", mutates_args=("seed_offset",))
def _cutmix_sample_ds_op(seed_offset: Tensor, offset_increment: int, batch: int, height: int,
                         width: int, config: List[float], mix_mode: int, pairing: int,
                         correct_lam: bool, fold: bool) -> Tuple[Tensor, Tensor, Tensor]:
    return _fm.cutmix_sample(batch, height, width,
                             **cut_kwargs(config, mix_mode, pairing, correct_lam, fold),
                             generator=_dg(seed_offset, offset_increment))


@_cutmix_sample_ds_op.register_fake
def _(seed_offset, offset_increment, batch, height, width, config, mix_mode, pairing,
      correct_lam, fold):
    return fake_draw(seed_offset, batch)


@torch.library.custom_op("fastmix::cutmix_device_seed", mutates_args=("seed_offset",))
def _cutmix_ds_op(x: Tensor, config: List[float], mix_mode: int, pairing: int, correct_lam: bool,
                  fold: bool, image_layout: int, seed_offset: Tensor,
                  offset_increment: int) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    x = x.contiguous()
    return _fm.cutmix(x, **cut_kwargs(config, mix_mode, pairing, correct_lam, fold),
                      layout=list(LAYOUTS)[image_layout],
                      generator=_dg(seed_offset, offset_increment))


@_cutmix_ds_op.register_fake
def _(x, config, mix_mode, pairing, correct_lam, fold, image_layout, seed_offset,
      offset_increment):
    return (fake_images(x),) + fake_draw(x, x.shape[0])


@torch.library.custom_op("fastmix::cutmix_device_seed_", mutates_args=("x", "seed_offset"))
def _cutmix_ds_inplace_op(x: Tensor, config: List[float], mix_mode: int, pairing: int,
                          correct_lam: bool, fold: bool, image_layout: int, seed_offset: Tensor,
                          offset_increment: int) -> Tuple[Tensor, Tensor, Tensor]:
    _, lam, par, boxes = _fm.cutmix(x, **cut_kwargs(config, mix_mode, pairing, correct_lam, fold),
                                    layout=list(LAYOUTS)[image_layout],
                                    generator=_dg(seed_offset, offset_increment), out=x)
    return lam, par, boxes


@_cutmix_ds_inplace_op.register_fake
def _(x, config, mix_mode, pairing, correct_lam, fold, image_layout, seed_offset,
      offset_increment):
    return fake_draw(x, x.shape[0])


# Not differentiable (uint8 images in), like fastmix::cutmix_u8.
@torch.library.custom_op("fastmix::cutmix_u8_device_seed", mutates_args=("seed_offset",))
def _cutmix_u8_ds_op(x: Tensor, mean: List[float], std: List[float], dtype: torch.dtype,
                     in_layout: int, out_layout: int, config: List[float], mix_mode: int,
                     pairing: int, correct_lam: bool, fold: bool, seed_offset: Tensor,
                     offset_increment: int) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    return _fm.cutmix_u8(dense_samples(x), mean, std, dtype=dtype,
                         in_layout=list(LAYOUTS)[in_layout], out_layout=list(LAYOUTS)[out_layout],
                         generator=_dg(seed_offset, offset_increment),
                         **cut_kwargs(config, mix_mode, pairing, correct_lam, fold))


@_cutmix_u8_ds_op.register_fake
def _(x, mean, std, dtype, in_layout, out_layout, config, mix_mode, pairing, correct_lam, fold,
      seed_offset, offset_increment):
    return (x.new_empty(u8_shape(x, in_layout, out_layout), dtype=dtype),) + fake_draw(
        x, x.shape[0])


# -------------------------------------------- host draws inside torch.compile ---
# A host fastmix.Generator is Python state.  Eagerly, a call takes its
# (seed, offset) before the operator (eager_draw); inside torch.compile that
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
    return torch.tensor([to_i64(seed), to_i64(offset)], dtype=torch.int64)


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


@torch.compiler.disable
def eager_draw(generator) -> Tuple[int, int]:
    # Eagerly only: seed_state gives the draw inside torch.compile.
    seed, offset = _fm.next_draw(generator)
    return to_i64(seed), to_i64(offset)


def seed_state(func: str, generator, x: Tensor) -> Optional[Tuple[Tensor, int]]:
    """What the device-seed operators draw with, ``(state, increment)``: a
    fastmix.DeviceGenerator's state tensor (which must be on x's device) and
    increment; inside torch.compile, a host Generator's next draw taken by
    fastmix::host_draw when the compiled code runs (on x's device), with
    increment 0.  None for a host Generator eagerly: drawn on the host by
    eager_draw, for the operators that take (seed, offset) as numbers.
    Traceable: no host synchronization, no Python state changed."""
    if isinstance(generator, DeviceGenerator):
        return _device_state(func, generator, x), to_i64(generator.increment)
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
