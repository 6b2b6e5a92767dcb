"""Loading libfastmix.so with ctypes: prototypes, the version check and errors.

The library is looked up in this package's folder, unless the environment
variable FASTMIX_LIBRARY names another file.  Every C function is declared
with its prototype (copied from include/fastmix/fastmix.h) above it.
"""
from __future__ import annotations

import ctypes
import enum
import os

from ._version import __version__

__all__ = [
    "Status", "FastmixError", "InvalidValueError", "NotSupportedError", "NoDeviceError",
    "CudaError", "LabelOutOfRangeError", "InternalError", "lib", "library_path", "check",
    "raise_invalid", "MixConfig",
]


class Status(enum.IntEnum):
    """fastmix_status; the values are part of the C ABI."""
    SUCCESS = 0
    INVALID_VALUE = 1
    NOT_SUPPORTED = 2
    NO_DEVICE = 3
    CUDA = 4
    LABEL_OUT_OF_RANGE = 5
    INTERNAL = 6


class FastmixError(RuntimeError):
    """A fastmix call failed.  ``status`` is the C status (a ``Status``); the
    message is ``fastmix_last_error()`` (or, for checks done in Python before
    the C call, a message in the same style)."""

    status = None

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        if status is not None:
            try:
                self.status = Status(status)
            except ValueError:
                self.status = int(status)


class InvalidValueError(FastmixError, ValueError):
    status = Status.INVALID_VALUE


class NotSupportedError(FastmixError):
    status = Status.NOT_SUPPORTED


class NoDeviceError(FastmixError):
    status = Status.NO_DEVICE


class CudaError(FastmixError):
    status = Status.CUDA


class LabelOutOfRangeError(FastmixError, IndexError):
    status = Status.LABEL_OUT_OF_RANGE


class InternalError(FastmixError):
    status = Status.INTERNAL


_ERRORS = {
    Status.INVALID_VALUE: InvalidValueError,
    Status.NOT_SUPPORTED: NotSupportedError,
    Status.NO_DEVICE: NoDeviceError,
    Status.CUDA: CudaError,
    Status.LABEL_OUT_OF_RANGE: LabelOutOfRangeError,
    Status.INTERNAL: InternalError,
}


def _version_int(version: str) -> int:
    major, minor, patch = (int(p) for p in version.split(".")[:3])
    return major * 10000 + minor * 100 + patch


def _load() -> tuple[ctypes.CDLL, str]:
    override = os.environ.get("FASTMIX_LIBRARY")
    path = override if override else os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                   "libfastmix.so")
    if not os.path.isfile(path):
        where = "FASTMIX_LIBRARY" if override else "the fastmix package folder"
        raise ImportError(f"fastmix: the C library was not found at {path} ({where}); "
                          "install the package with `pip install .` or set FASTMIX_LIBRARY "
                          "to the path of libfastmix.so", path=path)
    try:
        handle = ctypes.CDLL(path)
    except OSError as e:
        raise ImportError(f"fastmix: cannot load the C library {path}: {e}", path=path) from e
    try:
        handle.fastmix_version
    except AttributeError as e:
        raise ImportError(f"fastmix: {path} is not libfastmix (no fastmix_version)", path=path) from e
    return handle, path


lib, library_path = _load()

# int fastmix_version(void);  (declared first: it is checked before anything else)
lib.fastmix_version.argtypes = []
lib.fastmix_version.restype = ctypes.c_int
_lib_version = lib.fastmix_version()
if _lib_version != _version_int(__version__):
    raise ImportError(f"fastmix: the C library {library_path} is version {_lib_version} "
                      f"(MAJOR*10000 + MINOR*100 + PATCH), but the Python package is "
                      f"{__version__} ({_version_int(__version__)})", path=library_path)


_names = ["fastmix_status_string", "fastmix_last_error", "fastmix_cuda_device_count",
          "fastmix_sample", "fastmix_blend", "fastmix_mixup", "fastmix_soft_targets", "fastmix_cutmix_sample", "fastmix_cutmix_apply",
          "fastmix_cutmix", "fastmix_sample_device_seed", "fastmix_mixup_device_seed",
          "fastmix_cutmix_sample_device_seed", "fastmix_cutmix_device_seed",
          "fastmix_cutmix_apply_u8", "fastmix_cutmix_u8", "fastmix_cutmix_u8_device_seed",
          "fastmix_loss", "fastmix_loss_config_init", "fastmix_loss_workspace_size"]
_missing = [n for n in _names if not hasattr(lib, n)]
if _missing:
    raise ImportError(f"fastmix: {library_path} lacks {', '.join(_missing)}", path=library_path)

