"""CLI conventions: -h everywhere, --debug anywhere on the line, shell completion of commands."""

from __future__ import annotations

import os
import subprocess
import sysconfig
from pathlib import Path


def test_short_help_on_the_app_and_a_subcommand(edgeq):
    for args in (["-h"], ["bench", "-h"], ["devices", "setup", "-h"]):
        r = edgeq(*args)
        assert r.code == 0 and "Usage: edgeq" in r.stdout, (args, r.stderr)


def test_debug_after_the_subcommand_shows_the_traceback(edgeq, tmp_path):
    missing = tmp_path / "none.tflite"
    r = edgeq("inspect", missing)
    assert r.code == 5 and "Traceback" not in r.stderr and "file not found" in r.stderr
    r = edgeq("inspect", missing, "--debug")
    assert r.code != 0 and "Traceback" in r.stderr and "ModelError" in r.stderr, r.stderr
    r = edgeq("inspect", "--", "--debug")  # after `--` it is an argument (a file named --debug), not the flag
    assert "Traceback" not in r.stderr and "--debug" in r.stderr, r.stderr


def test_bash_completion_of_commands(tmp_path):
    exe = Path(sysconfig.get_path("scripts")) / "edgeq"
    env = {**os.environ, "_EDGEQ_COMPLETE": "complete_bash", "COMP_WORDS": "edgeq dev", "COMP_CWORD": "1"}
    p = subprocess.run([str(exe)], capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)  # noqa: S603
    assert p.returncode == 0 and p.stdout.split() == ["devices"], (p.stdout, p.stderr)
    env["COMP_WORDS"], env["COMP_CWORD"] = "edgeq devices s", "2"
    p = subprocess.run([str(exe)], capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)  # noqa: S603
    assert sorted(p.stdout.split()) == ["setup"], p.stdout
