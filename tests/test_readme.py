"""Every ```python block of README.md runs exactly as printed, each on its own."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```python\n(.*?)^```", README, flags=re.S | re.M)
# Blocks that train a classifier (eKLD, the generator report's reference) take longer than a unit test should.
SLOW = ("ekld(", "generator_report(")


def _first_code_line(block: str) -> str:
    return next(line for line in block.splitlines() if line.strip() and not line.startswith(("import", "from")))


@pytest.mark.parametrize(
    "block",
    [pytest.param(b, id=f"{i}-{_first_code_line(b)[:40]}", marks=[pytest.mark.slow] if any(s in b for s in SLOW) else [])
     for i, b in enumerate(BLOCKS)],
)
def test_readme_python_block_runs(block, tmp_path):
    # A fresh interpreter in an empty folder, offline: what a new user sees after pip install.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]


def test_readme_has_the_python_blocks_it_documents():
    joined = "\n".join(BLOCKS)
    for name in ("GITDataset(", "generator_report(", 'from_pretrained("digits-rot-lt"'):
        assert name in joined
