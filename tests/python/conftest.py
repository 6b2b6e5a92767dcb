import os
import sys
import zlib

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

import fastmix  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def last_error() -> str:
    return fastmix._lib.lib.fastmix_last_error().decode()


@pytest.fixture
def rng(request):
    # Fresh inputs per test, reproducible from the test's name.
    seed = zlib.crc32(request.node.nodeid.encode())
    return np.random.default_rng(seed)


def edge_boxes(h, w):
    """CutMix boxes (y0, x0, y1, x1) of every kind for h x w images: a blend
    (-1s), unmixed (0s), full, empty (at an edge and inside), single pixels
    at two corners, and edge strips."""
    return [(-1, -1, -1, -1), (0, 0, 0, 0), (0, 0, h, w), (h, w, h, w), (h // 2, 0, h // 2, w),
            (0, 0, 1, 1), (h - 1, w - 1, h, w), (0, w - 1, h, w), (h - 1, 0, h, w)]


def hand_made_draw(rng, b, h, w, kinds, blend_prob):
    """A draw of b samples whose first boxes are `kinds` and the others
    random (a blend with probability blend_prob): random lambdas and
    partners, except that an unmixed sample (0 box) is its own partner with
    lambda 1 and a CutMix sample's lambda is 1 - box area / (h * w)."""
    lam = rng.random(b).astype(np.float32)
    par = rng.permutation(b).astype(np.int64)
    boxes = np.zeros((b, 4), np.int32)
    for i in range(b):
        if i < len(kinds):
            boxes[i] = kinds[i]
        else:
            y0, y1 = np.sort(rng.integers(0, h + 1, 2))
            x0, x1 = np.sort(rng.integers(0, w + 1, 2))
            boxes[i] = (-1, -1, -1, -1) if rng.random() < blend_prob else (y0, x0, y1, x1)
        if (boxes[i] == 0).all():
            par[i], lam[i] = i, 1.0
        elif (boxes[i] >= 0).all():
            area = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
            lam[i] = np.float32(1.0 - area / (h * w))
    return lam, par, boxes


def pytest_report_header(config):
    return (f"fastmix {fastmix.__version__} from {fastmix.library_path}; "
            f"CUDA devices: {fastmix.cuda_device_count()}")
