"""model.torch end to end: a real PyTorch CNN trained by pipelines/fashion_torch.py (the script a user runs),
converted by the real litert-torch (the torch extra), quantized by the LiteRT quantizer, validated on
Fashion-MNIST rows, deployed and benchmarked on the local board (real agent).

PyTorch runs in its own venv, EDGEQ_TORCH_VENV ([train,torch,tflite-quant]; tests/run-all.sh builds and caches it):
PyPI's torch is the CUDA build, and litert-torch moves typing-extensions and pydantic below what a user of [train]
gets, which is what the main test venv holds. This checkout's edgeq runs there through PYTHONPATH, in child processes
(the test process itself never imports torch).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from edgeq.testing.common import REPO, Result, assert_clean_error

FASHION = Path("/usr/share/datasets/fashion-mnist")
DATA = {"source": "idx", "path": str(FASHION), "preprocess": "scale", "max_train": 1000, "max_test": 400}
HOW = (
    "run them with `bash tests/run-all.sh tests/func/test_from_torch.py` (it builds and caches that venv), or point "
    "EDGEQ_TORCH_VENV at a venv made with `pip install '.[train,torch,tflite-quant]'`"
)
NEEDED = ("torch", "litert_torch", "litert_quantizer", "tensorflow")


@pytest.fixture(scope="module")
def torch_venv() -> Path:
    """The venv with PyTorch (EDGEQ_TORCH_VENV). Missing, the tests fail naming run-all.sh: never a silent skip."""
    venv = os.environ.get("EDGEQ_TORCH_VENV")
    if not venv:
        pytest.fail(f"EDGEQ_TORCH_VENV is not set: the torch tests run PyTorch in a venv of their own; {HOW}", pytrace=False)
    py = Path(venv) / "bin" / "python"
    check = "import importlib.util as u, sys; print(' '.join(m for m in sys.argv[1:] if u.find_spec(m) is None))"
    try:
        p = subprocess.run([str(py), "-c", check, *NEEDED], capture_output=True, text=True, timeout=120)
    except OSError as e:
        pytest.fail(f"EDGEQ_TORCH_VENV={venv}: its python does not run ({e}); {HOW}", pytrace=False)
    if p.returncode or p.stdout.strip():
        pytest.fail(f"EDGEQ_TORCH_VENV={venv} lacks {p.stdout.strip() or p.stderr[-500:]}; {HOW}", pytrace=False)
    return Path(venv)


def _torch_env(venv: Path, env: dict | None = None) -> dict:
    """The environment of a child in the torch venv: its python first on PATH, this checkout's edgeq importable."""
    e = {**os.environ, **(env or {}), "VIRTUAL_ENV": str(venv)}
    e["PATH"] = os.pathsep.join([str(venv / "bin"), os.environ.get("PATH", "")])
    e["PYTHONPATH"] = os.pathsep.join([*filter(None, (env or {}).get("PYTHONPATH", "").split(os.pathsep)), str(REPO)])
    return e


@pytest.fixture
def torch_edgeq(home, tmp_path, torch_venv):
    """conftest's `edgeq` runner, but `python -m edgeq` runs in the torch venv."""

    def run(*args, cwd=None, timeout=600, env=None) -> Result:
        e = _torch_env(torch_venv, {"EDGEQ_HOME": str(home), **(env or {})})
        argv = [str(torch_venv / "bin" / "python"), "-m", "edgeq", *map(str, args)]
        p = subprocess.run(argv, capture_output=True, text=True, cwd=cwd or tmp_path, timeout=timeout, env=e)
        return Result(p.returncode, p.stdout, p.stderr)

    return run


@pytest.fixture(scope="module")
def models(tmp_path_factory, torch_venv) -> Path:
    """A folder with fashion_torch.py and its trained weights (1 epoch on 2,000 rows, by the shipped script)."""
    d = tmp_path_factory.mktemp("torch")
    shutil.copy(REPO / "pipelines" / "fashion_torch.py", d / "fashion_torch.py")
    p = subprocess.run(
        [str(torch_venv / "bin" / "python"), str(d / "fashion_torch.py"), str(d / "fashion-torch.pt"), "--epochs", "1"]
        + ["--max-train", "2000"],
        capture_output=True,
        text=True,
        timeout=600,
        env=_torch_env(torch_venv),
    )
    assert p.returncode == 0, p.stderr
    assert "epoch 1/1: test accuracy" in p.stdout
    return d


def _pipeline(d: Path, model: dict, variants: list, **extra) -> Path:
    doc = {"name": "from-torch", "seed": 1, "data": DATA, "model": model, "quantize": {"variants": variants}, **extra}
    p = d / "from-torch.yaml"
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return p


