"""fastmix: fused mixup kernels (sampling, blending, the two-term
cross-entropy) for NumPy, PyTorch and CuPy arrays, through the C library.

    lambdas, partners = fastmix.sample(batch, alpha=0.4)
    out = fastmix.blend(x, lambdas, partners)            # out=x blends in place
    out, lambdas, partners = fastmix.mixup(x, alpha=0.4)
    loss = fastmix.cross_entropy(logits, labels, lambdas, partners)

    # CutMix, or mixup and CutMix chosen per sample (timm's Mixup draw):
    out, lambdas, partners, boxes = fastmix.cutmix(x, cutmix_alpha=1.0, mixup_alpha=0.8)
    lambdas, partners, boxes = fastmix.cutmix_sample(batch, height, width, cutmix_alpha=1.0)
    out = fastmix.cutmix_apply(x, lambdas, partners, boxes)   # also to a mask of the batch

    # uint8 images (B, H, W, C) in, mixed and normalized float (B, C, H, W) out, one pass:
    out, lambdas, partners, boxes = fastmix.cutmix_u8(images, mean, std, dtype="float16",
                                                      mixup_alpha=0.8, cutmix_alpha=1.0)

Results are arrays of the input's library on the input's device.  CUDA work
is queued on the current stream of that library with the input's device
current.  The PyTorch layer (autograd, nn.Modules) is ``fastmix.torch`` and
the drop-in for timm's Mixup is ``fastmix.timm.Mixup``, each imported only
when asked for.

Randomness: every draw takes a (seed, offset) pair from a ``Generator``
(``Generator(seed)`` uses offset 0 for its first draw, then 1, 2, ...), and
is exactly ``fastmix_sample``/``fastmix_mixup`` (``fastmix_cutmix_sample``/
``fastmix_cutmix`` for the CutMix functions) of the C API with that seed and
offset, on either backend.  A ``DeviceGenerator`` keeps (seed, offset) in
device memory instead: the ``*_device_seed`` entry points read it when the
work runs and advance it in stream order, so a captured CUDA graph draws
afresh at every replay (see ``DeviceGenerator``).
"""
from __future__ import annotations

import ctypes
import itertools
import operator
import os
import threading
import weakref

import numpy as _np

from ._version import __version__
from ._lib import (CudaError, FastmixError, InternalError, InvalidValueError,
                   LabelOutOfRangeError, NoDeviceError, NotSupportedError, Status, check, lib,
                   LAYOUTS, MAX_BATCH, MAX_NORM_CHANNELS, alpha_value, check_mix_config,
                   check_sampler, layout_code, library_path, mix_config, pairing_code,
                   raise_invalid, reduction_code)
from . import _arrays as _a
from ._lib import LOSS_BINARY_CROSS_ENTROPY, LOSS_CROSS_ENTROPY, LossConfig

__all__ = [
    "__version__", "cuda_device_count", "manual_seed", "Generator", "DeviceGenerator",
    "default_generator",
    "sample", "blend", "mixup", "cross_entropy", "binary_cross_entropy", "soft_targets",
    "cutmix_sample",
    "cutmix_apply", "cutmix", "cutmix_u8", "cutmix_apply_u8", "Status", "FastmixError",
    "InvalidValueError", "NotSupportedError", "NoDeviceError", "CudaError",
    "LabelOutOfRangeError", "InternalError", "library_path", "MAX_BATCH", "MAX_NORM_CHANNELS",
    "next_draw",
]

_CPU, _CUDA = 0, 1
_U64 = 1 << 64
# The array `like` defaults to: results are NumPy arrays on the CPU.
_dummy = _np.zeros(4, dtype=_np.float64)


def cuda_device_count() -> int:
    """Number of CUDA devices the library can use (0 without driver or GPU)."""
    return int(lib.fastmix_cuda_device_count())


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

    @classmethod
    def _wrap(cls, state, increment: int) -> "DeviceGenerator":
        """A DeviceGenerator over an existing state array (fastmix.torch's
        operators receive the state tensor and the increment)."""
        g = cls.__new__(cls)
        g._rank, g._world, g._generator, g._state = 0, increment % _U64, None, state
        return g

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
    t = _a._torch()
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
        t = _a._torch()
        state = t.tensor(values, dtype=t.int64, device=ref.obj.device)
        _mark_static(state)
        return state
    if ref.lib == "cupy":
        cupy = _a._cupy()
        with cupy.cuda.Device(ref.index):
            return cupy.asarray(_np.array(values, dtype=_np.int64))
    return _np.array(values, dtype=_np.int64)


def _mark_static(state) -> None:
    """Marks a torch state tensor as having a fixed address, so that
    torch.compile's CUDA graphs (mode="reduce-overhead") may mutate it in
    place rather than treat it as a fresh input."""
    try:
        mark = _a._torch()._dynamo.mark_static_address
    except (AttributeError, ImportError):  # an older PyTorch: no CUDA graph trees to tell
        return
    mark(state, guard=False)


def _write_state(state, seed: int, offset: int) -> None:
    host = _np.array([_to_i64(seed), _to_i64(offset)], dtype=_np.int64)
    d = _a.describe(state, "fastmix.DeviceGenerator", "state")
    if d.lib == "torch":
        t = _a._torch()
        with t.no_grad():
            state.copy_(t.from_numpy(host))
    elif d.lib == "cupy":
        state.set(host)
    else:
        state[...] = host


