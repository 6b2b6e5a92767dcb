"""Where draws come from: ``Generator`` (seed and offset on the host),
``DeviceGenerator`` (seed and offset in device memory, advanced by the
*_device_seed entry points), the default generator, and the choice between
them that every sampling call makes."""
from __future__ import annotations

import itertools
import operator
import os
import threading
import weakref
from typing import Union

import numpy as _np

from . import _arrays as _a
from ._lib import NoDeviceError, Status, raise_invalid

_U64 = 1 << 64


def _u64(value, func: str, name: str) -> int:
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{func}: {name} must be an integer, not {type(value).__name__}") from None
    if not 0 <= v < _U64:
        raise_invalid(f"{func}: {name} must be in [0, 2^64), got {v}")
    return v


class _RankedDraws:
    """What Generator and DeviceGenerator share: a rank's place in the offset
    sequence of a distributed job (draw k uses offset ``start + k *
    world_size``)."""

    _rank: int
    _world: int

    def _set_rank(self, func: str, rank, world_size) -> None:
        rank, world_size = operator.index(rank), operator.index(world_size)
        if not (world_size >= 1 and 0 <= rank < world_size):
            raise_invalid(f"{func}: rank must be in [0, world_size), got rank {rank}, "
                          f"world_size {world_size}")
        if world_size >= _U64:
            raise_invalid(f"{func}: world_size must be below 2^64, got {world_size}")
        self._rank, self._world = rank, world_size

    @property
    def rank(self) -> int:
        return self._rank

    @property
    def world_size(self) -> int:
        return self._world

    def _dist_repr(self) -> str:
        return f", rank={self._rank}, world_size={self._world}" if self._world > 1 else ""


# Every Generator has a number, `_key`, by which fastmix.torch's draw
# operator finds it inside a compiled graph (an operator's arguments cannot
# be Python objects); the registry holds no reference of its own.
_generators: "weakref.WeakValueDictionary[int, Generator]" = weakref.WeakValueDictionary()
_generator_keys = itertools.count()


class Generator(_RankedDraws):
    """A seed and an offset that advances by one per draw, or, for one rank
    of a distributed job, by ``world_size``.

    ``Generator(seed)`` makes its first draw with offset 0, the next with
    offset 1, and so on; draw k is ``fastmix_sample(..., seed, k, ...)`` (or
    ``fastmix_mixup``) in C, bit for bit.  ``Generator(seed, rank=r,
    world_size=w)`` makes draw k with offset ``k * w + r``: the ranks of a job
    share the seed and never share a (seed, offset), so their draws are
    independent, and a run with the same seed repeats bit for bit.
    ``Generator()`` takes a random seed from the operating system (give every
    rank the same one).  Thread-safe.
    """

    def __init__(self, seed: int | None = None, *, rank: int = 0, world_size: int = 1):
        self._set_rank("fastmix.Generator", rank, world_size)
        self._lock = threading.Lock()
        self.manual_seed(seed)
        self._key = next(_generator_keys)
        _generators[self._key] = self

    def manual_seed(self, seed: int | None = None) -> "Generator":
        """Sets the seed (a random one when None) and rewinds to the first draw."""
        if seed is None:
            seed = int.from_bytes(os.urandom(8), "little")
        seed = _u64(seed, "fastmix.Generator", "seed")
        with self._lock:
            self._seed, self._offset = seed, self._rank
        return self

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def offset(self) -> int:
        """The offset the next draw will use; assignable (e.g. to resume a run:
        ``step * world_size + rank`` before draw ``step``)."""
        return self._offset

    @offset.setter
    def offset(self, value: int):
        value = _u64(value, "fastmix.Generator", "offset")
        with self._lock:
            self._offset = value

    def get_state(self) -> tuple:
        return (self._seed, self._offset)

    def set_state(self, state) -> None:
        seed, offset = state
        seed = _u64(seed, "fastmix.Generator", "seed")
        offset = _u64(offset, "fastmix.Generator", "offset")
        with self._lock:
            self._seed, self._offset = seed, offset

    def next_draw(self) -> tuple:
        """(seed, offset) for one draw, advancing the offset by world_size."""
        with self._lock:
            seed, offset = self._seed, self._offset
            self._offset = (offset + self._world) % _U64
        return seed, offset

    def device_generator(self, device=None) -> "DeviceGenerator":
        """A ``DeviceGenerator`` on ``device`` that continues this generator's
        sequence of draws: its first draw is ``(seed, self.offset)``, the next
        ``(seed, self.offset + world_size)``, and so on (the same rank and
        world size).  This generator is not advanced: while the device
        generator draws, draw from one of them only (the other would repeat
        the same offsets); ``DeviceGenerator.sync()`` then sets this
        generator's state to the device's, and host draws continue after the
        device ones."""
        seed, offset = self.get_state()
        dg = DeviceGenerator(seed, rank=self._rank, world_size=self._world, offset=offset,
                             device=device)
        dg._generator = self
        return dg

    def __repr__(self):
        return f"fastmix.Generator(seed={self._seed}, offset={self._offset}{self._dist_repr()})"


