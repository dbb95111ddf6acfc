"""Fixtures and helpers for the fleet tests (imported by tests/test_fleet*.py; not a conftest).

The farm is real OpenSSH (tests/sshfarm.py); models are built with real TensorFlow.
"""

from __future__ import annotations

import io
import json
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import sshfarm

# Fixtures are registered under their `name=`; test modules import the *_fixture functions, so
# linters never see a test argument shadowing an import.


@pytest.fixture(autouse=True, name="edgeq_home")
def edgeq_home_fixture(tmp_path, monkeypatch):
    """Every test gets its own edgeq home; nothing lands in the repo's ./.edgeq."""
    monkeypatch.setenv("EDGEQ_HOME", str(tmp_path / "edgeq-home"))
    monkeypatch.delenv("EDGEQ_DEVICES", raising=False)


@pytest.fixture(scope="module", name="farm")
def farm_fixture(tmp_path_factory):
    f = sshfarm.SSHFarm.start(tmp_path_factory.mktemp("farm"), n=3)
    try:
        yield f
    finally:
        f.stop()


@pytest.fixture(scope="module", name="tflite_models")
def tflite_models_fixture(tmp_path_factory) -> dict[str, Path]:
    """Two loadable Input(8)->Dense(3) models with different weights, and a truncated (unloadable) one."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    d = tmp_path_factory.mktemp("models")
    out = {}
    for name, seed in (("dense_a", 1), ("dense_b", 2)):
        tf.keras.utils.set_random_seed(seed)
        inp = tf.keras.Input((8,))
        model = tf.keras.Model(inp, tf.keras.layers.Dense(3)(inp))
        blob = tf.lite.TFLiteConverter.from_keras_model(model).convert()
        assert blob[4:8] == b"TFL3"
        (d / f"{name}.tflite").write_bytes(blob)
        out[name] = d / f"{name}.tflite"
    good = out["dense_a"].read_bytes()
    out["broken"] = d / "broken.tflite"
    out["broken"].write_bytes(good[: len(good) // 2])  # right header, cut in half: the runtime refuses it
    out["not_tflite"] = d / "model.onnx.tflite"
    out["not_tflite"].write_bytes(b"\x08\x07\x12\x04onnx" + bytes(100))
    return out


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
