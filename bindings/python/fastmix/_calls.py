"""Calling the C library on an array's device: the device code, the stream
(the current one of the array's library, with the array's device current),
and the draw of the sampling entry points, whose (seed, offset) comes either
as two numbers from a ``Generator`` or, for their ``*_device_seed`` twins,
as the address of a ``DeviceGenerator``'s state."""
from __future__ import annotations

from . import _arrays as _a
from ._generators import DeviceGenerator, seed_offset_ptr
from ._lib import check, lib


def run(entry: str, ref: "_a.Desc", *args) -> None:
    """Calls the C function `entry` as ``entry(device, *args, stream)`` on
    ref's device and checks its status."""
    with _a.on_device(ref) as stream:
        check(getattr(lib, entry)(ref.device_code, *args, stream))


def run_drawing(entry: str, g, ref: "_a.Desc", func: str, ref_name: str, before: tuple,
                after: tuple) -> None:
    """Calls a sampling entry point with one draw of g (a Generator or a
    DeviceGenerator, whose state must be on ref's device, named ref_name in
    the message): ``entry(device, *before, seed, offset, *after, stream)``
    for a Generator, which takes its draw here, and
    ``entry_device_seed(device, *before, seed_offset, increment, *after,
    stream)`` for a DeviceGenerator, which the call itself advances."""
    if isinstance(g, DeviceGenerator):
        entry += "_device_seed"
        draw = (seed_offset_ptr(g, ref, func, ref_name), g.increment)
    else:
        draw = g.next_draw()
    run(entry, ref, *before, *draw, *after)


def draw_outputs(ref: "_a.Desc", batch: int, func: str, boxes: bool):
    """The arrays a draw writes, in ref's library on ref's device: lambdas
    float32 (batch,), partners int64 (batch,) and, with `boxes`, boxes int32
    (batch, 4); returned as (arrays, their Descs)."""
    arrays = [_a.empty(ref, (batch,), "float32"), _a.empty(ref, (batch,), "int64")]
    if boxes:
        arrays.append(_a.empty(ref, (batch, 4), "int32"))
    names = ("lambdas", "partners", "boxes")
    return tuple(arrays), tuple(_a.describe(a, func, n) for a, n in zip(arrays, names))
