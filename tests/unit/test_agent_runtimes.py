"""The board agent's runtimes (edgeq.agent.runtimes): choosing one, the Runtime/Model protocol over the TFLite
Interpreter API, the load check built on it, and the zipapp that ships them.

The real runtime here is ai-edge-litert, running the harness floor's no-op model (f(x) = 2x + 1, MUL then ADD).
A small fake Interpreter stands in only where a real one cannot fail on demand (a segfault, an old runtime).
"""

from __future__ import annotations

import ast
import base64
import gc
import importlib
import os
import signal
import sys
import zipfile
from importlib import metadata

import numpy as np
import pytest

from edgeq.agent import AGENT_MODULES, build_zipapp, loadcheck, runtimes
from edgeq.agent.codes import AgentFailure
from edgeq.agent.floor import NOOP_MODEL_B64, harness_floor
from edgeq.agent.runtimes.interpreter import InterpreterRuntime
from edgeq.testing.common import REPO

AGENT_DIR = REPO / "edgeq" / "agent"
NOOP = base64.b64decode(NOOP_MODEL_B64)
X = np.array([[0.0, 1.0, -2.5, 3.25]], dtype=np.float32)

# the TFLite Interpreter API: only edgeq/agent/runtimes/ may touch it
INTERPRETER_API = {
    "Interpreter",
    "OpResolverType",
    "_get_ops_details",
    "allocate_tensors",
    "get_input_details",
    "get_output_details",
    "get_tensor",
    "get_tensor_details",
    "invoke",
    "load_delegate",
    "resize_tensor_input",
    "set_tensor",
}


@pytest.fixture
def litert():
    rt = runtimes.open_runtime()
    assert rt.name == "ai-edge-litert"  # the first in the order, installed here
    return rt


@pytest.fixture
def noop_file(tmp_path):
    path = tmp_path / "noop.tflite"
    path.write_bytes(NOOP)
    return path


# ------------------------------------------------------------------------------------------------ the seams


