"""Runs docs/examples/train_mixup.py so that it cannot rot: the loss must go
down and the model must learn the synthetic classes."""
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO

pytest.importorskip("torch")


def test_train_mixup_example():
    script = os.path.join(REPO, "docs", "examples", "train_mixup.py")
    r = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"first loss ([0-9.]+)\s+last loss ([0-9.]+)\s+test accuracy ([0-9.]+)",
                  r.stdout)
    assert m, r.stdout
    first, last, accuracy = (float(v) for v in m.groups())
    assert last < 0.7 * first, r.stdout
    assert accuracy > 0.8, r.stdout