def _to_i64(v: int) -> int:  # uint64 -> the int64 with the same bits
    return v - _U64 if v >= (1 << 63) else v


class DeviceGenerator(_RankedDraws):
    """A seed and an offset kept in memory on a device, for draws that need
    no host work: CUDA graphs and ``torch.compile(mode="reduce-overhead")``.

    ``state`` is a 2-element int64 array (the two uint64 ``seed_offset`` of
    the C API, bit for bit: ``state[0]`` the seed, ``state[1]`` the offset)
    on ``device``.  A call given ``generator=`` a DeviceGenerator calls the
    ``*_device_seed`` entry point, which reads (seed, offset) from ``state``
    when the work runs and then adds ``world_size`` to the offset, in stream
    order (on CUDA a one-thread kernel queued after the draw; on the CPU
    before the call returns).  So draw k is ``(seed, offset0 + k *
    world_size)``, bitwise the plain call with that seed and offset, exactly
    as for ``Generator``; a failed call changes nothing.  Nothing is read
    back to the host: a captured CUDA graph draws afresh at every replay.

    ``DeviceGenerator(seed, rank=r, world_size=w, device=d)`` starts at
    offset ``r`` (``offset=`` another start), as ``Generator(seed, rank=r,
    world_size=w)`` does; ``generator.device_generator(d)`` continues a host
    ``Generator`` (and ``sync()`` hands the sequence back to it).
    ``device``: None (a NumPy array), a ``torch.device`` or a device string
    such as ``"cuda"`` or ``"cpu"`` (a PyTorch tensor), or an array whose
    library and device the state takes (a CuPy array: a CuPy array).  The
    state must be on the device of the work it draws for.

    Reading the state (``get_state``, ``sync``) waits for the work queued
    on the current stream of the state's library; writing it (``set_state``,
    ``manual_seed``) is queued on that stream.  Neither may run while a CUDA
    graph is being captured.  Calls that share a DeviceGenerator are ordered
    by their stream: use it from one stream (or order the streams), and on
    the CPU from one thread at a time.
    """

    def __init__(self, seed: int | None = None, *, rank: int = 0, world_size: int = 1,
                 offset: int | None = None, device=None):
        func = "fastmix.DeviceGenerator"
        self._set_rank(func, rank, world_size)
        if seed is None:
            seed = int.from_bytes(os.urandom(8), "little")
        seed = _u64(seed, func, "seed")
        offset = self._rank if offset is None else _u64(offset, func, "offset")
        self._generator = None
        self._state = _new_state(device, seed, offset, func)

    @property
    def state(self):
        """The (seed, offset) array, int64 with the bits of the two uint64."""
        return self._state

    @property
    def increment(self) -> int:
        """What each draw adds to the offset: ``world_size``."""
        return self._world

    @property
    def generator(self):
        """The host ``Generator`` this one continues (``device_generator``), or None."""
        return self._generator

    @property
    def device(self) -> str:
        """Where the state is: "cpu", or "cuda:N"."""
        return _a.describe(self._state, "fastmix.DeviceGenerator", "state").where

    def get_state(self) -> tuple:
        """``(seed, offset)``: the state read back to the host, after the
        work queued on the current stream (a synchronization on CUDA)."""
        st = self._state
        d = _a.describe(st, "fastmix.DeviceGenerator", "state")
        if d.lib == "torch":
            values = st.detach().cpu().tolist()
        elif d.lib == "cupy":
            values = st.get().tolist()
        else:
            values = st.tolist()
        return int(values[0]) % _U64, int(values[1]) % _U64

    def set_state(self, state) -> None:
        """Writes ``(seed, offset)`` into the state, queued on the current
        stream (after the draws already queued there)."""
        seed, offset = state
        seed = _u64(seed, "fastmix.DeviceGenerator", "seed")
        offset = _u64(offset, "fastmix.DeviceGenerator", "offset")
        _write_state(self._state, seed, offset)

    def manual_seed(self, seed: int | None = None) -> "DeviceGenerator":
        """Sets the seed (a random one when None) and rewinds to the first
        draw (offset ``rank``), as ``Generator.manual_seed``."""
        if seed is None:
            seed = int.from_bytes(os.urandom(8), "little")
        self.set_state((seed, self._rank))
        return self

    def sync(self) -> tuple:
        """Reads the state (as ``get_state``, synchronizing) and, for a
        generator made by ``Generator.device_generator``, sets that host
        generator's state to it, so that its next draw follows the device's
        last one.  Returns ``(seed, offset)``."""
        state = self.get_state()
        if self._generator is not None:
            self._generator.set_state(state)
        return state

    def __repr__(self):
        return f"fastmix.DeviceGenerator(device={self.device!r}{self._dist_repr()})"