_i64 = ctypes.c_int64
_u64 = ctypes.c_uint64
_int = ctypes.c_int
_f32 = ctypes.c_float
_vp = ctypes.c_void_p
_status = ctypes.c_int  # fastmix_status, fastmix_device, fastmix_dtype, ... are C enums (int)

# const char *fastmix_status_string(fastmix_status status);
lib.fastmix_status_string.argtypes = [_status]
lib.fastmix_status_string.restype = ctypes.c_char_p

# const char *fastmix_last_error(void);
lib.fastmix_last_error.argtypes = []
lib.fastmix_last_error.restype = ctypes.c_char_p

# int fastmix_cuda_device_count(void);
lib.fastmix_cuda_device_count.argtypes = []
lib.fastmix_cuda_device_count.restype = _int

# fastmix_status fastmix_sample(fastmix_device device, float alpha, int fold,
#                               fastmix_pairing pairing, uint64_t seed, uint64_t offset,
#                               int64_t batch, float *lambdas, int64_t *partners, void *stream);
lib.fastmix_sample.argtypes = [_status, _f32, _int, _status, _u64, _u64, _i64, _vp, _vp, _vp]
lib.fastmix_sample.restype = _status

# fastmix_status fastmix_blend(fastmix_device device, fastmix_dtype dtype, const void *x,
#                              void *out, int64_t batch, int64_t sample_elems,
#                              int64_t sample_stride, const float *lambdas,
#                              const int64_t *partners, void *stream);
lib.fastmix_blend.argtypes = [_status, _status, _vp, _vp, _i64, _i64, _i64, _vp, _vp, _vp]
lib.fastmix_blend.restype = _status

# fastmix_status fastmix_mixup(fastmix_device device, fastmix_dtype dtype, float alpha, int fold,
#                              fastmix_pairing pairing, uint64_t seed, uint64_t offset,
#                              const void *x, void *out, int64_t batch, int64_t sample_elems,
#                              int64_t sample_stride, float *lambdas, int64_t *partners,
#                              void *stream);
lib.fastmix_mixup.argtypes = [_status, _status, _f32, _int, _status, _u64, _u64, _vp, _vp, _i64,
                              _i64, _i64, _vp, _vp, _vp]
lib.fastmix_mixup.restype = _status

# fastmix_status fastmix_soft_targets(fastmix_device device, fastmix_dtype dtype,
#                                     const int64_t *labels, const float *lambdas,
#                                     const int64_t *partners, int64_t batch, int64_t classes,
#                                     float label_smoothing, void *targets,
#                                     int64_t targets_stride, void *stream);
lib.fastmix_soft_targets.argtypes = [_status, _status, _vp, _vp, _vp, _i64, _i64, _f32, _vp,
                                     _i64, _vp]
lib.fastmix_soft_targets.restype = _status


class LossConfig(ctypes.Structure):
    """fastmix_loss_config, field for field (the enums are C ints)."""
    _fields_ = [
        ("kind", ctypes.c_int),       # fastmix_loss_kind
        ("reduction", ctypes.c_int),  # fastmix_reduction
        ("label_smoothing", ctypes.c_float),
        ("grad_scale", ctypes.c_float),
        ("ignore_index", ctypes.c_int64),
        ("class_weight", ctypes.c_void_p),
        ("pos_weight", ctypes.c_void_p),
        ("target_threshold", ctypes.c_float),
        ("targets", ctypes.c_void_p),
        ("targets_dtype", ctypes.c_int),  # fastmix_dtype
        ("targets_stride", ctypes.c_int64),
    ]


LOSS_CROSS_ENTROPY = 0  # FASTMIX_LOSS_CROSS_ENTROPY
LOSS_BINARY_CROSS_ENTROPY = 1  # FASTMIX_LOSS_BINARY_CROSS_ENTROPY
_loss_cfg = ctypes.POINTER(LossConfig)

# void fastmix_loss_config_init(fastmix_loss_config *config);
lib.fastmix_loss_config_init.argtypes = [_loss_cfg]
lib.fastmix_loss_config_init.restype = None

# fastmix_status fastmix_loss_workspace_size(fastmix_device device, int64_t batch,
#                                            const fastmix_loss_config *config, size_t *bytes);
lib.fastmix_loss_workspace_size.argtypes = [_status, _i64, _loss_cfg,
                                            ctypes.POINTER(ctypes.c_size_t)]
lib.fastmix_loss_workspace_size.restype = _status