# PyTorch runs in child processes only (in the torch venv): torch.export imports triton, whose native code crashes
# (SIGSEGV) in a process that has loaded TensorFlow (edgeq.stages.torchsrc converts in a child too).
TORCH_SCRIPT = """
import json, sys
from pathlib import Path
import numpy as np, torch
sys.path.insert(0, sys.argv[1])
import fashion_torch
from edgeq.data.datasets import read_idx
net = fashion_torch.build(10)
x = read_idx(Path(sys.argv[2], "t10k-images-idx3-ubyte.gz"))[:400].astype(np.float32) / 255.0
y = read_idx(Path(sys.argv[2], "t10k-labels-idx1-ubyte.gz"))[:400]
with torch.no_grad():
    pred = net(torch.from_numpy(x).unsqueeze(1)).argmax(-1).numpy()
if len(sys.argv) > 3:
    torch.export.save(torch.export.export(net, (torch.zeros(1, 1, 28, 28),)), sys.argv[3])
print(json.dumps({"accuracy": float((pred == y).mean())}))
"""


def _torch_accuracy(venv: Path, d: Path, export_to: Path | None = None) -> float:
    """The module's own accuracy on the pipeline's 400 test rows (NCHW); optionally its torch.export file."""
    env = _torch_env(venv, {"EDGEQ_TORCH_WEIGHTS": str(d / "fashion-torch.pt")})
    argv = [str(venv / "bin" / "python"), "-c", TORCH_SCRIPT, str(d), str(FASHION), *([str(export_to)] if export_to else [])]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])["accuracy"]


def test_torch_module_converted_quantized_validated_deployed_and_benchmarked(torch_edgeq, torch_venv, models):
    variants = [{"type": "fp32"}, {"type": "int8", "calibration_samples": 100}, {"type": "dynamic"}]
    fleet = {
        "deploy": {"targets": ["local"], "variants": ["int8"]},
        "benchmark": {"targets": ["local"], "runs": 10, "warmup": 1, "min_seconds": 0.05, "sessions": 1, "threads": [1]},
    }
    fleet["benchmark"] |= {"variants": ["fp32", "int8"], "accuracy_check": True}
    p = _pipeline(models, {"torch": "fashion_torch:build"}, variants, **fleet)
    env = {"EDGEQ_TORCH_WEIGHTS": str(models / "fashion-torch.pt")}
    r = torch_edgeq("run", p, "--json", env=env)
    assert r.code == 0, r.stderr
    doc = r.json()
    train, v, q = doc["stages"]["train"], doc["variants"], doc["stages"]["quantize"]
    assert doc["status"] == "ok" and "litert-torch" in train["skipped"] and train["cached"] is False
    assert train["params"] == 421_642  # FashionCNN: 320 + 18,496 + 401,536 + 1,290
    for k in ("int8", "dynamic"):
        assert q[k]["quantizer"].startswith("litert-quantizer "), q[k]
    from ai_edge_litert.interpreter import Interpreter

    fp32 = Interpreter(model_path=v["fp32"]["artifact"])
    assert tuple(fp32.get_input_details()[0]["shape"]) == (1, 28, 28, 1)  # NHWC like the data: the wrapper transposes
    int8 = Interpreter(model_path=v["int8"]["artifact"])
    assert int8.get_input_details()[0]["dtype"] == np.int8
    assert v["int8"]["size_bytes"] < 0.3 * v["fp32"]["size_bytes"]
    # the converted float model is the PyTorch model: same accuracy on the same 400 test rows
    torch_acc = _torch_accuracy(torch_venv, models)
    assert v["fp32"]["accuracy"] == pytest.approx(torch_acc, abs=0.0026)  # at most one image of 400 differs
    assert torch_acc > 0.6  # it learned something: the comparison is not between two chance models
    assert abs(v["fp32"]["accuracy"] - v["int8"]["accuracy"]) <= 0.02
    assert {(b["variant"], b["ok"]) for b in doc["benchmarks"]} == {("fp32", True), ("int8", True)}
    for a in doc["stages"]["benchmark_accuracy"]:
        assert a["ok"] and a["board_accuracy"] == a["validate_accuracy"], a
    again = torch_edgeq("run", p, "--json", env=env)
    assert again.code == 0, again.stderr
    assert again.json()["stages"]["train"]["cached"] is True  # converted once, kept
    mod = models / "fashion_torch.py"
    mod.write_text(mod.read_text() + "\n# edited\n")
    edited = torch_edgeq("run", p, "--json", env=env)
    assert edited.code == 0 and edited.json()["stages"]["train"]["cached"] is False  # the module's content is the key


