"""Every lock is what pip-compile makes of its .in file today (keeping the pins it has)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCKS = [
    "requirements.txt",
    "requirements-dev.txt",
    "tools/requirements-build.txt",
    "tools/requirements-pgadmin.txt",
]

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("lock", LOCKS)
def test_lock_is_in_sync_with_its_input(lock, tmp_path):
    # Recompile in a copy of the inputs and locks (pip-compile keeps the existing pins unless
    # the .in file asks for something they do not satisfy) and compare byte for byte.
    for name in {*LOCKS, *(n.replace(".txt", ".in") for n in LOCKS)}:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    compile_ = Path(sys.executable).parent / "pip-compile"
    result = subprocess.run(
        [str(compile_), "-q", "--generate-hashes", "--strip-extras", "--allow-unsafe",
         "--no-emit-index-url", "--no-emit-find-links", "-o", lock, lock.replace(".txt", ".in")],
        cwd=tmp_path, env={**os.environ, "PIP_CONFIG_FILE": os.devnull},
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    recompiled = (tmp_path / lock).read_text()
    assert recompiled == (ROOT / lock).read_text(), f"{lock} is stale: run `make lock`"
