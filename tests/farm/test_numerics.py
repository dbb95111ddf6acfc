"""`edgeq numerics`: the board's intermediate tensors against this host's, on a real sshd board.

A layer requantized with a wrong scale (one FULLY_CONNECTED's weight scale x1.5, weights unchanged) stands
for a runtime that computes one kernel differently: the check must name exactly that op, for each layer.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgeq.errors import ExitCode
from edgeq.testing.fleet import board_entry, run_json, write_devices
from edgeq.testing.perturb import perturb_weight_scale, small_int8_mlp


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    d = tmp_path_factory.mktemp("numerics")
    small_int8_mlp(d / "good.tflite", d / "golden.npy")
    bad = {}
    for op in (0, 1, 2):
        bad[op] = d / f"bad{op}.tflite"
        perturb_weight_scale(d / "good.tflite", bad[op], op, 1.5)
    return {"good": d / "good.tflite", "golden": d / "golden.npy", "bad": bad}


@pytest.fixture
def devices(farm, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEQ_HOME", str(tmp_path / "home"))
    return write_devices(tmp_path, board_entry(farm, farm.boards[0], tmp_path), local=True)


def test_unchanged_model_matches_the_host_op_by_op(devices, mlp):
    code, doc, err = run_json("numerics", mlp["good"], "-t", "all", "--inputs", mlp["golden"], "--devices", devices)
    assert code == 0, (doc, err)
    assert doc["ok"] and doc["rows"] == 4 and doc["reference"] == str(mlp["good"])
    for c in doc["checks"]:
        assert c["ok"] and c["ops_compared"] == 3 and "first_divergent" not in c, c
        assert all(o["unit"] == "lsb" and o["error"] == 0 for o in c["ops"]), c["ops"]


@pytest.mark.parametrize("op", [0, 1, 2])
def test_perturbed_layer_is_localised_to_that_op(devices, mlp, op):
    code, doc, err = run_json(
        "numerics", mlp["bad"][op], "-t", "b1", "--inputs", mlp["golden"], "--reference", mlp["good"], "--devices", devices
    )
    assert code == ExitCode.FLEET and "b1" in err and f"op #{op}" in err, err
    (c,) = doc["checks"]
    first = c["first_divergent"]
    assert not c["ok"] and first["op_index"] == op and first["op"] == "FULLY_CONNECTED" and first["error"] > 1, c
    assert all(not o["exceeds"] for o in c["ops"][:op]), c["ops"]  # the layers before it agree


def test_bad_golden_inputs_are_a_data_error(devices, mlp, tmp_path):
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((2, 7), dtype=np.float32))
    code, doc, err = run_json("numerics", mlp["good"], "-t", "b1", "--inputs", wrong, "--devices", devices)
    assert code == ExitCode.DATA and "not rows of the model input shape" in err and "Traceback" not in err, err