# fastmix_status fastmix_loss(fastmix_device device, fastmix_dtype dtype, const void *logits,
#                             int64_t batch, int64_t classes, int64_t logits_stride,
#                             const int64_t *labels, const float *lambdas,
#                             const int64_t *partners, const fastmix_loss_config *config,
#                             float *loss, void *grad_logits, void *workspace,
#                             size_t workspace_bytes, void *stream);
lib.fastmix_loss.argtypes = [_status, _status, _vp, _i64, _i64, _i64, _vp, _vp, _vp, _loss_cfg,
                             _vp, _vp, _vp, ctypes.c_size_t, _vp]
lib.fastmix_loss.restype = _status


# ---- seed and offset read from memory (CUDA graphs): seed_offset is two uint64 on `device` ----

# fastmix_status fastmix_sample_device_seed(fastmix_device device, float alpha, int fold,
#                                           fastmix_pairing pairing, uint64_t *seed_offset,
#                                           uint64_t offset_increment, int64_t batch,
#                                           float *lambdas, int64_t *partners, void *stream);
lib.fastmix_sample_device_seed.argtypes = [_status, _f32, _int, _status, _vp, _u64, _i64, _vp, _vp,
                                           _vp]
lib.fastmix_sample_device_seed.restype = _status

# fastmix_status fastmix_mixup_device_seed(
#     fastmix_device device, fastmix_dtype dtype, float alpha, int fold, fastmix_pairing pairing,
#     uint64_t *seed_offset, uint64_t offset_increment, const void *x, void *out, int64_t batch,
#     int64_t sample_elems, int64_t sample_stride, float *lambdas, int64_t *partners,
#     void *stream);
lib.fastmix_mixup_device_seed.argtypes = [_status, _status, _f32, _int, _status, _vp, _u64, _vp,
                                          _vp, _i64, _i64, _i64, _vp, _vp, _vp]
lib.fastmix_mixup_device_seed.restype = _status


class MixConfig(ctypes.Structure):
    """fastmix_mix_config, field for field (the enums mode and pairing are C ints)."""
    _fields_ = [
        ("mixup_alpha", ctypes.c_float),
        ("cutmix_alpha", ctypes.c_float),
        ("cutmix_min", ctypes.c_double),
        ("cutmix_max", ctypes.c_double),
        ("prob", ctypes.c_float),
        ("switch_prob", ctypes.c_float),
        ("mode", ctypes.c_int),     # fastmix_mix_mode
        ("pairing", ctypes.c_int),  # fastmix_pairing
        ("correct_lam", ctypes.c_int),
        ("fold", ctypes.c_int),
    ]


_cfg = ctypes.POINTER(MixConfig)

# fastmix_status fastmix_cutmix_sample(fastmix_device device,
#                                      const fastmix_mix_config *config, uint64_t seed,
#                                      uint64_t offset, int64_t batch, int64_t height,
#                                      int64_t width, float *lambdas, int64_t *partners,
#                                      int32_t *boxes, void *stream);
lib.fastmix_cutmix_sample.argtypes = [_status, _cfg, _u64, _u64, _i64, _i64, _i64, _vp, _vp, _vp,
                                      _vp]
lib.fastmix_cutmix_sample.restype = _status

# fastmix_status fastmix_cutmix_apply(fastmix_device device, fastmix_dtype dtype,
#                                     fastmix_layout layout, const void *x, void *out,
#                                     int64_t batch, int64_t channels, int64_t height,
#                                     int64_t width, int64_t sample_stride,
#                                     const float *lambdas, const int64_t *partners,
#                                     const int32_t *boxes, void *stream);
lib.fastmix_cutmix_apply.argtypes = [_status, _status, _status, _vp, _vp, _i64, _i64, _i64, _i64,
                                     _i64, _vp, _vp, _vp, _vp]
lib.fastmix_cutmix_apply.restype = _status

# fastmix_status fastmix_cutmix(fastmix_device device, fastmix_dtype dtype,
#                               const fastmix_mix_config *config, uint64_t seed,
#                               uint64_t offset, fastmix_layout layout, const void *x,
#                               void *out, int64_t batch, int64_t channels,
#                               int64_t height, int64_t width, int64_t sample_stride,
#                               float *lambdas, int64_t *partners, int32_t *boxes,
#                               void *stream);
lib.fastmix_cutmix.argtypes = [_status, _status, _cfg, _u64, _u64, _status, _vp, _vp, _i64, _i64,
                               _i64, _i64, _i64, _vp, _vp, _vp, _vp]
lib.fastmix_cutmix.restype = _status

