"""A common view of NumPy arrays, PyTorch tensors and CuPy arrays: pointer,
shape, strides in elements, dtype name and device; allocation of results in
the same library on the same device; the CUDA device and stream to run on.

No framework is imported here unless an array of it is passed in (torch and
cupy are looked up in sys.modules), so NumPy users need neither.
"""
from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass

import numpy as np

from ._lib import raise_invalid

FLOAT_DTYPES = {"float32": 0, "float16": 1, "bfloat16": 2}
DEVICE_CPU, DEVICE_CUDA = 0, 1  # fastmix_device
INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


@dataclass
class Desc:
    obj: object        # the array itself (a numpy.ndarray, torch.Tensor or cupy.ndarray)
    lib: str           # "numpy" | "torch" | "cupy"
    cuda: bool
    index: int         # CUDA device index (-1 on the CPU)
    ptr: int
    shape: tuple
    strides: tuple     # in elements
    dtype: str         # "float32", "bfloat16", "int64", ...
    itemsize: int

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def where(self) -> str:
        return f"cuda:{self.index}" if self.cuda else "cpu"

    @property
    def device_code(self) -> int:
        """The fastmix_device of the array: FASTMIX_DEVICE_CUDA or _CPU."""
        return DEVICE_CUDA if self.cuda else DEVICE_CPU


def loaded_torch():
    """The torch module, if something has imported it (else None)."""
    return sys.modules.get("torch")


def loaded_cupy():
    """The cupy module, if something has imported it (else None)."""
    return sys.modules.get("cupy")


def is_torch(a) -> bool:
    t = loaded_torch()
    return t is not None and isinstance(a, t.Tensor)


def is_cupy(a) -> bool:
    c = loaded_cupy()
    return c is not None and isinstance(a, c.ndarray)