def test_torch_export_file(torch_edgeq, torch_venv, models, tmp_path):
    """model.torch: a .pt2 written by torch.export.save (no module to import at run time)."""
    torch_acc = _torch_accuracy(torch_venv, models, export_to=tmp_path / "fashion.pt2")
    p = _pipeline(tmp_path, {"torch": "fashion.pt2"}, [{"type": "fp32"}, {"type": "weight_only"}])
    r = torch_edgeq("run", p, "--json")
    assert r.code == 0, r.stderr
    v = r.json()["variants"]
    assert v["fp32"]["accuracy"] == pytest.approx(torch_acc, abs=0.0026)
    assert v["weight_only"]["accuracy"] == pytest.approx(torch_acc, abs=0.011)


BAD_MODULE = """
import torch
def not_a_module():
    return 42
def three_channels():
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(10)).eval()
"""


@pytest.mark.parametrize(
    "model, code, needles",
    [
        ({"torch": "bad:not_a_module"}, 5, ["model.torch 'bad:not_a_module' returned int, not a torch.nn.Module"]),
        ({"torch": "bad:three_channels"}, 5, ["does not take NCHW input [1, 1, 28, 28]", "torch_layout: nhwc"]),
        ({"torch": "nowhere.pt2"}, 5, ["model.torch file not found", "nowhere.pt2", "torch.export.save"]),
        ({"torch": "nomodule:build"}, 5, ["model.torch 'nomodule:build': module 'nomodule' not found"]),
        ({"torch": "bad"}, 3, ["from-torch.yaml:", "model.torch", "package.module:function"]),
        ({"builtin": "cnn", "torch_layout": "nhwc"}, 3, ["from-torch.yaml:", "torch_layout applies to model.torch only"]),
    ],
)
def test_torch_errors_are_clear(torch_edgeq, tmp_path, model, code, needles):
    (tmp_path / "bad.py").write_text(BAD_MODULE)
    p = _pipeline(tmp_path, model, [{"type": "fp32"}])
    assert_clean_error(torch_edgeq("run", p), code, *needles)


def test_train_keys_are_refused_for_a_torch_model(torch_edgeq, tmp_path):
    p = _pipeline(tmp_path, {"torch": "bad:not_a_module"}, [{"type": "fp32"}], train={"epochs": 3})
    assert_clean_error(torch_edgeq("run", p), 3, "from-torch.yaml:", "model.torch is a model trained elsewhere: train.epochs")


def test_without_the_extra_it_exits_12_naming_it(edgeq, tmp_path):
    """In the main test venv (a [train] user's, no torch); the blocker keeps it true in a venv that has torch."""
    site = tmp_path / "blocker"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import sys\n"
        "class _B:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'litert_torch':\n"
        "            raise ModuleNotFoundError('No module named litert_torch (blocked)', name=name)\n"
        "sys.meta_path.insert(0, _B())\n"
    )
    (tmp_path / "bad.py").write_text(BAD_MODULE)
    p = _pipeline(tmp_path, {"torch": "bad:not_a_module"}, [{"type": "fp32"}])
    r = edgeq("run", p, env={"PYTHONPATH": os.pathsep.join([str(site), str(REPO)])})
    assert_clean_error(r, 12, "model.torch needs PyTorch and litert-torch", "pip install 'edgeq[torch]'", "model.tflite")


def test_shipped_pipeline_reads_and_an_untrained_module_says_how_to_train_it(torch_edgeq, tmp_path):
    from edgeq.config import read_pipeline

    shipped = REPO / "pipelines" / "from-torch.yaml"
    spec = read_pipeline(shipped).spec
    assert spec.model.torch == "fashion_torch:build" and spec.model.torch_layout == "nchw"
    assert [v.type for v in spec.quantize.variants] == ["fp32", "int8", "dynamic", "weight_only"]
    assert "python3 pipelines/fashion_torch.py data/fashion-torch.pt" in shipped.read_text()
    d = tmp_path / "pipelines"
    d.mkdir()
    shutil.copy(shipped, d / shipped.name)
    shutil.copy(REPO / "pipelines" / "fashion_torch.py", d / "fashion_torch.py")
    missing = tmp_path / "no-weights.pt"
    r = torch_edgeq("run", d / shipped.name, env={"EDGEQ_TORCH_WEIGHTS": str(missing)})
    assert_clean_error(r, 5, "model.torch 'fashion_torch:build' raised FileNotFoundError", "train it first", str(missing))


