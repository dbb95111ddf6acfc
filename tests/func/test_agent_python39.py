"""The board agent's sources compile under a real Python 3.9 (Pi OS Bullseye's), not only under ast's
feature_version=(3, 9) as tests/unit/test_agent_output.py checks them: that tier runs no other Python."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from edgeq.agent import AGENT_MODULES
from edgeq.testing.common import REPO

AGENT_DIR = REPO / "edgeq" / "agent"


def _python39() -> str | None:
    """python3.9 on PATH, else a pyenv 3.9.x; pyenv shims may exist but not run, so each is asked its version."""
    candidates = [shutil.which("python3.9")]
    for root in {os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv"), "/root/.pyenv"}:
        try:
            candidates += sorted(str(p) for p in Path(root, "versions").glob("3.9*/bin/python"))
        except OSError:  # another user's pyenv: not ours to read
            continue
    for py in filter(None, candidates):
        try:
            probe = subprocess.run(
                [py, "-c", "import sys; print(sys.version_info[:2] == (3, 9))"], capture_output=True, text=True, timeout=60
            )  # noqa: S603
        except OSError:
            continue
        if probe.stdout.strip() == "True":
            return py
    return None


def test_agent_sources_compile_on_python39():
    py39 = _python39()
    if py39 is None:
        pytest.skip("no Python 3.9 here (python3.9 on PATH or a pyenv 3.9.x): the agent's 3.9 syntax is checked by ast only")
    check = "import sys\nfor p in sys.argv[1:]: compile(open(p).read(), p, 'exec')"  # no .pyc written
    p = subprocess.run([py39, "-c", check, *[str(AGENT_DIR / m) for m in AGENT_MODULES]], capture_output=True, text=True)  # noqa: S603
    assert p.returncode == 0, p.stderr
