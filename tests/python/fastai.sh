#!/usr/bin/env bash
# Runs tests/python/test_fastai.py with fastai from PyPI, in a virtual
# environment of its own, build/fastai-venv, so that fastai's dependencies
# (pandas, matplotlib, spacy, scikit-learn, torchvision, ...) never change
# .venv.  A .pth file makes .venv's packages visible there (torch, numpy,
# pytest and the fastmix that tests/python/run.sh installed), so only fastai
# and what it adds are installed, and torch is held at .venv's version by a
# constraint: pip never installs a second torch.  First run: about a minute
# and 300 MB (with PyPI reachable); later runs reuse the venv.
# Usage: bash tests/python/fastai.sh [pytest args]   (after tests/python/run.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."

base=.venv/bin/python
venv=build/fastai-venv
fastai_version=2.8.12   # fastai's current release when this was written
if [ ! -x "$base" ]; then
  echo "tests/python/fastai.sh: $base is missing; run tests/python/run.sh first" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  "$base" -m venv "$venv"
  base_site=$("$base" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  site=$("$venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  echo "$base_site" > "$site/fastmix-dot-venv.pth"
fi
py="$venv/bin/python"
if ! "$py" -c "import fastai" 2>/dev/null; then
  torch_version=$("$base" -c "import importlib.metadata as m; print(m.version('torch'))")
  echo "torch==$torch_version" > "$venv/constraints.txt"
  "$py" -m pip install --quiet -c "$venv/constraints.txt" "fastai==$fastai_version"
fi
# The fastmix under test is .venv's (the installed package), as for the other tests.
"$py" -c "import fastmix, fastai, sys; print('fastmix', fastmix.__version__, 'from', fastmix.__file__, '; fastai', fastai.__version__)"
status=0
"$py" -m pytest -p no:cacheprovider -q tests/python/test_fastai.py "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "tests/python/fastai.sh: pytest collected no tests" >&2
  exit 1
fi
exit "$status"
