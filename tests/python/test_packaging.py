"""Loading the library: the package folder, FASTMIX_LIBRARY, the version
check, and that NumPy users do not import torch."""
import os
import re
import shutil
import subprocess
import sys

import pytest

import fastmix
from conftest import REPO


def _run(code, **env):
    e = dict(os.environ)
    e.pop("FASTMIX_LIBRARY", None)
    e.update(env)
    return subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True,
                          cwd="/")


def test_loaded_from_package_folder():
    assert os.path.dirname(fastmix.library_path) == os.path.dirname(fastmix.__file__)
    assert os.path.basename(fastmix.library_path) == "libfastmix.so"


def test_version_matches_header_and_cmake():
    header = open(os.path.join(REPO, "include", "fastmix", "fastmix.h")).read()
    parts = [re.search(rf"#define FASTMIX_VERSION_{k} (\d+)", header).group(1)
             for k in ("MAJOR", "MINOR", "PATCH")]
    assert fastmix.__version__ == ".".join(parts)
    # CMake takes its project version from the header, and the import checks
    # fastmix_version() of the loaded library against __version__.
    major, minor, patch = (int(p) for p in parts)
    assert fastmix._lib.lib.fastmix_version() == major * 10000 + minor * 100 + patch


def test_numpy_users_need_no_torch():
    r = _run("import sys, fastmix, numpy as np; fastmix.mixup(np.ones((2, 3), np.float32)); "
             "print('torch' in sys.modules)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_override(tmp_path):
    copy = tmp_path / "libfastmix_copy.so"
    shutil.copy(fastmix.library_path, copy)
    r = _run("import fastmix; print(fastmix.library_path)", FASTMIX_LIBRARY=str(copy))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(copy)


def test_missing_library_names_path(tmp_path):
    missing = tmp_path / "nope" / "libfastmix.so"
    r = _run("import fastmix", FASTMIX_LIBRARY=str(missing))
    assert r.returncode != 0
    assert "ImportError" in r.stderr and str(missing) in r.stderr


def _c_library(tmp_path, name, source):
    """lib<name>.so built from the C `source` in tmp_path (the test is
    skipped without a C compiler)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build a fake library")
    src = tmp_path / f"{name}.c"
    src.write_text(source)
    so = tmp_path / f"lib{name}.so"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(so), str(src)], check=True)
    return so


def test_mismatched_library_names_path(tmp_path):
    so = _c_library(tmp_path, "fake", "int fastmix_version(void) { return 99999; }\n")
    r = _run("import fastmix", FASTMIX_LIBRARY=str(so))
    assert r.returncode != 0
    assert "ImportError" in r.stderr and str(so) in r.stderr and "99999" in r.stderr


def test_not_a_fastmix_library(tmp_path):
    so = _c_library(tmp_path, "other", "int something(void) { return 1; }\n")
    r = _run("import fastmix", FASTMIX_LIBRARY=str(so))
    assert r.returncode != 0 and "ImportError" in r.stderr and str(so) in r.stderr


def test_error_classes():
    assert issubclass(fastmix.InvalidValueError, ValueError)
    assert issubclass(fastmix.LabelOutOfRangeError, IndexError)
    for cls in (fastmix.InvalidValueError, fastmix.LabelOutOfRangeError, fastmix.NoDeviceError,
                fastmix.CudaError, fastmix.NotSupportedError):
        assert issubclass(cls, fastmix.FastmixError)
