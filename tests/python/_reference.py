"""Independent float64 references of what fastmix computes, written from the
formulas in include/fastmix/fastmix.h and docs/loss.md (not from the code)."""
import numpy as np


def blend(x, lambdas, partners):
    x = np.asarray(x, dtype=np.float64)
    lam = np.asarray(lambdas, dtype=np.float64).reshape((-1,) + (1,) * (x.ndim - 1))
    return lam * x + (1.0 - lam) * x[np.asarray(partners)]


def blend_bound(x, lambdas, partners, dtype):
    """A bound on |fastmix - float64 reference|: float32 arithmetic (two
    products and a sum, a few float32 ulps of the terms) plus the final
    rounding to `dtype` (half an ulp of the result, at least half the
    smallest subnormal)."""
    x = np.asarray(x, dtype=np.float64)
    lam = np.asarray(lambdas, dtype=np.float64).reshape((-1,) + (1,) * (x.ndim - 1))
    terms = np.abs(lam * x) + np.abs((1.0 - lam) * x[np.asarray(partners)])
    eps32 = np.finfo(np.float32).eps
    info = np.finfo(dtype) if dtype != "bfloat16" else None
    eps = info.eps if info is not None else 2.0 ** -7
    tiny = info.smallest_subnormal if info is not None else 2.0 ** -133
    ref = np.abs(blend(x, lambdas, partners))
    return 3 * eps32 * terms + 0.5 * eps * ref + tiny


def _lse(z):
    m = z.max(axis=1, keepdims=True)
    return (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]


def cross_entropy(logits, labels, lambdas=None, partners=None, reduction="mean", eps=0.0,
                  ignore_index=-100, grad_scale=1.0):
    """(loss, grad) in float64: loss_i = w1 CE_eps(z, y1) + w2 CE_eps(z, y2)."""
    z = np.asarray(logits, dtype=np.float64)
    b, c = z.shape
    y1 = np.asarray(labels, dtype=np.int64)
    if lambdas is None:
        lam = np.ones(b)
        y2 = np.full(b, ignore_index, dtype=np.int64)
        w2 = np.zeros(b)
    else:
        lam = np.asarray(lambdas, dtype=np.float64)
        y2 = y1[np.asarray(partners)]
        w2 = np.where(y2 == ignore_index, 0.0, 1.0 - lam)
    w1 = np.where(y1 == ignore_index, 0.0, lam)
    lse = _lse(z) if b else np.zeros(0)
    soft = np.exp(z - lse[:, None]) if b else np.zeros((0, c))

    def ce_and_target(y):
        safe = np.where((y >= 0) & (y < c), y, 0)
        onehot = np.zeros((b, c))
        onehot[np.arange(b), safe] = 1.0
        target = (1 - eps) * onehot + eps / c
        ce = (1 - eps) * (lse - z[np.arange(b), safe]) + eps * (lse - z.mean(axis=1) if c else 0)
        return ce, target

    ce1, t1 = ce_and_target(y1)
    ce2, t2 = ce_and_target(y2)
    loss_rows = w1 * ce1 + w2 * ce2
    grad_rows = (w1 + w2)[:, None] * soft - w1[:, None] * t1 - w2[:, None] * t2
    if reduction == "none":
        return loss_rows, grad_scale * grad_rows
    if reduction == "sum":
        return loss_rows.sum(), grad_scale * grad_rows
    denom = (w1 + w2).sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        return loss_rows.sum() / denom, grad_scale * grad_rows / denom


def soft_targets(labels, num_classes, lambdas=None, partners=None, eps=0.0):
    y1 = np.asarray(labels, dtype=np.int64)
    b = y1.shape[0]
    t = np.zeros((b, num_classes))
    lam = np.ones(b) if lambdas is None else np.asarray(lambdas, dtype=np.float64)
    t[np.arange(b), y1] += lam
    if lambdas is not None:
        t[np.arange(b), y1[np.asarray(partners)]] += 1.0 - lam
    return (1 - eps) * t + eps / num_classes
