"""Fixtures for every tier: an isolated edgeq home, a real `python -m edgeq` runner, tiny pipelines.

Helpers that are not fixtures live in edgeq.testing (import them from there); tests/farm/conftest.py
adds the farm's fixtures (sshd boards, Prometheus, the emulated aarch64 board).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from hypothesis import settings

from edgeq.testing.common import TINY, Result

# Property tests: tests/run-all.sh (so CI) runs the "ci" profile; a developer's `pytest tests/unit` the
# lighter default, which keeps the unit tier under a minute on 2 cores. Tests that set max_examples keep it.
settings.register_profile("ci", max_examples=150)
settings.register_profile("dev", max_examples=50)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# A suite started in the background by a non-interactive shell (`bash tests/run-all.sh &`, nohup, some CI
# runners) inherits SIGINT ignored, and so would every edgeq the tests start: Python keeps an ignored SIGINT
# ignored, and the Ctrl-C tests (labgrid, sigterm, wedged) would see no KeyboardInterrupt. A handler (not an
# ignore) is reset to the default on exec, so the children start as from a terminal.
signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def edgeq_home(tmp_path, monkeypatch):
    """Every test gets its own edgeq home; nothing lands in the repo's ./.edgeq."""
    monkeypatch.setenv("EDGEQ_HOME", str(tmp_path / "edgeq-home"))
    monkeypatch.delenv("EDGEQ_DEVICES", raising=False)


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    h = tmp_path / "home"
    monkeypatch.setenv("EDGEQ_HOME", str(h))
    return h


@pytest.fixture
def edgeq(home, tmp_path):
    """Run the real CLI in a subprocess (exit codes, stdout/stderr separation, no traceback)."""

    def run(*args, cwd=None, timeout=600, env=None) -> Result:
        e = {**os.environ, "EDGEQ_HOME": str(home), **(env or {})}
        p = subprocess.run(
            [sys.executable, "-m", "edgeq", *map(str, args)],
            capture_output=True,
            text=True,
            cwd=cwd or tmp_path,
            timeout=timeout,
            env=e,
        )
        return Result(p.returncode, p.stdout, p.stderr)

    return run


@pytest.fixture
def write_pipeline(tmp_path):
    """Write a pipeline YAML (a dict merged over TINY, or raw text) and return its path."""

    def write(overrides: dict | str | None = None, name: str = "pipe.yaml") -> Path:
        p = tmp_path / name
        if isinstance(overrides, str):
            p.write_text(overrides)
            return p
        doc = json.loads(json.dumps(TINY))
        for k, v in (overrides or {}).items():
            doc[k] = v
        p.write_text(yaml.safe_dump(doc, sort_keys=False))
        return p

    return write


@pytest.fixture
def canary(tmp_path):
    """A path that any shell injection in these tests would create; asserted absent at the end."""
    c = Path(f"/tmp/edgeq-canary-{uuid.uuid4().hex}")
    yield c
    found = [p for p in (c, Path.home() / c.name, tmp_path / c.name, Path.cwd() / c.name) if p.exists()]
    for p in found:
        p.unlink()
    assert not found, f"a shell ran an injected command: {found}"