def _new_state(device, seed: int, offset: int, func: str):
    """The 2-element int64 state array holding (seed, offset), on `device`."""
    values = [_to_i64(seed), _to_i64(offset)]
    if device is None:
        return _np.array(values, dtype=_np.int64)
    t = _a.loaded_torch()
    if isinstance(device, str) or (t is not None and isinstance(device, t.device)):
        if t is None:
            try:
                import torch as t
            except ImportError:
                raise TypeError(f"{func}: device={device!r} makes a PyTorch tensor, but PyTorch "
                                "is not installed (device=None makes a NumPy array)") from None
        dev = t.device(device)
        if dev.type == "cuda" and not t.cuda.is_available():
            raise NoDeviceError(f"{func}: device={device!r} asks for CUDA, but PyTorch sees no "
                                "usable CUDA device", Status.NO_DEVICE)
        if dev.type not in ("cpu", "cuda"):
            raise_invalid(f"{func}: device {dev} is not supported; fastmix supports cpu and cuda")
        state = t.tensor(values, dtype=t.int64, device=dev)
        _mark_static(state)
        return state
    ref = _a.describe(device, func, "device")
    if ref.lib == "torch":
        t = _a.loaded_torch()
        state = t.tensor(values, dtype=t.int64, device=ref.obj.device)
        _mark_static(state)
        return state
    if ref.lib == "cupy":
        cupy = _a.loaded_cupy()
        with cupy.cuda.Device(ref.index):
            return cupy.asarray(_np.array(values, dtype=_np.int64))
    return _np.array(values, dtype=_np.int64)


def _mark_static(state) -> None:
    """Marks a torch state tensor as having a fixed address, so that
    torch.compile's CUDA graphs (mode="reduce-overhead") may mutate it in
    place rather than treat it as a fresh input."""
    try:
        mark = _a.loaded_torch()._dynamo.mark_static_address
    except (AttributeError, ImportError):  # an older PyTorch: no CUDA graph trees to tell
        return
    mark(state, guard=False)


def _write_state(state, seed: int, offset: int) -> None:
    host = _np.array([_to_i64(seed), _to_i64(offset)], dtype=_np.int64)
    d = _a.describe(state, "fastmix.DeviceGenerator", "state")
    if d.lib == "torch":
        t = _a.loaded_torch()
        with t.no_grad():
            state.copy_(t.from_numpy(host))
    elif d.lib == "cupy":
        state.set(host)
    else:
        state[...] = host


def generator_key(g: Generator) -> int:
    """The number by which ``generator_by_key`` finds g."""
    return g._key


def generator_by_key(key: int):
    """The Generator numbered `key`, or None when it no longer exists."""
    return _generators.get(key)


def wrap_state(state, increment: int) -> DeviceGenerator:
    """A DeviceGenerator over an existing state array (fastmix.torch's
    operators receive the state tensor and the increment)."""
    g = DeviceGenerator.__new__(DeviceGenerator)
    g._rank, g._world, g._generator, g._state = 0, increment % _U64, None, state
    return g


default_generator = Generator()


def manual_seed(seed: int) -> Generator:
    """Seeds the default generator (offset back to 0) and returns it."""
    return default_generator.manual_seed(seed)


def resolve(generator):
    """The Generator or DeviceGenerator a call draws from."""
    if generator is None:
        return default_generator
    if not isinstance(generator, (Generator, DeviceGenerator)):
        raise TypeError(f"generator must be a fastmix.Generator, a fastmix.DeviceGenerator or "
                        f"None, not {type(generator).__name__}")
    return generator


def next_draw(generator=None) -> tuple[int, int]:
    """Takes one ``(seed, offset)`` draw from ``generator`` (the default
    generator when None), as every sampling call does: for layers that draw
    once and then make several calls with that seed and offset.  A
    ``DeviceGenerator`` has no host draw to give (its state is read where
    the work runs): TypeError."""
    g = resolve(generator)
    if isinstance(g, DeviceGenerator):
        raise TypeError("fastmix.next_draw: a DeviceGenerator's (seed, offset) lives in device "
                        "memory and is drawn by the *_device_seed calls themselves; pass it as "
                        "generator= to the call (or read it with get_state(), which synchronizes)")
    return g.next_draw()


def seed_offset_ptr(g: DeviceGenerator, ref: "_a.Desc", func: str, ref_name: str) -> int:
    """The seed_offset pointer of a DeviceGenerator, whose state must be on
    the device of the work (ref, named ref_name in the message)."""
    d = _a.describe(g.state, func, "the generator's state")
    if (d.cuda, d.index) != (ref.cuda, ref.index):
        raise_invalid(f"{func}: the DeviceGenerator's state is on {d.where}, but {ref_name} is "
                      f"on {ref.where}; make the DeviceGenerator with device= {ref_name}'s device")
    if d.dtype not in ("int64", "uint64") or tuple(d.shape) != (2,) or (d.strides != (1,)):
        raise_invalid(f"{func}: the DeviceGenerator's state must be a contiguous array of 2 "
                      f"int64, got shape {tuple(d.shape)}, dtype {d.dtype}")
    return d.ptr


# What a `generator=` argument takes: a host Generator, or a DeviceGenerator
# (graph-safe: drawn by the *_device_seed entry points, with no host work).
AnyGenerator = Union[Generator, DeviceGenerator]
