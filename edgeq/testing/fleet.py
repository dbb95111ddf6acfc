"""Helpers for the fleet tests and benches: devices.yaml entries for farm boards, the CLI run in-process.

The farm is real OpenSSH (edgeq.testing.sshfarm); tests/farm/conftest.py wraps it as the `farm` fixture.
"""

from __future__ import annotations

import io
import json
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from edgeq.testing import sshfarm


def board_entry(farm: sshfarm.SSHFarm, board: sshfarm.FarmBoard, tmp_path: Path, name: str | None = None, **over) -> str:
    """A devices.yaml item for a farm board, with a work dir private to the test."""
    name = name or board.name
    over.setdefault("workdir", str(tmp_path / "boards" / name))
    return farm.device_yaml(board, name, **over)


def write_devices(tmp_path: Path, *entries: str, defaults: str = "", local: bool = False) -> Path:
    text = ""
    if defaults:
        text += "defaults:\n" + defaults
    text += "devices:\n" + "".join(entries)
    if local:
        local_dir = tmp_path / "boards" / "local"
        text += f'  - {{"name": "local", "transport": "local", "workdir": "{local_dir}", "tags": ["farm", "local"]}}\n'
    p = tmp_path / "devices.yaml"
    p.write_text(text)
    return p


def run_cli(*args, stdin: str = "") -> tuple[int, str, str]:
    """Run `edgeq ARGS` in-process through edgeq.cli.main (the real error -> exit code mapping)."""
    from edgeq import cli
    from edgeq.cli import output as cli_output

    out, err = io.StringIO(), io.StringIO()
    old_argv, old_in = sys.argv, sys.stdin
    sys.argv, sys.stdin = ["edgeq", *map(str, args)], io.StringIO(stdin)
    code = 0
    try:
        with redirect_stdout(out), redirect_stderr(err):
            cli.main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv, sys.stdin = old_argv, old_in
        cli_output.reset()
    return code, out.getvalue(), err.getvalue()


def run_json(*args) -> tuple[int, dict, str]:
    code, out, err = run_cli(*args, "--json")
    try:
        doc = json.loads(out)
    except ValueError:
        raise AssertionError(f"stdout is not one JSON document (exit {code}):\n{out}\nstderr:\n{err}") from None
    return code, doc, err


def by_device(doc: dict) -> dict[str, dict]:
    return {r["device"]: r for r in doc["devices"]}
