"""The scalar arguments of the calls: the C enums by name, real numbers,
the mix config of the CutMix draws, and their checks, made by the C library
with nothing written so that the errors carry its messages."""
from __future__ import annotations

import ctypes
import numbers

from ._lib import MAX_BATCH, MixConfig, check, lib, raise_invalid

_SAMPLER_DUMMY = (ctypes.c_int64 * 2)()

# The C enums fastmix_pairing, fastmix_reduction, fastmix_mix_mode and
# fastmix_layout by their Python names, in the order of their values (fastmix
# and fastmix.torch both use these).
PAIRINGS = {"permutation": 0, "cycle": 1, "flip": 2, "roll": 3}
REDUCTIONS = {"none": 0, "mean": 1, "sum": 2}
MODES = {"elem": 0, "pair": 1, "batch": 2}
LAYOUTS = {"nchw": 0, "nhwc": 1}


def name_code(value, names: dict, func: str, param: str) -> int:
    """The C enum value of a name in `names` (case-insensitive); anything else
    is refused with a message that names the parameter and the choices."""
    if not isinstance(value, str) or value.lower() not in names:
        *first, last = (repr(n) for n in names)
        raise_invalid(f"{func}: {param} must be {', '.join(first)} or {last}, got {value!r}")
    return names[value.lower()]


def pairing_code(pairing, func: str) -> int:
    """The fastmix_pairing value of a pairing name (case-insensitive)."""
    return name_code(pairing, PAIRINGS, func, "pairing")


def mode_code(mode, func: str) -> int:
    """The fastmix_mix_mode value of a mode name (case-insensitive)."""
    return name_code(mode, MODES, func, "mode")


def layout_code(layout, func: str, param: str = "layout") -> int:
    """The fastmix_layout value of a layout name (case-insensitive); `param`
    names the argument in the message."""
    return name_code(layout, LAYOUTS, func, param)


def real_value(value, func: str, name: str) -> float:
    """value as a float, if it is a real number (Python's or NumPy's); as for
    alpha_value, its range is the C library's to check."""
    if isinstance(value, (bool, str, bytes)) or not isinstance(value, numbers.Real):
        raise_invalid(f"{func}: {name} must be a real number, got {type(value).__name__}")
    return float(value)


def mix_config(func: str, *, mixup_alpha, cutmix_alpha, cutmix_minmax, prob, switch_prob, mode,
               pairing, correct_lam, fold) -> MixConfig:
    """A fastmix_mix_config from Python arguments: names parsed and types
    checked here, values left to the C library (check_mix_config).
    cutmix_minmax is None (off) or a pair (min, max)."""
    lo = hi = 0.0
    if cutmix_minmax is not None:
        try:
            lo, hi = cutmix_minmax
        except (TypeError, ValueError):
            raise_invalid(f"{func}: cutmix_minmax must be None or a pair (min, max), "
                          f"got {cutmix_minmax!r}")
        lo = real_value(lo, func, "cutmix_minmax[0]")
        hi = real_value(hi, func, "cutmix_minmax[1]")
        if lo == 0.0 and hi == 0.0:  # the C struct's "off": refused rather than ignored
            raise_invalid(f"{func}: cutmix_minmax must satisfy 0 <= min < max <= 1, got "
                          f"{cutmix_minmax!r} (None turns it off)")
    return MixConfig(real_value(mixup_alpha, func, "mixup_alpha"),
                     real_value(cutmix_alpha, func, "cutmix_alpha"), lo, hi,
                     real_value(prob, func, "prob"), real_value(switch_prob, func, "switch_prob"),
                     mode_code(mode, func), pairing_code(pairing, func), 1 if correct_lam else 0,
                     1 if fold else 0)


def check_mix_config(func: str, config: MixConfig, batch: int = 0, height: int = 1,
                     width: int = 1) -> None:
    """Validates a mix config (and batch, height, width) in C with no output
    written, so that their errors carry the C library's message."""
    b = batch if (batch < 0 or batch > MAX_BATCH) else 0
    dummy = ctypes.addressof(_SAMPLER_DUMMY)  # never written: batch is 0 or invalid
    check(lib.fastmix_cutmix_sample(0, ctypes.byref(config), 0, 0, b, height, width, dummy, dummy,
                                    dummy, None))


def alpha_value(alpha, func: str) -> float:
    """alpha as a float, if it is a real number (Python's or NumPy's); its
    range is the C library's to check (check_sampler), so that the message
    is the library's.  Anything else (a string, None, a tensor) is refused
    here rather than converted: a tensor in alpha's place is usually the
    labels, passed to a functional form that takes none."""
    if isinstance(alpha, (bool, str, bytes)) or not isinstance(alpha, numbers.Real):
        hint = ""
        if hasattr(alpha, "shape"):
            hint = (" (the functional mixup takes no labels: mixup(x, alpha=0.4) returns "
                    "(x_mixed, lambdas, partners); MixUp()(x, labels) returns (x_mixed, target))")
        raise_invalid(f"{func}: alpha must be a real number, got {type(alpha).__name__}{hint}")
    return float(alpha)


def check_sampler(func: str, alpha: float, fold: int, pairing: int, batch: int) -> None:
    """Validates the scalar arguments of a draw in C (with no output written),
    so that their errors carry the C library's message."""
    b = batch if (batch < 0 or batch > MAX_BATCH) else 0
    dummy = ctypes.addressof(_SAMPLER_DUMMY)  # never written: batch is 0 or invalid
    check(lib.fastmix_sample(0, alpha, fold, pairing, 0, 0, b, dummy, dummy, None))


def reduction_code(reduction, func: str) -> int:
    """The fastmix_reduction value of a reduction name (case-insensitive)."""
    return name_code(reduction, REDUCTIONS, func, "reduction")


def cut_config(func, mixup_alpha, cutmix_alpha, cutmix_minmax, prob, switch_prob, mode, pairing,
               correct_lam, fold) -> MixConfig:
    """mix_config of the CutMix calls' positional options, where pairing None
    is the one pairing mode "pair" takes ("flip"), else fastmix's default."""
    if pairing is None:
        pairing = "flip" if isinstance(mode, str) and mode.lower() == "pair" else "permutation"
    return mix_config(func, mixup_alpha=mixup_alpha, cutmix_alpha=cutmix_alpha,
                      cutmix_minmax=cutmix_minmax, prob=prob, switch_prob=switch_prob, mode=mode,
                      pairing=pairing, correct_lam=correct_lam, fold=fold)