default_generator = Generator()


def manual_seed(seed: int) -> Generator:
    """Seeds the default generator (offset back to 0) and returns it."""
    return default_generator.manual_seed(seed)


def _generator(generator):
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
    g = _generator(generator)
    if isinstance(g, DeviceGenerator):
        raise TypeError("fastmix.next_draw: a DeviceGenerator's (seed, offset) lives in device "
                        "memory and is drawn by the *_device_seed calls themselves; pass it as "
                        "generator= to the call (or read it with get_state(), which synchronizes)")
    return g.next_draw()


def _device_seed(g: DeviceGenerator, ref: "_a.Desc", func: str, ref_name: str) -> int:
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


def _float_dtype(d: "_a.Desc", func: str, name: str) -> int:
    code = _a.FLOAT_DTYPES.get(d.dtype)
    if code is None:
        raise_invalid(f"{func}: {name} has dtype {d.dtype}; fastmix takes float32, float16 "
                      "and bfloat16")
    return code


def _like(like, func):
    """The Desc whose library and device results take (NumPy on the CPU by default)."""
    if like is None:
        return _a.describe(_dummy, func, "like")
    t = _a._torch()
    if t is not None and isinstance(like, (t.device, str)) and not isinstance(like, _np.ndarray):
        dev = t.device(like)
        if dev.type == "cuda" and not t.cuda.is_available():
            raise NoDeviceError(f"{func}: like={like!r} asks for CUDA, but PyTorch sees no "
                                "usable CUDA device", Status.NO_DEVICE)
        return _a.describe(t.empty(0, device=dev), func, "like")
    return _a.describe(like, func, "like")


def sample(batch, alpha=0.4, *, fold=True, pairing="permutation", generator=None, like=None):
    """Draws the mixing weights of a batch and each sample's partner.

    Returns ``(lambdas, partners)``: float32 and int64 arrays of shape
    ``(batch,)`` with ``lambdas[i] ~ Beta(alpha, alpha)`` (folded to
    ``max(l, 1 - l)`` when ``fold``) and ``partners`` a permutation of
    ``range(batch)`` chosen by ``pairing`` ("permutation", "cycle", "flip" or
    "roll").
    They are NumPy arrays, or arrays of ``like``'s library on its device
    (with a ``DeviceGenerator`` and no ``like``: its state's library and
    device).
    """
    func = "fastmix.sample"
    batch = operator.index(batch)
    alpha = alpha_value(alpha, func)
    fold = 1 if fold else 0
    pairing = pairing_code(pairing, func)
    g = _generator(generator)
    ref = _like(g.state if like is None and isinstance(g, DeviceGenerator) else like, func)
    check_sampler(func, alpha, fold, pairing, batch)
    lambdas = _a.empty(ref, (batch,), "float32")
    partners = _a.empty(ref, (batch,), "int64")
    dl, dp = _a.describe(lambdas, func, "lambdas"), _a.describe(partners, func, "partners")
    scratch = _a.Scratch(ref)
    dev = _CUDA if ref.cuda else _CPU
    if isinstance(g, DeviceGenerator):
        so = _device_seed(g, ref, func, "like")
        with _a.on_device(ref) as stream:
            check(lib.fastmix_sample_device_seed(dev, alpha, fold, pairing, so, g.increment,
                                                 batch, scratch.ptr(dl), scratch.ptr(dp), stream))
        return lambdas, partners
    seed, offset = g.next_draw()
    with _a.on_device(ref) as stream:
        check(lib.fastmix_sample(dev, alpha, fold, pairing, seed, offset, batch, scratch.ptr(dl),
                                 scratch.ptr(dp), stream))
    return lambdas, partners


def _images(func, x, out):
    dx = _a.describe(x, func, "x")
    dtype = _float_dtype(dx, func, "x")
    batch, elems, stride = _a.sample_layout(dx, func, "x")
    if out is None:
        out = _a.empty(dx, dx.shape, dx.dtype, sample_stride=stride)
        do = _a.describe(out, func, "out")
    else:
        do = _a.describe(out, func, "out")
        _a.same_device(dx, do, func, "out", "x")
        if do.shape != dx.shape or do.dtype != dx.dtype:
            raise_invalid(f"{func}: out must have x's shape {tuple(dx.shape)} and dtype "
                          f"{dx.dtype}, got {tuple(do.shape)} {do.dtype}")
        _, _, ostride = _a.sample_layout(do, func, "out")
        if batch > 1 and ostride != stride:
            raise_invalid(f"{func}: out must have x's sample stride ({stride} elements), "
                          f"got {ostride}")
    return dx, do, out, dtype, batch, elems, stride


def blend(x, lambdas, partners, *, out=None):
    """``out[i] = lambdas[i] * x[i] + (1 - lambdas[i]) * x[partners[i]]``.

    ``x``: batch first, each sample contiguous (samples may be strided),
    float32, float16 or bfloat16.  ``out=None`` allocates the result (with x's
    sample stride); ``out=x`` blends in place.  Returns ``out``.
    """
    func = "fastmix.blend"
    dx, do, out, dtype, batch, elems, stride = _images(func, x, out)
    dl, dp = _pair(func, dx, batch, lambdas, partners, "x", required=True)
    scratch = _a.Scratch(dx)
    with _a.on_device(dx) as stream:
        check(lib.fastmix_blend(_CUDA if dx.cuda else _CPU, dtype, scratch.ptr(dx),
                                scratch.ptr(do), batch, elems, stride, scratch.ptr(dl),
                                scratch.ptr(dp), stream))
    return out


