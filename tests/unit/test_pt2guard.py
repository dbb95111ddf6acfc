"""What edgeq refuses in a .pt2 before torch.export.load reads it (edgeq/stages/pt2guard.py), on archives laid out
like torch 2.14's, without torch. The same refusals on files torch itself wrote, and the weights-only loading, are
in tests/func/test_from_torch.py (test_a_hostile_pt2_runs_none_of_its_code)."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest

from edgeq.errors import ModelError
from edgeq.stages import pt2guard

# what torch 2.14 wrote for a model exported with dynamic shapes (srepr), and what older releases wrote (str)
SAFE = [
    "Symbol('s27', positive=True, integer=True)",
    "Add(Mul(Integer(2), Symbol('s65', positive=True, integer=True)), Integer(1))",
    "Max(Integer(1), Add(FloorDiv(Add(Symbol('s27', positive=True, integer=True), Integer(-3)), Integer(2)), Integer(1)))",
    "Float('0.5', precision=53)",
    "2*s0 + 1",
    "FloorDiv(s0, 2) + Mod(u1, 3)",
    "(s0 <= 5) & (s1 > 2)",
    "-oo",
]
HOSTILE = [
    "__import__('os').system('touch /tmp/x')",
    "__import__",
    "eval(chr(111))",
    "Symbol('a').func",
    "s0.__class__",
    "Symbol('a) + open(0')",
    "Symbol('a)",  # a quote left open
    'Symbol("a")',
    "lambda: 1",
    "[s0][0]",
    "s0 if s0 else s1",
    "getattr(s0, s1)",
    "Integer(1)\\\n+1",
    "1" * 20_000,
]


@pytest.mark.parametrize("expr", SAFE)
def test_shape_expressions_torch_writes_pass(expr):
    assert pt2guard.unsafe_expression(expr) is None


@pytest.mark.parametrize("expr", HOSTILE)
def test_anything_else_sympify_would_evaluate_is_refused(expr):
    assert pt2guard.unsafe_expression(expr)


def _pt2(path: Path, *, sizes=None, constants=None, extra: dict | None = None) -> Path:
    """An archive laid out like torch 2.14's torch.export.save (names under a root folder, JSON configs)."""
    model = {"graph_module": {"graph": {"tensor_values": {"x": {"sizes": sizes or [{"as_int": 1}, {"as_int": 4}]}}}}}
    files = {
        "models/model.json": json.dumps(model),
        "data/weights/model_weights_config.json": json.dumps({"config": {"l.weight": {"path_name": "weight_0"}}}),
        "data/weights/weight_0": b"\0" * 16,
        "data/constants/model_constants_config.json": json.dumps({"config": constants or {}}),
        "archive_format": "pt2",
        **(extra or {}),
    }
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(f"{path.stem}/{name}", data)
    return path


def test_a_plain_export_passes_and_a_file_that_is_no_zip_is_left_to_torch(tmp_path):
    pt2guard.check_pt2(_pt2(tmp_path / "good.pt2"))
    pt2guard.check_pt2(_pt2(tmp_path / "dynamic.pt2", sizes=[{"as_expr": {"expr_str": SAFE[1], "hint": {"as_int": 3}}}]))
    (tmp_path / "junk.pt2").write_bytes(b"not a zip")
    pt2guard.check_pt2(tmp_path / "junk.pt2")  # torch.export.load says what it is not


@pytest.mark.parametrize(
    "kind, needle",
    [
        ("opaque member", "a pickled Python object (opaque/data/constants/opaque_obj_0)"),
        ("custom member", "a pickled Python object (custom/data/constants/custom_obj_0)"),
        ("config names one", "a pickled Python object (opaque_obj_/../weights/weight_0)"),
        ("expression", "a shape expression naming '__import__' in expression/models/model.json"),
    ],
)
def test_what_torch_unpickles_or_evaluates_past_weights_only_is_refused(tmp_path, kind, needle):
    if kind == "opaque member":
        p = _pt2(tmp_path / "opaque.pt2", extra={"data/constants/opaque_obj_0": b"pickle"})
    elif kind == "custom member":
        p = _pt2(tmp_path / "custom.pt2", extra={"data/constants/custom_obj_0": b"torchscript pickle"})
    elif kind == "config names one":  # the prefix in the config picks pickle.loads, whatever file it then reads
        p = _pt2(tmp_path / "config.pt2", constants={"k": {"path_name": "opaque_obj_/../weights/weight_0"}})
    else:
        hostile = {"as_expr": {"expr_str": "__import__('os').getcwd()", "hint": {"as_int": 1}}}
        p = _pt2(tmp_path / "expression.pt2", sizes=[hostile])
    with pytest.raises(ModelError) as e:
        pt2guard.check_pt2(p)
    assert needle in e.value.message and "edgeq does not load this .pt2" in e.value.message
    assert "torch.export.save" in e.value.hint


def test_weights_only_loads_is_set_inside_and_restored_after(monkeypatch):
    monkeypatch.delenv(pt2guard.FORCE_WEIGHTS_ONLY, raising=False)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # torch refuses to load with both set
    with pt2guard.weights_only_loads():
        assert os.environ[pt2guard.FORCE_WEIGHTS_ONLY] == "1"
        assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" not in os.environ
    assert pt2guard.FORCE_WEIGHTS_ONLY not in os.environ
    assert os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] == "1"
