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


def pytest_report_header(config):
    return (f"fastmix {fastmix.__version__} from {fastmix.library_path}; "
            f"CUDA devices: {fastmix.cuda_device_count()}")