# Four .pt2 files, each running code of its author when torch.export.load reads it (torch 2.14.1; see
# edgeq/stages/pt2guard.py): a pickled weight and pickled example inputs (torch.load, weights_only=False or its
# fallback), an opaque-object constant (pickle.loads), a shape expression (sympy.sympify). Each creates its canary.
HOSTILE_PT2 = """
import json, os, pickle, sys, zipfile
import torch

out = sys.argv[1]
class Canary:
    def __init__(self, path): self.path = path
    def __reduce__(self): return (open, (self.path, "w"))

ep = torch.export.export(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10)).eval(), (torch.zeros(1, 1, 28, 28),))
torch.export.save(ep, os.path.join(out, "good.pt2"))
good = zipfile.ZipFile(os.path.join(out, "good.pt2"))
names = {n.split("/", 1)[1]: n for n in good.namelist()}
for need in ("models/model.json", "data/weights/model_weights_config.json", "data/sample_inputs/model.pt"):
    assert need in names, f"torch {torch.__version__} lays out a .pt2 otherwise: {sorted(names)}"

def craft(kind, edits):
    path = os.path.join(out, kind + ".pt2")
    with zipfile.ZipFile(path, "w") as z:
        for short, full in names.items():
            data = good.read(full)
            z.writestr(kind + "/" + short, edits.pop(short)(data) if short in edits else data)
        for short, fn in edits.items():
            z.writestr(kind + "/" + short, fn(b""))
    return path

canary = lambda kind: os.path.join(out, "CANARY-" + kind)
pickled = lambda kind: (lambda _: pickle.dumps(Canary(canary(kind))))
def weight_config(data):
    c = json.loads(data)
    first = next(iter(c["config"]))
    c["config"][first]["use_pickle"] = True
    return json.dumps(c).encode(), c["config"][first]["path_name"]
cfg, weight_file = weight_config(good.read(names["data/weights/model_weights_config.json"]))
def opaque(_):
    meta = {"path_name": "opaque_obj_0", "is_param": False, "use_pickle": True, "tensor_meta": None}
    return json.dumps({"config": {"k": meta}}).encode()
def expression(data):
    m = json.loads(data)
    x = m["graph_module"]["graph"]["inputs"][-1]["as_tensor"]["name"]
    code = "__import__('pathlib').Path(" + repr(canary("expression")) + ").touch() + 1"
    m["graph_module"]["graph"]["tensor_values"][x]["sizes"][0] = {"as_expr": {"expr_str": code, "hint": {"as_int": 1}}}
    return json.dumps(m).encode()
W, C = "data/weights/", "data/constants/"
files = {
    "weight": craft("weight", {W + "model_weights_config.json": lambda _: cfg, W + weight_file: pickled("weight")}),
    "inputs": craft("inputs", {"data/sample_inputs/model.pt": pickled("inputs")}),
    "opaque": craft("opaque", {C + "model_constants_config.json": opaque, C + "opaque_obj_0": pickled("opaque")}),
    "expression": craft("expression", {"models/model.json": expression}),
}
ran = {}
for kind, path in files.items():  # as plain torch loads them: each runs its code
    try:
        torch.export.load(path)
    except Exception:
        pass
    ran[kind] = os.path.exists(canary(kind))
    if ran[kind]:
        os.remove(canary(kind))
print(json.dumps(ran))
"""


def test_a_hostile_pt2_runs_none_of_its_code(torch_edgeq, torch_venv, tmp_path):
    """torch.export.load has no weights-only mode: edgeq loads a .pt2 with every torch.load weights-only and refuses
    what torch unpickles or evaluates past that; the files really are hostile (plain torch runs each one's code)."""
    p = subprocess.run(
        [str(torch_venv / "bin" / "python"), "-c", HOSTILE_PT2, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        env=_torch_env(torch_venv),
    )
    assert p.returncode == 0, p.stderr[-3000:]
    kinds = ["weight", "inputs", "opaque", "expression"]
    assert json.loads(p.stdout.strip().splitlines()[-1]) == dict.fromkeys(kinds, True)
    files = []
    for kind in kinds:
        doc = {"name": f"hostile-{kind}", "seed": 1, "data": DATA, "model": {"torch": f"{kind}.pt2"}}
        doc["quantize"] = {"variants": [{"type": "fp32"}]}
        files.append(tmp_path / f"{kind}.yaml")
        files[-1].write_text(yaml.safe_dump(doc, sort_keys=False))
    r = torch_edgeq("run", *files, "--json")
    assert r.code == 5, (r.stdout, r.stderr[-3000:])
    runs = {run["pipeline_file"]: run for run in r.json()["runs"]}
    why = {
        "weight": "a pickle that is not plain tensors, which torch.load refused to unpickle weights-only",
        "inputs": "a pickle that is not plain tensors, which torch.load refused to unpickle weights-only",
        "opaque": "a pickled Python object (opaque_obj_0)",
        "expression": "a shape expression quoting '/",  # the canary's path, before its __import__
    }
    for kind, f in zip(kinds, files, strict=True):
        run = runs[str(f)]
        assert run["exit_code"] == 5 and "edgeq does not load this .pt2" in run["message"], run
        assert why[kind] in run["message"], run["message"]
    assert not list(tmp_path.glob("CANARY-*"))
    r = torch_edgeq("run", _pipeline(tmp_path, {"torch": "good.pt2"}, [{"type": "fp32"}]), "--json")
    assert r.code == 0, r.stderr[-3000:]  # what torch.export.save writes loads as before
