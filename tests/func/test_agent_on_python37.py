"""The built zipapp runs under a real Python 3.7 (a Coral's Mendel has 3.7): its packages (runtimes/ among
them) import there, and a board without numpy or a runtime gets a document saying so, not a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from edgeq.agent import build_zipapp, parse_agent_output


def _python37() -> str | None:
    """python3.7 on PATH, else a pyenv 3.7.x; pyenv shims may exist but not run, so each is asked its version."""
    candidates = [shutil.which("python3.7")]
    for root in {os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv"), "/root/.pyenv"}:
        try:
            candidates += sorted(str(p) for p in Path(root, "versions").glob("3.7*/bin/python"))
        except OSError:
            continue
    for py in filter(None, candidates):
        try:
            probe = subprocess.run(  # noqa: S603
                [py, "-c", "import sys; print(sys.version_info[:2] == (3, 7))"], capture_output=True, text=True, timeout=60
            )
        except OSError:
            continue
        if probe.stdout.strip() == "True":
            return py
    return None


@pytest.fixture(scope="module")
def py37():
    py = _python37()
    if py is None:
        pytest.skip("no Python 3.7 here (python3.7 on PATH or a pyenv 3.7.x)")
    return py


@pytest.fixture(scope="module")
def pyz(tmp_path_factory):
    return build_zipapp(tmp_path_factory.mktemp("agent"))


def run37(py37, pyz, *args) -> tuple[dict, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    p = subprocess.run([py37, str(pyz), *map(str, args)], capture_output=True, text=True, timeout=120, env=env)  # noqa: S603
    assert p.stdout.count("\n") == 1 and "Traceback" not in p.stderr, (p.stdout, p.stderr[-2000:])
    return parse_agent_output(p.stdout, p.stderr, p.returncode), p.returncode


def test_help_and_status_run_on_python37(py37, pyz, tmp_path):
    doc, rc = run37(py37, pyz, "bench", "--help")
    assert rc == 0 and doc["command"] == "help"
    doc, rc = run37(py37, pyz, "status", "--workdir", tmp_path / "w", "--name", "m")
    assert rc == 0 and doc["command"] == "status"


def test_facts_on_python37_chooses_a_runtime_or_says_why_not(py37, pyz, tmp_path):
    doc, rc = run37(py37, pyz, "facts", "--workdir", tmp_path / "w")
    assert doc["board"]["python"].startswith("3.7.")
    if rc == 0:
        assert doc["board"]["runtime"]["name"] in ("ai-edge-litert", "tflite-runtime", "tensorflow")
    else:  # a bare pyenv Python: no numpy, so no runtime
        assert rc == 3 and doc["kind"] == "no_runtime" and ("numpy" in doc["error"] or doc["tried"]), doc
