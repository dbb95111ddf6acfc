"""Shared fixtures: an isolated edgeq home, a real `python -m edgeq` runner, tiny pipelines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


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


TINY = {
    "name": "tiny",
    "seed": 1,
    "data": {"source": "sklearn-digits", "max_train": 400, "max_test": 150},
    "model": {"builtin": "mlp", "hidden": [32]},
    "train": {"epochs": 8, "batch_size": 32, "learning_rate": 0.005},
    "quantize": {"variants": [{"type": "fp32"}, {"type": "int8", "calibration_samples": 50}]},
}


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


def assert_clean_error(r: Result, code: int, *needles: str) -> None:
    assert r.code == code, (r.code, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr
    for n in needles:
        assert n in r.stderr, (n, r.stderr)