def mixup(x, alpha=0.4, *, fold=True, pairing="permutation", generator=None, out=None):
    """Draws lambdas and partners and blends the batch, in one pass (one
    kernel launch on CUDA); bitwise ``sample`` followed by ``blend``.

    Returns ``(out, lambdas, partners)``; ``out=x`` mixes in place.
    """
    func = "fastmix.mixup"
    alpha = alpha_value(alpha, func)
    fold = 1 if fold else 0
    pairing = pairing_code(pairing, func)
    g = _generator(generator)
    dx, do, out, dtype, batch, elems, stride = _images(func, x, out)
    check_sampler(func, alpha, fold, pairing, batch)
    lambdas = _a.empty(dx, (batch,), "float32")
    partners = _a.empty(dx, (batch,), "int64")
    dl, dp = _a.describe(lambdas, func, "lambdas"), _a.describe(partners, func, "partners")
    scratch = _a.Scratch(dx)
    if isinstance(g, DeviceGenerator):
        so = _device_seed(g, dx, func, "x")
        with _a.on_device(dx) as stream:
            check(lib.fastmix_mixup_device_seed(
                _CUDA if dx.cuda else _CPU, dtype, alpha, fold, pairing, so, g.increment,
                scratch.ptr(dx), scratch.ptr(do), batch, elems, stride, scratch.ptr(dl),
                scratch.ptr(dp), stream))
        return out, lambdas, partners
    seed, offset = g.next_draw()
    with _a.on_device(dx) as stream:
        check(lib.fastmix_mixup(_CUDA if dx.cuda else _CPU, dtype, alpha, fold, pairing, seed,
                                offset, scratch.ptr(dx), scratch.ptr(do), batch, elems, stride,
                                scratch.ptr(dl), scratch.ptr(dp), stream))
    return out, lambdas, partners


def _pair(func, ref, batch, lambdas, partners, ref_name="labels", required=False):
    """Descs of lambdas and partners on ref's device (named ref_name in
    messages).  Optional ones may be None (NULL to C, which checks that both
    or neither are given); required ones must be arrays."""
    dl = dp = None
    if lambdas is not None or required:
        dl = _a.describe(lambdas, func, "lambdas")
        _a.same_device(ref, dl, func, "lambdas", ref_name)
        dl = _a.contiguous_1d(dl, "float32", batch, func, "lambdas",
                              ("float32", "float16", "bfloat16", "float64"))
    if partners is not None or required:
        dp = _a.describe(partners, func, "partners")
        _a.same_device(ref, dp, func, "partners", ref_name)
        dp = _a.contiguous_1d(dp, "int64", batch, func, "partners", _a.INT_DTYPES)
    return dl, dp


_FLOAT_KINDS = ("float32", "float16", "bfloat16", "float64")


def _float32_copy(d: "_a.Desc", func: str, name: str) -> "_a.Desc":
    """d converted to a C-contiguous float32 array, in its library on its device."""
    a = d.obj
    if d.lib == "torch":
        a = a.to(_a._torch().float32).contiguous()
    elif d.lib == "cupy":
        cupy = _a._cupy()
        with cupy.cuda.Device(d.index):
            a = cupy.ascontiguousarray(a, dtype="float32")
    else:
        a = _np.ascontiguousarray(a, dtype="float32")
    return _a.describe(a, func, name)


def _dense_targets(func, dz, dt, batch, classes):
    """Dense targets of the logits' shape (batch, classes): their Desc (a
    float32 copy when their dtype is float64 or a row is not contiguous) and
    row stride."""
    _a.same_device(dz, dt, func, "target", "logits")
    if tuple(dt.shape) != (batch, classes):
        raise_invalid(f"{func}: probability targets must have the logits' shape "
                      f"{(batch, classes)}, got {tuple(dt.shape)}")
    if dt.dtype not in _a.FLOAT_DTYPES or (classes > 1 and batch > 0 and dt.strides[1] != 1):
        dt = _float32_copy(dt, func, "target")
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


