#!/usr/bin/env bash
# Builds and installs the Python package into .venv (created on first use)
# and runs the Python tests, then the fastai tests (tests/python/fastai.sh).
# Usage: bash tests/python/run.sh [pytest args]   (the args go to the first run)
#   PYTHON=python3.11  the interpreter that creates the venv (default: python3)
# Exits non-zero when a test fails or when no test ran (pytest's status 5).
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v nvcc >/dev/null; then
  for d in /usr/local/cuda/bin /usr/local/cuda-*/bin; do
    if [ -x "$d/nvcc" ]; then export PATH="$d:$PATH"; break; fi
  done
fi

venv=.venv
if [ ! -x "$venv/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$venv"
fi
py="$venv/bin/python"
# numpy, scipy, pytest and torch from PyPI (the default torch wheel, with its
# CUDA libraries, is the only one there); skipped when already present.
if ! "$py" -c "import numpy, scipy, pytest, torch, expecttest, scikit_build_core" 2>/dev/null; then
  "$py" -m pip install --quiet --upgrade pip
  "$py" -m pip install --quiet numpy scipy pytest torch expecttest "scikit-build-core>=0.10"
fi
# Non-editable install of this checkout (scikit-build-core, CMake, nvcc).
# Without build isolation, so that the CMake build directory build-py/ is
# reused between runs (scikit-build-core clears it for every new isolated
# environment, which would recompile the CUDA kernels each time).
"$py" -m pip install --quiet --no-deps --no-build-isolation --force-reinstall .

status=0
"$py" -m pytest -p no:cacheprovider tests/python -q "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "tests/python/run.sh: pytest collected no tests" >&2
  exit 1
fi
# fastmix.fastai in real fastai training loops: fastai from PyPI in a venv
# of its own that shares .venv's torch (about a minute the first time).
fastai_status=0
bash tests/python/fastai.sh || fastai_status=$?
[ "$status" -ne 0 ] && exit "$status"
exit "$fastai_status"