def test_only_the_runtime_modules_touch_the_interpreter_api():
    for path in sorted(AGENT_DIR.rglob("*.py")):
        rel = path.relative_to(AGENT_DIR).as_posix()
        if rel.startswith("runtimes/"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
            assert name not in INTERPRETER_API, (rel, node.lineno, name)


def _needs(module: str, node: ast.ImportFrom) -> list:
    """The files a relative import in `module` reads: the modules it names, else the package's __init__.py."""
    package = module.split("/")[:-1]
    base = "/".join(package[: len(package) - (node.level - 1)] + (node.module.split(".") if node.module else []))
    prefix = base + "/" if base else ""

    def module_file(path: str) -> str | None:
        for candidate in (path + ".py", path + "/__init__.py"):
            if (AGENT_DIR / candidate).is_file():
                return candidate
        return None

    if node.module:
        return [module_file(base)]
    return [module_file(prefix + a.name) or prefix + "__init__.py" for a in node.names]


def test_the_zipapp_ships_every_module_the_agent_imports():
    host_only = {"__init__.py"}  # the orchestrator side
    on_disk = {p.relative_to(AGENT_DIR).as_posix() for p in AGENT_DIR.rglob("*.py")}
    assert on_disk - host_only == set(AGENT_MODULES)
    for module in AGENT_MODULES:
        for node in ast.walk(ast.parse((AGENT_DIR / module).read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                for needed in _needs(module, node):
                    assert needed in AGENT_MODULES, (module, node.lineno, needed)


def test_the_zipapp_imports_its_runtimes_package(tmp_path):
    pyz = build_zipapp(tmp_path)
    names = set(zipfile.ZipFile(pyz).namelist())
    assert {"edgeq_agent/" + m for m in AGENT_MODULES} <= names
    sys.path.insert(0, str(pyz))
    try:
        for module in ("runtimes", "runtimes.interpreter", "runtimes.litert", "runtimes.tflite_runtime", "measure"):
            mod = importlib.import_module("edgeq_agent." + module)
            assert str(pyz) in mod.__file__
        rt = sys.modules["edgeq_agent.runtimes"].open_runtime()
        assert rt.info() == runtimes.open_runtime().info()
    finally:
        sys.path.remove(str(pyz))
        for name in [n for n in sys.modules if n == "edgeq_agent" or n.startswith("edgeq_agent.")]:
            del sys.modules[name]


# ------------------------------------------------------------------------------------------------ choosing


def test_open_runtime_takes_the_first_importable_in_order(monkeypatch):
    assert runtimes.RUNTIMES == ("ai-edge-litert", "tflite-runtime", "tensorflow")
    monkeypatch.delenv(runtimes.RUNTIME_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)  # a board without it falls through
    monkeypatch.setitem(sys.modules, "tflite_runtime", None)
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    with pytest.raises(AgentFailure) as ei:
        runtimes.open_runtime()
    assert ei.value.kind == "no_runtime" and list(ei.value.extra["tried"]) == list(runtimes.RUNTIMES)
    assert "pip install ai-edge-litert" in ei.value.message


def test_the_environment_restricts_the_runtimes_tried(monkeypatch):
    monkeypatch.setenv(runtimes.RUNTIME_ENV, " tflite-runtime ,nosuch")
    monkeypatch.setitem(sys.modules, "tflite_runtime", None)  # whether or not this machine has it
    with pytest.raises(AgentFailure) as ei:
        runtimes.open_runtime()
    assert set(ei.value.extra["tried"]) == {"tflite-runtime"} and "tflite_runtime" in ei.value.extra["tried"]["tflite-runtime"]
    monkeypatch.setenv(runtimes.RUNTIME_ENV, "ai-edge-litert")
    assert runtimes.open_runtime().name == "ai-edge-litert"


def test_no_numpy_is_no_runtime(monkeypatch):
    monkeypatch.setattr(runtimes, "np", None)
    monkeypatch.setitem(sys.modules, "numpy", None)
    assert runtimes.numpy_version() is None
    with pytest.raises(AgentFailure) as ei:
        runtimes.open_runtime()
    assert ei.value.kind == "no_runtime" and "numpy" in ei.value.message


# ------------------------------------------------------------------------------------------------ the protocol, real


def test_describe_names_the_runtime_and_what_it_can_do(litert):
    assert litert.info() == {"name": "ai-edge-litert", "version": metadata.version("ai-edge-litert")}
    assert litert.describe() == {
        **litert.info(),
        "api": "interpreter",
        "delegates": ["xnnpack", "none", "edgetpu"],
        "can_profile": False,
    }
    assert isinstance(litert, runtimes.Runtime) and runtimes.numpy_version() == np.__version__


def test_load_run_and_read_tensors(litert, noop_file):
    model = litert.load(noop_file, threads=2, delegate="none")
    assert isinstance(model, runtimes.Model) and model.init_seconds > 0
    assert model.delegate == {"requested": "none", "used": "none", "note": model.delegate["note"]}
    (inp,), (out,) = model.inputs(), model.outputs()
    assert [int(d) for d in inp["shape"]] == [1, 4] and np.dtype(inp["dtype"]) == np.float32
    model.set_input(inp["index"], X)
    model.run()
    np.testing.assert_array_equal(model.tensor(out["index"]), 2 * X + 1)
    model.resize_input(inp["index"], [3, 4])
    rows = np.arange(12, dtype=np.float32).reshape(3, 4)
    model.set_input(inp["index"], rows)
    model.run()
    np.testing.assert_array_equal(model.tensor(out["index"]), 2 * rows + 1)


def test_load_inline_serves_the_harness_floor(litert):
    model = litert.load_inline(NOOP, threads=1)
    detail = model.inputs()[0]
    model.set_input(detail["index"], X)
    model.run()
    np.testing.assert_array_equal(model.tensor(model.outputs()[0]["index"]), 2 * X + 1)
    floor = harness_floor(litert, 1)
    assert floor["runs"] > 0 and 0 < floor["min_s"] <= floor["p50_s"]


def test_load_traced_keeps_every_op_output(litert, noop_file):
    model = litert.load_traced(noop_file)
    ops = model.ops()
    assert [op["op_name"] for op in ops] == ["MUL", "ADD"]
    names = {int(d["index"]): d["name"] for d in model.tensors()}
    model.set_input(model.inputs()[0]["index"], X)
    model.run()
    mul_out = int(ops[0]["outputs"][0])
    assert mul_out in names
    np.testing.assert_array_equal(model.tensor(mul_out), 2 * X)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # litert's half-made Delegate.__del__
def test_load_failures_name_the_runtime(litert, tmp_path):
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"TFL3 not a flatbuffer" * 10)
    with pytest.raises(AgentFailure) as ei:
        litert.load(junk)
    f = ei.value
    assert f.kind == "unloadable" and f.message.startswith("the ai-edge-litert runtime cannot load junk.tflite: ")
    assert f.extra["runtime"] == litert.info()
    with pytest.raises(AgentFailure) as ei:
        litert.load(junk, delegate="edgetpu")  # no libedgetpu on this machine: refused before the model is read
    assert ei.value.kind == "delegate_missing" and "libedgetpu1-std" in ei.value.message
    del ei  # its traceback holds the Delegate: collected here, under this test's filter
    gc.collect()


# ------------------------------------------------------------------------------------------------ the protocol, faked


class _FakeInterpreter:
    """The Interpreter API's shape, failing as asked: `fail` in ("load", "invoke", "segfault")."""

    fail = ""

    def __init__(self, model_path=None, model_content=None, num_threads=1, **kwargs):
        if self.fail == "load":
            raise RuntimeError("Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'")
        self.kwargs = dict(kwargs, model_path=model_path, num_threads=num_threads)

    def allocate_tensors(self):
        pass

    def get_input_details(self):
        return [{"index": 0, "shape": np.array([1, 8]), "dtype": np.int8}]

    def set_tensor(self, index, value):
        pass

    def invoke(self):
        if self.fail == "segfault":
            os.kill(os.getpid(), signal.SIGSEGV)
        if self.fail == "invoke":
            raise RuntimeError("kernel failed")


def _fake(fail="", resolver=None, load_delegate=None) -> InterpreterRuntime:
    cls = type("Interp", (_FakeInterpreter,), {"fail": fail})
    return InterpreterRuntime("tflite-runtime", "2.14.0", cls, load_delegate, resolver)


def test_delegate_modes_become_interpreter_options():
    class Resolver:
        BUILTIN_WITHOUT_DEFAULT_DELEGATES = "builtin-only"

    model = _fake(resolver=Resolver).load("m.tflite", delegate="none")
    assert model._interp.kwargs["experimental_op_resolver_type"] == "builtin-only" and model.delegate["used"] == "none"
    old = _fake()  # no OpResolverType: "none" cannot switch XNNPACK off, and says so
    assert old.load("m.tflite", delegate="none").delegate["used"] == "runtime-default"
    assert old.delegates() == ["xnnpack", "edgetpu"] and old.describe()["can_profile"] is False
    tpu = _fake(load_delegate=lambda lib: "delegate:" + lib).load("m.tflite", delegate="edgetpu")
    assert tpu._interp.kwargs["experimental_delegates"] == ["delegate:libedgetpu.so.1"] and tpu.delegate["used"] == "edgetpu"


def test_an_op_the_runtime_lacks_is_named():
    with pytest.raises(AgentFailure) as ei:
        _fake("load").load("/x/m.tflite")
    assert ei.value.kind == "unloadable" and (ei.value.extra["op"], ei.value.extra["op_version"]) == ("FULLY_CONNECTED", 12)


def test_a_runtime_that_cannot_trace_is_unsupported():
    class NoPreserve(_FakeInterpreter):
        def __init__(self, model_path=None, num_threads=1):  # older than TF 2.5: no experimental_preserve_all_tensors
            pass

    rt = InterpreterRuntime("tflite-runtime", "2.4.0", NoPreserve, None, None)
    with pytest.raises(AgentFailure) as ei:
        rt.load_traced("m.tflite")
    assert ei.value.kind == "unsupported" and "experimental_preserve_all_tensors" in ei.value.message
    with pytest.raises(AgentFailure) as ei:
        _fake().load_traced("m.tflite")  # loads, but cannot list its ops
    assert ei.value.kind == "unsupported" and "_get_ops_details" in ei.value.message


# ------------------------------------------------------------------------------------------------ load check


def test_load_check_runs_the_model_once_in_a_child(litert, noop_file):
    assert loadcheck.check_runs(litert, noop_file) > 0


def test_load_check_turns_a_crash_or_a_kernel_error_into_unloadable():
    with pytest.raises(AgentFailure) as ei:
        loadcheck.check_runs(_fake("segfault"), "m.tflite")
    f = ei.value
    assert f.kind == "unloadable" and f.extra["crash"]["name"] == "SIGSEGV", f.to_doc()
    assert "tflite-runtime 2.14.0 runtime loads the model but crashed (SIGSEGV)" in f.message
    with pytest.raises(AgentFailure) as ei:
        loadcheck.check_runs(_fake("invoke"), "m.tflite")
    assert ei.value.kind == "unloadable" and ei.value.message.endswith("cannot run it: RuntimeError: kernel failed")
    with pytest.raises(AgentFailure) as ei:
        loadcheck.check_runs(_fake("load"), "m.tflite")  # the child's own failure crosses the pipe whole
    assert ei.value.kind == "unloadable" and ei.value.extra["op"] == "FULLY_CONNECTED"
