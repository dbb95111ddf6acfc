"""The pipeline's numeric-check step (edgeq.pipeline.numeric) on the embedded local board (real agent subprocess,
real TFLite) and on a board that cannot be reached: golden rows written beside the run, one check per board,
and a board whose check cannot run is a fleet failure (the run's fleet_failed, exit 8)."""

from __future__ import annotations

import base64
import socket

import numpy as np

from edgeq import fleet
from edgeq.agent.floor import NOOP_MODEL_B64
from edgeq.config.pipeline import BenchmarkStageSpec
from edgeq.hashing import file_sha256
from edgeq.pipeline.numeric import numeric_stage
from edgeq.records.run import VariantResult


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_numeric_stage_checks_each_board_and_fails_the_one_it_cannot_reach(tmp_path):
    model = tmp_path / "noop.tflite"  # f(x) = 2x + 1 on float32 [1, 4]: MUL then ADD
    model.write_bytes(base64.b64decode(NOOP_MODEL_B64))
    devices = tmp_path / "devices.yaml"
    devices.write_text(
        "devices:\n  - {name: local, transport: local, workdir: " + str(tmp_path / "board") + "}\n"
        f"  - {{name: gone, host: 127.0.0.1, port: {_closed_port()}, connect_timeout: 2, retries: 1}}\n"
    )
    inv = fleet.load_inventory(devices)
    variants = {
        "fp32": VariantResult(type="fp32", artifact=str(model), sha256=file_sha256(model), size_bytes=model.stat().st_size)
    }
    spec = BenchmarkStageSpec(targets=["local", "gone"], numeric_check=True, numeric_rows=2)
    x_test = np.arange(12, dtype=np.float32).reshape(3, 4)
    logs: list[str] = []
    golden, checks, failures = numeric_stage(spec, ["local", "gone"], inv, variants, ["fp32"], x_test, tmp_path, logs.append)
    assert golden.parent == tmp_path and np.array_equal(np.load(golden), x_test[:2])
    by = {c.device: c for c in checks}
    assert by["local"].ok and by["local"].ops_compared == 2 and by["local"].first_divergent is None
    assert not by["gone"].ok and by["gone"].kind is not None
    assert len(failures) == 1 and failures[0].startswith("numeric check fp32 on gone: check failed:"), failures
    assert any("local: fp32 matches (2 ops)" in line for line in logs), logs