def _loss(func, kind, logits, target, lambdas, partners, *, weight, pos_weight, reduction,
          label_smoothing, ignore_index, target_threshold, return_grad, grad_scale):
    """fastmix_loss on (batch, classes) logits: target int labels (with
    optional lambdas and partners) or float probabilities of the logits'
    shape.  Returns (loss, grad or None)."""
    dz = _a.describe(logits, func, "logits")
    dtype = _float_dtype(dz, func, "logits")
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
        dl, dp = _pair(func, dz, batch, lambdas, partners)
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
    device = _CUDA if dz.cuda else _CPU
    ws_bytes = ctypes.c_size_t(0)
    check(lib.fastmix_loss_workspace_size(device, batch, ctypes.byref(cfg),
                                          ctypes.byref(ws_bytes)))
    ws = dws = None  # ws stays referenced until the call has been queued
    if ws_bytes.value:
        ws = _a.empty(dz, ((ws_bytes.value + 7) // 8,), "int64")
        dws = _a.describe(ws, func, "workspace")
    with _a.on_device(dz) as stream:
        check(lib.fastmix_loss(
            device, dtype, scratch.ptr(dz), batch, classes, row,
            scratch.ptr(dy) if dy else None, scratch.ptr(dl) if dl else None,
            scratch.ptr(dp) if dp else None, ctypes.byref(cfg), scratch.ptr(dloss),
            scratch.ptr(dgrad) if dgrad else None, dws.ptr if dws else None, ws_bytes.value,
            stream))
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
    loss, grad = _loss("fastmix.cross_entropy", LOSS_CROSS_ENTROPY, logits, labels, lambdas, partners,
                       weight=weight, pos_weight=None, reduction=reduction,
                       label_smoothing=label_smoothing, ignore_index=ignore_index,
                       target_threshold=None, return_grad=return_grad, grad_scale=grad_scale)
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
    loss, grad = _loss("fastmix.binary_cross_entropy", LOSS_BINARY_CROSS_ENTROPY, logits, target,
                       lambdas, partners, weight=weight, pos_weight=pos_weight,
                       reduction=reduction, label_smoothing=label_smoothing, ignore_index=-100,
                       target_threshold=target_threshold, return_grad=return_grad,
                       grad_scale=grad_scale)
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
    dl, dp = _pair(func, dy, batch, lambdas, partners)
    targets = _a.empty(dy, (batch, classes), name)
    dt = _a.describe(targets, func, "targets")
    scratch = _a.Scratch(dy)
    with _a.on_device(dy) as stream:
        check(lib.fastmix_soft_targets(
            _CUDA if dy.cuda else _CPU, code, scratch.ptr(dy), scratch.ptr(dl) if dl else None,
            scratch.ptr(dp) if dp else None, batch, classes, float(label_smoothing),
            scratch.ptr(dt), classes, stream))
    return targets


# ------------------------------------------------------------------ CutMix ---

def _config(func, mixup_alpha, cutmix_alpha, cutmix_minmax, prob, switch_prob, mode, pairing,
            correct_lam, fold):
    if pairing is None:  # the one pairing mode "pair" takes, else fastmix's default
        pairing = "flip" if isinstance(mode, str) and mode.lower() == "pair" else "permutation"
    return mix_config(func, mixup_alpha=mixup_alpha, cutmix_alpha=cutmix_alpha,
                      cutmix_minmax=cutmix_minmax, prob=prob, switch_prob=switch_prob, mode=mode,
                      pairing=pairing, correct_lam=correct_lam, fold=fold)


def _image_dims(func, d: "_a.Desc", layout: int):
    """(channels, height, width) of a batch of images in `layout`: NCHW is
    (batch, channels, height, width), where further dimensions before height
    count as channels too (a video's frames); NHWC is (batch, height, width,
    channels); (batch, height, width) is one channel in either."""
    shape = tuple(d.shape)
    if len(shape) == 3:
        return 1, shape[1], shape[2]
    if layout == 0 and len(shape) >= 4:
        c = 1
        for s in shape[1:-2]:
            c *= s
        return c, shape[-2], shape[-1]
    if layout == 1 and len(shape) == 4:
        return shape[3], shape[1], shape[2]
    want = ("(batch, channels, height, width) or (batch, height, width)" if layout == 0 else
            "(batch, height, width, channels) or (batch, height, width)")
    name = "nchw" if layout == 0 else "nhwc"
    raise_invalid(f"{func}: x must have shape {want} for layout {name!r}, got {shape}")


def _channels_last_hint(d: "_a.Desc") -> str:
    """A hint for 4-d NCHW images whose samples are dense channels-last."""
    if len(d.shape) != 4:
        return ""
    _, c, h, w = d.shape
    s = d.strides
    if (c == 1 or s[1] == 1) and (w == 1 or s[3] == c) and (h == 1 or s[2] == w * c):
        view = "permute" if d.lib == "torch" else "transpose"
        return (f" (its samples are channels-last: pass x.{view}(0, 2, 3, 1), a view, with "
                "layout='nhwc')")
    return ""


def _cut_images(func, x, out, layout):
    """_images for CutMix: x's and out's Descs (out allocated like x when
    None) and the images' channels, height, width and sample stride."""
    try:
        dx, do, out, dtype, batch, _, stride = _images(func, x, out)
    except InvalidValueError as e:
        hint = ""
        if layout == 0 and "of each sample of x" in str(e):
            hint = _channels_last_hint(_a.describe(x, func, "x"))
        if not hint:
            raise
        raise InvalidValueError(str(e) + hint, Status.INVALID_VALUE) from None
    c, h, w = _image_dims(func, dx, layout)
    return dx, do, out, dtype, batch, c, h, w, stride


def _boxes(func, ref: "_a.Desc", boxes, batch):
    """boxes as a contiguous int32 array of batch * 4 elements on ref's device."""
    db = _a.describe(boxes, func, "boxes")
    _a.same_device(ref, db, func, "boxes", "x")
    if tuple(db.shape) != (batch, 4):
        raise_invalid(f"{func}: boxes must have shape ({batch}, 4), got {tuple(db.shape)}")
    if db.dtype not in _a.INT_DTYPES:
        raise_invalid(f"{func}: boxes has dtype {db.dtype}; expected one of "
                      f"{', '.join(_a.INT_DTYPES)}")
    flat = _a.describe(db.obj.reshape(-1), func, "boxes")
    return _a.contiguous_1d(flat, "int32", 4 * batch, func, "boxes", _a.INT_DTYPES)


def cutmix_sample(batch, height, width, *, mixup_alpha=0.0, cutmix_alpha=1.0, cutmix_minmax=None,
                  prob=1.0, switch_prob=0.5, mode="elem", pairing=None, correct_lam=True,
                  fold=False, generator=None, like=None):
    """Draws mixup or CutMix per sample (timm's ``Mixup`` draw) for a batch of
    ``height`` x ``width`` images.

    Returns ``(lambdas, partners, boxes)``: float32 ``(batch,)``, int64
    ``(batch,)`` and int32 ``(batch, 4)``; NumPy arrays, or arrays of
    ``like``'s library on its device.  ``boxes[i]`` is ``(y0, x0, y1, x1)``
    (rows ``[y0, y1)``, columns ``[x0, x1)``) for a CutMix sample,
    ``(-1, -1, -1, -1)`` for a mixup sample and ``(0, 0, 0, 0)`` for a
    sample left unmixed (lambda 1, its own partner).

    - ``mixup_alpha > 0`` enables mixup, lambda ~ Beta(mixup_alpha,
      mixup_alpha); ``cutmix_alpha > 0`` CutMix with lambda ~
      Beta(cutmix_alpha, cutmix_alpha) and timm's box; ``cutmix_minmax=(min,
      max)`` CutMix with box sides uniform in ``[min, max)`` of the image's
      (``cutmix_alpha`` unused, lambda always corrected).  0 (None) turns
      each off; at least one must be on.
    - ``prob``: the probability that a sample is mixed at all;
      ``switch_prob``: the probability of CutMix when both are on.
    - ``mode``: "elem" (a draw per sample), "pair" (i and batch-1-i share
      one; needs the "flip" pairing) or "batch" (one draw for the batch).
    - ``pairing``: "permutation", "cycle", "flip" or "roll"; None is "flip"
      for mode "pair" and "permutation" otherwise.
    - ``correct_lam``: a Beta CutMix lambda becomes ``1 - box area / (height
      * width)``, the share of the sample's own pixels; ``fold``: both Beta
      draws are folded to ``max(l, 1 - l)``.
    """
    func = "fastmix.cutmix_sample"
    batch, height, width = operator.index(batch), operator.index(height), operator.index(width)
    cfg = _config(func, mixup_alpha, cutmix_alpha, cutmix_minmax, prob, switch_prob, mode,
                  pairing, correct_lam, fold)
    g = _generator(generator)
    ref = _like(g.state if like is None and isinstance(g, DeviceGenerator) else like, func)
    check_mix_config(func, cfg, batch, height, width)
    lambdas = _a.empty(ref, (batch,), "float32")
    partners = _a.empty(ref, (batch,), "int64")
    boxes = _a.empty(ref, (batch, 4), "int32")
    dl, dp = _a.describe(lambdas, func, "lambdas"), _a.describe(partners, func, "partners")
    db = _a.describe(boxes, func, "boxes")
    scratch = _a.Scratch(ref)
    if isinstance(g, DeviceGenerator):
        so = _device_seed(g, ref, func, "like")
        with _a.on_device(ref) as stream:
            check(lib.fastmix_cutmix_sample_device_seed(
                _CUDA if ref.cuda else _CPU, ctypes.byref(cfg), so, g.increment, batch, height,
                width, scratch.ptr(dl), scratch.ptr(dp), scratch.ptr(db), stream))
        return lambdas, partners, boxes
    seed, offset = g.next_draw()
    with _a.on_device(ref) as stream:
        check(lib.fastmix_cutmix_sample(_CUDA if ref.cuda else _CPU, ctypes.byref(cfg), seed,
                                        offset, batch, height, width, scratch.ptr(dl),
                                        scratch.ptr(dp), scratch.ptr(db), stream))
    return lambdas, partners, boxes


def cutmix_apply(x, lambdas, partners, boxes, *, layout="nchw", out=None):
    """Applies a draw of ``cutmix_sample`` to a batch of images.  Sample i
    with box ``(-1, -1, -1, -1)`` is blended as ``blend`` does; any other
    keeps its own pixels except inside its box ``(y0, x0, y1, x1)``, where
    every channel takes the partner's (copied exactly).

    ``x``: ``(batch, channels, height, width)`` for ``layout="nchw"`` (more
    dimensions before height count as channels), ``(batch, height, width,
    channels)`` for "nhwc", or ``(batch, height, width)``; each sample dense
    in that layout, the samples may be strided; float32, float16 or
    bfloat16.  The same draw applies to another tensor of the batch (a mask)
    of any channel count.  ``boxes``: ``(batch, 4)``, any integer dtype.
    ``out=None`` allocates the result (with x's sample stride); ``out=x``
    works in place.  Returns ``out``.
    """
    func = "fastmix.cutmix_apply"
    lay = layout_code(layout, func)
    dx, do, out, dtype, batch, c, h, w, stride = _cut_images(func, x, out, lay)
    dl, dp = _pair(func, dx, batch, lambdas, partners, "x", required=True)
    db = _boxes(func, dx, boxes, batch)
    scratch = _a.Scratch(dx)
    with _a.on_device(dx) as stream:
        check(lib.fastmix_cutmix_apply(_CUDA if dx.cuda else _CPU, dtype, lay, scratch.ptr(dx),
                                       scratch.ptr(do), batch, c, h, w, stride, scratch.ptr(dl),
                                       scratch.ptr(dp), scratch.ptr(db), stream))
    return out


def cutmix(x, *, mixup_alpha=0.0, cutmix_alpha=1.0, cutmix_minmax=None, prob=1.0,
           switch_prob=0.5, mode="elem", pairing=None, correct_lam=True, fold=False,
           layout="nchw", generator=None, out=None):
    """``cutmix_sample`` for x's images followed by ``cutmix_apply``, bitwise
    the same, in one call (on CUDA a small draw kernel, then one pass over
    the images); the arguments are theirs.  Returns ``(out, lambdas,
    partners, boxes)``; ``out=x`` mixes in place.
    """
    func = "fastmix.cutmix"
    cfg = _config(func, mixup_alpha, cutmix_alpha, cutmix_minmax, prob, switch_prob, mode,
                  pairing, correct_lam, fold)
    lay = layout_code(layout, func)
    g = _generator(generator)
    dx, do, out, dtype, batch, c, h, w, stride = _cut_images(func, x, out, lay)
    check_mix_config(func, cfg, batch)
    lambdas = _a.empty(dx, (batch,), "float32")
    partners = _a.empty(dx, (batch,), "int64")
    boxes = _a.empty(dx, (batch, 4), "int32")
    dl, dp = _a.describe(lambdas, func, "lambdas"), _a.describe(partners, func, "partners")
    db = _a.describe(boxes, func, "boxes")
    scratch = _a.Scratch(dx)
    if isinstance(g, DeviceGenerator):
        so = _device_seed(g, dx, func, "x")
        with _a.on_device(dx) as stream:
            check(lib.fastmix_cutmix_device_seed(
                _CUDA if dx.cuda else _CPU, dtype, ctypes.byref(cfg), so, g.increment, lay,
                scratch.ptr(dx), scratch.ptr(do), batch, c, h, w, stride, scratch.ptr(dl),
                scratch.ptr(dp), scratch.ptr(db), stream))
        return out, lambdas, partners, boxes
    seed, offset = g.next_draw()
    with _a.on_device(dx) as stream:
        check(lib.fastmix_cutmix(_CUDA if dx.cuda else _CPU, dtype, ctypes.byref(cfg), seed,
                                 offset, lay, scratch.ptr(dx), scratch.ptr(do), batch, c, h, w,
                                 stride, scratch.ptr(dl), scratch.ptr(dp), scratch.ptr(db),
                                 stream))
    return out, lambdas, partners, boxes


# --------------------------------------------------------- uint8 images in ---

_U8_DUMMY = (ctypes.c_int64 * 2)()  # never read or written: the checks run with batch 0


def _norm_values(value, channels: int, func: str, name: str):
    """mean or std as a contiguous host float32 array of `channels` values:
    a real number (every channel), or a sequence of `channels` (or 1) real
    numbers: a list, a tuple, a NumPy array, a CPU tensor.  Never a device
    array: the C library reads mean and std on the host during the call, so
    a CUDA tensor is refused rather than copied (which would synchronize)."""
    t = _a._torch()
    if t is not None and isinstance(value, t.Tensor):
        if value.device.type != "cpu":
            raise_invalid(f"{func}: {name} must be host values (a sequence of floats; the C "
                          f"library reads them on the host), got a tensor on {value.device}")
        value = value.detach().to(t.float64).numpy()
    elif _a._is_cupy(value) or hasattr(value, "__cuda_array_interface__"):
        raise_invalid(f"{func}: {name} must be host values (a sequence of floats; the C library "
                      f"reads them on the host), got a {type(value).__name__} on the GPU")
    try:
        a = _np.asarray(value)
    except (TypeError, ValueError):
        a = _np.asarray(None)
    if a.dtype.kind not in "iuf":  # bools, strings, None, objects, complex
        raise_invalid(f"{func}: {name} must be a real number or a sequence of real numbers, "
                      f"got {value!r}")
    if a.ndim > 1 or (a.ndim == 1 and a.shape[0] not in (1, channels)):
        raise_invalid(f"{func}: {name} must have {channels} values (one per channel of x), or "
                      f"be a single number, got shape {tuple(a.shape)}")
    a = _np.broadcast_to(a.astype(_np.float64).reshape(-1), (channels,))
    return _np.ascontiguousarray(a, dtype=_np.float32)


def _u8_images(func, x, in_lay: int):
    """x's Desc, batch, channels, height, width and sample stride (bytes): a
    4-d uint8 array, each image dense in in_layout."""
    dx = _a.describe(x, func, "x")
    if dx.dtype != "uint8":
        raise_invalid(f"{func}: x has dtype {dx.dtype}; the uint8 input path takes uint8 "
                      "images (fastmix.cutmix mixes float images)")
    name = list(LAYOUTS)[in_lay]
    if len(dx.shape) != 4:
        want = ("(batch, channels, height, width)" if in_lay == 0 else
                "(batch, height, width, channels)")
        raise_invalid(f"{func}: x must have shape {want} for in_layout {name!r}, got "
                      f"{tuple(dx.shape)}")
    try:
        batch, _, stride = _a.sample_layout(dx, func, "x")
    except InvalidValueError as e:
        hint = _channels_last_hint(dx).replace("layout=", "in_layout=") if in_lay == 0 else ""
        if not hint:
            raise
        raise InvalidValueError(str(e) + hint, Status.INVALID_VALUE) from None
    if in_lay == 0:
        _, c, h, w = dx.shape
    else:
        _, h, w, c = dx.shape
    if not 1 <= c <= MAX_NORM_CHANNELS:
        raise_invalid(f"{func}: x has {c} channels (in_layout {name!r}, shape "
                      f"{tuple(dx.shape)}); the uint8 input path takes 1 to "
                      f"{MAX_NORM_CHANNELS} (FASTMIX_MAX_NORM_CHANNELS)")
    return dx, batch, c, h, w, stride


def _u8_out(func, dx: "_a.Desc", out, dtype, batch, c, h, w, out_lay: int):
    """out's Desc (allocated when None, in x's library on x's device), the
    array, its fastmix_dtype and its sample stride (elements)."""
    shape = (batch, c, h, w) if out_lay == 0 else (batch, h, w, c)
    lay = list(LAYOUTS)[out_lay]
    do = None
    if out is not None:
        do = _a.describe(out, func, "out")
        _a.same_device(dx, do, func, "out", "x")
    if dtype is None:
        name = do.dtype if do is not None else "float32"
    else:
        try:
            name = _a.dtype_name(dtype)
        except InvalidValueError:
            name = repr(dtype)
    code = _a.FLOAT_DTYPES.get(name)
    if code is None:
        what = f"dtype must be float32, float16 or bfloat16, got {name}" if dtype is not None \
            else f"out has dtype {name}; fastmix takes float32, float16 and bfloat16"
        raise_invalid(f"{func}: {what}")
    if do is None:
        if name == "bfloat16" and dx.lib == "cupy":
            raise_invalid(f"{func}: dtype bfloat16: CuPy has no bfloat16 arrays; use float32 or "
                          "float16, or PyTorch tensors")
        if name == "bfloat16" and dx.lib == "numpy":
            try:
                import ml_dtypes  # noqa: F401  (NumPy itself has no bfloat16)
            except ImportError:
                raise_invalid(f"{func}: dtype bfloat16 with NumPy arrays needs the ml_dtypes "
                              "package; use float32 or float16, or PyTorch tensors")
        out = _a.empty(dx, shape, name)
        do = _a.describe(out, func, "out")
    elif tuple(do.shape) != shape or do.dtype != name:
        raise_invalid(f"{func}: out must have shape {shape} (out_layout {lay!r}) and dtype "
                      f"{name}, got {tuple(do.shape)} {do.dtype}")
    try:
        _, _, ostride = _a.sample_layout(do, func, "out")
    except InvalidValueError as e:
        hint = ""
        if out_lay == 0 and do.lib == "torch":
            hint = " (a channels_last out is out_layout='nhwc', passed as out.permute(0, 2, 3, 1))"
        raise InvalidValueError(str(e) + hint, Status.INVALID_VALUE) from None
    return do, out, code, ostride


def _check_u8(func, cfg, in_lay, batch, c, h, w, stride, mean, std, code, out_lay, ostride):
    """Checks the arguments of the uint8 path in C with batch 0 on the CPU
    (nothing read or written), so that their errors carry the C library's
    message and come before a draw is taken: the config (fastmix_cutmix_u8;
    None: fastmix_cutmix_apply_u8, no draw), the sizes, layouts, dtype, and
    every mean and std value."""
    b = batch if (batch < 0 or batch > MAX_BATCH) else 0
    dummy = ctypes.addressof(_U8_DUMMY)
    if cfg is None:
        check(lib.fastmix_cutmix_apply_u8(_CPU, in_lay, dummy, b, c, h, w, stride,
                                          mean.ctypes.data, std.ctypes.data, code, out_lay, dummy,
                                          ostride, dummy, dummy, dummy, None))
    else:
        check(lib.fastmix_cutmix_u8(_CPU, ctypes.byref(cfg), 0, 0, in_lay, dummy, b, c, h, w,
                                    stride, mean.ctypes.data, std.ctypes.data, code, out_lay,
                                    dummy, ostride, dummy, dummy, dummy, None))


def _check_u8_memory(func, dx: "_a.Desc", do: "_a.Desc", batch, elems, stride, ostride):
    """What the C library checks of out's address (aligned, not overlapping
    x), checked here too so that a fused call refused for it takes no draw."""
    if batch == 0 or elems == 0:
        return
    if do.ptr % do.itemsize:
        raise_invalid(f"{func}: out must be aligned to its element size ({do.itemsize} bytes)")
    x_end = dx.ptr + (batch - 1) * stride + elems
    out_end = do.ptr + ((batch - 1) * ostride + elems) * do.itemsize
    if dx.ptr < out_end and do.ptr < x_end:
        raise_invalid(f"{func}: out overlaps x (uint8 in, {do.dtype} out: there is no in place)")


def cutmix_apply_u8(x, mean, std, lambdas, partners, boxes, *, dtype=None, in_layout="nhwc",
                    out_layout="nchw", out=None):
    """Applies a draw of ``cutmix_sample`` to a batch of uint8 images and
    normalizes, in one pass: ``out = (v / 255 - mean) / std`` per channel,
    where v is the mixed pixel (a mixup sample's float32 blend of the two
    bytes, a CutMix sample's own or partner's byte), rounded once to
    ``dtype``.

    ``x``: uint8 ``(batch, height, width, channels)`` for ``in_layout="nhwc"``
    (decoders' HWC images, stacked), ``(batch, channels, height, width)`` for
    "nchw"; each image dense, the batch may be strided; 1 to 64 channels.
    ``mean``, ``std``: one value per channel (or one for all), in the 0-1
    scale (torchvision's ``(0.485, 0.456, 0.406)``, ``(0.229, 0.224,
    0.225)``); host values (a list, a tuple, a NumPy array, a CPU tensor),
    rounded to float32.  ``dtype``: float32, float16 or bfloat16 (a name, a
    NumPy dtype or a torch.dtype); None is out's dtype, or float32.  The
    result, allocated when ``out`` is None in x's library on x's device, is
    ``(batch, channels, height, width)`` for ``out_layout="nchw"`` and
    ``(batch, height, width, channels)`` for "nhwc"; a given ``out`` must
    have that shape and dtype (each image dense, the batch may be strided).
    ``lambdas``, ``partners``, ``boxes``: as for ``cutmix_apply``.  Returns
    ``out``.
    """
    func = "fastmix.cutmix_apply_u8"
    in_lay = layout_code(in_layout, func, "in_layout")
    out_lay = layout_code(out_layout, func, "out_layout")
    dx, batch, c, h, w, stride = _u8_images(func, x, in_lay)
    m = _norm_values(mean, c, func, "mean")
    s = _norm_values(std, c, func, "std")
    do, out, code, ostride = _u8_out(func, dx, out, dtype, batch, c, h, w, out_lay)
    dl, dp = _pair(func, dx, batch, lambdas, partners, "x", required=True)
    db = _boxes(func, dx, boxes, batch)
    scratch = _a.Scratch(dx)
    with _a.on_device(dx) as stream:
        check(lib.fastmix_cutmix_apply_u8(_CUDA if dx.cuda else _CPU, in_lay, scratch.ptr(dx),
                                          batch, c, h, w, stride, m.ctypes.data, s.ctypes.data,
                                          code, out_lay, scratch.ptr(do), ostride,
                                          scratch.ptr(dl), scratch.ptr(dp), scratch.ptr(db),
                                          stream))
    return out


def cutmix_u8(x, mean, std, *, dtype=None, in_layout="nhwc", out_layout="nchw", mixup_alpha=0.0,
              cutmix_alpha=1.0, cutmix_minmax=None, prob=1.0, switch_prob=0.5, mode="elem",
              pairing=None, correct_lam=True, fold=False, generator=None, out=None):
    """``cutmix_sample`` for x's images followed by ``cutmix_apply_u8``,
    bitwise the same, in one call (on CUDA a small draw kernel, then one
    pass that reads each byte once and writes each output element once):
    uint8 images in, mixed and normalized float images out.  The draw
    options are ``cutmix_sample``'s, the image arguments
    ``cutmix_apply_u8``'s.  Returns ``(out, lambdas, partners, boxes)``.
    Invalid arguments raise before a draw is taken from the generator.
    """
    func = "fastmix.cutmix_u8"
    cfg = _config(func, mixup_alpha, cutmix_alpha, cutmix_minmax, prob, switch_prob, mode,
                  pairing, correct_lam, fold)
    in_lay = layout_code(in_layout, func, "in_layout")
    out_lay = layout_code(out_layout, func, "out_layout")
    g = _generator(generator)
    dx, batch, c, h, w, stride = _u8_images(func, x, in_lay)
    m = _norm_values(mean, c, func, "mean")
    s = _norm_values(std, c, func, "std")
    do, out, code, ostride = _u8_out(func, dx, out, dtype, batch, c, h, w, out_lay)
    _check_u8(func, cfg, in_lay, batch, c, h, w, stride, m, s, code, out_lay, ostride)
    _check_u8_memory(func, dx, do, batch, c * h * w, stride, ostride)
    lambdas = _a.empty(dx, (batch,), "float32")
    partners = _a.empty(dx, (batch,), "int64")
    boxes = _a.empty(dx, (batch, 4), "int32")
    dl, dp = _a.describe(lambdas, func, "lambdas"), _a.describe(partners, func, "partners")
    db = _a.describe(boxes, func, "boxes")
    scratch = _a.Scratch(dx)
    if isinstance(g, DeviceGenerator):
        so = _device_seed(g, dx, func, "x")
        with _a.on_device(dx) as stream:
            check(lib.fastmix_cutmix_u8_device_seed(
                _CUDA if dx.cuda else _CPU, ctypes.byref(cfg), so, g.increment, in_lay,
                scratch.ptr(dx), batch, c, h, w, stride, m.ctypes.data, s.ctypes.data, code,
                out_lay, scratch.ptr(do), ostride, scratch.ptr(dl), scratch.ptr(dp),
                scratch.ptr(db), stream))
        return out, lambdas, partners, boxes
    seed, offset = g.next_draw()
    with _a.on_device(dx) as stream:
        check(lib.fastmix_cutmix_u8(_CUDA if dx.cuda else _CPU, ctypes.byref(cfg), seed, offset,
                                    in_lay, scratch.ptr(dx), batch, c, h, w, stride,
                                    m.ctypes.data, s.ctypes.data, code, out_lay, scratch.ptr(do),
                                    ostride, scratch.ptr(dl), scratch.ptr(dp), scratch.ptr(db),
                                    stream))
    return out, lambdas, partners, boxes


def __getattr__(name):
    # `fastmix.torch`, `fastmix.timm`, `fastmix.loader` and `fastmix.fastai` are imported on
    # first use, so NumPy users need no PyTorch (nor fastai).
    if name in ("torch", "timm", "loader", "fastai"):
        import importlib
        return importlib.import_module("." + name, __name__)
    raise AttributeError(f"module 'fastmix' has no attribute {name!r}")
