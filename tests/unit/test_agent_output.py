"""The board agent's pure parts: output contract, op-error parsing, input quantization, zipapp build, standalone sources."""

from __future__ import annotations

import ast
import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeq.agent import AGENT_MODULES, AgentOutputError, agent_sha256, build_zipapp, parse_agent_output
from edgeq.testing.common import REPO

AGENT_DIR = REPO / "edgeq" / "agent"


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_op_version_is_parsed_from_runtime_errors():
    from edgeq.agent.runtimes.interpreter import parse_op_error

    msg = "Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'. An older version of this builtin might be supported."
    assert parse_op_error(msg) == ("FULLY_CONNECTED", 12)
    assert parse_op_error("Encountered unresolved custom op: MyOp.") == ("MyOp", None)
    assert parse_op_error("The model is not a valid Flatbuffer buffer") == (None, None)


# ------------------------------------------------------------------------------------------------ bench


def test_quantization_of_float_inputs_matches_the_formula():
    from edgeq.agent.inputs import to_model_dtype

    detail = {"dtype": np.int8, "quantization": (0.5, -3)}
    x = np.array([[0.0, 0.25, 0.75, -1.0, 100.0, -100.0]], dtype=np.float32)
    assert to_model_dtype(x, detail).tolist() == [[-3, -2, -1, -5, 127, -128]]
    assert to_model_dtype(x, {"dtype": np.uint8, "quantization": (1.0, 128)}).tolist() == [[128, 128, 129, 127, 228, 28]]


# ------------------------------------------------------------------------------------------------ lock


# hold_lock: a live process holding W/lock exactly as an agent does (tests/faultkit.py)


# ------------------------------------------------------------------------------------------------ orchestrator side


@pytest.mark.parametrize(
    "stdout, rc",
    [
        ("", 0),
        ("   \n", 1),
        ("Traceback (most recent call last):\n  boom", 1),
        ('{"ok": true, "command": "bench", "samples_s": [0.1, 0.2', -9),
        ("[1, 2, 3]\n", 0),
        ('"ok"\n', 0),
        ('{"command": "facts"}\n', 0),
        ('{"ok": true}\n', 1),
        ('{"ok": false}\n', 4),
        ("[" * 100000 + "]" * 100000, 0),
        (b"\xff\xfe\x00garbage", 0),
        (None, None),
        ("x" * (64 * 1024 * 1024 + 1), 0),
    ],
)
def test_parse_agent_output_rejects_garbage(stdout, rc):
    with pytest.raises(AgentOutputError) as info:
        parse_agent_output(stdout, "some stderr line", rc)
    assert len(str(info.value)) < 1000


def test_parse_agent_output_accepts_banner_then_object():
    doc = parse_agent_output('Welcome to Raspberry Pi!\n{"ok": true, "command": "facts"}\n', "", 0)
    assert doc == {"ok": True, "command": "facts"}
    doc = parse_agent_output('{"ok": false, "kind": "locked", "error": "held"}\n', "", 6)
    assert doc["kind"] == "locked"
    assert isinstance(AgentOutputError("x"), ValueError)


def test_zipapp_build_is_deterministic_and_cached(tmp_path):
    a = build_zipapp(tmp_path / "a")
    b = build_zipapp(tmp_path / "b")
    assert a.name == b.name == "edgeq-agent-" + agent_sha256()[:12] + ".pyz"
    assert a.read_bytes() == b.read_bytes() and sha(a) == agent_sha256()
    mtime = a.stat().st_mtime_ns
    assert build_zipapp(tmp_path / "a") == a and a.stat().st_mtime_ns == mtime
    a.write_bytes(b"corrupted")
    assert sha(build_zipapp(tmp_path / "a")) == agent_sha256()


def test_zipapp_builds_at_once_from_many_threads(tmp_path):
    """One thread per board may build the agent at the same moment: each writes its own temporary file."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        paths = list(pool.map(lambda _: build_zipapp(tmp_path), range(16)))
    assert len(set(paths)) == 1 and sha(paths[0]) == agent_sha256()
    assert [p.name for p in tmp_path.iterdir()] == [paths[0].name]  # no temporary file left behind


def test_agent_sources_are_standalone_and_python39():
    allowed = {"numpy", "tensorflow", "ai_edge_litert", "tflite_runtime"} | set(sys.stdlib_module_names)
    for module in AGENT_MODULES:
        src = (AGENT_DIR / module).read_text()
        tree = ast.parse(src, feature_version=(3, 9))
        assert "from __future__ import annotations" in src
        for node in ast.walk(tree):
            assert not isinstance(node, ast.Match), module
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [] if node.level else [node.module.split(".")[0]]
            else:
                continue
            assert set(names) <= allowed, (module, names)
        # imported by name only where a runtime is opened: tensorflow (the import-linter contract bars it statically)
        assert "importlib.import_module" not in src or module == "runtimes/tensorflow.py"
    # compiled by a real Python 3.9: tests/func/test_agent_python39.py (the unit tier runs no other Python)