# fastmix_status fastmix_cutmix_sample_device_seed(
#     fastmix_device device, const fastmix_mix_config *config, uint64_t *seed_offset,
#     uint64_t offset_increment, int64_t batch, int64_t height, int64_t width, float *lambdas,
#     int64_t *partners, int32_t *boxes, void *stream);
lib.fastmix_cutmix_sample_device_seed.argtypes = [_status, _cfg, _vp, _u64, _i64, _i64, _i64, _vp,
                                                  _vp, _vp, _vp]
lib.fastmix_cutmix_sample_device_seed.restype = _status

# fastmix_status fastmix_cutmix_device_seed(
#     fastmix_device device, fastmix_dtype dtype, const fastmix_mix_config *config,
#     uint64_t *seed_offset, uint64_t offset_increment, fastmix_layout layout, const void *x,
#     void *out, int64_t batch, int64_t channels, int64_t height, int64_t width,
#     int64_t sample_stride, float *lambdas, int64_t *partners, int32_t *boxes, void *stream);
lib.fastmix_cutmix_device_seed.argtypes = [_status, _status, _cfg, _vp, _u64, _status, _vp, _vp,
                                           _i64, _i64, _i64, _i64, _i64, _vp, _vp, _vp, _vp]
lib.fastmix_cutmix_device_seed.restype = _status

# ---- uint8 images in, normalized and mixed float out, in one pass ----
# (mean and std are host float arrays: `channels` floats each, read during the call)

# fastmix_status fastmix_cutmix_apply_u8(
#     fastmix_device device, fastmix_layout in_layout, const uint8_t *x, int64_t batch,
#     int64_t channels, int64_t height, int64_t width, int64_t x_stride, const float *mean,
#     const float *std, fastmix_dtype dtype, fastmix_layout out_layout, void *out,
#     int64_t out_stride, const float *lambdas, const int64_t *partners, const int32_t *boxes,
#     void *stream);
lib.fastmix_cutmix_apply_u8.argtypes = [_status, _status, _vp, _i64, _i64, _i64, _i64, _i64, _vp,
                                        _vp, _status, _status, _vp, _i64, _vp, _vp, _vp, _vp]
lib.fastmix_cutmix_apply_u8.restype = _status

# fastmix_status fastmix_cutmix_u8(
#     fastmix_device device, const fastmix_mix_config *config, uint64_t seed, uint64_t offset,
#     fastmix_layout in_layout, const uint8_t *x, int64_t batch, int64_t channels, int64_t height,
#     int64_t width, int64_t x_stride, const float *mean, const float *std, fastmix_dtype dtype,
#     fastmix_layout out_layout, void *out, int64_t out_stride, float *lambdas, int64_t *partners,
#     int32_t *boxes, void *stream);
lib.fastmix_cutmix_u8.argtypes = [_status, _cfg, _u64, _u64, _status, _vp, _i64, _i64, _i64, _i64,
                                  _i64, _vp, _vp, _status, _status, _vp, _i64, _vp, _vp, _vp, _vp]
lib.fastmix_cutmix_u8.restype = _status

# fastmix_status fastmix_cutmix_u8_device_seed(
#     fastmix_device device, const fastmix_mix_config *config, uint64_t *seed_offset,
#     uint64_t offset_increment, fastmix_layout in_layout, const uint8_t *x, int64_t batch,
#     int64_t channels, int64_t height, int64_t width, int64_t x_stride, const float *mean,
#     const float *std, fastmix_dtype dtype, fastmix_layout out_layout, void *out,
#     int64_t out_stride, float *lambdas, int64_t *partners, int32_t *boxes, void *stream);
lib.fastmix_cutmix_u8_device_seed.argtypes = [_status, _cfg, _vp, _u64, _status, _vp, _i64, _i64,
                                              _i64, _i64, _i64, _vp, _vp, _status, _status, _vp,
                                              _i64, _vp, _vp, _vp, _vp]
lib.fastmix_cutmix_u8_device_seed.restype = _status


def check(status: int) -> None:
    """Raises the exception of a non-success status, with fastmix_last_error()
    as its message.  Call it right after the C call, on the same thread."""
    if status == Status.SUCCESS:
        return
    message = lib.fastmix_last_error().decode("utf-8", "replace")
    if not message:
        message = lib.fastmix_status_string(status).decode("utf-8", "replace")
    cls = _ERRORS.get(status, FastmixError)
    raise cls(message, status)


def raise_invalid(message: str):
    """An argument error found in Python before the C call."""
    raise InvalidValueError(message, Status.INVALID_VALUE)


MAX_BATCH = 4294967295  # FASTMIX_MAX_BATCH
MAX_NORM_CHANNELS = 64  # FASTMIX_MAX_NORM_CHANNELS