def _byte_strides(strides, itemsize, func, name):
    out = []
    for s in strides:
        if s % itemsize:
            raise_invalid(f"{func}: {name} has a stride of {s} bytes, not a multiple of its "
                          f"element size ({itemsize} bytes)")
        out.append(s // itemsize)
    return tuple(out)


def describe(a, func: str, name: str) -> Desc:
    """The Desc of an array argument; TypeError for anything that is not one."""
    if is_torch(a):
        dev = a.device
        if dev.type not in ("cpu", "cuda"):
            raise_invalid(f"{func}: {name} is on device {dev}; fastmix supports cpu and cuda")
        dtype = str(a.dtype).replace("torch.", "")
        return Desc(a, "torch", dev.type == "cuda", dev.index if dev.type == "cuda" else -1,
                    a.data_ptr(), tuple(a.shape), tuple(a.stride()), dtype, a.element_size())
    if is_cupy(a):
        return Desc(a, "cupy", True, a.device.id, a.data.ptr, tuple(a.shape),
                    _byte_strides(a.strides, a.itemsize, func, name), a.dtype.name, a.itemsize)
    if isinstance(a, np.ndarray) or hasattr(a, "__array_interface__"):
        a = np.asarray(a)  # zero-copy for objects with __array_interface__
        ptr = a.__array_interface__["data"][0]
        return Desc(a, "numpy", False, -1, ptr, a.shape,
                    _byte_strides(a.strides, a.itemsize, func, name), a.dtype.name, a.itemsize)
    if hasattr(a, "__cuda_array_interface__"):
        raise TypeError(f"{func}: {name} is a {type(a).__name__} with __cuda_array_interface__; "
                        "fastmix takes PyTorch tensors and CuPy arrays on CUDA "
                        "(wrap it with cupy.asarray or torch.as_tensor, both zero-copy)")
    raise TypeError(f"{func}: {name} must be a NumPy array, a PyTorch tensor or a CuPy array, "
                    f"not {type(a).__name__}")


def same_device(ref: Desc, d: Desc, func: str, name: str, ref_name: str):
    if (ref.cuda, ref.index) != (d.cuda, d.index):
        raise_invalid(f"{func}: {name} is on {d.where}, but {ref_name} is on {ref.where}")


def _np_dtype(name: str):
    if name == "bfloat16":
        try:
            import ml_dtypes  # optional: NumPy itself has no bfloat16
        except ImportError:
            raise_invalid("bfloat16 NumPy arrays need the ml_dtypes package; "
                          "use float32 or float16, or a PyTorch tensor")
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def empty(ref: Desc, shape, dtype: str, sample_stride: int | None = None):
    """An uninitialised array of `dtype` in ref's library and on ref's device.
    With sample_stride (elements between the starts of consecutive rows along
    the first dimension), the rows are laid out with that stride instead of
    contiguously; the elements within a row are contiguous."""
    shape = tuple(int(s) for s in shape)
    row = 1
    for s in shape[1:]:
        row *= s
    strides = None
    if sample_stride is not None and len(shape) >= 1 and sample_stride != row and shape[0] > 1:
        inner = []
        acc = 1
        for s in reversed(shape[1:]):
            inner.append(acc)
            acc *= s
        strides = (sample_stride,) + tuple(reversed(inner))
        span = (shape[0] - 1) * sample_stride + row
    if ref.lib == "torch":
        torch = loaded_torch()
        tdtype = getattr(torch, dtype)
        dev = torch.device("cuda", ref.index) if ref.cuda else torch.device("cpu")
        if strides is None:
            return torch.empty(shape, dtype=tdtype, device=dev)
        return torch.empty_strided(shape, strides, dtype=tdtype, device=dev)
    if ref.lib == "cupy":
        cupy = loaded_cupy()
        with cupy.cuda.Device(ref.index):
            if strides is None:
                return cupy.empty(shape, dtype=dtype)
            base = cupy.empty(span, dtype=dtype)
            return cupy.ndarray(shape, dtype=dtype, memptr=base.data,
                                strides=tuple(s * base.itemsize for s in strides))
    ndt = _np_dtype(dtype)
    if strides is None:
        return np.empty(shape, dtype=ndt)
    base = np.empty(span, dtype=ndt)
    return np.lib.stride_tricks.as_strided(base, shape, tuple(s * ndt.itemsize for s in strides),
                                           writeable=True)


def contiguous_1d(d: Desc, dtype: str, n: int, func: str, name: str, kinds) -> Desc:
    """d as a contiguous 1-D array of `dtype` and length n (converted, in d's
    library on d's device, if it is another integer/float dtype or strided)."""
    if len(d.shape) != 1 or d.shape[0] != n:
        raise_invalid(f"{func}: {name} must have shape ({n},), got {tuple(d.shape)}")
    if d.dtype not in kinds:
        raise_invalid(f"{func}: {name} has dtype {d.dtype}; expected one of {', '.join(kinds)}")
    if d.dtype == dtype and (n <= 1 or d.strides[0] == 1):
        return d
    return contiguous_copy(d, dtype, func, name)


def contiguous_copy(d: Desc, dtype: str, func: str, name: str) -> Desc:
    """d converted to a C-contiguous array of `dtype`, in d's library on d's device."""
    a = d.obj
    if d.lib == "torch":
        a = a.to(getattr(loaded_torch(), dtype)).contiguous()
    elif d.lib == "cupy":
        cupy = loaded_cupy()
        with cupy.cuda.Device(d.index):
            a = cupy.ascontiguousarray(a, dtype=dtype)
    else:
        a = np.ascontiguousarray(a, dtype=dtype)
    return describe(a, func, name)


def sample_layout(d: Desc, func: str, name: str):
    """(batch, sample_elems, sample_stride) of an array whose first dimension
    is the batch and whose samples are contiguous."""
    if len(d.shape) == 0:
        raise_invalid(f"{func}: {name} must have a batch dimension, got a 0-d array")
    batch = d.shape[0]
    elems = 1
    for s in d.shape[1:]:
        elems *= s
    if batch == 0 or elems == 0:
        return batch, elems, elems
    # Within a sample: C-contiguous (dimensions of size 1 may have any stride).
    expect = 1
    for size, stride in zip(reversed(d.shape[1:]), reversed(d.strides[1:])):
        if size != 1 and stride != expect:
            raise_invalid(f"{func}: the elements of each sample of {name} must be contiguous "
                          f"(shape {tuple(d.shape)}, strides {tuple(d.strides)} in elements)")
        expect *= size
    stride = d.strides[0] if batch > 1 else elems
    return batch, elems, stride


class Scratch:
    """Non-null stand-ins for the pointers of empty arrays (PyTorch gives 0 for
    them, which the C API refuses even when nothing is read)."""

    def __init__(self, ref: Desc):
        self.ref = ref
        self.keep = None

    def ptr(self, d: Desc) -> int:
        if d.numel > 0 or (d.ptr != 0 and not d.cuda):
            return d.ptr
        if self.keep is None:
            self.keep = empty(self.ref, (4,), "float32")
        return describe(self.keep, "", "").ptr


@contextlib.contextmanager
def on_device(d: Desc):
    """Makes d's CUDA device current and yields the stream to queue on (the
    current stream of d's library); yields None on the CPU."""
    if not d.cuda:
        yield None
        return
    if d.lib == "torch":
        torch = loaded_torch()
        with torch.cuda.device(d.index):
            yield torch.cuda.current_stream(d.index).cuda_stream
    else:
        cupy = loaded_cupy()
        with cupy.cuda.Device(d.index):
            yield cupy.cuda.get_current_stream().ptr


def dtype_name(dtype) -> str:
    """A dtype given as a string, a NumPy dtype or a torch.dtype, by name."""
    t = loaded_torch()
    if t is not None and isinstance(dtype, t.dtype):
        return str(dtype).replace("torch.", "")
    if isinstance(dtype, str):
        return dtype
    try:
        return np.dtype(dtype).name
    except TypeError:
        raise_invalid(f"unknown dtype {dtype!r}")
